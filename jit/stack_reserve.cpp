// stack_reserve.cpp - running nested calls on fresh stack segments when a thread's stack runs low.
#include "jit/stack_reserve.h"

#include <cfenv>
#include <cstdint>
#include <cstdlib>

#include <pthread.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define DISTNODE_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define DISTNODE_ASAN 1
#endif
#ifdef DISTNODE_ASAN
#include <sanitizer/common_interface_defs.h>
#endif

namespace distnode::jit {

namespace {

// The stack this thread runs on now: its lowest usable address, and the extra segments held.
struct ThreadStack {
  bool known = false;
  std::uintptr_t low = 0; ///< 0: unknown (then calls run where they are)
  std::uintptr_t high = 0;
  std::size_t segment_bytes = 0;
};

thread_local ThreadStack this_stack;

void findThreadStack(ThreadStack &s) {
  s.known = true;
  pthread_attr_t attr;
  if (pthread_getattr_np(pthread_self(), &attr) != 0)
    return;
  void *addr = nullptr;
  std::size_t size = 0;
  if (pthread_attr_getstack(&attr, &addr, &size) == 0) {
    s.low = reinterpret_cast<std::uintptr_t>(addr);
    s.high = s.low + size;
  }
  pthread_attr_destroy(&attr);
}

// What the segment runs, handed over in a thread-local (makecontext passes only ints).
struct Trampoline {
  void (*fn)(void *);
  void *arg;
  fenv_t fenv{}; ///< the floating-point environment `fn` left, which going back would undo
  const void *caller_bottom = nullptr; ///< for AddressSanitizer's fiber switch
  std::size_t caller_size = 0;
};

thread_local Trampoline *pending = nullptr;

void onSegment() {
  Trampoline *t = pending;
#ifdef DISTNODE_ASAN
  __sanitizer_finish_switch_fiber(nullptr, &t->caller_bottom, &t->caller_size);
#endif
  t->fn(t->arg);
  fegetenv(&t->fenv);
#ifdef DISTNODE_ASAN
  __sanitizer_start_switch_fiber(nullptr, t->caller_bottom, t->caller_size);
#endif
  // Returning resumes uc_link: the caller's context.
}

// The slow path, apart so that its two contexts (about 2 KB) are not in the frame of every
// call that stays on its stack.
[[gnu::noinline]] bool runOnSegment(ThreadStack &s, void (*fn)(void *), void *arg) {
  if (s.segment_bytes + kStackSegment > stackBudget())
    return false;
  const std::size_t guard = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  void *mem = mmap(nullptr, guard + kStackSegment, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
  if (mem == MAP_FAILED)
    return false;
  mprotect(mem, guard, PROT_NONE); // an overflow of the segment faults instead of corrupting
  auto *bottom = static_cast<char *>(mem) + guard;

  ucontext_t back, segment;
  getcontext(&segment);
  segment.uc_stack.ss_sp = bottom;
  segment.uc_stack.ss_size = kStackSegment;
  segment.uc_link = &back;
  makecontext(&segment, onSegment, 0);

  Trampoline t{fn, arg};
  ThreadStack saved = s;
  s.low = reinterpret_cast<std::uintptr_t>(bottom);
  s.high = s.low + kStackSegment;
  s.segment_bytes += kStackSegment;
  pending = &t;
#ifdef DISTNODE_ASAN
  void *fake_stack = nullptr;
  __sanitizer_start_switch_fiber(&fake_stack, bottom, kStackSegment);
#endif
  swapcontext(&back, &segment);
#ifdef DISTNODE_ASAN
  __sanitizer_finish_switch_fiber(fake_stack, nullptr, nullptr);
#endif
  // The switch back restored the floating-point environment saved when the segment started
  // (glibc's contexts hold it); the call's own is what the caller sees natively.
  fesetenv(&t.fenv);
  s = saved;
  munmap(mem, guard + kStackSegment);
  return true;
}

} // namespace

bool runWithStackReserve(void (*fn)(void *), void *arg) {
  ThreadStack &s = this_stack;
  if (!s.known)
    findThreadStack(s);
  auto sp = reinterpret_cast<std::uintptr_t>(__builtin_frame_address(0));
  // Not on a stack we know (a signal stack, say): run in place, as without this helper.
  if (s.low == 0 || sp < s.low || sp >= s.high || sp - s.low >= kStackReserve) {
    fn(arg);
    return true;
  }
  return runOnSegment(s, fn, arg);
}

std::size_t stackBudget() {
  static const std::size_t budget = [] {
    const char *mb = std::getenv("DISTNODE_STACK_BUDGET_MB");
    if (!mb || !*mb)
      return kDefaultStackBudget;
    char *end = nullptr;
    unsigned long long v = std::strtoull(mb, &end, 10);
    return *end == 0 && v < (std::size_t(1) << 40) ? static_cast<std::size_t>(v) << 20
                                                   : kDefaultStackBudget;
  }();
  return budget;
}

std::size_t stackSegmentBytes() { return this_stack.segment_bytes; }

} // namespace distnode::jit
