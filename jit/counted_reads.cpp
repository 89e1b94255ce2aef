// counted_reads.cpp - which pointer parameters a function reads by a count from a parameter.
#include "jit/counted_reads.h"

#include "jit/pointer_uses.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Analysis/ScalarEvolution.h"
#include "llvm/Analysis/ScalarEvolutionExpressions.h"
#include "llvm/IR/Instructions.h"
#include "llvm/IR/IntrinsicInst.h"
#include "llvm/IR/Module.h"
#include "llvm/IR/PassManager.h"
#include "llvm/Passes/PassBuilder.h"
#include "llvm/Transforms/Scalar/LICM.h"
#include "llvm/Transforms/Scalar/LoopPassManager.h"
#include "llvm/Transforms/Utils/Cloning.h"
#include "llvm/Transforms/Utils/Mem2Reg.h"
#include "llvm/Transforms/Utils/ValueMapper.h"

#include <memory>
#include <set>
#include <vector>

namespace distnode::jit {

using llvm::cast;
using llvm::dyn_cast;
using llvm::isa;

namespace {

bool hasPointerArgument(const llvm::Function &f) {
  return llvm::any_of(f.args(), [](const llvm::Argument &a) { return a.getType()->isPointerTy(); });
}

// External functions that read (or write) as many bytes as a length argument says, whatever
// the bytes are: the position of that length. The strn* family stops at a NUL too: not here.
int lengthArgumentOf(llvm::StringRef name) {
  static const llvm::StringMap<int> kLength = {
      {"memcpy", 2}, {"memmove", 2}, {"memcmp", 2}, {"bcmp", 2},   {"memchr", 2}, {"memrchr", 2},
      {"memmem", 1}, {"write", 2},   {"send", 2},   {"fwrite", 1}, {"pwrite", 2}, {"sendto", 2}};
  auto it = kLength.find(name);
  return it == kLength.end() ? -1 : it->second;
}

// A call of a program function that is handed the pointer: the callee's reads by a count
// become the caller's when the count it is handed comes from one of the caller's parameters.
struct PassedOn {
  const llvm::Function *caller;
  unsigned arg; // the caller's pointer parameter
  const llvm::Function *callee;
  unsigned callee_arg;
  std::vector<int> count_from; // per callee argument: the caller's parameter it comes from, or -1
  std::string at;
};

// The reads of one function's pointer parameters, on its copy with registers for locals.
class FunctionReads {
public:
  // `se`: scalar evolution of `copy`, after its locals were put in registers and what its loops
  // load without change was hoisted out of them (Pipeline).
  FunctionReads(llvm::Function &copy, const llvm::Function &original, llvm::ScalarEvolution &se,
                const std::map<const llvm::Function *, const llvm::Function *> &original_of)
      : copy_(copy), original_(original), original_of_(original_of), se_(&se) {}

  // The direct reads of argument `arg` by a count; calls to program functions that are handed
  // it go to `passed`.
  CountedRead run(unsigned arg, std::vector<PassedOn> &passed) {
    llvm::Argument *a = copy_.getArg(arg);
    base_ = se_->getSCEV(a);
    result_ = {};
    std::set<const llvm::Value *> seen{a};
    std::vector<const llvm::Value *> work{a};
    while (!work.empty() && !result_.counted()) {
      const llvm::Value *v = work.back();
      work.pop_back();
      for (const llvm::Use &use : v->uses()) {
        auto *user = dyn_cast<llvm::Instruction>(use.getUser());
        if (!user)
          continue;
        if (auto *gep = dyn_cast<llvm::GetElementPtrInst>(user)) {
          if (gep->getPointerOperand() == v && seen.insert(gep).second)
            work.push_back(gep);
        } else if (isa<llvm::PHINode>(user) || isa<llvm::SelectInst>(user) ||
                   isa<llvm::BitCastInst>(user) || isa<llvm::AddrSpaceCastInst>(user)) {
          if (seen.insert(user).second)
            work.push_back(user);
        } else if (auto *ld = dyn_cast<llvm::LoadInst>(user)) {
          readAt(*ld, ld->getPointerOperand());
        } else if (auto *st = dyn_cast<llvm::StoreInst>(user)) {
          if (st->getPointerOperand() == v)
            readAt(*st, v);
        } else if (auto *call = dyn_cast<llvm::CallBase>(user)) {
          if (!call->isCallee(&use))
            visitCall(*call, arg, call->getArgOperandNo(&use), v, passed);
        }
      }
    }
    return result_;
  }

private:
  // Where an integer value's expression comes from: the parameter of this function it depends
  // on; else, with `memory`, CountedRead::kFromMemory if it depends on a value loaded from memory
  // (a struct field, a global); else -1.
  int sourceOf(const llvm::SCEV *s, bool memory) const {
    int param = -1;
    bool loaded = false;
    llvm::SCEVExprContains(s, [&](const llvm::SCEV *e) {
      auto *u = dyn_cast<llvm::SCEVUnknown>(e);
      if (!u)
        return false;
      if (auto *a = dyn_cast<llvm::Argument>(u->getValue()); a && a->getType()->isIntegerTy())
        param = static_cast<int>(a->getArgNo());
      loaded = loaded || isa<llvm::LoadInst>(u->getValue());
      return param >= 0;
    });
    return param >= 0 ? param : memory && loaded ? CountedRead::kFromMemory : -1;
  }

  int sourceOf(const llvm::Value *v, bool memory) const {
    return se_->isSCEVable(v->getType())
               ? sourceOf(se_->getSCEV(const_cast<llvm::Value *>(v)), memory)
               : -1;
  }

  void found(int param, const std::string &how, const llvm::Instruction &i) {
    if (param != -1 && !result_.counted())
      result_ = {param, how, sourceLocation(i)};
  }

  // An access through `address`, derived from the argument: its offset from the argument, and
  // the loops that step it.
  void readAt(const llvm::Instruction &i, const llvm::Value *address) {
    const llvm::SCEV *s = se_->getSCEV(const_cast<llvm::Value *>(address));
    if (se_->getPointerBase(s) != base_)
      return; // merged with other pointers: the pointer-use analysis already calls it indexed
    const llvm::SCEV *offset = se_->removePointerBase(s);
    if (isa<llvm::SCEVCouldNotCompute>(offset))
      return;
    // An offset loaded from memory (`s[st->pos]`) is left alone: a tokenizer's position.
    found(sourceOf(offset, false), "is read at an offset that comes from", i);
    // A loop that steps the offset and runs a number of times known on entry (every exit's
    // count computable: none stops at a byte it reads).
    llvm::SCEVExprContains(offset, [&](const llvm::SCEV *e) {
      if (auto *rec = dyn_cast<llvm::SCEVAddRecExpr>(e)) {
        const llvm::SCEV *trips = se_->getBackedgeTakenCount(rec->getLoop());
        if (!isa<llvm::SCEVCouldNotCompute>(trips))
          found(sourceOf(trips, true), "is read in a loop whose count comes from", i);
      }
      return result_.counted();
    });
  }

  void visitCall(const llvm::CallBase &call, unsigned arg, unsigned k, const llvm::Value *v,
                 std::vector<PassedOn> &passed) {
    if (auto *mem = dyn_cast<llvm::MemTransferInst>(&call)) {
      if (mem->getRawSource() == v)
        found(sourceOf(mem->getLength(), true), "is copied by a length that comes from", call);
      return;
    }
    if (isa<llvm::IntrinsicInst>(call))
      return;
    const llvm::Function *callee = call.getCalledFunction();
    if (!callee)
      return;
    if (callee->isDeclaration() || callee->hasAvailableExternallyLinkage()) {
      int length = lengthArgumentOf(callee->getName());
      if (length >= 0 && static_cast<unsigned>(length) < call.arg_size()) {
        int param = sourceOf(call.getArgOperand(length), true);
        if (callee->getName() == "fwrite" && param < 0) // fwrite(p, size, count, f)
          param = sourceOf(call.getArgOperand(2), true);
        found(param, "is read by `" + callee->getName().str() + "` for a length that comes from",
              call);
      }
      return;
    }
    auto original = original_of_.find(callee);
    if (original == original_of_.end() || k >= callee->arg_size())
      return;
    PassedOn on{&original_, arg, original->second, k, {}, sourceLocation(call)};
    for (unsigned j = 0; j < call.arg_size() && j < callee->arg_size(); ++j)
      on.count_from.push_back(sourceOf(call.getArgOperand(j), true));
    passed.push_back(std::move(on));
  }

  llvm::Function &copy_;
  const llvm::Function &original_;
  const std::map<const llvm::Function *, const llvm::Function *> &original_of_;
  llvm::ScalarEvolution *se_;
  const llvm::SCEV *base_ = nullptr;
  CountedRead result_;
};

// Registers for locals (mem2reg), then loads that do not change in a loop hoisted out of it
// (LICM: a count read from a struct field each time round becomes one value), then scalar
// evolution: for each function of the copy in turn.
class Pipeline {
public:
  Pipeline() {
    builder_.registerModuleAnalyses(modules_);
    builder_.registerCGSCCAnalyses(sccs_);
    builder_.registerFunctionAnalyses(functions_);
    builder_.registerLoopAnalyses(loops_);
    builder_.crossRegisterProxies(loops_, functions_, sccs_, modules_);
    passes_.addPass(llvm::PromotePass());
    passes_.addPass(llvm::createFunctionToLoopPassAdaptor(llvm::LICMPass(llvm::LICMOptions()),
                                                          /*UseMemorySSA=*/true));
  }

  llvm::ScalarEvolution &run(llvm::Function &f) {
    passes_.run(f, functions_);
    return functions_.getResult<llvm::ScalarEvolutionAnalysis>(f);
  }

private:
  llvm::PassBuilder builder_;
  llvm::LoopAnalysisManager loops_;
  llvm::FunctionAnalysisManager functions_;
  llvm::CGSCCAnalysisManager sccs_;
  llvm::ModuleAnalysisManager modules_;
  llvm::FunctionPassManager passes_;
};

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

  Pipeline pipeline;
  std::vector<PassedOn> passed;
  for (llvm::Function &f : *copy) {
    if (f.isDeclaration() || f.hasAvailableExternallyLinkage() || !hasPointerArgument(f))
      continue;
    const llvm::Function *original = original_of.at(&f);
    FunctionReads reads(f, *original, pipeline.run(f), original_of);
    for (llvm::Argument &a : f.args())
      if (a.getType()->isPointerTy())
        reads_[{original, a.getArgNo()}] = reads.run(a.getArgNo(), passed);
  }
  // Through calls: a callee that reads its parameter by a count the caller hands it from one of
  // its own. Reads are only ever found, never lost, so this ends.
  for (bool changed = true; changed;) {
    changed = false;
    for (const PassedOn &on : passed) {
      CountedRead &caller = reads_[{on.caller, on.arg}];
      const CountedRead &callee = of(*on.callee, on.callee_arg);
      if (caller.counted() || !callee.counted())
        continue;
      // A count the callee loads itself is the caller's too; one it is handed, only if the
      // caller hands it one from a parameter or from memory.
      int from = callee.count_arg;
      if (from != CountedRead::kFromMemory)
        from = static_cast<std::size_t>(from) < on.count_from.size() ? on.count_from[from] : -1;
      if (from == -1)
        continue;
      caller = {from,
                "is passed to `" + on.callee->getName().str() +
                    "`, which reads it by a count, with a count that comes from",
                on.at};
      changed = true;
    }
  }
}

const CountedRead &CountedReads::of(const llvm::Function &fn, unsigned arg) const {
  auto it = reads_.find({&fn, arg});
  return it == reads_.end() ? none_ : it->second;
}

} // namespace distnode::jit
