// heuristic_test.cpp - the placement heuristic: constraints, a hand-computed optimum, the
// cases the cost model must get right, stability, and replica sets.
#include "heuristic/cost_model.h"
#include "heuristic/exact_solver.h"
#include "heuristic/partitioner.h"
#include "heuristic/planner.h"
#include "tests/heuristic/random_problems.h"

#include <gtest/gtest.h>

namespace distnode::heuristic {
namespace {

// One node per capacity, linked by 100 µs latency and 100 MB/s, free marshaling: a cut edge costs
// 200 µs per call (both ways) plus 10 ns per byte.
Problem withNodes(std::vector<double> capacities) {
  std::vector<Node> nodes;
  for (std::size_t i = 0; i < capacities.size(); ++i)
    nodes.push_back({"n" + std::to_string(i), capacities[i]});
  Problem p = Problem::uniform(nodes, {100e-6, 1e8});
  p.call_costs = {0, 0, 0, 0};
  return p;
}

int addUnit(Problem &p, const std::string &name, double load, int pinned = -1) {
  p.units.push_back({name, load, pinned, false, 0});
  return static_cast<int>(p.units.size()) - 1;
}

TEST(CostModel, CutEdgeCostsCallsAndBytesBothWays) {
  Problem p = withNodes({1, 1, 1});
  addUnit(p, "a", 0);
  addUnit(p, "b", 0);
  p.edges = {{0, 1, 10, 1000, 500}};
  CostModel m(p);
  EXPECT_DOUBLE_EQ(m.evaluate({0, 0}).communication, 0);
  EXPECT_NEAR(m.evaluate({0, 1}).communication, 10 * 200e-6 + 1500 * 1e-8, 1e-15);
}

// 3 nodes, 6 units, worked out by hand: A is pinned to n0; A–B, B–C and D–E call each other
// 100 times a second, C–D and E–F once. {A,B,C} fills n0 (load 2.0 of 2.0), {D,E} fills n1
// (1.5 of 1.5), F fills n2 (1.0 of 1.0). Only the two 1-call/s edges are cut: 2 · 200 µs.
TEST(Partitioner, HandComputedExampleIsOptimal) {
  Problem p = withNodes({2.0, 1.5, 1.0});
  addUnit(p, "A", 0.5, 0);
  addUnit(p, "B", 1.0);
  addUnit(p, "C", 0.5);
  addUnit(p, "D", 1.0);
  addUnit(p, "E", 0.5);
  addUnit(p, "F", 1.0);
  p.edges = {
      {0, 1, 100, 0, 0}, {1, 2, 100, 0, 0}, {2, 3, 1, 0, 0}, {3, 4, 100, 0, 0}, {4, 5, 1, 0, 0}};
  p.current = {0, 0, 0, 0, 0, 0}; // everything on n0: 4.5 CPU on 2.0
  CostModel m(p);
  Placement got = partition(m);
  EXPECT_EQ(got, (Placement{0, 0, 0, 1, 1, 2}));
  CostBreakdown c = m.evaluate(got);
  EXPECT_NEAR(c.communication, 2 * 200e-6, 1e-15);
  EXPECT_DOUBLE_EQ(c.overload, 0);
  EXPECT_DOUBLE_EQ(c.migration, 0) << "stateless units move for free";
  auto exact = exactPlacement(m);
  ASSERT_TRUE(exact.has_value());
  EXPECT_EQ(*exact, got);

  Planner planner;
  Plan plan = planner.plan(p, 0);
  ASSERT_TRUE(plan.accepted) << plan.reason;
  ASSERT_EQ(plan.moves.size(), 3u);
  EXPECT_EQ(plan.moves[0].explanation, "moved `D` n0→n1: relieves the overload of n0 (1.00 CPU "
                                       "s/s moved)");
}

TEST(Partitioner, EverythingFitsAndLinksAreSlowNothingIsCut) {
  Problem p = withNodes({10, 10, 10});
  for (auto &row : p.links)
    for (auto &l : row)
      l = {10e-3, 1e6};
  addUnit(p, "main", 0.1, 1);
  for (int i = 0; i < 7; ++i)
    addUnit(p, "u" + std::to_string(i), 0.5);
  for (int i = 0; i < 7; ++i)
    p.edges.push_back({i, i + 1, 5.0 + i, 100, 100});
  p.current.assign(p.units.size(), 0);
  CostModel m(p);
  Placement got = partition(m);
  for (std::size_t u = 0; u < got.size(); ++u)
    EXPECT_EQ(got[u], 1) << p.units[u].name << " follows the pinned main: no cut edge";
  EXPECT_DOUBLE_EQ(m.evaluate(got).communication, 0);
}

TEST(Partitioner, OverloadMovesTheUnitWithTheCheapestCut) {
  Problem p = withNodes({1.0, 10.0});
  addUnit(p, "entry", 0.2, 0);
  addUnit(p, "chatty", 0.5); // 1000 calls/s with entry
  addUnit(p, "quiet", 0.5);  // 10 calls/s with entry
  p.edges = {{0, 1, 1000, 0, 0}, {0, 2, 10, 0, 0}};
  p.current = {0, 0, 0};
  CostModel m(p);
  Placement got = partition(m);
  EXPECT_EQ(got, (Placement{0, 0, 1})) << "quiet leaves: its cut costs 100x less";
  EXPECT_DOUBLE_EQ(m.evaluate(got).overload, 0);
}

TEST(Partitioner, RespectsPinsOnRandomProblems) {
  for (unsigned seed = 1; seed <= 50; ++seed) {
    SCOPED_TRACE(seed);
    Problem p = randomProblem(seed, 40, 3);
    CostModel m(p);
    Placement got = partition(m);
    for (std::size_t u = 0; u < p.units.size(); ++u)
      if (p.units[u].pinned_node >= 0) {
        EXPECT_EQ(got[u], p.units[u].pinned_node) << p.units[u].name;
      }
  }
}

TEST(Partitioner, AvoidsOverloadWhereverTheOptimumDoes) {
  for (unsigned seed = 1; seed <= 40; ++seed) {
    SCOPED_TRACE(seed);
    Problem p = randomProblem(seed, 10, 3);
    CostModel m(p);
    Placement got = partition(m);
    auto best = exactPlacement(m, m.evaluate(got).total());
    ASSERT_TRUE(best.has_value());
    if (m.evaluate(*best).overload == 0) {
      EXPECT_EQ(m.evaluate(got).overload, 0) << "capacity is respected where feasible";
    }
    EXPECT_LE(m.evaluate(*best).total(), m.evaluate(got).total() + 1e-12);
  }
}

TEST(Partitioner, IsDeterministic) {
  Problem p = randomProblem(7, 300, 4);
  CostModel m(p);
  EXPECT_EQ(partition(m), partition(m));
  Planner a, b;
  EXPECT_EQ(a.plan(p, 0).placement, b.plan(p, 0).placement);
}

TEST(Planner, UnchangedProfileNeverMovesAnything) {
  Problem p = randomProblem(11, 30, 3);
  Planner planner;
  Plan first = planner.plan(p, 0);
  p.current = first.placement;
  for (int round = 1; round <= 5; ++round) {
    Plan again = planner.plan(p, 1000.0 * round); // long after any cool-down
    EXPECT_TRUE(again.moves.empty()) << again.reason;
    EXPECT_EQ(again.placement, p.current);
  }
}

// Two phases whose best placements differ: in phase 0 worker talks to main more than to
// store, in phase 1 the other way round; `calls` is the busier edge's calls per second, the
// other has `other`.
std::vector<Problem> twoPhases(double calls, double other = 100) {
  std::vector<Problem> phase(2);
  for (int k = 0; k < 2; ++k) {
    phase[k] = withNodes({4, 4});
    addUnit(phase[k], "main", 0.1, 0);
    addUnit(phase[k], "worker", 0.5);
    addUnit(phase[k], "store", 0.5, 1);
    phase[k].edges = {{0, 1, k == 0 ? calls : other, 0, 0}, {1, 2, k == 0 ? other : calls, 0, 0}};
  }
  return phase;
}

// Runs 18 rounds 10 s apart, the phases alternating every round, and returns when `worker`
// moved.
std::vector<double> workerMoves(const std::vector<Problem> &phase, const PlannerOptions &options) {
  Planner planner(options);
  Placement current = {0, 0, 1};
  std::vector<double> moved_at;
  for (int round = 0; round < 18; ++round) {
    Problem p = phase[round % 2];
    p.current = current;
    Plan plan = planner.plan(p, round * 10.0);
    for (const Move &mv : plan.moves)
      if (mv.unit == 1)
        moved_at.push_back(round * 10.0);
    current = plan.placement;
  }
  return moved_at;
}

// Phases faster than the 60 s cool-down whose moves save 23% of the cost each (130 calls/s cut
// instead of 100): a unit may move at most once per cool-down, so it does not follow them.
TEST(Planner, PhasesFasterThanTheCoolDownDoNotOscillate) {
  PlannerOptions options;
  options.cooldown_s = 60;
  std::vector<double> moved_at = workerMoves(twoPhases(130), options);
  for (std::size_t i = 1; i < moved_at.size(); ++i)
    EXPECT_GE(moved_at[i] - moved_at[i - 1], options.cooldown_s)
        << "worker moved twice within the cool-down";
  EXPECT_LE(moved_at.size(), 3u) << "180 s of 10 s phases: at most once a minute";
}

// When a move saves most of the cost (here 80%: 500 calls/s cut instead of 100) the workload
// changed: the unit follows the next phase change in spite of its cool-down, but only once
// per cool-down, so phases that change every round cannot make it flap. With the override off
// it moves once per cool-down.
TEST(Planner, PhaseChangesThatSaveMostOfTheCostOverrideTheCoolDown) {
  PlannerOptions options;
  options.cooldown_s = 60;
  std::vector<double> moved_at = workerMoves(twoPhases(500), options);
  ASSERT_GE(moved_at.size(), 2u);
  EXPECT_EQ(moved_at[0], 10) << "the first phase change";
  EXPECT_EQ(moved_at[1], 20) << "the next one, within the cool-down";
  for (std::size_t i = 2; i < moved_at.size(); ++i)
    EXPECT_GE(moved_at[i] - moved_at[i - 2], options.cooldown_s)
        << "at most two moves (one of them an override) per cool-down";
  EXPECT_GE(moved_at.size(), 5u) << "170 s of phase changes: about two moves a minute";
  EXPECT_LE(workerMoves(twoPhases(50, 10), options).size(), 3u)
      << "80% of 10 ms/s: below the floor of 50 ms/s, the cool-down holds";
  options.cooldown_override = 1;
  EXPECT_LE(workerMoves(twoPhases(500), options).size(), 3u);

  // The plan says so, and on the same rates nothing moves back.
  std::vector<Problem> phase = twoPhases(500);
  Planner planner(PlannerOptions{.cooldown_s = 60});
  phase[0].current = {0, 1, 1};
  Plan first = planner.plan(phase[0], 0);
  ASSERT_EQ(first.moves.size(), 1u);
  EXPECT_FALSE(first.cooldown_overridden) << "nothing was in its cool-down";
  phase[1].current = first.placement;
  Plan second = planner.plan(phase[1], 10);
  ASSERT_EQ(second.moves.size(), 1u);
  EXPECT_TRUE(second.cooldown_overridden);
  EXPECT_NE(second.reason.find("cool-down may move"), std::string::npos) << second.reason;
  for (double t = 20; t < 100; t += 10) {
    Problem same = phase[1];
    same.current = second.placement;
    EXPECT_TRUE(planner.plan(same, t).moves.empty()) << "at " << t << " s";
  }
}

// The cool-down gives way only to what freeing the units in it adds: here the plan without
// them already saves 86% of the cost (w2 joins main), and moving w1 too would add 14%.
TEST(Planner, TheOverrideCountsOnlyWhatTheUnitsInTheirCoolDownAdd) {
  Problem p = withNodes({4, 4});
  addUnit(p, "main", 0.1, 0);
  addUnit(p, "w1", 0.1);
  addUnit(p, "w2", 0.1);
  addUnit(p, "store", 0.1, 1);
  p.edges = {{1, 3, 500, 0, 0}}; // w1 talks to store: it moves to n1
  p.current = {0, 0, 1, 1};
  PlannerOptions options;
  options.cooldown_s = 60;
  Planner planner(options);
  Plan first = planner.plan(p, 0);
  ASSERT_EQ(first.placement[1], 1) << first.reason;
  p.edges = {{0, 1, 100, 0, 0}, {0, 2, 600, 0, 0}};
  p.current = first.placement;
  Plan second = planner.plan(p, 10);
  ASSERT_TRUE(second.accepted) << second.reason;
  EXPECT_EQ(second.placement[2], 0) << "w2 joins main";
  EXPECT_EQ(second.placement[1], 1) << "w1 stays in its cool-down";
  EXPECT_FALSE(second.cooldown_overridden);
}

TEST(Planner, SmallGainsStayBelowTheHysteresis) {
  Problem p = withNodes({4, 4});
  addUnit(p, "a", 0.1, 0);
  addUnit(p, "b", 0.1);
  addUnit(p, "c", 0.1, 1);
  p.edges = {{0, 1, 100, 0, 0}, {1, 2, 103, 0, 0}}; // b on n1 saves 3 of 100 calls/s: 3 %
  p.current = {0, 0, 1};
  Planner planner;
  Plan plan = planner.plan(p, 0);
  EXPECT_FALSE(plan.accepted);
  EXPECT_EQ(plan.placement, p.current);
  EXPECT_NE(plan.reason.find("not more than 5%"), std::string::npos) << plan.reason;
}

TEST(Planner, StatefulMoveMustPayBackItsMigration) {
  Problem p = withNodes({4, 4});
  p.migration_horizon_s = 30;
  addUnit(p, "a", 0.1, 0);
  addUnit(p, "big_state", 0.1);
  addUnit(p, "c", 0.1, 1);
  p.units[1].state_bytes = 1e9;                    // 10 s to ship over 100 MB/s
  p.edges = {{0, 1, 10, 0, 0}, {1, 2, 100, 0, 0}}; // saves 90 × 200 µs = 18 ms/s
  p.current = {0, 0, 1};
  Planner planner;
  Plan plan = planner.plan(p, 0);
  EXPECT_FALSE(plan.accepted) << "18 ms/s × 30 s = 0.54 s < 10 s of migration";
  p.units[1].state_bytes = 1e6; // 10 ms: pays back
  Plan cheap = Planner().plan(p, 0);
  EXPECT_TRUE(cheap.accepted) << cheap.reason;
  ASSERT_EQ(cheap.moves.size(), 1u);
  EXPECT_EQ(cheap.moves[0].explanation,
            "moved `big_state` n0→n1: saves 20.0 ms/s of remote calls with `c`");
}

TEST(Planner, ReplicaSetsShareCallsBySpareCapacity) {
  Problem p = withNodes({2.0, 1.5, 1.0});
  addUnit(p, "main", 1.0, 0);
  addUnit(p, "store", 1.0, 1);
  int lb = addUnit(p, "hash", 3.0);
  p.units[lb].load_balanced = true;
  p.current = {0, 1, 0};
  CostModel m(p);
  auto sets = replicaSets(m, {0, 1, 0});
  ASSERT_EQ(sets.size(), 1u);
  EXPECT_EQ(sets[0].unit, lb);
  // Spare: n0 1.0, n1 0.5, n2 1.0 → shares 0.4, 0.2, 0.4.
  ASSERT_EQ(sets[0].shares.size(), 3u);
  EXPECT_DOUBLE_EQ(sets[0].shares[0].second, 0.4);
  EXPECT_DOUBLE_EQ(sets[0].shares[1].second, 0.2);
  EXPECT_DOUBLE_EQ(sets[0].shares[2].second, 0.4);
}

TEST(ExactSolver, MatchesExhaustiveSearchOnTinyProblems) {
  for (unsigned seed = 1; seed <= 20; ++seed) {
    Problem p = randomProblem(seed, 6, 3);
    CostModel m(p);
    auto exact = exactPlacement(m);
    ASSERT_TRUE(exact.has_value());
    double best = 1e300;
    Placement x(p.units.size(), 0);
    std::function<void(std::size_t)> all = [&](std::size_t u) {
      if (u == p.units.size()) {
        best = std::min(best, m.evaluate(x).total());
        return;
      }
      for (int q = 0; q < 3; ++q) {
        if (p.units[u].pinned_node >= 0 && q != p.units[u].pinned_node)
          continue;
        if (p.units[u].load_balanced && q != p.current[u])
          continue;
        x[u] = q;
        all(u + 1);
      }
    };
    all(0);
    EXPECT_NEAR(m.evaluate(*exact).total(), best, 1e-12) << "seed " << seed;
  }
}

} // namespace
} // namespace distnode::heuristic
