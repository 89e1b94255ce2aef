// planner.h - the online placement decision: run the partitioner, accept its placement only
// if it pays (hysteresis, payback of migration, per-unit cool-down), explain every move, and
// size the replica sets of load-balanced units.
#ifndef DISTNODE_HEURISTIC_PLANNER_H
#define DISTNODE_HEURISTIC_PLANNER_H

#include "heuristic/cost_model.h"
#include "heuristic/partitioner.h"

#include <string>
#include <vector>

namespace distnode::heuristic {

/// Stability settings: move only for a gain above the hysteresis that pays back its migration,
/// and not again within a cool-down (docs/architecture.md, "Decisions").
struct PlannerOptions {
  /// A new placement must save more than this fraction of the current cost.
  double hysteresis = 0.05;
  /// A unit that moved stays put for this long...
  double cooldown_s = 60;
  /// ...unless moving units in their cool-down saves, beyond what the plan without them
  /// saves, more than this fraction of the current cost and more than
  /// cooldown_override_floor_s_per_s (and pays back its migration): a phase change, not noise.
  /// A unit moves so at most once per cool-down, which bounds flapping when the workload
  /// changes faster than the planner can follow; the floor keeps a converged placement, whose
  /// whole cost is small, from chasing halves of it. 1 or more: the cool-down always holds.
  double cooldown_override = 0.5;
  double cooldown_override_floor_s_per_s = 0.05;
  PartitionOptions partition;
};

/// One unit that changes node, and why.
struct Move {
  int unit = 0, from = 0, to = 0;
  double saves_s_per_s = 0; ///< communication and overload saved by this move alone
  std::string explanation;  ///< "moved `a` n0→n2: saves 41.0 ms/s of remote calls with `b`"
};

/// The nodes serving a load-balanced unit and the share of its calls each takes.
struct ReplicaSet {
  int unit = 0;
  std::vector<std::pair<int, double>> shares; ///< node, fraction of calls (sum 1)
};

/// The outcome of one planning round.
struct Plan {
  Placement placement;              ///< what to run (the current placement if not accepted)
  bool accepted = false;            ///< the partitioner's placement was taken
  std::string reason;               ///< why (not) in one sentence
  CostBreakdown cost;               ///< of `placement`
  CostBreakdown current_cost;       ///< of the current placement
  CostBreakdown proposed_cost;      ///< of the partitioner's placement
  std::vector<Move> moves;          ///< empty unless accepted
  bool cooldown_overridden = false; ///< units in their cool-down moved (see PlannerOptions)
  std::vector<ReplicaSet> replicas;
};

/// Decides placements round after round. Deterministic: the same sequence of inputs gives
/// the same plans. Not thread-safe (one coordinator calls it).
class Planner {
public:
  explicit Planner(PlannerOptions options = {}) : options_(std::move(options)) {}

  /// Plans for `problem` at time `now_s` (seconds, increasing between calls).
  [[nodiscard]] Plan plan(const Problem &problem, double now_s);
  /// The moves of unit `unit` planned last did not happen: its cool-down does not start.
  void notMoved(int unit, double previous_move_s);
  /// When unit `unit` last moved (-inf if never).
  [[nodiscard]] double lastMoved(int unit) const;

private:
  PlannerOptions options_;
  std::vector<double> last_moved_;    ///< per unit; -inf if never
  std::vector<double> last_override_; ///< per unit: its last move within its cool-down
};

/// Replica sets for the load-balanced units of `problem` given the placement of the others:
/// each unit's calls are shared among nodes in proportion to their spare CPU capacity (or to
/// their capacity when no node has spare).
[[nodiscard]] std::vector<ReplicaSet> replicaSets(const CostModel &model,
                                                  const Placement &placement);

} // namespace distnode::heuristic

#endif
