// planner.cpp - the online placement decision.
#include "heuristic/planner.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

namespace distnode::heuristic {

namespace {

std::string format(const char *fmt, double v) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, fmt, v);
  return buffer;
}

// "41.0 ms/s", "2.30 s/s", "850 us/s"
std::string rate(double s_per_s) {
  if (s_per_s >= 1)
    return format("%.2f s/s", s_per_s);
  if (s_per_s >= 1e-3)
    return format("%.1f ms/s", s_per_s * 1e3);
  return format("%.0f us/s", s_per_s * 1e6);
}

// Why unit u moved from `before` to `after`: the edge whose cost fell most, or the overload.
Move explain(const CostModel &m, int u, const Placement &before, const Placement &after) {
  const Problem &p = m.problem();
  Move mv{u, before[u], after[u], 0, ""};
  double best = 0;
  int partner = -1;
  double comm_saved = 0;
  for (const Edge &e : p.edges) {
    if (e.caller != u && e.callee != u)
      continue;
    if (p.units[e.caller].load_balanced || p.units[e.callee].load_balanced)
      continue;
    int v = e.caller == u ? e.callee : e.caller;
    // This edge with only u moved, the others where they end up.
    double old_cost =
        e.caller == u ? m.edgeCost(e, before[u], after[v]) : m.edgeCost(e, after[v], before[u]);
    double new_cost = m.edgeCost(e, after[e.caller], after[e.callee]);
    comm_saved += old_cost - new_cost;
    if (old_cost - new_cost > best) {
      best = old_cost - new_cost;
      partner = v;
    }
  }
  std::vector<double> load(p.nodes.size(), 0);
  for (std::size_t w = 0; w < p.units.size(); ++w)
    if (!p.units[w].load_balanced)
      load[after[w]] += p.units[w].cpu_load;
  double l = p.units[u].cpu_load;
  double overload_saved =
      m.overloadCost(mv.from, load[mv.from] + l) - m.overloadCost(mv.from, load[mv.from]) -
      (m.overloadCost(mv.to, load[mv.to]) - m.overloadCost(mv.to, load[mv.to] - l));
  mv.saves_s_per_s = comm_saved + overload_saved;
  std::string head =
      "moved `" + p.units[u].name + "` " + p.nodes[mv.from].name + "→" + p.nodes[mv.to].name + ": ";
  if (overload_saved > comm_saved && overload_saved > 0)
    mv.explanation = head + "relieves the overload of " + p.nodes[mv.from].name + " (" +
                     format("%.2f", l) + " CPU s/s moved)";
  else if (partner >= 0)
    mv.explanation =
        head + "saves " + rate(best) + " of remote calls with `" + p.units[partner].name + "`";
  else
    mv.explanation = head + "follows the units it shares calls with";
  return mv;
}

} // namespace

std::vector<ReplicaSet> replicaSets(const CostModel &m, const Placement &placement) {
  const Problem &p = m.problem();
  std::vector<double> spare(p.nodes.size());
  for (std::size_t n = 0; n < p.nodes.size(); ++n)
    spare[n] = p.nodes[n].cpu_capacity;
  for (std::size_t u = 0; u < p.units.size(); ++u)
    if (!p.units[u].load_balanced)
      spare[placement[u]] -= p.units[u].cpu_load;
  std::vector<ReplicaSet> sets;
  for (std::size_t u = 0; u < p.units.size(); ++u) {
    if (!p.units[u].load_balanced)
      continue;
    ReplicaSet rs{static_cast<int>(u), {}};
    double total = 0;
    for (double s : spare)
      total += std::max(0.0, s);
    bool by_spare = total > 1e-12;
    if (!by_spare)
      for (const Node &node : p.nodes)
        total += node.cpu_capacity;
    for (std::size_t n = 0; n < p.nodes.size(); ++n) {
      double w = by_spare ? std::max(0.0, spare[n]) : p.nodes[n].cpu_capacity;
      if (w > 0)
        rs.shares.push_back({static_cast<int>(n), w / total});
    }
    // The replicas now use the spare capacity they were given.
    for (auto [n, share] : rs.shares)
      spare[n] -= share * p.units[u].cpu_load;
    sets.push_back(std::move(rs));
  }
  return sets;
}

Plan Planner::plan(const Problem &problem, double now_s) {
  const std::size_t n = problem.units.size();
  last_moved_.resize(n, -std::numeric_limits<double>::infinity());
  last_override_.resize(n, -std::numeric_limits<double>::infinity());
  CostModel model(problem);

  Placement current = problem.current;
  bool complete = current.size() == n &&
                  std::all_of(current.begin(), current.end(), [](int c) { return c >= 0; });
  PartitionOptions options = options_.partition;
  options.frozen.assign(n, false);
  for (std::size_t u = 0; u < n && complete; ++u)
    options.frozen[u] = now_s - last_moved_[u] < options_.cooldown_s;

  Plan plan;
  Placement proposed = partition(model, options);
  auto costOf = [&](const Placement &placement) { return model.evaluate(placement).running(); };
  // Seconds of shipping state to get from the current placement to `placement`.
  auto migrationTo = [&](const Placement &placement) {
    double seconds = 0;
    for (std::size_t u = 0; u < n; ++u)
      seconds += model.migrationSeconds(static_cast<int>(u), current[u], placement[u]);
    return seconds;
  };
  if (complete &&
      std::find(options.frozen.begin(), options.frozen.end(), true) != options.frozen.end()) {
    // Would moving units in their cool-down save most of the cost, beyond what the held plan
    // saves? Then the workload changed. A unit moves so at most once per cool-down: a
    // workload that changes every round cannot make it flap.
    PartitionOptions unfrozen_options = options;
    for (std::size_t u = 0; u < n; ++u)
      unfrozen_options.frozen[u] = now_s - last_override_[u] < options_.cooldown_s;
    Placement unfrozen = partition(model, unfrozen_options);
    double now_cost = costOf(current), held_cost = costOf(proposed);
    double extra = held_cost - costOf(unfrozen);
    if (extra > options_.cooldown_override * now_cost &&
        extra > options_.cooldown_override_floor_s_per_s &&
        (now_cost - held_cost + extra) * problem.migration_horizon_s > migrationTo(unfrozen)) {
      proposed = std::move(unfrozen);
      plan.cooldown_overridden = true;
    }
  }
  plan.proposed_cost = model.evaluate(proposed);
  if (!complete) { // new units must go somewhere: nothing to compare with
    plan.accepted = true;
    plan.reason = "initial placement";
    plan.placement = proposed;
  } else {
    plan.current_cost = model.evaluate(current);
    double now_cost = plan.current_cost.running();
    double saved = now_cost - plan.proposed_cost.running();
    double migration_s = migrationTo(proposed);
    if (proposed == current) {
      plan.reason = "the current placement is the best found";
    } else if (saved <= options_.hysteresis * now_cost) {
      plan.reason = "saves " + rate(std::max(0.0, saved)) + ", not more than " +
                    format("%.0f%%", options_.hysteresis * 100) + " of the current cost " +
                    rate(now_cost);
    } else if (saved * problem.migration_horizon_s <= migration_s) {
      plan.reason = "saves " + rate(saved) + " but moving state takes " +
                    format("%.3f s", migration_s) + ", not paid back within " +
                    format("%.0f s", problem.migration_horizon_s);
    } else {
      plan.accepted = true;
      plan.reason = "saves " + rate(saved) + " of " + rate(now_cost);
      if (plan.cooldown_overridden)
        plan.reason += format(" (more than %.0f%%: units in their cool-down may move)",
                              options_.cooldown_override * 100);
    }
    plan.placement = plan.accepted ? proposed : current;
  }
  plan.cooldown_overridden = plan.cooldown_overridden && plan.accepted && complete;
  plan.cost = model.evaluate(plan.placement);
  if (plan.accepted && complete)
    for (std::size_t u = 0; u < n; ++u)
      if (plan.placement[u] != current[u]) {
        plan.moves.push_back(explain(model, static_cast<int>(u), current, plan.placement));
        if (plan.cooldown_overridden && now_s - last_moved_[u] < options_.cooldown_s)
          last_override_[u] = now_s;
        last_moved_[u] = now_s;
      }
  plan.replicas = replicaSets(model, plan.placement);
  return plan;
}

void Planner::notMoved(int unit, double previous_move_s) {
  if (unit < 0 || static_cast<std::size_t>(unit) >= last_moved_.size())
    return;
  if (last_override_[unit] == last_moved_[unit]) // that move was an override: it did not count
    last_override_[unit] = -std::numeric_limits<double>::infinity();
  last_moved_[unit] = previous_move_s;
}

double Planner::lastMoved(int unit) const {
  return unit >= 0 && static_cast<std::size_t>(unit) < last_moved_.size()
             ? last_moved_[unit]
             : -std::numeric_limits<double>::infinity();
}

} // namespace distnode::heuristic
