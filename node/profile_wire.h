// profile_wire.h - a node's profile delta on the wire (wire.fbs ProfileDelta).
#ifndef DISTNODE_NODE_PROFILE_WIRE_H
#define DISTNODE_NODE_PROFILE_WIRE_H

#include "node/coordinator.h"

#include <zmq.hpp>

#include <optional>
#include <string>

namespace distnode::wire {
struct ProfileDelta;
} // namespace distnode::wire

namespace distnode::node {

/// `report` as a ProfileDelta envelope; `node`: whose report it is, when the entry node forwards
/// it to a coordinator that is not the entry node.
[[nodiscard]] zmq::message_t encodeProfileDelta(std::uint64_t call_id, const NodeReport &report,
                                                std::uint16_t node = 0);

/// The report a verified ProfileDelta carries, for a program with `functions` profile ids;
/// an id beyond them is an error. The rest is checked by Coordinator::check.
[[nodiscard]] std::optional<std::string>
decodeProfileDelta(const wire::ProfileDelta &delta, std::size_t functions, NodeReport &report);

} // namespace distnode::node

#endif
