# The README's commands. Everything installs what it needs first (make deps).
SHELL := /bin/bash
export CARGO_TARGET_DIR ?= $(HOME)/.cache/weir/target
CARGO ?= cargo

.PHONY: deps demo test bench lint fmt

## deps: system packages and the test broker, once per machine (quiet when present)
deps:
	@scripts/deps.sh

## demo: the event-router, a stream-table join and customer-totals (queried in process) end to end on a fresh local broker
demo: deps
	@$(CARGO) build --quiet -p weir-cli -p event-router -p event-enricher
	@$(CARGO_TARGET_DIR)/debug/weir demo

## test: every test, against one test broker started for the run
test: deps
	@scripts/with-broker.sh $(CARGO) test --workspace

## bench: criterion micro-benches and the end-to-end throughput harness
bench: deps
	@scripts/with-broker.sh $(CARGO) bench -p weir-benches

## lint: formatting, clippy and the API docs' links, as CI expects them
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --no-deps --quiet

fmt:
	$(CARGO) fmt --all
