#!/usr/bin/env bash
# `make load`: smsdesk under load, measured by oha (a load generator from crates.io), against a
# release build on this machine, with the simulator sending and its worker running:
#  - intake, one message per request (POST /api/v1/messages), 32 connections;
#  - intake, 100 messages per request (POST /api/v1/messages/batch), 8 connections;
#  (each message to one of 40,000 numbers, taken in turn from files of request bodies)
#  - Twilio's incoming-message webhook, signed (the same message again and again: each request is
#    a signature check and a replay lookup; make bench times distinct messages);
# each for LOAD_SECONDS (default 300) on SQLite and on PostgreSQL: requests per second, p50 and
# p99 latency, answers other than the expected status. Then a soak of SOAK_SECONDS (default 1800)
# on PostgreSQL at a steady 100 requests per second, recording the process's resident memory and
# open files every 30 s. The report is printed and kept in target/load/report.txt.
# LOAD_SECONDS=0 runs only the soak; SOAK_SECONDS=0 only the load.
set -euo pipefail
cd "$(dirname "$0")/.."
LOAD_SECONDS="${LOAD_SECONDS:-300}"
SOAK_SECONDS="${SOAK_SECONDS:-1800}"
PG_ADMIN="${SMSDESK_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
OUT=target/load
say() { printf '==> %s\n' "$*"; }

bash scripts/tools.sh load
export PATH="$PWD/tools/oha/bin:$PATH"
say "building smsdesk (release)"
cargo build --locked --release -p server --bin smsdesk
BIN="$PWD/target/release/smsdesk"
mkdir -p "$OUT"
: > "$OUT/report.txt"
report() { printf '%s\n' "$*" | tee -a "$OUT/report.txt"; }

TOKEN=0123456789abcdef0123456789abcdef
PORT=3917
BASE="http://127.0.0.1:$PORT"
export SMSDESK_DATA_KEY=AwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwM=
export SMSDESK_SESSION_SECRET=BAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBA==
export SMSDESK_ADMIN_PASSWORD="load test admin password"
export SMSDESK_LISTEN="127.0.0.1:$PORT" SMSDESK_PUBLIC_URL="$BASE"
export TWILIO_AUTH_TOKEN="$TOKEN" RUST_LOG=warn LEPTOS_OUTPUT_NAME=smsdesk

SERVER=""
stop_server() {
  if [ -n "$SERVER" ]; then kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; SERVER=""; fi
}
trap stop_server EXIT

# Starts smsdesk on $DATABASE_URL with the limits far away (the load is on intake and the
# worker, not on waiting for limits), and an API key in $KEY_ID / $KEY_SECRET.
start_server() {
  "$BIN" settings export | python3 -c '
import json, sys
s = json.load(sys.stdin)
s["limits"].update(per_second=1_000_000, per_minute=10_000_000, per_hour=100_000_000,
                   per_recipient_per_hour=1_000_000, per_recipient_per_day=1_000_000)
s["pace"]["long_code"] = 1_000_000
json.dump(s, sys.stdout)' > "$OUT/settings.json"
  "$BIN" settings import "$OUT/settings.json" > /dev/null
  local key
  key=$("$BIN" api-key create --name load)
  KEY_ID=$(printf '%s' "$key" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  KEY_SECRET=$(printf '%s' "$key" | python3 -c 'import json,sys; print(json.load(sys.stdin)["secret"])')
  "$BIN" serve > "$OUT/server.log" 2>&1 &
  SERVER=$!
  for _ in $(seq 1 300); do
    curl -fs "$BASE/readyz" > /dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "smsdesk did not become ready; its log:" >&2
  cat "$OUT/server.log" >&2
  exit 1
}

# oha's JSON summary as one line: rate, p50, p99 (ms), and answers other than $2.
summary() {
  python3 - "$1" "$2" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
s = r["summary"]
p = r["latencyPercentiles"]
codes = r.get("statusCodeDistribution", {})
errors = dict(r.get("errorDistribution", {}))
# Requests still in flight when the run's time is up are cut off by oha itself.
cut = errors.pop("aborted due to deadline", 0)
other = sum(n for c, n in codes.items() if c != sys.argv[2]) + sum(errors.values())
answered = sum(codes.values())
print(f"{s['requestsPerSec']:9.0f} req/s   p50 {p['p50'] * 1000:7.2f} ms   p99 {p['p99'] * 1000:7.2f} ms   {answered} answered, {other} errors or not {sys.argv[2]}")
PY
}

load() { # name, expected status, oha arguments...
  local name=$1 expected=$2
  shift 2
  oha --no-tui --output-format json -z "${LOAD_SECONDS}s" "$@" > "$OUT/$name.json"
  report "$(printf '%-34s %s' "$name" "$(summary "$OUT/$name.json" "$expected")")"
}

# Request bodies, one per line (oha takes them in turn): each message to another of 40,000
# numbers, as SafeShipper's traffic is (a recipient gets a few messages a day, not thousands).
python3 - "$OUT" <<'PY'
import json, random, sys
random.seed(1)
areas = ["212", "312", "415", "617"]
def number():
    return f"+1{random.choice(areas)}555{random.randint(0, 9999):04d}"
with open(f"{sys.argv[1]}/one.jsonl", "w") as f:
    for i in range(20000):
        f.write(json.dumps({"to": number(), "body": f"Shipment SS-{i} picked up. Reply STOP to opt out."}) + "\n")
with open(f"{sys.argv[1]}/batch.jsonl", "w") as f:
    for b in range(500):
        f.write(json.dumps({"messages": [{"to": number(), "body": f"Shipment SS-{b}-{i} picked up."} for i in range(100)]}) + "\n")
PY
inbound_form='AccountSid=AC00000000000000000000000000000000&Body=Running+20+minutes+late&From=%2B14155552671&MessageSid=SM0123456789abcdef0123456789abcdef&To=%2B15005550006'
signature=$(tools/bench/.venv/bin/python - "$TOKEN" "$BASE/webhooks/twilio/inbound" "$inbound_form" <<'PY'
import sys, urllib.parse
from twilio.request_validator import RequestValidator
params = dict(urllib.parse.parse_qsl(sys.argv[3]))
print(RequestValidator(sys.argv[1]).compute_signature(sys.argv[2], params))
PY
)

for db in sqlite postgres; do
  case $db in
    sqlite)
      rm -rf "$OUT/sqlite"; mkdir -p "$OUT/sqlite"
      export DATABASE_URL="sqlite://$PWD/$OUT/sqlite/smsdesk.db" ;;
    postgres)
      psql "$PG_ADMIN" -qc 'DROP DATABASE IF EXISTS smsdesk_load WITH (FORCE)' -qc 'CREATE DATABASE smsdesk_load'
      export DATABASE_URL="${PG_ADMIN%/*}/smsdesk_load" ;;
  esac
  "$BIN" migrate > /dev/null
  start_server
  if [ "$LOAD_SECONDS" -gt 0 ]; then
  say "load on $db: ${LOAD_SECONDS}s each"
  load "$db: intake, one message" 202 -c 32 -m POST -a "$KEY_ID:$KEY_SECRET" \
    -H 'content-type: application/json' -Z "$OUT/one.jsonl" "$BASE/api/v1/messages"
  load "$db: intake, 100 per batch" 202 -c 8 -m POST -a "$KEY_ID:$KEY_SECRET" \
    -H 'content-type: application/json' -Z "$OUT/batch.jsonl" "$BASE/api/v1/messages/batch"
  load "$db: inbound webhook, signed" 200 -c 32 -m POST -H "X-Twilio-Signature: $signature" \
    -H 'content-type: application/x-www-form-urlencoded' -d "$inbound_form" "$BASE/webhooks/twilio/inbound"
  fi
  if [ "$db" = postgres ] && [ "$SOAK_SECONDS" -gt 0 ]; then
    say "soak on postgres: ${SOAK_SECONDS}s at 100 requests/s"
    oha --no-tui --output-format json -z "${SOAK_SECONDS}s" -q 100 -c 8 -m POST -a "$KEY_ID:$KEY_SECRET" \
      -H 'content-type: application/json' -Z "$OUT/one.jsonl" "$BASE/api/v1/messages" > "$OUT/soak.json" &
    LOADER=$!
    : > "$OUT/soak-samples.txt"
    while kill -0 "$LOADER" 2>/dev/null; do
      rss=$(awk '/VmRSS/ {print $2}' "/proc/$SERVER/status")
      fds=$(ls "/proc/$SERVER/fd" | wc -l)
      printf '%s %s %s\n' "$(date -u +%s)" "$rss" "$fds" >> "$OUT/soak-samples.txt"
      sleep 30
    done
    wait "$LOADER"
    report "$(printf '%-34s %s' "postgres: soak, 100 req/s" "$(summary "$OUT/soak.json" 202)")"
    report "$(python3 - "$OUT/soak-samples.txt" <<'PY'
import sys
rows = [tuple(map(int, l.split())) for l in open(sys.argv[1]) if l.strip()]
rss = [r[1] for r in rows]; fds = [r[2] for r in rows]
print(f"soak memory (RSS): first {rss[0] / 1024:.1f} MiB, last {rss[-1] / 1024:.1f} MiB, most {max(rss) / 1024:.1f} MiB; "
      f"open files: first {fds[0]}, last {fds[-1]}, most {max(fds)} ({len(rows)} samples, every 30 s)")
PY
)"
  fi
  stop_server
done
say "report: $OUT/report.txt"
