// state_analysis.cpp - the state of each placement unit, and whether it can migrate.
#include "jit/state_analysis.h"

#include "jit/debug_types.h"

#include "llvm/IR/DataLayout.h"
#include "llvm/IR/DebugInfoMetadata.h"
#include "llvm/IR/DerivedTypes.h"
#include "llvm/IR/GlobalVariable.h"
#include "llvm/IR/Instructions.h"
#include "llvm/IR/Module.h"
#include "llvm/IR/Operator.h"

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

// Whether `u` computes its value from its operands' values (a cast, arithmetic, a select, a
// phi): an address in one of them is still one in it.
bool carriesValue(const llvm::Value *u) {
  return llvm::isa<llvm::CastInst>(u) || llvm::isa<llvm::BinaryOperator>(u) ||
         llvm::isa<llvm::SelectInst>(u) || llvm::isa<llvm::PHINode>(u);
}

// Whether `v` is (or is computed from, through casts, arithmetic, selects, phis and local
// variables) an address converted to an integer.
bool fromAddress(const llvm::Value *v, int depth = 0) {
  if (depth > 8 || !v)
    return false;
  if (llvm::isa<llvm::PtrToIntInst>(v))
    return true;
  if (auto *ce = llvm::dyn_cast<llvm::ConstantExpr>(v))
    return ce->getOpcode() == llvm::Instruction::PtrToInt ||
           llvm::any_of(ce->operands(),
                        [&](const llvm::Use &u) { return fromAddress(u, depth + 1); });
  if (auto *i = llvm::dyn_cast<llvm::Instruction>(v)) {
    if (carriesValue(i))
      return llvm::any_of(i->operands(),
                          [&](const llvm::Use &u) { return fromAddress(u, depth + 1); });
    if (auto *load = llvm::dyn_cast<llvm::LoadInst>(i)) // a local variable: what was stored in it
      if (auto *slot = llvm::dyn_cast<llvm::AllocaInst>(load->getPointerOperand()))
        for (const llvm::User *u : slot->users())
          if (auto *store = llvm::dyn_cast<llvm::StoreInst>(u);
              store && store->getPointerOperand() == slot &&
              fromAddress(store->getValueOperand(), depth + 1))
            return true;
  }
  return false;
}

// Whether `v` (loaded from a global) is converted to an address and used as one, through casts,
// arithmetic and local variables.
bool becomesAddress(const llvm::Value *v, int depth = 0) {
  if (depth > 8)
    return false;
  for (const llvm::User *u : v->users()) {
    if (llvm::isa<llvm::IntToPtrInst>(u))
      return true;
    if (auto *ce = llvm::dyn_cast<llvm::ConstantExpr>(u);
        ce && ce->getOpcode() == llvm::Instruction::IntToPtr)
      return true;
    if (carriesValue(u) && becomesAddress(u, depth + 1))
      return true;
    if (auto *store = llvm::dyn_cast<llvm::StoreInst>(u); store && store->getValueOperand() == v)
      if (auto *slot = llvm::dyn_cast<llvm::AllocaInst>(store->getPointerOperand()))
        for (const llvm::User *s : slot->users())
          if (llvm::isa<llvm::LoadInst>(s) && becomesAddress(s, depth + 1))
            return true;
  }
  return false;
}

// Whether the program keeps an address in `gv` as an integer: stores one there, or uses a value
// read from it as an address. Its bytes would then point into the old node's memory.
bool keepsAddressAsInteger(const llvm::GlobalVariable &gv) {
  std::vector<const llvm::Value *> work = {&gv};
  for (std::size_t k = 0; k < work.size() && k < 256; ++k)
    for (const llvm::User *u : work[k]->users()) {
      if (llvm::isa<llvm::GEPOperator>(u) || llvm::isa<llvm::BitCastOperator>(u)) {
        work.push_back(u);
      } else if (auto *store = llvm::dyn_cast<llvm::StoreInst>(u)) {
        if (store->getPointerOperand() == work[k] && fromAddress(store->getValueOperand()))
          return true;
      } else if (auto *load = llvm::dyn_cast<llvm::LoadInst>(u)) {
        if (!load->getType()->isPointerTy() && becomesAddress(load))
          return true;
      }
    }
  return false;
}

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
      } else if (why.empty() && keepsAddressAsInteger(*gv)) {
        why = "mutable global `" + gv->getName().str() +
              "` holds an address converted to an integer, which means nothing on another node";
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
