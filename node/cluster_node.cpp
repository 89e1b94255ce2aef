// cluster_node.cpp - this process as one node of a cluster.
#include "node/cluster_node.h"

#include "jit/jit_session.h"
#include "profiler/profiler.h"
#include "transport/messages.h"

#include "llvm/Support/Error.h"

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <iostream>
#include <map>
#include <optional>

namespace distnode::node {

namespace wire = distnode::wire;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

static_assert(jit::kMaxCallBytes + (64 << 10) <= transport::kMaxMessageBytes,
              "a call's blob and its envelope must fit in a message");

namespace {

// How often a waiting thread looks up from its sockets to notice that the node is stopping.
constexpr milliseconds kPollSlice{20};
// Answers kept for outer waits of the same thread (see request()).
constexpr std::size_t kMaxEarlyAnswers = 4096;
// How long a stopping node lets ZeroMQ send what is still queued.
constexpr milliseconds kFlushTimeout{1000};
// How long the entry waits for each node to acknowledge a Shutdown.
constexpr milliseconds kShutdownTimeout{5000};

llvm::Error fail(const std::string &message) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), message);
}

std::string shortHash(const std::uint8_t *data, std::size_t n) {
  static const char *kDigits = "0123456789abcdef";
  std::string hex;
  for (std::size_t i = 0; i < n && i < 6; ++i) {
    hex.push_back(kDigits[data[i] >> 4]);
    hex.push_back(kDigits[data[i] & 15]);
  }
  return hex + "…";
}

// Set by SIGTERM/SIGINT on a member node: stop serving and exit quietly (the launcher or the
// operator stops the cluster; there is nothing to report).
std::atomic<int> terminate_signal{0};

void onTerminate(int sig) { terminate_signal = sig; }

// zmq::poll, with a signal's interruption counted as "nothing ready".
void pollSockets(zmq::pollitem_t *items, int n, milliseconds timeout) {
  try {
    zmq::poll(items, static_cast<size_t>(n), timeout);
  } catch (const zmq::error_t &e) {
    if (e.num() != EINTR)
      throw;
    for (int i = 0; i < n; ++i)
      items[i].revents = 0;
  }
}

// The process-wide ZeroMQ context. Deliberately never destroyed: threads of the program may
// still own sockets (thread-local) when the process exits, and zmq_ctx_term would wait for them.
zmq::context_t &context() {
  static auto *ctx = new zmq::context_t(1);
  return *ctx;
}

} // namespace

struct ClusterNode::Impl {
  ClusterConfig config;
  int self = 0;
  int entry = 0;
  jit::JitSession *session = nullptr;
  std::array<std::uint8_t, 32> sha256{};

  std::unique_ptr<zmq::socket_t> router; // used by the reactor thread only
  std::thread reactor;
  std::atomic<std::thread::id> reactor_id{};
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> next_call_id{1};
  std::atomic<std::uint64_t> epoch{0};
  std::vector<std::atomic<std::uint16_t>> owners;

  std::function<std::string()> shutdown_report;

  std::mutex mu; ///< guards joined, join_failure, shut_down
  std::condition_variable joined_changed;
  std::vector<bool> joined;
  std::string join_failure;
  bool shut_down = false;

  bool onReactor() const { return std::this_thread::get_id() == reactor_id.load(); }

  std::string nodeName(int i) const { return config.nodes[i].name; }

  // ---- outgoing requests -------------------------------------------------------------------

  // This thread's DEALER sockets, one per peer, connected on first use.
  struct Links {
    const Impl *owner = nullptr;
    std::vector<std::unique_ptr<zmq::socket_t>> dealers;
    std::map<std::uint64_t, zmq::message_t> early; ///< answers for outer waits, by call id
  };
  static Links &threadLinks() {
    thread_local Links links;
    return links;
  }

  zmq::socket_t &dealerTo(int node) {
    Links &links = threadLinks();
    if (links.owner != this) {
      links.dealers.clear();
      links.early.clear();
      links.dealers.resize(config.nodes.size());
      links.owner = this;
    }
    auto &socket = links.dealers[node];
    if (!socket) {
      socket = std::make_unique<zmq::socket_t>(context(), zmq::socket_type::dealer);
      transport::configureSocket(*socket);
      socket->connect(config.nodes[node].call_endpoint);
    }
    return *socket;
  }

  // Sends `message` to `node` and waits for the response with `call_id`. While waiting on the
  // reactor thread, serves incoming calls. A zero timeout waits until the node stops.
  bool request(int node, zmq::message_t message, std::uint64_t call_id, milliseconds timeout,
               zmq::message_t &response, const wire::Envelope *&envelope, std::string &error) {
    zmq::socket_t &dealer = dealerTo(node);
    if (!transport::sendRetrying(dealer, message, zmq::send_flags::none)) {
      error = "cannot send to node `" + nodeName(node) + "`";
      return false;
    }
    bool serve = onReactor();
    auto deadline = Clock::now() + timeout;
    Links &links = threadLinks();
    while (true) {
      // An answer that arrived while a nested wait on this thread was reading the socket.
      if (auto it = links.early.find(call_id); it != links.early.end()) {
        response = std::move(it->second);
        links.early.erase(it);
        envelope = transport::verifyEnvelope(response);
        return true;
      }
      zmq::pollitem_t items[2] = {{dealer.handle(), 0, ZMQ_POLLIN, 0},
                                  {serve ? router->handle() : nullptr, 0, ZMQ_POLLIN, 0}};
      pollSockets(items, serve ? 2 : 1, kPollSlice);
      if (items[0].revents & ZMQ_POLLIN) {
        if (!transport::recvRetrying(dealer, response, zmq::recv_flags::none))
          continue;
        envelope = transport::verifyEnvelope(response);
        if (!envelope)
          continue; // garbage
        std::uint64_t id = transport::callIdOf(*envelope);
        if (id == call_id)
          return true;
        // On the reactor thread, waits nest (a call served while another waits) and share this
        // socket: the answer may be for an outer wait, which will look here. Keep it (bounded:
        // answers to requests that timed out are never claimed).
        if (links.early.size() < kMaxEarlyAnswers)
          links.early.emplace(id, std::move(response));
        continue;
      }
      if (serve && (items[1].revents & ZMQ_POLLIN))
        handleIncoming();
      if (timeout.count() > 0 && Clock::now() > deadline) {
        error = "no answer from node `" + nodeName(node) + "` at " +
                config.nodes[node].call_endpoint + " within " + std::to_string(timeout.count()) +
                " ms";
        return false;
      }
      if ((timeout.count() == 0 && stop.load()) || terminate_signal.load()) {
        error = "node `" + nodeName(self) + "` is stopping";
        return false;
      }
    }
  }

  // A request whose answer must be a Reply (an acknowledgement).
  bool acknowledged(int node, zmq::message_t message, std::uint64_t call_id, milliseconds timeout,
                    std::string &error) {
    zmq::message_t response;
    const wire::Envelope *envelope = nullptr;
    if (!request(node, std::move(message), call_id, timeout, response, envelope, error))
      return false;
    if (envelope->body_type() == wire::Body::Reply)
      return true;
    if (auto *e = envelope->body_as_Error())
      error = "node `" + nodeName(node) +
              "` answered: " + (e->message() ? e->message()->str() : std::string("error"));
    else
      error = "node `" + nodeName(node) + "` sent an unexpected answer";
    return false;
  }

  // ---- serving -------------------------------------------------------------------------------

  void reactorLoop() {
    reactor_id = std::this_thread::get_id();
    while (!stop.load() && !terminate_signal.load()) {
      zmq::pollitem_t item = {router->handle(), 0, ZMQ_POLLIN, 0};
      pollSockets(&item, 1, kPollSlice);
      if (item.revents & ZMQ_POLLIN)
        handleIncoming();
    }
  }

  void handleIncoming() {
    zmq::message_t identity, payload;
    if (!transport::recvRetrying(*router, identity, zmq::recv_flags::dontwait))
      return;
    if (!identity.more())
      return;
    if (!transport::recvRetrying(*router, payload, zmq::recv_flags::none))
      return;
    for (bool more = payload.more(); more;) { // frames the protocol does not have: drop them
      zmq::message_t extra;
      if (!transport::recvRetrying(*router, extra, zmq::recv_flags::none))
        break;
      more = extra.more();
    }
    zmq::message_t answer = answerTo(payload);
    transport::sendRetrying(*router, identity, zmq::send_flags::sndmore);
    transport::sendRetrying(*router, answer, zmq::send_flags::none);
  }

  zmq::message_t answerTo(const zmq::message_t &payload) {
    const wire::Envelope *envelope = transport::verifyEnvelope(payload);
    if (!envelope)
      return transport::makeError(0, wire::ErrorCode::Malformed,
                                  "message rejected by the FlatBuffers verifier");
    std::uint64_t call_id = transport::callIdOf(*envelope);
    switch (envelope->body_type()) {
    case wire::Body::Call:
      return serveCall(*envelope->body_as_Call());
    case wire::Body::Join:
      return answerJoin(*envelope->body_as_Join());
    case wire::Body::Placement: {
      const wire::Placement &p = *envelope->body_as_Placement();
      if (!p.owners() || p.owners()->size() != owners.size())
        return transport::makeError(
            call_id, wire::ErrorCode::Malformed,
            "placement lists " + std::to_string(p.owners() ? p.owners()->size() : 0) +
                " functions, this program has " + std::to_string(owners.size()));
      std::vector<std::uint16_t> list(p.owners()->begin(), p.owners()->end());
      for (auto o : list)
        if (o >= config.nodes.size())
          return transport::makeError(call_id, wire::ErrorCode::Malformed,
                                      "placement names node index " + std::to_string(o));
      applyPlacement(list, p.epoch());
      return transport::makeReply(call_id, nullptr, 0);
    }
    case wire::Body::Shutdown: {
      stop = true;
      std::string report = shutdown_report ? shutdown_report() : std::string();
      return transport::makeReply(call_id, reinterpret_cast<const std::uint8_t *>(report.data()),
                                  report.size());
    }
    default:
      return transport::makeError(call_id, wire::ErrorCode::Malformed,
                                  "unexpected message type for a node's call socket");
    }
  }

  zmq::message_t serveCall(const wire::Call &call) {
    std::uint64_t call_id = call.call_id();
    if (call.function() >= owners.size())
      return transport::makeError(call_id, wire::ErrorCode::UnknownFunction,
                                  "no remotable function with id " +
                                      std::to_string(call.function()));
    if (call.epoch() != epoch.load())
      return transport::makeError(call_id, wire::ErrorCode::StaleEpoch,
                                  "call for placement epoch " + std::to_string(call.epoch()) +
                                      ", node is at epoch " + std::to_string(epoch.load()));
    static const std::uint8_t kEmpty = 0;
    const std::uint8_t *args = call.args() ? call.args()->data() : &kEmpty;
    std::size_t size = call.args() ? call.args()->size() : 0;
    transport::ReplyBuilder reply;
    std::string error;
    if (!session->serve(
            call.function(), args, size, [&reply](std::size_t n) { return reply.allocate(n); },
            error))
      return transport::makeError(call_id, wire::ErrorCode::Malformed, error);
    return reply.finish(call_id);
  }

  zmq::message_t answerJoin(const wire::Join &join) {
    std::string name = join.node() ? join.node()->str() : "";
    int index = config.nodeIndex(name);
    std::string reason;
    if (self != entry)
      reason =
          "node `" + nodeName(self) + "` is not the entry node; join `" + nodeName(entry) + "`";
    else if (join.protocol() != transport::kProtocolVersion)
      reason = "node `" + name + "` speaks protocol " + std::to_string(join.protocol()) +
               ", the entry node " + std::to_string(transport::kProtocolVersion) +
               "; run the same distnode version on every node";
    else if (index < 0)
      reason = "node `" + name + "` is not in " + config.path;
    else if (index == self)
      reason = "node `" + name + "` is the entry node itself; give each process its own --name";
    else if (!join.bitcode_sha256() || join.bitcode_sha256()->size() != sha256.size() ||
             !std::equal(sha256.begin(), sha256.end(), join.bitcode_sha256()->begin()))
      reason = "node `" + name + "` runs different bitcode (sha256 " +
               (join.bitcode_sha256()
                    ? shortHash(join.bitcode_sha256()->data(), join.bitcode_sha256()->size())
                    : std::string("none")) +
               ", the entry node " + shortHash(sha256.data(), sha256.size()) +
               "); give every node the same app.bc";
    {
      std::lock_guard lock(mu);
      if (reason.empty() && joined[index])
        reason = "node `" + name + "` has already joined";
      if (reason.empty())
        joined[index] = true;
      else if (join_failure.empty())
        join_failure = reason;
    }
    joined_changed.notify_all();
    return transport::makeWelcome(join.call_id(), reason.empty(), reason);
  }

  void applyPlacement(const std::vector<std::uint16_t> &list, std::uint64_t new_epoch) {
    for (std::size_t id = 0; id < list.size(); ++id) {
      owners[id] = list[id];
      session->relink(static_cast<std::uint32_t>(id),
                      list[id] == self ? jit::StubTarget::Local : jit::StubTarget::Remote);
    }
    epoch = new_epoch;
  }

  // Before the process exits: sends what is still queued (answers, acknowledgements), for at
  // most kFlushTimeout. ZeroMQ sends queued messages only while its context lives, and
  // terminating the context waits for every socket to be closed: this thread's are closed
  // here, but other threads of the program may still hold theirs, so the wait is bounded.
  void flushAndClose() {
    if (!router)
      return;
    for (auto &d : threadLinks().dealers)
      if (d)
        d->set(zmq::sockopt::linger, static_cast<int>(kFlushTimeout.count()));
    threadLinks().dealers.clear();
    router->set(zmq::sockopt::linger, static_cast<int>(kFlushTimeout.count()));
    router->close();
    router.reset();
    auto done = std::make_shared<std::promise<void>>();
    std::future<void> closed = done->get_future();
    std::thread([done] {
      context().close();
      done->set_value();
    }).detach();
    closed.wait_for(kFlushTimeout + milliseconds(200));
  }

  [[noreturn]] void fatal(const std::string &message) {
    if (int sig = terminate_signal.load()) // stopped on purpose: nothing to report
      std::_Exit(128 + sig);
    std::fflush(stdout);
    std::cerr << "distnode: error: " << message << std::endl;
    std::_Exit(2);
  }
};

ClusterNode::ClusterNode(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

ClusterNode::~ClusterNode() {
  impl_->stop = true;
  if (impl_->reactor.joinable())
    impl_->reactor.join();
}

llvm::Expected<std::unique_ptr<ClusterNode>>
ClusterNode::Create(const ClusterConfig &config, int self, jit::JitSession &session,
                    const std::array<std::uint8_t, 32> &bitcode_sha256) {
  auto impl = std::make_unique<Impl>();
  impl->config = config;
  impl->self = self;
  impl->entry = config.nodeIndex(config.entry);
  impl->session = &session;
  impl->sha256 = bitcode_sha256;
  impl->owners = std::vector<std::atomic<std::uint16_t>>(session.remoteFunctions().size());
  for (auto &o : impl->owners)
    o = static_cast<std::uint16_t>(impl->entry);
  impl->joined.assign(config.nodes.size(), false);
  session.setHandleTag(static_cast<std::uint16_t>(self + 1));
  const NodeConfig &me = config.nodes[self];
  try {
    impl->router = std::make_unique<zmq::socket_t>(context(), zmq::socket_type::router);
    transport::configureSocket(*impl->router);
    impl->router->bind(me.call_endpoint);
  } catch (const zmq::error_t &e) {
    return fail(config.path + ":" + std::to_string(me.line) + ": node `" + me.name +
                "`: cannot bind " + me.call_endpoint + ": " + e.what() +
                " (is another process using it?)");
  }
  return std::unique_ptr<ClusterNode>(new ClusterNode(std::move(impl)));
}

llvm::Error ClusterNode::startEntry(const std::vector<std::uint16_t> &owners) {
  Impl &n = *impl_;
  n.reactor = std::thread([&n] { n.reactorLoop(); });
  {
    std::unique_lock lock(n.mu);
    auto deadline = Clock::now() + n.config.join_timeout;
    auto everyone = [&] {
      for (std::size_t i = 0; i < n.joined.size(); ++i)
        if (static_cast<int>(i) != n.self && !n.joined[i])
          return false;
      return true;
    };
    n.joined_changed.wait_until(lock, deadline,
                                [&] { return everyone() || !n.join_failure.empty(); });
    if (!n.join_failure.empty()) {
      std::string why = n.join_failure;
      lock.unlock();
      shutdownCluster(2);
      return fail("join refused: " + why);
    }
    if (!everyone()) {
      std::string missing;
      for (std::size_t i = 0; i < n.joined.size(); ++i)
        if (static_cast<int>(i) != n.self && !n.joined[i])
          missing += (missing.empty() ? "`" : ", `") + n.nodeName(static_cast<int>(i)) + "`";
      lock.unlock();
      shutdownCluster(2);
      return fail(n.config.path + ": node(s) " + missing + " did not join within " +
                  std::to_string(n.config.join_timeout.count()) +
                  " ms; start each with `distnode --join " + n.config.path +
                  " --name NAME app.bc`");
    }
  }
  for (std::size_t i = 0; i < n.config.nodes.size(); ++i) {
    if (static_cast<int>(i) == n.self)
      continue;
    std::uint64_t id = n.next_call_id++;
    std::string error;
    if (!n.acknowledged(static_cast<int>(i), transport::makePlacement(id, 1, owners), id,
                        n.config.join_timeout, error)) {
      shutdownCluster(2);
      return fail("placement not accepted: " + error);
    }
  }
  n.applyPlacement(owners, 1);
  return llvm::Error::success();
}

void ClusterNode::setShutdownReport(std::function<std::string()> report) {
  impl_->shutdown_report = std::move(report);
}

std::vector<std::string> ClusterNode::shutdownCluster(int exit_code) {
  Impl &n = *impl_;
  std::vector<int> members;
  std::vector<std::string> reports(n.config.nodes.size());
  {
    std::lock_guard lock(n.mu);
    if (n.shut_down)
      return {};
    n.shut_down = true;
    for (std::size_t i = 0; i < n.joined.size(); ++i)
      if (n.joined[i])
        members.push_back(static_cast<int>(i));
  }
  for (int m : members) {
    std::uint64_t id = n.next_call_id++;
    std::string error;
    zmq::message_t response;
    const wire::Envelope *envelope = nullptr;
    if (!n.request(m, transport::makeShutdown(id, exit_code), id, kShutdownTimeout, response,
                   envelope, error)) {
      std::cerr << "distnode: warning: " << error << " (shutdown)\n";
      continue;
    }
    if (const wire::Reply *r = envelope->body_as_Reply(); r && r->result())
      reports[m].assign(reinterpret_cast<const char *>(r->result()->data()), r->result()->size());
  }
  n.stop = true;
  if (n.reactor.joinable() && std::this_thread::get_id() != n.reactor.get_id()) {
    n.reactor.join();
    n.flushAndClose(); // e.g. a refused node's Welcome may still be queued
  }
  return reports;
}

llvm::Expected<int> ClusterNode::runMember() {
  Impl &n = *impl_;
  n.reactor_id = std::this_thread::get_id();
  struct sigaction sa {};
  sa.sa_handler = onTerminate;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  std::uint64_t id = n.next_call_id++;
  zmq::message_t response;
  const wire::Envelope *envelope = nullptr;
  std::string error;
  bool joined = n.request(n.entry, transport::makeJoin(id, n.nodeName(n.self), n.sha256), id,
                          n.config.join_timeout, response, envelope, error);
  if (terminate_signal.load())
    return 128 + terminate_signal.load();
  if (!joined)
    return fail("cannot join the cluster: " + error + "; is the entry node running?");
  const wire::Welcome *welcome = envelope->body_as_Welcome();
  if (!welcome)
    return fail("cannot join the cluster: the entry node `" + n.nodeName(n.entry) +
                "` sent an unexpected answer");
  if (!welcome->accepted())
    return fail("the entry node refused this node: " +
                (welcome->reason() ? welcome->reason()->str() : std::string("no reason given")));
  n.reactorLoop();
  if (terminate_signal.load())
    return 128 + terminate_signal.load();
  // The acknowledgement of Shutdown is still queued: the entry would wait for it in vain.
  n.flushAndClose();
  return 0;
}

void ClusterNode::callRemote(std::uint32_t id, void **slots, void *ret) {
  Impl &n = *impl_;
  int owner = n.owners[id].load();
  if (owner == n.self) { // re-linked while this call was on its way: run it here
    n.session->callLocal(id, slots, ret);
    return;
  }
  const jit::RemoteSignature &sig = n.session->remoteFunctions()[id];
  auto started = Clock::now();
  std::size_t size = 0;
  std::string error;
  if (!jit::marshaledCallSize(sig, slots, size, error))
    n.fatal("call of `" + sig.name + "`: " + error);
  std::uint64_t call_id = n.next_call_id++;
  std::size_t args_size = size;
  zmq::message_t call =
      transport::makeCallWith(call_id, id, n.epoch.load(), size,
                              [&](std::uint8_t *room) { jit::marshalCallInto(sig, slots, room); });
  auto marshaled = Clock::now();
  zmq::message_t response;
  const wire::Envelope *envelope = nullptr;
  if (!n.request(owner, std::move(call), call_id, milliseconds(0), response, envelope, error))
    n.fatal("call of `" + sig.name + "` on node `" + n.nodeName(owner) + "` failed: " + error);
  if (const wire::Reply *reply = envelope->body_as_Reply()) {
    static const std::uint8_t kEmpty = 0;
    const std::uint8_t *data = reply->result() ? reply->result()->data() : &kEmpty;
    std::size_t size = reply->result() ? reply->result()->size() : 0;
    auto answered = Clock::now();
    if (!jit::unmarshalReply(sig, data, size, slots, ret, error))
      n.fatal("call of `" + sig.name + "` on node `" + n.nodeName(owner) + "`: " + error);
    if (std::uint32_t pid = n.session->profileId(id))
      profiler::Profiler::instance().recordRemoteCall(pid, args_size + size, answered - marshaled,
                                                      (marshaled - started) +
                                                          (Clock::now() - answered));
    return;
  }
  const wire::Error *e = envelope->body_as_Error();
  n.fatal("call of `" + sig.name + "` on node `" + n.nodeName(owner) + "` failed: " +
          (e && e->message() ? e->message()->str() : std::string("unexpected answer")));
}

} // namespace distnode::node
