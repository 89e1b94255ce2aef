// placement_table.cpp - the placement in effect on a node.
#include "node/placement_table.h"

namespace distnode::node {

PlacementTables::PlacementTables(PlacementTable initial) {
  tables_.push_back(std::make_unique<PlacementTable>(std::move(initial)));
  current_.store(tables_.back().get(), std::memory_order_release);
}

} // namespace distnode::node
