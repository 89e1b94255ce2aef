// distnode_main.cpp - the `distnode` command: run or analyze a bitcode program.
//
//   distnode app.bc [-- args...]                         run main() on this node
//   distnode --local N app.bc [-- args...]               N-node cluster on loopback
//   distnode --join cluster.yaml [--name N] app.bc [...] be one node of a cluster
//   distnode --analyze [--json] app.bc                   print the program analysis
//
// distnode's own errors are one line on stderr, "distnode: error: ...", and exit code 2.
#include "jit/bitcode.h"
#include "jit/jit_session.h"
#include "jit/program_analysis.h"
#include "node/adaptation.h"
#include "node/admin_server.h"
#include "node/analysis_report.h"
#include "node/cli_checks.h"
#include "node/cluster_config.h"
#include "node/cluster_node.h"
#include "node/local_cluster.h"
#include "node/logging.h"
#include "node/placement_plan.h"
#include "node/profile_report.h"
#include "profiler/profiler.h"

#include "llvm/Support/Error.h"

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <thread>

namespace {

using distnode::node::wholeNumber;

constexpr int kUsageOrInputError = 2;
constexpr long kDay = 24L * 60 * 60 * 1000; // ms: the longest a duration flag may be

int reportError(const std::string &message) {
  std::fflush(stdout);
  std::cerr << "distnode: error: " + message + "\n"; // one write: other nodes share stderr
  return kUsageOrInputError;
}

int reportError(llvm::Error err) {
  std::string message = llvm::toString(std::move(err));
  // LLVM sometimes joins several errors with newlines; each is printed as its own line.
  std::fflush(stdout);
  size_t start = 0;
  while (start <= message.size()) {
    size_t nl = message.find('\n', start);
    std::string line = message.substr(start, nl == std::string::npos ? nl : nl - start);
    if (!line.empty())
      std::cerr << "distnode: error: " + line + "\n";
    if (nl == std::string::npos)
      break;
    start = nl + 1;
  }
  return kUsageOrInputError;
}

struct Options {
  std::string bitcode;
  std::vector<std::string> args;
  bool analyze = false;
  bool json = false;
  bool no_opt = false;
  bool loopback = false;
  bool verbose = false;
  std::string join;
  std::string name;
  int local = 0;
  std::string placement;
  long join_timeout_ms = 10000;
  bool no_profile = false;
  std::string code_cache = distnode::jit::defaultCodeCacheDir();
  bool no_code_cache = false;
  std::string profile_out;
  long profile_half_life_ms = 10000;
  long chaos_ms = 0;
  std::string coordinator = "n0"; ///< --local: the node that runs the planning loop
  bool no_adapt = false;
  bool under_launcher = false; ///< a node started by --local (see --under-launcher)
  long adapt_interval_ms = 0;  // 0: cluster.yaml's
  std::string cluster_out;
  std::string log_level = "warn";
  std::string log_file;
  unsigned min_instructions = distnode::jit::AnalysisOptions{}.min_instructions;
};

// Starts self-time sampling and sets the rate half-life, unless profiling is off.
void startProfiling(const Options &opt) {
  if (opt.no_profile)
    return;
  auto &p = distnode::profiler::Profiler::instance();
  p.setHalfLife(std::chrono::milliseconds(opt.profile_half_life_ms));
  p.startSampling(std::chrono::milliseconds(1));
}

// Writes --profile-out: this node's profile and the other nodes' reports (JSON texts).
void writeProfile(const Options &opt, const std::string &node,
                  const std::vector<std::string> &reports) {
  if (opt.profile_out.empty() || opt.no_profile)
    return;
  auto &p = distnode::profiler::Profiler::instance();
  p.stopSampling();
  std::vector<nlohmann::json> nodes = {distnode::node::profileToJson(p.snapshot(), node)};
  for (const auto &r : reports)
    if (!r.empty())
      nodes.push_back(nlohmann::json::parse(r, nullptr, /*allow_exceptions=*/false));
  std::erase_if(nodes, [](const nlohmann::json &j) { return j.is_discarded(); });
  std::ofstream out(opt.profile_out);
  out << distnode::node::profileDocument(nodes).dump(2) << "\n";
  if (!out)
    spdlog::warn("cannot write the profile to {}", opt.profile_out);
}

int analyze(const Options &opt, const distnode::jit::Program &program,
            const distnode::jit::ProgramAnalysis &analysis) {
  if (opt.json)
    std::cout << distnode::node::analysisToJson(analysis, program.path, program.sha256Hex()).dump(2)
              << "\n";
  else
    std::cout << distnode::node::analysisToText(analysis, program.path);
  std::cout.flush();
  for (const auto &e : analysis.errors)
    std::cerr << "distnode: error: " + e.str() + "\n";
  return analysis.errors.empty() ? 0 : kUsageOrInputError;
}

// Self-check: every call of a remotable function from another placement unit goes through its
// thunk, its arguments marshaled, served by its dispatcher in this process and its reply
// unmarshaled, exactly as a call to another node but without the network. (Calls inside a
// unit never cross nodes: they stay direct calls.)
void linkAllThroughLoopback(distnode::jit::JitSession &session) {
  session.setRemoteHandler([&session](std::uint32_t id, void **slots, void *ret) {
    std::string error;
    if (!session.callMarshaled(id, slots, ret, error)) {
      std::cerr << "distnode: error: loopback call of `" + session.remoteFunctions()[id].name +
                       "`: " + error + "\n";
      std::_Exit(kUsageOrInputError);
    }
  });
  for (const auto &f : session.remoteFunctions())
    session.relink(f.id, distnode::jit::StubTarget::Remote);
}

// After the program's main returned and its atexit handlers and static destructors ran (and,
// on a cluster, the other nodes were stopped): ends the process as a native exit() does, with
// the program's other threads stopped where they are. Unwinding distnode itself instead would
// free the JIT'd code under threads that may still run it.
[[noreturn]] void exitAfterMain(int code) {
  std::fflush(nullptr);
  std::cerr.flush();
  spdlog::default_logger()->flush();
  std::_Exit(code);
}

// One node of a cluster: the entry node places the functions, runs main and stops the
// others; every other node serves until then.
int runClusterNode(const Options &opt, distnode::jit::JitSession &session,
                   const distnode::jit::ProgramAnalysis &analysis,
                   const std::array<std::uint8_t, 32> &sha256) {
  using namespace distnode::node;
  auto config = loadClusterConfig(opt.join);
  if (!config)
    return reportError(config.takeError());
  if (opt.under_launcher) { // its cluster.yaml is a temporary file the user never saw
    config->label = "the local cluster (";
    for (const auto &n : config->nodes)
      config->label += (&n == &config->nodes.front() ? "" : ", ") + n.name;
    config->label += ")";
  }
  std::string name = opt.name.empty() ? config->entry : opt.name;
  if (auto err = distnode::node::setupLogging(name, opt.log_level, opt.log_file))
    return reportError(std::move(err));
  if (!session.codeCacheStatus().empty())
    spdlog::info("code cache: {}", session.codeCacheStatus());
  int self = config->nodeIndex(name);
  if (self < 0)
    return reportError(opt.join + ": no node named `" + name + "`; --name must be one of its " +
                       "nodes");
  if (opt.adapt_interval_ms > 0)
    config->adapt.interval = std::chrono::milliseconds(opt.adapt_interval_ms);
  if (opt.no_adapt)
    config->adapt.enabled = false;
  if (opt.no_profile && config->adapt.enabled) {
    spdlog::info(
        "adaptation needs the profile: with --no-profile the placement stays as it starts");
    config->adapt.enabled = false;
  }
  // Where a running cluster's failures end: one line, then the process, from whichever thread
  // found it (the program's threads may be inside JIT'd code, which cannot be unwound).
  auto on_failure = [log_file = opt.log_file](const std::string &message, int exit_code) {
    if (!log_file.empty() && !message.empty()) // the log tells the whole story
      spdlog::error("{}", message);
    spdlog::default_logger()->flush();
    std::fflush(nullptr);
    if (!message.empty())
      std::cerr << "distnode: error: " + message + "\n" << std::flush;
    std::_Exit(exit_code);
  };
  auto node = ClusterNode::Create(*config, self, session, analysis, sha256, on_failure);
  if (!node)
    return reportError(node.takeError());
  (*node)->setUnderLauncher(opt.under_launcher);
  session.setRemoteHandler([n = node->get()](std::uint32_t id, void **slots, void *ret) {
    n->callRemote(id, slots, ret);
  });
  double capacity = cpuCapacity(config->nodes[self]);
  const bool entry = name == config->entry;
  const bool coordinates = name == config->coordinator;
  if (opt.chaos_ms > 0 && entry && !coordinates)
    return reportError("--chaos-ms holds adaptation still on the coordinator, which must then be "
                       "the entry node; drop `coordinator:` from " +
                       opt.join);
  // Every node measures its links and reports its profile at each planning round (the
  // coordinator reads them even when adaptation is held still: `distctl profile` shows them).
  static NodeReporter reporter(**node, self, static_cast<int>(config->nodes.size()), capacity);
  if (!coordinates && !opt.no_profile)
    (*node)->setReportSource([] { return reporter.next(); }, [] { return reporter.sawNewPhase(); },
                             config->adapt.interval);
  // The coordinator: the planner, fed by every node's reports, and its loop. It lives as long
  // as the process: the control thread feeds it until the end.
  static std::optional<Coordinator> coordinator;
  static std::optional<AdaptationLoop> loop;
  if (coordinates) {
    coordinator.emplace(analysis, distnode::profiler::Profiler::instance().layout().functions,
                        *config, config->nodeIndex(config->entry), config->adapt);
    (*node)->setReportHandler([](int from, std::uint64_t round,
                                 const NodeReport &r) { coordinator->addReport(from, r, round); },
                              [](const NodeReport &r) { return coordinator->check(r); });
    // Members look for new phases at the coordinator's interval, whatever they were started
    // with.
    (*node)->setMemberReportInterval(config->adapt.interval);
    loop.emplace(**node, *coordinator, reporter, self);
    (*node)->setRoundWanted([](std::uint64_t round) { return loop->wantRound(round); });
  }
  // The admin socket: the coordinator answers; every other node forwards to it. The
  // coordinator's answers once its loop runs (a coordinator that is not the entry node starts
  // it at the first placement).
  static std::atomic<bool> coordinator_ready{false};
  // Starts the loop (once the first placement is in effect); the admin socket answers from then.
  static constexpr auto startCoordinating = [] {
    loop->start();
    coordinator_ready = true;
  };
  static std::unique_ptr<AdminServer> admin;
  static const ClusterConfig admin_config = *config;
  // Binds the admin socket (if configured); an error line if it cannot.
  auto bindAdmin = [&]() -> std::optional<std::string> {
    const std::string &endpoint = config->nodes[self].admin_endpoint;
    if (endpoint.empty())
      return std::nullopt;
    const NodeConfig &c = config->nodes[config->nodeIndex(config->coordinator)];
    AdminHandler handler =
        coordinates
            ? AdminHandler([inner = coordinatorHandler(admin_config, **node, *coordinator, *loop)](
                               const nlohmann::json &request) {
                if (!coordinator_ready.load())
                  return adminError("the cluster is starting (no placement yet); try again");
                return inner(request);
              })
            : forwardingHandler(c.admin_endpoint, c.name, std::chrono::milliseconds(5000));
    // An ipc:// socket's directory (/run/distnode, say) is made if missing, private to this user.
    if (endpoint.rfind("ipc://", 0) == 0) {
      std::error_code ec;
      const std::filesystem::path dir = std::filesystem::path(endpoint.substr(6)).parent_path();
      if (!dir.empty() && std::filesystem::create_directories(dir, ec))
        std::filesystem::permissions(dir, std::filesystem::perms::owner_all, ec);
    }
    auto server = AdminServer::Create(endpoint, std::move(handler));
    if (!server)
      return config->whereIs(config->nodes[self]) +
             ": admin: " + llvm::toString(server.takeError()) +
             " (choose an admin endpoint this node can bind: an ipc:// path in a directory it may "
             "write, or a free tcp:// port on loopback)";
    admin = std::move(*server);
    spdlog::info("admin socket at {}", endpoint);
    (*node)->atStop([] { admin->stop(); });
    return std::nullopt;
  };
  (*node)->atStop([] {
    if (loop)
      loop->stop();
    reporter.stop();
  });

  if (!entry) {
    if (auto why = bindAdmin())
      return reportError(*why);
    reporter.startProbing(config->adapt.interval);
    if (coordinates)
      (*node)->atFirstPlacement(startCoordinating);
    if (!opt.no_profile)
      (*node)->setShutdownReport([name] {
        auto &p = distnode::profiler::Profiler::instance();
        p.stopSampling();
        return distnode::node::profileToJson(p.snapshot(), name).dump();
      });
    startProfiling(opt);
    auto code = (*node)->runMember();
    if (!code)
      return reportError(code.takeError());
    // A worker may still run a call of the program: end now, as a native exit ends every
    // thread, without tearing down the code and the node it runs in.
    std::fflush(nullptr);
    spdlog::default_logger()->flush();
    std::_Exit(*code);
  }

  std::vector<PlacementEntry> entries = config->placement;
  DefaultPlacement defaults = DefaultPlacement::Entry;
  if (opt.placement == "scatter") {
    defaults = DefaultPlacement::Scatter;
  } else if (!opt.placement.empty()) {
    auto extra = loadPlacementFile(opt.placement);
    if (!extra)
      return reportError(extra.takeError());
    entries.insert(entries.end(), extra->begin(), extra->end());
  }
  auto start = planPlacement(analysis, *config, entries, defaults);
  if (!start) {
    (*node)->shutdownCluster(kUsageOrInputError);
    return reportError(start.takeError());
  }
  if (opt.verbose)
    for (const auto &f : session.remoteFunctions()) {
      // One write per line: other nodes' lines reach the same stderr.
      std::ostringstream line;
      line << "distnode: placement: " << f.name << " on ";
      if (start->replicas[f.unit].empty())
        line << config->nodes[start->owners[f.unit]].name;
      for (const Replica &r : start->replicas[f.unit]) // load-balanced
        line << (&r == &start->replicas[f.unit].front() ? "replicas " : ", ")
             << config->nodes[r.node].name << " (weight " << r.weight << ")";
      line << "\n";
      std::cerr << line.str() << std::flush;
    }
  if (auto err = (*node)->startEntry(start->owners, start->replicas))
    return reportError(std::move(err));
  reporter.startProbing(config->adapt.interval);
  if (opt.chaos_ms > 0) {
    (*node)->startChaos(std::chrono::milliseconds(opt.chaos_ms), 1);
    AdaptOptions held = coordinator->options(); // the chaos test moves units itself
    held.enabled = false;
    coordinator->setOptions(held);
  }
  if (coordinates)
    startCoordinating();
  if (auto why = bindAdmin()) {
    (*node)->shutdownCluster(kUsageOrInputError, "the cluster did not start: " + *why);
    return reportError(*why);
  }
  session.setExitHook([&opt, n = node->get(), name](int code, distnode::jit::ExitKind how) {
    // Buffered output is the program's to flush: exit() does, quick_exit() and _exit() do not.
    const bool flush = how == distnode::jit::ExitKind::Normal;
    if (ClusterNode::inForkedChild()) { // a child made by fork(): no member, nothing to stop
      if (flush)
        std::fflush(nullptr);
      std::_Exit(code);
    }
    if (loop)
      loop->stop();
    reporter.stop();
    if (flush)
      std::fflush(nullptr);
    std::vector<std::string> reports = n->shutdownCluster(code);
    writeProfile(opt, name, reports);
  });
  startProfiling(opt);
  auto code = session.runMain(opt.args);
  if (!code)
    return reportError(code.takeError());
  exitAfterMain(*code);
}

int run(const Options &opt, distnode::jit::Program program,
        const distnode::jit::ProgramAnalysis &analysis) {
  if (!analysis.errors.empty()) {
    for (const auto &e : analysis.errors)
      std::cerr << "distnode: error: " + e.str() + "\n";
    return kUsageOrInputError;
  }
  if (auto err = distnode::jit::checkHasMain(program))
    return reportError(std::move(err));
  std::array<std::uint8_t, 32> sha256 = program.sha256;
  distnode::jit::JitOptions jit_options;
  jit_options.optimize = !opt.no_opt;
  jit_options.profile = !opt.no_profile;
  if (!opt.no_code_cache)
    jit_options.code_cache_dir = opt.code_cache;
  auto session = distnode::jit::JitSession::Create(std::move(program), analysis, jit_options);
  if (!session)
    return reportError(session.takeError());
  if (opt.loopback)
    linkAllThroughLoopback(**session);
  if (opt.join.empty() && !(*session)->codeCacheStatus().empty())
    spdlog::info("code cache: {}", (*session)->codeCacheStatus());
  if (!opt.join.empty())
    return runClusterNode(opt, **session, analysis, sha256);
  (*session)->setExitHook([&opt](int, distnode::jit::ExitKind) { writeProfile(opt, "local", {}); });
  startProfiling(opt);
  auto code = (*session)->runMain(opt.args);
  if (!code)
    return reportError(code.takeError());
  exitAfterMain(*code);
}

} // namespace

int main(int argc, char **argv) {
  Options opt;
  CLI::App app{"distnode: runs one program on several machines, deciding at run time which "
               "function executes where."};
  app.add_option("bitcode", opt.bitcode, "the program's LLVM bitcode (build it with dist-cc)")
      ->required();
  app.add_option("args", opt.args, "arguments for the program's main, after --");
  app.add_flag("--analyze", opt.analyze,
               "print which functions are placeable, local or home and why, then exit");
  app.add_flag("--json", opt.json, "with --analyze: print JSON (schema distnode-analysis/1)");
  app.add_option("--min-instructions", opt.min_instructions,
                 "granularity floor: leaf functions without loops below this many IR "
                 "instructions stay local")
      ->capture_default_str()
      ->transform(wholeNumber(0, 1000000));
  app.add_flag("--no-opt", opt.no_opt, "do not run the O2 pipeline on the program");
  app.add_flag("--verbose", opt.verbose, "print where each remotable function runs to stderr");
  app.add_flag("--loopback", opt.loopback,
               "self-check: every call of a remotable function from another placement unit goes "
               "through its remote thunk, marshaled and served in this process");
  auto *join = app.add_option("--join", opt.join,
                              "run as one node of the cluster described by this cluster.yaml");
  app.add_option("--name", opt.name, "with --join: this node's name (default: the entry node)")
      ->needs(join);
  auto *local = app.add_option("--local", opt.local,
                               "start an N-node cluster of processes on loopback and run the "
                               "program on it")
                    ->transform(wholeNumber(1, 64))
                    ->excludes(join);
  app.add_option("--placement", opt.placement,
                 "starting placement: a YAML file `function: node` (a load-balanced function: "
                 "`function: {node: weight, ...}`, its replicas), or `scatter` (placement units "
                 "round-robin over the nodes)");
  app.add_option("--join-timeout-ms", opt.join_timeout_ms,
                 "with --local: how long the entry node waits for the others")
      ->needs(local)
      ->transform(wholeNumber(1, kDay));
  app.add_flag("--no-profile", opt.no_profile, "compile no profiling counters and take no samples");
  app.add_option("--code-cache", opt.code_cache,
                 "where compiled programs are kept, so that the next run of the same program with "
                 "the same options starts without compiling (default: $DISTNODE_CACHE_DIR, else "
                 "$XDG_CACHE_HOME/distnode, else ~/.cache/distnode; remove it to clear it)");
  auto *cache_dir = app.get_option("--code-cache");
  app.add_flag("--no-code-cache", opt.no_code_cache,
               "compile the program without looking in or writing to the code cache")
      ->excludes(cache_dir);
  app.add_option("--profile-out", opt.profile_out,
                 "when the program ends, write the profile (all nodes' and merged) to this JSON "
                 "file; on a cluster, the entry node writes it");
  app.add_option("--profile-half-life-ms", opt.profile_half_life_ms,
                 "half-life of the profile's decayed rates")
      ->capture_default_str()
      ->transform(wholeNumber(1, kDay));
  app.add_option("--log-level", opt.log_level,
                 std::string("distnode's own log: ") + distnode::node::kLogLevels)
      ->capture_default_str();
  app.add_option("--log-file", opt.log_file,
                 "append distnode's log to this file instead of stderr (the program's output is "
                 "never in it)");
  app.add_flag("--under-launcher", opt.under_launcher,
               "(set by --local for its nodes) messages name the local cluster, not its "
               "temporary file; a member that the entry node stops because the cluster failed "
               "exits without a line of its own")
      ->group(""); // not for users: hidden from --help
  app.add_flag("--no-adapt", opt.no_adapt,
               "hold the placement still: no re-placement while the program runs (the "
               "operator can still move units, and `distctl thaw` starts adapting)");
  app.add_option("--adapt-interval-ms", opt.adapt_interval_ms,
                 "profile interval and planning period (default: cluster.yaml's adapt.interval_ms, "
                 "else 1000)")
      ->transform(
          wholeNumber(distnode::node::kMinAdaptIntervalMs, distnode::node::kMaxAdaptIntervalMs));
  app.add_option("--coordinator", opt.coordinator,
                 "with --local: the node that runs the planning loop (n0 is the entry node)")
      ->needs(local)
      ->capture_default_str();
  app.add_option("--cluster-out", opt.cluster_out,
                 "with --local: write the generated cluster.yaml here (for distctl --cluster)")
      ->needs(local);
  app.add_option("--chaos-ms", opt.chaos_ms,
                 "test option: every this many milliseconds, move every placeable unit that can "
                 "move to a random node and give every load-balanced one a random replica set "
                 "(a new placement epoch)")
      ->transform(wholeNumber(1, kDay));
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp &e) {
    return app.exit(e);
  } catch (const CLI::ParseError &e) {
    return reportError(std::string(e.what()) + "; see distnode --help");
  }
  int coordinator = -1; // --local: its index
  for (int i = 0; i < opt.local; ++i)
    if (opt.coordinator == "n" + std::to_string(i))
      coordinator = i;
  if (opt.local > 0 && coordinator < 0)
    return reportError("--coordinator " + opt.coordinator + ": the local cluster's nodes are n0.." +
                       "n" + std::to_string(opt.local - 1));
  if (opt.local > 0 && opt.chaos_ms > 0 && coordinator != 0)
    return reportError("--chaos-ms holds adaptation still on the coordinator, which must then be "
                       "the entry node; drop --coordinator");
  if (opt.json && !opt.analyze)
    return reportError("--json goes with --analyze");
  if (!opt.placement.empty() && opt.join.empty() && opt.local == 0)
    return reportError("--placement goes with --join or --local");
  if (opt.loopback && (!opt.join.empty() || opt.local > 0))
    return reportError("--loopback runs on one node; drop --join/--local");
  if (opt.join.empty())
    if (auto err = distnode::node::setupLogging(opt.local > 0 ? "launcher" : "local", opt.log_level,
                                                opt.log_file))
      return reportError(std::move(err));

  auto program = distnode::jit::loadBitcode(opt.bitcode);
  if (!program)
    return reportError(program.takeError());
  distnode::jit::AnalysisOptions analysis_options;
  analysis_options.min_instructions = opt.min_instructions;
  distnode::jit::ProgramAnalysis analysis =
      distnode::jit::analyzeProgram(*program->module, analysis_options);

  if (opt.analyze)
    return analyze(opt, *program, analysis);
  if (opt.local > 0) {
    // Check the program here once, instead of in every node.
    if (!analysis.errors.empty())
      return run(opt, std::move(*program), analysis);
    if (auto err = distnode::jit::checkHasMain(*program))
      return reportError(std::move(err));
    distnode::node::LocalClusterOptions local_options;
    local_options.nodes = opt.local;
    local_options.bitcode = opt.bitcode;
    local_options.program_args = opt.args;
    local_options.join_timeout = std::chrono::milliseconds(opt.join_timeout_ms);
    if (!opt.placement.empty())
      local_options.node_flags = {"--placement", opt.placement};
    if (opt.no_opt)
      local_options.node_flags.push_back("--no-opt");
    if (opt.verbose)
      local_options.node_flags.push_back("--verbose");
    if (opt.no_profile)
      local_options.node_flags.push_back("--no-profile");
    if (opt.no_code_cache)
      local_options.node_flags.push_back("--no-code-cache");
    else
      local_options.node_flags.insert(local_options.node_flags.end(),
                                      {"--code-cache", opt.code_cache});
    local_options.node_flags.insert(local_options.node_flags.end(), {"--log-level", opt.log_level});
    if (!opt.log_file.empty())
      local_options.node_flags.insert(local_options.node_flags.end(), {"--log-file", opt.log_file});
    if (opt.chaos_ms > 0)
      local_options.entry_flags.insert(local_options.entry_flags.end(),
                                       {"--chaos-ms", std::to_string(opt.chaos_ms)});
    local_options.coordinator = coordinator;
    if (opt.no_adapt)
      local_options.coordinator_flags.push_back("--no-adapt");
    if (opt.adapt_interval_ms > 0)
      local_options.node_flags.insert(
          local_options.node_flags.end(),
          {"--adapt-interval-ms", std::to_string(opt.adapt_interval_ms)});
    local_options.cluster_out = opt.cluster_out;
    local_options.node_flags.insert(
        local_options.node_flags.end(),
        {"--profile-half-life-ms", std::to_string(opt.profile_half_life_ms)});
    if (!opt.profile_out.empty())
      local_options.entry_flags.insert(local_options.entry_flags.end(),
                                       {"--profile-out", opt.profile_out});
    if (opt.min_instructions != distnode::jit::AnalysisOptions{}.min_instructions)
      local_options.node_flags.insert(local_options.node_flags.end(),
                                      {"--min-instructions", std::to_string(opt.min_instructions)});
    return distnode::node::runLocalCluster(local_options);
  }
  return run(opt, std::move(*program), analysis);
}
