#!/usr/bin/env bash
# Rolls back a failing canary in the GitOps repository: reverts the commit that introduced the
# Canary Router configuration a tripped guard named, if that configuration is still at HEAD.
#
#   revert.sh PAYLOAD_JSON_FILE [MANIFEST...]
#
# Run in a clean Git work tree of the GitOps repository (the one holding the WasmPlugin /
# TrafficExtension manifests). PAYLOAD_JSON_FILE is the `repository_dispatch` the guard sent
# (event_type canary-router-tripped): the whole body {event_type, client_payload} or the
# client_payload alone, with `config_fingerprint` (16 hex digits: the document fingerprint of
# the configuration in force, as `canary-router fingerprint FILE` prints it) and `policy`,
# `variant`, `baseline`, `cause`, `figures`, `node`, `time` for the commit message.
#
# MANIFEST...: the files to search (paths relative to the current directory). Default: the
# space-separated paths or globs in $CANARY_ROUTER_MANIFESTS (`**` allowed), else every
# *.yaml, *.yml and *.json file tracked by Git under the current directory.
#
#   - No configuration at HEAD has the fingerprint (already reverted, or changed since): prints
#     so and exits 0 without a commit. A second proxy's dispatch, or a late one, is a no-op.
#   - Otherwise, for each file holding it, the commit that introduced that configuration into
#     the file (the newest commit whose parent did not have it; usually the last commit that
#     changed the file) is reverted, in one new commit naming policy, variant, cause, node and
#     fingerprint. The reverted files must pass `canary-router validate` (and no longer hold the
#     configuration), else nothing is committed and the exit status is 1; so is a revert that
#     conflicts. It never pushes: the caller does (canary-router-rollback.yaml).
#
# $CANARY_ROUTER: the canary-router command (default: canary-router on PATH). Needs git, bash
# 4.4+, and python3 (on every GitHub runner) to read the payload. Exit status: 0 reverted or nothing to do,
# 1 refused or failed (nothing committed), 2 usage.
set -euo pipefail

CANARY_ROUTER="${CANARY_ROUTER:-canary-router}"

say() { printf 'revert.sh: %s\n' "$*"; }
fail() {
  printf 'revert.sh: %s\n' "$*" >&2
  exit 1
}

if [[ $# -lt 1 || "$1" == "-h" || "$1" == "--help" ]]; then
  sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//' >&2
  exit 2
fi
payload_file="$1"
shift
[[ -r "$payload_file" ]] || fail "cannot read the payload $payload_file"

command -v git >/dev/null || fail "git not found"
command -v python3 >/dev/null || fail "python3 not found (it reads the payload)"
command -v "$CANARY_ROUTER" >/dev/null || fail "canary-router not found: install it or set CANARY_ROUTER"
git rev-parse --verify -q HEAD >/dev/null || fail "not in a Git work tree with a commit"
# The revert is undone with `git reset --hard` on failure: only safe on a clean tree.
if ! git diff --quiet HEAD --; then
  fail "the work tree has uncommitted changes; commit or stash them first"
fi

# --- the payload --------------------------------------------------------------------------
# One line per field, in this order; control characters become spaces (the values go into a
# commit message, never into a command), each at most 200 characters.
fields=(config_fingerprint policy variant baseline cause node time figures)
read_payload() {
  python3 - "$payload_file" "${fields[@]}" <<'PY'
import json, re, sys

with open(sys.argv[1], encoding="utf-8") as f:
    doc = json.load(f)
if isinstance(doc, dict) and isinstance(doc.get("client_payload"), dict):
    doc = doc["client_payload"]
if not isinstance(doc, dict):
    sys.exit("the payload is not a JSON object")
for name in sys.argv[2:]:
    v = doc.get(name)
    if v is None:
        v = ""
    elif not isinstance(v, str):
        v = json.dumps(v, sort_keys=True, separators=(",", ":"))
    print(re.sub(r"[\x00-\x1f\x7f\u2028\u2029]+", " ", v).strip()[:200])
PY
}
mapfile -t values < <(read_payload || echo "!error")
if [[ ${#values[@]} -ne ${#fields[@]} ]]; then
  fail "cannot read the payload $payload_file (JSON with client_payload.config_fingerprint)"
fi
fp="${values[0],,}"
policy="${values[1]:-?}"
variant="${values[2]:-?}"
baseline="${values[3]:-?}"
cause="${values[4]:-?}"
node="${values[5]:-?}"
time="${values[6]:-?}"
figures="${values[7]}"
[[ "$fp" =~ ^[0-9a-f]{16}$ ]] || fail "the payload's config_fingerprint is \"$fp\", not 16 hex digits"

# --- the manifests ------------------------------------------------------------------------
manifests=()
if [[ $# -gt 0 ]]; then
  manifests=("$@")
elif [[ -n "${CANARY_ROUTER_MANIFESTS:-}" ]]; then
  shopt -s nullglob globstar
  # Word splitting and globbing wanted: the variable is a list of paths and globs.
  # shellcheck disable=SC2206
  manifests=($CANARY_ROUTER_MANIFESTS)
  shopt -u nullglob globstar
else
  mapfile -d '' -t manifests < <(git ls-files -z -- '*.yaml' '*.yml' '*.json')
fi
[[ ${#manifests[@]} -gt 0 ]] || fail "no manifest to search"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# The fingerprints of FILE's configurations, one "HEX  FILE: PLACE" line each. Files that
# are not configurations print nothing; an invalid configuration has no fingerprint.
fingerprints() {
  "$CANARY_ROUTER" fingerprint -- "$1" 2>/dev/null || true
}

# Whether FILE (its path from the top of the work tree) at REVISION holds the configuration.
holds_at() {
  local rev="$1" path="$2" copy
  mkdir -p "$tmp/at"
  # The same file name: the command tells JSON from YAML by it.
  copy="$tmp/at/$(basename "$path")"
  git show "$rev:$path" >"$copy" 2>/dev/null || return 1
  fingerprints "$copy" | grep -q "^$fp "
}

matched=()     # files holding the configuration at HEAD
places=()      # "FILE: PLACE" of each configuration found
for f in "${manifests[@]}"; do
  [[ -f "$f" ]] || continue
  found=0
  while read -r hex place; do
    if [[ "$hex" == "$fp" ]]; then
      places+=("$place")
      found=1
    fi
  done < <(fingerprints "$f")
  if [[ $found == 1 ]]; then
    matched+=("$f")
  fi
done

if [[ ${#matched[@]} -eq 0 ]]; then
  say "no configuration at HEAD has fingerprint $fp: already reverted or changed since; nothing to do"
  exit 0
fi
for p in "${places[@]}"; do
  say "configuration $fp at HEAD: $p"
done

# --- the commits that introduced it -------------------------------------------------------
commits=()
for f in "${matched[@]}"; do
  path="$(git ls-files --full-name --error-unmatch -- "$f" 2>/dev/null)" ||
    fail "$f holds the configuration but is not tracked by Git"
  git diff --quiet HEAD -- "$f" || fail "$f has uncommitted changes"
  introduced=""
  while read -r c; do
    parent="$(git rev-parse -q --verify "$c^1" 2>/dev/null)" || parent=""
    if [[ -z "$parent" ]] || ! holds_at "$parent" "$path"; then
      introduced="$c"
      break
    fi
  done < <(git log --format=%H -- "$f")
  [[ -n "$introduced" ]] || fail "no commit introduced the configuration into $f"
  say "$f: introduced by $(git log -1 --format='%h %s' "$introduced")"
  commits+=("$introduced")
done
# Distinct, newest first.
mapfile -t commits < <(git rev-list --no-walk=sorted "${commits[@]}")

undo() {
  git reset -q --hard HEAD
  fail "$*; nothing committed"
}

for c in "${commits[@]}"; do
  mainline=()
  if git rev-parse -q --verify "$c^2" >/dev/null; then
    mainline=(-m 1)
  fi
  if ! git revert --no-commit "${mainline[@]}" "$c" >"$tmp/revert.log" 2>&1; then
    cat "$tmp/revert.log" >&2
    undo "reverting $(git log -1 --format=%h "$c") conflicts with later changes: revert it by hand"
  fi
done

if git diff --cached --quiet; then
  undo "the revert changes nothing"
fi
for f in "${matched[@]}"; do
  if [[ ! -f "$f" ]]; then
    undo "the revert deletes $f (the commit added the file): refusing to remove the plugin"
  fi
  if ! "$CANARY_ROUTER" validate -- "$f" >"$tmp/validate.log" 2>&1; then
    cat "$tmp/validate.log" >&2
    undo "the reverted $f is not a valid configuration"
  fi
  if fingerprints "$f" | grep -q "^$fp "; then
    undo "the reverted $f still holds configuration $fp"
  fi
done

# --- the commit ---------------------------------------------------------------------------
{
  printf 'Revert canary %s/%s (%s on %s): configuration %s\n\n' \
    "$policy" "$variant" "$cause" "$node" "$fp"
  printf 'The Canary Router guard of policy %s tripped on %s at %s:\n' "$policy" "$node" "$time"
  printf 'variant %s against baseline %s, cause %s.\n' "$variant" "$baseline" "$cause"
  if [[ -n "$figures" ]]; then
    printf 'Figures: %s\n' "$figures"
  fi
  printf '\nThe configuration with fingerprint %s was still at HEAD in:\n' "$fp"
  printf '  %s\n' "${places[@]}"
  printf '\nThis reverts:\n'
  for c in "${commits[@]}"; do
    git log -1 --format='  %H %s' "$c"
  done
  printf '\nCanary-Router-Fingerprint: %s\n' "$fp"
} >"$tmp/message"
git commit -q -F "$tmp/message" || undo "git commit failed"
say "committed $(git log -1 --format='%h %s')"
say "not pushed: push it (git push) for the proxies to get the reverted configuration"
