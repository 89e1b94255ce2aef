// examples_test.cpp - every example under distnode prints byte-for-byte what the same sources
// compiled natively with clang-19 -O2 print, and exits with the same code.
#include "tests/support/subprocess.h"

#include <gtest/gtest.h>

namespace distnode::testing {
namespace {

struct ExampleRun {
  std::string name;
  std::vector<std::string> args;
};

std::ostream &operator<<(std::ostream &os, const ExampleRun &r) {
  os << r.name;
  for (const auto &a : r.args)
    os << " " << a;
  return os;
}

class ExampleMatchesNative : public ::testing::TestWithParam<ExampleRun> {};

TEST_P(ExampleMatchesNative, SameStdoutStderrAndExitCode) {
  const ExampleRun &run = GetParam();
  std::string dir = DIST_EXAMPLES_DIR;
  std::vector<std::string> native = {dir + "/" + run.name + ".native"};
  native.insert(native.end(), run.args.begin(), run.args.end());
  std::vector<std::string> jitted = {DIST_DISTNODE, dir + "/" + run.name + ".bc", "--"};
  jitted.insert(jitted.end(), run.args.begin(), run.args.end());

  ProcessResult expected = runProcess(native);
  ProcessResult actual = runProcess(jitted);
  ASSERT_FALSE(expected.timed_out || actual.timed_out);
  ASSERT_EQ(expected.signal, 0);
  EXPECT_EQ(actual.signal, 0);
  EXPECT_FALSE(expected.out.empty() && expected.err.empty())
      << "an example that prints nothing proves nothing";
  EXPECT_EQ(actual.out, expected.out);
  EXPECT_EQ(actual.err, expected.err);
  EXPECT_EQ(actual.exit_code, expected.exit_code);
}

INSTANTIATE_TEST_SUITE_P(
    Examples, ExampleMatchesNative,
    ::testing::Values(ExampleRun{"pipeline", {}}, ExampleRun{"pipeline", {"13"}},
                      ExampleRun{"pipeline", {"0"}}, ExampleRun{"kvstore", {}},
                      ExampleRun{"kvstore", {"3000"}}, ExampleRun{"phases", {"2"}},
                      ExampleRun{"nbody", {}}, ExampleRun{"nbody", {"777"}}),
    [](const ::testing::TestParamInfo<ExampleRun> &info) {
      std::string name = info.param.name;
      for (const auto &a : info.param.args)
        name += "_" + a;
      return name;
    });

} // namespace
} // namespace distnode::testing
