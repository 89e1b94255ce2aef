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

// A socket bound to `port` on loopback, or -1.
int bindLoopback(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
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
  // Processes starting at the same time must not walk the range in the same order.
  std::mt19937 rng(
      static_cast<unsigned>(getpid()) ^
      static_cast<unsigned>(std::chrono::steady_clock::now().time_since_epoch().count()));
  std::uniform_int_distribution<int> pick(kFirstPort, kLastPort);
  std::vector<int> fds, ports;
  for (int attempt = 0; attempt < 1000 && static_cast<int>(ports.size()) < n; ++attempt) {
    int port = pick(rng);
    int fd = bindLoopback(port);
    if (fd < 0)
      continue;
    fds.push_back(fd); // held until all are chosen, so that they differ
    ports.push_back(port);
  }
  for (int fd : fds)
    close(fd);
  if (static_cast<int>(ports.size()) < n)
    return {};
  return ports;
}

} // namespace distnode::transport
