// placement_plan.h - the starting placement: which node owns each placement unit, and where
// the load-balanced units have replicas.
#ifndef DISTNODE_NODE_PLACEMENT_PLAN_H
#define DISTNODE_NODE_PLACEMENT_PLAN_H

#include "jit/program_analysis.h"
#include "jit/remote_call.h"
#include "node/cluster_config.h"
#include "node/placement_table.h"

#include <cstdint>
#include <vector>

namespace llvm {
template <typename T> class Expected;
} // namespace llvm

namespace distnode::node {

/// How units not named by any placement entry are placed.
enum class DefaultPlacement {
  Entry,   ///< on the entry node
  Scatter, ///< placeable units round-robin over the nodes, starting after the entry node
};

/// Where each placement unit starts.
struct StartPlacement {
  std::vector<std::uint16_t> owners; ///< owner node of each unit (indexed as analysis.units)
  ReplicaSets replicas;              ///< the replica set of each load-balanced unit
};

/// The starting placement of every unit.
///
/// Home units go to the entry node and pinned units to their node (an error if the cluster has
/// no such node). Each entry moves the whole unit of its function; naming a function that does
/// not exist, is local, runs at home or is pinned elsewhere is an error with the analysis'
/// reason, as is placing two functions of one unit on different nodes. A load-balanced unit
/// has replicas on every node, weighted by their `capacity.cpu` (1 where not given), unless an
/// entry names its node or its replicas (`function: {node: weight, ...}`); replicas for any
/// other function are an error.
[[nodiscard]] llvm::Expected<StartPlacement>
planPlacement(const jit::ProgramAnalysis &analysis, const ClusterConfig &config,
              const std::vector<PlacementEntry> &entries, DefaultPlacement defaults);

} // namespace distnode::node

#endif
