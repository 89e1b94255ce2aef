// counted_reads.cpp - which pointer parameters a function reads past where a string would end.
#include "jit/counted_reads.h"

#include "jit/pointer_uses.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/Analysis/AssumptionCache.h"
#include "llvm/Analysis/LoopInfo.h"
#include "llvm/Analysis/ScalarEvolution.h"
#include "llvm/Analysis/ScalarEvolutionExpressions.h"
#include "llvm/Analysis/TargetLibraryInfo.h"
#include "llvm/Analysis/ValueTracking.h"
#include "llvm/IR/Constants.h"
#include "llvm/IR/Dominators.h"
#include "llvm/IR/Instructions.h"
#include "llvm/IR/IntrinsicInst.h"
#include "llvm/IR/Module.h"
#include "llvm/TargetParser/Triple.h"
#include "llvm/Transforms/Utils/Cloning.h"
#include "llvm/Transforms/Utils/PromoteMemToReg.h"
#include "llvm/Transforms/Utils/ValueMapper.h"

#include <memory>
#include <set>
#include <string_view>
#include <vector>

namespace distnode::jit {

using llvm::cast;
using llvm::dyn_cast;
using llvm::dyn_cast_or_null;
using llvm::isa;

namespace {

bool hasPointerArgument(const llvm::Function &f) {
  return llvm::any_of(f.args(), [](const llvm::Argument &a) { return a.getType()->isPointerTy(); });
}

// External functions that read as many bytes as a length argument says, whatever the bytes
// are: for a pointer argument's position, the position of its length (fwrite: two, size and
// count). The strn* family stops at a NUL too: not here.
std::vector<unsigned> lengthsOf(llvm::StringRef name, unsigned pointer) {
  struct Lengths {
    int pointer;
    std::vector<unsigned> lengths;
  };
  static const llvm::StringMap<std::vector<Lengths>> kLengths = {
      {"memcpy", {{0, {2}}, {1, {2}}}}, {"memmove", {{0, {2}}, {1, {2}}}},
      {"memcmp", {{0, {2}}, {1, {2}}}}, {"bcmp", {{0, {2}}, {1, {2}}}},
      {"memchr", {{0, {2}}}},           {"memrchr", {{0, {2}}}},
      {"memmem", {{0, {1}}, {2, {3}}}}, {"write", {{1, {2}}}},
      {"pwrite", {{1, {2}}}},           {"send", {{1, {2}}}},
      {"sendto", {{1, {2}}}},           {"fwrite", {{0, {1, 2}}}}};
  auto it = kLengths.find(name);
  if (it != kLengths.end())
    for (const Lengths &l : it->second)
      if (l.pointer == static_cast<int>(pointer))
        return l.lengths;
  return {};
}

// What a caller's call hands a program function along with the pointer, judged where the call
// is: for each of the callee's arguments, whether it comes from the string's own bytes
// (`strlen(s)`), the caller's parameter it comes from (for the message), and whether reading
// the string at that argument as an offset, there, would read it by a count.
struct PassedOn {
  const llvm::Function *caller;
  unsigned arg; // the caller's pointer parameter
  const llvm::Function *callee;
  unsigned callee_arg;
  std::vector<bool> from_string;
  std::vector<int> from_param;
  std::vector<CountedRead> read_at; // per callee argument: the caller's reading at that offset
  CountedRead read_here;            // the caller's, if the callee reads where it points
  std::string at;
};

// Per pointer parameter, across calls: whether the function reads through it at all, the
// parameters that offset its reads (a position: `s[i]`), and whether it reads by a count.
struct Summary {
  bool reads = false;
  std::set<unsigned> offsets;
  CountedRead counted;
};

// The reads of one function's pointer parameters, on its copy with registers for locals.
class FunctionReads {
public:
  FunctionReads(llvm::Function &copy, const llvm::Function &original,
                const llvm::TargetLibraryInfoImpl &tlii,
                const std::map<const llvm::Function *, const llvm::Function *> &original_of)
      : copy_(copy), original_(original), original_of_(original_of), dt_(copy), ac_(copy) {
    std::vector<llvm::AllocaInst *> locals;
    for (llvm::Instruction &i : copy.getEntryBlock())
      if (auto *a = dyn_cast<llvm::AllocaInst>(&i); a && llvm::isAllocaPromotable(a))
        locals.push_back(a);
    if (!locals.empty())
      llvm::PromoteMemToReg(locals, dt_, &ac_);
    dt_.recalculate(copy);
    li_ = std::make_unique<llvm::LoopInfo>(dt_);
    tli_ = std::make_unique<llvm::TargetLibraryInfo>(tlii, &copy);
    se_ = std::make_unique<llvm::ScalarEvolution>(copy, *tli_, ac_, dt_, *li_);
  }

  // Argument `arg`'s own reads; calls to program functions that are handed it go to `passed`.
  Summary run(unsigned arg, std::vector<PassedOn> &passed) {
    arg_ = arg;
    derived_.clear();
    result_ = {};
    llvm::Argument *a = copy_.getArg(arg);
    derived_.insert(a);
    // Every pointer derived from the argument, in the order found (the evidence reported is
    // the first, the same on every node).
    std::vector<const llvm::Value *> order{a};
    for (std::size_t next = 0; next < order.size(); ++next)
      for (const llvm::User *u : order[next]->users())
        if ((isa<llvm::GetElementPtrInst>(u) &&
             cast<llvm::GetElementPtrInst>(u)->getPointerOperand() == order[next]) ||
            isa<llvm::PHINode>(u) || isa<llvm::SelectInst>(u) || isa<llvm::BitCastInst>(u) ||
            isa<llvm::AddrSpaceCastInst>(u))
          if (derived_.insert(u).second)
            order.push_back(u);
    for (const llvm::Value *v : order)
      for (const llvm::Use &use : v->uses()) {
        auto *user = dyn_cast<llvm::Instruction>(use.getUser());
        if (auto *ld = dyn_cast_or_null<llvm::LoadInst>(user)) {
          readAt(*ld, se_->getSCEV(const_cast<llvm::LoadInst *>(ld)->getPointerOperand()));
        } else if (auto *st = dyn_cast_or_null<llvm::StoreInst>(user);
                   st && st->getPointerOperand() == v) {
          readAt(*st, se_->getSCEV(const_cast<llvm::Value *>(v)));
        } else if (auto *call = dyn_cast_or_null<llvm::CallBase>(user);
                   call && call->isArgOperand(&use)) {
          visitCall(*call, call->getArgOperandNo(&use), v, passed);
        }
      }
    return result_;
  }

private:
  // Whether `v` is computed (through the values it is made of, not through memory other than
  // the string) from bytes of the string: a load through it, or a call handed it (`strlen`).
  bool fromString(const llvm::Value *v) const {
    std::set<const llvm::Value *> seen;
    std::vector<const llvm::Value *> work{v};
    while (!work.empty()) {
      const llvm::Value *x = work.back();
      work.pop_back();
      auto *i = dyn_cast<llvm::Instruction>(x);
      if (!i || !seen.insert(i).second)
        continue;
      if (auto *ld = dyn_cast<llvm::LoadInst>(i)) {
        if (derived_.count(ld->getPointerOperand()))
          return true;
        // A local variable that mem2reg left in memory (a struct, say): what is stored there.
        // Other memory is not followed.
        if (auto *local =
                dyn_cast<llvm::AllocaInst>(llvm::getUnderlyingObject(ld->getPointerOperand())))
          for (const llvm::User *u : llvm::getUnderlyingObject(ld->getPointerOperand())->users())
            storedInto(u, local, work);
        continue;
      }
      if (auto *call = dyn_cast<llvm::CallBase>(i))
        for (const llvm::Value *op : call->args())
          if (derived_.count(op))
            return true;
      for (const llvm::Value *op : i->operands())
        if (!derived_.count(op)) // where the string is, not what it holds
          work.push_back(op);
    }
    return false;
  }

  // The values stored into local variable `local` through `u` (a use of it, or of a field's
  // address), onto `work`.
  static void storedInto(const llvm::User *u, const llvm::AllocaInst *local,
                         std::vector<const llvm::Value *> &work) {
    if (auto *st = dyn_cast<llvm::StoreInst>(u)) {
      if (llvm::getUnderlyingObject(st->getPointerOperand()) == local)
        work.push_back(st->getValueOperand());
    } else if (isa<llvm::GetElementPtrInst>(u) || isa<llvm::BitCastInst>(u)) {
      for (const llvm::User *v : u->users())
        storedInto(v, local, work);
    }
  }

  // The first parameter of this function (an integer) that `s` depends on, or -1.
  static int parameterIn(const llvm::SCEV *s) {
    int found = -1;
    llvm::SCEVExprContains(s, [&](const llvm::SCEV *e) {
      auto *u = dyn_cast<llvm::SCEVUnknown>(e);
      auto *a = u ? dyn_cast<llvm::Argument>(u->getValue()) : nullptr;
      if (a && a->getType()->isIntegerTy())
        found = static_cast<int>(a->getArgNo());
      return found >= 0;
    });
    return found;
  }

  int parameterIn(const llvm::Value *v) const {
    return se_->isSCEVable(v->getType()) ? parameterIn(se_->getSCEV(const_cast<llvm::Value *>(v)))
                                         : -1;
  }

  // Whether `s` changes from one iteration of `loop` to the next: it steps with the loop, or
  // is a value the loop carries over (a pointer advanced by varying amounts).
  static bool advancesIn(const llvm::SCEV *s, const llvm::Loop *loop) {
    return llvm::SCEVExprContains(s, [&](const llvm::SCEV *e) {
      if (auto *rec = dyn_cast<llvm::SCEVAddRecExpr>(e))
        return rec->getLoop() == loop;
      auto *u = dyn_cast<llvm::SCEVUnknown>(e);
      auto *phi = u ? dyn_cast<llvm::PHINode>(u->getValue()) : nullptr;
      return phi && loop->contains(phi);
    });
  }

  // Whether the string, read at `address` by `i`, is read by a count: in a loop that moves the
  // address along it and does not stop at a byte it reads (every exit of a string's loop
  // depends on its bytes: `*s`, `s[i] && i < max`, `i < strlen(s)`), or just before an end
  // that a parameter gives (`s[n - 1]`). An address computed from the string's bytes
  // (`key[i % strlen(key)]`) stays inside it.
  CountedRead countedAt(const llvm::Instruction &i, const llvm::SCEV *address,
                        bool address_from_string) const {
    if (address_from_string)
      return {};
    for (const llvm::Loop *loop = li_->getLoopFor(i.getParent()); loop;
         loop = loop->getParentLoop()) {
      if (!advancesIn(address, loop))
        continue;
      llvm::SmallVector<llvm::BasicBlock *, 4> exits;
      loop->getExitingBlocks(exits);
      const bool stops_at_a_byte = llvm::any_of(exits, [&](const llvm::BasicBlock *b) {
        auto *br = dyn_cast<llvm::BranchInst>(b->getTerminator());
        if (br && br->isConditional())
          return fromString(br->getCondition());
        auto *sw = dyn_cast<llvm::SwitchInst>(b->getTerminator());
        return sw ? fromString(sw->getCondition()) : true; // another exit: as if it did
      });
      if (stops_at_a_byte)
        continue; // a string's loop; an outer loop may still move past its NUL
      const llvm::SCEV *bound = se_->getSymbolicMaxBackedgeTakenCount(loop);
      const int param = isa<llvm::SCEVCouldNotCompute>(bound) ? -1 : parameterIn(bound);
      if (param >= 0)
        return {param, "is read in a loop bounded by", " that does not stop at a byte it reads",
                sourceLocation(i)};
      return {-1, "is read in a loop that does not stop at a byte it reads", "", sourceLocation(i)};
    }
    const llvm::SCEV *offset = se_->removePointerBase(address);
    if (auto *add = dyn_cast<llvm::SCEVAddExpr>(offset)) {
      auto *c = dyn_cast<llvm::SCEVConstant>(add->getOperand(0));
      const int param = parameterIn(offset);
      if (c && c->getAPInt().isNegative() && param >= 0)
        return {param, "is read at an offset counted back from", "", sourceLocation(i)};
    }
    return {};
  }

  void found(CountedRead read) {
    if (read.counted() && !result_.counted.counted())
      result_.counted = std::move(read);
  }

  // A read through the string at `address` by `i`.
  void readAt(const llvm::Instruction &i, const llvm::SCEV *address) {
    result_.reads = true;
    if (auto *a = dyn_cast<llvm::SCEVUnknown>(se_->getPointerBase(address));
        a && a->getValue() == copy_.getArg(arg_)) {
      const int param = parameterIn(se_->removePointerBase(address));
      if (param >= 0) // a position handed in
        result_.offsets.insert(static_cast<unsigned>(param));
    }
    const llvm::Value *v = isa<llvm::LoadInst>(i) ? cast<llvm::LoadInst>(i).getPointerOperand()
                                                  : cast<llvm::StoreInst>(i).getPointerOperand();
    found(countedAt(i, address, fromString(v)));
  }

  // A length (of memcpy and its kin) that is neither constant nor the string's own: it comes
  // from a parameter, or from memory that is not a constant table.
  CountedRead countedBy(const llvm::CallBase &call, const llvm::Value *length,
                        const std::string &name) const {
    if (isa<llvm::Constant>(length) || fromString(length))
      return {};
    if (auto *ld = dyn_cast<llvm::LoadInst>(length)) {
      const llvm::Value *base = llvm::getUnderlyingObject(ld->getPointerOperand());
      if (auto *gv = dyn_cast<llvm::GlobalVariable>(base); gv && gv->isConstant())
        return {};
    }
    const int param = parameterIn(length);
    if (param >= 0)
      return {param, "is read by `" + name + "` for a length that comes from", "",
              sourceLocation(call)};
    return {-1, "is read by `" + name + "` for a length not taken from its bytes", "",
            sourceLocation(call)};
  }

  void visitCall(const llvm::CallBase &call, unsigned k, const llvm::Value *v,
                 std::vector<PassedOn> &passed) {
    const llvm::SCEV *address = se_->getSCEV(const_cast<llvm::Value *>(v));
    const bool address_from_string = fromString(v);
    if (auto *mem = dyn_cast<llvm::MemTransferInst>(&call)) {
      result_.reads = true;
      found(countedBy(call, mem->getLength(), "memcpy"));
      found(countedAt(call, address, address_from_string));
      return;
    }
    const llvm::Function *callee = call.getCalledFunction();
    if (!callee || callee->isIntrinsic())
      return;
    if (callee->isDeclaration() || callee->hasAvailableExternallyLinkage()) {
      const std::string name = callee->getName().str();
      result_.reads = true;
      // memchr(s, 0, max): a bounded strlen.
      auto *c = call.arg_size() > 1 ? dyn_cast<llvm::ConstantInt>(call.getArgOperand(1)) : nullptr;
      if ((name == "memchr" || name == "memrchr") && c && c->isZero())
        return;
      const std::vector<unsigned> lengths = lengthsOf(name, k);
      for (unsigned length : lengths)
        if (length < call.arg_size())
          found(countedBy(call, call.getArgOperand(length), name));
      if (!lengths.empty()) // it reads there whatever the bytes (a string function stops)
        found(countedAt(call, address, address_from_string));
      return;
    }
    auto original = original_of_.find(callee);
    if (original == original_of_.end() || k >= callee->arg_size())
      return;
    PassedOn on{&original_, arg_, original->second, k, {}, {}, {}, {}, sourceLocation(call)};
    on.read_here = countedAt(call, address, address_from_string);
    for (unsigned j = 0; j < call.arg_size() && j < callee->arg_size(); ++j) {
      const llvm::Value *actual = call.getArgOperand(j);
      on.from_string.push_back(fromString(actual));
      on.from_param.push_back(parameterIn(actual));
      CountedRead at_offset;
      if (se_->isSCEVable(actual->getType()) && actual->getType()->isIntegerTy()) {
        const llvm::SCEV *offset =
            se_->getTruncateOrSignExtend(se_->getSCEV(const_cast<llvm::Value *>(actual)),
                                         se_->getEffectiveSCEVType(address->getType()));
        at_offset = countedAt(call, se_->getAddExpr(address, offset),
                              address_from_string || on.from_string.back());
      }
      on.read_at.push_back(std::move(at_offset));
    }
    passed.push_back(std::move(on));
  }

  llvm::Function &copy_;
  const llvm::Function &original_;
  const std::map<const llvm::Function *, const llvm::Function *> &original_of_;
  llvm::DominatorTree dt_;
  llvm::AssumptionCache ac_;
  std::unique_ptr<llvm::LoopInfo> li_;
  std::unique_ptr<llvm::TargetLibraryInfo> tli_;
  std::unique_ptr<llvm::ScalarEvolution> se_;
  unsigned arg_ = 0;
  std::set<const llvm::Value *> derived_;
  Summary result_;
};

// What a call hands on makes the caller's reads: the callee's reads by a count whose count the
// caller does not take from the string; reads where the pointer points, or at an offset the
// caller hands in, that a loop of the caller's moves along the string. True if it changed.
bool handOn(const PassedOn &on, const Summary &callee, Summary &caller) {
  bool changed = false;
  if (callee.reads && !caller.reads)
    changed = caller.reads = true;
  for (unsigned j : callee.offsets)
    if (j < on.from_param.size() && on.from_param[j] >= 0)
      changed |= caller.offsets.insert(static_cast<unsigned>(on.from_param[j])).second;
  if (caller.counted.counted())
    return changed;
  const std::string passed = "is passed to `" + on.callee->getName().str() + "`" + on.at;
  const CountedRead &c = callee.counted;
  if (c.counted() &&
      (c.count_arg < 0 || static_cast<std::size_t>(c.count_arg) >= on.from_string.size() ||
       !on.from_string[c.count_arg])) {
    const int from =
        c.count_arg >= 0 && static_cast<std::size_t>(c.count_arg) < on.from_param.size()
            ? on.from_param[c.count_arg]
            : -1;
    caller.counted = from >= 0
                         ? CountedRead{from, passed + ", which reads it by a count, from", "", ""}
                         : CountedRead{-1, passed + ", which reads it by a count", "", ""};
    return true;
  }
  // "is read in a loop..." becomes "is passed to `f` (x.c:9) and read in a loop...".
  auto through = [&](const CountedRead &read) {
    caller.counted = read;
    caller.counted.how = passed + " and " + read.how.substr(std::string_view("is ").size());
    caller.counted.at.clear();
    return true;
  };
  if (callee.reads && on.read_here.counted())
    return through(on.read_here);
  for (unsigned j : callee.offsets)
    if (j < on.read_at.size() && on.read_at[j].counted())
      return through(on.read_at[j]);
  return changed;
}

} // namespace

CountedReads::CountedReads(const llvm::Module &module) {
  if (llvm::none_of(module, [](const llvm::Function &f) {
        return !f.isDeclaration() && hasPointerArgument(f);
      }))
    return;
  // A copy of the functions with pointer parameters (the others become declarations), whose
  // local variables can then be put in registers without touching the program.
  llvm::ValueToValueMapTy map;
  std::unique_ptr<llvm::Module> copy =
      llvm::CloneModule(module, map, [](const llvm::GlobalValue *gv) {
        auto *f = dyn_cast<llvm::Function>(gv);
        return f && hasPointerArgument(*f);
      });
  std::map<const llvm::Function *, const llvm::Function *> original_of;
  for (const llvm::Function &f : module)
    if (auto it = map.find(&f); it != map.end())
      original_of[cast<llvm::Function>(it->second)] = &f;

  llvm::TargetLibraryInfoImpl tlii{llvm::Triple(module.getTargetTriple())};
  std::map<std::pair<const llvm::Function *, unsigned>, Summary> summaries;
  std::vector<PassedOn> passed;
  for (llvm::Function &f : *copy) {
    if (f.isDeclaration() || f.hasAvailableExternallyLinkage() || !hasPointerArgument(f))
      continue;
    const llvm::Function *original = original_of.at(&f);
    FunctionReads reads(f, *original, tlii, original_of);
    for (llvm::Argument &a : f.args())
      if (a.getType()->isPointerTy())
        summaries[{original, a.getArgNo()}] = reads.run(a.getArgNo(), passed);
  }
  // Through calls, to a fixed point: facts are only ever found, never lost, so this ends.
  for (bool changed = true; changed;) {
    changed = false;
    for (const PassedOn &on : passed) {
      auto callee = summaries.find({on.callee, on.callee_arg});
      if (callee != summaries.end())
        changed |= handOn(on, callee->second, summaries[{on.caller, on.arg}]);
    }
  }
  for (auto &[key, summary] : summaries)
    if (summary.counted.counted())
      reads_[key] = std::move(summary.counted);
}

const CountedRead &CountedReads::of(const llvm::Function &fn, unsigned arg) const {
  auto it = reads_.find({&fn, arg});
  return it == reads_.end() ? none_ : it->second;
}

} // namespace distnode::jit
