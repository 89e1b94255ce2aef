// relink_test.cpp - stubs switch between a function's body and its remote thunk at any time,
// from any thread, while calls run through them.
#include "jit/bitcode.h"
#include "jit/jit_session.h"
#include "jit/program_analysis.h"

#include "llvm/Support/Error.h"

#include <gtest/gtest.h>

#include <atomic>
#include <latch>
#include <thread>

namespace distnode::jit {
namespace {

std::uint64_t expectedChain(std::uint64_t x, std::uint32_t calls) {
  for (std::uint32_t c = 0; c < calls; ++c)
    for (int i = 0; i < 3; ++i)
      x = x * 6364136223846793005ULL + 1442695040888963407ULL;
  return x;
}

// A session of fixture `name` (analysed into `analysis`) whose "remote" side marshals every
// call through a thunk, serves it through the dispatcher and unmarshals the reply, as between
// nodes, and counts it in `calls`; null (with a failure) if it cannot be made.
std::unique_ptr<JitSession> countingSession(const std::string &name, ProgramAnalysis &analysis,
                                            std::atomic<long> &calls) {
  auto program = loadBitcode(std::string(DIST_FIXTURE_DIR) + "/fixture_" + name + ".bc");
  if (!program) {
    ADD_FAILURE() << llvm::toString(program.takeError());
    return nullptr;
  }
  analysis = analyzeProgram(*program->module);
  auto created = JitSession::Create(std::move(*program), analysis, {});
  if (!created) {
    ADD_FAILURE() << llvm::toString(created.takeError());
    return nullptr;
  }
  JitSession *session = created->get();
  session->setRemoteHandler([session, &calls](std::uint32_t id, void **slots, void *ret) {
    std::string error;
    if (!session->callMarshaled(id, slots, ret, error))
      std::abort(); // cannot report through JIT'd frames; the test would crash visibly
    ++calls;
  });
  return std::move(*created);
}

TEST(Relink, SwitchingStubsWhileCallsRunKeepsEveryResultExact) {
  ProgramAnalysis analysis;
  std::atomic<long> remote_calls{0};
  auto created = countingSession("relink", analysis, remote_calls);
  ASSERT_TRUE(created);
  JitSession &session = *created;
  int step = session.findFunction("step");
  ASSERT_GE(step, 0) << "step must be remotable";
  auto lookup = session.lookup("chain");
  ASSERT_TRUE(bool(lookup)) << llvm::toString(lookup.takeError());
  auto chain = reinterpret_cast<std::uint64_t (*)(std::uint64_t, std::uint32_t)>(*lookup);

  // Every caller makes its first call through the thunk, then the switcher starts flipping.
  session.relink(step, StubTarget::Remote);
  std::atomic<bool> done{false};
  std::atomic<int> wrong{0};
  std::latch first_calls_made(3);
  std::vector<std::thread> callers;
  for (int t = 0; t < 3; ++t)
    callers.emplace_back([&, t] {
      for (std::uint64_t seed = 1; seed <= 300; ++seed) {
        if (chain(seed * 7 + t, 50) != expectedChain(seed * 7 + t, 50))
          ++wrong;
        if (seed == 1)
          first_calls_made.count_down();
      }
    });
  std::thread switcher([&] {
    first_calls_made.wait();
    for (int k = 0; !done.load(); ++k)
      session.relink(step, k % 2 ? StubTarget::Remote : StubTarget::Local);
  });
  for (auto &c : callers)
    c.join();
  done = true;
  switcher.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_GT(remote_calls.load(), 0) << "some calls must have gone through the thunk";
  session.relink(step, StubTarget::Local);
  EXPECT_EQ(session.linkedTo(step), StubTarget::Local);
  long before = remote_calls.load();
  EXPECT_EQ(chain(5, 10), expectedChain(5, 10));
  EXPECT_EQ(remote_calls.load(), before) << "linked to the body: no thunk calls";
}

// A function's calls to itself stay in its placement unit: they call its body directly, not
// through its stub. With fib's stub pointed at the thunk, only the call from run_fib (another
// unit) goes through it.
TEST(Relink, CallsInsideAUnitDoNotGoThroughTheStub) {
  ProgramAnalysis analysis;
  std::atomic<long> through_stub{0};
  auto created = countingSession("counts", analysis, through_stub);
  ASSERT_TRUE(created);
  JitSession &session = *created;
  ASSERT_NE(analysis.find("fib")->unit, analysis.find("run_fib")->unit);
  int fib = session.findFunction("fib");
  ASSERT_GE(fib, 0);
  session.relink(static_cast<std::uint32_t>(fib), StubTarget::Remote);
  auto lookup = session.lookup("run_fib");
  ASSERT_TRUE(bool(lookup)) << llvm::toString(lookup.takeError());
  auto run_fib = reinterpret_cast<long (*)(long)>(*lookup);
  EXPECT_EQ(run_fib(20), 6765);
  EXPECT_EQ(through_stub.load(), 1) << "fib(20) makes 21890 calls; 21889 are fib's own";
}

// chain calls step (another unit) through a guarded call: straight to step's body (inlinable)
// while step's stub points here, and through the stub from the first call after relink()
// pointed it elsewhere; the compiled code stays as it is.
TEST(Relink, GuardedCallTakesTheStubFromTheNextCallAfterARelink) {
  ProgramAnalysis analysis;
  std::atomic<long> through_stub{0};
  auto created = countingSession("relink", analysis, through_stub);
  ASSERT_TRUE(created);
  JitSession &session = *created;
  ASSERT_NE(analysis.find("step")->unit, analysis.find("chain")->unit);
  auto step = static_cast<std::uint32_t>(session.findFunction("step"));
  auto lookup = session.lookup("chain");
  ASSERT_TRUE(bool(lookup)) << llvm::toString(lookup.takeError());
  auto chain = reinterpret_cast<std::uint64_t (*)(std::uint64_t, std::uint32_t)>(*lookup);

  EXPECT_EQ(chain(5, 50), expectedChain(5, 50));
  EXPECT_EQ(through_stub.load(), 0) << "step runs here: no call takes the stub";
  session.relink(step, StubTarget::Remote);
  EXPECT_EQ(chain(6, 50), expectedChain(6, 50));
  EXPECT_EQ(through_stub.load(), 50) << "every call after the relink takes the stub";
  session.relink(step, StubTarget::Local);
  EXPECT_EQ(chain(7, 50), expectedChain(7, 50));
  EXPECT_EQ(through_stub.load(), 50);
}

} // namespace
} // namespace distnode::jit
