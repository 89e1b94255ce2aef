// profiler.cpp - the run-time side of profiling.
#include "profiler/profiler.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <csignal>
#include <cstring>
#include <ctime>
#include <limits>
#include <map>
#include <ucontext.h>
#include <unistd.h>

namespace distnode::profiler {

namespace {

// Static TLS of the executable (initial-exec): at the same offset from every thread's thread
// pointer, and readable from a signal handler.
__thread ThreadState tl_state __attribute__((tls_model("initial-exec")));

// Set once in configure(); read by the SIGPROF handler.
std::atomic<std::size_t> samples_index{0};
std::atomic<std::size_t> samples_functions{0};

// The sampling period of every thread's CPU-time timer, in ns (0: sampling is off).
std::atomic<std::int64_t> sample_period_ns{0};

itimerspec every(std::int64_t ns) {
  itimerspec t{};
  t.it_interval.tv_sec = static_cast<time_t>(ns / 1'000'000'000);
  t.it_interval.tv_nsec = static_cast<long>(ns % 1'000'000'000);
  t.it_value = t.it_interval;
  return t;
}

std::uint64_t threadCpuNs() {
  timespec now;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
  return static_cast<std::uint64_t>(now.tv_sec) * 1000000000u + now.tv_nsec;
}

// Published once the program is compiled; replaced arrays are never freed (a handler may still
// be reading them).
struct Ranges {
  const CodeRange *data = nullptr;
  std::size_t size = 0;
};
std::atomic<Ranges *> code_ranges{nullptr};

std::uint32_t functionAt(std::uintptr_t pc) {
  const Ranges *r = code_ranges.load(std::memory_order_acquire);
  if (!r)
    return kRoot;
  std::size_t lo = 0, hi = r->size;
  while (lo < hi) { // last range starting at or before pc
    std::size_t mid = (lo + hi) / 2;
    if (r->data[mid].start <= pc)
      lo = mid + 1;
    else
      hi = mid;
  }
  if (lo == 0 || pc >= r->data[lo - 1].end)
    return kRoot;
  return r->data[lo - 1].id;
}

void onSample(int, siginfo_t *, void *context) {
  ThreadState &s = tl_state;
  std::uint64_t *counters = s.counters;
  if (!counters)
    return;
  auto *uc = static_cast<ucontext_t *>(context);
  std::uint32_t id = functionAt(static_cast<std::uintptr_t>(uc->uc_mcontext.gregs[REG_RIP]));
  if (id == kRoot)
    id = s.current;
  std::uint64_t cpu = threadCpuNs();
  std::size_t base = samples_index.load(std::memory_order_relaxed);
  if (s.last_cpu_ns && cpu > s.last_cpu_ns)
    counters[base + id] += cpu - s.last_cpu_ns;
  s.last_cpu_ns = cpu;
  ++counters[base + samples_functions.load(std::memory_order_relaxed) + id];
}

std::uintptr_t threadPointer() {
  std::uintptr_t tp;
  asm("mov %%fs:0, %0" : "=r"(tp));
  return tp;
}

} // namespace

// This thread's sampling timer, and its block's retirement when the thread exits (so that its
// counts are not lost).
struct ThreadGuard {
  timer_t timer{};
  bool timed = false;

  // Makes this thread's CPU-time timer, which sends SIGPROF to this thread alone and only while
  // it runs, and arms it if sampling is on. A thread whose timer cannot be made (the process
  // reached its limit of queued signals, `ulimit -i`) is not sampled.
  void watch(Profiler &p) {
    if (timed)
      return;
    sigevent to_me{};
    to_me.sigev_notify = SIGEV_THREAD_ID;
    to_me.sigev_signo = SIGPROF;
    to_me._sigev_un._tid = gettid();
    std::lock_guard lock(p.mu_);
    if (timer_create(CLOCK_THREAD_CPUTIME_ID, &to_me, &timer) != 0)
      return;
    timed = true;
    p.timers_.push_back(timer);
    if (std::int64_t ns = sample_period_ns.load()) {
      const itimerspec period = every(ns);
      timer_settime(timer, 0, &period, nullptr);
    }
  }

  ~ThreadGuard() {
    if (timed) {
      Profiler &p = Profiler::instance();
      std::lock_guard lock(p.mu_);
      std::erase(p.timers_, timer);
      timer_delete(timer);
    }
    std::uint64_t *block = tl_state.counters;
    tl_state.counters = nullptr; // before freeing: a late SIGPROF must not touch it
    std::atomic_signal_fence(std::memory_order_seq_cst);
    if (block)
      Profiler::instance().retire(block);
  }
};

std::size_t ProfileLayout::staticSites() const {
  std::size_t n = 0;
  while (n < sites.size() && sites[n].caller != CallSite::kDynamicCaller)
    ++n;
  return n;
}

std::size_t ProfileLayout::counterIndex(std::size_t s, std::uint32_t caller) const {
  std::size_t fixed = staticSites();
  if (s < fixed)
    return s * kSiteCounters;
  return (fixed + (s - fixed) * functions.size() + caller) * kSiteCounters;
}

std::size_t ProfileLayout::samplesIndex() const {
  std::size_t fixed = staticSites();
  return (fixed + (sites.size() - fixed) * functions.size()) * kSiteCounters;
}

std::size_t ProfileLayout::blockSize() const { return samplesIndex() + 2 * functions.size(); }

double decayedRate(double previous, bool had_rate, double delta, double dt_s, double half_life_s) {
  if (dt_s <= 0)
    return previous;
  double rate = delta / dt_s;
  if (!had_rate)
    return rate;
  double keep = std::exp2(-dt_s / half_life_s);
  return previous * keep + rate * (1 - keep);
}

Profiler &Profiler::instance() {
  static Profiler *p = new Profiler(); // lives until the process ends: threads may exit late
  return *p;
}

void Profiler::configure(ProfileLayout layout) {
  std::lock_guard lock(mu_);
  // A new program in this process (tests run several): this thread starts a fresh block.
  // Threads that ran the previous program's code have exited and retired theirs.
  if (std::uint64_t *own = tl_state.counters) {
    tl_state.counters = nullptr;
    std::erase(blocks_, own);
    delete[] own;
  }
  layout_ = std::move(layout);
  retired_.assign(layout_.blockSize(), 0);
  remote_.assign(layout_.functions.size(), {});
  samples_index = layout_.samplesIndex();
  samples_functions = layout_.functions.size();
  start_ = std::chrono::steady_clock::now();
}

std::ptrdiff_t Profiler::threadStateOffset() {
  return reinterpret_cast<std::uintptr_t>(&tl_state) - threadPointer();
}

std::uint64_t *Profiler::threadInit() {
  if (tl_state.counters)
    return tl_state.counters;
  // Runs in the program's first profiled call on this thread: the program's errno stays as
  // it was (a timer that cannot be made sets it).
  const int program_errno = errno;
  struct KeepErrno {
    int value;
    ~KeepErrno() { errno = value; }
  } keep{program_errno};
  Profiler &p = instance();
  std::uint64_t *block;
  {
    std::lock_guard lock(p.mu_);
    block = new std::uint64_t[p.layout_.blockSize()]();
    p.blocks_.push_back(block);
  }
  thread_local ThreadGuard guard;
  tl_state.last_cpu_ns = threadCpuNs();
  tl_state.counters = block;
  guard.watch(p);
  return block;
}

void Profiler::retire(std::uint64_t *block) {
  std::lock_guard lock(mu_);
  for (std::size_t i = 0; i < retired_.size(); ++i)
    retired_[i] += block[i];
  std::erase(blocks_, block);
  delete[] block;
}

std::vector<CodeRange> innermostRanges(std::vector<CodeRange> ranges) {
  // Outer before inner where two start together (of two equal ranges the later one given is
  // inner: an inlined body after its function); a stack holds the ranges that contain the
  // position reached, innermost on top, and each piece goes to the top of the stack.
  std::stable_sort(ranges.begin(), ranges.end(), [](const CodeRange &a, const CodeRange &b) {
    return a.start != b.start ? a.start < b.start : a.end > b.end;
  });
  std::vector<CodeRange> pieces;
  auto emit = [&](std::uintptr_t start, std::uintptr_t end, std::uint32_t id) {
    if (start >= end)
      return;
    if (!pieces.empty() && pieces.back().end == start && pieces.back().id == id)
      pieces.back().end = end;
    else
      pieces.push_back({start, end, id});
  };
  std::vector<CodeRange> open;
  std::uintptr_t at = 0;
  auto closeUpTo = [&](std::uintptr_t limit) {
    while (!open.empty() && open.back().end <= limit) {
      emit(std::max(at, open.back().start), open.back().end, open.back().id);
      at = std::max(at, open.back().end);
      open.pop_back();
    }
  };
  for (CodeRange r : ranges) {
    if (r.start >= r.end)
      continue;
    closeUpTo(r.start);
    if (!open.empty()) {
      emit(std::max(at, open.back().start), r.start, open.back().id);
      r.end = std::min(r.end, open.back().end); // overlapping, not nested: keep to the outer
    }
    at = r.start;
    open.push_back(r);
  }
  closeUpTo(std::numeric_limits<std::uintptr_t>::max());
  return pieces;
}

void Profiler::setCodeRanges(std::vector<CodeRange> ranges) {
  ranges = innermostRanges(std::move(ranges));
  auto *copy = new CodeRange[ranges.size()];
  std::copy(ranges.begin(), ranges.end(), copy);
  code_ranges.store(new Ranges{copy, ranges.size()}, std::memory_order_release);
}

std::vector<CodeRange> Profiler::codeRanges() const {
  const Ranges *r = code_ranges.load(std::memory_order_acquire);
  return r ? std::vector<CodeRange>(r->data, r->data + r->size) : std::vector<CodeRange>{};
}

void Profiler::startSampling(std::chrono::microseconds period) {
  struct sigaction sa {};
  sa.sa_sigaction = onSample;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART | SA_SIGINFO;
  sigaction(SIGPROF, &sa, nullptr);
  std::int64_t ns = std::chrono::nanoseconds(period).count();
  std::lock_guard lock(mu_);
  sample_period_ns = ns;
  sample_period_s_ = period.count() / 1e6;
  const itimerspec each = every(ns);
  for (timer_t t : timers_)
    timer_settime(t, 0, &each, nullptr);
}

void Profiler::stopSampling() {
  std::lock_guard lock(mu_);
  sample_period_ns = 0;
  const itimerspec off{};
  for (timer_t t : timers_)
    timer_settime(t, 0, &off, nullptr);
}

void Profiler::setHalfLife(std::chrono::milliseconds half_life) {
  std::lock_guard lock(mu_);
  half_life_s_ = half_life.count() / 1000.0;
}

void Profiler::recordRemoteCall(std::uint32_t callee, std::uint64_t payload_bytes,
                                std::chrono::nanoseconds round_trip,
                                std::chrono::nanoseconds marshal) {
  std::lock_guard lock(mu_);
  if (callee >= remote_.size())
    return;
  Remote &r = remote_[callee];
  ++r.calls;
  r.bytes += payload_bytes;
  r.rtt_ns += static_cast<std::uint64_t>(round_trip.count());
  r.marshal_ns += static_cast<std::uint64_t>(marshal.count());
}

std::vector<std::uint64_t> Profiler::totals() {
  std::vector<std::uint64_t> sum = retired_;
  // Not instrumented (--no-profile): every counter of the layout is zero.
  sum.resize(std::max(sum.size(), layout_.blockSize()), 0);
  for (const std::uint64_t *b : blocks_)
    for (std::size_t i = 0; i < sum.size(); ++i)
      sum[i] += reinterpret_cast<const volatile std::uint64_t *>(b)[i];
  return sum;
}

double Profiler::elapsedS() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

ProfileSnapshot Profiler::snapshot(RateCursor &cursor) { return snapshotAt(cursor, elapsedS()); }

ProfileSnapshot Profiler::snapshot() {
  RateCursor fresh;
  return snapshot(fresh);
}

std::atomic<std::uint32_t> &Profiler::flushGeneration() {
  static std::atomic<std::uint32_t> generation{0};
  return generation;
}

void Profiler::requestFlush() { flushGeneration().fetch_add(1, std::memory_order_relaxed); }

ProfileCounts Profiler::counts() {
  double elapsed = elapsedS();
  std::lock_guard lock(mu_);
  ProfileCounts c;
  c.elapsed_s = elapsed;
  std::vector<std::uint64_t> now = totals();
  const ProfileLayout &l = layout_;
  const std::size_t nf = l.functions.size();
  c.cpu_ns.assign(now.begin() + static_cast<std::ptrdiff_t>(l.samplesIndex()),
                  now.begin() + static_cast<std::ptrdiff_t>(l.samplesIndex() + nf));
  c.samples.assign(now.begin() + static_cast<std::ptrdiff_t>(l.samplesIndex() + nf),
                   now.begin() + static_cast<std::ptrdiff_t>(l.samplesIndex() + 2 * nf));
  std::map<std::pair<std::uint32_t, std::uint32_t>, ProfileCounts::Edge> edges;
  auto add = [&](const CallSite &site, std::uint32_t caller, std::size_t at) {
    if (now[at] == 0)
      return;
    ProfileCounts::Edge &e = edges[{caller, site.callee}];
    e.caller = caller;
    e.callee = site.callee;
    e.calls += now[at];
    e.call_bytes +=
        site.call_bytes != CallSite::kVariable ? now[at] * site.call_bytes : now[at + 1];
    e.reply_bytes +=
        site.reply_bytes != CallSite::kVariable ? now[at] * site.reply_bytes : now[at + 2];
  };
  l.forEachSiteCounter(add);
  for (auto &[key, e] : edges)
    c.edges.push_back(e);
  for (std::size_t f = 0; f < remote_.size() && f < nf; ++f)
    if (const Remote &r = remote_[f]; r.calls)
      c.remote.push_back({static_cast<std::uint32_t>(f), r.calls, r.bytes, r.rtt_ns, r.marshal_ns});
  return c;
}

ProfileCounts ProfileCounts::minus(const ProfileCounts &earlier) const {
  ProfileCounts d;
  d.elapsed_s = elapsed_s - earlier.elapsed_s;
  auto sub = [](std::uint64_t a, std::uint64_t b) { return a > b ? a - b : 0; };
  d.cpu_ns = cpu_ns;
  d.samples = samples;
  for (std::size_t i = 0; i < d.cpu_ns.size() && i < earlier.cpu_ns.size(); ++i)
    d.cpu_ns[i] = sub(cpu_ns[i], earlier.cpu_ns[i]);
  for (std::size_t i = 0; i < d.samples.size() && i < earlier.samples.size(); ++i)
    d.samples[i] = sub(samples[i], earlier.samples[i]);
  std::size_t k = 0;
  for (const Edge &e : edges) { // both sorted by (caller, callee)
    while (k < earlier.edges.size() && std::pair(earlier.edges[k].caller, earlier.edges[k].callee) <
                                           std::pair(e.caller, e.callee))
      ++k;
    Edge out = e;
    if (k < earlier.edges.size() && earlier.edges[k].caller == e.caller &&
        earlier.edges[k].callee == e.callee) {
      out.calls = sub(e.calls, earlier.edges[k].calls);
      out.call_bytes = sub(e.call_bytes, earlier.edges[k].call_bytes);
      out.reply_bytes = sub(e.reply_bytes, earlier.edges[k].reply_bytes);
    }
    if (out.calls)
      d.edges.push_back(out);
  }
  k = 0;
  for (const Remote &r : remote) {
    while (k < earlier.remote.size() && earlier.remote[k].function < r.function)
      ++k;
    Remote out = r;
    if (k < earlier.remote.size() && earlier.remote[k].function == r.function) {
      out.calls = sub(r.calls, earlier.remote[k].calls);
      out.bytes = sub(r.bytes, earlier.remote[k].bytes);
      out.round_trip_ns = sub(r.round_trip_ns, earlier.remote[k].round_trip_ns);
      out.marshal_ns = sub(r.marshal_ns, earlier.remote[k].marshal_ns);
    }
    if (out.calls)
      d.remote.push_back(out);
  }
  return d;
}

ProfileSnapshot Profiler::snapshotAt(RateCursor &cursor, double elapsed_s) {
  std::lock_guard lock(mu_);
  ProfileSnapshot snap;
  snap.elapsed_s = elapsed_s;
  snap.sample_period_s = sample_period_s_;
  snap.half_life_s = half_life_s_;
  std::vector<std::uint64_t> now = totals();
  if (cursor.last_totals.size() != now.size()) { // a fresh cursor, or a new configuration
    cursor = {};
    cursor.last_totals.assign(now.size(), 0);
    cursor.rates.assign(now.size(), 0);
  }
  const std::vector<double> &rates = cursor.rates;
  double dt = elapsed_s - cursor.last_s;
  bool had = cursor.last_s > 0;
  for (std::size_t i = 0; i < now.size(); ++i)
    cursor.rates[i] =
        decayedRate(cursor.rates[i], had, static_cast<double>(now[i] - cursor.last_totals[i]), dt,
                    half_life_s_);
  if (dt > 0) {
    cursor.last_totals = now;
    cursor.last_s = elapsed_s;
  }

  const ProfileLayout &l = layout_;
  const std::size_t nf = l.functions.size();
  std::map<std::pair<std::uint32_t, std::uint32_t>, EdgeStats> edges;
  std::vector<FunctionStats> fns(nf);
  auto add = [&](const CallSite &site, std::uint32_t caller, std::size_t at) {
    if (now[at] == 0)
      return;
    EdgeStats &e = edges[{caller, site.callee}];
    e.caller = l.functions[caller];
    e.callee = l.functions[site.callee];
    e.calls += now[at];
    e.calls_per_s += rates[at];
    // Bytes of static size are calls × size; the others were counted.
    bool fixed_call = site.call_bytes != CallSite::kVariable;
    bool fixed_reply = site.reply_bytes != CallSite::kVariable;
    e.call_bytes += fixed_call ? now[at] * site.call_bytes : now[at + 1];
    e.reply_bytes += fixed_reply ? now[at] * site.reply_bytes : now[at + 2];
    e.bytes_per_s += (fixed_call ? rates[at] * site.call_bytes : rates[at + 1]) +
                     (fixed_reply ? rates[at] * site.reply_bytes : rates[at + 2]);
    fns[site.callee].calls += now[at];
    fns[site.callee].calls_per_s += rates[at];
  };
  l.forEachSiteCounter(add);
  for (std::size_t f = 1; f < nf; ++f) {
    FunctionStats &fs = fns[f];
    fs.name = l.functions[f];
    fs.samples = now[l.samplesIndex() + nf + f];
    fs.self_cpu_s = now[l.samplesIndex() + f] / 1e9;
    fs.cpu_s_per_s = rates[l.samplesIndex() + f] / 1e9;
    snap.functions.push_back(fs);
  }
  for (auto &[key, e] : edges)
    snap.edges.push_back(std::move(e));
  for (std::size_t f = 0; f < remote_.size() && f < nf; ++f) {
    const Remote &r = remote_[f];
    if (!r.calls)
      continue;
    snap.remote.push_back({l.functions[f], r.calls, r.bytes, r.rtt_ns / 1e9, r.marshal_ns / 1e9});
  }
  return snap;
}

} // namespace distnode::profiler
