#!/usr/bin/env bash
# Soak: MINUTES (default 5) of wrk at saturation against a real Envoy with the filter (cookie
# minting, stats on), then checks zero errors, no Wasm VM failure, flat memory and consistent
# counters (scripts/soak.py). Not part of scripts/test.sh. Run it on an otherwise idle machine.
#   scripts/soak.sh [MINUTES]
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
"$ROOT/scripts/setup.sh"
command -v wrk >/dev/null || { log "apt-get install wrk"; apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
"$ROOT/scripts/build.sh"
exec "$VENV/bin/python" "$ROOT/scripts/soak.py" "${1:-5}"
