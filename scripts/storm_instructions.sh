#!/usr/bin/env bash
# Instructions per waiting request in a renewal storm (benches/storm.rs, its phases), counted
# with callgrind: each kind of storm runs twice, A and B storms of 10,000 requests after the same
# set-up, and the difference over (B - A) * 10,000 is what one request of a storm costs, from its
# spawn to its answer. Unlike the storm's times, which depend on how three threads share two
# cores, the counts repeat run to run.
#
#   scripts/storm_instructions.sh              # kinds: fixed, bare, warm; A=2, B=6
#   KINDS="bare warm" A=1 B=3 scripts/storm_instructions.sh
#
# The kinds: `fixed` a static header (no waiting), `bare` every request waiting on a bare
# `tokio::sync::watch` (the floor of any single flight), `warm` the layer over a fresh source per
# storm whose client is built once (a `layer` storm also builds a client per storm, and loading
# the platform's root certificates would be counted with it). Needs valgrind; ~4 minutes. Set
# KEEP=dir to keep the callgrind files.
set -euo pipefail
cd "$(dirname "$0")/.."

kinds=${KINDS:-fixed bare warm}
a=${A:-2}
b=${B:-6}
requests=10000
out=${KEEP:-$(mktemp -d)}
mkdir -p "$out"

bin=$(CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-1} cargo bench --bench storm \
    --no-run --message-format=json 2>/dev/null |
    sed -n 's/.*"executable":"\([^"]*deps\/storm-[^"]*\)".*/\1/p' | tail -1)
[ -x "$bin" ] || { echo "could not build the storm bench" >&2; exit 1; }

# Total instructions of one run, all its threads. The bench starts a small child process too
# (a file of its own, %p); the largest total is the bench's.
instructions() {
    local prefix="$out/callgrind.$1.$2"
    STORM_RUNTIME=current_thread STORM_ONLY=$1 STORM_PHASES=$2 valgrind --tool=callgrind --trace-children=no \
        --callgrind-out-file="$prefix.%p" "$bin" --bench none >/dev/null 2>&1
    awk '/^(summary|totals):/ { print $2 }' "$prefix".* | sort -n | tail -1
}

printf '%-8s %16s %16s %14s\n' kind "I($a storms)" "I($b storms)" "per request"
declare -A per
for k in $kinds; do
    lo=$(instructions "$k" "$a")
    hi=$(instructions "$k" "$b")
    per[$k]=$(awk -v lo="$lo" -v hi="$hi" -v n=$(((b - a) * requests)) \
        'BEGIN { printf "%.1f", (hi - lo) / n }')
    printf '%-8s %16s %16s %14s\n' "$k" "$lo" "$hi" "${per[$k]}"
done
if [ -n "${per[bare]:-}" ] && [ -n "${per[warm]:-}" ]; then
    awk -v w="${per[warm]}" -v f="${per[bare]}" \
        'BEGIN { printf "\nthe layer over the bare watch: %+.1f instructions per waiting request\n", w - f }'
fi
[ -n "${KEEP:-}" ] || rm -rf "$out"
