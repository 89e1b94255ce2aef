// admin_server.cpp - a node's admin socket.
#include "node/admin_server.h"

#include "node/adaptation.h"
#include "node/cluster_config.h"
#include "node/cluster_node.h"
#include "node/coordinator.h"
#include "node/node_sockets.h"
#include "transport/messages.h"

#include "llvm/Support/Error.h"

#include <spdlog/spdlog.h>
#include <zmq.hpp>

#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <map>
#include <set>

namespace distnode::node {

using nlohmann::json;

namespace {

// Requests larger than this are not admin requests.
constexpr std::int64_t kMaxRequestBytes = 64 << 10;

json ok(json fields = json::object()) {
  fields["ok"] = true;
  return fields;
}

// A field of the request that must be a string; sets `error` if it is not.
std::string field(const json &request, const char *name, std::string &error) {
  auto it = request.find(name);
  if (it == request.end() || !it->is_string()) {
    if (error.empty())
      error =
          std::string("`") + request.value("command", "") + "` needs \"" + name + "\" (a string)";
    return "";
  }
  return it->get<std::string>();
}

double round3(double v) { return std::round(v * 1000) / 1000; }

json moveJson(const heuristic::Move &m, const ClusterView &v) {
  return {{"unit", v.units[m.unit].name},
          {"from", v.nodes[m.from]},
          {"to", v.nodes[m.to]},
          {"why", m.explanation}};
}

json outcomeJson(const AdaptationLoop::Outcome &o, const ClusterView &v) {
  if (!o.ok)
    return adminError(o.error);
  json moves = json::array();
  for (const heuristic::Move &m : o.decision.moves)
    moves.push_back(moveJson(m, v));
  return ok({{"epoch", o.epoch},
             {"changed", !o.decision.moves.empty() || !o.decision.replica_changes.empty()},
             {"moves", moves},
             {"replica_changes", o.decision.replica_changes},
             {"reason", o.decision.reason}});
}

json optionsJson(const AdaptOptions &o) {
  return {{"enabled", o.enabled},
          {"interval_ms", o.interval.count()},
          {"hysteresis", o.hysteresis},
          {"cooldown_ms", std::llround(o.cooldown_s * 1000)},
          {"half_life_ms", std::llround(o.half_life_s * 1000)}};
}

// Graphviz: units as boxes filled by node, edges as wide as their traffic.
std::string graph(const ClusterView &v) {
  static const char *kColours[] = {"#8dd3c7", "#ffffb3", "#bebada", "#fb8072",
                                   "#80b1d3", "#fdb462", "#b3de69", "#fccde5"};
  std::string dot = "digraph distnode {\n  rankdir=LR;\n  node [shape=box, style=filled];\n";
  for (std::size_t n = 0; n < v.nodes.size(); ++n)
    dot += "  // node " + v.nodes[n] + ": " + kColours[n % 8] + "\n";
  for (std::size_t u = 0; u < v.units.size(); ++u) {
    char cpu[32];
    std::snprintf(cpu, sizeof cpu, "%.2f", v.units[u].cpu_s_per_s);
    dot += "  u" + std::to_string(u) + " [label=\"" + v.units[u].name + "\\n" +
           v.nodes[v.units[u].owner] + ", " + cpu + " CPU s/s\", fillcolor=\"" +
           kColours[v.units[u].owner % 8] + "\"];\n";
  }
  double top = 1;
  for (const UnitEdgeView &e : v.edges)
    top = std::max(top, e.calls_per_s);
  for (const UnitEdgeView &e : v.edges) {
    char attrs[96];
    std::snprintf(attrs, sizeof attrs, "label=\"%.0f calls/s\", penwidth=%.2f", e.calls_per_s,
                  1 + 7 * e.calls_per_s / top);
    dot += "  u" + std::to_string(e.caller) + " -> u" + std::to_string(e.callee) + " [" + attrs +
           "];\n";
  }
  return dot + "}\n";
}

} // namespace

AdminHandler coordinatorHandler(const ClusterConfig &config, ClusterNode &node,
                                Coordinator &coordinator, AdaptationLoop &loop) {
  return [&config, &node, &coordinator, &loop](const json &request) -> json {
    if (!request.is_object() || !request.contains("command") || !request["command"].is_string())
      return adminError("a request is a JSON object with \"command\" (a string)");
    std::string command = request["command"].get<std::string>();
    std::string error;
    auto unitOf = [&](const char *name) {
      std::string u = field(request, name, error);
      if (!error.empty())
        return -1;
      int index = coordinator.findUnit(u);
      if (index < 0)
        error = "no placement unit or placeable function named `" + u + "`; `placement` lists them";
      return index;
    };
    auto nodeOf = [&](const char *name) {
      std::string n = field(request, name, error);
      if (!error.empty())
        return -1;
      int index = config.nodeIndex(n);
      if (index < 0)
        error = "no node named `" + n + "` in " + config.label;
      return index;
    };
    std::vector<std::uint16_t> owners = node.owners();
    ClusterView v = coordinator.view(owners);

    if (command == "status") {
      json nodes = json::array();
      for (std::size_t n = 0; n < v.nodes.size(); ++n) {
        int units = 0;
        for (const UnitView &u : v.units)
          units += u.owner == static_cast<int>(n);
        nodes.push_back({{"name", v.nodes[n]},
                         {"capacity_cpu", v.node_capacity[n]},
                         {"cpu_s_per_s", round3(v.node_cpu_s_per_s[n])},
                         {"calls_per_s", std::round(v.node_calls_per_s[n])},
                         {"report_interval_ms", std::round(v.node_report_s[n] * 1000)},
                         {"units", units}});
      }
      return ok({{"cluster", config.name},
                 {"coordinator", config.coordinator},
                 {"epoch", node.epoch()},
                 {"uptime_s", round3(loop.nowS())},
                 {"adapt", optionsJson(v.options)},
                 {"nodes", nodes}});
    }
    // A load-balanced unit's replicas and their shares of the calls; null for other units.
    ReplicaSets replicas = node.replicas();
    auto replicasOf = [&](std::size_t unit) -> json {
      if (unit >= replicas.size() || replicas[unit].empty())
        return nullptr;
      double total = totalWeight(replicas[unit]);
      json set = json::array();
      for (const Replica &r : replicas[unit])
        set.push_back({{"node", v.nodes.at(r.node)}, {"share", round3(r.weight / total)}});
      return set;
    };
    if (command == "placement") {
      json units = json::array();
      for (std::size_t i = 0; i < v.units.size(); ++i) {
        const UnitView &u = v.units[i];
        units.push_back(
            {{"unit", u.name},
             {"functions", u.functions},
             {"node", v.nodes[u.owner]},
             {"replicas", replicasOf(i)},
             {"movable", u.movable},
             {"why_fixed", u.why_fixed},
             {"pinned_to",
              u.pinned_by_operator >= 0 ? json(v.nodes[u.pinned_by_operator]) : json(nullptr)},
             {"last_move", u.last_move}});
      }
      return ok({{"epoch", node.epoch()}, {"units", units}});
    }
    if (command == "profile") {
      json units = json::array(), edges = json::array(), links = json::array();
      for (std::size_t i = 0; i < v.units.size(); ++i) {
        const UnitView &u = v.units[i];
        units.push_back({{"unit", u.name},
                         {"node", v.nodes[u.owner]},
                         {"replicas", replicasOf(i)},
                         {"cpu_s_per_s", round3(u.cpu_s_per_s)},
                         {"calls_per_s", std::round(u.calls_per_s)}});
      }
      for (const UnitEdgeView &e : v.edges)
        edges.push_back({{"caller", v.units[e.caller].name},
                         {"callee", v.units[e.callee].name},
                         {"calls_per_s", std::round(e.calls_per_s)},
                         {"bytes_per_s", std::round(e.bytes_per_s)},
                         {"remote", v.units[e.caller].owner != v.units[e.callee].owner}});
      for (std::size_t a = 0; a < v.nodes.size(); ++a)
        for (std::size_t b = 0; b < v.nodes.size(); ++b)
          if (v.latency_s[a][b] > 0)
            links.push_back({{"from", v.nodes[a]},
                             {"to", v.nodes[b]},
                             {"latency_us", round3(v.latency_s[a][b] * 1e6)},
                             {"latency_by", v.latency_by_calls[a][b] ? "calls" : "probes"},
                             {"bandwidth_mb_s", round3(v.bandwidth_bytes_s[a][b] / 1e6)},
                             {"bandwidth_by", v.bandwidth_by_calls[a][b] ? "calls" : "probes"}});
      const heuristic::CallCosts &c = v.call_costs;
      return ok({{"units", units},
                 {"edges", edges},
                 {"links", links},
                 {"call_costs",
                  {{"measured", v.call_costs_measured},
                   {"marshal_us_per_call", round3(c.marshal_s_per_call * 1e6)},
                   {"marshal_ns_per_byte", round3(c.marshal_s_per_byte * 1e9)}}}});
    }
    if (command == "history") {
      json entries = json::array();
      for (const HistoryEntry &h : coordinator.history())
        entries.push_back({{"epoch", h.epoch},
                           {"at_s", round3(h.at_s)},
                           {"trigger", h.trigger},
                           {"moves", h.moves},
                           {"reason", h.reason},
                           {"predicted_gain_ms_per_s", round3(h.predicted_gain_s_per_s * 1e3)}});
      return ok({{"entries", entries}});
    }
    if (command == "graph")
      return ok({{"dot", graph(v)}});
    if (command == "repartition")
      return outcomeJson(loop.repartition(), v);
    if (command == "move") {
      int unit = unitOf("unit");
      int to = nodeOf("node");
      if (!error.empty())
        return adminError(error);
      return outcomeJson(loop.move(unit, to), v);
    }
    if (command == "pin" || command == "unpin") {
      int unit = unitOf("unit");
      int to = command == "pin" ? nodeOf("node") : -1;
      if (!error.empty())
        return adminError(error);
      if (auto why = coordinator.pin(unit, to))
        return adminError(*why);
      if (to < 0)
        return ok({{"unit", v.units[unit].name}, {"pinned_to", nullptr}});
      // A pin takes effect at once: the unit moves there if it is elsewhere; if it cannot
      // move now, the pin is not kept.
      AdaptationLoop::Outcome outcome = loop.move(unit, to);
      if (!outcome.ok)
        (void)coordinator.pin(unit, -1);
      json moved = outcomeJson(outcome, v);
      moved["unit"] = v.units[unit].name;
      moved["pinned_to"] = v.nodes[to];
      return moved;
    }
    if (command == "drain" || command == "undrain") {
      int n = nodeOf("node");
      if (!error.empty())
        return adminError(error);
      return outcomeJson(loop.drain(n, command == "drain"), v);
    }
    if (command == "freeze" || command == "thaw") {
      AdaptOptions o = coordinator.options();
      o.enabled = command == "thaw";
      coordinator.setOptions(o);
      spdlog::info("adaptation {} by the operator", o.enabled ? "resumed" : "frozen");
      return ok({{"adapt", optionsJson(o)}});
    }
    if (command == "set") {
      AdaptOptions o = coordinator.options();
      static const std::set<std::string> kKnown = {"command", "interval_ms", "hysteresis",
                                                   "cooldown_ms", "half_life_ms"};
      for (auto it = request.begin(); it != request.end(); ++it) {
        if (!kKnown.count(it.key()))
          return adminError("`set` has no setting \"" + it.key() +
                            "\"; it takes interval_ms, hysteresis, cooldown_ms, half_life_ms");
        if (it.key() == "command")
          continue;
        if (!it->is_number())
          return adminError("`set`: \"" + it.key() + "\" must be a number");
        double value = it->get<double>();
        if (it.key() == "hysteresis") {
          if (!(value >= 0 && value < 1))
            return adminError("`set`: hysteresis must be at least 0 and below 1");
          o.hysteresis = value;
          continue;
        }
        const double least = it.key() == "interval_ms" ? kMinAdaptIntervalMs : 1;
        if (!(value >= least && value <= 86400000) || value != std::floor(value))
          return adminError("`set`: " + it.key() + " must be a whole number of milliseconds from " +
                            std::to_string(static_cast<long>(least)) + " to 86400000");
        if (it.key() == "interval_ms") {
          o.interval = std::chrono::milliseconds(static_cast<long>(value));
        } else if (it.key() == "cooldown_ms") {
          o.cooldown_s = value / 1000;
        } else {
          o.half_life_s = value / 1000;
        }
      }
      coordinator.setOptions(o);
      node.setMemberReportInterval(o.interval); // members follow from their next heartbeat
      return ok({{"adapt", optionsJson(o)}});
    }
    return adminError("unknown command `" + command +
                      "`; the commands are status, placement, profile, history, graph, "
                      "repartition, move, pin, unpin, drain, undrain, freeze, thaw, set");
  };
}

AdminHandler forwardingHandler(const std::string &coordinator_endpoint,
                               const std::string &coordinator_name,
                               std::chrono::milliseconds timeout) {
  return [=](const json &request) -> json {
    if (coordinator_endpoint.empty())
      return adminError("this node forwards admin requests to the coordinator `" +
                        coordinator_name + "`, which has no admin endpoint in cluster.yaml");
    return adminRequest(context(), coordinator_endpoint, request, timeout);
  };
}

// ---- AdminServer ---------------------------------------------------------------------------

llvm::Expected<std::unique_ptr<AdminServer>> AdminServer::Create(const std::string &endpoint,
                                                                 AdminHandler handler) {
  auto socket = std::make_unique<zmq::socket_t>(context(), zmq::socket_type::router);
  try {
    transport::configureSocket(*socket, kMaxRequestBytes);
    // A client that sends and never reads must not grow the answers' queue without bound.
    socket->set(zmq::sockopt::sndhwm, 1000);
    socket->bind(endpoint);
  } catch (const zmq::error_t &e) {
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   "cannot bind the admin socket " + endpoint + ": " + e.what());
  }
  if (endpoint.rfind("ipc://", 0) == 0) {
    std::string path = endpoint.substr(6);
    if (::chmod(path.c_str(), 0600) != 0)
      return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                     "cannot make the admin socket " + path +
                                         " private (mode 0600)");
  } else if (endpoint.find("127.0.0.1") == std::string::npos &&
             endpoint.find("localhost") == std::string::npos &&
             endpoint.find("[::1]") == std::string::npos) {
    spdlog::warn("the admin socket {} is not on loopback: whoever reaches it can steer the cluster",
                 endpoint);
  }
  std::unique_ptr<AdminServer> server(new AdminServer(std::move(socket), std::move(handler)));
  server->thread_ = std::thread([s = server.get()] { s->serve(); });
  return server;
}

AdminServer::AdminServer(std::unique_ptr<zmq::socket_t> socket, AdminHandler handler)
    : socket_(std::move(socket)), handler_(std::move(handler)),
      wake_fd_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}

AdminServer::~AdminServer() {
  stop();
  if (wake_fd_ >= 0)
    ::close(wake_fd_);
}

void AdminServer::stop() {
  stop_ = true;
  signalEventFd(wake_fd_);
  if (thread_.joinable())
    thread_.join();
  if (socket_) {
    socket_->close();
    socket_.reset();
  }
}

void AdminServer::serve() {
  nameThread("dn-admin");
  blockProgramSignals();
  while (!stop_.load()) {
    zmq::pollitem_t items[2] = {{socket_->handle(), 0, ZMQ_POLLIN, 0},
                                {nullptr, wake_fd_, ZMQ_POLLIN, 0}};
    pollSockets(items, 2, untilSignaled(wake_fd_));
    if (!(items[0].revents & ZMQ_POLLIN))
      continue;
    // [identity][empty delimiter of a REQ client, if any][request]
    std::vector<zmq::message_t> frames;
    for (bool more = true; more;) {
      zmq::message_t frame;
      if (!transport::recvRetrying(*socket_, frame, zmq::recv_flags::dontwait))
        break;
      more = frame.more();
      frames.push_back(std::move(frame));
    }
    if (frames.size() < 2 || frames.size() > 3)
      continue; // not a request of this protocol: nobody to answer sensibly
    json request = json::parse(frames.back().to_string_view(), nullptr, false);
    json answer;
    if (request.is_discarded())
      answer = adminError("the request is not JSON");
    else {
      try {
        answer = handler_(request);
      } catch (const std::exception &e) { // e.g. json type errors: an answer, not a crash
        answer = adminError(std::string("bad request: ") + e.what());
      }
    }
    // Texts from the wire (a node's error message) need not be UTF-8: replaced, not thrown.
    std::string text = answer.dump(-1, ' ', false, json::error_handler_t::replace);
    for (std::size_t i = 0; i + 1 < frames.size(); ++i) {
      zmq::message_t copy(frames[i].data(), frames[i].size());
      transport::sendRetrying(*socket_, copy, zmq::send_flags::sndmore);
    }
    zmq::message_t reply(text.data(), text.size());
    transport::sendRetrying(*socket_, reply, zmq::send_flags::none);
  }
}

} // namespace distnode::node
