// pointer_uses.cpp - what each function does with its pointer parameters.
#include "jit/pointer_uses.h"

#include "llvm/ADT/StringSet.h"
#include "llvm/IR/DebugInfoMetadata.h"
#include "llvm/IR/Function.h"
#include "llvm/IR/Instructions.h"
#include "llvm/IR/IntrinsicInst.h"
#include "llvm/IR/Module.h"

#include <vector>

namespace distnode::jit {

using llvm::dyn_cast;
using llvm::isa;

namespace {

// Externals that keep a pointer they are given beyond the call, or release it.
bool capturesArguments(llvm::StringRef name) {
  static const llvm::StringSet<> kCapturing = {"free",   "realloc",        "setvbuf",
                                               "setbuf", "putenv",         "strtok",
                                               "atexit", "pthread_create", "pthread_setspecific"};
  return kCapturing.contains(name);
}

std::string at(const llvm::Instruction &i) {
  if (const llvm::DILocation *loc = i.getDebugLoc().get())
    return " (" + loc->getFilename().str() + ":" + std::to_string(loc->getLine()) + ")";
  return " (in `" + i.getFunction()->getName().str() + "`)";
}

// A local variable of the function that holds pointers and nothing else looks at: an alloca
// used only as the address of loads and stores. What is stored there is loaded back unchanged,
// so loads from it carry the stored pointer (this is the unoptimized IR's `p.addr`).
bool isPrivateSlot(const llvm::Value *v) {
  auto *slot = dyn_cast<llvm::AllocaInst>(v);
  if (!slot)
    return false;
  for (const llvm::User *u : slot->users()) {
    if (auto *ld = dyn_cast<llvm::LoadInst>(u); ld && ld->getPointerOperand() == slot)
      continue;
    if (auto *st = dyn_cast<llvm::StoreInst>(u);
        st && st->getPointerOperand() == slot && st->getValueOperand() != slot)
      continue;
    if (auto *ii = dyn_cast<llvm::IntrinsicInst>(u);
        ii && (ii->isLifetimeStartOrEnd() || isa<llvm::DbgInfoIntrinsic>(ii)))
      continue;
    return false;
  }
  return true;
}

using SummaryLookup = std::function<const PointerUse &(const llvm::Function &, unsigned)>;

// Follows one pointer argument through the values derived from it. A value is *exact* when it
// is the argument itself (through casts and private slots), *interior* when it may point
// anywhere inside the object (a field) or was merged with other pointers.
class Walker {
public:
  explicit Walker(const SummaryLookup &summary) : summary_(summary) {}

  PointerUse run(const llvm::Argument &arg) {
    push(&arg, true);
    while (!work_.empty()) {
      auto [v, exact] = work_.back();
      work_.pop_back();
      if (visited_[v] != exact) // visited again as interior since it was queued
        exact = false;
      for (const llvm::Use &use : v->uses())
        visit(use, exact);
    }
    return result_;
  }

private:
  void push(const llvm::Value *v, bool exact) {
    auto [it, inserted] = visited_.emplace(v, exact);
    if (inserted) {
      work_.push_back({v, exact});
    } else if (it->second && !exact) {
      it->second = false;
      work_.push_back({v, false});
    }
  }

  // `how` is completed with where `i` is, unless it says so already (`located`).
  void indexed(const llvm::Instruction &i, const std::string &how, bool located = false) {
    if (!result_.indexed) {
      result_.indexed = true;
      result_.indexed_how = located ? how : how + at(i);
    }
  }
  void escapes(const llvm::Instruction &i, const std::string &how, bool located = false) {
    if (!result_.escapes) {
      result_.escapes = true;
      result_.escape_how = located ? how : how + at(i);
    }
  }
  void unknown(const llvm::Instruction &i, const std::string &how) {
    indexed(i, how);
    escapes(i, how);
  }

  void visit(const llvm::Use &use, bool exact) {
    auto *user = dyn_cast<llvm::Instruction>(use.getUser());
    if (!user)
      return; // only instructions use arguments and instructions
    const llvm::Value *v = use.get();
    if (auto *gep = dyn_cast<llvm::GetElementPtrInst>(user)) {
      if (gep->getPointerOperand() != v)
        return unknown(*gep, "is used as an index");
      if (exact && gep->hasAllZeroIndices())
        return push(gep, true);
      auto *first = dyn_cast<llvm::ConstantInt>(gep->getOperand(1));
      if (!first)
        indexed(*gep, "is indexed with a non-constant offset");
      else if (!first->isZero())
        indexed(*gep, "is offset past its first element");
      return push(gep, false);
    }
    if (isa<llvm::LoadInst>(user))
      return; // only a pointer operand can be a pointer argument's use
    if (auto *st = dyn_cast<llvm::StoreInst>(user)) {
      if (st->getValueOperand() != v)
        return; // written through: fine
      const llvm::Value *slot = st->getPointerOperand();
      if (!isPrivateSlot(slot))
        return escapes(*st, "is stored to memory");
      for (const llvm::User *u : slot->users())
        if (auto *ld = dyn_cast<llvm::LoadInst>(u))
          push(ld, exact);
      return;
    }
    if (auto *rmw = dyn_cast<llvm::AtomicRMWInst>(user)) {
      if (rmw->getValOperand() == v)
        escapes(*rmw, "is stored to memory");
      return;
    }
    if (auto *cx = dyn_cast<llvm::AtomicCmpXchgInst>(user)) {
      if (cx->getPointerOperand() != v)
        escapes(*cx, "is stored to memory");
      return;
    }
    if (auto *call = dyn_cast<llvm::CallBase>(user))
      return visitCall(*call, use, exact);
    if (isa<llvm::ReturnInst>(user))
      return escapes(*user, "is returned");
    if (isa<llvm::BitCastInst>(user) || isa<llvm::AddrSpaceCastInst>(user))
      return push(user, exact);
    if (isa<llvm::PHINode>(user) || isa<llvm::SelectInst>(user))
      return push(user, false);
    if (isa<llvm::ICmpInst>(user))
      return;
    if (isa<llvm::PtrToIntInst>(user))
      return unknown(*user, "is converted to an integer");
    unknown(*user, std::string("is used by a `") + user->getOpcodeName() + "` instruction");
  }

  void visitCall(const llvm::CallBase &call, const llvm::Use &use, bool exact) {
    if (call.isCallee(&use))
      return unknown(call, "is called");
    if (auto *ii = dyn_cast<llvm::IntrinsicInst>(&call)) {
      if (ii->isLifetimeStartOrEnd() || ii->isAssumeLikeIntrinsic() ||
          isa<llvm::DbgInfoIntrinsic>(ii))
        return;
      if (auto *mem = dyn_cast<llvm::MemIntrinsic>(ii))
        return copied(call, mem->getLength(), exact);
      return unknown(call, "is passed to `" + ii->getCalledFunction()->getName().str() + "`");
    }
    unsigned k = call.getArgOperandNo(&use);
    const llvm::Function *callee = call.getCalledFunction();
    if (!callee)
      return unknown(call, "is passed to an indirect call");
    std::string name = callee->getName().str();
    if (call.isByValArgument(k)) {
      if (exact)
        extent(callee->getDataLayout().getTypeAllocSize(call.getParamByValType(k)));
      return;
    }
    if (callee->isDeclaration() || callee->hasAvailableExternallyLinkage()) {
      if (capturesArguments(name))
        return escapes(call, "is passed to `" + name + "`, which keeps or frees it");
      if ((name == "memcpy" || name == "memmove" || name == "memset") && call.arg_size() == 3)
        return copied(call, call.getArgOperand(2), exact);
      // The C library reads or writes through it, how far is not known here; a pointer it
      // returns (strchr, bsearch...) may point into the same object.
      indexed(call, "is passed to `" + name + "`");
      if (call.getType()->isPointerTy())
        push(&call, false);
      return;
    }
    if (k >= callee->arg_size())
      return unknown(call, "is passed to `" + name + "` as a variadic argument");
    const PointerUse &s = summary_(*callee, k);
    std::string passed = "is passed to `" + name + "`" + at(call) + ", where it ";
    if (s.indexed)
      indexed(call, passed + s.indexed_how, true);
    if (s.escapes)
      escapes(call, passed + s.escape_how, true);
    if (exact)
      extent(s.extent);
  }

  void copied(const llvm::CallBase &call, const llvm::Value *length, bool exact) {
    auto *n = dyn_cast<llvm::ConstantInt>(length);
    if (!n)
      return indexed(call, "is copied with a run-time length");
    if (exact)
      extent(n->getZExtValue());
  }

  void extent(std::uint64_t bytes) { result_.extent = std::max(result_.extent, bytes); }

  const SummaryLookup &summary_;
  PointerUse result_;
  std::map<const llvm::Value *, bool> visited_;
  std::vector<std::pair<const llvm::Value *, bool>> work_;
};

bool sameFacts(const PointerUse &a, const PointerUse &b) {
  return a.indexed == b.indexed && a.escapes == b.escapes && a.extent == b.extent;
}

} // namespace

PointerUses::PointerUses(const llvm::Module &module) {
  unknown_.indexed = unknown_.escapes = true;
  unknown_.indexed_how = unknown_.escape_how = "is passed to code outside the program";
  std::vector<const llvm::Argument *> args;
  for (const llvm::Function &f : module) {
    if (f.isDeclaration() || f.hasAvailableExternallyLinkage())
      continue;
    for (const llvm::Argument &a : f.args())
      if (a.getType()->isPointerTy()) {
        args.push_back(&a);
        uses_[{&f, a.getArgNo()}] = {};
      }
  }
  SummaryLookup lookup = [this](const llvm::Function &f, unsigned k) -> const PointerUse & {
    return of(f, k);
  };
  // Facts only grow (flags turn on, extents grow to constants of the program), so iterating
  // to a fixed point over recursive calls terminates.
  for (bool changed = true; changed;) {
    changed = false;
    for (const llvm::Argument *a : args) {
      PointerUse now = Walker(lookup).run(*a);
      PointerUse &old = uses_[{a->getParent(), a->getArgNo()}];
      if (!sameFacts(now, old)) {
        old = std::move(now);
        changed = true;
      }
    }
  }
}

const PointerUse &PointerUses::of(const llvm::Function &fn, unsigned arg) const {
  auto it = uses_.find({&fn, arg});
  return it == uses_.end() ? unknown_ : it->second;
}

} // namespace distnode::jit
