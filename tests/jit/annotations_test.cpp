// annotations_test.cpp - reading dist.h's annotations from llvm.global.annotations, the first
// part of the program analysis.
#include "jit/annotations.h"
#include "jit/bitcode.h"

#include "llvm/IR/Function.h"
#include "llvm/IR/Module.h"
#include "llvm/Support/Error.h"

#include <gtest/gtest.h>

namespace distnode::jit {
namespace {

struct Read {
  Program program;
  std::map<const llvm::Function *, FunctionAnnotations> annotations;
  std::vector<Diagnostic> errors;

  explicit Read(const std::string &fixture) {
    auto p = loadBitcode(std::string(DIST_FIXTURE_DIR) + "/fixture_" + fixture + ".bc");
    if (!p) {
      ADD_FAILURE() << llvm::toString(p.takeError());
      return;
    }
    program = std::move(*p);
    annotations = readAnnotations(*program.module, errors);
  }
  const FunctionAnnotations *of(const std::string &name) const {
    const llvm::Function *f = program.module ? program.module->getFunction(name) : nullptr;
    auto it = f ? annotations.find(f) : annotations.end();
    return it == annotations.end() ? nullptr : &it->second;
  }
};

TEST(Annotations, LocalPinAndPureExternAreRead) {
  Read r("rules");
  EXPECT_TRUE(r.errors.empty());
  ASSERT_NE(r.of("annotated_local"), nullptr);
  EXPECT_TRUE(r.of("annotated_local")->local);
  ASSERT_NE(r.of("pinned"), nullptr);
  EXPECT_EQ(r.of("pinned")->pin.value_or(""), "n2");
  EXPECT_EQ(r.of("pinned")->loc.line, 18u);
  ASSERT_NE(r.of("rand_r"), nullptr);
  EXPECT_TRUE(r.of("rand_r")->pure_extern);
  EXPECT_EQ(r.of("main"), nullptr) << "functions without annotations are not listed";
}

TEST(Annotations, BufferAnnotationsKeepTheirSpelling) {
  Read r("marshal");
  const FunctionAnnotations *a = r.of("buffers");
  ASSERT_NE(a, nullptr);
  ASSERT_EQ(a->buffers.size(), 3u);
  std::vector<std::string> spellings;
  for (const auto &b : a->buffers)
    spellings.push_back(b.spelling);
  std::sort(spellings.begin(), spellings.end());
  EXPECT_EQ(spellings,
            (std::vector<std::string>{"DIST_IN(in, n)", "DIST_INOUT(acc, 4)", "DIST_OUT(out, n)"}));
  for (const auto &b : a->buffers)
    if (b.param == "acc") {
      EXPECT_EQ(b.dir, BufferDir::InOut);
      EXPECT_EQ(b.count, "4");
      EXPECT_EQ(b.loc.line, 51u);
    }
}

// DIST_IN and DIST_OUT of one buffer (here on two declarations): it is read and written.
TEST(Annotations, InAndOutOfOneBufferMakeItInOut) {
  Read r("write_back");
  EXPECT_TRUE(r.errors.empty());
  const FunctionAnnotations *a = r.of("sum_and_double");
  ASSERT_NE(a, nullptr);
  ASSERT_EQ(a->buffers.size(), 1u);
  EXPECT_EQ(a->buffers[0].dir, BufferDir::InOut);
  EXPECT_EQ(a->buffers[0].spelling, "DIST_IN(v, n) and DIST_OUT(v, n)");
}

TEST(Annotations, AnUnknownParameterIsLeftToTheMarshalingPlan) {
  // The annotation names `len`, which is not a parameter: reading it is fine, the plan
  // reports it (program_analysis.cpp), with the annotation's spelling.
  Read r("bad_count");
  EXPECT_TRUE(r.errors.empty());
  ASSERT_NE(r.of("mean"), nullptr);
  ASSERT_EQ(r.of("mean")->buffers.size(), 1u);
  EXPECT_EQ(r.of("mean")->buffers[0].spelling, "DIST_IN(data, len)");
}

} // namespace
} // namespace distnode::jit
