// remote_bench.cpp - a remote call against a raw ZeroMQ DEALER/ROUTER round trip of the same
// payload, over TCP loopback between two processes, in one run.
//
// The benchmark process is the entry node of a 2-node cluster; `distnode --join` in a child
// process is node n1 and owns echo_bytes and tiny_remote. The baseline is a child process of
// this binary (--raw-echo-server) that echoes each message on a ROUTER socket: the least any
// request/reply over ZeroMQ can cost.
#include "bench/jit_fixture.h"
#include "jit/remote_call.h"
#include "node/call_client.h"
#include "node/cluster_config.h"
#include "node/cluster_node.h"
#include "node/node_sockets.h"
#include "tests/support/subprocess.h"
#include "transport/messages.h"

#include <benchmark/benchmark.h>
#include <zmq.hpp>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <poll.h>
#include <regex>
#include <spawn.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

extern char **environ;

namespace {

using distnode::bench::BenchProgram;
using EchoFn = void (*)(const std::uint8_t *, std::uint8_t *, std::uint64_t);
using BumpFn = void (*)(std::uint32_t *, std::uint64_t);
using TinyFn = std::uint64_t (*)(std::uint64_t);

pid_t spawn(const std::vector<std::string> &argv) {
  std::vector<char *> args;
  for (const auto &a : argv)
    args.push_back(const_cast<char *>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  if (posix_spawn(&pid, args[0], nullptr, nullptr, args.data(), environ) != 0) {
    std::fprintf(stderr, "bench: cannot start %s\n", argv[0].c_str());
    std::exit(1);
  }
  return pid;
}

int runRawEchoServer(const std::string &endpoint) {
  zmq::context_t ctx;
  zmq::socket_t router(ctx, zmq::socket_type::router);
  router.set(zmq::sockopt::linger, 0);
  router.bind(endpoint);
  while (true) {
    zmq::message_t identity, payload;
    if (!router.recv(identity) || !router.recv(payload))
      return 1;
    if (payload.size() == 0)
      return 0; // the benchmark is done
    router.send(identity, zmq::send_flags::sndmore);
    router.send(payload, zmq::send_flags::none);
  }
}

struct Cluster {
  BenchProgram program = distnode::bench::loadBenchProgram();
  std::unique_ptr<distnode::node::ClusterNode> node;
  pid_t member = -1, third = -1, raw_server = -1;
  std::vector<std::uint16_t> owners; ///< the placement (by unit)
  zmq::context_t ctx;
  std::string raw_endpoint;
  std::string config_path; ///< the cluster's yaml, removed at the end
  EchoFn echo = nullptr;
  BumpFn bump = nullptr;
  TinyFn tiny = nullptr;
  TinyFn tiny_balanced = nullptr, tiny_here = nullptr;
  TinyFn busy = nullptr, busy_long = nullptr, busy_local = nullptr;

  Cluster() {
    using namespace distnode;
    // Three nodes (call and control ports) and the echo server. n1 serves the calls measured;
    // n2 only takes part in placements.
    std::vector<int> ports = testing::freeLoopbackPorts(7);
    std::string yaml = node::localClusterYaml(
        {ports[0], ports[1], ports[2], ports[3], ports[4], ports[5]}, std::chrono::seconds(30));
    // n1 runs calls on two workers, as a 2-CPU machine would (DIST_BENCH_N1_CPU: another
    // number, to compare).
    const char *n1_cpu = std::getenv("DIST_BENCH_N1_CPU");
    yaml = std::regex_replace(yaml, std::regex("  - name: n1\n"),
                              std::string("  - name: n1\n    capacity: {cpu: ") +
                                  (n1_cpu ? n1_cpu : "2") + "}\n");
    config_path = testing::writeTempFile("bench_cluster.yaml", yaml);
    auto config = node::loadClusterConfig(config_path);
    if (!config) {
      std::fprintf(stderr, "bench: %s\n", llvm::toString(config.takeError()).c_str());
      std::exit(1);
    }
    auto n = node::ClusterNode::Create(*config, 0, *program.session, program.analysis,
                                       program.sha256, [](const std::string &message, int code) {
                                         std::fprintf(stderr, "bench: %s\n", message.c_str());
                                         std::_Exit(code);
                                       });
    if (!n) {
      std::fprintf(stderr, "bench: %s\n", llvm::toString(n.takeError()).c_str());
      std::exit(1);
    }
    node = std::move(*n);
    program.session->setRemoteHandler([nd = node.get()](std::uint32_t id, void **slots, void *ret) {
      nd->callRemote(id, slots, ret);
    });
    member = spawn({DIST_DISTNODE, "--join", config_path, "--name", "n1", DIST_BENCH_BC});
    third = spawn({DIST_DISTNODE, "--join", config_path, "--name", "n2", DIST_BENCH_BC});
    owners.assign(program.analysis.units.size(), 0);
    for (const char *remote : {"echo_bytes", "bump_words", "tiny_remote", "busy", "busy_long"})
      owners.at(program.analysis.find(remote)->unit) = 1;
    // tiny_balanced has replicas on n0 and n1; n0 runs its calls while it has room.
    distnode::node::ReplicaSets replicas(owners.size());
    replicas.at(program.analysis.find("tiny_balanced")->unit) = {{0, 1.0f}, {1, 1.0f}};
    if (auto err = node->startEntry(owners, replicas)) {
      std::fprintf(stderr, "bench: %s\n", llvm::toString(std::move(err)).c_str());
      std::exit(1);
    }
    echo = program.function<EchoFn>("echo_bytes");
    bump = program.function<BumpFn>("bump_words");
    tiny = program.function<TinyFn>("tiny_remote");
    tiny_balanced = program.function<TinyFn>("tiny_balanced");
    tiny_here = program.function<TinyFn>("tiny_here");
    busy = program.function<TinyFn>("busy");
    busy_long = program.function<TinyFn>("busy_long");
    busy_local = program.function<TinyFn>("busy_local");

    raw_endpoint = "tcp://127.0.0.1:" + std::to_string(ports[6]);
    raw_server = spawn({"/proc/self/exe", "--raw-echo-server", raw_endpoint});
  }

  ~Cluster() {
    node->shutdownCluster(0);
    zmq::socket_t quit(ctx, zmq::socket_type::dealer);
    quit.set(zmq::sockopt::linger, 1000);
    quit.connect(raw_endpoint);
    quit.send(zmq::message_t(), zmq::send_flags::none);
    quit.close();
    for (pid_t pid : {member, third, raw_server}) {
      int status = 0;
      waitpid(pid, &status, 0);
    }
    std::remove(config_path.c_str());
  }
};

Cluster *cluster = nullptr;

void BM_RoundTrip_RawZmq(benchmark::State &state) {
  std::size_t size = static_cast<std::size_t>(state.range(0));
  zmq::socket_t dealer(cluster->ctx, zmq::socket_type::dealer);
  dealer.set(zmq::sockopt::linger, 0);
  dealer.set(zmq::sockopt::rcvtimeo, 10000);
  dealer.connect(cluster->raw_endpoint);
  std::vector<std::uint8_t> payload(size, 0x5a);
  for (auto _ : state) {
    dealer.send(zmq::buffer(payload), zmq::send_flags::none);
    zmq::message_t reply;
    if (!dealer.recv(reply) || reply.size() != size) {
      state.SkipWithError("no echo");
      break;
    }
  }
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(size) * 2);
}

void BM_RoundTrip_RemoteCall(benchmark::State &state) {
  std::size_t size = static_cast<std::size_t>(state.range(0));
  std::vector<std::uint8_t> in(size, 0x5a), out(size, 0);
  for (auto _ : state)
    cluster->echo(in.data(), out.data(), size);
  if (out != in)
    state.SkipWithError("echo_bytes returned other bytes");
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(size) * 2);
}

// The same bytes each way as BM_RoundTrip_RemoteCall, as one DIST_INOUT buffer: the reply
// is written back as the bytes the callee changed (compared with what was sent).
void BM_RoundTrip_InOut(benchmark::State &state) {
  std::size_t words = static_cast<std::size_t>(state.range(0)) / 4;
  std::vector<std::uint32_t> buf(words, 0x5a5a5a5a);
  for (auto _ : state)
    cluster->bump(buf.data(), words);
  if (words > 0 && buf[0] != 0x5a5a5a5a + state.iterations())
    state.SkipWithError("bump_words did not come back");
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(words) * 8);
}

// Writing back only the changed bytes of a 1 MiB buffer, against copying it whole (the
// baseline, what the write-back did before): none changed, each 32-bit element's low byte
// changed (the bump above), every byte changed.
void BM_WriteBack(benchmark::State &state) {
  constexpr std::size_t kBytes = 1 << 20;
  std::vector<std::uint8_t> before(kBytes, 0x5a), now(kBytes, 0x5a), dst(kBytes, 0x5a);
  for (std::size_t k = 0; k < kBytes; ++k)
    if (state.range(1) == 2 || (state.range(1) == 1 && k % 4 == 0))
      now[k] = 0x5b;
  for (auto _ : state) {
    if (state.range(0) == 0)
      std::memcpy(dst.data(), now.data(), kBytes);
    else
      distnode::jit::writeChangedBytes(dst.data(), now.data(), before.data(), kBytes);
    benchmark::DoNotOptimize(dst.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(kBytes));
  state.SetLabel(std::string(state.range(0) == 0 ? "memcpy" : "changed bytes") +
                 (state.range(1) == 0   ? ", none changed"
                  : state.range(1) == 1 ? ", 1 byte in 4"
                                        : ", all"));
}

// The two above, paired: each iteration times a block of raw round trips, then a block of
// remote calls of the same payload, so both see the same state of this shared machine (its
// speed drifts over seconds, and with it any ratio of runs made apart). Counters: each one's
// median time per call over the blocks, and the median of the blocks' ratios.
void BM_RoundTrip_Paired(benchmark::State &state) {
  constexpr int kBlock = 64;
  std::size_t size = static_cast<std::size_t>(state.range(0));
  zmq::socket_t dealer(cluster->ctx, zmq::socket_type::dealer);
  dealer.set(zmq::sockopt::linger, 0);
  dealer.set(zmq::sockopt::rcvtimeo, 10000);
  dealer.connect(cluster->raw_endpoint);
  std::vector<std::uint8_t> in(size, 0x5a), out(size, 0);
  std::vector<double> raw_us, remote_us, ratios;
  using Clock = std::chrono::steady_clock;
  auto perCall = [](Clock::duration d) {
    return std::chrono::duration<double, std::micro>(d).count() / kBlock;
  };
  for (auto _ : state) {
    auto t0 = Clock::now();
    for (int i = 0; i < kBlock; ++i) {
      dealer.send(zmq::buffer(in), zmq::send_flags::none);
      zmq::message_t reply;
      if (!dealer.recv(reply) || reply.size() != size) {
        state.SkipWithError("no echo");
        return;
      }
    }
    auto t1 = Clock::now();
    for (int i = 0; i < kBlock; ++i)
      cluster->echo(in.data(), out.data(), size);
    auto t2 = Clock::now();
    raw_us.push_back(perCall(t1 - t0));
    remote_us.push_back(perCall(t2 - t1));
    ratios.push_back(remote_us.back() / raw_us.back());
  }
  if (out != in)
    state.SkipWithError("echo_bytes returned other bytes");
  auto median = [](std::vector<double> &v) {
    std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
    return v[v.size() / 2];
  };
  state.counters["raw_us"] = median(raw_us);
  state.counters["remote_us"] = median(remote_us);
  state.counters["ratio"] = median(ratios);
}

void BM_RemoteCalls_Threads(benchmark::State &state) {
  std::uint64_t x = static_cast<std::uint64_t>(state.thread_index());
  for (auto _ : state)
    benchmark::DoNotOptimize(x = cluster->tiny(x));
  state.SetItemsProcessed(state.iterations());
}

// The load balancer's own cost: a call of a load-balanced function that its dispatcher runs
// here (this node has room), against the same body placed here and called through its stub.
void BM_Dispatch_LocalReplica(benchmark::State &state) {
  std::uint64_t x = 1;
  for (auto _ : state)
    benchmark::DoNotOptimize(x = cluster->tiny_balanced(x));
  state.SetItemsProcessed(state.iterations());
}

void BM_Dispatch_StubBaseline(benchmark::State &state) {
  std::uint64_t x = 1;
  for (auto _ : state)
    benchmark::DoNotOptimize(x = cluster->tiny_here(x));
  state.SetItemsProcessed(state.iterations());
}

// The baseline for calls per second: one DEALER keeps `depth` 8-byte requests in flight to the
// raw echo server (as many app threads would each keep one call in flight).
void BM_RawZmq_InFlight(benchmark::State &state) {
  const int depth = static_cast<int>(state.range(0));
  zmq::socket_t dealer(cluster->ctx, zmq::socket_type::dealer);
  dealer.set(zmq::sockopt::linger, 0);
  dealer.set(zmq::sockopt::rcvtimeo, 10000);
  dealer.connect(cluster->raw_endpoint);
  std::uint64_t payload = 42;
  for (int i = 0; i < depth; ++i)
    dealer.send(zmq::buffer(&payload, sizeof payload), zmq::send_flags::none);
  for (auto _ : state) {
    zmq::message_t reply;
    if (!dealer.recv(reply)) {
      state.SkipWithError("no echo");
      break;
    }
    dealer.send(zmq::buffer(&payload, sizeof payload), zmq::send_flags::none);
  }
  for (int i = 0; i < depth; ++i) {
    zmq::message_t reply;
    (void)dealer.recv(reply);
  }
  state.SetItemsProcessed(state.iterations());
}

// A second baseline for calls per second, with the shape of remote calls from many threads:
// each app thread has a DEALER (a connection) of its own and one 8-byte request in flight. Its
// ratio to BM_RawZmq_InFlight is what one connection per thread costs ZeroMQ itself.
void BM_RawZmq_Threads(benchmark::State &state) {
  zmq::socket_t dealer(cluster->ctx, zmq::socket_type::dealer);
  dealer.set(zmq::sockopt::linger, 0);
  dealer.set(zmq::sockopt::rcvtimeo, 10000);
  dealer.connect(cluster->raw_endpoint);
  std::uint64_t payload = 42;
  for (auto _ : state) {
    dealer.send(zmq::buffer(&payload, sizeof payload), zmq::send_flags::none);
    zmq::message_t reply;
    if (!dealer.recv(reply)) {
      state.SkipWithError("no echo");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
}

// What the next two baselines share: one DEALER to the raw echo server, a thread of their own
// that reads its replies, and a flag per app thread that the thread waits on for its answer.
struct DealerThreads {
  zmq::socket_t dealer{cluster->ctx, zmq::socket_type::dealer};
  int fd = -1, poke = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  std::atomic<bool> stop{false};
  std::atomic<int> finished{0};
  std::vector<std::atomic<int>> answered = std::vector<std::atomic<int>>(64);
  std::thread thread;

  DealerThreads() {
    dealer.set(zmq::sockopt::linger, 0);
    dealer.connect(cluster->raw_endpoint);
    fd = dealer.get(zmq::sockopt::fd);
  }
  ~DealerThreads() { ::close(poke); }
  /// Ends the thread (before the members it uses go).
  void stopThread() {
    stop = true;
    pokeThread();
    thread.join();
  }
  void pokeThread() { distnode::node::signalEventFd(poke); }
  /// Waits until the DEALER's fd or the poke signals (20 ms at most).
  void waitForDealerOrPoke() {
    pollfd fds[2] = {{fd, POLLIN, 0}, {poke, POLLIN, 0}};
    ::poll(fds, 2, 20);
    if (fds[1].revents & POLLIN)
      distnode::node::drainEventFd(poke);
  }
  std::atomic<int> &doneOf(std::uint64_t id) { return answered[id % answered.size()]; }
  /// Wakes the app thread whose request `id` was answered.
  void answer(std::uint64_t id) {
    doneOf(id).store(1);
    doneOf(id).notify_one();
  }
};

// A third: the app threads share one DEALER (one connection), multiplexed by request id; a
// reader thread of its own reads every reply and wakes the thread it answers. What a design
// that shares connections between threads could reach at best with ZeroMQ on this machine.
struct SharedDealer : DealerThreads {
  std::mutex mu; ///< guards dealer

  SharedDealer() {
    thread = std::thread([this] { read(); });
  }
  ~SharedDealer() { stopThread(); }
  void read() {
    while (!stop.load()) {
      std::vector<std::uint64_t> ids;
      {
        std::lock_guard lock(mu);
        zmq::message_t reply;
        while (dealer.recv(reply, zmq::recv_flags::dontwait)) {
          std::uint64_t id = 0;
          std::memcpy(&id, reply.data(), std::min(reply.size(), sizeof id));
          ids.push_back(id);
        }
      }
      for (auto id : ids)
        answer(id);
      if (ids.empty())
        waitForDealerOrPoke();
    }
  }
  void call(std::uint64_t id) {
    auto &done = doneOf(id);
    done.store(0);
    bool readable = false;
    {
      std::lock_guard lock(mu);
      dealer.send(zmq::buffer(&id, sizeof id), zmq::send_flags::none);
      // The send may have taken the signal the reader waits for.
      readable = dealer.get(zmq::sockopt::events) & ZMQ_POLLIN;
    }
    if (readable)
      pokeThread();
    done.wait(0);
  }
};

// A fourth: the app threads hand their requests to one thread that owns the DEALER. It sends
// every request queued meanwhile as one message (the echo server returns it whole) and wakes
// the threads it answers: fewer and larger messages than SharedDealer's, with no lock around a
// send, and the same one wake-up per call.
struct OwnerBatches : DealerThreads {
  std::mutex mu; ///< guards queued and owner_waits
  std::vector<std::uint64_t> queued;
  bool owner_waits = false;

  OwnerBatches() {
    thread = std::thread([this] { run(); });
  }
  ~OwnerBatches() { stopThread(); }
  void run() {
    std::vector<std::uint64_t> batch;
    while (!stop.load()) {
      bool busy = false;
      zmq::message_t reply;
      while (dealer.recv(reply, zmq::recv_flags::dontwait)) {
        for (std::size_t at = 0; at + sizeof(std::uint64_t) <= reply.size();
             at += sizeof(std::uint64_t)) {
          std::uint64_t id = 0;
          std::memcpy(&id, reply.data<std::uint8_t>() + at, sizeof id);
          answer(id);
        }
        busy = true;
      }
      {
        std::lock_guard lock(mu);
        batch.swap(queued);
      }
      if (!batch.empty()) {
        dealer.send(zmq::buffer(batch.data(), batch.size() * sizeof(std::uint64_t)),
                    zmq::send_flags::none);
        batch.clear();
        busy = true;
      }
      if (busy)
        continue;
      {
        std::lock_guard lock(mu);
        if (!queued.empty())
          continue;
        owner_waits = true; // a request queued from here on pokes
      }
      // The reads and sends above may have taken the signal of a reply on the fd.
      if (!(dealer.get(zmq::sockopt::events) & ZMQ_POLLIN))
        waitForDealerOrPoke();
      std::lock_guard lock(mu);
      owner_waits = false;
    }
  }
  void call(std::uint64_t id) {
    auto &done = doneOf(id);
    done.store(0);
    bool wake = false;
    {
      std::lock_guard lock(mu);
      queued.push_back(id);
      wake = std::exchange(owner_waits, false);
    }
    if (wake)
      pokeThread();
    done.wait(0);
  }
};

// 16 app threads making 8-byte calls through one `Shared` (SharedDealer or OwnerBatches).
template <class Shared> void runSharedThreads(benchmark::State &state) {
  static std::unique_ptr<Shared> shared;
  if (state.thread_index() == 0)
    shared = std::make_unique<Shared>();
  const auto id = static_cast<std::uint64_t>(state.thread_index());
  for (auto _ : state)
    shared->call(id);
  state.SetItemsProcessed(state.iterations());
  if (++shared->finished == state.threads())
    shared->finished = 0;
  if (state.thread_index() == 0) {
    while (shared->finished.load() != 0)
      std::this_thread::yield();
    shared.reset();
  }
}

void BM_RawZmq_SharedThreads(benchmark::State &state) { runSharedThreads<SharedDealer>(state); }
void BM_RawZmq_OwnerBatches(benchmark::State &state) { runSharedThreads<OwnerBatches>(state); }

// The calling side alone: app threads make 8-byte calls through a CallClient of their own to
// the raw echo server (which answers each Call with itself, an envelope of the same call id).
// Against BM_RawZmq_SharedThreads (same server, same thread count) it is the cost of the
// runtime's calling side; against BM_RemoteCalls_Threads, that of the serving node and of
// what a call does around request() (marshaling, placement, profile).
struct ClientOnly {
  std::unique_ptr<distnode::node::CallServer> server;
  std::unique_ptr<distnode::node::CallClient> client;
  std::atomic<std::uint64_t> next_id{1};
  std::atomic<int> finished{0};

  ClientOnly() {
    using namespace distnode::node;
    auto router = std::make_unique<zmq::socket_t>(context(), zmq::socket_type::router);
    router->bind("tcp://127.0.0.1:*"); // no call comes here
    server = std::make_unique<CallServer>(
        std::move(router), 1, [](Incoming &) { return zmq::message_t(); }, false);
    server->start();
    client = std::make_unique<CallClient>(std::vector<std::string>{cluster->raw_endpoint}, *server);
  }
  ~ClientOnly() {
    server->stop();
    client->close(std::chrono::milliseconds(0));
    server->close(std::chrono::milliseconds(0));
  }
};

void BM_CallClient_Threads(benchmark::State &state) {
  using namespace distnode;
  static std::unique_ptr<ClientOnly> side;
  if (state.thread_index() == 0)
    side = std::make_unique<ClientOnly>();
  node::currentChain() = (std::uint64_t(state.thread_index()) + 1) << 32;
  std::uint64_t x = 42;
  for (auto _ : state) {
    node::CallClient::CallScope scope(*side->client);
    const std::uint64_t id = side->next_id++;
    zmq::message_t call = transport::makeCallWith(
        id, 1, 0, sizeof x, [&](std::uint8_t *room) { std::memcpy(room, &x, sizeof x); },
        node::currentChain());
    zmq::message_t response;
    const wire::Envelope *envelope = nullptr;
    std::string error;
    if (!side->client->request(0, std::move(call), {}, id, response, envelope, error) ||
        !envelope) {
      state.SkipWithError(error.c_str());
      break;
    }
  }
  node::currentChain() = 0;
  state.SetItemsProcessed(state.iterations());
  if (++side->finished == state.threads())
    side->finished = 0;
  if (state.thread_index() == 0) {
    while (side->finished.load() != 0)
      std::this_thread::yield();
    side.reset();
  }
}

// Rounds of busy() that take `target` here (the member runs the same code on the same kind of
// core).
std::uint64_t calibrate(std::chrono::nanoseconds target) {
  std::uint64_t n = 1000;
  while (true) {
    auto t0 = std::chrono::steady_clock::now();
    benchmark::DoNotOptimize(cluster->busy_local(n));
    auto took = std::chrono::steady_clock::now() - t0;
    if (took >= target / 4)
      return static_cast<std::uint64_t>(static_cast<double>(n) * target.count() / took.count());
    n *= 4;
  }
}

// Latency of a ~10 us call on the member, idle (range 0) or while another thread's ~1 s call
// runs on it (range 1). Counters: p50 and p99 in microseconds over 500 calls.
void BM_ShortCallLatency(benchmark::State &state) {
  static const std::uint64_t short_n = calibrate(std::chrono::microseconds(10));
  static const std::uint64_t long_n = calibrate(std::chrono::seconds(1));
  std::atomic<bool> done{false};
  std::thread loader;
  if (state.range(0) == 1)
    loader = std::thread([&] {
      while (!done.load())
        benchmark::DoNotOptimize(cluster->busy_long(long_n));
    });
  std::vector<double> us;
  for (auto _ : state) {
    us.clear();
    for (int i = 0; i < 500; ++i) {
      auto t0 = std::chrono::steady_clock::now();
      benchmark::DoNotOptimize(cluster->busy(short_n));
      us.push_back(
          std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
    }
  }
  done = true;
  if (loader.joinable())
    loader.join();
  std::sort(us.begin(), us.end());
  state.counters["p50_us"] = us[us.size() / 2];
  state.counters["p99_us"] = us[us.size() * 99 / 100];
}

// Time from a placement sent to all three nodes until every one runs it (acknowledged): each
// iteration moves the stateless `busy` between n1 and n2 (a placement that changes nothing is
// not sent), and the starting placement is restored after.
void BM_Placement_ThreeNodes(benchmark::State &state) {
  std::vector<std::uint16_t> moved = cluster->owners;
  moved.at(cluster->program.analysis.find("busy")->unit) = 2;
  bool there = false;
  for (auto _ : state) {
    there = !there;
    if (auto err = cluster->node->place(there ? moved : cluster->owners)) {
      state.SkipWithError(llvm::toString(std::move(err)).c_str());
      break;
    }
  }
  if (auto err = cluster->node->place(cluster->owners))
    state.SkipWithError(llvm::toString(std::move(err)).c_str());
}

BENCHMARK(BM_Dispatch_StubBaseline);
BENCHMARK(BM_Dispatch_LocalReplica);
BENCHMARK(BM_RawZmq_InFlight)->Arg(16)->UseRealTime();
BENCHMARK(BM_RawZmq_Threads)->Threads(16)->UseRealTime();
BENCHMARK(BM_RawZmq_SharedThreads)->Threads(16)->UseRealTime();
BENCHMARK(BM_RawZmq_OwnerBatches)->Threads(16)->UseRealTime();
BENCHMARK(BM_CallClient_Threads)->Threads(16)->UseRealTime();
BENCHMARK(BM_ShortCallLatency)->Arg(0)->Arg(1)->Iterations(1)->UseRealTime();
BENCHMARK(BM_Placement_ThreeNodes)->UseRealTime();
BENCHMARK(BM_RoundTrip_RawZmq)->RangeMultiplier(8)->Range(8, 1 << 20);
BENCHMARK(BM_RoundTrip_RemoteCall)->RangeMultiplier(8)->Range(8, 1 << 20);
BENCHMARK(BM_RoundTrip_InOut)->Arg(4096)->Arg(1 << 20);
BENCHMARK(BM_WriteBack)->ArgsProduct({{0, 1}, {0, 1, 2}});
BENCHMARK(BM_RoundTrip_Paired)
    ->RangeMultiplier(8)
    ->Range(8, 4096)
    ->Arg(1 << 16)
    ->Arg(1 << 20)
    ->UseRealTime();
BENCHMARK(BM_RemoteCalls_Threads)->Threads(1)->Threads(4)->Threads(16)->UseRealTime();

} // namespace

int main(int argc, char **argv) {
  if (argc == 3 && std::strcmp(argv[1], "--raw-echo-server") == 0)
    return runRawEchoServer(argv[2]);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv))
    return 1;
  cluster = new Cluster();
  benchmark::RunSpecifiedBenchmarks();
  delete cluster;
  benchmark::Shutdown();
  return 0;
}
