#!/usr/bin/env bash
# Fuzzes the core with cargo-fuzz (libFuzzer, nightly): every target in tests/fuzz from its seeds
# (tests/fuzz/seeds/<target>) and past crashes (tests/fuzz/regressions/<target>), then replays
# every regression input once so that old crashes stay fixed. Prints executions per target and a
# summary; exits non-zero on any crash.
#   scripts/fuzz.sh [SECONDS]   explore: SECONDS per target (default 60); new inputs are kept in
#                               tests/fuzz/corpus/<target> (untracked) for the next run
#   scripts/fuzz.sh --runs N    regression run (scripts/test.sh): N executions per target with a
#                               fixed seed from the tracked seeds and regressions only, so the same
#                               commit always runs the same inputs and CI fails only on a change
# A crash leaves its input in tests/fuzz/artifacts/<target>/; reproduce it with
#   cargo +nightly fuzz run --fuzz-dir tests/fuzz -s none <target> <file>
# then fix it, and add the file to tests/fuzz/regressions/<target>/ with a unit test.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

RUNS=""
SECS=60
case "${1:-}" in
  --runs) RUNS="${2:?--runs needs a number}" ;;
  "") ;;
  *) SECS="$1" ;;
esac
if [ -n "$RUNS" ]; then
  BUDGET=(-runs="$RUNS" -seed=1)
  WHAT="$RUNS runs"
else
  BUDGET=(-max_total_time="$SECS")
  WHAT="${SECS}s"
fi
FUZZ_DIR=tests/fuzz
TARGETS=(config_bytes config_json cookies_query regex decide metadata guard_window)
# The core has no unsafe code: no sanitizer (several times faster; panics and failed asserts
# are what the targets look for). Debug assertions (overflow checks) stay on.
FUZZ=(cargo +nightly fuzz)
OPTS=(--fuzz-dir "$FUZZ_DIR" --sanitizer none)

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  log "installing the nightly toolchain (libFuzzer needs it)"
  rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  log "installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

log "building the fuzz targets (cargo +nightly fuzz build)"
"${FUZZ[@]}" build "${OPTS[@]}"

LOGS="$FUZZ_DIR/target/logs"
mkdir -p "$LOGS"
failed=0
rows=()
for t in "${TARGETS[@]}"; do
  log "fuzzing $t ($WHAT)"
  if [ -n "$RUNS" ]; then
    # A fresh corpus directory: what earlier runs found locally must not change this run.
    corpus=("$FUZZ_DIR/target/smoke-corpus/$t")
    rm -rf "${corpus[0]}"
  else
    corpus=("$FUZZ_DIR/corpus/$t")
  fi
  mkdir -p "${corpus[0]}"
  for d in "$FUZZ_DIR/seeds/$t" "$FUZZ_DIR/regressions/$t"; do
    if [ -d "$d" ]; then corpus+=("$d"); fi
  done
  status=ok
  # New inputs go to the first (untracked) corpus directory only.
  if ! "${FUZZ[@]}" run "${OPTS[@]}" "$t" "${corpus[@]}" -- \
      "${BUDGET[@]}" -timeout=10 -print_final_stats=1 >"$LOGS/$t.log" 2>&1; then
    status=CRASH
    failed=1
    tail -n 40 "$LOGS/$t.log" >&2
  fi
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$LOGS/$t.log" | tail -n 1)
  if [ -z "$execs" ]; then
    execs=$(grep -o '^#[0-9]*' "$LOGS/$t.log" | tail -n 1 | tr -d '#')
  fi
  persec=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$LOGS/$t.log" | tail -n 1)
  grep -E '^#[0-9]+ *DONE' "$LOGS/$t.log" >&2 || true
  echo "$t: ${execs:-?} executions ($WHAT, ${persec:-?}/s): $status" >&2
  rows+=("$t ${execs:-?} ${persec:-?} $(find "${corpus[0]}" -type f | wc -l) $status")
done

log "replaying tests/fuzz/regressions (every past crash, once)"
for t in "${TARGETS[@]}"; do
  files=()
  if [ -d "$FUZZ_DIR/regressions/$t" ]; then
    while IFS= read -r f; do files+=("$f"); done < <(find "$FUZZ_DIR/regressions/$t" -type f | sort)
  fi
  if [ "${#files[@]}" -eq 0 ]; then continue; fi
  if "${FUZZ[@]}" run "${OPTS[@]}" "$t" "${files[@]}" -- -runs=0 >"$LOGS/$t.replay.log" 2>&1; then
    echo "$t: ${#files[@]} regression inputs pass" >&2
  else
    echo "$t: a regression input fails again" >&2
    tail -n 40 "$LOGS/$t.replay.log" >&2
    failed=1
  fi
done

log "summary ($WHAT per target)"
{
  echo "target executions exec/s corpus result"
  printf '%s\n' "${rows[@]}"
} | column -t >&2
exit "$failed"
