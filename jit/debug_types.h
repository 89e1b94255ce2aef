// debug_types.h - C types from debug info, for the program analysis: names as written, the
// GPin and NPin tags (btf_type_tag), and whether a type is plain data a node can copy.
#ifndef DISTNODE_JIT_DEBUG_TYPES_H
#define DISTNODE_JIT_DEBUG_TYPES_H

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace llvm {
class DICompositeType;
class DIType;
class Module;
} // namespace llvm

namespace distnode::jit {

/// The type a derived type (pointer, typedef, qualifier, member) refers to, or null.
[[nodiscard]] const llvm::DIType *baseOf(const llvm::DIType *t);
/// Whether a DWARF tag is a typedef or a cv-qualifier.
[[nodiscard]] bool isQualifierOrTypedef(unsigned tag);
/// `t` without typedefs and qualifiers; sets *is_const if a const qualifier was passed.
[[nodiscard]] const llvm::DIType *strip(const llvm::DIType *t, bool *is_const = nullptr);
/// Whether `t` (through typedefs and qualifiers) is a pointer.
[[nodiscard]] bool isPointer(const llvm::DIType *t);
/// The btf_type_tag annotations on `t` (e.g. "dist_gpin").
[[nodiscard]] std::vector<std::string> btfTags(const llvm::DIType *t);
/// "struct", "union" or "enum".
[[nodiscard]] std::string compositeKeyword(const llvm::DICompositeType *c);
/// The C spelling of `t`, e.g. "const struct vec3 *".
[[nodiscard]] std::string renderType(const llvm::DIType *t);

/// The names of struct/union/typedef types carrying a tag anywhere in the module. A forward
/// declaration in another translation unit has no tags, so lookups also go by name.
struct TaggedTypes {
  std::set<std::string> names; ///< "struct table", or a typedef's name

  [[nodiscard]] bool has(const llvm::DIType *t) const;
  /// The tagged type's display name, for messages and group names.
  [[nodiscard]] std::string nameOf(const llvm::DIType *t) const;
};

/// The GPin and NPin types of `module` (dist.h's DIST_GPIN and DIST_NPIN).
void collectTaggedTypes(const llvm::Module &module, TaggedTypes &gpin, TaggedTypes &npin);

/// Whether a value of type `t` (through typedefs, pointers, arrays and members) involves a
/// tagged type; returns the tagged type's name. `seen` guards against recursive types.
[[nodiscard]] std::optional<std::string>
findTagged(const llvm::DIType *t, const TaggedTypes &tagged, std::set<const llvm::DIType *> &seen);

/// Why a value of this type cannot be copied byte-wise to another node, or "" if it can.
[[nodiscard]] std::string whyNotPlainData(const llvm::DIType *t, int depth = 0);
/// Size in bytes of `t` (through typedefs and qualifiers); 0 if unknown.
[[nodiscard]] std::uint64_t byteSize(const llvm::DIType *t);
[[nodiscard]] bool isCharType(const llvm::DIType *t);
/// Plain `char` (not `signed char`, `unsigned char` or their typedefs such as `uint8_t`): the
/// element type of C strings.
[[nodiscard]] bool isPlainCharType(const llvm::DIType *t);
/// An integer, bool, char or enum (through typedefs and qualifiers).
[[nodiscard]] bool isIntegerLike(const llvm::DIType *t);

} // namespace distnode::jit

#endif
