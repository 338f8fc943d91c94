#!/usr/bin/env bash
# Builds the proxy-wasm filter in release and writes dist/canary-router.wasm:
#   cargo build for wasm32-unknown-unknown (opt-level "z", LTO, panic = abort, stripped), then
#   Binaryen's wasm-opt (installed by scripts/setup.sh), which takes another ~20 % off the
#   module: control flow re-structured (--flatten --rereloop), then -Oz until nothing changes.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

cd "$ROOT"
cargo build -q --release --target wasm32-unknown-unknown -p canary-router-filter
mkdir -p dist
built=target/wasm32-unknown-unknown/release/canary_router_filter.wasm
if command -v wasm-opt >/dev/null; then
  # The features rustc's wasm32 targets emit.
  wasm-opt --flatten --rereloop -Oz -Oz --converge --enable-bulk-memory --enable-sign-ext --enable-mutable-globals \
    --enable-nontrapping-float-to-int "$built" -o "$WASM"
else
  log "wasm-opt not found (scripts/setup.sh installs it): module left unoptimized"
  cp "$built" "$WASM"
fi
log "built $WASM ($(stat -c %s "$WASM") bytes)"
