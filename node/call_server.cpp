// call_server.cpp - serving the calls that arrive on a node's call socket.
#include "node/call_server.h"

#include "node/node_sockets.h"
#include "transport/messages.h"

#include <spdlog/spdlog.h>

#include <poll.h>

#include <sched.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <iterator>
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
// Looks of the watchdog with nothing to watch before it stops looking.
constexpr int kQuietTicks = 8;
// Looks at a call handed over that waits before the watchdog no longer watches it.
constexpr int kMaxLooks = 64;
// Calls the leader kept in a row after each of which no call was waiting, from which on the
// watchdog watches for arrivals instead of looking every kInlineBound (see CallServer).
constexpr int kCalmCalls = 8;
// What woke the watchdog (epoll data): its timer, or a reply that found a call arrived while
// the leader ran one; else the number of the leader's call a call arrived during.
constexpr std::uint64_t kTimerEvent = 0;
constexpr std::uint64_t kArrivalPoke = UINT64_MAX;

// A thread's scheduling class: SCHED_IDLE yields its core to any other thread that wakes
// (no time slice to wait out), SCHED_OTHER is the default.
bool setPolicy(pid_t tid, int policy) {
  sched_param p{};
  return sched_setscheduler(tid, policy, &p) == 0;
}

// Whether this thread is in the background class: set with the class, by the thread itself or
// by the watchdog (through Watched::background).
thread_local std::atomic<bool> t_background{false};

// Moves the calling thread to `policy` and notes whether that is the background class.
void setOwnPolicy(int policy) {
  if (setPolicy(0, policy))
    t_background.store(policy == SCHED_IDLE, std::memory_order_relaxed);
}

// The calling thread's id (gettid is a system call: once per thread).
pid_t ownTid() {
  thread_local const pid_t tid = gettid();
  return tid;
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

// Makes `timer_fd` expire every `period` (0: never).
void armTicks(int timer_fd, std::chrono::nanoseconds period) {
  itimerspec t{};
  t.it_value.tv_sec = static_cast<time_t>(period.count() / 1'000'000'000);
  t.it_value.tv_nsec = static_cast<long>(period.count() % 1'000'000'000);
  t.it_interval = t.it_value;
  timerfd_settime(timer_fd, 0, &t, nullptr);
}

} // namespace

// ---- Mailbox -----------------------------------------------------------------------------

void Mailbox::push(Incoming in) {
  Wakeup w;
  {
    std::lock_guard lock(mu_);
    calls_.push_back(std::move(in));
    w = wakeup_;
  }
  if (w.fd >= 0)
    signalEventFd(w.fd);
  if (w.bell)
    ringBell(*w.bell);
}

bool Mailbox::pop(Incoming &in) {
  std::lock_guard lock(mu_);
  if (calls_.empty())
    return false;
  in = std::move(calls_.front());
  calls_.pop_front();
  return true;
}

Wakeup Mailbox::wakeOn(Wakeup wakeup) {
  std::lock_guard lock(mu_);
  return std::exchange(wakeup_, wakeup);
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

bool inBackgroundClass() { return t_background.load(std::memory_order_relaxed); }

namespace {

// The call this thread serves now (the innermost: a call of its chain may be served while it
// waits for another).
thread_local Incoming *t_serving = nullptr;

struct Serving {
  Incoming *outer;
  explicit Serving(Incoming &in) : outer(std::exchange(t_serving, &in)) {}
  ~Serving() { t_serving = outer; }
};

} // namespace

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
  arrival_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  // The watchdog waits for its timer, the replies' pokes and (while the leader keeps a call in
  // calm times) the socket's fd: epoll, so that watching the socket's fd from the leader's
  // thread is one epoll_ctl, which wakes nobody.
  watch_fd_ = epoll_create1(EPOLL_CLOEXEC);
  epoll_event timer{EPOLLIN, {.u64 = kTimerEvent}}, arrival{EPOLLIN, {.u64 = kArrivalPoke}},
      socket{0, {.u64 = 0}};
  if (watch_fd_ < 0 || timer_fd_ < 0 || arrival_fd_ < 0 ||
      epoll_ctl(watch_fd_, EPOLL_CTL_ADD, timer_fd_, &timer) != 0 ||
      epoll_ctl(watch_fd_, EPOLL_CTL_ADD, arrival_fd_, &arrival) != 0 ||
      epoll_ctl(watch_fd_, EPOLL_CTL_ADD, router_fd_, &socket) != 0)
    can_watch_arrivals_ = false; // the watchdog looks every kInlineBound while calls run
}

CallServer::~CallServer() {
  stop();
  if (poke_fd_ >= 0)
    ::close(poke_fd_);
  for (int fd : {timer_fd_, arrival_fd_, watch_fd_})
    if (fd >= 0)
      ::close(fd);
}

void CallServer::start() {
  // The workers run the program's calls with its signal mask, whichever thread starts one (a
  // thread of the runtime's that blocks the process's signals may, through ensureLeader).
  pthread_sigmask(SIG_BLOCK, nullptr, &worker_mask_);
  std::lock_guard lock(pool_mu_);
  for (int i = 0; i < pool_size_; ++i)
    workers_.emplace_back([this] { workerLoop(false); });
  live_workers_ = pool_size_;
  watchdog_ = std::thread([this] { watchdogLoop(); });
}

void CallServer::stop(bool leave_workers) {
  {
    std::lock_guard lock(pool_mu_); // a worker between its check and its wait must see it
    stop_ = true;
  }
  pool_cv_.notify_all();
  poke();                                           // the leader sees the stop
  armTicks(timer_fd_, std::chrono::nanoseconds(1)); // the watchdog sees the stop
  if (watchdog_.joinable())
    watchdog_.join();
  std::vector<std::thread> all;
  {
    std::lock_guard lock(pool_mu_);
    all.swap(workers_);
  }
  for (auto &t : all) {
    if (leave_workers || t.get_id() == std::this_thread::get_id())
      t.detach(); // the process ends without waiting (see stop()), or this worker ends it
    else if (t.joinable())
      t.join();
  }
}

bool CallServer::calmTimes() {
  std::lock_guard lock(pool_mu_);
  return calm_calls_ >= kCalmCalls;
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

// Queues `calls` for the pool at once, waking as many idle workers as there are calls at most
// (one lock and no wake-up per call beyond those).
void CallServer::enqueue(std::vector<Incoming> &calls) {
  if (calls.empty())
    return;
  int wake = 0;
  {
    std::lock_guard lock(pool_mu_);
    calm_calls_ = 0; // calls arrive together: busy times
    for (auto &in : calls)
      tasks_.push_back(std::move(in));
    wake = std::min(idle_workers_, static_cast<int>(calls.size()));
  }
  calls.clear();
  for (int i = 0; i < wake; ++i)
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
      unwatchArrivals(inline_seq_);
      watchHandedOver(/*read_cpu=*/false, std::chrono::steady_clock::now());
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
  nameThread("dn-worker");
  pthread_sigmask(SIG_SETMASK, &worker_mask_, nullptr);
  if (background_long_calls_)
    setOwnPolicy(SCHED_OTHER); // a thread starts in its creator's class, maybe the background
  std::unique_lock lock(pool_mu_);
  while (true) {
    // A worker started beyond the pool's size for a waiting chain ends once another idle
    // worker is left to read the socket (beyond those the queued calls will take).
    if (!lead_first && live_workers_ > pool_size_ &&
        idle_workers_ > static_cast<int>(tasks_.size())) {
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
      const bool heavy = knownHeavy(in), known_long = handOffFirst(in);
      lock.unlock();
      serveTimed(in, lock, 0, heavy, known_long);
      continue;
    }
    leadAndServe(lock);
  }
}

// As the leader (pool_mu_ held by `lock`, and held again on return): reads calls and runs
// them, keeping the socket while it runs one unless calls are queued or that call's function
// ran long before (then it hands the leadership over first); returns once it is no longer the
// leader.
void CallServer::leadAndServe(std::unique_lock<std::mutex> &lock) {
  leader_taken_ = true;
  bool after_kept = false; // the last call this leader ran it kept the socket for
  while (true) {
    Incoming in;
    bool got = false, drained = false;
    if (!tasks_.empty()) { // a batch's calls no idle worker took
      in = std::move(tasks_.front());
      tasks_.pop_front();
      got = true;
    } else {
      lock.unlock();
      bool waited = false;
      got = lead(in, waited, drained);
      lock.lock();
      // A call that came while the leader ran the last one: busy times. One it had to wait
      // for: calm ones, once in kCalmCalls calls in a row.
      if (got && after_kept)
        calm_calls_ = waited ? std::min(calm_calls_ + 1, kCalmCalls) : 0;
    }
    after_kept = false;
    // Calls queued (a batch, or calls no worker took yet): the pool is busy, and a worker that
    // keeps the socket would read the next calls only after its own; hand it over first.
    if (!got || stop_.load() || handOffFirst(in) || !tasks_.empty()) {
      leader_taken_ = false;
      const bool heavy = got && knownHeavy(in), known_long = got && handOffFirst(in);
      lock.unlock();
      pool_cv_.notify_one(); // the next leader
      if (got)
        serveTimed(in, lock, 0, heavy, known_long);
      else
        lock.lock();
      return;
    }
    const std::uint64_t seq = ++inline_seq_;
    inline_call_ = true;
    inline_tid_ = ownTid();
    inline_start_ = std::chrono::steady_clock::now();
    inline_thread_ = pthread_self();
    inline_background_ = &t_background;
    const bool heavy = knownHeavy(in);
    inline_heavy_ = heavy;
    // In calm times, with the socket read to its end (so that its fd signals the next call),
    // the watchdog wakes only if a call arrives while this one runs; else it looks every
    // kInlineBound.
    const bool watching = drained && calm_calls_ >= kCalmCalls && can_watch_arrivals_;
    if (watching)
      watchArrivals(seq);
    else
      startTicks();
    lock.unlock();
    if (watching)
      lookForArrivalMeanwhile();
    if (!serveTimed(in, lock, seq, heavy, false))
      return; // the watchdog (or a waiting chain) handed the socket over meanwhile
    after_kept = true;
  }
}

// Runs `in` with pool_mu_ released (`lock` is unlocked on entry, locked on return), notes how
// long its function ran, then replies (after the notes: the caller's next call sees them).
// `seq`: the leader's call number if the leader runs it keeping the socket (0 if not); then
// true if it still is the leader. `heavy`, `known_long`: knownHeavy(in) and handOffFirst(in),
// read by the caller under the lock.
bool CallServer::serveTimed(Incoming &in, std::unique_lock<std::mutex> &lock, std::uint64_t seq,
                            bool heavy, bool known_long) {
  auto start = std::chrono::steady_clock::now();
  const bool background = background_long_calls_ && heavy;
  // A call known to run long is timed in CPU too, in the background or not: that says whether
  // the next ones run in the background (no watchdog may look at it: in calm times the leader
  // keeps a long call as long as no other call arrives).
  const bool measured = background_long_calls_ && (heavy || known_long);
  // A call the leader does not keep, and that starts in the normal class, is watched while it
  // runs: nothing else would move it to the background if it computes long.
  const bool watched = seq == 0 && background_long_calls_ && !heavy;
  if (watched) {
    lock.lock();
    watched_.push_back(Watched{ownTid(), pthread_self(), &t_background, std::nullopt, start, 0});
    startTicks();
    lock.unlock();
  }
  std::chrono::nanoseconds cpu_start{};
  if (measured)
    cpu_start = threadCpu(pthread_self());
  if (background)
    setOwnPolicy(SCHED_IDLE);
  zmq::message_t answer;
  {
    Serving serving(in);
    answer = answer_(in);
  }
  const bool ran_long = std::chrono::steady_clock::now() - start > kInlineBound;
  // In the background, a call waits for every other thread on its core: its CPU time, not its
  // wall time, says whether it still computes long.
  const bool ran_heavy = measured && threadCpu(pthread_self()) - cpu_start > kInlineBound;
  // Back to the normal class before any lock (a background thread that holds one would stall
  // every thread that waits for it): after a background call, or one the watchdog moved (a
  // watched call, or a kept one it handed over); once more below if it moved it since.
  bool moved = !background && t_background.load(std::memory_order_relaxed);
  if (background || moved)
    setOwnPolicy(SCHED_OTHER);
  bool kept = false;
  lock.lock();
  // The watchdog looks at this thread no more; a move it made since the look above is undone
  // first, before anything else under the lock.
  std::erase_if(watched_, [](const Watched &w) { return w.tid == ownTid(); });
  if (t_background.load(std::memory_order_relaxed)) {
    moved = moved || !background;
    setOwnPolicy(SCHED_OTHER);
  }
  if (seq != 0) {
    unwatchArrivals(seq);
    // Still the leader unless the watchdog (or a waiting chain) handed the socket over, and
    // then inline_call_ may be the next leader's.
    kept = inline_call_ && inline_seq_ == seq;
    if (kept)
      inline_call_ = false;
  }
  // A call handed over ran long, even if it only waited (for another node, say). Whether its
  // function computes long: its CPU time where it was measured, else whether the watchdog
  // moved it (the CPU time of other calls is not read: a system call).
  noteDuration(in, ran_long || (seq != 0 && !kept), measured ? ran_heavy : moved);
  lock.unlock();
  reply(in, answer);
  lock.lock();
  return kept;
}

bool CallServer::handOffFirst(const Incoming &in) const {
  return in.function != Incoming::kNoFunction && long_functions_.count(in.function) != 0;
}

bool CallServer::knownHeavy(const Incoming &in) const {
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

// Watches the call the leader keeps, and the calls handed over.
//
// In busy times (calls arrive while others run), it looks every kInlineBound while calls run
// (one timer, armed when the leader keeps a call, stopped after kQuietTicks looks with nothing
// to watch) and hands the socket to another worker at the first look after the leader's call
// has run kInlineBound (so after kInlineBound to twice that). In calm times (each call came
// after the last one's reply: one caller at a time), it does not look: the leader has it
// watch the socket's fd while it keeps a call, and the first call that arrives meanwhile
// makes the times busy (the looks start). So a steady stream of calls from one caller wakes
// no thread but the leader.
//
// A call handed over is moved to the background class once it has used the CPU at least a
// quarter of the time since (a call that waits, for another node or for a core, is not moved;
// after kMaxLooks it is no longer watched). The worker moves itself back when the call returns.
void CallServer::watchdogLoop() {
  nameThread("dn-watchdog");
  blockProgramSignals();
  int quiet = 0;
  while (!stop_.load()) {
    bool tick = false;
    std::uint64_t arrival = 0; // the kept call a call arrived during (kArrivalPoke: the watched)
    if (can_watch_arrivals_) {
      epoll_event events[3];
      const int n = epoll_wait(watch_fd_, events, 3, -1); // stop() arms the timer
      for (int i = 0; i < n; ++i) {
        const std::uint64_t what = events[i].data.u64;
        if (what == kTimerEvent)
          tick = true;
        else if (what == kArrivalPoke)
          drainEventFd(arrival_fd_);
        if (what != kTimerEvent)
          arrival = what;
      }
    } else {
      pollfd p{timer_fd_, POLLIN, 0};
      tick = ::poll(&p, 1, static_cast<int>(untilSignaled(timer_fd_).count())) > 0;
    }
    std::uint64_t count = 0;
    if (tick)
      tick = ::read(timer_fd_, &count, sizeof count) == sizeof count;
    bool handed_over = false;
    {
      std::lock_guard lock(pool_mu_);
      if (arrival != 0) {
        if (arrival == kArrivalPoke)
          arrival = arrivals_seq_; // a reply took in the socket's signal
        if (arrival != 0 && arrival == arrivals_seq_) {
          unwatchArrivals(arrival);
          calm_calls_ = 0;
          if (inline_call_ && inline_seq_ == arrival)
            startTicks();
        }
      }
      // A look (only with the timer). A kept call whose arrivals the fd signals is handed
      // over only once a call came.
      auto now = std::chrono::steady_clock::now();
      const bool watching_arrivals = inline_call_ && arrivals_seq_ == inline_seq_;
      if (tick && inline_call_ && !watching_arrivals && now - inline_start_ >= kInlineBound) {
        inline_call_ = false;
        leader_taken_ = false;
        unwatchArrivals(inline_seq_);
        handed_over = true;
        watchHandedOver(/*read_cpu=*/true, now);
      } else if (tick) {
        lookAtWatched(now);
      }
      const bool looking = (inline_call_ && !watching_arrivals) || !watched_.empty();
      if (tick)
        quiet = looking ? 0 : quiet + 1;
      if (quiet >= kQuietTicks && !stop_.load()) {
        quiet = 0;
        ticking_ = false;
        armTicks(timer_fd_, std::chrono::nanoseconds(0));
      }
    }
    if (handed_over)
      pool_cv_.notify_one(); // the next leader
  }
}

// Watches the call the leader kept, now handed over (pool_mu_ held), unless it runs in the
// background (or is about to: its function computes long). `read_cpu`: its CPU time is read
// now (else at the watchdog's first look).
void CallServer::watchHandedOver(bool read_cpu, std::chrono::steady_clock::time_point now) {
  if (!background_long_calls_ || inline_heavy_)
    return;
  std::optional<std::chrono::nanoseconds> cpu;
  if (read_cpu)
    cpu = threadCpu(inline_thread_);
  watched_.push_back(Watched{inline_tid_, inline_thread_, inline_background_, cpu, now, 0});
  startTicks();
}

// One look at each watched call (pool_mu_ held): its thread goes to the background once it has
// used the CPU a quarter of the time since the watch began, and at least kInlineBound has
// passed; a call still not computing after kMaxLooks is watched no more.
void CallServer::lookAtWatched(std::chrono::steady_clock::time_point now) {
  std::erase_if(watched_, [&](Watched &w) {
    if (w.paused)
      return false;
    if (!w.cpu_start) { // its CPU time from here on
      w.cpu_start = threadCpu(w.thread);
      w.since = now;
      return false;
    }
    auto wall = now - w.since;
    if (wall >= kInlineBound && threadCpu(w.thread) - *w.cpu_start > wall / 4) {
      if (setPolicy(w.tid, SCHED_IDLE))
        w.background->store(true, std::memory_order_relaxed);
      return true;
    }
    return ++w.looks >= kMaxLooks;
  });
}

// A reply of another thread may have taken in the socket's signal of a call that arrived after
// the leader's last read and before its watch began (replies look for arrivals only from then
// on): one look at the socket, and the watchdog hears of a call waiting there.
void CallServer::lookForArrivalMeanwhile() {
  bool readable = false;
  {
    std::lock_guard lock(sock_mu_);
    readable = router_ && (transport::eventsRetrying(*router_) & ZMQ_POLLIN) != 0;
  }
  if (readable)
    signalEventFd(arrival_fd_);
}

void CallServer::startTicks() {
  if (!ticking_) {
    ticking_ = true;
    armTicks(timer_fd_, kInlineBound);
  }
}

void CallServer::watchArrivals(std::uint64_t seq) {
  epoll_event e{EPOLLIN | EPOLLONESHOT, {.u64 = seq}};
  if (epoll_ctl(watch_fd_, EPOLL_CTL_MOD, router_fd_, &e) != 0) {
    startTicks();
    return;
  }
  arrivals_seq_ = seq;
  arrivals_watched_.store(true, std::memory_order_relaxed);
}

void CallServer::unwatchArrivals(std::uint64_t seq) {
  if (arrivals_seq_ == 0 || arrivals_seq_ != seq)
    return;
  epoll_event e{0, {.u64 = 0}};
  epoll_ctl(watch_fd_, EPOLL_CTL_MOD, router_fd_, &e);
  arrivals_seq_ = 0;
  arrivals_watched_.store(false, std::memory_order_relaxed);
}

// As the leader: reads the socket until a call arrives for the pool (returned in `out`); calls
// of waiting chains go to their threads meanwhile. False when the node stops.
bool CallServer::lead(Incoming &out, bool &waited, bool &drained) {
  while (!stop_.load() && !terminateSignal().load()) {
    // Everything queued at once (up to kBatch): the first call for the pool is this worker's,
    // the others go to the pool's queue, where workers take them without passing the
    // leadership around for each.
    std::vector<Incoming> batch;
    {
      std::lock_guard lock(sock_mu_);
      // A read that finds a message queued costs no system call (asking the socket's events
      // first would cost one per message); the last one, that finds none, makes the socket's
      // fd signal the next, and this thread will wait on it (see reply()).
      for (Incoming in; router_ && batch.size() < kBatch && receive(in);)
        batch.push_back(std::move(in));
      leader_waits_ = batch.empty();
      drained = batch.size() < kBatch;
    }
    bool mine = false;
    std::vector<Incoming> rest; // allocates only if calls are left for the pool
    for (Incoming &in : batch) {
      if (deliverToChain(in))
        continue;
      if (!mine) {
        out = std::move(in);
        mine = true;
      } else {
        rest.push_back(std::move(in));
      }
    }
    enqueue(rest);
    if (mine)
      return true;
    if (!batch.empty())
      continue;
    waited = true;
    // Plain file descriptors: poll(2) itself (zmq::poll would look once more, without
    // waiting, before it waits). No time slice: stop() pokes.
    pollfd fds[2] = {{router_fd_, POLLIN, 0}, {poke_fd_, POLLIN, 0}};
    ::poll(fds, 2, static_cast<int>(untilSignaled(poke_fd_).count())); // EINTR: look again
    if (fds[1].revents & POLLIN)
      drainEventFd(poke_fd_);
  }
  return false;
}

// Reads one message (identity and payload); sock_mu_ is held.
bool CallServer::receive(Incoming &in) {
  if (!transport::recvRetrying(*router_, in.identity, zmq::recv_flags::dontwait))
    return false;
  if (!in.identity.more() || !transport::recvRetrying(*router_, in.payload, zmq::recv_flags::none))
    return false;
  in.parts.clear();
  in.parts_over_limit = false;
  std::int64_t bytes = 0; // in the parts kept
  for (bool more = in.payload.more(); more;) {
    zmq::message_t part;
    if (!transport::recvRetrying(*router_, part, zmq::recv_flags::none))
      break;
    more = part.more();
    bytes += static_cast<std::int64_t>(part.size());
    in.parts_over_limit =
        in.parts_over_limit || in.parts.size() == Incoming::kMaxParts || bytes > maxMessageBytes();
    if (in.parts_over_limit)
      in.parts.clear(); // a queued message holds no more than one call may
    else
      in.parts.push_back(std::move(part));
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
  zmq::message_t answer;
  {
    Serving serving(in);
    answer = answer_(in);
  }
  // A call of a chain runs on the thread that waits for it, in that thread's class (its outer
  // call may be watched). The reply holds the socket's lock: never in the background, and the
  // watchdog does not move the thread meanwhile; after it, the thread goes back. (Where long
  // calls never go to the background, nothing is watched.)
  if (!background_long_calls_) {
    reply(in, answer);
    return;
  }
  bool background = false;
  {
    std::lock_guard lock(pool_mu_);
    pauseWatch(true);
    background = inBackgroundClass();
    if (background)
      setOwnPolicy(SCHED_OTHER);
  }
  reply(in, answer);
  std::lock_guard lock(pool_mu_);
  pauseWatch(false);
  if (background)
    setOwnPolicy(SCHED_IDLE);
}

// Pauses or resumes the watch of the calling thread's call, if watched (pool_mu_ held): a
// resumed watch measures the CPU from the watchdog's next look.
void CallServer::pauseWatch(bool pause) {
  for (auto &w : watched_)
    if (w.tid == ownTid()) {
      w.paused = pause;
      w.cpu_start.reset();
    }
}

bool CallServer::answerServedCall(
    const std::function<zmq::message_t(std::uint64_t call_id)> &make) {
  Incoming *in = t_serving;
  const wire::Envelope *e = in ? transport::verifyEnvelope(in->payload) : nullptr;
  const wire::Call *call = e ? e->body_as_Call() : nullptr;
  if (!call)
    return false;
  zmq::message_t answer = make(call->call_id());
  reply(*in, answer);
  return true;
}

void CallServer::reply(Incoming &in, zmq::message_t &answer) {
  bool more = false, arrived = false;
  {
    std::lock_guard lock(sock_mu_);
    if (!router_)
      return;
    transport::sendRetrying(*router_, in.identity, zmq::send_flags::sndmore);
    transport::sendRetrying(*router_, answer, zmq::send_flags::none);
    // Sending may have taken in the socket's pending commands, and with them the signal on
    // its fd that the leader (or the watchdog, watching for arrivals while the leader keeps a
    // call) waits for: then it is woken here. A leader that is not waiting reads until
    // nothing is left before it waits, so then no look (a system call) is needed.
    const bool watched = arrivals_watched_.load(std::memory_order_relaxed);
    if (leader_waits_ || watched) {
      const bool readable = (transport::eventsRetrying(*router_) & ZMQ_POLLIN) != 0;
      more = readable && leader_waits_;
      arrived = readable && watched;
    }
  }
  if (more)
    poke();
  if (arrived)
    signalEventFd(arrival_fd_);
}

void CallServer::poke() { signalEventFd(poke_fd_); }

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
  std::vector<Incoming> calls(std::make_move_iterator(left.begin()),
                              std::make_move_iterator(left.end()));
  server_.enqueue(calls); // cannot happen in a synchronous chain; never lose a call
}

} // namespace distnode::node
