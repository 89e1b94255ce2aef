// unit_gate.h - the gates of migratable placement units: which calls of a unit run on this
// node right now, and holding new ones back while the unit's state moves to another node.
//
// Every call of a function of a migratable unit enters through tryEnter and leaves through
// exit: the JIT's `NAME.gated` wrappers (the stub target of a local function of such a unit)
// and the runtime's paths for served and re-routed calls. A migration closes the gate, waits
// until no call is inside the unit (drained), ships the state, and opens it once the placement
// has switched. The handshake is Dekker-style: a caller increments the unit's count before it
// reads the gate, the migration closes the gate before it reads the count, both sequentially
// consistent, so either the caller sees the gate closed and turns back, or the migration sees
// the call and waits for it. A call also turns back where the node no longer owns the unit: the
// flag changes while the gate is closed, before the placement is published.
//
// A call made from inside the unit on the same thread (recursion, a nested call of the unit
// while one of its calls waits for another node) passes a closed gate: it belongs to a call in
// progress, which the drain waits for.
//
// No LLVM: the runtime of JIT'd code and of the node.
#ifndef DISTNODE_JIT_UNIT_GATE_H
#define DISTNODE_JIT_UNIT_GATE_H

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

namespace distnode::jit {

/// The gates of one program's units. Thread-safe.
class UnitGates {
public:
  /// `gated[u]`: unit u is migratable (its calls are counted); the others always enter.
  explicit UnitGates(std::vector<bool> gated);

  [[nodiscard]] bool gated(std::uint32_t unit) const {
    return unit < gated_.size() && gated_[unit];
  }

  /// A call of `unit` starts on this thread: true if it may run here; false if the gate is
  /// closed or this node does not own the unit (the caller then waits for the gate to open and
  /// goes where the placement says).
  [[nodiscard]] bool tryEnter(std::uint32_t unit);
  /// The call that entered returns.
  void exit(std::uint32_t unit);
  /// Whether this thread is inside a call of `unit`.
  [[nodiscard]] bool insideOnThisThread(std::uint32_t unit) const;

  /// Closes the gate of `unit` and waits until no call is inside it, for at most `timeout`.
  /// False (and the gate open again) if calls were still inside it then.
  [[nodiscard]] bool closeAndDrain(std::uint32_t unit, std::chrono::milliseconds timeout);
  /// Opens the gate; calls waiting at it go on.
  void open(std::uint32_t unit);
  /// Blocks while the gate of `unit` is closed.
  void waitOpen(std::uint32_t unit);
  [[nodiscard]] bool closed(std::uint32_t unit) const;
  /// Whether this node owns `unit` (default: yes). Set before a placement that changes it is
  /// published: a call that entered the unit's code through a stale stub or table after the
  /// unit left turns back instead of running on the state that left with it.
  void setOwned(std::uint32_t unit, bool owned);
  /// Calls of `unit` running on this node now.
  [[nodiscard]] std::int64_t active(std::uint32_t unit) const;

private:
  std::vector<bool> gated_;
  std::unique_ptr<std::atomic<std::int64_t>[]> active_;
  std::unique_ptr<std::atomic<std::uint8_t>[]> closed_;
  std::unique_ptr<std::atomic<std::uint8_t>[]> owned_;
  std::mutex mu_; ///< for cv_: drains and waiters
  std::condition_variable cv_;
  std::size_t id_; ///< this object's index in every thread's depth table
};

/// `NAME.gated`'s entry and exit (called from JIT'd code with the session's gates).
extern "C" bool distUnitEnter(UnitGates *gates, std::uint32_t unit);
extern "C" void distUnitExit(UnitGates *gates, std::uint32_t unit);

} // namespace distnode::jit

#endif
