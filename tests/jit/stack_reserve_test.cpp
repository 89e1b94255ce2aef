// stack_reserve_test.cpp - nested calls on fresh stack segments: they run there, and what a
// native call shares with its caller (the floating-point environment) comes back from there.
#include "jit/stack_reserve.h"

#include <gtest/gtest.h>

#include <cfenv>
#include <pthread.h>

namespace distnode::jit {
namespace {

struct Seen {
  std::size_t segment_bytes = 0; ///< held while the call ran
  int round = 0;                 ///< the rounding mode after the call returned
  bool inexact = false;          ///< the exception flag after it returned
  bool ran = false;
};

// On a thread whose whole stack is less than kStackReserve, every call moves to a segment.
void *onSmallStack(void *out) {
  auto &seen = *static_cast<Seen *>(out);
  std::feclearexcept(FE_ALL_EXCEPT);
  std::fesetround(FE_TONEAREST);
  seen.ran = withStackReserve([&] {
    seen.segment_bytes = stackSegmentBytes();
    std::fesetround(FE_UPWARD);
    volatile double third = 1.0;
    third = third / 3.0; // raises FE_INEXACT
  });
  seen.round = std::fegetround();
  seen.inexact = std::fetestexcept(FE_INEXACT) != 0;
  std::fesetround(FE_TONEAREST);
  return nullptr;
}

TEST(StackReserve, ACallOnASegmentLeavesItsFloatingPointEnvironmentToTheCaller) {
  pthread_attr_t attr;
  ASSERT_EQ(pthread_attr_init(&attr), 0);
  ASSERT_EQ(pthread_attr_setstacksize(&attr, kStackReserve / 2), 0);
  Seen seen;
  pthread_t thread;
  ASSERT_EQ(pthread_create(&thread, &attr, onSmallStack, &seen), 0);
  pthread_join(thread, nullptr);
  pthread_attr_destroy(&attr);
  ASSERT_TRUE(seen.ran);
  EXPECT_EQ(seen.segment_bytes, kStackSegment) << "the call ran on a segment";
  EXPECT_EQ(seen.round, FE_UPWARD) << "the rounding mode the call set";
  EXPECT_TRUE(seen.inexact) << "the exception the call raised";
}

} // namespace
} // namespace distnode::jit
