// stack_reserve.h - running nested calls on fresh stack segments when a thread's stack runs low.
//
// A call served while its thread waits for a remote reply (A→B→A) runs on top of the waiting
// frames, so recursion that alternates between nodes stacks the runtime's frames (decoding,
// waiting, serving) at every level, on every node. Instead of bounding that depth by the
// thread's stack, a nested call that finds less than kStackReserve left runs on a new segment
// (mmap'd, committed page by page as it is touched), and the segment is released when the call
// returns. The segments of one thread are bounded by stackBudget() in all; past it the call is
// refused (not run), which the caller reports as an error naming the function and the depth.
#ifndef DISTNODE_JIT_STACK_RESERVE_H
#define DISTNODE_JIT_STACK_RESERVE_H

#include <cstddef>
#include <type_traits>

namespace distnode::jit {

/// Stack a nested call needs in hand before it starts; below it, it moves to a fresh segment.
inline constexpr std::size_t kStackReserve = std::size_t(256) << 10;
/// Size of one extra segment.
inline constexpr std::size_t kStackSegment = std::size_t(8) << 20;
/// Extra segments one thread may hold at once by default (bytes of address space; memory is
/// committed only as deep as the recursion goes). The environment variable
/// DISTNODE_STACK_BUDGET_MB overrides it.
inline constexpr std::size_t kDefaultStackBudget = std::size_t(4) << 30;

/// The budget in effect: kDefaultStackBudget or DISTNODE_STACK_BUDGET_MB.
[[nodiscard]] std::size_t stackBudget();

/// Runs `fn(arg)` on this thread: on the current stack if at least kStackReserve of it is left,
/// else on a fresh segment. Returns false, without running `fn`, if the segment would exceed
/// stackBudget() or cannot be mapped. Thread-safe (all state is per thread).
[[nodiscard]] bool runWithStackReserve(void (*fn)(void *), void *arg);

/// The same for any callable.
template <typename F> [[nodiscard]] bool withStackReserve(F &&f) {
  using Fn = std::remove_reference_t<F>;
  return runWithStackReserve([](void *p) { (*static_cast<Fn *>(p))(); },
                             const_cast<void *>(static_cast<const void *>(&f)));
}

/// Bytes of extra segments this thread holds now (for tests and diagnostics).
[[nodiscard]] std::size_t stackSegmentBytes();

} // namespace distnode::jit

#endif
