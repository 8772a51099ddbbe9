#!/usr/bin/env bash
# Installs what smsdesk's build and tests need and this machine may lack. Each step says what it
# does and does nothing when the tool is already there, so a second run costs seconds.
# Everything comes from the package registries (crates.io, npm, PyPI, Debian): nothing else is reachable.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '==> %s\n' "$*"; }

need_rust() {
  command -v cargo >/dev/null || { echo "cargo is missing: install Rust with rustup first" >&2; exit 1; }
  for component in rustfmt clippy; do
    if ! rustup component list --installed 2>/dev/null | grep -q "^$component"; then
      say "installing the Rust component $component"
      rustup component add "$component"
    fi
  done
  if ! rustup target list --installed | grep -q '^wasm32-unknown-unknown$'; then
    say "installing the wasm32-unknown-unknown target (the console's counter runs in the browser)"
    rustup target add wasm32-unknown-unknown
  fi
}

# Twilio's own segment calculator, the oracle of the differential test and the benchmark (dev only).
need_calculator() {
  command -v node >/dev/null || { echo "node is missing: apt-get install -y nodejs npm" >&2; exit 1; }
  local dir=tools/segment-calculator
  if [ ! -f "$dir/node_modules/sms-segments-calculator/package.json" ] ||
     ! grep -q '"version": "1.3.0"' "$dir/node_modules/sms-segments-calculator/package.json"; then
    say "installing Twilio's segment calculator (npm sms-segments-calculator@1.3.0) into $dir"
    npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error
  fi
}

# A Python virtual environment from a requirements file, rebuilt when the file changes.
need_venv() {
  local dir=$1 what=$2
  local stamp="$dir/.venv/.requirements"
  if [ ! -x "$dir/.venv/bin/python" ] || ! cmp -s "$dir/requirements.txt" "$stamp"; then
    say "installing $what into $dir/.venv (PyPI)"
    rm -rf "$dir/.venv"
    python3 -m venv "$dir/.venv"
    "$dir/.venv/bin/pip" install --quiet --disable-pip-version-check -r "$dir/requirements.txt"
    cp "$dir/requirements.txt" "$stamp"
  fi
}

# The local PostgreSQL the tests use (127.0.0.1:5432, user postgres): started when it is not
# running, installed from Debian's packages when it is missing.
need_postgres() {
  if pg_isready -h 127.0.0.1 -p 5432 >/dev/null 2>&1; then
    return
  fi
  if ! command -v pg_ctlcluster >/dev/null; then
    say "installing PostgreSQL from Debian's packages (the tests run on it as well as SQLite)"
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql
  fi
  local version
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  say "starting PostgreSQL $version"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 1 50); do
    pg_isready -h 127.0.0.1 -p 5432 >/dev/null 2>&1 && break
    sleep 0.2
  done
  pg_isready -h 127.0.0.1 -p 5432 >/dev/null || { echo "PostgreSQL did not start on 127.0.0.1:5432" >&2; exit 1; }
  # A fresh Debian cluster asks for passwords on TCP: the tests connect as postgres without one.
  if ! psql -h 127.0.0.1 -U postgres -Atc 'select 1' >/dev/null 2>&1; then
    say "allowing local connections as postgres without a password (test machine)"
    local hba
    hba=$(su postgres -c "psql -Atc 'show hba_file'")
    sed -i -E 's/^(host\s+all\s+all\s+(127\.0\.0\.1\/32|::1\/128)\s+)\S+/\1trust/' "$hba"
    su postgres -c "psql -Atc 'select pg_reload_conf()'" >/dev/null
  fi
}

# cargo-fuzz, for the fuzz targets in fuzz/, where the nightly toolchain is (none can be
# downloaded here): without nightly nothing is installed and scripts/fuzz.sh says it skipped.
need_fuzz() {
  rustup toolchain list | grep -q '^nightly' || return 0
  if ! cargo +nightly fuzz --version 2>/dev/null | grep -q ' 0.13.2'; then
    say "installing cargo-fuzz 0.13.2 (crates.io), for the fuzz targets in fuzz/"
    cargo install cargo-fuzz --version 0.13.2 --locked
  fi
}

# oha, the load generator `make load` drives smsdesk with (crates.io), into tools/oha.
need_oha() {
  if ! tools/oha/bin/oha --version 2>/dev/null | grep -q "$OHA_VERSION"; then
    say "installing oha $OHA_VERSION (crates.io), the load generator for make load, into tools/oha"
    cargo install oha --version "$OHA_VERSION" --locked --root tools/oha
  fi
}
OHA_VERSION=1.16.0

case "${1:-test}" in
  rust) need_rust ;;
  test)
    need_rust
    need_calculator
    need_venv tools/phone-oracle "Google's libphonenumber (Python port), the phone number oracle"
    need_venv tools/bench "twilio-python, the client the Twilio-compatible endpoint is tested with"
    need_venv tools/schemathesis "schemathesis, which fuzzes the JSON API against its OpenAPI document"
    need_postgres
    need_fuzz
    bash scripts/web-tools.sh e2e
    ;;
  run)
    need_rust
    bash scripts/web-tools.sh
    ;;
  bench)
    need_rust
    need_calculator
    need_venv tools/bench "twilio-python, to time its signature validator"
    bash scripts/web-tools.sh e2e
    ;;
  load)
    need_rust
    need_venv tools/bench "twilio-python, to sign the webhook the load test posts"
    need_postgres
    need_oha
    ;;
  *) echo "usage: $0 [rust|test|run|bench|load]" >&2; exit 2 ;;
esac
