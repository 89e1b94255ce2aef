// random_problems.h - reproducible random placement problems for tests and benchmarks.
#ifndef DISTNODE_TESTS_HEURISTIC_RANDOM_PROBLEMS_H
#define DISTNODE_TESTS_HEURISTIC_RANDOM_PROBLEMS_H

#include "heuristic/problem.h"

#include <random>
#include <string>

namespace distnode::heuristic {

/// `units` units on `nodes` nodes: unit 0 pinned to node 0 (the entry's main), about one in
/// ten more pinned, some stateful; about 2.5 edges per unit with skewed rates (a few hot
/// edges, many cold ones); total CPU load about 70% of the total capacity, which is uneven.
/// `edges_per_unit` scales the edge count (for the large run-time benchmarks).
inline Problem randomProblem(unsigned seed, int units, int nodes, double edges_per_unit = 2.5) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> uni(0, 1);
  std::vector<Node> ns;
  double total_capacity = 0;
  for (int n = 0; n < nodes; ++n) {
    ns.push_back({"n" + std::to_string(n), 1.0 + 3.0 * uni(rng)});
    total_capacity += ns.back().cpu_capacity;
  }
  Problem p = Problem::uniform(ns, {80e-6, 1e9});
  for (int a = 0; a < nodes; ++a) // a slower, farther pair
    for (int b = 0; b < nodes; ++b)
      if (a != b && (a + b) % 3 == 0)
        p.links[a][b] = {300e-6, 2e8};
  std::vector<double> raw(units);
  double sum = 0;
  for (double &r : raw)
    sum += (r = 0.05 + uni(rng) * uni(rng));
  for (int u = 0; u < units; ++u) {
    Unit unit;
    unit.name = "u" + std::to_string(u);
    unit.cpu_load = raw[u] / sum * 0.7 * total_capacity;
    if (u == 0)
      unit.pinned_node = 0;
    else if (uni(rng) < 0.1)
      unit.pinned_node = static_cast<int>(rng() % nodes);
    if (uni(rng) < 0.2)
      unit.state_bytes = 1e5 * uni(rng);
    p.units.push_back(unit);
  }
  int edges = static_cast<int>(units * edges_per_unit);
  for (int e = 0; e < edges && units > 1; ++e) {
    int a = static_cast<int>(rng() % units), b = static_cast<int>(rng() % units);
    if (a == b)
      continue;
    double hot = uni(rng) < 0.2 ? 1000 : 10;
    Edge edge{a, b, hot * uni(rng), 0, 0};
    edge.call_bytes_per_s = edge.calls_per_s * 64 * (1 + 100 * uni(rng) * uni(rng));
    edge.reply_bytes_per_s = edge.calls_per_s * 16;
    p.edges.push_back(edge);
  }
  p.current.assign(units, 0);
  for (int u = 0; u < units; ++u)
    p.current[u] =
        p.units[u].pinned_node >= 0 ? p.units[u].pinned_node : static_cast<int>(rng() % nodes);
  return p;
}

} // namespace distnode::heuristic

#endif
