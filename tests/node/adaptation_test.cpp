// adaptation_test.cpp - the online loop on real clusters: work moves while programs run, the
// output stays the native one, and the admin socket answers distctl, a Python client and
// malformed requests.
#include "tests/support/subprocess.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <zmq.hpp>

#include <filesystem>
#include <fstream>
#include <regex>
#include <thread>

namespace distnode::testing {
namespace {

using nlohmann::json;

const std::string kDistnode = DIST_DISTNODE;
const std::string kDistctl = DIST_DISTCTL;

std::string fixture(const std::string &name) {
  return std::string(DIST_FIXTURE_DIR) + "/fixture_" + name;
}
std::string example(const std::string &name) { return std::string(DIST_EXAMPLES_DIR) + "/" + name; }

// A --local cluster running adapt_target until stop() (or its destructor) creates the stop
// file; its admin sockets are found through the cluster.yaml it writes.
class RunningCluster {
public:
  explicit RunningCluster(std::vector<std::string> extra_flags = {}, int nodes = 3) {
    static int serial = 0;
    std::string dir = ::testing::TempDir() + "adapt-" + std::to_string(::getpid()) + "-" +
                      std::to_string(serial++);
    std::filesystem::create_directories(dir);
    stop_file_ = dir + "/stop";
    cluster_yaml_ = dir + "/cluster.yaml";
    std::vector<std::string> argv = {kDistnode, "--local", std::to_string(nodes), "--cluster-out",
                                     cluster_yaml_};
    argv.insert(argv.end(), extra_flags.begin(), extra_flags.end());
    argv.insert(argv.end(), {fixture("adapt_target.bc"), "--", stop_file_});
    run_ = startProcess(argv, std::chrono::seconds(120));
  }
  ~RunningCluster() {
    if (run_.valid())
      (void)stop();
  }

  // Runs distctl against the coordinator (or `node`).
  ProcessResult ctl(std::vector<std::string> args, const std::string &node = "") {
    std::vector<std::string> argv = {kDistctl, "--cluster", cluster_yaml_};
    if (!node.empty())
      argv.insert(argv.end(), {"--node", node});
    argv.insert(argv.end(), args.begin(), args.end());
    return runProcess(argv, std::chrono::seconds(30));
  }
  json ctlJson(std::vector<std::string> args) {
    args.insert(args.begin(), "--json");
    ProcessResult r = ctl(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return json::parse(r.out, nullptr, false);
  }

  // Waits until the coordinator answers (the cluster has started), at most 60 s.
  bool waitReady() {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (std::chrono::steady_clock::now() < deadline) {
      if (std::filesystem::exists(cluster_yaml_) && ctl({"status"}).exit_code == 0)
        return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50)); // the sockets are not up yet
    }
    return false;
  }

  // Polls `ok` (a query of the running cluster) until it holds, at most 60 s.
  template <typename F> bool eventually(F ok) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (std::chrono::steady_clock::now() < deadline) {
      if (ok())
        return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }

  ProcessResult stop() {
    std::ofstream(stop_file_) << "stop\n";
    return run_.get();
  }

  // Why the cluster never answered: it is stopped, and its exit and stderr are returned.
  std::string whyNotReady() {
    ProcessResult r = stop();
    return "the cluster never answered `status`; it exited with " + std::to_string(r.exit_code) +
           (r.timed_out ? " (timed out)" : "") + ", stderr:\n" + r.err;
  }

  const std::string &clusterYaml() const { return cluster_yaml_; }

private:
  std::string stop_file_, cluster_yaml_;
  std::future<ProcessResult> run_;
};

std::string nodeOf(const json &placement, const std::string &unit) {
  for (const auto &u : placement["units"])
    if (u["unit"] == unit)
      return u["node"];
  return "";
}

const std::string kExpected = "rounds that disagreed: 0\n";

TEST(Adaptation, ChattyPairEndsOnOneNodeAndOutputMatchesNative) {
  RunningCluster c({"--placement", "scatter", "--adapt-interval-ms", "100"});
  ASSERT_TRUE(c.waitReady()) << c.whyNotReady();
  // Scatter starts driver and mix on different nodes; the loop brings them together.
  EXPECT_TRUE(c.eventually([&] {
    json p = c.ctlJson({"placement"});
    return !nodeOf(p, "driver").empty() && nodeOf(p, "driver") == nodeOf(p, "mix");
  }));
  json history = c.ctlJson({"history"});
  ASSERT_GE(history["entries"].size(), 2u);
  EXPECT_EQ(history["entries"][0]["trigger"], "start");
  bool planner_moved = false;
  for (const auto &h : history["entries"])
    if (h["trigger"] == "planner")
      for (const auto &m : h["moves"])
        planner_moved |= m.get<std::string>().find("remote calls with") != std::string::npos;
  EXPECT_TRUE(planner_moved) << history.dump(2);
  ProcessResult r = c.stop();
  EXPECT_EQ(r.out, kExpected) << r.err;
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

// Scattered and held still, `driver` calls `mix` on another node thousands of times a second:
// the caller's node measures that link from the calls' own round trips (less the time `mix`
// took, which the reply carries); links without calls are measured by probes.
TEST(Adaptation, LinksAreMeasuredByTheCallsThatCrossThem) {
  RunningCluster c({"--placement", "scatter", "--no-adapt", "--adapt-interval-ms", "100"});
  ASSERT_TRUE(c.waitReady()) << c.whyNotReady();
  json p = c.ctlJson({"placement"});
  std::string from = nodeOf(p, "driver"), to = nodeOf(p, "mix");
  ASSERT_NE(from, to) << p.dump();
  json link, others;
  EXPECT_TRUE(c.eventually([&] {
    json profile = c.ctlJson({"profile"});
    bool found = false;
    others = json::array();
    for (const auto &l : profile["links"])
      if (l["from"] == from && l["to"] == to && l["latency_by"] == "calls") {
        link = l;
        found = true;
      } else if (l["from"] != from || l["to"] != to) {
        others.push_back(l);
      }
    return found && others.size() == 5;
  })) << link.dump()
      << others.dump();
  EXPECT_GT(link["latency_us"].get<double>(), 0) << link.dump();
  EXPECT_EQ(link["bandwidth_by"], "probes") << "small calls say nothing of bandwidth";
  EXPECT_GT(link["bandwidth_mb_s"].get<double>(), 0) << link.dump();
  bool probed = false;
  for (const auto &l : others)
    probed |= l["latency_by"] == "probes" && l["latency_us"].get<double>() > 0;
  EXPECT_TRUE(probed) << others.dump();
  ProcessResult r = c.stop();
  EXPECT_EQ(r.out, kExpected) << r.err;
}

// The planning interval is the entry's: `set interval_ms` changes how often rounds ask every
// node for its report (and reaches the members with the entry's next heartbeat), and each
// node's next report covers the new interval.
TEST(Adaptation, MembersReportAtTheIntervalTheOperatorSets) {
  RunningCluster c({"--adapt-interval-ms", "100"});
  ASSERT_TRUE(c.waitReady()) << c.whyNotReady();
  auto intervalsWithin = [&](double low, double high) {
    json s = c.ctlJson({"status"});
    for (const auto &n : s["nodes"]) {
      double ms = n["report_interval_ms"].get<double>();
      if (ms < low || ms > high)
        return false;
    }
    return s["nodes"].size() == 3;
  };
  EXPECT_TRUE(c.eventually([&] { return intervalsWithin(50, 200); }))
      << c.ctlJson({"status"}).dump();
  EXPECT_TRUE(c.ctlJson({"set", "interval_ms=400"})["ok"].get<bool>());
  EXPECT_TRUE(c.eventually([&] { return intervalsWithin(300, 540); }))
      << c.ctlJson({"status"}).dump();
  ProcessResult r = c.stop();
  EXPECT_EQ(r.out, kExpected) << r.err;
}

// The unit of the function `function` in a placement answer.
std::string unitOf(const json &placement, const std::string &function) {
  for (const auto &u : placement["units"])
    for (const auto &f : u["functions"])
      if (f == function)
        return u["unit"];
  return "";
}

TEST(Adaptation, ImmovableUnitsNeverMoveAndPlacementSaysWhy) {
  RunningCluster c({"--placement", "scatter", "--adapt-interval-ms", "100"});
  ASSERT_TRUE(c.waitReady()) << c.whyNotReady();
  json p = c.ctlJson({"placement"});
  std::string pointer_unit = unitOf(p, "remember");
  ASSERT_FALSE(pointer_unit.empty());
  std::string start_node = nodeOf(p, pointer_unit);
  for (const auto &u : p["units"]) {
    if (u["unit"] == "main") {
      EXPECT_FALSE(u["movable"].get<bool>());
      EXPECT_NE(u["why_fixed"].get<std::string>().find("entry node"), std::string::npos);
    }
    if (u["unit"] == pointer_unit) {
      EXPECT_FALSE(u["movable"].get<bool>());
      EXPECT_EQ(u["why_fixed"], "mutable global `last_label` (`char *`) holds a pointer, which "
                                "means nothing on another node; it stays where it started");
    }
    if (u["unit"] == unitOf(p, "tally_add")) {
      EXPECT_TRUE(u["movable"].get<bool>()) << "its state migrates";
    }
  }
  ProcessResult refused = c.ctl({"move", "remember", "n0"});
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_EQ(refused.err.rfind("distctl: error: `" + pointer_unit + "` cannot move: ", 0), 0u)
      << refused.err;
  // Let a few rounds of planning pass: the unit stays where it started.
  ASSERT_TRUE(c.eventually([&] { return c.ctlJson({"history"})["entries"].size() >= 2; }));
  EXPECT_EQ(nodeOf(c.ctlJson({"placement"}), pointer_unit), start_node);
  json history = c.ctlJson({"history"});
  for (const auto &h : history["entries"])
    for (const auto &m : h["moves"])
      EXPECT_EQ(m.get<std::string>().find("`" + pointer_unit + "`"), std::string::npos) << m;
  EXPECT_EQ(c.stop().out, kExpected);
}

// The unit with state moves between nodes while the program runs, back and forth; every
// round checks that the running total went on where it left off.
TEST(Adaptation, StatefulUnitMigratedMidRunKeepsItsState) {
  RunningCluster c({"--no-adapt"});
  ASSERT_TRUE(c.waitReady()) << c.whyNotReady();
  std::string unit = unitOf(c.ctlJson({"placement"}), "tally_add");
  ASSERT_FALSE(unit.empty());
  for (const char *node : {"n1", "n2", "n0", "n2", "n1", "n0", "n1"}) {
    json moved = c.ctlJson({"move", unit, node});
    ASSERT_TRUE(moved["ok"].get<bool>()) << moved.dump();
    EXPECT_EQ(nodeOf(c.ctlJson({"placement"}), unit), node);
  }
  ProcessResult r = c.stop();
  EXPECT_EQ(r.out, kExpected) << r.err;
  EXPECT_EQ(r.exit_code, 0);
}

TEST(Adaptation, NoAdaptHoldsThePlacementStill) {
  RunningCluster c({"--placement", "scatter", "--adapt-interval-ms", "100", "--no-adapt"});
  ASSERT_TRUE(c.waitReady()) << c.whyNotReady();
  json status = c.ctlJson({"status"});
  EXPECT_FALSE(status["adapt"]["enabled"].get<bool>());
  // Profiles still arrive: the chatty edge shows up, and nothing moves.
  EXPECT_TRUE(c.eventually([&] {
    json profile = c.ctlJson({"profile"});
    for (const auto &e : profile["edges"])
      if (e["caller"] == "driver" && e["callee"] == "mix" && e["calls_per_s"].get<double>() > 0)
        return true;
    return false;
  }));
  EXPECT_EQ(c.ctlJson({"status"})["epoch"], 1);
  EXPECT_EQ(c.ctlJson({"history"})["entries"].size(), 1u);
  EXPECT_EQ(c.stop().out, kExpected);
}

// `coordinator:` names a node that is not the entry node: it runs the loop. The entry node
// asks the members for each round's reports and forwards them, with its own, to it; the
// coordinator's placements go through the entry node to every node; admin requests to any
// node reach it.
TEST(Adaptation, ACoordinatorThatIsNotTheEntryNodeRunsTheLoop) {
  std::string log = ::testing::TempDir() + "coordinator-" + std::to_string(::getpid()) + ".log";
  std::filesystem::remove(log);
  RunningCluster c({"--coordinator", "n2", "--placement", "scatter", "--adapt-interval-ms", "100",
                    "--log-level", "debug", "--log-file", log});
  ASSERT_TRUE(c.waitReady()) << c.whyNotReady();
  // The planner brings the chatty pair together, as on the entry node.
  EXPECT_TRUE(c.eventually([&] {
    json p = c.ctlJson({"placement"});
    return !nodeOf(p, "driver").empty() && nodeOf(p, "driver") == nodeOf(p, "mix");
  }));
  ProcessResult status = c.ctl({"--json", "status"}, "n0"); // forwarded by the entry node
  ASSERT_EQ(status.exit_code, 0) << status.err;
  json s = json::parse(status.out, nullptr, false);
  EXPECT_EQ(s["coordinator"], "n2");
  // Every node's report reaches it: each shows the interval its reports cover.
  EXPECT_TRUE(c.eventually([&] {
    json st = c.ctlJson({"status"});
    for (const auto &n : st["nodes"])
      if (n["report_interval_ms"].get<double>() <= 0)
        return false;
    return true;
  })) << c.ctlJson({"status"}).dump();
  json history = c.ctlJson({"history"});
  bool planner_moved = false;
  for (const auto &h : history["entries"])
    planner_moved |= h["trigger"] == "planner";
  EXPECT_TRUE(planner_moved) << history.dump(2);
  // The operator's moves of a unit with state, through the entry node, keep its state.
  EXPECT_TRUE(c.ctlJson({"freeze"})["ok"].get<bool>());
  std::string unit = unitOf(c.ctlJson({"placement"}), "tally_add");
  ASSERT_FALSE(unit.empty());
  for (const char *node : {"n1", "n2", "n0", "n1"}) {
    json moved = c.ctlJson({"move", unit, node});
    ASSERT_TRUE(moved["ok"].get<bool>()) << moved.dump();
    EXPECT_EQ(nodeOf(c.ctlJson({"placement"}), unit), node);
  }
  std::uint64_t last = c.ctlJson({"status"})["epoch"].get<std::uint64_t>();
  ProcessResult r = c.stop();
  EXPECT_EQ(r.out, kExpected) << r.err;
  EXPECT_EQ(r.exit_code, 0) << r.err;
  // Every node ran the coordinator's last epoch.
  std::ifstream in(log);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  for (const char *node : {"n0", "n1", "n2"})
    EXPECT_NE(text.find("[" + std::string(node) + "] debug: placement epoch " +
                        std::to_string(last) + " in effect"),
              std::string::npos)
        << node << ", epoch " << last;
}

TEST(Admin, EveryCommandFromDistctl) {
  RunningCluster c({"--adapt-interval-ms", "100", "--no-adapt"});
  ASSERT_TRUE(c.waitReady()) << c.whyNotReady();

  ProcessResult status = c.ctl({"status"});
  EXPECT_EQ(status.exit_code, 0) << status.err;
  EXPECT_NE(status.out.find("cluster local, coordinator n0, placement epoch 1"), std::string::npos)
      << status.out;
  EXPECT_NE(status.out.find("n2"), std::string::npos);

  json moved = c.ctlJson({"move", "mix", "n2"});
  EXPECT_TRUE(moved["ok"].get<bool>());
  EXPECT_EQ(moved["epoch"], 2);
  EXPECT_EQ(nodeOf(c.ctlJson({"placement"}), "mix"), "n2");
  ProcessResult human = c.ctl({"move", "mix", "n1"});
  EXPECT_EQ(human.out, "moved `mix` n2→n1: operator request\nplacement epoch 3 in effect\n");

  json pinned = c.ctlJson({"pin", "driver", "n1"});
  EXPECT_EQ(pinned["pinned_to"], "n1");
  json p = c.ctlJson({"placement"});
  EXPECT_EQ(nodeOf(p, "driver"), "n1");
  for (const auto &u : p["units"]) {
    if (u["unit"] == "driver") {
      EXPECT_EQ(u["pinned_to"], "n1");
    }
  }
  // A pinned unit moves only where it is pinned (the planner would move it back).
  ProcessResult pinned_move = c.ctl({"move", "driver", "n2"});
  EXPECT_EQ(pinned_move.exit_code, 1);
  EXPECT_EQ(pinned_move.err,
            "distctl: error: `driver` is pinned to n1 by the operator; `unpin driver` first\n");
  EXPECT_EQ(nodeOf(c.ctlJson({"placement"}), "driver"), "n1");
  EXPECT_EQ(c.ctlJson({"unpin", "driver"})["pinned_to"], nullptr);

  // A load-balanced unit: its replicas (on every node until the profile says otherwise) and
  // their shares; it is never moved as a whole.
  for (const auto &u : p["units"])
    if (u["unit"] == "spread") {
      ASSERT_TRUE(u["replicas"].is_array()) << u.dump();
      EXPECT_EQ(u["replicas"].size(), 3u) << u.dump();
      EXPECT_DOUBLE_EQ(u["replicas"][0]["share"].get<double>(), 0.333);
      EXPECT_EQ(u["why_fixed"], "load-balanced: runs on every node of its replica set");
    } else {
      EXPECT_TRUE(u["replicas"].is_null()) << u.dump();
    }
  EXPECT_NE(c.ctl({"placement"}).out.find("n0 33%, n1 33%, n2 33%"), std::string::npos);
  ProcessResult lb_move = c.ctl({"move", "spread", "n1"});
  EXPECT_NE(lb_move.exit_code, 0);
  EXPECT_NE(lb_move.err.find("`spread` cannot move: load-balanced"), std::string::npos)
      << lb_move.err;

  EXPECT_FALSE(c.ctlJson({"freeze"})["adapt"]["enabled"].get<bool>());
  EXPECT_TRUE(c.ctlJson({"thaw"})["adapt"]["enabled"].get<bool>());
  EXPECT_FALSE(c.ctlJson({"freeze"})["adapt"]["enabled"].get<bool>());
  json set = c.ctlJson({"set", "hysteresis=0.2", "cooldown_ms=1500"});
  EXPECT_DOUBLE_EQ(set["adapt"]["hysteresis"].get<double>(), 0.2);
  EXPECT_EQ(set["adapt"]["cooldown_ms"], 1500);

  json drained = c.ctlJson({"drain", "n1"});
  EXPECT_TRUE(drained["ok"].get<bool>()) << drained.dump();
  p = c.ctlJson({"placement"});
  EXPECT_NE(nodeOf(p, "mix"), "n1");
  EXPECT_NE(nodeOf(p, "driver"), "n1");
  EXPECT_EQ(c.ctl({"move", "mix", "n1"}).err,
            "distctl: error: node `n1` is drained; `undrain` it first\n");
  json undrained = c.ctlJson({"undrain", "n1"});
  EXPECT_TRUE(undrained["ok"].get<bool>());
  EXPECT_FALSE(undrained["changed"].get<bool>());
  EXPECT_NE(undrained["reason"].get<std::string>().find("may place units on the node again"),
            std::string::npos)
      << undrained.dump();

  EXPECT_TRUE(c.ctlJson({"repartition"})["ok"].get<bool>());
  json profile = c.ctlJson({"profile"});
  EXPECT_TRUE(profile["units"].is_array());
  EXPECT_TRUE(profile["links"].is_array());
  ProcessResult graph = c.ctl({"graph"});
  EXPECT_EQ(graph.out.rfind("digraph distnode {", 0), 0u) << graph.out;
  json history = c.ctlJson({"history"});
  std::vector<std::string> triggers;
  for (const auto &h : history["entries"])
    triggers.push_back(h["trigger"]);
  ASSERT_GE(triggers.size(), 4u);
  EXPECT_EQ(triggers[0], "start");
  EXPECT_EQ(triggers[1], "operator: move");

  // The live view, twice: status, hot edges, where each unit runs, recent moves.
  ProcessResult top = c.ctl({"top", "--iterations", "2", "--interval-ms", "50"});
  EXPECT_EQ(top.exit_code, 0) << top.err;
  EXPECT_NE(top.out.find("HOT EDGE"), std::string::npos) << top.out;
  EXPECT_NE(top.out.find("recent moves:"), std::string::npos);
  EXPECT_NE(top.out.find("epoch 2: moved `mix` n0→n2: operator request"), std::string::npos)
      << top.out;

  // A member forwards to the coordinator.
  ProcessResult forwarded = c.ctl({"status"}, "n2");
  EXPECT_EQ(forwarded.exit_code, 0) << forwarded.err;
  EXPECT_NE(forwarded.out.find("coordinator n0"), std::string::npos);

  // Refusals are one line, exit code 1; the cluster keeps serving.
  for (auto [args, error] : std::vector<std::pair<std::vector<std::string>, std::string>>{
           {{"move", "nothing", "n1"},
            "no placement unit or placeable function named `nothing`; `placement` lists them"},
           {{"move", "main", "n1"},
            "`main` cannot move: the program's entry point runs on the entry node"},
           {{"drain", "n0"}, "the entry node `n0` runs main and cannot be drained"},
           {{"set", "speed=3"},
            "`set` has no setting \"speed\"; it takes interval_ms, hysteresis, cooldown_ms, "
            "half_life_ms"},
           {{"set", "interval_ms=10"},
            "`set`: interval_ms must be a whole number of milliseconds from 50 to 86400000"},
           {{"set", "cooldown_ms=500.5"},
            "`set`: cooldown_ms must be a whole number of milliseconds from 1 to 86400000"}}) {
    ProcessResult r = c.ctl(args);
    EXPECT_EQ(r.exit_code, 1) << args[0];
    EXPECT_EQ(r.err, "distctl: error: " + error + "\n");
  }
  // A unit that cannot move, asked to stay where it is: nothing to do, not a refusal.
  ProcessResult stays = c.ctl({"move", "main", "n0"});
  EXPECT_EQ(stays.exit_code, 0) << stays.err;
  EXPECT_NE(stays.out.find("already there"), std::string::npos) << stays.out;
  ProcessResult no_node = c.ctl({"move", "mix", "n9"});
  EXPECT_EQ(no_node.exit_code, 1);
  EXPECT_EQ(no_node.err.rfind("distctl: error: no node named `n9` in ", 0), 0u) << no_node.err;
  ProcessResult usage = c.ctl({"move", "mix"});
  EXPECT_EQ(usage.exit_code, 2);
  EXPECT_EQ(usage.err, "distctl: error: usage: distctl move UNIT NODE\n");
  EXPECT_EQ(c.stop().out, kExpected);
}

// A client in another language: Python's zmq (Debian's python3-zmq), REQ socket, plain JSON;
// then requests that are not the protocol's, each answered with an error.
TEST(Admin, PythonClientAndMalformedRequests) {
  if (!std::filesystem::exists(DIST_PYTHON3))
    GTEST_SKIP() << "no Debian python3 with zmq";
  RunningCluster c({"--no-adapt"});
  ASSERT_TRUE(c.waitReady()) << c.whyNotReady();
  std::string endpoint;
  {
    std::ifstream in(c.clusterYaml());
    std::string line;
    while (std::getline(in, line))
      if (auto at = line.find("admin: "); at != std::string::npos && endpoint.empty())
        endpoint = line.substr(at + 7);
  }
  ASSERT_EQ(endpoint.rfind("ipc://", 0), 0u);
  std::string script = R"PY(
import json, sys, zmq
ctx = zmq.Context()
def ask(raw):
    s = ctx.socket(zmq.REQ)
    s.setsockopt(zmq.LINGER, 0)
    s.setsockopt(zmq.RCVTIMEO, 2000)
    s.connect(sys.argv[1])
    s.send(raw)
    try:
        return json.loads(s.recv())
    except zmq.Again:
        return None
    finally:
        s.close()
out = {}
out["status"] = ask(json.dumps({"command": "status"}).encode())
out["not_json"] = ask(b"{not json")
out["not_object"] = ask(b"[1, 2]")
out["command_number"] = ask(json.dumps({"command": 5}).encode())
out["move_no_unit"] = ask(json.dumps({"command": "move", "node": "n1"}).encode())
out["unit_number"] = ask(json.dumps({"command": "move", "unit": 7, "node": "n1"}).encode())
out["unknown"] = ask(json.dumps({"command": "explode"}).encode())
out["set_string"] = ask(json.dumps({"command": "set", "hysteresis": "high"}).encode())
out["too_big"] = ask(b"x" * (1 << 20))
out["after"] = ask(json.dumps({"command": "placement"}).encode())
print(json.dumps(out))
)PY";
  std::string path = writeTempFile("admin_client.py", script);
  ProcessResult py = runProcess({DIST_PYTHON3, path, endpoint}, std::chrono::seconds(60));
  ASSERT_EQ(py.exit_code, 0) << py.err;
  json out = json::parse(py.out, nullptr, false);
  ASSERT_TRUE(out.is_object()) << py.out;
  EXPECT_TRUE(out["status"]["ok"].get<bool>());
  EXPECT_EQ(out["status"]["coordinator"], "n0");
  EXPECT_EQ(out["not_json"]["error"], "the request is not JSON");
  EXPECT_EQ(out["not_object"]["error"], "a request is a JSON object with \"command\" (a string)");
  EXPECT_EQ(out["command_number"]["error"],
            "a request is a JSON object with \"command\" (a string)");
  EXPECT_EQ(out["move_no_unit"]["error"], "`move` needs \"unit\" (a string)");
  EXPECT_EQ(out["unit_number"]["error"], "`move` needs \"unit\" (a string)");
  EXPECT_EQ(out["unknown"]["error"].get<std::string>().rfind("unknown command `explode`", 0), 0u);
  EXPECT_EQ(out["set_string"]["error"], "`set`: \"hysteresis\" must be a number");
  EXPECT_TRUE(out["too_big"].is_null()) << "ZeroMQ drops a request above the cap";
  EXPECT_TRUE(out["after"]["ok"].get<bool>()) << "the admin socket still serves";
  EXPECT_EQ(c.stop().out, kExpected);
}

TEST(Distctl, UnreachableOrUnconfiguredIsOneLineExitTwo) {
  ProcessResult none = runProcess(
      {kDistctl, "--endpoint", "ipc:///nonexistent/x.admin", "--timeout-ms", "300", "status"});
  EXPECT_EQ(none.exit_code, 2);
  EXPECT_EQ(none.err, "distctl: error: nothing listens at ipc:///nonexistent/x.admin (no such "
                      "socket file); is the node running?\n");
  // A node that does not answer: its socket exists, nobody reads it.
  std::string mute_path = ::testing::TempDir() + "/mute.admin";
  zmq::context_t mute_ctx;
  zmq::socket_t mute(mute_ctx, zmq::socket_type::router);
  mute.bind("ipc://" + mute_path);
  ProcessResult silent =
      runProcess({kDistctl, "--endpoint", "ipc://" + mute_path, "--timeout-ms", "300", "status"});
  EXPECT_EQ(silent.exit_code, 2);
  EXPECT_EQ(silent.err, "distctl: error: no answer from ipc://" + mute_path +
                            " within 300 ms; is the node running?\n");
  std::string yaml = writeTempFile("no_admin.yaml", "cluster: c\nnodes:\n  - name: a\n"
                                                    "    call: tcp://127.0.0.1:7000\n");
  ProcessResult unconfigured = runProcess({kDistctl, "--cluster", yaml, "status"});
  EXPECT_EQ(unconfigured.exit_code, 2);
  EXPECT_EQ(unconfigured.err, "distctl: error: " + yaml +
                                  ":3: node `a` has no `admin:` endpoint; add one, e.g. admin: "
                                  "ipc:///run/distnode/a.admin\n");
  ProcessResult unknown =
      runProcess({kDistctl, "--endpoint", "ipc:///nonexistent/x.admin", "bogus"});
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_EQ(unknown.err, "distctl: error: unknown command `bogus`; the commands are status, "
                         "placement, profile, history, graph, repartition, move, pin, unpin, "
                         "drain, undrain, freeze, thaw, set, top\n");
  ProcessResult neither = runProcess({kDistctl, "status"});
  EXPECT_EQ(neither.exit_code, 2);
  EXPECT_EQ(neither.err,
            "distctl: error: say where the cluster is: --endpoint E or --cluster cluster.yaml\n");
}

// Runs distnode with `args` (a log file of its own at `level` added) and checks that it ends
// well with the output of `native`; returns its log.
std::string runMatchingNative(const std::string &name, std::vector<std::string> args,
                              const std::vector<std::string> &native, const std::string &level) {
  std::string log = ::testing::TempDir() + name + "-" + std::to_string(::getpid()) + ".log";
  std::filesystem::remove(log);
  ProcessResult expected = runProcess(native);
  args.insert(args.begin(), {kDistnode, "--log-level", level, "--log-file", log});
  ProcessResult r = runProcess(args, std::chrono::seconds(240));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, expected.out);
  std::ifstream in(log);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// phase_switch.bc on a local cluster (`cluster` flags, e.g. --local 3) with `chatter` on n1,
// `step` on n2 and a planning interval far longer than the run: after the first round (in the
// quiet phase) only a round brought early by the chatty phase can move `step` to `chatter`.
// Checks the output against the native run's; returns the debug log.
std::string runPhaseSwitch(const std::string &name, std::vector<std::string> cluster) {
  std::string placement = ::testing::TempDir() + name + "-" + std::to_string(::getpid()) + ".yaml";
  std::ofstream(placement) << "chatter: n1\nstep: n2\n";
  cluster.insert(cluster.end(), {"--placement", placement, "--adapt-interval-ms", "86400000",
                                 fixture("phase_switch.bc")});
  return runMatchingNative(name, cluster, {fixture("phase_switch.native")}, "debug");
}

// The look that sees the new phase is a member's (n1 calls n2; the entry only waits for its
// one call of `chatter`).
TEST(Adaptation, APhaseChangeBringsARoundEarly) {
  std::string text = runPhaseSwitch("phase-switch", {"--local", "3"});
  std::smatch m;
  EXPECT_TRUE(std::regex_search(
      text, m,
      std::regex("epoch [0-9]+: moved `step` n2→n1: saves .* of remote calls with `chatter`")))
      << text;
  EXPECT_NE(text.find("node `n1` saw a new phase: planning early"), std::string::npos) << text;
}

// The same with the coordinator on a node of its own (n3): the look that sees the new phase
// is n1's or n2's, and the entry node forwards its ask to the coordinator.
TEST(Adaptation, APhaseChangeBringsARoundEarlyOnACoordinatorElsewhere) {
  std::string text = runPhaseSwitch("phase-switch-c", {"--local", "4", "--coordinator", "n3"});
  std::smatch m;
  EXPECT_TRUE(std::regex_search(
      text, m,
      std::regex("\\[n3\\] info: epoch [0-9]+: moved `step` n2→n1: saves .* of remote calls with "
                 "`chatter`")))
      << text;
  EXPECT_TRUE(std::regex_search(
      text, m, std::regex("node `n[12]` saw a new phase: asking the coordinator `n3` for a round")))
      << text;
  EXPECT_NE(text.find("[n3] debug: a node saw a new phase: planning early"), std::string::npos)
      << text;
}

// phases.c alternates a chatty phase and a bulky one; started scattered, the loop brings each
// phase's pair together as the phase runs, and the output stays the native one.
TEST(Adaptation, PhasesStartedScatteredConvergeAndMatchNative) {
  std::string text =
      runMatchingNative("phases",
                        {"--local", "3", "--placement", "scatter", "--adapt-interval-ms", "100",
                         example("phases.bc"), "--", "6", "1000000"},
                        {example("phases.native"), "6", "1000000"}, "info");
  std::smatch m;
  EXPECT_TRUE(std::regex_search(
      text, m,
      std::regex("epoch [0-9]+: moved `filter_a` n[0-9]→n[0-9]: saves .* of remote calls "
                 "with `stage_a`")))
      << text;
  EXPECT_TRUE(std::regex_search(text, m, std::regex("moved `reduce_b` n[0-9]→n[0-9]: saves")))
      << text;
}

} // namespace
} // namespace distnode::testing
