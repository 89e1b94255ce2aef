// adaptation.cpp - the online placement loop on a running cluster.
#include "node/adaptation.h"

#include "node/cluster_node.h"
#include "node/node_sockets.h"

#include "llvm/Support/Error.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

namespace distnode::node {

namespace {

constexpr int kLatencyProbes = 3;
constexpr std::size_t kSmallProbe = 64;
constexpr std::size_t kLargeProbe = std::size_t(1) << 20;
constexpr int kBandwidthEvery = 10; // intervals
constexpr std::chrono::milliseconds kFlushWait{5};
constexpr std::chrono::milliseconds kLookFlushWait{1}; // a look's (every sixteenth of an interval)

// The kernel's totals over this process's threads, from /proc/self/task/*/schedstat: time
// running and time waiting on a run queue (ns). Threads that exited are not counted, so a
// difference of two readings can be negative: the caller keeps it at 0.
void schedTotals(std::uint64_t &run_ns, std::uint64_t &wait_ns) {
  run_ns = wait_ns = 0;
  std::error_code ec;
  for (const auto &task : std::filesystem::directory_iterator("/proc/self/task", ec)) {
    std::ifstream in(task.path() / "schedstat");
    std::uint64_t run = 0, wait = 0;
    if (in >> run >> wait) {
      run_ns += run;
      wait_ns += wait;
    }
  }
}

// The profiler's counts once running frames added theirs: they do at their next call after the
// request (a frame in a loop within microseconds, one waiting for a reply when it returns), so
// a short wait lets the counts hold the time just past instead of what came before.
profiler::ProfileCounts countsAfterFlush(std::chrono::milliseconds wait) {
  profiler::Profiler &p = profiler::Profiler::instance();
  p.requestFlush();
  std::this_thread::sleep_for(wait);
  return p.counts();
}

std::string msPerS(double s_per_s) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.1f ms/s", s_per_s * 1e3);
  return buffer;
}

} // namespace

// ---- NodeReporter --------------------------------------------------------------------------

NodeReporter::NodeReporter(ClusterNode &node, int self, int nodes, double capacity)
    : node_(node), self_(self), nodes_(nodes), capacity_(capacity) {
  last_ = look_ = look_before_ = profiler::Profiler::instance().counts();
  schedTotals(last_run_ns_, last_wait_ns_);
}

NodeReporter::~NodeReporter() { stop(); }

NodeReport NodeReporter::next() {
  profiler::ProfileCounts now = countsAfterFlush(kFlushWait);
  NodeReport r;
  std::lock_guard lock(mu_);
  r.delta = now.minus(last_);
  last_ = std::move(now);
  r.cpu_capacity = capacity_;
  std::uint64_t run = 0, wait = 0;
  schedTotals(run, wait);
  r.run_s = run > last_run_ns_ ? static_cast<double>(run - last_run_ns_) / 1e9 : 0;
  r.runnable_wait_s = wait > last_wait_ns_ ? static_cast<double>(wait - last_wait_ns_) / 1e9 : 0;
  last_run_ns_ = run;
  last_wait_ns_ = wait;
  base_.delta = r.delta;
  look_changed_ = false; // looks compare with this report from now on
  r.links = links_;
  return r;
}

void NodeReporter::startProbing(std::chrono::milliseconds interval) {
  if (nodes_ > 1)
    prober_ = std::thread([this, interval] { probeLoop(interval); });
}

void NodeReporter::stop() {
  {
    std::lock_guard lock(stop_mu_);
    stop_ = true;
  }
  stop_cv_.notify_all();
  if (prober_.joinable())
    prober_.join();
}

void NodeReporter::probeLoop(std::chrono::milliseconds interval) {
  nameThread("dn-probe");
  blockProgramSignals();
  std::vector<NodeReport::Link> links(nodes_);
  for (int n = 0; n < nodes_; ++n)
    links[n].node = n;
  // The round when each link's bandwidth was last measured, by a large call or a probe.
  std::vector<int> bandwidth_round(nodes_, -kBandwidthEvery);
  for (int round = 0;; ++round) {
    for (int n = 0; n < nodes_; ++n) {
      if (n == self_)
        continue;
      // The remote calls of the interval measured the link where they could; the rest is
      // probed: latency every round, bandwidth at the start and every tenth round.
      LinkSamples::Estimate calls = node_.takeLinkEstimate(n, links[n].latency_s);
      links[n].latency_by_calls = calls.latency_s > 0;
      if (calls.bandwidth_bytes_s > 0) {
        links[n].bandwidth_bytes_s = calls.bandwidth_bytes_s;
        links[n].bandwidth_by_calls = true;
        bandwidth_round[n] = round;
      }
      std::optional<std::chrono::nanoseconds> best;
      if (calls.latency_s > 0) {
        links[n].latency_s = calls.latency_s;
        best = std::chrono::duration_cast<std::chrono::nanoseconds>(
            std::chrono::duration<double>(2 * calls.latency_s));
      } else {
        for (int i = 0; i < kLatencyProbes; ++i)
          if (auto rtt = node_.probe(n, kSmallProbe)) // none: the node stops, or a failed probe
            best = best ? std::min(*best, *rtt) : *rtt;
        if (!best)
          continue; // measured again next round
        links[n].latency_s = std::chrono::duration<double>(*best).count() / 2;
      }
      if (round - bandwidth_round[n] >= kBandwidthEvery) {
        auto rtt = node_.probe(n, kLargeProbe);
        if (!rtt)
          continue;
        bandwidth_round[n] = round; // tried: not again before ten rounds, whatever it showed
        // Both ways carry the payload; the small round trip's time is the per-message part.
        double transfer_s = std::chrono::duration<double>(*rtt - *best).count();
        if (transfer_s > 0) {
          links[n].bandwidth_bytes_s = 2.0 * kLargeProbe / transfer_s;
          links[n].bandwidth_by_calls = false;
        }
      }
    }
    {
      std::lock_guard lock(mu_);
      links_.clear();
      for (const auto &l : links)
        if (l.node != self_ && l.latency_s > 0)
          links_.push_back(l);
    }
    std::unique_lock lock(stop_mu_);
    if (stop_cv_.wait_for(lock, interval, [&] { return stop_; }))
      return;
  }
}

bool NodeReporter::sawNewPhase() {
  profiler::ProfileCounts now = countsAfterFlush(kLookFlushWait);
  std::lock_guard lock(mu_);
  NodeReport window, both;
  window.delta = now.minus(look_);
  both.delta = now.minus(look_before_);
  bool changed = showsNewPhase(base_, window);
  bool twice = changed && look_changed_ && showsNewPhase(base_, both);
  look_changed_ = changed;
  look_before_ = std::move(look_);
  look_ = std::move(now);
  return twice;
}

// ---- AdaptationLoop ------------------------------------------------------------------------

AdaptationLoop::AdaptationLoop(ClusterNode &node, Coordinator &coordinator, NodeReporter &own,
                               int self)
    : node_(node), coordinator_(coordinator), own_(own), self_(self) {}

AdaptationLoop::~AdaptationLoop() { stop(); }

double AdaptationLoop::nowS() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void AdaptationLoop::start() {
  start_ = std::chrono::steady_clock::now(); // the cluster runs from here
  {
    std::lock_guard lock(mu_);
    Decision initial;
    initial.reason = "the starting placement";
    coordinator_.recordEpoch(node_.epoch(), node_.owners(), nowS(), "start", initial);
  }
  thread_ = std::thread([this] { loop(); });
}

void AdaptationLoop::stop() {
  {
    std::lock_guard lock(stop_mu_);
    stop_ = true;
  }
  stop_cv_.notify_all();
  if (thread_.joinable())
    thread_.join();
}

bool AdaptationLoop::wantRound(std::uint64_t round) {
  bool enabled = coordinator_.options().enabled;
  {
    std::lock_guard lock(stop_mu_);
    // Not while held still, nor a request made before the member answered a newer round.
    if (!enabled || round < asked_round_)
      return false;
    wanted_ = true;
  }
  stop_cv_.notify_all();
  return true;
}

AdaptationLoop::Next
AdaptationLoop::waitUntilRound(std::chrono::steady_clock::time_point last_start,
                               std::chrono::steady_clock::time_point last_end, bool follow_up) {
  // Until the round is due, or looks at the counts (this node's every phaseLookEvery, or a
  // member's, which asks for a round) show a new phase: then the round comes at once, but
  // never sooner than one look after the last round ended. A follow-up round is due two
  // looks after the early one; nothing brings it earlier. Held still (freeze, --no-adapt),
  // the rounds only keep the profile current: none early.
  AdaptOptions o = coordinator_.options();
  auto next_look = std::chrono::steady_clock::now() + phaseLookEvery(o.interval);
  while (true) {
    auto look = phaseLookEvery(o.interval);
    auto due = follow_up && o.enabled ? last_end + 2 * look : last_start + o.interval;
    bool may_be_early = o.enabled && !follow_up;
    {
      std::unique_lock lock(stop_mu_);
      if (!o.enabled)
        wanted_ = false; // asks made while held still are old news after `thaw`
      if (stop_cv_.wait_until(lock, std::min(due, next_look), [&] {
            return stop_ ||
                   (may_be_early && wanted_ && std::chrono::steady_clock::now() >= last_end + look);
          }))
        return stop_ ? Next::Stop : Next::Early; // stopping, or a member saw a new phase
    }
    auto now = std::chrono::steady_clock::now();
    if (now >= due)
      return Next::Due;
    o = coordinator_.options(); // `set interval_ms`, `freeze` and `thaw` take effect here
    if (now < next_look)
      continue;
    next_look = now + look;
    if (!may_be_early)
      continue;
    if (own_.sawNewPhase()) {
      spdlog::debug("this node saw a new phase: planning early");
      std::lock_guard lock(stop_mu_);
      return stop_ ? Next::Stop : Next::Early;
    }
  }
}

void AdaptationLoop::loop() {
  nameThread("dn-adapt");
  blockProgramSignals();
  // The first round comes firstRoundAfter(interval) after the start: a bad starting placement
  // is mended at once.
  {
    std::unique_lock lock(stop_mu_);
    if (stop_cv_.wait_for(lock, firstRoundAfter(coordinator_.options().interval),
                          [&] { return stop_; }))
      return;
  }
  // A round brought early covers the end of the phase before as well as the start of the new
  // one, so some rates (a function's CPU that fell by half, not eightfold) do not show the new
  // phase yet: a follow-up round comes two looks after it, over the new phase alone.
  auto last_start = std::chrono::steady_clock::now(), last_end = last_start;
  bool follow_up = false;
  for (std::uint64_t round = 1;; ++round) {
    if (round > 1) {
      Next next = waitUntilRound(last_start, last_end, follow_up);
      if (next == Next::Stop)
        return;
      follow_up = next == Next::Early; // a follow-up itself is never early: no chains
    }
    auto started = std::chrono::steady_clock::now();
    double started_s = nowS(); // the reports cover the time from round start to round start
    spdlog::debug("planning round {}, {:.0f} ms after the last", round,
                  std::chrono::duration<double, std::milli>(started - last_start).count());
    last_start = started;
    {
      std::lock_guard lock(stop_mu_);
      wanted_ = false;
      asked_round_ = round;
    }
    // Every node's report of the round, made now: all of them cover the time since the last
    // round. Waited for briefly (a node with profiling off never reports; one that reported
    // before is expected to again).
    std::vector<std::uint64_t> counts = coordinator_.reportCounts();
    std::vector<bool> from(counts.size(), false);
    for (std::size_t n = 0; n < counts.size(); ++n)
      from[n] = static_cast<int>(n) != self_ && (round == 1 || counts[n] > 0);
    node_.requestReports(round);
    coordinator_.addReport(self_, own_.next(), round);
    auto bound = std::clamp(coordinator_.options().interval / 4, std::chrono::milliseconds(20),
                            std::chrono::milliseconds(250));
    if (!coordinator_.waitForReports(round, from, started + bound))
      spdlog::debug("round {}: not every node's report arrived within {} ms", round, bound.count());
    {
      std::lock_guard lock(mu_);
      Decision d = coordinator_.round(node_.owners(), started_s, node_.replicas(), round);
      if (d.change)
        apply(d, "planner");
      else
        spdlog::debug("placement kept: {}", d.reason);
    }
    last_end = std::chrono::steady_clock::now();
  }
}

AdaptationLoop::Outcome AdaptationLoop::apply(const Decision &d, const std::string &trigger) {
  Outcome out;
  out.decision = d;
  std::vector<ClusterNode::Kept> kept;
  if (auto err = node_.place(d.owners, &kept, d.replicas.empty() ? nullptr : &d.replicas)) {
    out.ok = false;
    out.error = llvm::toString(std::move(err));
    spdlog::warn("placement not applied: {}", out.error);
    coordinator_.notMoved(d); // no cool-down for moves that did not happen
    return out;
  }
  out.epoch = node_.epoch();
  if (!kept.empty()) { // nothing moved: a unit's state could not be taken now
    ClusterView v = coordinator_.view(node_.owners());
    out.ok = false;
    out.error = "`" + v.units[kept.front().unit].name + "` not moved: " + kept.front().why;
    if (trigger == "planner") { // plan again at once around the busy units
      std::vector<int> busy;
      for (const auto &k : kept)
        busy.push_back(static_cast<int>(k.unit));
      Decision again = coordinator_.replan(node_.owners(), nowS(), d, busy, node_.replicas());
      if (again.change) {
        std::vector<ClusterNode::Kept> kept_again;
        if (auto err = node_.place(again.owners, &kept_again,
                                   again.replicas.empty() ? nullptr : &again.replicas)) {
          out.error = llvm::toString(std::move(err));
          spdlog::warn("placement not applied: {}", out.error);
          return out;
        }
        if (kept_again.empty()) {
          out = Outcome{};
          out.decision = again;
          out.epoch = node_.epoch();
        }
      }
      if (!out.ok)
        return out;
    } else {
      return out;
    }
  }
  const Decision &done = out.decision;
  coordinator_.recordEpoch(out.epoch, done.owners, nowS(), trigger, done);
  for (const heuristic::Move &m : done.moves)
    spdlog::info("epoch {}: {}", out.epoch, m.explanation);
  for (const std::string &change : done.replica_changes)
    spdlog::info("epoch {}: {}", out.epoch, change);
  for (const auto &k : kept)
    spdlog::info("epoch {}: kept `{}` where it is: {}", out.epoch,
                 coordinator_.view(done.owners).units[k.unit].name, k.why);
  spdlog::info("epoch {} ({}): {}; predicted gain {}", out.epoch, trigger, done.reason,
               msPerS(done.predicted_gain_s_per_s));
  return out;
}

AdaptationLoop::Outcome AdaptationLoop::repartition() {
  std::lock_guard lock(mu_);
  Decision d = coordinator_.repartition(node_.owners(), nowS(), node_.replicas());
  if (!d.change) {
    Outcome out;
    out.decision = d;
    out.epoch = node_.epoch();
    return out;
  }
  return apply(d, "operator: repartition");
}

AdaptationLoop::Outcome AdaptationLoop::move(int unit, int node) {
  std::lock_guard lock(mu_);
  Outcome out;
  std::vector<std::uint16_t> owners = node_.owners();
  out.epoch = node_.epoch();
  // Already there: nothing to move, whether or not the unit could move.
  if (unit >= 0 && static_cast<std::size_t>(unit) < owners.size() && owners[unit] == node &&
      node_.replicas().at(unit).empty()) {
    out.decision.reason = "already there";
    return out;
  }
  if (auto why = coordinator_.checkMove(unit, node)) {
    out.ok = false;
    out.error = *why;
    return out;
  }
  ClusterView v = coordinator_.view(owners);
  Decision d;
  d.change = true;
  d.reason = "operator request";
  heuristic::Move m;
  m.unit = unit;
  m.from = owners[unit];
  m.to = node;
  m.explanation = "moved `" + v.units[unit].name + "` " + v.nodes[m.from] + "→" + v.nodes[node] +
                  ": operator request";
  d.moves.push_back(m);
  owners[unit] = static_cast<std::uint16_t>(node);
  d.owners = owners;
  return apply(d, "operator: move");
}

AdaptationLoop::Outcome AdaptationLoop::drain(int node, bool drained) {
  std::lock_guard lock(mu_);
  Outcome out;
  if (auto why = coordinator_.drain(node, drained)) {
    out.ok = false;
    out.error = *why;
    return out;
  }
  out.epoch = node_.epoch();
  if (!drained) {
    out.decision.reason = "nothing moves now; the planner may place units on the node again";
    return out;
  }
  // Every movable unit leaves the node now, to where the planner would put it.
  Decision d = coordinator_.repartition(node_.owners(), nowS(), node_.replicas());
  if (!d.change) {
    out.decision.reason = d.reason;
    return out;
  }
  return apply(d, "operator: drain");
}

} // namespace distnode::node
