// profile_report.cpp - profiles as JSON, and merging the nodes' parts.
#include "node/profile_report.h"

#include <map>

namespace distnode::node {

nlohmann::json profileToJson(const profiler::ProfileSnapshot &s, const std::string &node) {
  nlohmann::json functions = nlohmann::json::array();
  for (const auto &f : s.functions)
    functions.push_back({{"name", f.name},
                         {"calls", f.calls},
                         {"samples", f.samples},
                         {"self_cpu_s", f.self_cpu_s},
                         {"calls_per_s", f.calls_per_s},
                         {"cpu_s_per_s", f.cpu_s_per_s}});
  nlohmann::json edges = nlohmann::json::array();
  for (const auto &e : s.edges)
    edges.push_back({{"caller", e.caller},
                     {"callee", e.callee},
                     {"calls", e.calls},
                     {"call_bytes", e.call_bytes},
                     {"reply_bytes", e.reply_bytes},
                     {"calls_per_s", e.calls_per_s},
                     {"bytes_per_s", e.bytes_per_s}});
  nlohmann::json remote = nlohmann::json::array();
  for (const auto &r : s.remote)
    remote.push_back({{"function", r.function},
                      {"calls", r.calls},
                      {"bytes", r.bytes},
                      {"round_trip_s_mean", r.meanRoundTripS()},
                      {"marshal_s_per_byte", r.marshalSPerByte()},
                      {"round_trip_s_total", r.round_trip_s},
                      {"marshal_s_total", r.marshal_s}});
  return {{"node", node},
          {"elapsed_s", s.elapsed_s},
          {"sample_period_s", s.sample_period_s},
          {"half_life_s", s.half_life_s},
          {"functions", functions},
          {"edges", edges},
          {"remote", remote}};
}

nlohmann::json mergeProfiles(const std::vector<nlohmann::json> &nodes) {
  std::map<std::pair<std::string, std::string>, nlohmann::json> edges;
  std::map<std::string, nlohmann::json> functions;
  auto sum = [](nlohmann::json &into, const nlohmann::json &from, const char *key) {
    if (!into.contains(key))
      into[key] = from.at(key);
    else if (from.at(key).is_number_unsigned())
      into[key] = into[key].get<std::uint64_t>() + from.at(key).get<std::uint64_t>();
    else
      into[key] = into[key].get<double>() + from.at(key).get<double>();
  };
  for (const auto &n : nodes) {
    for (const auto &e : n.at("edges")) {
      auto &m = edges[{e.at("caller"), e.at("callee")}];
      m["caller"] = e.at("caller");
      m["callee"] = e.at("callee");
      for (const char *k : {"calls", "call_bytes", "reply_bytes", "calls_per_s", "bytes_per_s"})
        sum(m, e, k);
    }
    for (const auto &f : n.at("functions")) {
      auto &m = functions[f.at("name")];
      m["name"] = f.at("name");
      for (const char *k : {"calls", "samples", "self_cpu_s", "calls_per_s", "cpu_s_per_s"})
        sum(m, f, k);
    }
  }
  nlohmann::json merged = {{"functions", nlohmann::json::array()},
                           {"edges", nlohmann::json::array()}};
  for (auto &[name, f] : functions)
    merged["functions"].push_back(f);
  for (auto &[key, e] : edges)
    merged["edges"].push_back(e);
  return merged;
}

nlohmann::json profileDocument(const std::vector<nlohmann::json> &nodes) {
  return {{"schema", kProfileSchema}, {"nodes", nodes}, {"merged", mergeProfiles(nodes)}};
}

} // namespace distnode::node
