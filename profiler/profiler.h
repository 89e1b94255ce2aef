// profiler.h - the run-time side of profiling: per-thread counters written by instrumented JIT
// code, sampled self CPU time, remote-call timings, and snapshots with decayed rates.
//
// Instrumented code (profiler/instrument.h) reaches this thread's ThreadState at a fixed offset
// from the thread pointer and increments plain counters in a per-thread block: no lock-prefixed
// instruction on the hot path (measured on this project's machines: ~5 ns each, 25-30 ns contended, against ~1 ns). A
// snapshot sums the blocks of live threads and the totals of threads that exited.
//
// Self CPU time is sampled: each thread that runs profiled code has a timer on its own CPU
// clock that sends SIGPROF to it alone, and the handler charges the thread's CPU time since its
// previous sample (so a kernel that delivers the timer at its tick rate rather than the period
// loses nothing) to the function whose code was interrupted. A thread that sleeps uses no CPU
// and gets no signal: a process-wide ITIMER_PROF would, whenever the CPU time came from a
// thread that blocks signals (ZeroMQ's), and its sleep() or nanosleep() would end early.
#ifndef DISTNODE_PROFILER_PROFILER_H
#define DISTNODE_PROFILER_PROFILER_H

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <ctime>
#include <mutex>
#include <string>
#include <vector>

namespace distnode::profiler {

/// Per-thread state shared with instrumented code. Plain data in static TLS, zero-initialized:
/// a thread that never ran instrumented code has no counters and is at the root.
struct ThreadState {
  std::uint64_t *counters; ///< this thread's counter block, or null before its first use
  std::uint32_t current;   ///< profile id of the innermost active profiled function; 0 = root
  std::uint32_t reserved;
  std::uint64_t last_cpu_ns; ///< the thread's CPU clock at its previous sample
};
inline constexpr unsigned kCountersField = 0; ///< byte offset of ThreadState::counters
inline constexpr unsigned kCurrentField = 8;  ///< byte offset of ThreadState::current

/// Profile id 0: code outside every profiled function (a thread's start routine, the runtime).
inline constexpr std::uint32_t kRoot = 0;
inline constexpr const char *kRootName = "(root)";

/// Counters per call site: calls, argument bytes, reply bytes.
inline constexpr unsigned kSiteCounters = 3;

/// A call site of a profiled callee. The caller is fixed when the site is in a profiled
/// function; in a local function (which runs on behalf of whoever called it) it is the
/// thread's current function at the time of the call.
struct CallSite {
  static constexpr std::uint32_t kDynamicCaller = ~0u;
  static constexpr std::uint64_t kVariable = ~0ull;
  std::uint32_t caller = kDynamicCaller;
  std::uint32_t callee = 0;
  /// Bytes per call when they are the same for every call of this site (all arguments of
  /// static size); then only calls are counted. kVariable: counted per call.
  std::uint64_t call_bytes = kVariable, reply_bytes = kVariable;
};

/// The shape of every thread's counter block.
struct ProfileLayout {
  /// Names by profile id; index 0 is the root.
  std::vector<std::string> functions{kRootName};
  /// Sites with a fixed caller first, then the dynamic ones (see counterIndex).
  std::vector<CallSite> sites;

  [[nodiscard]] std::size_t staticSites() const;
  /// Index of the first counter of site `s` (for a dynamic site: with caller `caller`).
  [[nodiscard]] std::size_t counterIndex(std::size_t s, std::uint32_t caller = 0) const;
  /// Index of the first self-time counter (nanoseconds of CPU; one per profile id follows),
  /// then as many sample counters.
  [[nodiscard]] std::size_t samplesIndex() const;
  /// Counters in one block.
  [[nodiscard]] std::size_t blockSize() const;
  /// Calls `f(site, caller, index)` for every call site and each caller it counts for (its
  /// fixed caller, or every profile id for a dynamic site), with the index of its first counter.
  template <typename F> void forEachSiteCounter(F &&f) const {
    for (std::size_t s = 0; s < sites.size(); ++s) {
      const CallSite &site = sites[s];
      if (site.caller != CallSite::kDynamicCaller)
        f(site, site.caller, counterIndex(s));
      else
        for (std::uint32_t caller = 0; caller < functions.size(); ++caller)
          f(site, caller, counterIndex(s, caller));
    }
  }
};

/// The machine code of one profiled function: samples whose interrupted instruction lies in
/// [start, end) are charged to `id`.
struct CodeRange {
  std::uintptr_t start = 0, end = 0;
  std::uint32_t id = 0;
};

/// The same ranges as disjoint pieces, sorted, each charged to the innermost range that holds
/// it: a body inlined into another function owns its piece of the other's range. Of two equal
/// ranges the later one is taken as the inner one.
[[nodiscard]] std::vector<CodeRange> innermostRanges(std::vector<CodeRange> ranges);

/// Totals and decayed rates of one call edge (caller → callee, by name).
struct EdgeStats {
  std::string caller, callee;
  std::uint64_t calls = 0, call_bytes = 0, reply_bytes = 0;
  double calls_per_s = 0, bytes_per_s = 0; ///< decayed rates; bytes = call + reply bytes
};

/// Totals and decayed rates of one profiled function on this node.
struct FunctionStats {
  std::string name;
  std::uint64_t calls = 0;   ///< calls counted on this node's call sites
  std::uint64_t samples = 0; ///< SIGPROF samples that found it running
  double self_cpu_s = 0;     ///< CPU time charged by those samples
  double calls_per_s = 0, cpu_s_per_s = 0;
};

/// Calls of one function that this node made to another node.
struct RemoteStats {
  std::string function;
  std::uint64_t calls = 0, bytes = 0;     ///< bytes sent and received (payloads)
  double round_trip_s = 0, marshal_s = 0; ///< totals
  [[nodiscard]] double meanRoundTripS() const { return calls ? round_trip_s / calls : 0; }
  [[nodiscard]] double marshalSPerByte() const { return bytes ? marshal_s / bytes : 0; }
};

/// A node's cumulative counts by profile id, without names or rates: what a node reports to
/// the coordinator (as the difference of two of them, see minus()).
struct ProfileCounts {
  double elapsed_s = 0;               ///< since profiling started
  std::vector<std::uint64_t> cpu_ns;  ///< self CPU time by profile id (index 0: the root)
  std::vector<std::uint64_t> samples; ///< SIGPROF samples by profile id
  struct Edge {
    std::uint32_t caller = 0, callee = 0;
    std::uint64_t calls = 0, call_bytes = 0, reply_bytes = 0;
  };
  std::vector<Edge> edges; ///< sorted by (caller, callee); edges with calls only
  struct Remote {
    std::uint32_t function = 0;
    std::uint64_t calls = 0, bytes = 0, round_trip_ns = 0, marshal_ns = 0;
  };
  std::vector<Remote> remote; ///< sorted by function; functions called remotely only

  /// What happened between `earlier` and this (counts only grow); entries without calls
  /// and samples are left out.
  [[nodiscard]] ProfileCounts minus(const ProfileCounts &earlier) const;
};

/// One reader's view of the decayed rates: the totals and rates it saw last. Every reader of
/// rates keeps its own, so readers do not disturb each other.
struct RateCursor {
  double last_s = 0;
  std::vector<std::uint64_t> last_totals;
  std::vector<double> rates;
};

/// A node's profile at one moment.
struct ProfileSnapshot {
  double elapsed_s = 0;       ///< since profiling started
  double sample_period_s = 0; ///< 0 when sampling is off
  double half_life_s = 0;
  std::vector<FunctionStats> functions; ///< every profiled function (not the root)
  std::vector<EdgeStats> edges;         ///< edges with at least one call
  std::vector<RemoteStats> remote;      ///< functions this node called remotely
};

/// The process's profiler. Thread-safety: every member may be called from any thread;
/// configure() must happen before instrumented code runs.
class Profiler {
public:
  /// The one profiler of this process (instrumented code and SIGPROF reach it globally).
  static Profiler &instance();

  /// Sets the block layout and clears all counts. Called before the program's instrumented
  /// code runs; threads that ran code of an earlier configuration must have exited.
  void configure(ProfileLayout layout);
  [[nodiscard]] const ProfileLayout &layout() const { return layout_; }

  /// Byte offset of this thread's ThreadState from the thread pointer (the same for every
  /// thread: static TLS of the executable).
  [[nodiscard]] static std::ptrdiff_t threadStateOffset();
  /// Instrumented code's slow path on a thread's first profiled call: allocates and registers
  /// its counter block and returns it.
  static std::uint64_t *threadInit();

  /// Where each profiled function's code lies, its bodies inlined elsewhere included (ranges
  /// may nest). A sample is charged to the innermost function whose code was interrupted;
  /// outside all ranges (in the C library, say), to the thread's current function marker,
  /// which instrumented code keeps at call boundaries.
  void setCodeRanges(std::vector<CodeRange> ranges);
  /// The ranges in effect, as innermostRanges made them.
  [[nodiscard]] std::vector<CodeRange> codeRanges() const;

  /// Starts charging `period` of CPU time per SIGPROF sample. Replaces a previous period.
  void startSampling(std::chrono::microseconds period);
  /// Stops sampling (the counts stay).
  void stopSampling();

  /// Half-life of the decayed rates (default 10 s).
  void setHalfLife(std::chrono::milliseconds half_life);

  /// Records a remote call of `callee` (profile id) made from this node.
  void recordRemoteCall(std::uint32_t callee, std::uint64_t payload_bytes,
                        std::chrono::nanoseconds round_trip, std::chrono::nanoseconds marshal);

  /// Cumulative totals now, with rates decayed since `cursor`'s previous reading (which it
  /// advances). A fresh cursor gives the mean rates since profiling started.
  [[nodiscard]] ProfileSnapshot snapshot(RateCursor &cursor);
  /// Totals with mean rates since profiling started; changes nothing.
  [[nodiscard]] ProfileSnapshot snapshot();
  /// The same as snapshot(cursor) at a given time since profiling started (for deterministic
  /// tests of the rates).
  [[nodiscard]] ProfileSnapshot snapshotAt(RateCursor &cursor, double elapsed_s);

  /// Cumulative counts by profile id now; changes nothing.
  [[nodiscard]] ProfileCounts counts();

  /// The flush generation instrumented code watches (InstrumentSpec::flush_generation_symbol).
  static std::atomic<std::uint32_t> &flushGeneration();
  /// Asks every running frame to add its pending call counts to its thread's block at its next
  /// profiled call. A reader that calls this every period sees every call older than one
  /// period (and every call of a frame that returned).
  static void requestFlush();

private:
  Profiler() = default;
  void retire(std::uint64_t *block);
  std::vector<std::uint64_t> totals(); // live blocks + retired

  ProfileLayout layout_;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  double half_life_s_ = 10.0;
  double sample_period_s_ = 0;

  std::mutex mu_; ///< guards blocks_, timers_, retired_, remote_, rate state
  std::vector<std::uint64_t *> blocks_;
  std::vector<timer_t> timers_; ///< the sampling timers of live threads (ThreadGuard)
  std::vector<std::uint64_t> retired_;
  struct Remote {
    std::uint64_t calls = 0, bytes = 0, rtt_ns = 0, marshal_ns = 0;
  };
  std::vector<Remote> remote_;
  [[nodiscard]] double elapsedS() const;
  friend struct ThreadGuard;
};

/// r' = r·a + (Δ/Δt)·(1 − a) with a = 2^(−Δt/h): an exponentially decayed rate with half-life
/// h; the first interval (had_rate false) takes the plain rate.
[[nodiscard]] double decayedRate(double previous, bool had_rate, double delta, double dt_s,
                                 double half_life_s);

} // namespace distnode::profiler

#endif
