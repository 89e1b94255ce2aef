// cluster_node.h - this process as one node of a cluster: joining, serving calls from other
// nodes, calling functions that live elsewhere, and stopping together.
#ifndef DISTNODE_NODE_CLUSTER_NODE_H
#define DISTNODE_NODE_CLUSTER_NODE_H

#include "node/cluster_config.h"
#include "node/link_estimate.h"
#include "node/placement_table.h"

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace llvm {
class Error;
template <typename T> class Expected;
} // namespace llvm

namespace zmq {
class context_t;
class socket_t;
class message_t;
} // namespace zmq

namespace distnode::jit {
class JitSession;
struct ProgramAnalysis;
} // namespace distnode::jit

namespace distnode::node {

/// The signals a member that the program crashes tells the entry node of before it dies of
/// them (the `--local` launcher waits for the entry's report of these).
inline constexpr int kCrashSignals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};

struct NodeReport;

/// What a node does when the cluster fails (a node stopped answering, a remote call failed, the
/// entry node stopped the cluster with a reason): receives one line saying what happened and
/// the exit code; it must end the process (the program's threads may be inside JIT'd code,
/// which cannot be unwound). distnode's command installs it; libraries never exit.
using FailureHandler = std::function<void(const std::string &message, int exit_code)>;

/// One node of a running cluster: membership and the control plane, with the data plane in
/// call_server.h (serving calls on a pool of workers; calls of a waiting chain run on its
/// thread) and call_client.h (pooled outgoing sockets), and the placement in effect in
/// placement_table.h. Every node binds its call endpoint, which takes nothing but calls.
///
/// The *control plane*: the entry node binds a ROUTER on its control endpoint, served by a
/// control thread of its own; every other node connects one DEALER to it and serves it on its
/// main thread. Join, Welcome, Placement, Shutdown and heartbeats travel there, never behind
/// application calls. A node obeys Placement and Shutdown only from that connection to the
/// entry node, and the entry node accepts anything but a Join only from a connection that
/// joined. A coordinator that is not the entry node talks to the entry node alone: it starts
/// rounds (Round) and asks for placements (Placement, answered Placed), and the entry node
/// forwards it every report and every ask for an early round. Heartbeats go both ways every
/// fifth of `heartbeat_timeout`; a node silent for longer is taken for dead: the entry node
/// stops the others with the reason, and a node that loses the entry node stops by itself, so
/// no wait anywhere outlives a dead node by more than the timeout.
///
/// Thread-safety: callRemote may be called from any thread. The other methods are called by
/// the thread that runs the node (the process's main thread).
class ClusterNode {
public:
  /// Binds this node's call endpoint (and, on the entry node, its control endpoint). `self`
  /// indexes config.nodes. `on_failure` is called, from any thread, when the cluster fails.
  [[nodiscard]] static llvm::Expected<std::unique_ptr<ClusterNode>>
  Create(const ClusterConfig &config, int self, jit::JitSession &session,
         const jit::ProgramAnalysis &analysis, const std::array<std::uint8_t, 32> &bitcode_sha256,
         FailureHandler on_failure);
  ~ClusterNode();

  /// Entry node: starts serving, waits until every other node has joined (or the join timeout
  /// passes), then gives every node the placement `owners` (owner node of each placement unit)
  /// with the load-balanced units' `replicas` as epoch 1 and links this node's stubs by it.
  [[nodiscard]] llvm::Error startEntry(const std::vector<std::uint16_t> &owners,
                                       const ReplicaSets &replicas);

  /// Entry node: tells every other node to stop, and stops serving. Returns each node's final
  /// report (see setShutdownReport; "" for this node and for nodes that did not answer).
  /// Idempotent: later calls return nothing. `reason`: why the cluster failed, if it did (the
  /// members then stop with it as their error line and exit 2).
  std::vector<std::string> shutdownCluster(int exit_code, const std::string &reason = {});

  /// A unit whose state could not be taken when a placement wanted to move it.
  struct Kept {
    std::uint32_t unit = 0;
    std::string why;
  };

  /// Entry node: makes `owners` (owner node of each placement unit) the next placement epoch:
  /// sends it to every node, waits until each has applied it, then applies it here. A unit with
  /// state moves with it: its old owner closes the unit's gate and drains its calls, the state
  /// goes to the new owner, and the gate opens once the placement switched. If the state of
  /// any unit cannot be taken now (calls still inside it), nothing moves: those units are
  /// listed in `kept` with why, and the placement stays as it was (the rest of a plan may only
  /// pay with them). Fails if a node does not accept the placement within the join timeout.
  /// Thread-safe; one at a time.
  /// `replicas`, if given, are the load-balanced units' new replica sets (else they stay).
  /// On a coordinator that is not the entry node, asks the entry node to do all this (a
  /// Placement on the control plane) and returns once it answered, with the new epoch in
  /// effect here.
  [[nodiscard]] llvm::Error place(const std::vector<std::uint16_t> &owners,
                                  std::vector<Kept> *kept = nullptr,
                                  const ReplicaSets *replicas = nullptr);

  /// The epoch of the placement in effect on this node.
  [[nodiscard]] std::uint64_t epoch() const;

  /// Entry node, test option: every `period`, moves every placeable unit that can move
  /// (stateless, or with state that migrates) to a random node (seeded by `seed`) as a new
  /// placement epoch, until the cluster shuts down.
  void startChaos(std::chrono::milliseconds period, unsigned seed);

  /// The placement in effect on this node: the owner node of every unit.
  [[nodiscard]] std::vector<std::uint16_t> owners() const;
  /// The replica sets in effect on this node (by unit; empty for units not load-balanced).
  [[nodiscard]] ReplicaSets replicas() const;
  /// Calls of load-balanced units this node's dispatcher handled, by the node each ran on
  /// (itself included), since the start; and the calls of load-balanced units it served for
  /// other nodes.
  [[nodiscard]] std::vector<std::uint64_t> dispatched() const;
  [[nodiscard]] std::uint64_t servedForOthers() const;

  /// The coordinator: `handler` receives every other node's profile report and the planning
  /// round it answers (the delta's call_id; 0: none), on the control thread (a coordinator that
  /// is not the entry node gets them forwarded by it),
  /// once `check` (given the report) found nothing wrong; a report with a profile id beyond
  /// this process's profile layout, or one `check` rejects, is answered with an Error and
  /// dropped.
  void
  setReportHandler(std::function<void(int node, std::uint64_t round, const NodeReport &)> handler,
                   std::function<std::optional<std::string>(const NodeReport &)> check);
  /// Every node but the coordinator: when the entry node asks for a planning round's report
  /// (requestReports; on the entry node itself, when a coordinator elsewhere starts a round),
  /// what `source` returns goes to it as a profile delta (on the control plane); every
  /// phaseLookEvery(`interval`), `phase_watch` looks at the counts, and when it sees a new
  /// phase the node asks the entry node for a round early (once per round).
  void setReportSource(std::function<NodeReport()> source, std::function<bool()> phase_watch,
                       std::chrono::milliseconds interval);
  /// The coordinator: the planning interval the entry node's heartbeats carry to the members,
  /// from their next heartbeat on (admin `set interval_ms`, or a coordinator started with
  /// another interval; a coordinator elsewhere sends it with each round).
  void setMemberReportInterval(std::chrono::milliseconds interval);
  /// The coordinator: asks every other node for its profile delta of planning round `round`
  /// (the rounds count up from 1); the deltas arrive at the report handler. A coordinator that
  /// is not the entry node sends a Round to the entry node, which asks the members, adds its
  /// own report (setReportSource) and forwards them all.
  void requestReports(std::uint64_t round);
  /// The coordinator: `wanted` runs (on the control thread) when another node's looks at its
  /// counts showed a new phase, with the last round that node answered; it says whether the
  /// request is taken.
  void setRoundWanted(std::function<bool(std::uint64_t round)> wanted);
  /// Other nodes: `hook` runs once, on the control thread, when the first placement (epoch 1)
  /// is in effect here (a coordinator that is not the entry node starts its loop then).
  void atFirstPlacement(std::function<void()> hook);

  /// Runs `hook` when this node stops serving, before its sockets close (to stop threads that
  /// use the node, such as the prober and the admin socket).
  void atStop(std::function<void()> hook);

  /// A round trip of `bytes` bytes each way to `node` on the call path (a Probe), or nothing
  /// if the cluster stops first.
  [[nodiscard]] std::optional<std::chrono::nanoseconds> probe(int node, std::size_t bytes);
  /// What this node's remote calls to `node` showed of the link since the last time asked
  /// (LinkSamples::take).
  [[nodiscard]] LinkSamples::Estimate takeLinkEstimate(int node, double known_latency_s);

  /// Other nodes: what to send back with the acknowledgement of Shutdown (the final profile).
  void setShutdownReport(std::function<std::string()> report);

  /// This node was started by the `--local` launcher, which shows every node's output and
  /// passes a stop signal on to every node. Then a member that the entry node stops because
  /// the cluster failed exits 2 without a line of its own (the entry's line says why: the same
  /// reason twice is noise), and the entry node does not tell the members that a signal
  /// stopped it (each has it). Before start (entry) or runMember.
  void setUnderLauncher(bool under);

  /// Other nodes: joins the entry node, then serves calls and control messages until
  /// Shutdown. Returns the exit code for this process. Its workers are not waited for (one may
  /// still run a call of the program): the process must end without destroying this node
  /// (std::_Exit after flushing its output), as a native exit ends every thread at once.
  [[nodiscard]] llvm::Expected<int> runMember();

  /// The remote handler for the JIT's thunks: performs the call on its owner node. A failure
  /// goes to the FailureHandler with the function, the node and why.
  ///
  /// In a child process made by fork() (which has one thread and none of the node's
  /// connections), every call runs in that process, as natively; a call of a unit whose state
  /// lives on another node cannot, and is a failure naming it.
  void callRemote(std::uint32_t id, void **slots, void *ret);

  /// Whether this process is a child made by fork() after a ClusterNode was created: it is no
  /// member of the cluster, and its exit must not stop it.
  [[nodiscard]] static bool inForkedChild();

  struct Impl;

private:
  explicit ClusterNode(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

} // namespace distnode::node

#endif
