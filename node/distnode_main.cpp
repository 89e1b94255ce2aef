// distnode_main.cpp - the `distnode` command: run or analyze a bitcode program.
//
//   distnode app.bc [-- args...]          run main() on this node, exit with its code
//   distnode --analyze [--json] app.bc    print the program analysis
//
// distnode's own errors are one line on stderr, "distnode: error: ...", and exit code 2.
#include "jit/bitcode.h"
#include "jit/jit_session.h"
#include "jit/program_analysis.h"
#include "node/analysis_report.h"

#include "llvm/Support/Error.h"

#include <CLI/CLI.hpp>

#include <cstdio>
#include <iostream>

namespace {

constexpr int kUsageOrInputError = 2;

int reportError(const std::string &message) {
  std::fflush(stdout);
  std::cerr << "distnode: error: " << message << "\n";
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
      std::cerr << "distnode: error: " << line << "\n";
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
  unsigned min_instructions = distnode::jit::AnalysisOptions{}.min_instructions;
};

int analyze(const Options &opt, const distnode::jit::Program &program,
            const distnode::jit::ProgramAnalysis &analysis) {
  if (opt.json)
    std::cout << distnode::node::analysisToJson(analysis, program.path, program.sha256Hex())
                     .dump(2)
              << "\n";
  else
    std::cout << distnode::node::analysisToText(analysis, program.path);
  std::cout.flush();
  for (const auto &e : analysis.errors)
    std::cerr << "distnode: error: " << e.str() << "\n";
  return analysis.errors.empty() ? 0 : kUsageOrInputError;
}

// Self-check: every remotable function is called through its thunk, its arguments marshaled,
// served by its dispatcher in this process and its reply unmarshaled, exactly as a call to
// another node but without the network.
void linkAllThroughLoopback(distnode::jit::JitSession &session) {
  session.setRemoteHandler([&session](std::uint32_t id, void **slots, void *ret) {
    const auto &sig = session.remoteFunctions()[id];
    std::vector<std::uint8_t> args, reply;
    std::string error;
    if (!distnode::jit::marshalCall(sig, slots, args, error) ||
        !session.serve(id, args.data(), args.size(), reply, error) ||
        !distnode::jit::unmarshalReply(sig, reply.data(), reply.size(), slots, ret, error)) {
      std::cerr << "distnode: error: loopback call of `" << sig.name << "`: " << error << "\n";
      std::_Exit(kUsageOrInputError);
    }
  });
  for (const auto &f : session.remoteFunctions())
    session.relink(f.id, distnode::jit::StubTarget::Remote);
}

int run(const Options &opt, distnode::jit::Program program,
        const distnode::jit::ProgramAnalysis &analysis) {
  if (!analysis.errors.empty()) {
    for (const auto &e : analysis.errors)
      std::cerr << "distnode: error: " << e.str() << "\n";
    return kUsageOrInputError;
  }
  if (auto err = distnode::jit::checkHasMain(program))
    return reportError(std::move(err));
  distnode::jit::JitOptions jit_options;
  jit_options.optimize = !opt.no_opt;
  auto session = distnode::jit::JitSession::Create(std::move(program), analysis, jit_options);
  if (!session)
    return reportError(session.takeError());
  if (opt.loopback)
    linkAllThroughLoopback(**session);
  auto code = (*session)->runMain(opt.args);
  if (!code)
    return reportError(code.takeError());
  return *code;
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
      ->capture_default_str();
  app.add_flag("--no-opt", opt.no_opt, "do not run the O2 pipeline on the program");
  app.add_flag("--loopback", opt.loopback,
               "self-check: call every remotable function through its remote thunk, "
               "marshaled and served in this process");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp &e) {
    return app.exit(e);
  } catch (const CLI::ParseError &e) {
    return reportError(std::string(e.what()) + "; see distnode --help");
  }
  if (opt.json && !opt.analyze)
    return reportError("--json goes with --analyze");

  auto program = distnode::jit::loadBitcode(opt.bitcode);
  if (!program)
    return reportError(program.takeError());
  distnode::jit::AnalysisOptions analysis_options;
  analysis_options.min_instructions = opt.min_instructions;
  distnode::jit::ProgramAnalysis analysis =
      distnode::jit::analyzeProgram(*program->module, analysis_options);

  if (opt.analyze)
    return analyze(opt, *program, analysis);
  return run(opt, std::move(*program), analysis);
}
