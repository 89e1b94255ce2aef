#!/usr/bin/env bash
# Benchmarks of the online loop (bench/README.md, "Adaptation"), each against its baseline in
# the same run:
#   shed      two threads, each calling its own CPU-heavy function, on two nodes held to one
#             core each (taskset) with capacity 1.0: adaptive (starting all on the entry node)
#             vs everything on the entry node vs the best static placement;
#   recovery  phases.c started scattered with adaptation, and started all on the entry node with
#             adaptation, vs all on the entry node held still (ROUNDS, default 16);
#   moves     time from an admin request to every node of 3 running the new placement, for a
#             stateless unit and for a unit with 1 MiB of state, vs an admin round trip;
#   steady    a steady workload for N seconds: moves after convergence.
#   phases    shift.c, whose phases want different placements: adaptive vs the best static
#             placement of each phase in hindsight;
# COORDINATOR (default n0, the entry node) names the node that runs the loop in shed, phases
# and moves (n1: on the member).
# Usage: bench/adaptation.sh BUILD_DIR [shed|recovery|moves|phases|steady SECONDS]...
set -euo pipefail
build=$(cd "${1:?usage: bench/adaptation.sh BUILD_DIR [benchmark...]}" && pwd)
shift
distnode=$build/bin/distnode
distctl=$build/bin/distctl
python=/usr/bin/python3
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$tmp"' EXIT
repeats=${REPEATS:-3}
coordinator=${COORDINATOR:-n0}

source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# A 2-node cluster.yaml, capacity 1.0 each, admin on n0.
two_nodes() {
  read -r p0 c0 p1 c1 <<<"$(ports 4)"
  cat >"$tmp/two.yaml" <<EOF
cluster: shed
coordinator: $coordinator
join_timeout_ms: 30000
nodes:
  - {name: n0, call: 'tcp://127.0.0.1:$p0', control: 'tcp://127.0.0.1:$c0', capacity: {cpu: 1.0}, admin: 'ipc://$tmp/n0.admin'}
  - {name: n1, call: 'tcp://127.0.0.1:$p1', control: 'tcp://127.0.0.1:$c1', capacity: {cpu: 1.0}, admin: 'ipc://$tmp/n1.admin'}
EOF
}

# Runs shed.bc on the two pinned nodes with extra flags (for both: the coordinator's, such as
# --no-adapt, may be n1's); prints the wall time (s).
shed_run() {
  two_nodes
  rm -f "$tmp/shed.log"
  taskset -c 1 "$distnode" --join "$tmp/two.yaml" --name n1 "$@" --log-level info \
    --log-file "$tmp/shed.log" "$build/bench/shed.bc" -- 400 >/dev/null 2>&1 &
  local member=$!
  local t0 t1
  t0=$(now)
  taskset -c 0 "$distnode" --join "$tmp/two.yaml" --name n0 "$@" --log-level info \
    --log-file "$tmp/shed.log" "$build/bench/shed.bc" -- 400 >"$tmp/shed.out"
  t1=$(now)
  wait "$member"
  cmp -s "$tmp/shed.out" "$tmp/shed.native" || { echo "shed: output differs" >&2; exit 1; }
  echo "$t1 - $t0" | bc -l
}

shed() {
  "$build/bench/shed.native" 400 >"$tmp/shed.native"
  printf 'heavy_b: n1\n' >"$tmp/best.yaml"
  local entry best adaptive adaptive1s native
  for _ in $(seq "$repeats"); do
    shed_run --no-adapt >>"$tmp/entry.t"
    shed_run --no-adapt --placement "$tmp/best.yaml" >>"$tmp/best.t"
    shed_run --adapt-interval-ms 300 >>"$tmp/adaptive.t"
    grep -E "epoch [0-9]+: moved" "$tmp/shed.log" | sed -E 's/^[0-9-]+ //' >>"$tmp/shed.moves"
    shed_run >>"$tmp/adaptive1s.t"
    local t0 t1
    t0=$(now)
    "$build/bench/shed.native" 400 >/dev/null
    t1=$(now)
    echo "$t1 - $t0" | bc -l >>"$tmp/native.t"
  done
  entry=$(median <"$tmp/entry.t")
  best=$(median <"$tmp/best.t")
  adaptive=$(median <"$tmp/adaptive.t")
  adaptive1s=$(median <"$tmp/adaptive1s.t")
  native=$(median <"$tmp/native.t")
  printf 'shed (medians of %d; seconds): all on n0 %.2f, best static %.2f, adaptive (300 ms) %.2f, adaptive (1 s) %.2f, native on 2 cores %.2f\n' \
    "$repeats" "$entry" "$best" "$adaptive" "$adaptive1s" "$native"
  printf 'shed: adaptive 300 ms / all on n0 = %.3f (goal <= 0.6); / best static = %.3f (goal <= 1.1)\n' \
    "$(echo "$adaptive / $entry" | bc -l)" "$(echo "$adaptive / $best" | bc -l)"
  printf 'shed: adaptive 1 s / all on n0 = %.3f; / best static = %.3f\n' \
    "$(echo "$adaptive1s / $entry" | bc -l)" "$(echo "$adaptive1s / $best" | bc -l)"
  echo "shed: moves of the adaptive runs:"
  sed 's/^/  /' "$tmp/shed.moves"
}

# Phase changes: shift.c alternates phase X (two CPU-heavy functions: split them over the two
# one-core nodes) and phase Y (chatty calls of heavy_a: keep it with its caller). Adaptive vs
# the best static placement of each phase chosen in hindsight (X alone with heavy_b on n1, Y
# alone with everything on n0, their times added).
# PHASE_LENGTH (default 1) multiplies each phase's work: 1 gives phases of 1-2.5 s, a few
# planning intervals; 4 gives phases of 4-10 s.
shift_run() { # PHASES WHICH [entry flags...]: wall time of shift.bc on the two pinned nodes
  local phases=$1 which=$2 length=${PHASE_LENGTH:-1}
  shift 2
  two_nodes
  taskset -c 1 "$distnode" --join "$tmp/two.yaml" --name n1 "$@" --log-level info \
    --log-file "$tmp/shift.log" "$build/bench/shift.bc" -- "$phases" "$which" "$length" \
    >/dev/null 2>&1 &
  local member=$!
  local t0 t1
  t0=$(now)
  taskset -c 0 "$distnode" --join "$tmp/two.yaml" --name n0 "$@" --log-level info \
    --log-file "$tmp/shift.log" "$build/bench/shift.bc" -- "$phases" "$which" "$length" \
    >"$tmp/shift.out"
  t1=$(now)
  wait "$member"
  "$build/bench/shift.native" "$phases" "$which" "$length" >"$tmp/shift.native"
  cmp -s "$tmp/shift.out" "$tmp/shift.native" || { echo "shift: output differs" >&2; exit 1; }
  echo "$t1 - $t0" | bc -l
}

phases() {
  printf 'heavy_b: n1\n' >"$tmp/split.yaml"
  for _ in $(seq "$repeats"); do
    rm -f "$tmp/shift.log"
    shift_run 4 XY >>"$tmp/shift_adaptive.t"
    grep -E "epoch [0-9]+: moved" "$tmp/shift.log" | sed -E 's/^[0-9-]+ //' >>"$tmp/shift.moves"
    shift_run 2 X --no-adapt --placement "$tmp/split.yaml" >>"$tmp/shift_x.t"
    shift_run 2 Y --no-adapt >>"$tmp/shift_y.t"
    shift_run 4 XY --no-adapt >>"$tmp/shift_entry.t"
  done
  local adaptive x y entry hindsight
  adaptive=$(median <"$tmp/shift_adaptive.t")
  x=$(median <"$tmp/shift_x.t")
  y=$(median <"$tmp/shift_y.t")
  entry=$(median <"$tmp/shift_entry.t")
  hindsight=$(echo "$x + $y" | bc -l)
  # Static split (heavy_b on n1) is not run over X Y X Y: phase Y's 15,000,000 calls of
  # heavy_b would all be remote (about 100 us each, half an hour).
  printf 'phases (shift.c, X Y X Y, phase length %d, medians of %d; seconds): adaptive %.2f; best per phase in hindsight %.2f (X X split %.2f + Y Y on n0 %.2f); static all on n0 %.2f\n' \
    "${PHASE_LENGTH:-1}" "$repeats" "$adaptive" "$hindsight" "$x" "$y" "$entry"
  printf 'phases: adaptive / best per phase in hindsight = %.3f (goal <= 1.15)\n' \
    "$(echo "$adaptive / $hindsight" | bc -l)"
  echo "phases: moves of the adaptive runs:"
  sed 's/^/  /' "$tmp/shift.moves"
}

recovery() {
  local args=(-- "${ROUNDS:-16}" 2000000)
  "$build/examples/phases.native" "${args[@]:1}" >"$tmp/phases.native"
  for _ in $(seq "$repeats"); do
    local t0 t1
    t0=$(now)
    "$distnode" --local 3 --no-adapt "$build/examples/phases.bc" "${args[@]}" >"$tmp/p1.out"
    t1=$(now)
    echo "$t1 - $t0" | bc -l >>"$tmp/one.t"
    t0=$(now)
    rm -f "$tmp/rec.log"
    "$distnode" --local 3 --placement scatter --log-level info --log-file "$tmp/rec.log" \
      "$build/examples/phases.bc" "${args[@]}" >"$tmp/p2.out"
    t1=$(now)
    echo "$t1 - $t0" | bc -l >>"$tmp/adaptive.t"
    t0=$(now)
    "$distnode" --local 3 "$build/examples/phases.bc" "${args[@]}" >"$tmp/p3.out"
    t1=$(now)
    echo "$t1 - $t0" | bc -l >>"$tmp/steady_start.t"
    for f in p1 p2 p3; do
      cmp -s "$tmp/$f.out" "$tmp/phases.native" || { echo "recovery: $f differs" >&2; exit 1; }
    done
    # Seconds from the start placement (epoch 1) to the last planner move.
    awk '/placement epoch 1 in effect/ && !s {split($2,a,":"); s=a[1]*3600+a[2]*60+a[3]}
         /\(planner\)/ {split($2,a,":"); l=a[1]*3600+a[2]*60+a[3]}
         END {printf "%.2f\n", l - s}' "$tmp/rec.log" >>"$tmp/converged.t"
  done
  local one adaptive converged from_best
  one=$(median <"$tmp/one.t")
  from_best=$(median <"$tmp/steady_start.t")
  adaptive=$(median <"$tmp/adaptive.t")
  converged=$(median <"$tmp/converged.t")
  # Scatter held still is not run: phase A's 2,000,000 calls per round would all be remote
  # (about 100 us each, minutes per round).
  printf 'recovery (phases %d rounds, medians of %d; seconds): all on n0 %.2f, scatter + adaptation %.2f\n' \
    "${ROUNDS:-16}" "$repeats" "$one" "$adaptive"
  printf 'recovery: adaptive / all on one node = %.3f (goal <= 1.15); last planner move %.2f s after start (interval 1 s)\n' \
    "$(echo "$adaptive / $one" | bc -l)" "$converged"
  printf 'phases: adaptive from all on n0 %.2f s / all on n0 held still = %.3f (the best static placement of both phases; goal <= 1.15)\n' \
    "$from_best" "$(echo "$from_best / $one" | bc -l)"
}

# Starts PROGRAM (with a stop file) on a held-still 3-node cluster, times 200 admin round trips
# and ROUNDS×3 moves of UNIT over n1, n2, n0 from a Python client, and stops it.
time_moves() { # PROGRAM UNIT LABEL ROUNDS
  local program=$1 unit=$2 label=$3 rounds=$4
  rm -f "$tmp/stop"
  "$distnode" --local 3 --coordinator "$coordinator" --no-adapt --cluster-out "$tmp/moves.yaml" \
    "$program" -- "$tmp/stop" >"$tmp/moves.out" &
  local run=$!
  for _ in $(seq 200); do
    "$distctl" --cluster "$tmp/moves.yaml" --timeout-ms 200 status >/dev/null 2>&1 && break
    sleep 0.1
  done
  local endpoint
  endpoint=$(grep -m1 "admin: .*/$coordinator.admin" "$tmp/moves.yaml" | sed 's/.*admin: //')
  $python - "$endpoint" "$unit" "$label" "$rounds" <<'EOF'
import json, statistics, sys, time, zmq
endpoint, unit, label, rounds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
s = zmq.Context().socket(zmq.REQ)
s.connect(endpoint)
def ask(**request):
    t0 = time.perf_counter()
    s.send_string(json.dumps(request))
    answer = json.loads(s.recv_string())
    assert answer["ok"], answer
    return (time.perf_counter() - t0) * 1e3
rtt = [ask(command="status") for _ in range(200)]
moves = [ask(command="move", unit=unit, node=n) for n in ["n1", "n2", "n0"] * rounds]
print("moves: admin round trip (status) median %.3f ms; move of %s median %.3f ms, p90 %.3f ms (%d moves); move - round trip %.3f ms"
      % (statistics.median(rtt), label, statistics.median(moves),
         sorted(moves)[int(len(moves) * 0.9)], len(moves),
         statistics.median(moves) - statistics.median(rtt)))
EOF
  touch "$tmp/stop"
  wait "$run"
  cat "$tmp/moves.out"
}

moves() {
  # `touch` holds state_mb's table: one unit with 1 MiB of state (main is home).
  time_moves "$build/bench/state_mb.bc" touch "the 1 MiB unit" 20
  # A stateless unit: adapt_target's `mix` (the tests' fixture).
  time_moves "$build/tests/fixtures/fixture_adapt_target.bc" mix "a stateless unit" 40
}

steady() {
  local seconds=${1:-600}
  rm -f "$tmp/stop"
  "$distnode" --local 3 --placement scatter --cluster-out "$tmp/c5.yaml" --log-level info \
    --log-file "$tmp/steady.log" "$build/tests/fixtures/fixture_adapt_target.bc" -- "$tmp/stop" 1000000000 \
    >"$tmp/steady.out" &
  local run=$!
  sleep "$seconds"
  "$distctl" --cluster "$tmp/c5.yaml" history || true
  touch "$tmp/stop"
  wait "$run" || echo "steady: the cluster exited with $?"
  cp "$tmp/steady.log" "${STEADY_LOG:-/tmp/distnode-steady.log}"
  cat "$tmp/steady.out"
  echo "steady: planner moves over ${seconds} s, with the second each happened:"
  grep -E "epoch [0-9]+: moved" "$tmp/steady.log" | sed -E 's/^[0-9-]+ //; s/^/  /'
}

[ $# -gt 0 ] || set -- shed recovery moves
while [ $# -gt 0 ]; do
  case "$1" in
  steady) steady "${2:-600}"; shift 2 || shift ;;
  shed | recovery | moves | phases) "$1"; shift ;;
  *) echo "unknown benchmark $1" >&2; exit 2 ;;
  esac
done
