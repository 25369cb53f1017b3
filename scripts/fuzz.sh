#!/usr/bin/env bash
# Fuzzes every parser of outside data for a bounded time: scripts/fuzz.sh [SECONDS_PER_TARGET]
#
# Builds the cargo-fuzz targets in fuzz/ with the nightly toolchain (installing cargo-fuzz from
# crates.io when it is missing), runs each target for SECONDS_PER_TARGET seconds (default 20)
# from its committed seed corpus, prints the executions each one ran, and exits non-zero when a
# target finds a crash (a panic, a broken invariant, a leak). A crashing input is kept under
# fuzz/artifacts/<target>/; add it to fuzz/corpus/<target>/ with the fix.
#
# Environment: FUZZ_TARGETS (space-separated subset), FUZZ_JOBS (parallel workers per target,
# default 1), FUZZ_SANITIZER (none by default: the crate forbids unsafe code, and without ASan
# the build is about twice as fast; `address` for a careful run), FUZZ_TOOLCHAIN (default
# nightly).
#
# CI: `bash scripts/fuzz.sh 20`.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds="${1:-20}"
toolchain="${FUZZ_TOOLCHAIN:-nightly}"
sanitizer="${FUZZ_SANITIZER:-none}"
jobs="${FUZZ_JOBS:-1}"

if ! rustup run "$toolchain" rustc --version >/dev/null 2>&1; then
  # cargo fuzz passes unstable compiler flags; a stable toolchain takes them when told it may.
  # Checked on a machine that has nightly by naming one it lacks: FUZZ_TOOLCHAIN=no-such builds
  # and runs every target on stable.
  echo "fuzz.sh: no $toolchain toolchain; using stable with RUSTC_BOOTSTRAP=1" >&2
  toolchain=stable
  export RUSTC_BOOTSTRAP=1
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

started=$(date +%s)
echo "== building the fuzz targets ($toolchain, sanitizer: $sanitizer)"
cargo "+$toolchain" fuzz build --sanitizer "$sanitizer"
built=$(date +%s)

targets="${FUZZ_TARGETS:-$(cargo "+$toolchain" fuzz list)}"
# Each run grows a scratch copy of the seeds, so the committed corpus stays small.
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

failed=()
for target in $targets; do
  mkdir -p "$scratch/$target" "artifacts/$target"
  log="$scratch/$target.log"
  parallel=()
  if [ "$jobs" -gt 1 ]; then
    parallel=(-jobs="$jobs" -workers="$jobs")
  fi
  status=0
  cargo "+$toolchain" fuzz run --sanitizer "$sanitizer" "$target" \
    "$scratch/$target" "corpus/$target" -- \
    -max_total_time="$seconds" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="artifacts/$target/" -print_final_stats=1 "${parallel[@]}" \
    >"$log" 2>&1 || status=$?
  # With -jobs, libFuzzer writes each worker's output to fuzz-<n>.log.
  cat fuzz-*.log >>"$log" 2>/dev/null || true
  rm -f fuzz-*.log
  execs=$(grep -h 'stat::number_of_executed_units' "$log" | awk '{s += $2} END {print s + 0}')
  if [ "$status" -ne 0 ]; then
    failed+=("$target")
    echo "FAIL $target: $execs executions; crash input in fuzz/artifacts/$target/"
    grep -E "panicked at|assertion|ERROR: libFuzzer|SUMMARY" "$log" | head -20 || true
    echo "---- last lines of the log"
    tail -40 "$log"
  else
    echo "ok   $target: $execs executions in ${seconds}s"
  fi
done

finished=$(date +%s)
echo "== build $((built - started))s, fuzzing $((finished - built))s, total $((finished - started))s"
if [ "${#failed[@]}" -ne 0 ]; then
  echo "== crashes in: ${failed[*]}" >&2
  exit 1
fi
echo "== no crash"
