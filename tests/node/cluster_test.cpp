// cluster_test.cpp - programs on several real distnode processes over loopback.
#include "tests/support/subprocess.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

#include <arpa/inet.h>
#include <csignal>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <regex>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

namespace distnode::testing {
namespace {

const std::string kDistnode = DIST_DISTNODE;

std::string example(const std::string &name) { return std::string(DIST_EXAMPLES_DIR) + "/" + name; }
std::string fixture(const std::string &name) {
  return std::string(DIST_FIXTURE_DIR) + "/fixture_" + name;
}

struct ScatterRun {
  std::string label;
  std::string base; ///< path without .bc / .native
  std::vector<std::string> args;
  int nodes = 3;
  bool same_stderr = true; ///< false where DIST_LOCAL functions print on other nodes
};

class ScatterMatchesNative : public ::testing::TestWithParam<ScatterRun> {};

// Every placement unit on the next node round-robin: the most cross-node calls a placement
// can make. The program must not notice.
TEST_P(ScatterMatchesNative, SameOutputAndExitCode) {
  const ScatterRun &run = GetParam();
  std::vector<std::string> native = {run.base + ".native"};
  native.insert(native.end(), run.args.begin(), run.args.end());
  std::vector<std::string> cluster = {kDistnode,     "--local", std::to_string(run.nodes),
                                      "--placement", "scatter", run.base + ".bc",
                                      "--"};
  cluster.insert(cluster.end(), run.args.begin(), run.args.end());
  ProcessResult expected = runProcess(native);
  ProcessResult actual = runProcess(cluster);
  ASSERT_FALSE(actual.timed_out) << actual.err;
  EXPECT_EQ(actual.signal, 0);
  EXPECT_FALSE(expected.out.empty());
  EXPECT_EQ(actual.out, expected.out) << actual.err;
  if (run.same_stderr) {
    EXPECT_EQ(actual.err, expected.err);
  }
  EXPECT_EQ(actual.exit_code, expected.exit_code) << actual.err;
}

INSTANTIATE_TEST_SUITE_P(
    Cluster, ScatterMatchesNative,
    ::testing::Values(
        ScatterRun{"pipeline", example("pipeline"), {"16"}},
        ScatterRun{"kvstore", example("kvstore"), {"3000"}},
        ScatterRun{"phases", example("phases"), {"2", "1500"}},
        ScatterRun{"nbody", example("nbody"), {"600"}},
        ScatterRun{"marshal", fixture("marshal"), {}},
        ScatterRun{"marshal_2nodes", fixture("marshal"), {}, 2},
        ScatterRun{"marshal_5nodes", fixture("marshal"), {}, 5},
        ScatterRun{"threads", fixture("threads"), {}},
        ScatterRun{"rules", fixture("rules"), {}, 3, false},
        // Pauses of the whole length (the profiler's signals reach only
        // threads that run).
        ScatterRun{"sleeps", fixture("sleeps"), {}, 2},
        // errno and the floating-point environment go with calls (each
        // function is remote in one of the two).
        ScatterRun{"thread_state", fixture("thread_state"), {}},
        ScatterRun{"thread_state_2nodes", fixture("thread_state"), {}, 2},
        // A thread-local variable is its thread's own.
        ScatterRun{"thread_locals", fixture("thread_locals"), {}},
        // A signal handler runs where the signal arrives, never remotely.
        ScatterRun{"signals", fixture("signals"), {}},
        ScatterRun{"signal_helpers", fixture("signal_helpers"), {}},
        // Overlapping pointer arguments, one copied back: one object.
        ScatterRun{"aliased", fixture("aliased"), {}},
        // In-out arguments come back as the bytes the callee changed.
        ScatterRun{"write_back", fixture("write_back"), {}},
        // A child made by fork() runs its calls itself and exits alone.
        ScatterRun{"fork", fixture("fork"), {}},
        // A GPin object that main reads and frees itself.
        ScatterRun{"gpin_touch", fixture("gpin_touch"), {}},
        // State of functions called only through their address.
        ScatterRun{"callbacks_state", fixture("callbacks_state"), {}},
        // exit() on another node ends the program where main runs.
        ScatterRun{"member_exit", fixture("member_exit"), {}, 2},
        // quick_exit() there: main's at_quick_exit handler runs, and may call
        // that node again.
        ScatterRun{"member_quick_exit", fixture("member_exit"), {"quick"}, 2},
        // _exit() there: nothing runs, buffered output is lost, as natively.
        ScatterRun{"member_immediate_exit", fixture("member_exit"), {"immediate"}, 2},
        ScatterRun{"main_immediate_exit", fixture("member_exit"), {"main_immediate"}, 2},
        // _exit() from a signal handler that may interrupt malloc, during
        // another end, or as a second end: the process ends at once.
        ScatterRun{"exit_in_handler", fixture("exit_paths"), {"signal"}, 2},
        ScatterRun{"exit_in_handler_pinned", fixture("exit_paths"), {"signal_pinned"}, 2},
        ScatterRun{"immediate_during_exit", fixture("exit_paths"), {"during_exit"}, 2},
        ScatterRun{"immediate_after_member_exit", fixture("exit_paths"), {"second_end"}, 2},
        ScatterRun{
            "immediate_after_quick_exit", fixture("exit_paths"), {"quick_then_immediate"}, 2}),
    [](const ::testing::TestParamInfo<ScatterRun> &info) { return info.param.label; });

// One test per marshaling kind: each line of the marshal fixture exercises one kind across
// nodes (scatter over 3 nodes); the line must equal the native run's.
struct KindCase {
  const char *kind;
  const char *line_prefix;
  /// A caller and a callee of the line that the scatter must put on different nodes, if any.
  const char *caller = nullptr, *callee = nullptr;
};

std::map<std::string, std::string> placementOf(const std::string &err);

class MarshalKindAcrossNodes : public ::testing::TestWithParam<KindCase> {
protected:
  struct Runs {
    std::vector<std::string> native, cluster;
    std::map<std::string, std::string> placement; ///< of the cluster run
  };
  static const Runs &runs() {
    static const Runs both = [] {
      auto native = runProcess({fixture("marshal") + ".native"});
      auto cluster = runProcess({kDistnode, "--local", "3", "--placement", "scatter", "--verbose",
                                 fixture("marshal") + ".bc"});
      return Runs{splitLines(native.out), splitLines(cluster.out), placementOf(cluster.err)};
    }();
    return both;
  }
  static std::string lineOf(const std::vector<std::string> &lines, const std::string &prefix) {
    for (const auto &l : lines)
      if (l.rfind(prefix, 0) == 0)
        return l;
    return "(missing)";
  }
};

TEST_P(MarshalKindAcrossNodes, SameResultAsNative) {
  const KindCase &c = GetParam();
  std::string expected = lineOf(runs().native, c.line_prefix);
  ASSERT_NE(expected, "(missing)");
  EXPECT_EQ(lineOf(runs().cluster, c.line_prefix), expected) << c.kind;
  if (c.caller) {
    const auto &where = runs().placement;
    ASSERT_TRUE(where.count(c.caller) && where.count(c.callee)) << c.kind;
    EXPECT_NE(where.at(c.caller), where.at(c.callee)) << "the call must cross nodes";
  }
}

INSTANTIATE_TEST_SUITE_P(
    Kinds, MarshalKindAcrossNodes,
    ::testing::Values(KindCase{"integers_and_doubles", "scalars "},
                      KindCase{"structs_by_value_coerced", "small_structs "},
                      KindCase{"struct_by_value_byval_and_sret", "big_struct "},
                      KindCase{"c_strings", "string_len "},
                      KindCase{"in_out_inout_buffers", "buffers "},
                      KindCase{"void_buffer_in_bytes", "void_buffer "},
                      KindCase{"struct_pointers_in_and_inout", "struct_ptrs "},
                      KindCase{"gpin_handles", "account "}, KindCase{"nested_calls", "ping "},
                      KindCase{"large_buffers_in_parts_of_their_own", "large_buffers ",
                               "call_large_buffers", "large_buffers"}),
    [](const ::testing::TestParamInfo<KindCase> &info) { return std::string(info.param.kind); });

// "distnode: placement: f on nX" lines of --verbose.
std::map<std::string, std::string> placementOf(const std::string &err) {
  std::map<std::string, std::string> where;
  static const std::regex kLine(R"(distnode: placement: (\S+) on (.+))");
  for (const auto &line : splitLines(err)) {
    std::smatch m;
    if (std::regex_match(line, m, kLine))
      where[m[1]] = m[2];
  }
  return where;
}

TEST(Cluster, NestedCallsBounceBetweenTwoNodes) {
  auto r = runProcess({kDistnode, "--local", "3", "--placement", "scatter", "--verbose",
                       fixture("marshal") + ".bc"});
  auto where = placementOf(r.err);
  ASSERT_TRUE(where.count("ping") && where.count("pong")) << r.err;
  EXPECT_NE(where["ping"], where["pong"]) << "ping(5) must cross nodes at every level";
  EXPECT_NE(r.out.find("ping 303\n"), std::string::npos) << r.out << r.err;
}

// Twelve threads call a function on another node at once with DIST_IN buffers of 70 KB and
// more (each sent in a message part of its own) and a DIST_INOUT one: on each thread's own
// connection, all on the connection they share (DISTNODE_SHARE_FROM=1 sends every call there),
// and with the function moving between three nodes every 2 ms (calls answered Moved are sent
// again, parts and all). The output must be the native one.
TEST(Cluster, LargeBuffersFromManyThreadsMatchNativeOnOwnAndSharedConnectionsAndMoving) {
  ProcessResult expected = runProcess({fixture("big_threads") + ".native"});
  ASSERT_EQ(expected.exit_code, 0) << expected.out;
  std::string placement = writeTempFile("big_threads.yaml", "digest: n1\n");
  const std::string bc = fixture("big_threads") + ".bc";
  struct Mode {
    const char *what;
    std::vector<std::string> argv;
    const char *log_line; ///< a debug line that shows the mode's path was taken
  } modes[] = {
      {"own connections",
       {"/usr/bin/env", "DISTNODE_SHARE_FROM=64", kDistnode, "--local", "2", "--placement",
        placement, "--log-level", "debug", bc},
       nullptr},
      {"shared connection",
       {"/usr/bin/env", "DISTNODE_SHARE_FROM=1", kDistnode, "--local", "2", "--placement",
        placement, "--log-level", "debug", bc},
       "share one connection while 1 threads or more call it"},
      {"moving every 2 ms",
       {kDistnode, "--local", "3", "--placement", "scatter", "--chaos-ms", "2", "--log-level",
        "debug", bc},
       "answered Moved to"},
  };
  for (const Mode &mode : modes) {
    SCOPED_TRACE(mode.what);
    ProcessResult actual = runProcess(mode.argv);
    EXPECT_EQ(actual.out, expected.out) << actual.err;
    EXPECT_EQ(actual.exit_code, 0) << actual.err;
    if (mode.argv[1] == "DISTNODE_SHARE_FROM=64") {
      EXPECT_EQ(actual.err.find("share one connection"), std::string::npos)
          << "every call goes on its thread's own connection";
    }
    if (mode.log_line) {
      EXPECT_NE(actual.err.find(mode.log_line), std::string::npos) << actual.err;
    }
  }
}

// See tests/fixtures/interleave.c: an answer for an outer wait arrives during a nested one.
TEST(Cluster, AnswerForAnOuterWaitArrivingDuringANestedOneIsKept) {
  std::string placement =
      writeTempFile("interleave.yaml", "outer: n1\ninner: n1\nslow: n2\nquick: n2\n");
  auto r = runProcess({kDistnode, "--local", "3", "--placement", placement, "--verbose",
                       fixture("interleave") + ".bc"},
                      std::chrono::seconds(60));
  ASSERT_FALSE(r.timed_out) << "the outer call's answer was lost";
  auto where = placementOf(r.err);
  EXPECT_EQ(where["outer"], "n1");
  EXPECT_EQ(where["mark_started"], "n0") << "shares `started` with main";
  auto native = runProcess({fixture("interleave") + ".native"});
  EXPECT_EQ(r.out, native.out);
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

TEST(Cluster, PlacementFileMovesNamedFunctions) {
  std::string placement = writeTempFile("placement.yaml", "hash_block: n2\nscramble_block: n1\n");
  auto r = runProcess({kDistnode, "--local", "3", "--placement", placement, "--verbose",
                       example("pipeline") + ".bc", "--", "10"});
  auto native = runProcess({example("pipeline") + ".native", "10"});
  auto where = placementOf(r.err);
  EXPECT_EQ(where["hash_block"], "replicas n2 (weight 1)") << "load-balanced: its replica set";
  EXPECT_EQ(where["scramble_block"], "n1");
  EXPECT_EQ(where["generate_block"], "n0") << "functions not named stay on the entry node";
  EXPECT_EQ(r.out, native.out);
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

// The contract for user mistakes: exit 2 and one "distnode: error:" line naming the problem.
void expectOneLineError(const ProcessResult &r, const std::string &needle) {
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  std::vector<std::string> errors;
  for (const auto &line : splitLines(r.err))
    if (line.find("error") != std::string::npos)
      errors.push_back(line);
  ASSERT_EQ(errors.size(), 1u) << r.err;
  EXPECT_EQ(errors[0].rfind("distnode: error: ", 0), 0u) << errors[0];
  EXPECT_NE(errors[0].find(needle), std::string::npos) << errors[0];
}

TEST(ClusterErrors, PlacementOfUnknownFunctionNamesFileAndLine) {
  std::string placement = writeTempFile("bad_placement.yaml", "hash_block: n1\nnope: n1\n");
  expectOneLineError(runProcess({kDistnode, "--local", "2", "--placement", placement,
                                 example("pipeline") + ".bc"}),
                     placement + ":2: no function `nope` in the program");
}

TEST(ClusterErrors, PlacementOfLocalFunctionGivesAnalysisReason) {
  std::string placement = writeTempFile("local_placement.yaml", "mix64: n1\n");
  expectOneLineError(runProcess({kDistnode, "--local", "2", "--placement", placement,
                                 example("pipeline") + ".bc"}),
                     "`mix64` cannot be placed: it is local (DIST_LOCAL");
}

TEST(ClusterErrors, PlacementOfIOFunctionAwayFromEntryIsRefused) {
  std::string placement = writeTempFile("io_placement.yaml", "prints: n1\n");
  expectOneLineError(
      runProcess({kDistnode, "--local", "3", "--placement", placement, fixture("rules") + ".bc"}),
      "`prints` must run on the entry node `n0`: does I/O (calls `printf`)");
}

TEST(ClusterErrors, PinToMissingNodeIsRefused) {
  expectOneLineError(
      runProcess({kDistnode, "--local", "1", example("nbody") + ".bc"}),
      "`energy` is pinned to node `n1` (DIST_PIN), but the local cluster (n0) has no "
      "such node; add it or change the pin");
}

// cluster.yaml for nodes n0..n{count-1} on free loopback ports (call and control each).
std::string clusterConfig(int count, int join_timeout_ms, const std::string &extra = "") {
  std::vector<int> ports = freeLoopbackPorts(2 * count);
  std::string yaml = "cluster: test\njoin_timeout_ms: " + std::to_string(join_timeout_ms) + "\n" +
                     extra + "nodes:\n";
  for (int i = 0; i < count; ++i)
    yaml += "  - name: n" + std::to_string(i) +
            "\n    call: tcp://127.0.0.1:" + std::to_string(ports[2 * i]) +
            "\n    control: tcp://127.0.0.1:" + std::to_string(ports[2 * i + 1]) + "\n";
  return yaml;
}

std::string twoNodeConfig(int join_timeout_ms) { return clusterConfig(2, join_timeout_ms); }

// A cluster of `nodes` started one by one with --join (no launcher watching them): members
// n1.. first, then the entry n0 with `entry_flags` and the program's `args`. What each did.
struct JoinedRun {
  ProcessResult entry;
  std::vector<ProcessResult> members; ///< n1, n2...
};
JoinedRun runJoined(const std::string &config, const std::string &bc, int nodes,
                    const std::vector<std::string> &entry_flags,
                    const std::vector<std::string> &args, std::chrono::seconds timeout) {
  std::vector<std::future<ProcessResult>> members;
  for (int i = 1; i < nodes; ++i)
    members.push_back(startProcess(
        {kDistnode, "--join", config, "--name", "n" + std::to_string(i), bc}, timeout));
  std::vector<std::string> argv = {kDistnode, "--join", config, "--name", "n0"};
  argv.insert(argv.end(), entry_flags.begin(), entry_flags.end());
  argv.push_back(bc);
  if (!args.empty()) {
    argv.push_back("--");
    argv.insert(argv.end(), args.begin(), args.end());
  }
  JoinedRun run{runProcess(argv, timeout), {}};
  for (auto &m : members)
    run.members.push_back(m.get());
  return run;
}

// Endpoints may be IPv6 addresses: a cluster on ::1 runs as on 127.0.0.1.
TEST(Cluster, RunsOnIpv6Endpoints) {
  int probe = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in6 any{};
  any.sin6_family = AF_INET6;
  any.sin6_addr = in6addr_loopback;
  const bool has_ipv6 =
      probe >= 0 && bind(probe, reinterpret_cast<sockaddr *>(&any), sizeof any) == 0;
  if (probe >= 0)
    close(probe);
  if (!has_ipv6)
    GTEST_SKIP() << "this machine has no IPv6 loopback";
  std::string yaml =
      std::regex_replace(clusterConfig(2, 10000), std::regex("127\\.0\\.0\\.1"), "[::1]");
  std::string config = writeTempFile("ipv6.yaml", yaml);
  auto [entry, members] = runJoined(config, fixture("threads") + ".bc", 2,
                                    {"--placement", "scatter"}, {}, std::chrono::seconds(60));
  auto native = runProcess({fixture("threads") + ".native"});
  EXPECT_EQ(entry.exit_code, 0) << entry.err;
  EXPECT_EQ(entry.out, native.out);
  EXPECT_EQ(members[0].exit_code, 0) << members[0].err;
}

// A member that joined a cluster that never started (another node did not join) says so and
// exits 2: a script cannot take it for a run that ended well.
TEST(ClusterErrors, MemberOfAClusterThatNeverStartedExitsTwoWithTheReason) {
  std::string config = writeTempFile("never_started.yaml", clusterConfig(3, 5000));
  auto member =
      startProcess({kDistnode, "--join", config, "--name", "n1", fixture("hello") + ".bc"},
                   std::chrono::seconds(30));
  auto entry = runProcess({kDistnode, "--join", config, "--name", "n0", fixture("hello") + ".bc"},
                          std::chrono::seconds(30));
  ProcessResult m = member.get();
  EXPECT_EQ(entry.exit_code, 2) << entry.err;
  EXPECT_EQ(m.exit_code, 2) << m.err;
  EXPECT_EQ(m.err, "distnode: error: the cluster did not start: node(s) `n2` did not join within "
                   "5000 ms; stopping node `n1`\n");
}

// An admin socket in a directory that does not exist yet (/run/distnode/n0.admin on a fresh
// machine) gets its directory, private to this user; one that cannot be made is one line that
// names cluster.yaml's line, and the node does not start.
TEST(ClusterErrors, AdminSocketDirectoryIsMadeOrTheErrorNamesTheNode) {
  const std::string dir = ::testing::TempDir() + "admin_dir_" + std::to_string(::getpid());
  std::filesystem::remove_all(dir);
  std::string yaml = clusterConfig(1, 5000) + "    admin: ipc://" + dir + "/sub/n0.admin\n";
  std::string config = writeTempFile("admin_dir.yaml", yaml);
  ProcessResult ok =
      runProcess({kDistnode, "--join", config, "--name", "n0", fixture("hello") + ".bc"});
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_TRUE(std::filesystem::is_directory(dir + "/sub"));
  EXPECT_EQ(std::filesystem::status(dir + "/sub").permissions() & std::filesystem::perms::all,
            std::filesystem::perms::owner_all);

  // Under a regular file, no directory can be made.
  const std::string file = dir + "/plain";
  std::ofstream(file) << "x";
  std::string bad = clusterConfig(1, 5000) + "    admin: ipc://" + file + "/n0.admin\n";
  std::string bad_config = writeTempFile("admin_bad.yaml", bad);
  ProcessResult r =
      runProcess({kDistnode, "--join", bad_config, "--name", "n0", fixture("hello") + ".bc"});
  expectOneLineError(r, bad_config + ":4: node `n0`: admin: cannot bind the admin socket ipc://" +
                            file + "/n0.admin");
  EXPECT_NE(r.err.find("choose an admin endpoint this node can bind"), std::string::npos) << r.err;
  EXPECT_EQ(r.out, "") << "the program did not start";
  std::filesystem::remove_all(dir);
}

TEST(ClusterErrors, NodeThatNeverJoinsTimesOutWithItsName) {
  std::string config = writeTempFile("lonely.yaml", twoNodeConfig(300));
  expectOneLineError(
      runProcess({kDistnode, "--join", config, "--name", "n0", fixture("hello") + ".bc"}),
      "node(s) `n1` did not join within 300 ms");
}

// Nodes whose cluster.yaml files differ (here n1's call endpoint) would call each other at the
// wrong addresses: the member is refused, naming the first difference.
TEST(ClusterErrors, MemberWithAnotherClusterYamlIsRefused) {
  std::string yaml = twoNodeConfig(5000);
  std::string config = writeTempFile("ours.yaml", yaml);
  // n1's call endpoint is the third line from the end: "    call: tcp://127.0.0.1:PORT".
  std::smatch call;
  ASSERT_TRUE(
      std::regex_search(yaml, call, std::regex("name: n1\n    call: tcp://127.0.0.1:([0-9]+)")));
  const std::string other_port = std::to_string(freeLoopbackPorts(1).at(0));
  std::string theirs = yaml;
  theirs.replace(static_cast<std::size_t>(call.position(1)), call.length(1), other_port);
  std::string other = writeTempFile("theirs.yaml", theirs);
  auto member =
      startProcess({kDistnode, "--join", other, "--name", "n1", fixture("hello") + ".bc"});
  auto entry = runProcess({kDistnode, "--join", config, "--name", "n0", fixture("hello") + ".bc"});
  ProcessResult m = member.get();
  expectOneLineError(entry, "join refused: node `n1` has another cluster.yaml: `node n1 call "
                            "tcp://127.0.0.1:" +
                                other_port);
  expectOneLineError(m, "the entry node refused this node: node `n1` has another cluster.yaml");
}

TEST(ClusterErrors, MemberWithOtherBitcodeIsRefusedOnBothSides) {
  std::string config = writeTempFile("mismatch.yaml", twoNodeConfig(5000));
  auto member =
      startProcess({kDistnode, "--join", config, "--name", "n1", fixture("marshal") + ".bc"});
  auto entry = runProcess({kDistnode, "--join", config, "--name", "n0", fixture("hello") + ".bc"});
  ProcessResult m = member.get();
  expectOneLineError(entry, "join refused: node `n1` runs different bitcode");
  expectOneLineError(m, "the entry node refused this node: node `n1` runs different bitcode");
}

TEST(ClusterErrors, EndpointInUseNamesNodeAndEndpoint) {
  std::vector<int> ports = freeLoopbackPorts(1);
  int holder = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<std::uint16_t>(ports[0]));
  ASSERT_EQ(bind(holder, reinterpret_cast<sockaddr *>(&addr), sizeof addr), 0);
  ASSERT_EQ(listen(holder, 1), 0);
  std::string endpoint = "tcp://127.0.0.1:" + std::to_string(ports[0]);
  std::string config =
      writeTempFile("busy.yaml", "cluster: t\nnodes:\n  - name: n0\n    call: " + endpoint + "\n");
  expectOneLineError(
      runProcess({kDistnode, "--join", config, "--name", "n0", fixture("hello") + ".bc"}),
      config + ":3: node `n0`: cannot bind " + endpoint + ": Address already in use");
  close(holder);
}

// An address that is not this machine's (192.0.2.1 is reserved for documentation, RFC 5737):
// the error says what to check.
TEST(ClusterErrors, EndpointOfAnotherMachineSaysSo) {
  std::string endpoint = "tcp://192.0.2.1:" + std::to_string(freeLoopbackPorts(1)[0]);
  std::string config = writeTempFile(
      "foreign.yaml", "cluster: t\nnodes:\n  - name: n0\n    call: " + endpoint + "\n");
  expectOneLineError(
      runProcess({kDistnode, "--join", config, "--name", "n0", fixture("hello") + ".bc"}),
      config + ":3: node `n0`: cannot bind " + endpoint +
          ": Cannot assign requested address (is it an address of this machine?)");
}

TEST(ClusterErrors, UnknownNodeNameIsRefused) {
  std::string config = writeTempFile("names.yaml", twoNodeConfig(5000));
  expectOneLineError(
      runProcess({kDistnode, "--join", config, "--name", "n7", fixture("hello") + ".bc"}),
      "no node named `n7`");
}

TEST(Cluster, LocalClusterPassesEntryOutputAndExitCodeUnchanged) {
  // hello prints only on the entry node; its exit code is the argument count.
  auto r = runProcess({kDistnode, "--local", "2", fixture("hello") + ".bc", "--", "a", "b"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.out, "arg 1: a\narg 2: b\n");
  EXPECT_EQ(r.err, "to stderr\n");
}

TEST(Cluster, OtherNodesLinesArePrefixedWithTheirName) {
  // In rules.c, uses_local_log calls the DIST_LOCAL local_log, which prints its argument (5)
  // to stderr on whichever node runs it; scattered over 3 nodes, uses_local_log is not on n0.
  auto r = runProcess(
      {kDistnode, "--local", "3", "--placement", "scatter", "--verbose", fixture("rules") + ".bc"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  std::string node;
  for (const auto &line : splitLines(r.err))
    if (line.rfind("distnode: placement: uses_local_log on ", 0) == 0)
      node = line.substr(line.rfind(' ') + 1);
  ASSERT_NE(node, "");
  ASSERT_NE(node, "n0");
  auto lines = splitLines(r.err);
  EXPECT_NE(std::find(lines.begin(), lines.end(), "[" + node + "] 5"), lines.end()) << r.err;
}

// The merged profile counts each call on its caller's node, so the totals of edges (calls and
// bytes) and of functions (calls) do not depend on the placement.
TEST(ClusterProfile, MergedTotalsAreTheSameOnOneNodeAndScattered) {
  auto profileOf = [](std::vector<std::string> argv, const std::string &name) {
    std::string out = ::testing::TempDir() + "/" + name + ".json";
    std::remove(out.c_str());
    argv.insert(argv.begin() + 1, {"--profile-out", out});
    auto r = runProcess(argv);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::ifstream in(out);
    nlohmann::json doc = nlohmann::json::parse(in, nullptr, false);
    EXPECT_FALSE(doc.is_discarded()) << "no profile written to " << out;
    return doc;
  };
  std::string bc = example("phases") + ".bc";
  nlohmann::json one = profileOf({kDistnode, bc, "--", "2", "3000"}, "one_node");
  nlohmann::json three = profileOf(
      {kDistnode, "--local", "3", "--placement", "scatter", bc, "--", "2", "3000"}, "three");
  ASSERT_FALSE(one.is_discarded() || three.is_discarded());
  EXPECT_EQ(one.at("schema"), "distnode-profile/1");
  EXPECT_EQ(one.at("nodes").size(), 1u);
  EXPECT_EQ(three.at("nodes").size(), 3u) << "every node reports at shutdown";

  auto edgeTotals = [](const nlohmann::json &doc) {
    std::map<std::string, std::tuple<std::uint64_t, std::uint64_t, std::uint64_t>> t;
    for (const auto &e : doc.at("merged").at("edges"))
      t[e.at("caller").get<std::string>() + "->" + e.at("callee").get<std::string>()] = {
          e.at("calls"), e.at("call_bytes"), e.at("reply_bytes")};
    return t;
  };
  auto a = edgeTotals(one), b = edgeTotals(three);
  EXPECT_EQ(a, b);
  EXPECT_EQ(std::get<0>(a["stage_a->filter_a"]), 6000u) << "2 rounds of 3000 calls";
  EXPECT_EQ(std::get<1>(a["stage_b->reduce_b"]), 8u * (1 + 8 + 8192 * 8 + 8))
      << "2 rounds of 4 chunks of 8192 doubles, with presence flag and length";

  bool timed = false;
  for (const auto &r : three.at("nodes").at(0).at("remote"))
    timed |= r.at("round_trip_s_mean").get<double>() > 0;
  EXPECT_TRUE(timed) << "the entry node timed its remote calls";
}

TEST(ClusterProfile, SelfTimeIsChargedOnTheNodeThatRanTheFunction) {
  std::string out = ::testing::TempDir() + "/self_time.json";
  std::string placement = writeTempFile("hash_on_n1.yaml", "hash_block: n1\n");
  // Held still: the planner would bring hash_block back to its caller within the run.
  auto r = runProcess({kDistnode, "--local", "2", "--no-adapt", "--placement", placement,
                       "--profile-out", out, example("pipeline") + ".bc", "--", "1500"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::ifstream in(out);
  nlohmann::json doc = nlohmann::json::parse(in);
  auto selfTime = [&](const std::string &node, const std::string &fn) {
    for (const auto &n : doc.at("nodes"))
      if (n.at("node") == node)
        for (const auto &f : n.at("functions"))
          if (f.at("name") == fn)
            return f.at("self_cpu_s").get<double>();
    return -1.0;
  };
  EXPECT_GT(selfTime("n1", "hash_block"), 0.02) << "1500 blocks of hashing ran on n1";
  EXPECT_EQ(selfTime("n0", "hash_block"), 0.0) << "and none on n0";
}

TEST(ClusterProfile, NoProfileWritesNothing) {
  std::string out = ::testing::TempDir() + "/no_profile.json";
  std::remove(out.c_str());
  auto r = runProcess(
      {kDistnode, "--no-profile", "--profile-out", out, example("pipeline") + ".bc", "--", "4"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_FALSE(std::ifstream(out).good());
}

// Without profiling there is nothing to report or adapt to, and the cluster runs as placed
// (every node once crashed reading counters that were never laid out).
TEST(ClusterProfile, NoProfileOnAClusterRunsAndMatchesNative) {
  auto native = runProcess({example("phases") + ".native", "1", "20000"});
  auto r = runProcess({kDistnode, "--no-profile", "--local", "2", "--placement", "scatter",
                       example("phases") + ".bc", "--", "1", "20000"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, native.out);
}

TEST(ClusterFailures, NodeCrashStopsTheClusterWithAClearError) {
  auto r =
      runProcess({kDistnode, "--local", "2", "--placement", "scatter", fixture("crash") + ".bc"},
                 std::chrono::seconds(60));
  ASSERT_FALSE(r.timed_out) << "a dead node must not hang the cluster";
  EXPECT_EQ(r.exit_code, 128 + SIGSEGV) << "as a shell reports the native crash\n" << r.err;
  EXPECT_EQ(r.out, "0\n0\n1\n") << "the calls before the crash were answered";
  EXPECT_EQ(r.err, "distnode: error: node `n1` crashed (signal Segmentation fault) running "
                   "`fragile`; stopping the cluster\n");
}

// A stack overflow on a member (a fault with no stack left) is told as any crash: the crash
// handler runs on a stack of its own.
TEST(ClusterFailures, StackOverflowOnAMemberIsToldAtOnce) {
  std::string config =
      writeTempFile("overflow.yaml", clusterConfig(2, 10000, "heartbeat_timeout_ms: 60000\n"));
  auto [entry, members] = runJoined(config, fixture("overflow") + ".bc", 2,
                                    {"--placement", "scatter"}, {}, std::chrono::seconds(50));
  const ProcessResult &crashed = members[0];
  ASSERT_FALSE(entry.timed_out) << "the heartbeat timeout is 60 s";
  EXPECT_EQ(crashed.signal, SIGSEGV);
  EXPECT_EQ(entry.exit_code, 128 + SIGSEGV) << entry.err;
  EXPECT_EQ(entry.err, "distnode: error: node `n1` crashed (signal Segmentation fault) running "
                       "`deep`; stopping the cluster\n");
}

// With a third node, which stops on the entry's word (exit 2, its own prefixed line) while the
// entry reports the crash: the launcher keeps the entry's code, whichever node it reaps first.
TEST(ClusterFailures, NodeCrashOnThreeNodesKeepsTheSignalsExitCode) {
  auto r =
      runProcess({kDistnode, "--local", "3", "--placement", "scatter", fixture("crash") + ".bc"},
                 std::chrono::seconds(60));
  ASSERT_FALSE(r.timed_out);
  EXPECT_EQ(r.exit_code, 128 + SIGSEGV) << r.err;
  EXPECT_EQ(r.err, "distnode: error: node `n1` crashed (signal Segmentation fault) running "
                   "`fragile`; stopping the cluster\n")
      << "one line: n2 stops quietly on the entry's word under the launcher";
}

// Nodes started with --join (no launcher watching): a member that the program crashes tells
// the entry node which signal and which function at once; the entry stops the cluster with that
// line and the signal's exit code, long before the heartbeats would have run out.
TEST(ClusterFailures, CrashedMemberTellsTheEntryAtOnce) {
  std::string config =
      writeTempFile("crash_join.yaml", clusterConfig(3, 10000, "heartbeat_timeout_ms: 60000\n"));
  auto [entry, members] = runJoined(config, fixture("crash") + ".bc", 3, {"--placement", "scatter"},
                                    {}, std::chrono::seconds(50));
  const ProcessResult &crashed = members[0], &other = members[1];
  ASSERT_FALSE(entry.timed_out || other.timed_out) << "the heartbeat timeout is 60 s";
  EXPECT_EQ(crashed.signal, SIGSEGV) << "the member dies of the signal, as natively";
  EXPECT_EQ(entry.exit_code, 128 + SIGSEGV) << entry.err;
  EXPECT_EQ(entry.err, "distnode: error: node `n1` crashed (signal Segmentation fault) running "
                       "`fragile`; stopping the cluster\n");
  EXPECT_EQ(other.exit_code, 2);
  EXPECT_EQ(other.err, "distnode: error: node `n1` crashed (signal Segmentation fault) running "
                       "`fragile`; stopping node `n2`\n");
}

// main returns while a call on n1 calls exit(): the two ends of the program overlap (either
// code may win, as in C) and the first ends it; the entry once crashed here, running the end
// twice at once. With --join, where no launcher stops the member, it is stopped too.
TEST(ClusterFailures, ExitOnAMemberWhileMainReturnsEndsOnce) {
  for (int round = 0; round < 3; ++round) {
    auto r = runProcess({kDistnode, "--local", "2", fixture("member_exit") + ".bc", "--", "race"},
                        std::chrono::seconds(60));
    ASSERT_FALSE(r.timed_out);
    EXPECT_EQ(r.signal, 0) << r.err;
    EXPECT_TRUE(r.exit_code == 0 || r.exit_code == 4) << r.exit_code << "\n" << r.err;
    EXPECT_EQ(r.err, "");
  }
  std::string config = writeTempFile("exit_race.yaml", clusterConfig(2, 10000));
  auto [entry, members] =
      runJoined(config, fixture("member_exit") + ".bc", 2, {}, {"race"}, std::chrono::seconds(60));
  EXPECT_TRUE(entry.exit_code == 0 || entry.exit_code == 4) << entry.exit_code << entry.err;
  EXPECT_EQ(members[0].exit_code, 0) << members[0].err;
  EXPECT_EQ(members[0].err, "");
}

// quick_exit() and _exit(), on a member or in main, end the program with its code on the entry
// node and stop every node: with --join, where no launcher stops the member, it exits 0 in
// silence, as after exit().
TEST(ClusterFailures, QuickAndImmediateExitsStopEveryNode) {
  std::string config = writeTempFile("quick_exits.yaml", clusterConfig(2, 10000));
  const std::pair<const char *, const char *> runs[] = {
      {"member_exit", "quick"},          {"member_exit", "immediate"},
      {"member_exit", "main_immediate"}, {"exit_paths", "signal_pinned"},
      {"exit_paths", "second_end"},      {"exit_paths", "quick_then_immediate"}};
  for (const auto &[program, mode] : runs) {
    SCOPED_TRACE(std::string(program) + " " + mode);
    auto native = runProcess({fixture(program) + ".native", mode});
    auto [entry, members] = runJoined(config, fixture(program) + ".bc", 2,
                                      {"--placement", "scatter"}, {mode}, std::chrono::seconds(60));
    EXPECT_EQ(entry.exit_code, native.exit_code) << entry.err;
    EXPECT_EQ(entry.out, native.out);
    EXPECT_EQ(entry.err, "");
    EXPECT_EQ(members[0].exit_code, 0) << members[0].err;
    EXPECT_EQ(members[0].err, "");
  }
}

// A program that dies of SIGPIPE (its reader went away) does so silently, as natively; the
// launcher's exit code is the one a shell gives it.
TEST(ClusterFailures, EntryDyingOfSigpipeIsSilent) {
  auto native = runProcess({fixture("sigpipe") + ".native"});
  EXPECT_EQ(native.signal, SIGPIPE);
  auto r = runProcess({kDistnode, "--local", "2", fixture("sigpipe") + ".bc"});
  EXPECT_EQ(r.exit_code, 128 + SIGPIPE);
  EXPECT_EQ(r.out, native.out);
  EXPECT_EQ(r.err, "");
}

// A child made by fork() cannot reach state that DIST_PIN keeps on another node: it stops with
// one line naming the function and the node; the parent and the cluster go on.
TEST(ClusterFailures, ForkedChildCallingStateElsewhereStopsWithOneLine) {
  auto r = runProcess({kDistnode, "--local", "2", fixture("fork_pinned") + ".bc"},
                      std::chrono::seconds(60));
  ASSERT_FALSE(r.timed_out) << r.err;
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "child exited 2\n");
  EXPECT_EQ(r.err, "distnode: error: `bump` not run in a child process made by fork(): its state "
                   "is on node `n1`, which the child cannot reach; pin it to the entry node or do "
                   "not call it after fork()\n");
}

// Nodes started one by one with --join (no launcher watching them): a node killed with
// SIGKILL mid-run is noticed through missing heartbeats, and every surviving node stops with
// one line naming it, within the heartbeat timeout.
TEST(ClusterFailures, KilledMemberStopsEverySurvivorWithOneLine) {
  std::string config =
      writeTempFile("kill_member.yaml", clusterConfig(3, 10000, "heartbeat_timeout_ms: 1000\n"));
  auto [entry, members] =
      runJoined(config, fixture("die") + ".bc", 3, {}, {"1"}, std::chrono::seconds(60));
  const ProcessResult &killed = members[0], &survivor = members[1];
  ASSERT_FALSE(entry.timed_out || survivor.timed_out) << "a dead node must not hang the others";
  EXPECT_EQ(killed.signal, SIGKILL);
  EXPECT_EQ(entry.out, "0\n2\n4\n") << "the calls before the kill were answered";
  EXPECT_EQ(entry.exit_code, 2);
  EXPECT_EQ(entry.err, "distnode: error: node `n1` stopped answering (no heartbeat for 1000 ms); "
                       "stopping the cluster\n");
  EXPECT_EQ(survivor.exit_code, 2);
  EXPECT_EQ(survivor.err,
            "distnode: error: node `n1` stopped answering (no heartbeat for 1000 ms); "
            "stopping node `n2`\n");
}

// The entry node dies and a new one starts with the same cluster.yaml: a member of the old
// cluster hears from the new entry that it is unknown there and stops with that line, instead of
// living on while the new entry answers its heartbeats with refusals.
TEST(ClusterFailures, MemberOfARestartedEntryStopsWithOneLine) {
  std::string config =
      writeTempFile("restart.yaml", clusterConfig(2, 4000, "heartbeat_timeout_ms: 5000\n"));
  auto member = startProcess({kDistnode, "--join", config, "--name", "n1", fixture("die") + ".bc"},
                             std::chrono::seconds(60));
  auto first =
      runProcess({kDistnode, "--join", config, "--name", "n0", fixture("die") + ".bc", "--", "0"},
                 std::chrono::seconds(60));
  ASSERT_EQ(first.signal, SIGKILL) << first.err;
  auto second =
      runProcess({kDistnode, "--join", config, "--name", "n0", fixture("die") + ".bc", "--", "0"},
                 std::chrono::seconds(60));
  ProcessResult m = member.get();
  EXPECT_EQ(second.exit_code, 2) << "n1 never joins the new cluster\n" << second.err;
  EXPECT_EQ(m.exit_code, 2) << m.err;
  EXPECT_EQ(m.err, "distnode: error: the entry node `n0` no longer knows this node (it was "
                   "restarted); stopping node `n1`\n");
}

// The die fixture on two nodes started with --join (a heartbeat timeout of 1 s), n0 running
// `die mode`: what the entry and the member did.
std::pair<ProcessResult, ProcessResult> runDieOnTwoNodes(const std::string &mode) {
  std::string config =
      writeTempFile("die.yaml", clusterConfig(2, 10000, "heartbeat_timeout_ms: 1000\n"));
  JoinedRun run =
      runJoined(config, fixture("die") + ".bc", 2, {}, {mode}, std::chrono::seconds(60));
  return {std::move(run.entry), std::move(run.members[0])};
}

// The same with 16 threads of the entry calling n1 in loops, their calls on the connection
// they share: none of them hangs, and the entry stops with the one line.
TEST(ClusterFailures, KilledMemberStopsManyCallingThreadsWithOneLine) {
  auto [entry, killed] = runDieOnTwoNodes("2");
  ASSERT_FALSE(entry.timed_out) << "a dead node must not hang the threads calling it";
  EXPECT_EQ(killed.signal, SIGKILL);
  EXPECT_EQ(entry.exit_code, 2) << entry.err;
  EXPECT_EQ(entry.err, "distnode: error: node `n1` stopped answering (no heartbeat for 1000 ms); "
                       "stopping the cluster\n");
}

TEST(ClusterFailures, KilledEntryStopsEveryMemberWithOneLine) {
  auto [entry, member] = runDieOnTwoNodes("0");
  ASSERT_FALSE(member.timed_out) << "a member must not wait forever for a dead entry node";
  EXPECT_EQ(entry.signal, SIGKILL);
  EXPECT_EQ(entry.out, "1\n3\n6\n") << "the calls before the kill were answered";
  EXPECT_EQ(member.exit_code, 2);
  EXPECT_EQ(member.err, "distnode: error: the entry node `n0` stopped answering (no heartbeat for "
                        "1000 ms); stopping node `n1`\n");
}

// `die MODE` under --join, where the entry node dies of `signal` after printing "2": the member
// stops at once with `line` (the heartbeat timeout is far longer than the test).
void expectEntryEndToReachTheMember(const char *mode, int signal, const std::string &line) {
  std::string config =
      writeTempFile("entry_end.yaml", clusterConfig(2, 10000, "heartbeat_timeout_ms: 60000\n"));
  JoinedRun run =
      runJoined(config, fixture("die") + ".bc", 2, {}, {mode}, std::chrono::seconds(50));
  ASSERT_FALSE(run.members[0].timed_out) << "the member waited for its heartbeat timeout";
  EXPECT_EQ(run.entry.signal, signal);
  EXPECT_EQ(run.entry.out, "2\n");
  EXPECT_EQ(run.entry.err, "");
  EXPECT_EQ(run.members[0].exit_code, 2);
  EXPECT_EQ(run.members[0].err, "distnode: error: " + line + "\n");
}

// The entry node crashes: every member stops at once with a line naming it and the signal (the
// heartbeat timeout is far longer than the test), and the entry dies of the signal in silence,
// as natively. Under the launcher, the launcher reports it, with the signal's exit code.
TEST(ClusterFailures, CrashedEntryStopsEveryMemberWithOneLine) {
  expectEntryEndToReachTheMember(
      "3", SIGSEGV, "node `n0` crashed (signal Segmentation fault); stopping node `n1`");
  auto local = runProcess({kDistnode, "--local", "2", fixture("die") + ".bc", "--", "3"});
  EXPECT_EQ(local.exit_code, 128 + SIGSEGV);
  EXPECT_EQ(local.out, "2\n");
  EXPECT_EQ(local.err, "distnode: error: the entry node `n0` died: signal Segmentation fault\n");
}

// The entry node is stopped by a signal (the program raises SIGTERM here; an operator's kill is
// the same): every member stops at once with a line saying so (the heartbeat timeout is far
// longer than the test), and the entry dies of the signal, as natively. A program that handles
// the signal itself goes on, as natively.
TEST(ClusterFailures, EntryStoppedBySignalStopsEveryMemberWithOneLine) {
  expectEntryEndToReachTheMember("4", SIGTERM,
                                 "node `n0` was stopped (signal Terminated); stopping node `n1`");
  ProcessResult expected = runProcess({fixture("die") + ".native", "5"});
  EXPECT_EQ(expected.out, "2\nterminated 1, then 4\n");
  std::string config = writeTempFile("entry_handles.yaml", clusterConfig(2, 10000));
  JoinedRun handled =
      runJoined(config, fixture("die") + ".bc", 2, {}, {"5"}, std::chrono::seconds(50));
  EXPECT_EQ(handled.entry.out, expected.out) << handled.entry.err;
  EXPECT_EQ(handled.entry.err, "");
  EXPECT_EQ(handled.entry.exit_code, 0);
  EXPECT_EQ(handled.members[0].exit_code, 0) << handled.members[0].err;
  // A child made by fork() that ends through the handler it found (the runtime's) ends alone.
  ProcessResult forked_native = runProcess({fixture("die") + ".native", "6"});
  EXPECT_EQ(forked_native.out, "2\nchild ended by signal 15, then 4\n");
  JoinedRun forked =
      runJoined(config, fixture("die") + ".bc", 2, {}, {"6"}, std::chrono::seconds(50));
  EXPECT_EQ(forked.entry.out, forked_native.out) << forked.entry.err;
  EXPECT_EQ(forked.entry.exit_code, 0) << forked.entry.err;
  EXPECT_EQ(forked.members[0].exit_code, 0) << forked.members[0].err;
  // A stop signal the entry node inherits ignored (nohup, a shell's background job) stays
  // ignored, as natively.
  const std::vector<std::string> ignoring = {"/bin/sh", "-c", "trap '' TERM; exec \"$0\" \"$@\""};
  auto withTermIgnored = [&](std::vector<std::string> argv) {
    argv.insert(argv.begin(), ignoring.begin(), ignoring.end());
    return argv;
  };
  ProcessResult native = runProcess(withTermIgnored({fixture("die") + ".native", "4"}));
  EXPECT_EQ(native.out, "2\nterminated 0, then 4\n");
  auto member = startProcess({kDistnode, "--join", config, "--name", "n1", fixture("die") + ".bc"});
  ProcessResult entry = runProcess(withTermIgnored(
      {kDistnode, "--join", config, "--name", "n0", fixture("die") + ".bc", "--", "4"}));
  ProcessResult m = member.get();
  EXPECT_EQ(entry.out, native.out) << entry.err;
  EXPECT_EQ(entry.exit_code, 0) << entry.err;
  EXPECT_EQ(m.exit_code, 0) << m.err;
}

// A member stopped by a signal (the program raises SIGTERM there; an operator's kill is the
// same) exits quietly, and the entry node stops the cluster at once with a line saying so
// (the heartbeat timeout is far longer than the test) and the signal's exit code.
TEST(ClusterFailures, MemberStoppedBySignalStopsTheClusterWithOneLine) {
  std::string config =
      writeTempFile("member_stop.yaml", clusterConfig(2, 10000, "heartbeat_timeout_ms: 60000\n"));
  JoinedRun run = runJoined(config, fixture("die") + ".bc", 2, {}, {"7"}, std::chrono::seconds(50));
  ASSERT_FALSE(run.entry.timed_out) << "the entry waited for its heartbeat timeout";
  EXPECT_EQ(run.entry.out, "2\n");
  EXPECT_EQ(run.entry.exit_code, 128 + SIGTERM);
  EXPECT_EQ(run.entry.err,
            "distnode: error: node `n1` was stopped (signal Terminated); stopping the cluster\n");
  EXPECT_EQ(run.members[0].exit_code, 128 + SIGTERM);
  EXPECT_EQ(run.members[0].err, "");
}

// A thread calls exit(5) while main waits for a call that runs for minutes on n1: as natively,
// the program ends at once, n1 included (it does not wait for the call, and the launcher need
// not kill it).
TEST(ClusterFailures, ExitWhileACallRunsElsewhereEndsEveryNode) {
  std::string placement = writeTempFile("exit_mid_call.yaml", "spin: n1\n");
  std::string bc = fixture("exit_mid_call") + ".bc";
  ProcessResult expected = runProcess({fixture("exit_mid_call") + ".native"});
  ProcessResult actual = runProcess({kDistnode, "--local", "2", "--placement", placement, bc});
  ASSERT_FALSE(actual.timed_out) << actual.err;
  EXPECT_EQ(actual.exit_code, 5) << actual.err;
  EXPECT_EQ(actual.out, expected.out);
  EXPECT_EQ(actual.err, "") << "no node had to be killed";
}

// Ctrl-C on `distnode --local`: every node stops and is reaped; the exit code says SIGINT.
TEST(ClusterFailures, InterruptStopsAndReapsEveryNode) {
  int err_pipe[2];
  ASSERT_EQ(pipe2(err_pipe, O_CLOEXEC), 0);
  std::string bc = fixture("spin") + ".bc";
  pid_t pid = fork();
  if (pid == 0) {
    dup2(err_pipe[1], 2);
    execl(kDistnode.c_str(), "distnode", "--local", "2", "--placement", "scatter", bc.c_str(),
          static_cast<char *>(nullptr));
    _exit(127);
  }
  close(err_pipe[1]);
  // Wait for the program to say it runs, then interrupt the launcher.
  std::string err;
  pollfd fd = {err_pipe[0], POLLIN, 0};
  while (err.find("ready\n") == std::string::npos) {
    ASSERT_EQ(poll(&fd, 1, 30000), 1) << "the program never started: " << err;
    char buffer[4096];
    ssize_t n = read(err_pipe[0], buffer, sizeof buffer);
    ASSERT_GT(n, 0) << err;
    err.append(buffer, static_cast<size_t>(n));
  }
  kill(pid, SIGINT);
  // EOF on stderr: the launcher and the entry node (which shares this stderr) have exited.
  while (true) {
    ASSERT_EQ(poll(&fd, 1, 30000), 1) << "the cluster did not stop";
    char buffer[4096];
    ssize_t n = read(err_pipe[0], buffer, sizeof buffer);
    if (n <= 0)
      break;
    err.append(buffer, static_cast<size_t>(n));
  }
  close(err_pipe[0]);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status)) << err;
  EXPECT_EQ(WEXITSTATUS(status), 128 + SIGINT) << err;
  EXPECT_EQ(err.find("error"), std::string::npos) << "an interrupt is not an error: " << err;
}

// Concurrent serving. Two calls of different threads on a member with two workers overlap:
// each waits until both have arrived (a member running calls one at a time makes the first
// give up, and the output differs from native).
TEST(ConcurrentServing, TwoCallsOfDifferentThreadsOverlapOnAMember) {
  ProcessResult expected = runProcess({fixture("rendezvous") + ".native"});
  std::string yaml = clusterConfig(2, 10000) + "placement:\n  meet: n1\n";
  yaml = std::regex_replace(yaml, std::regex("  - name: n1\n"),
                            "  - name: n1\n    capacity: {cpu: 2}\n");
  std::string config = writeTempFile("rendezvous.yaml", yaml);
  auto member =
      startProcess({kDistnode, "--join", config, "--name", "n1", fixture("rendezvous") + ".bc"});
  ProcessResult entry =
      runProcess({kDistnode, "--join", config, "--name", "n0", fixture("rendezvous") + ".bc"});
  ProcessResult m = member.get();
  EXPECT_EQ(expected.out, "met 10 20\n");
  EXPECT_EQ(entry.out, expected.out) << entry.err;
  EXPECT_EQ(m.exit_code, 0) << m.err;
}

TEST(ConcurrentServing, ThousandOneHundredThreadsEachCallingRemotely) {
  ProcessResult expected = runProcess({fixture("many_threads") + ".native"});
  ProcessResult actual = runProcess(
      {kDistnode, "--local", "2", "--placement", "scatter", fixture("many_threads") + ".bc"});
  ASSERT_FALSE(actual.timed_out);
  EXPECT_EQ(actual.signal, 0) << actual.err;
  EXPECT_EQ(actual.out, expected.out) << actual.err;
  EXPECT_EQ(actual.exit_code, 0) << actual.err;
}

// Eight threads, each with its own chain of nested calls crossing the two nodes at once: every
// nested call must reach the thread of its own chain.
TEST(ConcurrentServing, NestedChainsOfEightThreadsAtOnce) {
  ProcessResult expected = runProcess({fixture("chains") + ".native"});
  ProcessResult actual =
      runProcess({kDistnode, "--local", "2", "--placement", "scatter", fixture("chains") + ".bc"});
  ASSERT_FALSE(actual.timed_out);
  EXPECT_EQ(actual.signal, 0) << actual.err;
  EXPECT_EQ(actual.out, expected.out) << actual.err;
}

// distnode's own log: every line has the time, the node and the level; the program's output
// is untouched and never in the log.
TEST(Logging, LogFileLinesCarryTimeNodeAndLevel) {
  std::string log = ::testing::TempDir() + "/distnode_log.txt";
  std::remove(log.c_str());
  ProcessResult expected = runProcess({fixture("hello") + ".native", "a"});
  ProcessResult r = runProcess({kDistnode, "--local", "2", "--log-level", "info", "--log-file", log,
                                fixture("hello") + ".bc", "--", "a"});
  EXPECT_EQ(r.out, expected.out);
  EXPECT_EQ(r.err, expected.err) << "nothing but the program's own stderr";
  EXPECT_EQ(r.exit_code, expected.exit_code);
  std::ifstream in(log);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::string> lines = splitLines(text);
  ASSERT_FALSE(lines.empty()) << "no log at level info";
  std::regex shape(R"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} \[n[01]\] (info|warning): .+)");
  for (const auto &line : lines)
    EXPECT_TRUE(std::regex_match(line, shape)) << line;
  EXPECT_NE(text.find("[n0] info: node `n1` joined"), std::string::npos) << text;
  EXPECT_NE(text.find("[n1] info: joined the cluster"), std::string::npos) << text;
}

TEST(Logging, UnknownLevelIsOneLineError) {
  expectOneLineError(runProcess({kDistnode, "--log-level", "loud", fixture("hello") + ".bc"}),
                     "--log-level `loud` is not a level; use one of trace, debug, info, warn, "
                     "error, off");
}

// max_message_mb caps one call's arguments: a larger call is refused on the calling side with
// one line naming the parameter, before anything is sent (a node would drop a connection that
// sent it).
TEST(ClusterErrors, CallAboveMaxMessageSizeIsOneLineError) {
  std::string config =
      writeTempFile("small_messages.yaml",
                    clusterConfig(2, 10000, "max_message_mb: 1\nheartbeat_timeout_ms: 500\n") +
                        "placement:\n  total: n1\n");
  auto member =
      startProcess({kDistnode, "--join", config, "--name", "n1", fixture("big_call") + ".bc"});
  ProcessResult entry =
      runProcess({kDistnode, "--join", config, "--name", "n0", fixture("big_call") + ".bc"});
  ProcessResult m = member.get();
  expectOneLineError(entry, "call of `total`: parameter `data`: 2097152 elements of 1 bytes "
                            "exceed the 1 MiB limit of one call");
  // The member hears it from the entry node (not from heartbeats running out).
  expectOneLineError(m, "call of `total`: parameter `data`: 2097152 elements of 1 bytes exceed "
                        "the 1 MiB limit of one call (cluster.yaml's max_message_mb); stopping "
                        "node `n1`");
}

// One versioned placement: under --chaos-ms every stateless unit moves to a random node every
// 2 ms (a new epoch each time) while 8 threads call them, nested calls included; calls that
// reach a node which no longer owns their unit are answered Moved and retried. About 10 s on
// three nodes; the output must be the native one.
TEST(ChaosMode, ThreeNodesEightThreadsUnitsMovingEveryTwoMsMatchNative) {
  ProcessResult expected = runProcess({fixture("chaos") + ".native", "600000"});
  ProcessResult actual = runProcess({kDistnode, "--local", "3", "--placement", "scatter",
                                     "--chaos-ms", "2", fixture("chaos") + ".bc", "--", "600000"},
                                    std::chrono::seconds(240));
  ASSERT_FALSE(actual.timed_out);
  EXPECT_EQ(actual.signal, 0) << actual.err;
  EXPECT_EQ(actual.exit_code, 0) << actual.err;
  EXPECT_EQ(actual.out, expected.out) << actual.err;
  EXPECT_EQ(actual.err, "");
}

// A stateful unit moved, state and all, every few milliseconds while 8 threads call it: every
// call sees the state the previous one left, wherever the unit went.
TEST(ChaosMode, StatefulUnitMigratingEveryThreeMsUnderEightThreadsMatchesNative) {
  std::string log = ::testing::TempDir() + "migrate-chaos-" + std::to_string(::getpid()) + ".log";
  std::filesystem::remove(log);
  ProcessResult expected = runProcess({fixture("migrate_chaos") + ".native", "400000"});
  ProcessResult actual = runProcess({kDistnode, "--local", "3", "--placement", "scatter",
                                     "--chaos-ms", "3", "--log-level", "debug", "--log-file", log,
                                     fixture("migrate_chaos") + ".bc", "--", "400000"},
                                    std::chrono::seconds(240));
  ASSERT_FALSE(actual.timed_out);
  EXPECT_EQ(actual.exit_code, 0) << actual.err;
  EXPECT_EQ(actual.out, expected.out) << actual.err;
  EXPECT_EQ(expected.out.rfind("mismatches: 0\n", 0), 0u);
  std::ifstream in(log);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::size_t moves = 0;
  for (std::size_t at = 0; (at = text.find("bytes of state moved", at)) != std::string::npos; ++at)
    ++moves;
  EXPECT_GE(moves, 5u) << "the unit's state moved between nodes during the run";
}

// Recursion that alternates between two nodes: every level is a call nested in the wait for
// the level above, on both nodes. Nested calls move to fresh stack segments when a thread's
// stack runs low, so the depth is that of the native program, not of the thread's stack.
TEST(DeepRecursion, SixtyThousandLevelsAcrossTwoNodesMatchNative) {
  ProcessResult expected = runProcess({fixture("deep") + ".native", "60000"});
  ProcessResult actual = runProcess(
      {kDistnode, "--local", "2", "--placement", "scatter", fixture("deep") + ".bc", "--", "60000"},
      std::chrono::seconds(240));
  ASSERT_FALSE(actual.timed_out);
  EXPECT_EQ(actual.signal, 0) << actual.err;
  EXPECT_EQ(actual.exit_code, 0) << actual.err;
  EXPECT_EQ(actual.out, expected.out) << actual.err;
}

TEST(DeepRecursion, TwoHundredThousandLevelsUnderLoopbackMatchNative) {
  ProcessResult expected = runProcess({fixture("deep") + ".native", "200000"});
  ProcessResult actual =
      runProcess({kDistnode, "--loopback", fixture("deep") + ".bc", "--", "200000"});
  ASSERT_FALSE(actual.timed_out);
  EXPECT_EQ(actual.signal, 0) << actual.err;
  EXPECT_EQ(actual.out, expected.out) << actual.err;
}

// Where a limit remains (here: no stack beyond the thread's own), the call is refused before
// the stack overflows, and the run stops with one line naming the function and the depth.
TEST(DeepRecursion, StackLimitIsOneErrorLineNamingFunctionAndDepth) {
  ProcessResult r =
      runProcess({"/usr/bin/env", "DISTNODE_STACK_BUDGET_MB=0", kDistnode, "--local", "2",
                  "--placement", "scatter", fixture("deep") + ".bc", "--", "60000"});
  ASSERT_FALSE(r.timed_out);
  EXPECT_EQ(r.signal, 0) << r.err;
  EXPECT_EQ(r.exit_code, 2) << r.err;
  // Reported once, by whichever node's call was refused (a member's line has its prefix).
  std::regex line(R"((\[n1\] )?distnode: error: call of `p[io]ng` on node `n[01]` failed: )"
                  R"(`p[io]ng` not run: \d+ calls nested on one thread of this node use all of )"
                  R"(its stack .*\n)");
  EXPECT_TRUE(std::regex_match(r.err, line)) << r.err;

  ProcessResult loopback = runProcess({"/usr/bin/env", "DISTNODE_STACK_BUDGET_MB=0", kDistnode,
                                       "--loopback", fixture("deep") + ".bc", "--", "200000"});
  EXPECT_EQ(loopback.signal, 0) << loopback.err;
  EXPECT_EQ(loopback.exit_code, 2) << loopback.err;
  EXPECT_NE(loopback.err.find("calls nested on one thread"), std::string::npos) << loopback.err;
}

} // namespace
} // namespace distnode::testing
