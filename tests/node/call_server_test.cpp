// call_server_test.cpp - the call server's workers on a real socket: a call the leader runs
// itself is handed over when it runs long (a second call is read meanwhile), and a long call
// runs in the background scheduling class while short ones do not.
#include "node/call_server.h"
#include "node/node_sockets.h"
#include "tests/support/subprocess.h"
#include "transport/messages.h"

#include <gtest/gtest.h>

#include <sched.h>
#include <time.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <vector>

namespace distnode::testing {
namespace {

namespace wire = distnode::wire;
using node::CallServer;

// Computes until a kQuick call ran, if its argument is 1; waits 2 ms without computing, if 2.
constexpr std::uint32_t kBlocker = 1;
constexpr std::uint32_t kQuick = 2;
// From the background class, makes the server start a worker (as a thread about to wait for
// another node does when every worker is busy), then waits for a kQuick call.
constexpr std::uint32_t kSpawner = 3;
constexpr std::uint32_t kCompute = 4; // uses 2 ms of CPU

// What the served calls saw, in order.
struct Seen {
  std::mutex mu;
  std::condition_variable cv;
  std::atomic<bool> quick_done{false};
  bool blocker_waited_out = false;    ///< the blocker's wait timed out (the test fails)
  int blocker_policy_after_wait = -1; ///< its scheduling class once the quick call ran
  std::vector<std::pair<std::uint32_t, int>> at_entry; ///< function, class when it started
};

class CallServerTest : public ::testing::Test {
protected:
  void SetUp() override {
    std::string endpoint = "tcp://127.0.0.1:" + std::to_string(freeLoopbackPorts(1)[0]);
    auto router = std::make_unique<zmq::socket_t>(node::context(), zmq::socket_type::router);
    router->bind(endpoint);
    server_ = std::make_unique<CallServer>(
        std::move(router), poolSize(),
        [this](node::Incoming &call) { return answer(call.payload); },
        /*background_long_calls=*/true);
    server_->start();
    dealer_.set(zmq::sockopt::linger, 0);
    dealer_.set(zmq::sockopt::rcvtimeo, 30000); // a hang fails the test instead
    dealer_.connect(endpoint);
    if (!server_->backgroundLongCalls())
      GTEST_SKIP() << "this process may not move a thread back from SCHED_IDLE (CAP_SYS_NICE)";
  }

  virtual int poolSize() const { return 2; }

  void TearDown() override {
    server_->stop();
    server_->close(std::chrono::milliseconds(0));
  }

  zmq::message_t answer(zmq::message_t &payload) {
    const wire::Call *call = transport::verifyEnvelope(payload)->body_as_Call();
    std::unique_lock lock(seen_.mu);
    seen_.at_entry.emplace_back(call->function(), sched_getscheduler(0));
    seen_.cv.notify_all();
    if (call->function() == kSpawner) {
      lock.unlock();
      sched_param normal{};
      sched_setscheduler(0, SCHED_IDLE, &normal);
      server_->ensureLeader();
      sched_setscheduler(0, SCHED_OTHER, &normal);
      spinUntil([&] { return seen_.quick_done.load(); });
      lock.lock();
    } else if (call->function() == kCompute) {
      lock.unlock();
      const auto from = ownCpu();
      spinUntil([&] { return ownCpu() - from >= std::chrono::milliseconds(2); });
      lock.lock();
    } else if (call->function() == kQuick) {
      seen_.quick_done = true;
      seen_.cv.notify_all();
    } else if (call->args()->size() == 1 && call->args()->Get(0) == 1) {
      // A long computation: uses the CPU until the quick call ran, it has used 1 ms of CPU, and
      // it runs in the background class (the watchdog looks at its CPU time until it does).
      lock.unlock();
      auto done = [&] {
        return seen_.quick_done.load() && sched_getscheduler(0) == SCHED_IDLE &&
               ownCpu() > std::chrono::milliseconds(1);
      };
      bool finished = spinUntil(done);
      lock.lock();
      seen_.blocker_waited_out = !finished;
      seen_.blocker_policy_after_wait = sched_getscheduler(0);
    } else if (call->args()->size() == 1 && call->args()->Get(0) == 2) {
      lock.unlock();
      std::this_thread::sleep_for(std::chrono::milliseconds(2)); // a wait, as for another node
      lock.lock();
    }
    return transport::makeReply(call->call_id(), nullptr, 0);
  }

  /// The CPU time the calling thread has used.
  static std::chrono::nanoseconds ownCpu() {
    timespec cpu{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu);
    return std::chrono::seconds(cpu.tv_sec) + std::chrono::nanoseconds(cpu.tv_nsec);
  }

  /// Keeps the CPU busy until `done` holds (true) or 30 s passed (false).
  template <typename Done> static bool spinUntil(Done done) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (!done())
      if (std::chrono::steady_clock::now() >= deadline)
        return false;
    return true;
  }

  void send(std::uint64_t id, std::uint32_t function, std::uint8_t arg) {
    dealer_.send(transport::makeCall(id, function, 1, &arg, 1), zmq::send_flags::none);
  }
  /// Sends the first call and waits until the server runs it.
  void sendFirstAndAwaitIt(std::uint32_t function, std::uint8_t arg) {
    send(1, function, arg);
    std::unique_lock lock(seen_.mu);
    ASSERT_TRUE(
        seen_.cv.wait_for(lock, std::chrono::seconds(30), [&] { return !seen_.at_entry.empty(); }));
  }
  std::uint64_t receive() {
    zmq::message_t m;
    if (!dealer_.recv(m))
      return 0;
    const wire::Envelope *e = transport::verifyEnvelope(m);
    return e && e->body_as_Reply() ? e->body_as_Reply()->call_id() : 0;
  }

  /// Quick calls one at a time (ids from `id` + 1 on) until the times are calm: a call that
  /// came before the leader waited for it, on a loaded machine, makes them busy again (at most
  /// 100 calls).
  void makeTimesCalm(std::uint64_t &id) {
    while (!server_->calmTimes() && id < 100) {
      send(++id, kQuick, 0);
      ASSERT_EQ(receive(), id);
    }
    ASSERT_TRUE(server_->calmTimes()) << id << " calls one at a time";
  }

  /// The ids of the next two replies, in ascending order (their order is not the test's).
  std::pair<std::uint64_t, std::uint64_t> receiveTwo() {
    std::uint64_t a = receive(), b = receive();
    return {std::min(a, b), std::max(a, b)};
  }

  Seen seen_;
  std::unique_ptr<CallServer> server_;
  zmq::socket_t dealer_{node::context(), zmq::socket_type::dealer};
};

TEST_F(CallServerTest, ALongCallIsHandedOverAndRunsInTheBackground) {
  // The blocker's function is new: the leader runs it without handing the socket over, and it
  // computes until the quick call ran, which is read only once the watchdog handed the socket
  // over (the other worker waits for the leadership).
  ASSERT_NO_FATAL_FAILURE(sendFirstAndAwaitIt(kBlocker, 1));
  send(2, kQuick, 0);
  EXPECT_EQ(receiveTwo(), std::make_pair(std::uint64_t{1}, std::uint64_t{2}));
  {
    std::lock_guard lock(seen_.mu);
    EXPECT_FALSE(seen_.blocker_waited_out);
    // It used the CPU all along: the watchdog moved it to the background class.
    EXPECT_EQ(seen_.blocker_policy_after_wait, SCHED_IDLE);
  }
  // Its function computed long: its next call starts in the background; that one is short, so
  // the one after starts at normal priority again, as does every quick call, on either worker
  // (a quick call that waited for a core used no CPU meanwhile: never in the background).
  send(3, kBlocker, 0);
  EXPECT_EQ(receive(), 3u);
  send(4, kBlocker, 0);
  EXPECT_EQ(receive(), 4u);
  for (std::uint64_t id = 5; id < 25; ++id) {
    send(id, kQuick, 0);
    EXPECT_EQ(receive(), id);
  }
  std::lock_guard lock(seen_.mu);
  ASSERT_EQ(seen_.at_entry.size(), 24u);
  // (Calls 1 and 2, the first of each worker, may use some of their first CPU time before
  // their first line, in the loader: not checked.)
  EXPECT_EQ(seen_.at_entry[2], std::make_pair(kBlocker, SCHED_IDLE));
  EXPECT_EQ(seen_.at_entry[3], std::make_pair(kBlocker, SCHED_OTHER));
  for (std::size_t i = 4; i < seen_.at_entry.size(); ++i)
    EXPECT_EQ(seen_.at_entry[i], std::make_pair(kQuick, SCHED_OTHER)) << "call " << i + 1;
}

// A call the leader does not keep (its function ran long before: the leader hands the socket
// over first) starts at normal priority, since its function never computed long, and is
// watched: once it computes long, the watchdog moves it to the background, as it does a kept
// call it handed over.
TEST_F(CallServerTest, ACallNotKeptThatComputesLongMovesToTheBackground) {
  send(1, kBlocker, 2); // waits without computing: its function runs long, not heavy
  ASSERT_EQ(receive(), 1u);
  send(2, kBlocker, 1);
  {
    std::unique_lock lock(seen_.mu);
    ASSERT_TRUE(seen_.cv.wait_for(lock, std::chrono::seconds(30),
                                  [&] { return seen_.at_entry.size() == 2; }));
  }
  send(3, kQuick, 0);
  EXPECT_EQ(receiveTwo(), std::make_pair(std::uint64_t{2}, std::uint64_t{3}));
  std::lock_guard lock(seen_.mu);
  EXPECT_EQ(seen_.at_entry[1], std::make_pair(kBlocker, SCHED_OTHER));
  EXPECT_FALSE(seen_.blocker_waited_out);
  EXPECT_EQ(seen_.blocker_policy_after_wait, SCHED_IDLE);
}

// In calm times (calls one at a time) the watchdog does not look every kInlineBound: it wakes
// when a call arrives while the leader runs one. A long call is then handed over as in busy
// times, once the quick call that arrived meanwhile woke the watchdog.
TEST_F(CallServerTest, InCalmTimesACallArrivingDuringALongOneIsRead) {
  std::uint64_t id = 0;
  ASSERT_NO_FATAL_FAILURE(makeTimesCalm(id));
  seen_.quick_done = false;
  const std::uint64_t blocker = ++id, quick = ++id;
  send(blocker, kBlocker, 1);
  {
    std::unique_lock lock(seen_.mu);
    ASSERT_TRUE(seen_.cv.wait_for(lock, std::chrono::seconds(30),
                                  [&] { return seen_.at_entry.size() == blocker; }));
  }
  send(quick, kQuick, 0);
  EXPECT_EQ(receiveTwo(), std::make_pair(blocker, quick));
  std::lock_guard lock(seen_.mu);
  EXPECT_FALSE(seen_.blocker_waited_out);
  EXPECT_EQ(seen_.blocker_policy_after_wait, SCHED_IDLE);
  EXPECT_FALSE(server_->calmTimes()) << "a call arrived while another ran";
}

// In calm times no watchdog looks at a long call (none arrives meanwhile), yet a function whose
// calls compute long is learnt as such: its next call is timed in CPU, and the one after runs
// in the background class from its start.
TEST_F(CallServerTest, InCalmTimesALongComputationLearnsToRunInTheBackground) {
  std::uint64_t id = 0;
  ASSERT_NO_FATAL_FAILURE(makeTimesCalm(id));
  for (int k = 0; k < 3; ++k) {
    send(++id, kCompute, 0);
    ASSERT_EQ(receive(), id);
  }
  std::lock_guard lock(seen_.mu);
  ASSERT_EQ(seen_.at_entry.size(), id);
  EXPECT_EQ(seen_.at_entry[id - 3], std::make_pair(kCompute, SCHED_OTHER));
  EXPECT_EQ(seen_.at_entry[id - 1], std::make_pair(kCompute, SCHED_IDLE));
}

class OneWorkerCallServerTest : public CallServerTest {
protected:
  int poolSize() const override { return 1; }
};

// A worker started by a thread in the background class (a long call that makes a nested
// remote call) starts in the normal class: the calls it reads are not in the background.
TEST_F(OneWorkerCallServerTest, AWorkerStartedFromTheBackgroundRunsCallsNormally) {
  ASSERT_NO_FATAL_FAILURE(sendFirstAndAwaitIt(kSpawner, 0));
  send(2, kQuick, 0); // only the worker the spawner started is free to read it
  EXPECT_EQ(receiveTwo(), std::make_pair(std::uint64_t{1}, std::uint64_t{2}));
  std::lock_guard lock(seen_.mu);
  ASSERT_EQ(seen_.at_entry.size(), 2u);
  EXPECT_EQ(seen_.at_entry[1], std::make_pair(kQuick, SCHED_OTHER));
}

} // namespace
} // namespace distnode::testing
