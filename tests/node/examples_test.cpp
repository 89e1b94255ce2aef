// examples_test.cpp - every example under distnode prints byte-for-byte what the same sources
// compiled natively with clang-19 -O2 print, and exits with the same code.
#include "tests/support/subprocess.h"

#include <gtest/gtest.h>

#include <cctype>

namespace distnode::testing {
namespace {

struct ExampleRun {
  std::string name;
  std::vector<std::string> args;
  std::vector<std::string> distnode_flags; ///< e.g. --loopback
  bool fixture = false;                    ///< from tests/fixtures rather than examples/
};

std::ostream &operator<<(std::ostream &os, const ExampleRun &r) {
  os << r.name;
  for (const auto &a : r.args)
    os << " " << a;
  return os;
}

std::string testName(const ExampleRun &run) {
  std::string name = run.name;
  for (const auto &a : run.args)
    name += "_" + a;
  return name;
}

class ExampleMatchesNative : public ::testing::TestWithParam<ExampleRun> {};

TEST_P(ExampleMatchesNative, SameStdoutStderrAndExitCode) {
  const ExampleRun &run = GetParam();
  std::string base = run.fixture ? std::string(DIST_FIXTURE_DIR) + "/fixture_" + run.name
                                 : std::string(DIST_EXAMPLES_DIR) + "/" + run.name;
  std::vector<std::string> native = {base + ".native"};
  native.insert(native.end(), run.args.begin(), run.args.end());
  std::vector<std::string> jitted = {DIST_DISTNODE};
  jitted.insert(jitted.end(), run.distnode_flags.begin(), run.distnode_flags.end());
  jitted.push_back(base + ".bc");
  jitted.push_back("--");
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
    ::testing::Values(ExampleRun{"pipeline", {}, {}}, ExampleRun{"pipeline", {"13"}, {}},
                      ExampleRun{"pipeline", {"0"}, {}}, ExampleRun{"kvstore", {}, {}},
                      ExampleRun{"kvstore", {"3000"}, {}}, ExampleRun{"phases", {"2"}, {}},
                      ExampleRun{"nbody", {}, {}}, ExampleRun{"nbody", {"777"}, {}},
                      ExampleRun{"multi", {}, {}, true}),
    [](const ::testing::TestParamInfo<ExampleRun> &info) { return testName(info.param); });

// Every remotable function called through its thunk: marshaled, served by its dispatcher and
// unmarshaled in one process. Output must not change.
INSTANTIATE_TEST_SUITE_P(Loopback, ExampleMatchesNative,
                         ::testing::Values(ExampleRun{"pipeline", {}, {"--loopback"}},
                                           ExampleRun{"kvstore", {}, {"--loopback"}},
                                           ExampleRun{"phases", {"1"}, {"--loopback"}},
                                           ExampleRun{"nbody", {}, {"--loopback"}},
                                           ExampleRun{"marshal", {}, {"--loopback"}, true},
                                           ExampleRun{"rules", {}, {"--loopback"}, true}),
                         [](const ::testing::TestParamInfo<ExampleRun> &info) {
                           return testName(info.param);
                         });

// Programs that once ran wrongly or not at all under distnode (arrays behind struct pointers,
// pointers kept after the call, C library names defined by the program, deep recursion through
// remote calls): identical to native on one node, under --loopback and scattered over three.
std::vector<ExampleRun> correctnessRuns() {
  const std::vector<std::vector<std::string>> modes = {
      {}, {"--loopback"}, {"--local", "3", "--placement", "scatter"}};
  std::vector<ExampleRun> runs;
  for (const auto &mode : modes)
    for (const char *name : {"struct_array", "escape", "own_rand", "own_exit", "lingering"})
      runs.push_back(ExampleRun{name, {}, mode, true});
  return runs;
}

std::string modeName(const ExampleRun &run) {
  std::string name = run.name;
  for (const auto &f : run.distnode_flags)
    if (f.rfind("--", 0) == 0)
      name += "_" + f.substr(2);
  return name;
}

INSTANTIATE_TEST_SUITE_P(Correctness, ExampleMatchesNative, ::testing::ValuesIn(correctnessRuns()),
                         [](const ::testing::TestParamInfo<ExampleRun> &info) {
                           return modeName(info.param);
                         });

// With profiling off, a guarded call across units may be inlined into its caller (with
// profiling on it is kept apart): every example, on one node, under --loopback and scattered
// over three nodes, must still print what the native build prints.
std::vector<ExampleRun> inlinedRuns() {
  const std::vector<std::vector<std::string>> modes = {
      {"--no-profile"},
      {"--no-profile", "--loopback"},
      {"--no-profile", "--local", "3", "--placement", "scatter"}};
  std::vector<ExampleRun> runs;
  for (const auto &mode : modes) {
    for (const char *name : {"pipeline", "kvstore", "nbody"})
      runs.push_back(ExampleRun{name, {}, mode});
    // Without profiling nothing moves: a short run, every call remote when scattered.
    runs.push_back(ExampleRun{"phases", {"1", "20000"}, mode});
    runs.push_back(ExampleRun{"mandel", {"3", "48", "300"}, mode});
  }
  return runs;
}

INSTANTIATE_TEST_SUITE_P(Inlined, ExampleMatchesNative, ::testing::ValuesIn(inlinedRuns()),
                         [](const ::testing::TestParamInfo<ExampleRun> &info) {
                           std::string name = modeName(info.param);
                           for (char &c : name)
                             if (!std::isalnum(static_cast<unsigned char>(c)))
                               c = '_';
                           return name;
                         });

} // namespace
} // namespace distnode::testing
