#!/usr/bin/env bash
# Load-balanced functions (bench/README.md, "Load balancing"), all in one run: examples/mandel.c
# with THREADS program threads calling the DIST_LOADBALANCED render_row, every node held to its
# own core (taskset) with `capacity: {cpu: 1.0}`, as a one-core machine:
#   1 node, 2 nodes (cores 0 and 1), 3 nodes (n2 shares core 1: this machine has two cores);
#   the native program with the same threads on both cores, and on core 0 alone;
#   each replica's busy time (render_row's CPU time on its node, from --profile-out).
# Wall times include start-up (JIT compilation, joining) and are medians of REPEATS runs.
# Usage: bench/loadbalance.sh BUILD_DIR   (env: REPEATS=3 THREADS=8 ROWS=1920 ITERATIONS=12000)
set -euo pipefail
build=$(cd "${1:?usage: bench/loadbalance.sh BUILD_DIR}" && pwd)
distnode=$build/bin/distnode
program=$build/examples/mandel
python=/usr/bin/python3
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$tmp"' EXIT
repeats=${REPEATS:-3}
args=("${THREADS:-8}" "${ROWS:-1920}" "${ITERATIONS:-12000}")

source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
core_of() { case $1 in 0) echo 0 ;; *) echo 1 ;; esac; }

# cluster.yaml for N nodes, capacity 1.0 each.
config() {
  local n=$1 p
  read -r -a p <<<"$(ports $((2 * n)))"
  { echo "cluster: lb"; echo "join_timeout_ms: 30000"; echo "nodes:"
    for i in $(seq 0 $((n - 1))); do
      echo "  - {name: n$i, call: 'tcp://127.0.0.1:${p[2 * i]}', control: 'tcp://127.0.0.1:${p[2 * i + 1]}', capacity: {cpu: 1.0}}"
    done; } >"$tmp/c$n.yaml"
}

# Runs mandel on N pinned nodes; prints the wall time (s); the profile goes to $tmp/p$N.json.
cluster_run() {
  local n=$1 members=() t0 t1
  config "$n"
  for i in $(seq 1 $((n - 1))); do
    taskset -c "$(core_of "$i")" "$distnode" --join "$tmp/c$n.yaml" --name "n$i" "$program.bc" \
      >/dev/null 2>&1 &
    members+=($!)
  done
  t0=$(now)
  taskset -c 0 "$distnode" --join "$tmp/c$n.yaml" --name n0 --profile-out "$tmp/p$n.json" \
    "$program.bc" -- "${args[@]}" >"$tmp/out"
  t1=$(now)
  for m in "${members[@]}"; do wait "$m"; done
  cmp -s "$tmp/out" "$tmp/native.out" || { echo "mandel on $n nodes: output differs" >&2; exit 1; }
  echo "$t1 - $t0" | bc -l
}

native_run() {
  local t0 t1
  t0=$(now)
  taskset -c "$1" "$program.native" "${args[@]}" >/dev/null
  t1=$(now)
  echo "$t1 - $t0" | bc -l
}

# render_row's busy time on each node of profile $1: "busiest/mean n0=.. n1=..".
balance() {
  $python - "$1" <<'EOF'
import json, sys
doc = json.load(open(sys.argv[1]))
busy = {}
for node in doc["nodes"]:
    busy[node["node"]] = sum(f["self_cpu_s"] for f in node["functions"] if f["name"] == "render_row")
mean = sum(busy.values()) / len(busy)
print("%.3f %s" % (max(busy.values()) / mean, " ".join("%s=%.2fs" % kv for kv in sorted(busy.items()))))
EOF
}

# The fixed cost of a run (JIT compilation, joining, stopping): 2 nodes, almost no work.
work=("${args[@]}")
args=("${THREADS:-8}" 8 1)
"$program.native" "${args[@]}" >"$tmp/native.out"
for _ in $(seq "$repeats"); do cluster_run 2 >>"$tmp/startup.t"; done
args=("${work[@]}")
"$program.native" "${args[@]}" >"$tmp/native.out"
for _ in $(seq "$repeats"); do
  cluster_run 1 >>"$tmp/one.t"
  cluster_run 2 >>"$tmp/two.t"
  balance "$tmp/p2.json" >>"$tmp/balance2"
  cluster_run 3 >>"$tmp/three.t"
  balance "$tmp/p3.json" >>"$tmp/balance3"
  native_run 0,1 >>"$tmp/native2.t"
  native_run 0 >>"$tmp/native1.t"
done
one=$(median <"$tmp/one.t")
two=$(median <"$tmp/two.t")
three=$(median <"$tmp/three.t")
native2=$(median <"$tmp/native2.t")
native1=$(median <"$tmp/native1.t")
echo "mandel ${args[*]} (threads rows iterations), median of $repeats runs:"
printf '  1 node  %.3f s   2 nodes %.3f s   3 nodes %.3f s (n1 and n2 share core 1)\n' "$one" "$two" "$three"
printf '  native on cores 0,1 %.3f s, on core 0 %.3f s; start-up of 2 nodes (no work) %.3f s\n' \
  "$native2" "$native1" "$(median <"$tmp/startup.t")"
printf '  1 node / 2 nodes = %.2f   1 node / 3 nodes = %.2f\n' \
  "$(echo "$one / $two" | bc -l)" "$(echo "$one / $three" | bc -l)"
printf '  2 nodes / native on both cores = %.2f   1 node / native on one core = %.2f\n' \
  "$(echo "$two / $native2" | bc -l)" "$(echo "$one / $native1" | bc -l)"
echo "  each run (s): 1 node $(tr '\n' ' ' <"$tmp/one.t")| 2 nodes $(tr '\n' ' ' <"$tmp/two.t")| 3 nodes $(tr '\n' ' ' <"$tmp/three.t")| native 2 cores $(tr '\n' ' ' <"$tmp/native2.t")"
echo "  busiest replica / mean (2 nodes), each run: $(cut -d' ' -f1 "$tmp/balance2" | tr '\n' ' ')"
echo "    busy time per node, last run: $(tail -1 "$tmp/balance2" | cut -d' ' -f2-)"
echo "  busiest replica / mean (3 nodes), each run: $(cut -d' ' -f1 "$tmp/balance3" | tr '\n' ' ')"
echo "    busy time per node, last run: $(tail -1 "$tmp/balance3" | cut -d' ' -f2-)"
