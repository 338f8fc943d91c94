#!/usr/bin/env bash
# Line coverage of the core (the canary-router crate: src/, the command in src/cli/ included)
# with cargo-llvm-cov: the unit tests, plus tests/test_cli.py run against an instrumented
# `canary-router` binary when the test venv exists (scripts/setup.sh --test; no Envoy needed).
# Not part of scripts/test.sh. Installs cargo-llvm-cov and llvm-tools-preview once (quick when
# present). Extra arguments go to `cargo llvm-cov report` (e.g. --html, --show-missing-lines).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
# shellcheck source=/dev/null
source "$HOME/.cargo/env" 2>/dev/null || true

if ! rustup component list --installed | grep -q '^llvm-tools'; then
  log "rustup component add llvm-tools-preview"
  rustup component add llvm-tools-preview
fi
if ! cargo llvm-cov --version >/dev/null 2>&1; then
  log "cargo install cargo-llvm-cov"
  cargo install cargo-llvm-cov --locked
fi

# Instrumented builds go to their own directory, so target/ stays as it was.
export CARGO_TARGET_DIR="$ROOT/target/llvm-cov-target"
# shellcheck source=/dev/null
source <(cargo llvm-cov show-env --sh 2>/dev/null)
cargo llvm-cov clean --profraw-only

log "core unit tests under coverage"
cargo test -q -p canary-router --lib --bins
if [[ -x "$VENV/bin/python" ]]; then
  log "tests/test_cli.py against the instrumented command"
  cargo build -q -p canary-router --bin canary-router
  # --noconftest: the CLI tests need neither Envoy nor the built filter.
  CANARY_ROUTER_BIN="$CARGO_TARGET_DIR/debug/canary-router" \
    "$VENV/bin/python" -m pytest "$ROOT/tests/test_cli.py" -q -p no:cacheprovider --noconftest
else
  log "no $VENV (scripts/setup.sh --test): the command is measured by its unit tests alone"
fi

# The tests themselves are not what is measured.
IGNORE='(src/tests/|benches/|filters/|/\.cargo/|/rustc/)'
log "line coverage of the core (src/, src/tests/ excluded)"
cargo llvm-cov report -p canary-router --ignore-filename-regex "$IGNORE" "$@"
log "the command alone (src/cli/, src/main.rs)"
cargo llvm-cov report -p canary-router --ignore-filename-regex "$IGNORE" --summary-only \
  | awk 'NR <= 2 || /cli\/|main\.rs/'
