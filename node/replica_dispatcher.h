// replica_dispatcher.h - which replica of a load-balanced unit runs a call.
//
// One balancer per node serves every load-balanced unit: it counts the calls each node is
// running for this node (outstanding), so the units share one picture of where CPU is free.
// Per call it takes the local replica while this node has a free slot (its CPU capacity, in
// calls running at once, counting the calls it serves for other nodes), and otherwise the
// replica with the least outstanding calls per unit of weight, so that no call queues behind
// a busy replica while another is idle, and when every replica is busy the calls split by the
// weights. Each node sees only its own calls: two nodes that both send calls to a third do
// not see each other's (the shares the coordinator gives are what keeps them apart).
#ifndef DISTNODE_NODE_REPLICA_DISPATCHER_H
#define DISTNODE_NODE_REPLICA_DISPATCHER_H

#include "node/placement_table.h"

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

namespace distnode::node {

/// Thread-safe; lock-free.
class ReplicaDispatcher {
public:
  /// A cluster of `nodes`; this node is `self` and runs `local_slots` calls at once (≥ 1).
  ReplicaDispatcher(int nodes, int self, int local_slots);

  /// The node to run one call of a unit whose replica set is `set` (not empty); the call
  /// counts as outstanding there until release().
  [[nodiscard]] int acquire(const std::vector<Replica> &set);
  /// A call that goes to `node` regardless (it was answered Moved there, or it is a call this
  /// node serves for another): outstanding there until release().
  void acquireAt(int node);
  void release(int node);

  /// A call this node's dispatcher handled ended, having run on `node`.
  void ran(int node);

  /// Calls outstanding on `node` now (on this node: the ones running here).
  [[nodiscard]] int outstanding(int node) const;
  /// Calls this node's dispatcher handled that ran on each node (itself included), since the
  /// start. (Calls through a stub linked straight to the body, where a unit's only replica is
  /// this node, do not pass the dispatcher.)
  [[nodiscard]] std::vector<std::uint64_t> ranOn() const;
  [[nodiscard]] int self() const { return self_; }
  [[nodiscard]] int localSlots() const { return slots_; }

private:
  int nodes_, self_, slots_;
  std::unique_ptr<std::atomic<int>[]> outstanding_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> ran_;
};

/// One call's count on the node it runs on (ReplicaDispatcher::acquire or acquireAt counted
/// it there): released when the call ends, or when it is counted on another node instead.
class OutstandingCall {
public:
  explicit OutstandingCall(ReplicaDispatcher &dispatcher) : dispatcher_(dispatcher) {}
  ~OutstandingCall() { release(); }
  OutstandingCall(const OutstandingCall &) = delete;
  OutstandingCall &operator=(const OutstandingCall &) = delete;

  /// The call now counts on `node` (already counted there); its count elsewhere is released.
  void countedOn(int node) {
    release();
    node_ = node;
  }
  void release() {
    if (node_ >= 0)
      dispatcher_.release(node_);
    node_ = -1;
  }
  /// Where the call counts (-1: nowhere).
  [[nodiscard]] int node() const { return node_; }

private:
  ReplicaDispatcher &dispatcher_;
  int node_ = -1;
};

} // namespace distnode::node

#endif
