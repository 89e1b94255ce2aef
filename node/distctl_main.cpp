// distctl_main.cpp - the `distctl` command: inspect and steer a running distnode cluster through
// its admin socket (docs/admin-protocol.md). Links no LLVM.
//
//   distctl [--endpoint E | --cluster cluster.yaml [--node NAME]] [--json] COMMAND [ARGS]
//
// Errors are one line on stderr, "distctl: error: ...": exit code 1 when the cluster refused
// the request, 2 for a bad command line or an unreachable node.
#include "node/admin_client.h"
#include "node/cli_checks.h"
#include "node/cluster_config.h"

#include <CLI/CLI.hpp>
#include <zmq.hpp>

#include <algorithm>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <sstream>
#include <thread>

namespace {

using nlohmann::json;

int fail(const std::string &message, int code = 2) {
  std::cerr << "distctl: error: " << message << "\n";
  return code;
}

// A table with left-aligned columns, for people.
class Table {
public:
  explicit Table(std::vector<std::string> header) { rows_.push_back(std::move(header)); }
  void add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  void print(std::ostream &out) const {
    std::vector<std::size_t> width;
    for (const auto &r : rows_)
      for (std::size_t c = 0; c < r.size(); ++c) {
        width.resize(std::max(width.size(), r.size()));
        width[c] = std::max(width[c], r[c].size());
      }
    for (const auto &r : rows_) {
      std::string line;
      for (std::size_t c = 0; c < r.size(); ++c)
        line += r[c] + (c + 1 < r.size() ? std::string(width[c] - r[c].size() + 2, ' ') : "");
      out << line << "\n";
    }
  }

private:
  std::vector<std::vector<std::string>> rows_;
};

std::string str(const json &j) {
  if (j.is_string())
    return j.get<std::string>();
  if (j.is_null())
    return "-";
  if (j.is_boolean())
    return j.get<bool>() ? "yes" : "no";
  if (j.is_number_float()) { // no exponents: 1613830, 0.146, 61.237
    double v = j.get<double>();
    char buffer[64];
    if (v == std::floor(v) && std::fabs(v) < 1e15)
      std::snprintf(buffer, sizeof buffer, "%.0f", v);
    else
      std::snprintf(buffer, sizeof buffer, "%.3f", v);
    return buffer;
  }
  return j.dump();
}

std::string joined(const json &list) {
  std::string out;
  for (const auto &item : list)
    out += (out.empty() ? "" : ", ") + str(item);
  return out;
}

// Where a unit of a `placement` or `profile` answer runs: its node, or for a load-balanced unit
// its replicas with their shares ("n0 50%, n1 50%").
std::string whereText(const json &u) {
  if (!u.contains("replicas") || !u["replicas"].is_array())
    return str(u["node"]);
  std::string where;
  for (const auto &r : u["replicas"]) {
    char share[32];
    std::snprintf(share, sizeof share, " %.0f%%", 100.0 * r["share"].get<double>());
    where += (where.empty() ? "" : ", ") + str(r["node"]) + share;
  }
  return where;
}

void printMoves(const json &a, std::ostream &out) {
  if (a.value("changed", false)) {
    for (const auto &m : a["moves"])
      out << str(m["why"]) << "\n";
    if (a.contains("replica_changes"))
      for (const auto &r : a["replica_changes"])
        out << str(r) << "\n";
    out << "placement epoch " << str(a["epoch"]) << " in effect\n";
  } else {
    out << "nothing moved (" << str(a.value("reason", json("no change"))) << "); epoch "
        << str(a["epoch"]) << "\n";
  }
}

// The human form of an answer.
void printAnswer(const std::string &command, const json &a, std::ostream &out) {
  if (command == "status") {
    out << "cluster " << str(a["cluster"]) << ", coordinator " << str(a["coordinator"])
        << ", placement epoch " << str(a["epoch"]) << ", up " << str(a["uptime_s"]) << " s\n";
    const json &o = a["adapt"];
    out << "adaptation " << (o.value("enabled", false) ? "on" : "frozen") << ": every "
        << str(o["interval_ms"]) << " ms, hysteresis " << str(o["hysteresis"]) << ", cool-down "
        << str(o["cooldown_ms"]) << " ms\n\n";
    Table t({"NODE", "CPU CAPACITY", "CPU USED (s/s)", "CALLS/S", "UNITS"});
    for (const auto &n : a["nodes"])
      t.add({str(n["name"]), str(n["capacity_cpu"]), str(n["cpu_s_per_s"]), str(n["calls_per_s"]),
             str(n["units"])});
    t.print(out);
  } else if (command == "placement") {
    out << "placement epoch " << str(a["epoch"]) << "\n\n";
    Table t({"UNIT", "NODE", "MOVABLE", "WHY"});
    for (const auto &u : a["units"]) {
      std::string why = u["movable"].get<bool>() ? str(u["last_move"]) : str(u["why_fixed"]);
      if (!u["pinned_to"].is_null())
        why = "pinned to " + str(u["pinned_to"]) + " by the operator" + (why.empty() ? "" : "; ") +
              why;
      t.add(
          {str(u["unit"]) + (u["functions"].size() > 1 ? " (" + joined(u["functions"]) + ")" : ""),
           whereText(u), str(u["movable"]), why.empty() ? "-" : why});
    }
    t.print(out);
  } else if (command == "profile") {
    Table units({"UNIT", "NODE", "CPU (s/s)", "CALLS IN/S"});
    for (const auto &u : a["units"])
      units.add({str(u["unit"]), whereText(u), str(u["cpu_s_per_s"]), str(u["calls_per_s"])});
    units.print(out);
    out << "\n";
    Table edges({"CALLER", "CALLEE", "CALLS/S", "BYTES/S", "REMOTE"});
    for (const auto &e : a["edges"])
      edges.add({str(e["caller"]), str(e["callee"]), str(e["calls_per_s"]), str(e["bytes_per_s"]),
                 str(e["remote"])});
    edges.print(out);
    out << "\n";
    Table links({"FROM", "TO", "LATENCY (us)", "BANDWIDTH (MB/s)"});
    for (const auto &l : a["links"])
      links.add({str(l["from"]), str(l["to"]), str(l["latency_us"]), str(l["bandwidth_mb_s"])});
    links.print(out);
    const json &c = a["call_costs"];
    out << "\nmarshaling: " << str(c["marshal_us_per_call"]) << " us per call, "
        << str(c["marshal_ns_per_byte"]) << " ns per byte"
        << (c["measured"].get<bool>() ? " (measured)" : " (defaults: no remote call yet)") << "\n";
  } else if (command == "history") {
    for (const auto &h : a["entries"]) {
      out << "epoch " << str(h["epoch"]) << " at " << str(h["at_s"]) << " s (" << str(h["trigger"])
          << "): " << str(h["reason"]);
      if (h["predicted_gain_ms_per_s"].get<double>() > 0)
        out << "; predicted gain " << str(h["predicted_gain_ms_per_s"]) << " ms/s";
      out << "\n";
      for (const auto &m : h["moves"])
        out << "  " << str(m) << "\n";
    }
  } else if (command == "graph") {
    out << a["dot"].get<std::string>();
  } else if (command == "repartition" || command == "move" || command == "drain" ||
             command == "undrain" || (command == "pin" && a.contains("changed"))) {
    printMoves(a, out);
  } else if (command == "unpin") {
    out << str(a["unit"]) << " unpinned\n";
  } else if (command == "freeze" || command == "thaw" || command == "set") {
    const json &o = a["adapt"];
    out << "adaptation " << (o.value("enabled", false) ? "on" : "frozen") << ": every "
        << str(o["interval_ms"]) << " ms, hysteresis " << str(o["hysteresis"]) << ", cool-down "
        << str(o["cooldown_ms"]) << " ms, half-life " << str(o["half_life_ms"]) << " ms\n";
  } else {
    out << a.dump(2) << "\n";
  }
}

volatile std::sig_atomic_t interrupted = 0;

} // namespace

int main(int argc, char **argv) {
  std::string endpoint, cluster, node_name;
  bool as_json = false;
  long timeout_ms = 5000;
  long top_interval_ms = 1000;
  long top_iterations = 0;
  std::vector<std::string> words;
  CLI::App app{"distctl: inspect and steer a running distnode cluster through its admin socket."};
  auto *ep = app.add_option("--endpoint", endpoint, "a node's admin endpoint (tcp:// or ipc://)");
  app.add_option("--cluster", cluster,
                 "cluster.yaml: talk to the coordinator's admin endpoint (or --node's)")
      ->excludes(ep);
  app.add_option("--node", node_name, "with --cluster: talk to this node (it forwards)");
  app.add_flag("--json", as_json, "print the answer as JSON (for scripts)");
  app.add_option("--timeout-ms", timeout_ms, "how long to wait for an answer")
      ->capture_default_str()
      ->transform(distnode::node::wholeNumber(1, 24L * 60 * 60 * 1000));
  app.add_option("--interval-ms", top_interval_ms, "with top: refresh period")
      ->capture_default_str()
      ->transform(distnode::node::wholeNumber(1, 24L * 60 * 60 * 1000));
  app.add_option("--iterations", top_iterations, "with top: stop after this many views (0: never)")
      ->transform(distnode::node::wholeNumber(0, 1000000000));
  // The commands and their arguments: the help, the check of a command's name and its usage
  // line come from here.
  struct Command {
    const char *name, *args;
  };
  static const std::vector<Command> kCommands = {
      {"status", ""},        {"placement", ""},       {"profile", ""},
      {"history", ""},       {"graph", ""},           {"repartition", ""},
      {"move", "UNIT NODE"}, {"pin", "UNIT NODE"},    {"unpin", "UNIT"},
      {"drain", "NODE"},     {"undrain", "NODE"},     {"freeze", ""},
      {"thaw", ""},          {"set", "KEY=VALUE..."}, {"top", ""}};
  static const char *kSettings = "interval_ms, hysteresis, cooldown_ms, half_life_ms";
  auto usage = [](const Command &c) { return std::string(c.name) + (*c.args ? " " : "") + c.args; };
  std::string synopsis;
  for (const auto &c : kCommands)
    synopsis += (synopsis.empty() ? "" : " | ") + usage(c);
  app.add_option("command", words, synopsis)->required();
  app.footer(std::string("Settings for `set`: ") + kSettings + ".");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp &e) {
    return app.exit(e);
  } catch (const CLI::ParseError &e) {
    return fail(std::string(e.what()) + "; see distctl --help");
  }

  auto known = std::find_if(kCommands.begin(), kCommands.end(),
                            [&](const Command &c) { return words.front() == c.name; });
  if (known == kCommands.end()) {
    std::string list;
    for (const auto &c : kCommands)
      list += (list.empty() ? "" : ", ") + std::string(c.name);
    return fail("unknown command `" + words.front() + "`; the commands are " + list);
  }

  if (endpoint.empty()) {
    if (cluster.empty())
      return fail("say where the cluster is: --endpoint E or --cluster cluster.yaml");
    distnode::node::ClusterConfig config;
    if (auto why = distnode::node::readClusterConfig(cluster, config))
      return fail(*why);
    std::string name = node_name.empty() ? config.coordinator : node_name;
    int index = config.nodeIndex(name);
    if (index < 0)
      return fail(cluster + ": no node named `" + name + "`");
    endpoint = config.nodes[index].admin_endpoint;
    if (endpoint.empty())
      return fail(cluster + ":" + std::to_string(config.nodes[index].line) + ": node `" + name +
                  "` has no `admin:` endpoint; add one, e.g. admin: ipc:///run/distnode/" + name +
                  ".admin");
  }

  const std::string command = words.front();
  std::vector<std::string> args(words.begin() + 1, words.end());
  auto need = [&](std::size_t n) -> std::optional<int> {
    if (args.size() != n)
      return fail("usage: distctl " + usage(*known));
    return std::nullopt;
  };
  json request = {{"command", command == "top" ? "placement" : command}};
  if (command == "move" || command == "pin") {
    if (auto bad = need(2))
      return *bad;
    request["unit"] = args[0];
    request["node"] = args[1];
  } else if (command == "unpin") {
    if (auto bad = need(1))
      return *bad;
    request["unit"] = args[0];
  } else if (command == "drain" || command == "undrain") {
    if (auto bad = need(1))
      return *bad;
    request["node"] = args[0];
  } else if (command == "set") {
    if (args.empty())
      return fail("usage: distctl " + usage(*known) + " (" + kSettings + ")");
    for (const auto &a : args) {
      auto eq = a.find('=');
      char *end = nullptr;
      double value = eq == std::string::npos ? 0 : std::strtod(a.c_str() + eq + 1, &end);
      if (eq == std::string::npos || eq == 0 || !end || *end != '\0' || end == a.c_str() + eq + 1)
        return fail("`" + a + "`: write KEY=NUMBER, e.g. interval_ms=500");
      request[a.substr(0, eq)] = value;
    }
  } else if (!args.empty()) {
    return fail("`" + command + "` takes no arguments");
  }

  // An ipc:// socket is a file while its node runs: none, no node (no need to wait for one).
  if (endpoint.rfind("ipc://", 0) == 0 && !std::filesystem::exists(endpoint.substr(6)))
    return fail("nothing listens at " + endpoint + " (no such socket file); is the node running?");
  zmq::context_t context;
  auto ask = [&](const json &r) {
    return distnode::node::adminRequest(context, endpoint, r,
                                        std::chrono::milliseconds(timeout_ms));
  };

  if (command == "top") {
    std::signal(SIGINT, [](int) { interrupted = 1; });
    std::size_t seen_history = 0;
    std::vector<std::string> moves;
    for (long i = 0; !interrupted && (top_iterations == 0 || i < top_iterations); ++i) {
      if (i > 0)
        std::this_thread::sleep_for(std::chrono::milliseconds(top_interval_ms));
      json status = ask({{"command", "status"}});
      json profile = ask({{"command", "profile"}});
      json placement = ask({{"command", "placement"}});
      json history = ask({{"command", "history"}});
      for (const json *a : {&status, &profile, &placement, &history})
        if (!a->value("ok", false))
          return fail(a->value("error", std::string("no answer")));
      const json &entries = history["entries"];
      for (; seen_history < entries.size(); ++seen_history)
        for (const auto &m : entries[seen_history]["moves"])
          moves.push_back("epoch " + str(entries[seen_history]["epoch"]) + ": " + str(m));
      if (as_json) {
        std::cout << json{{"status", status}, {"profile", profile}, {"placement", placement}}.dump()
                  << std::endl;
        continue;
      }
      std::ostringstream view;
      if (isatty(STDOUT_FILENO))
        view << "\033[H\033[2J";
      printAnswer("status", status, view);
      view << "\n";
      // Hot edges first.
      json edges = profile["edges"];
      std::sort(edges.begin(), edges.end(), [](const json &a, const json &b) {
        return a["calls_per_s"].get<double>() > b["calls_per_s"].get<double>();
      });
      Table hot({"HOT EDGE", "CALLS/S", "BYTES/S", "REMOTE"});
      for (std::size_t e = 0; e < edges.size() && e < 10; ++e)
        hot.add({str(edges[e]["caller"]) + " → " + str(edges[e]["callee"]),
                 str(edges[e]["calls_per_s"]), str(edges[e]["bytes_per_s"]),
                 str(edges[e]["remote"])});
      hot.print(view);
      view << "\n";
      Table where({"UNIT", "NODE", "CPU (s/s)"});
      for (const auto &u : profile["units"])
        where.add({str(u["unit"]), whereText(u), str(u["cpu_s_per_s"])});
      where.print(view);
      view << "\nrecent moves:\n";
      for (std::size_t m = moves.size() > 8 ? moves.size() - 8 : 0; m < moves.size(); ++m)
        view << "  " << moves[m] << "\n";
      std::cout << view.str() << std::flush;
    }
    return 0;
  }

  json answer = ask(request);
  if (!answer.value("ok", false)) {
    std::string error = answer.value("error", std::string("the answer has no error text"));
    // Unreachable (our own message) vs refused by the cluster.
    bool unreachable = error.rfind("no answer from", 0) == 0 || error.rfind("cannot reach", 0) == 0;
    return fail(error, unreachable ? 2 : 1);
  }
  if (as_json)
    std::cout << answer.dump(2) << "\n";
  else
    printAnswer(command, answer, std::cout);
  return 0;
}
