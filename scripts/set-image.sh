#!/usr/bin/env bash
# Points every manifest and page at the image the release pipeline publishes.
#
#   scripts/set-image.sh [IMAGE]     e.g. scripts/set-image.sh ghcr.io/acme/canary-router
#
# With IMAGE, first sets it in Cargo.toml ([workspace.metadata.canary-router] image, the one place
# for the path: .github/workflows/release.yml pushes there). Then rewrites, in envoy-config/,
# docs/ and README.md, every image reference ending in /canary-router (any registry; a tag
# becomes the version in Cargo.toml, a digest is kept) and the tag of every `dist/oci/compat:` /
# `dist/oci/wasm:` layout reference to that version. Run it after bumping the version too;
# tests/test_release.py fails while a reference is stale. Prints the files it changed.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

case "${1:-}" in
  -h | --help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
esac
[[ $# -le 1 ]] || { echo "usage: scripts/set-image.sh [IMAGE]" >&2; exit 2; }

if [[ $# -eq 1 ]]; then
  image="$1"
  # A registry host (with a dot, or localhost), then lowercase path components (OCI distribution).
  [[ "$image" =~ ^([a-z0-9-]+(\.[a-z0-9-]+)+|localhost)(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)+$ ]] ||
    { echo "error: image '$image' is not REGISTRY/PATH in lowercase (e.g. ghcr.io/acme/canary-router)" >&2; exit 2; }
  [[ "$image" == */canary-router ]] ||
    { echo "error: image '$image' must end in /canary-router (the references are found by that name)" >&2; exit 2; }
  sed -i "/^\[workspace\.metadata\.canary-router\]/,/^\[/ s|^image = \".*\"|image = \"$image\"|" Cargo.toml
  RELEASE_IMAGE="$(cargo_toml workspace.metadata.canary-router image)"
  [[ "$RELEASE_IMAGE" == "$image" ]] || { echo "error: could not set the image in Cargo.toml" >&2; exit 1; }
fi

python="$VENV/bin/python"
[[ -x "$python" ]] || python="$(command -v python3)" || { echo "error: python3 is required" >&2; exit 1; }
IMAGE="$RELEASE_IMAGE" VERSION="$RELEASE_VERSION" "$python" - envoy-config docs README.md <<'EOF'
import os, re, sys
from pathlib import Path

image, version = os.environ["IMAGE"], os.environ["VERSION"]
# REGISTRY[:PORT]/…/canary-router, then an optional :TAG or @DIGEST (GitHub's own URLs excepted).
ref = re.compile(r"(?:(?<=//)|(?<![\w./-]))(?P<path>(?!github\.com/)(?:[a-z0-9-]+\.)+[a-z0-9-]+(?::\d+)?"
                 r"(?:/[\w.-]+)*/canary-router)(?![\w-]|\.\w|/)(?::(?P<tag>\w[\w.-]*)|(?P<digest>@))?")
layout = re.compile(r"(dist/oci/(?:compat|wasm)):\w[\w.-]*")

def rewrite(m):
    if m["tag"] is not None:
        return f"{image}:{version}"
    return image + ("@" if m["digest"] else "")

for top in map(Path, sys.argv[1:]):
    for path in sorted([top] if top.is_file() else top.rglob("*")):
        if not path.is_file():
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        new = layout.sub(rf"\1:{version}", ref.sub(rewrite, text))
        if new != text:
            path.write_text(new)
            print(path)
EOF
