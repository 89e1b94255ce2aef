// coordinator_test.cpp - the coordinator's decisions from synthetic node reports: what moves,
// what never moves and why, operator pins and drains, and checks of bad reports.
#include "jit/program_analysis.h"
#include "node/cluster_config.h"
#include "node/coordinator.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>

namespace distnode::node {
namespace {

// A program of five units: main (home), stage → filter (chatty), heavy_a and heavy_b (CPU),
// and `table` holding mutable globals. Profile ids: 1 + index in kFunctions.
const std::vector<std::string> kFunctions = {"(root)",  "main",    "stage", "filter",
                                             "heavy_a", "heavy_b", "table"};

jit::ProgramAnalysis program() {
  jit::ProgramAnalysis a;
  auto unit = [&](const std::string &name, jit::Placement p, bool stateful) {
    jit::FunctionInfo f;
    f.name = name;
    f.placement = p;
    f.reason = p == jit::Placement::Home ? "the program's entry point runs on the entry node" : "";
    f.unit = static_cast<int>(a.units.size());
    a.functions.push_back(f);
    jit::PlacementUnit u;
    u.name = name;
    u.functions = {name};
    u.placement = p;
    u.stateful = stateful;
    if (stateful)
      u.migrate_why = "mutable global `cells` (a pointer) holds a pointer, which means nothing on "
                      "another node";
    a.units.push_back(u);
  };
  unit("main", jit::Placement::Home, false);
  unit("stage", jit::Placement::Placeable, false);
  unit("filter", jit::Placement::Placeable, false);
  unit("heavy_a", jit::Placement::Placeable, false);
  unit("heavy_b", jit::Placement::Placeable, false);
  unit("table", jit::Placement::Placeable, true);
  return a;
}

ClusterConfig cluster(int nodes, double cpu = 1.0) {
  ClusterConfig c;
  c.path = "cluster.yaml";
  for (int i = 0; i < nodes; ++i) {
    NodeConfig n;
    n.name = "n" + std::to_string(i);
    n.cpu_capacity = cpu;
    c.nodes.push_back(n);
  }
  c.entry = c.coordinator = "n0";
  return c;
}

std::uint32_t pid(const std::string &name) {
  for (std::size_t i = 0; i < kFunctions.size(); ++i)
    if (kFunctions[i] == name)
      return static_cast<std::uint32_t>(i);
  ADD_FAILURE() << name;
  return 0;
}

// One interval of `seconds` on a node: calls between functions, CPU per function.
struct Interval {
  double seconds = 1;
  std::vector<std::tuple<std::string, std::string, std::uint64_t, std::uint64_t>> calls;
  std::vector<std::pair<std::string, double>> cpu_s;

  NodeReport report() const {
    NodeReport r;
    r.delta.elapsed_s = seconds;
    r.delta.cpu_ns.assign(kFunctions.size(), 0);
    r.delta.samples.assign(kFunctions.size(), 0);
    for (const auto &[f, s] : cpu_s)
      r.delta.cpu_ns[pid(f)] = static_cast<std::uint64_t>(s * 1e9);
    for (const auto &[from, to, n, bytes] : calls)
      r.delta.edges.push_back({pid(from), pid(to), n, bytes / 2, bytes / 2});
    std::sort(r.delta.edges.begin(), r.delta.edges.end(), [](const auto &x, const auto &y) {
      return std::make_pair(x.caller, x.callee) < std::make_pair(y.caller, y.callee);
    }); // as the profiler gives them
    r.cpu_capacity = 1.0;
    return r;
  }
};

// The owner of each unit: main n0, stage n0, filter n1, heavy_a n0, heavy_b n0, table n1.
const std::vector<std::uint16_t> kStart = {0, 0, 1, 0, 0, 1};

AdaptOptions fast() {
  AdaptOptions o;
  o.cooldown_s = 0;
  o.half_life_s = 1;
  return o;
}

TEST(Coordinator, MovesAChattyCalleeToItsCaller) {
  jit::ProgramAnalysis a = program();
  Coordinator c(a, kFunctions, cluster(2), 0, fast());
  Interval i; // main → stage keeps stage at home: filter is the one to move
  i.calls = {{"main", "stage", 1, 16}, {"stage", "filter", 200000, 3200000}};
  i.cpu_s = {{"stage", 0.2}, {"filter", 0.2}};
  c.addReport(0, i.report());
  Decision d = c.round(kStart, 1.0);
  ASSERT_TRUE(d.change) << d.reason;
  EXPECT_EQ(d.owners[2], 0) << "filter joins stage on n0";
  ASSERT_EQ(d.moves.size(), 1u);
  EXPECT_EQ(d.moves[0].unit, 2);
  EXPECT_NE(d.moves[0].explanation.find("remote calls with `stage`"), std::string::npos)
      << d.moves[0].explanation;
  EXPECT_GT(d.predicted_gain_s_per_s, 0);
}

TEST(Coordinator, ShedsLoadFromAnOverloadedNode) {
  jit::ProgramAnalysis a = program();
  Coordinator c(a, kFunctions, cluster(2), 0, fast());
  Interval i;
  i.calls = {{"main", "heavy_a", 10, 160}, {"main", "heavy_b", 10, 160}};
  i.cpu_s = {{"heavy_a", 0.95}, {"heavy_b", 0.95}};
  c.addReport(0, i.report());
  Decision d = c.round(kStart, 1.0);
  ASSERT_TRUE(d.change) << d.reason;
  EXPECT_NE(d.owners[3], d.owners[4]) << "one heavy unit per one-core node";
  EXPECT_NE(d.moves.at(0).explanation.find("overload"), std::string::npos)
      << d.moves[0].explanation;
}

// Two threads sharing one core each get half of it: the CPU they use adds up to the capacity,
// but the time they waited for the CPU shows that they want twice as much.
TEST(Coordinator, ASaturatedNodeShowsItsDemandThroughRunQueueWaits) {
  jit::ProgramAnalysis a = program();
  Coordinator c(a, kFunctions, cluster(2), 0, fast());
  Interval i;
  i.calls = {{"main", "heavy_a", 50, 800}, {"main", "heavy_b", 50, 800}};
  i.cpu_s = {{"heavy_a", 0.5}, {"heavy_b", 0.5}};
  NodeReport r = i.report();
  Coordinator blind(a, kFunctions, cluster(2), 0, fast()); // sees the CPU used only
  blind.addReport(0, r);
  Decision without = blind.round(kStart, 1.0);
  r.run_s = 1.0;
  r.runnable_wait_s = 1.0;
  c.addReport(0, r);
  EXPECT_NEAR(c.view(kStart).units[3].cpu_s_per_s, 0.0, 1e-12) << "rates come with the round";
  Decision d = c.round(kStart, 1.0);
  EXPECT_NEAR(c.view(kStart).units[3].cpu_s_per_s, 1.0, 1e-9) << "0.5 s used, twice that wanted";
  ASSERT_TRUE(d.change) << d.reason;
  EXPECT_NE(d.owners[3], d.owners[4]);
  EXPECT_FALSE(without.change) << "1 CPU s/s used on a 1-CPU node looks like no overload";
}

TEST(Coordinator, NeverMovesAStatefulOrHomeUnitAndSaysWhy) {
  jit::ProgramAnalysis a = program();
  Coordinator c(a, kFunctions, cluster(2), 0, fast());
  Interval i; // table is called a lot from stage on n0, but holds state
  i.calls = {{"stage", "table", 500000, 8000000}, {"main", "stage", 1, 8}};
  i.cpu_s = {{"stage", 0.3}, {"table", 0.3}};
  c.addReport(0, i.report());
  Decision d = c.round(kStart, 1.0);
  EXPECT_EQ(d.owners.empty() ? kStart[5] : d.owners[5], 1) << "table stays on n1";
  if (d.change) {
    EXPECT_EQ(d.owners[0], 0) << "main stays home";
  }
  ClusterView v = c.view(kStart);
  EXPECT_FALSE(v.units[5].movable);
  EXPECT_EQ(v.units[5].why_fixed, "mutable global `cells` (a pointer) holds a pointer, which means "
                                  "nothing on another node; it stays where it started");
  EXPECT_FALSE(v.units[0].movable);
  EXPECT_NE(v.units[0].why_fixed.find("entry node"), std::string::npos);
  EXPECT_EQ(c.checkMove(5, 0).value_or(""), "`table` cannot move: " + v.units[5].why_fixed);
}

TEST(Coordinator, UnitWhoseStateMigratesMovesLikeAnyOther) {
  jit::ProgramAnalysis a = program();
  a.units[5].migratable = true;
  a.units[5].migrate_why.clear();
  a.units[5].state_bytes = 64;
  Coordinator c(a, kFunctions, cluster(2), 0, fast());
  Interval i; // stage (on n0, called by main) calls table (on n1) all the time
  i.calls = {{"main", "stage", 1, 16}, {"stage", "table", 500000, 8000000}};
  i.cpu_s = {{"stage", 0.3}, {"table", 0.3}};
  c.addReport(0, i.report());
  Decision d = c.round(kStart, 1.0);
  ASSERT_TRUE(d.change) << d.reason;
  EXPECT_EQ(d.owners[5], 0) << "table joins its caller, state and all";
  EXPECT_TRUE(c.view(kStart).units[5].movable);
}

// heavy_b load-balanced: the coordinator re-spreads its replicas over the nodes' spare CPU,
// never moves it as a unit, keeps a set whose shares are close enough, and gives a drained node
// no replica.
TEST(Coordinator, SpreadsALoadBalancedUnitOverTheSpareCpu) {
  jit::ProgramAnalysis a = program();
  a.units[4].load_balanced = true;
  Coordinator c(a, kFunctions, cluster(2), 0, fast());
  ReplicaSets only_n0(a.units.size());
  only_n0[4] = {{0, 1.0f}};
  Interval i; // heavy_a takes 0.75 of n0's CPU; heavy_b wants a CPU
  i.calls = {{"main", "heavy_a", 10, 160}, {"main", "heavy_b", 100, 1600}};
  i.cpu_s = {{"heavy_a", 0.75}, {"heavy_b", 1.0}};
  c.addReport(0, i.report());
  c.addReport(1, Interval{}.report());
  Decision d = c.round(kStart, 1.0, only_n0);
  ASSERT_TRUE(d.change) << d.reason;
  ASSERT_EQ(d.replicas.size(), a.units.size());
  EXPECT_TRUE(d.replicas[3].empty()) << "heavy_a is not load-balanced";
  ASSERT_EQ(d.replicas[4].size(), 2u);
  EXPECT_EQ(d.replicas[4][0].node, 0);
  EXPECT_NEAR(d.replicas[4][0].weight, 0.25 / 1.25, 1e-6) << "n0 has 0.25 CPU to spare";
  EXPECT_EQ(d.replicas[4][1].node, 1);
  EXPECT_NEAR(d.replicas[4][1].weight, 1.0 / 1.25, 1e-6) << "n1 has all of its CPU";
  ASSERT_EQ(d.replica_changes.size(), 1u);
  EXPECT_EQ(d.replica_changes[0], "re-spread `heavy_b` (load-balanced) over n0 20%, n1 80%: "
                                  "shares follow the nodes' spare CPU");
  EXPECT_EQ(d.owners.at(4), kStart[4]) << "a load-balanced unit is not moved as a whole";
  ClusterView v = c.view(kStart);
  EXPECT_FALSE(v.units[4].movable);
  EXPECT_EQ(v.units[4].why_fixed, "load-balanced: runs on every node of its replica set");

  // In effect now: the next round with the same load keeps it (shares within the step).
  c.recordEpoch(2, d.owners, 1.0, "planner", d);
  c.addReport(0, i.report());
  c.addReport(1, Interval{}.report());
  Decision same = c.round(d.owners, 2.0, d.replicas);
  EXPECT_TRUE(same.replicas.empty()) << same.reason;

  // Draining n1 takes its replica away.
  ASSERT_FALSE(c.drain(1, true).has_value());
  c.addReport(0, i.report());
  c.addReport(1, Interval{}.report());
  Decision drained = c.round(d.owners, 3.0, d.replicas);
  ASSERT_EQ(drained.replicas.size(), a.units.size()) << drained.reason;
  ASSERT_EQ(drained.replicas[4].size(), 1u);
  EXPECT_EQ(drained.replicas[4][0].node, 0);
}

// Before the nodes' capacities are known (no report yet, none configured), draining a node
// still takes it out of every replica set; the others keep their weights.
TEST(Coordinator, DrainBeforeAnyProfileTakesTheNodeOutOfReplicaSets) {
  jit::ProgramAnalysis a = program();
  a.units[4].load_balanced = true;
  Coordinator c(a, kFunctions, cluster(3, 0.0), 0, fast());
  ReplicaSets everywhere(a.units.size());
  everywhere[4] = {{0, 1.0f}, {1, 1.0f}, {2, 2.0f}};
  ASSERT_FALSE(c.drain(1, true).has_value());
  Decision d = c.repartition(kStart, 0.5, everywhere);
  ASSERT_EQ(d.replicas.size(), a.units.size()) << d.reason;
  ASSERT_EQ(d.replicas[4].size(), 2u);
  EXPECT_EQ(d.replicas[4][0].node, 0);
  EXPECT_NEAR(d.replicas[4][0].weight, 1.0 / 3, 1e-6);
  EXPECT_EQ(d.replicas[4][1].node, 2);
  EXPECT_NEAR(d.replicas[4][1].weight, 2.0 / 3, 1e-6);
  ASSERT_EQ(d.replica_changes.size(), 1u);
  EXPECT_EQ(d.replica_changes[0], "re-spread `heavy_b` (load-balanced) over n0 33%, n2 67%: "
                                  "drained nodes take no calls");
}

TEST(Coordinator, MovesThatSaveAlmostNothingAreNotMade) {
  jit::ProgramAnalysis a = program();
  Coordinator c(a, kFunctions, cluster(2), 0, fast());
  Interval i; // a few calls a second across nodes: far below the floor
  i.calls = {{"main", "stage", 1, 16}, {"stage", "filter", 3, 48}};
  c.addReport(0, i.report());
  Decision d = c.round(kStart, 1.0);
  EXPECT_FALSE(d.change);
  EXPECT_NE(d.reason.find("below the floor of 5.0 ms/s"), std::string::npos) << d.reason;
}

// `stage` was moved to n1, but a call of it that started before the move runs on n0 and makes
// its calls there: its callee must stay with that frame, not follow `stage` to n1.
TEST(Coordinator, CalleesStayWithFramesStillRunningWhereTheyStarted) {
  jit::ProgramAnalysis a = program();
  Coordinator c(a, kFunctions, cluster(2), 0, fast());
  std::vector<std::uint16_t> owners = {0, 1, 0, 0, 0, 1}; // stage on n1, filter on n0
  Interval i;
  i.calls = {{"stage", "filter", 200000, 3200000}};
  i.cpu_s = {{"stage", 0.2}, {"filter", 0.2}};
  c.addReport(0, i.report()); // reported by n0: stage's frame runs there
  Decision d = c.round(owners, 1.0);
  EXPECT_TRUE(!d.change || d.owners[2] == 0) << "filter stays with the running frame";
  if (d.change) {
    EXPECT_EQ(d.owners[1], 0) << "stage is placed where it runs";
  }
}

// Each call of `stage` makes 200,000 calls of `filter`: its frames run long, so `stage` stays
// and `filter` comes to it, even where moving `stage` would cost the same in the model.
TEST(Coordinator, ACallerWithLongFramesStaysAndItsCalleeComes) {
  jit::ProgramAnalysis a = program();
  Coordinator c(a, kFunctions, cluster(2), 0, fast());
  std::vector<std::uint16_t> owners = {0, 0, 1, 0, 0, 1};
  Interval i; // no edge into stage at all: nothing ties it to n0 but its running frame
  i.calls = {{"stage", "filter", 200000, 3200000}};
  c.addReport(0, i.report());
  Decision d = c.round(owners, 1.0);
  ASSERT_TRUE(d.change) << d.reason;
  EXPECT_EQ(d.owners[1], 0) << "stage stays";
  EXPECT_EQ(d.owners[2], 0) << "filter comes to it";
}

TEST(Coordinator, FrozenHoldsThePlacement) {
  jit::ProgramAnalysis a = program();
  AdaptOptions o = fast();
  o.enabled = false;
  Coordinator c(a, kFunctions, cluster(2), 0, o);
  Interval i;
  i.calls = {{"stage", "filter", 200000, 3200000}};
  c.addReport(0, i.report());
  Decision d = c.round(kStart, 1.0);
  EXPECT_FALSE(d.change);
  EXPECT_EQ(d.reason, "adaptation is frozen");
  ClusterView v = c.view(kStart);
  EXPECT_GT(v.edges.size(), 0u) << "the rates are kept while frozen";
}

TEST(Coordinator, OperatorPinOverridesThePlanner) {
  jit::ProgramAnalysis a = program();
  Coordinator c(a, kFunctions, cluster(2), 0, fast());
  ASSERT_EQ(c.pin(2, 1), std::nullopt);
  Interval i;
  i.calls = {{"stage", "filter", 200000, 3200000}};
  c.addReport(0, i.report());
  Decision d = c.round(kStart, 1.0);
  EXPECT_TRUE(!d.change || d.owners[2] == 1) << "filter is pinned to n1";
  EXPECT_EQ(c.pin(0, 1).value_or(""), "`main` cannot move: " + c.view(kStart).units[0].why_fixed);
  EXPECT_EQ(c.pin(2, 7).value_or("").rfind("no such node", 0), 0u);
}

TEST(Coordinator, DrainedNodeIsEmptiedAndGetsNothing) {
  jit::ProgramAnalysis a = program();
  Coordinator c(a, kFunctions, cluster(3), 0, fast());
  ASSERT_EQ(c.drain(1, true), std::nullopt);
  Decision d = c.repartition(kStart, 1.0);
  ASSERT_TRUE(d.change);
  EXPECT_NE(d.owners[2], 1) << "filter left n1";
  EXPECT_EQ(d.owners[5], 1) << "table cannot move";
  EXPECT_EQ(c.drain(0, true).value_or(""), "the entry node `n0` runs main and cannot be drained");
  EXPECT_EQ(c.checkMove(2, 1).value_or(""), "node `n1` is drained; `undrain` it first");
}

TEST(Coordinator, QuietEdgesFadeAndStopWeighing) {
  jit::ProgramAnalysis a = program();
  Coordinator c(a, kFunctions, cluster(2), 0, fast());
  Interval busy;
  busy.calls = {{"stage", "filter", 1000, 16000}};
  c.addReport(0, busy.report());
  (void)c.round(kStart, 1.0);
  ASSERT_EQ(c.view(kStart).edges.size(), 1u);
  EXPECT_DOUBLE_EQ(c.view(kStart).edges[0].calls_per_s, 1000.0);
  (void)c.round(kStart, 2.0); // no reports: halves (half-life 1 s)
  EXPECT_DOUBLE_EQ(c.view(kStart).edges[0].calls_per_s, 500.0);
  (void)c.round(kStart, 40.0);
  EXPECT_TRUE(c.view(kStart).edges.empty());
}

// A rate that changed eightfold within a round in which every node reported once is a new
// phase: it takes the round's value at once. Smaller changes, and rounds with a report
// missing (whose counts are short by an interval), decay as before.
TEST(Coordinator, ANewPhaseReplacesTheDecayedRatesAtOnce) {
  jit::ProgramAnalysis a = program();
  Coordinator c(a, kFunctions, cluster(2), 0, fast()); // half-life 1 s
  auto round = [&](double t, const Interval &on_n0, bool n1_reports = true) {
    c.addReport(0, on_n0.report());
    if (n1_reports)
      c.addReport(1, Interval{}.report());
    (void)c.round(kStart, t);
    return c.view(kStart);
  };
  Interval chatty;
  chatty.calls = {{"stage", "filter", 100000, 1600000}};
  chatty.cpu_s = {{"stage", 0.4}};
  ClusterView v = round(1, chatty);
  ASSERT_EQ(v.edges.size(), 1u);
  EXPECT_DOUBLE_EQ(v.edges[0].calls_per_s, 100000.0);

  Interval half = chatty; // half as many: noise or a slow change, not a new phase
  std::get<2>(half.calls[0]) = 50000;
  half.cpu_s = {{"stage", 0.2}};
  v = round(2, half);
  EXPECT_DOUBLE_EQ(v.edges[0].calls_per_s, 75000.0) << "decayed";
  EXPECT_DOUBLE_EQ(v.units[1].cpu_s_per_s, 0.3);

  Interval quiet; // the edge stops, stage's CPU with it
  quiet.cpu_s = {{"heavy_a", 0.9}};
  ClusterView missing = round(3, Interval{}, /*n1_reports=*/false);
  EXPECT_DOUBLE_EQ(missing.edges.at(0).calls_per_s, 37500.0) << "n1 sent nothing: decayed";
  v = round(3.3, Interval{}); // reports of a whole second in a round of 0.3 s
  EXPECT_FALSE(v.edges.empty()) << "reports over another span than the round's: decayed";
  Interval half_second;
  half_second.seconds = 0.5;
  c.addReport(1, half_second.report()); // n1 sends two reports of half a second in one round
  c.addReport(1, half_second.report());
  v = round(4.3, Interval{}, /*n1_reports=*/false);
  EXPECT_FALSE(v.edges.empty()) << "two reports of one node in a round: decayed";
  v = round(5.3, quiet);
  EXPECT_TRUE(v.edges.empty()) << "a new phase: the edge is gone at once";
  EXPECT_DOUBLE_EQ(v.units[1].cpu_s_per_s, 0.0);
  EXPECT_DOUBLE_EQ(v.units[3].cpu_s_per_s, 0.9) << "heavy_a starts: its rate at once";
}

// Planning rounds ask every node for its report of the round: a report of an older round (one
// that arrived after its round's wait ended) makes the round say nothing of a new phase, and
// the wait for a round's reports ends when every node answered that round.
TEST(Coordinator, ReportsOfAnotherRoundShowNoNewPhase) {
  jit::ProgramAnalysis a = program();
  Coordinator c(a, kFunctions, cluster(2), 0, fast());
  Interval chatty;
  chatty.calls = {{"stage", "filter", 100000, 1600000}};
  c.addReport(0, chatty.report(), 1);
  c.addReport(1, Interval{}.report(), 1);
  (void)c.round(kStart, 1, {}, 1);
  auto deadline = std::chrono::steady_clock::now(); // no waiting: answered or not, now
  EXPECT_TRUE(c.waitForReports(1, {false, true}, deadline));
  EXPECT_FALSE(c.waitForReports(2, {false, true}, deadline)) << "n1 has not answered round 2";
  c.addReport(0, Interval{}.report(), 2);
  c.addReport(1, Interval{}.report(), 1); // n1's answer to round 1, again (late)
  ClusterView v = c.view(kStart);
  (void)c.round(kStart, 2, {}, 2);
  v = c.view(kStart);
  ASSERT_FALSE(v.edges.empty()) << "a round with an old report: the edge decays";
  EXPECT_DOUBLE_EQ(v.edges[0].calls_per_s, 50000.0);
  c.addReport(0, Interval{}.report(), 3);
  c.addReport(1, Interval{}.report(), 3);
  EXPECT_TRUE(c.waitForReports(3, {false, true}, deadline));
  (void)c.round(kStart, 3, {}, 3);
  EXPECT_TRUE(c.view(kStart).edges.empty()) << "every report of its round: a new phase";
}

// A node's look at its counts (a sixteenth of an interval) against its last report: a new phase
// brings a round early; the same rates, a pause of one look, or a handful of events do not.
// CPU samples are one per millisecond, as the profiler takes them.
TEST(Coordinator, ALookAtTheCountsSeesANewPhaseButNotNoise) {
  Interval base{
      1.0, {{"stage", "filter", 100, 800}, {"main", "stage", 2000, 16000}}, {{"heavy_a", 0.9}}};
  NodeReport b = base.report();
  b.delta.samples[pid("heavy_a")] = 900;
  auto look = [](Interval i, std::uint64_t heavy_a_samples, std::uint64_t heavy_b_samples = 0) {
    i.seconds = 0.125;
    NodeReport r = i.report();
    r.delta.samples[pid("heavy_a")] = heavy_a_samples;
    r.delta.samples[pid("heavy_b")] = heavy_b_samples;
    return r;
  };
  auto steady = std::make_tuple(std::string("main"), std::string("stage"), std::uint64_t(250),
                                std::uint64_t(2000));
  // The same phase: the edges at their rates, heavy_a's CPU at its share.
  EXPECT_FALSE(
      showsNewPhase(b, look({0, {{"stage", "filter", 12, 96}, steady}, {{"heavy_a", 0.11}}}, 110)));
  // A chatty phase begins: an edge at a thousand times its rate.
  EXPECT_TRUE(showsNewPhase(
      b, look({0, {{"stage", "filter", 12500, 1e5}, steady}, {{"heavy_a", 0.11}}}, 110)));
  // An edge stops: 2,000 calls a second fall to none.
  EXPECT_TRUE(showsNewPhase(b, look({0, {{"stage", "filter", 12, 96}}, {{"heavy_a", 0.11}}}, 110)));
  // The CPU phase ends: heavy_a's 900 samples a second fall to none.
  EXPECT_TRUE(showsNewPhase(b, look({0, {{"stage", "filter", 12, 96}, steady}, {}}, 0)));
  // A pause of one look of an edge of 100 calls a second (12.5 expected): noise.
  EXPECT_FALSE(showsNewPhase(b, look({0, {steady}, {{"heavy_a", 0.11}}}, 110)));
  // A new edge above the rate floor (56 calls a second) and a new function, with a handful of
  // events each: noise, not a phase.
  EXPECT_FALSE(
      showsNewPhase(b, look({0,
                             {{"stage", "filter", 12, 96}, steady, {"main", "heavy_b", 7, 56}},
                             {{"heavy_a", 0.11}, {"heavy_b", 0.006}}},
                            110, 6)));
  // Two edges taking turns, each with a burst in one look and a pause in the other: each look
  // alone shows a change, the two looks together do not (sawNewPhase asks all three).
  Interval turns{1.0, {{"stage", "filter", 1000, 8000}, {"main", "stage", 1000, 8000}}, {}};
  NodeReport t = turns.report();
  EXPECT_TRUE(showsNewPhase(t, look({0, {{"stage", "filter", 250, 2000}}, {}}, 0)));
  EXPECT_TRUE(showsNewPhase(t, look({0, {{"main", "stage", 250, 2000}}, {}}, 0)));
  NodeReport together =
      look({0, {{"stage", "filter", 250, 2000}, {"main", "stage", 250, 2000}}, {}}, 0);
  together.delta.elapsed_s = 0.25;
  EXPECT_FALSE(showsNewPhase(t, together));
  // No report yet: nothing to compare with.
  EXPECT_FALSE(showsNewPhase(NodeReport{}, look({0, {{"stage", "filter", 12500, 1e5}}, {}}, 0)));
}

// Phases that want different placements (shift.c): Y, `stage` calls `heavy_a` millions of
// times a second (keep them together); X, `heavy_a` and `heavy_b` each use a whole core (split
// them). The coordinator follows each change at the first round after it, with the default
// settings: the rates of the phase before are not remembered for seconds, and a move that
// saves most of the cost is made in spite of the cool-down.
TEST(Coordinator, FollowsPhasesThatWantDifferentPlacements) {
  jit::ProgramAnalysis a = program();
  Coordinator c(a, kFunctions, cluster(2), 0, AdaptOptions{});
  std::vector<std::uint16_t> owners = kStart; // heavy_a and heavy_b on n0
  double t = 0;
  auto round = [&](const Interval &on_n0, const Interval &on_n1) {
    t += 1;
    NodeReport r0 = on_n0.report(), r1 = on_n1.report();
    r0.run_s = r1.run_s = 1; // two busy threads on one core wait as long as they run
    r0.runnable_wait_s = on_n0.cpu_s.size() > 1 ? 1 : 0;
    c.addReport(0, r0);
    c.addReport(1, r1);
    Decision d = c.round(owners, t);
    if (d.change)
      owners = d.owners;
    return d;
  };
  Interval y; // heavy_a and stage on n0
  y.calls = {{"main", "stage", 1, 16}, {"stage", "heavy_a", 7500000, 120000000}};
  y.cpu_s = {{"stage", 0.6}, {"heavy_a", 0.3}};
  for (int i = 0; i < 3; ++i)
    EXPECT_FALSE(round(y, {}).change);

  Interval x_n0; // both heavy units on n0: half a core each
  x_n0.calls = {{"main", "heavy_a", 40, 640}, {"main", "heavy_b", 40, 640}};
  x_n0.cpu_s = {{"heavy_a", 0.5}, {"heavy_b", 0.5}};
  Decision split = round(x_n0, {});
  ASSERT_TRUE(split.change) << "X: " << split.reason;
  EXPECT_NE(owners[3], owners[4]) << "one heavy unit per node";
  int moved = split.moves.at(0).unit;

  // Y again: the unit that left is called remotely, about 10,000 times a second.
  Interval y_remote, y_served;
  y_remote.calls = {{"main", "stage", 1, 16}, {"stage", kFunctions[moved + 1], 10000, 160000}};
  y_remote.cpu_s = {{"stage", 0.1}};
  y_served.cpu_s = {{kFunctions[moved + 1], 0.01}};
  Decision back = round(y_remote, y_served);
  ASSERT_TRUE(back.change) << "Y, one second after the last move: " << back.reason;
  EXPECT_EQ(owners[moved], 0) << "back with stage, within its cool-down";
  EXPECT_NE(back.reason.find("cool-down may move"), std::string::npos) << back.reason;

  for (int i = 0; i < 5; ++i) // the same phase goes on: nothing moves
    EXPECT_FALSE(round(y, {}).change);
}

TEST(Coordinator, MarshalingCostIsFittedFromRemoteCalls) {
  jit::ProgramAnalysis a = program();
  Coordinator c(a, kFunctions, cluster(2), 0, fast());
  EXPECT_FALSE(c.view(kStart).call_costs_measured);
  NodeReport r;
  r.delta.elapsed_s = 1;
  // 1 µs + 1 ns per byte: 100 calls of 1000 B, 100 calls of 10000 B.
  r.delta.remote = {{pid("filter"), 100, 100000, 0, 100 * 2000},
                    {pid("heavy_a"), 100, 1000000, 0, 100 * 11000}};
  c.addReport(0, r);
  ClusterView v = c.view(kStart);
  ASSERT_TRUE(v.call_costs_measured);
  // The caller measures both of its sides; each side counts half.
  EXPECT_NEAR(v.call_costs.marshal_s_per_call * 2, 1e-6, 1e-9);
  EXPECT_NEAR(v.call_costs.marshal_s_per_byte * 2, 1e-9, 1e-12);
}

TEST(Coordinator, BadReportsAreRefusedWithAReason) {
  jit::ProgramAnalysis a = program();
  Coordinator c(a, kFunctions, cluster(2), 0, fast());
  NodeReport r = Interval{}.report();
  EXPECT_EQ(c.check(r), std::nullopt);
  NodeReport bad_edge = r;
  bad_edge.delta.edges.push_back({99, 1, 1, 0, 0});
  EXPECT_EQ(c.check(bad_edge).value_or(""),
            "a profile delta names profile id 99, the program has 7");
  NodeReport bad_link = r;
  bad_link.links.push_back({5, 1e-4, 0});
  EXPECT_EQ(c.check(bad_link).value_or(""), "a profile delta has a bad link measurement");
  NodeReport nan_link = r;
  nan_link.links.push_back({1, std::numeric_limits<double>::quiet_NaN(), 0});
  EXPECT_TRUE(c.check(nan_link).has_value());
  NodeReport bad_cpu = r;
  bad_cpu.cpu_capacity = -1;
  EXPECT_EQ(c.check(bad_cpu).value_or(""), "a profile delta has a bad CPU capacity");
}

TEST(Coordinator, FindsUnitsByUnitOrFunctionName) {
  jit::ProgramAnalysis a = program();
  a.units[1].name = "globals#0";
  a.units[1].functions = {"stage", "stage_helper"};
  Coordinator c(a, kFunctions, cluster(2), 0, fast());
  EXPECT_EQ(c.findUnit("globals#0"), 1);
  EXPECT_EQ(c.findUnit("stage_helper"), 1);
  EXPECT_EQ(c.findUnit("nothing"), -1);
}

} // namespace
} // namespace distnode::node
