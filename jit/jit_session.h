// jit_session.h - one application program loaded into an LLVM ORC JIT on this node.
#ifndef DISTNODE_JIT_JIT_SESSION_H
#define DISTNODE_JIT_JIT_SESSION_H

#include <memory>
#include <string>
#include <vector>

namespace llvm {
template <typename T> class Expected;
} // namespace llvm

namespace distnode::jit {

struct Program;

/// How the JIT compiles the program.
struct JitOptions {
  /// Run LLVM's O2 pipeline on the program before code generation. If false, code is generated
  /// from the IR as loaded (useful when debugging the runtime itself).
  bool optimize = true;
};

/// A program loaded into an ORC LLJIT: static constructors, `main`, atexit handlers and static
/// destructors run as in a native process; the program's stdio is the process's own.
/// Not thread-safe: one thread calls runMain. At most one session per process may run `main`
/// at a time, because the program's calls to exit() are routed through it.
class JitSession {
public:
  /// Builds the JIT and adds `program` to it. Fails with a one-line message if the program
  /// references an external symbol that this process cannot resolve.
  [[nodiscard]] static llvm::Expected<std::unique_ptr<JitSession>> Create(Program program,
                                                                         const JitOptions &options);
  ~JitSession();
  JitSession(const JitSession &) = delete;
  JitSession &operator=(const JitSession &) = delete;

  /// Runs static constructors, `main(argc, argv)` with argv[0] = the bitcode path followed by
  /// `args`, then atexit handlers and static destructors. Returns main's exit code. If the
  /// program calls exit(), the handlers run and the process exits with that code from here.
  [[nodiscard]] llvm::Expected<int> runMain(const std::vector<std::string> &args);

private:
  struct Impl;
  explicit JitSession(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

} // namespace distnode::jit

#endif
