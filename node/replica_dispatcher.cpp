// replica_dispatcher.cpp - which replica of a load-balanced unit runs a call.
#include "node/replica_dispatcher.h"

#include <algorithm>

namespace distnode::node {

ReplicaDispatcher::ReplicaDispatcher(int nodes, int self, int local_slots)
    : nodes_(nodes), self_(self), slots_(std::max(1, local_slots)),
      outstanding_(new std::atomic<int>[static_cast<std::size_t>(nodes)]),
      ran_(new std::atomic<std::uint64_t>[static_cast<std::size_t>(nodes)]) {
  for (int n = 0; n < nodes_; ++n) {
    outstanding_[n] = 0;
    ran_[n] = 0;
  }
}

int ReplicaDispatcher::acquire(const std::vector<Replica> &set) {
  if (findReplica(set, self_)) { // a free local slot: no message, no marshaling
    int running = outstanding_[self_].load(std::memory_order_relaxed);
    while (running < slots_)
      if (outstanding_[self_].compare_exchange_weak(running, running + 1,
                                                    std::memory_order_relaxed))
        return self_;
  }
  // The least loaded replica per unit of weight, counting this call; a tie goes to this node,
  // then to the first in the set.
  int best = -1;
  double best_score = 0;
  for (const Replica &r : set) {
    if (r.node >= nodes_ || !(r.weight > 0))
      continue;
    double score = (outstanding_[r.node].load(std::memory_order_relaxed) + 1) / double(r.weight);
    if (best < 0 || score < best_score || (score == best_score && r.node == self_)) {
      best = r.node;
      best_score = score;
    }
  }
  if (best < 0) // a set without a usable replica (the placement checks prevent it): run here
    best = self_;
  acquireAt(best);
  return best;
}

void ReplicaDispatcher::acquireAt(int node) {
  outstanding_[node].fetch_add(1, std::memory_order_relaxed);
}

void ReplicaDispatcher::release(int node) {
  outstanding_[node].fetch_sub(1, std::memory_order_relaxed);
}

int ReplicaDispatcher::outstanding(int node) const {
  return outstanding_[node].load(std::memory_order_relaxed);
}

void ReplicaDispatcher::ran(int node) { ran_[node].fetch_add(1, std::memory_order_relaxed); }

std::vector<std::uint64_t> ReplicaDispatcher::ranOn() const {
  std::vector<std::uint64_t> out(static_cast<std::size_t>(nodes_));
  for (int n = 0; n < nodes_; ++n)
    out[n] = ran_[n].load(std::memory_order_relaxed);
  return out;
}

} // namespace distnode::node
