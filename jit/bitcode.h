// bitcode.h - loading and checking an application's bitcode file.
#ifndef DISTNODE_JIT_BITCODE_H
#define DISTNODE_JIT_BITCODE_H

#include <array>
#include <cstdint>
#include <memory>
#include <string>

namespace llvm {
class Error;
template <typename T> class Expected;
class LLVMContext;
class Module;
} // namespace llvm

namespace distnode::jit {

/// An application's bitcode, parsed and verified, with the context that owns it.
/// Not thread-safe: one thread uses a Program at a time.
struct Program {
  Program();
  Program(Program &&) noexcept;
  Program &operator=(Program &&) noexcept;
  ~Program();

  /// The path it was loaded from, as given (used in every error message).
  std::string path;
  /// SHA-256 of the file's bytes: nodes of one cluster must run the same program.
  std::array<std::uint8_t, 32> sha256{};
  std::unique_ptr<llvm::LLVMContext> context;
  std::unique_ptr<llvm::Module> module;

  /// The hash as 64 lowercase hex digits.
  [[nodiscard]] std::string sha256Hex() const;
};

/// Reads, parses and verifies the bitcode at `path`. Fails with a one-line message naming the
/// file for a missing or unreadable file, a file that is not bitcode, and invalid IR.
[[nodiscard]] llvm::Expected<Program> loadBitcode(const std::string &path);

/// Fails with a one-line message unless the program defines `int main(...)`.
[[nodiscard]] llvm::Error checkHasMain(const Program &program);

} // namespace distnode::jit

#endif
