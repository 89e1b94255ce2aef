// node_sockets.cpp - what the parts of a cluster node share about ZeroMQ.
#include "node/node_sockets.h"

#include "jit/remote_call.h"
#include "transport/messages.h"

#include <linux/futex.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>

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

std::chrono::milliseconds untilSignaled(int fd) {
  return fd >= 0 ? std::chrono::milliseconds(-1) : kPollSlice;
}

void nameThread(const char *name) { pthread_setname_np(pthread_self(), name); }

sigset_t blockProgramSignals() {
  sigset_t set, before;
  sigfillset(&set);
  for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGTRAP, SIGSYS})
    sigdelset(&set, sig);
  pthread_sigmask(SIG_BLOCK, &set, &before);
  return before;
}

void signalEventFd(int fd) {
  const int saved_errno = errno;
  std::uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(fd, &one, sizeof one);
  errno = saved_errno;
}

void drainEventFd(int fd) {
  std::uint64_t count;
  [[maybe_unused]] auto n = ::read(fd, &count, sizeof count);
}

void ringBell(std::atomic<std::uint32_t> &bell) {
  bell.fetch_add(1, std::memory_order_release);
  ::syscall(SYS_futex, reinterpret_cast<std::uint32_t *>(&bell), FUTEX_WAKE_PRIVATE, 1, nullptr,
            nullptr, 0);
}

void waitBell(std::atomic<std::uint32_t> &bell, std::uint32_t seen,
              std::chrono::milliseconds timeout) {
  timespec t{static_cast<time_t>(timeout.count() / 1000),
             static_cast<long>(timeout.count() % 1000 * 1'000'000)};
  // EAGAIN (rung already), EINTR, ETIMEDOUT: the caller looks again either way.
  ::syscall(SYS_futex, reinterpret_cast<std::uint32_t *>(&bell), FUTEX_WAIT_PRIVATE, seen, &t,
            nullptr, 0);
}

std::int64_t maxMessageBytes() {
  return static_cast<std::int64_t>(jit::maxCallBytes()) + transport::kEnvelopeBytes;
}

std::atomic<int> &terminateSignal() {
  static std::atomic<int> signal{0};
  return signal;
}

} // namespace distnode::node
