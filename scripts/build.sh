#!/usr/bin/env bash
# Builds the proxy-wasm filter in release and writes dist/canary-router.wasm:
#   cargo build (opt-level "z", LTO, panic = abort, stripped), then Binaryen's wasm-opt
#   (installed by scripts/setup.sh), which takes another ~20 % off the module: control flow
#   re-structured (--flatten --rereloop), then -Oz until nothing changes.
#   --low-memory-unused lets it fold `p + c` (c < 1024) into a load/store offset, which, unlike
#   the add, does not wrap around 2^32: the two differ only for a `p` within 1 KiB of 2^32,
#   which no valid pointer is (rustc puts the 1 MiB stack first, so the low 1 KiB is the far
#   end of the stack; only an overflowed stack pointer could wrap there, and such an access now
#   traps instead of writing it). Saves ~800 bytes.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

cd "$ROOT"
cargo build -q --release --target wasm32-wasip1 -p canary-router-filter
mkdir -p dist
built=target/wasm32-wasip1/release/canary_router_filter.wasm
if command -v wasm-opt >/dev/null; then
  # The features rustc's wasm32-wasip1 target emits.
  wasm-opt --flatten --rereloop -Oz -Oz --converge --low-memory-unused --enable-bulk-memory \
    --enable-sign-ext --enable-mutable-globals --enable-nontrapping-float-to-int "$built" -o "$WASM"
else
  log "wasm-opt not found (scripts/setup.sh installs it): module left unoptimized"
  cp "$built" "$WASM"
fi
log "built $WASM ($(stat -c %s "$WASM") bytes)"
