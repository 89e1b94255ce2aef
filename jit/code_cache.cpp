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

#include <array>
#include <optional>

#include <elf.h>
#include <link.h>
#include <sys/stat.h>
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

namespace {

// Every entry ends with this trailer: a magic word and the SHA-256 of the object before it. An
// entry whose trailer does not match (cut short, damaged anywhere, written by something else)
// is not used, and is compiled afresh and replaced.
constexpr char kTrailerMagic[8] = {'d', 'i', 's', 't', 'o', 'b', 'j', '1'};
constexpr std::size_t kTrailerSize = sizeof kTrailerMagic + 32;

std::array<std::uint8_t, 32> sha256(llvm::StringRef bytes) {
  return llvm::SHA256::hash(llvm::arrayRefFromStringRef(bytes));
}

// The GNU build ids of distnode's executable and of libLLVM (the code generator, linked as a
// shared library: an update changes it), as hex; "" where there is none.
std::string buildIds() {
  std::string ids;
  dl_iterate_phdr(
      [](dl_phdr_info *info, std::size_t, void *out) {
        std::string name = info->dlpi_name ? info->dlpi_name : "";
        bool executable = name.empty();
        if (!executable && name.find("libLLVM") == std::string::npos)
          return 0;
        for (int i = 0; i < info->dlpi_phnum; ++i) {
          const ElfW(Phdr) &ph = info->dlpi_phdr[i];
          if (ph.p_type != PT_NOTE)
            continue;
          const auto *p = reinterpret_cast<const std::uint8_t *>(info->dlpi_addr + ph.p_vaddr);
          const std::uint8_t *end = p + ph.p_memsz;
          while (p + sizeof(ElfW(Nhdr)) <= end) {
            const auto *note = reinterpret_cast<const ElfW(Nhdr) *>(p);
            const std::uint8_t *desc = p + sizeof(ElfW(Nhdr)) + ((note->n_namesz + 3) & ~3u);
            if (desc + note->n_descsz > end)
              break;
            if (note->n_type == NT_GNU_BUILD_ID)
              *static_cast<std::string *>(out) +=
                  (executable ? "exe:" : "llvm:") +
                  llvm::toHex(llvm::ArrayRef<std::uint8_t>(desc, note->n_descsz), true) + ";";
            p = desc + ((note->n_descsz + 3) & ~3u);
          }
        }
        return 0;
      },
      &ids);
  return ids;
}

} // namespace

std::string CodeCache::key(const llvm::Module &m, const std::string &options) {
  llvm::SmallVector<char, 0> bitcode;
  llvm::raw_svector_ostream os(bitcode);
  llvm::WriteBitcodeToFile(m, os);
  llvm::SHA256 hash;
  hash.update(llvm::StringRef(bitcode.data(), bitcode.size()));
  static const std::string builds = buildIds();
  for (const std::string &part :
       {std::string("distnode " DISTNODE_VERSION), std::string("llvm " LLVM_VERSION_STRING), builds,
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

void CodeCache::setStatus(std::string status) {
  std::lock_guard lock(mu_);
  status_ = std::move(status);
}

std::optional<std::string> CodeCache::unsafeDirectory() const {
  struct stat st {};
  if (::lstat(dir_.c_str(), &st) != 0)
    return std::nullopt; // made when the first entry is stored
  if (!S_ISDIR(st.st_mode))
    return dir_ + " is not a directory";
  if (st.st_uid != ::geteuid())
    return dir_ + " belongs to another user";
  if (st.st_mode & (S_IWGRP | S_IWOTH))
    return dir_ + " can be written by other users (chmod go-w it, or use another --code-cache)";
  return std::nullopt;
}

std::unique_ptr<llvm::MemoryBuffer> CodeCache::load(const std::string &key) {
  if (auto unsafe = unsafeDirectory()) { // code from there would run in this process
    setStatus("not used: " + *unsafe);
    disabled_ = true;
    return nullptr;
  }
  auto buffer = llvm::MemoryBuffer::getFile(path(key), /*IsText=*/false,
                                            /*RequiresNullTerminator=*/false);
  if (!buffer)
    return nullptr;
  llvm::StringRef bytes = (*buffer)->getBuffer();
  bool intact = bytes.size() > kTrailerSize &&
                bytes.substr(bytes.size() - kTrailerSize, sizeof kTrailerMagic) ==
                    llvm::StringRef(kTrailerMagic, sizeof kTrailerMagic);
  llvm::StringRef object = bytes.drop_back(kTrailerSize);
  if (intact) {
    std::array<std::uint8_t, 32> digest = sha256(object);
    intact = std::equal(digest.begin(), digest.end(), bytes.end() - 32,
                        [](std::uint8_t a, char b) { return a == static_cast<std::uint8_t>(b); });
  }
  if (!intact) {
    replaced_ = true;
    return nullptr;
  }
  setStatus("loaded " + path(key) + " (" + std::to_string(object.size() / 1024) +
            " KiB); no compilation");
  return llvm::MemoryBuffer::getMemBufferCopy(object, path(key));
}

void CodeCache::notifyObjectCompiled(const llvm::Module *m, llvm::MemoryBufferRef object) {
  std::string key = m->getModuleIdentifier();
  // Only the program is cached, under its key; the JIT's own small modules (its runtime
  // support) are compiled every time.
  if (disabled_ || key.size() != 64 ||
      key.find_first_not_of("0123456789abcdef") != std::string::npos)
    return;
  std::string final_path = path(key);
  std::error_code ec;
  // A directory made here is the user's alone; one that exists keeps its mode (load() refused
  // it if others can write it).
  if (std::filesystem::create_directories(dir_, ec) && !ec)
    std::filesystem::permissions(dir_, std::filesystem::perms::owner_all,
                                 std::filesystem::perm_options::replace, ec);
  // Written whole under a name of its own, then renamed: a reader sees the entry complete or
  // not at all, also when two processes store it at once.
  std::string temp = final_path + ".tmp." + std::to_string(::getpid()) + "." +
                     std::to_string(std::random_device{}());
  bool ok = !ec;
  if (ok) {
    std::array<std::uint8_t, 32> digest = sha256(object.getBuffer());
    std::ofstream out(temp, std::ios::binary);
    out.write(object.getBufferStart(), static_cast<std::streamsize>(object.getBufferSize()));
    out.write(kTrailerMagic, sizeof kTrailerMagic);
    out.write(reinterpret_cast<const char *>(digest.data()), 32);
    out.close();
    ok = static_cast<bool>(out);
  }
  if (ok)
    std::filesystem::rename(temp, final_path, ec);
  ok = ok && !ec;
  if (!ok)
    std::filesystem::remove(temp, ec);
  setStatus(ok ? std::string("compiled; ") +
                     (replaced_ ? "replaced the damaged entry " : "stored ") + final_path
               : "compiled; could not store " + final_path + " (the next run compiles again)");
}

} // namespace distnode::jit
