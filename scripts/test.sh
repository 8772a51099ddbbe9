#!/usr/bin/env bash
# `make test`: every check smsdesk has, stage by stage, with a summary line for each.
set -uo pipefail
cd "$(dirname "$0")/.."

results=()
failed=0
passed=0
stage() {
  local name=$1; shift
  printf '\n==> %s: %s\n' "$name" "$*"
  local start=$SECONDS
  if "$@"; then
    results+=("$(printf 'PASS  %-12s %4ss' "$name" $((SECONDS - start)))")
    passed=$((passed + 1))
  else
    results+=("$(printf 'FAIL  %-12s %4ss' "$name" $((SECONDS - start)))")
    failed=$((failed + 1))
    [ "${CI:-}" = "true" ] || [ "${KEEP_GOING:-}" = "1" ] || summary_and_exit
  fi
}
summary_and_exit() {
  printf '\n==> summary\n'
  printf '%s\n' "${results[@]}"
  printf 'stages: %d passed, %d failed\n' "$passed" "$failed"
  [ "$failed" -eq 0 ] && exit 0 || exit 1
}

# One value for every cargo command, so that they share one build cache with cargo-leptos.
export LEPTOS_OUTPUT_NAME=smsdesk
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
export SMSDESK_TEST_POSTGRES_URL="${SMSDESK_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"

stage tools   bash scripts/tools.sh test
stage fmt     cargo fmt --all --check
stage clippy  cargo clippy --workspace --all-targets --locked -- -D warnings
stage clippy-wasm cargo clippy -p frontend --target wasm32-unknown-unknown --locked -- -D warnings
stage wasm    cargo check -p domain --target wasm32-unknown-unknown --no-default-features --locked
# Unit and integration tests; storage and console tests run on SQLite and on PostgreSQL.
stage tests   cargo test --workspace --locked
stage e2e     bash scripts/e2e.sh
# The JSON API fuzzed from its own OpenAPI document by schemathesis, against the real binary.
stage api-fuzz bash scripts/api-fuzz.sh
# The parsers fuzzed (cargo-fuzz, nightly): a short pass of each target, or a line saying why not.
stage fuzz    bash scripts/fuzz.sh
summary_and_exit
