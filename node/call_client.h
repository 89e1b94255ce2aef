// call_client.h - making calls to other nodes: the outgoing sockets and the wait for a reply.
#ifndef DISTNODE_NODE_CALL_CLIENT_H
#define DISTNODE_NODE_CALL_CLIENT_H

#include "node/call_server.h"
#include "transport/messages.h"

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace distnode::node {

class PeerSockets;

/// Sends calls to other nodes and waits for their replies. A thread borrows one socket per
/// peer (and the eventfd that wakes it for calls of its chain) from that peer's pool for its
/// outermost remote call, and gives them back when that call returns: at most
/// kMaxSocketsPerPeer sockets per peer whatever the number of program threads. While 8 or more
/// threads hold sockets for one peer, their calls go instead on one connection they share:
/// each caller sends on it itself, under a lock; a thread of its own reads every answer and
/// wakes only the thread it answers, through a futex (many answers per TCP read; one thread
/// hop per call, on the way back). While it waits, a thread runs the calls of its own chain
/// that arrive at this node.
/// Thread-safe.
class CallClient {
public:
  /// Outgoing sockets per peer node.
  static constexpr int kMaxSocketsPerPeer = 64;

  /// `endpoints`: each node's call endpoint, by node index. `server` is this node's.
  CallClient(const std::vector<std::string> &endpoints, CallServer &server);
  ~CallClient();

  /// Sends `message`, followed by `parts` in the same multipart message, to `node` and waits
  /// for the response with `call_id` (its envelope is verified). False with `error` when the
  /// node stops first, or when `deadline` (if given) passes (an answer after it is dropped).
  /// Parts made by transport::borrowedPart are read from the caller's memory until the
  /// response comes; after a false return they may still be, so a caller that gives borrowed
  /// parts must not go on after one (nor give a deadline).
  bool request(int node, zmq::message_t message, std::vector<zmq::message_t> parts,
               std::uint64_t call_id, zmq::message_t &response, const wire::Envelope *&envelope,
               std::string &error,
               std::optional<std::chrono::steady_clock::time_point> deadline = std::nullopt);

  /// Counts this thread's remote calls in progress; the outermost one's end gives its sockets
  /// back. Use as a scope around each remote call.
  class CallScope {
  public:
    explicit CallScope(CallClient &client);
    ~CallScope();

  private:
    CallClient &client_;
  };

  /// Closes the sockets no thread holds, letting them send what is queued for `linger`.
  void close(std::chrono::milliseconds linger);
  /// Gives this thread's sockets back.
  void releaseSockets();

private:
  struct Links;
  Links &links();

  std::vector<std::unique_ptr<PeerSockets>> peers_;
  CallServer &server_;
};

} // namespace distnode::node

#endif
