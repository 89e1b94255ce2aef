// marshal_plan.h - how each C parameter and the result of a function cross the wire (the
// marshaling plan), from debug-info types, buffer annotations and the IR's ABI lowering. A part
// of the program analysis (phase 1 of program_analysis.cpp). Internal to jit/.
#ifndef DISTNODE_JIT_MARSHAL_PLAN_H
#define DISTNODE_JIT_MARSHAL_PLAN_H

#include "jit/analysis_facts.h"
#include "jit/debug_types.h"
#include "jit/program_analysis.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace llvm {
class DIType;
class Type;
} // namespace llvm

namespace distnode::jit {

struct CountedRead;
struct PointerUse;

/// `p` made Unmarshalable with the reason.
[[nodiscard]] ValuePlan unmarshalable(ValuePlan p, std::string why);
/// A constant element count ("16"), or nothing if `s` is not a number that fits.
[[nodiscard]] std::optional<std::uint64_t> parseCount(const std::string &s);
/// The plan of one C parameter (or of the result, when `is_result`) of type `type`, with the
/// function's buffer annotations and parameter names from `facts`; `gpin` are the program's
/// GPin types. Errors in the annotations (a count that names no parameter, say) go to
/// `errors`, for function `fname`.
[[nodiscard]] ValuePlan planValue(const Facts &facts, const llvm::DIType *type,
                                  const std::string &name, bool is_result, const TaggedTypes &gpin,
                                  std::vector<Diagnostic> &errors, const std::string &fname);
/// The plan of a value without debug info: only scalars can be marshaled.
[[nodiscard]] ValuePlan planFromIR(llvm::Type *type, const std::string &name, bool is_result);
/// Maps the C parameters of `info` to IR arguments under the x86-64 System V lowering clang
/// applies (a 16-byte struct may be two IR arguments, a large one a byval pointer). False if
/// they do not match.
[[nodiscard]] bool mapIRArguments(FunctionInfo &info, const Facts &facts);
/// A copied pointer parameter must keep to what the copy holds (pointer_uses.h), and a string
/// must be read as one, up to its NUL (counted_reads.h; `count_name` names the parameter that
/// `counted` reads it by, if it is one); otherwise `p` becomes Unmarshalable with the evidence.
void checkPointerUse(ValuePlan &p, const PointerUse &use, const CountedRead &counted,
                     const std::string &count_name);

} // namespace distnode::jit

#endif
