#!/usr/bin/env bash
# Instructions per request on the tower hot path (benches/hot_path_instructions.rs), counted with
# callgrind: each variant runs twice, with 0 and with N requests after the same warm-up, and the
# difference over N is what one request costs. The counts repeat exactly from run to run, however
# busy the machine is, so they decide where criterion's times are too noisy.
#
#   scripts/hot_path_instructions.sh [N]            # N = 100000 by default
#   VARIANTS="oauth_layer" scripts/hot_path_instructions.sh 20000
#
# Needs valgrind. Builds the harness with `--features metrics` (the `oauth_layer_metrics`
# variant); set KEEP=dir to keep the callgrind files for `callgrind_annotate`.
set -euo pipefail
cd "$(dirname "$0")/.."

n=${1:-100000}
variants=${VARIANTS:-static_header static_header_retry oauth_layer oauth_layer_no_retry oauth_layer_metrics}
out=${KEEP:-$(mktemp -d)}
mkdir -p "$out"

bin=$(CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-1} cargo bench --bench hot_path_instructions \
    --features metrics --no-run --message-format=json 2>/dev/null |
    sed -n 's/.*"executable":"\([^"]*hot_path_instructions[^"]*\)".*/\1/p' | tail -1)
[ -x "$bin" ] || { echo "could not build the harness" >&2; exit 1; }

# Total instructions of one run: `summary:` (or `totals:`) in callgrind's output file.
instructions() {
    local file="$out/callgrind.$1.$2"
    valgrind --tool=callgrind --callgrind-out-file="$file" "$bin" "$1" "$2" >/dev/null 2>&1
    awk '/^(summary|totals):/ { print $2; exit }' "$file"
}

printf '%-22s %14s %14s %12s\n' variant "I(0)" "I($n)" "per request"
declare -A per
for v in $variants; do
    base=$(instructions "$v" 0)
    full=$(instructions "$v" "$n")
    per[$v]=$(awk -v a="$base" -v b="$full" -v n="$n" 'BEGIN { printf "%.1f", (b - a) / n }')
    printf '%-22s %14s %14s %12s\n' "$v" "$base" "$full" "${per[$v]}"
done
if [ -n "${per[static_header]:-}" ]; then
    echo
    for v in $variants; do
        [ "$v" = static_header ] && continue
        awk -v v="$v" -v a="${per[$v]}" -v s="${per[static_header]}" \
            'BEGIN { printf "%-22s %+.1f instructions per request over static_header\n", v, a - s }'
    done
fi
[ -n "${KEEP:-}" ] || rm -rf "$out"
