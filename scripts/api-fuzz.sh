#!/usr/bin/env bash
# The JSON API against its own OpenAPI document: schemathesis (PyPI) reads /api/v1/openapi.json,
# generates requests from it (valid and invalid) and checks every answer: no server error, a
# documented status code, the documented content type and schema. Runs the real `smsdesk`
# binary on a free port with a fresh SQLite database and one API key; fails on any finding or
# any ERROR line in the server's log.
set -euo pipefail
cd "$(dirname "$0")/.."
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

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
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
(cd "$work" && exec "$bin" serve) >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 150); do
  if curl -fsS "$base/readyz" >/dev/null 2>&1; then break; fi
  if ! kill -0 "$server_pid" 2>/dev/null; then cat "$work/server.log"; echo "smsdesk exited before it was ready" >&2; exit 1; fi
  sleep 0.2
done
curl -fsS "$base/readyz" >/dev/null || { cat "$work/server.log"; echo "smsdesk did not become ready" >&2; exit 1; }

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
if grep -q '"level":"ERROR"' "$work/server.log"; then
  say "the server logged errors during the run"
  grep '"level":"ERROR"' "$work/server.log" | head -n 20
  status=1
fi
exit "$status"
