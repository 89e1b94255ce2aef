// replica_dispatcher_test.cpp - the choice of replica per call, without a cluster: local while
// there is room, never behind a busy replica while another is idle, by the weights when all
// are busy.
#include "node/replica_dispatcher.h"

#include <gtest/gtest.h>

#include <deque>
#include <random>

namespace distnode::node {
namespace {

std::vector<Replica> set(std::initializer_list<std::pair<int, float>> members) {
  std::vector<Replica> out;
  for (auto [node, weight] : members)
    out.push_back({static_cast<std::uint16_t>(node), weight});
  return out;
}

TEST(ReplicaDispatcher, LocalReplicaWhileItHasRoom) {
  ReplicaDispatcher d(3, /*self=*/0, /*local_slots=*/2);
  auto replicas = set({{0, 1}, {1, 10}, {2, 10}}); // the others weigh more: room here wins
  EXPECT_EQ(d.acquire(replicas), 0);
  EXPECT_EQ(d.acquire(replicas), 0);
  EXPECT_EQ(d.outstanding(0), 2);
  EXPECT_NE(d.acquire(replicas), 0) << "both local slots are taken";
  d.release(0);
  EXPECT_EQ(d.acquire(replicas), 0) << "a slot came free";
}

TEST(ReplicaDispatcher, CallsServedForOthersTakeLocalSlots) {
  ReplicaDispatcher d(2, 1, 1);
  d.acquireAt(1); // serving a call of node 0
  EXPECT_EQ(d.acquire(set({{0, 1}, {1, 1}})), 0);
}

TEST(ReplicaDispatcher, NeverBehindABusyReplicaWhileAnotherIsIdle) {
  ReplicaDispatcher d(4, 0, 1);
  auto replicas = set({{0, 1}, {1, 1}, {2, 1}, {3, 1}});
  std::vector<int> picked;
  for (int call = 0; call < 4; ++call) {
    int node = d.acquire(replicas);
    EXPECT_EQ(d.outstanding(node), 1) << "call " << call << " joined a busy replica";
    picked.push_back(node);
  }
  std::sort(picked.begin(), picked.end());
  EXPECT_EQ(picked, (std::vector<int>{0, 1, 2, 3}));
  // All busy: the fifth call goes to this node (a tie is broken towards it).
  EXPECT_EQ(d.acquire(replicas), 0);
}

TEST(ReplicaDispatcher, OnlyReplicasOfTheSetAreUsed) {
  ReplicaDispatcher d(3, 0, 4);
  for (int call = 0; call < 10; ++call) {
    int node = d.acquire(set({{2, 1}}));
    EXPECT_EQ(node, 2);
    d.ran(node);
  }
  EXPECT_EQ(d.ranOn(), (std::vector<std::uint64_t>{0, 0, 10}));
  EXPECT_EQ(d.outstanding(2), 10) << "until released";
}

// When every replica is busy the calls split by the weights. Simulated: 12 program threads
// call without pause; replica n runs its calls one at a time, each taking 1 / weight (a node
// twice as fast gets twice the weight). Over 20,000 calls the split must match the shares
// within 2 percentage points (a dispatcher blind to load, such as round robin, leaves the
// fast replica idle and fails), and the calls outstanding at each replica match them within
// one call.
TEST(ReplicaDispatcher, SaturatedCallsFollowTheShares) {
  for (auto weights : {std::vector<float>{1, 3}, std::vector<float>{1, 1}, {2, 1}}) {
    SCOPED_TRACE(testing::PrintToString(weights));
    ReplicaDispatcher d(3, /*self=*/0, 1);
    std::vector<Replica> replicas; // node 0 (the caller) is not a replica
    for (std::size_t i = 0; i < weights.size(); ++i)
      replicas.push_back({static_cast<std::uint16_t>(i + 1), weights[i]});
    std::vector<std::deque<int>> queue(weights.size() + 1);
    std::vector<double> ends(weights.size() + 1, -1); // when the running call ends; -1: idle
    double now = 0;
    auto call = [&](int thread) {
      int n = d.acquire(replicas);
      queue[n].push_back(thread);
      if (ends[n] < 0)
        ends[n] = now + 1.0 / weights[n - 1];
    };
    for (int thread = 0; thread < 12; ++thread)
      call(thread);
    std::vector<double> done(weights.size() + 1, 0);
    for (int calls = 0; calls < 20000; ++calls) {
      int next = -1; // the replica whose running call ends first
      for (std::size_t n = 1; n < queue.size(); ++n)
        if (ends[n] >= 0 && (next < 0 || ends[n] < ends[next]))
          next = static_cast<int>(n);
      ASSERT_GE(next, 0);
      now = ends[next];
      int thread = queue[next].front();
      queue[next].pop_front();
      ends[next] = queue[next].empty() ? -1 : now + 1.0 / weights[next - 1];
      d.release(next);
      ++done[next];
      call(thread); // the thread's next call
    }
    double total = 0, weight_sum = 0;
    for (std::size_t n = 1; n < done.size(); ++n) {
      total += done[n];
      weight_sum += weights[n - 1];
    }
    for (std::size_t n = 1; n < done.size(); ++n) {
      EXPECT_NEAR(done[n] / total, weights[n - 1] / weight_sum, 0.02) << "node " << n;
      // The calls waiting at each replica split by the weights too (within one call).
      EXPECT_NEAR(double(d.outstanding(static_cast<int>(n))), 12 * weights[n - 1] / weight_sum, 1.0)
          << "node " << n;
    }
  }
}

} // namespace
} // namespace distnode::node
