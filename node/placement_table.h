// placement_table.h - the placement in effect on a node: one immutable table per epoch.
#ifndef DISTNODE_NODE_PLACEMENT_TABLE_H
#define DISTNODE_NODE_PLACEMENT_TABLE_H

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

namespace distnode::node {

/// One placement: the owner node of every unit from `epoch` on. Immutable once published.
struct PlacementTable {
  std::uint64_t epoch = 0;
  std::vector<std::uint16_t> owner; ///< by unit id (ProgramAnalysis::units)
};

/// The tables a node has published. A reader loads the current one once (one acquire load)
/// and sees one whole version; every table is kept for the run, so a reader never holds a
/// freed one (tables are small: two bytes a unit). Thread-safe.
class PlacementTables {
public:
  explicit PlacementTables(PlacementTable initial);

  /// The table in effect.
  [[nodiscard]] const PlacementTable &current() const {
    return *current_.load(std::memory_order_acquire);
  }

  /// Publishes `next` if its epoch is newer than the current one, and returns the table it
  /// replaced; returns nullptr (and publishes nothing) otherwise. `then` runs after the
  /// publication and before any later one, with the old and the new table.
  template <typename F> const PlacementTable *publish(PlacementTable next, F &&then) {
    std::lock_guard lock(mu_);
    const PlacementTable *old = current_.load(std::memory_order_relaxed);
    if (next.epoch <= old->epoch)
      return nullptr;
    tables_.push_back(std::make_unique<PlacementTable>(std::move(next)));
    current_.store(tables_.back().get(), std::memory_order_release);
    then(*old, *tables_.back());
    return old;
  }

private:
  std::mutex mu_; ///< guards tables_ and orders publications
  std::vector<std::unique_ptr<PlacementTable>> tables_;
  std::atomic<const PlacementTable *> current_{nullptr};
};

} // namespace distnode::node

#endif
