// adaptation.h - the online placement loop on a running cluster: every node measures its links
// and reports its profile at each planning round, and looks for new phases between rounds; the
// coordinator (the entry node) plans and publishes new placement epochs, and applies the
// operator's requests (admin_server.h).
#ifndef DISTNODE_NODE_ADAPTATION_H
#define DISTNODE_NODE_ADAPTATION_H

#include "node/coordinator.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace distnode::node {

class ClusterNode;

/// This node's reports and link measurements. Thread-safe.
class NodeReporter {
public:
  /// `capacity`: the CPU seconds per second this node offers (configured, or its cores).
  NodeReporter(ClusterNode &node, int self, int nodes, double capacity);
  ~NodeReporter();

  /// What happened since the previous report: asks running frames to flush their counts
  /// (a frame that runs on shows its calls in the next report), then takes the difference.
  [[nodiscard]] NodeReport next();

  /// A short look at what happened since the previous look (running frames are asked to
  /// flush their counts first): true when this look, the one before, and the two together
  /// each show a new phase against the last report (showsNewPhase), so that a pause or a burst
  /// of one look, or two activities taking turns, is not taken for a phase.
  [[nodiscard]] bool sawNewPhase();

  /// Every `interval`, on a thread of its own: takes what the remote calls to each other node
  /// showed of the link (ClusterNode::takeLinkEstimate) and probes where they showed nothing:
  /// latency by the least of a few small round trips on the call path, bandwidth by a 1 MiB
  /// round trip when it was not measured for ten intervals.
  void startProbing(std::chrono::milliseconds interval);
  void stop();

private:
  void probeLoop(std::chrono::milliseconds interval);

  ClusterNode &node_;
  int self_, nodes_;
  double capacity_;
  profiler::ProfileCounts last_;
  std::uint64_t last_run_ns_ = 0, last_wait_ns_ = 0; ///< the threads' schedstat totals
  NodeReport base_;                                  ///< the last report (its counts)
  profiler::ProfileCounts look_, look_before_;       ///< the counts at the last two looks
  bool look_changed_ = false;                        ///< the last look showed a new phase
  std::mutex mu_; ///< guards last_, links_, base_ and the last look
  std::vector<NodeReport::Link> links_;
  std::thread prober_;
  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
  bool stop_ = false;
};

/// The coordinator's loop (entry node): each interval, or early when looks at the counts show a
/// new phase, it asks every node for its report, its own joins the others', the coordinator plans,
/// and an accepted placement becomes the next epoch on every node. Every change is logged (info)
/// with its epoch, the units moved, why, and the predicted gain, and kept in the history. Operator
/// requests go through it too, one decision at a time.
class AdaptationLoop {
public:
  AdaptationLoop(ClusterNode &node, Coordinator &coordinator, NodeReporter &own, int self);
  ~AdaptationLoop();

  /// Records the starting placement and starts the loop's thread; the cluster's time (nowS)
  /// counts from here. Before any other thread calls nowS (the admin socket).
  void start();
  void stop();

  /// Seconds since the loop started.
  [[nodiscard]] double nowS() const;

  /// What an operator's request did: the epoch now in effect, the moves, or why nothing.
  struct Outcome {
    bool ok = true;
    std::string error;
    Decision decision;
    std::uint64_t epoch = 0;
  };
  /// Plans now (no hysteresis, no cool-down) and applies the result if it differs.
  Outcome repartition();
  /// Moves one unit (checked by the coordinator) as a new epoch.
  Outcome move(int unit, int node);
  /// Drains `node` (every movable unit leaves it, and it gets none) or ends a drain.
  Outcome drain(int node, bool drained);

  /// A member saw a new phase after answering round `round`: the next round comes now (at
  /// least one look after the last). False (ignored) when a round was asked for since, or
  /// adaptation is held still.
  bool wantRound(std::uint64_t round);

private:
  void loop();
  enum class Next { Stop, Due, Early };
  // Waits for the next round: due one interval after the last round started (or, when that
  // round was brought early, two looks after it ended: see loop()), or early on a new phase
  // (not before one look after the last round ended).
  Next waitUntilRound(std::chrono::steady_clock::time_point last_start,
                      std::chrono::steady_clock::time_point last_end, bool follow_up);
  // Publishes `d` as the next epoch and records it; returns the outcome. mu_ is held.
  Outcome apply(const Decision &d, const std::string &trigger);

  ClusterNode &node_;
  Coordinator &coordinator_;
  NodeReporter &own_;
  int self_;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  std::mutex mu_; ///< one decision at a time (the loop's and the operator's)
  std::thread thread_;
  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
  bool stop_ = false;
  bool wanted_ = false;           ///< a member asked for a round (stop_mu_)
  std::uint64_t asked_round_ = 0; ///< the newest round whose reports were asked for (stop_mu_)
};

} // namespace distnode::node

#endif
