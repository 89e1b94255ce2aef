// partitioner.h - k-way placement under the cost model: greedy initial placement and
// Fiduccia–Mattheyses refinement with pinned units, capacities and migration costs; and the
// baselines it is measured against.
#ifndef DISTNODE_HEURISTIC_PARTITIONER_H
#define DISTNODE_HEURISTIC_PARTITIONER_H

#include "heuristic/cost_model.h"

#include <vector>

namespace distnode::heuristic {

/// Tunables of the partitioner.
struct PartitionOptions {
  /// Greedy sweeps (each unit to its best node while that gains) per refinement.
  int max_sweeps = 16;
  /// FM passes (every unit moves at most once, the best prefix of moves is kept) per start.
  int max_fm_passes = 4;
  /// Problems with at most this many units are also refined from `multi_starts` random
  /// starting placements (drawn from a fixed seed: the result stays deterministic).
  int multi_start_max_units = 64;
  int multi_starts = 64;
  /// Above this many units, refinement is greedy sweeps from one start (the current placement,
  /// else the greedy one) without FM passes and pair swaps: linear time per sweep.
  int thorough_max_units = 2000;
  /// Units kept where they are, in addition to the problem's pinned ones (cool-down).
  std::vector<bool> frozen;
};

/// The placement the partitioner finds: refined (greedy sweeps, FM passes, pair swaps) from the
/// current placement, from a greedy one and, for small problems, from random ones; the
/// cheapest wins, the current-based one on ties. Deterministic for the same input.
/// Pinned and frozen units keep their node; load-balanced units stay where `current` has them
/// (their replicas are placed separately).
[[nodiscard]] Placement partition(const CostModel &model, const PartitionOptions &options = {});

/// Baseline: the greedy initial placement alone (heaviest units first, each on the node where
/// it costs least given those placed before it).
[[nodiscard]] Placement greedyPlacement(const CostModel &model,
                                        const PartitionOptions &options = {});

/// Baseline in the style of Orleans' activation repartitioning: looks at call counts only
/// (not bytes, links or CPU), and exchanges units between pairs of nodes where that removes
/// remote calls, keeping the number of units per node unchanged.
[[nodiscard]] Placement pairwiseExchangePlacement(const CostModel &model);

} // namespace distnode::heuristic

#endif
