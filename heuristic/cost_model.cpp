// cost_model.cpp - the cost of a placement.
#include "heuristic/cost_model.h"

#include <algorithm>

namespace distnode::heuristic {

Problem Problem::uniform(std::vector<Node> nodes, Link link) {
  Problem p;
  p.links.assign(nodes.size(), std::vector<Link>(nodes.size(), link));
  p.nodes = std::move(nodes);
  return p;
}

CostModel::CostModel(const Problem &problem) : problem_(problem) {
  const std::size_t k = problem.nodes.size();
  const CallCosts &c = problem.call_costs;
  per_call_.assign(k, std::vector<double>(k, 0));
  per_byte_.assign(k, std::vector<double>(k, 0));
  for (std::size_t a = 0; a < k; ++a)
    for (std::size_t b = 0; b < k; ++b) {
      if (a == b)
        continue;
      const Link &there = problem.links[a][b], &back = problem.links[b][a];
      // A call and its reply: marshal, travel, unmarshal, each way.
      per_call_[a][b] =
          2 * (c.marshal_s_per_call + c.unmarshal_s_per_call) + there.latency_s + back.latency_s;
      per_byte_[a][b] =
          c.marshal_s_per_byte + c.unmarshal_s_per_byte + 1.0 / there.bandwidth_bytes_s;
    }
}

double CostModel::edgeCost(const Edge &e, int from, int to) const {
  if (from == to)
    return 0;
  return e.calls_per_s * per_call_[from][to] + e.call_bytes_per_s * per_byte_[from][to] +
         e.reply_bytes_per_s * per_byte_[to][from];
}

double CostModel::migrationSeconds(int u, int from, int to) const {
  const Unit &unit = problem_.units[u];
  if (from < 0 || from == to || unit.state_bytes <= 0)
    return 0;
  return unit.state_bytes * per_byte_[from][to] + problem_.links[from][to].latency_s;
}

double CostModel::migrationCost(int u, int from, int to) const {
  return migrationSeconds(u, from, to) / problem_.migration_horizon_s;
}

double CostModel::overloadCost(int n, double load) const {
  return problem_.overload_penalty * std::max(0.0, load - problem_.nodes[n].cpu_capacity);
}

CostBreakdown CostModel::evaluate(const Placement &p) const {
  CostBreakdown cost;
  std::vector<double> load(problem_.nodes.size(), 0);
  for (std::size_t u = 0; u < problem_.units.size(); ++u) {
    const Unit &unit = problem_.units[u];
    if (unit.load_balanced)
      continue;
    load[p[u]] += unit.cpu_load;
    int from = u < problem_.current.size() ? problem_.current[u] : -1;
    cost.migration += migrationCost(static_cast<int>(u), from, p[u]);
  }
  for (const Edge &e : problem_.edges) {
    if (problem_.units[e.caller].load_balanced || problem_.units[e.callee].load_balanced)
      continue;
    cost.communication += edgeCost(e, p[e.caller], p[e.callee]);
  }
  for (std::size_t n = 0; n < load.size(); ++n)
    cost.overload += overloadCost(static_cast<int>(n), load[n]);
  return cost;
}

} // namespace distnode::heuristic
