// link_estimate_test.cpp - a link's latency and bandwidth from the calls that crossed it.
#include "node/coordinator.h"
#include "node/link_estimate.h"
#include "node/profile_wire.h"
#include "transport/messages.h"

#include <gtest/gtest.h>

namespace distnode::node {
namespace {

using std::chrono::microseconds;

TEST(LinkSamples, LatencyIsHalfTheFastestSmallCall) {
  LinkSamples s;
  s.add(64, microseconds(130));
  s.add(512, microseconds(100)); // still small
  s.add(200, microseconds(400)); // queued behind something: not the link's
  s.add(4096, microseconds(90)); // neither small nor large: says nothing
  LinkSamples::Estimate e = s.take(0);
  EXPECT_DOUBLE_EQ(e.latency_s, 50e-6);
  EXPECT_EQ(e.bandwidth_bytes_s, 0) << "no large call";
  e = s.take(0);
  EXPECT_EQ(e.latency_s, 0) << "a new interval starts empty";
}

TEST(LinkSamples, BandwidthIsTheLargeCallsBytesOverTheirTimeBeyondTheLatency) {
  LinkSamples s;
  s.add(100, microseconds(100));      // latency 50 µs
  s.add(1 << 20, microseconds(1100)); // 1 MiB in 1000 µs beyond two latencies
  s.add(1 << 20, microseconds(2100)); // and in 2000 µs
  LinkSamples::Estimate e = s.take(0);
  EXPECT_DOUBLE_EQ(e.bandwidth_bytes_s, 2.0 * (1 << 20) / 3000e-6);
  // Without a small call in the interval, the latency known from before is taken.
  s.add(1 << 20, microseconds(1100));
  e = s.take(50e-6);
  EXPECT_EQ(e.latency_s, 0);
  EXPECT_DOUBLE_EQ(e.bandwidth_bytes_s, (1 << 20) / 1000e-6);
  // Without any latency, nothing of the bandwidth either.
  s.add(1 << 20, microseconds(1100));
  EXPECT_EQ(s.take(0).bandwidth_bytes_s, 0);
  // A call faster than two latencies says nothing of the bandwidth.
  s.add(1 << 20, microseconds(80));
  EXPECT_EQ(s.take(50e-6).bandwidth_bytes_s, 0);
  // Nor one the latencies explain almost wholly: 1 µs beyond them would be 1 TB/s.
  s.add(1 << 20, microseconds(101));
  EXPECT_EQ(s.take(50e-6).bandwidth_bytes_s, 0);
  // Nor does a round trip shorter than the callee's own time (a clock step).
  s.add(64, microseconds(-5));
  EXPECT_EQ(s.take(0).latency_s, 0);
}

// The reply carries the callee's serving time, and a profile delta says how each link was
// measured.
TEST(LinkSamples, ServingTimeAndTheLinksSourceTravelOnTheWire) {
  transport::ReplyBuilder b;
  zmq::message_t reply = b.finish(7, 123456);
  const wire::Envelope *e = transport::verifyEnvelope(reply);
  ASSERT_NE(e, nullptr);
  ASSERT_NE(e->body_as_Reply(), nullptr);
  EXPECT_EQ(e->body_as_Reply()->serve_ns(), 123456u);

  NodeReport r;
  r.links.push_back({1, 60e-6, 5e8, true, false});
  r.links.push_back({2, 70e-6, 4e8, false, true});
  zmq::message_t m = encodeProfileDelta(3, r);
  const wire::Envelope *pe = transport::verifyEnvelope(m);
  ASSERT_NE(pe, nullptr);
  ASSERT_NE(pe->body_as_ProfileDelta(), nullptr);
  NodeReport back;
  ASSERT_FALSE(decodeProfileDelta(*pe->body_as_ProfileDelta(), 0, back).has_value());
  ASSERT_EQ(back.links.size(), 2u);
  EXPECT_TRUE(back.links[0].latency_by_calls);
  EXPECT_FALSE(back.links[0].bandwidth_by_calls);
  EXPECT_FALSE(back.links[1].latency_by_calls);
  EXPECT_TRUE(back.links[1].bandwidth_by_calls);
  EXPECT_NEAR(back.links[1].latency_s, 70e-6, 1e-12);
}

} // namespace
} // namespace distnode::node
