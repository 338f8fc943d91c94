#!/usr/bin/env bash
# Builds both modules: the proxy-wasm filter (dist/canary-router.wasm) and the native Envoy
# dynamic module (dist/libcanary_router.so, for Envoy 1.40: see README "Native module")
# (scripts/build.sh --fault-injection: the test module of tests/test_fail_strategy.py instead;
# scripts/build.sh --cli TARGET: the `canary-router` command for a Rust target triple, to
# dist/canary-router-TARGET, e.g. x86_64-unknown-linux-musl, static: the release's binaries).
# The Wasm filter:
#   cargo build for wasm32-unknown-unknown (opt-level "z", LTO, panic = abort, stripped), then
#   Binaryen's wasm-opt (installed by scripts/setup.sh), which takes another ~20 % off the
#   module: control flow re-structured (--flatten --rereloop), then -Oz until nothing changes.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

cd "$ROOT"
# Reproducible bytes: the only machine-specific input rustc embeds in the module is the path of
# the crates' sources in the Cargo home (panic locations of dependencies, e.g.
# /home/runner/.cargo/registry/src/…/foldhash-0.1.5/src/fast.rs); the workspace's own files are
# passed as relative paths and the standard library's are already /rustc/<commit>/. Mapped to
# /cargo, the same commit, rustc (Cargo.toml's workspace.metadata.canary-router.rust) and wasm-opt give the same module in any
# checkout and home directory (.github/workflows/release.yml builds it twice to check).
export RUSTFLAGS="${RUSTFLAGS:+$RUSTFLAGS }--remap-path-prefix=${CARGO_HOME:-$HOME/.cargo}=/cargo"
release_rust="$(cargo_toml workspace.metadata.canary-router rust)"
if ! rustc --version | grep -q "^rustc $release_rust "; then
  log "note: $(rustc --version), the release builds with rustc $release_rust: the module's bytes may differ from the release's"
fi
if [[ "${1:-}" == "--cli" ]]; then
  target="${2:?usage: scripts/build.sh --cli TARGET (e.g. x86_64-unknown-linux-musl)}"
  # The release profile (size first, LTO, stripped); Rust's musl targets link statically.
  cargo build -q --locked --release --target "$target" --bin canary-router
  mkdir -p dist
  cp "target/$target/release/canary-router" "dist/canary-router-$target"
  log "built dist/canary-router-$target ($(stat -c %s "dist/canary-router-$target") bytes)"
  exit 0
fi
if [[ "${1:-}" == "--fault-injection" ]]; then
  # A test module, never shipped: the filter with the `fault-injection` feature (a request with
  # `x-canary-router-fault: trap` traps the VM), built in its own target directory so that it
  # never replaces the release build; not optimized by wasm-opt (tests only).
  cargo build -q --release --target wasm32-unknown-unknown -p canary-router-filter \
    --features fault-injection --target-dir target/fault-injection
  out=target/fault-injection/canary-router-fault.wasm
  cp target/fault-injection/wasm32-unknown-unknown/release/canary_router_filter.wasm "$out"
  log "built $out ($(stat -c %s "$out") bytes; test module with fault injection)"
  exit 0
fi
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

# The native module: a shared library for this machine, built with the `native` profile (opt-level
# 3); Envoy finds it as `libcanary_router.so` in ENVOY_DYNAMIC_MODULES_SEARCH_PATH.
cargo build -q --profile native -p canary-router-native
cp target/native/libcanary_router_native.so "$NATIVE"
log "built $NATIVE ($(stat -c %s "$NATIVE") bytes)"
