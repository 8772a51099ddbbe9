# smsdesk: the README's two commands, and a few for developers.
.PHONY: run test bench load tools fmt check

## make run: set up this machine and start smsdesk.
run:
	@bash scripts/run.sh

## make test: formatting, clippy, the wasm build of the domain, unit, integration and differential tests.
test:
	@bash scripts/test.sh

## make bench: smsdesk's speed beside Twilio's own tools on the same inputs.
bench:
	@bash scripts/bench.sh

## make load: smsdesk under load (oha) on SQLite and PostgreSQL, then a 30-minute soak.
load:
	@bash scripts/load.sh

tools:
	@bash scripts/tools.sh test

fmt:
	cargo fmt --all

check:
	cargo check --workspace --all-targets
