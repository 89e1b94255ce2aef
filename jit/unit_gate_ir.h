// unit_gate_ir.h - the IR of state migration: `NAME.gated` wrappers for the functions of
// migratable units (see unit_gate.h), and each such unit's table of state addresses.
#ifndef DISTNODE_JIT_UNIT_GATE_IR_H
#define DISTNODE_JIT_UNIT_GATE_IR_H

#include "jit/program_analysis.h"
#include "jit/remote_call.h"

#include <string>
#include <vector>

namespace llvm {
class Constant;
class Error;
class Module;
} // namespace llvm

namespace distnode::jit {

/// Name of the constant array of unit `unit`'s state addresses.
[[nodiscard]] std::string stateTableName(std::uint32_t unit);
/// Name of the gated wrapper of function `name`.
[[nodiscard]] std::string gatedName(const std::string &name);

/// After rewriteFunction: for every remotable function of a migratable unit, `NAME.gated`
/// (NAME.impl's signature) calls `enter(gates, unit)`; if it returns true it calls NAME.impl and
/// then `exit(gates, unit)`, otherwise NAME.remote (the gate is closed: the runtime waits and
/// sends the call where the placement says). For every migratable unit, `stateTableName(u)`:
/// the addresses of its globals in the analysis' order. Taking the addresses also keeps the
/// optimizer from splitting, shrinking or localizing those globals, so their bytes in memory
/// are the whole state. `enter` and `exit` are declared with the given symbol names.
[[nodiscard]] llvm::Error addUnitGates(llvm::Module &module, const ProgramAnalysis &analysis,
                                       const std::vector<RemoteSignature> &functions,
                                       llvm::Constant *gates, const std::string &enter_symbol,
                                       const std::string &exit_symbol);

} // namespace distnode::jit

#endif
