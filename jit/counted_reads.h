// counted_reads.h - which pointer parameters a function reads past where a string would end:
// by a count rather than up to its NUL.
//
// A `const char *` is copied as a string, up to its first NUL. A function that reads it in a
// loop that moves along it and is bounded by a count (an integer parameter, memory such as
// `h->len`, a length read from the string's first bytes), unless the loop stops at the NUL, or
// with `memcpy`, `memcmp`, `memchr`, `bsearch`... for a length that a parameter or memory
// gives, holds bytes with a count: the copy would be too short, or would read past bytes with
// no NUL. Also through calls: a helper handed the pointer and a count, or a position that a
// loop of the caller's moves. Whether a loop stops at the NUL is found by running one
// iteration (two, for a flag) with the string's bytes at zero, glibc's ctype tables included:
// it does if every way through that reads the string leaves it; or if its bound is the length
// of the whole string (`strlen(s)`). And reads at fixed places: the function run with the
// string empty (its bytes zero, `strlen(s)` 0, not NULL) along the one way this decides,
// going on past a branch it does not decide where the ways meet, reads past byte 0 (`p[0] |
// p[1] << 8`, a loop of 4 rounds, a `memcpy`, `memcmp` or `memchr` of 4 bytes, a helper that
// reads so itself, or does with the constant position, count or width it is handed, `rd16(p,
// 0)`, `hash(p, 6)`: the helper is run with those values, and reads bytes too). Every call of
// the program that hands a helper a local or global buffer and constant integers
// (`rd16(buf, 0)`) runs it the same way.
//
// The analysis works on a copy of each function with pointer parameters, its locals in
// registers (mem2reg), where scalar evolution tells which loops move each access. It does not
// see fixed reads inside the arms of a branch that a parameter, memory or a callee picks,
// recursion over (p, n), lists of strings, offsets computed from a count without a loop
// (`s[n / 2]`), or irreducible loops (Duff's device).
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
  /// Whether a count of the function's own could describe the bytes (DIST_IN); not when a
  /// caller's loop moves the position it reads at.
  bool annotatable = true;

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
