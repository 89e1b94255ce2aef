// cluster_node.cpp - this process as one node of a cluster.
#include "node/cluster_node.h"

#include "node/call_client.h"
#include "node/call_server.h"
#include "node/link_estimate.h"
#include "node/node_sockets.h"
#include "node/placement_table.h"
#include "node/profile_wire.h"
#include "node/replica_dispatcher.h"

#include "jit/jit_session.h"
#include "jit/unit_gate.h"
#include "profiler/profiler.h"
#include "transport/messages.h"

#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <future>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <utility>

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

namespace distnode::node {

namespace wire = distnode::wire;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

// How long a stopping node lets ZeroMQ send what is still queued.
constexpr milliseconds kFlushTimeout{1000};
// The entry node's flush once every member acknowledged the cluster's stop.
constexpr milliseconds kShortFlush{50};
// How long the entry waits for each node to acknowledge a Shutdown.
constexpr milliseconds kShutdownTimeout{5000};
// How long the entry waits for the others to hear that a node died before it stops.
constexpr milliseconds kFailureNoticeTimeout{1000};

llvm::Error fail(const std::string &message) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), message);
}

std::string shortHash(const std::uint8_t *data, std::size_t n) {
  std::string hex = llvm::toHex(llvm::ArrayRef<std::uint8_t>(data, std::min<std::size_t>(n, 6)),
                                /*LowerCase=*/true);
  return hex + "…";
}

// SIGTERM/SIGINT/SIGHUP on a member node (unless inherited ignored): stop serving, tell the
// entry node (unless under the launcher, which stops every node) and exit quietly.
// The member's control loop waits on it (-1: none yet): a stop signal wakes it, wherever it is
// delivered (the loop's own thread blocks it, see blockProgramSignals).
std::atomic<int> terminate_wake_fd{-1};

void onTerminate(int sig) {
  terminateSignal() = sig;
  if (const int fd = terminate_wake_fd.load(); fd >= 0)
    signalEventFd(fd);
}

// Set in a child process made by fork(): ZeroMQ's threads, and with them every connection of
// the node, are not copied into it.
std::atomic<bool> forked_child{false};

// A node that the program crashes (SIGSEGV, SIGFPE...) tells the others which signal and which
// function, so that the cluster stops at once with that line (the others would otherwise notice
// only its silence, a heartbeat timeout later): a member tells the entry node, which stops the
// cluster with the signal's exit code; the entry node tells every member. The handler does only
// what is safe in it: it writes a note to a pipe that the node's control thread or loop reads,
// waits (bounded) for it to say the others have it, and dies of the signal. (A child made by
// fork() gets the handlers it had before: see Create.) The entry node does the same when it is
// stopped by a signal (kStopSignals, unless the program handles them itself): else the members
// would learn of its end only from its silence.
constexpr std::uint32_t kNoFunction = ~std::uint32_t{0};
constexpr int kStopSignals[] = {SIGTERM, SIGINT, SIGHUP};
bool isStopSignal(int sig) {
  return std::find(std::begin(kStopSignals), std::end(kStopSignals), sig) != std::end(kStopSignals);
}
// Whether `sig` is ignored (inherited so: nohup, a shell's background job). A stop signal that
// is stays ignored, as natively.
bool ignored(int sig) {
  struct sigaction now {};
  return sigaction(sig, nullptr, &now) == 0 && now.sa_handler == SIG_IGN;
}
// What a node stopped by signal `sig` did, after its name.
std::string stoppedBy(int sig) {
  return std::string("was stopped (signal ") + strsignal(sig) + ")";
}
struct CrashNote {
  std::int32_t signal;
  std::uint32_t function; // the remotable function this thread was running, or kNoFunction
};
int crash_note_fds[2] = {-1, -1}; // the handler writes [1]; the control loop reads [0]
int crash_told_fds[2] = {-1, -1}; // the control loop writes [1] once the entry has the note
std::atomic<bool> crashing{false};
std::atomic<pid_t> control_tid{0}; // the control thread or loop, which cannot tell of its crash
// The control thread or loop runs and reads the handler's notes: while it does not (before it
// starts, once it ended), a crashing thread does not wait for an answer that cannot come.
std::atomic<bool> notes_read{false};
struct ReadingNotes {
  ReadingNotes() { notes_read.store(true); }
  ~ReadingNotes() { notes_read.store(false); }
};
thread_local std::uint32_t serving_function = kNoFunction;

void onCrash(int sig) {
  // The first crash tells, unless it is the control loop's own (which cannot send it) or that
  // of a child made by fork() (whose handler the program may have saved and called: the child's
  // end is its own). Every crashing thread but the control loop waits (at most 2 s) until the
  // entry has the note, so that a second crash does not end the process before the first is
  // told.
  if (gettid() != control_tid.load(std::memory_order_relaxed) &&
      !forked_child.load(std::memory_order_relaxed)) {
    bool wait = notes_read.load();
    if (!crashing.exchange(true)) {
      CrashNote note{sig, serving_function};
      ssize_t n;
      do
        n = write(crash_note_fds[1], &note, sizeof note);
      while (n < 0 && errno == EINTR);
      wait = wait && n == sizeof note;
    }
    for (int i = 0; wait && i < 20; ++i) { // 20 × 100 ms; the byte stays for every waiter
      pollfd told = {crash_told_fds[0], POLLIN, 0};
      wait = poll(&told, 1, 100) == 0 || (told.revents & POLLIN) == 0;
    }
  }
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  sigaction(sig, &dfl, nullptr);
  raise(sig); // delivered when the handler returns (or the faulting instruction runs again)
}

// A thread that serves calls on a member gets a stack of its own for the crash handler (once,
// freed when the thread ends), so that a stack overflow, a fault on the guard page with no
// stack left to handle it on, is told too.
struct CrashStack {
  static constexpr std::size_t kBytes = std::size_t(64) << 10;
  void *memory = nullptr;
  void ensure() {
    if (memory || crash_note_fds[0] < 0)
      return;
    void *m = mmap(nullptr, kBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK,
                   -1, 0);
    if (m == MAP_FAILED)
      return;
    stack_t stack{};
    stack.ss_sp = m;
    stack.ss_size = kBytes;
    if (sigaltstack(&stack, nullptr) != 0) {
      munmap(m, kBytes);
      return;
    }
    memory = m;
  }
  ~CrashStack() {
    if (!memory)
      return;
    stack_t off{};
    off.ss_flags = SS_DISABLE;
    sigaltstack(&off, nullptr);
    munmap(memory, kBytes);
  }
};
thread_local CrashStack crash_stack;

// The function a served call runs, for a crash note, on this thread until the scope ends.
struct ServingFunction {
  std::uint32_t outer = serving_function;
  explicit ServingFunction(std::uint32_t f) { serving_function = f; }
  ~ServingFunction() { serving_function = outer; }
};

std::string errorText(const wire::Envelope &e) {
  if (const wire::Error *err = e.body_as_Error())
    return err->message() ? err->message()->str() : std::string("error");
  return "an unexpected answer";
}

// How often one call may be answered Moved before the placement is taken as broken.
constexpr int kMaxMoves = 1000;
// How long a migration waits for the calls inside a unit to end (at most half the heartbeat
// timeout: a member drains on the thread that answers heartbeats).
constexpr milliseconds kDrainTimeout{250};

// One outstanding control request of the entry node to one node, answered by a Reply or Error
// with its call id.
struct Ack {
  bool ok = false;
  std::string text; ///< the Reply's result, or why it failed
};

// A node's looks at its counts between planning rounds (every node but the coordinator, whose
// loop looks at its own): one every phaseLookEvery(interval), and at most one ask for an early
// round per round answered, none before the first. Used by the thread that serves the node's
// control plane.
struct PhaseLooks {
  Clock::time_point next{};
  std::uint64_t answered_round = 0; ///< the last round this node reported
  bool asked = false;               ///< it asked for a round early since

  void start(milliseconds interval) { next = Clock::now() + phaseLookEvery(interval); }
  // How long the control loop may sleep before the next look, at most `most`.
  milliseconds wait(milliseconds most) const {
    return std::min(most, std::chrono::duration_cast<milliseconds>(
                              std::max(next - Clock::now(), Clock::duration(0))));
  }
  // Whether a look is due (then the next one is scheduled).
  bool due(milliseconds interval) {
    auto now = Clock::now();
    if (now < next)
      return false;
    next = now + phaseLookEvery(interval);
    return true;
  }
  // The interval changed: the next look comes no later than one look of it from now.
  void shorten(milliseconds interval) {
    next = std::min(next, Clock::now() + phaseLookEvery(interval));
  }
  void answered(std::uint64_t round) {
    answered_round = round;
    asked = false;
  }
  // A look saw a new phase: whether to ask for a round now.
  bool ask() {
    if (answered_round == 0 || asked)
      return false;
    asked = true;
    return true;
  }
};

// A coordinator's Placement waiting on the entry node for its turn (placer thread).
struct PlaceJob {
  std::uint64_t call_id = 0;
  std::vector<std::uint16_t> owners;
  ReplicaSets replicas;
};

// How the program ended itself, as the wire carries it (the same values) and back; a value
// this node does not know is none.
wire::ExitKind toWire(jit::ExitKind how) { return static_cast<wire::ExitKind>(how); }

std::optional<jit::ExitKind> fromWire(wire::ExitKind how) {
  if (how > wire::ExitKind::MAX)
    return std::nullopt;
  return static_cast<jit::ExitKind>(how);
}

// How the program's end reads in a message: "exit(3)", "_exit(3)".
std::string endText(int code, jit::ExitKind how) {
  const char *name = how == jit::ExitKind::Quick       ? "quick_exit"
                     : how == jit::ExitKind::Immediate ? "_exit"
                                                       : "exit";
  return std::string(name) + "(" + std::to_string(code) + ")";
}

} // namespace

struct ClusterNode::Impl {
  ClusterConfig config;
  int self = 0;
  int entry = 0;
  int coordinator = 0; ///< the node that runs the planning loop (config.coordinator)
  jit::JitSession *session = nullptr;
  std::array<std::uint8_t, 32> sha256{};
  FailureHandler on_failure;
  milliseconds heartbeat_interval{600};

  // ---- data plane (call_server.h, call_client.h) ----------------------------------------------
  std::unique_ptr<CallServer> server;
  std::unique_ptr<CallClient> client;
  std::atomic<bool> stop{false};
  bool leave_workers = false; ///< a member stops without waiting for its workers (runMember)
  std::atomic<std::uint64_t> next_call_id{1};
  std::atomic<std::uint64_t> next_chain{1};
  // ---- placement -----------------------------------------------------------------------------
  std::vector<std::uint32_t> unit_of; ///< placement unit of each remotable function
  std::vector<bool> movable;          ///< per unit: stateless and placeable (runs anywhere)
  std::vector<bool> stateful;         ///< per unit: holds mutable globals or GPin objects
  bool under_launcher = false;        ///< see setUnderLauncher
  std::vector<bool> migratable;       ///< per unit: stateful, and its state can move
  std::vector<bool> load_balanced;    ///< per unit: runs on its replica set
  std::unique_ptr<ReplicaDispatcher> dispatcher; ///< picks a replica per call
  std::atomic<std::uint64_t> served_balanced{0}; ///< load-balanced calls served for others
  /// By node: what this node's remote calls to it showed of the link (takeLinkEstimate).
  std::vector<std::unique_ptr<LinkSamples>> links;
  std::vector<std::string> unit_names;
  milliseconds drain_timeout{2000}; ///< how long a migration waits for a unit's calls to end
  std::unique_ptr<PlacementTables> placement;
  std::thread chaos_thread; ///< entry, test option: random re-placement
  std::atomic<bool> chaos_stop{false};
  std::mutex place_mu;               ///< serializes place()
  std::uint64_t last_sent_epoch = 0; ///< entry: the newest epoch sent (place_mu)
  std::mutex chaos_mu;               ///< for chaos_cv
  std::condition_variable chaos_cv;

  std::function<std::string()> shutdown_report;
  // ---- profile reports -----------------------------------------------------------------------
  std::function<void(int, std::uint64_t, const NodeReport &)> report_handler; ///< entry
  std::function<std::optional<std::string>(const NodeReport &)> report_check;
  std::size_t profile_functions = 0;
  std::function<NodeReport()> report_source; ///< members: the delta of a round asked for
  std::function<bool()> phase_watch;         ///< members: whether a look shows a new phase
  milliseconds report_interval{1000};        ///< members: the planning interval
  /// The entry node: the planning interval its heartbeats carry (0: none given).
  std::atomic<std::uint32_t> member_report_interval_ms{0};
  /// The coordinator: a node saw a new phase after answering a round; false if that is ignored.
  std::function<bool(std::uint64_t)> round_wanted;
  /// Looks at this node's counts between rounds (control thread; on the entry node only when
  /// the coordinator is elsewhere).
  PhaseLooks looks;
  /// Members: runs once, on the control thread, when the first placement is in effect.
  std::function<void()> on_first_placement;

  // ---- control plane -------------------------------------------------------------------------
  std::unique_ptr<zmq::socket_t> control; // entry: ROUTER (control thread); member: DEALER
  std::thread control_thread;             // entry only
  std::atomic<bool> control_stop{false};
  int wake_fd = -1; // wakes the control thread (entry) or loop (member) to send something
  // The code the program's _exit() gave on this node (kNoImmediateEnd: none), for the control
  // thread or loop: set from any context, a signal handler included.
  static constexpr int kNoImmediateEnd = INT_MIN;
  std::atomic<int> immediate_code{kNoImmediateEnd};
  // The control thread or loop runs and will see immediate_code (it looks once more after
  // clearing this).
  std::atomic<bool> immediate_open{false};
  sigset_t program_mask{}; // the signal mask of the program's threads (control thread only)
  std::thread placer;      ///< entry, with the coordinator elsewhere: runs its Placements
  std::condition_variable place_jobs_changed;

  std::mutex mu; ///< guards everything below
  std::condition_variable joined_changed;
  std::vector<bool> joined;
  std::vector<std::string> routing_ids;     ///< entry: each joined node's connection
  std::vector<Clock::time_point> last_seen; ///< entry: last control message of each node
  std::string join_failure;
  std::vector<std::function<void()>> stop_hooks;
  bool shut_down = false;  ///< entry: Shutdown sent; silence is expected
  bool exit_asked = false; ///< entry: a member's program called exit(); the program ends here
  std::deque<std::pair<int, zmq::message_t>> outbox; ///< entry: control messages to send
  std::map<std::uint64_t, std::pair<int, std::promise<Ack>>> pending; ///< entry: by call id
  std::deque<PlaceJob> place_jobs;     ///< entry: the coordinator's Placements to run
  std::deque<zmq::message_t> to_entry; ///< member: control messages to send (other threads')
  /// Member: answers awaited by other threads, by call id (an empty message: none will come).
  std::map<std::uint64_t, std::promise<zmq::message_t>> awaiting;

  std::string nodeName(int i) const { return config.nodes[i].name; }
  bool coordinatorElsewhere() const { return coordinator != entry; }

  // A call cut short because this node stops normally (main returned, or the entry node sent
  // Shutdown) while a thread was still calling: as natively, where the process's exit ends
  // every other thread, the thread just stops here. A program thread on the entry node waits
  // for the process to end; a worker on another node ends it quietly (its node has finished).
  [[noreturn]] void stoppedMidCall() {
    if (self == entry && !server->onWorker())
      while (true)
        ::pause();
    on_failure("", 0);
    std::abort(); // a FailureHandler must not return
  }

  // Ends the process through the command's handler (never returns).
  [[noreturn]] void failed(const std::string &message, int exit_code = 2) {
    if (int sig = terminateSignal().load()) { // stopped on purpose: nothing to report
      spdlog::info("stopped by signal {}", sig);
      on_failure("", 128 + sig);
    }
    tellMembers(message);
    on_failure(message, exit_code);
    std::abort(); // a FailureHandler must not return
  }

  // The program called _exit(code) on this node (JitSession::setImmediateEnd): the control
  // thread (entry) or loop (member) takes it from here; false once it no longer runs (the
  // cluster is stopping), and the caller ends the process itself. Async-signal-safe: atomics
  // and a write(2). (The code is stored before the look at immediate_open, and the loop clears
  // that before its last look at the code: one of the two sees the other.)
  bool requestImmediateEnd(int code) {
    int none = kNoImmediateEnd;
    immediate_code.compare_exchange_strong(none, code);
    const bool open = immediate_open.load();
    if (open)
      signalEventFd(wake_fd);
    return open;
  }

  // The control thread or loop, as it ends: an _exit() asked meanwhile ends the process here.
  void closeImmediateEnd(int exit_code_if_member) {
    immediate_open.store(false);
    if (const int code = immediate_code.load(); code != kNoImmediateEnd)
      ::_exit(self == entry ? code : exit_code_if_member);
  }

  // Entry node, control thread: the program called _exit(code), here or on member `caller`
  // (which ends itself once this process has): every other member is told to stop, then this
  // process ends at once with `code`, as _exit() ends one process: no handler runs and
  // buffered output is not written. A stop of the cluster already under way (exit() on
  // another thread) is not waited for.
  [[noreturn]] void endImmediately(int code, int caller = -1) {
    spdlog::info("the program called _exit({}): stopping the cluster", code);
    stopOthers(code, "", caller);
    ::_exit(code);
  }

  // Entry node, before it ends with a failure found outside its control thread: tells the
  // other nodes why, so that each stops at once with that line instead of waiting for the
  // heartbeats to run out. Waits at most kFailureNoticeTimeout for them to have it.
  void tellMembers(const std::string &why) {
    if (self != entry || !control_thread.joinable() ||
        std::this_thread::get_id() == control_thread.get_id())
      return;
    std::vector<int> members;
    {
      std::lock_guard lock(mu);
      if (shut_down)
        return; // stopping anyway
      shut_down = true;
      for (std::size_t i = 0; i < joined.size(); ++i)
        if (joined[i])
          members.push_back(static_cast<int>(i));
    }
    broadcast(
        members, [&](std::uint64_t id) { return transport::makeShutdown(id, 2, why); },
        kFailureNoticeTimeout);
  }

  // ---- serving calls -------------------------------------------------------------------------

  zmq::message_t answerCall(Incoming &in) {
    auto began = Clock::now();
    const wire::Envelope *envelope = transport::verifyEnvelope(in.payload);
    if (!envelope)
      return transport::makeError(0, wire::ErrorCode::Malformed,
                                  "message rejected by the FlatBuffers verifier");
    std::uint64_t call_id = transport::callIdOf(*envelope);
    if (const wire::Probe *probe = envelope->body_as_Probe()) {
      const auto *data = probe->data();
      return transport::makeReply(call_id, data ? data->data() : nullptr, data ? data->size() : 0);
    }
    if (envelope->body_type() != wire::Body::Call)
      return transport::makeError(call_id, wire::ErrorCode::Refused,
                                  "a node's call socket takes only calls; control messages go "
                                  "between the entry node's control endpoint and its members");
    const wire::Call &call = *envelope->body_as_Call();
    if (call.function() >= unit_of.size())
      return transport::makeError(call_id, wire::ErrorCode::UnknownFunction,
                                  "no remotable function with id " +
                                      std::to_string(call.function()));
    // Read the placement once. A unit this node does not own is answered with its owner; a
    // stateless unit also runs here when the caller knows a newer placement than this node
    // (it runs correctly anywhere, and this node is about to hear of it).
    const PlacementTable &t = placement->current();
    std::uint32_t unit = unit_of[call.function()];
    if (!servesHere(t, unit) && !(movable[unit] && call.epoch() > t.epoch))
      return transport::makeMoved(call_id, servingNode(t, unit), t.epoch);
    // A load-balanced call served here takes one of this node's slots while it runs.
    OutstandingCall slot(*dispatcher);
    if (load_balanced[unit]) {
      dispatcher->acquireAt(self);
      slot.countedOn(self);
      served_balanced.fetch_add(1, std::memory_order_relaxed);
    }
    // A unit whose state is moving: the call waits at its gate, then goes where it lives now.
    jit::UnitGates &gates = session->gates();
    while (!gates.tryEnter(unit)) {
      gates.waitOpen(unit);
      const PlacementTable &now = placement->current();
      if (now.owner[unit] != self)
        return transport::makeMoved(call_id, now.owner[unit], now.epoch);
    }
    struct Leave {
      jit::UnitGates &gates;
      std::uint32_t unit;
      ~Leave() { gates.exit(unit); }
    } leave{gates, unit};
    static const std::uint8_t kEmpty = 0;
    const jit::ByteSpan args{call.args() ? call.args()->data() : &kEmpty,
                             call.args() ? call.args()->size() : 0};
    static_assert(Incoming::kMaxParts == jit::kMaxOwnParts);
    if (in.parts_over_limit)
      return transport::makeError(call_id, wire::ErrorCode::Malformed,
                                  "more than " + std::to_string(Incoming::kMaxParts) +
                                      " parts, or more bytes in them than one call may carry");
    std::array<jit::ByteSpan, Incoming::kMaxParts> parts;
    for (std::size_t i = 0; i < in.parts.size(); ++i)
      parts[i] = {in.parts[i].data<std::uint8_t>(), in.parts[i].size()};
    transport::ReplyBuilder reply;
    std::string error;
    // The call runs in its chain: calls it makes carry the chain, and calls of the chain that
    // come back here while it waits run on this thread.
    std::uint64_t &chain = currentChain();
    std::uint64_t outer = chain;
    chain = call.chain();
    // The callee starts with the caller's errno and floating-point environment, and its own go
    // back, as a native call shares them. Between these and the body only unmarshaling runs
    // (which sets errno only when memory runs out).
    if (const wire::ThreadCState *caller = call.c_state())
      transport::applyThreadCState(*caller);
    ServingFunction serving(call.function());
    crash_stack.ensure();
    bool ok = session->serve(
        call.function(), args, std::span(parts.data(), in.parts.size()),
        [&reply](std::size_t n) { return reply.allocate(n); }, error);
    if (ClusterNode::inForkedChild()) // fork() in the call: the copy of it that returns here
      on_failure("`" + session->remoteFunctions()[call.function()].name + "` made a child " +
                     "process with fork() on node `" + nodeName(self) +
                     "` and the child returned from it; the caller's code is on another node, " +
                     "where the child cannot go on: end the child with _exit() or exec()",
                 2);
    const wire::ThreadCState callee = transport::captureThreadCState();
    chain = outer;
    if (!ok)
      return transport::makeError(call_id, wire::ErrorCode::Malformed, error);
    return reply.finish(
        call_id, static_cast<std::uint64_t>(std::chrono::nanoseconds(Clock::now() - began).count()),
        &callee);
  }

  // Whether this node runs calls of `unit` by table `t`: it owns the unit, or is one of its
  // replicas.
  bool servesHere(const PlacementTable &t, std::uint32_t unit) const {
    if (!load_balanced[unit])
      return t.owner[unit] == self;
    return findReplica(t.replicas[unit], self) != nullptr;
  }
  // A node that runs calls of `unit` by table `t` (for a Moved answer).
  static int servingNode(const PlacementTable &t, std::uint32_t unit) {
    return t.replicas[unit].empty() ? t.owner[unit] : t.replicas[unit].front().node;
  }
  // Whether the stubs of `unit`'s functions point at their bodies: it runs here and nowhere
  // else (a load-balanced unit with other replicas goes through its dispatcher, in the thunk).
  bool linkedHere(const PlacementTable &t, std::uint32_t unit) const {
    if (!load_balanced[unit])
      return t.owner[unit] == self;
    return t.replicas[unit].size() == 1 && t.replicas[unit].front().node == self;
  }

  // Publishes the placement of `epoch` if it is newer than the one in effect, then points the
  // stubs of the units it moves at their bodies or thunks. A call reads the table once, so it
  // sees either placement whole; a call through a stub that is re-pointed a moment later reads
  // the new table and goes where it says.
  void applyPlacement(const std::vector<std::uint16_t> &owner, const ReplicaSets &replicas,
                      std::uint64_t epoch) {
    // Units with state: ownership changes while their gate is closed (place()), and is
    // recorded before the table is published. A newer epoch only: an older one changes nothing.
    if (epoch > placement->current().epoch)
      for (std::uint32_t u = 0; u < owner.size(); ++u)
        if (migratable[u])
          session->gates().setOwned(u, owner[u] == self);
    placement->publish(PlacementTable{epoch, owner, replicas}, [&](const PlacementTable &old,
                                                                   const PlacementTable &now) {
      std::size_t moved = 0;
      for (std::size_t u = 0; u < now.owner.size(); ++u)
        moved +=
            load_balanced[u] ? old.replicas[u] != now.replicas[u] : old.owner[u] != now.owner[u];
      spdlog::log(epoch <= 1 ? spdlog::level::info : spdlog::level::debug,
                  "placement epoch {} in effect ({} of {} units placed anew)", epoch, moved,
                  now.owner.size());
      for (std::size_t id = 0; id < unit_of.size(); ++id) {
        std::uint32_t u = unit_of[id];
        bool here = linkedHere(now, u);
        if (linkedHere(old, u) != here)
          session->relink(static_cast<std::uint32_t>(id),
                          here ? jit::StubTarget::Local : jit::StubTarget::Remote);
      }
    });
  }

  // What is wrong with a placement of this program's units: every unit has an owner among the
  // cluster's nodes; every load-balanced unit has at least one replica and no other unit has
  // any; replicas are on nodes of the cluster, each node once, with positive finite weights.
  // Checked by the entry node before it sends a placement and by every node that receives one.
  std::optional<std::string> checkPlacement(const std::vector<std::uint16_t> &owner,
                                            const ReplicaSets &sets) const {
    if (owner.size() != movable.size())
      return std::to_string(owner.size()) + " units, this program has " +
             std::to_string(movable.size());
    for (auto o : owner)
      if (o >= config.nodes.size())
        return "node index " + std::to_string(o);
    if (sets.size() != load_balanced.size())
      return "replica sets for " + std::to_string(sets.size()) + " units, this program has " +
             std::to_string(load_balanced.size());
    for (std::size_t u = 0; u < sets.size(); ++u) {
      if (!load_balanced[u] && !sets[u].empty())
        return "replicas for `" + unit_names[u] + "`, which is not load-balanced";
      if (load_balanced[u] && sets[u].empty())
        return "no replica for load-balanced `" + unit_names[u] + "`";
      for (std::size_t i = 0; i < sets[u].size(); ++i) {
        const Replica &r = sets[u][i];
        if (r.node >= config.nodes.size())
          return "a replica of `" + unit_names[u] + "` on node index " + std::to_string(r.node);
        if (!(r.weight > 0) || !std::isfinite(r.weight))
          return "a replica of `" + unit_names[u] + "` with weight " + std::to_string(r.weight);
        if (findReplica(sets[u], r.node) != &r) // an earlier replica on the same node
          return "node `" + nodeName(r.node) + "` twice in the replica set of `" + unit_names[u] +
                 "`";
      }
    }
    return std::nullopt;
  }

  // The owners and replica sets a Placement names, checked; or what is wrong with them.
  std::optional<std::string> readPlacement(const wire::Placement &p,
                                           std::vector<std::uint16_t> &list,
                                           ReplicaSets &replicas) const {
    list.clear();
    if (p.owners())
      list.assign(p.owners()->begin(), p.owners()->end());
    replicas.assign(list.size(), {});
    if (p.replicas())
      for (const wire::ReplicaShare *r : *p.replicas()) {
        if (r->unit() >= list.size())
          return "placement names replicas for unit " + std::to_string(r->unit()) + " of " +
                 std::to_string(list.size());
        replicas[r->unit()].push_back({r->node(), r->weight()});
      }
    if (auto bad = checkPlacement(list, replicas))
      return "placement names " + *bad;
    return std::nullopt;
  }

  // A Placement from the entry node: checked, then applied. Returns the answer.
  zmq::message_t answerPlacement(const wire::Placement &p) {
    std::vector<std::uint16_t> list;
    ReplicaSets replicas;
    if (auto bad = readPlacement(p, list, replicas))
      return transport::makeError(p.call_id(), wire::ErrorCode::Malformed, *bad);
    applyPlacement(list, replicas, p.epoch());
    return transport::makeReply(p.call_id(), nullptr, 0);
  }

  // ---- state migration -----------------------------------------------------------------------

  // One step of moving unit `unit`'s state, on this node: Close answers with the state.
  llvm::Expected<std::vector<std::uint8_t>> migrateHere(std::uint32_t unit,
                                                        wire::MigratePhase phase,
                                                        const std::uint8_t *state,
                                                        std::size_t size) {
    if (unit >= migratable.size() || !migratable[unit])
      return fail("unit " + std::to_string(unit) + " has no state that can migrate");
    jit::UnitGates &gates = session->gates();
    switch (phase) {
    case wire::MigratePhase::Close:
      if (!gates.closeAndDrain(unit, drain_timeout))
        return fail(std::to_string(gates.active(unit)) + " call(s) of it still running on `" +
                    nodeName(self) + "` after " + std::to_string(drain_timeout.count()) +
                    " ms; it stays there for now");
      return session->readState(unit);
    case wire::MigratePhase::Install:
      if (auto why = session->writeState(unit, state, size))
        return fail(*why);
      return std::vector<std::uint8_t>{};
    case wire::MigratePhase::Open:
      gates.open(unit);
      return std::vector<std::uint8_t>{};
    }
    return fail("unknown migration phase");
  }

  // A Migrate from the entry node: the step, answered.
  zmq::message_t answerMigrate(const wire::Migrate &m) {
    const auto *state = m.state();
    auto result = migrateHere(m.unit(), m.phase(), state ? state->data() : nullptr,
                              state ? state->size() : 0);
    if (!result)
      return transport::makeError(m.call_id(), wire::ErrorCode::Failed,
                                  llvm::toString(result.takeError()));
    return transport::makeReply(m.call_id(), result->data(), result->size());
  }

  // Entry node: one migration step on node `node` (here or by the control plane).
  llvm::Expected<std::vector<std::uint8_t>> migrateStep(int node, std::uint32_t unit,
                                                        wire::MigratePhase phase,
                                                        const std::vector<std::uint8_t> &state) {
    if (node == self)
      return migrateHere(unit, phase, state.data(), state.size());
    std::uint64_t id = next_call_id++;
    std::future<Ack> f = post(node, id, transport::makeMigrate(id, unit, phase, state));
    auto timeout = drain_timeout + config.join_timeout;
    if (f.wait_for(timeout) != std::future_status::ready) {
      std::lock_guard lock(mu);
      pending.erase(id);
      return fail("no answer from node `" + nodeName(node) + "` within " +
                  std::to_string(timeout.count()) + " ms");
    }
    Ack a = f.get();
    if (!a.ok)
      return fail(a.text);
    return std::vector<std::uint8_t>(a.text.begin(), a.text.end());
  }

  // ---- control plane: entry node -------------------------------------------------------------

  void wake() { signalEventFd(wake_fd); }

  // Queues `message` to `node`, which sends no answer.
  void queue(int node, zmq::message_t message) {
    {
      std::lock_guard lock(mu);
      outbox.emplace_back(node, std::move(message));
    }
    wake();
  }

  // Queues `message` to `node` and returns the future of its acknowledgement.
  std::future<Ack> post(int node, std::uint64_t call_id, zmq::message_t message) {
    std::future<Ack> f;
    {
      std::lock_guard lock(mu);
      std::promise<Ack> promise;
      f = promise.get_future();
      pending.emplace(call_id, std::make_pair(node, std::move(promise)));
      outbox.emplace_back(node, std::move(message));
    }
    wake();
    return f;
  }

  // Sends one control request to each of `nodes` and waits for every acknowledgement, each
  // for at most `timeout`.
  std::vector<Ack> broadcast(const std::vector<int> &nodes,
                             const std::function<zmq::message_t(std::uint64_t)> &make,
                             milliseconds timeout) {
    std::vector<std::pair<std::uint64_t, std::future<Ack>>> waits;
    for (int n : nodes) {
      std::uint64_t id = next_call_id++;
      waits.emplace_back(id, post(n, id, make(id)));
    }
    std::vector<Ack> acks;
    auto deadline = Clock::now() + timeout;
    for (std::size_t i = 0; i < waits.size(); ++i) {
      auto &[id, f] = waits[i];
      if (f.wait_until(deadline) == std::future_status::ready) {
        acks.push_back(f.get());
        continue;
      }
      std::lock_guard lock(mu);
      pending.erase(id);
      acks.push_back({false, "no answer from node `" + nodeName(nodes[i]) + "` within " +
                                 std::to_string(timeout.count()) + " ms"});
    }
    return acks;
  }

  void sendControl(const std::string &routing_id, zmq::message_t message) {
    zmq::message_t identity(routing_id.data(), routing_id.size());
    transport::sendRetrying(*control, identity, zmq::send_flags::sndmore);
    transport::sendRetrying(*control, message, zmq::send_flags::none);
  }

  void controlLoop() {
    nameThread("dn-control");
    control_tid.store(gettid(), std::memory_order_relaxed);
    ReadingNotes reading;
    // A handler of the program's that calls _exit() on this thread could not be served: this
    // thread ends the process for it.
    program_mask = blockProgramSignals();
    auto next_beat = Clock::now();
    // With the coordinator elsewhere, this node looks at its counts between rounds as members
    // do (the coordinator's loop looks at its own).
    const bool looking = coordinatorElsewhere() && phase_watch;
    looks.start(report_interval);
    while (!control_stop.load()) {
      zmq::pollitem_t items[3] = {{control->handle(), 0, ZMQ_POLLIN, 0},
                                  {nullptr, wake_fd, ZMQ_POLLIN, 0},
                                  {nullptr, crash_note_fds[0], ZMQ_POLLIN, 0}};
      auto wait = std::min(heartbeat_interval, kPollSlice * 5);
      pollSockets(items, crash_note_fds[0] >= 0 ? 3 : 2, looking ? looks.wait(wait) : wait);
      if (looking && looks.due(report_interval))
        lookForNewPhase();
      if (items[1].revents & ZMQ_POLLIN)
        drainEventFd(wake_fd);
      if (crash_note_fds[0] >= 0 && (items[2].revents & ZMQ_POLLIN))
        tellMembersOfCrash();
      if (const int code = immediate_code.load(); code != kNoImmediateEnd)
        endImmediately(code);
      std::deque<std::pair<int, zmq::message_t>> sends;
      {
        std::lock_guard lock(mu);
        sends.swap(outbox);
      }
      for (auto &[node, message] : sends)
        sendControl(routing_ids[node], std::move(message));
      while (items[0].revents & ZMQ_POLLIN) {
        if (!receiveControl())
          break;
        zmq::pollitem_t again = {control->handle(), 0, ZMQ_POLLIN, 0};
        pollSockets(&again, 1, milliseconds(0));
        items[0].revents = again.revents;
      }
      auto now = Clock::now();
      if (now >= next_beat) {
        next_beat = now + heartbeat_interval;
        for (int m : joinedMembers()) // routing ids change only on this thread
          sendControl(routing_ids[m],
                      transport::makeHeartbeat(0, member_report_interval_ms.load()));
      }
      checkLiveness(now);
    }
    closeImmediateEnd(0);
  }

  // Reads one message from the control socket and answers it. False if there was none.
  bool receiveControl() {
    zmq::message_t identity, payload;
    if (!transport::recvRetrying(*control, identity, zmq::recv_flags::dontwait))
      return false;
    if (!identity.more() || !transport::recvRetrying(*control, payload, zmq::recv_flags::none))
      return true;
    for (bool more = payload.more(); more;) {
      zmq::message_t extra;
      if (!transport::recvRetrying(*control, extra, zmq::recv_flags::none))
        break;
      more = extra.more();
    }
    std::string from(static_cast<const char *>(identity.data()), identity.size());
    const wire::Envelope *e = transport::verifyEnvelope(payload);
    if (!e) {
      sendControl(from, transport::makeError(0, wire::ErrorCode::Malformed,
                                             "message rejected by the FlatBuffers verifier"));
      return true;
    }
    if (e->body_type() == wire::Body::Join) {
      sendControl(from, answerJoin(*e->body_as_Join(), from));
      return true;
    }
    int node = -1;
    {
      std::lock_guard lock(mu);
      for (std::size_t i = 0; i < routing_ids.size(); ++i)
        if (joined[i] && routing_ids[i] == from)
          node = static_cast<int>(i);
      if (node >= 0)
        last_seen[node] = Clock::now();
    }
    if (node < 0) {
      sendControl(from, transport::makeError(transport::callIdOf(*e), wire::ErrorCode::NotJoined,
                                             "this connection has not joined the cluster"));
      return true;
    }
    const bool from_coordinator = coordinatorElsewhere() && node == coordinator;
    switch (e->body_type()) {
    case wire::Body::Heartbeat:
      if (const wire::Heartbeat &h = *e->body_as_Heartbeat(); h.wants_round()) {
        if (coordinatorElsewhere()) {
          spdlog::debug("node `{}` saw a new phase: asking the coordinator `{}` for a round",
                        nodeName(node), nodeName(coordinator));
          toCoordinator(transport::makeHeartbeat(0, 0, h.report_round(), true));
        } else if (round_wanted && round_wanted(h.report_round())) {
          spdlog::debug("node `{}` saw a new phase: planning early", nodeName(node));
        }
      }
      break;
    case wire::Body::ProfileDelta: {
      const wire::ProfileDelta &d = *e->body_as_ProfileDelta();
      std::optional<std::string> bad;
      if (coordinatorElsewhere()) { // forwarded as whose it is; the coordinator checks it
        NodeReport report;
        bad = decodeProfileDelta(d, profile_functions, report);
        if (!bad)
          toCoordinator(encodeProfileDelta(d.call_id(), report, static_cast<std::uint16_t>(node)));
      } else if (report_handler) {
        bad = takeReport(node, d);
      }
      if (bad) {
        spdlog::warn("node `{}`: {}", nodeName(node), *bad);
        sendControl(from, transport::makeError(d.call_id(), wire::ErrorCode::Malformed, *bad));
      }
      break;
    }
    case wire::Body::Round:
      if (!from_coordinator) {
        sendControl(from, transport::makeError(transport::callIdOf(*e), wire::ErrorCode::Refused,
                                               "only the coordinator starts planning rounds"));
        break;
      }
      startRound(*e->body_as_Round());
      break;
    case wire::Body::Placement: {
      const wire::Placement &p = *e->body_as_Placement();
      if (!from_coordinator) {
        sendControl(from, transport::makeError(p.call_id(), wire::ErrorCode::Refused,
                                               "only the coordinator asks for placements"));
        break;
      }
      PlaceJob job;
      job.call_id = p.call_id();
      if (auto bad = readPlacement(p, job.owners, job.replicas)) {
        sendControl(from, transport::makeError(p.call_id(), wire::ErrorCode::Malformed, *bad));
        break;
      }
      {
        std::lock_guard lock(mu);
        place_jobs.push_back(std::move(job));
      }
      place_jobs_changed.notify_all();
      break;
    }
    case wire::Body::Reply:
    case wire::Body::Error: {
      std::optional<std::promise<Ack>> promise;
      {
        std::lock_guard lock(mu);
        auto it = pending.find(transport::callIdOf(*e));
        if (it != pending.end() && it->second.first == node) {
          promise = std::move(it->second.second);
          pending.erase(it);
        }
      }
      if (!promise)
        break; // an answer that came after its wait gave up
      if (const wire::Reply *r = e->body_as_Reply())
        promise->set_value(
            {true, r->result() ? std::string(reinterpret_cast<const char *>(r->result()->data()),
                                             r->result()->size())
                               : std::string()});
      else
        promise->set_value({false, "node `" + nodeName(node) + "` answered: " + errorText(*e)});
      break;
    }
    case wire::Body::Exit: { // a member's program called exit(): the program ends here
      const wire::Exit &x = *e->body_as_Exit();
      const int code = x.exit_code();
      const std::optional<jit::ExitKind> how = fromWire(x.how());
      if (!how) {
        std::string why = "node `" + nodeName(node) +
                          "` ended the program in a way this node does not know (" +
                          std::to_string(static_cast<int>(x.how())) + ")";
        if (stopOthers(2, why, -1)) // the sender too
          failed(why + "; stopping the cluster");
        break;
      }
      if (*how == jit::ExitKind::Immediate)
        endImmediately(code, node);
      bool first = false;
      {
        std::lock_guard lock(mu);
        first = !shut_down && !exit_asked;
        exit_asked = true;
      }
      if (first) { // on a thread of its own: the exit stops the cluster through this thread
        spdlog::info("the program called {} on node `{}`", endText(code, *how), nodeName(node));
        try {
          std::thread([s = session, code, how, mask = program_mask] {
            nameThread("dn-exit");
            pthread_sigmask(SIG_SETMASK, &mask, nullptr); // the program's handlers run here
            s->exitProgram(code, *how);
          }).detach();
        } catch (const std::system_error &e) {
          failed("the program called " + endText(code, *how) + " on node `" + nodeName(node) +
                     "`, and no thread could run it here: " + e.what(),
                 code);
        }
      }
      break;
    }
    case wire::Body::Shutdown: { // a member that fails says why (a crash: the signal's code)
      const wire::Shutdown &s = *e->body_as_Shutdown();
      if (s.exit_code() == 0 || !s.reason() || s.reason()->size() == 0) {
        sendControl(from, transport::makeError(s.call_id(), wire::ErrorCode::Refused,
                                               "only the entry node stops the cluster"));
        break;
      }
      sendControl(from, transport::makeReply(s.call_id(), nullptr, 0));
      // One line, named by the connection, at most 300 characters; a code a signal gives
      // (129..192), else 2.
      std::string said = s.reason()->str().substr(0, 300);
      for (char &ch : said)
        if (static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f)
          ch = ' ';
      const int code = s.exit_code() > 128 && s.exit_code() <= 128 + 64 ? s.exit_code() : 2;
      std::string why = "node `" + nodeName(node) + "` " + said;
      if (stopOthers(2, why, node)) // else the cluster is stopping anyway
        failed(why + "; stopping the cluster", code);
      break;
    }
    default:
      sendControl(from, transport::makeError(transport::callIdOf(*e), wire::ErrorCode::Refused,
                                             "only the entry node sends Placement and Shutdown"));
    }
    return true;
  }

  // The entry node (control thread), with the coordinator elsewhere: sends `message` to it.
  void toCoordinator(zmq::message_t message) {
    std::string to;
    {
      std::lock_guard lock(mu);
      if (joined[coordinator])
        to = routing_ids[coordinator];
    }
    if (!to.empty())
      sendControl(to, std::move(message));
  }

  // The entry node (control thread): the coordinator elsewhere starts planning round `r`.
  // Every other member is asked for its report; this node's goes to the coordinator at once.
  void startRound(const wire::Round &r) {
    std::uint32_t ms = r.interval_ms();
    if (ms >= kMinAdaptIntervalMs && ms <= kMaxAdaptIntervalMs) {
      member_report_interval_ms.store(ms);
      report_interval = milliseconds(ms);
    }
    for (int m : joinedMembers()) // routing ids change only on this thread
      if (m != coordinator)
        sendControl(routing_ids[m],
                    transport::makeHeartbeat(0, member_report_interval_ms.load(), r.round()));
    if (r.round() <= looks.answered_round || !report_source)
      return;
    looks.answered(r.round());
    toCoordinator(encodeProfileDelta(r.round(), report_source(), static_cast<std::uint16_t>(self)));
  }

  // The entry node (control thread), with the coordinator elsewhere: a look at this node's
  // counts; a new phase asks the coordinator for a round early (once per round).
  void lookForNewPhase() {
    if (!phase_watch() || !looks.ask())
      return;
    spdlog::debug("saw a new phase: asking the coordinator `{}` for a planning round",
                  nodeName(coordinator));
    toCoordinator(transport::makeHeartbeat(0, 0, looks.answered_round, true));
  }

  // The entry node, with the coordinator elsewhere: runs the coordinator's Placements one
  // after another (place() waits for acknowledgements that the control thread reads), and
  // answers each with Placed once every node runs it, or with why not.
  void placerLoop() {
    nameThread("dn-placer");
    blockProgramSignals();
    while (true) {
      PlaceJob job;
      {
        std::unique_lock lock(mu);
        place_jobs_changed.wait(lock, [&] { return control_stop.load() || !place_jobs.empty(); });
        if (control_stop.load())
          return;
        job = std::move(place_jobs.front());
        place_jobs.pop_front();
      }
      // A stop that began before this placement has it wait (shutdownCluster takes place_mu
      // after setting shut_down), so none starts once it began.
      std::unique_lock serial(place_mu);
      bool stopping = false;
      {
        std::lock_guard lock(mu);
        stopping = shut_down;
      }
      if (stopping) {
        queue(coordinator, transport::makeError(job.call_id, wire::ErrorCode::Failed,
                                                "the cluster is stopping"));
        continue;
      }
      std::vector<ClusterNode::Kept> kept;
      if (auto err = placeLocked(job.owners, &kept, &job.replicas)) {
        queue(coordinator, transport::makeError(job.call_id, wire::ErrorCode::Failed,
                                                llvm::toString(std::move(err))));
        continue;
      }
      std::vector<std::pair<std::uint32_t, std::string>> list;
      for (auto &k : kept)
        list.emplace_back(k.unit, std::move(k.why));
      queue(coordinator, transport::makePlaced(job.call_id, placement->current().epoch, list));
    }
  }

  // Where two clusterShape texts first differ, as "`theirs` there, `ours` here".
  static std::string firstDifference(const std::string &theirs, const std::string &ours) {
    llvm::SmallVector<llvm::StringRef, 16> a, b;
    llvm::StringRef(theirs).split(a, '\n');
    llvm::StringRef(ours).split(b, '\n');
    for (std::size_t i = 0; i < std::max(a.size(), b.size()); ++i) {
      llvm::StringRef x = i < a.size() ? a[i] : "(nothing)", y = i < b.size() ? b[i] : "(nothing)";
      if (x != y)
        return "`" + x.take_front(200).str() + "` there, `" + y.take_front(200).str() + "` here";
    }
    return "the same lines in another form";
  }

  zmq::message_t answerJoin(const wire::Join &join, const std::string &from) {
    std::string name = join.node() ? join.node()->str() : "";
    int index = config.nodeIndex(name);
    std::string reason;
    if (join.protocol() != transport::kProtocolVersion)
      reason = "node `" + name + "` speaks protocol " + std::to_string(join.protocol()) +
               ", the entry node " + std::to_string(transport::kProtocolVersion) +
               "; run the same distnode version on every node";
    else if (index < 0)
      reason = "node `" + name + "` is not in " + config.label;
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
    else if (std::string theirs = join.nodes() ? join.nodes()->str() : "",
             ours = clusterShape(config);
             theirs != ours)
      reason = "node `" + name + "` has another cluster.yaml: " + firstDifference(theirs, ours) +
               "; give every node the same cluster.yaml";
    {
      std::lock_guard lock(mu);
      if (reason.empty() && joined[index])
        reason = "node `" + name + "` has already joined";
      if (reason.empty() && shut_down)
        reason = "the cluster is stopping";
      if (reason.empty()) {
        joined[index] = true;
        routing_ids[index] = from;
        last_seen[index] = Clock::now();
        spdlog::info("node `{}` joined", name);
      } else if (join_failure.empty() && index != self) {
        spdlog::info("join refused: {}", reason);
        join_failure = reason;
      }
    }
    joined_changed.notify_all();
    return transport::makeWelcome(join.call_id(), reason.empty(), reason);
  }

  void checkLiveness(Clock::time_point now) {
    int dead = -1;
    {
      std::lock_guard lock(mu);
      if (shut_down)
        return;
      for (std::size_t i = 0; i < joined.size(); ++i)
        if (joined[i] && now - last_seen[i] > config.heartbeat_timeout)
          dead = static_cast<int>(i);
    }
    if (dead < 0)
      return;
    std::string why = "node `" + nodeName(dead) + "` stopped answering (no heartbeat for " +
                      std::to_string(config.heartbeat_timeout.count()) + " ms)";
    if (stopOthers(2, why, dead))
      failed(why + "; stopping the cluster");
  }

  // The entry's control thread, when node `gone` failed: tells every other member why and waits
  // (briefly) until they have it: the message would be lost if this process ended first. A
  // node that misses it notices this node's silence instead. False if the cluster is stopping
  // normally already (silence is expected then).
  bool stopOthers(int code, const std::string &why, int gone) {
    std::map<std::uint64_t, std::string> waiting; // call id → routing id
    {
      std::lock_guard lock(mu);
      if (shut_down)
        return false;
      shut_down = true;
      for (std::size_t i = 0; i < joined.size(); ++i)
        if (joined[i] && static_cast<int>(i) != gone)
          waiting.emplace(next_call_id++, routing_ids[i]);
    }
    for (const auto &[id, r] : waiting)
      sendControl(r, transport::makeShutdown(id, code, why));
    auto deadline = Clock::now() + kFailureNoticeTimeout;
    while (!waiting.empty() && Clock::now() < deadline) {
      zmq::pollitem_t item = {control->handle(), 0, ZMQ_POLLIN, 0};
      pollSockets(&item, 1, kPollSlice);
      zmq::message_t identity, payload;
      while ((item.revents & ZMQ_POLLIN) &&
             transport::recvRetrying(*control, identity, zmq::recv_flags::dontwait)) {
        if (!identity.more() || !transport::recvRetrying(*control, payload, zmq::recv_flags::none))
          continue;
        const wire::Envelope *e = transport::verifyEnvelope(payload);
        if (!e)
          continue;
        if (const wire::Shutdown *own = e->body_as_Shutdown()) {
          // A member that fails meanwhile (a crash) waits for this answer, not for ours.
          std::string from(static_cast<const char *>(identity.data()), identity.size());
          sendControl(from, transport::makeReply(own->call_id(), nullptr, 0));
          std::erase_if(waiting, [&](const auto &w) { return w.second == from; });
          continue;
        }
        waiting.erase(transport::callIdOf(*e));
      }
    }
    return true;
  }

  // ---- control plane: member -----------------------------------------------------------------

  // Sends one message to the entry node on the control DEALER.
  void toEntry(zmq::message_t message) {
    transport::sendRetrying(*control, message, zmq::send_flags::none);
  }

  // Waits for the entry's Welcome; serves nothing else meanwhile.
  llvm::Expected<bool> join() {
    std::uint64_t id = next_call_id++;
    toEntry(transport::makeJoin(id, nodeName(self), sha256, clusterShape(config)));
    auto deadline = Clock::now() + config.join_timeout;
    while (Clock::now() < deadline && !terminateSignal().load()) {
      zmq::pollitem_t item = {control->handle(), 0, ZMQ_POLLIN, 0};
      pollSockets(&item, 1, kPollSlice);
      if (!(item.revents & ZMQ_POLLIN))
        continue;
      zmq::message_t m;
      if (!transport::recvRetrying(*control, m, zmq::recv_flags::none))
        continue;
      const wire::Envelope *e = transport::verifyEnvelope(m);
      if (!e)
        continue;
      if (const wire::Welcome *w = e->body_as_Welcome(); w && w->call_id() == id) {
        if (!w->accepted())
          return fail("the entry node refused this node: " +
                      (w->reason() ? w->reason()->str() : std::string("no reason given")));
        spdlog::info("joined the cluster at {}", config.nodes[entry].control_endpoint);
        return true;
      }
    }
    if (terminateSignal().load())
      return false;
    return fail("cannot join the cluster: no answer from the entry node `" + nodeName(entry) +
                "` at " + config.nodes[entry].control_endpoint + " within " +
                std::to_string(config.join_timeout.count()) + " ms; is the entry node running?");
  }

  // The coordinator: node `node`'s report, decoded, checked and handed to the report handler
  // (set); or what is wrong with it.
  std::optional<std::string> takeReport(int node, const wire::ProfileDelta &d) {
    NodeReport report;
    if (auto bad = decodeProfileDelta(d, profile_functions, report))
      return bad;
    if (auto bad = report_check(report))
      return bad;
    report_handler(node, d.call_id(), report);
    return std::nullopt;
  }

  // The coordinator (a member): a node's report, forwarded by the entry node.
  void takeForwardedReport(const wire::ProfileDelta &d) {
    if (!report_handler)
      return;
    std::optional<std::string> bad = d.node() >= config.nodes.size() || d.node() == self
                                         ? "a report of node index " + std::to_string(d.node())
                                         : takeReport(d.node(), d);
    if (bad)
      spdlog::warn("a report forwarded by the entry node: {}", *bad);
  }

  // A member: sends `message` to the entry node from any thread (the control loop sends it),
  // and returns the future of its answer (by `call_id`; an empty message if none will come).
  std::future<zmq::message_t> askEntry(std::uint64_t call_id, zmq::message_t message) {
    std::future<zmq::message_t> f;
    {
      std::lock_guard lock(mu);
      std::promise<zmq::message_t> promise;
      f = promise.get_future();
      if (stop.load())
        promise.set_value(zmq::message_t());
      else
        awaiting.emplace(call_id, std::move(promise));
      to_entry.push_back(std::move(message));
    }
    wake();
    return f;
  }

  // A member: sends `message` to the entry node from any thread; no answer is awaited.
  void tellEntry(zmq::message_t message) {
    {
      std::lock_guard lock(mu);
      to_entry.push_back(std::move(message));
    }
    wake();
  }

  // A member whose program called exit(code): the program is one process, so its exit runs on
  // the entry node (main's atexit handlers and buffered output are there), which then stops
  // every node, this one included. The calling thread (and any other that exits meanwhile)
  // waits for that; if the entry is gone, the heartbeats end this node.
  [[noreturn]] void exitOnEntry(int code, jit::ExitKind how) {
    // Answered as the served call this thread runs, so that the thread that made it ends the
    // program (natively, the thread that called exit() is that one): every such call, since a
    // second end (from an atexit handler's call, say) must reach the entry too, where it ends
    // the process at once. Outside a served call, the entry node ends it on a thread of its
    // own, told once.
    if (server->answerServedCall([&](std::uint64_t call_id) {
          return transport::makeExit(call_id, code, toWire(how));
        })) {
      spdlog::info("the program called {} here: its caller ends it", endText(code, how));
    } else {
      static std::once_flag told;
      std::call_once(told, [&] {
        spdlog::info("the program called {} here: the entry node ends it", endText(code, how));
        tellEntry(transport::makeExit(next_call_id++, code, toWire(how)));
      });
    }
    server->ensureLeader(); // this worker no longer serves: another reads the calls
    while (true)
      ::pause();
  }

  // A member that stops: no answer will come to what other threads wait for.
  void abandonAsks() {
    std::map<std::uint64_t, std::promise<zmq::message_t>> left;
    {
      std::lock_guard lock(mu);
      left.swap(awaiting);
    }
    for (auto &[id, promise] : left)
      promise.set_value(zmq::message_t());
  }

  // The coordinator (a member): asks the entry node to make `owner` the next epoch on every
  // node and waits for its answer; this node runs the new epoch when it comes (the entry node
  // answers once every node acknowledged it).
  llvm::Error placeThroughEntry(const std::vector<std::uint16_t> &owner,
                                std::vector<ClusterNode::Kept> *kept, const ReplicaSets *replicas) {
    std::lock_guard serial(place_mu);
    const PlacementTable &now = placement->current();
    const ReplicaSets sets = replicas ? *replicas : now.replicas;
    if (auto bad = checkPlacement(owner, sets))
      return fail("a placement names " + *bad);
    std::vector<wire::ReplicaShare> shares;
    for (std::size_t u = 0; u < sets.size(); ++u)
      for (const Replica &r : sets[u])
        shares.emplace_back(static_cast<std::uint16_t>(u), r.node, r.weight);
    // The entry's own waits bound its answer: each unit with state takes three migration steps
    // and an epoch, the rest one epoch; a placement of its own (the first) may run before.
    int stateful_moves = 0;
    for (std::size_t u = 0; u < owner.size(); ++u)
      stateful_moves += migratable[u] && owner[u] != now.owner[u];
    auto step = drain_timeout + config.join_timeout;
    auto timeout = (3 * step + config.join_timeout) * stateful_moves + 2 * config.join_timeout +
                   config.heartbeat_timeout;
    std::uint64_t id = next_call_id++;
    std::future<zmq::message_t> f = askEntry(id, transport::makePlacement(id, 0, owner, shares));
    if (f.wait_for(timeout) != std::future_status::ready) // past every bound of the entry's
      failed("the entry node `" + nodeName(entry) + "` did not answer a placement within " +
             std::to_string(timeout.count()) + " ms; stopping node `" + nodeName(self) + "`");
    zmq::message_t answer = f.get();
    const wire::Envelope *e = answer.size() ? transport::verifyEnvelope(answer) : nullptr;
    if (!e)
      return fail("the cluster is stopping");
    if (const wire::Placed *p = e->body_as_Placed()) {
      if (kept && p->kept())
        for (const wire::KeptUnit *k : *p->kept())
          kept->push_back({k->unit(), k->why() ? k->why()->str() : std::string()});
      return llvm::Error::success();
    }
    return fail("the entry node `" + nodeName(entry) + "` answered: " + errorText(*e));
  }

  // Makes the program's crashes (SIGSEGV, SIGFPE...) known to the other nodes, and on the entry
  // node (`stops`) its stop by a signal too. Once per process (a node runs once); without the
  // pipes a crash is noticed by heartbeats only.
  void installCrashHandlers(bool stops = false) {
    if (crash_note_fds[0] >= 0 || pipe2(crash_note_fds, O_CLOEXEC) != 0)
      return;
    if (pipe2(crash_told_fds, O_CLOEXEC) != 0) {
      close(crash_note_fds[0]);
      close(crash_note_fds[1]);
      crash_note_fds[0] = crash_note_fds[1] = -1;
      return;
    }
    struct sigaction sa {};
    sa.sa_handler = onCrash;
    sa.sa_flags = SA_ONSTACK; // where the thread has one (CrashStack)
    sigemptyset(&sa.sa_mask);
    for (int sig : kCrashSignals)
      sigaction(sig, &sa, nullptr);
    if (stops)
      for (int sig : kStopSignals) {
        if (ignored(sig))
          continue;
        struct sigaction stop = sa;
        stop.sa_flags = SA_RESTART;    // a thread of the program may be in a system call
        for (int other : kStopSignals) // the first stop is the one told and died of
          sigaddset(&stop.sa_mask, other);
        sigaction(sig, &stop, nullptr);
      }
  }

  // A member's control loop, when a thread crashed: sends the entry node the signal and the
  // function (Shutdown with the reason and 128 + N), waits at most kFailureNoticeTimeout for
  // its acknowledgement, then lets the crashing thread die of its signal.
  // Member, about to end: sends `message` to the entry node and waits until the entry has it,
  // for at most kFailureNoticeTimeout: until the entry answers call `answer_id` (if given), or
  // its connection closes. A stopping entry ends as soon as it has what it waits for, maybe
  // before its own answer leaves, so a closed connection is an answer too (a monitor of the
  // control socket sees it); without a monitor, an unanswered message is not waited for.
  void toEntryAndAwait(zmq::message_t message, std::optional<std::uint64_t> answer_id) {
    static std::atomic<int> watches{0};
    const std::string watch = "inproc://dn-entry-watch-" + std::to_string(watches++);
    std::optional<zmq::socket_t> gone;
    try {
      if (zmq_socket_monitor(control->handle(), watch.c_str(), ZMQ_EVENT_DISCONNECTED) == 0) {
        gone.emplace(context(), zmq::socket_type::pair);
        gone->connect(watch);
      }
    } catch (const zmq::error_t &) {
      gone.reset();
      zmq_socket_monitor(control->handle(), nullptr, 0);
    }
    toEntry(std::move(message));
    if (!gone && !answer_id)
      return;
    auto deadline = Clock::now() + kFailureNoticeTimeout;
    for (bool done = false; !done && Clock::now() < deadline;) {
      zmq::pollitem_t items[2] = {{control->handle(), 0, ZMQ_POLLIN, 0},
                                  {gone ? gone->handle() : nullptr, 0, ZMQ_POLLIN, 0}};
      pollSockets(items, gone ? 2 : 1, kPollSlice);
      done = gone && (items[1].revents & ZMQ_POLLIN);
      zmq::message_t m;
      while (!done && (items[0].revents & ZMQ_POLLIN) &&
             transport::recvRetrying(*control, m, zmq::recv_flags::dontwait))
        if (const wire::Envelope *e = transport::verifyEnvelope(m)) {
          if (const wire::Shutdown *stop = e->body_as_Shutdown()) {
            // The entry stops the cluster meanwhile (its own crash, say) and waits for this
            // node's answer: it will not answer ours.
            toEntry(transport::makeReply(stop->call_id(), nullptr, 0));
            done = true;
          } else {
            done = answer_id && e->body_type() == wire::Body::Reply &&
                   transport::callIdOf(*e) == *answer_id;
          }
        }
    }
    zmq_socket_monitor(control->handle(), nullptr, 0);
  }

  // The crash handler's note, as words ("crashed (signal Segmentation fault) running `f`"),
  // and its signal; none if the pipe held none.
  std::optional<std::pair<std::string, int>> readCrashNote() {
    CrashNote note{};
    if (read(crash_note_fds[0], &note, sizeof note) != sizeof note)
      return std::nullopt;
    if (isStopSignal(note.signal))
      return std::pair{stoppedBy(note.signal), note.signal};
    const auto &functions = session->remoteFunctions();
    std::string reason = std::string("crashed (signal ") + strsignal(note.signal) + ")";
    if (note.function < functions.size())
      reason += " running `" + functions[note.function].name + "`";
    return std::pair{reason, note.signal};
  }

  // Tells the crashing thread that the others have the note: it dies of its signal.
  void crashTold() {
    spdlog::default_logger()->flush();
    const char told = 1;
    (void)!write(crash_told_fds[1], &told, 1);
  }

  // Member: tells the entry node that signal `sig` ends this node (`what` it did: "crashed
  // (signal ...)"), which stops the cluster with that line and 128 + `sig`; waits (bounded)
  // until the entry has it. The entry names this node itself (by the connection).
  void tellEntryOfEnd(const std::string &what, int sig) {
    spdlog::info("{}: telling the entry node", what); // it reports the end, once
    const std::uint64_t id = next_call_id++;
    toEntryAndAwait(transport::makeShutdown(id, 128 + sig, what), id);
  }

  void tellEntryOfCrash() {
    auto note = readCrashNote();
    if (!note)
      return;
    tellEntryOfEnd(note->first, note->second);
    crashTold();
  }

  // Entry node, control thread: the program crashed here. Every member stops with the line
  // (as for a member's crash), then this process dies of the signal, as natively, in silence.
  void tellMembersOfCrash() {
    auto note = readCrashNote();
    if (!note)
      return;
    spdlog::info("{}: stopping the cluster", note->first);
    stopOthers(128 + note->second, "node `" + nodeName(self) + "` " + note->first, -1);
    crashTold();
  }

  // Serves the control plane until Shutdown. Returns the exit code.
  int memberLoop() {
    control_tid.store(gettid(), std::memory_order_relaxed);
    ReadingNotes reading;
    terminate_wake_fd.store(wake_fd);
    blockProgramSignals();
    auto last_heard = Clock::now();
    auto next_beat = Clock::now();
    // Profile deltas go to the entry when it asks for a round's (Heartbeat.report_round), so
    // that every report of a round covers the same time. Between rounds, a look at the counts
    // every phaseLookEvery(interval) asks for a round early when it shows a new phase (once
    // per round).
    looks.start(report_interval);
    bool placed = false;
    while (!terminateSignal().load()) {
      zmq::pollitem_t items[3] = {{control->handle(), 0, ZMQ_POLLIN, 0},
                                  {nullptr, wake_fd, ZMQ_POLLIN, 0},
                                  {nullptr, crash_note_fds[0], ZMQ_POLLIN, 0}};
      zmq::pollitem_t &item = items[0];
      auto wait = std::min(heartbeat_interval, kPollSlice * 5);
      pollSockets(items, crash_note_fds[0] >= 0 ? 3 : 2, phase_watch ? looks.wait(wait) : wait);
      if (items[1].revents & ZMQ_POLLIN)
        drainEventFd(wake_fd);
      if (const int code = immediate_code.load(); code != kNoImmediateEnd) {
        // The entry stops the others and ends; this node goes once it has (the thread that
        // called _exit may hold a lock that a stop in order would need: it ran in a signal
        // handler, say), as a member that a finished program stops: exit code 0.
        spdlog::info("the program called _exit({}) here: the entry node ends it", code);
        toEntryAndAwait(transport::makeExit(next_call_id++, code, wire::ExitKind::Immediate),
                        std::nullopt);
        ::_exit(0);
      }
      if (crash_note_fds[0] >= 0 && (items[2].revents & ZMQ_POLLIN))
        tellEntryOfCrash();
      std::deque<zmq::message_t> sends;
      {
        std::lock_guard lock(mu);
        sends.swap(to_entry);
      }
      for (auto &message : sends)
        toEntry(std::move(message));
      auto now = Clock::now();
      // None before the program runs, nor before the first round: it comes soon anyway.
      if (phase_watch && looks.due(report_interval) && phase_watch() && placed && looks.ask()) {
        spdlog::debug("saw a new phase: asking for a planning round");
        toEntry(transport::makeHeartbeat(0, 0, looks.answered_round, true));
      }
      while (item.revents & ZMQ_POLLIN) {
        zmq::message_t m;
        if (!transport::recvRetrying(*control, m, zmq::recv_flags::dontwait))
          break;
        last_heard = now;
        const wire::Envelope *e = transport::verifyEnvelope(m);
        if (!e)
          continue;
        switch (e->body_type()) {
        case wire::Body::Placement:
          toEntry(answerPlacement(*e->body_as_Placement()));
          if (!placed && placement->current().epoch > 0) {
            placed = true;
            if (on_first_placement)
              on_first_placement();
          }
          break;
        case wire::Body::Placed:
        case wire::Body::Reply:
        case wire::Body::Error: { // an answer another thread of this node waits for
          std::optional<std::promise<zmq::message_t>> promise;
          {
            std::lock_guard lock(mu);
            auto it = awaiting.find(transport::callIdOf(*e));
            if (it != awaiting.end()) {
              promise = std::move(it->second);
              awaiting.erase(it);
            }
          }
          if (promise) {
            promise->set_value(std::move(m));
          } else if (const wire::Error *err = e->body_as_Error();
                     err && err->code() == wire::ErrorCode::NotJoined) {
            // The entry node no longer knows this node: it was restarted (a new cluster).
            failed("the entry node `" + nodeName(entry) +
                   "` no longer knows this node (it was restarted); stopping node `" +
                   nodeName(self) + "`");
          }
          break;
        }
        case wire::Body::ProfileDelta: // the coordinator: a node's report, forwarded
          takeForwardedReport(*e->body_as_ProfileDelta());
          break;
        case wire::Body::Migrate:
          toEntry(answerMigrate(*e->body_as_Migrate()));
          break;
        case wire::Body::Shutdown: {
          const wire::Shutdown &s = *e->body_as_Shutdown();
          std::string reason = s.reason() ? s.reason()->str() : "";
          if (!reason.empty()) { // the cluster failed elsewhere
            toEntryAndAwait(transport::makeReply(s.call_id(), nullptr, 0), std::nullopt);
            if (under_launcher)
              on_failure("", 2);
            failed(reason + "; stopping node `" + nodeName(self) + "`");
          }
          std::string report = shutdown_report ? shutdown_report() : std::string();
          toEntry(transport::makeReply(
              s.call_id(), reinterpret_cast<const std::uint8_t *>(report.data()), report.size()));
          return 0;
        }
        case wire::Body::Heartbeat: { // the entry's: the interval, a round's report asked for
          const wire::Heartbeat &h = *e->body_as_Heartbeat();
          if (h.wants_round()) { // the coordinator: a node's ask for a round early, forwarded
            if (round_wanted && round_wanted(h.report_round()))
              spdlog::debug("a node saw a new phase: planning early");
            break;
          }
          std::uint32_t ms = h.report_interval_ms();
          if (ms >= kMinAdaptIntervalMs && ms <= kMaxAdaptIntervalMs &&
              milliseconds(ms) != report_interval) {
            report_interval = milliseconds(ms);
            looks.shorten(report_interval);
          }
          // A round's report, once (rounds only grow); none before the program runs.
          if (h.report_round() > looks.answered_round && report_source && placed) {
            looks.answered(h.report_round());
            toEntry(encodeProfileDelta(looks.answered_round, report_source()));
          }
          break;
        }
        default:
          break;
        }
      }
      if (now >= next_beat) {
        next_beat = now + heartbeat_interval;
        toEntry(transport::makeHeartbeat(0));
      }
      if (now - last_heard > config.heartbeat_timeout)
        failed("the entry node `" + nodeName(entry) + "` stopped answering (no heartbeat for " +
               std::to_string(config.heartbeat_timeout.count()) + " ms); stopping node `" +
               nodeName(self) + "`");
    }
    // Stopped by a signal: the entry node hears it now rather than at its heartbeat timeout,
    // and stops the cluster with that line (under the launcher every node has the signal).
    const int sig = terminateSignal().load();
    if (!under_launcher)
      tellEntryOfEnd(stoppedBy(sig), sig);
    return 128 + sig;
  }

  // Before the process exits: sends what is still queued (answers, acknowledgements), for at
  // most `wait`. ZeroMQ sends queued messages only while its context lives, and terminating the
  // context waits for every socket to be closed: this thread's are closed here, but other
  // threads of the program may still hold theirs (one still in a call), so the wait is
  // bounded.
  void flushAndClose(milliseconds wait = kFlushTimeout) {
    // Calls still queued to go out (a link probe, say) will never be answered: the program has
    // ended, or this node stops. Waiting for a peer that is gone would only delay the exit.
    if (client)
      client->close(milliseconds(0));
    if (server)
      server->close(wait);
    if (control) {
      control->set(zmq::sockopt::linger, static_cast<int>(wait.count()));
      control->close();
      control.reset();
    }
    auto done = std::make_shared<std::promise<void>>();
    std::future<void> closed = done->get_future();
    std::thread([done] {
      context().close();
      done->set_value();
    }).detach();
    closed.wait_for(wait + milliseconds(200));
  }

  // Test option: every `period`, every placeable unit that can move (stateless, or with state
  // that migrates) to a random node, as a new epoch sent to every node (acknowledged) and then
  // applied here.
  void chaosLoop(milliseconds period, unsigned seed) {
    nameThread("dn-chaos");
    blockProgramSignals();
    std::mt19937 rng(seed);
    const int nodes = static_cast<int>(config.nodes.size());
    std::uniform_int_distribution<int> pick(0, nodes - 1);
    std::unique_lock lock(chaos_mu);
    while (!chaos_cv.wait_for(lock, period, [&] { return chaos_stop.load(); })) {
      std::vector<std::uint16_t> owner = placement->current().owner;
      ReplicaSets replicas(owner.size());
      for (std::size_t u = 0; u < owner.size(); ++u)
        if (load_balanced[u]) { // a random non-empty set of nodes, with random weights
          int members = 1 + pick(rng) % nodes, first = pick(rng);
          for (int k = 0; k < members; ++k)
            replicas[u].push_back(
                {static_cast<std::uint16_t>((first + k) % nodes), float(1 + pick(rng))});
        } else if (movable[u] || migratable[u]) {
          owner[u] = static_cast<std::uint16_t>(pick(rng));
        }
      // A member that does not answer is the heartbeats' case.
      if (auto err = place(owner, nullptr, &replicas))
        llvm::consumeError(std::move(err));
    }
  }

  // Entry node: `owner` as the next epoch, acknowledged by every node, then applied here.
  // Placements are made one at a time.
  llvm::Error place(std::vector<std::uint16_t> owner,
                    std::vector<ClusterNode::Kept> *kept = nullptr,
                    const ReplicaSets *replicas = nullptr) {
    std::lock_guard serial(place_mu);
    return placeLocked(std::move(owner), kept, replicas);
  }
  // place(), with place_mu held.
  llvm::Error placeLocked(std::vector<std::uint16_t> owner, std::vector<ClusterNode::Kept> *kept,
                          const ReplicaSets *replicas) {
    // The replica sets to publish (those in effect unless new ones are given); they take
    // effect with the placement's epoch, not before.
    const ReplicaSets sets = replicas ? *replicas : placement->current().replicas;
    if (auto bad = checkPlacement(owner, sets))
      return fail("a placement names " + *bad);
    // Units with state move one at a time, each in an epoch of its own: the old owner closes
    // the unit's gate and drains it, its state goes to the new owner, every node switches, and
    // the gate opens. (Two at once could wait for each other: a call draining from one may be
    // held at the other's gate.) A unit whose state cannot be taken now stays, and so does
    // the rest of the plan, which may only pay with it; the caller plans again.
    for (std::uint32_t u = 0; u < owner.size(); ++u) {
      std::vector<std::uint16_t> step = placement->current().owner;
      if (owner[u] == step[u] || !migratable[u])
        continue;
      int from = step[u], to = owner[u];
      auto state = migrateStep(from, u, wire::MigratePhase::Close, {});
      llvm::Error err = state ? llvm::Error::success() : state.takeError();
      if (!err)
        if (auto installed = migrateStep(to, u, wire::MigratePhase::Install, *state); !installed)
          err = installed.takeError();
      if (err) {
        // The gate opens again (also after a Close that got no answer: the node may have
        // closed it late); the state stays where it is.
        if (auto reopen = migrateStep(from, u, wire::MigratePhase::Open, {}); !reopen)
          llvm::consumeError(reopen.takeError()); // that node is failing: the heartbeats' case
        std::string why = llvm::toString(std::move(err));
        spdlog::info("`{}` not moved: {}", unit_names[u], why);
        if (kept)
          kept->push_back({u, why});
        return llvm::Error::success();
      }
      spdlog::debug("`{}`: {} bytes of state moved {}→{}", unit_names[u], state->size(),
                    nodeName(from), nodeName(to));
      step[u] = static_cast<std::uint16_t>(to);
      if (auto published = publishEverywhere(step, placement->current().replicas)) {
        // Some nodes may run the new epoch and the moved state, others not: the state could
        // fork. The cluster cannot go on safely.
        failed(llvm::toString(std::move(published)) + " while `" + unit_names[u] +
               "` moved with its state; stopping the cluster");
      }
      if (auto opened = migrateStep(from, u, wire::MigratePhase::Open, {}); !opened)
        failed("`" + unit_names[u] + "` moved, but node `" + nodeName(from) +
               "` did not reopen its gate: " + llvm::toString(opened.takeError()) +
               "; stopping the cluster");
    }
    if (owner == placement->current().owner && sets == placement->current().replicas &&
        placement->current().epoch > 0)
      return llvm::Error::success(); // nothing else changes

    return publishEverywhere(owner, sets);
  }

  // `owner` as the next epoch on every node (acknowledged), then here. An epoch number is
  // never sent twice, even when a node did not accept it.
  // The members that joined (mu must not be held).
  std::vector<int> joinedMembers() {
    std::lock_guard lock(mu);
    std::vector<int> members;
    for (std::size_t i = 0; i < joined.size(); ++i)
      if (joined[i])
        members.push_back(static_cast<int>(i));
    return members;
  }

  llvm::Error publishEverywhere(const std::vector<std::uint16_t> &owner,
                                const ReplicaSets &replicas) {
    std::vector<int> members = joinedMembers();
    std::uint64_t epoch = std::max(placement->current().epoch, last_sent_epoch) + 1;
    last_sent_epoch = epoch;
    std::vector<wire::ReplicaShare> shares;
    for (std::size_t u = 0; u < replicas.size(); ++u)
      for (const Replica &r : replicas[u])
        shares.emplace_back(static_cast<std::uint16_t>(u), r.node, r.weight);
    for (const Ack &a : broadcast(
             members,
             [&](std::uint64_t id) { return transport::makePlacement(id, epoch, owner, shares); },
             config.join_timeout))
      if (!a.ok)
        return fail("placement epoch " + std::to_string(epoch) + " not accepted: " + a.text);
    applyPlacement(owner, replicas, epoch);
    return llvm::Error::success();
  }

  // One line at the end of a run with load-balanced calls: where this node's calls ran, and
  // how many it served for other nodes.
  void logBalancedCalls() {
    std::vector<std::uint64_t> sent = dispatcher->ranOn();
    std::uint64_t served = served_balanced.load(), total = served;
    std::string where;
    for (std::size_t i = 0; i < sent.size(); ++i) {
      total += sent[i];
      if (sent[i] > 0)
        where += (where.empty() ? "" : ", ") + std::to_string(sent[i]) + " on " +
                 (static_cast<int>(i) == self ? "this node" : "`" + nodeName(int(i)) + "`");
    }
    if (total > 0)
      spdlog::info("load-balanced calls: {} made here ({}); {} served for other nodes",
                   total - served, where.empty() ? "none" : where, served);
  }

  void stopChaos() {
    {
      std::lock_guard lock(chaos_mu); // the chaos thread between its check and its wait
      chaos_stop = true;
    }
    chaos_cv.notify_all();
    if (chaos_thread.joinable() && std::this_thread::get_id() != chaos_thread.get_id())
      chaos_thread.join();
  }

  void stopThreads() {
    stopChaos();
    stop = true;
    control_stop = true;
    abandonAsks();
    if (wake_fd >= 0)
      wake();
    { // the placer between its check and its wait
      std::lock_guard lock(mu);
    }
    place_jobs_changed.notify_all();
    if (server)
      server->stop(leave_workers);
    if (control_thread.joinable() && std::this_thread::get_id() != control_thread.get_id())
      control_thread.join();
    if (placer.joinable() && std::this_thread::get_id() != placer.get_id())
      placer.join();
    std::vector<std::function<void()>> hooks;
    {
      std::lock_guard lock(mu);
      hooks.swap(stop_hooks);
    }
    for (auto &hook : hooks) // threads of other parts that use this node's sockets
      hook();
  }
};

ClusterNode::ClusterNode(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

ClusterNode::~ClusterNode() {
  impl_->stopThreads();
  if (impl_->wake_fd >= 0)
    ::close(impl_->wake_fd);
}

llvm::Expected<std::unique_ptr<ClusterNode>>
ClusterNode::Create(const ClusterConfig &config, int self, jit::JitSession &session,
                    const jit::ProgramAnalysis &analysis,
                    const std::array<std::uint8_t, 32> &bitcode_sha256, FailureHandler on_failure) {
  static std::once_flag at_fork;
  std::call_once(at_fork, [] {
    pthread_atfork(nullptr, nullptr, [] {
      forked_child.store(true, std::memory_order_relaxed);
      // A crash of the child is its own: its parent's node must not report it (the program's
      // own handlers stay).
      auto reset = [](int sig) {
        struct sigaction now {};
        if (sigaction(sig, nullptr, &now) == 0 && now.sa_handler == onCrash)
          signal(sig, SIG_DFL);
      };
      for (int sig : kCrashSignals)
        reset(sig);
      for (int sig : kStopSignals)
        reset(sig);
    });
  });
  auto impl = std::make_unique<Impl>();
  impl->config = config;
  impl->self = self;
  impl->entry = config.nodeIndex(config.entry);
  impl->coordinator = config.nodeIndex(config.coordinator);
  if (impl->coordinator < 0)
    impl->coordinator = impl->entry;
  // Reports name functions by profile id: this process's profile layout has them all.
  impl->profile_functions = profiler::Profiler::instance().layout().functions.size();
  impl->session = &session;
  impl->sha256 = bitcode_sha256;
  impl->on_failure = std::move(on_failure);
  impl->heartbeat_interval = std::max(config.heartbeat_timeout / 5, milliseconds(10));
  if (analysis.units.size() > 65535) // unit ids travel as 16 bits
    return fail("the program has " + std::to_string(analysis.units.size()) +
                " placement units; a cluster places at most 65535");
  for (const auto &f : session.remoteFunctions())
    impl->unit_of.push_back(f.unit);
  for (const jit::PlacementUnit &u : analysis.units) {
    impl->movable.push_back(u.placement == jit::Placement::Placeable && !u.stateful);
    impl->stateful.push_back(u.stateful);
    // State larger than one message cannot travel (the coordinator keeps such a unit still).
    impl->migratable.push_back(u.placement == jit::Placement::Placeable && u.migratable &&
                               u.state_bytes <= config.max_call_bytes);
    impl->unit_names.push_back(u.name);
    impl->load_balanced.push_back(u.load_balanced);
  }
  // New calls of the unit wait at its gate while it drains: a unit busy with a long call is
  // left where it is rather than holding the others back.
  impl->drain_timeout = std::min(kDrainTimeout, config.heartbeat_timeout / 2);
  // Epoch 0: everything on the entry node, until the entry node sends epoch 1.
  PlacementTable start{
      0, std::vector<std::uint16_t>(analysis.units.size(), static_cast<std::uint16_t>(impl->entry)),
      ReplicaSets(analysis.units.size())};
  for (std::size_t u = 0; u < analysis.units.size(); ++u)
    if (impl->load_balanced[u])
      start.replicas[u].push_back({static_cast<std::uint16_t>(impl->entry), 1.0f});
  impl->placement = std::make_unique<PlacementTables>(std::move(start));
  for (std::uint32_t id = 0; id < impl->unit_of.size(); ++id) // the stubs follow the table
    session.relink(id, self == impl->entry ? jit::StubTarget::Local : jit::StubTarget::Remote);
  for (std::uint32_t u = 0; u < analysis.units.size(); ++u)
    if (impl->migratable[u])
      session.gates().setOwned(u, self == impl->entry);
  impl->joined.assign(config.nodes.size(), false);
  impl->routing_ids.assign(config.nodes.size(), "");
  impl->last_seen.assign(config.nodes.size(), Clock::now());
  session.setHandleTag(static_cast<std::uint16_t>(self + 1));
  jit::setMaxCallBytes(config.max_call_bytes); // before any socket is made
  // As many workers, and load-balanced calls running at once, as the node has CPUs.
  int pool_size = std::max(1, static_cast<int>(std::ceil(cpuCapacity(config.nodes[self]))));
  impl->dispatcher =
      std::make_unique<ReplicaDispatcher>(static_cast<int>(config.nodes.size()), self, pool_size);
  for (std::size_t i = 0; i < config.nodes.size(); ++i)
    impl->links.push_back(std::make_unique<LinkSamples>());
  const NodeConfig &me = config.nodes[self];
  const NodeConfig &entry = config.nodes[impl->entry];
  std::string endpoint = me.call_endpoint;
  try {
    auto router = std::make_unique<zmq::socket_t>(context(), zmq::socket_type::router);
    transport::configureSocket(*router, maxMessageBytes());
    router->bind(endpoint);
    Impl *n = impl.get();
    impl->server = std::make_unique<CallServer>(
        std::move(router), pool_size, [n](Incoming &call) { return n->answerCall(call); },
        me.background_long_calls);
    std::vector<std::string> endpoints;
    for (const NodeConfig &node : config.nodes)
      endpoints.push_back(node.call_endpoint);
    impl->client = std::make_unique<CallClient>(endpoints, *impl->server);
    impl->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (impl->wake_fd < 0)
      return fail(std::string("eventfd: ") + std::strerror(errno));
    if (self == impl->entry) {
      endpoint = me.control_endpoint;
      impl->control = std::make_unique<zmq::socket_t>(context(), zmq::socket_type::router);
      transport::configureSocket(*impl->control, maxMessageBytes());
      impl->control->bind(endpoint);
    } else {
      endpoint = entry.control_endpoint;
      impl->control = std::make_unique<zmq::socket_t>(context(), zmq::socket_type::dealer);
      transport::configureSocket(*impl->control, maxMessageBytes());
      impl->control->connect(endpoint);
    }
  } catch (const zmq::error_t &e) {
    return fail(config.whereIs(me) + ": cannot bind " + endpoint + ": " + e.what() +
                (e.num() == EADDRINUSE      ? " (is another process using it?)"
                 : e.num() == EADDRNOTAVAIL ? " (is it an address of this machine?)"
                                            : ""));
  }
  return std::unique_ptr<ClusterNode>(new ClusterNode(std::move(impl)));
}

llvm::Error ClusterNode::startEntry(const std::vector<std::uint16_t> &owners,
                                    const ReplicaSets &replicas) {
  Impl &n = *impl_;
  n.installCrashHandlers(/*stops=*/!n.under_launcher);
  n.server->start();
  n.session->setImmediateEnd([&n](int code) { return n.requestImmediateEnd(code); });
  n.immediate_open.store(true); // the control thread looks at once
  n.control_thread = std::thread([&n] { n.controlLoop(); });
  if (n.coordinatorElsewhere())
    n.placer = std::thread([&n] { n.placerLoop(); });
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
      std::string why = "join refused: " + n.join_failure;
      lock.unlock();
      shutdownCluster(2, "the cluster did not start: " + why);
      return fail(why);
    }
    if (!everyone()) {
      std::string missing;
      for (std::size_t i = 0; i < n.joined.size(); ++i)
        if (static_cast<int>(i) != n.self && !n.joined[i])
          missing += (missing.empty() ? "`" : ", `") + n.nodeName(static_cast<int>(i)) + "`";
      lock.unlock();
      shutdownCluster(2, "the cluster did not start: node(s) " + missing + " did not join within " +
                             std::to_string(n.config.join_timeout.count()) + " ms");
      const bool local = n.config.label != n.config.path; // started by --local
      return fail(
          n.config.label + ": node(s) " + missing + " did not join within " +
          std::to_string(n.config.join_timeout.count()) + " ms" +
          (local ? "; a busy machine may need a longer --join-timeout-ms"
                 : "; start each with `distnode --join " + n.config.path + " --name NAME app.bc`"));
    }
  }
  if (auto err = n.place(owners, nullptr, &replicas)) {
    std::string why = llvm::toString(std::move(err));
    shutdownCluster(2, "the cluster did not start: " + why);
    return fail(why);
  }
  return llvm::Error::success();
}

void ClusterNode::setShutdownReport(std::function<std::string()> report) {
  impl_->shutdown_report = std::move(report);
}

void ClusterNode::setUnderLauncher(bool under) { impl_->under_launcher = under; }

std::vector<std::string> ClusterNode::shutdownCluster(int exit_code, const std::string &reason) {
  Impl &n = *impl_;
  n.stopChaos();
  n.logBalancedCalls();
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
  { // a placement the coordinator asked for ends first (no new one starts: shut_down)
    std::lock_guard serial(n.place_mu);
  }
  // Every member acknowledged: what is still queued here matters to nobody (answers to calls
  // of a program that ended), and only a short flush is due, not one that waits out a thread
  // of the program still in a call.
  bool all_acknowledged = !members.empty() && n.control_thread.joinable();
  if (n.control_thread.joinable()) {
    std::vector<Ack> acks = n.broadcast(
        members, [&](std::uint64_t id) { return transport::makeShutdown(id, exit_code, reason); },
        kShutdownTimeout);
    for (std::size_t i = 0; i < members.size(); ++i) {
      if (acks[i].ok) {
        reports[members[i]] = std::move(acks[i].text);
      } else {
        all_acknowledged = false;
        spdlog::warn("{} (shutdown)", acks[i].text);
      }
    }
  }
  if (!n.server->onWorker() && std::this_thread::get_id() != n.control_thread.get_id()) {
    n.stopThreads();
    // Otherwise, e.g. a refused node's Welcome may still be queued.
    n.flushAndClose(all_acknowledged ? kShortFlush : kFlushTimeout);
  }
  return reports;
}

llvm::Expected<int> ClusterNode::runMember() {
  Impl &n = *impl_;
  struct sigaction sa {};
  sa.sa_handler = onTerminate;
  sigemptyset(&sa.sa_mask);
  for (int sig : kStopSignals)
    if (!ignored(sig))
      sigaction(sig, &sa, nullptr);
  n.installCrashHandlers();
  n.session->setExitElsewhere([&n](int code, jit::ExitKind how) { n.exitOnEntry(code, how); });
  n.session->setImmediateEnd([&n](int code) { return n.requestImmediateEnd(code); });
  auto joined = n.join();
  if (!joined)
    return joined.takeError();
  if (!*joined)
    return 128 + terminateSignal().load();
  n.immediate_open.store(true); // calls are served from here on; the loop looks at once
  n.server->start();
  int code = n.memberLoop();
  n.closeImmediateEnd(code);
  // A call of the program that may still run here (the program ended meanwhile, or the entry
  // node is gone) is not waited for: a native exit ends every thread at once.
  n.leave_workers = true;
  n.stopThreads();
  n.logBalancedCalls();
  if (code != 0)
    return code;
  // The acknowledgement of Shutdown is still queued: the entry would wait for it in vain.
  n.flushAndClose();
  return 0;
}

bool ClusterNode::inForkedChild() { return forked_child.load(std::memory_order_relaxed); }

void ClusterNode::callRemote(std::uint32_t id, void **slots, void *ret) {
  Impl &n = *impl_;
  const jit::RemoteSignature &sig = n.session->remoteFunctions()[id];
  if (inForkedChild()) [[unlikely]] {
    // Functions without state run here. State is on the node that forked (the entry: the
    // analysis keeps every unit with state there when the program calls fork()), unless
    // DIST_PIN put it elsewhere, out of this process's reach.
    const int owner = n.placement->current().owner[sig.unit];
    if (!n.movable[sig.unit] && !n.load_balanced[sig.unit] && owner != n.self)
      n.on_failure("`" + sig.name + "` not run in a child process made by fork(): " +
                       (n.stateful[sig.unit] ? "its state is on" : "it is pinned to") + " node `" +
                       n.nodeName(owner) +
                       "`, which the child cannot reach; pin it to the entry node or do not call "
                       "it after fork()",
                   2);
    n.session->callLocal(id, slots, ret);
    return;
  }
  // Pointer arguments that overlap while one is copied back (`f(&s, &s)`): copies would be two
  // objects where natively there is one. A unit without state (load-balanced ones included)
  // runs here instead, as natively (nothing before the call touches errno).
  if (n.movable[sig.unit] && jit::copiedBackArgumentsOverlap(sig, slots)) {
    n.session->callLocal(id, slots, ret);
    return;
  }
  // A load-balanced unit: its dispatcher picks the replica; while this node has room, the call
  // runs here at once (no message, no chain, no sockets, no clock).
  const bool balanced = n.load_balanced[sig.unit];
  OutstandingCall outstanding(*n.dispatcher); // the call counts on its replica until it ends
  const PlacementTable *first = nullptr;      // the table the first replica was picked by
  if (balanced) {
    first = &n.placement->current();
    outstanding.countedOn(n.dispatcher->acquire(first->replicas[sig.unit]));
    if (outstanding.node() == n.self) {
      n.session->callLocal(id, slots, ret);
      n.dispatcher->ran(n.self);
      return;
    }
  }
  // errno and the floating-point environment go with the call and come back with its answer,
  // as a native call shares them; the runtime's own system calls in between do not show (set
  // on return, after the chain's and the sockets' scopes have ended).
  const wire::ThreadCState caller = transport::captureThreadCState();
  struct CStateOnReturn {
    wire::ThreadCState state;
    ~CStateOnReturn() { transport::applyThreadCState(state); }
  } on_return{caller};
  auto started = Clock::now();
  // The outermost remote call of a thread starts a chain and borrows sockets until it returns.
  CallClient::CallScope scope(*n.client);
  std::uint64_t &chain = currentChain();
  struct ChainScope {
    std::uint64_t &chain;
    bool started;
    ~ChainScope() {
      if (started)
        chain = 0;
    }
  } chain_scope{chain, chain == 0};
  if (chain_scope.started)
    chain = (std::uint64_t(n.self + 1) << 48) | n.next_chain++;
  // Large DIST_IN buffers go from where they are, in parts of their own: this thread waits for
  // the answer, which comes after the callee got them, and a failed call ends the process.
  jit::CallLayout layout;
  std::string error;
  if (!jit::layoutCall(sig, slots, layout, error, jit::kOwnPartFrom))
    n.failed("call of `" + sig.name + "`: " + error);
  const std::size_t size = layout.blob_bytes;

  int moved_to = -1;             // where the last Moved answer pointed
  std::uint64_t moved_epoch = 0; // and by which placement
  int stale = 0;                 // answers in a row by an older placement than this node's
  Clock::time_point stale_since{};
  for (int attempt = 0;; ++attempt) {
    // Read the placement once per attempt: the owner (or the replica) and the epoch come from
    // one table; the first attempt of a load-balanced call uses the table its replica was
    // picked by.
    const PlacementTable &t = first ? *first : n.placement->current();
    first = nullptr;
    int owner = t.owner[sig.unit];
    if (balanced) {
      if (moved_to >= 0 && moved_epoch > t.epoch) { // the answer knows a newer set: go there
        n.dispatcher->acquireAt(moved_to);
        outstanding.countedOn(moved_to);
      } else if (attempt > 0) { // answered Moved by a set this node has too: pick again
        outstanding.countedOn(n.dispatcher->acquire(t.replicas[sig.unit]));
      }
      owner = outstanding.node();
    } else if (moved_to >= 0 && moved_epoch >= t.epoch) {
      owner = moved_to;
    }
    std::uint64_t epoch = std::max(t.epoch, moved_to >= 0 ? moved_epoch : 0);
    if (owner == n.self) { // placed here (re-linked while the call was on its way): run it
      jit::UnitGates &gates = n.session->gates();
      if (!gates.tryEnter(sig.unit)) { // its state is moving: wait, then go where it lives
        gates.waitOpen(sig.unit);
        moved_to = -1;
        continue;
      }
      transport::applyThreadCState(caller);
      n.session->callLocal(id, slots, ret);
      on_return.state = transport::captureThreadCState();
      gates.exit(sig.unit);
      if (balanced)
        n.dispatcher->ran(n.self);
      return;
    }

    std::uint64_t call_id = n.next_call_id++;
    const std::uint8_t *args = nullptr;
    zmq::message_t call = transport::makeCallWith(
        call_id, id, epoch, size,
        [&](std::uint8_t *room) {
          args = room;
          jit::marshalCallInto(sig, slots, layout, room);
        },
        chain, caller);
    std::vector<zmq::message_t> parts;
    for (const jit::ByteSpan &part : layout.own_parts)
      parts.push_back(transport::borrowedPart(part.data, part.size));
    // In-out arguments come back as the bytes the callee changed (others may have written the
    // rest meanwhile): the reply is compared with what was sent, so that stays alive (ZeroMQ
    // shares the message's bytes, no copy).
    const bool writes_back = jit::hasInOutArguments(sig);
    zmq::message_t sent;
    if (writes_back)
      sent.copy(call);
    auto marshaled = Clock::now();
    zmq::message_t response;
    const wire::Envelope *envelope = nullptr;
    if (!n.client->request(owner, std::move(call), std::move(parts), call_id, response, envelope,
                           error)) {
      if (n.stop.load())
        n.stoppedMidCall(); // the cluster is stopping normally: not a failure
      n.failed("call of `" + sig.name + "` on node `" + n.nodeName(owner) + "` failed: " + error);
    }
    if (const wire::Reply *reply = envelope->body_as_Reply()) {
      static const std::uint8_t kEmpty = 0;
      const std::uint8_t *data = reply->result() ? reply->result()->data() : &kEmpty;
      std::size_t reply_size = reply->result() ? reply->result()->size() : 0;
      auto answered = Clock::now();
      if (!jit::unmarshalReply(sig, data, reply_size, slots, ret, error,
                               writes_back ? args : nullptr, size))
        n.failed("call of `" + sig.name + "` on node `" + n.nodeName(owner) + "`: " + error);
      if (const wire::ThreadCState *callee = reply->c_state())
        on_return.state = *callee;
      // The link's share of the round trip: what the callee did not spend on the call (a
      // serving time longer than the round trip is nonsense and teaches nothing).
      auto round_trip = std::chrono::duration_cast<std::chrono::nanoseconds>(answered - marshaled);
      if (reply->serve_ns() < static_cast<std::uint64_t>(round_trip.count()))
        n.links[owner]->add(layout.total_bytes + reply_size,
                            round_trip - std::chrono::nanoseconds(reply->serve_ns()));
      if (std::uint32_t pid = n.session->profileId(id))
        profiler::Profiler::instance().recordRemoteCall(
            pid, layout.total_bytes + reply_size, answered - marshaled,
            (marshaled - started) + (Clock::now() - answered));
      if (balanced)
        n.dispatcher->ran(owner);
      return;
    }
    // The callee called exit(): the program ends on this thread, which called it (and from
    // here the same way up the chain, to the node that runs main).
    if (const wire::Exit *x = envelope->body_as_Exit()) {
      const std::optional<jit::ExitKind> how = fromWire(x->how());
      if (!how)
        n.failed("call of `" + sig.name + "` on node `" + n.nodeName(owner) +
                 "`: the program ended there in a way this node does not know (" +
                 std::to_string(static_cast<int>(x->how())) + ")");
      n.session->exitProgram(x->exit_code(), *how);
    }
    const wire::Moved *moved = envelope->body_as_Moved();
    if (!moved)
      n.failed("call of `" + sig.name + "` on node `" + n.nodeName(owner) +
               "` failed: " + errorText(*envelope));
    // An answer by an older placement than this node's: that node has not applied the newer
    // one yet (a placement reaches the members before the entry node). Waiting is the answer,
    // with a growing pause, for at most the heartbeat timeout; such answers are not moves.
    if (moved->epoch() < t.epoch) {
      if (stale_since == Clock::time_point{})
        stale_since = Clock::now();
      else if (Clock::now() - stale_since > n.config.heartbeat_timeout)
        n.failed("call of `" + sig.name + "`: node `" + n.nodeName(owner) +
                 "` still answers by placement epoch " + std::to_string(moved->epoch()) +
                 " after " + std::to_string(n.config.heartbeat_timeout.count()) +
                 " ms; this node runs epoch " + std::to_string(t.epoch));
      std::this_thread::sleep_for(
          std::chrono::microseconds(std::min(2000, 50 << std::min(stale, 6))));
      ++stale;
      --attempt;
      moved_to = -1;
      continue;
    }
    stale = 0;
    stale_since = {};
    if (moved->owner() >= n.config.nodes.size() || attempt >= kMaxMoves)
      n.failed("call of `" + sig.name + "`: node `" + n.nodeName(owner) +
               "` does not run it, and after " + std::to_string(attempt + 1) +
               " tries no node did; the placement is not converging");
    moved_to = moved->owner();
    moved_epoch = moved->epoch();
    spdlog::debug("`{}`: node `{}` answered Moved to `{}` (epoch {})", sig.name, n.nodeName(owner),
                  n.nodeName(moved_to), moved_epoch);
    if (attempt >= kMaxMoves / 2) // placements change faster than calls go: let them settle
      std::this_thread::yield();
  }
}

std::vector<std::uint16_t> ClusterNode::owners() const { return impl_->placement->current().owner; }

ReplicaSets ClusterNode::replicas() const { return impl_->placement->current().replicas; }

std::vector<std::uint64_t> ClusterNode::dispatched() const { return impl_->dispatcher->ranOn(); }

std::uint64_t ClusterNode::servedForOthers() const {
  return impl_->served_balanced.load(std::memory_order_relaxed);
}

void ClusterNode::setReportHandler(
    std::function<void(int, std::uint64_t, const NodeReport &)> handler,
    std::function<std::optional<std::string>(const NodeReport &)> check) {
  impl_->report_check = std::move(check);
  impl_->report_handler = std::move(handler);
}

void ClusterNode::setMemberReportInterval(milliseconds interval) {
  impl_->member_report_interval_ms.store(static_cast<std::uint32_t>(
      std::clamp<long>(interval.count(), kMinAdaptIntervalMs, kMaxAdaptIntervalMs)));
}

void ClusterNode::setReportSource(std::function<NodeReport()> source,
                                  std::function<bool()> phase_watch, milliseconds interval) {
  impl_->report_interval = interval;
  impl_->report_source = std::move(source);
  impl_->phase_watch = std::move(phase_watch);
}

void ClusterNode::setRoundWanted(std::function<bool(std::uint64_t)> wanted) {
  impl_->round_wanted = std::move(wanted);
}

void ClusterNode::requestReports(std::uint64_t round) {
  Impl &n = *impl_;
  if (n.self != n.entry) { // the coordinator elsewhere: the entry node asks the others
    n.tellEntry(transport::makeRound(0, round, n.member_report_interval_ms.load()));
    return;
  }
  for (int m : n.joinedMembers())
    n.queue(m, transport::makeHeartbeat(0, n.member_report_interval_ms.load(), round));
}

void ClusterNode::atFirstPlacement(std::function<void()> hook) {
  impl_->on_first_placement = std::move(hook);
}

void ClusterNode::atStop(std::function<void()> hook) {
  std::lock_guard lock(impl_->mu);
  impl_->stop_hooks.push_back(std::move(hook));
}

LinkSamples::Estimate ClusterNode::takeLinkEstimate(int node, double known_latency_s) {
  if (node < 0 || static_cast<std::size_t>(node) >= impl_->links.size())
    return {};
  return impl_->links[node]->take(known_latency_s);
}

std::optional<std::chrono::nanoseconds> ClusterNode::probe(int node, std::size_t bytes) {
  Impl &n = *impl_;
  if (node < 0 || node == n.self || static_cast<std::size_t>(node) >= n.config.nodes.size() ||
      n.stop.load())
    return std::nullopt;
  try {
    CallClient::CallScope scope(*n.client);
    std::uint64_t call_id = n.next_call_id++;
    zmq::message_t response;
    const wire::Envelope *envelope = nullptr;
    std::string error;
    auto start = Clock::now();
    // At most a heartbeat timeout: a node whose workers are all busy answers late, and a
    // stopping node must not wait for it.
    if (!n.client->request(node, transport::makeProbe(call_id, bytes), {}, call_id, response,
                           envelope, error, start + n.config.heartbeat_timeout) ||
        !envelope->body_as_Reply())
      return std::nullopt;
    return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start);
  } catch (const zmq::error_t &e) { // the node's sockets are closing
    spdlog::debug("probe of node `{}`: {}", n.nodeName(node), e.what());
    return std::nullopt;
  }
}

llvm::Error ClusterNode::place(const std::vector<std::uint16_t> &owners, std::vector<Kept> *kept,
                               const ReplicaSets *replicas) {
  if (impl_->self != impl_->entry)
    return impl_->placeThroughEntry(owners, kept, replicas);
  return impl_->place(owners, kept, replicas);
}

std::uint64_t ClusterNode::epoch() const { return impl_->placement->current().epoch; }

void ClusterNode::startChaos(milliseconds period, unsigned seed) {
  Impl &n = *impl_;
  n.chaos_thread = std::thread([&n, period, seed] { n.chaosLoop(period, seed); });
}

} // namespace distnode::node
