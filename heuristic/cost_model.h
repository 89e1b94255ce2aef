// cost_model.h - the cost of a placement: communication over cut edges, overload of
// node capacity, and the migration of state that moves.
//
//   comm(edge a→b) = calls·(M_call + 2·latency + U_call)·2 directions
//                  + (call bytes + reply bytes)·(m_byte + 1/bandwidth + u_byte)
//   when a and b are on different nodes (else 0), with the latency and bandwidth of the links
//   a→b (call) and b→a (reply);
//   overload(node) = penalty · max(0, Σ load − capacity);
//   migration(unit) = (state bytes·(m_byte + 1/bandwidth + u_byte) + latency) / horizon
//   when a stateful unit leaves its current node.
#ifndef DISTNODE_HEURISTIC_COST_MODEL_H
#define DISTNODE_HEURISTIC_COST_MODEL_H

#include "heuristic/problem.h"

namespace distnode::heuristic {

/// A placement's predicted cost, in seconds per second.
struct CostBreakdown {
  double communication = 0;
  double overload = 0;
  double migration = 0; ///< amortized over the problem's horizon
  [[nodiscard]] double total() const { return communication + overload + migration; }
  /// What running the placement costs per second, without moving there.
  [[nodiscard]] double running() const { return communication + overload; }
};

/// Evaluates placements of one problem. Immutable once built; thread-safe.
class CostModel {
public:
  explicit CostModel(const Problem &problem);

  [[nodiscard]] const Problem &problem() const { return problem_; }

  /// The cost of `placement`. Load-balanced units count neither load nor edges here
  /// (see replicaSets).
  [[nodiscard]] CostBreakdown evaluate(const Placement &placement) const;

  /// Cost per second of one edge when its caller is on `from` and its callee on `to`.
  [[nodiscard]] double edgeCost(const Edge &e, int from, int to) const;
  /// Seconds per call and per byte of a call from `from` to `to` (both directions included);
  /// 0 when from == to.
  [[nodiscard]] double perCall(int from, int to) const { return per_call_[from][to]; }
  [[nodiscard]] double perByte(int from, int to) const { return per_byte_[from][to]; }
  /// One-time cost of moving unit `u` from `from` to `to`, amortized over the horizon.
  [[nodiscard]] double migrationCost(int u, int from, int to) const;
  /// The same, not amortized (seconds).
  [[nodiscard]] double migrationSeconds(int u, int from, int to) const;
  /// Penalty for `load` on node `n`.
  [[nodiscard]] double overloadCost(int n, double load) const;

private:
  const Problem &problem_;
  std::vector<std::vector<double>> per_call_, per_byte_;
};

} // namespace distnode::heuristic

#endif
