// analysis_facts.cpp - what the program analysis learns of each function (phase 1).
#include "jit/analysis_facts.h"

#include "jit/debug_types.h"

#include "llvm/ADT/StringSet.h"
#include "llvm/Analysis/CFG.h"
#include "llvm/BinaryFormat/Dwarf.h"
#include "llvm/IR/Constants.h"
#include "llvm/IR/DebugInfo.h"
#include "llvm/IR/DebugInfoMetadata.h"
#include "llvm/IR/Function.h"
#include "llvm/IR/GlobalVariable.h"
#include "llvm/IR/InstIterator.h"
#include "llvm/IR/Instructions.h"
#include "llvm/IR/IntrinsicInst.h"
#include "llvm/IR/Module.h"
#include "llvm/IR/Operator.h"

#include <optional>

namespace distnode::jit {

using llvm::cast;
using llvm::dyn_cast;
using llvm::dyn_cast_or_null;
using llvm::isa;

namespace {

// ---------------------------------------------------------------------------------------------
// Externals that are safe on any node: no I/O, no process-wide state beyond their arguments.
// malloc and free are included because the memory they hand out is a node-local temporary.

bool isSafeExternal(llvm::StringRef name) {
  static const llvm::StringSet<> kSafe = {
      // math.h (double, float and long double variants)
      "sin", "cos", "tan", "asin", "acos", "atan", "atan2", "sinh", "cosh", "tanh", "asinh",
      "acosh", "atanh", "exp", "exp2", "expm1", "log", "log2", "log10", "log1p", "pow", "sqrt",
      "cbrt", "hypot", "fabs", "floor", "ceil", "round", "lround", "llround", "trunc", "rint",
      "lrint", "llrint", "nearbyint", "fmod", "remainder", "fmin", "fmax", "fdim", "fma",
      "copysign", "frexp", "ldexp", "modf", "scalbn", "erf", "erfc", "tgamma", "lgamma", "nan",
      "sinf", "cosf", "tanf", "asinf", "acosf", "atanf", "atan2f", "sinhf", "coshf", "tanhf",
      "expf", "exp2f", "expm1f", "logf", "log2f", "log10f", "log1pf", "powf", "sqrtf", "cbrtf",
      "hypotf", "fabsf", "floorf", "ceilf", "roundf", "truncf", "rintf", "fmodf", "fminf", "fmaxf",
      "fmaf", "copysignf", "frexpf", "ldexpf", "modff", "erff", "sinl", "cosl", "sqrtl", "fabsl",
      "expl", "logl", "powl", "floorl", "ceill",
      // string.h
      "memcpy", "memmove", "memset", "memcmp", "memchr", "strlen", "strnlen", "strcmp", "strncmp",
      "strcpy", "strncpy", "strcat", "strncat", "strchr", "strrchr", "strstr", "strspn", "strcspn",
      "strpbrk", "strdup", "strndup", "stpcpy", "bcmp",
      // stdlib.h (pure or node-local)
      "malloc", "calloc", "realloc", "free", "aligned_alloc", "posix_memalign", "abs", "labs",
      "llabs", "div", "ldiv", "atoi", "atol", "atoll", "atof", "strtol", "strtoul", "strtoll",
      "strtoull", "strtod", "strtof", "qsort", "bsearch",
      // ctype.h and its glibc tables
      "isalpha", "isdigit", "isalnum", "isspace", "isupper", "islower", "ispunct", "isxdigit",
      "isprint", "toupper", "tolower", "__ctype_b_loc", "__ctype_tolower_loc",
      "__ctype_toupper_loc",
      // formatting into memory only
      "sprintf", "snprintf", "vsnprintf", "vsprintf", "sscanf", "__isoc99_sscanf",
      // errno lives in thread-local storage of the node that runs the call
      "__errno_location",
      // the compiler's complex multiply and divide (clang calls them in the IR)
      "__muldc3", "__divdc3", "__mulsc3", "__divsc3", "__mulxc3", "__divxc3",
      // complex.h (double, float and long double variants)
      "cabs", "cabsf", "cabsl", "carg", "cargf", "cargl", "csqrt", "csqrtf", "csqrtl", "cexp",
      "cexpf", "cexpl", "clog", "clogf", "clogl", "cpow", "cpowf", "cpowl", "csin", "csinf",
      "csinl", "ccos", "ccosf", "ccosl", "ctan", "ctanf", "ctanl", "csinh", "csinhf", "csinhl",
      "ccosh", "ccoshf", "ccoshl", "ctanh", "ctanhf", "ctanhl", "casin", "casinf", "casinl",
      "cacos", "cacosf", "cacosl", "catan", "catanf", "catanl", "casinh", "casinhf", "casinhl",
      "cacosh", "cacoshf", "cacoshl", "catanh", "catanhf", "catanhl", "cproj", "cprojf", "cprojl",
      "conj", "conjf", "conjl", "creal", "crealf", "creall", "cimag", "cimagf", "cimagl"};
  return kSafe.contains(name);
}

// ---------------------------------------------------------------------------------------------
// Per-function facts (phase 1).

bool hasCycle(const llvm::Function &f) {
  llvm::SmallVector<std::pair<const llvm::BasicBlock *, const llvm::BasicBlock *>, 4> back_edges;
  llvm::FindFunctionBackedges(f, back_edges);
  return !back_edges.empty();
}

bool isDebugOrLifetime(const llvm::Instruction &i) {
  if (isa<llvm::DbgInfoIntrinsic>(i))
    return true;
  if (auto *ii = dyn_cast<llvm::IntrinsicInst>(&i))
    return ii->isLifetimeStartOrEnd() || ii->isAssumeLikeIntrinsic();
  return false;
}

bool isStackAccess(const llvm::Instruction &i) {
  const llvm::Value *ptr = nullptr;
  if (auto *ld = dyn_cast<llvm::LoadInst>(&i))
    ptr = ld->getPointerOperand();
  else if (auto *st = dyn_cast<llvm::StoreInst>(&i))
    ptr = st->getPointerOperand();
  return ptr && isa<llvm::AllocaInst>(ptr->stripPointerCasts());
}

// Whether an instruction will still be work after mem2reg and instruction selection: stack
// slots and their loads and stores disappear, constant-offset GEPs fold into addressing.
bool countsAsWork(const llvm::Instruction &i) {
  if (isa<llvm::AllocaInst>(i) || isStackAccess(i))
    return false;
  if (auto *gep = dyn_cast<llvm::GetElementPtrInst>(&i))
    return !gep->hasAllConstantIndices();
  if (auto *cast = dyn_cast<llvm::CastInst>(&i))
    return !cast->isNoopCast(i.getModule()->getDataLayout());
  return true;
}

// The C library's ways to install a signal handler.
bool installsSignalHandler(llvm::StringRef name) {
  return name == "signal" || name == "sigaction" || name == "sigset" || name == "bsd_signal" ||
         name == "sysv_signal" || name == "__sysv_signal";
}

// Records globals and functions that appear in a constant operand (through constant
// expressions such as GEPs).
void scanConstant(const llvm::Value *v, Facts &facts, std::set<const llvm::Value *> &seen) {
  if (!seen.insert(v).second)
    return;
  if (auto *gv = dyn_cast<llvm::GlobalVariable>(v)) {
    if (gv->getName().starts_with("llvm."))
      return;
    if (gv->isThreadLocal()) {
      // Each thread has its own: the program's is the calling thread's, and a call served on
      // another node runs on another thread. The function stays on the entry node, where
      // calls of its chain run on the thread that waits for them (not unit state either).
      if (facts.direct_io.empty()) {
        facts.direct_io = "uses the thread-local variable `" + gv->getName().str() + "`";
        facts.direct_why = HomeWhy::ThreadBound;
      }
      return;
    }
    if (gv->isDeclaration()) {
      if (facts.direct_io.empty())
        facts.direct_io = "uses external global `" + gv->getName().str() + "`";
    } else if (!gv->isConstant()) {
      facts.globals.insert(gv);
    } else if (gv->hasInitializer()) {
      // A constant table may hold function pointers or addresses of mutable globals.
      scanConstant(gv->getInitializer(), facts, seen);
    }
    return;
  }
  if (auto *fn = dyn_cast<llvm::Function>(v)) {
    facts.address_taken.insert(fn);
    return;
  }
  if (auto *c = dyn_cast<llvm::Constant>(v))
    for (const llvm::Use &op : c->operands())
      scanConstant(op.get(), facts, seen);
}

} // namespace

bool makesChildProcess(llvm::StringRef name) {
  return name == "fork" || name == "_Fork" || name == "forkpty" || name == "daemon";
}

// A function whose body is not the program's: a declaration, or a C library inline body that
// is only there for inlining (available_externally, e.g. glibc's atoi).
bool isExternal(const llvm::Function &f) {
  return f.isDeclaration() || f.hasAvailableExternallyLinkage();
}

bool isSideEffectingExternal(const llvm::Function &callee,
                             const std::map<const llvm::Function *, FunctionAnnotations> &ann) {
  if (!isExternal(callee) || callee.isIntrinsic())
    return false;
  if (isSafeExternal(callee.getName()))
    return false;
  auto it = ann.find(&callee);
  return !(it != ann.end() && it->second.pure_extern);
}

// Whether a use of a constant ends only in LLVM's own bookkeeping globals (llvm.used,
// llvm.global.annotations, llvm.global_ctors...), which never call anything.
static bool onlyMetadataUses(const llvm::Value *v, int depth = 0) {
  if (depth > 8)
    return false;
  for (const llvm::User *u : v->users()) {
    if (auto *gv = dyn_cast<llvm::GlobalVariable>(u)) {
      if (!gv->getName().starts_with("llvm."))
        return false;
    } else if (!isa<llvm::Constant>(u) || !onlyMetadataUses(u, depth + 1)) {
      return false;
    }
  }
  return true;
}

// Whether a function may be called through a pointer: some use of it is not the callee of a
// direct call and not mere bookkeeping.
bool isAddressTaken(const llvm::Function &f) {
  for (const llvm::Use &use : f.uses()) {
    const llvm::User *user = use.getUser();
    if (auto *call = dyn_cast<llvm::CallBase>(user); call && call->isCallee(&use))
      continue;
    if (isa<llvm::Constant>(user) && !isa<llvm::GlobalValue>(user) && onlyMetadataUses(user))
      continue;
    if (auto *gv = dyn_cast<llvm::GlobalVariable>(user); gv && gv->getName().starts_with("llvm."))
      continue;
    return true;
  }
  return false;
}

void scanBody(Facts &facts, const std::map<const llvm::Function *, FunctionAnnotations> &ann) {
  const llvm::Function &f = *facts.fn;
  facts.has_loop = hasCycle(f);
  std::set<const llvm::Value *> seen;
  for (const llvm::Instruction &i : llvm::instructions(f)) {
    if (isDebugOrLifetime(i))
      continue;
    if (countsAsWork(i))
      ++facts.instructions;
    const llvm::Value *called = nullptr;
    if (auto *call = dyn_cast<llvm::CallBase>(&i)) {
      called = call->getCalledOperand()->stripPointerCasts();
      if (auto *callee = dyn_cast<llvm::Function>(called)) {
        if (!callee->isIntrinsic())
          facts.calls_only_intrinsics = false;
        if (!isExternal(*callee))
          ++facts.callees[callee];
        else if (facts.direct_io.empty() && isSideEffectingExternal(*callee, ann))
          facts.direct_io = "calls `" + callee->getName().str() + "`";
        if (isExternal(*callee) && installsSignalHandler(callee->getName()))
          facts.installs_signal_handlers = true;
        if (isExternal(*callee) && makesChildProcess(callee->getName()) && !facts.forks) {
          facts.forks = true;
          if (const llvm::DebugLoc &at = call->getDebugLoc())
            facts.fork_line = at.getLine();
        }
      } else if (!isa<llvm::InlineAsm>(called)) {
        facts.indirect_call = true;
        facts.calls_only_intrinsics = false;
      } else {
        facts.calls_only_intrinsics = false;
        if (facts.direct_io.empty())
          facts.direct_io = "contains inline assembly";
      }
    }
    for (const llvm::Use &op : i.operands()) {
      const llvm::Value *v = op.get();
      if (v == called && isa<llvm::Function>(v))
        continue; // a direct call, handled above
      if (isa<llvm::Constant>(v) && !isa<llvm::ConstantData>(v))
        scanConstant(v, facts, seen);
    }
  }
}

namespace {

// The values that stand for parameter `arg` in unoptimized IR: the argument, and loads of the
// stack slot it is spilled to.
std::vector<const llvm::Value *> parameterValues(const llvm::Argument &arg) {
  std::vector<const llvm::Value *> values = {&arg};
  for (const llvm::User *u : arg.users())
    if (auto *store = dyn_cast<llvm::StoreInst>(u); store && store->getValueOperand() == &arg)
      if (auto *slot = dyn_cast<llvm::AllocaInst>(store->getPointerOperand()))
        for (const llvm::User *reader : slot->users())
          if (isa<llvm::LoadInst>(reader))
            values.push_back(reader);
  return values;
}

using HandlerParams = std::map<const llvm::Function *, std::set<unsigned>>;

// Whether `t` is the C library's `struct sigaction` (named so by clang; "struct.sigaction.N"
// when modules were linked).
bool isSigaction(const llvm::Type *t) {
  auto *s = dyn_cast_or_null<llvm::StructType>(t);
  if (!s || !s->hasName())
    return false;
  llvm::StringRef name = s->getName();
  return name == "struct.sigaction" || name.starts_with("struct.sigaction.");
}

// Whether `p` points into a `struct sigaction` (through field addresses and casts).
bool pointsIntoSigaction(const llvm::Value *p) {
  for (int depth = 0; p && depth < 8; ++depth) {
    if (auto *gep = dyn_cast<llvm::GEPOperator>(p)) {
      if (isSigaction(gep->getSourceElementType()))
        return true;
      p = gep->getPointerOperand();
    } else if (auto *slot = dyn_cast<llvm::AllocaInst>(p)) {
      return isSigaction(slot->getAllocatedType());
    } else if (auto *g = dyn_cast<llvm::GlobalVariable>(p)) {
      return isSigaction(g->getValueType());
    } else if (auto *cast = dyn_cast<llvm::CastInst>(p)) {
      p = cast->getOperand(0);
    } else {
      return false;
    }
  }
  return false;
}

// The program's functions that value `v` may be: a function, or what the local variable it is
// loaded from was given (`h = cond ? a : b`), through selects and phis.
void functionsOf(const llvm::Value *v, std::set<const llvm::Function *, ByName> &out,
                 int depth = 0) {
  v = v->stripPointerCasts();
  if (auto *fn = dyn_cast<llvm::Function>(v)) {
    out.insert(fn);
    return;
  }
  if (depth > 4)
    return;
  if (auto *load = dyn_cast<llvm::LoadInst>(v)) {
    if (auto *slot = dyn_cast<llvm::AllocaInst>(load->getPointerOperand()->stripPointerCasts()))
      for (const llvm::User *u : slot->users())
        if (auto *store = dyn_cast<llvm::StoreInst>(u); store && store->getPointerOperand() == slot)
          functionsOf(store->getValueOperand(), out, depth + 1);
  } else if (auto *select = dyn_cast<llvm::SelectInst>(v)) {
    functionsOf(select->getTrueValue(), out, depth + 1);
    functionsOf(select->getFalseValue(), out, depth + 1);
  } else if (auto *phi = dyn_cast<llvm::PHINode>(v)) {
    for (const llvm::Value *in : phi->incoming_values())
      functionsOf(in, out, depth + 1);
  }
}

// Whether parameter `arg` is a handler a helper installs: passed to signal()/bsd_signal()…, to
// a known helper at its handler position, or stored into a `struct sigaction`.
bool handsOnHandler(const llvm::Argument &arg, const HandlerParams &known) {
  for (const llvm::Value *v : parameterValues(arg))
    for (const llvm::Use &use : v->uses()) {
      const llvm::User *user = use.getUser();
      if (auto *call = dyn_cast<llvm::CallBase>(user); call && call->isArgOperand(&use)) {
        auto *callee = dyn_cast<llvm::Function>(call->getCalledOperand()->stripPointerCasts());
        if (!callee)
          continue;
        if (isExternal(*callee) && installsSignalHandler(callee->getName()))
          return true;
        auto it = known.find(callee);
        if (it != known.end() && it->second.count(call->getArgOperandNo(&use)))
          return true;
      } else if (auto *store = dyn_cast<llvm::StoreInst>(user)) {
        if (store->getValueOperand() == v && pointsIntoSigaction(store->getPointerOperand()))
          return true;
      }
    }
  return false;
}

void functionsIn(const llvm::Constant *c, std::set<const llvm::Function *, ByName> &out,
                 std::set<const llvm::Constant *> &seen) {
  if (!seen.insert(c).second)
    return;
  if (auto *fn = dyn_cast<llvm::Function>(c)) {
    out.insert(fn);
    return;
  }
  if (isa<llvm::GlobalValue>(c))
    return;
  for (const llvm::Use &op : c->operands())
    if (auto *sub = dyn_cast<llvm::Constant>(op.get()))
      functionsIn(sub, out, seen);
}

} // namespace

namespace {

// The global variable `p` points into (through field addresses and casts), or null.
const llvm::GlobalVariable *globalOf(const llvm::Value *p) {
  for (int depth = 0; p && depth < 8; ++depth) {
    if (auto *g = dyn_cast<llvm::GlobalVariable>(p))
      return g;
    if (auto *gep = dyn_cast<llvm::GEPOperator>(p))
      p = gep->getPointerOperand();
    else if (auto *cast = dyn_cast<llvm::CastInst>(p))
      p = cast->getOperand(0);
    else
      return nullptr;
  }
  return nullptr;
}

// The parameter value `v` is (the argument, or a load of the slot it was spilled to), or null.
const llvm::Argument *parameterOf(const llvm::Value *v) {
  if (auto *arg = dyn_cast<llvm::Argument>(v))
    return arg;
  if (auto *load = dyn_cast<llvm::LoadInst>(v))
    if (auto *slot = dyn_cast<llvm::AllocaInst>(load->getPointerOperand()))
      for (const llvm::User *u : slot->users())
        if (auto *store = dyn_cast<llvm::StoreInst>(u); store && store->getPointerOperand() == slot)
          if (auto *arg = dyn_cast<llvm::Argument>(store->getValueOperand()))
            return arg;
  return nullptr;
}

} // namespace

FunctionsInGlobals functionsStoredInGlobals(const llvm::Module &module) {
  FunctionsInGlobals stored;
  std::map<std::pair<const llvm::Function *, unsigned>, std::set<const llvm::GlobalVariable *>>
      params; // a function's parameter → the globals it is stored into
  for (const llvm::Function &f : module)
    for (const llvm::Instruction &i : llvm::instructions(f))
      if (auto *store = dyn_cast<llvm::StoreInst>(&i))
        if (const llvm::GlobalVariable *g = globalOf(store->getPointerOperand())) {
          functionsOf(store->getValueOperand(), stored[g]);
          if (const llvm::Argument *arg = parameterOf(store->getValueOperand()))
            params[{&f, arg->getArgNo()}].insert(g);
        }
  for (const llvm::Function &f : module)
    for (const llvm::Instruction &i : llvm::instructions(f))
      if (auto *call = dyn_cast<llvm::CallBase>(&i)) {
        auto *callee = dyn_cast<llvm::Function>(call->getCalledOperand()->stripPointerCasts());
        for (unsigned k = 0; callee && k < call->arg_size(); ++k)
          if (auto it = params.find({callee, k}); it != params.end())
            for (const llvm::GlobalVariable *g : it->second)
              functionsOf(call->getArgOperand(k), stored[g]);
      }
  for (const llvm::GlobalVariable &g : module.globals())
    if (g.hasInitializer()) {
      std::set<const llvm::Constant *> seen;
      functionsIn(g.getInitializer(), stored[&g], seen);
    }
  return stored;
}

std::vector<std::pair<const llvm::Function *, std::string>>
indirectSignalHandlers(const llvm::Module &module, const std::vector<Facts> &facts) {
  std::vector<std::pair<const llvm::Function *, std::string>> found;
  // Helpers: which parameters each hands on to an installer, to a fixpoint (a helper may call
  // a helper).
  HandlerParams helpers;
  for (bool changed = true; changed;) {
    changed = false;
    for (const Facts &fa : facts)
      for (const llvm::Argument &arg : fa.fn->args())
        if (arg.getType()->isPointerTy() &&
            !(helpers.count(fa.fn) && helpers[fa.fn].count(arg.getArgNo())) &&
            handsOnHandler(arg, helpers)) {
          helpers[fa.fn].insert(arg.getArgNo());
          changed = true;
        }
  }
  // What a value may be, also when it is read from a global variable (`install(SIGHUP,
  // chosen)`): every function stored there.
  std::optional<FunctionsInGlobals> in_globals;
  auto handlersOf = [&](const llvm::Value *v, std::set<const llvm::Function *, ByName> &out) {
    functionsOf(v, out);
    if (auto *load = dyn_cast<llvm::LoadInst>(v->stripPointerCasts()))
      if (const llvm::GlobalVariable *g = globalOf(load->getPointerOperand())) {
        if (!in_globals)
          in_globals = functionsStoredInGlobals(module);
        if (auto it = in_globals->find(g); it != in_globals->end())
          out.insert(it->second.begin(), it->second.end());
      }
  };
  for (const Facts &fa : facts) {
    const std::string who = "`" + fa.fn->getName().str() + "`";
    for (const llvm::Instruction &i : llvm::instructions(*fa.fn)) {
      std::set<const llvm::Function *, ByName> handlers;
      std::string how;
      if (auto *call = dyn_cast<llvm::CallBase>(&i)) {
        auto *callee = dyn_cast<llvm::Function>(call->getCalledOperand()->stripPointerCasts());
        auto it = callee ? helpers.find(callee) : helpers.end();
        if (it == helpers.end())
          continue;
        for (unsigned k : it->second)
          if (k < call->arg_size())
            handlersOf(call->getArgOperand(k), handlers);
        how = " installs it through `" + callee->getName().str() + "`";
      } else if (auto *store = dyn_cast<llvm::StoreInst>(&i)) {
        if (!pointsIntoSigaction(store->getPointerOperand()))
          continue;
        handlersOf(store->getValueOperand(), handlers);
        how = " puts its address in a `struct sigaction`";
      }
      for (const llvm::Function *handler : handlers)
        found.emplace_back(handler, "may be a signal handler: " + who + how);
    }
    if (!fa.installs_signal_handlers)
      continue;
    for (const llvm::GlobalVariable *g : fa.globals) {
      if (!g->hasInitializer())
        continue;
      std::set<const llvm::Function *, ByName> in_init;
      std::set<const llvm::Constant *> seen;
      functionsIn(g->getInitializer(), in_init, seen);
      for (const llvm::Function *handler : in_init)
        found.emplace_back(handler, "may be a signal handler: " + who + " installs handlers and `" +
                                        g->getName().str() + "` holds its address");
    }
  }
  // A `struct sigaction` initialized with a handler (`static struct sigaction sa = {.sa_handler
  // = h}`), whoever installs it.
  for (const llvm::GlobalVariable &g : module.globals()) {
    if (!g.hasInitializer() || !isSigaction(g.getValueType()))
      continue;
    std::set<const llvm::Function *, ByName> in_init;
    std::set<const llvm::Constant *> seen;
    functionsIn(g.getInitializer(), in_init, seen);
    for (const llvm::Function *handler : in_init)
      found.emplace_back(handler, "may be a signal handler: the `struct sigaction` `" +
                                      g.getName().str() + "` holds its address");
  }
  return found;
}

void readSignature(Facts &facts) {
  facts.sp = facts.fn->getSubprogram();
  if (!facts.sp)
    return;
  if (auto *type = facts.sp->getType()) {
    auto array = type->getTypeArray();
    if (array.size() >= 1) {
      facts.result_type = array[0];
      for (unsigned k = 1; k < array.size(); ++k)
        facts.param_types.push_back(array[k]);
      // A trailing null entry stands for `...` (unspecified parameters).
      if (!facts.param_types.empty() && !facts.param_types.back() && facts.fn->isVarArg())
        facts.param_types.pop_back();
      facts.has_di_signature = true;
    }
  }
  facts.param_names.resize(facts.param_types.size());
  for (const llvm::DINode *node : facts.sp->getRetainedNodes()) {
    auto *var = dyn_cast<llvm::DILocalVariable>(node);
    if (var && var->getArg() > 0 && var->getArg() <= facts.param_names.size())
      facts.param_names[var->getArg() - 1] = var->getName().str();
  }
  for (unsigned k = 0; k < facts.param_names.size(); ++k)
    if (facts.param_names[k].empty())
      facts.param_names[k] = "arg" + std::to_string(k);
}

} // namespace distnode::jit
