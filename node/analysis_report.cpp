// analysis_report.cpp - `distnode --analyze`: the program analysis as text or JSON.
#include "node/analysis_report.h"

#include <sstream>

namespace distnode::node {

namespace {

using jit::MarshalKind;
using jit::ValuePlan;

nlohmann::json planToJson(const ValuePlan &p) {
  nlohmann::json j = {{"name", p.name},
                      {"c_type", p.c_type},
                      {"kind", std::string(jit::toString(p.kind))},
                      {"size", p.size},
                      {"ir_args", p.ir_args}};
  if (!p.count.empty()) {
    j["count"] = p.count;
    if (p.count_param >= 0)
      j["count_param"] = p.count_param;
    else
      j["count_value"] = p.count_value;
  }
  if (!p.why.empty())
    j["why"] = p.why;
  return j;
}

std::string describePlan(const ValuePlan &p, const std::vector<ValuePlan> &params) {
  std::ostringstream s;
  s << p.c_type << " -> " << jit::toString(p.kind);
  switch (p.kind) {
  case MarshalKind::Integer:
  case MarshalKind::Float:
  case MarshalKind::StructByValue:
  case MarshalKind::StructPtrIn:
  case MarshalKind::StructPtrInOut:
    s << " " << p.size << " B";
    break;
  case MarshalKind::BufferIn:
  case MarshalKind::BufferOut:
  case MarshalKind::BufferInOut:
    s << " ["
      << (p.count_param >= 0 && p.count_param < int(params.size()) ? params[p.count_param].name
                                                                   : std::to_string(p.count_value))
      << " x " << p.size << " B]";
    break;
  case MarshalKind::Unmarshalable:
    s << ": " << p.why;
    break;
  default:
    break;
  }
  return s.str();
}

std::string groupName(const std::vector<jit::Group> &groups, int index) {
  return index >= 0 && index < int(groups.size()) ? groups[index].name : "";
}

std::string join(const std::vector<std::string> &items) {
  std::string out;
  for (const auto &i : items)
    out += (out.empty() ? "" : ", ") + i;
  return out.empty() ? "(none)" : out;
}

} // namespace

nlohmann::json analysisToJson(const jit::ProgramAnalysis &a, const std::string &program_path,
                              const std::string &sha256_hex) {
  nlohmann::json functions = nlohmann::json::array();
  for (const auto &f : a.functions) {
    nlohmann::json params = nlohmann::json::array();
    for (const auto &p : f.params)
      params.push_back(planToJson(p));
    nlohmann::json j = {{"name", f.name},
                        {"file", f.loc.file},
                        {"line", f.loc.line},
                        {"placement", std::string(jit::toString(f.placement))},
                        {"rule", std::string(jit::toString(f.rule))},
                        {"reason", f.reason},
                        {"load_balanced", f.load_balanced},
                        {"instructions", f.instructions},
                        {"marshalable", f.plan_complete},
                        {"remote_id", f.remote_id},
                        {"params", params},
                        {"result", planToJson(f.result)}};
    j["pin_node"] = f.pin_node.empty() ? nlohmann::json() : nlohmann::json(f.pin_node);
    j["io"] = f.io_evidence.empty() ? nlohmann::json() : nlohmann::json(f.io_evidence);
    std::string gp = groupName(a.gpin_groups, f.gpin_group);
    std::string gg = groupName(a.global_groups, f.global_group);
    j["gpin_group"] = gp.empty() ? nlohmann::json() : nlohmann::json(gp);
    j["global_group"] = gg.empty() ? nlohmann::json() : nlohmann::json(gg);
    functions.push_back(std::move(j));
  }
  nlohmann::json gpin = nlohmann::json::array();
  for (const auto &g : a.gpin_groups)
    gpin.push_back({{"name", g.name}, {"functions", g.functions}});
  nlohmann::json globals = nlohmann::json::array();
  for (const auto &g : a.global_groups)
    globals.push_back({{"name", g.name}, {"functions", g.functions}, {"globals", g.globals}});
  nlohmann::json units = nlohmann::json::array();
  for (const auto &u : a.units) {
    nlohmann::json state = nlohmann::json::array();
    for (const auto &v : u.state)
      state.push_back({{"global", v.name}, {"bytes", v.bytes}});
    units.push_back(
        {{"name", u.name},
         {"functions", u.functions},
         {"placement", std::string(jit::toString(u.placement))},
         {"pin_node", u.pin_node.empty() ? nlohmann::json() : nlohmann::json(u.pin_node)},
         {"stateful", u.stateful},
         {"state", state},
         {"state_bytes", u.state_bytes},
         {"migratable", u.migratable},
         {"migrate_why",
          u.migrate_why.empty() ? nlohmann::json() : nlohmann::json(u.migrate_why)}});
  }
  nlohmann::json edges = nlohmann::json::array();
  for (const auto &e : a.call_graph)
    edges.push_back({{"caller", e.caller}, {"callee", e.callee}, {"sites", e.sites}});
  nlohmann::json errors = nlohmann::json::array();
  for (const auto &e : a.errors)
    errors.push_back({{"file", e.loc.file},
                      {"line", e.loc.line},
                      {"function", e.function},
                      {"message", e.message}});
  return {{"schema", kAnalysisSchema},
          {"program", program_path},
          {"sha256", sha256_hex},
          {"functions", functions},
          {"gpin_groups", gpin},
          {"global_groups", globals},
          {"load_balanced", a.load_balanced},
          {"units", units},
          {"call_graph", edges},
          {"errors", errors}};
}

std::string analysisToText(const jit::ProgramAnalysis &a, const std::string &program_path) {
  std::ostringstream s;
  int counts[4] = {0, 0, 0, 0};
  for (const auto &f : a.functions)
    ++counts[static_cast<int>(f.placement)];
  s << program_path << ": " << a.functions.size() << " functions: " << counts[0] << " placeable, "
    << counts[1] << " local, " << counts[2] << " home, " << counts[3] << " pinned\n";
  for (const auto &f : a.functions) {
    s << "\n" << f.name;
    if (!f.loc.str().empty())
      s << "  (" << f.loc.str() << ")";
    s << "\n  " << jit::toString(f.placement);
    if (!f.pin_node.empty())
      s << " to " << f.pin_node;
    if (f.load_balanced)
      s << ", load-balanced";
    s << " [" << jit::toString(f.rule) << "]: " << f.reason << "\n";
    for (const auto &p : f.params)
      s << "  param " << p.name << ": " << describePlan(p, f.params) << "\n";
    s << "  result: " << describePlan(f.result, f.params) << "\n";
  }
  s << "\nGPin groups (each runs on one node):\n";
  for (const auto &g : a.gpin_groups)
    s << "  " << g.name << ": " << join(g.functions) << "\n";
  if (a.gpin_groups.empty())
    s << "  (none)\n";
  s << "Mutable-global groups (each runs on one node; the unit of state migration):\n";
  for (const auto &g : a.global_groups)
    s << "  " << g.name << ": globals " << join(g.globals) << "; functions " << join(g.functions)
      << "\n";
  if (a.global_groups.empty())
    s << "  (none)\n";
  s << "Placement units (what moves between nodes as a whole):\n";
  for (const auto &u : a.units) {
    s << "  " << u.name << " [" << jit::toString(u.placement)
      << (u.pin_node.empty() ? "" : " to " + u.pin_node) << (u.stateful ? ", stateful" : "")
      << "]: " << join(u.functions) << "\n";
    if (u.stateful && u.placement == jit::Placement::Placeable)
      s << "    state " << u.state_bytes << " B"
        << (u.migratable ? ": migrates with the unit" : ": cannot migrate: " + u.migrate_why)
        << "\n";
  }
  if (a.units.empty())
    s << "  (none)\n";
  s << "Load-balanced: " << join(a.load_balanced) << "\n";
  s << "Call graph into placeable functions:\n";
  for (const auto &e : a.call_graph)
    s << "  " << e.caller << " -> " << e.callee << " (" << e.sites
      << (e.sites == 1 ? " site" : " sites") << ")\n";
  if (a.call_graph.empty())
    s << "  (none)\n";
  if (!a.errors.empty()) {
    s << "Errors:\n";
    for (const auto &e : a.errors)
      s << "  " << e.str() << "\n";
  }
  return s.str();
}

} // namespace distnode::node
