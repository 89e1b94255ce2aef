// bitcode_test.cpp - loading bitcode: what is accepted and how each failure reads.
#include "jit/bitcode.h"

#include "llvm/Support/Error.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

namespace distnode::jit {
namespace {

std::string errorOf(const std::string &path) {
  auto program = loadBitcode(path);
  if (program)
    return "";
  return llvm::toString(program.takeError());
}

TEST(Bitcode, LoadsAFixtureAndHashesIt) {
  auto program = loadBitcode(std::string(DIST_FIXTURE_DIR) + "/fixture_hello.bc");
  ASSERT_TRUE(bool(program)) << llvm::toString(program.takeError());
  EXPECT_EQ(program->sha256Hex().size(), 64u);
  EXPECT_NE(program->sha256Hex(), std::string(64, '0'));
  llvm::Error has_main = checkHasMain(*program);
  EXPECT_FALSE(bool(has_main)) << "hello.c defines main";
  llvm::consumeError(std::move(has_main));
}

TEST(Bitcode, MissingFileNamesThePath) {
  std::string e = errorOf("/nonexistent/app.bc");
  EXPECT_EQ(e, "/nonexistent/app.bc: cannot open: No such file or directory");
}

TEST(Bitcode, TextFileIsNotBitcode) {
  std::string path = ::testing::TempDir() + "/not_bitcode.bc";
  std::ofstream(path) << "int main() { return 0; }\n";
  std::string e = errorOf(path);
  EXPECT_NE(e.find("not an LLVM bitcode file"), std::string::npos) << e;
  EXPECT_EQ(e.find('\n'), std::string::npos) << "one line";
  std::remove(path.c_str());
}

TEST(Bitcode, TruncatedBitcodeIsReportedNotCrashed) {
  std::ifstream in(std::string(DIST_FIXTURE_DIR) + "/fixture_hello.bc", std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_GT(bytes.size(), 100u);
  std::string path = ::testing::TempDir() + "/truncated.bc";
  std::ofstream(path, std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  std::string e = errorOf(path);
  EXPECT_NE(e.find("unreadable bitcode"), std::string::npos) << e;
  std::remove(path.c_str());
}

TEST(Bitcode, ProgramWithoutMainIsRejectedForRunning) {
  auto program = loadBitcode(std::string(DIST_FIXTURE_DIR) + "/fixture_no_main.bc");
  ASSERT_TRUE(bool(program)) << llvm::toString(program.takeError());
  llvm::Error err = checkHasMain(*program);
  ASSERT_TRUE(bool(err));
  EXPECT_NE(llvm::toString(std::move(err)).find("no function `main`"), std::string::npos);
}

} // namespace
} // namespace distnode::jit
