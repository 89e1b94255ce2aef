// ports.h - choosing TCP ports on loopback for local clusters and tests.
#ifndef DISTNODE_TRANSPORT_PORTS_H
#define DISTNODE_TRANSPORT_PORTS_H

#include <vector>

namespace distnode::transport {

/// `n` distinct TCP ports on 127.0.0.1 that could all be bound a moment ago. They are taken
/// below the kernel's ephemeral range (32768 and up on Linux), which outgoing connections draw
/// their local ports from: a port found by binding port 0 would be from that range, and another
/// process's connection could take it before the node binds it. Returns an empty vector if
/// none could be found.
[[nodiscard]] std::vector<int> freeLoopbackPorts(int n);

} // namespace distnode::transport

#endif
