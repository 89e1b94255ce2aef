// jit_fixture.h - the benchmark program loaded into a JIT session, shared by the benchmarks.
#ifndef DISTNODE_BENCH_JIT_FIXTURE_H
#define DISTNODE_BENCH_JIT_FIXTURE_H

#include "jit/bitcode.h"
#include "jit/jit_session.h"
#include "jit/program_analysis.h"

#include "llvm/Support/Error.h"

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

namespace distnode::bench {

/// A program's bitcode (bench_calls.bc by default), analyzed and compiled; exits the benchmark
/// with a message on failure.
struct BenchProgram {
  std::array<std::uint8_t, 32> sha256{};
  jit::ProgramAnalysis analysis;
  std::unique_ptr<jit::JitSession> session;

  template <typename Fn> Fn function(const char *name) {
    auto addr = session->lookup(name);
    if (!addr) {
      std::fprintf(stderr, "bench: %s\n", llvm::toString(addr.takeError()).c_str());
      std::exit(1);
    }
    return reinterpret_cast<Fn>(*addr);
  }
};

inline BenchProgram loadBenchProgram(const std::string &path = DIST_BENCH_BC,
                                     jit::JitOptions options = {}) {
  BenchProgram p;
  auto program = jit::loadBitcode(path);
  if (!program) {
    std::fprintf(stderr, "bench: %s\n", llvm::toString(program.takeError()).c_str());
    std::exit(1);
  }
  p.sha256 = program->sha256;
  p.analysis = jit::analyzeProgram(*program->module);
  auto session = jit::JitSession::Create(std::move(*program), p.analysis, options);
  if (!session) {
    std::fprintf(stderr, "bench: %s\n", llvm::toString(session.takeError()).c_str());
    std::exit(1);
  }
  p.session = std::move(*session);
  return p;
}

} // namespace distnode::bench

#endif
