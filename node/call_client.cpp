// call_client.cpp - making calls to other nodes.
#include "node/call_client.h"

#include "node/node_sockets.h"

#include <spdlog/spdlog.h>

#include <poll.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <condition_variable>
#include <cstdlib>
#include <map>
#include <mutex>
#include <optional>
#include <system_error>
#include <thread>
#include <unordered_map>

namespace distnode::node {

namespace {

// Answers kept for outer waits of the same thread (see request()).
constexpr std::size_t kMaxEarlyAnswers = 4096;
// Threads in calls to one node from which a call goes on the connection they share (see
// SharedLink): below, each thread's own connection costs no hop; from there on, one
// connection carries many calls per TCP write and read.
constexpr int kShareFrom = 8;

// kShareFrom, or DISTNODE_SHARE_FROM (1-64) where the tests set it: at 1 every call goes on
// the shared connection, whatever the program's threads do.
int shareFrom() {
  static const int from = [] {
    const char *v = std::getenv("DISTNODE_SHARE_FROM");
    const int n = v ? std::atoi(v) : 0;
    return n >= 1 && n <= CallClient::kMaxSocketsPerPeer ? n : kShareFrom;
  }();
  return from;
}
// Answers the shared connection's reader takes in one go.
constexpr std::size_t kReadBatch = 64;

// A DEALER connected to a node's call endpoint.
zmq::socket_t connectCallSocket(const std::string &endpoint) {
  zmq::socket_t socket(context(), zmq::socket_type::dealer);
  transport::configureSocket(socket, maxMessageBytes());
  socket.connect(endpoint);
  return socket;
}

} // namespace

// One outgoing call socket and what wakes the thread that waits on it: an eventfd, polled with
// the socket, and a bell, waited on alone while the thread's call went on the shared connection
// (both go with the socket, so their number is bounded by the sockets', not by the program's
// threads, and they outlive any wait: a late wake finds them).
struct Slot {
  std::unique_ptr<zmq::socket_t> socket;
  int socket_fd = -1; ///< the socket's ZMQ_FD: readable when its state may have changed
  int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  std::atomic<std::uint32_t> bell{0};
  ~Slot() {
    if (efd >= 0)
      ::close(efd);
  }
};

// A call waiting for its answer on a shared connection.
struct Waiter {
  std::atomic<std::uint32_t> *bell; ///< wakes the waiting thread (its slot's bell)
  zmq::message_t answer;            ///< set by the reader before `answered`
  std::atomic<bool> answered{false};
};

// One connection to a node that the threads calling it share while many do. A caller sends
// its call on the socket itself, under the link's lock, and registers its Waiter; a thread of
// the link's own reads every answer, hands each to its Waiter and wakes that caller only. So
// many calls come back in one TCP read, and a call costs no hop on its way out. No application
// code runs on the link's thread.
class SharedLink {
public:
  explicit SharedLink(std::string endpoint) : endpoint_(std::move(endpoint)) {}
  ~SharedLink() {
    close(std::chrono::milliseconds(0));
    ::close(poke_);
  }
  SharedLink(const SharedLink &) = delete;
  SharedLink &operator=(const SharedLink &) = delete;

  /// Sends `message` and its `parts` and registers `waiter` for `call_id`. False (nothing
  /// sent, `message` intact) when the link is closed or cannot start, or its socket has no room
  /// now.
  bool send(zmq::message_t &message, std::vector<zmq::message_t> &parts, std::uint64_t call_id,
            Waiter &waiter) {
    bool sent = false, wake = false;
    {
      std::lock_guard lock(mu_);
      if (closed_ || poke_ < 0 || !start())
        return false;
      waiters_[call_id] = &waiter;
      try {
        sent = transport::sendWithParts(*socket_, message, parts, zmq::send_flags::dontwait);
      } catch (const zmq::error_t &) {
        // The process ends: the caller's own socket says so. A call cut off after its first
        // part may have left the socket in the middle of a message: no call goes here again.
        closed_ = true;
      }
      if (!sent)
        waiters_.erase(call_id); // the caller's own socket waits for room
      // A send (even one that found no room) may take in the socket's pending commands, and
      // with them the signal on its fd that an answer came: then the reader, asleep on that
      // fd, is woken here.
      if (sleeping_.load(std::memory_order_relaxed))
        try {
          wake = (transport::eventsRetrying(*socket_) & ZMQ_POLLIN) != 0;
        } catch (const zmq::error_t &) {
          wake = true; // the reader finds out what happened
        }
    }
    if (wake)
      signalEventFd(poke_);
    return sent;
  }

  /// Whether `waiter`'s answer has come (then the link no longer touches it).
  static bool answered(const Waiter &waiter) {
    return waiter.answered.load(std::memory_order_acquire);
  }

  /// No longer waits for `call_id`: an answer that comes later is dropped.
  void forget(std::uint64_t call_id) {
    std::lock_guard lock(mu_);
    waiters_.erase(call_id);
  }

  /// Stops the link's thread; the socket may send what is queued for `linger`. Calls after it
  /// go another way.
  void close(std::chrono::milliseconds linger) {
    std::thread thread;
    {
      std::lock_guard lock(mu_);
      closed_ = true;
      linger_ = linger;
      thread = std::move(thread_);
    }
    if (thread.joinable()) {
      signalEventFd(poke_);
      thread.join();
    }
  }

private:
  // Makes the socket and the reading thread on the first call (under mu_). False when either
  // cannot be made: calls then go on the callers' own sockets.
  bool start() {
    if (socket_)
      return true;
    try {
      socket_.emplace(connectCallSocket(endpoint_));
      socket_fd_ = socket_->get(zmq::sockopt::fd);
      thread_ = std::thread([this] { run(); });
    } catch (const std::exception &e) { // zmq::error_t or std::system_error
      spdlog::debug("calls to {} cannot share a connection: {}", endpoint_, e.what());
      socket_.reset();
      closed_ = true;
      return false;
    }
    spdlog::debug("calls to {} share one connection while {} threads or more call it", endpoint_,
                  shareFrom());
    return true;
  }

  void run() {
    nameThread("dn-replies");
    blockProgramSignals();
    // A thread starts in its creator's scheduling class, which may be the background one of a
    // long call (call_server.h): this one carries other threads' answers.
    sched_param normal{};
    sched_setscheduler(0, SCHED_OTHER, &normal);
    std::vector<zmq::message_t> read; // taken off the socket, not verified yet
    std::vector<std::pair<std::uint64_t, zmq::message_t>> verified; // by call id
    std::vector<std::atomic<std::uint32_t> *> wake;
    bool drained = false; // the last read found nothing: the socket's fd signals the next answer
    try {
      while (true) {
        wake.clear();
        {
          std::lock_guard lock(mu_);
          handOver(verified, wake);
          if (closed_)
            break;
          if (!drained) {
            drained = readAnswers(read);
            // From here until the wait below returns, a caller's send that takes the fd's
            // signal wakes this thread.
            sleeping_.store(drained, std::memory_order_relaxed);
          }
        }
        for (auto *bell : wake)
          ringBell(*bell);
        // Envelopes are verified outside the lock, which callers wait for to send.
        for (auto &m : read)
          if (const wire::Envelope *e = transport::verifyEnvelope(m))
            verified.emplace_back(transport::callIdOf(*e), std::move(m));
        read.clear(); // garbage is dropped
        if (!verified.empty() || !drained)
          continue; // hands them over (without reading again once drained)
        pollfd fds[2] = {{socket_fd_, POLLIN, 0}, {poke_, POLLIN, 0}};
        ::poll(fds, 2, static_cast<int>(kPollSlice.count()));
        sleeping_.store(false, std::memory_order_relaxed); // reads before it waits again
        drained = false;
        if (fds[1].revents & POLLIN)
          drainEventFd(poke_);
      }
    } catch (const zmq::error_t &e) {
      // The process ends (its context is closed under this thread): the callers waiting here
      // learn it below.
      spdlog::debug("the shared connection to {} closed: {}", endpoint_, e.what());
    }
    // Calls still waiting get an empty answer: this link will not bring theirs. (`wake` may
    // hold the bells of answers handed over just before a read failed.)
    {
      std::lock_guard lock(mu_);
      closed_ = true;
      for (auto &[id, w] : waiters_) {
        wake.push_back(w->bell);
        w->answered.store(true, std::memory_order_release);
      }
      waiters_.clear();
      try {
        socket_->set(zmq::sockopt::linger, static_cast<int>(linger_.count()));
        socket_->close();
      } catch (const zmq::error_t &) {
        // The context is closed already: the socket goes with it.
      }
    }
    for (auto *bell : wake)
      ringBell(*bell);
  }

  // Reads up to kReadBatch messages into `read` (under mu_: callers send on the socket). True
  // when nothing is left to read.
  bool readAnswers(std::vector<zmq::message_t> &read) {
    while (read.size() < kReadBatch) {
      zmq::message_t m;
      if (!transport::recvRetrying(*socket_, m, zmq::recv_flags::dontwait))
        return true;
      read.push_back(std::move(m));
    }
    return false;
  }

  // Hands each verified answer to its Waiter (under mu_); `wake` gets the bells of the callers
  // answered, rung after the lock (a wake is a system call; a bell belongs to its slot, which
  // outlives the wait, so a bell rung after its caller saw the answer and went on only makes
  // that slot's next wait look again). An answer whose caller gave up is dropped.
  void handOver(std::vector<std::pair<std::uint64_t, zmq::message_t>> &verified,
                std::vector<std::atomic<std::uint32_t> *> &wake) {
    for (auto &[id, m] : verified) {
      auto it = waiters_.find(id);
      if (it == waiters_.end())
        continue; // its caller gave up
      Waiter &w = *it->second;
      waiters_.erase(it);
      w.answer = std::move(m);
      wake.push_back(w.bell);
      w.answered.store(true, std::memory_order_release);
    }
    verified.clear();
  }

  std::string endpoint_;
  int poke_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK); ///< wakes the link's thread
  std::mutex mu_;                                     ///< guards the fields below
  std::optional<zmq::socket_t> socket_;
  int socket_fd_ = -1; ///< socket_'s ZMQ_FD
  std::unordered_map<std::uint64_t, Waiter *> waiters_;
  /// The link's last read found nothing and its thread has not woken since: it waits in poll
  /// for the socket's fd, or will once it has handed over what it read. Set under mu_
  /// (cleared without it after the wait).
  std::atomic<bool> sleeping_{false};
  bool closed_ = false;
  std::chrono::milliseconds linger_{0};
  std::thread thread_;
};

// The outgoing call sockets to one node, lent to one thread at a time (a ZeroMQ socket may
// change threads when a lock orders the hand-over).
class PeerSockets {
public:
  explicit PeerSockets(std::string endpoint) : endpoint_(endpoint), shared_(std::move(endpoint)) {}

  std::unique_ptr<Slot> take(const CallServer &server) {
    std::unique_lock lock(mu_);
    while (free_.empty() && created_ >= CallClient::kMaxSocketsPerPeer && !server.stopping())
      cv_.wait_for(lock, kPollSlice);
    ++lent_;
    if (!free_.empty()) {
      auto s = std::move(free_.back());
      free_.pop_back();
      return s;
    }
    ++created_;
    auto s = std::make_unique<Slot>();
    s->socket = std::make_unique<zmq::socket_t>(connectCallSocket(endpoint_));
    s->socket_fd = s->socket->get(zmq::sockopt::fd);
    return s;
  }
  void give(std::unique_ptr<Slot> s) {
    {
      std::lock_guard lock(mu_);
      --lent_;
      free_.push_back(std::move(s));
    }
    cv_.notify_one();
  }
  /// Threads that hold one of these sockets now (each is in a call to this node).
  [[nodiscard]] int callers() const { return lent_.load(std::memory_order_relaxed); }
  SharedLink &shared() { return shared_; }

  void closeAll(std::chrono::milliseconds linger) {
    shared_.close(linger);
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
  std::atomic<int> lent_{0}; ///< sockets held by threads (written under mu_)
  SharedLink shared_;
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

bool CallClient::request(int node, zmq::message_t message, std::vector<zmq::message_t> parts,
                         std::uint64_t call_id, zmq::message_t &response,
                         const wire::Envelope *&envelope, std::string &error,
                         std::optional<std::chrono::steady_clock::time_point> deadline) {
  Links &l = links();
  PeerSockets &peer = *peers_[node];
  auto &held = l.slots[node];
  if (!held)
    held = peer.take(server_);
  Slot &slot = *held;
  zmq::socket_t &dealer = *slot.socket;
  Mailbox &box = threadMailbox();
  struct Wake { // calls of the chain wake this wait; the outer one's slot afterwards
    Mailbox &box;
    Wakeup outer;
    ~Wake() { box.wakeOn(outer); }
  } wake{box, box.wakeOn({slot.efd, &slot.bell})};
  CallServer::ChainWait registered(server_, currentChain(), box);
  server_.ensureLeader(); // someone must read the socket while this thread waits
  // Many threads calling this node: the call goes on the connection they share, and its
  // reader wakes this thread through the slot's bell (a call that cannot go there now goes on
  // the thread's own, as does a long call's in the background class: it would send holding
  // the lock that the other callers wait for, and its core may not come back for a while. The
  // watchdog may move this thread there just after the check: rare, and only one send long).
  Waiter waiter{&slot.bell, {}, {}};
  const bool shared = peer.callers() >= shareFrom() && !inBackgroundClass() &&
                      peer.shared().send(message, parts, call_id, waiter);
  struct Forget { // an answer that comes after this wait ended is dropped
    SharedLink *link;
    std::uint64_t id;
    ~Forget() {
      if (link)
        link->forget(id);
    }
  } forget{shared ? &peer.shared() : nullptr, call_id};
  if (!shared && !transport::sendWithParts(dealer, message, parts, zmq::send_flags::none)) {
    error = "cannot send";
    return false;
  }
  while (true) {
    // Read before looking: a wake after it (an answer, a call of the chain) makes the wait
    // below return at once.
    const std::uint32_t rung = slot.bell.load(std::memory_order_acquire);
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
    if (shared && SharedLink::answered(waiter)) {
      forget.link = nullptr; // the link is done with it
      response = std::move(waiter.answer);
      envelope = transport::verifyEnvelope(response);
      if (!envelope) {
        error = "the connection it shared with other threads closed";
        return false;
      }
      return true;
    }
    // An answer on this thread's own socket (for this call, or for an outer wait on it). A
    // read that finds none also makes the socket's fd signal the next one, so the fd can be
    // waited on with poll(2) itself (zmq::poll looks once more without waiting before it
    // waits: one system call per call). A shared call's answer comes through the slot's bell
    // only; an outer wait on the own socket reads it when this one returns.
    bool got = false;
    if (!shared)
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
    if (shared) {
      waitBell(slot.bell, rung, kPollSlice);
    } else {
      pollfd fds[2] = {{slot.efd, POLLIN, 0}, {slot.socket_fd, POLLIN, 0}};
      ::poll(fds, 2, static_cast<int>(kPollSlice.count())); // EINTR: look again
      if (fds[0].revents & POLLIN)
        drainEventFd(slot.efd);
    }
    // Again every slice: the leader seen before sending may have taken a call since, with no
    // idle worker left to read this chain's calls.
    server_.ensureLeader();
  }
}

} // namespace distnode::node
