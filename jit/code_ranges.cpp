// code_ranges.cpp - code ranges of profiled functions: their symbols and their inlined bodies.
#include "jit/code_ranges.h"

#include "llvm/DebugInfo/DWARF/DWARFContext.h"
#include "llvm/DebugInfo/DWARF/DWARFDie.h"
#include "llvm/ExecutionEngine/JITLink/JITLink.h"
#include "llvm/IR/DebugInfoMetadata.h"
#include "llvm/IR/Module.h"
#include "llvm/Object/ObjectFile.h"

#include <memory>

namespace distnode::jit {

void nameSubprogramsByBody(llvm::Module &module, const std::map<std::string, std::uint32_t> &ids) {
  for (const auto &[name, id] : ids) {
    llvm::Function *fn = module.getFunction(name);
    llvm::DISubprogram *sp = fn ? fn->getSubprogram() : nullptr;
    if (sp && sp->isDistinct())
      sp->replaceLinkageName(llvm::MDString::get(module.getContext(), name));
  }
}

void CodeRangePlugin::notifyMaterializing(llvm::orc::MaterializationResponsibility &,
                                          llvm::jitlink::LinkGraph &g,
                                          llvm::jitlink::JITLinkContext &,
                                          llvm::MemoryBufferRef object) {
  // Anything this cannot read (no debug info, a format it does not know) leaves the inlined
  // bodies charged to the functions they were inlined into, as without this plugin.
  auto file = llvm::object::ObjectFile::createObjectFile(object);
  if (!file) {
    llvm::consumeError(file.takeError());
    return;
  }
  ObjectRanges found;
  for (const llvm::object::SymbolRef &sym : (*file)->symbols()) {
    auto name = sym.getName();
    auto section = sym.getSection();
    auto offset = sym.getValue();
    if (!name || !section || !offset) {
      llvm::consumeError(name.takeError());
      llvm::consumeError(section.takeError());
      llvm::consumeError(offset.takeError());
      continue;
    }
    if (*section != (*file)->section_end() && !name->empty())
      found.symbols[name->str()] = {(*section)->getIndex(), *offset};
  }
  auto ignore = [](llvm::Error e) { llvm::consumeError(std::move(e)); };
  auto dwarf = llvm::DWARFContext::create(
      **file, llvm::DWARFContext::ProcessDebugRelocations::Process, nullptr, "", ignore, ignore);
  for (const auto &unit : dwarf->compile_units())
    for (const llvm::DWARFDebugInfoEntry &entry : unit->dies()) {
      llvm::DWARFDie die(unit.get(), &entry);
      if (die.getTag() != llvm::dwarf::DW_TAG_inlined_subroutine)
        continue;
      // The linkage name only: every profiled body has one (nameSubprogramsByBody); a source
      // name may be that of another function (a static one renamed by llvm-link).
      const char *name = die.getLinkageName();
      auto id = name ? ids_.find(name) : ids_.end();
      if (id == ids_.end())
        continue;
      auto ranges = die.getAddressRanges();
      if (!ranges) {
        llvm::consumeError(ranges.takeError());
        continue;
      }
      for (const llvm::DWARFAddressRange &r : *ranges)
        if (r.LowPC < r.HighPC && r.SectionIndex != llvm::object::SectionedAddress::UndefSection)
          found.inlined.push_back({r.SectionIndex, r.LowPC, r.HighPC, id->second});
    }
  std::lock_guard lock(mu_);
  pending_[&g] = std::move(found);
}

void CodeRangePlugin::modifyPassConfig(llvm::orc::MaterializationResponsibility &,
                                       llvm::jitlink::LinkGraph &graph,
                                       llvm::jitlink::PassConfiguration &config) {
  // What notifyMaterializing read of this graph's object goes with its pass (and with it if
  // the link fails), so that no entry outlives its graph.
  auto object = std::make_shared<ObjectRanges>();
  {
    std::lock_guard lock(mu_);
    if (auto it = pending_.find(&graph); it != pending_.end()) {
      *object = std::move(it->second);
      pending_.erase(it);
    }
  }
  config.PostFixupPasses.push_back([this, object](llvm::jitlink::LinkGraph &g) {
    std::lock_guard lock(mu_);
    std::map<std::uint64_t, std::uint64_t> section_base; // section index → its address here
    for (llvm::jitlink::Symbol *sym : g.defined_symbols()) {
      if (!sym->hasName())
        continue;
      std::string name = sym->getName().str();
      std::uint64_t address = sym->getAddress().getValue();
      if (auto at = object->symbols.find(name); at != object->symbols.end())
        section_base.emplace(at->second.first, address - at->second.second);
      auto it = ids_.find(name);
      if (it != ids_.end() && sym->isCallable())
        ranges_.push_back({address, address + sym->getSize(), it->second});
    }
    for (const ObjectRanges::Inlined &r : object->inlined)
      if (auto base = section_base.find(r.section); base != section_base.end())
        ranges_.push_back({base->second + r.start, base->second + r.end, r.id});
    return llvm::Error::success();
  });
}

llvm::Error CodeRangePlugin::notifyFailed(llvm::orc::MaterializationResponsibility &) {
  return llvm::Error::success();
}

llvm::Error CodeRangePlugin::notifyRemovingResources(llvm::orc::JITDylib &,
                                                     llvm::orc::ResourceKey) {
  return llvm::Error::success();
}

std::vector<profiler::CodeRange> CodeRangePlugin::ranges() {
  std::lock_guard lock(mu_);
  return ranges_;
}

} // namespace distnode::jit
