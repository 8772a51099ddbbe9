#!/usr/bin/env bash
# End-to-end tests: builds the console with cargo-leptos, starts smsdesk on a free port with a
# fresh SQLite database and one user per role, runs Playwright in the machine's Chromium, stops.
#   scripts/e2e.sh                 the tests (debug build)
#   scripts/e2e.sh --measure       the keystroke measurement (release build), for make bench
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/serve-lib.sh
say() { printf '==> %s\n' "$*"; }
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
export LEPTOS_OUTPUT_NAME=smsdesk

profile=debug
config=playwright.config.ts
if [ "${1:-}" = "--measure" ]; then
  profile=release
  config=playwright.measure.config.ts
fi

say "building the console ($profile: server and wasm)"
if [ "$profile" = release ]; then cargo leptos build --release; else cargo leptos build; fi
bin="target/$profile/smsdesk"

work=$(mktemp -d)
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

port=$(free_port)
export DATABASE_URL="sqlite://$work/smsdesk.db"
export SMSDESK_LISTEN="127.0.0.1:$port"
export SMSDESK_DATA_KEY; SMSDESK_DATA_KEY=$(head -c 32 /dev/urandom | base64 -w0)
export SMSDESK_SESSION_SECRET; SMSDESK_SESSION_SECRET=$(head -c 64 /dev/urandom | base64 -w0)
export SMSDESK_E2E_PASSWORD="e2e password 1234"
# Tests sign inbound webhooks with this SharedKey (HMAC-SHA256), as Twilio would.
export TWILIO_WEBHOOK_SHARED_KEY="e2e-shared-key-0123456789abcdef"
export SMSDESK_ADMIN_EMAIL="admin@e2e.test" SMSDESK_ADMIN_PASSWORD="$SMSDESK_E2E_PASSWORD"
export LEPTOS_SITE_ROOT="$PWD/target/site" LEPTOS_SITE_PKG_DIR=pkg LEPTOS_ENV=PROD
export RUST_LOG="${RUST_LOG:-warn}"

say "creating one user per role, and one for the second-factor test"
for role in admin dispatcher compliance finance; do
  printf '%s\n' "$SMSDESK_E2E_PASSWORD" | "$bin" user create --email "$role@e2e.test" --role "$role" --password-stdin >/dev/null
done
# The second-factor test's own user (the others sign in with the password alone).
printf '%s\n' "$SMSDESK_E2E_PASSWORD" | "$bin" user create --email "second@e2e.test" --role dispatcher --password-stdin >/dev/null

say "starting smsdesk on 127.0.0.1:$port"
# The .env of a developer's `make run` must not leak in: it runs from the work folder.
start_smsdesk "$PWD/$bin" "$work" "http://127.0.0.1:$port"

say "running Playwright ($config) in $(${CHROMIUM_PATH:-/usr/bin/chromium} --version 2>/dev/null || echo chromium)"
status=0
(cd end2end && SMSDESK_URL="http://127.0.0.1:$port" npx playwright test --config "$config") || status=$?
if [ "$status" -ne 0 ]; then
  say "server log"
  tail -n 50 "$work/server.log"
fi
# The tests only do what people do: an error in the server's log is a bug even when they pass.
server_errors "$work" || status=1
exit "$status"
