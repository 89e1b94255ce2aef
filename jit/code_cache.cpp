// code_cache.cpp - compiled programs on disk.
#include "jit/code_cache.h"

#include "jit/jit_session.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Bitcode/BitcodeWriter.h"
#include "llvm/Config/llvm-config.h"
#include "llvm/IR/Module.h"
#include "llvm/Object/ObjectFile.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/SHA256.h"
#include "llvm/Support/raw_ostream.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>

#include <unistd.h>

#ifndef DISTNODE_VERSION
#define DISTNODE_VERSION "unknown"
#endif

namespace distnode::jit {

std::string defaultCodeCacheDir() {
  if (const char *dir = std::getenv("DISTNODE_CACHE_DIR"); dir && *dir)
    return dir;
  if (const char *xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg)
    return std::string(xdg) + "/distnode";
  if (const char *home = std::getenv("HOME"); home && *home)
    return std::string(home) + "/.cache/distnode";
  return "";
}

std::string CodeCache::key(const llvm::Module &m, const std::string &options) {
  llvm::SmallVector<char, 0> bitcode;
  llvm::raw_svector_ostream os(bitcode);
  llvm::WriteBitcodeToFile(m, os);
  llvm::SHA256 hash;
  hash.update(llvm::StringRef(bitcode.data(), bitcode.size()));
  for (const std::string &part :
       {std::string("distnode " DISTNODE_VERSION), std::string("llvm " LLVM_VERSION_STRING),
        m.getTargetTriple(), options}) {
    hash.update(llvm::StringRef("\0", 1));
    hash.update(part);
  }
  return llvm::toHex(hash.final(), /*LowerCase=*/true);
}

std::string CodeCache::path(const std::string &key) const { return dir_ + "/" + key + ".o"; }

std::string CodeCache::status() const {
  std::lock_guard lock(mu_);
  return status_;
}

std::unique_ptr<llvm::MemoryBuffer> CodeCache::load(const std::string &key) {
  auto buffer = llvm::MemoryBuffer::getFile(path(key), /*IsText=*/false,
                                            /*RequiresNullTerminator=*/false);
  if (!buffer)
    return nullptr;
  // A file that is not an object (damaged by hand, say) is compiled afresh and replaced.
  auto object = llvm::object::ObjectFile::createObjectFile((*buffer)->getMemBufferRef());
  if (!object) {
    llvm::consumeError(object.takeError());
    return nullptr;
  }
  std::lock_guard lock(mu_);
  status_ = "loaded " + path(key) + " (" + std::to_string((*buffer)->getBufferSize() / 1024) +
            " KiB); no compilation";
  return std::move(*buffer);
}

void CodeCache::notifyObjectCompiled(const llvm::Module *m, llvm::MemoryBufferRef object) {
  std::string key = m->getModuleIdentifier();
  // Only the program is cached, under its key; the JIT's own small modules (its runtime
  // support) are compiled every time.
  if (key.size() != 64 || key.find_first_not_of("0123456789abcdef") != std::string::npos)
    return;
  std::string final_path = path(key);
  std::error_code ec;
  std::filesystem::create_directories(dir_, ec);
  if (!ec)
    std::filesystem::permissions(dir_, std::filesystem::perms::owner_all,
                                 std::filesystem::perm_options::replace, ec);
  // Written whole under a name of its own, then renamed: a reader sees the entry complete or
  // not at all, also when two processes store it at once.
  std::string temp = final_path + ".tmp." + std::to_string(::getpid()) + "." +
                     std::to_string(std::random_device{}());
  bool ok = !ec;
  if (ok) {
    std::ofstream out(temp, std::ios::binary);
    out.write(object.getBufferStart(), static_cast<std::streamsize>(object.getBufferSize()));
    out.close();
    ok = static_cast<bool>(out);
  }
  if (ok)
    std::filesystem::rename(temp, final_path, ec);
  ok = ok && !ec;
  if (!ok)
    std::filesystem::remove(temp, ec);
  std::lock_guard lock(mu_);
  status_ = ok ? "compiled; stored " + final_path
               : "compiled; could not store " + final_path + " (the next run compiles again)";
}

} // namespace distnode::jit
