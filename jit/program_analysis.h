// program_analysis.h - which functions of a program may run on another node, and how their
// arguments cross the wire (README "The analysis").
//
// The analysis reads the annotations of include/dist.h (from llvm.global.annotations and debug
// info), the C types of parameters (from debug info) and the IR, and decides for every defined
// function whether it is placeable, and if not, why. The result holds no LLVM types, so it can be
// printed, tested and sent to other components without LLVM headers.
#ifndef DISTNODE_JIT_PROGRAM_ANALYSIS_H
#define DISTNODE_JIT_PROGRAM_ANALYSIS_H

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace llvm {
class Module;
} // namespace llvm

namespace distnode::jit {

/// Where a function may run.
enum class Placement {
  Placeable, ///< may run on any node: all of its signature is marshalable and it does no I/O
  Local,     ///< runs on its caller's node (DIST_LOCAL, NPin, unmarshalable, too small)
  Home,      ///< runs on the entry node (main, constructors, I/O, or grouped with such)
  Pinned,    ///< runs on the node named by DIST_PIN
};

/// Why a function got its placement; the first rule that applies decides (program_analysis.cpp).
enum class Rule {
  Placeable,         ///< no rule restricts it
  AnnotatedLocal,    ///< DIST_LOCAL
  AnnotatedPin,      ///< DIST_PIN("node")
  Main,              ///< the program's entry point
  StaticConstructor, ///< listed in llvm.global_ctors / llvm.global_dtors
  NPinInSignature,   ///< a DIST_NPIN type in a parameter or the result
  Variadic,          ///< variadic arguments cannot be marshaled
  Unmarshalable,     ///< a parameter or the result has no marshaling plan
  DoesIO,            ///< calls (or reaches) an external function with side effects
  GroupedWithHome,   ///< shares a GPin type or a mutable global with a Home function
  GroupedWithPin,    ///< shares a GPin type or a mutable global with a DIST_PIN function
  TooSmall,          ///< a leaf without loops below the granularity floor
  ForkCopiesState,   ///< holds state, and the program calls fork(): a child copies the entry's
};

/// How one parameter or the result crosses the wire.
enum class MarshalKind {
  Void,           ///< no value (result of a void function)
  Integer,        ///< integer, enum, bool, char: `size` bytes
  Float,          ///< float, double, long double: `size` bytes
  StructByValue,  ///< pointer-free struct/union passed by value: `size` bytes
  CString,        ///< `const char *`, NUL-terminated, copied in
  BufferIn,       ///< DIST_IN: `count` elements of `size` bytes, copied in
  BufferOut,      ///< DIST_OUT: copied out after the call
  BufferInOut,    ///< DIST_INOUT: copied in and out
  StructPtrIn,    ///< pointer to a const pointer-free struct: copied in
  StructPtrInOut, ///< pointer to a non-const pointer-free struct: copied in and out
  GPinHandle,     ///< pointer to a DIST_GPIN type: an opaque handle, never dereferenced remotely
  Unmarshalable,  ///< none of the above: `why` says what is wrong
};

/// A source position (file as recorded in debug info or the annotation, 1-based line).
struct SourceLoc {
  std::string file;
  unsigned line = 0;
  /// "file:line", or "" when unknown.
  [[nodiscard]] std::string str() const;
};

/// The marshaling plan of one C-level parameter or of the result.
struct ValuePlan {
  std::string name;   ///< parameter name from debug info ("argN" without it; "" for the result)
  std::string c_type; ///< C type as written, e.g. "const struct vec3 *"
  MarshalKind kind = MarshalKind::Unmarshalable;
  std::uint64_t size = 0; ///< bytes of the value, or of one element for buffers
  /// Buffers: the element count's source, as written in the annotation ("n" or "16").
  std::string count;
  int count_param = -1;          ///< index of the C parameter holding the count, or -1
  std::uint64_t count_value = 0; ///< the constant count when count_param is -1
  /// The IR arguments that carry this C parameter after ABI lowering (a 16-byte struct may be
  /// two IR arguments, a large one a byval pointer); for the result, the sret argument if any.
  std::vector<unsigned> ir_args;
  std::string why; ///< for Unmarshalable: what is wrong and what to do
};

/// The analysis' decision for one defined function.
struct FunctionInfo {
  std::string name;
  SourceLoc loc;
  Placement placement = Placement::Placeable;
  Rule rule = Rule::Placeable;
  std::string reason;   ///< one sentence naming the rule's evidence
  std::string pin_node; ///< DIST_PIN's node (also for GroupedWithPin)
  bool load_balanced = false;
  bool annotated_local = false;
  bool variadic = false;
  unsigned instructions = 0; ///< IR instructions, not counting debug info, allocas and their
                             ///< loads/stores (what remains after mem2reg)
  std::string io_evidence;   ///< if it does I/O: "calls `printf`" or "via `log_line` → `fputs`"
  std::vector<ValuePlan> params;
  ValuePlan result;
  bool plan_complete = false; ///< every parameter and the result is marshalable
  int gpin_group = -1;        ///< index into ProgramAnalysis::gpin_groups, or -1
  int global_group = -1;      ///< index into ProgramAnalysis::global_groups, or -1
  int unit = -1;              ///< index into ProgramAnalysis::units; -1 for local functions
  /// Id of a *remotable* function (non-local, marshalable, not main or a constructor): calls
  /// of it go through a stub and may cross nodes. Ids follow name order, so every node of a
  /// cluster agrees on them. -1 for the others.
  int remote_id = -1;
};

/// One mutable global of a unit's state.
struct StateVar {
  std::string name; ///< as in the IR (a function's static: "counter" or "f.counter")
  std::uint64_t bytes = 0;
};

/// What the placement moves: one function, or all functions that share state (GPin types and
/// mutable globals, transitively). Local functions belong to no unit: they run where called.
struct PlacementUnit {
  std::string name;                           ///< the function's name, or the group's
  std::vector<std::string> functions;         ///< members, in module order
  Placement placement = Placement::Placeable; ///< Placeable, Home or Pinned
  std::string pin_node;                       ///< for Pinned
  bool stateful = false; ///< holds mutable globals or GPin data (moving it moves state)
  /// A DIST_LOADBALANCED function that passed its checks (a unit of its own, stateless,
  /// remotable): it runs on every node of its replica set instead of on one owner.
  bool load_balanced = false;
  std::vector<StateVar> state;   ///< its mutable globals, by name (state_analysis.h)
  std::uint64_t state_bytes = 0; ///< their total size
  /// A placeable stateful unit whose state can be shipped to another node: pointer-free
  /// globals only, and no GPin objects. Stateless units need no migration; home and pinned
  /// units never move.
  bool migratable = false;
  std::string migrate_why; ///< for a stateful unit that cannot migrate: why, naming the evidence
};

/// Functions that must share a node: all handlers of one GPin type, or all functions using one
/// set of mutable globals (the unit of state migration).
struct Group {
  std::string name;                   ///< "struct table" for GPin groups, "globals#N" otherwise
  std::vector<std::string> functions; ///< members, in module order
  std::vector<std::string> globals;   ///< mutable globals (global groups only)
};

/// A static call from one defined function to a placeable one.
struct CallEdge {
  std::string caller;
  std::string callee;
  unsigned sites = 0; ///< number of call instructions
};

/// An error in the program's annotations, with where it was written.
struct Diagnostic {
  SourceLoc loc;
  std::string function;
  std::string message;
  /// "file:line: function `f`: message".
  [[nodiscard]] std::string str() const;
};

/// Tunables of the analysis.
struct AnalysisOptions {
  /// Granularity floor: a leaf without loops and with fewer IR instructions than this is local.
  unsigned min_instructions = 16;
};

/// The analysis of a whole program.
struct ProgramAnalysis {
  std::vector<FunctionInfo> functions;    ///< every defined function, in module order
  std::vector<Group> gpin_groups;         ///< one per GPin type handled by the program
  std::vector<Group> global_groups;       ///< connected components of functions and globals
  std::vector<std::string> load_balanced; ///< DIST_LOADBALANCED functions
  std::vector<PlacementUnit> units;       ///< every non-local function in exactly one unit
  std::vector<CallEdge> call_graph;       ///< edges into placeable functions
  std::vector<Diagnostic> errors;         ///< annotation errors; empty for a valid program

  /// The function named `name`, or nullptr.
  [[nodiscard]] const FunctionInfo *find(std::string_view name) const;
};

/// Analyzes `module`. Never fails: problems in annotations are returned in `errors`.
/// Does not modify the module.
[[nodiscard]] ProgramAnalysis analyzeProgram(const llvm::Module &module,
                                             const AnalysisOptions &options = {});

/// Stable lowercase names used in text and JSON output ("placeable", "does-io", "buffer-in"...).
[[nodiscard]] std::string_view toString(Placement placement);
[[nodiscard]] std::string_view toString(Rule rule);
[[nodiscard]] std::string_view toString(MarshalKind kind);

} // namespace distnode::jit

#endif
