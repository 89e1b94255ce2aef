// counted_reads.h - which pointer parameters a function reads past where a string would end:
// by a count rather than up to a NUL it finds.
//
// A `const char *` is copied as a string, up to its first NUL. A function that reads it in a
// loop that moves along it and stops at no byte it reads (`for (i = 0; i < n; ++i) ... s[i]`,
// whatever bounds it), just before an end a parameter gives (`s[n - 1]`), or with `memcpy`,
// `memcmp`, `memchr`... for a length that is neither constant nor the string's own, holds bytes
// with a count: the copy would be too short, or would read past bytes with no NUL. Also
// through calls: a helper handed the pointer and a count, or a position that a loop of the
// caller's moves along. A string's loop stops at a byte it reads (`*s`, `s[i] && i < max`) or
// runs to a length taken from the string (`strlen(s)`).
//
// The analysis works on a copy of each function with pointer parameters, its locals in
// registers (mem2reg), where scalar evolution tells where each access is and which loops move
// it. It does not see a string read past its NUL by a loop that stops at a byte (a list of
// strings separated by NULs), nor a count kept in memory and reloaded in a loop that also
// reads a byte to decide to stop.
//
// Internal to jit/: it takes LLVM types, so only analysis sources include it.
#ifndef DISTNODE_JIT_COUNTED_READS_H
#define DISTNODE_JIT_COUNTED_READS_H

#include <map>
#include <string>
#include <utility>

namespace llvm {
class Function;
class Module;
} // namespace llvm

namespace distnode::jit {

/// How a function reads one of its pointer parameters by a count (none: `how` is empty).
struct CountedRead {
  /// The IR argument that the count comes from, named in the evidence; -1 if none is named.
  int count_arg = -1;
  /// Evidence: `how`, then the count's name (if count_arg names one), then `how_rest` and
  /// `at`: "is read in a loop bounded by" + " `n`" + " that does not stop..." + " (f.c:3)".
  std::string how;
  std::string how_rest;
  std::string at;

  [[nodiscard]] bool counted() const { return !how.empty(); }
};

/// The counted reads of every pointer parameter of every function defined in a module, across
/// calls between the program's functions. Built once; read-only afterwards.
class CountedReads {
public:
  explicit CountedReads(const llvm::Module &module);

  /// How `fn` reads its IR argument `arg` by a count (count_arg -1: it does not).
  [[nodiscard]] const CountedRead &of(const llvm::Function &fn, unsigned arg) const;

private:
  std::map<std::pair<const llvm::Function *, unsigned>, CountedRead> reads_;
  CountedRead none_;
};

} // namespace distnode::jit

#endif
