// stub_bench.cpp - what a call through an ORC indirect stub costs over a direct call, and what a
// guarded call (the default) costs.
//
// The loops are JIT'd from bench/programs/bench_calls.c at O2: loop_direct calls a
// non-inlinable local copy of the callee; loop_stub calls the placeable original, which is in
// another placement unit: compiled with guarded calls (JitOptions::guard_calls, the default)
// the call tests the callee's link flag and calls its body, which the optimizer may inline;
// compiled without, it goes through the stub (`jmp *ptr`). Each benchmark iteration makes
// kCalls calls.
#include "bench/jit_fixture.h"

#include <benchmark/benchmark.h>

namespace {

constexpr long kCalls = 10000;
using LoopFn = long (*)(long);

// Without profiling: this measures the call alone (bench_profiler measures the counters).
distnode::bench::BenchProgram load(bool guarded) {
  distnode::jit::JitOptions options;
  options.profile = false;
  options.guard_calls = guarded;
  return distnode::bench::loadBenchProgram(DIST_BENCH_BC, options);
}

distnode::bench::BenchProgram &program() {
  static distnode::bench::BenchProgram p = load(true);
  return p;
}

distnode::bench::BenchProgram &unguarded() {
  static distnode::bench::BenchProgram p = load(false);
  return p;
}

void runLoop(benchmark::State &state, LoopFn loop) {
  for (auto _ : state)
    benchmark::DoNotOptimize(loop(kCalls));
  state.counters["ns_per_call"] =
      benchmark::Counter(static_cast<double>(state.iterations() * kCalls),
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

void BM_Call_Direct(benchmark::State &state) {
  runLoop(state, program().function<LoopFn>("loop_direct"));
}

void BM_Call_Guarded(benchmark::State &state) {
  runLoop(state, program().function<LoopFn>("loop_stub"));
}

void BM_Call_Stub(benchmark::State &state) {
  runLoop(state, unguarded().function<LoopFn>("loop_stub"));
}

BENCHMARK(BM_Call_Direct);
BENCHMARK(BM_Call_Guarded);
BENCHMARK(BM_Call_Stub);

} // namespace

BENCHMARK_MAIN();
