// remote_call_test.cpp - the marshaling decoders against malformed blobs, one case per
// marshaling kind: each is refused with the parameter named, and nothing is called.
#include "fuzz/marshal_signatures.h"

#include <gtest/gtest.h>

#include <bit>
#include <cstring>

namespace distnode::jit {
namespace {

// A well-formed call of fuzz::everyKind() with n = 3, as the calling side marshals it.
struct EveryKindCall {
  std::int32_t a = -5;
  double b = 2.5;
  std::uint64_t c[2] = {3, 4};
  const char *s = "text";
  double in[3] = {1, 2, 3};
  double out[3] = {};
  std::int32_t acc[4] = {1, 2, 3, 4};
  std::uint8_t cfg[24] = {9};
  std::uint8_t state[12] = {7};
  std::uint64_t handle = 0;
  std::int64_t n = 3;
  const void *p_s = s, *p_in = in, *p_out = out, *p_acc = acc, *p_cfg = cfg, *p_state = state;
  void *slots[12] = {&a,     &b,     &c[0],  &c[1],    &p_s,    &p_in,
                     &p_out, &p_acc, &p_cfg, &p_state, &handle, &n};

  std::vector<std::uint8_t> blob() {
    std::vector<std::uint8_t> out_blob;
    std::string error;
    EXPECT_TRUE(marshalCall(fuzz::everyKind(), slots, out_blob, error)) << error;
    return out_blob;
  }
};

int calls = 0;
void countingDispatch(void **slots, void *ret) {
  ++calls;
  fuzz::dispatchEveryKind(slots, ret);
}

bool serve(const std::vector<std::uint8_t> &blob, std::string &error,
           std::vector<std::uint8_t> *reply_out = nullptr,
           const std::vector<ByteSpan> &parts = {}) {
  static HandleTable handles(1);
  std::vector<std::uint8_t> reply;
  calls = 0;
  bool ok = serveCall(
      fuzz::everyKind(), countingDispatch, {blob.data(), blob.size()}, parts,
      [&reply](std::size_t n) {
        reply.assign(n, 0);
        return reply.data();
      },
      handles, error);
  if (reply_out)
    *reply_out = reply;
  return ok;
}

// Offsets in the blob of EveryKindCall (remote_call.h's layout).
constexpr std::size_t kString = 4 + 8 + 16;      // u8 present, u64 length, bytes
constexpr std::size_t kIn = kString + 1 + 8 + 4; // "text"
constexpr std::size_t kOut = kIn + 1 + 8 + 24;   // 3 doubles
constexpr std::size_t kAcc = kOut + 1;           // present only
constexpr std::size_t kCfg = kAcc + 1 + 8 + 16;  // 4 int32
constexpr std::size_t kState = kCfg + 1 + 8 + 24;
constexpr std::size_t kHandle = kState + 1 + 8 + 12;
constexpr std::size_t kCount = kHandle + 8;

TEST(CallDecoder, WellFormedCallIsServed) {
  EveryKindCall call;
  std::vector<std::uint8_t> blob = call.blob();
  ASSERT_EQ(blob.size(), kCount + 8) << "the offsets below follow remote_call.h's layout";
  std::string error;
  std::vector<std::uint8_t> reply;
  EXPECT_TRUE(serve(blob, error, &reply)) << error;
  EXPECT_EQ(calls, 1);
  // Reply: result, then out (3 doubles), acc (4 int32), state (12 bytes), each with its length.
  EXPECT_EQ(reply.size(), 8u + (8 + 24) + (8 + 16) + (8 + 12));
}

TEST(CallDecoder, AbsentPointersArriveAsNull) {
  EveryKindCall call;
  call.p_s = call.p_in = call.p_out = call.p_acc = call.p_cfg = call.p_state = nullptr;
  std::vector<std::uint8_t> blob = call.blob();
  std::string error;
  static void *seen[6];
  auto record = [](void **slots, void *) {
    for (int i = 0; i < 6; ++i)
      seen[i] = fuzz::pointerAt(slots, 4 + i);
  };
  for (auto &p : seen)
    p = &seen; // anything but null
  std::vector<std::uint8_t> reply;
  HandleTable handles;
  ASSERT_TRUE(serveCall(
      fuzz::everyKind(), record, {blob.data(), blob.size()}, {},
      [&reply](std::size_t n) {
        reply.assign(n, 0);
        return reply.data();
      },
      handles, error))
      << error;
  for (int i = 0; i < 6; ++i)
    EXPECT_EQ(seen[i], nullptr) << "pointer parameter " << i << " was absent";
}

TEST(CallDecoder, EachMalformedKindIsRefusedNamingTheParameter) {
  struct Case {
    const char *what;
    std::function<void(std::vector<std::uint8_t> &)> damage;
    const char *needle;
  } cases[] = {
      {"integer cut short", [](auto &b) { b.resize(2); }, "parameter `a`"},
      {"struct by value cut short", [](auto &b) { b.resize(20); }, "parameter `c`"},
      {"string longer than the blob",
       [](auto &b) {
         std::uint64_t huge = 1 << 20;
         std::memcpy(&b[kString + 1], &huge, 8);
       },
       "parameter `s`"},
      {"presence flag neither 0 nor 1", [](auto &b) { b[kString] = 2; }, "parameter `s`"},
      {"buffer-in shorter than its count",
       [](auto &b) {
         std::uint64_t bytes = 16; // count n = 3 doubles needs 24
         std::memcpy(&b[kIn + 1], &bytes, 8);
         b.erase(b.begin() + kIn + 9 + 16, b.begin() + kIn + 9 + 24);
       },
       "parameter `in` carries 16 bytes, but its count says 24"},
      {"count larger than any call",
       [](auto &b) {
         std::int64_t n = std::int64_t(1) << 40;
         std::memcpy(&b[kCount], &n, 8);
       },
       "parameter `in`"},
      {"negative count",
       [](auto &b) {
         std::int64_t n = -1;
         std::memcpy(&b[kCount], &n, 8);
       },
       "is negative"},
      {"buffer-inout of the wrong size",
       [](auto &b) {
         std::uint64_t bytes = 12;
         std::memcpy(&b[kAcc + 1], &bytes, 8);
         b.erase(b.begin() + kAcc + 9, b.begin() + kAcc + 9 + 4);
       },
       "parameter `acc` carries 12 bytes, but its count says 16"},
      {"struct pointer of another size",
       [](auto &b) {
         std::uint64_t bytes = 8;
         std::memcpy(&b[kCfg + 1], &bytes, 8);
       },
       "parameter `cfg`"},
      {"handle never issued",
       [](auto &b) {
         std::uint64_t h = 0x4141414141414141;
         std::memcpy(&b[kHandle], &h, 8);
       },
       "parameter `h` is handle 4702111234474983745, which this node never issued"},
      {"trailing bytes", [](auto &b) { b.push_back(0); }, "trailing bytes"},
  };
  for (const auto &c : cases) {
    SCOPED_TRACE(c.what);
    EveryKindCall call;
    std::vector<std::uint8_t> blob = call.blob();
    c.damage(blob);
    std::string error;
    EXPECT_FALSE(serve(blob, error));
    EXPECT_EQ(calls, 0) << "nothing runs on a malformed call";
    EXPECT_NE(error.find(c.needle), std::string::npos) << error;
  }
}

// A call of fuzz::everyKind() whose DIST_IN buffer is large enough to go in a part of its own.
struct LargeInCall : EveryKindCall {
  static constexpr std::int64_t kElements = std::int64_t(kOwnPartFrom / sizeof(double));
  std::vector<double> big_in, big_out;
  CallLayout layout;

  LargeInCall() : big_in(kElements), big_out(kElements) {
    for (std::int64_t i = 0; i < kElements; ++i)
      big_in[i] = static_cast<double>(i % 251);
    n = kElements;
    p_in = big_in.data();
    p_out = big_out.data();
  }
  // The blob as the calling node marshals it, with `layout` saying what went in parts.
  std::vector<std::uint8_t> blobAndParts(std::size_t own_part_from = kOwnPartFrom) {
    std::string error;
    EXPECT_TRUE(layoutCall(fuzz::everyKind(), slots, layout, error, own_part_from)) << error;
    std::vector<std::uint8_t> out_blob(layout.blob_bytes);
    marshalCallInto(fuzz::everyKind(), slots, layout, out_blob.data());
    return out_blob;
  }
};

TEST(CallDecoder, ALargeInBufferTravelsFromTheCallersMemoryInAPartOfItsOwn) {
  LargeInCall call;
  std::vector<std::uint8_t> inline_blob = call.blobAndParts(SIZE_MAX);
  EXPECT_TRUE(call.layout.own_parts.empty()) << "the in-process paths copy every buffer";
  std::vector<std::uint8_t> blob = call.blobAndParts();
  ASSERT_EQ(call.layout.own_parts.size(), 1u);
  EXPECT_EQ(call.layout.own_parts[0].data, reinterpret_cast<const std::uint8_t *>(call.p_in))
      << "the part is the caller's memory itself, not a copy";
  EXPECT_EQ(call.layout.own_parts[0].size, kOwnPartFrom);
  EXPECT_EQ(call.layout.blob_bytes + kOwnPartFrom, inline_blob.size());
  EXPECT_EQ(call.layout.total_bytes, inline_blob.size());

  // Served from the part, the callee sees the same bytes as from the blob: the same reply.
  std::string error;
  std::vector<std::uint8_t> reply, inline_reply;
  ASSERT_TRUE(serve(blob, error, &reply, call.layout.own_parts)) << error;
  EXPECT_EQ(calls, 1);
  ASSERT_TRUE(serve(inline_blob, error, &inline_reply)) << error;
  EXPECT_EQ(reply, inline_reply);
  // A part at an address that does not suit doubles is copied, not read in place.
  std::vector<std::uint8_t> shifted(kOwnPartFrom + 1);
  std::memcpy(shifted.data() + 1, call.p_in, kOwnPartFrom);
  std::vector<std::uint8_t> shifted_reply;
  ASSERT_TRUE(serve(blob, error, &shifted_reply, {{shifted.data() + 1, kOwnPartFrom}})) << error;
  EXPECT_EQ(shifted_reply, inline_reply);

  // The caller's look at what it sent passes over the part: in-out arguments still come back
  // as the bytes the callee changed.
  call.acc[1] |= 0x40000000;
  std::uint64_t ret = 0;
  ASSERT_TRUE(unmarshalReply(fuzz::everyKind(), reply.data(), reply.size(), call.slots, &ret, error,
                             blob.data(), blob.size()))
      << error;
  EXPECT_EQ(call.acc[1], 0x40000003);
  EXPECT_EQ(call.big_out[0], std::bit_cast<double>(0x5a5a5a5a5a5a5a5aull));
}

TEST(CallDecoder, PartsThatDoNotMatchTheBlobAreRefused) {
  LargeInCall call;
  std::vector<std::uint8_t> blob = call.blobAndParts();
  const ByteSpan part = call.layout.own_parts.at(0);
  const ByteSpan short_part{part.data, part.size - 8};
  struct Case {
    const char *what;
    std::vector<ByteSpan> parts;
    const char *needle;
  } cases[] = {
      {"part missing", {}, "at parameter `in`"},
      {"part shorter than its count", {short_part}, "at parameter `in`"},
      {"a part no parameter has", {part, part}, "1 parts of their own that no parameter has"},
      {"more parts than a call may have", std::vector<ByteSpan>(kMaxOwnParts + 1, part),
       "more than the 8 a call may have"},
  };
  for (const auto &c : cases) {
    SCOPED_TRACE(c.what);
    std::string error;
    EXPECT_FALSE(serve(blob, error, nullptr, c.parts));
    EXPECT_EQ(calls, 0) << "nothing runs on a malformed call";
    EXPECT_NE(error.find(c.needle), std::string::npos) << error;
  }
  // Only DIST_IN buffers come in parts: the marker on another kind is refused.
  EveryKindCall small;
  std::vector<std::uint8_t> small_blob = small.blob();
  small_blob[kAcc] = 2;
  std::string error;
  EXPECT_FALSE(serve(small_blob, error, nullptr, {part}));
  EXPECT_NE(error.find("at parameter `acc`"), std::string::npos) << error;
}

TEST(ReplyDecoder, MalformedRepliesAreRefused) {
  EveryKindCall call;
  std::vector<std::uint8_t> blob = call.blob(), reply;
  std::string error;
  ASSERT_TRUE(serve(blob, error, &reply)) << error;
  std::uint64_t ret = 0;
  ASSERT_TRUE(
      unmarshalReply(fuzz::everyKind(), reply.data(), reply.size(), call.slots, &ret, error))
      << error;
  EXPECT_EQ(call.state[0], 1) << "state came back";
  struct Case {
    const char *what;
    std::function<void(std::vector<std::uint8_t> &)> damage;
  } cases[] = {
      {"cut short", [](auto &r) { r.resize(r.size() - 1); }},
      {"trailing bytes", [](auto &r) { r.push_back(0); }},
      {"out-buffer length differs from the count",
       [](auto &r) {
         std::uint64_t bytes = 16;
         std::memcpy(&r[8], &bytes, 8);
       }},
      {"empty", [](auto &r) { r.clear(); }},
  };
  for (const auto &c : cases) {
    SCOPED_TRACE(c.what);
    std::vector<std::uint8_t> bad = reply;
    c.damage(bad);
    EXPECT_FALSE(
        unmarshalReply(fuzz::everyKind(), bad.data(), bad.size(), call.slots, &ret, error));
    EXPECT_NE(error.find("malformed reply for `every_kind`"), std::string::npos) << error;
  }
}

// An in-out argument comes back as the bytes the callee changed: what another writer put in
// the rest of the object while the call ran stays (natively, two writers of different bytes).
TEST(ReplyDecoder, InOutArgumentsComeBackAsTheBytesTheCalleeChanged) {
  for (bool with_sent : {true, false}) {
    SCOPED_TRACE(with_sent ? "with the sent blob" : "without it");
    EveryKindCall call;
    std::vector<std::uint8_t> blob = call.blob(), reply;
    std::string error;
    ASSERT_TRUE(serve(blob, error, &reply)) << error;
    // The callee adds 1 to each `acc` element (their low bytes change) and sets every byte of
    // `state`; meanwhile the high byte of acc[1] and the out-buffer are written here.
    call.acc[1] |= 0x40000000;
    call.out[0] = 9.5;
    std::uint64_t ret = 0;
    ASSERT_TRUE(unmarshalReply(fuzz::everyKind(), reply.data(), reply.size(), call.slots, &ret,
                               error, with_sent ? blob.data() : nullptr, blob.size()))
        << error;
    EXPECT_EQ(call.acc[0], 2);
    EXPECT_EQ(call.acc[1], with_sent ? 0x40000003 : 3);
    EXPECT_EQ(call.acc[3], 5);
    for (std::uint8_t byte : call.state)
      EXPECT_EQ(byte, 1);
    EXPECT_NE(call.out[0], 9.5) << "an out-only buffer is written whole";
  }
  // A sent blob that does not hold the arguments as planned: written whole, never misread.
  EveryKindCall call;
  std::vector<std::uint8_t> blob = call.blob(), reply;
  std::string error;
  ASSERT_TRUE(serve(blob, error, &reply)) << error;
  call.acc[1] |= 0x40000000;
  std::uint64_t ret = 0;
  ASSERT_TRUE(unmarshalReply(fuzz::everyKind(), reply.data(), reply.size(), call.slots, &ret, error,
                             blob.data(), kAcc))
      << error;
  EXPECT_EQ(call.acc[1], 3);
}

TEST(ReplyDecoder, WriteChangedBytesWritesExactlyTheChangedBytes) {
  std::uint32_t seed = 12345;
  auto next = [&seed] { return seed = seed * 1664525u + 1013904223u; };
  for (std::size_t n : {0, 1, 7, 8, 9, 15, 16, 17, 63, 64, 100, 1000}) {
    for (int round = 0; round < 20; ++round) {
      std::vector<std::uint8_t> before(n), now(n), dst(n);
      for (std::size_t k = 0; k < n; ++k) {
        before[k] = static_cast<std::uint8_t>(next() >> 24);
        // Runs of changed and unchanged bytes of every length, whole changed words included.
        now[k] = (next() >> 28) < static_cast<unsigned>(round % 17) ? before[k] ^ 0x5a : before[k];
        dst[k] = static_cast<std::uint8_t>(next() >> 24);
      }
      std::vector<std::uint8_t> expected = dst;
      for (std::size_t k = 0; k < n; ++k)
        if (now[k] != before[k])
          expected[k] = now[k];
      writeChangedBytes(dst.data(), now.data(), before.data(), n);
      ASSERT_EQ(dst, expected) << n << " bytes, round " << round;
    }
  }
}

TEST(HandleTable, IdsAreTheNodesAndTheUnitsNeverAnAddress) {
  HandleTable accounts(/*tag=*/2, /*unit=*/3), tables(/*tag=*/2, /*unit=*/4);
  int a = 1, b = 2;
  std::uint64_t id = accounts.issue(&a);
  EXPECT_EQ(id >> 48, 2u) << "the issuing node";
  EXPECT_EQ((id >> 32) & 0xffff, 3u) << "the unit";
  EXPECT_NE(id, reinterpret_cast<std::uintptr_t>(&a));
  EXPECT_EQ(accounts.issue(&a), id) << "one object, one id";
  EXPECT_NE(accounts.issue(&b), id);
  EXPECT_EQ(accounts.issue(nullptr), 0u);
  void *object = nullptr;
  ASSERT_TRUE(accounts.resolve(id, object));
  EXPECT_EQ(object, &a);
  EXPECT_FALSE(tables.resolve(id, object)) << "another unit's handle (another GPin type)";
  EXPECT_FALSE(HandleTable(3, 3).resolve(id, object)) << "another node's handle";
  EXPECT_FALSE(accounts.resolve(reinterpret_cast<std::uintptr_t>(&a), object)) << "an address";
  ASSERT_TRUE(accounts.resolve(0, object));
  EXPECT_EQ(object, nullptr);
}

} // namespace
} // namespace distnode::jit
