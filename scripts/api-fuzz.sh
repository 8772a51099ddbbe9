#!/usr/bin/env bash
# The JSON API against its own OpenAPI document: schemathesis (PyPI) reads /api/v1/openapi.json,
# generates requests from it (valid and invalid) and checks every answer: no server error, a
# documented status code, the documented content type and schema. Runs the real `smsdesk`
# binary on a free port with a fresh SQLite database and one API key; fails on any finding or
# any ERROR line in the server's log.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/serve-lib.sh
say() { printf '==> %s\n' "$*"; }
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

say "building smsdesk (debug)"
cargo build -p server --bin smsdesk --locked --quiet
bin="$PWD/target/debug/smsdesk"

work=$(mktemp -d)
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

port=$(free_port)
base="http://127.0.0.1:$port"
export DATABASE_URL="sqlite://$work/smsdesk.db"
export SMSDESK_LISTEN="127.0.0.1:$port"
export SMSDESK_DATA_KEY; SMSDESK_DATA_KEY=$(head -c 32 /dev/urandom | base64 -w0)
export SMSDESK_SESSION_SECRET; SMSDESK_SESSION_SECRET=$(head -c 64 /dev/urandom | base64 -w0)
export SMSDESK_ADMIN_PASSWORD="api fuzz password 1234"
export SMSDESK_LOG_FORMAT=json RUST_LOG="${RUST_LOG:-warn}"
# The worker stays off: requests are what is tested, and the simulator would only add load.
export SMSDESK_WORKER=false

key=$(cd "$work" && "$bin" api-key create --name schemathesis)
id=$(python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])' <<<"$key")
secret=$(python3 -c 'import json, sys; print(json.load(sys.stdin)["secret"])' <<<"$key")

say "starting smsdesk on $base"
start_smsdesk "$bin" "$work" "$base"

say "schemathesis $(tools/schemathesis/.venv/bin/schemathesis --version | awk '{print $NF}') against $base/api/v1/openapi.json"
status=0
(cd "$work" && "$OLDPWD/tools/schemathesis/.venv/bin/schemathesis" run "$base/api/v1/openapi.json" \
  --url "$base" \
  --auth "$id:$secret" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
  --max-examples "${API_FUZZ_EXAMPLES:-100}" \
  --seed "${API_FUZZ_SEED:-20261130}" \
  --workers 1 \
  --phases examples,coverage,fuzzing,stateful \
  --suppress-health-check all) || status=$?
server_errors "$work" || status=1
exit "$status"
