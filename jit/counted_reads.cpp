// counted_reads.cpp - which pointer parameters a function reads past where a string would end.
#include "jit/counted_reads.h"

#include "jit/pointer_uses.h"

#include "llvm/ADT/MapVector.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/Analysis/AssumptionCache.h"
#include "llvm/Analysis/LoopInfo.h"
#include "llvm/Analysis/PostDominators.h"
#include "llvm/Analysis/ScalarEvolution.h"
#include "llvm/Analysis/ScalarEvolutionExpressions.h"
#include "llvm/Analysis/TargetLibraryInfo.h"
#include "llvm/Analysis/ValueTracking.h"
#include "llvm/IR/Constants.h"
#include "llvm/IR/DataLayout.h"
#include "llvm/IR/Dominators.h"
#include "llvm/IR/InstIterator.h"
#include "llvm/IR/Instructions.h"
#include "llvm/IR/IntrinsicInst.h"
#include "llvm/IR/Module.h"
#include "llvm/TargetParser/Triple.h"
#include "llvm/Transforms/Utils/Cloning.h"
#include "llvm/Transforms/Utils/PromoteMemToReg.h"
#include "llvm/Transforms/Utils/ValueMapper.h"

#include <cstdint>
#include <ctype.h>
#include <deque>
#include <memory>
#include <optional>
#include <set>
#include <string_view>
#include <vector>

namespace distnode::jit {

using llvm::cast;
using llvm::dyn_cast;
using llvm::dyn_cast_or_null;
using llvm::isa;

namespace {

bool hasPointerArgument(const llvm::Function &f) {
  return llvm::any_of(f.args(), [](const llvm::Argument &a) { return a.getType()->isPointerTy(); });
}

// External functions that read as many bytes as a length argument says, whatever the bytes
// are: for a pointer argument's position, the position of its length (fwrite: two, size and
// count). The strn* family stops at a NUL too: not here.
std::vector<unsigned> lengthsOf(llvm::StringRef name, unsigned pointer) {
  struct Lengths {
    int pointer;
    std::vector<unsigned> lengths;
  };
  static const llvm::StringMap<std::vector<Lengths>> kLengths = {
      {"memcpy", {{0, {2}}, {1, {2}}}}, {"memmove", {{0, {2}}, {1, {2}}}},
      {"memcmp", {{0, {2}}, {1, {2}}}}, {"bcmp", {{0, {2}}, {1, {2}}}},
      {"memchr", {{0, {2}}}},           {"memrchr", {{0, {2}}}},
      {"memmem", {{0, {1}}, {2, {3}}}}, {"write", {{1, {2}}}},
      {"pwrite", {{1, {2}}}},           {"send", {{1, {2}}}},
      {"sendto", {{1, {2}}}},           {"fwrite", {{0, {1, 2}}}},
      {"bsearch", {{1, {2, 3}}}},       {"qsort", {{0, {1, 2}}}}};
  auto it = kLengths.find(name);
  if (it != kLengths.end())
    for (const Lengths &l : it->second)
      if (l.pointer == static_cast<int>(pointer))
        return l.lengths;
  return {};
}

// A call's integer arguments as the runs with values take them, each from `valueOf` (none:
// unknown); one wider than 64 bits is unknown, and so is one negative in fewer bits unless
// `negative_too` (a count compared as unsigned would read it as huge).
using Integers = std::vector<std::optional<std::uint64_t>>;
Integers integerArgs(const llvm::CallBase &call,
                     llvm::function_ref<std::optional<llvm::APInt>(const llvm::Value *)> valueOf,
                     bool negative_too) {
  Integers args;
  for (const llvm::Use &a : call.args()) {
    auto x = a->getType()->isIntegerTy() ? valueOf(a.get()) : std::nullopt;
    const bool known =
        x && x->getBitWidth() <= 64 && (negative_too || x->getBitWidth() == 64 || !x->isNegative());
    args.push_back(known ? std::optional(x->getZExtValue()) : std::nullopt);
  }
  return args;
}

bool anyKnown(const Integers &args) {
  return llvm::any_of(args, [](const auto &x) { return x.has_value(); });
}

// Where a call is reached with the string empty (FunctionReads::emptyRun).
struct EmptyReach {
  std::int64_t offset = 0; // the pointer's offset into the string there
  Integers args;           // the call's integer arguments there (integerArgs)
  bool operator==(const EmptyReach &) const = default;
};
constexpr std::size_t kReachesKept = 4; // per call: a loop's first rounds

// What a caller's call hands a program function along with the pointer, judged where the call
// is: for each of the callee's arguments, whether it is a count, the caller's parameter it
// comes from (for the message), and whether reading the string at that argument as an offset,
// there, would read it by a count.
struct PassedOn {
  const llvm::Function *caller;
  unsigned arg; // the caller's pointer parameter
  const llvm::Function *callee;
  unsigned callee_arg;
  std::vector<bool> counts; // a count: from a parameter, memory or a length in the bytes
  std::vector<int> from_param;
  std::vector<CountedRead> read_at; // per callee argument: the caller's reading at that offset
  CountedRead read_here;            // the caller's, if the callee reads where it points
  std::string at;
  // Where the call is reached with the string empty, at a known offset: the first few ways.
  std::vector<EmptyReach> reaches;
};

// Per pointer parameter, across calls: whether the function reads through it at all, the
// parameters that offset its reads (a position: `s[i]`), and whether it reads by a count.
struct Summary {
  bool reads = false;
  std::set<unsigned> offsets;
  CountedRead counted;
  CountedRead past_empty; // a read past the NUL when the string is empty (emptyRun)
};

class FunctionReads;

// What the runs with values (FunctionReads::pastEmptyWith) share: every function's reads by
// its copy, a budget of blocks for all the runs together, and the helpers found reading past
// their NUL with the values a call hands them, with that call (`f` (x.c:9)).
struct WithValues {
  static constexpr long kBudget = 300000;
  std::map<const llvm::Function *, FunctionReads *> by_copy;
  long budget = kBudget;
  std::map<std::pair<const llvm::Function *, unsigned>, std::string> found;
};

// The reads of one function's pointer parameters, on its copy with registers for locals.
class FunctionReads {
public:
  FunctionReads(llvm::Function &copy, const llvm::Function &original,
                const llvm::TargetLibraryInfoImpl &tlii,
                const std::map<const llvm::Function *, const llvm::Function *> &original_of)
      : copy_(copy), original_(original), original_of_(original_of), dt_(copy), ac_(copy) {
    std::vector<llvm::AllocaInst *> locals;
    for (llvm::Instruction &i : copy.getEntryBlock())
      if (auto *a = dyn_cast<llvm::AllocaInst>(&i); a && llvm::isAllocaPromotable(a))
        locals.push_back(a);
    if (!locals.empty())
      llvm::PromoteMemToReg(locals, dt_, &ac_);
    dt_.recalculate(copy);
    li_ = std::make_unique<llvm::LoopInfo>(dt_);
    tli_ = std::make_unique<llvm::TargetLibraryInfo>(tlii, &copy);
    se_ = std::make_unique<llvm::ScalarEvolution>(copy, *tli_, ac_, dt_, *li_);
  }

  // Argument `arg`'s own reads; calls to program functions that are handed it go to `passed`.
  Summary run(unsigned arg, std::vector<PassedOn> &passed) {
    const std::vector<const llvm::Value *> order = derive(arg);
    for (const llvm::Value *v : order)
      for (const llvm::Use &use : v->uses()) {
        auto *user = dyn_cast<llvm::Instruction>(use.getUser());
        if (auto *ld = dyn_cast_or_null<llvm::LoadInst>(user)) {
          readAt(*ld, se_->getSCEV(const_cast<llvm::LoadInst *>(ld)->getPointerOperand()));
        } else if (auto *st = dyn_cast_or_null<llvm::StoreInst>(user);
                   st && st->getPointerOperand() == v) {
          readAt(*st, se_->getSCEV(const_cast<llvm::Value *>(v)));
        } else if (auto *call = dyn_cast_or_null<llvm::CallBase>(user);
                   call && call->isArgOperand(&use)) {
          visitCall(*call, call->getArgOperandNo(&use), v, passed);
        }
      }
    if (result_.reads || !passed_at_.empty())
      emptyRun(&passed, {}, 0);
    return result_;
  }

  // Whether the function, handed an empty string with integer arguments `args` (those known),
  // reads past its byte 0: the empty run with those values, looking into the program functions
  // it calls through `with_` (`depth` calls deep at most). Bytes are counted from where the
  // pointer it is handed points, as a string handed on past its start is (handOn). Used after
  // every run(): it takes this object's state for the parameter anew.
  bool pastEmptyWith(unsigned arg, const Integers &args, int depth) {
    if (arg >= copy_.arg_size() || !copy_.getArg(arg)->getType()->isPointerTy() || !with_ ||
        with_->budget <= 0)
      return false;
    // A recursion (`sum_from(s, i + 1, n)`) runs inside this object's own run: that run's
    // state is kept aside meanwhile.
    struct State {
      unsigned arg;
      std::set<const llvm::Value *> derived;
      std::map<const llvm::Value *, Origin> origins;
      std::map<const llvm::AllocaInst *, Origin> locals;
      Summary result;
      bool empty;
    };
    std::optional<State> outer;
    if (busy_)
      outer = State{
          arg_,  std::move(derived_), std::move(origins_), std::move(locals_), std::move(result_),
          empty_};
    busy_ = true;
    derive(arg);
    Env env;
    for (unsigned j = 0; j < args.size() && j < copy_.arg_size(); ++j)
      if (args[j] && copy_.getArg(j)->getType()->isIntegerTy())
        env[copy_.getArg(j)] =
            llvm::APInt(copy_.getArg(j)->getType()->getIntegerBitWidth(), *args[j]);
    emptyRun(nullptr, std::move(env), depth);
    const bool past = result_.past_empty.counted();
    busy_ = outer.has_value();
    if (outer) {
      arg_ = outer->arg;
      derived_ = std::move(outer->derived);
      origins_ = std::move(outer->origins);
      locals_ = std::move(outer->locals);
      result_ = std::move(outer->result);
      empty_ = outer->empty;
    }
    return past;
  }

  // What pastEmptyWith shares with the others, to look into calls; what only run() needs goes
  // (pastEmptyWith needs no loops nor scalar evolution).
  void keepForCalls(WithValues *with) {
    with_ = with;
    se_.reset();
    li_.reset();
    ends_.clear();
    origins_.clear();
    locals_.clear();
    derived_.clear();
  }

private:
  static constexpr int kCallDepth = 6; // calls looked into by pastEmptyWith

  // Starts the look at argument `arg`: every pointer derived from it, in the order found (the
  // evidence reported is the first, the same on every node).
  std::vector<const llvm::Value *> derive(unsigned arg) {
    arg_ = arg;
    derived_.clear();
    passed_at_.clear();
    origins_.clear();
    locals_.clear();
    ends_.clear();
    result_ = {};
    llvm::Argument *a = copy_.getArg(arg);
    derived_.insert(a);
    std::vector<const llvm::Value *> order{a};
    for (std::size_t next = 0; next < order.size(); ++next)
      for (const llvm::User *u : order[next]->users())
        if ((isa<llvm::GetElementPtrInst>(u) &&
             cast<llvm::GetElementPtrInst>(u)->getPointerOperand() == order[next]) ||
            isa<llvm::PHINode>(u) || isa<llvm::SelectInst>(u) || isa<llvm::BitCastInst>(u) ||
            isa<llvm::AddrSpaceCastInst>(u))
          if (derived_.insert(u).second)
            order.push_back(u);
    return order;
  }

  // Where a value comes from, through the values it is made of: an integer parameter of the
  // function, memory other than the string (a struct field, a global), the string's bytes (a
  // load through it, or a table looked up by one), or a function of the whole string (a call
  // handed it: `strlen(s)`).
  struct Origin {
    bool memory = false, bytes = false, whole = false;
    bool other = false; // bytes of another string the function is handed
    int param = -1;     // the first integer parameter met
    void add(const Origin &o) {
      memory |= o.memory;
      bytes |= o.bytes;
      whole |= o.whole;
      other |= o.other;
      if (param < 0)
        param = o.param;
    }
    [[nodiscard]] bool fromString() const { return bytes || whole; }
  };

  // Pointers into the string are where it is, not what it holds: not followed.
  const Origin &originOf(const llvm::Value *v) {
    if (auto it = origins_.find(v); it != origins_.end())
      return it->second;
    origins_[v] = {}; // a cycle through phis adds nothing
    Origin o;
    if (auto *a = dyn_cast<llvm::Argument>(v)) {
      if (a->getType()->isIntegerTy())
        o.param = static_cast<int>(a->getArgNo());
    } else if (auto *ld = dyn_cast<llvm::LoadInst>(v)) {
      o = loaded(*ld);
    } else if (auto *call = dyn_cast<llvm::CallBase>(v)) {
      if (llvm::any_of(call->args(), [&](const llvm::Use &u) { return derived_.count(u.get()); }))
        o.whole = true;
      for (const llvm::Use &u : call->args())
        if (!derived_.count(u.get()))
          o.add(originOf(u.get()));
    } else if (auto *i = dyn_cast<llvm::Instruction>(v)) {
      for (const llvm::Value *op : i->operands())
        if (!derived_.count(op))
          o.add(originOf(op));
    }
    return origins_[v] = o;
  }

  Origin loaded(const llvm::LoadInst &ld) {
    Origin o;
    const llvm::Value *address = ld.getPointerOperand();
    if (derived_.count(address)) {
      o.bytes = true;
      return o;
    }
    // A byte of another string the function is handed (`a[i] == b[i]`): neither a count nor
    // this string's end.
    if (otherStringByte(ld)) {
      o.other = true;
      return o;
    }
    const llvm::Value *object = llvm::getUnderlyingObject(address);
    if (auto *gv = dyn_cast<llvm::GlobalVariable>(object); gv && gv->isConstant()) {
      // A constant table's entry: no count of the caller's, whatever picks it (`kLen[k]`),
      // unless a byte does.
      const Origin &at = originOf(address);
      o.bytes = at.bytes;
      o.whole = at.whole;
      o.other = at.other;
      return o;
    }
    if (auto *local = dyn_cast<llvm::AllocaInst>(object)) {
      // A local variable that mem2reg left in memory (a struct, say): what is stored there;
      // filled by a call that is also handed the string, from its bytes. Once per variable.
      if (auto it = locals_.find(local); it != locals_.end())
        return it->second;
      locals_[local] = {}; // a value stored there that was loaded from it adds nothing
      std::vector<const llvm::Value *> stored;
      bool filled = false;
      storedInto(local, local, stored, filled);
      o.bytes = filled;
      for (const llvm::Value *x : stored)
        o.add(originOf(x));
      return locals_[local] = o;
    }
    // `table[c]` (ctype's): a byte picks the entry, which is no count.
    const Origin &at = originOf(address);
    o.bytes = at.bytes;
    o.whole = at.whole;
    o.other = at.other;
    o.memory = !at.fromString() && !at.other;
    o.param = at.param;
    return o;
  }

  // Whether `ld` reads a byte through the function's other pointer parameters.
  static bool otherStringByte(const llvm::LoadInst &ld) {
    if (!ld.getType()->isIntegerTy(8))
      return false;
    llvm::SmallVector<const llvm::Value *, 4> objects;
    llvm::getUnderlyingObjects(ld.getPointerOperand(), objects);
    return !objects.empty() &&
           llvm::all_of(objects, [](const llvm::Value *x) { return isa<llvm::Argument>(x); });
  }

  // The values stored into local variable `local` through `u` (a use of it, or of a field's
  // address), onto `stored`; `filled` if a call that is also handed the string gets it.
  void storedInto(const llvm::Value *u, const llvm::AllocaInst *local,
                  std::vector<const llvm::Value *> &stored, bool &filled) const {
    for (const llvm::User *user : u->users()) {
      if (auto *st = dyn_cast<llvm::StoreInst>(user)) {
        if (st->getPointerOperand() == u)
          stored.push_back(st->getValueOperand());
      } else if (isa<llvm::GetElementPtrInst>(user) || isa<llvm::BitCastInst>(user)) {
        storedInto(user, local, stored, filled);
      } else if (auto *call = dyn_cast<llvm::CallBase>(user)) {
        filled |=
            llvm::any_of(call->args(), [&](const llvm::Use &a) { return derived_.count(a.get()); });
      }
    }
  }

  // How a loop ends: a bound that a count gives (a parameter, memory, a length read from the
  // string's bytes before the loop), or the string's end (a length of the whole string, or an
  // iteration that leaves the loop whenever the byte it reads is the NUL).
  struct LoopEnd {
    bool counted = false, stops_at_nul = false;
    int param = -1;
    void bound(const Origin &o) {
      counted = true;
      if (param < 0)
        param = o.param;
    }
  };

  // A value that is not a byte: the string's length ends the loop at its NUL; a parameter or
  // memory bounds it by a count.
  static void boundBy(const Origin &o, LoopEnd &end) {
    if (o.whole)
      end.stops_at_nul = true;
    else if (!o.fromString() && !o.other && (o.param >= 0 || o.memory))
      end.bound(o);
  }

  // A value the loop carries from one iteration to the next (`i`, `i + 2`, `n - k`): its
  // header's phi, plus or minus something.
  static bool carried(const llvm::Value *v, const llvm::Loop *loop) {
    for (int depth = 0; depth < 8; ++depth) {
      if (auto *phi = dyn_cast<llvm::PHINode>(v))
        return phi->getParent() == loop->getHeader();
      if (auto *cast = dyn_cast<llvm::CastInst>(v)) {
        v = cast->getOperand(0);
        continue;
      }
      auto *bin = dyn_cast<llvm::BinaryOperator>(v);
      if (!bin || (bin->getOpcode() != llvm::Instruction::Add &&
                   bin->getOpcode() != llvm::Instruction::Sub))
        return false;
      if (carried(bin->getOperand(1), loop))
        return true;
      v = bin->getOperand(0);
    }
    return false;
  }

  // Whether condition `c`, which may end `loop`, bounds it by a count: a counter compared with
  // a parameter, memory, or a length read from the string's first bytes (`i < n`, `n > 0` for
  // an `n` handed in, `i < h->len`); or, through `strlen(s)`, by the string's end. A byte
  // compared with anything is a test of the bytes, neither. Each term of `&&` and `||`.
  void classify(const llvm::Value *c, const llvm::Loop *loop, LoopEnd &end, int depth = 0) {
    auto *i = dyn_cast<llvm::Instruction>(c);
    if (!i || depth > 16)
      return;
    if (auto *cmp = dyn_cast<llvm::ICmpInst>(i)) {
      const llvm::Value *a = cmp->getOperand(0), *b = cmp->getOperand(1);
      if (carried(b, loop) && !carried(a, loop))
        std::swap(a, b);
      Origin o = originOf(a);
      o.add(originOf(b));
      if (!o.whole && carried(a, loop) && !carried(b, loop)) {
        auto *def = dyn_cast<llvm::Instruction>(b);
        const bool before_loop = !def || !loop->contains(def);
        if (o.param >= 0 || o.memory || (before_loop && originOf(b).bytes))
          end.bound(o);
      } else {
        boundBy(o, end);
      }
      return;
    }
    if (isa<llvm::BinaryOperator>(i) || isa<llvm::SelectInst>(i) || isa<llvm::PHINode>(i) ||
        isa<llvm::CastInst>(i)) {
      for (const llvm::Value *op : i->operands())
        if (op->getType()->isIntegerTy(1) && !derived_.count(op))
          classify(op, loop, end, depth + 1);
      return;
    }
    boundBy(originOf(c), end); // a call's answer (`more(i)`)
  }

  // Blocks of `loop` from which it can be left without passing its header again.
  bool canLeave(const llvm::Loop *loop, const llvm::BasicBlock *b,
                std::map<const llvm::BasicBlock *, int> &memo) const {
    auto [it, fresh] = memo.emplace(b, 0); // 0: being looked at (a cycle leaves no way out)
    if (!fresh)
      return it->second == 1;
    bool leaves = false;
    for (const llvm::BasicBlock *next : llvm::successors(b))
      leaves = leaves || !loop->contains(next) ||
               (next != loop->getHeader() && canLeave(loop, next, memo));
    memo[b] = leaves ? 1 : 2;
    return leaves;
  }

  // The value of `v` in one iteration along a path (`env`: the phis met on it), with every
  // byte read from this string, or from another the function is handed, zero; none if unknown.
  using Env = std::map<const llvm::Value *, std::optional<llvm::APInt>>;
  std::optional<llvm::APInt> valueAtNul(const llvm::Value *v, const Env &env, int depth = 0) {
    if (auto *k = dyn_cast<llvm::ConstantInt>(v))
      return k->getValue();
    if (auto it = env.find(v); it != env.end())
      return it->second;
    auto *i = dyn_cast<llvm::Instruction>(v);
    if (!i || depth > 32 || !i->getType()->isIntegerTy())
      return std::nullopt;
    auto at = [&](unsigned k) { return valueAtNul(i->getOperand(k), env, depth + 1); };
    const unsigned bits = i->getType()->getIntegerBitWidth();
    if (auto *ld = dyn_cast<llvm::LoadInst>(i)) {
      // Another string's byte is zero too: it ends as well, as far as this goes.
      if (derived_.count(ld->getPointerOperand()) || otherStringByte(*ld))
        return llvm::APInt(bits, 0);
      return ctypeAtNul(*ld, env, depth);
    }
    if (auto *call = dyn_cast<llvm::CallBase>(i)) {
      // The length of the empty string.
      const llvm::Function *f = call->getCalledFunction();
      const bool length =
          f && f->isDeclaration() && (f->getName() == "strlen" || f->getName() == "strnlen");
      auto at_start = length ? offsetAtNul(call->getArgOperand(0), env) : std::nullopt;
      if (empty_ && at_start && at_start->isZero())
        return llvm::APInt(bits, 0);
      return std::nullopt;
    }
    if (auto *cast = dyn_cast<llvm::CastInst>(i)) {
      auto x = at(0);
      if (!x)
        return std::nullopt;
      switch (cast->getOpcode()) {
      case llvm::Instruction::ZExt:
        return x->zext(bits);
      case llvm::Instruction::SExt:
        return x->sext(bits);
      case llvm::Instruction::Trunc:
        return x->trunc(bits);
      default:
        return std::nullopt;
      }
    }
    if (auto *cmp = dyn_cast<llvm::ICmpInst>(i)) {
      if (empty_ && cmp->getOperand(0)->getType()->isPointerTy())
        return pointersAtNul(*cmp, env, depth);
      auto a = at(0), b = at(1);
      if (!a || !b)
        return std::nullopt;
      return llvm::APInt(1, llvm::ICmpInst::compare(*a, *b, cmp->getPredicate()));
    }
    if (isa<llvm::SelectInst>(i)) {
      auto c = at(0);
      if (c)
        return at(c->isOne() ? 1 : 2);
      auto a = at(1), b = at(2);
      return a && b && *a == *b ? a : std::nullopt;
    }
    if (auto *bin = dyn_cast<llvm::BinaryOperator>(i)) {
      auto a = at(0), b = at(1);
      const auto op = bin->getOpcode();
      if (op == llvm::Instruction::And && ((a && a->isZero()) || (b && b->isZero())))
        return llvm::APInt(bits, 0);
      if (op == llvm::Instruction::Or && ((a && a->isAllOnes()) || (b && b->isAllOnes())))
        return llvm::APInt::getAllOnes(bits);
      if (!a || !b)
        return std::nullopt;
      switch (op) {
      case llvm::Instruction::And:
        return *a & *b;
      case llvm::Instruction::Or:
        return *a | *b;
      case llvm::Instruction::Xor:
        return *a ^ *b;
      case llvm::Instruction::Add:
        return *a + *b;
      case llvm::Instruction::Sub:
        return *a - *b;
      case llvm::Instruction::Mul:
        return *a * *b;
      case llvm::Instruction::Shl:
        return b->uge(bits) ? std::nullopt : std::optional(a->shl(*b));
      case llvm::Instruction::LShr:
        return b->uge(bits) ? std::nullopt : std::optional(a->lshr(*b));
      case llvm::Instruction::AShr:
        return b->uge(bits) ? std::nullopt : std::optional(a->ashr(*b));
      case llvm::Instruction::UDiv:
        return b->isZero() ? std::nullopt : std::optional(a->udiv(*b));
      case llvm::Instruction::URem:
        return b->isZero() ? std::nullopt : std::optional(a->urem(*b));
      case llvm::Instruction::SDiv:
        return b->isZero() || (a->isMinSignedValue() && b->isAllOnes())
                   ? std::nullopt
                   : std::optional(a->sdiv(*b));
      case llvm::Instruction::SRem:
        return b->isZero() || (a->isMinSignedValue() && b->isAllOnes())
                   ? std::nullopt
                   : std::optional(a->srem(*b));
      default:
        return std::nullopt;
      }
    }
    return std::nullopt;
  }

  // Two pointers compared in the empty run: places in the string by their offsets; the string
  // against NULL (`if (!p)`, `assert(p)`): it is not NULL.
  std::optional<llvm::APInt> pointersAtNul(const llvm::ICmpInst &cmp, const Env &env, int depth) {
    const llvm::Value *x = cmp.getOperand(0), *y = cmp.getOperand(1);
    auto a = offsetAtNul(x, env, depth + 1), b = offsetAtNul(y, env, depth + 1);
    if (a && b)
      return llvm::APInt(1, llvm::ICmpInst::compare(*a, *b, cmp.getPredicate()));
    const bool null =
        (a && isa<llvm::ConstantPointerNull>(y)) || (b && isa<llvm::ConstantPointerNull>(x));
    if (null && cmp.isEquality())
      return llvm::APInt(1, cmp.getPredicate() == llvm::CmpInst::ICMP_NE);
    return std::nullopt;
  }

  // glibc's ctype tables (`isdigit(c)`, `tolower(c)` read `(*__ctype_b_loc())[c]`...) at the
  // NUL: this process's own entries, the same in every locale for the NUL.
  std::optional<llvm::APInt> ctypeAtNul(const llvm::LoadInst &ld, const Env &env, int depth) {
    auto *gep = dyn_cast<llvm::GetElementPtrInst>(ld.getPointerOperand());
    auto *table = gep && gep->getNumIndices() == 1
                      ? dyn_cast<llvm::LoadInst>(gep->getPointerOperand())
                      : nullptr;
    auto *call = table ? dyn_cast<llvm::CallBase>(table->getPointerOperand()) : nullptr;
    const llvm::Function *f = call ? call->getCalledFunction() : nullptr;
    if (!f || !ld.getType()->isIntegerTy())
      return std::nullopt;
    auto index = valueAtNul(gep->getOperand(1), env, depth + 1);
    if (!index || !index->isZero())
      return std::nullopt;
    const unsigned bits = ld.getType()->getIntegerBitWidth();
    const llvm::StringRef name = f->getName();
    if (name == "__ctype_b_loc" && bits == 16)
      return llvm::APInt(bits, static_cast<std::uint16_t>((*__ctype_b_loc())[0]));
    if (name == "__ctype_tolower_loc" && bits == 32)
      return llvm::APInt(bits, static_cast<std::uint32_t>((*__ctype_tolower_loc())[0]));
    if (name == "__ctype_toupper_loc" && bits == 32)
      return llvm::APInt(bits, static_cast<std::uint32_t>((*__ctype_toupper_loc())[0]));
    return std::nullopt;
  }

  // Entering `block` from `from` on a way: its phis take their values from `from`, all at once
  // (an integer's value, or a pointer's offset into the string; unknown otherwise).
  void enter(const llvm::BasicBlock *block, const llvm::BasicBlock *from, Env &env) {
    Env phis;
    for (const llvm::PHINode &phi : block->phis()) {
      const llvm::Value *in = from ? phi.getIncomingValueForBlock(from) : nullptr;
      if (!in)
        phis[&phi] = std::nullopt;
      else if (phi.getType()->isIntegerTy())
        phis[&phi] = valueAtNul(in, env);
      else if (derived_.count(&phi))
        phis[&phi] = offsetAtNul(in, env);
      else
        phis[&phi] = std::nullopt;
    }
    for (auto &[phi, value] : phis)
      env[phi] = value;
  }

  // Where a way goes from `block`: the successor its condition picks, or every successor if the
  // condition is unknown there.
  std::vector<const llvm::BasicBlock *> next(const llvm::BasicBlock *block, const Env &env) {
    const llvm::Instruction *t = block->getTerminator();
    if (auto *br = dyn_cast<llvm::BranchInst>(t); br && br->isConditional()) {
      if (auto c = valueAtNul(br->getCondition(), env))
        return {br->getSuccessor(c->isOne() ? 0 : 1)};
    } else if (auto *sw = dyn_cast<llvm::SwitchInst>(t)) {
      if (auto c = valueAtNul(sw->getCondition(), env)) {
        const llvm::BasicBlock *to = sw->getDefaultDest();
        for (const auto &k : sw->cases())
          if (k.getCaseValue()->getValue() == *c)
            to = k.getCaseSuccessor();
        return {to};
      }
    }
    return {llvm::succ_begin(block), llvm::succ_end(block)};
  }

  // The offset in bytes from the string's start of `p`, a pointer derived from it, along a way
  // (`env`); none if unknown.
  std::optional<llvm::APInt> offsetAtNul(const llvm::Value *p, const Env &env, int depth = 0) {
    if (!derived_.count(p) || depth > 32)
      return std::nullopt;
    if (isa<llvm::Argument>(p))
      return llvm::APInt(64, 0);
    if (auto it = env.find(p); it != env.end())
      return it->second;
    if (auto *gep = dyn_cast<llvm::GetElementPtrInst>(p)) {
      auto base = offsetAtNul(gep->getPointerOperand(), env, depth + 1);
      llvm::MapVector<llvm::Value *, llvm::APInt> terms;
      llvm::APInt constant(64, 0);
      if (!base || !gep->collectOffset(copy_.getParent()->getDataLayout(), 64, terms, constant))
        return std::nullopt;
      llvm::APInt offset = *base + constant;
      for (const auto &[index, scale] : terms) {
        auto x = valueAtNul(index, env, depth + 1);
        if (!x)
          return std::nullopt;
        offset += x->sextOrTrunc(64) * scale;
      }
      return offset;
    }
    if (auto *sel = dyn_cast<llvm::SelectInst>(p)) {
      if (auto c = valueAtNul(sel->getCondition(), env, depth + 1))
        return offsetAtNul(sel->getOperand(c->isOne() ? 1 : 2), env, depth + 1);
      auto a = offsetAtNul(sel->getTrueValue(), env, depth + 1);
      auto b = offsetAtNul(sel->getFalseValue(), env, depth + 1);
      return a && b && *a == *b ? a : std::nullopt;
    }
    if (auto *cast = dyn_cast<llvm::CastInst>(p))
      return offsetAtNul(cast->getOperand(0), env, depth + 1);
    return std::nullopt;
  }

  // The function run with the string empty: every byte read from it, or from another string
  // it is handed, is the NUL, `strlen(s)` is 0 and the string is not NULL. The run follows the
  // one way that this decides, for at most kEmptySteps blocks. At a branch it does not decide
  // (a parameter, memory or a callee's answer picks it) it goes on where the ways meet again
  // (the branch's immediate post-dominator), whatever was computed in between unknown: the
  // reads in between are not looked at (either way may be one no call takes: `m = strlen(s);
  // if (m > width) m = width;` then `s[i]` for `i < m`). A read that reaches past byte 0 on
  // the way (`p[0] | p[1] << 8`, a loop of 4 rounds, a `memcpy` or `memcmp` of 4 bytes) reads
  // past the NUL whatever the caller hands in: the pointer holds bytes. Calls of program
  // functions on the way are noted (EmptyReach) for handOn.
  static constexpr int kEmptySteps = 4096;
  // `passed`: the calls to note (run()); none: calls looked into (pastEmptyWith), `depth` deep
  // so far. `env`: the integer arguments known.
  void emptyRun(std::vector<PassedOn> *passed, Env env, int depth) {
    const llvm::DataLayout &layout = copy_.getParent()->getDataLayout();
    empty_ = true;
    const llvm::BasicBlock *block = &copy_.getEntryBlock(), *from = nullptr;
    for (int steps = 0; block && steps < kEmptySteps && !result_.past_empty.counted() &&
                        (passed || --with_->budget > 0);
         ++steps) {
      enter(block, from, env);
      for (const llvm::Instruction &i : *block) {
        if (auto *ld = dyn_cast<llvm::LoadInst>(&i)) {
          pastEmpty(i, ld->getPointerOperand(), layout.getTypeStoreSize(ld->getType()), env,
                    "is read");
        } else if (auto *st = dyn_cast<llvm::StoreInst>(&i)) {
          pastEmpty(i, st->getPointerOperand(),
                    layout.getTypeStoreSize(st->getValueOperand()->getType()), env, "is written");
        } else if (auto *mem = dyn_cast<llvm::MemTransferInst>(&i)) {
          if (auto n = valueAtNul(mem->getLength(), env))
            pastEmpty(i, mem->getRawSource(), n->getLimitedValue(), env, "is copied by `memcpy`");
        } else if (auto *call = dyn_cast<llvm::CallBase>(&i)) {
          comparedOrSearched(*call, env);
          if (passed)
            reached(*call, env, *passed);
          else
            lookInto(*call, env, depth);
        }
      }
      const std::vector<const llvm::BasicBlock *> to = next(block, env);
      from = block;
      if (to.size() == 1) {
        block = to.front();
        continue;
      }
      // Undecided: on where the ways meet, with every phi met on them unknown.
      if (!pdt_)
        pdt_ = std::make_unique<llvm::PostDominatorTree>(copy_);
      const llvm::DomTreeNode *node = pdt_->getNode(block);
      const llvm::DomTreeNode *meet = node ? node->getIDom() : nullptr;
      block = meet ? meet->getBlock() : nullptr; // none: the ways end apart (returns)
      from = nullptr;
      if (block)
        forgetBetween(to, block, env);
    }
    empty_ = false;
  }

  // What the blocks from `starts` up to `meet` computed becomes unknown: their phis.
  static void forgetBetween(const std::vector<const llvm::BasicBlock *> &starts,
                            const llvm::BasicBlock *meet, Env &env) {
    std::vector<const llvm::BasicBlock *> work(starts.begin(), starts.end());
    std::set<const llvm::BasicBlock *> seen;
    while (!work.empty()) {
      const llvm::BasicBlock *b = work.back();
      work.pop_back();
      if (b == meet || !seen.insert(b).second)
        continue;
      for (const llvm::PHINode &phi : b->phis())
        env[&phi] = std::nullopt;
      for (const llvm::BasicBlock *next : llvm::successors(b))
        work.push_back(next);
    }
  }

  // `memcmp`/`bcmp` and `memchr` with a count on the empty string: they read past byte 0 unless
  // the first byte decides (the other side's first byte is known and not the NUL; the byte
  // looked for is the NUL).
  void comparedOrSearched(const llvm::CallBase &call, const Env &env) {
    const llvm::Function *f = call.getCalledFunction();
    if (!f || !f->isDeclaration() || call.arg_size() != 3)
      return;
    const llvm::StringRef name = f->getName();
    auto n = valueAtNul(call.getArgOperand(2), env);
    if (!n || n->ult(2))
      return;
    if (name == "memcmp" || name == "bcmp") {
      for (unsigned k : {0u, 1u}) {
        // The copy's globals are declarations: the constant is the program's.
        auto *gv = dyn_cast<llvm::GlobalVariable>(call.getArgOperand(1 - k)->stripPointerCasts());
        const llvm::GlobalVariable *constant =
            gv && gv->hasName() ? original_.getParent()->getNamedGlobal(gv->getName()) : nullptr;
        llvm::StringRef other;
        if (constant && llvm::getConstantStringInfo(constant, other, false) && !other.empty() &&
            other[0] != 0)
          continue; // decided at byte 0
        pastEmpty(call, call.getArgOperand(k), n->getLimitedValue(), env,
                  "is compared by `" + name.str() + "`");
      }
    } else if (name == "memchr") {
      auto c = valueAtNul(call.getArgOperand(1), env);
      if (!c || !c->trunc(8).isZero())
        pastEmpty(call, call.getArgOperand(0), n->getLimitedValue(), env,
                  "is searched by `memchr`");
    }
  }

  // `i` reaches `size` bytes at `p` with the string empty: past its NUL unless only byte 0.
  void pastEmpty(const llvm::Instruction &i, const llvm::Value *p, std::uint64_t size,
                 const Env &env, const std::string &how) {
    auto offset = derived_.count(p) ? offsetAtNul(p, env) : std::nullopt;
    if (result_.past_empty.counted() || !offset || size == 0 || (offset->isZero() && size == 1))
      return;
    const std::int64_t first = offset->getSExtValue();
    const std::uint64_t last = static_cast<std::uint64_t>(first) + (size - 1);
    const std::string bytes = size == 1 ? " at byte " + std::to_string(first)
                                        : " at bytes " + std::to_string(first) + "-" +
                                              std::to_string(static_cast<std::int64_t>(last));
    result_.past_empty = {
        -1, how + bytes + (first < 0 ? ", before its start" : " even when it is empty"), "",
        sourceLocation(i)};
  }

  // A call met by pastEmptyWith's run: the callee run with the arguments known here, if it is
  // handed the string.
  void lookInto(const llvm::CallBase &call, const Env &env, int depth) {
    const llvm::Function *callee = call.getCalledFunction();
    auto other = callee ? with_->by_copy.find(callee) : with_->by_copy.end();
    if (depth >= kCallDepth || other == with_->by_copy.end())
      return;
    for (unsigned k = 0; k < call.arg_size() && !result_.past_empty.counted(); ++k) {
      auto offset = offsetAtNul(call.getArgOperand(k), env);
      if (!offset)
        continue;
      const Integers args = integerArgs(
          call, [&](const llvm::Value *v) { return valueAtNul(v, env); }, true);
      if (other->second->pastEmptyWith(k, args, depth + 1)) {
        result_.past_empty = {-1, "is read past its NUL by `" + callee->getName().str() + "`",
                              " even when it is empty", sourceLocation(call)};
        with_->found.try_emplace({callee, k},
                                 "`" + original_.getName().str() + "`" + sourceLocation(call));
      }
    }
  }

  // A call reached with the string empty: where it hands the pointer on, and its integer
  // arguments there (the first kReachesKept different ones).
  void reached(const llvm::CallBase &call, const Env &env, std::vector<PassedOn> &passed) {
    for (unsigned k = 0; k < call.arg_size(); ++k) {
      auto it = passed_at_.find({&call, k});
      if (it == passed_at_.end())
        continue;
      auto offset = offsetAtNul(call.getArgOperand(k), env);
      std::vector<EmptyReach> &kept = passed[it->second].reaches;
      if (!offset || kept.size() >= kReachesKept)
        continue;
      EmptyReach here{offset->getSExtValue(),
                      integerArgs(
                          call, [&](const llvm::Value *v) { return valueAtNul(v, env); }, false)};
      if (!llvm::is_contained(kept, here))
        kept.push_back(std::move(here));
    }
  }

  // Whether one iteration of `loop`, its bytes at the string's end, leaves it on every way
  // through (a branch whose condition is unknown there goes both ways): the loop stops at the
  // NUL. Ways that come back to the header, or go round an inner loop, do not stop.
  bool stopsAtNul(const llvm::Loop *loop) {
    struct Way {
      const llvm::BasicBlock *block, *from;
      Env env;
      std::vector<const llvm::BasicBlock *> seen;
      int rounds = 0;    // times round the loop so far (a flag set at the NUL ends the next)
      bool read = false; // it read a byte of the string
    };
    std::vector<Way> ways{{loop->getHeader(), nullptr, {}, {}}};
    for (int budget = 512; !ways.empty(); --budget) {
      if (budget == 0)
        return false; // too many ways to follow: not known to stop
      Way w = std::move(ways.back());
      ways.pop_back();
      if (llvm::is_contained(w.seen, w.block))
        return false; // round an inner loop
      w.seen.push_back(w.block);
      enter(w.block, w.from, w.env);
      w.read = w.read || readsString(w.block);
      for (const llvm::BasicBlock *b : next(w.block, w.env)) {
        if (!loop->contains(b))
          continue; // this way leaves
        if (b == loop->getHeader()) {
          if (!w.read)
            continue; // round without reading the string (an inner loop that did not run)
          if (w.rounds >= 1)
            return false; // round twice at the NUL: it does not stop there
          ways.push_back({b, w.block, w.env, {}, w.rounds + 1, false});
          continue;
        }
        ways.push_back({b, w.block, w.env, w.seen, w.rounds, w.read});
      }
    }
    return true;
  }

  // Whether block `b` reads the string: a load through it, or a call handed it.
  bool readsString(const llvm::BasicBlock *b) const {
    return llvm::any_of(*b, [&](const llvm::Instruction &i) {
      if (auto *ld = dyn_cast<llvm::LoadInst>(&i))
        return derived_.count(ld->getPointerOperand()) != 0;
      if (auto *call = dyn_cast<llvm::CallBase>(&i))
        return llvm::any_of(call->args(),
                            [&](const llvm::Use &a) { return derived_.count(a.get()) != 0; });
      return false;
    });
  }

  const LoopEnd &endOf(const llvm::Loop *loop) {
    if (auto it = ends_.find(loop); it != ends_.end())
      return it->second;
    LoopEnd end;
    std::map<const llvm::BasicBlock *, int> memo;
    // Every branch inside the loop that may lead out of it may bound it: the terms of `&&`
    // are branches of their own, and a `return` from a block with locals leaves through a
    // cleanup first.
    for (const llvm::BasicBlock *b : loop->blocks()) {
      if (!canLeave(loop, b, memo))
        continue;
      const llvm::Instruction *t = b->getTerminator();
      if (auto *br = dyn_cast<llvm::BranchInst>(t); br && br->isConditional()) {
        classify(br->getCondition(), loop, end);
      } else if (auto *sw = dyn_cast<llvm::SwitchInst>(t)) {
        boundBy(originOf(sw->getCondition()), end);
      }
    }
    if (end.counted && !end.stops_at_nul)
      end.stops_at_nul = stopsAtNul(loop);
    return ends_[loop] = end;
  }

  // Whether `s` changes from one iteration of `loop` to the next: it steps with the loop, or
  // depends on a value computed inside it (`p[i ^ 1]`, `ring[wrap(k)]`, a pointer advanced by
  // varying amounts).
  static bool advancesIn(const llvm::SCEV *s, const llvm::Loop *loop) {
    return llvm::SCEVExprContains(s, [&](const llvm::SCEV *e) {
      if (auto *rec = dyn_cast<llvm::SCEVAddRecExpr>(e))
        return rec->getLoop() == loop;
      auto *u = dyn_cast<llvm::SCEVUnknown>(e);
      auto *i = u ? dyn_cast<llvm::Instruction>(u->getValue()) : nullptr;
      return i && loop->contains(i);
    });
  }

  // Whether the string, read at `address` by `i`, is read by a count: in a loop that moves the
  // address along it, bounded by a count and not stopping at the string's end. An address
  // computed from the string's bytes (`key[i % strlen(key)]`) stays inside it.
  CountedRead countedAt(const llvm::Instruction &i, const llvm::SCEV *address,
                        bool address_from_string) {
    if (address_from_string)
      return {};
    for (const llvm::Loop *loop = li_->getLoopFor(i.getParent()); loop;
         loop = loop->getParentLoop()) {
      if (!advancesIn(address, loop))
        continue;
      const LoopEnd &end = endOf(loop);
      if (!end.counted || end.stops_at_nul)
        continue; // an outer loop may still move past the string's end
      if (end.param >= 0)
        return {end.param, "is read in a loop bounded by", " that does not stop at its NUL",
                sourceLocation(i)};
      return {-1, "is read in a loop bounded by a count, not by its NUL", "", sourceLocation(i)};
    }
    return {};
  }

  void found(CountedRead read) {
    if (read.counted() && !result_.counted.counted())
      result_.counted = std::move(read);
  }

  // A read through the string at `address` by `i`.
  void readAt(const llvm::Instruction &i, const llvm::SCEV *address) {
    result_.reads = true;
    const llvm::Value *v = isa<llvm::LoadInst>(i) ? cast<llvm::LoadInst>(i).getPointerOperand()
                                                  : cast<llvm::StoreInst>(i).getPointerOperand();
    const Origin &o = originOf(v);
    if (o.param >= 0) // a position handed in
      result_.offsets.insert(static_cast<unsigned>(o.param));
    found(countedAt(i, address, o.whole));
  }

  // A length (of memcpy and its kin) that a count gives: a parameter or memory, not the
  // string's own (`strlen(s)`, a position found in it) nor a constant table's.
  CountedRead countedBy(const llvm::CallBase &call, const llvm::Value *length,
                        const std::string &name) {
    const Origin &o = originOf(length);
    if (o.fromString() || (o.param < 0 && !o.memory))
      return {};
    if (o.param >= 0)
      return {o.param, "is read by `" + name + "` for a length that comes from", "",
              sourceLocation(call)};
    return {-1, "is read by `" + name + "` for a length kept in memory", "", sourceLocation(call)};
  }

  void visitCall(const llvm::CallBase &call, unsigned k, const llvm::Value *v,
                 std::vector<PassedOn> &passed) {
    const llvm::SCEV *address = se_->getSCEV(const_cast<llvm::Value *>(v));
    const bool address_from_string = originOf(v).whole;
    if (auto *mem = dyn_cast<llvm::MemTransferInst>(&call)) {
      result_.reads = true;
      found(countedBy(call, mem->getLength(), "memcpy"));
      found(countedAt(call, address, address_from_string));
      return;
    }
    const llvm::Function *callee = call.getCalledFunction();
    if (!callee || callee->isIntrinsic())
      return;
    if (callee->isDeclaration() || callee->hasAvailableExternallyLinkage()) {
      const std::string name = callee->getName().str();
      result_.reads = true;
      // memchr(s, 0, max): a bounded strlen.
      auto *c = call.arg_size() > 1 ? dyn_cast<llvm::ConstantInt>(call.getArgOperand(1)) : nullptr;
      if ((name == "memchr" || name == "memrchr") && c && c->isZero())
        return;
      const std::vector<unsigned> lengths = lengthsOf(name, k);
      for (unsigned length : lengths)
        if (length < call.arg_size())
          found(countedBy(call, call.getArgOperand(length), name));
      if (!lengths.empty()) // it reads there whatever the bytes (a string function stops)
        found(countedAt(call, address, address_from_string));
      return;
    }
    auto original = original_of_.find(callee);
    if (original == original_of_.end() || k >= callee->arg_size())
      return;
    PassedOn on{&original_, arg_, original->second, k, {}, {}, {}, {}, sourceLocation(call), {}};
    on.read_here = countedAt(call, address, address_from_string);
    for (unsigned j = 0; j < call.arg_size() && j < callee->arg_size(); ++j) {
      const llvm::Value *actual = call.getArgOperand(j);
      const Origin &o = originOf(actual);
      on.counts.push_back(!o.whole && (o.param >= 0 || o.memory || o.bytes));
      on.from_param.push_back(o.param);
      CountedRead at_offset;
      if (se_->isSCEVable(actual->getType()) && actual->getType()->isIntegerTy()) {
        const llvm::SCEV *offset =
            se_->getTruncateOrSignExtend(se_->getSCEV(const_cast<llvm::Value *>(actual)),
                                         se_->getEffectiveSCEVType(address->getType()));
        at_offset =
            countedAt(call, se_->getAddExpr(address, offset), address_from_string || o.whole);
      }
      on.read_at.push_back(std::move(at_offset));
    }
    passed_at_[{&call, k}] = passed.size();
    passed.push_back(std::move(on));
  }

  llvm::Function &copy_;
  const llvm::Function &original_;
  const std::map<const llvm::Function *, const llvm::Function *> &original_of_;
  llvm::DominatorTree dt_;
  llvm::AssumptionCache ac_;
  std::unique_ptr<llvm::LoopInfo> li_;
  std::unique_ptr<llvm::TargetLibraryInfo> tli_;
  std::unique_ptr<llvm::ScalarEvolution> se_;
  std::unique_ptr<llvm::PostDominatorTree> pdt_; // made by the first empty run that needs it
  unsigned arg_ = 0;
  std::set<const llvm::Value *> derived_;
  std::map<const llvm::Value *, Origin> origins_;
  std::map<const llvm::AllocaInst *, Origin> locals_;
  std::map<const llvm::Loop *, LoopEnd> ends_;
  std::map<std::pair<const llvm::CallBase *, unsigned>, std::size_t> passed_at_; // into `passed`
  bool empty_ = false;         // valueAtNul within emptyRun: the whole string is empty
  bool busy_ = false;          // in pastEmptyWith
  WithValues *with_ = nullptr; // for pastEmptyWith
  Summary result_;
};

// What a call hands on makes the caller's reads: the callee's reads by a count whose count the
// caller does not take from the string; reads where the pointer points, or at an offset the
// caller hands in, that a loop of the caller's moves along the string. True if it changed.
bool handOn(const PassedOn &on, const Summary &callee, Summary &caller) {
  bool changed = false;
  if (callee.reads && !caller.reads)
    changed = caller.reads = true;
  for (unsigned j : callee.offsets)
    if (j < on.from_param.size() && on.from_param[j] >= 0)
      changed |= caller.offsets.insert(static_cast<unsigned>(on.from_param[j])).second;
  auto passed = [&] { return "is passed to `" + on.callee->getName().str() + "`" + on.at; };
  // Reached with the string empty, handed on to a function that reads past the NUL of an
  // empty string, or that reads by a count it is handed as 2 or more. (Handed on past its
  // start to a function that reads it as a string is not enough: `serve(line + 4)` may rely
  // on a prefix the caller's caller checked, which the copy holds.)
  for (const EmptyReach &e : on.reaches) {
    if (caller.past_empty.counted())
      break;
    const CountedRead &c = callee.counted;
    const std::string here = e.offset == 0 ? std::string() : " at byte " + std::to_string(e.offset);
    if (callee.past_empty.counted()) {
      caller.past_empty = callee.past_empty;
      caller.past_empty.how =
          passed() + here + " and " + callee.past_empty.how.substr(std::string_view("is ").size());
      caller.past_empty.at.clear();
    } else if (c.counted() && c.count_arg >= 0 &&
               static_cast<std::size_t>(c.count_arg) < e.args.size() && e.args[c.count_arg] &&
               *e.args[c.count_arg] != 0 && (e.offset != 0 || *e.args[c.count_arg] >= 2)) {
      caller.past_empty = {-1,
                           passed() + here + " with a count of " +
                               std::to_string(*e.args[c.count_arg]) + " even when it is empty",
                           "", ""};
    }
    changed |= caller.past_empty.counted();
  }
  if (caller.counted.counted())
    return changed;
  const CountedRead &c = callee.counted;
  if (c.counted() &&
      (c.count_arg < 0 ||
       (static_cast<std::size_t>(c.count_arg) < on.counts.size() && on.counts[c.count_arg]))) {
    const int from =
        c.count_arg >= 0 && static_cast<std::size_t>(c.count_arg) < on.from_param.size()
            ? on.from_param[c.count_arg]
            : -1;
    caller.counted = from >= 0
                         ? CountedRead{from, passed() + ", which reads it by a count, from", "", ""}
                         : CountedRead{-1, passed() + ", which reads it by a count", "", ""};
    return true;
  }
  // "is read in a loop..." becomes "is passed to `f` (x.c:9) and read in a loop...".
  auto through = [&](const CountedRead &read) {
    caller.counted = read;
    caller.counted.how = passed() + " and " + read.how.substr(std::string_view("is ").size());
    caller.counted.at.clear();
    return true;
  };
  if (callee.reads && on.read_here.counted())
    return through(on.read_here);
  for (unsigned j : callee.offsets)
    if (j < on.read_at.size() && on.read_at[j].counted())
      return through(on.read_at[j]);
  return changed;
}

} // namespace

CountedReads::CountedReads(const llvm::Module &module) {
  if (llvm::none_of(module, [](const llvm::Function &f) {
        return !f.isDeclaration() && hasPointerArgument(f);
      }))
    return;
  // A copy of the functions with pointer parameters (the others become declarations), whose
  // local variables can then be put in registers without touching the program.
  llvm::ValueToValueMapTy map;
  std::unique_ptr<llvm::Module> copy =
      llvm::CloneModule(module, map, [](const llvm::GlobalValue *gv) {
        auto *f = dyn_cast<llvm::Function>(gv);
        return f && hasPointerArgument(*f);
      });
  std::map<const llvm::Function *, const llvm::Function *> original_of;
  for (const llvm::Function &f : module)
    if (auto it = map.find(&f); it != map.end())
      original_of[cast<llvm::Function>(it->second)] = &f;

  llvm::TargetLibraryInfoImpl tlii{llvm::Triple(module.getTargetTriple())};
  std::map<std::pair<const llvm::Function *, unsigned>, Summary> summaries;
  std::vector<PassedOn> passed;
  std::vector<std::unique_ptr<FunctionReads>> all;
  WithValues with;
  std::map<const llvm::Function *, const llvm::Function *> copy_of; // original -> copy
  for (llvm::Function &f : *copy) {
    if (f.isDeclaration() || f.hasAvailableExternallyLinkage() || !hasPointerArgument(f))
      continue;
    const llvm::Function *original = original_of.at(&f);
    auto reads = std::make_unique<FunctionReads>(f, *original, tlii, original_of);
    for (llvm::Argument &a : f.args())
      if (a.getType()->isPointerTy())
        summaries[{original, a.getArgNo()}] = reads->run(a.getArgNo(), passed);
    reads->keepForCalls(&with);
    with.by_copy[&f] = reads.get();
    copy_of[original] = &f;
    all.push_back(std::move(reads));
  }
  // Through calls, to a fixed point: facts are only ever found, never lost, so this ends. A
  // call is looked at again only when its callee's facts grew.
  std::map<std::pair<const llvm::Function *, unsigned>, std::vector<const PassedOn *>> calls_of;
  for (const PassedOn &on : passed)
    calls_of[{on.callee, on.callee_arg}].push_back(&on);
  std::deque<const PassedOn *> work;
  auto fixedPoint = [&] {
    while (!work.empty()) {
      const PassedOn &on = *work.front();
      work.pop_front();
      auto callee = summaries.find({on.callee, on.callee_arg});
      if (callee == summaries.end() || !handOn(on, callee->second, summaries[{on.caller, on.arg}]))
        continue;
      for (const PassedOn *next : calls_of[{on.caller, on.arg}])
        work.push_back(next);
    }
  };
  for (const PassedOn &on : passed)
    work.push_back(&on);
  fixedPoint();
  // With the values known where the call is reached with the string empty: a callee handed
  // known integers (a position `rd16(p, 0)`, a count, a width) is run with them. If it reads
  // past its byte 0, the caller reads bytes, and so does the callee wherever it runs.
  for (const PassedOn &on : passed) {
    Summary &caller = summaries[{on.caller, on.arg}];
    auto callee = summaries.find({on.callee, on.callee_arg});
    if (caller.past_empty.counted() || callee == summaries.end() || !callee->second.reads ||
        callee->second.past_empty.counted() || llvm::none_of(on.reaches, [&](const EmptyReach &e) {
          return anyKnown(e.args) &&
                 with.by_copy.at(copy_of.at(on.callee))->pastEmptyWith(on.callee_arg, e.args, 1);
        }))
      continue;
    caller.past_empty = {-1,
                         "is passed to `" + on.callee->getName().str() + "`" + on.at +
                             " and read past its NUL, with the values it is handed there, even "
                             "when it is empty",
                         "", ""};
    for (const PassedOn *next : calls_of[{on.caller, on.arg}])
      work.push_back(next);
    with.found.try_emplace({copy_of.at(on.callee), on.callee_arg},
                           "`" + on.caller->getName().str() + "`" + on.at);
  }
  fixedPoint();
  // Every call of the program handing a helper a local or global buffer and constant integers:
  // run with them, a helper that reads past its byte 0 reads bytes. (A pointer the caller was
  // handed is the runs above: the empty run of the caller says whether the string may be empty
  // there, which a check of a prefix such as `parse_int_at(line, 5)` after `strncmp` rules out.)
  for (const llvm::Function &f : module)
    for (const llvm::Instruction &i : llvm::instructions(f)) {
      auto *call = dyn_cast<llvm::CallBase>(&i);
      const llvm::Function *g = call ? call->getCalledFunction() : nullptr;
      auto it = g ? copy_of.find(g) : copy_of.end();
      if (it == copy_of.end())
        continue;
      const Integers args = integerArgs(
          *call,
          [](const llvm::Value *v) -> std::optional<llvm::APInt> {
            if (auto *k = dyn_cast<llvm::ConstantInt>(v))
              return k->getValue();
            return std::nullopt;
          },
          false);
      if (!anyKnown(args))
        continue;
      for (unsigned k = 0; k < call->arg_size() && k < g->arg_size(); ++k) {
        const llvm::Value *object = llvm::getUnderlyingObject(call->getArgOperand(k));
        if (!isa<llvm::AllocaInst>(object) && !isa<llvm::GlobalVariable>(object))
          continue;
        if (g->getArg(k)->getType()->isPointerTy() && !with.found.count({it->second, k}) &&
            with.by_copy.at(it->second)->pastEmptyWith(k, args, 1))
          with.found.try_emplace({it->second, k},
                                 "`" + f.getName().str() + "`" + sourceLocation(*call));
      }
    }
  // Down calls: a function that reads its string at a position handed in reads inside a
  // string only if the position stays there. Where a caller's loop moves that position by a
  // count (handOn's reads at an offset), the function reads bytes too, wherever it runs; so
  // does a function it hands the string and one of its parameters as a position.
  std::map<std::pair<const llvm::Function *, unsigned>, CountedRead> positioned;
  std::map<std::pair<const llvm::Function *, unsigned>, std::vector<const PassedOn *>> calls_from;
  std::deque<std::pair<const llvm::Function *, unsigned>> down;
  for (const PassedOn &on : passed) {
    calls_from[{on.caller, on.arg}].push_back(&on);
    auto callee = summaries.find({on.callee, on.callee_arg});
    if (callee == summaries.end())
      continue;
    for (unsigned j : callee->second.offsets)
      if (j < on.read_at.size() && on.read_at[j].counted() &&
          positioned
              .try_emplace({on.callee, on.callee_arg},
                           CountedRead{-1,
                                       "is read at a position that a loop of `" +
                                           on.caller->getName().str() + "`" + on.at +
                                           " moves by a count",
                                       "", "", false})
              .second)
        down.push_back({on.callee, on.callee_arg});
  }
  while (!down.empty()) {
    const auto key = down.front();
    down.pop_front();
    for (const PassedOn *on : calls_from[key]) {
      auto callee = summaries.find({on->callee, on->callee_arg});
      if (callee == summaries.end() || llvm::none_of(callee->second.offsets, [&](unsigned k) {
            return k < on->from_param.size() && on->from_param[k] >= 0;
          }))
        continue;
      if (positioned.try_emplace({on->callee, on->callee_arg}, positioned.at(key)).second)
        down.push_back({on->callee, on->callee_arg});
    }
  }
  // And the helpers that the runs with values found reading past their NUL (their own callees
  // included, as those runs looked into them: nothing more goes down from these).
  for (const auto &[key, by] : with.found)
    positioned.try_emplace(
        {original_of.at(key.first), key.second},
        CountedRead{-1, "is read past its NUL with the values that " + by + " hands it", "", "",
                    false});
  for (auto &[key, summary] : summaries)
    if (summary.counted.counted())
      reads_[key] = std::move(summary.counted);
    else if (summary.past_empty.counted())
      reads_[key] = std::move(summary.past_empty);
    else if (auto it = positioned.find(key); it != positioned.end())
      reads_[key] = std::move(it->second);
}

const CountedRead &CountedReads::of(const llvm::Function &fn, unsigned arg) const {
  auto it = reads_.find({&fn, arg});
  return it == reads_.end() ? none_ : it->second;
}

} // namespace distnode::jit
