#!/usr/bin/env bash
# The GitHub Action of this repository (action.yml), runnable locally: checks Canary Router
# configurations with `canary-router validate`.
#
#   scripts/action-validate.sh FILE_OR_GLOB...
#   scripts/action-validate.sh --install     only get the binary (and, under GitHub Actions, put
#                                            it on the PATH of the job's later steps)
#
# Each argument is a path or a glob (`**` spans directories) from the current directory; a glob
# that matches nothing is an error. Without arguments, $CANARY_ROUTER_FILES holds them, separated
# by whitespace or newlines (the action's `files` input). Exit status: canary-router's (0 valid,
# 1 an invalid configuration, 2 an unreadable file), or 1 if the binary cannot be had.
# Under GitHub Actions (GITHUB_ACTIONS=true) each error also becomes an `::error file=...::`
# annotation holding its JSON path, and the binary's directory is added to GITHUB_PATH.
#
# The binary, first that applies:
#   CANARY_ROUTER_BIN=PATH       this one (tests: target/debug/canary-router)
#   CANARY_ROUTER_BUILD=true     built from this checkout (`cargo install --locked --path`)
#   otherwise                    the release's static Linux binary for this machine
#                                (canary-router-{x86_64,aarch64}-unknown-linux-musl), version
#                                CANARY_ROUTER_VERSION (default: this checkout's, Cargo.toml),
#                                from CANARY_ROUTER_DOWNLOAD_URL (default: REPOSITORY/releases/
#                                download/vVERSION, REPOSITORY from Cargo.toml; any curl URL, e.g.
#                                file:///dir), refused unless its sha256 is the one in the
#                                release's .sha256 file next to it.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

fail() { echo "error: $*" >&2; exit 1; }

# GitHub's workflow-command escaping: of the message, and of a property (file=...).
escape_data() { local s="${1//'%'/%25}"; s="${s//$'\r'/%0D}"; printf '%s' "${s//$'\n'/%0A}"; }
escape_property() { local s; s="$(escape_data "$1")"; s="${s//:/%3A}"; printf '%s' "${s//,/%2C}"; }

# The release binary for this machine, downloaded into $1 and checked against its .sha256 file.
download() {
  local dir="$1" arch version base asset expected actual
  [[ "$(uname -s)" == Linux ]] ||
    fail "release binaries exist for Linux only (this is $(uname -s)): set CANARY_ROUTER_BUILD=true (input build-from-source) to build one with cargo"
  case "$(uname -m)" in
    x86_64 | amd64) arch=x86_64 ;;
    aarch64 | arm64) arch=aarch64 ;;
    *) fail "no release binary for $(uname -m) (x86_64 and aarch64 only): set CANARY_ROUTER_BUILD=true to build one with cargo" ;;
  esac
  version="${CANARY_ROUTER_VERSION:-$RELEASE_VERSION}"
  version="${version#v}"
  base="${CANARY_ROUTER_DOWNLOAD_URL:-$RELEASE_REPOSITORY/releases/download/v$version}"
  asset="canary-router-$arch-unknown-linux-musl"
  log "downloading $base/$asset (canary-router $version) and its .sha256"
  curl -fsSL --retry 3 -o "$dir/$asset.sha256" "$base/$asset.sha256" ||
    fail "cannot download $base/$asset.sha256 (is there a release v$version with static binaries?)"
  curl -fsSL --retry 3 -o "$dir/canary-router" "$base/$asset" ||
    fail "cannot download $base/$asset"
  read -r expected _ < "$dir/$asset.sha256" || true
  [[ "${expected:-}" =~ ^[0-9a-f]{64}$ ]] ||
    fail "$base/$asset.sha256 holds no sha256 (expected '<64 hex digits>  $asset')"
  actual="$(sha256sum "$dir/canary-router" | cut -d' ' -f1)"
  if [[ "$actual" != "$expected" ]]; then
    rm -f "$dir/canary-router"
    fail "sha256 mismatch for $base/$asset: got $actual, the release's $asset.sha256 says $expected; refusing to run it"
  fi
  chmod +x "$dir/canary-router"
}

# Only the binary: --install, or the action's input install-only.
install_only="${CANARY_ROUTER_INSTALL_ONLY:-false}"
if [[ "${1:-}" == --install ]]; then
  install_only=true
  shift
fi
[[ $install_only == true || $install_only == false ]] ||
  { echo "error: install-only is '$install_only': true or false" >&2; exit 2; }
# The files: arguments, or the action's input.
patterns=("$@")
if [[ ${#patterns[@]} -eq 0 ]]; then
  read -r -d '' -a patterns <<<"${CANARY_ROUTER_FILES:-}" || true
fi
if [[ $install_only == true ]]; then
  [[ ${#patterns[@]} -eq 0 ]] || { echo "error: --install (install-only) takes no files" >&2; exit 2; }
else
  [[ ${#patterns[@]} -gt 0 ]] || { echo "usage: scripts/action-validate.sh FILE_OR_GLOB... | --install (or CANARY_ROUTER_FILES)" >&2; exit 2; }
fi
# The files a glob matches (none: an error), expanded once, never split on spaces.
expand() {
  local IFS='' matches
  shopt -s globstar nullglob
  # shellcheck disable=SC2206  # the unquoted expansion is the glob
  matches=($1)
  shopt -u globstar nullglob
  [[ ${#matches[@]} -gt 0 ]] || { echo "error: '$1' matches no file" >&2; exit 2; }
  files+=("${matches[@]}")
}
files=()
for pattern in "${patterns[@]}"; do
  if [[ "$pattern" == *[\*\?\[]* ]]; then
    expand "$pattern"
  else
    files+=("$pattern")
  fi
done

if [[ -n "${CANARY_ROUTER_BIN:-}" ]]; then
  bin="$CANARY_ROUTER_BIN"
  [[ -x "$bin" ]] || fail "CANARY_ROUTER_BIN=$bin is not an executable file"
else
  dir="$(mktemp -d "${RUNNER_TEMP:-${TMPDIR:-/tmp}}/canary-router.XXXXXX")"
  if [[ "${CANARY_ROUTER_BUILD:-false}" == true ]]; then
    log "building canary-router from $ROOT (cargo install --locked --path)"
    cargo install -q --locked --path "$ROOT" --bin canary-router --root "$dir" ||
      fail "cargo install --path $ROOT failed"
    mv "$dir/bin/canary-router" "$dir/canary-router"
  else
    download "$dir"
  fi
  bin="$dir/canary-router"
fi
"$bin" --version
if [[ "${GITHUB_ACTIONS:-}" == true && -n "${GITHUB_PATH:-}" ]]; then
  dirname "$(realpath "$bin")" >> "$GITHUB_PATH"
fi
if [[ $install_only == true ]]; then
  log "canary-router is $bin"
  exit 0
fi

log "canary-router validate ${files[*]}"
errors="$(mktemp)"
trap 'rm -f "$errors"' EXIT
status=0
"$bin" validate "${files[@]}" 2>"$errors" || status=$?
cat "$errors" >&2

if [[ "${GITHUB_ACTIONS:-}" == true && $status -ne 0 ]]; then
  # `FILE: WHERE: PATH: message` lines (notes aside) become annotations on FILE.
  while IFS= read -r line; do
    [[ "$line" == "note: "* ]] && continue
    annotated=0
    for f in "${files[@]}"; do
      if [[ "$line" == "$f: "* ]]; then
        printf '::error file=%s,title=canary-router validate::%s\n' \
          "$(escape_property "$f")" "$(escape_data "${line#"$f: "}")"
        annotated=1
        break
      fi
    done
    if [[ $annotated == 0 && "$line" == "error: "* ]]; then
      printf '::error title=canary-router validate::%s\n' "$(escape_data "${line#error: }")"
    fi
  done < "$errors"
fi
exit "$status"
