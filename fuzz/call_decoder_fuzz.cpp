// call_decoder_fuzz.cpp - libFuzzer target: the serving side's decoding of an argument blob
// and the parts of their own that came with it (jit::serveCall) for signatures covering every
// marshaling kind. The first byte picks the signature (bit 0) and says whether parts follow
// (bit 1, clear in the regression inputs, which are older than parts); if so, the next byte is
// their number (0-15: more than a call may have), then come each part's length (u16) and the
// parts. The rest is the blob as it would arrive in a Call.
#include "fuzz/marshal_signatures.h"

#include <algorithm>
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
  std::size_t part_count = 0, at = 1;
  if ((data[0] & 0x02) && size > 1)
    part_count = data[at++] & 15;
  std::vector<std::size_t> lengths;
  for (std::size_t i = 0; i < part_count && at + 2 <= size; ++i, at += 2)
    lengths.push_back(data[at] | std::size_t(data[at + 1]) << 8);
  std::vector<jit::ByteSpan> parts;
  for (std::size_t length : lengths) {
    length = std::min(length, size - at);
    parts.push_back({data + at, length});
    at += length;
  }
  std::vector<std::uint8_t> reply;
  std::string error;
  (void)jit::serveCall(
      first ? every : byval, first ? fuzz::dispatchEveryKind : fuzz::dispatchByvalSret,
      {data + at, size - at}, parts,
      [&reply](std::size_t n) {
        reply.assign(n, 0);
        return reply.data();
      },
      handles, error);
  return 0;
}
