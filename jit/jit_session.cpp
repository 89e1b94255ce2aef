// jit_session.cpp - one application program loaded into an LLVM ORC JIT on this node.
#include "jit/jit_session.h"

#include "jit/bitcode.h"
#include "jit/code_cache.h"
#include "jit/code_ranges.h"
#include "jit/program_analysis.h"
#include "jit/stack_reserve.h"
#include "jit/unit_gate.h"
#include "jit/unit_gate_ir.h"
#include "profiler/instrument.h"
#include "profiler/profiler.h"

#include "llvm/ExecutionEngine/JITLink/JITLink.h"
#include "llvm/ExecutionEngine/Orc/CompileUtils.h"
#include "llvm/ExecutionEngine/Orc/Core.h"
#include "llvm/ExecutionEngine/Orc/IndirectionUtils.h"
#include "llvm/ExecutionEngine/Orc/JITTargetMachineBuilder.h"
#include "llvm/ExecutionEngine/Orc/LLJIT.h"
#include "llvm/ExecutionEngine/Orc/ObjectLinkingLayer.h"
#include "llvm/ExecutionEngine/Orc/ThreadSafeModule.h"
#include "llvm/IR/IRBuilder.h"
#include "llvm/IR/LLVMContext.h"
#include "llvm/IR/Module.h"
#include "llvm/IR/Verifier.h"
#include "llvm/Passes/PassBuilder.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/Support/raw_ostream.h"
#include "llvm/Target/TargetMachine.h"
#include "llvm/TargetParser/Host.h"
#include "llvm/Transforms/Utils/BasicBlockUtils.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <iostream>
#include <map>
#include <mutex>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>
#include <unordered_map>

namespace distnode::jit {

namespace orc = llvm::orc;

namespace {

llvm::Error fail(const std::string &message) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), message);
}

// The session whose program is running `main`; the program's exit() is routed to it so that
// atexit handlers registered inside the JIT run, as they would natively.
std::atomic<JitSession *> running_session{nullptr};
std::function<void()> running_deinit;

int running_exit_code = 0;

// The process that made the session; another one is a child made by fork().
std::atomic<pid_t> session_pid{0};

bool inForkedChild() { return getpid() != session_pid.load(std::memory_order_relaxed); }

// Where the program's end goes in a process that does not run main (a member node): the node
// that does.
std::function<void(int, ExitKind)> exit_elsewhere;

// The program's end has begun (exit() called, or main returned), on `ending_thread`: it happens
// once. Reset when main starts.
std::atomic<bool> program_ending{false};
std::atomic<pthread_t> ending_thread{};

// The running session's exit hook, and whether it ran: it runs once, however the program ends
// (an _exit() inside an atexit handler, say, after an exit() began).
std::function<void(int, ExitKind)> running_hook;
std::atomic<bool> end_hook_ran{false};

void runEndHook(int code, ExitKind how) {
  if (running_hook && !end_hook_ran.exchange(true))
    running_hook(code, how);
}

// Claims the program's end for this thread; false if another thread has it (this one must then
// wait for the process to end, as a second exit() would).
bool claimProgramEnd() {
  if (program_ending.exchange(true))
    return false;
  ending_thread.store(pthread_self());
  return true;
}

[[noreturn]] void waitForProgramEnd() {
  while (true)
    ::pause();
}

// What the program's _exit() asks of the node it runs on (JitSession::setImmediateEnd).
std::function<bool(int)> immediate_end;

// How long a thread that called _exit() waits for its node to end the process (after telling
// the other nodes) before it ends it itself: longer than a stop of the cluster takes.
constexpr std::chrono::seconds kImmediateEndBound{10};

// The program's _exit()/_Exit(). It may come from a signal handler that interrupted this very
// thread inside malloc or a lock of the runtime's, so it does only what is async-signal-safe:
// it asks the node to stop the cluster and end the process (the node's control thread does
// that), and ends the process itself if that has not happened within kImmediateEndBound.
// Another end of the program in progress (exit() on another thread, main returning) does not
// hold it up: _exit() ends the process at once.
[[noreturn]] void endImmediately(int code) {
  if (!inForkedChild() && immediate_end && immediate_end(code)) {
    timespec now{}, until{};
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += kImmediateEndBound.count();
    do { // a signal may cut a pause short
      ::poll(nullptr, 0, 100);
      clock_gettime(CLOCK_MONOTONIC, &now);
    } while (now.tv_sec < until.tv_sec ||
             (now.tv_sec == until.tv_sec && now.tv_nsec < until.tv_nsec));
  }
  ::_exit(code);
}

[[noreturn]] void programEnd(int code, ExitKind how) {
  if (how == ExitKind::Immediate)
    endImmediately(code);
  // The program is one process: it ends where main runs (its atexit handlers, its buffered
  // output), and that ends every node. A forked child's end is its own.
  if (!running_session.load() && exit_elsewhere && !inForkedChild()) {
    exit_elsewhere(code, how);
    std::abort(); // exit_elsewhere does not return
  }
  // A child made by fork() has none of the runtime's threads: the runtime's own static
  // destructors (which join them) must not run there, and it has no cluster to stop.
  const bool child = inForkedChild();
  if (child && how == ExitKind::Quick)
    ::quick_exit(code); // our at_quick_exit handler does nothing in a child
  // Ending from several threads at once, or main returning meanwhile, is undefined in C; here
  // the first one ends the program and the others wait for it. An end asked again on the
  // thread that ends it (inside an atexit handler) ends the process at once.
  if (!claimProgramEnd() && !child) {
    if (!pthread_equal(ending_thread.load(), pthread_self()))
      waitForProgramEnd();
    runEndHook(code, how);
    if (how == ExitKind::Normal)
      std::fflush(nullptr);
    std::_Exit(code);
  }
  running_exit_code = code;
  if (how == ExitKind::Quick)
    ::quick_exit(code); // the program's at_quick_exit handlers, then onQuickExit
  if (running_deinit)
    running_deinit();
  if (child) {
    std::fflush(nullptr);
    std::_Exit(code);
  }
  std::exit(code);
}

[[noreturn]] void programExit(int code) { programEnd(code, ExitKind::Normal); }
[[noreturn]] void programQuickExit(int code) { programEnd(code, ExitKind::Quick); }
[[noreturn]] void programImmediateExit(int code) { programEnd(code, ExitKind::Immediate); }

// The program's at_quick_exit(): the C library keeps it outside its shared object (as atexit),
// so a program in the JIT finds it here.
int programAtQuickExit(void (*handler)()) { return std::at_quick_exit(handler); }

// Registered before the program's constructors run, so it runs after every at_quick_exit
// handler of the program: the exit hook (which stops the cluster) comes last, as after exit().
void onQuickExit() {
  if (!inForkedChild())
    runEndHook(running_exit_code, ExitKind::Quick);
}

// The program's rand()/random() state. glibc keeps one per process, and libraries of the
// runtime (ZeroMQ seeds and draws from it for connection ids) would change the program's
// sequence; the program gets a private state with glibc's own algorithm and default seed (1),
// so its numbers are those of a native run.
struct ProgramRandom {
  std::mutex mu;
  random_data data{};
  char state[128] = {};
  ProgramRandom() { initstate_r(1, state, sizeof state, &data); }
};

ProgramRandom &programRandom() {
  static ProgramRandom r;
  return r;
}

long programRandomNext() {
  ProgramRandom &r = programRandom();
  std::lock_guard lock(r.mu);
  std::int32_t result = 0;
  random_r(&r.data, &result);
  return result;
}

void programRandomSeed(unsigned seed) {
  ProgramRandom &r = programRandom();
  std::lock_guard lock(r.mu);
  srandom_r(seed, &r.data);
}

int programRand() { return static_cast<int>(programRandomNext()); }

void initializeNativeTarget() {
  static std::once_flag once;
  std::call_once(once, [] {
    llvm::InitializeNativeTarget();
    llvm::InitializeNativeTargetAsmPrinter();
    llvm::InitializeNativeTargetAsmParser(); // inline assembly in the program
  });
}

// Runs the O2 pipeline, tuned for the target machine, over one module.
void optimizeModule(llvm::Module &m, llvm::TargetMachine *tm) {
  llvm::LoopAnalysisManager lam;
  llvm::FunctionAnalysisManager fam;
  llvm::CGSCCAnalysisManager cgam;
  llvm::ModuleAnalysisManager mam;
  llvm::PassBuilder pb(tm);
  pb.registerModuleAnalyses(mam);
  pb.registerCGSCCAnalyses(cgam);
  pb.registerFunctionAnalyses(fam);
  pb.registerLoopAnalyses(lam);
  pb.crossRegisterProxies(lam, fam, cgam, mam);
  pb.buildPerModuleDefaultPipeline(llvm::OptimizationLevel::O2).run(m, mam);
  // For people working on distnode: the optimized IR, as the JIT compiles it.
  if (const char *dump = std::getenv("DISTNODE_DUMP_IR")) {
    std::error_code ec;
    llvm::raw_fd_ostream out(dump, ec, llvm::sys::fs::OF_Append);
    if (!ec)
      m.print(out, nullptr);
  }
}

// The names of external symbols the program references that must come from this process.
std::vector<std::string> externalReferences(const llvm::Module &m) {
  std::vector<std::string> names;
  for (const llvm::GlobalValue &g : m.global_values()) {
    if (!g.isDeclaration() || g.hasExternalWeakLinkage() || g.use_empty())
      continue;
    if (auto *f = llvm::dyn_cast<llvm::Function>(&g); f && f->isIntrinsic())
      continue;
    names.push_back(g.getName().str());
  }
  return names;
}

// The first function that references `name`, for the error message.
std::string firstUser(const llvm::Module &m, const std::string &name) {
  const llvm::GlobalValue *g = m.getNamedValue(name);
  if (!g)
    return "";
  llvm::SmallVector<const llvm::User *, 8> work(g->user_begin(), g->user_end());
  while (!work.empty()) {
    const llvm::User *u = work.pop_back_val();
    if (auto *i = llvm::dyn_cast<llvm::Instruction>(u))
      return i->getFunction()->getName().str();
    if (llvm::isa<llvm::Constant>(u) && !llvm::isa<llvm::GlobalValue>(u))
      work.append(u->user_begin(), u->user_end());
  }
  return "";
}

} // namespace

struct JitSession::Impl {
  std::string path;
  // The code cache (or null): the JIT's compiler hands it objects for as long as the JIT
  // lives (also when it compiles its own deinitialization code), so it is destroyed after it.
  std::unique_ptr<CodeCache> cache;
  std::unique_ptr<orc::LLJIT> jit;
  std::unique_ptr<orc::IndirectStubsManager> stubs;
  std::vector<RemoteSignature> functions;
  std::vector<std::uint64_t> impl_addr, remote_addr;
  std::vector<DispatchFn> dispatch;
  std::unique_ptr<std::atomic<std::uint8_t>[]> linked; // StubTarget per function
  std::string cache_status;                            // what the code cache did
  bool profiling = false;                              // the program is instrumented
  std::vector<std::uint32_t> profile_ids;              // profiler id by remote id
  RemoteHandler remote_handler;
  std::function<void(int, ExitKind)> exit_hook;
  /// GPin objects of this node known to other nodes by id, one table per placement unit.
  std::vector<std::unique_ptr<HandleTable>> handles;
  /// The gates of migratable units, and where each one's state lies (address, bytes).
  std::unique_ptr<UnitGates> gates;
  std::vector<std::vector<std::pair<std::uint8_t *, std::size_t>>> state;
};

namespace {

constexpr const char *kCallRemoteSymbol = "__distnode_call_remote";
constexpr const char *kUnitEnterSymbol = "__distnode_unit_enter";
constexpr const char *kUnitExitSymbol = "__distnode_unit_exit";
constexpr const char *kThreadInitSymbol = "__distnode_prof_thread_init";
// Data of this process the generated code refers to by name, never by address, so that the
// compiled object is the same in every run and can be cached (code_cache.h); each is an
// absolute symbol defined when the session is created.
constexpr const char *kSessionSymbol = "__distnode_session"; // the JitSession::Impl
constexpr const char *kGatesSymbol = "__distnode_gates";     // the UnitGates
constexpr const char *kLinkedSymbol = "__distnode_linked";   // the link flags, by id
constexpr const char *kFlushGenerationSymbol = "__distnode_prof_generation";
constexpr const char *kStringBytesSymbol = "__distnode_prof_string_bytes";

// Bytes a `const char *` argument takes in a call blob (remote_call.h): the presence flag is
// counted statically; a present string adds its length and the 8-byte length field.
std::uint64_t stringBytes(const char *s) { return s ? 8 + std::strlen(s) : 0; }

// The i64 element count of a buffer parameter at a call (negative counts count as 0).
llvm::Value *emitCount(llvm::IRBuilderBase &b, llvm::CallBase &call, const RemoteSignature &sig,
                       const ValuePlan &p) {
  if (p.count_param < 0)
    return b.getInt64(p.count_value);
  llvm::Value *v = call.getArgOperand(sig.params[p.count_param].ir_args.at(0));
  llvm::Value *wide = b.CreateSExtOrTrunc(v, b.getInt64Ty());
  return b.CreateSelect(b.CreateICmpSLT(wide, b.getInt64(0)), b.getInt64(0), wide);
}

// `present ? 8 + bytes : 0` for a pointer argument.
llvm::Value *ifPresent(llvm::IRBuilderBase &b, llvm::Value *pointer, llvm::Value *bytes) {
  return b.CreateSelect(b.CreateIsNotNull(pointer), b.CreateAdd(b.getInt64(8), bytes),
                        b.getInt64(0));
}

// Emits the exact size of the argument blob marshalCall would produce for this call, so that
// the profile counts the same bytes whether the call stays local or crosses nodes.
llvm::Value *emitCallBytes(llvm::IRBuilderBase &b, llvm::CallBase &call, const RemoteSignature &sig,
                           llvm::Function *string_bytes) {
  std::uint64_t fixed = 0;
  llvm::Value *total = nullptr;
  auto add = [&](llvm::Value *v) { total = total ? b.CreateAdd(total, v) : v; };
  for (const ValuePlan &p : sig.params) {
    llvm::Value *arg = call.getArgOperand(p.ir_args.at(0));
    switch (p.kind) {
    case MarshalKind::StructByValue:
      if (p.ir_args.size() == 1 && sig.ir_arg_byval[p.ir_args[0]]) {
        fixed += p.size;
        break;
      }
      [[fallthrough]];
    case MarshalKind::Integer:
    case MarshalKind::Float:
    case MarshalKind::GPinHandle:
      for (unsigned a : p.ir_args)
        fixed += sig.ir_arg_sizes[a];
      break;
    case MarshalKind::CString:
      fixed += 1;
      add(b.CreateCall(string_bytes, {arg}));
      break;
    case MarshalKind::BufferIn:
    case MarshalKind::BufferInOut:
      fixed += 1;
      add(ifPresent(b, arg, b.CreateMul(emitCount(b, call, sig, p), b.getInt64(p.size))));
      break;
    case MarshalKind::BufferOut:
      fixed += 1;
      break;
    case MarshalKind::StructPtrIn:
    case MarshalKind::StructPtrInOut:
      fixed += 1;
      add(ifPresent(b, arg, b.getInt64(p.size)));
      break;
    default:
      break;
    }
  }
  llvm::Value *result = b.getInt64(fixed);
  return total ? b.CreateAdd(result, total) : result;
}

// Emits the exact size of the reply blob (result and copied-out buffers).
llvm::Value *emitReplyBytes(llvm::IRBuilderBase &b, llvm::CallBase &call,
                            const RemoteSignature &sig) {
  llvm::Value *total = b.getInt64(sig.sret ? sig.result.size : sig.ir_return_size);
  for (const ValuePlan &p : sig.params) {
    llvm::Value *arg = call.getArgOperand(p.ir_args.at(0));
    if (p.kind == MarshalKind::BufferOut || p.kind == MarshalKind::BufferInOut)
      total = b.CreateAdd(
          total, ifPresent(b, arg, b.CreateMul(emitCount(b, call, sig, p), b.getInt64(p.size))));
    else if (p.kind == MarshalKind::StructPtrInOut)
      total = b.CreateAdd(total, ifPresent(b, arg, b.getInt64(p.size)));
  }
  return total;
}

// What every remote thunk calls: the session's remote handler.
void callRemote(void *context, std::uint32_t id, void **slots, void *ret) {
  auto *impl = static_cast<JitSession::Impl *>(context);
  if (!impl->remote_handler) {
    std::cerr << "distnode: error: `" << impl->functions[id].name
              << "` is linked to a remote node, but this node has no transport\n";
    std::abort();
  }
  impl->remote_handler(id, slots, ret);
}

// What a stub points at before it is linked: never reached once Create returned.
void stubNotLinked() {
  std::cerr << "distnode: error: internal: a function stub was called before it was linked\n";
  std::abort();
}

// A declaration of the process data named `symbol` (see kSessionSymbol): its address is the
// data's.
llvm::Constant *runtimeData(llvm::Module &m, const char *symbol) {
  return m.getOrInsertGlobal(symbol, llvm::Type::getInt8Ty(m.getContext()));
}

// Moves the body of `name` to `name.impl` behind a fresh declaration `name` (resolved to the
// stub), and generates `name.remote` (same signature; hands its arguments to the runtime as
// slots) and `name.dispatch` (takes slots, calls the body). RAUW to a declaration,
// not a rename, so that every use, including address-taken ones, goes through the stub.
void rewriteFunction(llvm::Module &m, const std::string &name, std::uint32_t id,
                     llvm::Function *call_remote, llvm::Constant *context, RemoteSignature &sig) {
  llvm::LLVMContext &ctx = m.getContext();
  const llvm::DataLayout &dl = m.getDataLayout();
  llvm::Function *body = m.getFunction(name);
  llvm::FunctionType *type = body->getFunctionType();
  llvm::AttributeList attrs = body->getAttributes();
  llvm::Type *ptr = llvm::PointerType::getUnqual(ctx);

  body->setName(name + ".impl");
  body->setLinkage(llvm::GlobalValue::ExternalLinkage);
  body->setVisibility(llvm::GlobalValue::DefaultVisibility);
  llvm::Function *decl = llvm::Function::Create(type, llvm::GlobalValue::ExternalLinkage, name, m);
  decl->setAttributes(attrs);
  decl->setCallingConv(body->getCallingConv());
  body->replaceAllUsesWith(decl);

  for (unsigned i = 0; i < type->getNumParams(); ++i) {
    sig.ir_arg_sizes.push_back(
        static_cast<std::uint32_t>(dl.getTypeStoreSize(type->getParamType(i))));
    sig.ir_arg_byval.push_back(body->hasParamAttribute(i, llvm::Attribute::ByVal));
  }
  llvm::Type *ret_type = type->getReturnType();
  sig.ir_return_size =
      ret_type->isVoidTy() ? 0 : static_cast<std::uint32_t>(dl.getTypeStoreSize(ret_type));
  sig.sret = type->getNumParams() > 0 && body->hasParamAttribute(0, llvm::Attribute::StructRet);

  // name.remote: spill each argument, pass the slot array to the runtime.
  {
    llvm::Function *thunk =
        llvm::Function::Create(type, llvm::GlobalValue::ExternalLinkage, name + ".remote", m);
    thunk->setAttributes(attrs);
    thunk->setCallingConv(body->getCallingConv());
    llvm::IRBuilder<> b(llvm::BasicBlock::Create(ctx, "entry", thunk));
    unsigned n = type->getNumParams();
    auto *slots_type = llvm::ArrayType::get(ptr, std::max(n, 1u));
    llvm::Value *slots = b.CreateAlloca(slots_type, nullptr, "slots");
    for (unsigned i = 0; i < n; ++i) {
      llvm::Value *cell = b.CreateAlloca(type->getParamType(i));
      b.CreateStore(thunk->getArg(i), cell);
      b.CreateStore(cell, b.CreateConstInBoundsGEP2_32(slots_type, slots, 0, i));
    }
    llvm::Value *ret = llvm::ConstantPointerNull::get(llvm::PointerType::getUnqual(ctx));
    if (!ret_type->isVoidTy())
      ret = b.CreateAlloca(ret_type, nullptr, "ret");
    b.CreateCall(call_remote, {context, b.getInt32(id), slots, ret});
    if (ret_type->isVoidTy())
      b.CreateRetVoid();
    else
      b.CreateRet(b.CreateLoad(ret_type, ret));
  }
  // name.dispatch(slots, ret): load each argument from its slot, call the body.
  {
    auto *dispatch_type = llvm::FunctionType::get(llvm::Type::getVoidTy(ctx), {ptr, ptr}, false);
    llvm::Function *dispatch = llvm::Function::Create(
        dispatch_type, llvm::GlobalValue::ExternalLinkage, name + ".dispatch", m);
    llvm::IRBuilder<> b(llvm::BasicBlock::Create(ctx, "entry", dispatch));
    std::vector<llvm::Value *> args;
    for (unsigned i = 0; i < type->getNumParams(); ++i) {
      llvm::Value *cell =
          b.CreateLoad(ptr, b.CreateConstInBoundsGEP1_64(ptr, dispatch->getArg(0), i));
      // Slots are byte buffers on the serving side: no alignment is promised.
      args.push_back(b.CreateAlignedLoad(type->getParamType(i), cell, llvm::Align(1)));
    }
    llvm::CallInst *call = b.CreateCall(type, body, args);
    call->setAttributes(attrs);
    call->setCallingConv(body->getCallingConv());
    if (!ret_type->isVoidTy())
      b.CreateAlignedStore(call, dispatch->getArg(1), llvm::Align(1));
    b.CreateRetVoid();
  }
}

// Calls between the functions of one placement unit never cross nodes (a unit is placed
// whole), so after rewriteFunction they call the body itself: a direct call the optimizer may
// inline, with no stub and no edge counter (the profiler counts calls of the declaration
// only). A function's calls to itself are such calls. Uses that are not direct calls (a
// function's address) keep going through the stub.
void callBodiesInsideUnits(llvm::Module &m, const ProgramAnalysis &analysis) {
  std::unordered_map<const llvm::Function *, int> unit_of; // IR body → its unit
  for (const FunctionInfo &f : analysis.functions)
    if (f.unit >= 0)
      if (llvm::Function *fn = m.getFunction(f.remote_id >= 0 ? f.name + ".impl" : f.name))
        unit_of[fn] = f.unit;
  for (const FunctionInfo &f : analysis.functions) {
    if (f.remote_id < 0)
      continue;
    llvm::Function *decl = m.getFunction(f.name);
    llvm::Function *body = m.getFunction(f.name + ".impl");
    if (!decl || !body)
      continue;
    for (llvm::Use &use : llvm::make_early_inc_range(decl->uses())) {
      auto *call = llvm::dyn_cast<llvm::CallBase>(use.getUser());
      if (!call || !call->isCallee(&use))
        continue;
      auto caller = unit_of.find(call->getFunction());
      if (caller != unit_of.end() && caller->second == f.unit)
        use.set(body);
    }
  }
}

// Every remaining direct call of a remotable function's stub (a call from another unit, or
// from a local function) becomes a guarded call: one relaxed load of the function's link flag
// (`linked[id]`, JitSession::relink) and a compare; while the function runs on this node the
// call goes straight to its body (its gated wrapper for a unit whose state migrates), which
// the optimizer may inline; otherwise through the stub. A re-placement needs no recompilation:
// relink() flips the flag with the stub and the next call takes the stub. A call that read the
// flag just before the flip runs here once more, as a call that read the stub just before would:
// harmless for a stateless unit, and a migratable unit's gated wrapper sends it to the owner.
// Runs after instrumentation, so that the call's edge counters stay in front of both paths.
//
// The optimizer decides whether the direct branch is inlined. With profiling, CPU samples are
// charged by the address they hit, and an inlined body is found by the debug info's inlined
// ranges (code_ranges.h), so it keeps its own time. Code without debug info (a source not
// compiled with dist-cc's -g) gives no such ranges: with profiling, a call is not inlined
// unless both the body and its caller have debug info, or the body's time would be charged to
// its caller's unit and mislead the planner.
void guardCalls(llvm::Module &m, const std::vector<RemoteSignature> &functions,
                const UnitGates &gates, bool profiled) {
  llvm::LLVMContext &ctx = m.getContext();
  llvm::Type *i8 = llvm::Type::getInt8Ty(ctx);
  llvm::Constant *linked = runtimeData(m, kLinkedSymbol);
  for (const RemoteSignature &sig : functions) {
    llvm::Function *decl = m.getFunction(sig.name);
    llvm::Function *body = m.getFunction(sig.name + ".impl");
    llvm::Function *fast = gates.gated(sig.unit) ? m.getFunction(gatedName(sig.name)) : body;
    if (!decl || !body || !fast)
      continue;
    llvm::Constant *flag_addr = llvm::ConstantExpr::getInBoundsGetElementPtr(
        i8, linked, llvm::ConstantInt::get(llvm::Type::getInt64Ty(ctx), sig.id));
    for (llvm::Use &use : llvm::make_early_inc_range(decl->uses())) {
      auto *call = llvm::dyn_cast<llvm::CallInst>(use.getUser());
      if (!call || !call->isCallee(&use) || call->isMustTailCall())
        continue;
      llvm::IRBuilder<> b(call);
      llvm::LoadInst *flag = b.CreateAlignedLoad(i8, flag_addr, llvm::Align(1), "linked");
      flag->setAtomic(llvm::AtomicOrdering::Monotonic);
      llvm::Value *here =
          b.CreateICmpEQ(flag, b.getInt8(static_cast<std::uint8_t>(StubTarget::Local)));
      llvm::Instruction *then_term = nullptr, *else_term = nullptr;
      llvm::SplitBlockAndInsertIfThenElse(here, call, &then_term, &else_term);
      llvm::BasicBlock *tail = call->getParent();
      auto *direct = llvm::cast<llvm::CallInst>(call->clone());
      direct->setCalledOperand(fast); // the call's own type (an unprototyped call may differ)
      if (profiled && (!body->getSubprogram() || !call->getFunction()->getSubprogram()))
        direct->addFnAttr(llvm::Attribute::NoInline);
      direct->setTailCallKind(llvm::CallInst::TCK_None);
      direct->insertBefore(then_term);
      call->moveBefore(else_term);
      if (!call->getType()->isVoidTy()) {
        llvm::PHINode *phi = llvm::PHINode::Create(call->getType(), 2, "", &tail->front());
        call->replaceAllUsesWith(phi);
        phi->addIncoming(direct, direct->getParent());
        phi->addIncoming(call, call->getParent());
      }
    }
  }
}

} // namespace

JitSession::JitSession(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

JitSession::~JitSession() = default;

llvm::Expected<std::unique_ptr<JitSession>>
JitSession::Create(Program program, const ProgramAnalysis &analysis, const JitOptions &options) {
  initializeNativeTarget();
  session_pid.store(getpid(), std::memory_order_relaxed);
  auto impl = std::make_unique<Impl>();
  impl->path = program.path;
  // What the C library names the program by (assert(), err(), error()): the program, not
  // distnode. Set once per process, for every node's copy alike; never freed, as the library
  // may hold it.
  static std::once_flag named;
  std::call_once(named, [&] {
    program_invocation_name = strdup(program.path.c_str());
    const char *slash = std::strrchr(program_invocation_name, '/');
    program_invocation_short_name = slash ? const_cast<char *>(slash + 1) : program_invocation_name;
  });

  // The generic CPU of the process's triple (no host-specific features such as FMA): the same
  // code and the same floating-point results on every node, and as a native `clang -O2` build.
  llvm::Triple triple(llvm::sys::getProcessTriple());
  orc::JITTargetMachineBuilder jtmb{triple};
  jtmb.setCodeGenOptLevel(llvm::CodeGenOptLevel::Default);
  auto tm = jtmb.createTargetMachine();
  if (!tm)
    return tm.takeError();

  // With a code cache, the compiler hands every object it makes to the cache (code_cache.h).
  if (!options.code_cache_dir.empty())
    impl->cache = std::make_unique<CodeCache>(options.code_cache_dir);
  CodeCache *cache = impl->cache.get();
  orc::LLJITBuilder builder;
  builder.setJITTargetMachineBuilder(jtmb);
  if (cache)
    builder.setCompileFunctionCreator(
        [cache](orc::JITTargetMachineBuilder machine)
            -> llvm::Expected<std::unique_ptr<orc::IRCompileLayer::IRCompiler>> {
          auto tm = machine.createTargetMachine();
          if (!tm)
            return tm.takeError();
          return std::make_unique<orc::TMOwningSimpleCompiler>(std::move(*tm), cache);
        });
  auto jit = builder.create();
  if (!jit)
    return jit.takeError();
  impl->jit = std::move(*jit);
  orc::LLJIT &j = *impl->jit;

  if (options.optimize) {
    std::shared_ptr<llvm::TargetMachine> machine = std::move(*tm);
    j.getIRTransformLayer().setTransform(
        [machine](orc::ThreadSafeModule tsm,
                  orc::MaterializationResponsibility &) -> llvm::Expected<orc::ThreadSafeModule> {
          tsm.withModuleDo([&](llvm::Module &m) { optimizeModule(m, machine.get()); });
          return tsm;
        });
  }

  orc::JITDylib &main_jd = j.getMainJITDylib();
  // C library functions the runtime provides in its own way, for the program only. A name the
  // program defines itself (also as a static function) is the program's: its definition wins,
  // as when it is linked natively, so only names it declares and does not define are taken.
  llvm::Module &module = *program.module;
  orc::SymbolMap interposed;
  auto callable = llvm::JITSymbolFlags::Exported | llvm::JITSymbolFlags::Callable;
  auto interpose = [&](llvm::StringRef name, orc::ExecutorAddr address) {
    const llvm::Function *f = module.getFunction(name);
    if (f && f->isDeclaration())
      interposed[j.mangleAndIntern(name)] = {address, callable};
  };
  interpose("exit", orc::ExecutorAddr::fromPtr(&programExit));
  interpose("quick_exit", orc::ExecutorAddr::fromPtr(&programQuickExit));
  interpose("at_quick_exit", orc::ExecutorAddr::fromPtr(&programAtQuickExit));
  interpose("_exit", orc::ExecutorAddr::fromPtr(&programImmediateExit));
  interpose("_Exit", orc::ExecutorAddr::fromPtr(&programImmediateExit));
  interpose("rand", orc::ExecutorAddr::fromPtr(&programRand));
  interpose("random", orc::ExecutorAddr::fromPtr(&programRandomNext));
  interpose("srand", orc::ExecutorAddr::fromPtr(&programRandomSeed));
  interpose("srandom", orc::ExecutorAddr::fromPtr(&programRandomSeed));
  interposed[j.mangleAndIntern(kCallRemoteSymbol)] = {orc::ExecutorAddr::fromPtr(&callRemote),
                                                      callable};
  if (auto err = main_jd.define(orc::absoluteSymbols(std::move(interposed))))
    return err;

  // Resolve every external reference now, so that a missing one is one clear error instead of
  // a failure in the middle of the run.
  if (module.getDataLayout().isDefault())
    module.setDataLayout(j.getDataLayout());
  orc::JITDylibSearchOrder order;
  main_jd.withLinkOrderDo([&](const orc::JITDylibSearchOrder &lo) { order = lo; });
  order.insert(order.begin(), {&main_jd, orc::JITDylibLookupFlags::MatchAllSymbols});
  std::vector<std::string> wanted = externalReferences(module);
  orc::SymbolLookupSet lookup;
  for (const auto &name : wanted)
    lookup.add(j.mangleAndIntern(name), orc::SymbolLookupFlags::WeaklyReferencedSymbol);
  auto found = j.getExecutionSession().lookup(order, std::move(lookup));
  if (!found)
    return found.takeError();
  for (const auto &name : wanted) {
    if (found->count(j.mangleAndIntern(name)))
      continue;
    std::string user = firstUser(module, name);
    return fail(program.path + ": unresolved external symbol `" + name + "`" +
                (user.empty() ? "" : " (used by `" + user + "`)") +
                "; define it in the program or link the source that defines it with dist-cc");
  }

  // Remotable functions, by the ids the analysis gave them.
  std::vector<const FunctionInfo *> remotable;
  for (const FunctionInfo &f : analysis.functions)
    if (f.remote_id >= 0) {
      if (remotable.size() <= static_cast<size_t>(f.remote_id))
        remotable.resize(f.remote_id + 1, nullptr);
      remotable[f.remote_id] = &f;
    }
  for (const FunctionInfo *f : remotable) {
    const llvm::Function *fn = f ? module.getFunction(f->name) : nullptr;
    if (!fn || fn->isDeclaration())
      return fail(program.path + ": internal: the analysis does not match the module");
  }

  llvm::LLVMContext &ctx = module.getContext();
  llvm::Type *ptr = llvm::PointerType::getUnqual(ctx);
  auto *call_remote_type = llvm::FunctionType::get(
      llvm::Type::getVoidTy(ctx), {ptr, llvm::Type::getInt32Ty(ctx), ptr, ptr}, false);
  llvm::Function *call_remote = llvm::Function::Create(
      call_remote_type, llvm::GlobalValue::ExternalLinkage, kCallRemoteSymbol, module);
  llvm::Constant *context = runtimeData(module, kSessionSymbol);

  impl->stubs = orc::createLocalIndirectStubsManagerBuilder(triple)();
  if (!impl->stubs)
    return fail("indirect stubs are not supported on " + triple.str());
  orc::IndirectStubsManager::StubInitsMap inits;
  for (std::uint32_t id = 0; id < remotable.size(); ++id) {
    const FunctionInfo &f = *remotable[id];
    RemoteSignature sig;
    sig.id = id;
    sig.name = f.name;
    sig.unit = static_cast<std::uint32_t>(f.unit);
    sig.params = f.params;
    sig.result = f.result;
    rewriteFunction(module, f.name, id, call_remote, context, sig);
    while (impl->handles.size() <= sig.unit)
      impl->handles.push_back(
          std::make_unique<HandleTable>(1, static_cast<std::uint16_t>(impl->handles.size())));
    impl->functions.push_back(std::move(sig));
    inits[f.name] = {orc::ExecutorAddr::fromPtr(&stubNotLinked), callable};
  }
  callBodiesInsideUnits(module, analysis);
  // Until the stubs are linked below, every guarded call takes the stub.
  impl->linked.reset(new std::atomic<std::uint8_t>[impl->functions.size()]);
  for (std::size_t id = 0; id < impl->functions.size(); ++id)
    impl->linked[id] = static_cast<std::uint8_t>(StubTarget::Remote);
  if (!inits.empty()) {
    if (auto err = impl->stubs->createStubs(inits))
      return err;
    orc::SymbolMap stub_symbols;
    for (const auto &f : impl->functions)
      stub_symbols[j.mangleAndIntern(f.name)] = impl->stubs->findStub(f.name, false);
    if (auto err = main_jd.define(orc::absoluteSymbols(std::move(stub_symbols))))
      return err;
  }

  // State migration: gated entries and state tables for the units whose state can move.
  std::vector<bool> migratable;
  for (const PlacementUnit &u : analysis.units)
    migratable.push_back(u.migratable);
  impl->gates = std::make_unique<UnitGates>(migratable);
  if (std::find(migratable.begin(), migratable.end(), true) != migratable.end()) {
    llvm::Constant *gates = runtimeData(module, kGatesSymbol);
    if (auto err = addUnitGates(module, analysis, impl->functions, gates, kUnitEnterSymbol,
                                kUnitExitSymbol))
      return err;
    orc::SymbolMap hooks;
    hooks[j.mangleAndIntern(kUnitEnterSymbol)] = {orc::ExecutorAddr::fromPtr(&distUnitEnter),
                                                  callable};
    hooks[j.mangleAndIntern(kUnitExitSymbol)] = {orc::ExecutorAddr::fromPtr(&distUnitExit),
                                                 callable};
    if (auto err = main_jd.define(orc::absoluteSymbols(std::move(hooks))))
      return err;
  }

  { // the process data the generated code names (kSessionSymbol...)
    orc::SymbolMap data;
    auto exported = llvm::JITSymbolFlags::Exported;
    data[j.mangleAndIntern(kSessionSymbol)] = {orc::ExecutorAddr::fromPtr(impl.get()), exported};
    data[j.mangleAndIntern(kGatesSymbol)] = {orc::ExecutorAddr::fromPtr(impl->gates.get()),
                                             exported};
    data[j.mangleAndIntern(kLinkedSymbol)] = {orc::ExecutorAddr::fromPtr(impl->linked.get()),
                                              exported};
    data[j.mangleAndIntern(kFlushGenerationSymbol)] = {
        orc::ExecutorAddr::fromPtr(&profiler::Profiler::flushGeneration()), exported};
    if (auto err = main_jd.define(orc::absoluteSymbols(std::move(data))))
      return err;
  }

  CodeRangePlugin *code_ranges = nullptr; // owned by the linking layer
  if (options.profile) {
    // Every non-local function is profiled; calls of remotable ones are call edges.
    profiler::InstrumentSpec spec;
    spec.thread_state_offset = profiler::Profiler::threadStateOffset();
    spec.thread_init_symbol = kThreadInitSymbol;
    spec.flush_generation_symbol = kFlushGenerationSymbol;
    auto *string_bytes = llvm::cast<llvm::Function>(
        module
            .getOrInsertFunction(kStringBytesSymbol,
                                 llvm::FunctionType::get(llvm::Type::getInt64Ty(ctx), {ptr}, false))
            .getCallee());
    impl->profiling = true;
    impl->profile_ids.assign(impl->functions.size(), 0);
    for (const FunctionInfo &f : analysis.functions) {
      if (f.placement == Placement::Local)
        continue;
      profiler::ProfiledFunction pf;
      pf.name = f.name;
      pf.body = f.remote_id >= 0 ? f.name + ".impl" : f.name;
      if (!module.getFunction(pf.body))
        continue;
      if (f.remote_id >= 0) {
        const RemoteSignature *sig = &impl->functions[f.remote_id];
        pf.call_bytes = [sig, string_bytes](llvm::IRBuilderBase &b, llvm::CallBase &call) {
          return emitCallBytes(b, call, *sig, string_bytes);
        };
        pf.reply_bytes = [sig](llvm::IRBuilderBase &b, llvm::CallBase &call) {
          return emitReplyBytes(b, call, *sig);
        };
        impl->profile_ids[f.remote_id] = static_cast<std::uint32_t>(spec.functions.size() + 1);
      }
      spec.functions.push_back(std::move(pf));
    }
    std::map<std::string, std::uint32_t> body_ids;
    for (std::size_t i = 0; i < spec.functions.size(); ++i)
      body_ids[spec.functions[i].body] = static_cast<std::uint32_t>(i + 1);
    nameSubprogramsByBody(module, body_ids);
    if (auto *linker = dynamic_cast<orc::ObjectLinkingLayer *>(&j.getObjLinkingLayer())) {
      auto plugin = std::make_unique<CodeRangePlugin>(std::move(body_ids));
      code_ranges = plugin.get();
      linker->addPlugin(std::move(plugin));
    }
    profiler::Profiler::instance().configure(profiler::instrumentModule(module, spec));
    orc::SymbolMap hooks;
    hooks[j.mangleAndIntern(kThreadInitSymbol)] = {
        orc::ExecutorAddr::fromPtr(&profiler::Profiler::threadInit), callable};
    hooks[j.mangleAndIntern(kStringBytesSymbol)] = {orc::ExecutorAddr::fromPtr(&stringBytes),
                                                    callable};
    if (auto err = main_jd.define(orc::absoluteSymbols(std::move(hooks))))
      return err;
  }

  if (options.guard_calls)
    guardCalls(module, impl->functions, *impl->gates, options.profile);
  {
    std::string broken;
    llvm::raw_string_ostream os(broken);
    if (llvm::verifyModule(module, &os))
      return fail("internal: the generated IR does not verify: " + broken.substr(0, 400));
  }
  // A program compiled before with the same options is linked from the code cache; otherwise
  // it is optimized and compiled here (and the cache stores the object).
  bool loaded = false;
  if (cache) {
    std::string key = CodeCache::key(module, options.optimize ? "O2" : "O0");
    if (auto object = cache->load(key)) {
      if (auto err = j.addObjectFile(std::move(object)))
        return err;
      loaded = true;
    } else {
      module.setModuleIdentifier(key);
    }
  }
  if (!loaded) {
    orc::ThreadSafeModule tsm(std::move(program.module), std::move(program.context));
    if (auto err = j.addIRModule(std::move(tsm)))
      return err;
  }

  // Compile now and link every stub to its local body.
  size_t n = impl->functions.size();
  impl->impl_addr.resize(n);
  impl->remote_addr.resize(n);
  impl->dispatch.resize(n);
  for (size_t id = 0; id < n; ++id) {
    const std::string &name = impl->functions[id].name;
    auto body = j.lookup(name + ".impl");
    if (!body)
      return body.takeError();
    auto remote = j.lookup(name + ".remote");
    if (!remote)
      return remote.takeError();
    auto dispatch = j.lookup(name + ".dispatch");
    if (!dispatch)
      return dispatch.takeError();
    orc::ExecutorAddr local = *body;
    if (impl->gates->gated(impl->functions[id].unit)) { // local calls enter through the gate
      auto gated = j.lookup(gatedName(name));
      if (!gated)
        return gated.takeError();
      local = *gated;
    }
    impl->impl_addr[id] = local.getValue();
    impl->remote_addr[id] = remote->getValue();
    impl->dispatch[id] = dispatch->toPtr<DispatchFn>();
    if (auto err = impl->stubs->updatePointer(name, local))
      return err;
    impl->linked[id] = static_cast<std::uint8_t>(StubTarget::Local);
  }
  impl->state.resize(analysis.units.size());
  for (std::uint32_t u = 0; u < analysis.units.size(); ++u) {
    if (!analysis.units[u].migratable)
      continue;
    auto table = j.lookup(stateTableName(u));
    if (!table)
      return table.takeError();
    auto *addresses = table->toPtr<std::uint8_t *const *>();
    for (std::size_t k = 0; k < analysis.units[u].state.size(); ++k)
      impl->state[u].emplace_back(addresses[k], analysis.units[u].state[k].bytes);
  }
  // Everything is in one module: looking up any symbol compiles and links all of it now (the
  // lookups above did, unless the program has no remotable function), not at the first call.
  if (auto err = j.lookup("main").takeError())
    llvm::consumeError(std::move(err)); // a program without main: nothing to run anyway
  if (code_ranges)
    profiler::Profiler::instance().setCodeRanges(code_ranges->ranges());
  if (cache)
    impl->cache_status = cache->status();
  return std::unique_ptr<JitSession>(new JitSession(std::move(impl)));
}

const std::vector<RemoteSignature> &JitSession::remoteFunctions() const { return impl_->functions; }

int JitSession::findFunction(std::string_view name) const {
  for (const auto &f : impl_->functions)
    if (f.name == name)
      return static_cast<int>(f.id);
  return -1;
}

void JitSession::relink(std::uint32_t id, StubTarget target) {
  std::uint64_t addr =
      target == StubTarget::Local ? impl_->impl_addr.at(id) : impl_->remote_addr.at(id);
  if (auto err = impl_->stubs->updatePointer(impl_->functions[id].name, orc::ExecutorAddr(addr))) {
    // The stub was created in Create; updating it cannot fail for a known name.
    llvm::logAllUnhandledErrors(std::move(err), llvm::errs(), "distnode: error: relink: ");
    std::abort();
  }
  impl_->linked[id] = static_cast<std::uint8_t>(target);
}

StubTarget JitSession::linkedTo(std::uint32_t id) const {
  return static_cast<StubTarget>(impl_->linked[id].load());
}

std::string JitSession::codeCacheStatus() const { return impl_->cache_status; }

std::uint32_t JitSession::profileId(std::uint32_t id) const {
  return id < impl_->profile_ids.size() ? impl_->profile_ids[id] : 0;
}

void JitSession::setRemoteHandler(RemoteHandler handler) {
  impl_->remote_handler = std::move(handler);
}

void JitSession::setHandleTag(std::uint16_t tag) {
  for (auto &table : impl_->handles)
    table->setTag(tag);
}

void JitSession::setExitHook(std::function<void(int, ExitKind)> hook) {
  impl_->exit_hook = std::move(hook);
}

void JitSession::setExitElsewhere(std::function<void(int, ExitKind)> forward) {
  exit_elsewhere = std::move(forward);
}

void JitSession::setImmediateEnd(std::function<bool(int)> request) {
  immediate_end = std::move(request);
}

void JitSession::exitProgram(int code, ExitKind how) { programEnd(code, how); }

llvm::Expected<void *> JitSession::lookup(const std::string &name) {
  auto addr = impl_->jit->lookup(name);
  if (!addr)
    return addr.takeError();
  return addr->toPtr<void *>();
}

UnitGates &JitSession::gates() { return *impl_->gates; }

std::vector<std::uint8_t> JitSession::readState(std::uint32_t unit) const {
  std::vector<std::uint8_t> bytes;
  if (unit < impl_->state.size())
    for (const auto &[address, size] : impl_->state[unit])
      bytes.insert(bytes.end(), address, address + size);
  return bytes;
}

std::optional<std::string> JitSession::writeState(std::uint32_t unit, const std::uint8_t *data,
                                                  std::size_t size) {
  if (unit >= impl_->state.size() || impl_->state[unit].empty())
    return "unit " + std::to_string(unit) + " has no state that can migrate";
  std::size_t expected = 0;
  for (const auto &var : impl_->state[unit])
    expected += var.second;
  if (size != expected)
    return "the state of unit " + std::to_string(unit) + " is " + std::to_string(expected) +
           " bytes, not " + std::to_string(size);
  for (const auto &[address, bytes] : impl_->state[unit]) {
    std::memcpy(address, data, bytes);
    data += bytes;
  }
  return std::nullopt;
}

void JitSession::callLocal(std::uint32_t id, void **slots, void *ret) {
  impl_->dispatch.at(id)(slots, ret);
}

bool JitSession::callMarshaled(std::uint32_t id, void **slots, void *ret, std::string &error,
                               std::size_t *args_bytes, std::size_t *reply_bytes) {
  const RemoteSignature &sig = impl_->functions.at(id);
  std::vector<std::uint8_t> args, reply;
  if (!marshalCall(sig, slots, args, error) || !serve(id, args.data(), args.size(), reply, error) ||
      !unmarshalReply(sig, reply.data(), reply.size(), slots, ret, error, args.data(), args.size()))
    return false;
  if (args_bytes)
    *args_bytes = args.size();
  if (reply_bytes)
    *reply_bytes = reply.size();
  return true;
}

bool JitSession::serve(std::uint32_t id, ByteSpan args, std::span<const ByteSpan> parts,
                       const ReplyAllocator &reply, std::string &error) {
  if (impl_->profiling) // this thread's samples count, even in leaf functions
    profiler::Profiler::threadInit();
  if (id >= impl_->functions.size()) {
    error = "unknown function id " + std::to_string(id);
    return false;
  }
  // Calls served on this thread while it waits for a reply (recursion through other nodes).
  static thread_local unsigned nested = 0;
  struct Level {
    Level() { ++nested; }
    ~Level() { --nested; }
  } level;
  const RemoteSignature &sig = impl_->functions[id];
  bool served = false;
  if (!withStackReserve([&] {
        served = serveCall(sig, impl_->dispatch[id], args, parts, reply, *impl_->handles[sig.unit],
                           error);
      })) {
    error = "`" + sig.name + "` not run: " + std::to_string(nested) +
            " calls nested on one thread of this node use all of its stack (" +
            std::to_string(stackBudget() >> 20) +
            " MiB beyond the thread's own; DISTNODE_STACK_BUDGET_MB sets it)";
    return false;
  }
  return served;
}

bool JitSession::serve(std::uint32_t id, const std::uint8_t *args, std::size_t size,
                       std::vector<std::uint8_t> &reply, std::string &error) {
  return serve(
      id, ByteSpan{args, size}, {},
      [&reply](std::size_t n) {
        std::size_t at = reply.size();
        reply.resize(at + n);
        return reply.data() + at;
      },
      error);
}

llvm::Expected<int> JitSession::runMain(const std::vector<std::string> &args) {
  orc::LLJIT &j = *impl_->jit;
  auto main_addr = j.lookup("main");
  if (!main_addr)
    return main_addr.takeError();
  auto *main_fn = main_addr->toPtr<int (*)(int, char *[], char *[])>();

  JitSession *expected = nullptr;
  if (!running_session.compare_exchange_strong(expected, this))
    return fail("another program is already running in this process");
  program_ending = false;
  orc::JITDylib &jd = j.getMainJITDylib();
  running_hook = [this](int code, ExitKind how) {
    if (impl_->exit_hook)
      impl_->exit_hook(code, how);
  };
  end_hook_ran = false;
  static std::once_flag quick_exit_registered;
  std::call_once(quick_exit_registered, [] { std::at_quick_exit(onQuickExit); });
  // atexit handlers may still call remote functions, so the exit hook (which may stop the
  // cluster) runs after them.
  running_deinit = [&j, &jd] {
    if (auto err = j.deinitialize(jd))
      llvm::logAllUnhandledErrors(std::move(err), llvm::errs(), "distnode: error: ");
    runEndHook(running_exit_code, ExitKind::Normal);
  };

  if (impl_->profiling)
    profiler::Profiler::threadInit();
  if (auto err = j.initialize(jd)) {
    running_session = nullptr;
    return err;
  }
  // As a C runtime calls it: argv[0] is the program (its bitcode), argv[argc] is null, and the
  // environment comes third (a main of one or two parameters ignores what it does not name).
  std::vector<std::string> argv_text = {impl_->path};
  argv_text.insert(argv_text.end(), args.begin(), args.end());
  std::vector<char *> argv;
  for (auto &a : argv_text)
    argv.push_back(a.data());
  argv.push_back(nullptr);
  int code = main_fn(static_cast<int>(argv_text.size()), argv.data(), environ);
  if (!claimProgramEnd())
    waitForProgramEnd(); // another thread called exit(): it ends the process
  running_deinit = nullptr;
  running_session = nullptr;
  llvm::Error deinit = j.deinitialize(jd);
  runEndHook(code, ExitKind::Normal);
  running_hook = nullptr;
  if (deinit)
    return deinit;
  return code;
}

} // namespace distnode::jit
