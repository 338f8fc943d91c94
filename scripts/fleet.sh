#!/usr/bin/env bash
# The GitOps rollback loop with N Envoys (default 2): tests/test_fleet.py with FLEET_SIZE=N.
# One proxy carries the traffic and trips; its `github` message reaches a stand-in for GitHub
# that runs envoy-config/gitops/revert.sh against a bare Git repository; a sync loop (standing
# in for Flux and Istio's ECDS push) applies the revert to every proxy. Prints the times from the
# first failure to the trip, to the revert commit and to the last proxy reconfigured, and the
# requests that reached the canary at each proxy (also in target/fleet-report.json).
#   scripts/fleet.sh [N]
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

n="${1:-2}"
[[ "$n" =~ ^[0-9]+$ && "$n" -ge 2 ]] || { echo "usage: scripts/fleet.sh [N ≥ 2]" >&2; exit 2; }
"$ROOT/scripts/setup.sh"
"$ROOT/scripts/build.sh"
cargo build -q --bin canary-router
export CANARY_ROUTER_BIN="$ROOT/target/debug/canary-router"
log "the rollback loop with $n Envoys"
FLEET_SIZE="$n" "$VENV/bin/python" -m pytest "$ROOT/tests/test_fleet.py" -q -s -p no:cacheprovider
