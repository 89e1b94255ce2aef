// state_analysis_test.cpp - each unit's state: its mutable globals and bytes, and whether the
// state can migrate (pointer-free globals, no GPin objects).
#include "jit/bitcode.h"
#include "jit/program_analysis.h"
#include "jit/state_analysis.h"

#include "llvm/IR/DerivedTypes.h"
#include "llvm/IR/LLVMContext.h"
#include "llvm/Support/Error.h"

#include <gtest/gtest.h>

namespace distnode::jit {
namespace {

ProgramAnalysis analyze(const std::string &path) {
  auto program = loadBitcode(path);
  if (!program) {
    ADD_FAILURE() << llvm::toString(program.takeError());
    return {};
  }
  return analyzeProgram(*program->module);
}

const PlacementUnit *unitOf(const ProgramAnalysis &a, const std::string &function) {
  const FunctionInfo *f = a.find(function);
  return f && f->unit >= 0 ? &a.units[f->unit] : nullptr;
}

TEST(StateAnalysis, PointerFreeGlobalsMigrateWithTheirBytes) {
  ProgramAnalysis a = analyze(std::string(DIST_FIXTURE_DIR) + "/fixture_state.bc");
  const PlacementUnit *u = unitOf(a, "bump");
  ASSERT_NE(u, nullptr);
  EXPECT_TRUE(u->stateful);
  EXPECT_TRUE(u->migratable) << u->migrate_why;
  EXPECT_EQ(u->state_bytes, 8u + 16u);
  ASSERT_EQ(u->state.size(), 2u);
  EXPECT_EQ(u->state[0].name, "counter");
  EXPECT_EQ(u->state[0].bytes, 8u);
  EXPECT_EQ(u->state[1].name, "stats");
  EXPECT_EQ(u->state[1].bytes, 16u);
}

TEST(StateAnalysis, AGlobalHoldingAPointerKeepsItsUnitWithTheReason) {
  ProgramAnalysis a = analyze(std::string(DIST_FIXTURE_DIR) + "/fixture_state.bc");
  const PlacementUnit *u = unitOf(a, "push");
  ASSERT_NE(u, nullptr);
  EXPECT_TRUE(u->stateful);
  EXPECT_FALSE(u->migratable);
  EXPECT_EQ(
      u->migrate_why,
      "mutable global `head` (`struct cell *`) holds a pointer, which means nothing on another "
      "node");
  EXPECT_EQ(u->state_bytes, 4u * 16u + 8u) << "pool and head";
}

TEST(StateAnalysis, AGlobalHoldingAnAddressAsAnIntegerKeepsItsUnit) {
  ProgramAnalysis a = analyze(std::string(DIST_FIXTURE_DIR) + "/fixture_state.bc");
  const PlacementUnit *u = unitOf(a, "poke");
  ASSERT_NE(u, nullptr);
  EXPECT_TRUE(u->stateful);
  EXPECT_FALSE(u->migratable);
  EXPECT_EQ(u->migrate_why, "mutable global `aimed` holds an address converted to an integer, "
                            "which means nothing on another node");
}

TEST(StateAnalysis, GPinUnitsDoNotMigrate) {
  ProgramAnalysis a = analyze(std::string(DIST_EXAMPLES_DIR) + "/kvstore.bc");
  const PlacementUnit *u = unitOf(a, "table_put");
  ASSERT_NE(u, nullptr);
  EXPECT_FALSE(u->migratable);
  EXPECT_EQ(u->migrate_why, "handles GPin objects of `struct table`, which live in the heap of "
                            "the node that created them");
}

TEST(StateAnalysis, PinnedAndHomeUnitsNeverMigrate) {
  ProgramAnalysis a = analyze(std::string(DIST_FIXTURE_DIR) + "/fixture_rules.bc");
  const PlacementUnit *pinned = unitOf(a, "pinned_writer");
  ASSERT_NE(pinned, nullptr);
  EXPECT_EQ(pinned->placement, Placement::Pinned);
  EXPECT_TRUE(pinned->stateful);
  EXPECT_FALSE(pinned->migratable);
  EXPECT_TRUE(pinned->migrate_why.empty()) << "it stays for its pin, not for its state";
  const PlacementUnit *home = unitOf(a, "main");
  ASSERT_NE(home, nullptr);
  EXPECT_FALSE(home->migratable);
}

TEST(StateAnalysis, StatelessUnitsHaveNothingToShip) {
  ProgramAnalysis a = analyze(std::string(DIST_EXAMPLES_DIR) + "/phases.bc");
  const PlacementUnit *u = unitOf(a, "filter_a");
  ASSERT_NE(u, nullptr);
  EXPECT_FALSE(u->stateful);
  EXPECT_FALSE(u->migratable);
  EXPECT_TRUE(u->migrate_why.empty());
  EXPECT_EQ(u->state_bytes, 0u);
}

TEST(StateAnalysis, PointersAreFoundAtAnyDepth) {
  llvm::LLVMContext ctx;
  llvm::Type *i64 = llvm::Type::getInt64Ty(ctx);
  llvm::Type *ptr = llvm::PointerType::getUnqual(ctx);
  EXPECT_FALSE(holdsPointer(i64));
  EXPECT_TRUE(holdsPointer(ptr));
  auto *inner = llvm::StructType::get(ctx, {i64, llvm::ArrayType::get(ptr, 2)});
  EXPECT_TRUE(holdsPointer(llvm::ArrayType::get(inner, 3)));
  EXPECT_FALSE(holdsPointer(llvm::ArrayType::get(llvm::StructType::get(ctx, {i64, i64}), 3)));
  EXPECT_TRUE(holdsPointer(llvm::FixedVectorType::get(ptr, 2)));
}

} // namespace
} // namespace distnode::jit
