// cluster_config.cpp - cluster.yaml: the nodes of a cluster and how they run a program.
#include "node/cluster_config.h"

#include <filesystem>

#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include <sched.h>

namespace distnode::node {

std::string ClusterConfig::whereIs(const NodeConfig &n) const {
  return (label == path ? path + ":" + std::to_string(n.line) : label) + ": node `" + n.name + "`";
}

int ClusterConfig::nodeIndex(const std::string &name) const {
  for (size_t i = 0; i < nodes.size(); ++i)
    if (nodes[i].name == name)
      return static_cast<int>(i);
  return -1;
}

namespace {

// A timeout beyond a day is a mistake (and would overflow the deadline arithmetic).
constexpr long kMaxTimeoutMs = 24L * 60 * 60 * 1000;
// The most CPUs a node may claim: it starts a worker thread for each (and the call server at
// most 1024 in all, the rest for threads whose calls wait).
constexpr int kMaxCpuCapacity = 512;
// Heartbeats go out five times per timeout; much faster than this is noise, not safety.
constexpr long kMinHeartbeatTimeoutMs = 100;

// The call endpoint's port + 1, or its path + ".control"; "" if there is no port + 1.
std::string defaultControlEndpoint(const std::string &call) {
  if (call.rfind("ipc://", 0) == 0)
    return call + ".control";
  auto colon = call.rfind(':');
  unsigned long port = std::stoul(call.substr(colon + 1));
  if (port >= 65535)
    return "";
  return call.substr(0, colon + 1) + std::to_string(port + 1);
}

// Thrown inside the parser only; converted to llvm::Error at the API boundary.
struct ConfigError {
  std::string message;
};

class Parser {
public:
  Parser(std::string path, const std::string &text) : path_(std::move(path)) {
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);)
      lines_.push_back(line);
  }

  [[noreturn]] void fail(const YAML::Node &at, const std::string &field,
                         const std::string &what) const {
    std::string where = path_;
    if (at.IsDefined())
      where += ":" + std::to_string(at.Mark().line >= 0 ? lineOf(at, field) : 1);
    throw ConfigError{where + ": " + field + ": " + what};
  }

  // The line of `at`, 1-based. An empty value (`cluster:` and nothing) is marked where the next
  // token starts, maybe lines below: its key's line, the nearest above that names it.
  int lineOf(const YAML::Node &at, const std::string &field) const {
    const int line = at.Mark().line;
    if (!at.IsNull())
      return line + 1;
    const std::string key = field.substr(field.find_last_of('.') + 1);
    const std::regex named("^\\s*(- )?" + std::regex_replace(key, std::regex(R"([\[\]])"), "") +
                           "\\s*:");
    for (int l = std::min(line, static_cast<int>(lines_.size()) - 1); l >= 0; --l)
      if (std::regex_search(lines_[l], named))
        return l + 1;
    return line + 1;
  }

  std::string where(const YAML::Node &at) const {
    return path_ + ":" + std::to_string(at.Mark().line + 1);
  }

  std::string str(const YAML::Node &n, const std::string &field) const {
    if (n.IsNull())
      fail(n, field, "no value; write one after the colon");
    if (!n.IsScalar())
      fail(n, field, "expected a string");
    return n.Scalar();
  }

  void onlyKeys(const YAML::Node &map, const std::string &field,
                const std::set<std::string> &allowed) const {
    std::set<std::string> seen;
    for (auto it = map.begin(); it != map.end(); ++it) {
      std::string key = it->first.Scalar();
      // YAML forbids a key twice in one map; the parser keeps one of them silently.
      if (!seen.insert(key).second)
        fail(it->first, field.empty() ? key : field + "." + key,
             "given twice; keep one `" + key + "`");
      if (!allowed.count(key)) {
        std::string list;
        for (const auto &a : allowed)
          list += (list.empty() ? "" : ", ") + a;
        fail(it->first, field.empty() ? key : field + "." + key,
             "unknown field (expected one of: " + list + ")");
      }
    }
  }

  // A duration field: a whole number of milliseconds from `min` to a day.
  std::chrono::milliseconds milliseconds(const YAML::Node &t, const std::string &field,
                                         long min) const {
    long ms = 0;
    try {
      ms = t.as<long>();
    } catch (const YAML::Exception &) {
      fail(t, field, "expected a whole number of milliseconds");
    }
    if (ms <= 0)
      fail(t, field, "must be positive (milliseconds)");
    if (ms < min)
      fail(t, field, "must be at least " + std::to_string(min));
    if (ms > kMaxTimeoutMs)
      fail(t, field, "must be at most " + std::to_string(kMaxTimeoutMs) + " (24 hours)");
    return std::chrono::milliseconds(ms);
  }

  void endpoint(const YAML::Node &n, const std::string &field, std::string &out) const {
    out = str(n, field);
    static const std::regex kTcp(R"(tcp://[A-Za-z0-9_.\-\[\]:]+:[0-9]{1,5})");
    static const std::regex kIpc(R"(ipc://.+)");
    if (!std::regex_match(out, kTcp) && !std::regex_match(out, kIpc))
      fail(n, field,
           "`" + out +
               "` is not a ZeroMQ endpoint; write tcp://host:port or "
               "ipc://path");
    if (out.rfind("tcp://", 0) == 0) {
      unsigned long port = std::stoul(out.substr(out.rfind(':') + 1)); // 1 to 5 digits
      if (port == 0 || port > 65535)
        fail(n, field,
             "port " + std::to_string(port) + " in `" + out +
                 "` is not a TCP port; use 1 to 65535");
    }
  }

  ClusterConfig parse(const YAML::Node &root) {
    ClusterConfig c;
    c.path = path_;
    c.label = path_;
    if (!root.IsMap())
      fail(root, "(top level)", "expected a map with `cluster` and `nodes`");
    onlyKeys(root, "",
             {"cluster", "nodes", "entry", "coordinator", "join_timeout_ms", "heartbeat_timeout_ms",
              "max_message_mb", "placement", "adapt"});
    if (!root["cluster"])
      fail(root, "cluster", "missing; name the cluster, e.g. `cluster: demo`");
    c.name = str(root["cluster"], "cluster");
    YAML::Node nodes = root["nodes"];
    if (!nodes || !nodes.IsSequence() || nodes.size() == 0)
      fail(nodes ? nodes : root, "nodes", "expected a list of at least one node");
    std::set<std::string> names;
    std::map<std::string, std::string> endpoints; // endpoint → the field that has it
    for (size_t i = 0; i < nodes.size(); ++i) {
      YAML::Node n = nodes[i];
      std::string field = "nodes[" + std::to_string(i) + "]";
      if (!n.IsMap())
        fail(n, field, "expected a map with `name` and `call`");
      onlyKeys(n, field, {"name", "call", "control", "admin", "capacity", "long_calls"});
      NodeConfig node;
      node.line = n.Mark().line + 1;
      if (!n["name"])
        fail(n, field + ".name", "missing; give the node a name, e.g. `name: n1`");
      node.name = str(n["name"], field + ".name");
      static const std::regex kName(R"([A-Za-z0-9_\-]{1,64})");
      if (!std::regex_match(node.name, kName))
        fail(n["name"], field + ".name",
             "`" + node.name + "` is not a node name (letters, digits, `_`, `-`)");
      if (!names.insert(node.name).second)
        fail(n["name"], field + ".name", "node `" + node.name + "` is listed twice");
      if (!n["call"])
        fail(n, field + ".call", "missing; the node's call endpoint, e.g. tcp://10.0.0.2:7000");
      endpoint(n["call"], field + ".call", node.call_endpoint);
      auto unique = [&](const YAML::Node &at, const std::string &what, const std::string &e,
                        const std::string &note) {
        auto [it, inserted] = endpoints.emplace(e, what + note);
        if (!inserted)
          fail(at, what, "endpoint `" + e + "` is also " + it->second + "; give each its own");
      };
      unique(n["call"], field + ".call", node.call_endpoint, "");
      if (n["control"]) {
        endpoint(n["control"], field + ".control", node.control_endpoint);
      } else {
        node.control_endpoint = defaultControlEndpoint(node.call_endpoint);
        if (node.control_endpoint.empty())
          fail(n["call"], field + ".call",
               "port 65535 leaves no room for the default control endpoint (port + 1); add "
               "`control: tcp://host:port`");
      }
      unique(n["control"] ? n["control"] : n["call"], field + ".control", node.control_endpoint,
             n["control"] ? "" : " (by default the call port + 1)");
      if (n["admin"]) {
        endpoint(n["admin"], field + ".admin", node.admin_endpoint);
        unique(n["admin"], field + ".admin", node.admin_endpoint, "");
      }
      if (YAML::Node cap = n["capacity"]) {
        if (!cap.IsMap())
          fail(cap, field + ".capacity", "expected a map such as `{cpu: 2.0}`");
        onlyKeys(cap, field + ".capacity", {"cpu"});
        if (cap["cpu"]) {
          try {
            node.cpu_capacity = cap["cpu"].as<double>();
          } catch (const YAML::Exception &) {
            fail(cap["cpu"], field + ".capacity.cpu", "expected a number");
          }
          if (!(node.cpu_capacity > 0))
            fail(cap["cpu"], field + ".capacity.cpu",
                 "must be positive (CPU seconds per second, e.g. 2.0)");
          if (node.cpu_capacity > kMaxCpuCapacity) // a node starts this many workers
            fail(cap["cpu"], field + ".capacity.cpu",
                 "must be at most " + std::to_string(kMaxCpuCapacity));
        }
      }
      if (n["long_calls"]) {
        std::string v = str(n["long_calls"], field + ".long_calls");
        if (v != "background" && v != "normal")
          fail(n["long_calls"], field + ".long_calls",
               "`" + v + "` is neither `background` nor `normal`");
        node.background_long_calls = v == "background";
      }
      c.nodes.push_back(std::move(node));
    }
    c.entry = c.nodes.front().name;
    if (root["entry"]) {
      c.entry = str(root["entry"], "entry");
      if (c.nodeIndex(c.entry) < 0)
        fail(root["entry"], "entry",
             "no node named `" + c.entry + "` in `nodes`; name one of the nodes listed there");
    }
    c.coordinator = c.entry;
    if (root["coordinator"]) {
      c.coordinator = str(root["coordinator"], "coordinator");
      if (c.nodeIndex(c.coordinator) < 0)
        fail(root["coordinator"], "coordinator",
             "no node named `" + c.coordinator +
                 "` in `nodes`; name one of the nodes listed there");
    }
    if (YAML::Node t = root["join_timeout_ms"])
      c.join_timeout = milliseconds(t, "join_timeout_ms", 1);
    if (YAML::Node m = root["max_message_mb"]) {
      long mb = 0;
      try {
        mb = m.as<long>();
      } catch (const YAML::Exception &) {
        fail(m, "max_message_mb", "expected a whole number of MiB");
      }
      if (mb < 1 || mb > 2047)
        fail(m, "max_message_mb", "must be from 1 to 2047 (FlatBuffers messages stay below 2 GiB)");
      c.max_call_bytes = static_cast<std::uint64_t>(mb) << 20;
    }
    if (YAML::Node t = root["heartbeat_timeout_ms"])
      c.heartbeat_timeout = milliseconds(t, "heartbeat_timeout_ms", kMinHeartbeatTimeoutMs);
    if (YAML::Node p = root["placement"])
      c.placement = placement(p, "placement", &c);
    if (YAML::Node a = root["adapt"])
      c.adapt = adapt(a);
    return c;
  }

  // `adapt:` {enabled, interval_ms, hysteresis, cooldown_ms, half_life_ms}.
  AdaptOptions adapt(const YAML::Node &a) const {
    AdaptOptions o;
    if (!a.IsMap())
      fail(a, "adapt",
           "expected a map (enabled, interval_ms, hysteresis, cooldown_ms, "
           "half_life_ms)");
    onlyKeys(a, "adapt", {"enabled", "interval_ms", "hysteresis", "cooldown_ms", "half_life_ms"});
    if (YAML::Node e = a["enabled"]) {
      try {
        o.enabled = e.as<bool>();
      } catch (const YAML::Exception &) {
        fail(e, "adapt.enabled", "expected true or false");
      }
    }
    if (YAML::Node t = a["interval_ms"])
      o.interval = milliseconds(t, "adapt.interval_ms", kMinAdaptIntervalMs);
    if (YAML::Node t = a["cooldown_ms"])
      o.cooldown_s = milliseconds(t, "adapt.cooldown_ms", 1).count() / 1000.0;
    if (YAML::Node t = a["half_life_ms"])
      o.half_life_s = milliseconds(t, "adapt.half_life_ms", 1).count() / 1000.0;
    if (YAML::Node h = a["hysteresis"]) {
      double v = -1;
      try {
        v = h.as<double>();
      } catch (const YAML::Exception &) {
        fail(h, "adapt.hysteresis", "expected a fraction, e.g. 0.05");
      }
      if (!(v >= 0 && v < 1))
        fail(h, "adapt.hysteresis", "must be at least 0 and below 1 (a fraction of the cost)");
      o.hysteresis = v;
    }
    return o;
  }

  std::vector<PlacementEntry> placement(const YAML::Node &p, const std::string &field,
                                        const ClusterConfig *c) {
    if (!p.IsMap())
      fail(p, field, "expected a map `function: node`");
    std::vector<PlacementEntry> out;
    std::set<std::string> functions;
    for (auto it = p.begin(); it != p.end(); ++it) {
      PlacementEntry e;
      e.function = it->first.Scalar();
      e.where = where(it->first);
      std::string at = field + "." + e.function;
      if (!functions.insert(e.function).second)
        fail(it->first, at, "`" + e.function + "` is placed twice; keep one entry");
      if (it->second.IsMap()) { // a load-balanced function's replicas: node: weight
        std::set<std::string> nodes;
        for (auto r = it->second.begin(); r != it->second.end(); ++r) {
          std::string node = r->first.Scalar();
          double weight = 0;
          try {
            weight = r->second.as<double>();
          } catch (const YAML::Exception &) {
            fail(r->second, at + "." + node, "expected a number (the replica's weight)");
          }
          // Weights travel as 32-bit floats: from one millionth to a million.
          if (!(weight >= 1e-6 && weight <= 1e6))
            fail(r->second, at + "." + node,
                 "a replica's weight must be a number from 0.000001 to 1000000");
          if (!nodes.insert(node).second)
            fail(r->first, at, "node `" + node + "` is named twice in one replica set");
          if (c && c->nodeIndex(node) < 0)
            fail(r->first, at, "no node named `" + node + "` in `nodes`");
          e.replicas.emplace_back(node, weight);
        }
        if (e.replicas.empty())
          fail(it->second, at, "expected a node, or a map `node: weight` of replicas");
      } else {
        if (!it->second.IsScalar() || it->second.Scalar().empty())
          fail(it->second, at,
               "expected a node name, or for a load-balanced function a map `node: weight` of "
               "its replicas");
        e.node = str(it->second, at);
        if (c && c->nodeIndex(e.node) < 0)
          fail(it->second, at, "no node named `" + e.node + "` in `nodes`");
      }
      out.push_back(std::move(e));
    }
    return out;
  }

private:
  std::string path_;
  std::vector<std::string> lines_; // the file's, to find a key's line
};

// The file's text, or why it cannot be read.
std::optional<std::string> readFile(const std::string &path, std::string &text) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    return path + ": is a directory, not a YAML file";
  std::ifstream in(path);
  if (!in)
    return path + ": cannot open: " + std::strerror(errno);
  std::stringstream s;
  s << in.rdbuf();
  text = s.str();
  return std::nullopt;
}

template <typename F> std::optional<std::string> guarded(const std::string &path, F &&body) {
  try {
    body();
    return std::nullopt;
  } catch (const ConfigError &e) {
    return e.message;
  } catch (const YAML::Exception &e) {
    return path + ":" + std::to_string(e.mark.line + 1) + ": not valid YAML: " + e.msg;
  }
}

} // namespace

std::optional<std::string> parseClusterConfig(const std::string &text, const std::string &path,
                                              ClusterConfig &out) {
  return guarded(path, [&] { out = Parser(path, text).parse(YAML::Load(text)); });
}

std::optional<std::string> readClusterConfig(const std::string &path, ClusterConfig &out) {
  std::string text;
  if (auto why = readFile(path, text))
    return why;
  return parseClusterConfig(text, path, out);
}

std::optional<std::string> readPlacementFile(const std::string &path,
                                             std::vector<PlacementEntry> &out) {
  std::string text;
  if (auto why = readFile(path, text))
    return why;
  return guarded(path, [&] {
    YAML::Node root = YAML::Load(text);
    out.clear();
    Parser parser(path, text);
    // A file written as cluster.yaml's `placement:` section, the section's key included.
    auto sectionLike = [](const YAML::Node &p) { // function: node, not a replica set's weights
      static const std::regex kNumber(R"([0-9.eE+\-]+)");
      if (!p.IsMap())
        return false;
      for (auto it = p.begin(); it != p.end(); ++it)
        if (it->second.IsScalar() && std::regex_match(it->second.Scalar(), kNumber))
          return false;
      return true;
    };
    if (root.IsMap() && root.size() == 1 && root["placement"] && sectionLike(root["placement"]))
      parser.fail(root, "placement",
                  "a --placement file maps functions to nodes at its top level (`fib: n1`), "
                  "without the `placement:` of cluster.yaml");
    if (root.IsDefined() && !root.IsNull())
      out = parser.placement(root, "placement", nullptr);
  });
}

std::string clusterShape(const ClusterConfig &config) {
  std::string text;
  for (const NodeConfig &n : config.nodes)
    text += "node " + n.name + " call " + n.call_endpoint + " control " + n.control_endpoint + "\n";
  return text + "entry " + config.entry + "\ncoordinator " + config.coordinator + "\n";
}

double cpuCapacity(const NodeConfig &node) {
  if (node.cpu_capacity > 0)
    return node.cpu_capacity;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
    return CPU_COUNT(&set);
  return std::max(1u, std::thread::hardware_concurrency());
}

std::string localClusterYaml(const std::vector<int> &ports, std::chrono::milliseconds join_timeout,
                             const std::string &admin_dir, int coordinator) {
  std::ostringstream y;
  y << "# generated by distnode --local\n"
    << "cluster: local\n"
    << "entry: n0\n"
    << "coordinator: n" << coordinator << "\n"
    << "join_timeout_ms: " << join_timeout.count() << "\n"
    << "nodes:\n";
  for (size_t i = 0; i + 1 < ports.size(); i += 2)
    y << "  - name: n" << i / 2 << "\n"
      << "    call: tcp://127.0.0.1:" << ports[i] << "\n"
      << "    control: tcp://127.0.0.1:" << ports[i + 1] << "\n"
      << (admin_dir.empty()
              ? ""
              : "    admin: ipc://" + admin_dir + "/n" + std::to_string(i / 2) + ".admin\n");
  return y.str();
}

} // namespace distnode::node
