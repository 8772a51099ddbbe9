#!/usr/bin/env bash
# `make run`: sets up this machine and starts smsdesk with SQLite and the simulator at
# http://127.0.0.1:3000 (SMSDESK_LISTEN changes it).
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '==> %s\n' "$*"; }
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
export LEPTOS_OUTPUT_NAME=smsdesk

bash scripts/tools.sh run

# Secrets live in .env (never committed): created once, kept afterwards.
touch .env
chmod 600 .env
if ! grep -q '^SMSDESK_DATA_KEY=' .env; then
  say "creating a data key (encrypts phone numbers at rest) in .env"
  printf 'SMSDESK_DATA_KEY=%s\n' "$(head -c 32 /dev/urandom | base64 -w0)" >> .env
fi
if ! grep -q '^SMSDESK_SESSION_SECRET=' .env; then
  say "creating a session secret (signs session cookies) in .env"
  printf 'SMSDESK_SESSION_SECRET=%s\n' "$(head -c 64 /dev/urandom | base64 -w0)" >> .env
fi
mkdir -p data

say "building smsdesk (release: server and browser bundle)"
cargo leptos build --release

say "starting smsdesk: migrations, first admin if there is no user, then serving"
say "(SQLite file in data/; the simulator sends unless TWILIO_ACCOUNT_SID is set; Ctrl+C stops)"
export LEPTOS_SITE_ROOT=target/site LEPTOS_SITE_PKG_DIR=pkg LEPTOS_ENV=PROD
exec target/release/smsdesk serve
