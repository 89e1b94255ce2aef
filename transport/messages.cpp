// messages.cpp - building and checking the FlatBuffers messages of transport/wire.fbs.
#include "transport/messages.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cfenv>
#include <cstdlib>

namespace distnode::transport {

namespace {
std::atomic<std::uint64_t> builders_grown{0};
} // namespace

std::uint64_t buildersGrown() { return builders_grown.load(std::memory_order_relaxed); }

zmq::message_t finishEnvelope(flatbuffers::FlatBufferBuilder &b, wire::Body type,
                              flatbuffers::Offset<void> body, std::size_t reserved) {
  b.Finish(wire::CreateEnvelope(b, type, body));
  std::size_t size = 0, offset = 0;
  std::uint8_t *raw = b.ReleaseRaw(size, offset); // size: the bytes the builder holds
  // The builder rounds what it reserves up to its alignment (at most 64); growing adds at
  // least half of what it had (128 bytes or more), so a rounded reservation is no growth.
  if (reserved > 0 && size > ((reserved + 63) & ~std::size_t{63}))
    builders_grown.fetch_add(1, std::memory_order_relaxed);
  return zmq::message_t(
      raw + offset, size - offset,
      [](void *, void *hint) { delete[] static_cast<std::uint8_t *>(hint); }, raw);
}

const wire::Envelope *verifyEnvelope(zmq::message_t &message) {
  if (reinterpret_cast<std::uintptr_t>(message.data()) % alignof(std::uint64_t) != 0)
    message = zmq::message_t(message.data(), message.size());
  flatbuffers::Verifier verifier(message.data<std::uint8_t>(), message.size());
  if (!wire::VerifyEnvelopeBuffer(verifier))
    return nullptr;
  const wire::Envelope *envelope = wire::GetEnvelope(message.data());
  return envelope->body() ? envelope : nullptr;
}

std::uint64_t callIdOf(const wire::Envelope &e) {
  switch (e.body_type()) {
  case wire::Body::Join:
    return e.body_as_Join()->call_id();
  case wire::Body::Welcome:
    return e.body_as_Welcome()->call_id();
  case wire::Body::Call:
    return e.body_as_Call()->call_id();
  case wire::Body::Reply:
    return e.body_as_Reply()->call_id();
  case wire::Body::Error:
    return e.body_as_Error()->call_id();
  case wire::Body::Placement:
    return e.body_as_Placement()->call_id();
  case wire::Body::Shutdown:
    return e.body_as_Shutdown()->call_id();
  case wire::Body::Heartbeat:
    return e.body_as_Heartbeat()->call_id();
  case wire::Body::Moved:
    return e.body_as_Moved()->call_id();
  case wire::Body::Probe:
    return e.body_as_Probe()->call_id();
  case wire::Body::ProfileDelta:
    return e.body_as_ProfileDelta()->call_id();
  case wire::Body::Migrate:
    return e.body_as_Migrate()->call_id();
  case wire::Body::Round:
    return e.body_as_Round()->call_id();
  case wire::Body::Placed:
    return e.body_as_Placed()->call_id();
  case wire::Body::Exit:
    return e.body_as_Exit()->call_id();
  default:
    return 0;
  }
}

zmq::message_t makeJoin(std::uint64_t call_id, std::string_view node,
                        const std::array<std::uint8_t, 32> &sha, std::string_view nodes) {
  flatbuffers::FlatBufferBuilder b(128 + nodes.size());
  auto name = b.CreateString(node.data(), node.size());
  auto hash = b.CreateVector(sha.data(), sha.size());
  auto shape = b.CreateString(nodes.data(), nodes.size());
  auto body = wire::CreateJoin(b, call_id, kProtocolVersion, name, hash, shape);
  return finishEnvelope(b, wire::Body::Join, body.Union());
}

zmq::message_t makeWelcome(std::uint64_t call_id, bool accepted, std::string_view reason) {
  flatbuffers::FlatBufferBuilder b(128);
  auto text = b.CreateString(reason.data(), reason.size());
  auto body = wire::CreateWelcome(b, call_id, accepted, text);
  return finishEnvelope(b, wire::Body::Welcome, body.Union());
}

zmq::message_t makeCall(std::uint64_t call_id, std::uint32_t function, std::uint64_t epoch,
                        const std::uint8_t *args, std::size_t size, std::uint64_t chain) {
  flatbuffers::FlatBufferBuilder b(size + kBuilderSlack);
  auto blob = b.CreateVector(args, size);
  auto body = wire::CreateCall(b, call_id, function, epoch, blob, chain);
  return finishEnvelope(b, wire::Body::Call, body.Union(), size + kBuilderSlack);
}

zmq::message_t makeCallWith(std::uint64_t call_id, std::uint32_t function, std::uint64_t epoch,
                            std::size_t size, const std::function<void(std::uint8_t *)> &fill,
                            std::uint64_t chain, const wire::ThreadCState &c_state) {
  flatbuffers::FlatBufferBuilder b(size + kBuilderSlack);
  std::uint8_t *room = nullptr;
  auto blob = b.CreateUninitializedVector(size, &room);
  fill(room);
  auto body = wire::CreateCall(b, call_id, function, epoch, blob, chain, &c_state);
  return finishEnvelope(b, wire::Body::Call, body.Union(), size + kBuilderSlack);
}

wire::ThreadCState captureThreadCState() {
  const int errno_value = errno; // first: the calls below do not set it, but keep it exact
  return wire::ThreadCState(errno_value, std::fegetround(), std::fetestexcept(FE_ALL_EXCEPT));
}

void applyThreadCState(const wire::ThreadCState &state) {
  std::fesetround(state.fp_round()); // fails (changing nothing) for a mode that is not one
  std::feclearexcept(FE_ALL_EXCEPT);
  fesetexcept(state.fp_flags() & FE_ALL_EXCEPT); // sets the flags without raising: no trap
  errno = state.errno_value();                   // last
}

std::uint8_t *ReplyBuilder::allocate(std::size_t size) {
  reserved_ = size + kBuilderSlack;
  builder_ = std::make_unique<flatbuffers::FlatBufferBuilder>(reserved_);
  std::uint8_t *room = nullptr;
  // Aligned as the buffer's end is (8 bytes at least): a callee may write its out-buffers here.
  builder_->ForceVectorAlignment(size, 1, 16);
  result_ = builder_->CreateUninitializedVector(size, &room);
  return room;
}

zmq::message_t ReplyBuilder::finish(std::uint64_t call_id, std::uint64_t serve_ns,
                                    const wire::ThreadCState *c_state) {
  if (!builder_) {
    builder_ = std::make_unique<flatbuffers::FlatBufferBuilder>(64);
    result_ = builder_->CreateVector(static_cast<const std::uint8_t *>(nullptr), 0);
  }
  auto body = wire::CreateReply(*builder_, call_id, result_, serve_ns, c_state);
  return finishEnvelope(*builder_, wire::Body::Reply, body.Union(), reserved_);
}

zmq::message_t makeReply(std::uint64_t call_id, const std::uint8_t *result, std::size_t size) {
  flatbuffers::FlatBufferBuilder b(size + kBuilderSlack);
  auto blob = b.CreateVector(result, size);
  auto body = wire::CreateReply(b, call_id, blob);
  return finishEnvelope(b, wire::Body::Reply, body.Union(), size + kBuilderSlack);
}

zmq::message_t makeError(std::uint64_t call_id, wire::ErrorCode code, std::string_view message) {
  flatbuffers::FlatBufferBuilder b(128);
  auto text = b.CreateString(message.data(), message.size());
  auto body = wire::CreateError(b, call_id, code, text);
  return finishEnvelope(b, wire::Body::Error, body.Union());
}

zmq::message_t makePlacement(std::uint64_t call_id, std::uint64_t epoch,
                             const std::vector<std::uint16_t> &owners,
                             const std::vector<wire::ReplicaShare> &replicas) {
  flatbuffers::FlatBufferBuilder b(64 + 2 * owners.size() + 8 * replicas.size());
  auto list = b.CreateVector(owners);
  auto shares = b.CreateVectorOfStructs(replicas);
  auto body = wire::CreatePlacement(b, call_id, epoch, list, shares);
  return finishEnvelope(b, wire::Body::Placement, body.Union());
}

zmq::message_t makeExit(std::uint64_t call_id, std::int32_t exit_code, wire::ExitKind how) {
  flatbuffers::FlatBufferBuilder b(64);
  auto body = wire::CreateExit(b, call_id, exit_code, how);
  return finishEnvelope(b, wire::Body::Exit, body.Union());
}

zmq::message_t makeShutdown(std::uint64_t call_id, std::int32_t exit_code,
                            std::string_view reason) {
  flatbuffers::FlatBufferBuilder b(64 + reason.size());
  auto text = b.CreateString(reason.data(), reason.size());
  auto body = wire::CreateShutdown(b, call_id, exit_code, text);
  return finishEnvelope(b, wire::Body::Shutdown, body.Union());
}

zmq::message_t makeMoved(std::uint64_t call_id, std::uint16_t owner, std::uint64_t epoch) {
  flatbuffers::FlatBufferBuilder b(48);
  auto body = wire::CreateMoved(b, call_id, owner, epoch);
  return finishEnvelope(b, wire::Body::Moved, body.Union());
}

zmq::message_t makeHeartbeat(std::uint64_t call_id, std::uint32_t report_interval_ms,
                             std::uint64_t report_round, bool wants_round) {
  flatbuffers::FlatBufferBuilder b(32);
  auto body = wire::CreateHeartbeat(b, call_id, report_interval_ms, report_round, wants_round);
  return finishEnvelope(b, wire::Body::Heartbeat, body.Union());
}

zmq::message_t makeRound(std::uint64_t call_id, std::uint64_t round, std::uint32_t interval_ms) {
  flatbuffers::FlatBufferBuilder b(48);
  auto body = wire::CreateRound(b, call_id, round, interval_ms);
  return finishEnvelope(b, wire::Body::Round, body.Union());
}

zmq::message_t makePlaced(std::uint64_t call_id, std::uint64_t epoch,
                          const std::vector<std::pair<std::uint32_t, std::string>> &kept) {
  flatbuffers::FlatBufferBuilder b(64);
  std::vector<flatbuffers::Offset<wire::KeptUnit>> units;
  for (const auto &[unit, why] : kept)
    units.push_back(wire::CreateKeptUnit(b, unit, b.CreateString(why)));
  auto body = wire::CreatePlaced(b, call_id, epoch, b.CreateVector(units));
  return finishEnvelope(b, wire::Body::Placed, body.Union());
}

zmq::message_t makeProbe(std::uint64_t call_id, std::size_t bytes) {
  flatbuffers::FlatBufferBuilder b(bytes + kBuilderSlack);
  std::uint8_t *room = nullptr;
  auto data = b.CreateUninitializedVector(bytes, &room);
  std::fill(room, room + bytes, std::uint8_t{0x5a});
  auto body = wire::CreateProbe(b, call_id, data);
  return finishEnvelope(b, wire::Body::Probe, body.Union(), bytes + kBuilderSlack);
}

zmq::message_t makeMigrate(std::uint64_t call_id, std::uint32_t unit, wire::MigratePhase phase,
                           const std::vector<std::uint8_t> &state) {
  flatbuffers::FlatBufferBuilder b(state.size() + kBuilderSlack);
  auto bytes = state.empty() ? 0 : b.CreateVector(state.data(), state.size()).o;
  auto body = wire::CreateMigrate(b, call_id, unit, phase,
                                  flatbuffers::Offset<flatbuffers::Vector<std::uint8_t>>(bytes));
  return finishEnvelope(b, wire::Body::Migrate, body.Union(), state.size() + kBuilderSlack);
}

zmq::send_result_t sendRetrying(zmq::socket_t &socket, zmq::message_t &message,
                                zmq::send_flags flags) {
  while (true) {
    try {
      return socket.send(message, flags);
    } catch (const zmq::error_t &e) {
      if (e.num() != EINTR)
        throw;
    }
  }
}

bool sendWithParts(zmq::socket_t &socket, zmq::message_t &message,
                   std::vector<zmq::message_t> &parts, zmq::send_flags flags) {
  const zmq::send_flags more = zmq::send_flags::sndmore;
  if (!sendRetrying(socket, message, parts.empty() ? flags : flags | more))
    return false;
  // ZeroMQ delivers a multipart message whole or not at all, and takes the rest of one whose
  // first part it took (with no high-water mark, as configureSocket sets).
  for (std::size_t i = 0; i < parts.size(); ++i)
    sendRetrying(socket, parts[i], i + 1 < parts.size() ? more : zmq::send_flags::none);
  return true;
}

zmq::message_t borrowedPart(const void *data, std::size_t size) {
  // No free function: ZeroMQ treats the bytes as constant and never frees nor copies them.
  return zmq::message_t(const_cast<void *>(data), size, nullptr, nullptr);
}

zmq::recv_result_t recvRetrying(zmq::socket_t &socket, zmq::message_t &message,
                                zmq::recv_flags flags) {
  while (true) {
    try {
      return socket.recv(message, flags);
    } catch (const zmq::error_t &e) {
      if (e.num() != EINTR)
        throw;
    }
  }
}

int eventsRetrying(zmq::socket_t &socket) {
  while (true) {
    try {
      return socket.get(zmq::sockopt::events);
    } catch (const zmq::error_t &e) {
      if (e.num() != EINTR)
        throw;
    }
  }
}

void configureSocket(zmq::socket_t &socket, std::int64_t max_message_bytes) {
  socket.set(zmq::sockopt::linger, 0);
  socket.set(zmq::sockopt::sndhwm, 0);
  socket.set(zmq::sockopt::rcvhwm, 0);
  socket.set(zmq::sockopt::maxmsgsize, max_message_bytes);
  socket.set(zmq::sockopt::ipv6, 1); // tcp://[::1]:port as well as IPv4 addresses
}

} // namespace distnode::transport
