// code_cache.h - compiled programs on disk, so that a second run of the same program starts
// without compiling.
//
// An entry is the object file of one program as the JIT compiled it, named by a key: the
// SHA-256 of the program's final IR before optimization (the bitcode, rewritten with stubs,
// thunks, gates, profiling counters and guards as the options ask: so the bitcode, the analysis
// options and every JIT option are in it), of distnode's version, LLVM's version, the target
// and the optimization level, and the build ids of distnode's executable and of libLLVM. The
// generated code names process data by symbol, never by address (jit_session.cpp), so the same
// key means the same object in every run. Entries are written whole or not at all (a temporary
// file renamed into place) and end with the SHA-256 of the object, checked before it is used;
// a directory that another user owns or can write is not used. Nothing is ever evicted: remove
// the directory to clear it.
#ifndef DISTNODE_JIT_CODE_CACHE_H
#define DISTNODE_JIT_CODE_CACHE_H

#include "llvm/ExecutionEngine/ObjectCache.h"

#include <memory>
#include <mutex>
#include <optional>
#include <string>

namespace llvm {
class Module;
class MemoryBuffer;
} // namespace llvm

namespace distnode::jit {

class CodeCache : public llvm::ObjectCache {
public:
  /// A cache in `dir` (made, mode 0700, when the first entry is stored).
  explicit CodeCache(std::string dir) : dir_(std::move(dir)) {}

  /// The key of `m` as it is now, compiled with `options` (e.g. "O2"): lowercase hex.
  [[nodiscard]] static std::string key(const llvm::Module &m, const std::string &options);

  /// The object stored under `key`, or nullptr (absent, unreadable, or not an object file).
  [[nodiscard]] std::unique_ptr<llvm::MemoryBuffer> load(const std::string &key);

  /// The path of the entry of `key`.
  [[nodiscard]] std::string path(const std::string &key) const;

  /// What happened to the last entry stored or loaded, for the log ("" if nothing did).
  [[nodiscard]] std::string status() const;

  /// Why the directory must not be used (another user's, or writable by others: code from it
  /// runs in this process), or nothing.
  [[nodiscard]] std::optional<std::string> unsafeDirectory() const;

  /// ORC's compiler hands every object it compiled here; it is stored under the module's
  /// identifier (the caller sets it to the key).
  void notifyObjectCompiled(const llvm::Module *m, llvm::MemoryBufferRef object) override;
  /// Loading happens before compilation (load()): the compiler never finds an object here.
  std::unique_ptr<llvm::MemoryBuffer> getObject(const llvm::Module *) override { return nullptr; }

private:
  void setStatus(std::string status);

  std::string dir_;
  bool disabled_ = false; ///< the directory is unsafe: nothing is read or written
  bool replaced_ = false; ///< the entry looked up was damaged
  mutable std::mutex mu_; ///< guards status_
  std::string status_;
};

} // namespace distnode::jit

#endif
