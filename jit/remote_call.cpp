// remote_call.cpp - marshaling a call of a placeable function into bytes and back.
#include "jit/remote_call.h"

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstring>
#include <limits>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace distnode::jit {

namespace {

std::atomic<std::uint64_t> max_call_bytes{kDefaultMaxCallBytes};

bool copiesOut(MarshalKind k) {
  return k == MarshalKind::BufferOut || k == MarshalKind::BufferInOut ||
         k == MarshalKind::StructPtrInOut;
}

bool isBuffer(MarshalKind k) {
  return k == MarshalKind::BufferIn || k == MarshalKind::BufferOut || k == MarshalKind::BufferInOut;
}

bool isByval(const RemoteSignature &sig, const ValuePlan &p) {
  return p.ir_args.size() == 1 && sig.ir_arg_byval[p.ir_args[0]];
}

void *pointerIn(void *const *slots, unsigned ir_arg) {
  void *p;
  std::memcpy(&p, slots[ir_arg], sizeof p);
  return p;
}

// Reads the run-time element count of a buffer parameter: a constant, or the value of the
// integer parameter it names (sign-extended from its width; negative counts are errors).
bool countOf(const RemoteSignature &sig, const ValuePlan &p, void *const *slots,
             std::uint64_t &bytes, std::string &error) {
  std::uint64_t count = p.count_value;
  if (p.count_param >= 0) {
    const ValuePlan &c = sig.params[p.count_param];
    unsigned arg = c.ir_args.at(0);
    std::uint32_t width = sig.ir_arg_sizes[arg];
    std::int64_t value = 0;
    std::memcpy(&value, slots[arg], std::min<std::uint32_t>(width, 8));
    if (width < 8) {
      unsigned shift = 64 - 8 * width;
      value = static_cast<std::int64_t>(static_cast<std::uint64_t>(value) << shift) >> shift;
    }
    if (value < 0) {
      error = "parameter `" + p.name + "`: element count `" + c.name + "` is negative (" +
              std::to_string(value) + ")";
      return false;
    }
    count = static_cast<std::uint64_t>(value);
  }
  if (p.size != 0 && count > maxCallBytes() / p.size) {
    error = "parameter `" + p.name + "`: " + std::to_string(count) + " elements of " +
            std::to_string(p.size) + " bytes exceed the " + std::to_string(maxCallBytes() >> 20) +
            " MiB limit of one call (cluster.yaml's max_message_mb)";
    return false;
  }
  bytes = count * p.size;
  return true;
}

// A bounds-checked reader over a received blob.
class Reader {
public:
  Reader(const std::uint8_t *data, std::size_t size) : data_(data), size_(size) {}

  bool read(void *dst, std::size_t n) {
    if (size_ - pos_ < n)
      return false;
    std::memcpy(dst, data_ + pos_, n);
    pos_ += n;
    return true;
  }
  bool readU64(std::uint64_t &v) { return read(&v, sizeof v); }
  bool readU8(std::uint8_t &v) { return read(&v, 1); }
  const std::uint8_t *take(std::size_t n) {
    if (size_ - pos_ < n)
      return nullptr;
    const std::uint8_t *p = data_ + pos_;
    pos_ += n;
    return p;
  }
  bool done() const { return pos_ == size_; }

private:
  const std::uint8_t *data_;
  std::size_t size_;
  std::size_t pos_ = 0;
};

// One parameter's field in an argument blob (the layout in remote_call.h).
struct Field {
  bool present = false; ///< pointer kinds: the pointer was not null (others: always true)
  const std::uint8_t *data = nullptr; ///< the bytes carried, inside the blob or their part
  std::uint64_t bytes = 0;
};

// The marker of a buffer whose bytes are a message part of their own (remote_call.h).
constexpr std::uint8_t kInOwnPart = 2;

// The parts of their own that came with a blob, taken in order.
struct Parts {
  std::span<const ByteSpan> all;
  std::size_t next = 0;
};

// Reads the field of `p` from an argument blob: the one place that decodes the layout
// encodeCall writes (the serving node's decoder and the caller's look at what it sent both
// read through it). A buffer in a part of its own takes the next of `parts`; without `parts`
// (the caller's look) its bytes are not read. False where the blob does not hold what the plan
// says.
bool readField(Reader &in, const RemoteSignature &sig, const ValuePlan &p, Field &f, Parts *parts) {
  f = {};
  switch (p.kind) {
  case MarshalKind::Integer:
  case MarshalKind::Float:
  case MarshalKind::GPinHandle:
  case MarshalKind::StructByValue:
    f.present = true;
    if (p.kind == MarshalKind::StructByValue && isByval(sig, p)) {
      f.bytes = p.size;
    } else {
      for (unsigned arg : p.ir_args)
        f.bytes += sig.ir_arg_sizes[arg];
    }
    if (p.kind == MarshalKind::GPinHandle && f.bytes != sizeof(std::uint64_t))
      return false;
    f.data = in.take(f.bytes);
    return f.data != nullptr || f.bytes == 0; // an empty blob has no address
  case MarshalKind::CString:
  case MarshalKind::BufferIn:
  case MarshalKind::BufferInOut:
  case MarshalKind::BufferOut:
  case MarshalKind::StructPtrIn:
  case MarshalKind::StructPtrInOut: {
    std::uint8_t present = 0;
    if (!in.readU8(present) || present > kInOwnPart ||
        (present == kInOwnPart && p.kind != MarshalKind::BufferIn))
      return false;
    f.present = present != 0;
    if (!f.present || p.kind == MarshalKind::BufferOut) // its size follows from the count
      return true;
    if (!in.readU64(f.bytes) || f.bytes > maxCallBytes())
      return false;
    if ((p.kind == MarshalKind::StructPtrIn || p.kind == MarshalKind::StructPtrInOut) &&
        f.bytes != p.size)
      return false;
    if (present == kInOwnPart) {
      if (!parts)
        return true;
      if (parts->next == parts->all.size() || parts->all[parts->next].size != f.bytes)
        return false;
      f.data = parts->all[parts->next++].data;
      return f.data != nullptr || f.bytes == 0;
    }
    f.data = in.take(f.bytes);
    return f.data != nullptr || f.bytes == 0;
  }
  case MarshalKind::Void:
  case MarshalKind::Unmarshalable:
    break;
  }
  return false;
}

// Storage for one decoded call on the serving side, aligned for any value type. Blocks are
// kept between calls (large ones would otherwise be fresh mmap'd pages, zeroed by the kernel
// on every call); reset() hands them out again. Not zeroed: inputs are overwritten, out-only
// buffers are cleared explicitly.
class Arena {
public:
  void reset() { next_ = 0; }

  void *alloc(std::size_t n) {
    std::size_t units = (n + sizeof(std::max_align_t) - 1) / sizeof(std::max_align_t) + 1;
    if (next_ == blocks_.size())
      blocks_.push_back({});
    Block &b = blocks_[next_++];
    if (b.units < units) {
      b.data.reset(new std::max_align_t[units]);
      b.units = units;
    }
    return b.data.get();
  }

private:
  struct Block {
    std::unique_ptr<std::max_align_t[]> data;
    std::size_t units = 0;
  };
  std::vector<Block> blocks_;
  std::size_t next_ = 0;
};

// One arena per nesting level of serveCall on this thread: a call served while another waits
// (A→B→A) must not reuse the waiting call's storage.
class ArenaLease {
public:
  ArenaLease() {
    if (depth_ == pool_.size())
      pool_.push_back(std::make_unique<Arena>());
    arena_ = pool_[depth_++].get();
    arena_->reset();
  }
  ~ArenaLease() {
    // After deep recursion through remote calls, keep a few levels' arenas, not all of them.
    if (--depth_ + kKeptArenas < pool_.size())
      pool_.resize(depth_ + kKeptArenas);
  }
  Arena &operator*() { return *arena_; }

private:
  static constexpr std::size_t kKeptArenas = 64;
  static thread_local std::vector<std::unique_ptr<Arena>> pool_;
  static thread_local std::size_t depth_;
  Arena *arena_;
};

thread_local std::vector<std::unique_ptr<Arena>> ArenaLease::pool_;
thread_local std::size_t ArenaLease::depth_ = 0;

} // namespace

namespace {

// Byte sinks for the one encoder: counting (and listing the parts of their own), then
// writing.
struct CountingSink {
  CallLayout &layout;
  void put(const void *, std::size_t n) { layout.blob_bytes += n; }
  void part(const void *data, std::size_t n) {
    layout.own_parts.push_back({static_cast<const std::uint8_t *>(data), n});
  }
};

struct WritingSink {
  std::uint8_t *p;
  void put(const void *data, std::size_t n) {
    if (n == 0) // an empty buffer may come as a null pointer, which memcpy must not see
      return;
    std::memcpy(p, data, n);
    p += n;
  }
  void part(const void *, std::size_t) {}
};

// Encodes the call's arguments; DIST_IN buffers of `own_part_from` bytes or more (the first
// kMaxOwnParts) go to the sink's part() instead of its blob.
template <typename Sink>
bool encodeCall(const RemoteSignature &sig, void *const *slots, Sink &out, std::string &error,
                std::size_t own_part_from) {
  auto putU8 = [&](std::uint8_t v) { out.put(&v, 1); };
  auto putU64 = [&](std::uint64_t v) { out.put(&v, sizeof v); };
  std::size_t own_parts = 0;
  for (const ValuePlan &p : sig.params) {
    switch (p.kind) {
    case MarshalKind::Integer:
    case MarshalKind::Float:
    case MarshalKind::GPinHandle:
    case MarshalKind::StructByValue:
      if (p.kind == MarshalKind::StructByValue && isByval(sig, p)) {
        out.put(pointerIn(slots, p.ir_args[0]), p.size);
        break;
      }
      for (unsigned arg : p.ir_args)
        out.put(slots[arg], sig.ir_arg_sizes[arg]);
      break;
    case MarshalKind::CString: {
      const char *s = static_cast<const char *>(pointerIn(slots, p.ir_args[0]));
      putU8(s != nullptr);
      if (s) {
        std::size_t n = std::strlen(s);
        putU64(n);
        out.put(s, n);
      }
      break;
    }
    case MarshalKind::BufferIn:
    case MarshalKind::BufferInOut:
    case MarshalKind::BufferOut:
    case MarshalKind::StructPtrIn:
    case MarshalKind::StructPtrInOut: {
      void *ptr = pointerIn(slots, p.ir_args[0]);
      std::uint64_t bytes = p.size;
      if (ptr && isBuffer(p.kind) && p.kind != MarshalKind::BufferOut &&
          !countOf(sig, p, slots, bytes, error))
        return false;
      const bool own_part = ptr && p.kind == MarshalKind::BufferIn && bytes >= own_part_from &&
                            own_parts < kMaxOwnParts;
      putU8(own_part ? kInOwnPart : ptr != nullptr);
      if (!ptr || p.kind == MarshalKind::BufferOut)
        break;
      putU64(bytes);
      if (own_part) {
        out.part(ptr, bytes);
        ++own_parts;
      } else {
        out.put(ptr, bytes);
      }
      break;
    }
    case MarshalKind::Void:
    case MarshalKind::Unmarshalable:
      error = "parameter `" + p.name + "` cannot be marshaled";
      return false;
    }
  }
  return true;
}

} // namespace

bool layoutCall(const RemoteSignature &sig, void *const *slots, CallLayout &layout,
                std::string &error, std::size_t own_part_from) {
  layout = CallLayout{};
  layout.own_part_from = own_part_from;
  CountingSink counter{layout};
  if (!encodeCall(sig, slots, counter, error, own_part_from))
    return false;
  layout.total_bytes = layout.blob_bytes;
  for (const ByteSpan &part : layout.own_parts)
    layout.total_bytes += part.size;
  if (layout.total_bytes > maxCallBytes()) {
    error = "its arguments are " + std::to_string(layout.total_bytes) + " bytes, more than the " +
            std::to_string(maxCallBytes() >> 20) +
            " MiB one call may carry (cluster.yaml's max_message_mb)";
    return false;
  }
  return true;
}

void marshalCallInto(const RemoteSignature &sig, void *const *slots, const CallLayout &layout,
                     std::uint8_t *out) {
  WritingSink writer{out};
  std::string unused; // counts were checked by layoutCall
  (void)encodeCall(sig, slots, writer, unused, layout.own_part_from);
}

bool copiedBackArgumentsOverlap(const RemoteSignature &sig, void *const *slots) {
  auto copied = [](MarshalKind k) { // a pointer argument whose memory is copied
    return isBuffer(k) || k == MarshalKind::StructPtrIn || k == MarshalKind::StructPtrInOut ||
           k == MarshalKind::CString;
  };
  // Most calls have fewer than two: no counts read, no string measured, nothing allocated.
  if (std::count_if(sig.params.begin(), sig.params.end(),
                    [&](const ValuePlan &p) { return copied(p.kind); }) < 2)
    return false;
  struct Range {
    std::uintptr_t begin, end;
    bool copied_back;
  };
  std::vector<Range> ranges;
  for (const ValuePlan &p : sig.params) {
    if (!copied(p.kind))
      continue;
    void *at = pointerIn(slots, p.ir_args.at(0));
    if (!at)
      continue;
    std::uint64_t bytes = p.size;
    std::string unused;
    if (isBuffer(p.kind) && !countOf(sig, p, slots, bytes, unused))
      return false;
    if (p.kind == MarshalKind::CString)
      bytes = std::strlen(static_cast<const char *>(at)) + 1;
    const auto begin = reinterpret_cast<std::uintptr_t>(at);
    ranges.push_back({begin, begin + bytes, copiesOut(p.kind)});
  }
  for (std::size_t i = 0; i < ranges.size(); ++i)
    for (std::size_t j = i + 1; j < ranges.size(); ++j)
      if ((ranges[i].copied_back || ranges[j].copied_back) && ranges[i].begin < ranges[j].end &&
          ranges[j].begin < ranges[i].end)
        return true;
  return false;
}

bool marshalCall(const RemoteSignature &sig, void *const *slots, std::vector<std::uint8_t> &out,
                 std::string &error) {
  CallLayout layout; // every buffer in the blob
  if (!layoutCall(sig, slots, layout, error))
    return false;
  std::size_t at = out.size();
  out.resize(at + layout.blob_bytes);
  marshalCallInto(sig, slots, layout, out.data() + at);
  return true;
}

std::uint64_t maxCallBytes() { return max_call_bytes.load(std::memory_order_relaxed); }

void setMaxCallBytes(std::uint64_t bytes) {
  max_call_bytes.store(bytes, std::memory_order_relaxed);
}

void HandleTable::setTag(std::uint16_t tag) {
  std::lock_guard lock(mu_);
  tag_ = tag;
}

std::uint64_t HandleTable::issue(void *object) {
  if (!object)
    return 0;
  std::lock_guard lock(mu_);
  auto [it, inserted] = ids_.emplace(object, 0);
  if (inserted) {
    it->second = (std::uint64_t(tag_) << 48) | (std::uint64_t(unit_) << 32) | next_++;
    objects_.emplace(it->second, object);
  }
  return it->second;
}

bool HandleTable::resolve(std::uint64_t id, void *&object) const {
  if (id == 0) {
    object = nullptr;
    return true;
  }
  std::lock_guard lock(mu_);
  auto it = objects_.find(id);
  if (it == objects_.end())
    return false;
  object = it->second;
  return true;
}

bool serveCall(const RemoteSignature &sig, DispatchFn dispatch, ByteSpan blob,
               std::span<const ByteSpan> parts, const ReplyAllocator &allocate_reply,
               HandleTable &handles, std::string &error) {
  ArenaLease lease;
  Arena &arena = *lease;
  std::vector<void *> slots(sig.ir_arg_sizes.size(), nullptr);
  for (std::size_t k = 0; k < slots.size(); ++k)
    slots[k] = arena.alloc(std::max<std::uint32_t>(sig.ir_arg_sizes[k], 16));
  auto setPointer = [&](unsigned arg, void *p) { std::memcpy(slots[arg], &p, sizeof p); };
  void *sret_buffer = nullptr;
  if (sig.sret) {
    sret_buffer = arena.alloc(sig.result.size);
    setPointer(sig.result.ir_args.at(0), sret_buffer);
  }

  if (parts.size() > kMaxOwnParts) {
    error = "malformed arguments for `" + sig.name + "`: " + std::to_string(parts.size()) +
            " parts of their own, more than the " + std::to_string(kMaxOwnParts) +
            " a call may have";
    return false;
  }
  Reader in(blob.data, blob.size);
  Parts own{parts};
  std::vector<void *> pointers(sig.params.size(), nullptr);
  std::vector<bool> out_present(sig.params.size(), false);
  std::vector<std::uint64_t> in_bytes(sig.params.size(), 0);
  std::vector<bool> in_present(sig.params.size(), false);
  std::vector<const std::uint8_t *> in_data(sig.params.size(), nullptr); // in the message
  for (std::size_t i = 0; i < sig.params.size(); ++i) {
    const ValuePlan &p = sig.params[i];
    Field f;
    if (!readField(in, sig, p, f, &own)) {
      error = "malformed arguments for `" + sig.name + "` at parameter `" + p.name + "`";
      return false;
    }
    switch (p.kind) {
    case MarshalKind::GPinHandle: {
      std::uint64_t id = 0;
      void *object = nullptr;
      std::memcpy(&id, f.data, sizeof id);
      if (!handles.resolve(id, object)) {
        error = "`" + sig.name + "` not run: parameter `" + p.name + "` is handle " +
                std::to_string(id) + ", which this node never issued";
        return false;
      }
      setPointer(p.ir_args.at(0), object);
      break;
    }
    case MarshalKind::Integer:
    case MarshalKind::Float:
    case MarshalKind::StructByValue:
      if (p.kind == MarshalKind::StructByValue && isByval(sig, p)) {
        void *copy = arena.alloc(p.size);
        if (p.size > 0)
          std::memcpy(copy, f.data, p.size);
        setPointer(p.ir_args[0], copy);
        break;
      }
      for (std::size_t at = 0; unsigned arg : p.ir_args) {
        if (sig.ir_arg_sizes[arg] > 0)
          std::memcpy(slots[arg], f.data + at, sig.ir_arg_sizes[arg]);
        at += sig.ir_arg_sizes[arg];
      }
      break;
    case MarshalKind::CString:
    case MarshalKind::BufferIn:
    case MarshalKind::BufferInOut:
    case MarshalKind::BufferOut:
    case MarshalKind::StructPtrIn:
    case MarshalKind::StructPtrInOut:
      setPointer(p.ir_args[0], nullptr); // a null pointer arrives as null, not as stale bytes
      if (!f.present)
        break;
      if (p.kind == MarshalKind::BufferOut) {
        out_present[i] = true;
        break;
      }
      in_present[i] = true;
      in_bytes[i] = f.bytes;
      in_data[i] = f.data;
      out_present[i] = copiesOut(p.kind);
      if (p.kind == MarshalKind::CString) { // its own copy: the string gets its NUL
        auto *copy = static_cast<std::uint8_t *>(arena.alloc(f.bytes + 1));
        if (f.bytes > 0)
          std::memcpy(copy, f.data, f.bytes);
        copy[f.bytes] = 0;
        pointers[i] = copy;
        setPointer(p.ir_args[0], copy);
      }
      break;
    case MarshalKind::Void:
    case MarshalKind::Unmarshalable:
      break; // readField refused them
    }
  }
  if (!in.done()) {
    error = "malformed arguments for `" + sig.name + "`: trailing bytes";
    return false;
  }
  if (own.next != parts.size()) {
    error = "malformed arguments for `" + sig.name +
            "`: " + std::to_string(parts.size() - own.next) +
            " parts of their own that no parameter has";
    return false;
  }
  // Buffers: the counts are known once every parameter is decoded. What arrived must be
  // exactly count × element size (a callee trusts its count), and an out-only buffer, which
  // costs the sender nothing, must fit in a reply (checked with the reply's size below).
  std::vector<std::uint64_t> out_bytes(sig.params.size(), 0);
  for (std::size_t i = 0; i < sig.params.size(); ++i) {
    const ValuePlan &p = sig.params[i];
    if (!in_present[i] && !out_present[i])
      continue;
    std::uint64_t bytes = p.size;
    if (isBuffer(p.kind)) {
      if (!countOf(sig, p, slots.data(), bytes, error)) {
        error = "malformed arguments for `" + sig.name + "`: " + error;
        return false;
      }
      if (in_present[i] && in_bytes[i] != bytes) {
        error = "malformed arguments for `" + sig.name + "`: parameter `" + p.name + "` carries " +
                std::to_string(in_bytes[i]) + " bytes, but its count says " + std::to_string(bytes);
        return false;
      }
    }
    if (out_present[i])
      out_bytes[i] = bytes;
  }

  // Known before the call, so that a reply too large to send is refused before anything runs.
  std::size_t reply_size = sig.sret ? sig.result.size : sig.ir_return_size;
  for (std::size_t i = 0; i < sig.params.size(); ++i)
    if (out_present[i])
      reply_size += sizeof(std::uint64_t) + out_bytes[i];
  if (reply_size > maxCallBytes()) {
    error = "`" + sig.name + "` not run: its reply would be " + std::to_string(reply_size) +
            " bytes, more than the " + std::to_string(maxCallBytes() >> 20) +
            " MiB one call may carry";
    return false;
  }

  // The reply is made before the call: a buffer that goes back is written by the callee in
  // place, inside the reply, and one that only comes in is read where it arrived, when their
  // addresses suit the elements' alignment; otherwise they get a copy of their own. (For
  // megabyte buffers each copy saved is a pass over the data.)
  std::uint8_t *room = allocate_reply(reply_size);
  std::size_t result_size = sig.sret ? sig.result.size : sig.ir_return_size;
  std::vector<bool> in_reply(sig.params.size(), false);
  std::size_t offset = result_size;
  for (std::size_t i = 0; i < sig.params.size(); ++i) {
    const ValuePlan &p = sig.params[i];
    if (p.kind == MarshalKind::CString || (!in_present[i] && !out_present[i]))
      continue;
    std::uint64_t bytes = out_present[i] ? out_bytes[i] : in_bytes[i];
    // Elements of p.size bytes: aligned to its largest power of two, at most 16.
    std::uintptr_t align = std::min<std::uintptr_t>(16, p.size & (~p.size + 1));
    auto suits = [&](const void *at) {
      return at && align > 0 && reinterpret_cast<std::uintptr_t>(at) % align == 0;
    };
    std::uint8_t *place = nullptr;
    if (out_present[i]) {
      offset += sizeof(std::uint64_t);
      if (suits(room + offset)) {
        place = room + offset;
        in_reply[i] = true;
      }
      offset += bytes;
    } else if (suits(in_data[i])) {
      place = const_cast<std::uint8_t *>(in_data[i]); // the message is this call's
    }
    if (!place) // one spare byte: an empty buffer still gets a valid address
      place = static_cast<std::uint8_t *>(arena.alloc(bytes + 1));
    if (in_present[i] && place != in_data[i] && bytes > 0)
      std::memcpy(place, in_data[i], bytes);
    else if (!in_present[i])        // zeroed, so that elements the callee leaves alone come back
      std::memset(place, 0, bytes); // the same on every run
    pointers[i] = place;
    setPointer(p.ir_args[0], place);
  }

  void *ret = arena.alloc(std::max<std::uint32_t>(sig.ir_return_size, 16));
  std::memset(ret, 0, std::max<std::uint32_t>(sig.ir_return_size, 16));
  dispatch(slots.data(), ret);

  if (sig.result.kind == MarshalKind::GPinHandle) { // the object stays here; its id leaves
    void *object = nullptr;
    std::memcpy(&object, ret, sizeof object);
    std::uint64_t id = handles.issue(object);
    std::memcpy(ret, &id, sizeof id);
  }
  WritingSink reply{room};
  if (sig.sret)
    reply.put(sret_buffer, sig.result.size);
  else
    reply.put(ret, sig.ir_return_size);
  for (std::size_t i = 0; i < sig.params.size(); ++i) {
    if (!out_present[i])
      continue;
    reply.put(&out_bytes[i], sizeof(std::uint64_t));
    if (in_reply[i])
      reply.p += out_bytes[i]; // written there by the callee
    else
      reply.put(pointers[i], out_bytes[i]);
  }
  return true;
}

bool hasInOutArguments(const RemoteSignature &sig) {
  return std::any_of(sig.params.begin(), sig.params.end(), [](const ValuePlan &p) {
    return p.kind == MarshalKind::BufferInOut || p.kind == MarshalKind::StructPtrInOut;
  });
}

namespace {

// Eight bytes at a time: unchanged words are skipped, wholly changed ones stored whole, and in
// the rest each changed byte is stored by itself.
void writeChangedBytesWords(std::uint8_t *dst, const std::uint8_t *now, const std::uint8_t *before,
                            std::size_t n) {
  std::size_t k = 0;
  for (; k + 8 <= n; k += 8) {
    std::uint64_t a, b;
    std::memcpy(&a, now + k, 8);
    std::memcpy(&b, before + k, 8);
    std::uint64_t x = a ^ b;
    if (x == 0)
      continue;
    // Bit 8j+7 of `changed` says whether bits 8j..8j+7 changed: byte j in memory on a
    // little-endian machine, byte 7-j on a big-endian one.
    constexpr std::uint64_t kLow7 = 0x7f7f7f7f7f7f7f7full, kHigh = 0x8080808080808080ull;
    std::uint64_t changed = (((x & kLow7) + kLow7) | x) & kHigh;
    if (changed == kHigh) {
      std::memcpy(dst + k, now + k, 8);
      continue;
    }
    for (; changed != 0; changed &= changed - 1) {
      unsigned j = static_cast<unsigned>(__builtin_ctzll(changed)) / 8;
      unsigned at = std::endian::native == std::endian::little ? j : 7 - j;
      dst[k + at] = static_cast<std::uint8_t>(a >> (8 * j));
    }
  }
  for (; k < n; ++k)
    if (now[k] != before[k])
      dst[k] = now[k];
}

#if defined(__x86_64__)
// Sixty-four bytes at a time with AVX-512BW's byte-masked store, which writes exactly the
// bytes its mask selects (and touches no other).
__attribute__((target("avx512bw"))) void writeChangedBytesAvx512(std::uint8_t *dst,
                                                                 const std::uint8_t *now,
                                                                 const std::uint8_t *before,
                                                                 std::size_t n) {
  std::size_t k = 0;
  for (; k + 64 <= n; k += 64) {
    __m512i a = _mm512_loadu_si512(now + k);
    __mmask64 changed = _mm512_cmpneq_epi8_mask(a, _mm512_loadu_si512(before + k));
    if (changed != 0)
      _mm512_mask_storeu_epi8(dst + k, changed, a);
  }
  writeChangedBytesWords(dst + k, now + k, before + k, n - k);
}
#endif

} // namespace

void writeChangedBytes(std::uint8_t *dst, const std::uint8_t *now, const std::uint8_t *before,
                       std::size_t n) {
#if defined(__x86_64__)
  static const bool avx512 = __builtin_cpu_supports("avx512bw");
  if (avx512 && n >= 64) {
    writeChangedBytesAvx512(dst, now, before, n);
    return;
  }
#endif
  writeChangedBytesWords(dst, now, before, n);
}

bool unmarshalReply(const RemoteSignature &sig, const std::uint8_t *data, std::size_t size,
                    void *const *slots, void *ret, std::string &error, const std::uint8_t *sent,
                    std::size_t sent_size) {
  Reader in(data, size);
  // The sent blob is read alongside, parameter by parameter, for what each in-out argument held
  // when it left. It is this node's own encoding; still, nothing is trusted: where it does not
  // hold what the plan says, the arguments from there on are written whole.
  Reader was(sent ? sent : data, sent ? sent_size : 0);
  bool diffing = sent != nullptr;
  struct Held {
    const std::uint8_t *data = nullptr;
    std::uint64_t bytes = 0;
  };
  auto skipSent = [&](const ValuePlan &p) -> Held {
    Field f;
    diffing = diffing && readField(was, sig, p, f, nullptr);
    return diffing && f.present && copiesOut(p.kind) ? Held{f.data, f.bytes} : Held{};
  };

  bool ok = true;
  if (sig.sret)
    ok = in.read(pointerIn(slots, sig.result.ir_args.at(0)), sig.result.size);
  else if (sig.ir_return_size)
    ok = in.read(ret, sig.ir_return_size);
  for (std::size_t i = 0; ok && i < sig.params.size(); ++i) {
    const ValuePlan &p = sig.params[i];
    const Held before = skipSent(p);
    if (!copiesOut(p.kind))
      continue;
    void *ptr = pointerIn(slots, p.ir_args[0]);
    if (!ptr)
      continue;
    std::uint64_t expected = p.size;
    if (isBuffer(p.kind) && !countOf(sig, p, slots, expected, error))
      return false;
    std::uint64_t bytes = 0;
    const std::uint8_t *now = nullptr;
    ok = in.readU64(bytes) && bytes == expected && (now = in.take(bytes)) != nullptr;
    if (!ok || bytes == 0)
      continue;
    if (before.data && before.bytes == bytes)
      writeChangedBytes(static_cast<std::uint8_t *>(ptr), now, before.data, bytes);
    else
      std::memcpy(ptr, now, bytes);
  }
  if (!ok || !in.done()) {
    error = "malformed reply for `" + sig.name + "`";
    return false;
  }
  return true;
}

} // namespace distnode::jit
