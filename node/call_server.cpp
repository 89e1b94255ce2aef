// call_server.cpp - serving the calls that arrive on a node's call socket.
#include "node/call_server.h"

#include "node/node_sockets.h"
#include "transport/messages.h"

#include <spdlog/spdlog.h>

#include <poll.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/timerfd.h>
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
// Functions whose calls are remembered as long at most (beyond, the oldest knowledge is lost:
// a call then costs at most kInlineBound of delay to a call that arrives while it runs).
constexpr std::size_t kMaxLongFunctions = 4096;
// The longest wait between two looks of the watchdog at a long call's CPU time.
constexpr std::chrono::nanoseconds kMaxRecheck = std::chrono::milliseconds(100);

// A thread's scheduling class: SCHED_IDLE yields its core to any other thread that wakes
// (no time slice to wait out), SCHED_OTHER is the default.
bool setPolicy(pid_t tid, int policy) {
  sched_param p{};
  return sched_setscheduler(tid, policy, &p) == 0;
}

// CPU time `thread` has used.
std::chrono::nanoseconds threadCpu(pthread_t thread) {
  clockid_t clock;
  timespec t{};
  if (pthread_getcpuclockid(thread, &clock) != 0 || clock_gettime(clock, &t) != 0)
    return {};
  return std::chrono::seconds(t.tv_sec) + std::chrono::nanoseconds(t.tv_nsec);
}

// Whether this process may move a thread to SCHED_IDLE and back (back needs CAP_SYS_NICE or an
// RLIMIT_NICE of 20): tried on a thread of its own, as the kernel decides.
bool canRestorePolicy() {
  bool ok = false;
  std::thread([&ok] { ok = setPolicy(0, SCHED_IDLE) && setPolicy(0, SCHED_OTHER); }).join();
  return ok;
}

void arm(int timer_fd, std::chrono::nanoseconds after) {
  itimerspec t{};
  t.it_value.tv_sec = static_cast<time_t>(after.count() / 1'000'000'000);
  t.it_value.tv_nsec = static_cast<long>(after.count() % 1'000'000'000);
  timerfd_settime(timer_fd, 0, &t, nullptr);
}

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

CallServer::CallServer(std::unique_ptr<zmq::socket_t> router, int pool_size, Answer answer,
                       bool background_long_calls)
    : answer_(std::move(answer)), router_(std::move(router)), pool_size_(pool_size),
      background_long_calls_(background_long_calls) {
  if (background_long_calls_ && !canRestorePolicy()) {
    background_long_calls_ = false;
    spdlog::warn("long calls run at normal priority: this process may not move a thread back "
                 "from SCHED_IDLE (give it CAP_SYS_NICE or `ulimit -e 20`, or set `long_calls: "
                 "normal` for this node)");
  }
  router_fd_ = router_->get(zmq::sockopt::fd);
  poke_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  timer_fd_ = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
  recheck_fd_ = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
}

CallServer::~CallServer() {
  stop();
  if (poke_fd_ >= 0)
    ::close(poke_fd_);
  for (int fd : {timer_fd_, recheck_fd_})
    if (fd >= 0)
      ::close(fd);
}

void CallServer::start() {
  std::lock_guard lock(pool_mu_);
  for (int i = 0; i < pool_size_; ++i)
    workers_.emplace_back([this] { workerLoop(false); });
  live_workers_ = pool_size_;
  watchdog_ = std::thread([this] { watchdogLoop(); });
}

void CallServer::stop() {
  {
    std::lock_guard lock(pool_mu_); // a worker between its check and its wait must see it
    stop_ = true;
  }
  pool_cv_.notify_all();
  arm(timer_fd_, std::chrono::nanoseconds(1)); // the watchdog sees the stop
  if (watchdog_.joinable())
    watchdog_.join();
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
  std::vector<std::thread> ended;
  {
    std::lock_guard lock(pool_mu_);
    if (stop_.load() || (leader_taken_ && !inline_call_))
      return;
    if (inline_call_) { // the leader runs a call: the socket is read by nobody meanwhile
      inline_call_ = false;
      leader_taken_ = false;
    }
    // Idle workers that queued calls will not claim will lead; wake them all to be sure one
    // does (a leader that gave up its role woke only one, which may have taken a call).
    if (idle_workers_ > static_cast<int>(tasks_.size())) {
      pool_cv_.notify_all();
      return;
    }
    if (live_workers_ >= static_cast<int>(kMaxWorkers)) {
      spdlog::warn("{} workers, all busy or waiting: calls wait for one to finish", kMaxWorkers);
      return;
    }
    ended = reapEnded();
    workers_.emplace_back([this] { workerLoop(/*lead_first=*/true); });
    ++live_workers_;
    spdlog::debug("worker {} started: every other one is busy or waiting", live_workers_);
  }
  for (auto &t : ended)
    t.join();
}

// The threads of workers that ended (pool_mu_ held), to join.
std::vector<std::thread> CallServer::reapEnded() {
  std::vector<std::thread> ended;
  for (auto id : ended_)
    for (auto it = workers_.begin(); it != workers_.end(); ++it)
      if (it->get_id() == id) {
        ended.push_back(std::move(*it));
        workers_.erase(it);
        break;
      }
  ended_.clear();
  return ended;
}

void CallServer::workerLoop(bool lead_first) {
  std::unique_lock lock(pool_mu_);
  while (true) {
    // A worker started beyond the pool's size for a waiting chain ends once another worker is
    // idle to read the socket.
    if (!lead_first && live_workers_ > pool_size_ && idle_workers_ > 0) {
      --live_workers_;
      ended_.push_back(std::this_thread::get_id());
      return;
    }
    ++idle_workers_;
    pool_cv_.wait(lock, [&] { return stop_.load() || !tasks_.empty() || !leader_taken_; });
    --idle_workers_;
    if (stop_.load())
      return;
    // A worker started for a waiting chain reads the socket before it takes queued calls.
    bool take_task = !tasks_.empty() && !(lead_first && !leader_taken_);
    lead_first = false;
    if (take_task) {
      Incoming in = std::move(tasks_.front());
      tasks_.pop_front();
      lock.unlock();
      serveTimed(in, lock, threadCpu(pthread_self()));
      continue;
    }
    leadAndServe(lock);
  }
}

// As the leader (pool_mu_ held by `lock`, and held again on return): reads calls and runs
// them, keeping the socket while it runs one unless that call's function ran long before
// (then it hands the leadership over first); returns once it is no longer the leader.
void CallServer::leadAndServe(std::unique_lock<std::mutex> &lock) {
  leader_taken_ = true;
  while (true) {
    Incoming in;
    bool got = false;
    if (!tasks_.empty()) { // a batch's calls no idle worker took
      in = std::move(tasks_.front());
      tasks_.pop_front();
      got = true;
    } else {
      lock.unlock();
      got = lead(in);
      lock.lock();
    }
    // Calls queued (a batch, or calls no worker took yet): the pool is busy, and a worker that
    // keeps the socket would read the next calls only after its own; hand it over first.
    if (!got || stop_.load() || handOffFirst(in) || !tasks_.empty()) {
      leader_taken_ = false;
      lock.unlock();
      pool_cv_.notify_one(); // the next leader
      if (got)
        serveTimed(in, lock, threadCpu(pthread_self()));
      else
        lock.lock();
      return;
    }
    const std::uint64_t seq = ++inline_seq_;
    inline_call_ = true;
    inline_tid_ = gettid();
    inline_thread_ = pthread_self();
    inline_cpu_start_ = threadCpu(inline_thread_);
    arm(timer_fd_, CallServer::kInlineBound);
    lock.unlock();
    bool ran_long = serveTimed(in, lock, inline_cpu_start_);
    // Still the leader unless the watchdog (or a waiting chain) handed the socket over, and
    // then inline_call_ and the timer may be the next leader's.
    const bool kept = inline_call_ && inline_seq_ == seq;
    if (!kept) {
      if (watched_ && watched_->seq == seq)
        watched_.reset();
      if (background_long_calls_)
        setPolicy(0, SCHED_OTHER); // the watchdog may have moved it after the call returned
      // It waited for another node: hand over before it next time.
      if (!ran_long && in.function != Incoming::kNoFunction &&
          long_functions_.size() < kMaxLongFunctions)
        long_functions_.insert(in.function);
      return;
    }
    inline_call_ = false;
    arm(timer_fd_, std::chrono::nanoseconds(0)); // an expiry would wake the watchdog
  }
}

// Serves `in` with pool_mu_ released (`lock` is unlocked on entry, locked on return) and
// notes how long its function ran; true when longer than kInlineBound.
bool CallServer::serveTimed(Incoming &in, std::unique_lock<std::mutex> &lock,
                            std::chrono::nanoseconds cpu_start) {
  auto start = std::chrono::steady_clock::now();
  const bool background = background_long_calls_ && runsHeavy(in);
  if (background)
    setPolicy(0, SCHED_IDLE);
  zmq::message_t answer = answer_(in.payload);
  const bool ran_long = std::chrono::steady_clock::now() - start > kInlineBound;
  const bool ran_heavy = threadCpu(pthread_self()) - cpu_start > kInlineBound;
  if (background || ran_heavy)
    setPolicy(0, SCHED_OTHER); // the watchdog may have moved it
  {
    std::lock_guard note(pool_mu_); // before the reply: the caller's next call sees it
    noteDuration(in, ran_long, ran_heavy);
  }
  reply(in, answer);
  lock.lock();
  return ran_long;
}

bool CallServer::handOffFirst(const Incoming &in) const {
  return in.function != Incoming::kNoFunction && long_functions_.count(in.function) != 0;
}

bool CallServer::runsHeavy(const Incoming &in) {
  std::lock_guard lock(pool_mu_);
  return in.function != Incoming::kNoFunction && heavy_functions_.count(in.function) != 0;
}

void CallServer::noteDuration(const Incoming &in, bool ran_long, bool ran_heavy) {
  if (in.function == Incoming::kNoFunction)
    return;
  for (auto [set, yes] : {std::pair{&long_functions_, ran_long}, {&heavy_functions_, ran_heavy}}) {
    if (!yes)
      set->erase(in.function);
    else if (set->size() < kMaxLongFunctions)
      set->insert(in.function);
  }
}

// Hands the socket to another worker when the leader's call outlasts kInlineBound.
// Hands the socket to another worker when the leader's call outlasts kInlineBound, and moves
// such a call to the background class once it has used kInlineBound of CPU (a call that
// waits, for a core or for another node, is not moved): at once, or at checks spaced twice as
// far apart each time while it runs. The worker moves itself back when the call returns.
void CallServer::watchdogLoop() {
  auto expired = [](const pollfd &p) {
    std::uint64_t count = 0;
    return (p.revents & POLLIN) && ::read(p.fd, &count, sizeof count) == sizeof count;
  };
  auto heavy = [](pthread_t thread, std::chrono::nanoseconds cpu_start) {
    return threadCpu(thread) - cpu_start > kInlineBound;
  };
  while (!stop_.load()) {
    pollfd p[2] = {{timer_fd_, POLLIN, 0}, {recheck_fd_, POLLIN, 0}};
    if (::poll(p, 2, static_cast<int>(kPollSlice.count())) <= 0)
      continue;
    bool handed_over = false;
    {
      std::lock_guard lock(pool_mu_);
      if (expired(p[0]) && inline_call_) { // else re-armed or done meanwhile
        inline_call_ = false;
        leader_taken_ = false;
        handed_over = true;
        if (background_long_calls_) {
          if (heavy(inline_thread_, inline_cpu_start_)) {
            setPolicy(inline_tid_, SCHED_IDLE);
          } else {
            watched_ =
                Watched{inline_seq_, inline_tid_, inline_thread_, inline_cpu_start_, kInlineBound};
            arm(recheck_fd_, kInlineBound);
          }
        }
      }
      if (expired(p[1]) && watched_) {
        if (heavy(watched_->thread, watched_->cpu_start)) {
          setPolicy(watched_->tid, SCHED_IDLE);
          watched_.reset();
        } else {
          watched_->next_check = std::min(watched_->next_check * 2, kMaxRecheck);
          arm(recheck_fd_, watched_->next_check);
        }
      }
    }
    if (handed_over)
      pool_cv_.notify_one(); // the next leader
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
  if (!call)
    return false;
  in.function = call->function();
  if (call->chain() == 0)
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
  reply(in, answer);
}

void CallServer::reply(Incoming &in, zmq::message_t &answer) {
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
