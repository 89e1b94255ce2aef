// node_sockets.h - what the parts of a cluster node share about ZeroMQ: the process's context,
// polling that survives signals, the poll slice, and the signal that stops a member.
#ifndef DISTNODE_NODE_NODE_SOCKETS_H
#define DISTNODE_NODE_NODE_SOCKETS_H

#include <zmq.hpp>

#include <csignal>

#include <atomic>
#include <chrono>
#include <cstdint>

namespace distnode::node {

/// How often a waiting thread looks up from its sockets to notice that the node is stopping.
inline constexpr std::chrono::milliseconds kPollSlice{20};

/// The process-wide ZeroMQ context. Never destroyed: threads of the program may still own
/// sockets when the process exits, and terminating the context would wait for them.
zmq::context_t &context();

/// zmq::poll, with a signal's interruption counted as "nothing ready".
void pollSockets(zmq::pollitem_t *items, int n, std::chrono::milliseconds timeout);

/// How long a thread waits on its descriptors when `fd` is the one its stop signals: for
/// ever, or a slice when the process had no descriptor left to make `fd` (-1).
std::chrono::milliseconds untilSignaled(int fd);

/// Names the calling thread (as `top -H`, `ps -L` and gdb show it): at most 15 characters.
void nameThread(const char *name);

/// For a thread of the runtime's own, which runs no code of the program: signals sent to the
/// process (the program's timers, kill(2), a terminal's) go to the program's threads, so that a
/// handler of the program's never runs on it, as none would natively; faults it raises itself
/// still come. Returns the mask it had (for a thread it starts that runs the program's code).
sigset_t blockProgramSignals();

/// Adds one to the eventfd `fd` (wakes whoever polls it). Async-signal-safe: errno is kept.
void signalEventFd(int fd);
/// Resets the eventfd `fd` (non-blocking: nothing to read is fine).
void drainEventFd(int fd);

/// Wakes the thread that waits on `bell` (waitBell) after a change it waits for: one system
/// call, as signalEventFd, but the waiter needs no poll(2) set-up and no read to reset it.
void ringBell(std::atomic<std::uint32_t> &bell);
/// Waits until `bell` is rung after it held `seen`, or `timeout` passes, or a signal comes.
void waitBell(std::atomic<std::uint32_t> &bell, std::uint32_t seen,
              std::chrono::milliseconds timeout);

/// The largest message a node accepts: the largest call blob (jit::maxCallBytes()) and its
/// envelope.
std::int64_t maxMessageBytes();

/// Set by SIGTERM/SIGINT on a member node (0 otherwise): stop serving and exit quietly.
std::atomic<int> &terminateSignal();

} // namespace distnode::node

#endif
