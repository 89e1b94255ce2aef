// call_client_test.cpp - calls to another node from many threads, on real sockets: each thread
// gets the answer to its own call; while many threads call one node their calls share one
// connection; an answer that comes after its caller gave up is dropped, not handed to a later
// call.
#include "node/call_client.h"
#include "node/call_server.h"
#include "node/node_sockets.h"
#include "tests/support/subprocess.h"
#include "transport/messages.h"

#include <gtest/gtest.h>

#include <sched.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <latch>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>
#include <vector>

namespace distnode::testing {
namespace {

namespace wire = distnode::wire;
using node::CallClient;
using node::CallServer;

constexpr std::uint32_t kEcho = 1;
constexpr std::uint32_t kHeld = 2; // answered only when the test releases it

// A node that answers each Call with a Reply carrying the call's argument blob, and notes on
// which connection (ZeroMQ identity) each call came.
class EchoNode {
public:
  EchoNode() : endpoint_("tcp://127.0.0.1:" + std::to_string(freeLoopbackPorts(1)[0])) {
    router_.set(zmq::sockopt::linger, 0);
    router_.set(zmq::sockopt::rcvtimeo, 50);
    router_.bind(endpoint_);
    thread_ = std::thread([this] { serve(); });
  }
  ~EchoNode() {
    stop_ = true;
    thread_.join();
  }

  const std::string &endpoint() const { return endpoint_; }

  // Calls by connection.
  std::map<std::string, int> callsByConnection() {
    std::lock_guard lock(mu_);
    return calls_;
  }
  // The connection the call `call_id` came on, if it came.
  std::optional<std::string> connectionOf(std::uint64_t call_id) {
    std::lock_guard lock(mu_);
    auto it = connection_of_.find(call_id);
    return it == connection_of_.end() ? std::nullopt : std::optional(it->second);
  }
  // Answers the held call now.
  void releaseHeld() { release_ = true; }

private:
  void serve() {
    zmq::message_t held_id, held_answer;
    bool holding = false;
    while (!stop_) {
      if (holding && release_) {
        router_.send(held_id, zmq::send_flags::sndmore);
        router_.send(held_answer, zmq::send_flags::none);
        holding = false;
      }
      zmq::message_t identity, payload;
      if (!router_.recv(identity))
        continue;
      if (!identity.more() || !router_.recv(payload))
        continue;
      const wire::Envelope *e = transport::verifyEnvelope(payload);
      const wire::Call *call = e ? e->body_as_Call() : nullptr;
      if (!call || !call->args())
        continue; // unanswered: its caller's deadline fails the test
      zmq::message_t answer =
          transport::makeReply(call->call_id(), call->args()->data(), call->args()->size());
      {
        std::lock_guard lock(mu_);
        ++calls_[identity.to_string()];
        connection_of_[call->call_id()] = identity.to_string();
      }
      if (call->function() == kHeld) {
        held_id = std::move(identity);
        held_answer = std::move(answer);
        holding = true;
        continue;
      }
      router_.send(identity, zmq::send_flags::sndmore);
      router_.send(answer, zmq::send_flags::none);
    }
  }

  std::string endpoint_;
  zmq::socket_t router_{node::context(), zmq::socket_type::router};
  std::atomic<bool> stop_{false}, release_{false};
  std::mutex mu_;
  std::map<std::string, int> calls_;
  std::map<std::uint64_t, std::string> connection_of_;
  std::thread thread_;
};

class CallClientTest : public ::testing::Test {
protected:
  void SetUp() override {
    auto router = std::make_unique<zmq::socket_t>(node::context(), zmq::socket_type::router);
    router->bind("tcp://127.0.0.1:" + std::to_string(freeLoopbackPorts(1)[0]));
    server_ = std::make_unique<CallServer>(
        std::move(router), 1, [](node::Incoming &) { return zmq::message_t(); },
        /*background_long_calls=*/false);
    server_->start();
    client_ = std::make_unique<CallClient>(std::vector<std::string>{echo_.endpoint()}, *server_);
  }
  void TearDown() override {
    client_->close(std::chrono::milliseconds(0));
    server_->stop();
    server_->close(std::chrono::milliseconds(0));
  }

  // Calls `function` on the echo node with `call_id` as its argument; true if the answer is
  // that call's, with that argument.
  bool call(std::uint64_t call_id, std::uint32_t function = kEcho,
            std::optional<std::chrono::steady_clock::time_point> deadline = std::nullopt,
            std::string *why = nullptr) {
    if (!deadline) // a lost answer fails the test instead of hanging it
      deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    zmq::message_t response;
    const wire::Envelope *envelope = nullptr;
    std::string error;
    auto args = reinterpret_cast<const std::uint8_t *>(&call_id);
    if (!client_->request(0, transport::makeCall(call_id, function, 0, args, sizeof call_id), {},
                          call_id, response, envelope, error, deadline)) {
      if (why)
        *why = error;
      return false;
    }
    const wire::Reply *reply = envelope ? envelope->body_as_Reply() : nullptr;
    std::uint64_t echoed = 0;
    if (!reply || !reply->result() || reply->result()->size() != sizeof echoed)
      return false;
    std::memcpy(&echoed, reply->result()->data(), sizeof echoed);
    return reply->call_id() == call_id && echoed == call_id;
  }

  // `n` threads that each make one call to the echo node and then hold their sockets for it
  // (the client counts them as calling it) until release() or the end of the scope.
  class SocketHolders {
  public:
    SocketHolders(CallClientTest &test, int n) : holding_(n) {
      for (int t = 0; t < n; ++t)
        threads_.emplace_back([this, &test, t] {
          answered_ += test.call(std::uint64_t(t + 1) << 32);
          holding_.count_down();
          done_.wait();
          test.client_->releaseSockets();
        });
      holding_.wait();
    }
    ~SocketHolders() { release(); }
    SocketHolders(const SocketHolders &) = delete;
    SocketHolders &operator=(const SocketHolders &) = delete;
    void release() {
      if (threads_.empty())
        return;
      done_.count_down();
      for (auto &t : threads_)
        t.join();
      threads_.clear();
    }
    // Calls that got their own answers.
    [[nodiscard]] int answered() const { return answered_.load(); }

  private:
    std::latch holding_, done_{1};
    std::atomic<int> answered_{0};
    std::vector<std::thread> threads_;
  };

  EchoNode echo_;
  std::unique_ptr<CallServer> server_;
  std::unique_ptr<CallClient> client_;
};

TEST_F(CallClientTest, ManyThreadsGetTheirOwnAnswersOverOneSharedConnection) {
  constexpr int kThreads = 16, kCalls = 200;
  std::latch all_hold_sockets(kThreads), all_done(kThreads);
  std::atomic<int> right{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      const std::uint64_t base = std::uint64_t(t + 1) << 32;
      // The first call borrows this thread's socket, held until releaseSockets(): from then on
      // the client sees kThreads threads calling the echo node.
      right += call(base);
      all_hold_sockets.arrive_and_wait();
      for (int i = 1; i <= kCalls; ++i)
        right += call(base + i);
      all_done.arrive_and_wait(); // the last calls still see kThreads threads calling
      client_->releaseSockets();
    });
  for (auto &t : threads)
    t.join();
  EXPECT_EQ(right.load(), kThreads * (kCalls + 1));
  int total = 0, most = 0;
  for (const auto &[connection, n] : echo_.callsByConnection()) {
    total += n;
    most = std::max(most, n);
  }
  EXPECT_EQ(total, kThreads * (kCalls + 1));
  // The calls after the latch (all but the first of each thread) went on one connection.
  EXPECT_GE(most, kThreads * kCalls);
}

TEST_F(CallClientTest, AnAnswerAfterItsCallerGaveUpIsDroppedOnTheSharedConnection) {
  constexpr int kOthers = 8;
  const std::uint64_t mine = std::uint64_t(100) << 32;
  ASSERT_TRUE(call(mine)); // alone: on this thread's own socket, which it holds from now on
  SocketHolders others(*this, kOthers); // 9 threads hold sockets for the echo node now
  std::string why;
  EXPECT_FALSE(call(mine + 1, kHeld,
                    std::chrono::steady_clock::now() + std::chrono::milliseconds(50), &why));
  EXPECT_EQ(why, "no answer in time");
  echo_.releaseHeld(); // its answer comes now, to nobody
  // The next calls get their own answers (a call's answer is matched by its id, never by
  // order).
  for (std::uint64_t i = 2; i < 50; ++i)
    EXPECT_TRUE(call(mine + i)) << i;
  others.release();
  client_->releaseSockets();
  EXPECT_EQ(others.answered(), kOthers);
  // The held call went on the shared connection, not on this thread's own.
  auto own = echo_.connectionOf(mine), held = echo_.connectionOf(mine + 1);
  ASSERT_TRUE(own && held);
  EXPECT_NE(*held, *own);
}

// The scheduling class of each thread of this process (the `policy` field of its stat).
// The scheduling policy of each thread of this process but `except` (a joined thread may still
// be listed while the kernel finishes its exit).
std::vector<int> threadPolicies(pid_t except) {
  std::vector<int> policies;
  for (const auto &task : std::filesystem::directory_iterator("/proc/self/task")) {
    if (task.path().filename() == std::to_string(except))
      continue;
    std::ifstream in(task.path() / "stat");
    std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::istringstream fields(stat.substr(stat.rfind(')') + 2)); // from field 3 on
    std::string field;
    for (int i = 3; i <= 41 && fields >> field; ++i)
      if (i == 41)
        policies.push_back(std::stoi(field));
  }
  return policies;
}

// A thread in the background class (a long call, see call_server.h) may be the one whose call
// starts the shared connection's thread: that thread must run in the normal class, or every
// shared call would wait for idle cores.
TEST_F(CallClientTest, TheSharedConnectionsThreadRunsInTheNormalClassWhoeverStartsIt) {
  bool can_restore = false;
  std::thread([&] {
    sched_param p{};
    can_restore =
        sched_setscheduler(0, SCHED_IDLE, &p) == 0 && sched_setscheduler(0, SCHED_OTHER, &p) == 0;
  }).join();
  if (!can_restore)
    GTEST_SKIP() << "this process may not move a thread back from SCHED_IDLE (CAP_SYS_NICE)";
  // 7 threads hold sockets (calls below 8 callers go on their own), then a background
  // thread's call is the first with 8: it starts the shared connection.
  constexpr int kOthers = 6;
  const std::uint64_t mine = std::uint64_t(100) << 32;
  ASSERT_TRUE(call(mine));
  SocketHolders others(*this, kOthers);
  EXPECT_EQ(others.answered(), kOthers);
  pid_t background_tid = 0;
  std::thread background([&] {
    background_tid = gettid();
    sched_param p{};
    ASSERT_EQ(sched_setscheduler(0, SCHED_IDLE, &p), 0);
    EXPECT_TRUE(call(mine + 1));
    client_->releaseSockets();
  }); // and ends: only threads it started may still be in the background class
  background.join();
  EXPECT_NE(echo_.connectionOf(mine + 1), echo_.connectionOf(mine)); // it went shared
  for (int policy : threadPolicies(background_tid))
    EXPECT_NE(policy, SCHED_IDLE);
  others.release();
  client_->releaseSockets();
}

// A long call that computes runs in the background class (call_server.h); its remote calls go
// on its thread's own connection even while many threads share one: it would send holding the
// lock the other callers wait for, and its core may not come back to it for a while. Both ways
// into that class are taken: moved there by the watchdog, and there from the start.
TEST_F(CallClientTest, ALongCallInTheBackgroundClassCallsOnItsOwnConnection) {
  constexpr int kOthers = 8;
  // 8 threads hold sockets: from here on, calls share a connection (the threads end whatever
  // happens below).
  SocketHolders others(*this, kOthers);
  EXPECT_EQ(others.answered(), kOthers);
  const std::uint64_t shared_call = std::uint64_t(100) << 32;
  ASSERT_TRUE(call(shared_call));
  client_->releaseSockets();

  // A node whose functions compute until they run in the background class (at most 1 s), then
  // call the echo node.
  const std::string endpoint = "tcp://127.0.0.1:" + std::to_string(freeLoopbackPorts(1)[0]);
  auto router = std::make_unique<zmq::socket_t>(node::context(), zmq::socket_type::router);
  router->bind(endpoint);
  std::mutex mu;
  std::vector<std::uint64_t> background_calls; // the echo calls made in the background class
  std::atomic<std::uint64_t> next_call{shared_call + 1};
  CallServer busy(
      std::move(router), 1,
      [&](node::Incoming &) {
        const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(1);
        while (!node::inBackgroundClass() && std::chrono::steady_clock::now() < give_up) {
        }
        if (node::inBackgroundClass()) {
          const std::uint64_t id = next_call++;
          const bool answered = call(id);
          client_->releaseSockets();
          std::lock_guard lock(mu);
          if (answered)
            background_calls.push_back(id);
        }
        return zmq::message_t();
      },
      /*background_long_calls=*/true);
  if (!busy.backgroundLongCalls())
    GTEST_SKIP() << "this process may not move a thread back from SCHED_IDLE (CAP_SYS_NICE)";
  busy.start();
  struct Stop {
    CallServer &server;
    ~Stop() {
      server.stop();
      server.close(std::chrono::milliseconds(0));
    }
  } stop{busy};
  zmq::socket_t dealer(node::context(), zmq::socket_type::dealer);
  dealer.set(zmq::sockopt::linger, 0);
  dealer.set(zmq::sockopt::rcvtimeo, 30'000);
  dealer.connect(endpoint);
  auto callBusy = [&](std::uint32_t function) {
    dealer.send(transport::makeCall(function, function, 0, nullptr, 0), zmq::send_flags::none);
    zmq::message_t reply;
    return dealer.recv(reply).has_value();
  };
  auto movedCalls = [&] {
    std::lock_guard lock(mu);
    return background_calls.size();
  };
  // A function's first call runs in the normal class until the watchdog sees it compute and
  // moves it (a loaded machine may give it too little CPU for that: then another function).
  std::uint32_t function = 100;
  for (; function < 120 && movedCalls() == 0; ++function)
    ASSERT_TRUE(callBusy(function));
  ASSERT_EQ(movedCalls(), 1u) << "no call was moved to the background class";
  // Its function is known to compute long now: its next call runs there from the start.
  ASSERT_TRUE(callBusy(function - 1));
  ASSERT_EQ(movedCalls(), 2u);

  auto shared = echo_.connectionOf(shared_call);
  ASSERT_TRUE(shared);
  for (std::uint64_t id : background_calls) {
    auto own = echo_.connectionOf(id);
    ASSERT_TRUE(own) << id;
    EXPECT_NE(*own, *shared) << id;
  }
}

} // namespace
} // namespace distnode::testing
