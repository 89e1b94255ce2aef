#!/usr/bin/env bash
# Runs the benchmarks with interleaved repetitions (this machine is shared and noisy) and prints
# the median of each with the ratio to its baseline from the same run.
#   bash bench/run.sh [build-dir]
set -euo pipefail
build=${1:-build}
out=$(mktemp -d)
reps=${REPS:-5}
flags=(--benchmark_repetitions="$reps" --benchmark_enable_random_interleaving=true
       --benchmark_report_aggregates_only=true --benchmark_format=json)
"$build/bin/bench_stub" "${flags[@]}" >"$out/stub.json"
"$build/bin/bench_remote" "${flags[@]}" --benchmark_min_time=0.2 >"$out/remote.json"
for p in calls phases nbody; do
  "$build/bin/bench_profiler" --program=$p "${flags[@]}" >"$out/profiler_$p.json"
done
"$build/bin/bench_heuristic" --benchmark_format=json >"$out/heuristic.json"
python3 - "$out"/*.json <<'PY'
import json, sys
med = {}
for path in sys.argv[1:]:
    for b in json.load(open(path))["benchmarks"]:
        if b.get("aggregate_name") == "median":
            med[b["run_name"].split("/repeats:")[0]] = b

def ns_per_call(name):
    return med[name]["ns_per_call"] * 1e9  # JSON holds seconds per call

d, s = ns_per_call("BM_Call_Direct"), ns_per_call("BM_Call_Stub")
g = ns_per_call("BM_Call_Guarded")
print("local call (median of interleaved repetitions)")
print(f"  direct {d:.3f} ns   stub {s:.3f} ns   extra {s - d:+.3f} ns   ratio {s / d:.2f}x")
print(f"  guarded (the default; the callee may be inlined) {g:.3f} ns   ratio to direct {g / d:.2f}x")
print("round trip, raw ZeroMQ DEALER/ROUTER vs remote call of echo_bytes (same payload each way)")
print(f"  {'bytes':>8} {'raw us':>9} {'remote us':>10} {'ratio':>6}")
for size in [8, 64, 512, 4096, 32768, 262144, 1048576]:
    raw = med[f"BM_RoundTrip_RawZmq/{size}"]["real_time"] / 1e3
    rem = med[f"BM_RoundTrip_RemoteCall/{size}"]["real_time"] / 1e3
    print(f"  {size:>8} {raw:>9.1f} {rem:>10.1f} {rem / raw:>5.2f}x")
print("remote calls per second (tiny_remote, one member node)")
for t in [1, 4, 16]:
    b = med[f"BM_RemoteCalls_Threads/real_time/threads:{t}"]
    print(f"  {t:>2} app threads: {b['items_per_second']:>9.0f} calls/s")
b, l = med["BM_Dispatch_StubBaseline"]["real_time"], med["BM_Dispatch_LocalReplica"]["real_time"]
print("load balancer: a load-balanced call run on this node vs the same body through its stub")
print(f"  stub {b:.2f} ns   dispatcher {l:.2f} ns   ratio {l / b:.1f}x")
print("profiling on vs off (same JIT'd code without and with instrumentation, sampling on)")
for name in ["CallHeavy", "ChattyPhase", "ReduceWork", "NBodyWork"]:
    off = med[f"BM_{name}_ProfileOff"]["real_time"]
    on = med[f"BM_{name}_ProfileOn"]["real_time"]
    print(f"  {name:<12} off {off / 1e3:>9.2f} us   on {on / 1e3:>9.2f} us   overhead {100 * (on / off - 1):+6.2f}%")
PY
python3 - "$out/heuristic.json" <<'PY'
import json, sys
rows = {}
for b in json.load(open(sys.argv[1]))["benchmarks"]:
    name, size = b["name"].rsplit("/", 1)
    rows.setdefault(int(size), {})[name.replace("BM_Partition_", "")] = b
print("placement heuristic: run time and cost on random graphs (4 nodes, 10 edges per unit)")
print(f"  {'units':>7} {'edges':>8}  " + "  ".join(f"{m:>22}" for m in ["FM (distnode)", "Greedy", "Pairwise"]))
for size in sorted(rows):
    r = rows[size]
    cells = [f"{r[m]['real_time']:8.1f} ms cost {r[m]['cost']:8.1f}" for m in ["FM", "Greedy", "Pairwise"]]
    print(f"  {size:>7} {int(r['FM']['edges']):>8}  " + "  ".join(f"{c:>22}" for c in cells))
PY
"$build/bin/bench_heuristic" --quality
rm -rf "$out"
