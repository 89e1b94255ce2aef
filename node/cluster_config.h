// cluster_config.h - cluster.yaml: the nodes of a cluster and how they run a program.
#ifndef DISTNODE_NODE_CLUSTER_CONFIG_H
#define DISTNODE_NODE_CLUSTER_CONFIG_H

#include <chrono>
#include <cstdint>
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
  unsigned line = 0;
};

/// A function pinned to a node by a `placement:` entry or a placement file.
struct PlacementEntry {
  std::string function;
  std::string node;
  std::string where; ///< "file:line" of the entry, for messages
};

/// A parsed and validated cluster.yaml.
struct ClusterConfig {
  std::string path;
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

  /// Index of node `name` in `nodes`, or -1.
  [[nodiscard]] int nodeIndex(const std::string &name) const;
};

/// Reads and validates cluster.yaml. Errors are one line: "file:line: field: what is wrong".
[[nodiscard]] llvm::Expected<ClusterConfig> loadClusterConfig(const std::string &path);

/// The same from text (`path` is used in messages only).
[[nodiscard]] llvm::Expected<ClusterConfig> parseClusterConfig(const std::string &text,
                                                               const std::string &path);

/// Reads a placement file: a YAML map `function: node`.
[[nodiscard]] llvm::Expected<std::vector<PlacementEntry>>
loadPlacementFile(const std::string &path);

/// cluster.yaml text for nodes n0..n{k-1} on 127.0.0.1: `ports` holds each node's call port
/// then its control port (2k ports).
[[nodiscard]] std::string localClusterYaml(const std::vector<int> &ports,
                                           std::chrono::milliseconds join_timeout);

} // namespace distnode::node

#endif
