#!/usr/bin/env bash
# `make bench`: smsdesk's speed beside Twilio's own tools, on the same inputs, in the same run.
#  - segment counting (criterion) vs Twilio's JS calculator, on tools/bench/bodies.json;
#  - X-Twilio-Signature validation of a 10-parameter status callback (criterion) vs twilio-python.
#  - sending: JSON API intake (messages/s, p50/p99 at 1,000 req/s), dispatch to a local fake
#    Twilio against a plain HTTP client on the same fake, signed incoming-message webhooks (per
#    second, p50/p99);
#  - several instances: dispatch with 1, 2 and 3 smsdesk processes on one PostgreSQL database;
#  - faults: failover switch and return times, recovery after a database outage;
#  - two-factor codes: start of a verification to its text at a fake Twilio (p50/p99), checks/s;
#  - the delivery log with 1,000,000 messages: each filter's page and counts, p50/p95;
#  - the console: release wasm size, and keystroke-to-counter time for a 1,600-character body in
#    Chromium (scripts/e2e.sh --measure).
set -euo pipefail
cd "$(dirname "$0")/.."
export LEPTOS_OUTPUT_NAME=smsdesk
say() { printf '==> %s\n' "$*"; }

bash scripts/tools.sh bench
say "criterion: smsdesk's domain crate (release build)"
cargo bench --locked -p domain --bench segments --bench signature --bench phone -- --noplot
say "Twilio's JS calculator on the same bodies"
js=$(node tools/segment-calculator/bench.js)
say "twilio-python's RequestValidator on the same callback"
py=$(tools/bench/.venv/bin/python tools/bench/twilio_validator.py --raw)
say "summary"
JS="$js" PY="$py" python3 - <<'PY'
import json, os, pathlib
crit = pathlib.Path("target/criterion")
def ns(group, name):
    path = crit / group / name / "new" / "estimates.json"
    return json.loads(path.read_text())["mean"]["point_estimate"]
js = json.loads(os.environ["JS"])
rows = []
for body, label in (("gsm_160", "segments, 160-char GSM-7 body"), ("mixed_1600", "segments, 1,600-char mixed body with emoji")):
    ours = ns("segments", body) / 1000
    theirs = js[body]
    rows.append((label, ours, "Twilio JS calculator", theirs))
ours = ns("signature", "validate_form_10_params") / 1000
rows.append(("signature check, 10-param status callback", ours, "twilio-python RequestValidator", float(os.environ["PY"])))
for label, ours, other, theirs in rows:
    print(f"{label:45} smsdesk {ours:10.3f} us   {other} {theirs:10.3f} us   x{theirs / ours:,.0f}")
PY
say "sending: intake through the JSON API, dispatch to a local fake Twilio, signed inbound webhooks (release build, SQLite)"
cargo bench --locked -p server --bench sending
say "two-factor codes: a verification's start to its text at a local fake Twilio (p50/p99), checks per second (release build, SQLite)"
cargo bench --locked -p server --bench verify
say "several instances: dispatch with 1, 2 and 3 smsdesk processes on one PostgreSQL database (release build)"
cargo bench --locked -p server --bench instances
say "faults: failover switch and return times with a fallback provider, recovery after a 5 s database outage (release build, PostgreSQL)"
cargo bench --locked -p server --bench faults
say "the delivery log at size: 1,000,000 messages seeded into SQLite and PostgreSQL, each filter's page and counts (p50/p95)"
cargo bench --locked -p backend --bench log
say "the console in Chromium: keystroke to counter update (release build)"
bash scripts/e2e.sh --measure
wasm=$(ls target/site/pkg/*.wasm)
printf 'release wasm: %s bytes, %s bytes gzip -9\n' "$(stat -c %s "$wasm")" "$(gzip -9c "$wasm" | wc -c)"
