// coordinator.h - the online placement loop's decisions: the nodes' profile deltas merged into
// rates per placement unit, the cost model's measured inputs, the planner, the operator's
// overrides and the history of placements.
//
// Pure logic: no sockets and no threads of its own. The entry node (the coordinator) feeds it
// every node's report and asks it once per interval what to place (cluster_node.cpp).
#ifndef DISTNODE_NODE_COORDINATOR_H
#define DISTNODE_NODE_COORDINATOR_H

#include "heuristic/planner.h"
#include "node/cluster_config.h"
#include "node/placement_table.h"
#include "profiler/profiler.h"

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace distnode::jit {
struct ProgramAnalysis;
} // namespace distnode::jit

namespace distnode::node {

/// One node's report for one profile interval (a wire ProfileDelta, checked).
struct NodeReport {
  profiler::ProfileCounts delta; ///< what happened in the interval; elapsed_s = its length
  double cpu_capacity = 0;       ///< CPU seconds per second the node offers
  struct Link {
    int node = 0;
    double latency_s = 0;         ///< one way
    double bandwidth_bytes_s = 0; ///< 0: not measured
    /// Measured from the remote calls' own round trips (link_estimate.h), else by probes.
    bool latency_by_calls = false, bandwidth_by_calls = false;
  };
  std::vector<Link> links; ///< from this node to others
  /// The kernel's view of the node's threads in the interval: time running, and time ready to
  /// run but waiting for a CPU. The CPU a unit would use if it had the CPU to itself is its
  /// measured CPU time × (run + wait) / run: a saturated node's units use no more than its
  /// capacity, but they want more.
  double run_s = 0, runnable_wait_s = 0;
};

/// Whether `window`, a short look at a node's counts since its previous look, shows a new phase
/// against `base` (the node's last report): a call edge, a function's remote calls or a
/// function's CPU time changed as much as a round takes for a new phase (eightfold, above the
/// rounds' floors), on at least 32 calls or samples seen or expected in the window, so that a
/// handful of events is not a phase. Nodes look every sixteenth of an interval; two looks in a row
/// that see a change bring a planning round early (NodeReporter::sawNewPhase, AdaptationLoop).
[[nodiscard]] bool showsNewPhase(const NodeReport &base, const NodeReport &window);

/// One placement the cluster ran, and why.
struct HistoryEntry {
  std::uint64_t epoch = 0;
  double at_s = 0;                ///< seconds since the cluster started
  std::string trigger;            ///< "start", "planner", "operator: move …", "chaos"
  std::vector<std::string> moves; ///< one explanation per unit that moved
  std::string reason;             ///< the planner's sentence, or the operator's request
  double predicted_gain_s_per_s = 0;
};

/// What the coordinator knows of one unit (for `placement` and `profile`).
struct UnitView {
  std::string name;
  std::vector<std::string> functions;
  int owner = 0;
  bool movable = false;
  std::string why_fixed; ///< why it cannot move ("" if movable)
  std::string last_move; ///< the planner's or operator's explanation of its last move
  double cpu_s_per_s = 0;
  double calls_per_s = 0; ///< calls into it
  int pinned_by_operator = -1;
};

/// A call edge between two units, as the planner sees it.
struct UnitEdgeView {
  int caller = 0, callee = 0;
  double calls_per_s = 0, bytes_per_s = 0;
};

/// The merged state of the cluster (for `status`, `profile`, `graph`).
struct ClusterView {
  std::vector<UnitView> units;
  std::vector<UnitEdgeView> edges;
  std::vector<std::string> nodes;
  std::vector<double> node_capacity;          ///< CPU s/s
  std::vector<double> node_cpu_s_per_s;       ///< used, by the units it ran
  std::vector<double> node_calls_per_s;       ///< calls made on each node (by its callers)
  std::vector<double> node_report_s;          ///< the time each node's last report covered
  std::vector<std::vector<double>> latency_s; ///< measured one-way latency [from][to], 0 unknown
  std::vector<std::vector<double>> bandwidth_bytes_s;
  /// [from][to]: the figures above come from the remote calls' round trips, else from probes.
  std::vector<std::vector<bool>> latency_by_calls, bandwidth_by_calls;
  heuristic::CallCosts call_costs;
  bool call_costs_measured = false;
  AdaptOptions options;
};

/// The decision of one round.
struct Decision {
  bool change = false;
  std::vector<std::uint16_t> owners; ///< the placement to publish when `change`
  /// New replica sets of the load-balanced units (all units; empty: they stay as they are).
  ReplicaSets replicas;
  std::vector<heuristic::Move> moves;
  std::vector<std::string> replica_changes; ///< one sentence per load-balanced unit re-spread
  std::string reason;
  double predicted_gain_s_per_s = 0;
};

/// The coordinator's state. Thread-safe: reports arrive on the control thread, rounds run on
/// the coordinator's thread, admin requests on the admin thread.
class Coordinator {
public:
  /// `profile_functions` are the profiler's function names by profile id (the same layout on
  /// every node). `entry` indexes config.nodes.
  Coordinator(const jit::ProgramAnalysis &analysis, std::vector<std::string> profile_functions,
              const ClusterConfig &config, int entry, AdaptOptions options);
  ~Coordinator();

  /// Checks `report` against the program and the cluster; a bad one is an error message.
  [[nodiscard]] std::optional<std::string> check(const NodeReport &report) const;
  /// Adds node `node`'s report (checked) to those of the current round; `round`: the planning
  /// round it answers (0: none).
  void addReport(int node, const NodeReport &report, std::uint64_t round = 0);
  /// How many reports each node has sent.
  [[nodiscard]] std::vector<std::uint64_t> reportCounts() const;
  /// Waits until every node `n` with `from[n]` has answered planning round `round`, or until
  /// `deadline`; false if some did not.
  bool waitForReports(std::uint64_t round, const std::vector<bool> &from,
                      std::chrono::steady_clock::time_point deadline);

  /// Merges the reports of the round into the rates (their time is `now_s`, seconds since
  /// the start) and, if adaptation is on and `current` is not the best placement by enough,
  /// returns the placement to publish. `replicas` are the replica sets in effect (none: the
  /// load-balanced units are not re-spread). `round`: the planning round whose reports these
  /// should be (0: any); a report of another round makes the round say nothing of a new phase.
  [[nodiscard]] Decision round(const std::vector<std::uint16_t> &current, double now_s,
                               const ReplicaSets &replicas = {}, std::uint64_t round = 0);
  /// Plans now, ignoring hysteresis of time (operator's `repartition`): the partitioner's
  /// placement if it differs from `current` at all.
  [[nodiscard]] Decision repartition(const std::vector<std::uint16_t> &current, double now_s,
                                     const ReplicaSets &replicas = {});
  /// The last decision did not happen because the state of `busy` units could not be taken:
  /// its other moves start no cool-down (the busy units' does, so that they are not tried
  /// again at every round), and the busy units stay where they are in the plan made now with
  /// the same rates.
  [[nodiscard]] Decision replan(const std::vector<std::uint16_t> &current, double now_s,
                                const Decision &failed, const std::vector<int> &busy,
                                const ReplicaSets &replicas = {});
  /// The same without planning: `failed` did not happen (for a placement that failed).
  void notMoved(const Decision &failed, const std::vector<int> &busy = {});

  /// The operator moves unit `unit` to `node`: the placement to publish, or why not (a unit
  /// the operator pinned moves only to its pin's node).
  [[nodiscard]] std::optional<std::string> checkMove(int unit, int node) const;
  /// Pins a unit to a node until unpinned (-1: unpin). Checked like a move.
  [[nodiscard]] std::optional<std::string> pin(int unit, int node);
  /// Drains `node`: every movable unit leaves it and the planner places nothing there.
  [[nodiscard]] std::optional<std::string> drain(int node, bool drained);

  void setOptions(const AdaptOptions &options);
  [[nodiscard]] AdaptOptions options() const;

  /// Records a placement that took effect.
  void recordEpoch(std::uint64_t epoch, const std::vector<std::uint16_t> &owners, double now_s,
                   const std::string &trigger, const Decision &decision);
  [[nodiscard]] std::vector<HistoryEntry> history() const;
  [[nodiscard]] ClusterView view(const std::vector<std::uint16_t> &current) const;

  /// Unit index by name (a unit's name or the name of any of its functions), or -1.
  [[nodiscard]] int findUnit(const std::string &name) const;

  struct State;

private:
  [[nodiscard]] std::optional<std::string> checkMove(int unit, int node, bool pins_hold) const;

  std::unique_ptr<State> state_;
};

} // namespace distnode::node

#endif
