// program_analysis.cpp - which functions of a program may run on another node.
//
// The analysis runs in phases over the whole module:
//   1. facts per function: annotations, signature plan, calls, globals touched, size, loops;
//   2. "don't move I/O": a function that calls an external with side effects, or reaches one
//      through its callees (not through DIST_LOCAL ones, whose I/O is node-local by choice), runs
//      on the home node;
//   3. a placement per function from the first rule that applies (see classify());
//   4. state: functions touching the same GPin type or mutable global form a group; a local
//      helper's state counts for its callers, since it runs where they run; a group holding a
//      home or pinned function goes where that function goes;
//   5. checks of the annotations (buffers, load-balanced functions, conflicting pins).
#include "jit/program_analysis.h"

#include "jit/analysis_facts.h"
#include "jit/annotations.h"
#include "jit/debug_types.h"
#include "jit/marshal_plan.h"
#include "jit/state_analysis.h"

#include "jit/counted_reads.h"
#include "jit/pointer_uses.h"

#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/EquivalenceClasses.h"
#include "llvm/ADT/MapVector.h"
#include "llvm/ADT/StringExtras.h"
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

#include <algorithm>
#include <functional>
#include <limits>
#include <map>
#include <numeric>
#include <optional>
#include <set>

namespace distnode::jit {

std::string SourceLoc::str() const {
  if (file.empty())
    return "";
  return line ? file + ":" + std::to_string(line) : file;
}

std::string Diagnostic::str() const {
  std::string s = loc.str();
  if (!s.empty())
    s += ": ";
  if (!function.empty())
    s += "function `" + function + "`: ";
  return s + message;
}

const FunctionInfo *ProgramAnalysis::find(std::string_view name) const {
  for (const auto &f : functions)
    if (f.name == name)
      return &f;
  return nullptr;
}

std::string_view toString(Placement p) {
  switch (p) {
  case Placement::Placeable:
    return "placeable";
  case Placement::Local:
    return "local";
  case Placement::Home:
    return "home";
  case Placement::Pinned:
    return "pinned";
  }
  return "?";
}

std::string_view toString(Rule r) {
  switch (r) {
  case Rule::Placeable:
    return "placeable";
  case Rule::AnnotatedLocal:
    return "annotated-local";
  case Rule::AnnotatedPin:
    return "annotated-pin";
  case Rule::Main:
    return "main";
  case Rule::StaticConstructor:
    return "static-constructor";
  case Rule::NPinInSignature:
    return "npin-in-signature";
  case Rule::Variadic:
    return "variadic";
  case Rule::Unmarshalable:
    return "unmarshalable";
  case Rule::DoesIO:
    return "does-io";
  case Rule::GroupedWithHome:
    return "grouped-with-home";
  case Rule::GroupedWithPin:
    return "grouped-with-pin";
  case Rule::TooSmall:
    return "too-small";
  case Rule::ForkCopiesState:
    return "fork-copies-state";
  }
  return "?";
}

std::string_view toString(MarshalKind k) {
  switch (k) {
  case MarshalKind::Void:
    return "void";
  case MarshalKind::Integer:
    return "integer";
  case MarshalKind::Float:
    return "float";
  case MarshalKind::StructByValue:
    return "struct-by-value";
  case MarshalKind::CString:
    return "c-string";
  case MarshalKind::BufferIn:
    return "buffer-in";
  case MarshalKind::BufferOut:
    return "buffer-out";
  case MarshalKind::BufferInOut:
    return "buffer-inout";
  case MarshalKind::StructPtrIn:
    return "struct-ptr-in";
  case MarshalKind::StructPtrInOut:
    return "struct-ptr-inout";
  case MarshalKind::GPinHandle:
    return "gpin-handle";
  case MarshalKind::Unmarshalable:
    return "unmarshalable";
  }
  return "?";
}

namespace {

// Why a function runs on the entry node, from what it (or a callee) does.
std::string homeReason(HomeWhy kind, const std::string &evidence) {
  const char *why = kind == HomeWhy::ThreadBound     ? "thread-bound"
                    : kind == HomeWhy::SignalContext ? "runs in signal context"
                                                     : "does I/O";
  return std::string(why) + " (" + evidence + "): runs on the entry node";
}

using llvm::cast;
using llvm::dyn_cast;
using llvm::dyn_cast_or_null;
using llvm::isa;

// Function and resource indices that share state, joined into classes.
struct StateClasses {
  llvm::EquivalenceClasses<int> classes;
  explicit StateClasses(int n) {
    for (int i = 0; i < n; ++i)
      classes.insert(i);
  }
  void unite(int a, int b) { classes.unionSets(a, b); }
  int find(int x) const { return classes.getLeaderValue(x); }
};

// The C name of the parameter passed as IR argument `arg` (for a count: a scalar, one argument);
// "" for none.
std::string countName(const FunctionInfo &info, int arg) {
  if (arg < 0)
    return "";
  for (const ValuePlan &p : info.params)
    if (p.ir_args.size() == 1 && static_cast<int>(p.ir_args[0]) == arg)
      return p.name;
  return "arg" + std::to_string(arg);
}

std::string firstUnmarshalable(const FunctionInfo &info) {
  for (const auto &p : info.params)
    if (p.kind == MarshalKind::Unmarshalable)
      return "parameter `" + p.name + "` " + p.why;
  return "the result " + info.result.why;
}

std::string joinNames(const std::vector<std::string> &names) {
  return names.empty() ? "none" : llvm::join(names, ", ");
}

// A variable that holds pointers to a GPin type (or an array of them): its memory, the type.
struct GPinVariable {
  const llvm::Value *memory;
  std::string type;
  bool array;
};

std::optional<GPinVariable> gpinVariable(const llvm::Value *memory, const llvm::DIVariable *var,
                                         const TaggedTypes &gpin) {
  std::set<const llvm::DIType *> seen;
  auto type = var ? findTagged(var->getType(), gpin, seen) : std::nullopt;
  if (!type)
    return std::nullopt;
  auto *composite = dyn_cast_or_null<llvm::DICompositeType>(strip(var->getType()));
  return GPinVariable{memory, *type,
                      composite && composite->getTag() == llvm::dwarf::DW_TAG_array_type};
}

// The module's global variables that hold GPin pointers (found once for every function).
std::vector<GPinVariable> gpinGlobals(const llvm::Module &m, const TaggedTypes &gpin) {
  std::vector<GPinVariable> found;
  for (const llvm::GlobalVariable &g : m.globals()) {
    llvm::SmallVector<llvm::DIGlobalVariableExpression *, 1> infos;
    g.getDebugInfo(infos);
    for (const llvm::DIGlobalVariableExpression *info : infos)
      if (auto v = gpinVariable(&g, info->getVariable(), gpin))
        found.push_back(std::move(*v));
  }
  return found;
}

// The GPin types whose objects a function reaches through a local variable (its parameters are
// its signature's) or one of `globals`: it dereferences the pointer, frees it, or gives it to
// anything but a comparison, another local or global variable (holding a handle), or a
// function of the program whose parameter there names a GPin type and which is not DIST_LOCAL
// (that function handles the object where the object lives). Elsewhere than on their node such
// a pointer is a handle, not an address: the function handles the objects and joins their
// group. `takes_gpin(callee, k)`: whether parameter k of `callee` names a GPin type. Arrays of
// such pointers count too.
void gpinObjectsInBody(const llvm::Function &f, const TaggedTypes &gpin,
                       const std::vector<GPinVariable> &globals,
                       const std::function<bool(const llvm::Function *, unsigned)> &takes_gpin,
                       std::set<std::string> &out) {
  auto onlyHeld = [&](const llvm::LoadInst &pointer) {
    for (const llvm::Use &use : pointer.uses()) {
      const llvm::User *user = use.getUser();
      if (auto *call = dyn_cast<llvm::CallBase>(user)) {
        auto *callee = dyn_cast<llvm::Function>(call->getCalledOperand()->stripPointerCasts());
        if (call->isArgOperand(&use) && callee && takes_gpin(callee, call->getArgOperandNo(&use)))
          continue;
      } else if (isa<llvm::ICmpInst>(user)) {
        continue;
      } else if (auto *store = dyn_cast<llvm::StoreInst>(user)) {
        const llvm::Value *to = store->getPointerOperand()->stripPointerCasts();
        if (store->getValueOperand() == &pointer &&
            (isa<llvm::AllocaInst>(to) || isa<llvm::GlobalVariable>(to)))
          continue;
      }
      return false;
    }
    return true;
  };
  // The pointers read from a variable's memory in `f`: loads of it, and for an array, loads of
  // its elements.
  std::function<bool(const llvm::Value *, bool, int)> touched = [&](const llvm::Value *memory,
                                                                    bool array, int depth) {
    for (const llvm::User *u : memory->users()) {
      if (auto *load = dyn_cast<llvm::LoadInst>(u)) {
        if (load->getFunction() == &f && load->getPointerOperand() == memory &&
            load->getType()->isPointerTy() && !onlyHeld(*load))
          return true;
      } else if (auto *gep = dyn_cast<llvm::GEPOperator>(u); gep && array && depth < 4) {
        if (touched(gep, array, depth + 1))
          return true;
      }
    }
    return false;
  };
  auto check = [&](const GPinVariable &v) {
    if (!out.count(v.type) && touched(v.memory, v.array, 0))
      out.insert(v.type);
  };
  for (const llvm::Instruction &i : llvm::instructions(f)) {
    auto *slot = dyn_cast<llvm::AllocaInst>(&i);
    if (!slot)
      continue;
    std::vector<const llvm::DILocalVariable *> vars;
    auto *v = const_cast<llvm::AllocaInst *>(slot);
    for (const llvm::DbgDeclareInst *d : llvm::findDbgDeclares(v))
      vars.push_back(d->getVariable());
    for (const llvm::DbgVariableRecord *r : llvm::findDVRDeclares(v))
      vars.push_back(r->getVariable());
    for (const llvm::DILocalVariable *var : vars)
      if (var->getArg() == 0)
        if (auto local = gpinVariable(slot, var, gpin))
          check(*local);
  }
  for (const GPinVariable &g : globals)
    check(g);
}

} // namespace

ProgramAnalysis analyzeProgram(const llvm::Module &m, const AnalysisOptions &options) {
  ProgramAnalysis out;
  auto annotations = readAnnotations(m, out.errors);
  const PointerUses pointer_uses(m);
  const CountedReads counted_reads(m);
  TaggedTypes gpin, npin;
  collectTaggedTypes(m, gpin, npin);
  const std::vector<GPinVariable> gpin_globals =
      gpin.names.empty() ? std::vector<GPinVariable>{} : gpinGlobals(m, gpin);

  std::set<const llvm::Function *> ctors;
  for (const char *name : {"llvm.global_ctors", "llvm.global_dtors"})
    if (auto *gv = m.getNamedGlobal(name); gv && gv->hasInitializer())
      if (auto *array = dyn_cast<llvm::ConstantArray>(gv->getInitializer()))
        for (const llvm::Use &e : array->operands())
          if (auto *s = dyn_cast<llvm::ConstantStruct>(e.get()); s && s->getNumOperands() >= 2)
            if (auto *fn = dyn_cast<llvm::Function>(s->getOperand(1)->stripPointerCasts()))
              ctors.insert(fn);

  // Phase 1: facts.
  std::vector<Facts> facts;
  std::map<const llvm::Function *, int> index;
  for (const llvm::Function &f : m) {
    if (isExternal(f))
      continue;
    Facts fa;
    fa.fn = &f;
    if (auto it = annotations.find(&f); it != annotations.end())
      fa.ann = it->second;
    readSignature(fa);
    scanBody(fa, annotations);
    index[&f] = static_cast<int>(facts.size());
    facts.push_back(std::move(fa));
  }
  for (const auto &[fn, a] : annotations) {
    if (a.pure_extern && !isExternal(*fn))
      out.errors.push_back({a.loc, fn->getName().str(),
                            "DIST_PURE_EXTERN is for declarations of external functions, but "
                            "this function is defined in the program; remove the annotation"});
    if (isExternal(*fn) && (a.local || a.load_balanced || a.pin || !a.buffers.empty()))
      out.errors.push_back({a.loc, fn->getName().str(),
                            "annotated, but not defined in the program; placement annotations "
                            "belong on functions the program defines"});
  }

  const size_t n = facts.size();
  std::vector<FunctionInfo> &infos = out.functions;
  infos.resize(n);
  for (size_t i = 0; i < n; ++i) {
    Facts &fa = facts[i];
    FunctionInfo &info = infos[i];
    info.name = fa.fn->getName().str();
    if (fa.sp)
      info.loc = {fa.sp->getFilename().str(), fa.sp->getLine()};
    else
      info.loc = fa.ann.loc;
    info.instructions = fa.instructions;
    info.variadic = fa.fn->isVarArg();
    info.annotated_local = fa.ann.local;
    info.load_balanced = fa.ann.load_balanced;

    // Signature: NPin/GPin types and the marshaling plan.
    std::vector<std::pair<std::string, const llvm::DIType *>> sig;
    sig.push_back({"the result", fa.result_type});
    for (size_t k = 0; k < fa.param_types.size(); ++k)
      sig.push_back({"parameter `" + fa.param_names[k] + "`", fa.param_types[k]});
    for (const auto &[where, type] : sig) {
      std::set<const llvm::DIType *> seen;
      if (fa.npin_type.empty())
        if (auto found = findTagged(type, npin, seen)) {
          fa.npin_type = *found;
          fa.npin_where = where;
        }
      seen.clear();
      if (auto found = findTagged(type, gpin, seen))
        fa.gpin_types.insert(*found);
    }
    if (!gpin.names.empty())
      gpinObjectsInBody(
          *fa.fn, gpin, gpin_globals,
          [&](const llvm::Function *callee, unsigned k) {
            auto it = index.find(callee);
            if (it == index.end() || facts[it->second].ann.local)
              return false;
            const Facts &c = facts[it->second];
            // IR arguments are the C parameters one for one unless the ABI split or added some
            // (then: not known to be held, which keeps the caller with the objects).
            if (c.fn->arg_size() != c.param_types.size() || k >= c.param_types.size())
              return false;
            std::set<const llvm::DIType *> seen;
            return findTagged(c.param_types[k], gpin, seen).has_value();
          },
          fa.gpin_types);
    // Buffer annotations must name real parameters.
    for (const auto &b : fa.ann.buffers) {
      auto pos = std::find(fa.param_names.begin(), fa.param_names.end(), b.param);
      if (pos == fa.param_names.end()) {
        out.errors.push_back({b.loc, info.name,
                              b.spelling + ": no parameter named `" + b.param +
                                  "` (parameters: " + joinNames(fa.param_names) + ")"});
        continue;
      }
      if (!parseCount(b.count)) {
        auto cpos = std::find(fa.param_names.begin(), fa.param_names.end(), b.count);
        bool digits = !b.count.empty() && std::all_of(b.count.begin(), b.count.end(),
                                                      [](char c) { return c >= '0' && c <= '9'; });
        if (digits)
          out.errors.push_back({b.loc, info.name,
                                b.spelling + ": the count `" + b.count +
                                    "` does not fit in 64 bits; give the real element count"});
        else if (cpos == fa.param_names.end())
          out.errors.push_back(
              {b.loc, info.name,
               b.spelling + ": the count `" + b.count +
                   "` is neither a parameter nor a decimal constant (parameters: " +
                   joinNames(fa.param_names) + ")"});
        else if (!isIntegerLike(fa.param_types[cpos - fa.param_names.begin()]))
          out.errors.push_back(
              {b.loc, info.name,
               b.spelling + ": the count `" + b.count + "` is not an integer parameter"});
      }
    }
    if (fa.has_di_signature) {
      info.result = planValue(fa, fa.result_type, "", true, gpin, out.errors, info.name);
      for (size_t k = 0; k < fa.param_types.size(); ++k) {
        ValuePlan p =
            planValue(fa, fa.param_types[k], fa.param_names[k], false, gpin, out.errors, info.name);
        if (!p.count.empty()) {
          if (auto c = parseCount(p.count)) {
            p.count_value = *c;
          } else {
            auto cpos = std::find(fa.param_names.begin(), fa.param_names.end(), p.count);
            if (cpos != fa.param_names.end())
              p.count_param = static_cast<int>(cpos - fa.param_names.begin());
          }
        }
        info.params.push_back(std::move(p));
      }
      bool mapped = mapIRArguments(info, fa);
      if (mapped)
        for (ValuePlan &p : info.params)
          if (p.ir_args.size() == 1) {
            const CountedRead &counted = counted_reads.of(*fa.fn, p.ir_args[0]);
            checkPointerUse(p, pointer_uses.of(*fa.fn, p.ir_args[0]), counted,
                            countName(info, counted.count_arg));
          }
      info.plan_complete = mapped;
      if (!mapped)
        info.result = unmarshalable(info.result, "the ABI lowering of this signature is not "
                                                 "supported (parameters do not map to IR "
                                                 "arguments)");
    } else {
      // No debug info: plan from IR types alone.
      llvm::FunctionType *ft = fa.fn->getFunctionType();
      info.result = planFromIR(ft->getReturnType(), "", true);
      for (unsigned k = 0; k < ft->getNumParams(); ++k) {
        info.params.push_back(planFromIR(ft->getParamType(k), "arg" + std::to_string(k), false));
        info.params.back().ir_args.push_back(k);
      }
      info.plan_complete = true;
    }
    auto bad = [](const ValuePlan &p) { return p.kind == MarshalKind::Unmarshalable; };
    if (bad(info.result) || std::any_of(info.params.begin(), info.params.end(), bad))
      info.plan_complete = false;
  }

  // Phase 2: I/O reachability. Edges: direct calls, functions whose address is taken (they may
  // be called back), and indirect calls (which may reach any address-taken function). DIST_LOCAL
  // callees stop the propagation: their I/O is node-local by the program's choice.
  std::vector<int> address_taken_fns;
  std::string taken_external_io;
  for (const llvm::Function &f : m) {
    if (!isAddressTaken(f))
      continue;
    if (auto it = index.find(&f); it != index.end())
      address_taken_fns.push_back(it->second);
    else if (taken_external_io.empty() && isSideEffectingExternal(f, annotations))
      taken_external_io = f.getName().str();
  }

  // A function whose address a function that installs signal handlers takes may be one: it
  // runs in signal context, on the node and thread the signal reaches (the entry node's), so it
  // cannot be a remote call, and the state it shares goes with it.
  // What a handler calls runs in signal context too: a remote call there is not safe.
  std::vector<int> in_signal_context;
  auto handler = [&](const llvm::Function *fn, std::string evidence) {
    if (auto it = index.find(fn); it != index.end() && facts[it->second].direct_io.empty()) {
      facts[it->second].direct_io = std::move(evidence);
      facts[it->second].direct_why = HomeWhy::SignalContext;
      in_signal_context.push_back(it->second);
    }
  };
  for (const Facts &installer : facts)
    if (installer.installs_signal_handlers)
      for (const llvm::Function *t : installer.address_taken)
        handler(t, "may be a signal handler: `" + installer.fn->getName().str() +
                       "` installs handlers and takes its address");
  for (auto &[fn, evidence] : indirectSignalHandlers(m, facts))
    handler(fn, std::move(evidence));
  // What a handler calls through a function pointer it reads from a global (a trampoline that
  // runs registered callbacks) is any function stored there.
  std::optional<FunctionsInGlobals> in_globals;
  while (!in_signal_context.empty()) {
    const int handler = in_signal_context.back();
    in_signal_context.pop_back();
    const std::string from = "`" + facts[handler].fn->getName().str() + "`";
    auto reached = [&](const llvm::Function *callee, std::string evidence) {
      auto it = index.find(callee);
      if (it == index.end())
        return;
      if (Facts &c = facts[it->second]; c.direct_io.empty() && !c.ann.local) {
        c.direct_io = std::move(evidence);
        c.direct_why = HomeWhy::SignalContext;
        in_signal_context.push_back(it->second);
      }
    };
    for (const auto &[callee, sites] : facts[handler].callees)
      reached(callee, "called from " + from + ", which may be a signal handler");
    if (!facts[handler].indirect_call)
      continue;
    if (!in_globals)
      in_globals = functionsStoredInGlobals(m);
    for (const llvm::GlobalVariable *g : facts[handler].globals)
      if (auto it = in_globals->find(g); it != in_globals->end())
        for (const llvm::Function *callee : it->second)
          reached(callee, "called through `" + g->getName().str() + "` from " + from +
                              ", which may be a signal handler");
  }
  // The child of fork() goes on with its caller's code, which must be on the node that forks:
  // a function that reaches fork() is home even through DIST_LOCAL helpers (which otherwise
  // keep their I/O to themselves).
  std::vector<const llvm::Function *> fork_via(n, nullptr);
  for (bool changed = true; changed;) {
    changed = false;
    for (size_t i = 0; i < n; ++i) {
      if (fork_via[i] || facts[i].forks)
        continue;
      for (const auto &[callee, sites] : facts[i].callees)
        if (const Facts &c = facts[index[callee]]; c.forks || fork_via[index[callee]]) {
          fork_via[i] = callee;
          changed = true;
          break;
        }
    }
  }
  for (size_t i = 0; i < n; ++i)
    if (fork_via[i] && facts[i].direct_io.empty())
      facts[i].direct_io =
          "reaches `" + fork_via[i]->getName().str() + "`, which makes a child process with fork()";
  for (Facts &fa : facts) {
    if (!fa.direct_io.empty()) {
      fa.io_root = fa.direct_io;
      fa.io_why = fa.direct_why;
    } else if (fa.indirect_call && !taken_external_io.empty()) {
      fa.io_root = "calls `" + taken_external_io + "`";
      fa.io_indirect = true;
    }
  }
  for (bool changed = true; changed;) {
    changed = false;
    for (Facts &fa : facts) {
      if (!fa.io_root.empty())
        continue;
      auto reach = [&](int callee, bool indirect) {
        const Facts &c = facts[callee];
        if (c.io_root.empty() || c.ann.local)
          return false;
        fa.io_root = c.io_root;
        fa.io_why = c.io_why;
        fa.io_via = c.fn->getName().str();
        fa.io_indirect = indirect;
        return true;
      };
      bool found = false;
      for (const auto &[callee, sites] : fa.callees)
        if (!found)
          found = reach(index[callee], false);
      for (const llvm::Function *t : fa.address_taken)
        if (!found && index.count(t))
          found = reach(index[t], false);
      if (fa.indirect_call)
        for (int t : address_taken_fns)
          if (!found)
            found = reach(t, true);
      changed |= found;
    }
  }
  for (size_t i = 0; i < n; ++i) {
    const Facts &fa = facts[i];
    if (fa.io_root.empty())
      continue;
    std::string ev = fa.io_root;
    if (!fa.io_via.empty())
      ev = (fa.io_indirect ? "may reach `" : "reaches `") + fa.io_via + "`, which " +
           (ev.rfind("reaches", 0) == 0 || ev.rfind("may", 0) == 0 ? "does I/O" : ev);
    else if (fa.io_indirect)
      ev = "makes an indirect call that may reach `" + taken_external_io + "`";
    infos[i].io_evidence = ev;
  }

  // Phase 3: the first rule that applies decides.
  for (size_t i = 0; i < n; ++i) {
    const Facts &fa = facts[i];
    FunctionInfo &info = infos[i];
    auto set = [&](Placement p, Rule r, std::string reason) {
      info.placement = p;
      info.rule = r;
      info.reason = std::move(reason);
    };
    const ValuePlan *bad = nullptr;
    if (info.result.kind == MarshalKind::Unmarshalable)
      bad = &info.result;
    for (const auto &p : info.params)
      if (!bad && p.kind == MarshalKind::Unmarshalable)
        bad = &p;
    bool leaf = fa.calls_only_intrinsics && !fa.indirect_call;

    if (fa.ann.local)
      set(Placement::Local, Rule::AnnotatedLocal, "DIST_LOCAL: runs on its caller's node");
    else if (info.name == "main")
      set(Placement::Home, Rule::Main, "the program's entry point runs on the entry node");
    else if (ctors.count(fa.fn))
      set(Placement::Home, Rule::StaticConstructor,
          "static constructor/destructor: runs on the entry node at start-up and exit");
    else if (fa.ann.pin) {
      set(Placement::Pinned, Rule::AnnotatedPin, "DIST_PIN(\"" + *fa.ann.pin + "\")");
      info.pin_node = *fa.ann.pin;
    } else if (!fa.npin_type.empty())
      set(Placement::Local, Rule::NPinInSignature,
          "DIST_NPIN type `" + fa.npin_type + "` in " + fa.npin_where +
              ": runs on its caller's node");
    else if (!info.io_evidence.empty())
      set(Placement::Home, Rule::DoesIO, homeReason(fa.io_why, info.io_evidence));
    else if (info.variadic)
      set(Placement::Local, Rule::Variadic, "variadic arguments cannot be marshaled");
    else if (bad)
      set(Placement::Local, Rule::Unmarshalable,
          (bad->name.empty() ? std::string("the result") : "parameter `" + bad->name + "`") +
              " cannot be marshaled: " + bad->why);
    else if (leaf && !fa.has_loop && info.instructions < options.min_instructions &&
             !fa.ann.load_balanced && fa.globals.empty() && fa.gpin_types.empty())
      set(Placement::Local, Rule::TooSmall,
          "too small (" + std::to_string(info.instructions) + " instructions, floor " +
              std::to_string(options.min_instructions) +
              "): a remote call would cost more than the work");
    else
      set(Placement::Placeable, Rule::Placeable,
          "marshalable signature, no I/O: may run on any node");
  }

  // Phase 4: state groups. A local helper (not DIST_LOCAL) runs where its callers run, so the
  // state it touches counts for them too. So does a local function whose address a function
  // takes (a qsort comparator, a thread's start routine): it runs where that function hands it
  // on; and one that a function may reach through an indirect call. DIST_LOCAL functions keep
  // per-node copies by choice.
  std::vector<std::set<const llvm::GlobalVariable *, ByName>> globals(n);
  std::vector<std::set<std::string>> gpins(n);
  for (size_t i = 0; i < n; ++i)
    if (!facts[i].ann.local) {
      globals[i] = facts[i].globals;
      gpins[i] = facts[i].gpin_types;
    }
  for (bool changed = true; changed;) {
    changed = false;
    for (size_t i = 0; i < n; ++i) {
      if (facts[i].ann.local)
        continue;
      auto takeStateOf = [&](int c) {
        if (infos[c].placement != Placement::Local || facts[c].ann.local)
          return;
        for (auto *g : globals[c])
          changed |= globals[i].insert(g).second;
        for (const auto &t : gpins[c])
          changed |= gpins[i].insert(t).second;
      };
      for (const auto &[callee, sites] : facts[i].callees)
        takeStateOf(index[callee]);
      for (const llvm::Function *taken : facts[i].address_taken)
        if (auto it = index.find(taken); it != index.end())
          takeStateOf(it->second);
      if (facts[i].indirect_call)
        for (int c : address_taken_fns)
          takeStateOf(c);
    }
  }

  // Resources are numbered after the functions: globals, then GPin types.
  std::map<const llvm::GlobalVariable *, int> global_id;
  std::map<std::string, int> gpin_id;
  for (size_t i = 0; i < n; ++i) {
    for (auto *g : globals[i])
      global_id.emplace(g, 0);
    for (const auto &t : gpins[i])
      gpin_id.emplace(t, 0);
  }
  int next_id = static_cast<int>(n);
  for (const llvm::GlobalVariable &g : m.globals()) // module order, for stable output
    if (auto it = global_id.find(&g); it != global_id.end())
      it->second = next_id++;
  for (auto &[name, id] : gpin_id)
    id = next_id++;

  StateClasses state(next_id), globals_only(next_id);
  for (size_t i = 0; i < n; ++i) {
    for (auto *g : globals[i]) {
      state.unite(static_cast<int>(i), global_id[g]);
      globals_only.unite(static_cast<int>(i), global_id[g]);
    }
    for (const auto &t : gpins[i])
      state.unite(static_cast<int>(i), gpin_id[t]);
  }

  for (const auto &[type, id] : gpin_id) {
    Group g;
    g.name = type;
    for (size_t i = 0; i < n; ++i)
      if (gpins[i].count(type)) {
        g.functions.push_back(infos[i].name);
        infos[i].gpin_group = static_cast<int>(out.gpin_groups.size());
      }
    out.gpin_groups.push_back(std::move(g));
  }
  std::map<int, int> component_group;
  for (const llvm::GlobalVariable &gv : m.globals()) {
    auto it = global_id.find(&gv);
    if (it == global_id.end())
      continue;
    int root = globals_only.find(it->second);
    auto [slot, inserted] =
        component_group.emplace(root, static_cast<int>(out.global_groups.size()));
    if (inserted) {
      Group g;
      g.name = "globals#" + std::to_string(out.global_groups.size());
      for (size_t i = 0; i < n; ++i)
        if (globals_only.find(static_cast<int>(i)) == root) {
          g.functions.push_back(infos[i].name);
          infos[i].global_group = slot->second;
        }
      out.global_groups.push_back(std::move(g));
    }
    out.global_groups[slot->second].globals.push_back(gv.getName().str());
  }

  // A group goes where its home or pinned members go.
  std::map<int, std::pair<std::string, std::string>> anchor; // root → (pin or "", member)
  for (size_t i = 0; i < n; ++i) {
    if (globals[i].empty() && gpins[i].empty())
      continue;
    int root = state.find(static_cast<int>(i));
    const FunctionInfo &info = infos[i];
    if (info.placement != Placement::Home && info.placement != Placement::Pinned)
      continue;
    std::string where = info.placement == Placement::Home ? "" : info.pin_node;
    auto [it, inserted] = anchor.emplace(root, std::make_pair(where, info.name));
    if (!inserted && it->second.first != where) {
      auto describe = [](const std::string &w) {
        return w.empty() ? std::string("the entry node") : "node `" + w + "`";
      };
      out.errors.push_back({info.loc, info.name,
                            "shares state with `" + it->second.second + "`, which runs on " +
                                describe(it->second.first) + ", but this one runs on " +
                                describe(where) +
                                "; functions sharing a GPin type or mutable global must run on "
                                "one node"});
    }
  }
  // What state a function holds, for reasons: one GPin type or mutable global.
  auto stateOf = [&](size_t i) {
    return !gpins[i].empty() ? "GPin type `" + *gpins[i].begin() + "`"
                             : "mutable global `" + (*globals[i].begin())->getName().str() + "`";
  };
  for (size_t i = 0; i < n; ++i) {
    FunctionInfo &info = infos[i];
    if (info.placement != Placement::Placeable || (globals[i].empty() && gpins[i].empty()))
      continue;
    auto it = anchor.find(state.find(static_cast<int>(i)));
    if (it == anchor.end())
      continue;
    std::string shared = stateOf(i);
    if (it->second.first.empty()) {
      info.placement = Placement::Home;
      info.rule = Rule::GroupedWithHome;
      info.reason = "shares state (" + shared + ") with `" + it->second.second +
                    "`, which runs on the entry node";
    } else {
      info.placement = Placement::Pinned;
      info.rule = Rule::GroupedWithPin;
      info.pin_node = it->second.first;
      info.reason = "shares state (" + shared + ") with `" + it->second.second + "`, pinned to `" +
                    info.pin_node + "`";
    }
  }

  // A child process made by fork() copies the memory of the node that forks, the entry node (a
  // function calling fork() does I/O): the state its functions use must be there, and then stays.
  std::string forks; // how the program makes child processes, or ""
  for (const Facts &f : facts)
    if (f.forks && forks.empty()) {
      SourceLoc at = infos[index[f.fn]].loc;
      if (f.fork_line)
        at.line = f.fork_line;
      forks = "`" + f.fn->getName().str() + "` calls fork() (" + at.str() + ")";
    }
  for (const llvm::Function &f : m)
    if (forks.empty() && isExternal(f) && makesChildProcess(f.getName()) && isAddressTaken(f))
      forks = "the program takes the address of `" + f.getName().str() + "`";
  for (size_t i = 0; !forks.empty() && i < n; ++i) {
    FunctionInfo &info = infos[i];
    if (info.placement != Placement::Placeable || (globals[i].empty() && gpins[i].empty()))
      continue;
    info.placement = Placement::Home;
    info.rule = Rule::ForkCopiesState;
    info.reason = "holds state (" + stateOf(i) + ") and " + forks +
                  ": a child process copies the entry node's memory, so the state stays there";
  }

  // Placement units: the connected components of shared state, singletons otherwise.
  std::map<int, int> unit_of_root;
  std::map<int, std::set<const llvm::GlobalVariable *, ByName>> unit_globals;
  std::map<int, std::set<std::string>> unit_gpins;
  for (size_t i = 0; i < n; ++i) {
    FunctionInfo &info = infos[i];
    if (info.placement == Placement::Local)
      continue;
    bool stateful = !globals[i].empty() || !gpins[i].empty();
    int root = stateful ? state.find(static_cast<int>(i)) : -1 - static_cast<int>(i);
    auto [it, inserted] = unit_of_root.emplace(root, static_cast<int>(out.units.size()));
    if (inserted) {
      PlacementUnit u;
      u.name = info.name;
      if (stateful)
        u.name = !gpins[i].empty() ? *gpins[i].begin() : out.global_groups[info.global_group].name;
      u.stateful = stateful;
      out.units.push_back(std::move(u));
    }
    PlacementUnit &u = out.units[it->second];
    u.functions.push_back(info.name);
    if (info.placement == Placement::Home ||
        (info.placement == Placement::Pinned && u.placement != Placement::Home)) {
      u.placement = info.placement;
      u.pin_node = info.pin_node;
    }
    info.unit = it->second;
    for (const llvm::GlobalVariable *gv : globals[i])
      unit_globals[it->second].insert(gv);
    for (const auto &t : gpins[i])
      unit_gpins[it->second].insert(t);
  }
  {
    std::vector<std::vector<const llvm::GlobalVariable *>> by_unit(out.units.size());
    std::vector<std::vector<std::string>> gpins_by_unit(out.units.size());
    for (const auto &[u, set] : unit_globals)
      by_unit[u].assign(set.begin(), set.end());
    for (const auto &[u, set] : unit_gpins)
      gpins_by_unit[u].assign(set.begin(), set.end());
    describeUnitState(m, by_unit, gpins_by_unit, out.units);
  }

  // Phase 5: checks of what the annotations promise.
  for (size_t i = 0; i < n; ++i) {
    const Facts &fa = facts[i];
    FunctionInfo &info = infos[i];
    SourceLoc at = fa.ann.loc.file.empty() ? info.loc : fa.ann.loc;
    if (fa.ann.local && fa.ann.load_balanced)
      out.errors.push_back({at, info.name, "both DIST_LOCAL and DIST_LOADBALANCED; keep one"});
    if (fa.ann.local && fa.ann.pin)
      out.errors.push_back({at, info.name, "both DIST_LOCAL and DIST_PIN; keep one"});
    if (fa.ann.pin && !info.plan_complete)
      out.errors.push_back(
          {at, info.name,
           "DIST_PIN, but calls from other nodes cannot reach it: " + firstUnmarshalable(info) +
               "; make the signature marshalable or remove the pin"});
    if (!fa.ann.load_balanced)
      continue;
    out.load_balanced.push_back(info.name);
    if (!info.io_evidence.empty())
      out.errors.push_back({at, info.name,
                            "DIST_LOADBALANCED, but it does I/O (" + info.io_evidence +
                                "); replicas must be free of I/O: remove the annotation or "
                                "move the I/O to the caller"});
    if (!globals[i].empty())
      out.errors.push_back({at, info.name,
                            "DIST_LOADBALANCED, but it uses mutable global `" +
                                (*globals[i].begin())->getName().str() +
                                "`; replicas cannot share it: pass the state as parameters or "
                                "remove the annotation"});
    if (!gpins[i].empty())
      out.errors.push_back({at, info.name,
                            "DIST_LOADBALANCED, but it handles GPin type `" + *gpins[i].begin() +
                                "`, which lives on one node; remove the annotation"});
    if (info.rule == Rule::NPinInSignature || info.rule == Rule::Variadic ||
        info.rule == Rule::Unmarshalable || info.rule == Rule::AnnotatedPin)
      out.errors.push_back(
          {at, info.name, "DIST_LOADBALANCED, but it cannot be replicated: " + info.reason});
    else if (info.unit >= 0 && info.placement == Placement::Placeable && info.plan_complete &&
             !out.units[info.unit].stateful && !fa.ann.local && !fa.ann.pin)
      out.units[info.unit].load_balanced = true;
  }

  // Remote ids, in name order.
  std::vector<FunctionInfo *> remotable;
  for (size_t i = 0; i < n; ++i) {
    FunctionInfo &f = infos[i];
    if (f.placement != Placement::Local && f.plan_complete && !f.variadic && f.rule != Rule::Main &&
        f.rule != Rule::StaticConstructor)
      remotable.push_back(&f);
  }
  std::sort(remotable.begin(), remotable.end(),
            [](const FunctionInfo *a, const FunctionInfo *b) { return a->name < b->name; });
  for (size_t id = 0; id < remotable.size(); ++id)
    remotable[id]->remote_id = static_cast<int>(id);

  // The static call graph into placeable functions.
  for (size_t i = 0; i < n; ++i)
    for (const auto &[callee, sites] : facts[i].callees) {
      int c = index[callee];
      if (infos[c].placement == Placement::Placeable)
        out.call_graph.push_back({infos[i].name, infos[c].name, sites});
    }
  std::stable_sort(out.call_graph.begin(), out.call_graph.end(), [](auto &a, auto &b) {
    return std::tie(a.caller, a.callee) < std::tie(b.caller, b.callee);
  });
  return out;
}

} // namespace distnode::jit
