// messages.h - building and checking the FlatBuffers messages of transport/wire.fbs.
#ifndef DISTNODE_TRANSPORT_MESSAGES_H
#define DISTNODE_TRANSPORT_MESSAGES_H

#include "transport/wire_generated.h"

#include <zmq.hpp>

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace distnode::transport {

/// Bumped on every incompatible change of wire.fbs or of the marshaling format; a Join with
/// another version is refused.
inline constexpr std::uint32_t kProtocolVersion = 15;

/// The envelope in a received message after the FlatBuffers Verifier accepted it, or nullptr
/// for anything malformed. The view is valid while the message lives. FlatBuffers reads its
/// fields in place, which needs the buffer 8-byte aligned; ZeroMQ may hand out a message at
/// any offset of its receive buffer, so a misaligned message is first copied (into memory of
/// its own, which is aligned).
[[nodiscard]] const wire::Envelope *verifyEnvelope(zmq::message_t &message);

/// The call_id of any request or response body, or 0.
[[nodiscard]] std::uint64_t callIdOf(const wire::Envelope &envelope);

/// What a message needs beyond its blob: the envelope, the body's table and alignment. A
/// builder that reserves blob + kBuilderSlack bytes never grows, so the blob is written once
/// (a builder that grows copies everything it holds: a whole pass over a large blob).
inline constexpr std::size_t kBuilderSlack = 256;

/// Wraps `body` (of type `type`, built in `b`) in an Envelope and hands the builder's buffer
/// to ZeroMQ without copying it. `reserved`: the bytes `b` was made with, if it carries a blob
/// (a builder that grew beyond them is counted: buildersGrown).
[[nodiscard]] zmq::message_t finishEnvelope(flatbuffers::FlatBufferBuilder &b, wire::Body type,
                                            flatbuffers::Offset<void> body,
                                            std::size_t reserved = 0);

/// How many messages with a blob outgrew the bytes their builder reserved, since the process
/// started (each growth is one more copy of the blob). Zero is how it should stay.
[[nodiscard]] std::uint64_t buildersGrown();

[[nodiscard]] zmq::message_t makeJoin(std::uint64_t call_id, std::string_view node,
                                      const std::array<std::uint8_t, 32> &bitcode_sha256,
                                      std::string_view nodes = {});
[[nodiscard]] zmq::message_t makeWelcome(std::uint64_t call_id, bool accepted,
                                         std::string_view reason);
[[nodiscard]] zmq::message_t makeCall(std::uint64_t call_id, std::uint32_t function,
                                      std::uint64_t epoch, const std::uint8_t *args,
                                      std::size_t size, std::uint64_t chain = 0);
/// A Call whose argument blob of `size` bytes is written by `fill` straight into the message;
/// `c_state`: the calling thread's (captureThreadCState()).
[[nodiscard]] zmq::message_t makeCallWith(std::uint64_t call_id, std::uint32_t function,
                                          std::uint64_t epoch, std::size_t size,
                                          const std::function<void(std::uint8_t *)> &fill,
                                          std::uint64_t chain = 0,
                                          const wire::ThreadCState &c_state = {});

/// This thread's errno and floating-point environment (rounding mode, exception flags).
[[nodiscard]] wire::ThreadCState captureThreadCState();
/// Makes them this thread's (a rounding mode this machine does not have is left as it is).
void applyThreadCState(const wire::ThreadCState &state);

/// Builds a Reply whose result is written in place: allocate() once, then finish().
class ReplyBuilder {
public:
  /// Room for a result of `size` bytes inside the message being built.
  std::uint8_t *allocate(std::size_t size);
  /// The finished message (an empty result if allocate was not called); `serve_ns`: the time
  /// the call took here (Reply.serve_ns); `c_state`: the callee's as it returned.
  [[nodiscard]] zmq::message_t finish(std::uint64_t call_id, std::uint64_t serve_ns = 0,
                                      const wire::ThreadCState *c_state = nullptr);

private:
  std::unique_ptr<flatbuffers::FlatBufferBuilder> builder_;
  std::size_t reserved_ = 0;
  flatbuffers::Offset<flatbuffers::Vector<std::uint8_t>> result_;
};

[[nodiscard]] zmq::message_t makeReply(std::uint64_t call_id, const std::uint8_t *result,
                                       std::size_t size);
[[nodiscard]] zmq::message_t makeError(std::uint64_t call_id, wire::ErrorCode code,
                                       std::string_view message);
/// `replicas`: the replica sets of the load-balanced units.
[[nodiscard]] zmq::message_t makePlacement(std::uint64_t call_id, std::uint64_t epoch,
                                           const std::vector<std::uint16_t> &owners,
                                           const std::vector<wire::ReplicaShare> &replicas = {});
/// `reason` says why the cluster stops when it failed; "" when the program finished.
[[nodiscard]] zmq::message_t makeShutdown(std::uint64_t call_id, std::int32_t exit_code,
                                          std::string_view reason = {});
/// From a member whose program called exit(`exit_code`), quick_exit() or _exit() (`how`): the
/// entry node ends the program the same way.
[[nodiscard]] zmq::message_t makeExit(std::uint64_t call_id, std::int32_t exit_code,
                                      wire::ExitKind how);
/// From the entry node: `report_interval_ms`, the planning interval (0: unchanged), and
/// `report_round`, a round whose profile delta the member sends now (0: none). From a member:
/// `wants_round`, its traffic shows a new phase, with `report_round` the last round it
/// answered.
[[nodiscard]] zmq::message_t makeHeartbeat(std::uint64_t call_id,
                                           std::uint32_t report_interval_ms = 0,
                                           std::uint64_t report_round = 0,
                                           bool wants_round = false);
/// From a coordinator that is not the entry node: planning round `round` starts, at
/// `interval_ms`.
[[nodiscard]] zmq::message_t makeRound(std::uint64_t call_id, std::uint64_t round,
                                       std::uint32_t interval_ms);
/// The entry node's answer to a coordinator's Placement: the epoch in effect and the units
/// kept where they were (unit, why).
[[nodiscard]] zmq::message_t
makePlaced(std::uint64_t call_id, std::uint64_t epoch,
           const std::vector<std::pair<std::uint32_t, std::string>> &kept);
[[nodiscard]] zmq::message_t makeMigrate(std::uint64_t call_id, std::uint32_t unit,
                                         wire::MigratePhase phase,
                                         const std::vector<std::uint8_t> &state = {});
[[nodiscard]] zmq::message_t makeProbe(std::uint64_t call_id, std::size_t bytes);
[[nodiscard]] zmq::message_t makeMoved(std::uint64_t call_id, std::uint16_t owner,
                                       std::uint64_t epoch);

/// zmq send and receive that retry when a signal interrupts them (the profiler's SIGPROF
/// arrives many times a second); otherwise as socket_t::send/recv: an empty result means
/// "would block".
zmq::send_result_t sendRetrying(zmq::socket_t &socket, zmq::message_t &message,
                                zmq::send_flags flags);
zmq::recv_result_t recvRetrying(zmq::socket_t &socket, zmq::message_t &message,
                                zmq::recv_flags flags);
/// Sends `message` followed by `parts` as one multipart message (all or nothing). False when
/// `flags` say dontwait and the socket has no room now (nothing sent, `message` intact). The
/// parts after the first are never refused: every distnode socket queues without limit. Throws
/// zmq::error_t as a send does; after the first part only ETERM can (the process is ending),
/// which leaves the socket in the middle of a message: it may not be used again.
bool sendWithParts(zmq::socket_t &socket, zmq::message_t &message,
                   std::vector<zmq::message_t> &parts, zmq::send_flags flags);
/// A message part that is `size` bytes of the caller's memory at `data`, sent from there
/// without a copy: they must stay unchanged until the peer has received them (for a call, until
/// its answer comes).
[[nodiscard]] zmq::message_t borrowedPart(const void *data, std::size_t size);
/// ZMQ_EVENTS (ZMQ_POLLIN, ZMQ_POLLOUT), retried likewise: reading it makes ZeroMQ process its
/// pending commands, which a signal can interrupt as it does a receive.
int eventsRetrying(zmq::socket_t &socket);

/// Room for a message's envelope beyond its blob: the largest message a node accepts is the
/// largest call blob plus this. ZeroMQ drops a connection that sends more, before buffering it.
inline constexpr std::int64_t kEnvelopeBytes = 64 << 10;

/// Sets the options every distnode socket uses: no linger on close (a stopping node must not
/// block on unsent messages), no limit on queued messages, and at most `max_message_bytes` per
/// received message.
void configureSocket(zmq::socket_t &socket, std::int64_t max_message_bytes);

} // namespace distnode::transport

#endif
