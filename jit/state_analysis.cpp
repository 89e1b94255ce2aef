// state_analysis.cpp - the state of each placement unit, and whether it can migrate.
#include "jit/state_analysis.h"

#include "jit/debug_types.h"

#include "llvm/IR/DataLayout.h"
#include "llvm/IR/DebugInfoMetadata.h"
#include "llvm/IR/DerivedTypes.h"
#include "llvm/IR/GlobalVariable.h"
#include "llvm/IR/Module.h"

namespace distnode::jit {

bool holdsPointer(const llvm::Type *type) {
  if (type->isPointerTy())
    return true;
  if (auto *s = llvm::dyn_cast<llvm::StructType>(type)) {
    for (const llvm::Type *e : s->elements())
      if (holdsPointer(e))
        return true;
    return false;
  }
  if (auto *a = llvm::dyn_cast<llvm::ArrayType>(type))
    return holdsPointer(a->getElementType());
  if (auto *v = llvm::dyn_cast<llvm::VectorType>(type))
    return holdsPointer(v->getElementType());
  return false;
}

namespace {

// The global's C type as written, from debug info, or "".
std::string cType(const llvm::GlobalVariable &gv) {
  llvm::SmallVector<llvm::DIGlobalVariableExpression *, 1> dis;
  gv.getDebugInfo(dis);
  for (auto *e : dis)
    if (const llvm::DIType *t = e->getVariable()->getType())
      return renderType(t);
  return "";
}

} // namespace

void describeUnitState(const llvm::Module &module,
                       const std::vector<std::vector<const llvm::GlobalVariable *>> &globals,
                       const std::vector<std::vector<std::string>> &gpins,
                       std::vector<PlacementUnit> &units) {
  const llvm::DataLayout &dl = module.getDataLayout();
  for (std::size_t u = 0; u < units.size(); ++u) {
    PlacementUnit &unit = units[u];
    unit.state.clear();
    unit.state_bytes = 0;
    std::string why;
    for (const llvm::GlobalVariable *gv :
         u < globals.size() ? globals[u] : std::vector<const llvm::GlobalVariable *>{}) {
      std::uint64_t bytes = dl.getTypeAllocSize(gv->getValueType()).getFixedValue();
      unit.state.push_back({gv->getName().str(), bytes});
      unit.state_bytes += bytes;
      if (why.empty() && holdsPointer(gv->getValueType())) {
        std::string type = cType(*gv);
        why = "mutable global `" + gv->getName().str() + "`" +
              (type.empty() ? "" : " (`" + type + "`)") +
              " holds a pointer, which means nothing on another node";
      }
    }
    if (why.empty() && u < gpins.size() && !gpins[u].empty())
      why = "handles GPin objects of `" + gpins[u].front() +
            "`, which live in the heap of the node that created them";
    // Only units the placement may move migrate: a home or pinned unit stays on its node.
    bool placeable = unit.placement == Placement::Placeable;
    unit.migratable = placeable && unit.stateful && why.empty();
    unit.migrate_why = placeable && unit.stateful ? why : "";
  }
}

} // namespace distnode::jit
