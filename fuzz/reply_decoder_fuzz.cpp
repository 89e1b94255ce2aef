// reply_decoder_fuzz.cpp - libFuzzer target: the calling side's decoding of a reply blob
// (jit::unmarshalReply) into the caller's result and out-buffers, for signatures covering
// every marshaling kind. The first byte picks the signature and the call's element count;
// the rest is the reply as it would arrive. The caller's own argument blob goes with it, as a
// real call passes it: in-out arguments are written as the bytes that differ from it. The last
// byte may damage that blob (flip a byte, cut it short), as a decoder must survive even its own
// bytes not matching the plan.
#include "fuzz/marshal_signatures.h"

#include <cstdint>
#include <string>
#include <vector>

namespace {

// Damages `sent` as the input's last two bytes say: bit 0 flips a byte, bit 1 cuts the blob.
void damage(std::vector<std::uint8_t> &sent, const std::uint8_t *data, std::size_t size) {
  if (size < 3 || sent.empty())
    return;
  const std::uint8_t how = data[size - 1], where = data[size - 2];
  if (how & 1)
    sent[where % sent.size()] ^= how | 1;
  if (how & 2)
    sent.resize(where % sent.size());
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
  using namespace distnode;
  static const jit::RemoteSignature every = fuzz::everyKind(), byval = fuzz::byvalAndSret();
  if (size == 0)
    return 0;
  bool first = data[0] & 1;
  std::int64_t n = data[0] >> 1; // 0..127 elements, as the caller's count says
  std::string error;
  std::uint64_t ret[2] = {0, 0};
  if (first) {
    std::int32_t a = 1;
    double b = 2;
    std::uint64_t c[2] = {3, 4};
    const char *s = "text";
    std::vector<double> in(static_cast<std::size_t>(n), 1.0), out(static_cast<std::size_t>(n));
    std::int32_t acc[4] = {};
    std::uint8_t cfg[24] = {}, state[12] = {};
    void *handle = nullptr;
    const void *p_s = s, *p_in = in.data(), *p_out = out.data(), *p_acc = acc, *p_cfg = cfg,
               *p_state = state;
    void *slots[12] = {&a,     &b,     &c[0],  &c[1],    &p_s,    &p_in,
                       &p_out, &p_acc, &p_cfg, &p_state, &handle, &n};
    std::vector<std::uint8_t> sent;
    if (!jit::marshalCall(every, slots, sent, error))
      __builtin_trap(); // the caller's own arguments always marshal
    damage(sent, data, size);
    (void)jit::unmarshalReply(every, data + 1, size - 1, slots, ret, error, sent.data(),
                              sent.size());
  } else {
    std::uint8_t result[40] = {}, v[40] = {};
    std::int16_t k = 0;
    void *p_result = result, *p_v = v;
    void *slots[3] = {&p_result, &p_v, &k};
    std::vector<std::uint8_t> sent;
    if (!jit::marshalCall(byval, slots, sent, error))
      __builtin_trap();
    damage(sent, data, size);
    (void)jit::unmarshalReply(byval, data + 1, size - 1, slots, ret, error, sent.data(),
                              sent.size());
  }
  return 0;
}
