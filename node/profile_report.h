// profile_report.h - profiles as JSON (`distnode --profile-out`), and merging the nodes' parts.
#ifndef DISTNODE_NODE_PROFILE_REPORT_H
#define DISTNODE_NODE_PROFILE_REPORT_H

#include "profiler/profiler.h"

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace distnode::node {

/// The schema's name and version, written as the "schema" field.
inline constexpr const char *kProfileSchema = "distnode-profile/1";

/// One node's profile (schema in README.md, "Profiling").
[[nodiscard]] nlohmann::json profileToJson(const profiler::ProfileSnapshot &snapshot,
                                           const std::string &node);

/// The cluster's profile: edges summed by (caller, callee) and functions by name over
/// `nodes` (each as made by profileToJson). A call is counted on its caller's node and its
/// CPU time on its callee's node, so the sums are the same whatever the placement.
[[nodiscard]] nlohmann::json mergeProfiles(const std::vector<nlohmann::json> &nodes);

/// The document --profile-out writes: {"schema", "nodes": [...], "merged": {...}}.
[[nodiscard]] nlohmann::json profileDocument(const std::vector<nlohmann::json> &nodes);

} // namespace distnode::node

#endif
