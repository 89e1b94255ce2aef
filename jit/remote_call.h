// remote_call.h - marshaling a call of a placeable function into bytes and back.
//
// The JIT generates, for every remotable function F, a thunk `F.remote` with F's signature and
// a dispatcher `F.dispatch(void **slots, void *ret)`. Both speak in *slots*: slots[i] points to
// the value of F's i-th IR argument (after ABI lowering), ret to the IR return value. The code
// here turns slots into an argument blob on the calling node, the blob back into slots on the
// serving node, and the result and out-buffers into a reply blob, driven by the analysis'
// marshaling plan. No LLVM types: this compiles without LLVM headers.
//
// Blob layout (little-endian, no padding), per C parameter in order:
//   integer, float, struct-by-value: the bytes of each IR argument carrying it (a byval
//     struct: its `size` bytes); gpin-handle: the u64 id the owner node issued (HandleTable);
//   c-string, buffer-in/inout, struct-ptr-in/inout: u8 present, then (if present) u64 byte
//     count and the bytes; buffer-out: u8 present only (its size follows from the count);
//   buffer-in of kOwnPartFrom bytes or more (the first kMaxOwnParts of a call): u8 2, u64 byte
//     count; its bytes are the call's next message part of its own (sent from the caller's
//     memory without a copy).
// Reply: the result's bytes (the sret struct, or the IR return value), then for each present
// buffer-out/inout and struct-ptr-inout parameter: u64 byte count and the bytes.
#ifndef DISTNODE_JIT_REMOTE_CALL_H
#define DISTNODE_JIT_REMOTE_CALL_H

#include "jit/program_analysis.h"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

namespace distnode::jit {

/// The default of the largest argument or reply blob one call may carry (cluster.yaml's
/// `max_message_mb`). A count beyond it is a bug in the program, and the transport refuses
/// larger messages.
inline constexpr std::uint64_t kDefaultMaxCallBytes = std::uint64_t(256) << 20;

/// The cap in effect (process-wide; set once at start-up, before any call).
[[nodiscard]] std::uint64_t maxCallBytes();
void setMaxCallBytes(std::uint64_t bytes);

/// The generated dispatcher of one function: unpacks slots, calls the body, stores the result.
using DispatchFn = void (*)(void **slots, void *ret);

/// Everything needed to marshal calls of one remotable function. Immutable after creation;
/// safe to share between threads.
struct RemoteSignature {
  std::uint32_t id = 0;   ///< index in the program's remotable functions (same on every node)
  std::string name;       ///< the function's name
  std::uint32_t unit = 0; ///< its placement unit (ProgramAnalysis::units), moved as a whole
  std::vector<ValuePlan> params;
  ValuePlan result;
  std::vector<std::uint32_t> ir_arg_sizes; ///< store size of each IR argument
  std::vector<std::uint8_t> ir_arg_byval;  ///< 1 where the IR argument is a byval pointer
  std::uint32_t ir_return_size = 0;        ///< store size of the IR return value (0: void)
  bool sret = false;                       ///< the result is written through IR argument 0
};

/// Bytes in memory that is not the span's: an argument blob, or a buffer argument.
struct ByteSpan {
  const std::uint8_t *data = nullptr;
  std::size_t size = 0;
};

/// DIST_IN buffers of this many bytes or more travel as message parts of their own, which the
/// transport sends from the caller's memory in place: no copy into the blob (for a megabyte,
/// a pass over the data saved on the calling side). Smaller ones cost less copied than a part.
inline constexpr std::size_t kOwnPartFrom = std::size_t(64) << 10;
/// Parts of their own one call has at most (its further buffers go in the blob); a serving
/// node refuses a call with more.
inline constexpr std::size_t kMaxOwnParts = 8;

/// How a call's arguments travel: the argument blob's size and the buffers sent beside it.
struct CallLayout {
  std::size_t blob_bytes = 0;           ///< the argument blob's
  std::uint64_t total_bytes = 0;        ///< the blob's and the parts'
  std::vector<ByteSpan> own_parts;      ///< buffers sent as parts of their own, in order
  std::size_t own_part_from = SIZE_MAX; ///< the rule it was made with (see layoutCall)
};

/// Calling side: the layout of a call whose IR arguments are in `slots`; DIST_IN buffers of
/// `own_part_from` bytes or more go in parts of their own (SIZE_MAX: none; the in-process
/// paths). Returns false (with `error`) if a count is negative or the call too large.
[[nodiscard]] bool layoutCall(const RemoteSignature &sig, void *const *slots, CallLayout &layout,
                              std::string &error, std::size_t own_part_from = SIZE_MAX);

/// Calling side: writes the argument blob (layout.blob_bytes; layoutCall must have succeeded
/// for these slots) to `out`, e.g. straight into the message being built.
void marshalCallInto(const RemoteSignature &sig, void *const *slots, const CallLayout &layout,
                     std::uint8_t *out);

/// Calling side: whether two pointer arguments of the call overlap while one of them is
/// copied back (`f(&s, &s)` with both in-out): the serving node would get two copies of what
/// natively is one object. Calls whose counts marshaledCallSize refuses count as not
/// overlapping (it reports them).
[[nodiscard]] bool copiedBackArgumentsOverlap(const RemoteSignature &sig, void *const *slots);

/// Calling side: the argument blob as a vector (both steps above).
[[nodiscard]] bool marshalCall(const RemoteSignature &sig, void *const *slots,
                               std::vector<std::uint8_t> &out, std::string &error);

/// The GPin objects of one placement unit on this node that other nodes hold handles to. A
/// GPin pointer leaves the node that owns its object only as an id issued here (never as an
/// address), and an id that arrives is looked up in the table of the unit it is passed to: one
/// this node did not issue for that unit is refused, so no message can make a node write
/// through an address of the sender's choosing, nor pass one GPin type's object as another's.
/// The same object always gets the same id, so handles compare equal on other nodes exactly
/// when the pointers would. Ids are never reused (objects the program frees stay in the table,
/// as their handles may too). An id is the node's tag (16 bits), the unit (16 bits) and a
/// counter (32 bits). Thread-safe.
class HandleTable {
public:
  /// `tag` distinguishes the ids of different nodes (e.g. the node's index + 1).
  explicit HandleTable(std::uint16_t tag = 1, std::uint16_t unit = 0) : tag_(tag), unit_(unit) {}
  void setTag(std::uint16_t tag);
  /// The id of `object` (0 for nullptr), issued on first use.
  [[nodiscard]] std::uint64_t issue(void *object);
  /// The object of `id` (nullptr for 0). False if this node never issued `id`.
  [[nodiscard]] bool resolve(std::uint64_t id, void *&object) const;

private:
  mutable std::mutex mu_; ///< guards everything below
  std::uint16_t tag_;
  std::uint16_t unit_;
  std::uint32_t next_ = 1;
  std::unordered_map<void *, std::uint64_t> ids_;
  std::unordered_map<std::uint64_t, void *> objects_;
};

/// Where serveCall writes a reply: called once with the reply's size, returns room for it.
using ReplyAllocator = std::function<std::uint8_t *(std::size_t size)>;

/// Calling side: writes a reply blob into the IR return value (`ret`), the sret struct and the
/// caller's out-buffers. Returns false (with `error`) if the blob does not match the plan.
///
/// With `sent` (the argument blob this call sent, `sent_size` bytes), in-out arguments (struct
/// pointers, DIST_INOUT buffers) get only the bytes the callee changed: a byte the reply has as
/// it was sent is not written, so what other threads (or a function the callee called back on
/// this node) wrote to the same object meanwhile stays, as natively. Without it, or where the
/// blob does not hold the argument as expected, they are written whole.
[[nodiscard]] bool unmarshalReply(const RemoteSignature &sig, const std::uint8_t *data,
                                  std::size_t size, void *const *slots, void *ret,
                                  std::string &error, const std::uint8_t *sent = nullptr,
                                  std::size_t sent_size = 0);

/// Whether a call has arguments that are both copied in and copied back (struct pointers,
/// DIST_INOUT buffers): the ones unmarshalReply writes as changed bytes.
[[nodiscard]] bool hasInOutArguments(const RemoteSignature &sig);

/// Writes to `dst` each byte of `now` (n bytes) that differs from `before`, and no other byte.
void writeChangedBytes(std::uint8_t *dst, const std::uint8_t *now, const std::uint8_t *before,
                       std::size_t n);

/// Serving side: decodes an argument blob and the parts that came with it, calls `dispatch`
/// and encodes the reply. GPin handles are resolved in, and results issued from, `handles`.
/// Returns false (with `error`, and nothing called) if the blob or the parts do not match the
/// plan, or the blob names an unknown handle.
[[nodiscard]] bool serveCall(const RemoteSignature &sig, DispatchFn dispatch, ByteSpan blob,
                             std::span<const ByteSpan> parts, const ReplyAllocator &reply,
                             HandleTable &handles, std::string &error);

} // namespace distnode::jit

#endif
