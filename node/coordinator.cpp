// coordinator.cpp - the online placement loop's decisions.
#include "node/coordinator.h"

#include "heuristic/cost_model.h"
#include "jit/program_analysis.h"
#include "node/cluster_config.h"

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <limits>

namespace distnode::node {

namespace {

// A load-balanced unit's replica set is re-spread when a node's share of its calls would move
// by more than kReplicaShareStep, or a node would join (with a share of at least
// kReplicaJoinShare) or leave (below kReplicaLeaveShare) it (see State::respread).
constexpr double kReplicaShareStep = 0.2;
constexpr double kReplicaJoinShare = 0.05;
constexpr double kReplicaLeaveShare = 0.01;

// The least a planner's change must save, in seconds per second (see Coordinator::round):
// half a percent of a core. Below it, the measured costs do not tell placements apart: a unit
// called a few times a second from two nodes costs a few ms/s wherever it is, and 1-2 ms/s
// "savings" from the noise of the link measurements moved it at every cool-down.
constexpr double kMinGainSPerS = 5e-3;
// A bound on how much more CPU than they got a node's units are taken to want.
constexpr double kMaxDemandFactor = 8;
// Calls made per call received above which a unit's frames are taken to run long.
constexpr double kLongFrameCalls = 1000;
// A new phase (phaseChanged): a rate that changed by this factor within one round, and
// reached at least the floor (CPU seconds per second; calls per second) before or after.
constexpr double kPhaseChangeFactor = 8;
constexpr double kPhaseFloorCpu = 0.02;
constexpr double kPhaseFloorCalls = 50;

struct Traffic {
  double calls = 0, call_bytes = 0, reply_bytes = 0;
};

// A rate that changed this much within one round is a new phase (see State::merge).
bool phaseChanged(double smoothed, double recent, double floor) {
  double high = std::max(smoothed, recent), low = std::min(smoothed, recent);
  return high >= floor && high >= kPhaseChangeFactor * low;
}

// A change is a new phase only if it rests on this many events on its larger side, seen or
// expected from the other side's rate (calls; CPU samples, one per millisecond of CPU): short
// spans (a look, a round brought early) must not take a handful of calls for a phase.
constexpr double kPhaseMinEvents = 32;
constexpr double kPhaseMinCpuS = 0.032;

// The one rule of a new phase, for rounds (State::merge) and looks (showsNewPhase): a rate that
// went from `older` to `newer` changed eightfold (phaseChanged), and what it counts (calls,
// samples, CPU seconds) reached `least` in the newer span, `seen` there or `expected` there at
// the older rate.
bool newPhaseOf(double older, double newer, double floor, double seen, double expected,
                double least) {
  return std::max(seen, expected) >= least && phaseChanged(older, newer, floor);
}

std::string nodeList(const std::vector<std::string> &names) {
  std::string out;
  for (const auto &n : names)
    out += (out.empty() ? "`" : ", `") + n + "`";
  return out;
}

} // namespace

struct Coordinator::State {
  mutable std::mutex mu;
  std::condition_variable reported; ///< a report was added

  // ---- the program and the cluster (fixed) ----
  std::vector<std::string> unit_names;
  std::vector<std::vector<std::string>> unit_functions;
  std::vector<int> fixed_node;        ///< Home/Pinned: their node; -1 otherwise
  std::vector<double> state_bytes;    ///< shipped when the unit moves
  std::vector<std::string> why_fixed; ///< "" for units the planner may move
  std::vector<bool> load_balanced;    ///< by unit: placed by replica sets
  std::vector<int> pid_unit;          ///< unit of each profile id (-1: none)
  std::vector<std::string> node_names;
  std::vector<double> capacity; ///< configured, or as reported
  int entry = 0;

  // ---- the round being collected ----
  std::vector<double> round_cpu_ns;                   ///< by unit
  std::vector<double> round_node_cpu_ns;              ///< by node
  std::vector<double> round_node_calls;               ///< by node
  std::vector<int> round_reports;                     ///< by node: reports in this round
  std::vector<double> round_report_s;                 ///< by node: the time they cover
  std::vector<std::uint64_t> round_report_round;      ///< by node: the round it answered
  std::vector<std::uint64_t> newest_round;            ///< by node: the newest round answered
  std::vector<std::uint64_t> reports;                 ///< by node, since the start
  std::vector<double> last_report_s;                  ///< by node: the time its last one covers
  std::map<std::pair<int, int>, Traffic> round_edges; ///< by (caller unit, callee unit)
  /// Calls each unit made, by the node that reported them: where its frames ran.
  std::vector<std::vector<double>> round_caller_calls; ///< [unit][node]
  std::vector<int> running_at;   ///< by unit: where its frames ran last round if not its owner
  std::vector<bool> long_frames; ///< by unit: each of its calls makes many calls (see merge)

  // ---- rates (decayed) ----
  double last_round_s = 0;
  bool had_rates = false;
  std::vector<double> cpu_rate;      ///< by unit, CPU s/s
  std::vector<double> node_cpu_rate; ///< by node
  std::vector<double> node_call_rate;
  std::map<std::pair<int, int>, Traffic> edge_rate;

  // ---- measured costs ----
  std::vector<std::vector<double>> latency, bandwidth; ///< [from][to]; 0: not measured
  std::vector<std::vector<bool>> latency_by_calls, bandwidth_by_calls; ///< [from][to]
  struct RemoteTotals {
    double calls = 0, bytes = 0, marshal_ns = 0;
  };
  std::vector<RemoteTotals> remote; ///< by profile id, all nodes

  // ---- decisions ----
  AdaptOptions options;
  heuristic::Planner planner;
  std::vector<int> operator_pin;    ///< by unit; -1: none
  std::vector<bool> busy;           ///< by unit: held where it is for the next plan only
  std::vector<double> moved_before; ///< by unit: the planner's last move before the last plan
  std::vector<bool> drained;        ///< by node
  std::vector<std::string> last_move;
  std::vector<HistoryEntry> history;

  explicit State(AdaptOptions o) : options(o), planner(plannerOptions(o)) {}

  static heuristic::PlannerOptions plannerOptions(const AdaptOptions &o) {
    heuristic::PlannerOptions p;
    p.hysteresis = o.hysteresis;
    p.cooldown_s = o.cooldown_s;
    return p;
  }

  double decay(double previous, double delta, double dt) const {
    return profiler::decayedRate(previous, had_rates, delta, dt, options.half_life_s);
  }

  // Whether a round (complete: its reports cover it) shows a new phase of a rate: changed
  // eightfold, on at least `least` (events, CPU seconds) in the round or expected in it.
  bool newPhase(double previous, double delta, double dt, double floor, double least,
                bool complete) const {
    return complete && had_rates &&
           newPhaseOf(previous, delta / dt, floor, delta, previous * dt, least);
  }

  // The decayed rate, or the round's own rate when the round shows a new phase.
  double rate(double previous, double delta, double dt, double floor, double least,
              bool complete) const {
    return newPhase(previous, delta, dt, floor, least, complete) ? delta / dt
                                                                 : decay(previous, delta, dt);
  }

  void merge(double now_s, std::uint64_t round) {
    double dt = now_s - last_round_s;
    if (dt <= 0)
      return;
    // A round says something of a new phase only if the reports in it cover the round: a
    // node that sent none, or two, or one over another span (a round made early by an
    // operator's request, a node reporting at another interval) makes its counts short or
    // long by that much. Nodes that never report (profiling off) are left out.
    bool complete = true;
    for (std::size_t n = 0; n < round_reports.size(); ++n)
      if (reports[n] > 0 &&
          (round_reports[n] != 1 || (round != 0 && round_report_round[n] != round) ||
           round_report_s[n] < 0.75 * dt || round_report_s[n] > 1.33 * dt))
        complete = false;
    std::fill(round_reports.begin(), round_reports.end(), 0);
    std::fill(round_report_s.begin(), round_report_s.end(), 0.0);
    std::fill(round_report_round.begin(), round_report_round.end(), 0);
    for (std::size_t u = 0; u < cpu_rate.size(); ++u) {
      cpu_rate[u] =
          rate(cpu_rate[u], round_cpu_ns[u] / 1e9, dt, kPhaseFloorCpu, kPhaseMinCpuS, complete);
      round_cpu_ns[u] = 0;
    }
    for (std::size_t n = 0; n < node_cpu_rate.size(); ++n) {
      node_cpu_rate[n] = rate(node_cpu_rate[n], round_node_cpu_ns[n] / 1e9, dt, kPhaseFloorCpu,
                              kPhaseMinCpuS, complete);
      node_call_rate[n] = rate(node_call_rate[n], round_node_calls[n], dt, kPhaseFloorCalls,
                               kPhaseMinEvents, complete);
      round_node_cpu_ns[n] = round_node_calls[n] = 0;
    }
    for (auto &[key, t] : round_edges)
      edge_rate.try_emplace(key);
    for (auto it = edge_rate.begin(); it != edge_rate.end();) {
      Traffic add = round_edges.count(it->first) ? round_edges[it->first] : Traffic{};
      Traffic &r = it->second;
      if (newPhase(r.calls, add.calls, dt, kPhaseFloorCalls, kPhaseMinEvents, complete)) {
        r = {add.calls / dt, add.call_bytes / dt, add.reply_bytes / dt}; // bytes go with calls
      } else {
        r.calls = decay(r.calls, add.calls, dt);
        r.call_bytes = decay(r.call_bytes, add.call_bytes, dt);
        r.reply_bytes = decay(r.reply_bytes, add.reply_bytes, dt);
      }
      if (r.calls < 1e-3) // an edge that went quiet stops weighing on the planner
        it = edge_rate.erase(it);
      else
        ++it;
    }
    round_edges.clear();
    // A unit whose calls were made elsewhere than its owner has frames running there (a call
    // that started before the unit moved finishes where it started): where it runs now.
    for (std::size_t u = 0; u < round_caller_calls.size(); ++u) {
      auto &by_node = round_caller_calls[u];
      double total = 0, best = 0;
      int at = -1;
      for (std::size_t n = 0; n < by_node.size(); ++n) {
        total += by_node[n];
        if (by_node[n] > best) {
          best = by_node[n];
          at = static_cast<int>(n);
        }
      }
      running_at[u] = total > 0 && best > total / 2 ? at : -1;
      std::fill(by_node.begin(), by_node.end(), 0.0);
    }
    // A unit each of whose calls makes thousands of calls has frames that run long: moved, the
    // call in progress would stay where it started and make all of them remotely. Such a
    // caller stays where it runs; its callees come to it.
    std::vector<double> in(long_frames.size(), 0), out(long_frames.size(), 0);
    for (const auto &[key, t] : edge_rate) {
      out[key.first] += t.calls;
      in[key.second] += t.calls;
    }
    for (std::size_t u = 0; u < long_frames.size(); ++u)
      long_frames[u] = out[u] >= kLongFrameCalls * std::max(in[u], 1e-9) && out[u] > 0;
    last_round_s = now_s;
    had_rates = true;
  }

  // Marshaling cost per call and per byte: a least-squares line through each function's mean
  // (bytes per call, marshal time per call), weighted by its calls. The caller's side is
  // measured (marshal the arguments, unmarshal the reply); the callee's is taken to be the same.
  bool callCosts(heuristic::CallCosts &costs) const {
    double w = 0, sx = 0, sy = 0, sxx = 0, sxy = 0;
    int points = 0;
    for (const RemoteTotals &r : remote) {
      if (r.calls < 1)
        continue;
      double x = r.bytes / r.calls, y = r.marshal_ns * 1e-9 / r.calls;
      w += r.calls;
      sx += r.calls * x;
      sy += r.calls * y;
      sxx += r.calls * x * x;
      sxy += r.calls * x * y;
      ++points;
    }
    if (points == 0)
      return false;
    double mx = sx / w, my = sy / w, var = sxx / w - mx * mx;
    double per_byte = var > 1e-9 ? std::max(0.0, (sxy / w - mx * my) / var) : 0;
    double per_call = std::max(0.0, my - per_byte * mx);
    if (var <= 1e-9) // one size only: all of it counts per call
      per_call = my;
    costs.marshal_s_per_call = costs.unmarshal_s_per_call = per_call / 2;
    costs.marshal_s_per_byte = costs.unmarshal_s_per_byte = per_byte / 2;
    return true;
  }

  int effectivePin(std::size_t u, const std::vector<std::uint16_t> &current) const {
    if (fixed_node[u] >= 0)
      return fixed_node[u];
    if (!why_fixed[u].empty() || busy[u])
      return current[u];
    // Its frames run elsewhere (they started before it moved and keep running there): its
    // callees must come to them, not follow it to a node where nothing of it runs yet.
    // (Not on a drained node: the operator wants it empty.)
    if (running_at[u] >= 0 && running_at[u] != current[u] && !drained[running_at[u]])
      return running_at[u];
    if (long_frames[u] && !drained[current[u]])
      return current[u];
    if (operator_pin[u] >= 0)
      return operator_pin[u];
    return -1;
  }

  heuristic::Problem problem(const std::vector<std::uint16_t> &current) const {
    heuristic::Problem p;
    std::size_t nn = node_names.size();
    for (std::size_t n = 0; n < nn; ++n)
      p.nodes.push_back({node_names[n], drained[n] ? 0.0 : capacity[n]});
    p.links.assign(nn, std::vector<heuristic::Link>(nn));
    for (std::size_t a = 0; a < nn; ++a)
      for (std::size_t b = 0; b < nn; ++b) {
        if (latency[a][b] > 0)
          p.links[a][b].latency_s = latency[a][b];
        if (bandwidth[a][b] > 0)
          p.links[a][b].bandwidth_bytes_s = bandwidth[a][b];
      }
    for (std::size_t u = 0; u < unit_names.size(); ++u) {
      heuristic::Unit unit;
      unit.name = unit_names[u];
      unit.cpu_load = cpu_rate[u];
      unit.state_bytes = state_bytes[u];
      unit.pinned_node = effectivePin(u, current);
      unit.load_balanced = load_balanced[u];
      p.units.push_back(unit);
      p.current.push_back(current[u]);
    }
    for (const auto &[key, t] : edge_rate)
      p.edges.push_back({key.first, key.second, t.calls, t.call_bytes, t.reply_bytes});
    callCosts(p.call_costs);
    return p;
  }

  // Units the planner put on a drained node go back where they were, or to the entry node.
  void keepOffDrained(heuristic::Placement &placement,
                      const std::vector<std::uint16_t> &current) const {
    for (std::size_t u = 0; u < placement.size(); ++u)
      if (drained[placement[u]] && effectivePin(u, current) < 0)
        placement[u] = drained[current[u]] ? entry : current[u];
  }

  // Moves that gain nothing are undone: the partitioner may put idle units anywhere (every
  // node costs them the same), and each move re-links stubs on every node for nothing.
  static void keepIdleUnits(const heuristic::Problem &problem, heuristic::Placement &placement,
                            const std::vector<std::uint16_t> &current) {
    heuristic::CostModel model(problem);
    double cost = model.evaluate(placement).total();
    for (std::size_t u = 0; u < placement.size(); ++u) {
      if (placement[u] == current[u])
        continue;
      int moved_to = placement[u];
      placement[u] = current[u];
      double back = model.evaluate(placement).total();
      if (back <= cost + 1e-12)
        cost = back;
      else
        placement[u] = moved_to;
    }
  }

  // The replica sets to publish with `d`: for each load-balanced unit, the planner's set for
  // the placement (heuristic::replicaSets: nodes weighted by their spare CPU), once there is a
  // profile and every node that takes work has a known capacity; before that, the set in effect
  // less the drained nodes. A set is proposed only where it differs enough from the one in
  // effect: a node joins it with a share of at least kReplicaJoinShare and leaves it below
  // kReplicaLeaveShare (apart, so that a node near the edge does not flap), or a node's share
  // moves by more than kReplicaShareStep. Shares move with every profile; the dispatcher's
  // live queue depths do the fine work between epochs. A drained node has no replica.
  void respread(const heuristic::Problem &p, const std::vector<std::uint16_t> &current,
                const ReplicaSets &replicas, Decision &d) const {
    if (replicas.size() != unit_names.size())
      return;
    bool planned = had_rates;
    for (std::size_t n = 0; n < capacity.size(); ++n)
      if (!drained[n] && !(capacity[n] > 0))
        planned = false;
    std::map<int, std::vector<std::pair<int, double>>> shares; // by unit
    if (planned) {
      heuristic::Placement placement(d.change ? d.owners.begin() : current.begin(),
                                     d.change ? d.owners.end() : current.end());
      heuristic::CostModel model(p);
      for (const heuristic::ReplicaSet &set : heuristic::replicaSets(model, placement))
        shares[set.unit] = set.shares;
    }
    ReplicaSets next = replicas;
    bool any = false;
    for (std::size_t u = 0; u < replicas.size(); ++u) {
      if (!load_balanced[u])
        continue;
      const std::vector<Replica> &now = replicas[u];
      double now_total = totalWeight(now);
      std::vector<Replica> proposed;
      std::string why;
      if (planned) {
        for (auto [node, share] : shares[static_cast<int>(u)])
          if (!drained[node] &&
              share >= (findReplica(now, node) ? kReplicaLeaveShare : kReplicaJoinShare))
            proposed.push_back({static_cast<std::uint16_t>(node), static_cast<float>(share)});
        why = "shares follow the nodes' spare CPU";
      } else {
        for (const Replica &r : now)
          if (!drained[r.node])
            proposed.push_back(r); // shares kept (normalized below)
        why = "drained nodes take no calls";
      }
      if (proposed.empty()) {
        if (std::none_of(now.begin(), now.end(), [&](const Replica &r) { return drained[r.node]; }))
          continue; // no node has capacity to offer: keep what runs
        proposed.push_back({static_cast<std::uint16_t>(entry), 1.0f}); // everything drained
      }
      double total = totalWeight(proposed);
      for (Replica &r : proposed)
        r.weight = static_cast<float>(r.weight / total);
      bool differs = proposed.size() != now.size();
      for (const Replica &r : proposed) {
        const Replica *was = findReplica(now, r.node);
        if (!was || std::abs(was->weight / now_total - r.weight) > kReplicaShareStep)
          differs = true;
      }
      if (!differs)
        continue;
      any = true;
      next[u] = proposed;
      std::string text = "re-spread `" + unit_names[u] + "` (load-balanced) over ";
      for (const Replica &r : proposed) {
        char share[32];
        std::snprintf(share, sizeof share, " %.0f%%", 100.0 * r.weight);
        text += (&r == &proposed.front() ? "" : ", ") + node_names[r.node] + share;
      }
      d.replica_changes.push_back(text + ": " + why);
    }
    if (!any)
      return;
    d.replicas = std::move(next);
    if (!d.change) { // the placement of the other units stays
      d.change = true;
      d.owners = current;
      d.reason = "load-balanced units re-spread";
    }
  }

  static Decision unchanged(std::string why) {
    Decision d;
    d.reason = std::move(why);
    return d;
  }

  Decision decide(const heuristic::Problem &problem, const heuristic::Plan &plan,
                  const std::vector<std::uint16_t> &current) {
    Decision d;
    d.reason = plan.reason;
    heuristic::Placement placement = plan.placement; // the current one unless accepted
    if (plan.accepted)
      keepIdleUnits(problem, placement, current);
    keepOffDrained(placement, current);
    d.owners.assign(placement.begin(), placement.end());
    d.change = d.owners != current;
    if (!d.change)
      return d;
    if (plan.accepted)
      d.predicted_gain_s_per_s = plan.current_cost.running() - plan.proposed_cost.running();
    for (std::size_t u = 0; u < d.owners.size(); ++u) {
      if (d.owners[u] == current[u])
        continue;
      auto m = std::find_if(plan.moves.begin(), plan.moves.end(),
                            [&](const heuristic::Move &mv) { return mv.unit == int(u); });
      if (plan.accepted && m != plan.moves.end() && m->to == d.owners[u]) {
        d.moves.push_back(*m);
        continue;
      }
      heuristic::Move forced;
      forced.unit = static_cast<int>(u);
      forced.from = current[u];
      forced.to = d.owners[u];
      forced.explanation = "moved `" + unit_names[u] + "` " + node_names[forced.from] + "→" +
                           node_names[forced.to] + ": node " + node_names[forced.from] +
                           " is drained";
      d.moves.push_back(forced);
    }
    if (!plan.accepted)
      d.reason = "draining";
    return d;
  }
};

Coordinator::Coordinator(const jit::ProgramAnalysis &analysis,
                         std::vector<std::string> profile_functions, const ClusterConfig &config,
                         int entry, AdaptOptions options)
    : state_(std::make_unique<State>(options)) {
  State &s = *state_;
  s.entry = entry;
  for (const NodeConfig &n : config.nodes) {
    s.node_names.push_back(n.name);
    s.capacity.push_back(n.cpu_capacity); // 0 until the node reports its cores
  }
  std::size_t nn = s.node_names.size();
  for (const jit::PlacementUnit &u : analysis.units) {
    s.unit_names.push_back(u.name);
    s.unit_functions.push_back(u.functions);
    int fixed = -1;
    std::string why;
    if (u.placement == jit::Placement::Home) {
      fixed = entry;
      const jit::FunctionInfo *f = analysis.find(u.functions.front());
      why = f ? f->reason : "runs on the entry node";
    } else if (u.placement == jit::Placement::Pinned) {
      fixed = std::max(0, config.nodeIndex(u.pin_node));
      why = "pinned to `" + u.pin_node + "` by DIST_PIN";
    } else if (u.load_balanced) {
      why = "load-balanced: runs on every node of its replica set";
    } else if (u.stateful && !u.migratable) {
      why = u.migrate_why + "; it stays where it started";
    } else if (u.migratable && u.state_bytes > config.max_call_bytes) {
      why = "its state (" + std::to_string(u.state_bytes) +
            " bytes) is larger than one message may be (max_message_mb); it stays where it "
            "started";
    }
    s.fixed_node.push_back(fixed);
    s.why_fixed.push_back(why);
    s.load_balanced.push_back(u.load_balanced);
    s.state_bytes.push_back(static_cast<double>(u.state_bytes));
  }
  std::size_t nu = s.unit_names.size();
  s.pid_unit.assign(profile_functions.size(), -1);
  for (std::size_t pid = 0; pid < profile_functions.size(); ++pid)
    if (const jit::FunctionInfo *f = analysis.find(profile_functions[pid]))
      s.pid_unit[pid] = f->unit;
  // Calls from outside every profiled function (a thread's start routine): charged to main's
  // unit, on the entry node. Simplified: a thread started elsewhere is counted the same way.
  if (!s.pid_unit.empty())
    if (const jit::FunctionInfo *main_fn = analysis.find("main"))
      s.pid_unit[profiler::kRoot] = main_fn->unit;
  s.round_cpu_ns.assign(nu, 0);
  s.cpu_rate.assign(nu, 0);
  s.round_node_cpu_ns.assign(nn, 0);
  s.round_node_calls.assign(nn, 0);
  s.round_reports.assign(nn, 0);
  s.round_report_s.assign(nn, 0.0);
  s.round_report_round.assign(nn, 0);
  s.newest_round.assign(nn, 0);
  s.last_report_s.assign(nn, 0.0);
  s.reports.assign(nn, 0);
  s.node_cpu_rate.assign(nn, 0);
  s.node_call_rate.assign(nn, 0);
  s.latency.assign(nn, std::vector<double>(nn, 0));
  s.bandwidth.assign(nn, std::vector<double>(nn, 0));
  s.latency_by_calls.assign(nn, std::vector<bool>(nn, false));
  s.bandwidth_by_calls.assign(nn, std::vector<bool>(nn, false));
  s.remote.assign(profile_functions.size(), {});
  s.operator_pin.assign(nu, -1);
  s.busy.assign(nu, false);
  s.round_caller_calls.assign(nu, std::vector<double>(nn, 0));
  s.running_at.assign(nu, -1);
  s.long_frames.assign(nu, false);
  s.moved_before.assign(nu, -std::numeric_limits<double>::infinity());
  s.drained.assign(nn, false);
  s.last_move.assign(nu, "");
}

Coordinator::~Coordinator() = default;

std::optional<std::string> Coordinator::check(const NodeReport &r) const {
  const State &s = *state_;
  std::size_t np = s.pid_unit.size();
  if (r.delta.cpu_ns.size() > np || r.delta.samples.size() > np)
    return "a profile delta lists " + std::to_string(r.delta.cpu_ns.size()) +
           " functions, the program has " + std::to_string(np);
  for (const auto &e : r.delta.edges)
    if (e.caller >= np || e.callee >= np)
      return "a profile delta names profile id " + std::to_string(std::max(e.caller, e.callee)) +
             ", the program has " + std::to_string(np);
  for (const auto &m : r.delta.remote)
    if (m.function >= np)
      return "a profile delta names profile id " + std::to_string(m.function);
  // A latency of a minute or a bandwidth below 1 KB/s is no measurement of a working link
  // (and 1/bandwidth must stay finite in the cost model).
  for (const auto &l : r.links)
    if (l.node < 0 || static_cast<std::size_t>(l.node) >= s.node_names.size() ||
        !(l.latency_s >= 0 && l.latency_s <= 60) ||
        !(l.bandwidth_bytes_s == 0 || (l.bandwidth_bytes_s >= 1e3 && l.bandwidth_bytes_s <= 1e13)))
      return "a profile delta has a bad link measurement";
  if (!(r.cpu_capacity >= 0) || !std::isfinite(r.cpu_capacity) || r.cpu_capacity > 1e6)
    return "a profile delta has a bad CPU capacity";
  if (!(r.delta.elapsed_s >= 0) || !std::isfinite(r.delta.elapsed_s))
    return "a profile delta has a bad interval";
  if (!(r.run_s >= 0) || !(r.runnable_wait_s >= 0) || !std::isfinite(r.run_s) ||
      !std::isfinite(r.runnable_wait_s))
    return "a profile delta has bad run times";
  return std::nullopt;
}

void Coordinator::addReport(int node, const NodeReport &r, std::uint64_t round) {
  State &s = *state_;
  std::lock_guard lock(s.mu);
  if (node < 0 || static_cast<std::size_t>(node) >= s.node_names.size())
    return;
  ++s.round_reports[node];
  s.round_report_s[node] += r.delta.elapsed_s;
  s.round_report_round[node] = round;
  s.newest_round[node] = std::max(s.newest_round[node], round);
  s.last_report_s[node] = r.delta.elapsed_s;
  ++s.reports[node];
  s.reported.notify_all();
  if (r.cpu_capacity > 0)
    s.capacity[node] = r.cpu_capacity;
  // What the units would use with the CPU to themselves (NodeReport::run_s).
  double demand = r.run_s > 1e-3 ? std::min(kMaxDemandFactor, 1 + r.runnable_wait_s / r.run_s) : 1;
  for (std::size_t pid = 0; pid < r.delta.cpu_ns.size(); ++pid) {
    double ns = static_cast<double>(r.delta.cpu_ns[pid]);
    s.round_node_cpu_ns[node] += ns;
    if (int u = s.pid_unit[pid]; u >= 0)
      s.round_cpu_ns[u] += ns * demand;
  }
  for (const auto &e : r.delta.edges) {
    s.round_node_calls[node] += static_cast<double>(e.calls);
    int cu = s.pid_unit[e.caller], ku = s.pid_unit[e.callee];
    if (cu >= 0 && e.caller != profiler::kRoot)
      s.round_caller_calls[cu][node] += static_cast<double>(e.calls);
    if (cu < 0 || ku < 0 || cu == ku)
      continue;
    Traffic &t = s.round_edges[{cu, ku}];
    t.calls += static_cast<double>(e.calls);
    t.call_bytes += static_cast<double>(e.call_bytes);
    t.reply_bytes += static_cast<double>(e.reply_bytes);
  }
  for (const auto &m : r.delta.remote) {
    State::RemoteTotals &t = s.remote[m.function];
    t.calls += static_cast<double>(m.calls);
    t.bytes += static_cast<double>(m.bytes);
    t.marshal_ns += static_cast<double>(m.marshal_ns);
  }
  for (const auto &l : r.links) {
    if (l.latency_s > 0) {
      s.latency[node][l.node] = l.latency_s;
      s.latency_by_calls[node][l.node] = l.latency_by_calls;
    }
    if (l.bandwidth_bytes_s > 0) {
      s.bandwidth[node][l.node] = l.bandwidth_bytes_s;
      s.bandwidth_by_calls[node][l.node] = l.bandwidth_by_calls;
    }
  }
}

std::vector<std::uint64_t> Coordinator::reportCounts() const {
  const State &s = *state_;
  std::lock_guard lock(s.mu);
  return s.reports;
}

bool Coordinator::waitForReports(std::uint64_t round, const std::vector<bool> &from,
                                 std::chrono::steady_clock::time_point deadline) {
  State &s = *state_;
  std::unique_lock lock(s.mu);
  return s.reported.wait_until(lock, deadline, [&] {
    for (std::size_t n = 0; n < from.size() && n < s.newest_round.size(); ++n)
      if (from[n] && s.newest_round[n] < round)
        return false;
    return true;
  });
}

Decision Coordinator::round(const std::vector<std::uint16_t> &current, double now_s,
                            const ReplicaSets &replicas, std::uint64_t round) {
  State &s = *state_;
  std::lock_guard lock(s.mu);
  s.merge(now_s, round);
  if (!s.options.enabled)
    return State::unchanged("adaptation is frozen");
  heuristic::Problem p = s.problem(current);
  for (std::size_t u = 0; u < s.moved_before.size(); ++u)
    s.moved_before[u] = s.planner.lastMoved(static_cast<int>(u));
  heuristic::Plan plan = s.planner.plan(p, now_s);
  std::fill(s.busy.begin(), s.busy.end(), false);
  Decision d = s.decide(p, plan, current);
  // Hysteresis is relative: when the whole cost is tiny, so are the moves it lets through.
  // A move re-links stubs on every node (and a unit with state holds its calls while it
  // moves); it must save at least this much.
  if (d.change && d.predicted_gain_s_per_s < kMinGainSPerS &&
      std::none_of(d.moves.begin(), d.moves.end(),
                   [&](const heuristic::Move &m) { return s.drained[m.from]; })) {
    char why[96];
    std::snprintf(why, sizeof why, "saves %.3f ms/s, below the floor of %.1f ms/s",
                  d.predicted_gain_s_per_s * 1e3, kMinGainSPerS * 1e3);
    d = State::unchanged(why);
  }
  s.respread(p, current, replicas, d);
  return d;
}

Decision Coordinator::replan(const std::vector<std::uint16_t> &current, double now_s,
                             const Decision &failed, const std::vector<int> &busy,
                             const ReplicaSets &replicas) {
  notMoved(failed, busy);
  double at = now_s;
  {
    std::lock_guard lock(state_->mu);
    at = state_->last_round_s; // no time has passed: the rates stay as they are (no merge)
  }
  return round(current, at, replicas);
}

void Coordinator::notMoved(const Decision &failed, const std::vector<int> &busy) {
  {
    State &s = *state_;
    std::lock_guard lock(s.mu);
    // A busy unit keeps its cool-down: trying again at every round would hold its calls at
    // the gate each time.
    for (const heuristic::Move &m : failed.moves)
      if (std::find(busy.begin(), busy.end(), m.unit) == busy.end())
        s.planner.notMoved(m.unit, s.moved_before[m.unit]);
    for (int u : busy)
      if (u >= 0 && static_cast<std::size_t>(u) < s.busy.size())
        s.busy[u] = true;
  }
}

Decision Coordinator::repartition(const std::vector<std::uint16_t> &current, double now_s,
                                  const ReplicaSets &replicas) {
  State &s = *state_;
  std::lock_guard lock(s.mu);
  s.merge(now_s, 0);
  heuristic::PlannerOptions o = State::plannerOptions(s.options);
  o.hysteresis = 0;
  o.cooldown_s = 0;
  heuristic::Planner fresh(o);
  heuristic::Problem p = s.problem(current);
  heuristic::Plan plan = fresh.plan(p, now_s);
  std::fill(s.busy.begin(), s.busy.end(), false);
  Decision d = s.decide(p, plan, current);
  s.respread(p, current, replicas, d);
  return d;
}

std::optional<std::string> Coordinator::checkMove(int unit, int node) const {
  return checkMove(unit, node, /*pins_hold=*/true);
}

std::optional<std::string> Coordinator::checkMove(int unit, int node, bool pins_hold) const {
  const State &s = *state_;
  std::lock_guard lock(s.mu);
  if (unit < 0 || static_cast<std::size_t>(unit) >= s.unit_names.size())
    return "no such unit";
  if (node < 0 || static_cast<std::size_t>(node) >= s.node_names.size())
    return "no such node; the nodes are " + nodeList(s.node_names);
  if (!s.why_fixed[unit].empty())
    return "`" + s.unit_names[unit] + "` cannot move: " + s.why_fixed[unit];
  if (s.drained[node])
    return "node `" + s.node_names[node] + "` is drained; `undrain` it first";
  // The operator's pin holds until unpinned (the planner would move the unit back).
  if (int pin = s.operator_pin[unit]; pins_hold && pin >= 0 && pin != node)
    return "`" + s.unit_names[unit] + "` is pinned to " + s.node_names[pin] +
           " by the operator; `unpin " + s.unit_names[unit] + "` first";
  return std::nullopt;
}

std::optional<std::string> Coordinator::pin(int unit, int node) {
  if (node >= 0) // a new pin replaces the old one
    if (auto why = checkMove(unit, node, /*pins_hold=*/false))
      return why;
  State &s = *state_;
  std::lock_guard lock(s.mu);
  if (unit < 0 || static_cast<std::size_t>(unit) >= s.unit_names.size())
    return "no such unit";
  s.operator_pin[unit] = node;
  return std::nullopt;
}

std::optional<std::string> Coordinator::drain(int node, bool drained) {
  State &s = *state_;
  std::lock_guard lock(s.mu);
  if (node < 0 || static_cast<std::size_t>(node) >= s.node_names.size())
    return "no such node; the nodes are " + nodeList(s.node_names);
  if (drained && node == s.entry)
    return "the entry node `" + s.node_names[node] + "` runs main and cannot be drained";
  s.drained[node] = drained;
  return std::nullopt;
}

void Coordinator::setOptions(const AdaptOptions &options) {
  State &s = *state_;
  std::lock_guard lock(s.mu);
  bool planner_changed =
      options.hysteresis != s.options.hysteresis || options.cooldown_s != s.options.cooldown_s;
  s.options = options;
  if (planner_changed) // the planner keeps its cool-down clock; a new one starts afresh
    s.planner = heuristic::Planner(State::plannerOptions(options));
}

AdaptOptions Coordinator::options() const {
  std::lock_guard lock(state_->mu);
  return state_->options;
}

void Coordinator::recordEpoch(std::uint64_t epoch, const std::vector<std::uint16_t> &owners,
                              double now_s, const std::string &trigger, const Decision &d) {
  State &s = *state_;
  std::lock_guard lock(s.mu);
  HistoryEntry h;
  h.epoch = epoch;
  h.at_s = now_s;
  h.trigger = trigger;
  h.reason = d.reason;
  h.predicted_gain_s_per_s = d.predicted_gain_s_per_s;
  for (const heuristic::Move &m : d.moves) {
    h.moves.push_back(m.explanation);
    if (static_cast<std::size_t>(m.unit) < s.last_move.size())
      s.last_move[m.unit] = m.explanation;
  }
  h.moves.insert(h.moves.end(), d.replica_changes.begin(), d.replica_changes.end());
  (void)owners;
  s.history.push_back(std::move(h));
}

std::vector<HistoryEntry> Coordinator::history() const {
  std::lock_guard lock(state_->mu);
  return state_->history;
}

ClusterView Coordinator::view(const std::vector<std::uint16_t> &current) const {
  const State &s = *state_;
  std::lock_guard lock(s.mu);
  ClusterView v;
  v.nodes = s.node_names;
  v.node_capacity = s.capacity;
  v.node_cpu_s_per_s = s.node_cpu_rate;
  v.node_calls_per_s = s.node_call_rate;
  v.latency_s = s.latency;
  v.bandwidth_bytes_s = s.bandwidth;
  v.node_report_s = s.last_report_s;
  v.latency_by_calls = s.latency_by_calls;
  v.bandwidth_by_calls = s.bandwidth_by_calls;
  v.call_costs_measured = s.callCosts(v.call_costs);
  v.options = s.options;
  for (std::size_t u = 0; u < s.unit_names.size(); ++u) {
    UnitView uv;
    uv.name = s.unit_names[u];
    uv.functions = s.unit_functions[u];
    uv.owner = u < current.size() ? current[u] : s.entry;
    uv.movable = s.why_fixed[u].empty();
    uv.why_fixed = s.why_fixed[u];
    uv.last_move = s.last_move[u];
    uv.cpu_s_per_s = s.cpu_rate[u];
    uv.pinned_by_operator = s.operator_pin[u];
    v.units.push_back(std::move(uv));
  }
  for (const auto &[key, t] : s.edge_rate) {
    v.edges.push_back({key.first, key.second, t.calls, t.call_bytes + t.reply_bytes});
    v.units[key.second].calls_per_s += t.calls;
  }
  return v;
}

int Coordinator::findUnit(const std::string &name) const {
  const State &s = *state_;
  for (std::size_t u = 0; u < s.unit_names.size(); ++u) {
    if (s.unit_names[u] == name)
      return static_cast<int>(u);
    for (const auto &f : s.unit_functions[u])
      if (f == name)
        return static_cast<int>(u);
  }
  return -1;
}

bool showsNewPhase(const NodeReport &base, const NodeReport &window) {
  const profiler::ProfileCounts &b = base.delta, &w = window.delta;
  double bs = b.elapsed_s, ws = w.elapsed_s;
  if (bs <= 0 || ws <= 0)
    return false;
  // Sorted lists (edges by caller and callee, remote calls by function), walked side by side:
  // an entry missing from one of them counted 0 there.
  auto walk = [&](const auto &base_list, const auto &window_list, auto key, auto count,
                  double floor) {
    std::size_t i = 0, j = 0;
    while (i < base_list.size() || j < window_list.size()) {
      double bc = 0, wc = 0;
      if (j == window_list.size() ||
          (i < base_list.size() && key(base_list[i]) < key(window_list[j]))) {
        bc = count(base_list[i++]);
      } else if (i == base_list.size() || key(window_list[j]) < key(base_list[i])) {
        wc = count(window_list[j++]);
      } else {
        bc = count(base_list[i++]);
        wc = count(window_list[j++]);
      }
      if (newPhaseOf(bc / bs, wc / ws, floor, wc, bc * ws / bs, kPhaseMinEvents))
        return true;
    }
    return false;
  };
  using Edge = profiler::ProfileCounts::Edge;
  using Remote = profiler::ProfileCounts::Remote;
  if (walk(
          b.edges, w.edges, [](const Edge &e) { return std::make_pair(e.caller, e.callee); },
          [](const Edge &e) { return static_cast<double>(e.calls); }, kPhaseFloorCalls) ||
      walk(
          b.remote, w.remote, [](const Remote &r) { return r.function; },
          [](const Remote &r) { return static_cast<double>(r.calls); }, kPhaseFloorCalls))
    return true;
  // CPU time by function, judged on the samples that measured it. (An overload that begins
  // shows here too: the function that starts to run.)
  for (std::size_t f = 1; f < std::min(b.cpu_ns.size(), w.cpu_ns.size()); ++f) {
    double bn = f < b.samples.size() ? static_cast<double>(b.samples[f]) : 0;
    double wn = f < w.samples.size() ? static_cast<double>(w.samples[f]) : 0;
    if (newPhaseOf(static_cast<double>(b.cpu_ns[f]) / 1e9 / bs,
                   static_cast<double>(w.cpu_ns[f]) / 1e9 / ws, kPhaseFloorCpu, wn, bn * ws / bs,
                   kPhaseMinEvents))
      return true;
  }
  return false;
}

} // namespace distnode::node
