// profiler_bench.cpp - what profiling costs: the same JIT'd code compiled without and with the
// profiler's instrumentation (and with self-time sampling running), in one process.
//
// Call-heavy: bench_calls.c's loop_stub makes 10 000 calls of a function of two multiply-adds
// through its stub (the worst case: the call is the work), and examples/phases.c's stage_a
// makes 10 000 calls of filter_a (phase A of the adaptation demo). Real work: phases.c's
// stage_b (reduce_b over 64 KiB buffers) and nbody.c's advance (n-body steps).
#include "bench/jit_fixture.h"
#include "profiler/profiler.h"

#include <benchmark/benchmark.h>

namespace {

using distnode::bench::BenchProgram;
using distnode::jit::JitOptions;

struct Programs {
  BenchProgram calls[2], phases[2], nbody[2]; // [0]: no profiling, [1]: profiled
};

Programs &programs() {
  static Programs *p = [] {
    auto *ps = new Programs;
    JitOptions off, on;
    off.profile = false;
    on.profile = true;
    // The profiler is one per process and takes the layout of the last profiled program, so
    // each profiled program is benchmarked right after it is loaded (see main).
    ps->calls[0] = distnode::bench::loadBenchProgram(DIST_BENCH_BC, off);
    ps->phases[0] = distnode::bench::loadBenchProgram(DIST_PHASES_BC, off);
    ps->nbody[0] = distnode::bench::loadBenchProgram(DIST_NBODY_BC, off);
    return ps;
  }();
  return *p;
}

constexpr long kCalls = 10000;

void callHeavy(benchmark::State &state, BenchProgram &p) {
  auto loop = p.function<long (*)(long)>("loop_stub");
  for (auto _ : state)
    benchmark::DoNotOptimize(loop(kCalls));
  state.counters["ns_per_call"] =
      benchmark::Counter(static_cast<double>(state.iterations() * kCalls),
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

void chattyPhase(benchmark::State &state, BenchProgram &p) {
  auto stage_a = p.function<std::uint64_t (*)(unsigned, std::uint32_t)>("stage_a");
  constexpr std::uint32_t kFilterCalls = 10000;
  for (auto _ : state)
    benchmark::DoNotOptimize(stage_a(7, kFilterCalls));
  state.counters["ns_per_call"] =
      benchmark::Counter(static_cast<double>(state.iterations() * kFilterCalls),
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

void phasesWork(benchmark::State &state, BenchProgram &p) {
  auto stage_b = p.function<double (*)(unsigned, std::uint32_t)>("stage_b");
  for (auto _ : state)
    benchmark::DoNotOptimize(stage_b(7, 8));
}

struct Body {
  double pos[3], vel[3], mass;
};

void nbodyWork(benchmark::State &state, BenchProgram &p) {
  auto advance = p.function<void (*)(Body *, int, double, int)>("advance");
  for (auto _ : state) {
    Body bodies[5] = {};
    for (int i = 0; i < 5; ++i) {
      bodies[i].pos[0] = i * 1.5 + 1;
      bodies[i].pos[1] = i * 0.5 - 1;
      bodies[i].vel[2] = 0.01 * i;
      bodies[i].mass = 1.0 + i;
    }
    advance(bodies, 5, 0.001, 200);
    benchmark::DoNotOptimize(bodies[0].pos[0]);
  }
}

void BM_CallHeavy_ProfileOff(benchmark::State &s) { callHeavy(s, programs().calls[0]); }
void BM_CallHeavy_ProfileOn(benchmark::State &s) { callHeavy(s, programs().calls[1]); }
void BM_ChattyPhase_ProfileOff(benchmark::State &s) { chattyPhase(s, programs().phases[0]); }
void BM_ChattyPhase_ProfileOn(benchmark::State &s) { chattyPhase(s, programs().phases[1]); }
void BM_ReduceWork_ProfileOff(benchmark::State &s) { phasesWork(s, programs().phases[0]); }
void BM_ReduceWork_ProfileOn(benchmark::State &s) { phasesWork(s, programs().phases[1]); }
void BM_NBodyWork_ProfileOff(benchmark::State &s) { nbodyWork(s, programs().nbody[0]); }
void BM_NBodyWork_ProfileOn(benchmark::State &s) { nbodyWork(s, programs().nbody[1]); }

} // namespace

// The profiler is one per process, configured by the profiled program loaded last, so each run
// of this binary measures one program: --program=calls|phases|nbody (default calls).
int main(int argc, char **argv) {
  std::string which = "calls";
  for (int i = 1; i < argc; ++i)
    if (std::string(argv[i]).rfind("--program=", 0) == 0) {
      which = std::string(argv[i]).substr(10);
      for (int j = i; j + 1 < argc; ++j)
        argv[j] = argv[j + 1];
      --argc;
      break;
    }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv))
    return 1;
  programs();
  JitOptions on;
  if (which == "calls") {
    programs().calls[1] = distnode::bench::loadBenchProgram(DIST_BENCH_BC, on);
    benchmark::RegisterBenchmark("BM_CallHeavy_ProfileOff", BM_CallHeavy_ProfileOff);
    benchmark::RegisterBenchmark("BM_CallHeavy_ProfileOn", BM_CallHeavy_ProfileOn);
  } else if (which == "phases") {
    programs().phases[1] = distnode::bench::loadBenchProgram(DIST_PHASES_BC, on);
    benchmark::RegisterBenchmark("BM_ChattyPhase_ProfileOff", BM_ChattyPhase_ProfileOff);
    benchmark::RegisterBenchmark("BM_ChattyPhase_ProfileOn", BM_ChattyPhase_ProfileOn);
    benchmark::RegisterBenchmark("BM_ReduceWork_ProfileOff", BM_ReduceWork_ProfileOff);
    benchmark::RegisterBenchmark("BM_ReduceWork_ProfileOn", BM_ReduceWork_ProfileOn);
  } else if (which == "nbody") {
    programs().nbody[1] = distnode::bench::loadBenchProgram(DIST_NBODY_BC, on);
    benchmark::RegisterBenchmark("BM_NBodyWork_ProfileOff", BM_NBodyWork_ProfileOff);
    benchmark::RegisterBenchmark("BM_NBodyWork_ProfileOn", BM_NBodyWork_ProfileOn);
  } else {
    std::fprintf(stderr, "bench_profiler: --program must be calls, phases or nbody\n");
    return 1;
  }
  auto &profiler = distnode::profiler::Profiler::instance();
  profiler.startSampling(std::chrono::milliseconds(1));
  benchmark::RunSpecifiedBenchmarks();
  profiler.stopSampling();
  benchmark::Shutdown();
  return 0;
}
