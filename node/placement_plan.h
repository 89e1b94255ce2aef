// placement_plan.h - a static placement: which node owns each placement unit.
#ifndef DISTNODE_NODE_PLACEMENT_PLAN_H
#define DISTNODE_NODE_PLACEMENT_PLAN_H

#include "jit/program_analysis.h"
#include "jit/remote_call.h"
#include "node/cluster_config.h"

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

/// The owner node index of every placement unit (indexed as analysis.units).
///
/// Home units go to the entry node and pinned units to their node (an error if the cluster has
/// no such node). Each entry moves the whole unit of its function; naming a function that does
/// not exist, is local, runs at home or is pinned elsewhere is an error with the analysis'
/// reason, as is placing two functions of one unit on different nodes.
[[nodiscard]] llvm::Expected<std::vector<std::uint16_t>>
planPlacement(const jit::ProgramAnalysis &analysis, const ClusterConfig &config,
              const std::vector<PlacementEntry> &entries, DefaultPlacement defaults);

} // namespace distnode::node

#endif
