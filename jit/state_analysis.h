// state_analysis.h - the state of each placement unit: its mutable globals and their bytes,
// and whether that state can be shipped to another node (state migration).
#ifndef DISTNODE_JIT_STATE_ANALYSIS_H
#define DISTNODE_JIT_STATE_ANALYSIS_H

#include "jit/program_analysis.h"

#include <string>
#include <vector>

namespace llvm {
class GlobalVariable;
class Module;
class Type;
} // namespace llvm

namespace distnode::jit {

/// Fills in each unit's `state`, `state_bytes`, `migratable` and `migrate_why` from the mutable
/// globals (`globals[u]`) and GPin types (`gpins[u]`) its functions use, sizes by `module`'s
/// data layout. Home and pinned units never migrate (they never move). A placeable unit can
/// migrate unless a global holds a pointer (an address means nothing on
/// another node; named with its C type when debug info has it) or the unit handles GPin objects
/// (they live in the heap of the node that created them, and their handles name that node).
void describeUnitState(const llvm::Module &module,
                       const std::vector<std::vector<const llvm::GlobalVariable *>> &globals,
                       const std::vector<std::vector<std::string>> &gpins,
                       std::vector<PlacementUnit> &units);

/// Whether a value of IR type `type` contains a pointer anywhere (struct fields, array
/// elements, vectors).
[[nodiscard]] bool holdsPointer(const llvm::Type *type);

} // namespace distnode::jit

#endif
