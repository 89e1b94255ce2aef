// marshal_plan_test.cpp - pieces of the marshaling plan that need no program: constant
// counts, and plans from IR types alone (without debug info).
#include "jit/marshal_plan.h"

#include "llvm/IR/DerivedTypes.h"
#include "llvm/IR/LLVMContext.h"
#include "llvm/IR/Type.h"

#include <gtest/gtest.h>

namespace distnode::jit {
namespace {

TEST(MarshalPlan, ConstantCountsAreDecimalAndFitIn64Bits) {
  EXPECT_EQ(parseCount("16"), 16u);
  EXPECT_EQ(parseCount("0"), 0u);
  EXPECT_EQ(parseCount("18446744073709551615"), 18446744073709551615ull);
  EXPECT_EQ(parseCount("18446744073709551616"), std::nullopt) << "one past 2^64 - 1";
  EXPECT_EQ(parseCount("99999999999999999999999"), std::nullopt);
  EXPECT_EQ(parseCount("n"), std::nullopt) << "a parameter's name, not a constant";
  EXPECT_EQ(parseCount("0x10"), std::nullopt);
  EXPECT_EQ(parseCount(""), std::nullopt);
}

TEST(MarshalPlan, WithoutDebugInfoOnlyScalarsCross) {
  llvm::LLVMContext ctx;
  ValuePlan i32 = planFromIR(llvm::Type::getInt32Ty(ctx), "n", false);
  EXPECT_EQ(i32.kind, MarshalKind::Integer);
  EXPECT_EQ(i32.size, 4u);
  ValuePlan d = planFromIR(llvm::Type::getDoubleTy(ctx), "x", false);
  EXPECT_EQ(d.kind, MarshalKind::Float);
  EXPECT_EQ(d.c_type, "double");
  EXPECT_EQ(planFromIR(llvm::Type::getVoidTy(ctx), "", true).kind, MarshalKind::Void);
  ValuePlan p = planFromIR(llvm::PointerType::getUnqual(ctx), "buf", false);
  EXPECT_EQ(p.kind, MarshalKind::Unmarshalable);
  EXPECT_EQ(p.why,
            "no debug info for this pointer; compile the program with dist-cc (it passes -g)");
}

TEST(MarshalPlan, UnmarshalableKeepsTheValueAndSaysWhy) {
  ValuePlan v;
  v.name = "p";
  v.kind = MarshalKind::Integer;
  ValuePlan u = unmarshalable(v, "because");
  EXPECT_EQ(u.kind, MarshalKind::Unmarshalable);
  EXPECT_EQ(u.name, "p");
  EXPECT_EQ(u.why, "because");
}

} // namespace
} // namespace distnode::jit
