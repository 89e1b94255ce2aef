// instrument.h - the IR instrumentation pass: call-edge counters and the current-function
// marker that self-time samples are charged to (profiler.h). Runs before optimization.
#ifndef DISTNODE_PROFILER_INSTRUMENT_H
#define DISTNODE_PROFILER_INSTRUMENT_H

#include "profiler/profiler.h"

#include <functional>
#include <string>
#include <vector>

namespace llvm {
class CallBase;
class IRBuilderBase;
class Module;
class Value;
} // namespace llvm

namespace distnode::profiler {

/// Emits, before a call, the i64 byte count of its arguments or of its reply.
using ByteCounter = std::function<llvm::Value *(llvm::IRBuilderBase &, llvm::CallBase &)>;

/// A function whose activity is profiled.
struct ProfiledFunction {
  std::string name; ///< as reported, e.g. "hash_block"
  std::string body; ///< the IR function holding its body, e.g. "hash_block.impl" or "main"
  /// If set, calls of the declaration `name` are counted as call edges into this function.
  ByteCounter call_bytes, reply_bytes;
};

/// What to instrument. Profile ids are 1 + the index in `functions` (0 is the root).
struct InstrumentSpec {
  std::vector<ProfiledFunction> functions;
  /// Byte offset of the thread's ThreadState from the thread pointer.
  std::ptrdiff_t thread_state_offset = 0;
  /// Name of the slow-path function `ptr ()` that returns this thread's counter block.
  std::string thread_init_symbol;
  /// Name of the symbol at the process's flush generation (Profiler::flushGeneration, an i32):
  /// a frame adds its sites' pending counts to the thread's block at the first call after it
  /// changes. (A name, not an address: the compiled code is the same in every process.)
  std::string flush_generation_symbol;
};

/// Instruments `module`: every profiled body records itself as the thread's current function
/// while it runs; every call of a profiled function with byte counters increments, in the
/// thread's block, the calls and bytes of its edge: kept in the frame's locals and added to
/// the block at every return and at the first call after the flush generation changed. Functions
/// named `*.remote` and
/// `*.dispatch` (generated glue) are left alone. Returns the layout of the counter blocks.
[[nodiscard]] ProfileLayout instrumentModule(llvm::Module &module, const InstrumentSpec &spec);

} // namespace distnode::profiler

#endif
