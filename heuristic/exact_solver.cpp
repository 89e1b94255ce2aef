// exact_solver.cpp - branch and bound over unit → node assignments.
#include "heuristic/exact_solver.h"

#include <algorithm>
#include <numeric>

namespace distnode::heuristic {

namespace {

// Assigns units in `order` one by one; the partial cost (edges between assigned units,
// overload so far, migration) only grows, so it bounds every completion from below.
class Search {
public:
  Search(const CostModel &model, std::vector<int> order, Placement start, double bound)
      : m_(model), p_(model.problem()), order_(std::move(order)), place_(std::move(start)),
        best_cost_(bound), load_(p_.nodes.size(), 0), adj_(p_.units.size()) {
    for (std::size_t e = 0; e < p_.edges.size(); ++e) {
      const Edge &edge = p_.edges[e];
      if (edge.caller == edge.callee || p_.units[edge.caller].load_balanced ||
          p_.units[edge.callee].load_balanced)
        continue;
      adj_[edge.caller].push_back(static_cast<int>(e));
      adj_[edge.callee].push_back(static_cast<int>(e));
    }
    assigned_.assign(p_.units.size(), false);
    double base = 0;
    for (std::size_t u = 0; u < p_.units.size(); ++u)
      if (place_[u] >= 0) { // fixed before the search
        assigned_[u] = true;
        if (!p_.units[u].load_balanced)
          load_[place_[u]] += p_.units[u].cpu_load;
        base += m_.migrationCost(static_cast<int>(u), currentOf(static_cast<int>(u)), place_[u]);
      }
    for (std::size_t e = 0; e < p_.edges.size(); ++e) {
      const Edge &edge = p_.edges[e];
      if (assigned_[edge.caller] && assigned_[edge.callee] &&
          !p_.units[edge.caller].load_balanced && !p_.units[edge.callee].load_balanced)
        base += m_.edgeCost(edge, place_[edge.caller], place_[edge.callee]);
    }
    for (std::size_t n = 0; n < load_.size(); ++n)
      base += m_.overloadCost(static_cast<int>(n), load_[n]);
    base_ = base;
  }

  std::optional<Placement> run() {
    recurse(0, base_);
    if (best_.empty())
      return std::nullopt;
    return best_;
  }

private:
  int currentOf(int u) const {
    return u < static_cast<int>(p_.current.size()) ? p_.current[u] : -1;
  }

  void recurse(std::size_t depth, double cost) {
    if (cost >= best_cost_)
      return;
    if (depth == order_.size()) {
      best_cost_ = cost;
      best_ = place_;
      return;
    }
    int u = order_[depth];
    double l = p_.units[u].cpu_load;
    for (int q = 0; q < static_cast<int>(p_.nodes.size()); ++q) {
      double delta = m_.migrationCost(u, currentOf(u), q) + m_.overloadCost(q, load_[q] + l) -
                     m_.overloadCost(q, load_[q]);
      for (int e : adj_[u]) {
        const Edge &edge = p_.edges[e];
        int v = edge.caller == u ? edge.callee : edge.caller;
        if (!assigned_[v])
          continue;
        delta +=
            edge.caller == u ? m_.edgeCost(edge, q, place_[v]) : m_.edgeCost(edge, place_[v], q);
      }
      place_[u] = q;
      assigned_[u] = true;
      load_[q] += l;
      recurse(depth + 1, cost + delta);
      load_[q] -= l;
      assigned_[u] = false;
      place_[u] = -1;
    }
  }

  const CostModel &m_;
  const Problem &p_;
  std::vector<int> order_;
  Placement place_, best_;
  double best_cost_, base_ = 0;
  std::vector<double> load_;
  std::vector<std::vector<int>> adj_;
  std::vector<bool> assigned_;
};

} // namespace

std::optional<Placement> exactPlacement(const CostModel &model, double upper_bound, int max_units) {
  const Problem &p = model.problem();
  Placement start(p.units.size(), -1);
  std::vector<int> free_units;
  std::vector<double> weight(p.units.size(), 0);
  for (const Edge &e : p.edges) {
    weight[e.caller] += e.calls_per_s + e.call_bytes_per_s + e.reply_bytes_per_s;
    weight[e.callee] += e.calls_per_s + e.call_bytes_per_s + e.reply_bytes_per_s;
  }
  for (std::size_t u = 0; u < p.units.size(); ++u) {
    const Unit &unit = p.units[u];
    int cur = u < p.current.size() ? p.current[u] : -1;
    if (unit.pinned_node >= 0)
      start[u] = unit.pinned_node;
    else if (unit.load_balanced)
      start[u] = cur >= 0 ? cur : 0;
    else
      free_units.push_back(static_cast<int>(u));
  }
  if (static_cast<int>(free_units.size()) > max_units)
    return std::nullopt;
  // Heavily connected units first: their cut costs raise the bound early.
  std::stable_sort(free_units.begin(), free_units.end(), [&](int a, int b) {
    return weight[a] + p.units[a].cpu_load > weight[b] + p.units[b].cpu_load;
  });
  // A little above the given bound, so that a placement of exactly that cost is found.
  Search search(model, free_units, start, upper_bound * (1 + 1e-6) + 1e-12);
  return search.run();
}

} // namespace distnode::heuristic
