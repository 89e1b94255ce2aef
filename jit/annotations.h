// annotations.h - the distnode annotations of a program (include/dist.h): DIST_LOCAL,
// DIST_LOADBALANCED, DIST_PURE_EXTERN, DIST_PIN and the buffer annotations, as clang records them
// in llvm.global.annotations. A part of the program analysis (program_analysis.h).
#ifndef DISTNODE_JIT_ANNOTATIONS_H
#define DISTNODE_JIT_ANNOTATIONS_H

#include "jit/program_analysis.h"

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace llvm {
class Function;
class Module;
class Value;
} // namespace llvm

namespace distnode::jit {

enum class BufferDir { In, Out, InOut };

/// DIST_IN/DIST_OUT/DIST_INOUT(param, count) on a function.
struct BufferAnnotation {
  BufferDir dir;
  std::string param;
  std::string count;
  SourceLoc loc;
  std::string spelling; ///< "DIST_IN(buf, n)"
};

/// Everything annotated on one function.
struct FunctionAnnotations {
  bool local = false;
  bool load_balanced = false;
  bool pure_extern = false;
  std::optional<std::string> pin;
  std::vector<BufferAnnotation> buffers;
  SourceLoc loc; ///< of the first annotation
};

/// The text of a global holding a C string (an annotation's operands), or "".
[[nodiscard]] std::string cString(const llvm::Value *v);

/// The distnode annotations of every annotated function of `module`. Malformed or unknown
/// ones (and annotations on something that is not a function) are added to `errors`, with the
/// file and line the annotation was written at.
[[nodiscard]] std::map<const llvm::Function *, FunctionAnnotations>
readAnnotations(const llvm::Module &module, std::vector<Diagnostic> &errors);

} // namespace distnode::jit

#endif
