#!/usr/bin/env bash
# Installs what building and testing Weir needs, once per machine.
# Idempotent, and silent when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

tools="$HOME/.cache/weir/tools"
broker="$tools/bin/crabka-broker"

# System packages: a C toolchain for librdkafka (bundled), libclang for
# RocksDB's bindings (state stores), promtool and Chromium for tests.
missing=()
command -v cc >/dev/null 2>&1 || missing+=(build-essential)
command -v make >/dev/null 2>&1 || missing+=(make)
command -v perl >/dev/null 2>&1 || missing+=(perl)
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
dpkg -s libclang-dev >/dev/null 2>&1 || missing+=(libclang-dev)
# promtool (Debian package prometheus) checks the admin endpoint's metrics.
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
# Python with venv for schemathesis (below).
command -v python3 >/dev/null 2>&1 || missing+=(python3)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
# Headless Chromium drives the dashboard in a test.
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# schemathesis (PyPI) fuzzes the admin endpoint against its OpenAPI
# document in a test; pinned, in a venv of its own.
venv="$HOME/.cache/weir/venv"
if [ ! -x "$venv/bin/schemathesis" ]; then
  echo "deps: installing schemathesis into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet "schemathesis==4.32.5"
fi

# The test broker: crabka-broker 0.3.8, pinned by tools/test-broker (its
# versions are yanked, so only that lockfile can fetch them). ~10 minutes once.
if [ ! -x "$broker" ]; then
  echo "deps: installing the test broker (crabka-broker 0.3.8) into $tools; about 10 minutes, once per machine"
  (cd tools/test-broker && cargo fetch --locked --quiet)
  src=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/crabka-broker-0.3.8 | head -n 1)
  build_dir="$HOME/.cache/weir/broker-build"
  CARGO_TARGET_DIR="$build_dir" cargo install --quiet --path "$src" --locked \
    --ignore-rust-version --root "$tools"
  rm -rf "$build_dir"
fi
