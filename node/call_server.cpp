// call_server.cpp - serving the calls that arrive on a node's call socket.
#include "node/call_server.h"

#include "node/node_sockets.h"
#include "transport/messages.h"

#include <spdlog/spdlog.h>

#include <sys/eventfd.h>
#include <unistd.h>

#include <utility>

namespace distnode::node {

namespace wire = distnode::wire;

namespace {

// Worker threads a node may start in all: its pool, plus one for each thread that waits for a
// reply while every worker is busy (see ensureLeader).
constexpr std::size_t kMaxWorkers = 1024;
// Messages a leader reads from the socket in one go.
constexpr std::size_t kBatch = 32;

void signal(int fd) {
  std::uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(fd, &one, sizeof one);
}

void drain(int fd) {
  std::uint64_t count;
  [[maybe_unused]] auto n = ::read(fd, &count, sizeof count);
}

} // namespace

// ---- Mailbox -----------------------------------------------------------------------------

void Mailbox::push(Incoming in) {
  int fd;
  {
    std::lock_guard lock(mu_);
    calls_.push_back(std::move(in));
    fd = wake_fd_;
  }
  if (fd >= 0)
    signal(fd);
}

bool Mailbox::pop(Incoming &in) {
  std::lock_guard lock(mu_);
  if (calls_.empty())
    return false;
  in = std::move(calls_.front());
  calls_.pop_front();
  return true;
}

int Mailbox::wakeOn(int fd) {
  std::lock_guard lock(mu_);
  return std::exchange(wake_fd_, fd);
}

std::deque<Incoming> Mailbox::takeAll() {
  std::lock_guard lock(mu_);
  return std::exchange(calls_, {});
}

Mailbox &threadMailbox() {
  thread_local Mailbox box;
  return box;
}

std::uint64_t &currentChain() {
  thread_local std::uint64_t chain = 0;
  return chain;
}

// ---- CallServer --------------------------------------------------------------------------

CallServer::CallServer(std::unique_ptr<zmq::socket_t> router, int pool_size, Answer answer)
    : answer_(std::move(answer)), router_(std::move(router)), pool_size_(pool_size) {
  router_fd_ = router_->get(zmq::sockopt::fd);
  poke_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
}

CallServer::~CallServer() {
  stop();
  if (poke_fd_ >= 0)
    ::close(poke_fd_);
}

void CallServer::start() {
  std::lock_guard lock(pool_mu_);
  for (int i = 0; i < pool_size_; ++i)
    workers_.emplace_back([this] { workerLoop(false); });
}

void CallServer::stop() {
  {
    std::lock_guard lock(pool_mu_); // a worker between its check and its wait must see it
    stop_ = true;
  }
  pool_cv_.notify_all();
  std::vector<std::thread> all;
  {
    std::lock_guard lock(pool_mu_);
    all.swap(workers_);
  }
  for (auto &t : all) {
    if (t.get_id() == std::this_thread::get_id())
      t.detach(); // a worker that stops the node (it is ending the process)
    else if (t.joinable())
      t.join();
  }
}

bool CallServer::onWorker() {
  std::lock_guard lock(pool_mu_);
  for (const auto &t : workers_)
    if (t.get_id() == std::this_thread::get_id())
      return true;
  return false;
}

void CallServer::close(std::chrono::milliseconds linger) {
  std::lock_guard lock(sock_mu_);
  if (!router_)
    return;
  router_->set(zmq::sockopt::linger, static_cast<int>(linger.count()));
  router_->close();
  router_.reset();
}

void CallServer::enqueue(Incoming in) {
  {
    std::lock_guard lock(pool_mu_);
    tasks_.push_back(std::move(in));
  }
  pool_cv_.notify_one();
}

void CallServer::ensureLeader() {
  std::lock_guard lock(pool_mu_);
  if (leader_taken_ || stop_.load())
    return;
  // Idle workers that queued calls will not claim will lead; wake them all to be sure one
  // does (a leader that gave up its role woke only one, which may have taken a call).
  if (idle_workers_ > static_cast<int>(tasks_.size())) {
    pool_cv_.notify_all();
    return;
  }
  if (workers_.size() >= kMaxWorkers) {
    spdlog::warn("{} workers, all busy or waiting: calls wait for one to finish", kMaxWorkers);
    return;
  }
  workers_.emplace_back([this] { workerLoop(/*lead_first=*/true); });
  spdlog::debug("worker {} started: every other one is busy or waiting", workers_.size());
}

void CallServer::workerLoop(bool lead_first) {
  while (true) {
    Incoming in;
    {
      std::unique_lock lock(pool_mu_);
      ++idle_workers_;
      pool_cv_.wait(lock, [&] { return stop_.load() || !tasks_.empty() || !leader_taken_; });
      --idle_workers_;
      if (stop_.load())
        return;
      // A worker started for a waiting chain reads the socket before it takes queued calls.
      bool take_task = !tasks_.empty() && !(lead_first && !leader_taken_);
      lead_first = false;
      if (take_task) {
        in = std::move(tasks_.front());
        tasks_.pop_front();
      } else {
        leader_taken_ = true;
        lock.unlock();
        bool got = lead(in);
        lock.lock();
        leader_taken_ = false;
        lock.unlock();
        pool_cv_.notify_one(); // the next leader
        if (!got)
          continue;
      }
    }
    serve(in);
  }
}

// As the leader: reads the socket until a call arrives for the pool (returned in `out`); calls
// of waiting chains go to their threads meanwhile. False when the node stops.
bool CallServer::lead(Incoming &out) {
  while (!stop_.load() && !terminateSignal().load()) {
    // Everything queued at once (up to kBatch): the first call for the pool is this worker's,
    // the others go to the pool's queue, where workers take them without passing the
    // leadership around for each.
    std::vector<Incoming> batch;
    {
      std::lock_guard lock(sock_mu_);
      while (router_ && batch.size() < kBatch &&
             (transport::eventsRetrying(*router_) & ZMQ_POLLIN)) {
        Incoming in;
        if (!receive(in))
          break;
        batch.push_back(std::move(in));
      }
    }
    bool mine = false;
    for (Incoming &in : batch) {
      if (deliverToChain(in))
        continue;
      if (!mine) {
        out = std::move(in);
        mine = true;
      } else {
        enqueue(std::move(in));
      }
    }
    if (mine)
      return true;
    if (!batch.empty())
      continue;
    zmq::pollitem_t items[2] = {{nullptr, router_fd_, ZMQ_POLLIN, 0},
                                {nullptr, poke_fd_, ZMQ_POLLIN, 0}};
    pollSockets(items, 2, kPollSlice);
    if (items[1].revents & ZMQ_POLLIN)
      drain(poke_fd_);
  }
  return false;
}

// Reads one message (identity and payload); sock_mu_ is held.
bool CallServer::receive(Incoming &in) {
  if (!transport::recvRetrying(*router_, in.identity, zmq::recv_flags::dontwait))
    return false;
  if (!in.identity.more() || !transport::recvRetrying(*router_, in.payload, zmq::recv_flags::none))
    return false;
  for (bool more = in.payload.more(); more;) { // frames the protocol does not have
    zmq::message_t extra;
    if (!transport::recvRetrying(*router_, extra, zmq::recv_flags::none))
      break;
    more = extra.more();
  }
  return true;
}

bool CallServer::deliverToChain(Incoming &in) {
  const wire::Envelope *e = transport::verifyEnvelope(in.payload);
  const wire::Call *call = e ? e->body_as_Call() : nullptr;
  if (!call || call->chain() == 0)
    return false;
  std::lock_guard lock(chains_mu_);
  auto it = waiting_chains_.find(call->chain());
  if (it == waiting_chains_.end())
    return false;
  it->second->push(std::move(in));
  return true;
}

void CallServer::serve(Incoming &in) {
  zmq::message_t answer = answer_(in.payload);
  bool more = false;
  {
    std::lock_guard lock(sock_mu_);
    if (!router_)
      return;
    transport::sendRetrying(*router_, in.identity, zmq::send_flags::sndmore);
    transport::sendRetrying(*router_, answer, zmq::send_flags::none);
    more = transport::eventsRetrying(*router_) & ZMQ_POLLIN;
  }
  // Sending may have consumed the socket's "readable" signal the leader waits for.
  if (more)
    poke();
}

void CallServer::poke() { signal(poke_fd_); }

CallServer::ChainWait::ChainWait(CallServer &server, std::uint64_t chain, Mailbox &box)
    : server_(server), chain_(chain), box_(box) {
  std::lock_guard lock(server_.chains_mu_);
  owned_ = server_.waiting_chains_.emplace(chain_, &box_).second;
}

CallServer::ChainWait::~ChainWait() {
  if (!owned_)
    return;
  std::deque<Incoming> left;
  {
    std::lock_guard lock(server_.chains_mu_);
    server_.waiting_chains_.erase(chain_);
    left = box_.takeAll();
  }
  for (auto &in : left) // cannot happen in a synchronous chain; never lose a call
    server_.enqueue(std::move(in));
}

} // namespace distnode::node
