#!/usr/bin/env bash
# Starts N copies of a command at once, waits for all, and prints the timings the
# task-server study's start.sh printed, plus how many failed.
#
#   ./start.sh N command [args...]
#   ./start.sh 100 ./dist/taskserver.js call reverse BenchmarkTestString123
#   ./start.sh 100 taskserver call reverse BenchmarkTestString123   (runs taskserver/main.ts)
#
# A bare tool name (scanner, transfer, taskserver, interarrival, ipcbench) runs the
# tool from source with its permissions (the fastest start), or the bundle in dist/
# when start.sh sits beside the bundles without the sources.
set -u
if [ $# -lt 2 ] || ! [[ "$1" =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: $0 N command [args...]   (N: a positive integer)" >&2
  exit 2
fi
n=$1
shift
here=$(cd "$(dirname "$0")" && pwd)
case "$1" in
  scanner | transfer | taskserver | interarrival | ipcbench)
    tool=$1
    shift
    perms="--allow-env --allow-net --allow-read --allow-write --allow-run --allow-ffi"
    [ "$tool" = scanner ] && perms="$perms --allow-sys=hostname"
    if [ -f "$here/$tool/main.ts" ]; then
      # `deno run` directly: ~10 ms less per start than `deno task`, and the
      # source (cached) starts faster than the bundle, which loads Node's
      # compatibility layer up front.
      # shellcheck disable=SC2086
      set -- deno run --quiet --no-prompt --unstable-net --config "$here/deno.json" $perms \
        "$here/$tool/main.ts" "$@"
    else
      set -- "$here/dist/$tool.js" "$@"
    fi
    ;;
esac

now() { date +%s.%N; }
start=$(now)
pids=()
durations=$(mktemp)
for _ in $(seq 1 "$n"); do
  (
    s=$(now)
    "$@" >/dev/null
    rc=$?
    e=$(now)
    echo "$rc $(awk -v a="$e" -v b="$s" "BEGIN {printf \"%.6f\", a - b}")" >>"$durations"
    exit $rc
  ) &
  pids+=($!)
done
failed=0
for pid in "${pids[@]}"; do
  wait "$pid" || failed=$((failed + 1))
done
end=$(now)
total=$(awk -v a="$end" -v b="$start" "BEGIN {printf \"%.6f\", a - b}")
average=$(awk '{s+=$2} END {if (NR) printf "%.6f", s/NR; else print 0}' "$durations")
rm -f "$durations"
printf 'Total Execution Time: %.6f seconds\n' "$total"
printf 'Average Execution Time per script: %s seconds\n' "$average"
printf 'Failed: %d of %d\n' "$failed" "$n"
[ "$failed" = 0 ]
