// call_decoder_fuzz.cpp - libFuzzer target: the serving side's decoding of an argument blob
// (jit::serveCall) for signatures covering every marshaling kind. The first byte picks the
// signature; the rest is the blob as it would arrive in a Call.
#include "fuzz/marshal_signatures.h"

#include <cstdint>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
  using namespace distnode;
  static const jit::RemoteSignature every = fuzz::everyKind(), byval = fuzz::byvalAndSret();
  static jit::HandleTable handles(1);
  static std::int64_t object = 7;
  static const std::uint64_t known = handles.issue(&object); // one valid handle
  (void)known;
  if (size == 0)
    return 0;
  bool first = data[0] & 1;
  std::vector<std::uint8_t> reply;
  std::string error;
  (void)jit::serveCall(
      first ? every : byval, first ? fuzz::dispatchEveryKind : fuzz::dispatchByvalSret, data + 1,
      size - 1,
      [&reply](std::size_t n) {
        reply.assign(n, 0);
        return reply.data();
      },
      handles, error);
  return 0;
}
