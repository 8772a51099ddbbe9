#!/usr/bin/env bash
# Installs what the web console's build and end-to-end tests need, from the package registries
# only (crates.io, npm, Debian): cargo-leptos would otherwise try to download wasm-bindgen and
# wasm-opt from GitHub, which is not reachable here (shared/TOOLCHAIN.md).
# Each step says what it does and does nothing when the tool is already right, so a second run
# takes a second.
#
#   scripts/web-tools.sh          build tools: wasm target, cargo-leptos, wasm-bindgen, wasm-opt
#   scripts/web-tools.sh e2e      the same, plus Chromium and Playwright (end2end/)
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '==> %s\n' "$*"; }
CARGO_BIN="${CARGO_HOME:-$HOME/.cargo}/bin"
export PATH="$CARGO_BIN:$PATH"

# 0.3.11 needs rustc 1.96.
CARGO_LEPTOS_VERSION=0.3.10
# wasm-opt 0.116.1 (binaryen 116). Not Debian's binaryen (108): its output fails to hydrate.
WASM_OPT_VERSION=0.116.1

need_wasm_target() {
  if ! rustup target list --installed | grep -q '^wasm32-unknown-unknown$'; then
    say "installing the Rust target wasm32-unknown-unknown (the console runs in the browser as wasm)"
    rustup target add wasm32-unknown-unknown
  fi
}

need_cargo_leptos() {
  if ! cargo leptos --version 2>/dev/null | grep -q " $CARGO_LEPTOS_VERSION\$"; then
    say "installing cargo-leptos $CARGO_LEPTOS_VERSION (builds server and wasm together; takes about 10 minutes once)"
    cargo install --locked cargo-leptos --version "$CARGO_LEPTOS_VERSION"
  fi
}

# wasm-bindgen's CLI must be exactly the version of the wasm-bindgen crate in Cargo.lock, or the
# generated JS does not match the wasm. cargo-leptos does not check the version it finds on PATH.
need_wasm_bindgen() {
  local want
  want=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
  if [ -z "$want" ]; then
    echo "wasm-bindgen is not in Cargo.lock: run 'cargo generate-lockfile' first" >&2
    exit 1
  fi
  if ! wasm-bindgen --version 2>/dev/null | grep -q " $want\$"; then
    say "installing wasm-bindgen-cli $want (must equal the wasm-bindgen crate in Cargo.lock)"
    # Without --locked: its own lock file pins crates that no longer build on current Rust.
    cargo install wasm-bindgen-cli --version "$want"
  fi
}

need_wasm_opt() {
  if command -v wasm-opt >/dev/null && wasm-opt --version 2>/dev/null | grep -q 'version 1[1-9][0-9]'; then
    return
  fi
  if command -v wasm-opt >/dev/null; then
    say "the wasm-opt on PATH ($(command -v wasm-opt): $(wasm-opt --version 2>&1 | head -1)) is too old; installing $WASM_OPT_VERSION into $CARGO_BIN"
  else
    say "installing wasm-opt $WASM_OPT_VERSION (shrinks the release wasm; takes about 5 minutes once)"
  fi
  cargo install wasm-opt --version "$WASM_OPT_VERSION" --locked
}

need_chromium() {
  if [ ! -x /usr/bin/chromium ] && [ -z "${CHROMIUM_PATH:-}" ]; then
    say "installing Chromium from Debian's packages (the end-to-end tests drive it)"
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update
    $sudo apt-get install -y chromium
  fi
}

need_playwright() {
  command -v npm >/dev/null || { echo "npm is missing: apt-get install -y nodejs npm" >&2; exit 1; }
  local want have=""
  want=$(node -p 'require("./end2end/package-lock.json").packages["node_modules/@playwright/test"].version')
  if [ -f end2end/node_modules/@playwright/test/package.json ]; then
    have=$(node -p 'require("./end2end/node_modules/@playwright/test/package.json").version')
  fi
  if [ "$have" != "$want" ]; then
    say "installing @playwright/test $want into end2end/ (npm ci; it uses the system Chromium, no browser download)"
    (cd end2end && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund)
  fi
}

need_wasm_target
need_cargo_leptos
need_wasm_bindgen
need_wasm_opt
if [ "${1:-}" = "e2e" ]; then
  need_chromium
  need_playwright
fi
