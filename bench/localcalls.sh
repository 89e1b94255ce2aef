#!/usr/bin/env bash
# Local calls on one node against the native `clang-19 -O2` build (bench/README.md, "Local calls
# at native speed"), all in one run, medians of REPEATS runs (default 5):
#   fib          recursive Fibonacci: every call a function's call to itself (direct);
#   small_calls  a loop of small calls into another unit (guarded calls): `mix`, a xorshift-
#                multiply round, and `linear`, a linear recurrence a compiler can reassociate;
#   profiling on ÷ off on the same programs;
#   start-up     a 0.1 s program (mandel.c, one thread) from exec to exit: native, distnode with
#                an empty code cache (cold), with the entry from the run before (warm).
# Compute times are the programs' own (after start-up): "compute_s" on stderr.
# Usage: bench/localcalls.sh BUILD_DIR
set -euo pipefail
build=$(cd "${1:?usage: bench/localcalls.sh BUILD_DIR}" && pwd)
distnode=$build/bin/distnode
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
repeats=${REPEATS:-5}
cache=$tmp/cache

source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
compute() { "$@" 2>&1 >/dev/null | awk '/^compute_s/ {print $2}'; }
wall() {
  local t0 t1
  t0=$(date +%s.%N)
  "$@" >/dev/null 2>&1
  t1=$(date +%s.%N)
  echo "$t1 - $t0" | bc -l
}

for _ in $(seq "$repeats"); do
  compute "$build/bench/fib.native" >>"$tmp/fib.native"
  compute "$distnode" --code-cache "$cache" "$build/bench/fib.bc" >>"$tmp/fib.on"
  compute "$distnode" --code-cache "$cache" --no-profile "$build/bench/fib.bc" >>"$tmp/fib.off"
  for m in mix linear; do
    compute "$build/bench/small_calls.native" $m >>"$tmp/$m.native"
    compute "$distnode" --code-cache "$cache" "$build/bench/small_calls.bc" -- $m >>"$tmp/$m.on"
    compute "$distnode" --code-cache "$cache" --no-profile "$build/bench/small_calls.bc" -- $m \
      >>"$tmp/$m.off"
  done
  wall "$build/examples/mandel.native" 1 240 2000 >>"$tmp/start.native"
  rm -rf "$tmp/cold"
  wall "$distnode" --code-cache "$tmp/cold" "$build/examples/mandel.bc" -- 1 240 2000 \
    >>"$tmp/start.cold"
  wall "$distnode" --code-cache "$tmp/cold" "$build/examples/mandel.bc" -- 1 240 2000 \
    >>"$tmp/start.warm"
done

row() { # name: native, profiling on, off; ratios
  local n on off
  n=$(median <"$tmp/$1.native")
  on=$(median <"$tmp/$1.on")
  off=$(median <"$tmp/$1.off")
  printf '  %-18s native %.3f s   distnode %.3f s (%.2fx native)   --no-profile %.3f s (%.2fx)   profiling on/off %.3f\n' \
    "$2" "$n" "$on" "$(echo "$on / $n" | bc -l)" "$off" "$(echo "$off / $n" | bc -l)" \
    "$(echo "$on / $off" | bc -l)"
}
echo "one node, compute time after start-up, median of $repeats runs:"
row fib "fib(38) x5"
row mix "small_calls mix"
row linear "small_calls linear"
n=$(median <"$tmp/start.native")
c=$(median <"$tmp/start.cold")
w=$(median <"$tmp/start.warm")
echo "start-up: mandel 1 240 2000, exec to exit, median of $repeats runs:"
printf '  native %.3f s   distnode cold %.3f s (%.2fx native)   warm code cache %.3f s (%.2fx native)\n' \
  "$n" "$c" "$(echo "$c / $n" | bc -l)" "$w" "$(echo "$w / $n" | bc -l)"
