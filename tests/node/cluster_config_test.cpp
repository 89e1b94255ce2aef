// cluster_config_test.cpp - cluster.yaml: valid files parse; each mistake is one line naming
// the file, the line and the field.
#include "node/cluster_config.h"

#include "llvm/Support/Error.h"

#include <gtest/gtest.h>

#include <fstream>

namespace distnode::node {
namespace {

const char *kValid = R"(cluster: demo
entry: b
join_timeout_ms: 2500
nodes:
  - name: a
    call: tcp://127.0.0.1:7000
    admin: tcp://127.0.0.1:7100
    capacity: {cpu: 2.5}
  - name: b
    call: ipc:///tmp/distnode-b
placement:
  hash_block: a
adapt:
  interval_ms: 250
  hysteresis: 0.1
  cooldown_ms: 2000
  half_life_ms: 500
  enabled: false
)";

TEST(ClusterConfig, ParsesEveryField) {
  auto c = parseClusterConfig(kValid, "cluster.yaml");
  ASSERT_TRUE(bool(c)) << llvm::toString(c.takeError());
  EXPECT_EQ(c->name, "demo");
  ASSERT_EQ(c->nodes.size(), 2u);
  EXPECT_EQ(c->nodes[0].call_endpoint, "tcp://127.0.0.1:7000");
  EXPECT_EQ(c->nodes[0].admin_endpoint, "tcp://127.0.0.1:7100");
  EXPECT_DOUBLE_EQ(c->nodes[0].cpu_capacity, 2.5);
  EXPECT_EQ(c->nodes[1].line, 9u);
  EXPECT_EQ(c->entry, "b");
  EXPECT_EQ(c->coordinator, "b") << "the coordinator defaults to the entry node";
  EXPECT_EQ(c->join_timeout.count(), 2500);
  EXPECT_EQ(c->nodes[0].control_endpoint, "tcp://127.0.0.1:7001") << "default: call port + 1";
  EXPECT_EQ(c->nodes[1].control_endpoint, "ipc:///tmp/distnode-b.control");
  EXPECT_EQ(c->heartbeat_timeout.count(), 3000);
  EXPECT_EQ(c->max_call_bytes, std::uint64_t(256) << 20) << "the default cap of one call";
  ASSERT_EQ(c->placement.size(), 1u);
  EXPECT_EQ(c->placement[0].function, "hash_block");
  EXPECT_EQ(c->placement[0].where, "cluster.yaml:12");
  EXPECT_FALSE(c->adapt.enabled);
  EXPECT_EQ(c->adapt.interval.count(), 250);
  EXPECT_DOUBLE_EQ(c->adapt.hysteresis, 0.1);
  EXPECT_DOUBLE_EQ(c->adapt.cooldown_s, 2.0);
  EXPECT_DOUBLE_EQ(c->adapt.half_life_s, 0.5);
}

TEST(ClusterConfig, AdaptationIsOnByDefault) {
  ClusterConfig c;
  ASSERT_EQ(
      parseClusterConfig("cluster: x\nnodes:\n  - {name: a, call: 'tcp://h:1'}\n", "c.yaml", c),
      std::nullopt);
  EXPECT_TRUE(c.adapt.enabled);
  EXPECT_EQ(c.adapt.interval.count(), 1000);
}

TEST(ClusterConfig, EntryDefaultsToFirstNode) {
  auto c = parseClusterConfig("cluster: x\nnodes:\n  - {name: n0, call: 'tcp://h:1'}\n", "c.yaml");
  ASSERT_TRUE(bool(c)) << llvm::toString(c.takeError());
  EXPECT_EQ(c->entry, "n0");
}

struct BadConfig {
  const char *text;
  const char *message; // the whole expected error line
};

TEST(ClusterConfig, EachMistakeNamesLineAndField) {
  const BadConfig cases[] = {
      {"nodes:\n  - {name: a, call: 'tcp://h:1'}\n",
       "c.yaml:1: cluster: missing; name the cluster, e.g. `cluster: demo`"},
      {"cluster: x\nnodes: []\n", "c.yaml:2: nodes: expected a list of at least one node"},
      {"cluster: x\nnodes:\n  - name: a\n", "c.yaml:3: nodes[0].call: missing; the node's call "
                                            "endpoint, e.g. tcp://10.0.0.2:7000"},
      {"cluster: x\nnodes:\n  - name: a\n    call: tcp//h:1\n",
       "c.yaml:4: nodes[0].call: `tcp//h:1` is not a ZeroMQ endpoint; write tcp://host:port or "
       "ipc://path"},
      {"cluster: x\nnodes:\n  - {name: a, call: 'tcp://h:1'}\n  - {name: a, call: 'tcp://h:2'}\n",
       "c.yaml:4: nodes[1].name: node `a` is listed twice"},
      {"cluster: x\nnodes:\n  - {name: a, call: 'tcp://h:1'}\n  - {name: b, call: 'tcp://h:1'}\n",
       "c.yaml:4: nodes[1].call: endpoint `tcp://h:1` is also nodes[0].call; give each its own"},
      {"cluster: x\nnodes:\n  - {name: a, call: 'tcp://h:1'}\n  - {name: b, call: 'tcp://h:2'}\n",
       "c.yaml:4: nodes[1].call: endpoint `tcp://h:2` is also nodes[0].control (by default the "
       "call port + 1); give each its own"},
      {"cluster: x\ncoordinator: c\nnodes:\n  - {name: a, call: 'tcp://h:1'}\n  - {name: b, call: "
       "'tcp://h:3'}\n",
       "c.yaml:2: coordinator: no node named `c` in `nodes`; name one of the nodes listed there"},
      {"cluster: x\nheartbeat_timeout_ms: 10\nnodes:\n  - {name: a, call: 'tcp://h:1'}\n",
       "c.yaml:2: heartbeat_timeout_ms: must be at least 100"},
      {"cluster: x\nnodse: []\n",
       "c.yaml:2: nodse: unknown field (expected one of: adapt, cluster, coordinator, entry, "
       "heartbeat_timeout_ms, join_timeout_ms, max_message_mb, nodes, placement)"},
      {"cluster: x\nnodes:\n  - {name: a, call: 'tcp://h:1'}\nadapt:\n  interval_ms: 10\n",
       "c.yaml:5: adapt.interval_ms: must be at least 50"},
      {"cluster: x\nnodes:\n  - {name: a, call: 'tcp://h:1'}\nadapt:\n  hysteresis: 1.5\n",
       "c.yaml:5: adapt.hysteresis: must be at least 0 and below 1 (a fraction of the cost)"},
      {"cluster: x\nnodes:\n  - {name: a, call: 'tcp://h:1'}\nadapt:\n  enabled: maybe\n",
       "c.yaml:5: adapt.enabled: expected true or false"},
      {"cluster: x\nnodes:\n  - {name: a, call: 'tcp://h:1'}\nadapt:\n  period: 3\n",
       "c.yaml:5: adapt.period: unknown field (expected one of: cooldown_ms, enabled, "
       "half_life_ms, hysteresis, interval_ms)"},
      {"cluster: x\nmax_message_mb: 4096\nnodes:\n  - {name: a, call: 'tcp://h:1'}\n",
       "c.yaml:2: max_message_mb: must be from 1 to 2047 (FlatBuffers messages stay below 2 GiB)"},
      {"cluster: x\nentry: z\nnodes:\n  - {name: a, call: 'tcp://h:1'}\n",
       "c.yaml:2: entry: no node named `z` in `nodes`; name one of the nodes listed there"},
      {"cluster: x\njoin_timeout_ms: soon\nnodes:\n  - {name: a, call: 'tcp://h:1'}\n",
       "c.yaml:2: join_timeout_ms: expected a whole number of milliseconds"},
      {"cluster: x\nnodes:\n  - {name: a, call: 'tcp://h:1', capacity: {cpu: -1}}\n",
       "c.yaml:3: nodes[0].capacity.cpu: must be positive (CPU seconds per second, e.g. 2.0)"},
      {"cluster: x\nnodes:\n  - {name: a, call: 'tcp://h:1', capacity: {cpu: 1e9}}\n",
       "c.yaml:3: nodes[0].capacity.cpu: must be at most 512"},
      {"cluster: x\nnodes:\n  - {name: a, call: 'tcp://h:1', admin: 'tcp://h:2'}\n",
       "c.yaml:3: nodes[0].admin: endpoint `tcp://h:2` is also nodes[0].control (by default the "
       "call port + 1); give each its own"},
      {"cluster: x\nnodes:\n  - {name: a, call: 'tcp://h:1', admin: 'ipc:///tmp/a'}\n"
       "  - {name: b, call: 'tcp://h:3', admin: 'ipc:///tmp/a'}\n",
       "c.yaml:4: nodes[1].admin: endpoint `ipc:///tmp/a` is also nodes[0].admin; give each its "
       "own"},
      {"cluster: x\nnodes:\n  - {name: a, call: 'tcp://h:1'}\ncluster: y\n",
       "c.yaml:4: cluster: given twice; keep one `cluster`"},
      {"cluster: x\nnodes:\n  - {name: a, call: 'tcp://h:1', long_calls: low}\n",
       "c.yaml:3: nodes[0].long_calls: `low` is neither `background` nor `normal`"},
      {"cluster: x\nnodes:\n  - {name: a, call: 'tcp://h:1'}\nplacement:\n  f: b\n",
       "c.yaml:5: placement.f: no node named `b` in `nodes`"},
      {"cluster: x\nnodes: [\n", "c.yaml:3: not valid YAML: end of sequence flow not found"},
      {"cluster: x\nnodes:\n  - {name: a, call: 'tcp://h:99999'}\n",
       "c.yaml:3: nodes[0].call: port 99999 in `tcp://h:99999` is not a TCP port; use 1 to 65535"},
      {"cluster: x\nnodes:\n  - {name: a, call: 'tcp://h:0'}\n",
       "c.yaml:3: nodes[0].call: port 0 in `tcp://h:0` is not a TCP port; use 1 to 65535"},
      {"cluster: x\njoin_timeout_ms: 9223372036854775807\nnodes:\n  - {name: a, call: "
       "'tcp://h:1'}\n",
       "c.yaml:2: join_timeout_ms: must be at most 86400000 (24 hours)"},
      // An empty value is reported at its key's line, not at the next token's.
      {"cluster:\nnodes:\n  - {name: a, call: 'tcp://h:1'}\n",
       "c.yaml:1: cluster: no value; write one after the colon"},
      {"cluster: x\njoin_timeout_ms: 0\nnodes:\n  - {name: a, call: 'tcp://h:1'}\n",
       "c.yaml:2: join_timeout_ms: must be positive (milliseconds)"},
      {"cluster: x\nnodes:\n  - {name: a, call: 'tcp://h:1'}\nplacement:\n  # where\n  f:\n\n"
       "adapt: {}\n",
       "c.yaml:6: placement.f: expected a node name, or for a load-balanced function a map "
       "`node: weight` of its replicas"},
      {"", "c.yaml:1: (top level): expected a map with `cluster` and `nodes`"},
      {"cluster: x\nnodes:\n  - {call: 'tcp://h:1'}\n",
       "c.yaml:3: nodes[0].name: missing; give the node a name, e.g. `name: n1`"},
  };
  for (const auto &c : cases) {
    SCOPED_TRACE(c.text);
    auto config = parseClusterConfig(c.text, "c.yaml");
    ASSERT_FALSE(bool(config));
    EXPECT_EQ(llvm::toString(config.takeError()), c.message);
  }
}

TEST(ClusterConfig, MissingFileIsOneLine) {
  auto c = loadClusterConfig("/nonexistent/cluster.yaml");
  ASSERT_FALSE(bool(c));
  EXPECT_EQ(llvm::toString(c.takeError()),
            "/nonexistent/cluster.yaml: cannot open: No such file or directory");
}

TEST(ClusterConfig, DirectoryIsNotAPlacementFile) {
  auto p = loadPlacementFile("/tmp");
  ASSERT_FALSE(bool(p));
  EXPECT_EQ(llvm::toString(p.takeError()), "/tmp: is a directory, not a YAML file");
  auto c = loadClusterConfig("/tmp");
  ASSERT_FALSE(bool(c));
  EXPECT_EQ(llvm::toString(c.takeError()), "/tmp: is a directory, not a YAML file");
}

// The usual slip: cluster.yaml's `placement:` section copied with its key.
TEST(ClusterConfig, PlacementFileWithThePlacementKeySaysSo) {
  std::string path = ::testing::TempDir() + "/keyed_placement.yaml";
  std::ofstream(path) << "placement:\n  f: n1\n";
  auto p = loadPlacementFile(path);
  ASSERT_FALSE(bool(p));
  EXPECT_EQ(llvm::toString(p.takeError()),
            path + ":1: placement: a --placement file maps functions to nodes at its top level "
                   "(`fib: n1`), without the `placement:` of cluster.yaml");
}

TEST(ClusterConfig, LocalClusterYamlParses) {
  auto c = parseClusterConfig(
      localClusterYaml({7001, 7102, 7003, 7104, 7005, 7106}, std::chrono::seconds(3)), "gen.yaml");
  ASSERT_TRUE(bool(c)) << llvm::toString(c.takeError());
  ASSERT_EQ(c->nodes.size(), 3u);
  EXPECT_EQ(c->nodes[2].name, "n2");
  EXPECT_EQ(c->nodes[2].call_endpoint, "tcp://127.0.0.1:7005");
  EXPECT_EQ(c->nodes[2].control_endpoint, "tcp://127.0.0.1:7106");
  EXPECT_EQ(c->entry, "n0");
  EXPECT_EQ(c->coordinator, "n0");
  auto elsewhere = parseClusterConfig(
      localClusterYaml({7001, 7102, 7003, 7104}, std::chrono::seconds(3), "", 1), "gen.yaml");
  ASSERT_TRUE(bool(elsewhere)) << llvm::toString(elsewhere.takeError());
  EXPECT_EQ(elsewhere->coordinator, "n1") << "a coordinator that is not the entry node";
}

} // namespace
} // namespace distnode::node
