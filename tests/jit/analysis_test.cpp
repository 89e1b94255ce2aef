// analysis_test.cpp - the rules of the analysis (README "The analysis"), one purpose-written
// function each.
#include "jit/bitcode.h"
#include "jit/program_analysis.h"

#include "llvm/IR/Module.h"
#include "llvm/Support/Error.h"

#include <gtest/gtest.h>

#include <map>

namespace distnode::jit {
namespace {

// Loads and analyzes a fixture once per test binary.
const ProgramAnalysis &analysisOf(const std::string &fixture) {
  static std::map<std::string, std::pair<Program, ProgramAnalysis>> cache;
  auto it = cache.find(fixture);
  if (it == cache.end()) {
    auto program = loadBitcode(std::string(DIST_FIXTURE_DIR) + "/fixture_" + fixture + ".bc");
    if (!program) {
      ADD_FAILURE() << llvm::toString(program.takeError());
      static ProgramAnalysis empty;
      return empty;
    }
    ProgramAnalysis analysis = analyzeProgram(*program->module);
    it = cache.emplace(fixture, std::make_pair(std::move(*program), std::move(analysis))).first;
  }
  return it->second.second;
}

const FunctionInfo &fn(const std::string &fixture, const std::string &name) {
  const FunctionInfo *f = analysisOf(fixture).find(name);
  if (!f) {
    ADD_FAILURE() << "no function " << name << " in " << fixture;
    static FunctionInfo none;
    return none;
  }
  return *f;
}

bool contains(const std::string &haystack, const std::string &needle) {
  return haystack.find(needle) != std::string::npos;
}

TEST(Analysis, RulesFixtureHasNoAnnotationErrors) {
  for (const auto &e : analysisOf("rules").errors)
    ADD_FAILURE() << e.str();
}

TEST(Analysis, DistLocalRunsOnCallersNode) {
  const auto &f = fn("rules", "annotated_local");
  EXPECT_EQ(f.placement, Placement::Local);
  EXPECT_EQ(f.rule, Rule::AnnotatedLocal);
  EXPECT_TRUE(f.annotated_local);
}

TEST(Analysis, DistPinPinsToNamedNode) {
  const auto &f = fn("rules", "pinned");
  EXPECT_EQ(f.placement, Placement::Pinned);
  EXPECT_EQ(f.rule, Rule::AnnotatedPin);
  EXPECT_EQ(f.pin_node, "n2");
}

TEST(Analysis, NPinTypeInSignatureMakesFunctionLocal) {
  const auto &f = fn("rules", "npin_user");
  EXPECT_EQ(f.placement, Placement::Local);
  EXPECT_EQ(f.rule, Rule::NPinInSignature);
  EXPECT_TRUE(contains(f.reason, "sock_t")) << f.reason;
  EXPECT_TRUE(contains(f.reason, "parameter `s`")) << f.reason;
}

TEST(Analysis, DirectIOCallRunsOnHomeNodeNamingTheCallee) {
  const auto &f = fn("rules", "prints");
  EXPECT_EQ(f.placement, Placement::Home);
  EXPECT_EQ(f.rule, Rule::DoesIO);
  EXPECT_EQ(f.io_evidence, "calls `printf`");
}

TEST(Analysis, IOReachedThroughCalleeRunsOnHomeNode) {
  const auto &f = fn("rules", "calls_printer");
  EXPECT_EQ(f.placement, Placement::Home);
  EXPECT_EQ(f.rule, Rule::DoesIO);
  EXPECT_TRUE(contains(f.io_evidence, "`prints`")) << f.io_evidence;
  EXPECT_TRUE(contains(f.io_evidence, "`printf`")) << f.io_evidence;
}

// A thread-local variable is the calling thread's: its users (and their callers) stay on the
// entry node, where calls of a chain run on the thread that waits for them.
TEST(Analysis, ThreadLocalVariableKeepsItsUsersWithTheirThread) {
  const auto &bump = fn("thread_locals", "bump");
  EXPECT_EQ(bump.placement, Placement::Home);
  EXPECT_EQ(bump.io_evidence, "uses the thread-local variable `tl_count`");
  EXPECT_TRUE(contains(bump.reason, "thread-bound")) << bump.reason;
  const auto &worker = fn("thread_locals", "worker");
  EXPECT_EQ(worker.placement, Placement::Home);
  EXPECT_TRUE(contains(worker.io_evidence, "`bump`")) << worker.io_evidence;
  EXPECT_EQ(fn("thread_locals", "mix").placement, Placement::Placeable);
}

// A function whose address a signal-installing function takes runs in signal context where
// the signal arrives: never a remote call.
TEST(Analysis, SignalHandlerStaysOnTheEntryNode) {
  const auto &handler = fn("signals", "on_alarm");
  EXPECT_EQ(handler.placement, Placement::Home);
  EXPECT_TRUE(contains(handler.io_evidence, "signal handler")) << handler.io_evidence;
  EXPECT_TRUE(contains(handler.reason, "signal context")) << handler.reason;
  const auto &callee = fn("signals", "scramble"); // runs in signal context too
  EXPECT_EQ(callee.placement, Placement::Home);
  EXPECT_TRUE(contains(callee.io_evidence, "`on_alarm`")) << callee.io_evidence;
  EXPECT_EQ(fn("signals", "mix").placement, Placement::Placeable);
}

// A child made by fork() copies the memory of the node that forks (the entry): functions with
// state stay there; functions without it may still run anywhere.
TEST(Analysis, ForkKeepsStateOnTheEntryNode) {
  const auto &bump = fn("fork", "bump");
  EXPECT_EQ(bump.placement, Placement::Home);
  EXPECT_EQ(bump.rule, Rule::ForkCopiesState);
  EXPECT_TRUE(contains(bump.reason, "calls fork() (tests/fixtures/fork.c:")) << bump.reason;
  EXPECT_EQ(fn("fork", "count").placement, Placement::Home);
  EXPECT_EQ(fn("fork", "mix").placement, Placement::Placeable);
  // A function reaching fork() through a DIST_LOCAL helper is home: the child goes on with it.
  const auto &work = fn("fork", "work");
  EXPECT_EQ(work.placement, Placement::Home);
  EXPECT_TRUE(contains(work.io_evidence, "`twice`, which makes a child process with fork()"))
      << work.io_evidence;
  // Without fork() a function with state may move.
  EXPECT_EQ(fn("state", "bump").placement, Placement::Placeable);
}

// Handlers the installing function does not take the address of itself: given to a helper
// that calls signal() (also through a local variable), to a helper (of a helper) that fills a
// struct sigaction, held by a static struct sigaction, or put in one that another installs.
TEST(Analysis, SignalHandlersInstalledIndirectlyStayOnTheEntryNode) {
  struct Case {
    const char *handler, *evidence;
  } cases[] = {
      {"on_alarm", "`main` installs it through `install`"},
      {"on_usr1", "`main` installs it through `install_twice_removed`"},
      {"on_usr2", "`install_static` installs handlers and `usr2_action` holds its address"},
      {"on_winch", "`main` puts its address in a `struct sigaction`"},
      {"on_hup", "`main` installs it through `install`"}, // through a local variable
      {"on_urg", "called through `user_handler` from `trampoline`"},
      {"on_ttou", "`main` installs it through `install`"}, // from a global set at run time
  };
  for (const Case &c : cases) {
    SCOPED_TRACE(c.handler);
    const auto &f = fn("signal_helpers", c.handler);
    EXPECT_EQ(f.placement, Placement::Home);
    EXPECT_TRUE(contains(f.io_evidence, c.evidence)) << f.io_evidence;
    EXPECT_TRUE(contains(f.reason, "signal context")) << f.reason;
  }
  EXPECT_EQ(fn("signal_helpers", "mix").placement, Placement::Placeable);
}

// A function that calls signal() for something else and keeps a callback it is given is no
// installer of that callback: the callback may still run anywhere.
TEST(Analysis, ACallbackKeptByAFunctionThatCallsSignalIsNoHandler) {
  const auto &f = fn("signal_helpers", "on_item");
  EXPECT_EQ(f.placement, Placement::Placeable) << f.reason;
}

// A function that dereferences or frees a GPin object through a local variable handles it:
// it joins the type's group. Passing the pointer on (or comparing it) is holding a handle.
TEST(Analysis, TouchingAGPinObjectInABodyJoinsItsGroup) {
  const auto &box_new = fn("gpin_touch", "box_new");
  EXPECT_EQ(box_new.placement, Placement::Home) << box_new.reason;
  EXPECT_EQ(box_new.rule, Rule::GroupedWithHome);
  EXPECT_TRUE(contains(box_new.reason, "`main`")) << box_new.reason;
  EXPECT_EQ(fn("gpin_touch", "box_sum").placement, Placement::Home);
  // Through an array of pointers, and given to a function whose parameter is a void *.
  EXPECT_EQ(fn("gpin_touch", "cell_new").placement, Placement::Home);
  // Through a global variable that holds such a pointer.
  EXPECT_EQ(fn("gpin_touch", "note_new").placement, Placement::Home);
  // Passed on, copied to another local and kept in a global: held only.
  for (const char *f : {"bag_new", "bag_take", "bag_free"})
    EXPECT_EQ(fn("gpin_touch", f).placement, Placement::Placeable) << f;
}

TEST(Analysis, IOInsideDistLocalCalleeDoesNotPropagate) {
  EXPECT_EQ(fn("rules", "local_log").placement, Placement::Local);
  const auto &f = fn("rules", "uses_local_log");
  EXPECT_EQ(f.placement, Placement::Placeable) << f.reason;
  EXPECT_TRUE(f.io_evidence.empty()) << f.io_evidence;
}

TEST(Analysis, VoidPointerIsUnmarshalableWithItsCType) {
  const auto &f = fn("rules", "sum_void");
  EXPECT_EQ(f.placement, Placement::Local);
  EXPECT_EQ(f.rule, Rule::Unmarshalable);
  EXPECT_TRUE(contains(f.reason, "parameter `p`")) << f.reason;
  EXPECT_TRUE(contains(f.reason, "`void *`")) << f.reason;
}

TEST(Analysis, FunctionPointerParameterIsUnmarshalableWithWhy) {
  const auto &f = fn("signal_helpers", "register_callback");
  ASSERT_FALSE(f.params.empty());
  EXPECT_EQ(f.params[0].kind, MarshalKind::Unmarshalable);
  EXPECT_TRUE(contains(f.params[0].why, "is a function pointer")) << f.params[0].why;
}

TEST(Analysis, StructWithPointerByValueIsUnmarshalable) {
  const auto &f = fn("rules", "by_value_ptr");
  EXPECT_EQ(f.rule, Rule::Unmarshalable);
  EXPECT_TRUE(contains(f.reason, "struct withptr")) << f.reason;
  EXPECT_TRUE(contains(f.reason, "member `p` contains a pointer")) << f.reason;
}

TEST(Analysis, VariadicFunctionIsLocal) {
  const auto &f = fn("rules", "vsum");
  EXPECT_EQ(f.placement, Placement::Local);
  EXPECT_EQ(f.rule, Rule::Variadic);
}

TEST(Analysis, TinyLeafIsBelowGranularityFloor) {
  const auto &f = fn("rules", "tiny");
  EXPECT_EQ(f.rule, Rule::TooSmall);
  EXPECT_LT(f.instructions, AnalysisOptions{}.min_instructions);
  EXPECT_TRUE(contains(f.reason, "too small (" + std::to_string(f.instructions) + " instructions"))
      << f.reason;
}

TEST(Analysis, GranularityFloorIsConfigurable) {
  auto program = loadBitcode(std::string(DIST_FIXTURE_DIR) + "/fixture_rules.bc");
  ASSERT_TRUE(bool(program)) << llvm::toString(program.takeError());
  AnalysisOptions options;
  options.min_instructions = 0;
  ProgramAnalysis a = analyzeProgram(*program->module, options);
  EXPECT_EQ(a.find("tiny")->placement, Placement::Placeable)
      << "with a floor of 0 nothing is too small";
}

TEST(Analysis, LoopingFunctionWithScalarsIsPlaceable) {
  const auto &f = fn("rules", "heavy");
  EXPECT_EQ(f.placement, Placement::Placeable) << f.reason;
  EXPECT_TRUE(f.plan_complete);
}

// A qsort comparator and a thread's start routine run where the function that hands them on
// runs: the globals they use are that function's state too.
TEST(Analysis, StateOfFunctionsCalledThroughTheirAddressGoesWithTheirTaker) {
  const auto &sort = fn("callbacks_state", "sort_ints");
  EXPECT_NE(sort.global_group, -1) << "the comparator's flag and count are its state";
  const auto &count = fn("callbacks_state", "comparisons_made");
  EXPECT_EQ(count.global_group, sort.global_group);
  const auto &hits = fn("callbacks_state", "hits_seen");
  EXPECT_EQ(hits.placement, Placement::Home)
      << "its global is the start routine's, which runs where main creates the threads: "
      << hits.reason;
}

TEST(Analysis, CompilerArithmeticHelpersAreNoIO) {
  const auto &f = fn("rules", "complex_power");
  EXPECT_EQ(f.placement, Placement::Placeable) << f.reason;
}

TEST(Analysis, PureExternAnnotationMakesCallSafe) {
  EXPECT_EQ(fn("rules", "uses_rand_r").placement, Placement::Placeable)
      << fn("rules", "uses_rand_r").reason;
  const auto &f = fn("rules", "uses_rand");
  EXPECT_EQ(f.rule, Rule::DoesIO) << "rand() has hidden global state";
  EXPECT_EQ(f.io_evidence, "calls `rand`");
}

TEST(Analysis, FunctionsSharingMutableGlobalFormOneGroup) {
  const auto &a = analysisOf("rules");
  const auto &bump = fn("rules", "bump");
  const auto &read = fn("rules", "read_counter");
  ASSERT_GE(bump.global_group, 0);
  EXPECT_EQ(bump.global_group, read.global_group);
  const Group &g = a.global_groups[bump.global_group];
  EXPECT_EQ(g.globals, std::vector<std::string>{"counter"});
  EXPECT_EQ(g.functions, (std::vector<std::string>{"bump", "read_counter"}));
  EXPECT_EQ(bump.placement, Placement::Placeable) << "a group may move as a unit";
}

TEST(Analysis, GroupWithIOMemberRunsOnHomeNode) {
  EXPECT_EQ(fn("rules", "show_shown").rule, Rule::DoesIO);
  const auto &f = fn("rules", "set_shown");
  EXPECT_EQ(f.placement, Placement::Home);
  EXPECT_EQ(f.rule, Rule::GroupedWithHome);
  EXPECT_TRUE(contains(f.reason, "`shown`")) << f.reason;
  EXPECT_TRUE(contains(f.reason, "`show_shown`")) << f.reason;
}

TEST(Analysis, StaticConstructorRunsOnHomeNode) {
  const auto &f = fn("rules", "init_rules");
  EXPECT_EQ(f.placement, Placement::Home);
  EXPECT_EQ(f.rule, Rule::StaticConstructor);
}

TEST(Analysis, GroupWithPinnedMemberFollowsThePin) {
  EXPECT_EQ(fn("rules", "pinned_writer").pin_node, "n1");
  const auto &f = fn("rules", "pinned_reader");
  EXPECT_EQ(f.placement, Placement::Pinned);
  EXPECT_EQ(f.rule, Rule::GroupedWithPin);
  EXPECT_EQ(f.pin_node, "n1");
  EXPECT_TRUE(contains(f.reason, "`pinned_state`")) << f.reason;
}

TEST(Analysis, MainIsHome) {
  EXPECT_EQ(fn("rules", "main").placement, Placement::Home);
  EXPECT_EQ(fn("rules", "main").rule, Rule::Main);
}

TEST(Analysis, CallGraphListsEdgesIntoPlaceableFunctionsOnly) {
  const auto &edges = analysisOf("rules").call_graph;
  auto has = [&](const std::string &from, const std::string &to) {
    for (const auto &e : edges)
      if (e.caller == from && e.callee == to)
        return true;
    return false;
  };
  EXPECT_TRUE(has("main", "heavy"));
  EXPECT_TRUE(has("main", "bump"));
  EXPECT_FALSE(has("main", "tiny")) << "tiny is local, not placeable";
  EXPECT_FALSE(has("main", "prints")) << "prints runs on the home node";
}

TEST(Analysis, IndirectCallMayReachAddressTakenIOFunction) {
  const auto &f = fn("io_indirect", "dispatch");
  EXPECT_EQ(f.rule, Rule::DoesIO);
  EXPECT_TRUE(contains(f.io_evidence, "`shout`")) << f.io_evidence;
}

// ---- marshaling plans ----

TEST(Marshal, ScalarsKeepTheirWidths) {
  const auto &f = fn("marshal", "scalars");
  ASSERT_EQ(f.params.size(), 8u);
  std::vector<std::pair<MarshalKind, uint64_t>> expected = {
      {MarshalKind::Integer, 1}, {MarshalKind::Integer, 2}, {MarshalKind::Integer, 4},
      {MarshalKind::Integer, 8}, {MarshalKind::Float, 4},   {MarshalKind::Float, 8},
      {MarshalKind::Integer, 1}, {MarshalKind::Integer, 4}};
  for (size_t k = 0; k < expected.size(); ++k) {
    SCOPED_TRACE(f.params[k].name);
    EXPECT_EQ(f.params[k].kind, expected[k].first);
    EXPECT_EQ(f.params[k].size, expected[k].second);
    EXPECT_EQ(f.params[k].ir_args, std::vector<unsigned>{static_cast<unsigned>(k)});
  }
  EXPECT_EQ(f.params[7].c_type, "enum color");
  EXPECT_EQ(f.result.kind, MarshalKind::Integer);
}

TEST(Marshal, SmallStructsByValueMapToCoercedIRArguments) {
  const auto &f = fn("marshal", "small_structs");
  ASSERT_EQ(f.params.size(), 2u);
  EXPECT_EQ(f.params[0].kind, MarshalKind::StructByValue);
  EXPECT_EQ(f.params[0].size, 8u);
  EXPECT_EQ(f.params[0].ir_args, std::vector<unsigned>{0}) << "8 bytes travel as one i64";
  EXPECT_EQ(f.params[1].size, 16u);
  EXPECT_EQ(f.params[1].ir_args, (std::vector<unsigned>{1, 2})) << "16 bytes: two arguments";
  EXPECT_TRUE(f.plan_complete);
}

TEST(Marshal, LargeStructUsesSretResultAndByvalArgument) {
  const auto &f = fn("marshal", "big_struct");
  EXPECT_EQ(f.result.kind, MarshalKind::StructByValue);
  EXPECT_EQ(f.result.size, 40u);
  EXPECT_EQ(f.result.ir_args, std::vector<unsigned>{0}) << "the sret pointer";
  ASSERT_EQ(f.params.size(), 2u);
  EXPECT_EQ(f.params[0].ir_args, std::vector<unsigned>{1});
  EXPECT_EQ(f.params[1].ir_args, std::vector<unsigned>{2});
  EXPECT_TRUE(f.plan_complete);
}

TEST(Marshal, ConstCharPointerIsString) {
  const auto &f = fn("marshal", "string_len");
  EXPECT_EQ(f.params[0].kind, MarshalKind::CString);
  EXPECT_EQ(f.params[0].c_type, "const char *");
}

TEST(Marshal, NonConstCharPointerIsRejectedWithAdvice) {
  const auto &f = fn("marshal", "mutable_string");
  EXPECT_EQ(f.rule, Rule::Unmarshalable);
  EXPECT_TRUE(contains(f.params[0].why, "DIST_OUT")) << f.params[0].why;
}

TEST(Marshal, BufferAnnotationsGiveDirectionElementSizeAndCount) {
  const auto &f = fn("marshal", "buffers");
  ASSERT_EQ(f.params.size(), 4u);
  EXPECT_EQ(f.params[0].kind, MarshalKind::BufferIn);
  EXPECT_EQ(f.params[0].size, 8u);
  EXPECT_EQ(f.params[0].count_param, 3) << "n is the fourth parameter";
  EXPECT_EQ(f.params[1].kind, MarshalKind::BufferOut);
  EXPECT_EQ(f.params[2].kind, MarshalKind::BufferInOut);
  EXPECT_EQ(f.params[2].count_param, -1);
  EXPECT_EQ(f.params[2].count_value, 4u);
  EXPECT_EQ(f.placement, Placement::Placeable) << f.reason;
}

TEST(Marshal, VoidBufferCountsBytes) {
  const auto &f = fn("marshal", "void_buffer");
  EXPECT_EQ(f.params[0].kind, MarshalKind::BufferIn);
  EXPECT_EQ(f.params[0].size, 1u);
}

TEST(Marshal, PointersToPlainStructsCopyInOrInOut) {
  const auto &f = fn("marshal", "struct_ptrs");
  EXPECT_EQ(f.params[0].kind, MarshalKind::StructPtrIn);
  EXPECT_EQ(f.params[0].size, 16u);
  EXPECT_EQ(f.params[1].kind, MarshalKind::StructPtrInOut);
  EXPECT_EQ(f.params[1].size, 8u);
}

TEST(Marshal, GPinPointersAreHandlesAndHandlersShareAGroup) {
  const auto &open = fn("marshal", "account_open");
  const auto &deposit = fn("marshal", "account_deposit");
  EXPECT_EQ(open.result.kind, MarshalKind::GPinHandle);
  EXPECT_EQ(deposit.params[0].kind, MarshalKind::GPinHandle);
  ASSERT_GE(open.gpin_group, 0);
  EXPECT_EQ(open.gpin_group, deposit.gpin_group);
  EXPECT_EQ(analysisOf("marshal").gpin_groups[open.gpin_group].name, "struct account");
}

// ---- annotation errors ----

struct BadAnnotation {
  const char *fixture;
  unsigned line;
  const char *needle;
};

// Pointers and arrays (README "Pointers, arrays and other limits"): a struct pointer is copied as
// one object only when the function provably uses one object; any copied pointer that outlives the
// call keeps the function local.
TEST(PointerUse, StructPointerIndexedWithVariableOffsetIsAnArray) {
  const auto &f = fn("struct_array", "fill");
  EXPECT_EQ(f.placement, Placement::Local);
  EXPECT_EQ(f.rule, Rule::Unmarshalable);
  EXPECT_TRUE(contains(f.reason, "indexed with a non-constant offset")) << f.reason;
  EXPECT_TRUE(contains(f.reason, "struct_array.c:15")) << f.reason;
  EXPECT_TRUE(contains(f.reason, "DIST_IN/DIST_OUT/DIST_INOUT(a, count)")) << f.reason;
}

TEST(PointerUse, StructPointerOffsetPastFirstElementIsAnArray) {
  const auto &f = fn("struct_array", "second_y");
  EXPECT_EQ(f.placement, Placement::Local);
  EXPECT_TRUE(contains(f.reason,
                       "`a` is accessed up to byte 16 (tests/fixtures/struct_array.c:24), "
                       "past the 8-byte object it points to"))
      << f.reason;
}

TEST(PointerUse, StructPointerPassedToIndexingHelperIsAnArray) {
  const auto &f = fn("struct_array", "sum_all");
  EXPECT_EQ(f.placement, Placement::Local);
  EXPECT_TRUE(contains(f.reason, "passed to `sum_at`")) << f.reason;
  EXPECT_TRUE(contains(f.reason, "indexed with a non-constant offset")) << f.reason;
}

TEST(PointerUse, CopyLargerThanOneElementIsAnArray) {
  const auto &f = fn("struct_array", "clear_pair");
  EXPECT_EQ(f.placement, Placement::Local);
  EXPECT_TRUE(contains(f.reason, "is accessed up to byte 16")) << f.reason;
  EXPECT_TRUE(contains(f.reason, "past the 8-byte object")) << f.reason;
}

TEST(PointerUse, AnnotatedStructArrayIsAPlaceableBuffer) {
  const auto &f = fn("struct_array", "fill_counted");
  EXPECT_EQ(f.placement, Placement::Placeable) << f.reason;
  ASSERT_EQ(f.params.size(), 2u);
  EXPECT_EQ(f.params[0].kind, MarshalKind::BufferInOut);
  EXPECT_EQ(f.params[0].size, 8u);
}

TEST(PointerUse, SingleStructThroughFieldsAndWholeCopyIsPlaceable) {
  const auto &f = fn("struct_array", "scale");
  EXPECT_EQ(f.placement, Placement::Placeable) << f.reason;
  ASSERT_EQ(f.params.size(), 2u);
  EXPECT_EQ(f.params[0].kind, MarshalKind::StructPtrInOut);
}

TEST(PointerUse, AccessesPastTheObjectMakeItAnArray) {
  struct Case {
    const char *function, *needle;
  } cases[] = {
      {"derived_sum", "past the 8-byte object"},       // cast to a larger struct
      {"vec_sum", "indexed past a one-element array"}, // `int data[1]` tail
      {"widen", "accessed up to byte 8"},              // 8-byte access to a 4-byte struct
  };
  for (const auto &c : cases) {
    SCOPED_TRACE(c.function);
    const auto &f = fn("struct_array", c.function);
    EXPECT_EQ(f.placement, Placement::Local);
    EXPECT_TRUE(contains(f.reason, c.needle)) << f.reason;
  }
}

TEST(PointerUse, FieldArrayIndexedInsideTheStructIsOneObject) {
  const auto &f = fn("struct_array", "count_into");
  EXPECT_EQ(f.placement, Placement::Placeable) << f.reason;
  EXPECT_EQ(f.params[0].kind, MarshalKind::StructPtrInOut);
}

TEST(PointerUse, ComparisonWithAnotherAddressNeedsTheOriginal) {
  const auto &f = fn("escape", "is_fallback");
  EXPECT_EQ(f.placement, Placement::Local);
  EXPECT_TRUE(contains(f.reason, "is compared with another pointer")) << f.reason;
}

TEST(PointerUse, StrtolEndPointerIntoTheStringOutlivesTheCall) {
  const auto &f = fn("escape", "parse_num");
  EXPECT_EQ(f.placement, Placement::Local);
  EXPECT_TRUE(contains(f.reason, "passed to `strtol`, which stores a pointer into it")) << f.reason;
}

TEST(PointerUse, PointerStoredToGlobalOutlivesTheCall) {
  const auto &f = fn("escape", "set_cfg");
  EXPECT_EQ(f.placement, Placement::Local);
  EXPECT_TRUE(contains(f.reason, "outlives the call")) << f.reason;
  EXPECT_TRUE(contains(f.reason, "stored to memory (tests/fixtures/escape.c:13)")) << f.reason;
  // What reads through the saved pointer stays with the state's home.
  EXPECT_EQ(fn("escape", "apply").placement, Placement::Home);
}

TEST(PointerUse, BufferHandedToHelperThatKeepsItOutlivesTheCall) {
  const auto &f = fn("escape", "keep_sum");
  EXPECT_EQ(f.placement, Placement::Local);
  EXPECT_TRUE(contains(f.reason, "passed to `remember`")) << f.reason;
  EXPECT_TRUE(contains(f.reason, "stored to memory")) << f.reason;
}

TEST(PointerUse, StringReadInPlaceIsPlaceable) {
  const auto &f = fn("escape", "count_char");
  EXPECT_EQ(f.placement, Placement::Placeable) << f.reason;
  EXPECT_EQ(f.params[0].kind, MarshalKind::CString);
}

// `unsigned char` and `uint8_t` are bytes: without a count they cannot be copied (strlen would
// stop at a NUL inside them, or read past their end), so the function stays local.
TEST(PointerUse, UnsignedCharBytesWithoutACountAreNotAString) {
  const auto &f = fn("escape", "byte_sum");
  EXPECT_EQ(f.placement, Placement::Local);
  EXPECT_EQ(f.params[0].kind, MarshalKind::Unmarshalable);
  EXPECT_TRUE(contains(f.reason, "points to bytes, not to a string")) << f.reason;
  EXPECT_TRUE(contains(f.reason, "annotate it with DIST_IN(bytes, count)")) << f.reason;
}

// A `const char *` read by a count holds bytes, not a string: a copy up to its first NUL would
// be too short. Such a function stays local, with where it reads so and the annotation to
// write: a loop that moves along it, bounded by a count (a parameter, a struct field, a length
// read from the bytes) and not stopping at its NUL (it may stop at another byte), a length for
// memcpy, a helper handed a count or a position that the caller's loop moves.
TEST(PointerUse, CharBytesReadByACountAreNotAString) {
  struct Case {
    const char *function, *needle;
  } cases[] = {
      {"hash_bytes", "`data` is read in a loop bounded by `len` that does not stop at its NUL "
                     "(tests/fixtures/escape.c:104); annotate it with DIST_IN(data, n), n "
                     "being the number of bytes it reads"},
      {"copied_sum", "`data` is read by `memcpy` for a length that comes from `n` "
                     "(tests/fixtures/escape.c:114)"},
      {"hash_twice", "`data` is passed to `hash_bytes` (tests/fixtures/escape.c:121), which reads "
                     "it by a count, from `len`"},
      {"frame_sum", "`payload` is read in a loop bounded by a count, not by its NUL "
                    "(tests/fixtures/escape.c:137)"},
      {"hash_via", "`data` is passed to `byte_at` (tests/fixtures/escape.c:146) and read in a loop "
                   "bounded by `n` that does not stop at its NUL"},
      {"hash_via_twice", "`data` is passed to `byte_at_twice` (tests/fixtures/escape.c:155) and "
                         "read in a loop bounded by `n` that does not stop at its NUL"},
      {"hash_moved", "`data` is passed to `peek_twice` (tests/fixtures/escape.c:164) and read in a "
                     "loop bounded by `n` that does not stop at its NUL"},
      // Down calls: the accessor that such a loop hands its position to.
      {"byte_at_twice", "`p` is read at a position that a loop of `hash_via_twice` "
                        "(tests/fixtures/escape.c:155) moves by a count; it runs where its "
                        "caller does"},
      {"frame_len", "`buf` is read in a loop bounded by `n` that does not stop at its NUL"},
      {"tlv_sum", "`p` is read in a loop bounded by `n` that does not stop at its NUL"},
      {"until_delim", "`buf` is read in a loop bounded by `n` that does not stop at its NUL"},
      // With the string empty, on the one way that this decides.
      {"le32_at", "`p` is read at byte 1 even when it is empty (tests/fixtures/escape.c:283)"},
      {"tag_hash", "`tag` is read at byte 1 even when it is empty"},
      {"id_copy", "`p` is copied by `memcpy` at bytes 0-3 even when it is empty"},
      {"le32_via", "`p` is passed to `le32_at` (tests/fixtures/escape.c:300) and read at "
                   "byte 1 even when it is empty"},
      {"hash_head", "`p` is passed to `hash_bytes` (tests/fixtures/escape.c:302) with a count of "
                    "6 even when it is empty"},
      {"record_hash", "`rec` is read at byte 1 even when it is empty"},
      {"checked_le16", "`p` is read at byte 1 even when it is empty (tests/fixtures/escape.c:323)"},
      {"is_wasm", "`p` is compared by `memcmp` at bytes 0-3 even when it is empty"},
      {"has_tab", "`p` is searched by `memchr` at bytes 0-7 even when it is empty"},
      // A helper run with the constant position it is handed; the helper itself, down calls.
      {"header_sum", "`p` is passed to `rd16` (tests/fixtures/escape.c:341) and read past its "
                     "NUL, with the values it is handed there, even when it is empty"},
      {"rd16", "`b` is read past its NUL with the values that `header_sum` "
               "(tests/fixtures/escape.c:341) hands it; it runs where its caller does"},
      {"wide_sum", "`p` is passed to `rd_le` (tests/fixtures/escape.c:369) and read past its NUL, "
                   "with the values it is handed there, even when it is empty"},
      {"rd_le", "`b` is read past its NUL with the values that `wide_sum`"},
      {"sum_head", "`p` is passed to `sum_from` (tests/fixtures/escape.c:402) and read past its "
                   "NUL, with the values it is handed there, even when it is empty"},
      // Handed a local buffer and constants.
      {"be16_at", "`b` is read past its NUL with the values that `local_digest` "
                  "(tests/fixtures/escape.c:381) hands it; it runs where its caller does"},
  };
  for (const auto &c : cases) {
    SCOPED_TRACE(c.function);
    const auto &f = fn("escape", c.function);
    EXPECT_EQ(f.placement, Placement::Local);
    EXPECT_EQ(f.rule, Rule::Unmarshalable);
    ASSERT_FALSE(f.params.empty());
    EXPECT_EQ(f.params[0].kind, MarshalKind::Unmarshalable);
    EXPECT_TRUE(contains(f.reason, "holds bytes with a count, not a string")) << f.reason;
    EXPECT_TRUE(contains(f.reason, c.needle)) << f.reason;
  }
  // Annotated, the same bytes are a buffer of that count.
  const auto &counted = fn("escape", "hash_counted");
  EXPECT_EQ(counted.placement, Placement::Placeable) << counted.reason;
  EXPECT_EQ(counted.params[0].kind, MarshalKind::BufferIn);
}

// A string's loops stop at its NUL (alone or with another bound; also through ctype's tables,
// and through the cleanup of a block with locals), or run to a length strlen found; positions
// kept in a struct or handed down a recursion, and an index modulo the string's length, stay
// inside it: still copied as a string.
TEST(PointerUse, StringsReadToTheirNulOrStrlenStayStrings) {
  for (const char *name :
       {"count_char", "upper_count", "prefix_len", "hash_string", "next_is", "vowels_from",
        "ci_equal", "digits_before_space", "copy_word", "digits_upto"}) {
    SCOPED_TRACE(name);
    const auto &f = fn("escape", name);
    EXPECT_EQ(f.placement, Placement::Placeable) << f.reason;
    ASSERT_FALSE(f.params.empty());
    EXPECT_EQ(f.params[0].kind, MarshalKind::CString);
  }
  // Read at fixed places only where the string's length allows (too small to be placeable).
  for (const char *name : {"option_kind", "hash_clipped", "ends_with_x", "after_verb", "is_get",
                           "char_at", "third_char", "parse_int_at", "port_of"}) {
    SCOPED_TRACE(name);
    const auto &f = fn("escape", name);
    EXPECT_FALSE(contains(f.reason, "holds bytes")) << f.reason;
    ASSERT_FALSE(f.params.empty());
    EXPECT_EQ(f.params[0].kind, MarshalKind::CString);
  }
  const auto &mix = fn("escape", "key_mix");
  EXPECT_EQ(mix.placement, Placement::Placeable) << mix.reason;
  EXPECT_EQ(mix.params[2].kind, MarshalKind::CString);
}

TEST(AnalysisErrors, EachBadAnnotationIsReportedWithFileAndLine) {
  const BadAnnotation cases[] = {
      {"bad_in_param", 3, "DIST_IN(values, n): no parameter named `values`"},
      {"bad_count", 3, "the count `len` is neither a parameter nor a decimal constant"},
      {"bad_huge_count", 3, "the count `99999999999999999999999` does not fit in 64 bits"},
      {"bad_lb_global", 3, "DIST_LOADBALANCED, but it uses mutable global `calls`"},
      {"bad_lb_io", 3, "DIST_LOADBALANCED, but it does I/O (calls `printf`)"},
      {"bad_pin_main", 3, "`main` runs on the entry node; DIST_PIN does not apply to it"},
      {"bad_gpin_buffer", 5,
       "DIST_IN(b, 1): `b` points to DIST_GPIN type `struct box`, whose objects stay on their "
       "node and travel as handles"},
      {"bad_twice", 3,
       "`v` is annotated twice with different counts, DIST_IN(v, n) and DIST_OUT(v, 4)"},
  };
  for (const auto &c : cases) {
    SCOPED_TRACE(c.fixture);
    const auto &errors = analysisOf(c.fixture).errors;
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_TRUE(contains(errors[0].loc.file, std::string(c.fixture) + ".c")) << errors[0].str();
    EXPECT_EQ(errors[0].loc.line, c.line) << errors[0].str();
    EXPECT_TRUE(contains(errors[0].message, c.needle)) << errors[0].str();
  }
}

} // namespace
} // namespace distnode::jit
