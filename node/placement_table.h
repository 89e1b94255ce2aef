// placement_table.h - the placement in effect on a node: one immutable table per epoch.
#ifndef DISTNODE_NODE_PLACEMENT_TABLE_H
#define DISTNODE_NODE_PLACEMENT_TABLE_H

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

namespace distnode::node {

/// One node of a load-balanced unit's replica set: it runs the unit's calls, taking a share
/// of them in proportion to `weight` when every replica is busy (replica_dispatcher.h).
struct Replica {
  std::uint16_t node = 0;
  float weight = 1;
  bool operator==(const Replica &) const = default;
};
/// By unit id: the replica set of each load-balanced unit, empty for every other unit.
using ReplicaSets = std::vector<std::vector<Replica>>;

/// The replica of `set` on `node`, or nullptr.
inline const Replica *findReplica(const std::vector<Replica> &set, int node) {
  for (const Replica &r : set)
    if (r.node == node)
      return &r;
  return nullptr;
}

/// The sum of the weights of `set` (a replica's share of the calls is its weight over it).
inline double totalWeight(const std::vector<Replica> &set) {
  double total = 0;
  for (const Replica &r : set)
    total += r.weight;
  return total;
}

/// One placement: the owner node of every unit from `epoch` on, and where the load-balanced
/// units have replicas. Immutable once published.
struct PlacementTable {
  std::uint64_t epoch = 0;
  std::vector<std::uint16_t> owner; ///< by unit id (ProgramAnalysis::units)
  ReplicaSets replicas;             ///< by unit id; a load-balanced unit's owner is unused
};

/// The tables a node has published. A reader loads the current one once (one acquire load)
/// and sees one whole version; every table is kept for the run, so a reader never holds a
/// freed one (tables are small: two bytes and an empty vector a unit, eight bytes a replica).
/// Thread-safe.
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
