#!/usr/bin/env bash
# Instructions per request through reqwest-middleware clients, counted by callgrind: the bare
# client, a fixed-header middleware and `OAuthMiddleware` with and without the retry copy,
# against a local hyper server (`loopback`) and with an in-memory last middleware (`memory`).
#
#   scripts/middleware_instructions.sh [requests] [tasks...]      # default: 20000 requests, 1 and 16 tasks
#
# Each count is callgrind's total for `measured` (the requests after the warm-up) minus the same
# binary's count for 0 requests, divided by the number of requests. Callgrind runs the program
# on one simulated CPU and the harness uses one thread, so a count does not depend on what else
# the machine is doing (glibc's malloc slow paths still move it by up to 1 % on the loopback:
# see benches/README.md). Needs valgrind; takes about 4 minutes at 20,000 requests.
set -euo pipefail
cd "$(dirname "$0")/.."

requests=${1:-20000}
shift || true
tasks=("${@:-1}")
[ $# -eq 0 ] && tasks=(1 16)

# BIN=path runs a harness built before (to compare two versions of the crate).
export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-1} CARGO_INCREMENTAL=0
bin=${BIN:-$(cargo bench --bench instructions_middleware --no-run --message-format=json 2>/dev/null |
  sed -n 's/.*"executable":"\([^"]*instructions_middleware[^"]*\)".*/\1/p' | tail -1)}
[ -x "$bin" ] || { echo "could not build the harness" >&2; exit 1; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# The instructions callgrind counted inside `measured` for one run.
count() {
  valgrind --tool=callgrind --toggle-collect='*instructions_middleware*measured*' \
    --callgrind-out-file="$out/cg" "$bin" "$@" 2>&1 >/dev/null |
    sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}

printf '%-10s %-6s %-27s %14s %14s %12s\n' where tasks client "I(0)" "I($requests)" "I/request"
for place in memory loopback; do
  for t in "${tasks[@]}"; do
    for client in bare static_header oauth_middleware oauth_middleware_no_retry; do
      zero=$(count "$client" "$place" "$t" 0)
      full=$(count "$client" "$place" "$t" "$requests")
      printf '%-10s %-6s %-27s %14s %14s %12.1f\n' "$place" "$t" "$client" "$zero" "$full" \
        "$(echo "($full - $zero) / $requests" | bc -l)"
    done
  done
done
