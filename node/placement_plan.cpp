// placement_plan.cpp - the starting placement.
#include "node/placement_plan.h"

#include "llvm/Support/Error.h"

namespace distnode::node {

namespace {

llvm::Error fail(const std::string &message) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), message);
}

} // namespace

llvm::Expected<StartPlacement> planPlacement(const jit::ProgramAnalysis &analysis,
                                             const ClusterConfig &config,
                                             const std::vector<PlacementEntry> &entries,
                                             DefaultPlacement defaults) {
  const int entry = config.nodeIndex(config.entry);
  const int n = static_cast<int>(config.nodes.size());
  std::vector<int> unit_node(analysis.units.size(), entry);
  std::vector<std::string> unit_source(analysis.units.size());
  StartPlacement out;
  out.replicas.resize(analysis.units.size());

  int next = 0;
  for (std::size_t u = 0; u < analysis.units.size(); ++u) {
    const jit::PlacementUnit &unit = analysis.units[u];
    if (unit.load_balanced) { // on every node until the coordinator knows better
      for (int node = 0; node < n; ++node) {
        double cpu = config.nodes[node].cpu_capacity;
        out.replicas[u].push_back({static_cast<std::uint16_t>(node), float(cpu > 0 ? cpu : 1.0)});
      }
    } else if (unit.placement == jit::Placement::Pinned) {
      int node = config.nodeIndex(unit.pin_node);
      if (node < 0)
        return fail("`" + unit.functions.front() + "` is pinned to node `" + unit.pin_node +
                    "` (DIST_PIN), but " + config.label +
                    " has no such node; add it or "
                    "change the pin");
      unit_node[u] = node;
    } else if (unit.placement == jit::Placement::Placeable &&
               defaults == DefaultPlacement::Scatter) { // (load-balanced units: see above)
      unit_node[u] = (entry + 1 + next++) % n;
    }
  }

  for (const PlacementEntry &e : entries) {
    std::string at = e.where.empty() ? "placement" : e.where;
    const jit::FunctionInfo *f = analysis.find(e.function);
    if (!f)
      return fail(at + ": no function `" + e.function + "` in the program");
    if (f->placement == jit::Placement::Local)
      return fail(at + ": `" + e.function + "` cannot be placed: it is local (" + f->reason + ")");
    const jit::PlacementUnit &unit = analysis.units[f->unit];
    if (unit.load_balanced) { // its replica set: one node, or nodes with weights
      std::vector<std::pair<std::string, double>> set = e.replicas;
      if (set.empty())
        set.emplace_back(e.node, 1.0);
      out.replicas[f->unit].clear();
      for (const auto &[name, weight] : set) {
        int node = config.nodeIndex(name);
        if (node < 0)
          return fail(at + ": `" + e.function + "`: no node `" + name + "` in " + config.label);
        out.replicas[f->unit].push_back({static_cast<std::uint16_t>(node), float(weight)});
      }
      continue;
    }
    if (!e.replicas.empty())
      return fail(at + ": `" + e.function +
                  "` is not load-balanced (DIST_LOADBALANCED), so it runs on one node: name "
                  "that node instead of replicas");
    int node = config.nodeIndex(e.node);
    if (node < 0)
      return fail(at + ": `" + e.function + "`: no node `" + e.node + "` in " + config.label);
    if (unit.placement == jit::Placement::Home && node != entry)
      return fail(at + ": `" + e.function + "` must run on the entry node `" + config.entry +
                  "`: " + f->reason);
    if (unit.placement == jit::Placement::Pinned && node != unit_node[f->unit])
      return fail(at + ": `" + e.function + "` is pinned to `" + unit.pin_node + "`: " + f->reason);
    if (!unit_source[f->unit].empty() && unit_node[f->unit] != node)
      return fail(at + ": `" + e.function + "` shares state with `" + unit_source[f->unit] +
                  "` (unit `" + unit.name + "`), which is placed on `" +
                  config.nodes[unit_node[f->unit]].name + "`; place them on one node");
    unit_node[f->unit] = node;
    unit_source[f->unit] = e.function;
  }

  out.owners.assign(unit_node.begin(), unit_node.end());
  return out;
}

} // namespace distnode::node
