// protocol_test.cpp - a real distnode member process against a hand-driven entry node: it
// answers unknown functions, stale epochs and malformed messages with Error replies, never
// crashes, and keeps serving.
#include "jit/bitcode.h"
#include "jit/program_analysis.h"
#include "node/cluster_config.h"
#include "node/coordinator.h"
#include "node/profile_wire.h"
#include "tests/support/subprocess.h"
#include "transport/messages.h"
#include "transport/ports.h"
#include "llvm/IR/Module.h"
#include "llvm/Support/Error.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <optional>
#include <thread>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

namespace distnode::testing {
namespace {

namespace wire = distnode::wire;

class MemberProtocol : public ::testing::Test {
protected:
  void SetUp() override {
    bitcode_ = std::string(DIST_FIXTURE_DIR) + "/fixture_marshal.bc";
    auto program = jit::loadBitcode(bitcode_);
    ASSERT_TRUE(bool(program)) << llvm::toString(program.takeError());
    sha_ = program->sha256;
    jit::ProgramAnalysis analysis = jit::analyzeProgram(*program->module);
    units_ = static_cast<int>(analysis.units.size());
    ping_unit_ = analysis.find("ping")->unit;
    lb_unit_ = analysis.find("lb_sum")->unit;
    lb_sum_ = analysis.find("lb_sum")->remote_id;
    ASSERT_TRUE(analysis.units[lb_unit_].load_balanced);
    ASSERT_GE(lb_sum_, 0);
    ping_ = analysis.find("ping")->remote_id;
    ASSERT_GE(ping_, 0);
    buffers_ = analysis.find("buffers")->remote_id;
    ASSERT_GE(buffers_, 0);
    account_open_ = analysis.find("account_open")->remote_id;
    account_deposit_ = analysis.find("account_deposit")->remote_id;
    ASSERT_GE(account_open_, 0);
    ASSERT_GE(account_deposit_, 0);

    std::vector<int> ports = freeLoopbackPorts(4);
    auto at = [](int port) { return "tcp://127.0.0.1:" + std::to_string(port); };
    config_ = writeTempFile("protocol.yaml", "cluster: t\njoin_timeout_ms: 10000\nnodes:\n"
                                             "  - {name: n0, call: '" +
                                                 at(ports[0]) + "', control: '" + at(ports[1]) +
                                                 "'}\n  - {name: n1, call: '" + at(ports[2]) +
                                                 "', control: '" + at(ports[3]) + "'}\n");
    control_.set(zmq::sockopt::linger, 0);
    control_.bind(at(ports[1]));
    dealer_.set(zmq::sockopt::linger, 0);
    dealer_.connect(at(ports[2]));
    process_ = startProcess({DIST_DISTNODE, "--join", config_, "--name", "n1", bitcode_},
                            std::chrono::seconds(60));
  }

  // Sends to the member, with `parts` after the message if any, and waits (10 s at most) for
  // its answer.
  zmq::message_t exchange(zmq::message_t request, std::vector<zmq::message_t> parts = {}) {
    EXPECT_TRUE(transport::sendWithParts(dealer_, request, parts, zmq::send_flags::none));
    zmq::pollitem_t item = {dealer_.handle(), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1, std::chrono::seconds(10));
    zmq::message_t answer;
    EXPECT_TRUE(item.revents & ZMQ_POLLIN) << "no answer from the member";
    if (item.revents & ZMQ_POLLIN) {
      EXPECT_TRUE(dealer_.recv(answer, zmq::recv_flags::none).has_value());
    }
    return answer;
  }

  // Sends on the control plane, as the entry node, and waits (10 s at most) for the answer
  // with `call_id`; heartbeats on the way are counted.
  zmq::message_t controlExchange(zmq::message_t request, std::uint64_t call_id) {
    zmq::message_t to(member_identity_.data(), member_identity_.size());
    control_.send(to, zmq::send_flags::sndmore);
    control_.send(request, zmq::send_flags::none);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
      zmq::pollitem_t item = {control_.handle(), 0, ZMQ_POLLIN, 0};
      zmq::poll(&item, 1, std::chrono::milliseconds(100));
      if (!(item.revents & ZMQ_POLLIN))
        continue;
      zmq::message_t identity, answer;
      EXPECT_TRUE(control_.recv(identity).has_value());
      EXPECT_TRUE(control_.recv(answer).has_value());
      const wire::Envelope *e = transport::verifyEnvelope(answer);
      if (e && e->body_type() == wire::Body::Heartbeat) {
        ++heartbeats_;
        continue;
      }
      if (e && transport::callIdOf(*e) == call_id)
        return answer;
    }
    ADD_FAILURE() << "no answer on the control plane";
    return zmq::message_t();
  }

  // The type of a message's body, or NONE if it is malformed.
  static wire::Body bodyOf(zmq::message_t message) {
    const wire::Envelope *e = transport::verifyEnvelope(message);
    return e ? e->body_type() : wire::Body::NONE;
  }

  wire::ErrorCode expectError(zmq::message_t answer, std::uint64_t call_id) {
    const wire::Envelope *e = transport::verifyEnvelope(answer);
    EXPECT_NE(e, nullptr);
    if (!e || e->body_type() != wire::Body::Error) {
      ADD_FAILURE() << "expected an Error";
      return wire::ErrorCode::Failed;
    }
    EXPECT_EQ(e->body_as_Error()->call_id(), call_id);
    return e->body_as_Error()->code();
  }

  // A placement from the entry node; the load-balanced unit's replicas on n1 unless given.
  zmq::message_t place(std::uint64_t call_id, std::uint64_t epoch,
                       const std::vector<std::uint16_t> &owners,
                       std::optional<std::vector<wire::ReplicaShare>> replicas = std::nullopt) {
    if (!replicas)
      replicas = {{static_cast<std::uint16_t>(lb_unit_), 1, 1.0f}};
    return controlExchange(transport::makePlacement(call_id, epoch, owners, *replicas), call_id);
  }

  std::int64_t callPing(std::uint64_t call_id, std::int64_t depth, std::uint64_t epoch,
                        int function = -1) {
    zmq::message_t answer =
        exchange(transport::makeCall(call_id, function < 0 ? ping_ : function, epoch,
                                     reinterpret_cast<const std::uint8_t *>(&depth), sizeof depth));
    const wire::Envelope *e = transport::verifyEnvelope(answer);
    if (!e || e->body_type() != wire::Body::Reply) {
      ADD_FAILURE() << "expected a Reply";
      return -1;
    }
    std::int64_t result = 0;
    EXPECT_EQ(e->body_as_Reply()->result()->size(), sizeof result);
    std::memcpy(&result, e->body_as_Reply()->result()->data(), sizeof result);
    return result;
  }

  zmq::context_t ctx_;
  zmq::socket_t control_{ctx_, zmq::socket_type::router};
  std::string member_identity_;
  int heartbeats_ = 0;
  zmq::socket_t dealer_{ctx_, zmq::socket_type::dealer};
  std::string bitcode_, config_;
  std::array<std::uint8_t, 32> sha_{};
  int units_ = 0;
  int ping_unit_ = -1;
  int lb_unit_ = -1, lb_sum_ = -1;
  int ping_ = -1;
  int buffers_ = -1;
  int account_open_ = -1, account_deposit_ = -1;
  std::future<ProcessResult> process_;
};

TEST_F(MemberProtocol, AnswersBadRequestsWithErrorsAndKeepsServing) {
  // The member joins the entry node (this test) on the control plane.
  zmq::pollitem_t item = {control_.handle(), 0, ZMQ_POLLIN, 0};
  zmq::poll(&item, 1, std::chrono::seconds(30));
  ASSERT_TRUE(item.revents & ZMQ_POLLIN) << "the member never sent Join";
  zmq::message_t identity, join;
  ASSERT_TRUE(control_.recv(identity).has_value());
  ASSERT_TRUE(control_.recv(join).has_value());
  member_identity_.assign(static_cast<const char *>(identity.data()), identity.size());
  const wire::Envelope *e = transport::verifyEnvelope(join);
  ASSERT_NE(e, nullptr);
  ASSERT_EQ(e->body_type(), wire::Body::Join);
  EXPECT_EQ(e->body_as_Join()->node()->str(), "n1");
  EXPECT_EQ(e->body_as_Join()->protocol(), transport::kProtocolVersion);
  EXPECT_TRUE(std::equal(sha_.begin(), sha_.end(), e->body_as_Join()->bitcode_sha256()->begin()));
  control_.send(identity, zmq::send_flags::sndmore);
  control_.send(transport::makeWelcome(e->body_as_Join()->call_id(), true, ""),
                zmq::send_flags::none);

  // Garbage: the verifier rejects it.
  EXPECT_EQ(expectError(exchange(zmq::message_t(std::string("not a flatbuffer"))), 0),
            wire::ErrorCode::Malformed);
  EXPECT_EQ(expectError(exchange(transport::makeCall(2, 99999, 0, nullptr, 0)), 2),
            wire::ErrorCode::UnknownFunction);
  // Control messages are obeyed only from the entry node's control connection: on the call
  // socket, anyone's Placement or Shutdown is refused and changes nothing.
  std::vector<std::uint16_t> all_on_n0(units_, 0);
  EXPECT_EQ(expectError(exchange(transport::makePlacement(3, 1, all_on_n0)), 3),
            wire::ErrorCode::Refused);
  EXPECT_EQ(expectError(exchange(transport::makeShutdown(30, 0)), 30), wire::ErrorCode::Refused);
  EXPECT_EQ(expectError(controlExchange(transport::makePlacement(31, 1, {1, 1}), 31), 31),
            wire::ErrorCode::Malformed)
      << "a placement must list every unit";

  // Everything on n1, epoch 1.
  std::vector<std::uint16_t> owners(units_, 1);
  zmq::message_t ack = place(4, 1, owners);
  e = transport::verifyEnvelope(ack);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->body_type(), wire::Body::Reply);

  std::int64_t depth = 1;
  EXPECT_EQ(callPing(5, 1, 0), 101) << "an older epoch is no error: n1 owns ping either way";
  EXPECT_EQ(expectError(exchange(transport::makeCall(
                            6, ping_, 1, reinterpret_cast<const std::uint8_t *>(&depth), 4)),
                        6),
            wire::ErrorCode::Malformed)
      << "4 bytes cannot hold an int64_t argument";
  EXPECT_EQ(callPing(7, 1, 1), 101) << "ping(1) = pong(0) + 1, both on n1";
  EXPECT_EQ(callPing(8, 4, 1), 203) << "ping(4) = 1 + 100 + 1 + 100 + 1";

  // Epoch 2 moves ping's unit to n0: a call for it is answered Moved(n0, 2), whatever epoch
  // the caller had; epoch 3 brings it back, and a late epoch 2 does not undo that.
  std::vector<std::uint16_t> moved = owners;
  moved[ping_unit_] = 0;
  ASSERT_EQ(bodyOf(place(40, 2, moved)), wire::Body::Reply);
  for (std::uint64_t epoch : {1, 2}) {
    SCOPED_TRACE(epoch);
    zmq::message_t answer = exchange(
        transport::makeCall(41, ping_, epoch, reinterpret_cast<const std::uint8_t *>(&depth), 8));
    const wire::Envelope *m = transport::verifyEnvelope(answer);
    ASSERT_NE(m, nullptr);
    ASSERT_EQ(m->body_type(), wire::Body::Moved);
    EXPECT_EQ(m->body_as_Moved()->owner(), 0);
    EXPECT_EQ(m->body_as_Moved()->epoch(), 2u);
  }
  ASSERT_EQ(bodyOf(place(42, 3, owners)), wire::Body::Reply);
  ASSERT_EQ(bodyOf(place(43, 2, moved)), wire::Body::Reply);
  EXPECT_EQ(callPing(44, 1, 3), 101) << "epoch 3 is in effect: ping runs on n1 again";

  // Replica sets: only load-balanced units have them, every one has one, on nodes of the
  // cluster, with positive weights, each node once. A bad one changes nothing.
  std::int64_t lb_1000 = 0;
  for (std::int64_t i = 1; i <= 1000; ++i)
    lb_1000 += i * i % 7;
  auto lb = static_cast<std::uint16_t>(lb_unit_);
  auto ping_unit = static_cast<std::uint16_t>(ping_unit_);
  using Shares = std::vector<wire::ReplicaShare>;
  for (const auto &[id, replicas] : std::vector<std::pair<std::uint64_t, Shares>>{
           {50, Shares{}},
           {51, Shares{{lb, 1, 1.0f}, {ping_unit, 1, 1.0f}}},
           {52, Shares{{lb, 7, 1.0f}}},
           {53, Shares{{lb, 1, NAN}}},
           {54, Shares{{lb, 1, -1.0f}}},
           {55, Shares{{lb, 1, 1.0f}, {lb, 1, 2.0f}}}}) {
    SCOPED_TRACE(id);
    EXPECT_EQ(expectError(place(id, 4, owners, replicas), id), wire::ErrorCode::Malformed);
  }
  EXPECT_EQ(callPing(56, 1000, 3, lb_sum_), lb_1000) << "epoch 3: lb_sum has a replica on n1";
  // Epoch 4: lb_sum's only replica is n0: n1 answers Moved there.
  ASSERT_EQ(bodyOf(place(57, 4, owners, Shares{{lb, 0, 1.0f}})), wire::Body::Reply);
  std::int64_t n = 1000;
  zmq::message_t elsewhere = exchange(
      transport::makeCall(58, lb_sum_, 4, reinterpret_cast<const std::uint8_t *>(&n), sizeof n));
  const wire::Envelope *m = transport::verifyEnvelope(elsewhere);
  ASSERT_NE(m, nullptr);
  ASSERT_EQ(m->body_type(), wire::Body::Moved);
  EXPECT_EQ(m->body_as_Moved()->owner(), 0);
  // Epoch 5: replicas on both nodes: n1 serves its calls again.
  ASSERT_EQ(bodyOf(place(59, 5, owners, Shares{{lb, 0, 1.0f}, {lb, 1, 3.0f}})), wire::Body::Reply);
  EXPECT_EQ(callPing(60, 1000, 5, lb_sum_), lb_1000);

  // buffers(const double *in, double *out, int64_t *acc, size_t n) with DIST_IN(in, n),
  // DIST_OUT(out, n), DIST_INOUT(acc, 4): an `in` that does not hold n elements is refused
  // (it once let the callee read past the message, and returned the member's heap in `out`).
  // With `in_own_part`, `in` is marked as the message's next part (its bytes are not in the
  // blob).
  auto buffersCall = [](std::uint64_t in_bytes, std::uint64_t n, bool in_own_part = false) {
    std::vector<std::uint8_t> blob;
    auto put = [&](const void *p, std::size_t k) {
      blob.insert(blob.end(), static_cast<const std::uint8_t *>(p),
                  static_cast<const std::uint8_t *>(p) + k);
    };
    std::uint8_t present = 1, own_part = 2;
    std::uint64_t acc_bytes = 32;
    std::vector<std::uint8_t> zeros(std::max<std::uint64_t>(in_bytes, acc_bytes), 0);
    put(in_own_part ? &own_part : &present, 1); // in
    put(&in_bytes, 8);
    if (!in_own_part)
      put(zeros.data(), in_bytes);
    put(&present, 1); // out
    put(&present, 1); // acc
    put(&acc_bytes, 8);
    put(zeros.data(), acc_bytes);
    put(&n, 8);
    return blob;
  };
  struct BadBuffer {
    std::uint64_t in_bytes, n;
    const char *why;
  } bad_buffers[] = {{0, 2000, "empty `in`, count 2000"},
                     {0, 50000000, "empty `in`, count 5e7"},
                     {16, 3, "16 bytes for 3 doubles"},
                     {32, 3, "32 bytes for 3 doubles"},
                     {0, std::uint64_t(1) << 62, "a count beyond any buffer"}};
  std::uint64_t id = 20;
  for (const auto &b : bad_buffers) {
    SCOPED_TRACE(b.why);
    std::vector<std::uint8_t> blob = buffersCall(b.in_bytes, b.n);
    EXPECT_EQ(
        expectError(exchange(transport::makeCall(id, buffers_, 1, blob.data(), blob.size())), id),
        wire::ErrorCode::Malformed);
    ++id;
  }
  std::vector<std::uint8_t> good = buffersCall(24, 3);
  zmq::message_t served = exchange(transport::makeCall(id, buffers_, 1, good.data(), good.size()));
  e = transport::verifyEnvelope(served);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->body_type(), wire::Body::Reply) << "a well-formed call is still served";
  EXPECT_EQ(callPing(++id, 2, 1), 102) << "the member keeps serving";

  // A DIST_IN buffer may come as a message part of its own (jit/remote_call.h): the parts must
  // match the blob's markers one for one, in number and size.
  const double in[3] = {1.5, 2.5, -3.25};
  auto part = [&](std::size_t bytes) { return zmq::message_t(in, bytes); };
  auto parts = [&](std::size_t count, std::size_t bytes) {
    std::vector<zmq::message_t> v;
    for (std::size_t k = 0; k < count; ++k)
      v.push_back(part(bytes));
    return v;
  };
  std::vector<std::uint8_t> marked = buffersCall(24, 3, true);
  struct BadParts {
    const std::vector<std::uint8_t> &blob;
    std::size_t count, bytes;
    const char *why;
  } bad_parts[] = {{marked, 0, 0, "the marked part missing"},
                   {marked, 1, 16, "a part of 16 bytes for 3 doubles"},
                   {good, 1, 24, "a part that no parameter has"},
                   {marked, 2, 24, "one part too many"},
                   {marked, 40, 24, "40 parts"}};
  for (const auto &b : bad_parts) {
    SCOPED_TRACE(b.why);
    ++id;
    EXPECT_EQ(
        expectError(exchange(transport::makeCall(id, buffers_, 1, b.blob.data(), b.blob.size()),
                             parts(b.count, b.bytes)),
                    id),
        wire::ErrorCode::Malformed);
  }
  served =
      exchange(transport::makeCall(++id, buffers_, 1, marked.data(), marked.size()), parts(1, 24));
  e = transport::verifyEnvelope(served);
  ASSERT_NE(e, nullptr);
  ASSERT_EQ(e->body_type(), wire::Body::Reply) << "a buffer in its own part is served";
  // The reply: `out` (u64 count, 3 doubles, each twice `in`'s), then `acc`.
  double out[3] = {};
  ASSERT_GE(e->body_as_Reply()->result()->size(), 8 + sizeof out);
  std::memcpy(out, e->body_as_Reply()->result()->data() + 8, sizeof out);
  EXPECT_EQ(out[0], 3.0);
  EXPECT_EQ(out[1], 5.0);
  EXPECT_EQ(out[2], -6.5);
  EXPECT_EQ(callPing(++id, 2, 1), 102) << "the member keeps serving";

  // GPin handles are ids this member issued, never addresses: account_open answers with one,
  // account_deposit accepts it, and refuses ids it never issued (an address of the sender's
  // choosing once made the member write through it).
  auto result64 = [](zmq::message_t answer) -> std::optional<std::uint64_t> {
    const wire::Envelope *e = transport::verifyEnvelope(answer);
    if (!e || e->body_type() != wire::Body::Reply || e->body_as_Reply()->result()->size() != 8)
      return std::nullopt;
    std::uint64_t v = 0;
    std::memcpy(&v, e->body_as_Reply()->result()->data(), 8);
    return v;
  };
  std::int64_t initial = 5;
  auto handle = result64(exchange(transport::makeCall(
      ++id, account_open_, 1, reinterpret_cast<const std::uint8_t *>(&initial), 8)));
  ASSERT_TRUE(handle.has_value()) << "account_open must answer with a handle";
  EXPECT_EQ(*handle >> 48, 2u) << "an id issued by n1 (index 1), not an address: " << *handle;
  auto deposit = [&](std::uint64_t h) {
    std::uint64_t args[2] = {h, 3};
    return exchange(transport::makeCall(++id, account_deposit_, 1,
                                        reinterpret_cast<const std::uint8_t *>(args), 16));
  };
  EXPECT_TRUE(result64(deposit(*handle)).has_value()) << "its own handle is accepted";
  for (std::uint64_t bad :
       {std::uint64_t(0x4141414141414141), (std::uint64_t(1) << 48) | 1, *handle + 1}) {
    SCOPED_TRACE(bad);
    zmq::message_t answer = deposit(bad);
    EXPECT_EQ(expectError(std::move(answer), id), wire::ErrorCode::Malformed);
  }
  EXPECT_EQ(callPing(++id, 2, 1), 102) << "the member keeps serving";

  // The member sends heartbeats on the control plane (every fifth of the 3 s timeout).
  for (auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
       heartbeats_ == 0 && std::chrono::steady_clock::now() < deadline;) {
    zmq::pollitem_t beat = {control_.handle(), 0, ZMQ_POLLIN, 0};
    zmq::poll(&beat, 1, std::chrono::milliseconds(100));
    if (!(beat.revents & ZMQ_POLLIN))
      continue;
    zmq::message_t from, m;
    ASSERT_TRUE(control_.recv(from).has_value());
    ASSERT_TRUE(control_.recv(m).has_value());
    const wire::Envelope *b = transport::verifyEnvelope(m);
    heartbeats_ += b && b->body_type() == wire::Body::Heartbeat;
  }
  EXPECT_GT(heartbeats_, 0) << "no heartbeat from the member";
  zmq::message_t bye = controlExchange(transport::makeShutdown(9, 0), 9);
  e = transport::verifyEnvelope(bye);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->body_type(), wire::Body::Reply);
  ProcessResult r = process_.get();
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.signal, 0);
  EXPECT_EQ(r.err, "");
}

// The entry node refuses a node that speaks another protocol version, and says why on both
// sides: in its Welcome and in its own one-line error.
// What a member of the cluster in `config` says of the cluster when it joins.
std::string shapeOf(const std::string &config) {
  auto c = node::loadClusterConfig(config);
  if (!c) {
    ADD_FAILURE() << llvm::toString(c.takeError());
    return "";
  }
  return node::clusterShape(*c);
}

// A local cluster's ports, held while it runs: ZeroMQ binds them, another process looking for
// free ports with a plain bind passes them by.
TEST(Ports, ReservedPortsTakeZeroMQButNotAPlainBind) {
  transport::ReservedPorts reserved = transport::reserveLoopbackPorts(2);
  ASSERT_EQ(reserved.ports.size(), 2u);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<std::uint16_t>(reserved.ports[0]));
  EXPECT_NE(bind(fd, reinterpret_cast<sockaddr *>(&addr), sizeof addr), 0);
  close(fd);
  zmq::context_t ctx;
  zmq::socket_t router(ctx, zmq::socket_type::router);
  transport::configureSocket(router, 1 << 20); // as every node's socket
  router.set(zmq::sockopt::linger, 0);
  EXPECT_NO_THROW(router.bind("tcp://127.0.0.1:" + std::to_string(reserved.ports[0])));
}

// An entry node n0 of a cluster of n0 and n1 (whose n1 the test plays by hand) on loopback,
// running fixture `fixture`: started by the constructor, with the program's bitcode loaded.
struct EntryUnderTest {
  std::vector<int> ports = freeLoopbackPorts(4);
  std::string entry_control = at(ports[1]);
  std::string config;
  std::string bitcode;
  std::future<ProcessResult> process;
  llvm::Expected<jit::Program> program;

  EntryUnderTest(const std::string &file, const std::string &fixture, int join_timeout_ms)
      : config(
            writeTempFile(file, "cluster: t\njoin_timeout_ms: " + std::to_string(join_timeout_ms) +
                                    "\nnodes:\n  - {name: n0, call: '" + at(ports[0]) +
                                    "', control: '" + entry_control + "'}\n  - {name: n1, call: '" +
                                    at(ports[2]) + "', control: '" + at(ports[3]) + "'}\n")),
        bitcode(std::string(DIST_FIXTURE_DIR) + "/fixture_" + fixture + ".bc"),
        process(startProcess({DIST_DISTNODE, "--join", config, "--name", "n0", bitcode},
                             std::chrono::seconds(60))),
        program(jit::loadBitcode(bitcode)) {}

  static std::string at(int port) { return "tcp://127.0.0.1:" + std::to_string(port); }
};

TEST(EntryProtocol, RefusesAnotherProtocolVersion) {
  EntryUnderTest entry("version.yaml", "hello", 10000);
  auto &program = entry.program;
  ASSERT_TRUE(bool(program)) << llvm::toString(program.takeError());

  flatbuffers::FlatBufferBuilder b;
  auto name = b.CreateString("n1");
  auto hash = b.CreateVector(program->sha256.data(), program->sha256.size());
  auto join = wire::CreateJoin(b, 1, /*protocol=*/99, name, hash);
  b.Finish(wire::CreateEnvelope(b, wire::Body::Join, join.Union()));
  zmq::context_t ctx;
  zmq::socket_t dealer(ctx, zmq::socket_type::dealer);
  dealer.set(zmq::sockopt::linger, 0);
  dealer.connect(entry.entry_control);
  dealer.send(zmq::buffer(b.GetBufferPointer(), b.GetSize()), zmq::send_flags::none);
  zmq::pollitem_t item = {dealer.handle(), 0, ZMQ_POLLIN, 0};
  zmq::poll(&item, 1, std::chrono::seconds(30));
  ASSERT_TRUE(item.revents & ZMQ_POLLIN) << "no Welcome from the entry node";
  zmq::message_t answer;
  ASSERT_TRUE(dealer.recv(answer).has_value());
  const wire::Envelope *e = transport::verifyEnvelope(answer);
  ASSERT_NE(e, nullptr);
  ASSERT_EQ(e->body_type(), wire::Body::Welcome);
  EXPECT_FALSE(e->body_as_Welcome()->accepted());
  const std::string expected = "node `n1` speaks protocol 99, the entry node " +
                               std::to_string(transport::kProtocolVersion) +
                               "; run the same distnode version on every node";
  EXPECT_EQ(e->body_as_Welcome()->reason()->str(), expected);
  ProcessResult r = entry.process.get();
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "distnode: error: join refused: " + expected + "\n");
}

// A member that says the program ended in a way the entry node does not know (a newer
// distnode's ExitKind, say) stops the whole cluster with one line naming it, itself included:
// nothing may end half the program.
TEST(EntryProtocol, AnExitOfUnknownKindStopsTheClusterWithOneLine) {
  EntryUnderTest entry("exit_kind.yaml", "spin", 30000);
  auto &program = entry.program;
  ASSERT_TRUE(bool(program)) << llvm::toString(program.takeError());
  const std::string &config = entry.config;
  const std::string &entry_control = entry.entry_control;
  zmq::context_t ctx;
  zmq::socket_t member(ctx, zmq::socket_type::dealer);
  member.set(zmq::sockopt::linger, 0);
  member.connect(entry_control);
  member.send(transport::makeJoin(1, "n1", program->sha256, shapeOf(config)),
              zmq::send_flags::none);
  // Answers whatever the entry node asks (a Placement, a Shutdown) until it has welcomed this
  // node and then closes the connection; sends the Exit once welcomed.
  bool welcomed = false, told_to_stop = false;
  zmq::pollitem_t item = {member.handle(), 0, ZMQ_POLLIN, 0};
  while (zmq::poll(&item, 1, std::chrono::seconds(30)) > 0) {
    zmq::message_t m;
    if (!member.recv(m).has_value())
      break;
    const wire::Envelope *e = transport::verifyEnvelope(m);
    ASSERT_NE(e, nullptr);
    if (const wire::Welcome *w = e->body_as_Welcome()) {
      ASSERT_TRUE(w->accepted());
      welcomed = true;
      member.send(transport::makeExit(2, 0, static_cast<wire::ExitKind>(99)),
                  zmq::send_flags::none);
    } else if (const wire::Shutdown *stop = e->body_as_Shutdown()) {
      told_to_stop = true;
      EXPECT_EQ(stop->reason()->str(),
                "node `n1` ended the program in a way this node does not know (99)");
      member.send(transport::makeReply(stop->call_id(), nullptr, 0), zmq::send_flags::none);
      break;
    }
  }
  EXPECT_TRUE(welcomed);
  EXPECT_TRUE(told_to_stop) << "the node that sent it is stopped too";
  ProcessResult r = entry.process.get();
  EXPECT_EQ(r.exit_code, 2);
  const std::string line = "distnode: error: node `n1` ended the program in a way this node "
                           "does not know (99); stopping the cluster\n";
  EXPECT_TRUE(r.err == line || r.err == "ready\n" + line) << r.err; // main may have started
  EXPECT_EQ(r.out, "");
}

// A cluster.yaml (written to `file`) of n0, the entry node, n1 and n2 on loopback `ports`
// (each node's call port, then its control port), with the coordinator on n2 and `settings`
// (YAML lines) added.
std::string coordinatorOnN2Yaml(const std::string &file, const std::vector<int> &ports,
                                const std::string &settings) {
  std::string yaml = "cluster: t\ncoordinator: n2\n" + settings + "nodes:\n";
  for (int n = 0; n < 3; ++n)
    yaml += "  - {name: n" + std::to_string(n) +
            ", call: 'tcp://127.0.0.1:" + std::to_string(ports[2 * n]) +
            "', control: 'tcp://127.0.0.1:" + std::to_string(ports[2 * n + 1]) + "'}\n";
  return writeTempFile(file, yaml);
}

// With the coordinator on another node, the entry node takes a Round or a Placement only from
// the coordinator's connection: a member that joined as another node is refused, and so is a
// connection that never joined.
TEST(EntryProtocol, OnlyTheCoordinatorStartsRoundsAndAsksForPlacements) {
  std::vector<int> ports = freeLoopbackPorts(6);
  std::string entry_control = "tcp://127.0.0.1:" + std::to_string(ports[1]);
  std::string config = coordinatorOnN2Yaml("coordinator.yaml", ports, "join_timeout_ms: 3000\n");
  std::string bitcode = std::string(DIST_FIXTURE_DIR) + "/fixture_hello.bc";
  auto process = startProcess({DIST_DISTNODE, "--join", config, "--name", "n0", bitcode},
                              std::chrono::seconds(60));
  auto program = jit::loadBitcode(bitcode);
  ASSERT_TRUE(bool(program)) << llvm::toString(program.takeError());
  zmq::context_t ctx;
  auto answerTo = [&](zmq::socket_t &dealer, zmq::message_t request) {
    dealer.send(request, zmq::send_flags::none);
    zmq::pollitem_t item = {dealer.handle(), 0, ZMQ_POLLIN, 0};
    while (true) { // heartbeats may come first
      zmq::poll(&item, 1, std::chrono::seconds(30));
      zmq::message_t answer;
      if (!(item.revents & ZMQ_POLLIN) || !dealer.recv(answer).has_value())
        return std::string("no answer");
      const wire::Envelope *e = transport::verifyEnvelope(answer);
      if (!e)
        return std::string("malformed answer");
      if (e->body_type() == wire::Body::Heartbeat)
        continue;
      if (const wire::Error *err = e->body_as_Error())
        return err->message()->str();
      if (const wire::Welcome *w = e->body_as_Welcome())
        return std::string(w->accepted() ? "welcome" : "refused");
      return std::string("another answer");
    }
  };
  zmq::socket_t stranger(ctx, zmq::socket_type::dealer);
  stranger.set(zmq::sockopt::linger, 0);
  stranger.connect(entry_control);
  EXPECT_EQ(answerTo(stranger, transport::makeRound(1, 1, 100)),
            "this connection has not joined the cluster");
  zmq::socket_t member(ctx, zmq::socket_type::dealer);
  member.set(zmq::sockopt::linger, 0);
  member.connect(entry_control);
  ASSERT_EQ(answerTo(member, transport::makeJoin(2, "n1", program->sha256, shapeOf(config))),
            "welcome");
  EXPECT_EQ(answerTo(member, transport::makeRound(3, 1, 100)),
            "only the coordinator starts planning rounds");
  EXPECT_EQ(answerTo(member, transport::makePlacement(4, 0, {1})),
            "only the coordinator asks for placements");
  // n2 never joins: the entry node gives up after the join timeout.
  ProcessResult r = process.get();
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("node(s) `n2` did not join within 3000 ms"), std::string::npos) << r.err;
}

// The coordinator's side of the control plane, played by hand against a real entry node: a
// Round has the entry ask the other member for that round's report and send its own, a
// member's report is forwarded under the member's index (whatever `node` it wrote), and a
// Placement becomes the next epoch on every node, answered with Placed.
TEST(EntryProtocol, ServesACoordinatorThatIsNotTheEntryNode) {
  std::vector<int> ports = freeLoopbackPorts(6);
  auto at = [](int port) { return "tcp://127.0.0.1:" + std::to_string(port); };
  std::string entry_control = at(ports[1]);
  std::string config = coordinatorOnN2Yaml("coordinator2.yaml", ports,
                                           "join_timeout_ms: 30000\nheartbeat_timeout_ms: 30000\n");
  // phase_switch with no calls: main sleeps 5 s, and nothing it calls leaves the entry node.
  std::string bitcode = std::string(DIST_FIXTURE_DIR) + "/fixture_phase_switch.bc";
  auto process =
      startProcess({DIST_DISTNODE, "--join", config, "--name", "n0", bitcode, "--", "0", "5000"},
                   std::chrono::seconds(120));
  auto program = jit::loadBitcode(bitcode);
  ASSERT_TRUE(bool(program)) << llvm::toString(program.takeError());
  jit::ProgramAnalysis analysis = jit::analyzeProgram(*program->module, {});
  ASSERT_NE(analysis.find("step"), nullptr);
  zmq::context_t ctx;
  auto connect = [&] {
    zmq::socket_t dealer(ctx, zmq::socket_type::dealer);
    dealer.set(zmq::sockopt::linger, 0);
    dealer.connect(entry_control);
    return dealer;
  };
  // The next message on `dealer` that is not a heartbeat without a report asked for.
  auto next = [](zmq::socket_t &dealer, zmq::message_t &m) -> const wire::Envelope * {
    zmq::pollitem_t item = {dealer.handle(), 0, ZMQ_POLLIN, 0};
    while (true) {
      zmq::poll(&item, 1, std::chrono::seconds(60));
      if (!(item.revents & ZMQ_POLLIN) || !dealer.recv(m).has_value())
        return nullptr;
      const wire::Envelope *e = transport::verifyEnvelope(m);
      if (e && e->body_type() == wire::Body::Heartbeat &&
          (e->body_as_Heartbeat()->report_round() == 0 || e->body_as_Heartbeat()->wants_round()))
        continue;
      return e;
    }
  };
  // Acknowledges the Placement of `epoch` on `dealer`; returns its owners.
  auto acknowledge = [&](zmq::socket_t &dealer, std::uint64_t epoch) {
    zmq::message_t m;
    std::vector<std::uint16_t> owners;
    const wire::Envelope *e = next(dealer, m);
    EXPECT_TRUE(e && e->body_as_Placement()) << "a Placement of epoch " << epoch;
    if (!e || !e->body_as_Placement())
      return owners;
    const wire::Placement &p = *e->body_as_Placement();
    EXPECT_EQ(p.epoch(), epoch);
    owners.assign(p.owners()->begin(), p.owners()->end());
    dealer.send(transport::makeReply(p.call_id(), nullptr, 0), zmq::send_flags::none);
    return owners;
  };
  // n1's and n2's call endpoints answer the entry's probes (and nothing else comes there).
  std::atomic<bool> done{false};
  std::thread call_sockets([&] {
    zmq::socket_t a(ctx, zmq::socket_type::router), b(ctx, zmq::socket_type::router);
    for (auto [socket, port] : {std::pair{&a, ports[2]}, std::pair{&b, ports[4]}}) {
      socket->set(zmq::sockopt::linger, 0);
      socket->bind(at(port));
    }
    while (!done.load()) {
      zmq::pollitem_t items[2] = {{a.handle(), 0, ZMQ_POLLIN, 0}, {b.handle(), 0, ZMQ_POLLIN, 0}};
      zmq::poll(items, 2, std::chrono::milliseconds(50));
      for (int i = 0; i < 2; ++i) {
        zmq::socket_t &socket = i == 0 ? a : b;
        zmq::message_t from, probe;
        if (!(items[i].revents & ZMQ_POLLIN) || !socket.recv(from).has_value() ||
            !socket.recv(probe).has_value())
          continue;
        const wire::Envelope *e = transport::verifyEnvelope(probe);
        if (!e || !e->body_as_Probe())
          continue;
        const auto *data = e->body_as_Probe()->data();
        socket.send(from, zmq::send_flags::sndmore);
        socket.send(transport::makeReply(e->body_as_Probe()->call_id(),
                                         data ? data->data() : nullptr, data ? data->size() : 0),
                    zmq::send_flags::none);
      }
    }
  });
  struct Join {
    std::atomic<bool> &done;
    std::thread &thread;
    ~Join() {
      done = true;
      thread.join();
    }
  } join_call_sockets{done, call_sockets};
  zmq::socket_t n1 = connect(), n2 = connect();
  zmq::message_t m;
  for (auto [socket, name] : {std::pair{&n1, "n1"}, std::pair{&n2, "n2"}}) {
    socket->send(transport::makeJoin(1, name, program->sha256, shapeOf(config)),
                 zmq::send_flags::none);
    const wire::Envelope *e = next(*socket, m);
    ASSERT_TRUE(e && e->body_as_Welcome() && e->body_as_Welcome()->accepted()) << name;
  }
  std::vector<std::uint16_t> owners = acknowledge(n1, 1);
  acknowledge(n2, 1);
  ASSERT_EQ(owners.size(), analysis.units.size());

  n2.send(transport::makeRound(0, 7, 200), zmq::send_flags::none);
  const wire::Envelope *asked = next(n1, m);
  ASSERT_TRUE(asked && asked->body_as_Heartbeat());
  EXPECT_EQ(asked->body_as_Heartbeat()->report_round(), 7u) << "n1 is asked for round 7";
  EXPECT_EQ(asked->body_as_Heartbeat()->report_interval_ms(), 200u);
  const wire::Envelope *own = next(n2, m);
  ASSERT_TRUE(own && own->body_as_ProfileDelta()) << "the entry's own report of round 7";
  EXPECT_EQ(own->body_as_ProfileDelta()->call_id(), 7u);
  EXPECT_EQ(own->body_as_ProfileDelta()->node(), 0u);
  node::NodeReport report;
  report.cpu_capacity = 1.0;
  report.delta.elapsed_s = 0.2;
  n1.send(node::encodeProfileDelta(7, report, /*node, a lie:*/ 2), zmq::send_flags::none);
  const wire::Envelope *forwarded = next(n2, m);
  ASSERT_TRUE(forwarded && forwarded->body_as_ProfileDelta());
  EXPECT_EQ(forwarded->body_as_ProfileDelta()->call_id(), 7u);
  EXPECT_EQ(forwarded->body_as_ProfileDelta()->node(), 1u) << "the sender's index, not its word";

  // `step` (never called in this run) to n1: epoch 2 on every node, then Placed.
  owners[analysis.find("step")->unit] = 1;
  n2.send(transport::makePlacement(42, 0, owners), zmq::send_flags::none);
  EXPECT_EQ(acknowledge(n1, 2), owners);
  EXPECT_EQ(acknowledge(n2, 2), owners);
  const wire::Envelope *placed = next(n2, m);
  ASSERT_TRUE(placed && placed->body_as_Placed());
  EXPECT_EQ(placed->body_as_Placed()->call_id(), 42u);
  EXPECT_EQ(placed->body_as_Placed()->epoch(), 2u);
  EXPECT_TRUE(!placed->body_as_Placed()->kept() || placed->body_as_Placed()->kept()->size() == 0);

  // main ends: Shutdown to both, acknowledged; the entry exits with main's code.
  for (zmq::socket_t *socket : {&n1, &n2}) {
    const wire::Envelope *e = next(*socket, m);
    ASSERT_TRUE(e && e->body_as_Shutdown());
    socket->send(transport::makeReply(e->body_as_Shutdown()->call_id(), nullptr, 0),
                 zmq::send_flags::none);
  }
  ProcessResult r = process.get();
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

// A message's blob is written once: every builder of a message with a blob reserves room for
// the envelope too, so none grows (growing copies the whole blob again: for a 1 MiB call, a
// pass over a megabyte on each side).
TEST(Messages, BlobsAreWrittenOnceWhateverTheirSize) {
  std::uint64_t before = transport::buildersGrown();
  for (std::size_t size : {std::size_t{0}, std::size_t{1}, std::size_t{100}, std::size_t{4096},
                           std::size_t{65536}, std::size_t{1} << 20, (std::size_t{3} << 20) + 7}) {
    SCOPED_TRACE(size);
    std::vector<std::uint8_t> blob(size, 0x5a);
    std::vector<zmq::message_t> made;
    made.push_back(transport::makeCall(1, 2, 3, blob.data(), size, 4));
    made.push_back(transport::makeCallWith(
        1, 2, 3, size, [&](std::uint8_t *room) { std::fill(room, room + size, 0x5a); }, 4));
    transport::ReplyBuilder reply;
    std::uint8_t *room = reply.allocate(size);
    std::fill(room, room + size, 0x5a);
    made.push_back(reply.finish(1, 2));
    made.push_back(transport::makeReply(1, blob.data(), size));
    made.push_back(transport::makeProbe(1, size));
    made.push_back(transport::makeMigrate(1, 2, wire::MigratePhase::Install, blob));
    for (zmq::message_t &m : made)
      EXPECT_NE(transport::verifyEnvelope(m), nullptr);
  }
  EXPECT_EQ(transport::buildersGrown(), before);
  // The count sees a builder that grew.
  flatbuffers::FlatBufferBuilder small(64);
  std::vector<std::uint8_t> big(1 << 20, 1);
  auto body = wire::CreateProbe(small, 1, small.CreateVector(big));
  zmq::message_t grown = transport::finishEnvelope(small, wire::Body::Probe, body.Union(), 64);
  EXPECT_EQ(transport::buildersGrown(), before + 1);
}

} // namespace
} // namespace distnode::testing
