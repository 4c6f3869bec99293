#!/usr/bin/env bash
# Runs a command with one test broker for the whole run: starts it (fresh
# data dir, the transaction.version start-up step, readiness by polling),
# exports WEIR_TEST_BOOTSTRAP, and stops it on exit, even on failure.
# With WEIR_TEST_BOOTSTRAP already set (a real Kafka), starts nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -n "${WEIR_TEST_BOOTSTRAP:-}" ]; then
  exec "$@"
fi

: "${CARGO_TARGET_DIR:=$HOME/.cache/weir/target}"
export CARGO_TARGET_DIR
cargo build --quiet -p weir-cli

run_dir=$(mktemp -d -t weir-test-broker.XXXXXX)
"$CARGO_TARGET_DIR/debug/weir" dev-broker --ip auto \
  --data-dir "$run_dir/data" --ready-file "$run_dir/ready" >"$run_dir/broker.out" 2>&1 &
broker_pid=$!
stop_broker() {
  kill -TERM "$broker_pid" 2>/dev/null || true
  wait "$broker_pid" 2>/dev/null || true
  rm -rf "$run_dir"
}
trap stop_broker EXIT

# Poll for readiness (the dev-broker writes the file after the start-up step).
deadline=$((SECONDS + 60))
until [ -s "$run_dir/ready" ]; do
  if ! kill -0 "$broker_pid" 2>/dev/null; then
    echo "the test broker failed to start:" >&2
    cat "$run_dir/broker.out" >&2
    exit 1
  fi
  if [ $SECONDS -ge $deadline ]; then
    echo "the test broker was not ready within 60 s:" >&2
    cat "$run_dir/broker.out" >&2
    exit 1
  fi
  sleep 0.1
done
WEIR_TEST_BOOTSTRAP=$(cat "$run_dir/ready")
export WEIR_TEST_BOOTSTRAP
echo "test broker: $WEIR_TEST_BOOTSTRAP"
"$@"
