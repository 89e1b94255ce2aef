// distnode_cli_test.cpp - the distnode command as a user meets it: bad input gives one clear
// line on stderr and exit code 2; good input runs like a native program.
#include "tests/support/subprocess.h"

#include <nlohmann/json.hpp>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>

#include <unistd.h>

namespace distnode::testing {
namespace {

const std::string kDistnode = DIST_DISTNODE;

std::string fixture(const std::string &name) {
  return std::string(DIST_FIXTURE_DIR) + "/fixture_" + name + ".bc";
}

// Checks the contract for user mistakes: exit 2, nothing on stdout, exactly one stderr line
// that starts with "distnode: error: " and contains `needle`.
void expectOneLineError(const ProcessResult &r, const std::string &needle) {
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.signal, 0) << "must not crash";
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.out, "");
  auto lines = splitLines(r.err);
  ASSERT_EQ(lines.size(), 1u) << r.err;
  EXPECT_EQ(lines[0].rfind("distnode: error: ", 0), 0u) << lines[0];
  EXPECT_NE(lines[0].find(needle), std::string::npos) << lines[0];
}

TEST(DistnodeCli, MissingFileIsOneLineError) {
  expectOneLineError(runProcess({kDistnode, "/nonexistent/app.bc"}),
                     "/nonexistent/app.bc: cannot open: No such file or directory");
}

TEST(DistnodeCli, NonBitcodeFileIsOneLineError) {
  std::string path = ::testing::TempDir() + "/cli_not_bitcode.bc";
  std::ofstream(path) << "hello\n";
  expectOneLineError(runProcess({kDistnode, path}), path + ": not an LLVM bitcode file");
}

TEST(DistnodeCli, BitcodeWithoutMainIsOneLineError) {
  expectOneLineError(runProcess({kDistnode, fixture("no_main")}), "no function `main`");
}

TEST(DistnodeCli, UnresolvedExternalSymbolNamesSymbolAndUser) {
  expectOneLineError(runProcess({kDistnode, fixture("unresolved")}),
                     "unresolved external symbol `mystery_function` (used by `main`)");
}

// main gets argc, argv (null-terminated) and the environment, as from a C runtime; the C
// library names the program by its bitcode (assert() and err() print that name).
TEST(DistnodeCli, MainGetsArgumentsAndTheEnvironment) {
  setenv("MAIN_ENV_TEST", "yes", 1);
  auto r = runProcess({kDistnode, fixture("main_env"), "--", "first"});
  unsetenv("MAIN_ENV_TEST");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "argc 2 argv[1] first argv[argc] null envp is environ 1\n"
                   "MAIN_ENV_TEST=yes\n"
                   "named fixture_main_env.bc\n");
}

TEST(DistnodeCli, BadAnnotationRefusesToRunWithFileAndLine) {
  expectOneLineError(runProcess({kDistnode, fixture("bad_in_param")}),
                     "bad_in_param.c:3: function `mean`: DIST_IN(values, n)");
}

TEST(DistnodeCli, NoArgumentsIsUsageError) {
  auto r = runProcess({kDistnode});
  expectOneLineError(r, "bitcode is required");
}

// Numbers on the command line: one line with the flag, the value and the range.
TEST(DistnodeCli, BadNumberSaysItsRange) {
  expectOneLineError(runProcess({kDistnode, "--local", "abc", fixture("hello")}),
                     "--local: `abc` is not a whole number from 1 to 64");
  expectOneLineError(runProcess({kDistnode, "--min-instructions", "-3", fixture("hello")}),
                     "--min-instructions: `-3` is not a whole number from 0 to 1000000");
  expectOneLineError(runProcess({kDistnode, "--local", "2", "--chaos-ms", "-5", fixture("hello")}),
                     "--chaos-ms: `-5` is not a whole number from 1 to 86400000");
  // Decimal, whatever the leading zeros (not octal).
  auto r = runProcess({kDistnode, "--min-instructions", "09", "--analyze", fixture("hello")});
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

TEST(DistnodeCli, JsonWithoutAnalyzeIsUsageError) {
  expectOneLineError(runProcess({kDistnode, "--json", fixture("hello")}),
                     "--json goes with --analyze");
}

TEST(DistnodeCli, PlacementWithoutClusterIsUsageError) {
  expectOneLineError(runProcess({kDistnode, "--placement", "scatter", fixture("hello")}),
                     "--placement goes with --join or --local");
}

TEST(DistnodeCli, LoopbackWithClusterIsUsageError) {
  expectOneLineError(runProcess({kDistnode, "--loopback", "--local", "2", fixture("hello")}),
                     "--loopback runs on one node; drop --join/--local");
}

TEST(DistnodeCli, CoordinatorOutsideTheLocalClusterIsUsageError) {
  expectOneLineError(
      runProcess({kDistnode, "--local", "2", "--coordinator", "n5", fixture("hello")}),
      "--coordinator n5: the local cluster's nodes are n0..n1");
  expectOneLineError(runProcess({kDistnode, "--coordinator", "n1", fixture("hello")}),
                     "--coordinator requires --local");
}

TEST(DistnodeCli, ChaosWithACoordinatorElsewhereIsUsageError) {
  expectOneLineError(runProcess({kDistnode, "--local", "2", "--coordinator", "n1", "--chaos-ms",
                                 "5", fixture("hello")}),
                     "--chaos-ms holds adaptation still on the coordinator, which must then be "
                     "the entry node; drop --coordinator");
  std::vector<int> ports = freeLoopbackPorts(4);
  auto at = [](int port) { return "'tcp://127.0.0.1:" + std::to_string(port) + "'"; };
  std::string config =
      writeTempFile("chaos_coordinator.yaml",
                    "cluster: t\ncoordinator: n1\nnodes:\n  - {name: n0, call: " + at(ports[0]) +
                        ", control: " + at(ports[1]) + "}\n  - {name: n1, call: " + at(ports[2]) +
                        ", control: " + at(ports[3]) + "}\n");
  expectOneLineError(
      runProcess({kDistnode, "--join", config, "--chaos-ms", "5", fixture("hello")}),
      "--chaos-ms holds adaptation still on the coordinator, which must then be the entry node; "
      "drop `coordinator:` from " +
          config);
}

TEST(DistnodeCli, CodeCacheAndNoCodeCacheIsUsageError) {
  expectOneLineError(
      runProcess({kDistnode, "--code-cache", "/tmp", "--no-code-cache", fixture("hello")}),
      "--code-cache excludes --no-code-cache");
}

TEST(DistnodeCli, PassesArgumentsStreamsAndExitCode) {
  auto r = runProcess({kDistnode, fixture("hello"), "--", "one", "two words", "--three"});
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_EQ(r.out, "arg 1: one\narg 2: two words\narg 3: --three\n");
  EXPECT_EQ(r.err, "to stderr\n");
}

// The code cache: a program compiled once is loaded on the next run; other options or other
// bitcode are other entries; a damaged entry is compiled afresh and replaced. Output stays the
// same whichever way the code came.
TEST(DistnodeCli, CodeCacheIsUsedOnASecondRunAndIgnoredWhenBitcodeOrOptionsChange) {
  std::string dir = ::testing::TempDir() + "code-cache-" + std::to_string(::getpid());
  std::filesystem::remove_all(dir);
  auto run = [&](const std::string &program, std::vector<std::string> flags) {
    std::vector<std::string> argv = {kDistnode, "--code-cache", dir, "--log-level", "info"};
    argv.insert(argv.end(), flags.begin(), flags.end());
    argv.insert(argv.end(), {fixture(program), "--", "a"});
    ProcessResult r = runProcess(argv);
    EXPECT_EQ(r.exit_code, program == "hello" ? 1 : 0) << r.err;
    if (program == "hello") {
      EXPECT_EQ(r.out, "arg 1: a\n");
    }
    if (r.err.find("code cache: compiled; replaced the damaged entry " + dir) != std::string::npos)
      return "replaced";
    bool loaded = r.err.find("code cache: loaded " + dir) != std::string::npos;
    bool stored = r.err.find("code cache: compiled; stored " + dir) != std::string::npos;
    EXPECT_NE(loaded, stored) << r.err;
    return loaded ? "loaded" : "compiled";
  };
  EXPECT_STREQ(run("hello", {}), "compiled");
  EXPECT_STREQ(run("hello", {}), "loaded");
  EXPECT_STREQ(run("hello", {"--no-profile"}), "compiled") << "other options, other code";
  EXPECT_STREQ(run("hello", {"--no-profile"}), "loaded");
  EXPECT_STREQ(run("threads", {}), "compiled") << "other bitcode";
  EXPECT_STREQ(run("hello", {}), "loaded") << "entries are kept side by side";
  std::size_t entries = 0;
  for (const auto &e : std::filesystem::directory_iterator(dir)) {
    ++entries;
    EXPECT_EQ(e.path().extension(), ".o");
    // Damage every entry in the middle: one byte changed.
    std::fstream f(e.path(), std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(static_cast<std::streamoff>(std::filesystem::file_size(e.path()) / 2));
    char c = 0;
    f.get(c);
    f.seekp(static_cast<std::streamoff>(std::filesystem::file_size(e.path()) / 2));
    f.put(static_cast<char>(c ^ 0x5a));
  }
  EXPECT_EQ(entries, 3u);
  EXPECT_STREQ(run("hello", {}), "replaced") << "a damaged entry is compiled afresh";
  EXPECT_STREQ(run("hello", {}), "loaded") << "and replaced";
  // A directory others can write is not used (its code would run here), and keeps its mode.
  std::filesystem::permissions(dir, std::filesystem::perms::all);
  ProcessResult unsafe = runProcess(
      {kDistnode, "--code-cache", dir, "--log-level", "info", fixture("hello"), "--", "a"});
  EXPECT_EQ(unsafe.out, "arg 1: a\n");
  EXPECT_NE(unsafe.err.find("code cache: not used: " + dir + " can be written by other users"),
            std::string::npos)
      << unsafe.err;
  EXPECT_EQ(std::filesystem::status(dir).permissions(), std::filesystem::perms::all);
  ProcessResult off = runProcess(
      {kDistnode, "--no-code-cache", "--log-level", "info", fixture("hello"), "--", "a"});
  EXPECT_EQ(off.err.find("code cache"), std::string::npos) << off.err;
  std::filesystem::remove_all(dir);
}

TEST(DistnodeCli, AnalyzeTextExplainsEachDecision) {
  auto r = runProcess({kDistnode, "--analyze", fixture("rules")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("local [too-small]: too small ("), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("home [does-io]: does I/O (calls `printf`)"), std::string::npos);
  EXPECT_NE(r.out.find("Mutable-global groups"), std::string::npos);
  EXPECT_NE(r.out.find("main -> heavy (1 site)"), std::string::npos);
}

TEST(DistnodeCli, AnalyzeWithAnnotationErrorsPrintsThemAndFails) {
  auto r = runProcess({kDistnode, "--analyze", fixture("bad_lb_io")});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.out.find("Errors:"), std::string::npos);
  auto lines = splitLines(r.err);
  ASSERT_EQ(lines.size(), 1u) << r.err;
  EXPECT_NE(lines[0].find("bad_lb_io.c:3: function `score`: DIST_LOADBALANCED, but it does I/O"),
            std::string::npos)
      << lines[0];
}

// The JSON schema "distnode-analysis/1", as documented in README.md.
TEST(DistnodeCli, AnalyzeJsonFollowsSchema) {
  auto r = runProcess({kDistnode, "--analyze", "--json", fixture("marshal")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j.at("schema"), "distnode-analysis/1");
  EXPECT_EQ(j.at("program"), fixture("marshal"));
  EXPECT_EQ(j.at("sha256").get<std::string>().size(), 64u);
  for (const char *key :
       {"functions", "gpin_groups", "global_groups", "load_balanced", "call_graph", "errors"})
    EXPECT_TRUE(j.at(key).is_array()) << key;

  const std::set<std::string> placements = {"placeable", "local", "home", "pinned"};
  const std::set<std::string> kinds = {
      "void",          "integer",          "float",       "struct-by-value",
      "c-string",      "buffer-in",        "buffer-out",  "buffer-inout",
      "struct-ptr-in", "struct-ptr-inout", "gpin-handle", "unmarshalable"};
  auto checkPlan = [&](const nlohmann::json &p) {
    EXPECT_TRUE(p.at("name").is_string());
    EXPECT_TRUE(p.at("c_type").is_string());
    EXPECT_TRUE(kinds.count(p.at("kind").get<std::string>())) << p.dump();
    EXPECT_TRUE(p.at("size").is_number_unsigned());
    EXPECT_TRUE(p.at("ir_args").is_array());
    if (p.contains("count")) {
      EXPECT_TRUE(p.contains("count_param") || p.contains("count_value")) << p.dump();
    }
    EXPECT_EQ(p.contains("why"), p.at("kind") == "unmarshalable") << p.dump();
  };
  ASSERT_FALSE(j.at("functions").empty());
  for (const auto &f : j.at("functions")) {
    SCOPED_TRACE(f.at("name").get<std::string>());
    EXPECT_TRUE(f.at("file").is_string());
    EXPECT_TRUE(f.at("line").is_number_unsigned());
    EXPECT_TRUE(placements.count(f.at("placement").get<std::string>()));
    EXPECT_TRUE(f.at("rule").is_string());
    EXPECT_FALSE(f.at("reason").get<std::string>().empty());
    EXPECT_TRUE(f.at("load_balanced").is_boolean());
    EXPECT_TRUE(f.at("marshalable").is_boolean());
    EXPECT_TRUE(f.at("remote_id").is_number_integer());
    EXPECT_TRUE(f.at("instructions").is_number_unsigned());
    EXPECT_TRUE(f.at("pin_node").is_null() || f.at("pin_node").is_string());
    EXPECT_TRUE(f.at("io").is_null() || f.at("io").is_string());
    EXPECT_TRUE(f.at("gpin_group").is_null() || f.at("gpin_group").is_string());
    EXPECT_TRUE(f.at("global_group").is_null() || f.at("global_group").is_string());
    for (const auto &p : f.at("params"))
      checkPlan(p);
    checkPlan(f.at("result"));
  }
  bool found_handle = false;
  for (const auto &g : j.at("gpin_groups")) {
    EXPECT_TRUE(g.at("name").is_string());
    EXPECT_TRUE(g.at("functions").is_array());
    found_handle |= g.at("name") == "struct account";
  }
  EXPECT_TRUE(found_handle);
  bool account_unit = false;
  for (const auto &u : j.at("units")) {
    EXPECT_TRUE(u.at("name").is_string());
    EXPECT_TRUE(u.at("functions").is_array());
    EXPECT_TRUE(placements.count(u.at("placement").get<std::string>()));
    EXPECT_TRUE(u.at("pin_node").is_null() || u.at("pin_node").is_string());
    EXPECT_TRUE(u.at("stateful").is_boolean());
    if (u.at("name") == "struct account") {
      account_unit = true;
      EXPECT_TRUE(u.at("stateful").get<bool>());
      EXPECT_EQ(u.at("functions"), (nlohmann::json{"account_open", "account_deposit"}));
    }
  }
  EXPECT_TRUE(account_unit) << "the GPin group is one placement unit";
  for (const auto &e : j.at("call_graph")) {
    EXPECT_TRUE(e.at("caller").is_string());
    EXPECT_TRUE(e.at("callee").is_string());
    EXPECT_GE(e.at("sites").get<int>(), 1);
  }
}

} // namespace
} // namespace distnode::testing
