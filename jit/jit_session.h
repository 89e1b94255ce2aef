// jit_session.h - one application program loaded into an LLVM ORC JIT on this node, with every
// remotable function behind an indirect stub that points at its body or at its remote thunk.
#ifndef DISTNODE_JIT_JIT_SESSION_H
#define DISTNODE_JIT_JIT_SESSION_H

#include "jit/remote_call.h"

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace llvm {
template <typename T> class Expected;
} // namespace llvm

namespace distnode::jit {

class UnitGates;

struct Program;
struct ProgramAnalysis;

/// How the JIT compiles the program.
struct JitOptions {
  /// Run LLVM's O2 pipeline on the program before code generation. If false, code is generated
  /// from the IR as loaded (useful when debugging the runtime itself).
  bool optimize = true;
  /// Instrument the program for the profiler (profiler/): call edges, bytes and self time.
  /// If false, no counters are compiled in at all.
  bool profile = true;
  /// Guarded calls: a direct call of a remotable function from another unit tests the
  /// function's link flag and, while it runs on this node, calls its body directly (which the
  /// optimizer may inline) instead of going through the stub. If false, every such call goes
  /// through the stub.
  bool guard_calls = true;
  /// Where compiled programs are kept (code_cache.h); "" for no cache. A program compiled
  /// before with the same options is loaded from there instead of being compiled.
  std::string code_cache_dir;
};

/// The code cache's default directory (code_cache.h): $DISTNODE_CACHE_DIR, else
/// $XDG_CACHE_HOME/distnode, else $HOME/.cache/distnode ("" if none is set).
[[nodiscard]] std::string defaultCodeCacheDir();

/// How the program ends itself: exit() (atexit handlers, static destructors, buffered output
/// flushed), quick_exit() (at_quick_exit handlers only) or _exit()/_Exit() (nothing runs, buffered
/// output is lost), as the C library defines them.
enum class ExitKind : std::uint8_t { Normal, Quick, Immediate };

/// Where a remotable function's stub points.
enum class StubTarget { Local, Remote };

/// Called by a remote thunk: marshal `slots` (see remote_call.h), perform the call elsewhere,
/// write the result to `ret` and the out-buffers. Must not throw: it runs under JIT'd frames.
using RemoteHandler = std::function<void(std::uint32_t id, void **slots, void *ret)>;

/// A program loaded into an ORC LLJIT: static constructors, `main`, atexit handlers and static
/// destructors run as in a native process; the program's stdio is the process's own.
///
/// Every function the analysis marks non-local with a marshalable signature (its "remotable"
/// functions, numbered by name order, the same on every node) is called through an ORC indirect
/// stub. relink() switches a stub between the body (`f.impl`) and the generated thunk
/// (`f.remote`) at any time from any thread; serve() runs a call that arrived from another node
/// through the generated dispatcher (`f.dispatch`).
///
/// Thread-safety: relink(), serve() and remoteFunctions() may be called from any thread once
/// Create returned. setRemoteHandler/setExitHook must be called before runMain. At most one
/// session per process may run `main` at a time, since the program's exit() is routed to it.
class JitSession {
public:
  /// Builds the JIT, rewrites the remotable functions of `analysis` behind stubs (all pointing
  /// at their local bodies) and compiles the program. Fails with a one-line message if the
  /// program references an external symbol that this process cannot resolve.
  [[nodiscard]] static llvm::Expected<std::unique_ptr<JitSession>>
  Create(Program program, const ProgramAnalysis &analysis, const JitOptions &options);
  ~JitSession();
  JitSession(const JitSession &) = delete;
  JitSession &operator=(const JitSession &) = delete;

  /// The remotable functions, indexed by id.
  [[nodiscard]] const std::vector<RemoteSignature> &remoteFunctions() const;
  /// The id of the remotable function `name`, or -1.
  [[nodiscard]] int findFunction(std::string_view name) const;

  /// Points function `id`'s stub at its body or its remote thunk.
  void relink(std::uint32_t id, StubTarget target);
  /// Where function `id`'s stub points now.
  [[nodiscard]] StubTarget linkedTo(std::uint32_t id) const;

  /// The profiler's id of remotable function `id` (profiler::Profiler), or 0 when the program
  /// is not instrumented.
  [[nodiscard]] std::uint32_t profileId(std::uint32_t id) const;

  /// What the code cache did in Create ("loaded PATH ...", "compiled; stored PATH"), or "" when
  /// there is no cache.
  [[nodiscard]] std::string codeCacheStatus() const;

  /// Sets what remote thunks call. Without one, a call through a thunk is a fatal error.
  void setRemoteHandler(RemoteHandler handler);
  /// Sets the tag of the GPin handle ids this node issues (HandleTable), e.g. the node's index
  /// + 1, so that a handle issued by another node is refused here. Default 1.
  void setHandleTag(std::uint16_t tag);
  /// Runs (on the exiting thread) when the program ends: after its atexit handlers when main
  /// returns or it calls exit(), after its at_quick_exit handlers for quick_exit(); not for
  /// _exit() (see setImmediateEnd). Only an ExitKind::Normal end flushes the program's buffered
  /// output.
  void setExitHook(std::function<void(int code, ExitKind how)> hook);
  /// On a node that does not run main: what the program's exit(code) or quick_exit(code) does
  /// instead (it must not return), e.g. ask the node that runs main to end the program so. Not
  /// in a child made by fork().
  void setExitElsewhere(std::function<void(int code, ExitKind how)> forward);
  /// On a node of a cluster: what the program's _exit(code) asks of it, on any node: stop the
  /// cluster and end this process with `code`, from another thread (the thread that called
  /// _exit waits, and ends the process itself after a while if nothing did). `request` returns
  /// false if nothing will (the cluster is stopping): _exit(code) then ends the process at
  /// once, as it does without a `request`. It may be called in a signal handler, so it must do
  /// only what is async-signal-safe.
  void setImmediateEnd(std::function<bool(int code)> request);
  /// Ends the program here `how` it asked, as if main's process did (from any thread): for
  /// exit(), its atexit handlers and static destructors run, then the exit hook, then the
  /// process ends.
  [[noreturn]] void exitProgram(int code, ExitKind how = ExitKind::Normal);

  /// The gates of the units whose state can migrate (unit_gate.h): every call of their
  /// functions on this node enters through them.
  [[nodiscard]] UnitGates &gates();
  /// The state of migratable unit `unit`: its globals' bytes, concatenated in the analysis'
  /// order (PlacementUnit::state). Read while its gate is closed and drained.
  [[nodiscard]] std::vector<std::uint8_t> readState(std::uint32_t unit) const;
  /// Overwrites the state of `unit` with what readState gave on another node; an error if the
  /// unit cannot migrate or the size differs.
  [[nodiscard]] std::optional<std::string> writeState(std::uint32_t unit, const std::uint8_t *data,
                                                      std::size_t size);

  /// Calls function `id`'s body with a thunk's slots, on this thread (see remote_call.h).
  void callLocal(std::uint32_t id, void **slots, void *ret);

  /// Performs a thunk's call as a call to another node would be done, but in this process:
  /// marshals the slots, serves the blob through the dispatcher, unmarshals the reply. Reports
  /// the blob sizes if asked. Returns false with `error` if a step fails.
  [[nodiscard]] bool callMarshaled(std::uint32_t id, void **slots, void *ret, std::string &error,
                                   std::size_t *args_bytes = nullptr,
                                   std::size_t *reply_bytes = nullptr);

  /// Runs a call of function `id` received from another node: decodes `args` (the blob and
  /// the buffers that came in parts of their own), calls the body and encodes the reply.
  /// Returns false with `error` for a malformed blob or unknown id.
  [[nodiscard]] bool serve(std::uint32_t id, ByteSpan args, std::span<const ByteSpan> parts,
                           const ReplyAllocator &reply, std::string &error);
  /// The same for a blob alone, appending the reply to a vector.
  [[nodiscard]] bool serve(std::uint32_t id, const std::uint8_t *args, std::size_t size,
                           std::vector<std::uint8_t> &reply, std::string &error);

  /// The address of a symbol of the program (for a remotable function: its stub), for callers
  /// outside JIT'd code such as benchmarks. Fails if there is no such symbol.
  [[nodiscard]] llvm::Expected<void *> lookup(const std::string &name);

  /// Runs static constructors, `main(argc, argv)` with argv[0] = the bitcode path followed by
  /// `args`, then atexit handlers and static destructors. Returns main's exit code. If the
  /// program calls exit(), the hook and handlers run and the process exits from there.
  [[nodiscard]] llvm::Expected<int> runMain(const std::vector<std::string> &args);

  struct Impl;

private:
  explicit JitSession(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

} // namespace distnode::jit

#endif
