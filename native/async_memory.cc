// See async_memory.h for the rule per kind of memory.
#include "async_memory.h"

#include <napi.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>

#ifdef _WIN32
#include <windows.h>
#else
#include <sys/mman.h>
#endif

namespace rmsnorm {
namespace memory {

namespace {

// ---------------------------------------------------------------------------------------------------------
// Blocks. A finalizer may run on any thread that drops the last holder of an ArrayBuffer's memory (a worker
// it was transferred to, say), so the registry is guarded by a mutex. It holds no JavaScript value.

struct Block {
  void* data;
  size_t bytes;
  size_t refs;
};

std::mutex& registry_mutex() {
  static std::mutex m;
  return m;
}
std::map<uintptr_t, Block*>& registry() {
  static std::map<uintptr_t, Block*> blocks;
  return blocks;
}

// A count on the live block that holds [data, data + bytes), or nullptr when no block does.
Block* acquire(const void* data, size_t bytes) {
  const auto start = reinterpret_cast<uintptr_t>(data);
  std::lock_guard<std::mutex> lock(registry_mutex());
  auto& blocks = registry();
  auto it = blocks.upper_bound(start);
  if (it == blocks.begin()) return nullptr;
  --it;
  Block* b = it->second;
  if (start < it->first || start + bytes > it->first + b->bytes) return nullptr;
  ++b->refs;
  return b;
}

void release(Block* b) {
  {
    std::lock_guard<std::mutex> lock(registry_mutex());
    if (--b->refs > 0) return;
    registry().erase(reinterpret_cast<uintptr_t>(b->data));
  }
  std::free(b->data);
  delete b;
}

void finalize_block(napi_env, void*, void* hint) { release(static_cast<Block*>(hint)); }

// Staging copies are taken from a few recently freed ones when one is large enough: a fresh large allocation
// is fresh pages, and faulting them in on the JavaScript thread cost more than the copy itself (64 x 4096
// float32: ~0.6 ms per call instead of ~0.1 ms). At most kCachedCopies copies and kCachedBytes bytes are kept,
// for the life of the process: a bound on what idle memory this costs, not a tuning of speed (larger copies
// are dominated by the copying itself).
constexpr size_t kCachedCopies = 4;
constexpr size_t kCachedBytes = size_t(16) << 20;

struct Cached {
  void* data;
  size_t capacity;
};
std::mutex& cache_mutex() {
  static std::mutex m;
  return m;
}
struct Cache {
  Cached entries[kCachedCopies] = {};
  size_t n = 0, bytes = 0;
  ~Cache();
};
Cache& cache() {
  static Cache c;
  return c;
}

// Copies of a megabyte or more are mapped pages of their own, returned to the system when freed: from the
// C heap they would stay in the arena of the thread that freed them (each worker thread has its own), which
// showed as RSS growth of tens of megabytes per terminated worker.
constexpr size_t kMappedMinBytes = size_t(1) << 20;

void* map_copy(size_t bytes) {
  if (bytes < kMappedMinBytes) return std::malloc(bytes);
#ifdef _WIN32
  return VirtualAlloc(nullptr, bytes, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE);
#else
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return p == MAP_FAILED ? nullptr : p;
#endif
}

void unmap_copy(void* data, size_t capacity) {
  if (capacity < kMappedMinBytes) return std::free(data);
#ifdef _WIN32
  VirtualFree(data, 0, MEM_RELEASE);
#else
  munmap(data, capacity);
#endif
}

Cache::~Cache() {
  for (size_t i = 0; i < n; ++i) unmap_copy(entries[i].data, entries[i].capacity);
}

void* take_copy(size_t bytes, size_t& capacity) {
  {
    std::lock_guard<std::mutex> lock(cache_mutex());
    Cache& c = cache();
    size_t best = c.n;
    for (size_t i = 0; i < c.n; ++i) {
      if (c.entries[i].capacity >= bytes && (best == c.n || c.entries[i].capacity < c.entries[best].capacity)) best = i;
    }
    if (best < c.n) {
      const Cached e = c.entries[best];
      c.entries[best] = c.entries[--c.n];
      c.bytes -= e.capacity;
      capacity = e.capacity;
      return e.data;
    }
  }
  capacity = bytes;
  return map_copy(bytes);
}

void give_copy(void* data, size_t capacity) {
  if (!data) return;
  if (capacity <= kCachedBytes) {
    std::lock_guard<std::mutex> lock(cache_mutex());
    Cache& c = cache();
    // Make room by dropping the smallest copies kept (the large ones are the expensive ones to fault in).
    while (c.n > 0 && (c.n == kCachedCopies || c.bytes + capacity > kCachedBytes)) {
      size_t smallest = 0;
      for (size_t i = 1; i < c.n; ++i) {
        if (c.entries[i].capacity < c.entries[smallest].capacity) smallest = i;
      }
      if (c.entries[smallest].capacity > capacity) break;
      unmap_copy(c.entries[smallest].data, c.entries[smallest].capacity);
      c.bytes -= c.entries[smallest].capacity;
      c.entries[smallest] = c.entries[--c.n];
    }
    if (c.n < kCachedCopies && c.bytes + capacity <= kCachedBytes) {
      c.entries[c.n++] = Cached{data, capacity};
      c.bytes += capacity;
      return;
    }
  }
  unmap_copy(data, capacity);
}

[[noreturn]] void throw_error(napi_env env, const char* code, const std::string& message) {
  Napi::Error error = Napi::Error::New(env, message);
  error.Set("code", Napi::String::New(env, code));
  throw error;
}

// Outputs that a kernel also reads, as the op table marks them: residual (residual += x) always, dweight and
// dbias when the call accumulates.
bool output_is_read(const args::Slot& slot, const args::Parsed& p) {
  return slot.reads == args::Reads::kAlways || (slot.reads == args::Reads::kWithAccumulate && p.accumulate);
}

}  // namespace

napi_value allocate(napi_env env, size_t bytes) {
  napi_value buffer = nullptr;
  if (bytes == 0) {
    void* unused;
    if (napi_create_arraybuffer(env, 0, &unused, &buffer) != napi_ok) return nullptr;
    return buffer;
  }
  void* data = std::calloc(bytes, 1);
  if (!data) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "rmsnorm: cannot allocate that many bytes");
    return nullptr;
  }
  auto* b = new Block{data, bytes, 1};
  {
    std::lock_guard<std::mutex> lock(registry_mutex());
    registry()[reinterpret_cast<uintptr_t>(data)] = b;
  }
  if (napi_create_external_arraybuffer(env, data, bytes, finalize_block, b, &buffer) == napi_ok) return buffer;
  // External buffers refused (a runtime with a memory sandbox): an ordinary ArrayBuffer, which async calls stage.
  release(b);
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (pending) return nullptr;
  void* unused;
  if (napi_create_arraybuffer(env, bytes, &unused, &buffer) != napi_ok) return nullptr;
  return buffer;
}

// ---------------------------------------------------------------------------------------------------------

CallMemory::~CallMemory() {
  for (size_t i = 0; i < n_; ++i) {
    Held& h = held_[i];
    if (h.ref) napi_delete_reference(env_, h.ref);
    if (h.kind == Kind::kStaged && h.alias < 0) give_copy(h.staged, h.capacity);
    if (h.kind == Kind::kOwned) release(static_cast<Block*>(h.block));
  }
}

void CallMemory::Prepare(napi_env env, const args::OpSpec& op, napi_value* argv, args::Parsed& p) {
  env_ = env;
  const size_t n_slots = op.slots.size();
  for (size_t i = 0; i < n_slots; ++i) {
    args::ArrayArg& a = p[op.slots[i].role];  // the checked array, by its role
    Held& h = held_[i];
    n_ = i + 1;
    if (!a.present) continue;
    h.name = op.slots[i].name;
    h.user = a.data;
    h.length = a.length;
    h.bytes = a.bytes();
    if (napi_create_reference(env, argv[i], 1, &h.ref) != napi_ok)
      throw_error(env, "ERR_INVALID_STATE", "rmsnorm: cannot hold the arrays of the call");
    if (h.bytes == 0) continue;  // no memory to keep
    if (void* block = acquire(a.data, h.bytes)) {
      h.kind = Kind::kOwned;
      h.block = block;
      continue;
    }
    napi_value buffer;
    bool plain = true;
    if (napi_get_typedarray_info(env, argv[i], nullptr, nullptr, nullptr, &buffer, nullptr) != napi_ok ||
        napi_is_arraybuffer(env, buffer, &plain) != napi_ok) {
      throw_error(env, "ERR_INVALID_STATE", "rmsnorm: cannot read the buffer of " + args::quoted(h.name));
    }
    if (!plain) {  // a typed array's buffer that is not an ArrayBuffer is a SharedArrayBuffer
      h.kind = Kind::kShared;
      continue;
    }
    h.kind = Kind::kStaged;
    h.copy_out = op.slots[i].output;
    if (op.slots[i].len == args::Len::kTotal) {
      h.rowed = true;
      h.rows = p.rows;
      h.row_stride = p.stride[args::role_index(op.slots[i].role)];
      h.heads = p.heads;
      h.head_stride = p.head_stride;
      h.dim = p.dim;
    }
    // An output that is exactly an input's view (in place) shares that input's copy.
    for (size_t j = 0; j < i; ++j) {
      if (held_[j].kind == Kind::kStaged && held_[j].user == h.user && held_[j].bytes == h.bytes) {
        h.alias = static_cast<int>(j);
        h.staged = held_[j].alias >= 0 ? held_[held_[j].alias].staged : held_[j].staged;
        break;
      }
    }
    if (h.alias < 0) {
      h.staged = take_copy(h.bytes, h.capacity);
      if (!h.staged) {
        h.kind = Kind::kNone;
        throw_error(env, "ERR_OUT_OF_RANGE",
                    "rmsnorm: cannot allocate a copy of " + args::quoted(h.name) + " for an async call");
      }
      if (!op.slots[i].output || output_is_read(op.slots[i], p)) std::memcpy(h.staged, h.user, h.bytes);
    }
    a.data = h.staged;
  }
}

void CallMemory::copy_back(const Held& h) {
  const size_t elem = h.length ? h.bytes / h.length : 0;
  if (!h.rowed || (h.head_stride == h.dim && h.row_stride == h.heads * h.dim)) {  // dense: one block
    std::memcpy(h.user, h.staged, h.rowed ? h.rows * h.row_stride * elem : h.bytes);
    return;
  }
  auto* to = static_cast<unsigned char*>(h.user);
  const auto* from = static_cast<const unsigned char*>(h.staged);
  for (size_t r = 0; r < h.rows; ++r) {
    for (size_t g = 0; g < h.heads; ++g) {
      const size_t at = (r * h.row_stride + g * h.head_stride) * elem;
      std::memcpy(to + at, from + at, h.dim * elem);
    }
  }
}

napi_value CallMemory::Finish(napi_env env, const char* op_name) {
  for (size_t i = 0; i < n_; ++i) {
    const Held& h = held_[i];
    if (!h.ref) continue;
    napi_value value;
    size_t length = 0;
    void* data = nullptr;
    const bool same = napi_get_reference_value(env, h.ref, &value) == napi_ok && value != nullptr &&
                      napi_get_typedarray_info(env, value, nullptr, &length, &data, nullptr, nullptr) == napi_ok &&
                      length == h.length && (h.bytes == 0 || data == h.user);
    if (!same) {
      const std::string message = args::quoted(h.name) + " was detached or resized while " + op_name +
                                  "Async ran; the result was not delivered";
      napi_value code, text, error;
      if (napi_create_string_utf8(env, "ERR_INVALID_STATE", NAPI_AUTO_LENGTH, &code) != napi_ok ||
          napi_create_string_utf8(env, message.c_str(), NAPI_AUTO_LENGTH, &text) != napi_ok ||
          napi_create_error(env, code, text, &error) != napi_ok) {
        return nullptr;
      }
      return error;
    }
  }
  for (size_t i = 0; i < n_; ++i) {
    const Held& h = held_[i];
    if (h.kind == Kind::kStaged && h.copy_out) copy_back(h);
  }
  return nullptr;
}

}  // namespace memory
}  // namespace rmsnorm
