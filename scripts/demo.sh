#!/usr/bin/env bash
# The demo: installs, builds, then runs examples/phases.c on a local 3-node cluster (three
# distnode processes on loopback) started from a deliberately bad placement, and shows work
# moving between the nodes while the program runs: the coordinator's moves with their reasons,
# the operator's view through distctl, a unit moved with its state, and the output compared
# with the native build; then a load-balanced stage spread over the nodes.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh >/dev/null
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build >/dev/null
distnode=build/bin/distnode
distctl=build/bin/distctl
ex=build/examples
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
ctl() {
  echo "\$ distctl $*"
  "$distctl" --cluster "$tmp/cluster.yaml" "$@" | sed 's/^/  /'
}

step "distnode --analyze $ex/phases.bc   (what may move, and what moves with state; abridged)"
"$distnode" --analyze "$ex/phases.bc" | sed -n '/^filter_a/,/^$/p;/^Placement units/,/^Load/p'

step "phases.c on 3 nodes, started with every unit scattered (the worst start: every hot edge remote)"
echo "phases.c alternates a chatty phase (stage_a calls filter_a 2,000,000 times) and a bulky one"
echo "(stage_b hands 64 KiB buffers to reduce_b); the coordinator plans every 300 ms."
"$distnode" --local 3 --placement scatter --adapt-interval-ms 300 --cluster-out "$tmp/cluster.yaml" \
  --log-level info --log-file "$tmp/log" "$ex/phases.bc" -- 40 2000000 >"$tmp/out" &
run=$!
for _ in $(seq 100); do # until the coordinator answers
  "$distctl" --cluster "$tmp/cluster.yaml" --timeout-ms 200 status >/dev/null 2>&1 && break
  sleep 0.1
done
sleep 1.5
step "while it runs: where each unit is, and why (distctl placement)"
ctl placement
step "the hot edges the coordinator sees (distctl profile, abridged)"
"$distctl" --cluster "$tmp/cluster.yaml" profile | sed -n '/^CALLER/,/^$/p' | sed 's/^/  /'
step "the operator moves the histogram (a unit with state: 520 bytes of globals) to n2"
ctl move globals#0 n2
ctl placement
wait "$run"

step "every placement the cluster ran, and why (from the coordinator's log)"
grep -E "epoch [0-9]+: moved|epoch [0-9]+ \(" "$tmp/log" | sed -E 's/^[0-9-]+ [0-9:.]+ //'

step "the program's output, and the native build's"
"$ex/phases.native" 40 2000000 >"$tmp/native"
echo "($(wc -l <"$tmp/out") lines; the last three:)"
tail -3 "$tmp/out"
if cmp -s "$tmp/out" "$tmp/native"; then
  echo "(stdout identical to the native build)"
else
  echo "(stdout DIFFERS from the native build)"
  diff "$tmp/native" "$tmp/out" || true
fi
step "a load-balanced stage: mandel.c's 6 threads call render_row (DIST_LOADBALANCED) on 3 nodes"
echo "render_row has a replica on every node; each call runs where a CPU is free (this node first)."
"$distnode" --local 3 --log-level info "$ex/mandel.bc" -- 6 480 4000 2>"$tmp/lb.log" >"$tmp/lb.out"
grep "load-balanced calls" "$tmp/lb.log" | sed -E 's/^(\[n[0-9]\] )?[0-9-]+ [0-9:.]+ /  /'
tail -1 "$tmp/lb.out"
if "$ex/mandel.native" 6 480 4000 | cmp -s - "$tmp/lb.out"; then
  echo "(stdout identical to the native build)"
else
  echo "(stdout DIFFERS from the native build)"
fi
echo
echo "More: README.md (adaptation, load balancing, distctl), docs/admin-protocol.md, bench/README.md."
