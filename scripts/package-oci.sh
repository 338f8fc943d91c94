#!/usr/bin/env bash
# Packages the filter as OCI images for Istio's `oci://` WasmPlugin URLs, without Docker, oras or
# crane: only bash and Python's standard library (scripts/oci.py).
#
#   scripts/package-oci.sh [WASM] [OUT_DIR]     (defaults: dist/canary-router.wasm, dist/oci)
#
# Writes two OCI image layouts (directory + tarball), reproducibly (same module → same digests):
#   OUT_DIR/compat/, OUT_DIR/canary-router-compat.tar   one tar+gzip layer holding plugin.wasm
#   OUT_DIR/wasm/,   OUT_DIR/canary-router-wasm.tar     Wasm artifact: runtime config + raw module
# and prints each manifest digest (the value of WasmPlugin.spec.sha256 for that image) and the
# oras / crane / skopeo commands that push it unchanged.
#
# Environment: OCI_TAG (default: the crate version from Cargo.toml, else `latest`), OCI_IMAGE
# (registry/repository in the printed commands, default: the release's image, Cargo.toml
# [workspace.metadata.canary-router] image).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

case "${1:-}" in
  -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
esac
if [ $# -gt 2 ]; then
  echo "usage: scripts/package-oci.sh [WASM] [OUT_DIR]" >&2
  exit 2
fi
wasm="${1:-$WASM}"
out="${2:-$ROOT/dist/oci}"

if [ ! -f "$wasm" ]; then
  echo "error: $wasm not found: run scripts/build.sh first" >&2
  exit 1
fi

python="$VENV/bin/python"
if [ ! -x "$python" ]; then
  python="$(command -v python3)" || { echo "error: python3 is required" >&2; exit 1; }
fi

log "packaging $wasm as OCI image layouts in $out"
exec "$python" "$ROOT/scripts/oci.py" --wasm "$wasm" --out "$out" \
  --cargo-toml "$ROOT/Cargo.toml" --tag "${OCI_TAG:-}" \
  --image "${OCI_IMAGE:-$RELEASE_IMAGE}"
