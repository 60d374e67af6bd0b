#!/usr/bin/env bash
# CPU per request of one process under one wrk run (docs/benchmarks.md):
#   bash scripts/bench/cpu.sh PID [wrk args...]
# prints wrk's requests/s and the process's utime + stime (from /proc/PID/stat, in clock
# ticks of 10 ms) over the run divided by the requests, in microseconds.
set -euo pipefail
pid=$1
shift
ticks() { awk '{ print $14 + $15 }' "/proc/$pid/stat"; }
before=$(ticks)
out=$(wrk "$@")
after=$(ticks)
requests=$(awk '/requests in/ { print $1 }' <<<"$out")
rps=$(awk '/Requests\/sec/ { print $2 }' <<<"$out")
awk -v a="$before" -v b="$after" -v n="$requests" -v r="$rps" \
  'BEGIN { printf "requests/s %s, CPU per request %.1f us\n", r, (b - a) * 10000 / n }'
