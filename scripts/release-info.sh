#!/usr/bin/env bash
# What a release publishes, from Cargo.toml, as KEY=VALUE lines (for $GITHUB_OUTPUT):
# version, tag (v<version>), image (the OCI image path), repository (its GitHub URL).
#
#   scripts/release-info.sh [TAG]
#
# Fails, naming the field, when TAG is given and is not v<workspace.package.version>, and, when
# GITHUB_REPOSITORY is set (GitHub Actions), when workspace.package.repository is not that
# repository or the image is not in its owner's ghcr.io namespace (the only one the workflow's
# GITHUB_TOKEN can push to; scripts/set-image.sh changes it).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

fail() { echo "error: $*" >&2; exit 1; }

[[ $# -le 1 ]] || { echo "usage: scripts/release-info.sh [TAG]" >&2; exit 2; }
[[ "$RELEASE_VERSION" =~ ^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$ ]] ||
  fail "Cargo.toml workspace.package.version '$RELEASE_VERSION' is not a version like 1.2.3"
[[ -n "$RELEASE_IMAGE" ]] || fail "Cargo.toml [workspace.metadata.canary-router] image is missing"
[[ -n "$RELEASE_REPOSITORY" ]] || fail "Cargo.toml workspace.package.repository is missing"
if [[ $# -eq 1 && "$1" != "v$RELEASE_VERSION" ]]; then
  fail "tag '$1' does not match Cargo.toml workspace.package.version $RELEASE_VERSION: tag v$RELEASE_VERSION, or bump the version (then scripts/set-image.sh) and tag that commit"
fi
if [[ -n "${GITHUB_REPOSITORY:-}" ]]; then
  want="https://github.com/$GITHUB_REPOSITORY"
  [[ "${RELEASE_REPOSITORY,,}" == "${want,,}" ]] ||
    fail "Cargo.toml workspace.package.repository is $RELEASE_REPOSITORY, but this is $want (action.yml downloads the binaries from there)"
  owner="${GITHUB_REPOSITORY%%/*}"
  [[ "$RELEASE_IMAGE" == "ghcr.io/${owner,,}/"* ]] ||
    fail "Cargo.toml [workspace.metadata.canary-router] image is $RELEASE_IMAGE, not under ghcr.io/${owner,,}/ where this repository's token can push: scripts/set-image.sh ghcr.io/${owner,,}/canary-router"
fi
echo "version=$RELEASE_VERSION"
echo "tag=v$RELEASE_VERSION"
echo "image=$RELEASE_IMAGE"
echo "repository=$RELEASE_REPOSITORY"
