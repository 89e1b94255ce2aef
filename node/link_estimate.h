// link_estimate.h - a link's latency and bandwidth from the remote calls that crossed it: each
// call's round trip less the time the callee spent serving it (the Reply's serve_ns) is time
// on the wire and in the two nodes' transports. The prober (adaptation.h) measures a link only
// where calls showed nothing.
#ifndef DISTNODE_NODE_LINK_ESTIMATE_H
#define DISTNODE_NODE_LINK_ESTIMATE_H

#include <chrono>
#include <cstddef>
#include <mutex>

namespace distnode::node {

/// The remote calls to one node in the current interval. Thread-safe.
class LinkSamples {
public:
  /// Calls of at most this many payload bytes (both ways) measure latency...
  static constexpr std::size_t kSmallBytes = 512;
  /// ...and of at least this many, bandwidth.
  static constexpr std::size_t kLargeBytes = 64 * 1024;

  /// One call: `bytes` sent and received, `network` its round trip less the callee's serving.
  void add(std::size_t bytes, std::chrono::nanoseconds network);

  struct Estimate {
    double latency_s = 0;         ///< one way; 0: no small call in the interval
    double bandwidth_bytes_s = 0; ///< 0: no large call, or none slower than the latency
  };
  /// What the interval's calls show, and a new interval. Bandwidth takes the round trips'
  /// latency from this interval's small calls, else `known_latency_s` (0: no bandwidth).
  Estimate take(double known_latency_s);

private:
  std::mutex mu_;
  double least_small_s_ = 0; ///< the fastest small call's network time; 0: none
  double large_bytes_ = 0, large_s_ = 0;
  std::size_t large_calls_ = 0;
};

} // namespace distnode::node

#endif
