// admin_server.h - a node's admin socket: JSON requests from distctl (or any ZeroMQ client),
// answered by the coordinator or forwarded to it. The protocol is docs/admin-protocol.md.
#ifndef DISTNODE_NODE_ADMIN_SERVER_H
#define DISTNODE_NODE_ADMIN_SERVER_H

#include "node/admin_client.h"

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>

namespace llvm {
template <typename T> class Expected;
} // namespace llvm

namespace zmq {
class socket_t;
} // namespace zmq

namespace distnode::node {

class AdaptationLoop;
class ClusterNode;
class Coordinator;
struct ClusterConfig;

/// Answers one request (a JSON object with "command"); never throws. Replies are objects with
/// "ok": true and the command's fields, or "ok": false and "error".
using AdminHandler = std::function<nlohmann::json(const nlohmann::json &request)>;

/// The coordinator's handler: every command of the protocol, on the running cluster.
[[nodiscard]] AdminHandler coordinatorHandler(const ClusterConfig &config, ClusterNode &node,
                                              Coordinator &coordinator, AdaptationLoop &loop);

/// A member's handler: forwards each request to the coordinator's admin endpoint and returns
/// its answer (or an error if it has none, or does not answer within `timeout`).
[[nodiscard]] AdminHandler forwardingHandler(const std::string &coordinator_endpoint,
                                             const std::string &coordinator_name,
                                             std::chrono::milliseconds timeout);

/// The admin socket: a ROUTER bound to `endpoint` (an ipc:// file is made mode 0600), served
/// by a thread of its own. Malformed requests get an error answer; the socket keeps serving.
class AdminServer {
public:
  [[nodiscard]] static llvm::Expected<std::unique_ptr<AdminServer>>
  Create(const std::string &endpoint, AdminHandler handler);
  ~AdminServer();
  AdminServer(const AdminServer &) = delete;
  AdminServer &operator=(const AdminServer &) = delete;

  void stop();

private:
  AdminServer(std::unique_ptr<zmq::socket_t> socket, AdminHandler handler);
  void serve();

  std::unique_ptr<zmq::socket_t> socket_;
  AdminHandler handler_;
  std::atomic<bool> stop_{false};
  int wake_fd_ = -1; ///< eventfd: stop() wakes the thread, which waits without a time slice
  std::thread thread_;
};

} // namespace distnode::node

#endif
