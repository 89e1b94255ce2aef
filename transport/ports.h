// ports.h - choosing TCP ports on loopback for local clusters and tests.
#ifndef DISTNODE_TRANSPORT_PORTS_H
#define DISTNODE_TRANSPORT_PORTS_H

#include <utility>
#include <vector>

namespace distnode::transport {

/// `n` distinct TCP ports on 127.0.0.1 that could all be bound a moment ago. They are taken
/// below the kernel's ephemeral range (32768 and up on Linux), which outgoing connections draw
/// their local ports from: a port found by binding port 0 would be from that range, and another
/// process's connection could take it before the node binds it. Returns an empty vector if
/// none could be found.
[[nodiscard]] std::vector<int> freeLoopbackPorts(int n);

/// Ports as freeLoopbackPorts finds them, held until this is destroyed: a ZeroMQ socket (which
/// binds with SO_REUSEADDR) may bind them meanwhile, while another process looking for free
/// ports (a plain bind) passes them by. A local cluster holds its ports while it runs, so that
/// another one starting at the same time cannot take one before its node binds it.
struct ReservedPorts {
  std::vector<int> ports; ///< empty if not enough were found
  std::vector<int> fds;
  ReservedPorts() = default;
  ReservedPorts(ReservedPorts &&other) noexcept
      : ports(std::move(other.ports)), fds(std::exchange(other.fds, {})) {}
  ReservedPorts &operator=(ReservedPorts &&) = delete;
  ~ReservedPorts();
};
[[nodiscard]] ReservedPorts reserveLoopbackPorts(int n);

} // namespace distnode::transport

#endif
