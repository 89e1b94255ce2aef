// admin_client.h - one admin request and its answer (docs/admin-protocol.md). Needs ZeroMQ and
// nlohmann-json only: distctl links it without LLVM.
#ifndef DISTNODE_NODE_ADMIN_CLIENT_H
#define DISTNODE_NODE_ADMIN_CLIENT_H

#include <nlohmann/json.hpp>

#include <chrono>
#include <string>

namespace zmq {
class context_t;
} // namespace zmq

namespace distnode::node {

/// Sends `request` (a JSON object with "command") to the admin socket at `endpoint` and waits
/// at most `timeout` for the answer. Returns the answer, or {"ok": false, "error": why} if
/// there is none or it is not a JSON object.
[[nodiscard]] nlohmann::json adminRequest(zmq::context_t &context, const std::string &endpoint,
                                          const nlohmann::json &request,
                                          std::chrono::milliseconds timeout);

/// {"ok": false, "error": message}.
[[nodiscard]] nlohmann::json adminError(const std::string &message);

} // namespace distnode::node

#endif
