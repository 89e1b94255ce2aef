// debug_types.cpp - C types from debug info, for the program analysis.
#include "jit/debug_types.h"

#include "llvm/BinaryFormat/Dwarf.h"
#include "llvm/IR/DebugInfo.h"
#include "llvm/IR/DebugInfoMetadata.h"
#include "llvm/IR/Module.h"

namespace distnode::jit {

using llvm::cast;
using llvm::dyn_cast;
using llvm::dyn_cast_or_null;

const llvm::DIType *baseOf(const llvm::DIType *t) {
  if (auto *d = dyn_cast_or_null<llvm::DIDerivedType>(t))
    return d->getBaseType();
  return nullptr;
}

bool isQualifierOrTypedef(unsigned tag) {
  return tag == llvm::dwarf::DW_TAG_typedef || tag == llvm::dwarf::DW_TAG_const_type ||
         tag == llvm::dwarf::DW_TAG_volatile_type || tag == llvm::dwarf::DW_TAG_restrict_type ||
         tag == llvm::dwarf::DW_TAG_atomic_type;
}

// Strips typedefs and qualifiers; reports whether a `const` was passed.
const llvm::DIType *strip(const llvm::DIType *t, bool *is_const) {
  while (auto *d = dyn_cast_or_null<llvm::DIDerivedType>(t)) {
    if (!isQualifierOrTypedef(d->getTag()))
      break;
    if (is_const && d->getTag() == llvm::dwarf::DW_TAG_const_type)
      *is_const = true;
    t = d->getBaseType();
  }
  return t;
}

bool isPointer(const llvm::DIType *t) {
  auto *d = dyn_cast_or_null<llvm::DIDerivedType>(t);
  return d && (d->getTag() == llvm::dwarf::DW_TAG_pointer_type ||
               d->getTag() == llvm::dwarf::DW_TAG_reference_type);
}

std::vector<std::string> btfTags(const llvm::DIType *t) {
  llvm::MDTuple *tuple = nullptr;
  if (auto *d = dyn_cast_or_null<llvm::DIDerivedType>(t))
    tuple = d->getAnnotations().get();
  else if (auto *c = dyn_cast_or_null<llvm::DICompositeType>(t))
    tuple = c->getAnnotations().get();
  std::vector<std::string> tags;
  if (!tuple)
    return tags;
  for (const llvm::MDOperand &op : tuple->operands()) {
    auto *pair = dyn_cast_or_null<llvm::MDNode>(op.get());
    if (!pair || pair->getNumOperands() != 2)
      continue;
    auto *key = dyn_cast_or_null<llvm::MDString>(pair->getOperand(0).get());
    auto *value = dyn_cast_or_null<llvm::MDString>(pair->getOperand(1).get());
    if (key && value && key->getString() == "btf_decl_tag")
      tags.push_back(value->getString().str());
  }
  return tags;
}

std::string compositeKeyword(const llvm::DICompositeType *c) {
  switch (c->getTag()) {
  case llvm::dwarf::DW_TAG_union_type:
    return "union";
  case llvm::dwarf::DW_TAG_enumeration_type:
    return "enum";
  default:
    return "struct";
  }
}

// Renders a C type the way a programmer writes it.
std::string renderType(const llvm::DIType *t) {
  if (!t)
    return "void";
  if (auto *b = dyn_cast<llvm::DIBasicType>(t))
    return b->getName().str();
  if (auto *c = dyn_cast<llvm::DICompositeType>(t)) {
    if (c->getTag() == llvm::dwarf::DW_TAG_array_type)
      return renderType(c->getBaseType()) + "[]";
    std::string name = c->getName().empty() ? "<anonymous>" : c->getName().str();
    return compositeKeyword(c) + " " + name;
  }
  if (isa<llvm::DISubroutineType>(t))
    return "function";
  auto *d = cast<llvm::DIDerivedType>(t);
  switch (d->getTag()) {
  case llvm::dwarf::DW_TAG_typedef:
    return d->getName().str();
  case llvm::dwarf::DW_TAG_const_type: {
    // "const T *" reads better than "T const *" for the common case.
    return "const " + renderType(d->getBaseType());
  }
  case llvm::dwarf::DW_TAG_volatile_type:
    return "volatile " + renderType(d->getBaseType());
  case llvm::dwarf::DW_TAG_pointer_type: {
    const llvm::DIType *base = d->getBaseType();
    if (base && isa<llvm::DISubroutineType>(base))
      return "function pointer";
    std::string inner = renderType(base);
    return inner.back() == '*' ? inner + "*" : inner + " *";
  }
  default:
    return renderType(d->getBaseType());
  }
}

bool TaggedTypes::has(const llvm::DIType *t) const {
  for (const llvm::DIType *cur = t; cur;) {
    auto *d = dyn_cast<llvm::DIDerivedType>(cur);
    if (auto *c = dyn_cast<llvm::DICompositeType>(cur)) {
      if (c->getTag() != llvm::dwarf::DW_TAG_array_type && !c->getName().empty())
        return names.count(compositeKeyword(c) + " " + c->getName().str()) > 0;
      return false;
    }
    if (!d || !isQualifierOrTypedef(d->getTag()))
      return false;
    if (d->getTag() == llvm::dwarf::DW_TAG_typedef && names.count(d->getName().str()))
      return true;
    cur = d->getBaseType();
  }
  return false;
}

std::string TaggedTypes::nameOf(const llvm::DIType *t) const {
  for (const llvm::DIType *cur = t; cur;) {
    if (auto *c = dyn_cast<llvm::DICompositeType>(cur))
      return compositeKeyword(c) + " " + c->getName().str();
    auto *d = dyn_cast<llvm::DIDerivedType>(cur);
    if (!d)
      break;
    if (d->getTag() == llvm::dwarf::DW_TAG_typedef && names.count(d->getName().str()))
      return d->getName().str();
    cur = d->getBaseType();
  }
  return renderType(t);
}

void collectTaggedTypes(const llvm::Module &m, TaggedTypes &gpin, TaggedTypes &npin) {
  llvm::DebugInfoFinder finder;
  finder.processModule(m);
  for (const llvm::DIType *t : finder.types()) {
    std::string name;
    if (auto *c = dyn_cast<llvm::DICompositeType>(t)) {
      if (c->getName().empty())
        continue;
      name = compositeKeyword(c) + " " + c->getName().str();
    } else if (auto *d = dyn_cast<llvm::DIDerivedType>(t)) {
      if (d->getTag() != llvm::dwarf::DW_TAG_typedef)
        continue;
      name = d->getName().str();
    } else {
      continue;
    }
    for (const std::string &tag : btfTags(t)) {
      if (tag == "dist_gpin")
        gpin.names.insert(name);
      else if (tag == "dist_npin")
        npin.names.insert(name);
    }
  }
}

// Whether a value of type t (through typedefs, pointers, arrays and members) involves a tagged
// type; returns the tagged type's name.
std::optional<std::string> findTagged(const llvm::DIType *t, const TaggedTypes &tagged,
                                      std::set<const llvm::DIType *> &seen) {
  if (!t || !seen.insert(t).second)
    return std::nullopt;
  if (tagged.has(t))
    return tagged.nameOf(t);
  if (auto *c = dyn_cast<llvm::DICompositeType>(t)) {
    if (c->getTag() == llvm::dwarf::DW_TAG_array_type)
      return findTagged(c->getBaseType(), tagged, seen);
    for (const llvm::DINode *e : c->getElements())
      if (auto *member = dyn_cast<llvm::DIDerivedType>(e))
        if (auto found = findTagged(member->getBaseType(), tagged, seen))
          return found;
    return std::nullopt;
  }
  if (auto *d = dyn_cast<llvm::DIDerivedType>(t))
    return findTagged(d->getBaseType(), tagged, seen);
  return std::nullopt;
}

// Why a value of this type cannot be copied byte-wise to another node, or "" if it can.
std::string whyNotPlainData(const llvm::DIType *t, int depth) {
  t = strip(t);
  if (!t)
    return "has no known size (void)";
  if (depth > 16)
    return "is nested too deeply";
  if (isPointer(t))
    return "contains a pointer";
  if (isa<llvm::DIBasicType>(t))
    return "";
  if (auto *c = dyn_cast<llvm::DICompositeType>(t)) {
    if (c->isForwardDecl() || c->getSizeInBits() == 0)
      return "has no known size (" + renderType(c) + " is incomplete here)";
    if (c->getTag() == llvm::dwarf::DW_TAG_enumeration_type)
      return "";
    if (c->getTag() == llvm::dwarf::DW_TAG_array_type)
      return whyNotPlainData(c->getBaseType(), depth + 1);
    for (const llvm::DINode *e : c->getElements()) {
      auto *member = dyn_cast<llvm::DIDerivedType>(e);
      if (!member || member->getTag() != llvm::dwarf::DW_TAG_member)
        continue;
      std::string why = whyNotPlainData(member->getBaseType(), depth + 1);
      if (!why.empty())
        return "member `" + member->getName().str() + "` " + why;
    }
    return "";
  }
  if (isa<llvm::DISubroutineType>(t))
    return "is a function";
  return "has an unsupported type";
}

std::uint64_t byteSize(const llvm::DIType *t) {
  t = strip(t);
  return t ? t->getSizeInBits() / 8 : 0;
}

bool isCharType(const llvm::DIType *t) {
  auto *b = dyn_cast_or_null<llvm::DIBasicType>(strip(t));
  if (!b || b->getSizeInBits() != 8)
    return false;
  unsigned e = b->getEncoding();
  return e == llvm::dwarf::DW_ATE_signed_char || e == llvm::dwarf::DW_ATE_unsigned_char;
}

bool isPlainCharType(const llvm::DIType *t) {
  auto *b = dyn_cast_or_null<llvm::DIBasicType>(strip(t));
  return isCharType(b) && b->getName() == "char";
}

bool isIntegerLike(const llvm::DIType *t) {
  t = strip(t);
  if (auto *b = dyn_cast_or_null<llvm::DIBasicType>(t)) {
    unsigned e = b->getEncoding();
    return e != llvm::dwarf::DW_ATE_float && e != llvm::dwarf::DW_ATE_complex_float;
  }
  auto *c = dyn_cast_or_null<llvm::DICompositeType>(t);
  return c && c->getTag() == llvm::dwarf::DW_TAG_enumeration_type;
}

} // namespace distnode::jit
