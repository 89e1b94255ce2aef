// cluster_config.h - cluster.yaml: the nodes of a cluster and how they run a program.
#ifndef DISTNODE_NODE_CLUSTER_CONFIG_H
#define DISTNODE_NODE_CLUSTER_CONFIG_H

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace llvm {
template <typename T> class Expected;
} // namespace llvm

namespace distnode::node {

/// One node of cluster.yaml.
struct NodeConfig {
  std::string name;
  std::string call_endpoint; ///< ZeroMQ endpoint the node binds for calls (tcp://host:port)
  /// Endpoint of the control plane (Join, Placement, Shutdown, heartbeats), bound by the node
  /// when it is the entry node. Default: the call endpoint's port + 1 (ipc: path + ".control").
  std::string control_endpoint;
  std::string admin_endpoint; ///< endpoint of the admin socket ("" if none)
  double cpu_capacity = 0;    ///< CPU seconds per second the node offers; 0: its cores
  /// `long_calls: background` (default): a call that computes longer than 250 us runs in the
  /// SCHED_IDLE class, so short calls and the control plane never wait for its time slice;
  /// `normal`: every call at the same priority.
  bool background_long_calls = true;
  unsigned line = 0;
};

/// A function pinned to a node by a `placement:` entry or a placement file.
struct PlacementEntry {
  std::string function;
  std::string node; ///< one node ("" when `replicas` is given)
  /// A load-balanced function's replica set: node and weight (`function: {n0: 3, n1: 1}`).
  std::vector<std::pair<std::string, double>> replicas;
  std::string where; ///< "file:line" of the entry, for messages
};

/// Bounds of the online loop's interval (`adapt.interval_ms`, --adapt-interval-ms, `set
/// interval_ms`, the one the entry's heartbeats carry to members): planning rounds faster than
/// the least cost more than they tell; beyond a day is a mistake.
inline constexpr long kMinAdaptIntervalMs = 50;
inline constexpr long kMaxAdaptIntervalMs = 24L * 60 * 60 * 1000;

/// Settings of the online placement loop (cluster.yaml `adapt:`; distnode's --no-adapt and
/// --adapt-interval-ms; the admin commands `set`, `freeze` and `thaw`).
struct AdaptOptions {
  bool enabled = true; ///< false: the placement is held still (freeze)
  /// The coordinator plans, with every node's profile delta, once per interval (and earlier when
  /// a phase changes: phaseLookEvery).
  std::chrono::milliseconds interval{1000};
  double hysteresis = 0.05; ///< a new placement must save more than this fraction of the cost
  double cooldown_s = 5;    ///< a unit that moved stays put this long
  /// Half-life of the rates the planner sees: short enough to follow a program's phases, long
  /// enough not to chase one noisy interval.
  double half_life_s = 1.5;
};

/// The coordinator's first planning round comes this soon after the program starts (250 ms, or
/// one interval if that is shorter): a bad starting placement is mended within a fraction of
/// the first interval.
[[nodiscard]] inline std::chrono::milliseconds firstRoundAfter(std::chrono::milliseconds interval) {
  return std::min(interval, std::chrono::milliseconds(250));
}

/// How often each node looks at its counts for a new phase (NodeReporter::sawNewPhase), which
/// brings a planning round early: a sixteenth of the interval, 25 to 250 ms.
[[nodiscard]] inline std::chrono::milliseconds phaseLookEvery(std::chrono::milliseconds interval) {
  return std::clamp(interval / 16, std::chrono::milliseconds(25), std::chrono::milliseconds(250));
}

struct ClusterConfig;
/// What every node of a cluster must agree on, as text: one line per node (its name and
/// endpoints, in order: placements name nodes by their index), then the entry and the
/// coordinator. A member whose cluster.yaml says otherwise is refused.
[[nodiscard]] std::string clusterShape(const ClusterConfig &config);

/// A parsed and validated cluster.yaml.
struct ClusterConfig {
  std::string path;
  std::string label; ///< what messages call the cluster: its file's path, or the local cluster
  std::string name;
  std::vector<NodeConfig> nodes;
  std::string entry;       ///< the node that runs main (default: the first node)
  std::string coordinator; ///< the node that runs placement (default: the entry node)
  std::chrono::milliseconds join_timeout{10000};
  /// A node that sends no heartbeat for this long is taken for dead and the cluster stops.
  std::chrono::milliseconds heartbeat_timeout{3000};
  /// The largest argument or reply blob of one call (`max_message_mb`); a node refuses larger
  /// messages before buffering them.
  std::uint64_t max_call_bytes = std::uint64_t(256) << 20;
  std::vector<PlacementEntry> placement;
  AdaptOptions adapt;

  /// Index of node `name` in `nodes`, or -1.
  [[nodiscard]] int nodeIndex(const std::string &name) const;
  /// Where node `n` is configured, as an error line begins: "cluster.yaml:12: node `n1`"
  /// (the local cluster's label alone for one that --local made).
  [[nodiscard]] std::string whereIs(const NodeConfig &n) const;
};

/// Reads and validates cluster.yaml into `out`; nothing, or the error as one line: "file:line:
/// field: what is wrong". Needs no LLVM (distctl uses it).
[[nodiscard]] std::optional<std::string> readClusterConfig(const std::string &path,
                                                           ClusterConfig &out);
/// The same from text (`path` is used in messages only).
[[nodiscard]] std::optional<std::string>
parseClusterConfig(const std::string &text, const std::string &path, ClusterConfig &out);
/// Reads a placement file: a YAML map `function: node`.
[[nodiscard]] std::optional<std::string> readPlacementFile(const std::string &path,
                                                           std::vector<PlacementEntry> &out);

/// The same three as llvm::Expected, for distnode (cluster_config_errors.cpp, in the `node`
/// library: the configuration library itself links no LLVM).
[[nodiscard]] llvm::Expected<ClusterConfig> loadClusterConfig(const std::string &path);
[[nodiscard]] llvm::Expected<ClusterConfig> parseClusterConfig(const std::string &text,
                                                               const std::string &path);
[[nodiscard]] llvm::Expected<std::vector<PlacementEntry>>
loadPlacementFile(const std::string &path);

/// The CPU seconds per second the node running this process offers: `node`'s
/// `capacity.cpu`, or else the CPUs this process may run on (its affinity, e.g. `taskset`).
[[nodiscard]] double cpuCapacity(const NodeConfig &node);

/// cluster.yaml text for nodes n0..n{k-1} on 127.0.0.1: `ports` holds each node's call port
/// then its control port (2k ports). With `admin_dir`, each node's admin socket is
/// ipc://admin_dir/NAME.admin. n`coordinator` runs the planning loop.
[[nodiscard]] std::string localClusterYaml(const std::vector<int> &ports,
                                           std::chrono::milliseconds join_timeout,
                                           const std::string &admin_dir = "", int coordinator = 0);

} // namespace distnode::node

#endif
