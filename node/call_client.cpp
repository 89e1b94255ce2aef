// call_client.cpp - making calls to other nodes.
#include "node/call_client.h"

#include "node/node_sockets.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <condition_variable>
#include <map>
#include <mutex>

namespace distnode::node {

namespace {

// Answers kept for outer waits of the same thread (see request()).
constexpr std::size_t kMaxEarlyAnswers = 4096;

} // namespace

// One outgoing call socket and the eventfd that wakes the thread waiting on it when a call of
// its chain arrives (the fd goes with the socket, so their number is bounded by the sockets',
// not by the program's threads).
struct Slot {
  std::unique_ptr<zmq::socket_t> socket;
  int socket_fd = -1; ///< the socket's ZMQ_FD: readable when its state may have changed
  int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  ~Slot() {
    if (efd >= 0)
      ::close(efd);
  }
};

// The outgoing call sockets to one node, lent to one thread at a time (a ZeroMQ socket may
// change threads when a lock orders the hand-over).
class PeerSockets {
public:
  explicit PeerSockets(std::string endpoint) : endpoint_(std::move(endpoint)) {}

  std::unique_ptr<Slot> take(const CallServer &server) {
    std::unique_lock lock(mu_);
    while (free_.empty() && created_ >= CallClient::kMaxSocketsPerPeer && !server.stopping())
      cv_.wait_for(lock, kPollSlice);
    if (!free_.empty()) {
      auto s = std::move(free_.back());
      free_.pop_back();
      return s;
    }
    ++created_;
    auto s = std::make_unique<Slot>();
    s->socket = std::make_unique<zmq::socket_t>(context(), zmq::socket_type::dealer);
    transport::configureSocket(*s->socket, maxMessageBytes());
    s->socket->connect(endpoint_);
    s->socket_fd = s->socket->get(zmq::sockopt::fd);
    return s;
  }
  void give(std::unique_ptr<Slot> s) {
    {
      std::lock_guard lock(mu_);
      free_.push_back(std::move(s));
    }
    cv_.notify_one();
  }
  void closeAll(std::chrono::milliseconds linger) {
    std::lock_guard lock(mu_);
    for (auto &s : free_) {
      s->socket->set(zmq::sockopt::linger, static_cast<int>(linger.count()));
      s->socket->close();
    }
    free_.clear();
  }

private:
  std::string endpoint_;
  std::mutex mu_; ///< guards free_ and created_
  std::condition_variable cv_;
  std::vector<std::unique_ptr<Slot>> free_;
  int created_ = 0;
};

// The sockets this thread holds, one per peer at most.
struct CallClient::Links {
  const CallClient *owner = nullptr;
  std::vector<std::unique_ptr<Slot>> slots;
  std::map<std::uint64_t, zmq::message_t> early; ///< answers for outer waits, by call id
  int depth = 0;                                 ///< remote calls in progress on this thread
};

CallClient::CallClient(const std::vector<std::string> &endpoints, CallServer &server)
    : server_(server) {
  for (const auto &e : endpoints)
    peers_.push_back(std::make_unique<PeerSockets>(e));
}

CallClient::~CallClient() = default;

CallClient::Links &CallClient::links() {
  thread_local Links links;
  if (links.owner != this) {
    links.slots.clear();
    links.early.clear();
    links.slots.resize(peers_.size());
    links.owner = this;
  }
  return links;
}

void CallClient::releaseSockets() {
  Links &l = links();
  for (std::size_t i = 0; i < l.slots.size(); ++i)
    if (l.slots[i])
      peers_[i]->give(std::move(l.slots[i]));
  l.early.clear();
}

void CallClient::close(std::chrono::milliseconds linger) {
  releaseSockets();
  for (auto &p : peers_)
    p->closeAll(linger);
}

CallClient::CallScope::CallScope(CallClient &client) : client_(client) { ++client_.links().depth; }

CallClient::CallScope::~CallScope() {
  if (--client_.links().depth == 0)
    client_.releaseSockets();
}

bool CallClient::request(int node, zmq::message_t message, std::uint64_t call_id,
                         zmq::message_t &response, const wire::Envelope *&envelope,
                         std::string &error,
                         std::optional<std::chrono::steady_clock::time_point> deadline) {
  Links &l = links();
  auto &held = l.slots[node];
  if (!held)
    held = peers_[node]->take(server_);
  Slot &slot = *held;
  zmq::socket_t &dealer = *slot.socket;
  Mailbox &box = threadMailbox();
  struct Wake { // calls of the chain wake this wait; the outer one's slot afterwards
    Mailbox &box;
    int outer;
    ~Wake() { box.wakeOn(outer); }
  } wake{box, box.wakeOn(slot.efd)};
  CallServer::ChainWait registered(server_, currentChain(), box);
  server_.ensureLeader(); // someone must read the socket while this thread waits
  if (!transport::sendRetrying(dealer, message, zmq::send_flags::none)) {
    error = "cannot send";
    return false;
  }
  while (true) {
    // An answer that arrived while a nested wait on this thread was reading the socket.
    if (auto it = l.early.find(call_id); it != l.early.end()) {
      response = std::move(it->second);
      l.early.erase(it);
      envelope = transport::verifyEnvelope(response);
      return true;
    }
    // Calls of this chain that arrived while it was busy (serving or sending).
    for (Incoming in; box.pop(in);)
      server_.serve(in);
    // An answer already here. A read that finds none also makes the socket's fd signal the
    // next one, so the fd can be waited on with poll(2) itself (zmq::poll looks once more
    // without waiting before it waits: one system call per call).
    bool got = false;
    try {
      got = transport::recvRetrying(dealer, response, zmq::recv_flags::dontwait).has_value();
    } catch (const zmq::error_t &e) {
      if (e.num() != ETERM)
        throw;
      error = "this node is stopping"; // the process ends: its context is closed under us
      return false;
    }
    if (got) {
      envelope = transport::verifyEnvelope(response);
      if (!envelope)
        continue; // garbage
      std::uint64_t id = transport::callIdOf(*envelope);
      if (id == call_id)
        return true;
      // Waits nest (a call of this chain served while another waits) and share this socket:
      // the answer may be for an outer wait, which will look here.
      if (l.early.size() < kMaxEarlyAnswers)
        l.early.emplace(id, std::move(response));
      continue;
    }
    if (server_.stopping() || terminateSignal().load()) {
      error = "this node is stopping";
      return false;
    }
    if (deadline && std::chrono::steady_clock::now() >= *deadline) {
      error = "no answer in time";
      return false;
    }
    pollfd fds[2] = {{slot.socket_fd, POLLIN, 0}, {slot.efd, POLLIN, 0}};
    ::poll(fds, 2, static_cast<int>(kPollSlice.count())); // EINTR: look again
    // Again every slice: the leader seen before sending may have taken a call since, with no
    // idle worker left to read this chain's calls.
    server_.ensureLeader();
    if (fds[1].revents & POLLIN) {
      std::uint64_t count;
      [[maybe_unused]] auto n = ::read(slot.efd, &count, sizeof count);
    }
  }
}

} // namespace distnode::node
