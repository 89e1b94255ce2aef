// analysis_facts.h - what the program analysis learns of each function before it decides
// anything (phase 1 of program_analysis.cpp): annotations, the C signature from debug info,
// calls, referenced functions and globals, size, loops, direct I/O. Internal to jit/.
#ifndef DISTNODE_JIT_ANALYSIS_FACTS_H
#define DISTNODE_JIT_ANALYSIS_FACTS_H

#include "jit/annotations.h"

#include "llvm/ADT/MapVector.h"
#include "llvm/IR/GlobalValue.h"

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace llvm {
class DISubprogram;
class DIType;
class Function;
class GlobalVariable;
class Module;
} // namespace llvm

namespace distnode::jit {

// Orders globals by name, so that every output (and the first evidence chosen) is the same on
// every run and every node.
struct ByName {
  bool operator()(const llvm::GlobalValue *a, const llvm::GlobalValue *b) const {
    return a->getName() < b->getName();
  }
};

/// The facts of one defined function.
/// What makes a function run on the entry node, for the wording of its reason.
enum class HomeWhy : std::uint8_t {
  DoesIO,        ///< an external function with side effects, inline assembly, external globals
  ThreadBound,   ///< a thread-local variable: the calling thread's
  SignalContext, ///< may be a signal handler, or called from one
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
  bool installs_signal_handlers = false; // calls signal(), sigaction()…: what it references
                                         // may be a handler
  unsigned fork_line = 0; // the line of a call of fork() (the child copies this node's memory)
  bool forks = false;     // calls fork(), forkpty() or daemon()
  std::string direct_io;  // first external with side effects
  HomeWhy direct_why = HomeWhy::DoesIO;                   // what direct_io is
  std::set<const llvm::GlobalVariable *, ByName> globals; // mutable globals touched directly
  std::set<std::string> gpin_types;                       // GPin types in the signature
  std::string npin_type;                                  // an NPin type in the signature
  std::string npin_where;
  bool has_loop = false;
  unsigned instructions = 0;

  // Phase 2.
  std::string io_root; // the side-effecting external it reaches
  HomeWhy io_why = HomeWhy::DoesIO;
  std::string io_via; // the callee through which it reaches it ("" if direct)
  bool io_indirect = false;
};

/// Whether `f` is outside the program: a declaration, or a C library inline body.
[[nodiscard]] bool isExternal(const llvm::Function &f);
/// Whether a call of external `callee` is I/O or touches process-wide state (not one of the
/// C library's pure or node-local functions, and not DIST_PURE_EXTERN).
[[nodiscard]] bool
isSideEffectingExternal(const llvm::Function &callee,
                        const std::map<const llvm::Function *, FunctionAnnotations> &ann);
/// Whether `f` may be called through a pointer (a use of it is not a direct call).
[[nodiscard]] bool isAddressTaken(const llvm::Function &f);
/// Whether the C library function `name` makes a child process that goes on with the program's
/// code (fork, forkpty, daemon; not vfork, whose child may only exec or _exit).
[[nodiscard]] bool makesChildProcess(llvm::StringRef name);
/// Signal handlers that an installer (a function calling signal(), sigaction()…) does not take
/// the address of itself, with the evidence:
/// - a function given to a helper that hands that parameter on to an installer
///   (`install(SIGALRM, on_alarm)`, through further helpers, or a `struct sigaction` it fills),
///   directly or through a local variable (`h = cond ? a : b; install(SIGINT, h)`);
/// - a function whose address any function stores into a `struct sigaction`;
/// - one in the initializer of a `struct sigaction`, or of a mutable global an installer uses.
[[nodiscard]] std::vector<std::pair<const llvm::Function *, std::string>>
indirectSignalHandlers(const llvm::Module &module, const std::vector<Facts> &facts);
/// For each global variable, the program's functions whose addresses may be stored in it: by a
/// store (also of a parameter, then what its callers pass), or in its initializer. A call
/// through a function pointer loaded from a global may call any of them.
using FunctionsInGlobals =
    std::map<const llvm::GlobalVariable *, std::set<const llvm::Function *, ByName>>;
[[nodiscard]] FunctionsInGlobals functionsStoredInGlobals(const llvm::Module &module);
/// Fills in the facts of `facts.fn`'s body: calls, referenced functions and globals, size,
/// loops, direct I/O.
void scanBody(Facts &facts, const std::map<const llvm::Function *, FunctionAnnotations> &ann);
/// Fills in the C-level signature of `facts.fn` from its debug info.
void readSignature(Facts &facts);

} // namespace distnode::jit

#endif
