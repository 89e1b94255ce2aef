// call_server.h - serving the calls that arrive on a node's call socket.
//
// A pool of worker threads shares the call ROUTER, leader/follower style. One worker at a time,
// the leader, waits on the socket; when a call arrives the leader runs it itself (no thread
// hand-off on the call's path) and keeps the socket meanwhile, unless calls are queued or the
// call's function ran long before: then it hands the leadership to an idle worker first. A
// watchdog hands it over once the leader's call has run kInlineBound, so a second call is read
// at most about 2 x kInlineBound late while a first one runs, and a short call wakes no second
// worker. In busy times the watchdog looks every kInlineBound while calls run; in calm times
// (calls came one at a time) it sleeps until a call arrives while the leader keeps one, which
// the leader has it watch for (an epoll_ctl before and after each call, and one look at the
// socket), and only then hands the socket over.
// With `background_long_calls`, a call handed over, or not kept by the leader, that keeps
// computing (or whose function's last call did) runs in the SCHED_IDLE class until it
// returns: a thread that wakes on its core (a short call, an I/O thread, the control plane)
// runs at once instead of waiting for the long call's time slice; on a machine that has other
// busy processes the long call gets only their leftovers. A call of a chain whose thread
// waits on this node (A→B→A) goes to that thread's mailbox instead and runs
// there, on top of the waiting frames, so nested calls cannot deadlock however small the pool.
// The worker that ran a call sends its reply.
#ifndef DISTNODE_NODE_CALL_SERVER_H
#define DISTNODE_NODE_CALL_SERVER_H

#include <zmq.hpp>

#include <csignal>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace distnode::node {

/// A call received on the call socket, with the identity to answer it by.
struct Incoming {
  zmq::message_t identity, payload;
  /// The message's parts after the payload: a Call's buffers sent in parts of their own
  /// (jit/remote_call.h).
  std::vector<zmq::message_t> parts;
  /// The message had more than kMaxParts parts, or more bytes in them than one message may
  /// carry: none is kept (they are dropped as they are read), and the call is refused.
  bool parts_over_limit = false;
  std::uint32_t function = kNoFunction; ///< the called function, if a Call

  static constexpr std::uint32_t kNoFunction = UINT32_MAX;
  /// The parts one call may have (jit::kMaxOwnParts).
  static constexpr std::size_t kMaxParts = 8;
};

/// What wakes a thread that waits for a reply: the eventfd it polls beside its own socket, and
/// the bell it waits on alone when its call went on a shared connection (node_sockets.h).
struct Wakeup {
  int fd = -1;
  std::atomic<std::uint32_t> *bell = nullptr;
};

/// Calls of a thread's chain handed to it while it waits for a reply. Thread-safe.
class Mailbox {
public:
  /// Queues a call and wakes the thread (through both of its Wakeup, if any).
  void push(Incoming in);
  /// The oldest queued call, if any.
  bool pop(Incoming &in);
  /// Makes `wakeup` what wakes the thread; returns the previous one.
  Wakeup wakeOn(Wakeup wakeup);
  /// Takes every queued call.
  std::deque<Incoming> takeAll();

private:
  std::mutex mu_; ///< guards calls_ and wakeup_
  std::deque<Incoming> calls_;
  Wakeup wakeup_;
};

/// This thread's mailbox.
Mailbox &threadMailbox();

/// The call chain this thread runs in: 0 until it makes or serves a remote call. Calls it
/// makes carry it; calls of it that arrive while it waits run on it.
std::uint64_t &currentChain();

/// Whether this thread runs a long call in the background class now (see above): its remote
/// calls then keep off the connection that threads share (whose lock is held across a send),
/// as its core may not come back to it for a while.
bool inBackgroundClass();

/// The call socket's server. Thread-safe; construct, start(), stop().
class CallServer {
public:
  /// The watchdog's period: the leader hands the socket over at the first look after a call
  /// it kept has run this long (so after kInlineBound to twice that); a call that ran longer
  /// counts as long.
  static constexpr std::chrono::microseconds kInlineBound{250};

  /// Answers one call (runs it); used by every worker.
  using Answer = std::function<zmq::message_t(Incoming &call)>;

  /// `router` is bound already; `pool_size` workers are started by start().
  /// `background_long_calls`: long calls run in SCHED_IDLE (see above), where this process
  /// may move a thread back (CAP_SYS_NICE or an RLIMIT_NICE of 20); else it is off, with a
  /// warning.
  CallServer(std::unique_ptr<zmq::socket_t> router, int pool_size, Answer answer,
             bool background_long_calls);
  ~CallServer();

  void start();
  /// Stops the workers and waits for them (except the calling thread, if it is one). With
  /// `leave_workers`, none is waited for (one may still run a call of the program): the
  /// process must then end without destroying this server (std::_Exit), as a native exit ends
  /// every thread at once.
  void stop(bool leave_workers = false);
  /// Whether stop() was called.
  [[nodiscard]] bool stopping() const { return stop_.load(); }
  /// Whether long calls run in the background class (asked for, and possible here).
  [[nodiscard]] bool backgroundLongCalls() const { return background_long_calls_; }
  /// Whether the times are calm: the last calls came one at a time (see above).
  [[nodiscard]] bool calmTimes();
  /// Whether the calling thread is one of the workers.
  [[nodiscard]] bool onWorker();
  /// Closes the socket, letting it send what is queued for `linger`. After stop().
  void close(std::chrono::milliseconds linger);

  /// Before a thread waits for a reply: if no worker is left to read the socket (all busy or
  /// waiting), starts one, so that the calls of waiting chains are read.
  void ensureLeader();
  /// Runs one received call on this thread and sends its answer.
  void serve(Incoming &in);
  /// Answers the call this thread serves now (the innermost) with `make(call id)`, before it
  /// returns (it must then never return: the answer is sent once). False if the thread serves
  /// no call.
  bool answerServedCall(const std::function<zmq::message_t(std::uint64_t call_id)> &make);

  /// Registers the calling thread's mailbox as the one of `chain` for its lifetime (the
  /// outermost wait of a thread registers; nested waits find it there).
  class ChainWait {
  public:
    ChainWait(CallServer &server, std::uint64_t chain, Mailbox &box);
    ~ChainWait();
    ChainWait(const ChainWait &) = delete;
    ChainWait &operator=(const ChainWait &) = delete;

  private:
    CallServer &server_;
    std::uint64_t chain_;
    Mailbox &box_;
    bool owned_ = false;
  };

private:
  void workerLoop(bool lead_first);
  void leadAndServe(std::unique_lock<std::mutex> &lock);
  bool serveTimed(Incoming &in, std::unique_lock<std::mutex> &lock, std::uint64_t seq, bool heavy,
                  bool known_long);
  bool handOffFirst(const Incoming &in) const;

  bool knownHeavy(const Incoming &in) const;
  /// Sends `answer`.
  void reply(Incoming &in, zmq::message_t &answer);
  void noteDuration(const Incoming &in, bool ran_long, bool ran_heavy);
  void watchdogLoop();
  void lookAtWatched(std::chrono::steady_clock::time_point now);
  void watchHandedOver(bool read_cpu, std::chrono::steady_clock::time_point now);
  void pauseWatch(bool pause);
  std::vector<std::thread> reapEnded();
  bool lead(Incoming &out, bool &waited, bool &drained);
  void startTicks();
  void watchArrivals(std::uint64_t seq);
  void lookForArrivalMeanwhile();
  void unwatchArrivals(std::uint64_t seq);
  bool receive(Incoming &in);
  bool deliverToChain(Incoming &in);
  void enqueue(std::vector<Incoming> &calls);
  void poke();

  Answer answer_;
  std::atomic<bool> stop_{false};
  sigset_t worker_mask_{}; ///< the signal mask of start()'s caller: the program's

  std::unique_ptr<zmq::socket_t> router_;
  std::mutex sock_mu_;        ///< guards every use of router_ (leader's reads, workers' replies)
  int router_fd_ = -1;        ///< ZMQ_FD of router_: readable when its state may have changed
  bool leader_waits_ = false; ///< the leader's last read found nothing: it waits on router_fd_
                              ///< (guarded by sock_mu_)
  int poke_fd_ = -1; ///< eventfd: "look at the router again" (a reply's send took the signal)

  std::mutex pool_mu_; ///< guards the fields below, to workers_
  std::condition_variable pool_cv_;
  std::deque<Incoming> tasks_; ///< calls for any worker
  bool leader_taken_ = false;
  int idle_workers_ = 0;
  int pool_size_;
  int live_workers_ = 0;               ///< started and not ended
  std::vector<std::thread> workers_;   ///< every worker not joined yet
  std::vector<std::thread::id> ended_; ///< workers past the pool's size that ended
  bool inline_call_ = false;           ///< the leader runs a call and still holds the socket
  pid_t inline_tid_ = 0;               ///< the thread that runs it
  pthread_t inline_thread_{};
  std::atomic<bool> *inline_background_ = nullptr; ///< its inBackgroundClass() flag
  bool inline_heavy_ = false; ///< it runs in the background from its start (knownHeavy)
  std::chrono::steady_clock::time_point inline_start_; ///< when the leader began it
  bool ticking_ = false;                               ///< the watchdog's timer runs
  std::uint64_t inline_seq_ = 0;                       ///< counts the calls the leader ran so
  std::unordered_set<std::uint32_t> long_functions_;   ///< whose last call outlasted kInlineBound
  std::unordered_set<std::uint32_t> heavy_functions_;  ///< whose last call used more CPU than
                                                       ///< kInlineBound

  /// Kept calls in a row after which no call was waiting, up to the number that makes the
  /// times calm (call_server.cpp).
  int calm_calls_ = 0;
  /// The kept call whose arrivals the watchdog watches for on the socket's fd (0: none).
  std::uint64_t arrivals_seq_ = 0;
  std::atomic<bool> arrivals_watched_{false}; ///< arrivals_seq_ != 0, read by reply()

  bool background_long_calls_;
  int timer_fd_ = -1;   ///< timerfd: the watchdog's looks, every kInlineBound while calls run
  int arrival_fd_ = -1; ///< eventfd: a reply found a call arrived while the leader keeps one
  int watch_fd_ = -1;   ///< epoll: what the watchdog waits for
  bool can_watch_arrivals_ = true; ///< watch_fd_ was made (else the looks never stop)
  /// A call that runs on a worker keeping no socket and not in the background, which may
  /// compute long: one the watchdog handed over, or one not kept (taken from the queue, or
  /// handed off first). The watchdog moves its thread to the background once it has used the
  /// CPU at least a quarter of the time; the worker ends the watch when the call returns.
  struct Watched {
    pid_t tid;
    pthread_t thread;
    std::atomic<bool> *background; ///< the thread's inBackgroundClass() flag
    /// The thread's CPU time when the watch began (none: the watchdog reads it at its next look).
    std::optional<std::chrono::nanoseconds> cpu_start;
    std::chrono::steady_clock::time_point since;
    int looks;
    bool paused = false; ///< while the thread replies to a call of its chain (serve)
  };
  std::vector<Watched> watched_; ///< guarded by pool_mu_; one per thread at most
  std::thread watchdog_;

  std::mutex chains_mu_; ///< guards waiting_chains_
  std::unordered_map<std::uint64_t, Mailbox *> waiting_chains_;
};

} // namespace distnode::node

#endif
