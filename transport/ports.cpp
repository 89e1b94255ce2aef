// ports.cpp - choosing TCP ports on loopback for local clusters and tests.
#include "transport/ports.h"

#include <arpa/inet.h>
#include <chrono>
#include <netinet/in.h>
#include <random>
#include <sys/socket.h>
#include <unistd.h>

namespace distnode::transport {

namespace {

constexpr int kFirstPort = 20000, kLastPort = 32000; // below the ephemeral range

// A socket bound to `port` on loopback, or -1. With `shareable`, SO_REUSEADDR: a listening
// socket that also sets it (ZeroMQ's do) may bind the port while this one holds it, and
// nothing else may.
int bindLoopback(int port, bool shareable = false) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  int one = 1;
  if (shareable)
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  if (bind(fd, reinterpret_cast<sockaddr *>(&addr), sizeof addr) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

} // namespace

std::vector<int> freeLoopbackPorts(int n) {
  ReservedPorts r = reserveLoopbackPorts(n);
  return r.ports;
}

ReservedPorts::~ReservedPorts() {
  for (int fd : fds)
    close(fd);
}

ReservedPorts reserveLoopbackPorts(int n) {
  ReservedPorts out;
  // Processes starting at the same time must not walk the range in the same order.
  std::mt19937 rng(
      static_cast<unsigned>(getpid()) ^
      static_cast<unsigned>(std::chrono::steady_clock::now().time_since_epoch().count()));
  std::uniform_int_distribution<int> pick(kFirstPort, kLastPort);
  for (int attempt = 0; attempt < 1000 && static_cast<int>(out.ports.size()) < n; ++attempt) {
    int port = pick(rng);
    // Free now (a plain bind succeeds), then held shareably: held, they differ, and another
    // process looking for ports with a plain bind passes them by.
    int probe = bindLoopback(port);
    if (probe < 0)
      continue;
    close(probe);
    int fd = bindLoopback(port, true);
    if (fd < 0)
      continue;
    out.fds.push_back(fd);
    out.ports.push_back(port);
  }
  if (static_cast<int>(out.ports.size()) < n)
    out.ports.clear();
  return out;
}

} // namespace distnode::transport
