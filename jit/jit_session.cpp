// jit_session.cpp - one application program loaded into an LLVM ORC JIT on this node.
#include "jit/jit_session.h"

#include "jit/bitcode.h"

#include "llvm/ExecutionEngine/Orc/Core.h"
#include "llvm/ExecutionEngine/Orc/JITTargetMachineBuilder.h"
#include "llvm/ExecutionEngine/Orc/LLJIT.h"
#include "llvm/ExecutionEngine/Orc/TargetProcess/TargetExecutionUtils.h"
#include "llvm/ExecutionEngine/Orc/ThreadSafeModule.h"
#include "llvm/IR/LLVMContext.h"
#include "llvm/IR/Module.h"
#include "llvm/Passes/PassBuilder.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/Target/TargetMachine.h"
#include "llvm/TargetParser/Host.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <mutex>

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

[[noreturn]] void programExit(int code) {
  // exit() from several threads at once is undefined in C too; the first one wins here.
  static std::once_flag once;
  std::call_once(once, [] {
    if (running_deinit)
      running_deinit();
  });
  std::exit(code);
}

void initializeNativeTarget() {
  static std::once_flag once;
  std::call_once(once, [] {
    llvm::InitializeNativeTarget();
    llvm::InitializeNativeTargetAsmPrinter();
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
  std::unique_ptr<orc::LLJIT> jit;
};

JitSession::JitSession(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

JitSession::~JitSession() = default;

llvm::Expected<std::unique_ptr<JitSession>> JitSession::Create(Program program,
                                                               const JitOptions &options) {
  initializeNativeTarget();
  auto impl = std::make_unique<Impl>();
  impl->path = program.path;

  // The generic CPU of the process's triple (no host-specific features such as FMA): the same
  // code and the same floating-point results on every node, and as a native `clang -O2` build.
  orc::JITTargetMachineBuilder jtmb{llvm::Triple(llvm::sys::getProcessTriple())};
  jtmb.setCodeGenOptLevel(llvm::CodeGenOptLevel::Default);
  auto tm = jtmb.createTargetMachine();
  if (!tm)
    return tm.takeError();

  auto jit = orc::LLJITBuilder().setJITTargetMachineBuilder(jtmb).create();
  if (!jit)
    return jit.takeError();
  impl->jit = std::move(*jit);
  orc::LLJIT &j = *impl->jit;

  if (options.optimize) {
    std::shared_ptr<llvm::TargetMachine> machine = std::move(*tm);
    j.getIRTransformLayer().setTransform(
        [machine](orc::ThreadSafeModule tsm, orc::MaterializationResponsibility &)
            -> llvm::Expected<orc::ThreadSafeModule> {
          tsm.withModuleDo([&](llvm::Module &m) { optimizeModule(m, machine.get()); });
          return tsm;
        });
  }

  orc::JITDylib &main_jd = j.getMainJITDylib();
  orc::SymbolMap interposed;
  interposed[j.mangleAndIntern("exit")] = {orc::ExecutorAddr::fromPtr(&programExit),
                                           llvm::JITSymbolFlags::Exported |
                                               llvm::JITSymbolFlags::Callable};
  if (auto err = main_jd.define(orc::absoluteSymbols(std::move(interposed))))
    return err;

  // Resolve every external reference now, so that a missing one is one clear error instead of
  // a failure in the middle of the run.
  llvm::Module &module = *program.module;
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

  orc::ThreadSafeModule tsm(std::move(program.module), std::move(program.context));
  if (auto err = j.addIRModule(std::move(tsm)))
    return err;
  return std::unique_ptr<JitSession>(new JitSession(std::move(impl)));
}

llvm::Expected<int> JitSession::runMain(const std::vector<std::string> &args) {
  orc::LLJIT &j = *impl_->jit;
  auto main_addr = j.lookup("main");
  if (!main_addr)
    return main_addr.takeError();
  auto *main_fn = main_addr->toPtr<int (*)(int, char *[])>();

  JitSession *expected = nullptr;
  if (!running_session.compare_exchange_strong(expected, this))
    return fail("another program is already running in this process");
  orc::JITDylib &jd = j.getMainJITDylib();
  running_deinit = [&j, &jd] {
    if (auto err = j.deinitialize(jd))
      llvm::logAllUnhandledErrors(std::move(err), llvm::errs(), "distnode: error: ");
  };

  if (auto err = j.initialize(jd)) {
    running_session = nullptr;
    return err;
  }
  int code = orc::runAsMain(main_fn, args, llvm::StringRef(impl_->path));
  running_deinit = nullptr;
  running_session = nullptr;
  if (auto err = j.deinitialize(jd))
    return err;
  return code;
}

} // namespace distnode::jit
