#!/usr/bin/env bash
# The benchmark of issue 6: instructions per request (callgrind), throughput and latency (wrk),
# size and memory, and the core's micro-benchmark, for native Envoy routing, Envoy's weighted
# clusters, an empty proxy-wasm filter, a Lua peer, Canary Router and its scaling configurations.
#   scripts/bench.sh            full run (~20 min): rewrites BENCHMARKS.md and BENCHMARKS.svg;
#                               raw results in target/bench/results.json
#   scripts/bench.sh --quick    smoke run (< 3 min): everything under target/bench-quick/
#   scripts/bench.sh --hostile  instructions per request of the hostile requests of
#                               tests/test_hostile.py, native and through the filter (~10 min):
#                               the "Hostile requests" section of BENCHMARKS.md
#   scripts/bench.sh --throughput [ROUNDS]  the wrk rounds alone (default 10), compared with the
#                               previous such run (target/bench-throughput/)
#   scripts/bench.sh --report   BENCHMARKS.md rewritten from the last full run's results, no run
#                               (after a change to the report, not to the code it measured)
# Set-up is included (idempotent): scripts/setup.sh, plus wrk and valgrind from Debian.
# Run it on an otherwise idle machine; a busy machine inflates the figures.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

mode=()
case "${1:-}" in
  "") ;;
  --quick) mode=(--quick) ;;
  --agreement) mode=(--agreement "${2:-canary-router}") ;;
  --throughput) mode=(--throughput "${2:-10}") ;;
  --hostile) mode=(--hostile) ; [[ "${2:-}" == "--quick" ]] && mode+=(--quick) ;;
  --report) exec "$VENV/bin/python" "$ROOT/scripts/bench/bench.py" --report ;;
  *) echo "usage: scripts/bench.sh [--quick | --hostile [--quick] | --agreement CONFIG | --throughput [ROUNDS] | --report]" >&2; exit 2 ;;
esac

"$ROOT/scripts/setup.sh"
missing=()
for tool in wrk valgrind curl taskset; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
if ((${#missing[@]})); then
  pkgs=("${missing[@]/taskset/util-linux}")
  log "apt-get install ${pkgs[*]}"
  apt-get update -qq && apt-get install -y -qq "${pkgs[@]}" >/dev/null
fi

"$ROOT/scripts/build.sh"
log "building the native module's floor (configuration native-floor: dist/libcanary_router_floor.so)"
cargo build -q --profile native -p canary-router-native --features floor --target-dir target/native-floor
cp target/native-floor/native/libcanary_router_native.so dist/libcanary_router_floor.so
log "building the empty filter and the floor filter (configurations empty-wasm and floor)"
cargo build -q --release --target wasm32-unknown-unknown -p empty-filter -p floor-filter
log "building the core micro-benchmark"
cargo bench -q --bench decide --no-run

# The harness starts every Envoy, valgrind, curl and wrk itself; each dies with it (and it stops
# them on exit, SIGINT or SIGTERM).
exec "$VENV/bin/python" "$ROOT/scripts/bench/bench.py" "${mode[@]}"
