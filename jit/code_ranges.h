// code_ranges.h - where the code of each profiled function lies once JITLink has placed it, for
// the profiler's CPU samples (profiler::Profiler::setCodeRanges): the function's own symbol, and
// every place its body was inlined into another function, read from the object's debug info
// (DW_TAG_inlined_subroutine). With the second, a callee inlined behind a guarded call keeps
// its own CPU time instead of lending it to its caller. Included by jit_session.cpp only.
#ifndef DISTNODE_JIT_CODE_RANGES_H
#define DISTNODE_JIT_CODE_RANGES_H

#include "profiler/profiler.h"

#include "llvm/ExecutionEngine/Orc/ObjectLinkingLayer.h"

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace llvm {
class Module;
}

namespace distnode::jit {

/// Gives the debug-info subprogram of each function named in `ids` the IR name as its linkage
/// name, so that the object's inlined-subroutine entries name the very body (a static function
/// renamed by llvm-link keeps its source name in the debug info).
void nameSubprogramsByBody(llvm::Module &module, const std::map<std::string, std::uint32_t> &ids);

/// An ObjectLinkingLayer plugin that records the code ranges of the bodies named in `ids`
/// (IR name → profile id) in every object it links: compiled here or loaded from the code cache.
class CodeRangePlugin : public llvm::orc::ObjectLinkingLayer::Plugin {
public:
  explicit CodeRangePlugin(std::map<std::string, std::uint32_t> ids) : ids_(std::move(ids)) {}

  /// Reads the object's inlined ranges (by section and offset) before it is linked.
  void notifyMaterializing(llvm::orc::MaterializationResponsibility &, llvm::jitlink::LinkGraph &g,
                           llvm::jitlink::JITLinkContext &, llvm::MemoryBufferRef object) override;
  /// Records the bodies' symbols and turns the inlined ranges into addresses once placed.
  void modifyPassConfig(llvm::orc::MaterializationResponsibility &, llvm::jitlink::LinkGraph &g,
                        llvm::jitlink::PassConfiguration &config) override;
  llvm::Error notifyFailed(llvm::orc::MaterializationResponsibility &) override;
  llvm::Error notifyRemovingResources(llvm::orc::JITDylib &, llvm::orc::ResourceKey) override;
  void notifyTransferringResources(llvm::orc::JITDylib &, llvm::orc::ResourceKey,
                                   llvm::orc::ResourceKey) override {}

  /// Every range recorded so far: whole functions, and inlined bodies inside them.
  std::vector<profiler::CodeRange> ranges();

private:
  /// What an object says before it is placed: sections by index, offsets within them.
  struct ObjectRanges {
    struct Inlined {
      std::uint64_t section, start, end;
      std::uint32_t id;
    };
    std::vector<Inlined> inlined;
    std::map<std::string, std::pair<std::uint64_t, std::uint64_t>> symbols; ///< section, offset
  };

  std::map<std::string, std::uint32_t> ids_;
  std::mutex mu_; ///< guards what follows (links may run on other threads)
  std::map<const llvm::jitlink::LinkGraph *, ObjectRanges> pending_;
  std::vector<profiler::CodeRange> ranges_;
};

} // namespace distnode::jit

#endif
