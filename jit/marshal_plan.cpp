// marshal_plan.cpp - the marshaling plan of each parameter and result.
#include "jit/marshal_plan.h"

#include "jit/counted_reads.h"
#include "jit/debug_types.h"
#include "jit/pointer_uses.h"

#include "llvm/BinaryFormat/Dwarf.h"
#include "llvm/IR/DebugInfoMetadata.h"
#include "llvm/IR/DerivedTypes.h"
#include "llvm/IR/Function.h"
#include "llvm/IR/Module.h"

#include <charconv>

namespace distnode::jit {

using llvm::cast;
using llvm::dyn_cast;
using llvm::dyn_cast_or_null;
using llvm::isa;

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
      if (gpin.has(pointee_decl))
        errors.push_back({buffer->loc, fname,
                          buffer->spelling + ": `" + name + "` points to DIST_GPIN type `" +
                              renderType(pointee_decl) +
                              "`, whose objects stay on their node and travel as handles; "
                              "remove the annotation"});
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
    if (pointee && isa<llvm::DISubroutineType>(pointee))
      return unmarshalable(p, "`" + p.c_type +
                                  "` is a function pointer: a function's address means nothing "
                                  "on another node");
    if (!pointee)
      return unmarshalable(p, "`" + p.c_type +
                                  "` has no known size; annotate it with DIST_IN/"
                                  "DIST_OUT/DIST_INOUT(" +
                                  name + ", count)");
    if (isCharType(pointee)) {
      if (pointee_const && isPlainCharType(pointee)) {
        p.kind = MarshalKind::CString;
        p.size = 1;
        return p;
      }
      if (pointee_const) // a NUL may be inside the bytes, and none may end them
        return unmarshalable(p, "`" + p.c_type +
                                    "` points to bytes, not to a string (only `const char *` "
                                    "is one); annotate it with DIST_IN(" +
                                    name + ", count)");
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
// copied pointer (README "Pointers, arrays and other limits").
void checkPointerUse(ValuePlan &p, const PointerUse &use, const CountedRead &counted,
                     const std::string &count_name) {
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
  } else if (p.kind == MarshalKind::CString && counted.counted()) {
    // A copy up to the first NUL would hold too few bytes, or read past them. The count to
    // annotate is how many bytes it reads, which the evidence need not name exactly.
    p = unmarshalable(p, "holds bytes with a count, not a string: `" + p.name + "` " + counted.how +
                             (counted.count_arg >= 0 ? " `" + count_name + "`" : std::string()) +
                             counted.how_rest + counted.at +
                             (counted.annotatable ? "; annotate it with DIST_IN(" + p.name +
                                                        ", n), n being the number of bytes it reads"
                                                  : "; it runs where its caller does"));
  }
}

} // namespace distnode::jit
