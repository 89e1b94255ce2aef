// node_sockets.cpp - what the parts of a cluster node share about ZeroMQ.
#include "node/node_sockets.h"

#include "jit/remote_call.h"
#include "transport/messages.h"

#include <unistd.h>

#include <cerrno>

namespace distnode::node {

zmq::context_t &context() {
  static auto *ctx = new zmq::context_t(1);
  return *ctx;
}

void pollSockets(zmq::pollitem_t *items, int n, std::chrono::milliseconds timeout) {
  try {
    zmq::poll(items, static_cast<size_t>(n), timeout);
  } catch (const zmq::error_t &e) {
    // EINTR: a signal (the profiler's SIGPROF); ETERM: the process is ending and closed the
    // context under this thread. Either way nothing is ready; the caller sees why.
    if (e.num() != EINTR && e.num() != ETERM)
      throw;
    for (int i = 0; i < n; ++i)
      items[i].revents = 0;
  }
}

void signalEventFd(int fd) {
  std::uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(fd, &one, sizeof one);
}

void drainEventFd(int fd) {
  std::uint64_t count;
  [[maybe_unused]] auto n = ::read(fd, &count, sizeof count);
}

std::int64_t maxMessageBytes() {
  return static_cast<std::int64_t>(jit::maxCallBytes()) + transport::kEnvelopeBytes;
}

std::atomic<int> &terminateSignal() {
  static std::atomic<int> signal{0};
  return signal;
}

} // namespace distnode::node
