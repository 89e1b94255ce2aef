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

#include "jit/annotations.h"
#include "jit/debug_types.h"
#include "jit/state_analysis.h"

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

#include <algorithm>
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

using llvm::cast;
using llvm::dyn_cast;
using llvm::dyn_cast_or_null;
using llvm::isa;

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
      "__errno_location"};
  return kSafe.contains(name);
}

// ---------------------------------------------------------------------------------------------
// Per-function facts (phase 1).

// Orders globals by name, so that every output (and the first evidence chosen) is the same on
// every run and every node.
struct ByName {
  bool operator()(const llvm::GlobalValue *a, const llvm::GlobalValue *b) const {
    return a->getName() < b->getName();
  }
};

struct Facts {
  const llvm::Function *fn = nullptr;
  FunctionAnnotations ann;
  const llvm::DISubprogram *sp = nullptr;
  std::vector<std::string> param_names; // C-level, from debug info
  std::vector<const llvm::DIType *> param_types;
  const llvm::DIType *result_type = nullptr;
  bool has_di_signature = false;

  llvm::MapVector<const llvm::Function *, unsigned> callees; // defined callees → call sites
  std::set<const llvm::Function *, ByName> address_taken;    // functions referenced, not called
  bool indirect_call = false;
  bool calls_only_intrinsics = true;
  std::string direct_io;                                  // first external with side effects
  std::set<const llvm::GlobalVariable *, ByName> globals; // mutable globals touched directly
  std::set<std::string> gpin_types;                       // GPin types in the signature
  std::string npin_type;                                  // an NPin type in the signature
  std::string npin_where;
  bool has_loop = false;
  unsigned instructions = 0;

  // Phase 2.
  std::string io_root; // the side-effecting external it reaches
  std::string io_via;  // the callee through which it reaches it ("" if direct)
  bool io_indirect = false;
};

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

// Records globals and functions that appear in a constant operand (through constant
// expressions such as GEPs).
void scanConstant(const llvm::Value *v, Facts &facts, std::set<const llvm::Value *> &seen) {
  if (!seen.insert(v).second)
    return;
  if (auto *gv = dyn_cast<llvm::GlobalVariable>(v)) {
    if (gv->getName().starts_with("llvm."))
      return;
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
bool onlyMetadataUses(const llvm::Value *v, int depth = 0) {
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

// ---------------------------------------------------------------------------------------------
// Marshaling plans.

ValuePlan unmarshalable(ValuePlan p, std::string why) {
  p.kind = MarshalKind::Unmarshalable;
  p.why = std::move(why);
  return p;
}

std::optional<std::uint64_t> parseCount(const std::string &s) {
  if (s.empty() || !std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return std::nullopt;
  // Decimal digits only; a constant too large for 64 bits is no count either (the caller
  // reports it as an annotation error).
  std::uint64_t value = 0;
  for (char c : s) {
    if (value > (std::numeric_limits<std::uint64_t>::max() - (c - '0')) / 10)
      return std::nullopt;
    value = value * 10 + static_cast<std::uint64_t>(c - '0');
  }
  return value;
}

// The plan of one C parameter (or of the result, when is_result).
ValuePlan planValue(const Facts &facts, const llvm::DIType *type, const std::string &name,
                    bool is_result, const TaggedTypes &gpin, std::vector<Diagnostic> &errors,
                    const std::string &fname) {
  ValuePlan p;
  p.name = name;
  p.c_type = renderType(type);
  const BufferAnnotation *buffer = nullptr;
  for (const auto &b : facts.ann.buffers)
    if (!is_result && b.param == name)
      buffer = &b;

  bool is_const = false;
  const llvm::DIType *t = strip(type, &is_const);
  if (!t) {
    if (is_result) {
      p.kind = MarshalKind::Void;
      return p;
    }
    return unmarshalable(p, "has no type information");
  }

  if (isPointer(t)) {
    bool pointee_const = false;
    const llvm::DIType *pointee_decl = baseOf(t);
    const llvm::DIType *pointee = strip(pointee_decl, &pointee_const);
    if (buffer) {
      if (is_result)
        return unmarshalable(p, "buffer annotations apply to parameters");
      p.kind = buffer->dir == BufferDir::In    ? MarshalKind::BufferIn
               : buffer->dir == BufferDir::Out ? MarshalKind::BufferOut
                                               : MarshalKind::BufferInOut;
      p.count = buffer->count;
      if (pointee_const && buffer->dir != BufferDir::In)
        errors.push_back({buffer->loc, fname,
                          buffer->spelling + ": `" + name +
                              "` points to const data, which cannot be copied out; use DIST_IN"});
      if (!pointee) {
        p.size = 1; // void *: the count is in bytes
      } else {
        std::string why = whyNotPlainData(pointee);
        if (!why.empty())
          return unmarshalable(p, buffer->spelling + ": element type `" + renderType(pointee_decl) +
                                      "` " + why);
        p.size = byteSize(pointee);
      }
      return p;
    }
    if (gpin.has(pointee_decl)) {
      p.kind = MarshalKind::GPinHandle;
      p.size = 8;
      return p;
    }
    if (is_result)
      return unmarshalable(p, "returns a pointer (`" + p.c_type +
                                  "`); only pointers to DIST_GPIN types can be returned "
                                  "across nodes");
    if (!pointee)
      return unmarshalable(p, "`" + p.c_type +
                                  "` has no known size; annotate it with DIST_IN/"
                                  "DIST_OUT/DIST_INOUT(" +
                                  name + ", count)");
    if (isCharType(pointee)) {
      if (pointee_const) {
        p.kind = MarshalKind::CString;
        p.size = 1;
        return p;
      }
      return unmarshalable(p, "`" + p.c_type +
                                  "` is not const, so it is not a string; make it "
                                  "`const char *` or annotate it with DIST_OUT/DIST_INOUT(" +
                                  name + ", count)");
    }
    if (auto *c = dyn_cast<llvm::DICompositeType>(pointee);
        c && c->getTag() != llvm::dwarf::DW_TAG_enumeration_type &&
        c->getTag() != llvm::dwarf::DW_TAG_array_type) {
      std::string why = whyNotPlainData(pointee);
      if (!why.empty())
        return unmarshalable(p, "points to `" + renderType(pointee_decl) + "`, which " + why);
      p.kind = pointee_const ? MarshalKind::StructPtrIn : MarshalKind::StructPtrInOut;
      p.size = byteSize(pointee);
      return p;
    }
    return unmarshalable(p, "`" + p.c_type +
                                "` has no element count; annotate it with "
                                "DIST_IN/DIST_OUT/DIST_INOUT(" +
                                name + ", count)");
  }

  if (buffer)
    errors.push_back({buffer->loc, fname,
                      buffer->spelling + ": parameter `" + name + "` is `" + p.c_type +
                          "`, not a pointer; buffer annotations name pointer parameters"});
  if (auto *b = dyn_cast<llvm::DIBasicType>(t)) {
    unsigned e = b->getEncoding();
    p.kind = (e == llvm::dwarf::DW_ATE_float) ? MarshalKind::Float : MarshalKind::Integer;
    if (e == llvm::dwarf::DW_ATE_complex_float)
      p.kind = MarshalKind::StructByValue;
    p.size = b->getSizeInBits() / 8;
    return p;
  }
  if (auto *c = dyn_cast<llvm::DICompositeType>(t)) {
    if (c->getTag() == llvm::dwarf::DW_TAG_enumeration_type) {
      p.kind = MarshalKind::Integer;
      p.size = byteSize(c);
      return p;
    }
    std::string why = whyNotPlainData(c);
    if (!why.empty())
      return unmarshalable(p, "`" + p.c_type + "` passed by value " + why);
    p.kind = MarshalKind::StructByValue;
    p.size = byteSize(c);
    return p;
  }
  return unmarshalable(p, "`" + p.c_type + "` is not a supported type");
}

// Plans without debug info: only scalars can be marshaled.
ValuePlan planFromIR(llvm::Type *type, const std::string &name, bool is_result) {
  ValuePlan p;
  p.name = name;
  if (type->isVoidTy() && is_result) {
    p.kind = MarshalKind::Void;
    p.c_type = "void";
    return p;
  }
  if (type->isIntegerTy()) {
    p.kind = MarshalKind::Integer;
    p.size = (type->getIntegerBitWidth() + 7) / 8;
    p.c_type = "i" + std::to_string(type->getIntegerBitWidth());
    return p;
  }
  if (type->isFloatingPointTy()) {
    p.kind = MarshalKind::Float;
    p.size = type->getPrimitiveSizeInBits() / 8;
    p.c_type = type->isDoubleTy() ? "double" : type->isFloatTy() ? "float" : "long double";
    return p;
  }
  p.c_type = type->isPointerTy() ? "pointer" : "aggregate";
  return unmarshalable(p, "no debug info for this " + p.c_type +
                              "; compile the program with dist-cc (it passes -g)");
}

// Maps C parameters to IR arguments under the x86-64 System V lowering clang applies: a struct
// of 9 to 16 bytes becomes two arguments, of 1 to 8 bytes one, larger ones a byval pointer.
bool mapIRArguments(FunctionInfo &info, const Facts &facts) {
  const llvm::Function &f = *facts.fn;
  unsigned next = 0;
  if (f.arg_size() > 0 && f.hasParamAttribute(0, llvm::Attribute::StructRet)) {
    info.result.ir_args.push_back(0);
    next = 1;
  }
  for (unsigned k = 0; k < info.params.size(); ++k) {
    ValuePlan &p = info.params[k];
    const llvm::DIType *t = k < facts.param_types.size() ? strip(facts.param_types[k]) : nullptr;
    auto *composite = dyn_cast_or_null<llvm::DICompositeType>(t);
    bool aggregate = composite && composite->getTag() != llvm::dwarf::DW_TAG_enumeration_type;
    if (auto *b = dyn_cast_or_null<llvm::DIBasicType>(t))
      aggregate = b->getEncoding() == llvm::dwarf::DW_ATE_complex_float;
    unsigned count = 1;
    if (aggregate && next < f.arg_size() && !f.hasParamAttribute(next, llvm::Attribute::ByVal)) {
      std::uint64_t bytes = t->getSizeInBits() / 8;
      count = static_cast<unsigned>((bytes + 7) / 8);
    }
    for (unsigned c = 0; c < count; ++c)
      p.ir_args.push_back(next + c);
    next += count;
  }
  return next == f.arg_size();
}

// A pointer parameter is copied only if the callee keeps to what the copy holds: one object
// for a struct pointer (an array needs its count), and nothing that outlives the call for any
// copied pointer (DESIGN.md "Pointers and arrays").
void checkPointerUse(ValuePlan &p, const PointerUse &use) {
  bool copied = p.kind == MarshalKind::CString || p.kind == MarshalKind::BufferIn ||
                p.kind == MarshalKind::BufferOut || p.kind == MarshalKind::BufferInOut ||
                p.kind == MarshalKind::StructPtrIn || p.kind == MarshalKind::StructPtrInOut;
  if (!copied)
    return;
  bool one_object = p.kind == MarshalKind::StructPtrIn || p.kind == MarshalKind::StructPtrInOut;
  std::string annotate =
      "; annotate it with DIST_IN/DIST_OUT/DIST_INOUT(" + p.name + ", count) if it is an array";
  if (one_object && use.indexed) {
    p = unmarshalable(p, "points into an array: `" + p.name + "` " + use.indexed_how + annotate);
  } else if (one_object && use.extent > p.size) {
    p = unmarshalable(p, "points into an array: `" + p.name + "` " + use.extent_how +
                             ", past the " + std::to_string(p.size) + "-byte object it points to" +
                             annotate);
  } else if (use.escapes) {
    p = unmarshalable(p, "outlives the call: `" + p.name + "` " + use.escape_how +
                             ", so a copy cannot stand in for it");
  }
}

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

std::string firstUnmarshalable(const FunctionInfo &info) {
  for (const auto &p : info.params)
    if (p.kind == MarshalKind::Unmarshalable)
      return "parameter `" + p.name + "` " + p.why;
  return "the result " + info.result.why;
}

std::string joinNames(const std::vector<std::string> &names) {
  return names.empty() ? "none" : llvm::join(names, ", ");
}

} // namespace

ProgramAnalysis analyzeProgram(const llvm::Module &m, const AnalysisOptions &options) {
  ProgramAnalysis out;
  auto annotations = readAnnotations(m, out.errors);
  const PointerUses pointer_uses(m);
  TaggedTypes gpin, npin;
  collectTaggedTypes(m, gpin, npin);

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
          if (p.ir_args.size() == 1)
            checkPointerUse(p, pointer_uses.of(*fa.fn, p.ir_args[0]));
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

  for (Facts &fa : facts) {
    if (!fa.direct_io.empty())
      fa.io_root = fa.direct_io;
    else if (fa.indirect_call && !taken_external_io.empty()) {
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
      set(Placement::Home, Rule::DoesIO,
          "does I/O (" + info.io_evidence + "): runs on the entry node");
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
  // state it touches counts for them too. DIST_LOCAL functions keep per-node copies by choice.
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
      for (const auto &[callee, sites] : facts[i].callees) {
        int c = index[callee];
        if (infos[c].placement != Placement::Local || facts[c].ann.local)
          continue;
        for (auto *g : globals[c])
          changed |= globals[i].insert(g).second;
        for (const auto &t : gpins[c])
          changed |= gpins[i].insert(t).second;
      }
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
  for (size_t i = 0; i < n; ++i) {
    FunctionInfo &info = infos[i];
    if (info.placement != Placement::Placeable || (globals[i].empty() && gpins[i].empty()))
      continue;
    auto it = anchor.find(state.find(static_cast<int>(i)));
    if (it == anchor.end())
      continue;
    std::string shared = !gpins[i].empty()
                             ? "GPin type `" + *gpins[i].begin() + "`"
                             : "mutable global `" + (*globals[i].begin())->getName().str() + "`";
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
