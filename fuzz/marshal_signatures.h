// marshal_signatures.h - signatures covering every marshaling kind, for the fuzz targets of
// the call and reply decoders, and the dispatcher that touches every byte a callee may.
#ifndef DISTNODE_FUZZ_MARSHAL_SIGNATURES_H
#define DISTNODE_FUZZ_MARSHAL_SIGNATURES_H

#include "jit/remote_call.h"

#include <cstring>
#include <vector>

namespace distnode::fuzz {

inline jit::ValuePlan plan(const char *name, jit::MarshalKind kind, std::uint64_t size,
                           std::vector<unsigned> ir_args) {
  jit::ValuePlan p;
  p.name = name;
  p.kind = kind;
  p.size = size;
  p.ir_args = std::move(ir_args);
  return p;
}

// f(i32 a, double b, struct{i64,i64} c, const char *s, const double *in DIST_IN(n),
//   double *out DIST_OUT(n), int32_t *acc DIST_INOUT(4), const struct{24B} *cfg,
//   struct{12B} *state, struct gpin *h, int64_t n) -> int64_t
inline jit::RemoteSignature everyKind() {
  using K = jit::MarshalKind;
  jit::RemoteSignature sig;
  sig.name = "every_kind";
  sig.params = {plan("a", K::Integer, 4, {0}),
                plan("b", K::Float, 8, {1}),
                plan("c", K::StructByValue, 16, {2, 3}),
                plan("s", K::CString, 1, {4}),
                plan("in", K::BufferIn, 8, {5}),
                plan("out", K::BufferOut, 8, {6}),
                plan("acc", K::BufferInOut, 4, {7}),
                plan("cfg", K::StructPtrIn, 24, {8}),
                plan("state", K::StructPtrInOut, 12, {9}),
                plan("h", K::GPinHandle, 8, {10}),
                plan("n", K::Integer, 8, {11})};
  sig.params[4].count_param = 10;
  sig.params[5].count_param = 10;
  sig.params[6].count_value = 4;
  sig.result = plan("", K::Integer, 8, {});
  sig.ir_arg_sizes = {4, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8};
  sig.ir_arg_byval.assign(sig.ir_arg_sizes.size(), 0);
  sig.ir_return_size = 8;
  return sig;
}

// g(struct{40B} v (byval), i16 k) -> struct{40B} (sret)
inline jit::RemoteSignature byvalAndSret() {
  using K = jit::MarshalKind;
  jit::RemoteSignature sig;
  sig.name = "byval_sret";
  sig.params = {plan("v", K::StructByValue, 40, {1}), plan("k", K::Integer, 2, {2})};
  sig.result = plan("", K::StructByValue, 40, {0});
  sig.sret = true;
  sig.ir_arg_sizes = {8, 8, 2};
  sig.ir_arg_byval = {0, 1, 0};
  sig.ir_return_size = 0;
  return sig;
}

inline void *pointerAt(void **slots, unsigned k) {
  void *p;
  std::memcpy(&p, slots[k], sizeof p);
  return p;
}

// What a callee of everyKind may do: read all it is given, write all it may write. Under
// AddressSanitizer, any byte outside what the decoder provided is a crash.
inline void dispatchEveryKind(void **slots, void *ret) {
  std::int64_t n = 0;
  std::memcpy(&n, slots[11], 8);
  volatile std::uint8_t sink = 0;
  if (auto *s = static_cast<const char *>(pointerAt(slots, 4)))
    sink = static_cast<std::uint8_t>(sink + std::strlen(s));
  if (auto *in = static_cast<const std::uint8_t *>(pointerAt(slots, 5)))
    for (std::int64_t i = 0; i < n * 8; ++i)
      sink = static_cast<std::uint8_t>(sink + in[i]);
  if (auto *out = static_cast<std::uint8_t *>(pointerAt(slots, 6)))
    std::memset(out, 0x5a, static_cast<std::size_t>(n) * 8);
  if (auto *acc = static_cast<std::int32_t *>(pointerAt(slots, 7)))
    for (int i = 0; i < 4; ++i)
      acc[i] += 1;
  if (auto *cfg = static_cast<const std::uint8_t *>(pointerAt(slots, 8)))
    for (int i = 0; i < 24; ++i)
      sink = static_cast<std::uint8_t>(sink + cfg[i]);
  if (auto *state = static_cast<std::uint8_t *>(pointerAt(slots, 9)))
    std::memset(state, 1, 12);
  std::int64_t r = n + sink;
  std::memcpy(ret, &r, 8);
}

inline void dispatchByvalSret(void **slots, void *) {
  auto *v = static_cast<std::uint8_t *>(pointerAt(slots, 1));
  auto *result = static_cast<std::uint8_t *>(pointerAt(slots, 0));
  std::memcpy(result, v, 40);
}

} // namespace distnode::fuzz

#endif
