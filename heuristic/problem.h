// problem.h - the placement problem: nodes and links, placement units with their load, the
// call edges between them, and the current placement (README "Placement heuristic").
//
// Pure data: no LLVM, no ZeroMQ. Rates are per second of program run time, so every cost is
// in seconds of time per second ("s/s").
#ifndef DISTNODE_HEURISTIC_PROBLEM_H
#define DISTNODE_HEURISTIC_PROBLEM_H

#include <string>
#include <vector>

namespace distnode::heuristic {

/// A machine that runs units.
struct Node {
  std::string name;
  double cpu_capacity = 1.0; ///< CPU seconds per second it offers
};

/// The link between two nodes (one way; the matrix may be asymmetric).
struct Link {
  double latency_s = 80e-6;       ///< one-way message latency
  double bandwidth_bytes_s = 1e9; ///< bytes per second
};

/// What the placement moves: a placeable function, or a group that must stay together.
struct Unit {
  std::string name;
  double cpu_load = 0;  ///< CPU seconds per second it uses (wherever it runs)
  int pinned_node = -1; ///< fixed to this node (entry's main, DIST_PIN, operator pin); -1: free
  bool load_balanced = false; ///< replicated (DIST_LOADBALANCED): placed by replica sets instead
  double state_bytes = 0;     ///< state shipped when it moves (0: stateless, moves for free)
};

/// Calls from one unit to another, as decayed rates.
struct Edge {
  int caller = 0, callee = 0; ///< unit indices
  double calls_per_s = 0;
  double call_bytes_per_s = 0;  ///< argument bytes per second
  double reply_bytes_per_s = 0; ///< reply bytes per second
};

/// Per-call and per-byte costs of a remote call beyond the link (measured by the profiler).
struct CallCosts {
  double marshal_s_per_call = 1e-6, marshal_s_per_byte = 0.5e-9;
  double unmarshal_s_per_call = 1e-6, unmarshal_s_per_byte = 0.5e-9;
};

/// Everything the partitioner needs.
struct Problem {
  std::vector<Node> nodes;
  std::vector<std::vector<Link>> links; ///< links[a][b] for a ≠ b; square, nodes.size()
  std::vector<Unit> units;
  std::vector<Edge> edges;
  CallCosts call_costs;
  /// Where each unit runs now (-1 where a unit is new); the migration cost counts from here.
  std::vector<int> current;
  /// Cost per CPU second per second of load above a node's capacity: large, so that overload
  /// is avoided whenever a placement without it exists.
  double overload_penalty = 100.0;
  /// Migration costs are amortized over this many seconds (and must be paid back within it).
  double migration_horizon_s = 30.0;

  /// A problem with `n` nodes linked by `link` both ways.
  static Problem uniform(std::vector<Node> nodes, Link link);
};

/// A unit → node assignment (index = unit).
using Placement = std::vector<int>;

} // namespace distnode::heuristic

#endif
