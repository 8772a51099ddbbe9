#!/usr/bin/env bash
# The fuzz targets in fuzz/ (cargo-fuzz, libFuzzer, nightly): segments, phone numbers, template
# bodies, webhook forms and signatures, Twilio's Pricing JSON and money strings, Twilio's Message,
# list and error answers, price lists, consent imports (CSV), settings files (JSON).
#   scripts/fuzz.sh              a short pass of each (make test): 10 s per target
#   scripts/fuzz.sh --runs N     each target for N executions (the long run reported in notes)
# Without the nightly toolchain (none can be downloaded here) it says so and passes.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '==> %s\n' "$*"; }

if ! rustup toolchain list | grep -q '^nightly'; then
  say "fuzz: skipped, this machine has no nightly toolchain (cargo-fuzz needs one)"
  exit 0
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  say "fuzz: skipped, cargo-fuzz is not installed (bash scripts/tools.sh test installs it)"
  exit 0
fi
targets=(segments phone template webhook pricing_json twilio_json price_list consent_csv settings_json)
limit=(-max_total_time=10)
if [ "${1:-}" = "--runs" ]; then
  limit=("-runs=${2:?give the number of executions}")
  shift 2
fi
# Named targets only, if any are given after the options.
if [ $# -gt 0 ]; then
  targets=("$@")
fi
say "fuzz: building ${#targets[@]} targets (nightly, address sanitizer)"
cargo +nightly fuzz build --fuzz-dir fuzz
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t"
  say "fuzz: $t (${limit[*]})"
  if ! cargo +nightly fuzz run --fuzz-dir fuzz "$t" "fuzz/corpus/$t" -- \
      -max_len=4096 -print_final_stats=1 "${limit[@]}" >"$log" 2>&1; then
    tail -n 40 "$log"
    say "fuzz: $t failed: the input is in fuzz/artifacts/$t"
    exit 1
  fi
  # How many executions ran, and how fast.
  grep -E '^stat::(number_of_executed_units|average_exec_per_sec)' "$log" || tail -n 3 "$log"
done
