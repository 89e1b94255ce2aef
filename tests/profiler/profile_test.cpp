// profile_test.cpp - the profiler counts exactly what ran: call edges, bytes per marshaling
// kind, calls from many threads, self time, and decayed rates.
#include "jit/bitcode.h"
#include "jit/jit_session.h"
#include "jit/program_analysis.h"
#include "profiler/profiler.h"

#include "llvm/Support/Error.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <thread>

namespace distnode::profiler {
namespace {

// A fixture program compiled with profiling; its functions called from the test.
class Profiled {
public:
  explicit Profiled(const std::string &fixture) {
    auto program = jit::loadBitcode(std::string(DIST_FIXTURE_DIR) + "/fixture_" + fixture + ".bc");
    if (!program) {
      ADD_FAILURE() << llvm::toString(program.takeError());
      return;
    }
    analysis_ = jit::analyzeProgram(*program->module);
    auto session = jit::JitSession::Create(std::move(*program), analysis_, {});
    if (!session) {
      ADD_FAILURE() << llvm::toString(session.takeError());
      return;
    }
    session_ = std::move(*session);
  }

  template <typename Fn> Fn fn(const std::string &name) {
    auto addr = session_->lookup(name);
    if (!addr) {
      ADD_FAILURE() << llvm::toString(addr.takeError());
      return nullptr;
    }
    return reinterpret_cast<Fn>(*addr);
  }

  jit::JitSession &session() { return *session_; }

private:
  jit::ProgramAnalysis analysis_;
  std::unique_ptr<jit::JitSession> session_;
};

const EdgeStats *edge(const ProfileSnapshot &s, const std::string &caller,
                      const std::string &callee) {
  for (const auto &e : s.edges)
    if (e.caller == caller && e.callee == callee)
      return &e;
  return nullptr;
}

const FunctionStats *function(const ProfileSnapshot &s, const std::string &name) {
  for (const auto &f : s.functions)
    if (f.name == name)
      return &f;
  return nullptr;
}

// fib's calls to itself stay inside its placement unit: they are direct calls with no edge
// counter (there is nothing to place about them). The call from run_fib, another unit, is
// counted exactly.
TEST(Profile, RecursiveCallsInsideAUnitAreDirectAndNotCounted) {
  Profiled p("counts");
  auto run_fib = p.fn<long (*)(long)>("run_fib");
  ASSERT_NE(run_fib, nullptr);
  EXPECT_EQ(run_fib(20), 6765);
  EXPECT_EQ(run_fib(10), 55);
  ProfileSnapshot s = Profiler::instance().snapshot();
  const EdgeStats *outer = edge(s, "run_fib", "fib");
  ASSERT_NE(outer, nullptr);
  EXPECT_EQ(outer->calls, 2u);
  EXPECT_EQ(outer->call_bytes, 2u * 8) << "one long argument";
  EXPECT_EQ(edge(s, "fib", "fib"), nullptr) << "a call inside the unit is not an edge";
  EXPECT_EQ(function(s, "fib")->calls, 2u);
}

TEST(Profile, LoopCountsEveryCall) {
  Profiled p("counts");
  auto loop_f = p.fn<long (*)(long)>("loop_f");
  loop_f(1000);
  loop_f(234);
  ProfileSnapshot s = Profiler::instance().snapshot();
  const EdgeStats *e = edge(s, "loop_f", "f");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->calls, 1234u);
  EXPECT_EQ(e->call_bytes, 1234u * 8);
}

// Every remote call of the marshal fixture goes through the thunk; the bytes each call really
// marshals are summed per callee and must equal what the counters recorded at the call sites.
TEST(Profile, BytesEqualTheMarshaledBytesForEveryKind) {
  Profiled p("marshal");
  jit::JitSession &session = p.session();
  std::map<std::string, std::pair<std::uint64_t, std::uint64_t>> wire; // callee → call, reply
  session.setRemoteHandler([&](std::uint32_t id, void **slots, void *ret) {
    std::string error;
    std::size_t args = 0, reply = 0;
    if (!session.callMarshaled(id, slots, ret, error, &args, &reply))
      std::abort(); // cannot report through JIT'd frames; the test would crash visibly
    wire[session.remoteFunctions()[id].name].first += args;
    wire[session.remoteFunctions()[id].name].second += reply;
  });
  for (const auto &f : session.remoteFunctions())
    session.relink(f.id, jit::StubTarget::Remote);
  testing::internal::CaptureStdout(); // main prints its results
  p.fn<int (*)()>("main")();
  testing::internal::GetCapturedStdout();

  ProfileSnapshot s = Profiler::instance().snapshot();
  std::map<std::string, std::pair<std::uint64_t, std::uint64_t>> counted;
  for (const auto &e : s.edges) {
    counted[e.callee].first += e.call_bytes;
    counted[e.callee].second += e.reply_bytes;
  }
  // Direct calls between functions on the same side of the loopback (ping → pong) also went
  // through thunks, so every counted call is a marshaled one.
  ASSERT_FALSE(wire.empty());
  for (const auto &[name, bytes] : wire) {
    SCOPED_TRACE(name);
    EXPECT_EQ(counted[name].first, bytes.first) << "argument bytes";
    EXPECT_EQ(counted[name].second, bytes.second) << "reply bytes";
  }
  // Hand-computed cases: string_len("hello, world") + string_len(""): (1+8+12) + (1+8+0).
  EXPECT_EQ(counted["string_len"].first, 30u);
  // buffers(in, out, acc, 3) then (.., 0): in 1+8+24, out 1, acc 1+8+32, n 8 = 83; then
  // 1+8+0, 1, 1+8+32, 8 = 59. Replies: out 8+24, acc 8+32 = 72; then 8+0, 8+32 = 48.
  EXPECT_EQ(counted["buffers"].first, 83u + 59u);
  EXPECT_EQ(counted["buffers"].second, 72u + 48u);
}

TEST(Profile, CountsFromEightThreadsSumExactlyAfterTheyExit) {
  Profiled p("threads");
  testing::internal::CaptureStdout();
  int wrong = p.fn<int (*)()>("main")();
  testing::internal::GetCapturedStdout();
  EXPECT_EQ(wrong, 0);
  ProfileSnapshot s = Profiler::instance().snapshot();
  // The workers are local functions (a void * result), so their calls are charged to the
  // thread's root; each of 8 threads made 100 calls of each.
  const EdgeStats *mix = edge(s, kRootName, "mix");
  ASSERT_NE(mix, nullptr);
  EXPECT_EQ(mix->calls, 800u);
  EXPECT_EQ(mix->call_bytes, 800u * 12) << "uint64_t + uint32_t";
}

TEST(Profile, SelfTimeOfASpinningFunctionIsRoughlyRight) {
  Profiled p("counts");
  Profiler::instance().startSampling(std::chrono::milliseconds(1));
  p.fn<long (*)(long)>("spin_ms")(300);
  Profiler::instance().stopSampling();
  ProfileSnapshot s = Profiler::instance().snapshot();
  const FunctionStats *spin = function(s, "spin_ms");
  ASSERT_NE(spin, nullptr);
  EXPECT_GT(spin->samples, 0u);
  // Loose: 300 ms of CPU, sampled at the kernel's tick.
  EXPECT_GT(spin->self_cpu_s, 0.15);
  EXPECT_LT(spin->self_cpu_s, 0.6);
  EXPECT_LT(function(s, "fib")->self_cpu_s, 0.01) << "fib did not run";
}

// A small callee of another unit is inlined into its caller's loop behind the guarded call
// (profiling does not keep it out of line), and the samples that hit its inlined body are
// charged to it, not to the caller: the debug info's inlined ranges say whose code it is.
TEST(Profile, AnInlinedCalleeKeepsItsOwnCpuTime) {
  Profiled p("counts");
  jit::JitSession &session = p.session();
  std::uint32_t callee = session.profileId(session.findFunction("mix_round"));
  std::uint32_t caller = session.profileId(session.findFunction("mix_for_ms"));
  ASSERT_NE(callee, 0u);
  ASSERT_NE(caller, 0u);
  std::vector<CodeRange> ranges = Profiler::instance().codeRanges();
  auto pieces = [&](std::uint32_t id) {
    return std::count_if(ranges.begin(), ranges.end(),
                         [&](const CodeRange &r) { return r.id == id; });
  };
  // Its own body, and at least one piece inside the caller: the caller's range is cut by it.
  EXPECT_GE(pieces(callee), 2) << "mix_round was not inlined into mix_for_ms";
  EXPECT_GE(pieces(caller), 2);

  Profiler::instance().startSampling(std::chrono::milliseconds(1));
  p.fn<std::uint64_t (*)(long)>("mix_for_ms")(300);
  Profiler::instance().stopSampling();
  ProfileSnapshot s = Profiler::instance().snapshot();
  const FunctionStats *in_callee = function(s, "mix_round");
  const FunctionStats *in_caller = function(s, "mix_for_ms");
  ASSERT_NE(in_callee, nullptr);
  ASSERT_NE(in_caller, nullptr);
  // About 90% of the work is mix_round's arithmetic; charged by address without the inlined
  // ranges, all of it went to mix_for_ms.
  EXPECT_GT(in_callee->self_cpu_s, 0.1);
  EXPECT_GT(in_callee->self_cpu_s, 2 * in_caller->self_cpu_s)
      << "mix_round " << in_callee->self_cpu_s << " s, mix_for_ms " << in_caller->self_cpu_s
      << " s";
}

// Nested ranges (a body inlined into another, itself inlined) become disjoint pieces, each
// charged to the innermost range that holds it.
TEST(InnermostRanges, CutOuterRangesAroundInnerOnes) {
  std::vector<CodeRange> pieces = innermostRanges({
      {100, 200, 1}, // a function
      {120, 160, 2}, // a body inlined into it
      {130, 140, 3}, // and one inlined into that
      {170, 180, 2}, // the first body inlined again
      {300, 310, 4}, // another function
      {300, 305, 5}, // starting with an inlined body
      {150, 150, 6}, // empty: ignored
  });
  std::vector<CodeRange> expected = {{100, 120, 1}, {120, 130, 2}, {130, 140, 3},
                                     {140, 160, 2}, {160, 170, 1}, {170, 180, 2},
                                     {180, 200, 1}, {300, 305, 5}, {305, 310, 4}};
  ASSERT_EQ(pieces.size(), expected.size());
  for (std::size_t i = 0; i < pieces.size(); ++i) {
    EXPECT_EQ(pieces[i].start, expected[i].start) << i;
    EXPECT_EQ(pieces[i].end, expected[i].end) << i;
    EXPECT_EQ(pieces[i].id, expected[i].id) << i;
  }
  // Adjacent pieces of one function are merged; a range that overlaps its outer one without
  // being inside it is cut at the outer one's end.
  pieces = innermostRanges({{0, 10, 1}, {10, 20, 1}});
  ASSERT_EQ(pieces.size(), 1u);
  EXPECT_EQ(pieces[0].end, 20u);
  // Of two equal ranges the later is the inner one (a body inlined as a whole function).
  pieces = innermostRanges({{0, 10, 1}, {0, 10, 2}});
  ASSERT_EQ(pieces.size(), 1u);
  EXPECT_EQ(pieces[0].id, 2u);
  pieces = innermostRanges({{0, 10, 1}, {5, 30, 2}, {10, 20, 1}});
  ASSERT_EQ(pieces.size(), 3u);
  EXPECT_EQ(pieces[1].start, 5u);
  EXPECT_EQ(pieces[1].end, 10u);
  EXPECT_EQ(pieces[1].id, 2u);
  EXPECT_EQ(pieces[2].start, 10u);
  EXPECT_EQ(pieces[2].end, 20u);
}

TEST(Profile, RatesDecayWithTheHalfLife) {
  Profiled p("counts");
  Profiler &prof = Profiler::instance();
  prof.setHalfLife(std::chrono::seconds(1));
  auto loop_f = p.fn<long (*)(long)>("loop_f");
  loop_f(1000);
  RateCursor cursor;
  ProfileSnapshot first = prof.snapshotAt(cursor, 1.0);
  EXPECT_DOUBLE_EQ(edge(first, "loop_f", "f")->calls_per_s, 1000.0) << "first interval: plain";
  ProfileSnapshot idle = prof.snapshotAt(cursor, 2.0);
  EXPECT_DOUBLE_EQ(edge(idle, "loop_f", "f")->calls_per_s, 500.0) << "one half-life, no calls";
  loop_f(3000);
  ProfileSnapshot busy = prof.snapshotAt(cursor, 3.0);
  EXPECT_DOUBLE_EQ(edge(busy, "loop_f", "f")->calls_per_s, 250.0 + 1500.0);
  EXPECT_EQ(edge(busy, "loop_f", "f")->calls, 4000u) << "totals are cumulative";
  prof.setHalfLife(std::chrono::seconds(10));
}

TEST(Profile, ReadersKeepTheirOwnRates) {
  Profiled p("counts");
  Profiler &prof = Profiler::instance();
  prof.setHalfLife(std::chrono::seconds(1));
  auto loop_f = p.fn<long (*)(long)>("loop_f");
  loop_f(1000);
  RateCursor a, b;
  EXPECT_DOUBLE_EQ(edge(prof.snapshotAt(a, 1.0), "loop_f", "f")->calls_per_s, 1000.0);
  EXPECT_DOUBLE_EQ(edge(prof.snapshotAt(a, 2.0), "loop_f", "f")->calls_per_s, 500.0);
  EXPECT_DOUBLE_EQ(edge(prof.snapshotAt(b, 2.0), "loop_f", "f")->calls_per_s, 500.0)
      << "b's first reading: the plain rate over 2 s, whatever a read";
  (void)prof.snapshot(); // a reader without a cursor
  EXPECT_DOUBLE_EQ(edge(prof.snapshotAt(a, 3.0), "loop_f", "f")->calls_per_s, 250.0)
      << "b's and the cursor-less readings did not advance a";
  prof.setHalfLife(std::chrono::seconds(10));
}

// A frame that never returns still shows its calls once a flush was requested: the counts
// reach the node's totals within one flush period.
TEST(Profile, CountsOfALiveFrameArriveAfterAFlushRequest) {
  Profiled p("counts");
  auto loop = p.fn<long (*)()>("loop_f_until_stopped");
  auto *progress = p.fn<volatile long *>("progress");
  auto *stop = p.fn<volatile int *>("stop_loop");
  ASSERT_TRUE(loop && progress && stop);
  *stop = 0;
  std::thread runner([&] { loop(); });
  auto waitFor = [&](long at_least) {
    while (*progress < at_least)
      std::this_thread::yield();
  };
  waitFor(5000);
  auto calls = [](const ProfileCounts &c) -> std::uint64_t {
    std::uint64_t n = 0;
    for (const auto &e : c.edges)
      if (e.callee != 0 && Profiler::instance().layout().functions[e.callee] == "f")
        n += e.calls;
    return n;
  };
  EXPECT_EQ(calls(Profiler::instance().counts()), 0u) << "nothing flushed yet: no request";
  Profiler::requestFlush();
  long asked_at = *progress;
  waitFor(asked_at + 2); // the next call after the request flushed the frame
  std::uint64_t seen = calls(Profiler::instance().counts());
  EXPECT_GE(seen, static_cast<std::uint64_t>(asked_at));
  EXPECT_LE(seen, static_cast<std::uint64_t>(*progress + 1));
  *stop = 1;
  runner.join();
  EXPECT_EQ(calls(Profiler::instance().counts()), static_cast<std::uint64_t>(*progress))
      << "exact once the frame returned";
}

TEST(ProfileCounts, MinusGivesWhatHappenedBetween) {
  ProfileCounts before, after;
  before.elapsed_s = 1;
  before.cpu_ns = {0, 100, 50};
  before.samples = {0, 1, 1};
  before.edges = {{0, 1, 10, 80, 80}, {1, 2, 5, 40, 40}};
  before.remote = {{2, 5, 80, 5000, 100}};
  after = before;
  after.elapsed_s = 3;
  after.cpu_ns = {0, 300, 50};
  after.samples = {0, 3, 1};
  after.edges = {{0, 1, 10, 80, 80}, {1, 2, 9, 72, 72}, {2, 1, 1, 8, 8}};
  after.remote = {{1, 1, 16, 900, 10}, {2, 7, 112, 7000, 140}};
  ProfileCounts d = after.minus(before);
  EXPECT_DOUBLE_EQ(d.elapsed_s, 2);
  EXPECT_EQ(d.cpu_ns, (std::vector<std::uint64_t>{0, 200, 0}));
  EXPECT_EQ(d.samples, (std::vector<std::uint64_t>{0, 2, 0}));
  ASSERT_EQ(d.edges.size(), 2u) << "the edge without new calls is left out";
  EXPECT_EQ(d.edges[0].caller, 1u);
  EXPECT_EQ(d.edges[0].calls, 4u);
  EXPECT_EQ(d.edges[0].call_bytes, 32u);
  EXPECT_EQ(d.edges[1].caller, 2u);
  EXPECT_EQ(d.edges[1].calls, 1u);
  ASSERT_EQ(d.remote.size(), 2u);
  EXPECT_EQ(d.remote[0].calls, 1u) << "new";
  EXPECT_EQ(d.remote[1].calls, 2u);
  EXPECT_EQ(d.remote[1].round_trip_ns, 2000u);
}

TEST(DecayedRate, FollowsTheFormula) {
  EXPECT_DOUBLE_EQ(decayedRate(0, false, 50, 2.0, 1.0), 25.0);
  EXPECT_DOUBLE_EQ(decayedRate(100, true, 0, 1.0, 1.0), 50.0);
  EXPECT_DOUBLE_EQ(decayedRate(100, true, 100, 1.0, 1.0), 100.0) << "steady rate stays";
  EXPECT_DOUBLE_EQ(decayedRate(7, true, 5, 0.0, 1.0), 7.0) << "no time passed";
}

TEST(ProfileLayout, CountersOfDynamicSitesFollowTheFixedOnes) {
  ProfileLayout l;
  l.functions = {kRootName, "a", "b"};
  l.sites = {{1, 2}, {2, 1}, {CallSite::kDynamicCaller, 2}};
  EXPECT_EQ(l.staticSites(), 2u);
  EXPECT_EQ(l.counterIndex(1), 3u);
  EXPECT_EQ(l.counterIndex(2, 0), 6u);
  EXPECT_EQ(l.counterIndex(2, 2), 12u);
  EXPECT_EQ(l.samplesIndex(), 15u);
  EXPECT_EQ(l.blockSize(), 21u) << "CPU time and sample count per function";
}

} // namespace
} // namespace distnode::profiler
