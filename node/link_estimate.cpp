// link_estimate.cpp - link latency and bandwidth from the remote calls' own round trips.
#include "node/link_estimate.h"

#include <algorithm>

namespace distnode::node {

void LinkSamples::add(std::size_t bytes, std::chrono::nanoseconds network) {
  double s = std::chrono::duration<double>(network).count();
  if (!(s > 0))
    return; // a clock step or a callee's time longer than the round trip: nothing learned
  std::lock_guard lock(mu_);
  if (bytes <= kSmallBytes)
    least_small_s_ = least_small_s_ > 0 ? std::min(least_small_s_, s) : s;
  if (bytes >= kLargeBytes) {
    large_bytes_ += static_cast<double>(bytes);
    large_s_ += s;
    ++large_calls_;
  }
}

LinkSamples::Estimate LinkSamples::take(double known_latency_s) {
  std::lock_guard lock(mu_);
  Estimate e;
  // The least of many round trips is the link's, without queueing or a slow wake-up.
  e.latency_s = least_small_s_ / 2;
  // Bandwidth needs the latency to take off each round trip: none known, none measured.
  double latency = e.latency_s > 0 ? e.latency_s : known_latency_s;
  // When the latencies explain almost all of the time (more than 90%), what is left is their
  // noise, not the transfer: a bandwidth from it could be anything (even beyond what a report
  // may carry, which would have the report refused).
  double transfer_s = large_s_ - static_cast<double>(large_calls_) * 2 * latency;
  if (large_calls_ > 0 && latency > 0 && transfer_s > 0.1 * large_s_)
    e.bandwidth_bytes_s = large_bytes_ / transfer_s;
  least_small_s_ = large_bytes_ = large_s_ = 0;
  large_calls_ = 0;
  return e;
}

} // namespace distnode::node
