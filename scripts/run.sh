#!/usr/bin/env bash
# `make run`: sets up this machine and starts smsdesk.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '==> %s\n' "$*"; }

bash scripts/tools.sh rust
say "building smsdesk (release)"
cargo build --release --locked -p server
say "smsdesk is built: target/release/smsdesk"
# The web console, its database and sign-in are not built yet (issue 4); until then smsdesk is
# its command line. Show it working rather than pretend to serve.
say "the console is not part of this build yet; the command line works today:"
printf 'SafeShipper: Shipment {tracking_number} created. Track: {tracking_url}' | target/release/smsdesk segments
target/release/smsdesk --help
