// unit_gate_test.cpp - the gates of migratable units: a closed gate holds new calls back, the
// drain waits for calls inside the unit, nested calls of a call in progress pass; and a unit's
// state read on one session and written into another.
#include "jit/bitcode.h"
#include "jit/jit_session.h"
#include "jit/program_analysis.h"
#include "jit/unit_gate.h"

#include "llvm/Support/Error.h"

#include <gtest/gtest.h>

#include <future>
#include <thread>

namespace distnode::jit {
namespace {

using namespace std::chrono_literals;

// A call of `unit` running on a thread of its own until leave(): constructed once it entered.
class CallInside {
public:
  CallInside(UnitGates &g, std::uint32_t unit)
      : thread_([this, &g, unit] {
          ASSERT_TRUE(g.tryEnter(unit));
          inside_.set_value();
          leave_.get_future().wait();
          g.exit(unit);
        }) {
    inside_.get_future().wait();
  }
  ~CallInside() { leave(); }
  // The call returns; waits for it.
  void leave() {
    if (!thread_.joinable())
      return;
    leave_.set_value();
    thread_.join();
  }

private:
  std::promise<void> inside_, leave_;
  std::thread thread_;
};

TEST(UnitGate, UngatedUnitsAlwaysEnter) {
  UnitGates g({false, true});
  EXPECT_TRUE(g.tryEnter(0));
  EXPECT_TRUE(g.closeAndDrain(0, 0ms)) << "nothing to drain";
  EXPECT_TRUE(g.tryEnter(0)) << "an ungated unit has no gate to close";
  EXPECT_EQ(g.active(0), 0);
}

TEST(UnitGate, DrainWaitsForTheCallInsideAndHoldsNewOnesBack) {
  UnitGates g({true});
  CallInside call(g, 0);
  EXPECT_EQ(g.active(0), 1);
  auto drained = std::async(std::launch::async, [&] { return g.closeAndDrain(0, 60s); });
  // The drain has closed the gate once a new call is turned back.
  std::promise<bool> entered;
  std::thread late([&] {
    while (!g.closed(0))
      std::this_thread::yield();
    entered.set_value(g.tryEnter(0));
  });
  EXPECT_FALSE(entered.get_future().get()) << "a new call waits while the unit drains";
  EXPECT_EQ(drained.wait_for(0ms), std::future_status::timeout) << "a call is still inside";
  call.leave();
  EXPECT_TRUE(drained.get());
  EXPECT_EQ(g.active(0), 0);
  late.join();

  std::promise<void> waiting;
  std::thread waiter([&] {
    waiting.set_value();
    g.waitOpen(0);
    EXPECT_TRUE(g.tryEnter(0));
    g.exit(0);
  });
  waiting.get_future().wait();
  g.open(0);
  waiter.join();
  EXPECT_FALSE(g.closed(0));
}

TEST(UnitGate, NestedCallsOfACallInProgressPassAClosedGate) {
  UnitGates g({true});
  ASSERT_TRUE(g.tryEnter(0)); // this thread is inside the unit
  auto drained = std::async(std::launch::async, [&] {
    bool ok = g.closeAndDrain(0, 60s);
    return ok;
  });
  while (!g.closed(0))
    std::this_thread::yield();
  EXPECT_TRUE(g.insideOnThisThread(0));
  EXPECT_TRUE(g.tryEnter(0)) << "recursion into the unit belongs to the call in progress";
  g.exit(0);
  g.exit(0);
  EXPECT_TRUE(drained.get());
  g.open(0);
}

// A call that reached the unit's code through a stale stub or table after the unit left this
// node turns back, even with the gate open again: the state it would use has left.
TEST(UnitGate, CallsTurnBackWhereTheUnitIsNoLongerOwned) {
  UnitGates g({true});
  ASSERT_TRUE(g.closeAndDrain(0, 1s));
  g.setOwned(0, false); // the placement that moves it away, applied here
  g.open(0);
  EXPECT_FALSE(g.tryEnter(0));
  EXPECT_EQ(g.active(0), 0);
  g.setOwned(0, true); // it came back
  EXPECT_TRUE(g.tryEnter(0));
  g.setOwned(0, false);
  EXPECT_TRUE(g.tryEnter(0)) << "a nested call of the call in progress still runs";
  g.exit(0);
  g.exit(0);
}

TEST(UnitGate, DrainThatTimesOutReopensTheGate) {
  UnitGates g({true});
  CallInside call(g, 0);
  EXPECT_FALSE(g.closeAndDrain(0, 20ms));
  EXPECT_FALSE(g.closed(0)) << "the unit stays where it is, open";
  call.leave();
}

std::unique_ptr<JitSession> session(ProgramAnalysis &analysis) {
  auto program = loadBitcode(std::string(DIST_FIXTURE_DIR) + "/fixture_state.bc");
  if (!program) {
    ADD_FAILURE() << llvm::toString(program.takeError());
    return nullptr;
  }
  analysis = analyzeProgram(*program->module);
  auto s = JitSession::Create(std::move(*program), analysis, {});
  if (!s) {
    ADD_FAILURE() << llvm::toString(s.takeError());
    return nullptr;
  }
  return std::move(*s);
}

TEST(UnitState, StateReadOnOneNodeContinuesOnAnother) {
  ProgramAnalysis a1, a2;
  auto one = session(a1);
  auto two = session(a2);
  ASSERT_TRUE(one && two);
  std::uint32_t unit = static_cast<std::uint32_t>(a1.find("bump")->unit);
  auto bump1 = reinterpret_cast<std::uint64_t (*)(std::uint64_t)>(*one->lookup("bump"));
  auto bump2 = reinterpret_cast<std::uint64_t (*)(std::uint64_t)>(*two->lookup("bump"));
  EXPECT_EQ(bump1(5), 5u);
  EXPECT_EQ(bump1(7), 12u);
  std::vector<std::uint8_t> state = one->readState(unit);
  ASSERT_EQ(state.size(), 24u);
  EXPECT_EQ(two->writeState(unit, state.data(), state.size()), std::nullopt);
  EXPECT_EQ(bump2(1), 13u) << "the counter went on from where the other session left it";
  EXPECT_EQ(two->writeState(unit, state.data(), 3).value_or(""),
            "the state of unit " + std::to_string(unit) + " is 24 bytes, not 3");
  std::uint32_t pointer_unit = static_cast<std::uint32_t>(a1.find("push")->unit);
  EXPECT_EQ(two->writeState(pointer_unit, state.data(), state.size()).value_or(""),
            "unit " + std::to_string(pointer_unit) + " has no state that can migrate");
  EXPECT_TRUE(one->gates().gated(unit));
  EXPECT_FALSE(one->gates().gated(pointer_unit));
}

// A local call through the stub enters by the unit's gate: with the gate closed it goes to the
// remote handler instead of the body.
TEST(UnitState, ClosedGateSendsLocalCallsToTheRuntime) {
  ProgramAnalysis a;
  auto s = session(a);
  ASSERT_TRUE(s);
  std::uint32_t unit = static_cast<std::uint32_t>(a.find("bump")->unit);
  int rerouted = 0;
  s->setRemoteHandler([&](std::uint32_t id, void **slots, void *ret) {
    ++rerouted;
    s->gates().open(unit); // as the migration would, once the placement switched
    ASSERT_TRUE(s->gates().tryEnter(unit));
    s->callLocal(id, slots, ret);
    s->gates().exit(unit);
  });
  auto bump = reinterpret_cast<std::uint64_t (*)(std::uint64_t)>(*s->lookup("bump"));
  EXPECT_EQ(bump(2), 2u);
  EXPECT_EQ(rerouted, 0);
  ASSERT_TRUE(s->gates().closeAndDrain(unit, 1s));
  EXPECT_EQ(bump(3), 5u);
  EXPECT_EQ(rerouted, 1);
  EXPECT_EQ(s->gates().active(unit), 0);
}

// bump_twice (another unit) calls bump through guarded calls, which may inline bump's gated
// body: with bump's gate closed, or with its stub pointed away once its state left, both calls
// go to the runtime; no inlined body runs against state that is not here.
TEST(UnitState, GuardedCallsFromAnotherUnitGoWhereTheStateIs) {
  ProgramAnalysis a;
  auto s = session(a);
  ASSERT_TRUE(s);
  ASSERT_NE(a.find("bump_twice")->unit, a.find("bump")->unit);
  std::uint32_t unit = static_cast<std::uint32_t>(a.find("bump")->unit);
  auto bump_id = static_cast<std::uint32_t>(s->findFunction("bump"));
  int rerouted = 0;
  s->setRemoteHandler([&](std::uint32_t id, void **slots, void *ret) {
    ++rerouted; // runs the call here, as the owner would
    s->gates().open(unit);
    s->gates().setOwned(unit, true);
    ASSERT_TRUE(s->gates().tryEnter(unit));
    s->callLocal(id, slots, ret);
    s->gates().exit(unit);
  });
  auto twice = reinterpret_cast<std::uint64_t (*)(std::uint64_t)>(*s->lookup("bump_twice"));
  EXPECT_EQ(twice(1), 1u + 3u); // counter 1, then 3
  EXPECT_EQ(rerouted, 0);
  ASSERT_TRUE(s->gates().closeAndDrain(unit, 1s));
  EXPECT_EQ(twice(1), 4u + 6u);
  EXPECT_EQ(rerouted, 1) << "the first call finds the gate closed; the handler reopened it";
  // The state left: the stub points away and this node no longer owns the unit.
  s->gates().setOwned(unit, false);
  s->relink(bump_id, StubTarget::Remote);
  rerouted = 0;
  EXPECT_EQ(twice(1), 7u + 9u);
  EXPECT_EQ(rerouted, 2) << "both calls take the stub";
  s->relink(bump_id, StubTarget::Local);
  EXPECT_EQ(twice(1), 10u + 12u);
  EXPECT_EQ(rerouted, 2) << "linked here again: no call leaves";
}

} // namespace
} // namespace distnode::jit
