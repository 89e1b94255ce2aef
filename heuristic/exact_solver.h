// exact_solver.h - the optimal placement of a small problem, by branch and bound: the oracle
// for tests and benchmarks.
#ifndef DISTNODE_HEURISTIC_EXACT_SOLVER_H
#define DISTNODE_HEURISTIC_EXACT_SOLVER_H

#include "heuristic/cost_model.h"

#include <optional>

namespace distnode::heuristic {

/// The placement of least total cost, or nothing if the problem has more than `max_units`
/// movable units. `upper_bound` (a known placement's cost) speeds up the search.
[[nodiscard]] std::optional<Placement>
exactPlacement(const CostModel &model, double upper_bound = 1e300, int max_units = 16);

} // namespace distnode::heuristic

#endif
