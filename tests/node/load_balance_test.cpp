// load_balance_test.cpp - DIST_LOADBALANCED functions on real clusters: output identical to the
// native program on 1, 2 and 3 nodes, the local replica used while its node has room, every
// replica serving when the load needs it, replica sets from a placement file, and replica
// sets changing under the program's feet.
#include "tests/support/subprocess.h"

#include <gtest/gtest.h>

#include <regex>

namespace distnode::testing {
namespace {

const std::string kDistnode = DIST_DISTNODE;
const std::string kMandel = std::string(DIST_EXAMPLES_DIR) + "/mandel";
// mandel [threads] [rows] [iterations]: small enough for a test, every row a call.
const std::vector<std::string> kArgs = {"6", "72", "600"};
constexpr int kRows = 72;

ProcessResult native(const std::vector<std::string> &args = kArgs) {
  std::vector<std::string> argv = {kMandel + ".native"};
  argv.insert(argv.end(), args.begin(), args.end());
  return runProcess(argv);
}

ProcessResult distnode(std::vector<std::string> flags,
                       const std::vector<std::string> &args = kArgs) {
  flags.insert(flags.begin(), kDistnode);
  flags.push_back(kMandel + ".bc");
  flags.push_back("--");
  flags.insert(flags.end(), args.begin(), args.end());
  return runProcess(flags, std::chrono::seconds(120));
}

// A node's line "load-balanced calls: N made here (A on this node, B on `n1`); S served for
// other nodes", as {where → calls} plus "served" → S; empty if the node printed none.
std::map<std::string, long> balancedCalls(const std::string &err, const std::string &node) {
  std::map<std::string, long> out;
  static const std::regex kLine(
      R"(\[(n[0-9]+)\] info: load-balanced calls: (\d+) made here \((.*)\); (\d+) served)");
  static const std::regex kPart(R"((\d+) on (this node|`(n[0-9]+)`))");
  for (const std::string &line : splitLines(err)) {
    std::smatch m;
    if (!std::regex_search(line, m, kLine) || m[1] != node)
      continue;
    out["served"] = std::stol(m[4]);
    std::string parts = m[3];
    for (std::sregex_iterator it(parts.begin(), parts.end(), kPart), end; it != end; ++it)
      out[(*it)[3].matched ? (*it)[3].str() : node] = std::stol((*it)[1]);
  }
  return out;
}

// cluster.yaml for n0..n{count-1} on free loopback ports, each node offering `cpu` CPUs.
std::string clusterWithCapacity(int count, double cpu) {
  std::vector<int> ports = freeLoopbackPorts(2 * count);
  std::string yaml = "cluster: lb\njoin_timeout_ms: 20000\nnodes:\n";
  for (int i = 0; i < count; ++i)
    yaml += "  - name: n" + std::to_string(i) +
            "\n    call: tcp://127.0.0.1:" + std::to_string(ports[2 * i]) +
            "\n    control: tcp://127.0.0.1:" + std::to_string(ports[2 * i + 1]) +
            "\n    capacity: {cpu: " + std::to_string(cpu) + "}\n";
  return writeTempFile("lb-" + std::to_string(count) + ".yaml", yaml);
}

// Runs mandel on the cluster of `config` (members started first), every node logging at info,
// and checks that it exits as the native program does with the same output. Returns the
// entry's result with every node's stderr appended to its own.
ProcessResult runCluster(const std::string &config, int count,
                         const std::vector<std::string> &args) {
  std::vector<std::future<ProcessResult>> members;
  for (int i = 1; i < count; ++i)
    members.push_back(startProcess({kDistnode, "--join", config, "--name", "n" + std::to_string(i),
                                    "--log-level", "info", kMandel + ".bc"},
                                   std::chrono::seconds(120)));
  std::vector<std::string> argv = {kDistnode,     "--join", config,          "--name", "n0",
                                   "--log-level", "info",   kMandel + ".bc", "--"};
  argv.insert(argv.end(), args.begin(), args.end());
  ProcessResult entry = runProcess(argv, std::chrono::seconds(120));
  for (std::size_t i = 0; i < members.size(); ++i) {
    ProcessResult m = members[i].get();
    EXPECT_EQ(m.exit_code, 0) << m.err;
    for (const std::string &line : splitLines(m.err)) // as --local prefixes them
      entry.err += "[n" + std::to_string(i + 1) + "] " + line + "\n";
  }
  EXPECT_EQ(entry.exit_code, 0) << entry.err;
  EXPECT_EQ(entry.out, native(args).out);
  return entry;
}

TEST(LoadBalanced, SameOutputAsNativeOnOneTwoAndThreeNodes) {
  ProcessResult expected = native();
  ASSERT_EQ(expected.exit_code, 0);
  for (const auto &flags :
       std::vector<std::vector<std::string>>{{},
                                             {"--loopback"},
                                             {"--local", "2"},
                                             {"--local", "3"},
                                             {"--local", "3", "--placement", "scatter"}}) {
    SCOPED_TRACE(::testing::PrintToString(flags));
    ProcessResult actual = distnode(flags);
    ASSERT_FALSE(actual.timed_out);
    EXPECT_EQ(actual.exit_code, 0) << actual.err;
    EXPECT_EQ(actual.out, expected.out) << actual.err;
    EXPECT_EQ(actual.err, expected.err);
  }
}

// Two program threads, two CPUs on the entry node: every call runs there, none is sent.
TEST(LoadBalanced, LocalReplicaIsUsedWhileItsNodeHasRoom) {
  std::vector<std::string> args = {"2", std::to_string(kRows), "600"};
  ProcessResult r = runCluster(clusterWithCapacity(2, 2.0), 2, args);
  auto n0 = balancedCalls(r.err, "n0");
  EXPECT_EQ(n0["n0"], kRows) << r.err;
  EXPECT_EQ(n0.count("n1"), 0u) << r.err;
  EXPECT_EQ(balancedCalls(r.err, "n1")["served"], 0) << r.err;
}

// Six program threads, one CPU per node: the calls that find the entry busy go to the other
// replicas, and each of them serves some; no call is lost or run twice.
TEST(LoadBalanced, EveryReplicaServesWhenTheLoadNeedsIt) {
  std::vector<std::string> args = {"6", std::to_string(kRows), "3000"};
  ProcessResult r = runCluster(clusterWithCapacity(3, 1.0), 3, args);
  auto n0 = balancedCalls(r.err, "n0");
  long served1 = balancedCalls(r.err, "n1")["served"],
       served2 = balancedCalls(r.err, "n2")["served"];
  EXPECT_GT(n0["n0"], 0) << r.err;
  EXPECT_GT(served1, 0) << r.err;
  EXPECT_GT(served2, 0) << r.err;
  EXPECT_EQ(n0["n1"], served1);
  EXPECT_EQ(n0["n2"], served2);
  EXPECT_EQ(n0["n0"] + n0["n1"] + n0["n2"], kRows) << r.err;
}

// A placement file gives the replica set: here only n1 and n2, weighted 1:3; n0 sends them all.
TEST(LoadBalanced, PlacementFileNamesTheReplicas) {
  std::string placement = writeTempFile("lb-replicas.yaml", "render_row: {n1: 1, n2: 3}\n");
  ProcessResult r = distnode(
      {"--local", "3", "--no-adapt", "--placement", placement, "--log-level", "info", "--verbose"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, native().out);
  EXPECT_NE(r.err.find("placement: render_row on replicas n1 (weight 1), n2 (weight 3)"),
            std::string::npos)
      << r.err;
  auto n0 = balancedCalls(r.err, "n0");
  EXPECT_EQ(n0.count("n0"), 0u) << r.err;
  EXPECT_EQ(n0["n1"] + n0["n2"], kRows) << r.err;
}

TEST(LoadBalanced, BadReplicaSetsAreOneLineErrors) {
  for (const auto &[text, needle] : std::vector<std::pair<std::string, std::string>>{
           {"render_row: {n7: 1}\n", "`render_row`: no node `n7`"},
           {"render_row: {n1: -2}\n", "a replica's weight must be a number from"},
           {"render_row: {n1: lots}\n", "expected a number (the replica's weight)"},
           {"main: {n0: 1}\n", "`main` is not load-balanced"},
           {"render_row: {n0: 1, n0: 2}\n", "node `n0` is named twice in one replica set"},
           {"render_row: {n1: 1e-46}\n", "weight must be a number from 0.000001 to 1000000"},
           {"render_row: n1\nrender_row: n0\n", "`render_row` is placed twice"},
           {"render_row: [n0, n1]\n", "or for a load-balanced function a map `node: weight`"}}) {
    SCOPED_TRACE(text);
    std::string placement = writeTempFile("lb-bad.yaml", text);
    ProcessResult r = distnode({"--local", "2", "--placement", placement});
    EXPECT_NE(r.exit_code, 0);
    EXPECT_EQ(splitLines(r.err).size(), 1u) << r.err;
    EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
  }
}

// Replica sets re-drawn at random every 2 ms (random members, random weights) while six
// threads call: every call still runs exactly once, somewhere in its set.
TEST(ChaosMode, ReplicaSetsChangingEveryTwoMsUnderSixThreadsMatchNative) {
  std::vector<std::string> args = {"6", "240", "600"};
  ProcessResult expected = native(args);
  ProcessResult actual = distnode({"--local", "3", "--chaos-ms", "2"}, args);
  ASSERT_FALSE(actual.timed_out);
  EXPECT_EQ(actual.exit_code, 0) << actual.err;
  EXPECT_EQ(actual.out, expected.out) << actual.err;
  EXPECT_EQ(actual.err, "");
}

} // namespace
} // namespace distnode::testing
