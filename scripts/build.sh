#!/usr/bin/env bash
# Builds the proxy-wasm filter in release and copies it to dist/canary-router.wasm.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

cd "$ROOT"
cargo build -q --release --target wasm32-wasip1 -p canary-router-filter
mkdir -p dist
cp target/wasm32-wasip1/release/canary_router_filter.wasm "$WASM"
log "built $WASM ($(stat -c %s "$WASM") bytes)"
