// cluster_node.h - this process as one node of a cluster: joining, serving calls from other
// nodes, calling functions that live elsewhere, and stopping together.
#ifndef DISTNODE_NODE_CLUSTER_NODE_H
#define DISTNODE_NODE_CLUSTER_NODE_H

#include "node/cluster_config.h"

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
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
} // namespace distnode::jit

namespace distnode::node {

/// One node of a running cluster.
///
/// Every node binds a ROUTER socket on its call endpoint; a *reactor* thread owns it and runs
/// calls from other nodes where they arrive, on that thread (no hand-off to a pool: a thread
/// wake-up costs about as much as the network here). A thread that calls a remote function
/// sends on a DEALER socket of its own to the owner node and waits for the reply with a
/// matching call id; if that thread is the reactor (a nested call, A→B→A), it keeps serving
/// its ROUTER while it waits, so nested calls cannot deadlock.
///
/// The entry node runs `main`; the others serve until it sends Shutdown.
///
/// Thread-safety: callRemote may be called from any thread. The other methods are called by
/// the thread that runs the node (the process's main thread).
class ClusterNode {
public:
  /// Binds this node's call endpoint. `self` indexes config.nodes.
  [[nodiscard]] static llvm::Expected<std::unique_ptr<ClusterNode>>
  Create(const ClusterConfig &config, int self, jit::JitSession &session,
         const std::array<std::uint8_t, 32> &bitcode_sha256);
  ~ClusterNode();

  /// Entry node: starts serving, waits until every other node has joined (or the join timeout
  /// passes), then gives every node the placement `owners` (owner node of each remotable
  /// function) and links this node's stubs by it.
  [[nodiscard]] llvm::Error startEntry(const std::vector<std::uint16_t> &owners);

  /// Entry node: tells every other node to stop, and stops serving. Returns each node's final
  /// report (see setShutdownReport; "" for this node and for nodes that did not answer).
  /// Idempotent: later calls return nothing.
  std::vector<std::string> shutdownCluster(int exit_code);

  /// Other nodes: what to send back with the acknowledgement of Shutdown (the final profile).
  void setShutdownReport(std::function<std::string()> report);

  /// Other nodes: joins the entry node, then serves calls until Shutdown. Returns the exit
  /// code for this process.
  [[nodiscard]] llvm::Expected<int> runMember();

  /// The remote handler for the JIT's thunks: performs the call on its owner node. A failure
  /// is fatal for the program: one line on stderr, then exit code 2.
  void callRemote(std::uint32_t id, void **slots, void *ret);

  struct Impl;

private:
  explicit ClusterNode(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

} // namespace distnode::node

#endif
