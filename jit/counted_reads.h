// counted_reads.h - which pointer parameters a function reads by a count that one of its
// integer parameters gives (`for (i = 0; i < n; ++i) ... s[i]`, `memcpy(d, s, n)`, `s[n - 1]`),
// rather than up to a NUL it finds.
//
// A `const char *` read so holds bytes with a length, not a string: a copy made up to its
// first NUL would give the callee too few bytes, or, with no NUL in the bytes, would read past
// them. The analysis works on a copy of each function with its local variables in registers,
// where scalar evolution tells a loop that runs a computed number of times (its count known on
// entry) from one that stops at a byte it reads.
//
// A count may also be loaded from memory (a struct field, a global: `for (i = 0; i < h->len;
// ++i)`). A loop that stops at any byte it reads counts as a string's loop, as do a constant
// count (`memcmp(s, "GET ", 4)`) and an offset loaded from memory (`s[st->pos]`, a tokenizer's
// position).
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

/// How a function reads one of its pointer parameters by a count.
struct CountedRead {
  /// A count loaded from memory (a struct field, a global), not handed in as a parameter.
  static constexpr int kFromMemory = -2;
  /// The IR argument whose value the count comes from, or kFromMemory; -1 if the parameter is
  /// not read by a count.
  int count_arg = -1;
  /// Evidence, to be followed by the count's name and then `at`: e.g. "is read in a loop whose
  /// count comes from" + " `n`" + " (f.c:3)".
  std::string how;
  std::string at;

  [[nodiscard]] bool counted() const { return count_arg != -1; }
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
