// heuristic_bench.cpp - the placement heuristic's quality against the exact optimum, and its
// run time on large graphs, each beside two baselines in the same run:
//   greedy   — the partitioner's greedy initial placement alone;
//   pairwise — Orleans-style pairwise exchange on call counts only.
//
//   bench_heuristic --quality            cost ÷ optimum on 200 random graphs (≤ 14 units)
//   bench_heuristic [benchmark flags]    run time (Google Benchmark)
#include "heuristic/exact_solver.h"
#include "heuristic/partitioner.h"
#include "tests/heuristic/random_problems.h"

#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>

namespace {

using namespace distnode::heuristic;

struct Ratios {
  const char *name;
  std::vector<double> values;
  int optimal = 0;
};

double quantile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  return v[static_cast<std::size_t>(q * (v.size() - 1))];
}

int quality() {
  Ratios ratios[3] = {{"fm (distnode)", {}}, {"greedy", {}}, {"pairwise", {}}};
  double exact_ms = 0;
  int graphs = 0;
  for (unsigned seed = 1; graphs < 200; ++seed) {
    int units = 6 + static_cast<int>(seed % 9);       // 6..14
    int nodes = 2 + static_cast<int>((seed / 9) % 3); // 2..4
    Problem p = randomProblem(seed, units, nodes);
    CostModel m(p);
    Placement candidates[3] = {partition(m), greedyPlacement(m), pairwiseExchangePlacement(m)};
    double best_known = m.evaluate(candidates[0]).total();
    auto t0 = std::chrono::steady_clock::now();
    auto exact = exactPlacement(m, best_known);
    exact_ms +=
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (!exact)
      return std::fprintf(stderr, "no exact solution for seed %u\n", seed), 1;
    double opt = m.evaluate(*exact).total();
    if (opt <= 0)
      continue; // nothing to cut and nothing overloaded: every method is optimal
    ++graphs;
    for (int k = 0; k < 3; ++k) {
      double r = m.evaluate(candidates[k]).total() / opt;
      ratios[k].values.push_back(r);
      ratios[k].optimal += r <= 1 + 1e-9;
    }
  }
  std::printf("cost / exact optimum on %d random graphs (6-14 units, 2-4 nodes)\n", graphs);
  std::printf("  %-14s %8s %8s %8s %8s %10s\n", "method", "median", "p90", "p99", "worst",
              "optimal");
  for (auto &r : ratios)
    std::printf("  %-14s %8.4f %8.4f %8.4f %8.4f %6d/%d\n", r.name, quantile(r.values, 0.5),
                quantile(r.values, 0.9), quantile(r.values, 0.99),
                *std::max_element(r.values.begin(), r.values.end()), r.optimal, graphs);
  std::printf("  (exact branch and bound: %.1f ms per graph on average)\n", exact_ms / graphs);
  return 0;
}

Problem &large(int units) {
  static std::map<int, Problem> cache;
  auto it = cache.find(units);
  if (it == cache.end())
    it = cache.emplace(units, randomProblem(42, units, 4, 10.0)).first; // 10 edges per unit
  return it->second;
}

template <Placement (*Method)(const CostModel &)> void run(benchmark::State &state) {
  Problem &p = large(static_cast<int>(state.range(0)));
  CostModel m(p);
  double cost = 0;
  for (auto _ : state) {
    Placement x = Method(m);
    benchmark::DoNotOptimize(x.data());
    state.PauseTiming();
    cost = m.evaluate(x).total();
    state.ResumeTiming();
  }
  state.counters["units"] = static_cast<double>(p.units.size());
  state.counters["edges"] = static_cast<double>(p.edges.size());
  state.counters["cost"] = cost;
}

Placement fm(const CostModel &m) { return partition(m); }
Placement greedy(const CostModel &m) { return greedyPlacement(m); }

BENCHMARK(run<fm>)
    ->Name("BM_Partition_FM")
    ->Arg(1000)
    ->Arg(10000)
    ->Arg(100000)
    ->Unit(benchmark::kMillisecond);
BENCHMARK(run<greedy>)
    ->Name("BM_Partition_Greedy")
    ->Arg(1000)
    ->Arg(10000)
    ->Arg(100000)
    ->Unit(benchmark::kMillisecond);
BENCHMARK(run<pairwiseExchangePlacement>)
    ->Name("BM_Partition_Pairwise")
    ->Arg(1000)
    ->Arg(10000)
    ->Arg(100000)
    ->Unit(benchmark::kMillisecond);

} // namespace

int main(int argc, char **argv) {
  if (argc > 1 && std::strcmp(argv[1], "--quality") == 0)
    return quality();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv))
    return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
