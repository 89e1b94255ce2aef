// debug_types_test.cpp - C types read from debug info: their spelling, the GPin and NPin tags,
// and which types are plain data a node can copy byte-wise.
#include "jit/bitcode.h"
#include "jit/debug_types.h"

#include "llvm/IR/DebugInfoMetadata.h"
#include "llvm/IR/Function.h"
#include "llvm/IR/Module.h"
#include "llvm/Support/Error.h"

#include <gtest/gtest.h>

namespace distnode::jit {
namespace {

Program load(const std::string &path) {
  auto p = loadBitcode(path);
  if (!p) {
    ADD_FAILURE() << llvm::toString(p.takeError());
    return {};
  }
  return std::move(*p);
}

// The debug-info type of parameter `index` of `function` (0 is the result).
const llvm::DIType *typeOf(const Program &p, const std::string &function, unsigned index) {
  const llvm::Function *f = p.module ? p.module->getFunction(function) : nullptr;
  const llvm::DISubprogram *sp = f ? f->getSubprogram() : nullptr;
  if (!sp) {
    ADD_FAILURE() << "no debug info for " << function;
    return nullptr;
  }
  auto types = sp->getType()->getTypeArray();
  return index < types.size() ? types[index] : nullptr;
}

const std::string kMarshal = std::string(DIST_FIXTURE_DIR) + "/fixture_marshal.bc";

TEST(DebugTypes, TypesAreSpelledAsWritten) {
  Program p = load(kMarshal);
  EXPECT_EQ(renderType(typeOf(p, "struct_ptrs", 1)), "const struct pair16 *");
  EXPECT_EQ(renderType(typeOf(p, "struct_ptrs", 2)), "struct pair8 *");
  EXPECT_EQ(renderType(typeOf(p, "small_structs", 0)), "int64_t");
  EXPECT_EQ(renderType(typeOf(p, "account_open", 0)), "struct account *");
}

TEST(DebugTypes, PlainDataAndSizes) {
  Program p = load(kMarshal);
  const llvm::DIType *pair16 = baseOf(strip(typeOf(p, "struct_ptrs", 1)));
  bool is_const = false;
  (void)strip(baseOf(typeOf(p, "struct_ptrs", 1)), &is_const);
  EXPECT_TRUE(is_const);
  EXPECT_EQ(whyNotPlainData(pair16), "");
  EXPECT_EQ(byteSize(pair16), 16u);
  EXPECT_TRUE(isPointer(typeOf(p, "struct_ptrs", 1)));
  EXPECT_FALSE(isPointer(pair16));
  EXPECT_TRUE(isIntegerLike(typeOf(p, "small_structs", 0)));
  EXPECT_FALSE(isCharType(typeOf(p, "small_structs", 0)));
}

TEST(DebugTypes, GPinAndNPinTagsAreFound) {
  Program p = load(std::string(DIST_EXAMPLES_DIR) + "/kvstore.bc");
  TaggedTypes gpin, npin;
  collectTaggedTypes(*p.module, gpin, npin);
  EXPECT_TRUE(gpin.names.count("struct table"));
  EXPECT_TRUE(npin.names.count("logfile_t"));
  Program m = load(kMarshal);
  TaggedTypes mg, mn;
  collectTaggedTypes(*m.module, mg, mn);
  const llvm::DIType *account = typeOf(m, "account_open", 0);
  std::set<const llvm::DIType *> seen;
  EXPECT_EQ(findTagged(account, mg, seen).value_or(""), "struct account");
  seen.clear();
  EXPECT_EQ(findTagged(typeOf(m, "struct_ptrs", 1), mg, seen), std::nullopt);
}

} // namespace
} // namespace distnode::jit
