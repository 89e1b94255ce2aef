// pointer_uses.cpp - what each function does with its pointer parameters.
#include "jit/pointer_uses.h"

#include "llvm/ADT/StringSet.h"
#include "llvm/IR/DebugInfoMetadata.h"
#include "llvm/IR/Function.h"
#include "llvm/IR/GetElementPtrTypeIterator.h"
#include "llvm/IR/InstIterator.h"
#include "llvm/IR/Instructions.h"
#include "llvm/IR/IntrinsicInst.h"
#include "llvm/IR/Module.h"

#include <deque>
#include <limits>
#include <set>
#include <vector>

namespace distnode::jit {

using llvm::dyn_cast;
using llvm::isa;

namespace {

// Externals that keep a pointer they are given beyond the call, or release it.
bool capturesArguments(llvm::StringRef name) {
  static const llvm::StringSet<> kCapturing = {
      "free",   "realloc", "reallocarray", "setvbuf", "setbuf",         "putenv",
      "strtok", "tsearch", "tdelete",      "atexit",  "pthread_create", "pthread_setspecific"};
  return kCapturing.contains(name);
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

// Extents saturate here: larger than any object a call could carry.
constexpr std::uint64_t kUnboundedExtent = std::uint64_t(1) << 62;

using SummaryLookup = std::function<const PointerUse &(const llvm::Function &, unsigned)>;

// Follows one pointer argument through the values derived from it. Each derived pointer has a
// known byte offset from the argument (through casts, constant GEPs and the function's private
// slots) or an unknown one (merged with other pointers, or indexed). Accesses at a known offset
// bound the extent of the object the function touches; the caller compares that with the size
// of what the parameter points to.
class Walker {
public:
  explicit Walker(const SummaryLookup &summary) : summary_(summary) {}

  PointerUse run(const llvm::Argument &arg) {
    dl_ = &arg.getParent()->getDataLayout();
    push(&arg, 0);
    while (!work_.empty()) {
      auto [v, offset] = work_.back();
      work_.pop_back();
      if (visited_[v] != offset) // reached again with another offset since it was queued
        offset = kUnknown;
      for (const llvm::Use &use : v->uses())
        visit(use, offset);
    }
    // A comparison with a pointer not derived from this argument tests the object's identity,
    // which a copy does not have.
    for (const llvm::ICmpInst *cmp : comparisons_)
      for (const llvm::Value *op : cmp->operands())
        if (!isa<llvm::ConstantPointerNull>(op) && !visited_.count(op))
          escapes(*cmp, "is compared with another pointer");
    return result_;
  }

private:
  static constexpr std::int64_t kUnknown = std::numeric_limits<std::int64_t>::min();
  // Somewhere inside a part of the object whose extent was recorded when it was indexed
  // (`h->bins[i]`): loads and stores through it stay in bounds.
  static constexpr std::int64_t kInside = kUnknown + 1;

  void push(const llvm::Value *v, std::int64_t offset) {
    auto [it, inserted] = visited_.emplace(v, offset);
    if (inserted) {
      work_.push_back({v, offset});
    } else if (it->second != offset && it->second != kUnknown) {
      it->second = kUnknown;
      work_.push_back({v, kUnknown});
    }
  }

  // `how` is completed with where `i` is, unless it says so already (`located`).
  void indexed(const llvm::Instruction &i, const std::string &how, bool located = false) {
    if (!result_.indexed) {
      result_.indexed = true;
      result_.indexed_how = located ? how : how + sourceLocation(i);
    }
  }
  void escapes(const llvm::Instruction &i, const std::string &how, bool located = false) {
    if (!result_.escapes) {
      result_.escapes = true;
      result_.escape_how = located ? how : how + sourceLocation(i);
    }
  }
  void unknown(const llvm::Instruction &i, const std::string &how) {
    indexed(i, how);
    escapes(i, how);
  }

  // `bytes` are touched starting `offset` bytes into the object (an access of one value
  // through a pointer kInside is within bounds; `whole` accesses such as memcpy are not known to
  // be).
  void touches(const llvm::Instruction &i, std::int64_t offset, std::uint64_t bytes,
               bool whole = false) {
    if (offset == kInside && !whole)
      return;
    if (offset == kUnknown || offset == kInside)
      return indexed(i, "is accessed at a place not known at compile time");
    if (offset < 0)
      return indexed(i, "is accessed before the start of what it points to");
    std::uint64_t end = std::min(static_cast<std::uint64_t>(offset) + bytes, kUnboundedExtent);
    if (end > result_.extent) {
      result_.extent = end;
      result_.extent_how = "is accessed up to byte " + std::to_string(end) + sourceLocation(i);
    }
  }

  void visit(const llvm::Use &use, std::int64_t offset) {
    auto *user = dyn_cast<llvm::Instruction>(use.getUser());
    if (!user)
      return; // only instructions use arguments and instructions
    const llvm::Value *v = use.get();
    if (auto *gep = dyn_cast<llvm::GetElementPtrInst>(user))
      return visitGEP(*gep, v, offset);
    if (auto *ld = dyn_cast<llvm::LoadInst>(user))
      return touches(*ld, offset, dl_->getTypeStoreSize(ld->getType()));
    if (auto *st = dyn_cast<llvm::StoreInst>(user)) {
      if (st->getValueOperand() != v)
        return touches(*st, offset, dl_->getTypeStoreSize(st->getValueOperand()->getType()));
      const llvm::Value *slot = st->getPointerOperand();
      if (!isPrivateSlot(slot))
        return escapes(*st, "is stored to memory");
      for (const llvm::User *u : slot->users())
        if (auto *ld = dyn_cast<llvm::LoadInst>(u))
          push(ld, offset);
      return;
    }
    if (auto *rmw = dyn_cast<llvm::AtomicRMWInst>(user)) {
      if (rmw->getValOperand() == v)
        return escapes(*rmw, "is stored to memory");
      return touches(*rmw, offset, dl_->getTypeStoreSize(rmw->getValOperand()->getType()));
    }
    if (auto *cx = dyn_cast<llvm::AtomicCmpXchgInst>(user)) {
      if (cx->getPointerOperand() != v)
        return escapes(*cx, "is stored to memory");
      return touches(*cx, offset, dl_->getTypeStoreSize(cx->getNewValOperand()->getType()));
    }
    if (auto *call = dyn_cast<llvm::CallBase>(user))
      return visitCall(*call, use, offset);
    if (isa<llvm::ReturnInst>(user))
      return escapes(*user, "is returned");
    if (isa<llvm::BitCastInst>(user) || isa<llvm::AddrSpaceCastInst>(user))
      return push(user, offset);
    if (isa<llvm::PHINode>(user) || isa<llvm::SelectInst>(user))
      return push(user, kUnknown);
    if (auto *cmp = dyn_cast<llvm::ICmpInst>(user))
      return comparisons_.push_back(cmp);
    if (isa<llvm::PtrToIntInst>(user))
      return unknown(*user, "is converted to an integer");
    unknown(*user, std::string("is used by a `") + user->getOpcodeName() + "` instruction");
  }

  void visitGEP(const llvm::GetElementPtrInst &gep, const llvm::Value *v, std::int64_t offset) {
    if (gep.getPointerOperand() != v)
      return unknown(gep, "is used as an index");
    llvm::APInt constant(64, 0);
    if (gep.accumulateConstantOffset(*dl_, constant)) {
      if (offset == kUnknown || offset == kInside) { // a step of its own from an inner place
        if (!constant.isZero())
          indexed(gep, "is offset from a place inside it");
        return push(&gep, offset);
      }
      return push(&gep, offset + constant.getSExtValue());
    }
    // A variable index. In the first position it steps over whole objects: an array.
    auto *first = dyn_cast<llvm::ConstantInt>(gep.getOperand(1));
    if (!first) {
      indexed(gep, "is indexed with a non-constant offset");
      return push(&gep, kUnknown);
    }
    // Further in, it stays inside one element of the source type, except in an array of at
    // most one element used as a variable-length tail (`int data[1]` indexed with `i`).
    const llvm::Type *indexed_into = nullptr; // what the current index selects within
    for (auto it = llvm::gep_type_begin(gep); it != llvm::gep_type_end(gep); ++it) {
      auto *array = llvm::dyn_cast_or_null<llvm::ArrayType>(indexed_into);
      if (array && array->getNumElements() <= 1 && !isa<llvm::ConstantInt>(it.getOperand()))
        indexed(gep, "is indexed past a one-element array at its end");
      indexed_into = it.getIndexedType();
    }
    std::uint64_t element = dl_->getTypeAllocSize(gep.getSourceElementType());
    if (offset == kUnknown || offset == kInside) {
      if (!first->isZero())
        indexed(gep, "is offset past its first element");
      return push(&gep, offset);
    }
    touches(gep, offset + first->getSExtValue() * static_cast<std::int64_t>(element), element,
            true);
    push(&gep, kInside);
  }

  void visitCall(const llvm::CallBase &call, const llvm::Use &use, std::int64_t offset) {
    if (call.isCallee(&use))
      return unknown(call, "is called");
    if (auto *ii = dyn_cast<llvm::IntrinsicInst>(&call)) {
      switch (ii->getIntrinsicID()) {
      case llvm::Intrinsic::ptr_annotation: // return the pointer they are given
      case llvm::Intrinsic::launder_invariant_group:
      case llvm::Intrinsic::strip_invariant_group:
        if (use.getOperandNo() == 0)
          push(&call, offset);
        return;
      default:
        break;
      }
      if (ii->isLifetimeStartOrEnd() || ii->isAssumeLikeIntrinsic() ||
          isa<llvm::DbgInfoIntrinsic>(ii))
        return;
      if (auto *mem = dyn_cast<llvm::MemIntrinsic>(ii))
        return copied(call, mem->getLength(), offset);
      return unknown(call, "is passed to `" + ii->getCalledFunction()->getName().str() + "`");
    }
    unsigned k = call.getArgOperandNo(&use);
    const llvm::Function *callee = call.getCalledFunction();
    if (!callee)
      return unknown(call, "is passed to an indirect call");
    std::string name = callee->getName().str();
    if (call.isByValArgument(k))
      return touches(call, offset, dl_->getTypeAllocSize(call.getParamByValType(k)), true);
    if (callee->isDeclaration() || callee->hasAvailableExternallyLinkage())
      return visitLibraryCall(call, k, name, offset);
    if (k >= callee->arg_size())
      return unknown(call, "is passed to `" + name + "` as a variadic argument");
    const PointerUse &s = summary_(*callee, k);
    std::string passed = "is passed to `" + name + "`" + sourceLocation(call) + ", where it ";
    if (s.indexed)
      indexed(call, passed + s.indexed_how, true);
    if (s.escapes)
      escapes(call, passed + s.escape_how, true);
    if (s.extent > 0 && offset != kUnknown && offset != kInside && offset >= 0) {
      std::uint64_t end = std::min(static_cast<std::uint64_t>(offset) + s.extent, kUnboundedExtent);
      if (end > result_.extent) {
        result_.extent = end;
        result_.extent_how = passed + s.extent_how;
      }
    } else if (s.extent > 0) {
      touches(call, offset, s.extent, true);
    }
  }

  void visitLibraryCall(const llvm::CallBase &call, unsigned k, const std::string &name,
                        std::int64_t offset) {
    if (capturesArguments(name))
      return escapes(call, "is passed to `" + name + "`, which keeps or frees it");
    if ((name == "memcpy" || name == "memmove" || name == "memset" || name == "memcmp" ||
         name == "bcmp") &&
        call.arg_size() == 3) {
      if (k == 0 && name.rfind("mem", 0) == 0 && name != "memcmp")
        push(&call, offset); // they return their destination
      return copied(call, call.getArgOperand(2), offset);
    }
    // strtol(s, &end, 10) and its kin store a pointer into `s` through `end`.
    if (name.rfind("strto", 0) == 0 && k == 0 && call.arg_size() >= 2 &&
        !isa<llvm::ConstantPointerNull>(call.getArgOperand(1)))
      escapes(call, "is passed to `" + name + "`, which stores a pointer into it");
    // The C library reads or writes through it, how far is not known here; a pointer it
    // returns (strchr, bsearch...) may point into the same object.
    indexed(call, "is passed to `" + name + "`");
    if (call.getType()->isPointerTy())
      push(&call, kUnknown);
  }

  void copied(const llvm::CallBase &call, const llvm::Value *length, std::int64_t offset) {
    auto *n = dyn_cast<llvm::ConstantInt>(length);
    if (!n)
      return indexed(call, "is copied with a run-time length");
    touches(call, offset, n->getZExtValue(), true);
  }

  const SummaryLookup &summary_;
  const llvm::DataLayout *dl_ = nullptr;
  PointerUse result_;
  std::map<const llvm::Value *, std::int64_t> visited_;
  std::vector<std::pair<const llvm::Value *, std::int64_t>> work_;
  std::vector<const llvm::ICmpInst *> comparisons_;
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
  // The pointer parameters of each function's callers: what to look at again when its facts
  // grow.
  std::map<const llvm::Function *, std::vector<const llvm::Argument *>> args_of;
  for (const llvm::Argument *a : args)
    args_of[a->getParent()].push_back(a);
  std::map<const llvm::Function *, std::set<const llvm::Function *>> callers;
  for (const auto &[f, _] : args_of)
    for (const llvm::Instruction &i : llvm::instructions(*f))
      if (auto *call = dyn_cast<llvm::CallBase>(&i))
        if (const llvm::Function *callee = call->getCalledFunction())
          callers[callee].insert(f);
  // Facts only grow (flags turn on, extents grow), so a worklist reaches a fixed point over
  // recursive calls, except where recursion passes a pointer on at an offset (`f(&p->next)`):
  // its extent grows each time. After kWidenAfter growths such an extent is widened to
  // "unbounded", which makes the pointer an array. Callers are looked at again only when a
  // callee's facts grew (a chain of N functions defined callers first took N rounds over all).
  constexpr int kWidenAfter = 32;
  std::deque<const llvm::Argument *> work(args.begin(), args.end());
  std::set<const llvm::Argument *> queued(args.begin(), args.end());
  std::map<const llvm::Argument *, int> growths;
  while (!work.empty()) {
    const llvm::Argument *a = work.front();
    work.pop_front();
    queued.erase(a);
    PointerUse now = Walker(lookup).run(*a);
    PointerUse &old = uses_[{a->getParent(), a->getArgNo()}];
    if (sameFacts(now, old))
      continue;
    if (++growths[a] > kWidenAfter && now.extent > old.extent) {
      now.extent = kUnboundedExtent;
      now.extent_how = "is passed on at growing offsets by recursive calls";
    }
    old = std::move(now);
    for (const llvm::Function *caller : callers[a->getParent()])
      for (const llvm::Argument *b : args_of[caller])
        if (queued.insert(b).second)
          work.push_back(b);
  }
}

std::string sourceLocation(const llvm::Instruction &i) {
  if (const llvm::DILocation *loc = i.getDebugLoc().get())
    return " (" + loc->getFilename().str() + ":" + std::to_string(loc->getLine()) + ")";
  return " (in `" + i.getFunction()->getName().str() + "`)";
}

const PointerUse &PointerUses::of(const llvm::Function &fn, unsigned arg) const {
  auto it = uses_.find({&fn, arg});
  return it == uses_.end() ? unknown_ : it->second;
}

} // namespace distnode::jit
