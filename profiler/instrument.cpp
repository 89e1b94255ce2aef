// instrument.cpp - the IR instrumentation pass.
#include "profiler/instrument.h"

#include "llvm/IR/IRBuilder.h"
#include "llvm/IR/Instructions.h"
#include "llvm/IR/IntrinsicInst.h"
#include "llvm/IR/Intrinsics.h"
#include "llvm/IR/Module.h"
#include "llvm/Transforms/Utils/BasicBlockUtils.h"

#include <map>

namespace distnode::profiler {

namespace {

struct Site {
  llvm::CallBase *call;
  std::uint32_t callee;
  std::uint32_t caller; // CallSite::kDynamicCaller inside local functions
};

bool isGlue(const llvm::Function &f) {
  return f.getName().ends_with(".remote") || f.getName().ends_with(".dispatch") ||
         f.getName().ends_with(".gated");
}

// The thread's ThreadState address and counter block, computed once at function entry (after
// the allocas, which must stay first for mem2reg). The block is created on the thread's first
// profiled call.
struct Entry {
  llvm::Value *state = nullptr;
  llvm::Value *block = nullptr;
};

Entry emitEntry(llvm::Function &f, const InstrumentSpec &spec, llvm::Function *thread_init) {
  llvm::LLVMContext &ctx = f.getContext();
  llvm::BasicBlock &entry = f.getEntryBlock();
  llvm::BasicBlock::iterator at = entry.getFirstInsertionPt();
  while (at != entry.end() && llvm::isa<llvm::AllocaInst>(*at))
    ++at;
  llvm::IRBuilder<> b(&entry, at);
  llvm::Function *tp_fn =
      llvm::Intrinsic::getDeclaration(f.getParent(), llvm::Intrinsic::thread_pointer);
  llvm::Value *tp = b.CreateCall(tp_fn, {}, "tp");
  llvm::Value *state =
      b.CreateConstInBoundsGEP1_64(b.getInt8Ty(), tp, spec.thread_state_offset, "prof.state");
  llvm::Type *ptr = llvm::PointerType::getUnqual(ctx);
  llvm::Value *block0 = b.CreateLoad(ptr, state, "prof.block");
  llvm::Value *missing = b.CreateIsNull(block0);
  llvm::Instruction *then =
      llvm::SplitBlockAndInsertIfThen(missing, &*b.GetInsertPoint(), /*Unreachable=*/false);
  llvm::BasicBlock *init_bb = then->getParent();
  llvm::IRBuilder<> ib(then);
  llvm::Value *block1 = ib.CreateCall(thread_init, {}, "prof.block.new");
  llvm::BasicBlock *cont = then->getSuccessor(0);
  llvm::IRBuilder<> cb(cont, cont->getFirstInsertionPt());
  llvm::PHINode *block = cb.CreatePHI(ptr, 2, "prof.counters");
  block->addIncoming(block0, &entry);
  block->addIncoming(block1, init_bb);
  return {state, block};
}

void bump(llvm::IRBuilder<> &b, llvm::Value *block, llvm::Value *index, llvm::Value *amount) {
  llvm::Value *slot = b.CreateInBoundsGEP(b.getInt64Ty(), block, index);
  llvm::Value *old = b.CreateLoad(b.getInt64Ty(), slot);
  b.CreateStore(b.CreateAdd(old, amount), slot);
}

// Adds a site's pending local counts to the thread's block and clears them.
template <typename P> void flush(llvm::IRBuilder<> &b, llvm::Value *block, const P &p) {
  llvm::Type *i64 = b.getInt64Ty();
  llvm::AllocaInst *locals[3] = {p.calls, p.call_bytes, p.reply_bytes};
  for (unsigned k = 0; k < 3; ++k) {
    if (!locals[k])
      continue;
    llvm::Value *index = k ? b.CreateAdd(p.index, b.getInt64(k)) : p.index;
    bump(b, block, index, b.CreateLoad(i64, locals[k]));
    b.CreateStore(b.getInt64(0), locals[k]);
  }
}

} // namespace

ProfileLayout instrumentModule(llvm::Module &m, const InstrumentSpec &spec) {
  ProfileLayout layout;
  std::map<std::string, std::uint32_t> body_id, callee_id;
  for (std::size_t i = 0; i < spec.functions.size(); ++i) {
    const ProfiledFunction &pf = spec.functions[i];
    auto id = static_cast<std::uint32_t>(i + 1);
    layout.functions.push_back(pf.name);
    body_id[pf.body] = id;
    if (pf.call_bytes)
      callee_id[pf.name] = id;
  }

  // Find the sites; those with a fixed caller first.
  std::vector<Site> fixed, dynamic;
  for (llvm::Function &f : m) {
    if (f.isDeclaration() || isGlue(f))
      continue;
    auto own = body_id.find(f.getName().str());
    for (llvm::BasicBlock &bb : f)
      for (llvm::Instruction &i : bb) {
        auto *call = llvm::dyn_cast<llvm::CallBase>(&i);
        if (!call)
          continue;
        auto *callee =
            llvm::dyn_cast<llvm::Function>(call->getCalledOperand()->stripPointerCasts());
        if (!callee || !callee->isDeclaration())
          continue;
        auto it = callee_id.find(callee->getName().str());
        if (it == callee_id.end())
          continue;
        if (own != body_id.end())
          fixed.push_back({call, it->second, own->second});
        else
          dynamic.push_back({call, it->second, CallSite::kDynamicCaller});
      }
  }
  std::vector<Site> sites = fixed;
  sites.insert(sites.end(), dynamic.begin(), dynamic.end());
  for (const Site &s : sites)
    layout.sites.push_back({s.caller, s.callee, CallSite::kVariable, CallSite::kVariable});

  llvm::LLVMContext &ctx = m.getContext();
  llvm::Type *ptr = llvm::PointerType::getUnqual(ctx);
  llvm::Type *i32 = llvm::Type::getInt32Ty(ctx);
  llvm::Type *i64 = llvm::Type::getInt64Ty(ctx);
  llvm::Function *thread_init = llvm::cast<llvm::Function>(
      m.getOrInsertFunction(spec.thread_init_symbol, llvm::FunctionType::get(ptr, false))
          .getCallee());

  std::map<llvm::Function *, std::vector<std::size_t>> sites_in;
  for (std::size_t s = 0; s < sites.size(); ++s)
    sites_in[sites[s].call->getFunction()].push_back(s);
  std::vector<llvm::Function *> todo;
  // A profiled body needs the current-function marker only if it calls code that is not
  // profiled: samples that interrupt a profiled body's own code are charged by address
  // (Profiler::setCodeRanges), and the marker is the fallback for samples in code it calls
  // (the C library, say). A direct call of another profiled body (a call inside a placement
  // unit, a function's call to itself) needs none: the callee's samples go by address, and it
  // sets its own marker if it calls further. So a recursive function carries no profiling code.
  auto needsMarker = [&](llvm::Function &f) {
    if (!body_id.count(f.getName().str()))
      return false;
    for (llvm::BasicBlock &bb : f)
      for (llvm::Instruction &i : bb)
        if (auto *call = llvm::dyn_cast<llvm::CallBase>(&i)) {
          auto *callee = call->getCalledFunction();
          if (!callee || !(callee->isIntrinsic() || body_id.count(callee->getName().str())))
            return true;
        }
    return false;
  };
  std::map<llvm::Function *, bool> marker;
  for (llvm::Function &f : m)
    if (!f.isDeclaration() && !isGlue(f)) {
      marker[&f] = needsMarker(f);
      if (marker[&f] || sites_in.count(&f))
        todo.push_back(&f);
    }

  for (llvm::Function *f : todo) {
    // Also with a marker only: the thread needs a block for its samples to be counted.
    Entry entry = emitEntry(*f, spec, thread_init);
    llvm::Value *current_slot = nullptr;
    {
      llvm::IRBuilder<> b(
          llvm::cast<llvm::Instruction>(entry.block)->getParent()->getFirstNonPHI());
      current_slot = b.CreateConstInBoundsGEP1_64(b.getInt8Ty(), entry.state, kCurrentField);
      auto own = body_id.find(f->getName().str());
      if (own != body_id.end() && marker[f]) {
        // Profiled body: the current function while it runs, restored at every return.
        // Volatile: only the SIGPROF handler reads the marker, which the optimizer cannot see,
        // so it would drop the first store as dead.
        llvm::Value *previous = b.CreateLoad(i32, current_slot, /*isVolatile=*/true, "prof.prev");
        b.CreateStore(b.getInt32(own->second), current_slot, /*isVolatile=*/true);
        for (llvm::BasicBlock &bb : *f)
          if (auto *ret = llvm::dyn_cast<llvm::ReturnInst>(bb.getTerminator()))
            llvm::IRBuilder<>(ret).CreateStore(previous, current_slot, /*isVolatile=*/true);
      }
    }
    // Each site counts in locals (registers, after mem2reg) and adds them to the thread's
    // block before a call that does not return, at every return, and at the first call after
    // the process's flush generation changed: a memory add per call would cost as much as a
    // tiny call itself. The generation check is one load and compare per call, so a frame that
    // runs for minutes still shows its calls within one flush period (Profiler::requestFlush);
    // totals at the end are exact.
    struct Pending {
      std::size_t site;
      llvm::Value *index;
      llvm::AllocaInst *calls, *call_bytes, *reply_bytes; // bytes: null when static
    };
    std::vector<Pending> pending;
    std::vector<std::pair<llvm::Instruction *, llvm::Value *>> flush_points;
    llvm::Instruction *setup = llvm::cast<llvm::Instruction>(current_slot)->getNextNode();
    llvm::IRBuilder<> alloca_b(&f->getEntryBlock(), f->getEntryBlock().begin());
    llvm::Value *generation_addr = nullptr;
    llvm::AllocaInst *seen = nullptr;
    auto loadGeneration = [&](llvm::IRBuilder<> &b) {
      llvm::LoadInst *g = b.CreateAlignedLoad(i32, generation_addr, llvm::Align(4), "prof.gen");
      g->setAtomic(llvm::AtomicOrdering::Monotonic); // never hoisted out of a loop
      return g;
    };
    if (!sites_in[f].empty()) {
      llvm::IRBuilder<> sb(setup);
      generation_addr = m.getOrInsertGlobal(spec.flush_generation_symbol, i32);
      seen = alloca_b.CreateAlloca(i32, nullptr, "prof.seen");
      sb.CreateStore(loadGeneration(sb), seen);
    }
    for (std::size_t s : sites_in[f]) {
      const Site &site = sites[s];
      llvm::CallBase *call = site.call;
      llvm::IRBuilder<> b(call);
      const ProfiledFunction &pf = spec.functions[site.callee - 1];
      llvm::Value *call_bytes = pf.call_bytes(b, *call);
      llvm::Value *reply_bytes = pf.reply_bytes(b, *call);
      Pending p{s, nullptr, alloca_b.CreateAlloca(i64, nullptr, "prof.calls"), nullptr, nullptr};
      // Static sizes are kept in the layout instead of being added up on every call.
      if (auto *c = llvm::dyn_cast<llvm::ConstantInt>(call_bytes))
        layout.sites[s].call_bytes = c->getZExtValue();
      else
        p.call_bytes = alloca_b.CreateAlloca(i64, nullptr, "prof.call_bytes");
      if (auto *c = llvm::dyn_cast<llvm::ConstantInt>(reply_bytes))
        layout.sites[s].reply_bytes = c->getZExtValue();
      else
        p.reply_bytes = alloca_b.CreateAlloca(i64, nullptr, "prof.reply_bytes");

      // Zeroed at entry; the site's counter index (a local function's caller is the thread's
      // current function, which cannot change while this frame runs).
      llvm::IRBuilder<> sb(setup);
      for (llvm::AllocaInst *a : {p.calls, p.call_bytes, p.reply_bytes})
        if (a)
          sb.CreateStore(sb.getInt64(0), a);
      if (site.caller != CallSite::kDynamicCaller) {
        p.index = sb.getInt64(layout.counterIndex(s));
      } else {
        llvm::Value *caller = sb.CreateZExt(sb.CreateLoad(i32, current_slot), i64);
        p.index = sb.CreateAdd(sb.getInt64(layout.counterIndex(s, 0)),
                               sb.CreateMul(caller, sb.getInt64(kSiteCounters)));
      }

      llvm::Value *calls = b.CreateAdd(b.CreateLoad(i64, p.calls), b.getInt64(1));
      b.CreateStore(calls, p.calls);
      if (p.call_bytes)
        b.CreateStore(b.CreateAdd(b.CreateLoad(i64, p.call_bytes), call_bytes), p.call_bytes);
      if (p.reply_bytes)
        b.CreateStore(b.CreateAdd(b.CreateLoad(i64, p.reply_bytes), reply_bytes), p.reply_bytes);
      pending.push_back(p);
      llvm::Value *now = loadGeneration(b);
      llvm::Instruction *changed = llvm::SplitBlockAndInsertIfThen(
          b.CreateICmpNE(now, b.CreateLoad(i32, seen)), call, /*Unreachable=*/false);
      flush_points.push_back({changed, now});
    }
    // At a generation change, every site of the frame is flushed (their locals are all set up
    // at entry), so a frame's counts are never older than the generation it saw last.
    for (auto [at, now] : flush_points) {
      llvm::IRBuilder<> fb(at);
      for (const Pending &p : pending)
        flush(fb, entry.block, p);
      fb.CreateStore(now, seen);
    }
    // Before every return and every call that does not return (exit, abort...).
    std::vector<llvm::Instruction *> exits;
    for (llvm::BasicBlock &bb : *f)
      for (llvm::Instruction &i : bb) {
        if (llvm::isa<llvm::ReturnInst>(i))
          exits.push_back(&i);
        else if (auto *call = llvm::dyn_cast<llvm::CallBase>(&i); call && call->doesNotReturn())
          exits.push_back(&i);
      }
    for (llvm::Instruction *exit : exits) {
      llvm::IRBuilder<> eb(exit);
      for (const Pending &p : pending)
        flush(eb, entry.block, p);
    }
  }
  return layout;
}

} // namespace distnode::profiler
