// pointer_uses.h - what each function does with its pointer parameters: whether it treats one
// as an array, and whether the pointer outlives the call (README "Pointers, arrays and other limits").
//
// A pointer parameter can be marshaled by copying what it points to only if the callee touches
// that one object (or the annotated array) and keeps no pointer into it after it returns. This
// analysis answers both questions from the IR, across calls between the program's functions.
// It is conservative: a use it does not understand counts as both.
//
// Internal to jit/: it takes LLVM types, so only analysis sources include it.
#ifndef DISTNODE_JIT_POINTER_USES_H
#define DISTNODE_JIT_POINTER_USES_H

#include <cstdint>
#include <map>
#include <string>
#include <utility>

namespace llvm {
class Function;
class Instruction;
class Module;
} // namespace llvm

namespace distnode::jit {

/// What a function does with one pointer parameter (and every pointer derived from it).
struct PointerUse {
  /// Indexed with a non-constant offset, accessed at a place not known at compile time, copied
  /// by a length not known at compile time, or handed to something that does so: it points
  /// into an array.
  bool indexed = false;
  /// Stored to memory (other than the function's own local variables), returned, freed,
  /// compared with a pointer not derived from it, or handed to something that does so: a
  /// pointer to it may outlive the call, or its address matters.
  bool escapes = false;
  /// How many bytes from the pointer the function reads or writes at most, through accesses
  /// at offsets known at compile time (fields, casts, memcpy of a constant length, byval);
  /// 0 if none. Compared with the size of what the parameter points to by the caller.
  std::uint64_t extent = 0;
  std::string indexed_how; ///< evidence, e.g. "is indexed with a non-constant offset (f.c:3)"
  std::string escape_how;  ///< evidence, e.g. "is stored to memory (f.c:9)"
  std::string extent_how;  ///< evidence, e.g. "is accessed up to byte 16 (f.c:4)"
};

/// The pointer uses of every pointer parameter of every function defined in a module.
/// Built once; read-only afterwards.
class PointerUses {
public:
  explicit PointerUses(const llvm::Module &module);

  /// What `fn` does with its IR argument `arg`. Arguments that are not pointers, and functions
  /// not defined in the module, answer with the conservative "indexed and escapes".
  [[nodiscard]] const PointerUse &of(const llvm::Function &fn, unsigned arg) const;

private:
  std::map<std::pair<const llvm::Function *, unsigned>, PointerUse> uses_;
  PointerUse unknown_;
};

/// Where `i` is in the source, as evidence ends: " (f.c:3)", or " (in `f`)" without debug info.
[[nodiscard]] std::string sourceLocation(const llvm::Instruction &i);

} // namespace distnode::jit

#endif
