// local_cluster.h - `distnode --local N`: an N-node cluster of processes on loopback.
#ifndef DISTNODE_NODE_LOCAL_CLUSTER_H
#define DISTNODE_NODE_LOCAL_CLUSTER_H

#include <chrono>
#include <string>
#include <vector>

namespace distnode::node {

/// What `distnode --local N` runs.
struct LocalClusterOptions {
  int nodes = 2;
  std::string bitcode;
  std::vector<std::string> program_args;
  /// Flags passed to every node's `distnode --join` (e.g. --placement FILE).
  std::vector<std::string> node_flags;
  /// Flags passed to the entry node only (e.g. --profile-out FILE).
  std::vector<std::string> entry_flags;
  /// The node that runs the planning loop (n`coordinator`), and flags passed to it only (e.g.
  /// --no-adapt).
  int coordinator = 0;
  std::vector<std::string> coordinator_flags;
  std::chrono::milliseconds join_timeout{10000};
  /// If set, the generated cluster.yaml is also written here (for distctl --cluster).
  std::string cluster_out;
};

/// Starts nodes n0..n{N-1} as child processes of this one (n0 is the entry node) with a
/// generated cluster.yaml on free loopback ports, and waits for them. n0's stdout and stderr
/// are the program's own and pass through unchanged; the other nodes' lines are prefixed with
/// "[name] ". Every child is reaped: when the entry exits, on Ctrl-C or SIGTERM (forwarded to
/// the nodes), and when a node dies (the others are stopped, exit code 2). Returns the exit
/// code of the entry node, i.e. of the program's main.
[[nodiscard]] int runLocalCluster(const LocalClusterOptions &options);

} // namespace distnode::node

#endif
