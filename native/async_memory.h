// What an async call does with the memory of each array it is given, so that no JavaScript run while the call
// is in flight (a transfer, a collection, a resize) can make a kernel read or write memory that is no longer
// the call's. docs/async.md states the contract; in short, per array, at the call (on the JavaScript thread):
//
//   owned   memory allocate() made (a block of this file, reached through napi_create_external_arraybuffer):
//           used directly; the call holds one count on the block, so neither a transfer nor a collection of
//           its ArrayBuffer can free it before the call settles.
//   shared  a SharedArrayBuffer (growable or not): never detached, never shrunk, and kept alive by the
//           reference the call holds on the typed array: used directly.
//   staged  everything else (ordinary and resizable ArrayBuffers, Node Buffer memory, other addons' external
//           buffers): Node-API has no way to pin it, so the inputs are copied into memory of the call before it
//           returns, the kernels run on that copy, and the outputs are copied back on the JavaScript thread when
//           the call completes, only if every array of the call is still what it was.
//
// At completion every array of the call is looked at again: one that was detached, or whose length or data
// address changed, makes the promise reject with ERR_INVALID_STATE, and no staged output is written.
#pragma once

#include <node_api.h>

#include <cstddef>

#include "args.h"

namespace rmsnorm {
namespace memory {

// ---------------------------------------------------------------------------------------------------------
// Reference-counted blocks: the memory allocate() hands out. One count belongs to the ArrayBuffer (dropped by
// its finalizer), one to each async call in flight that uses the block; the last drop frees it.

// A new zero-filled ArrayBuffer of `bytes` bytes over a block of this file. Where the runtime refuses external
// buffers, an ordinary ArrayBuffer (async calls then stage it). Returns nullptr with an exception pending.
napi_value allocate(napi_env env, size_t bytes);

// ---------------------------------------------------------------------------------------------------------
// One async call's arrays.

enum class Kind : unsigned char { kNone, kOwned, kShared, kStaged };

class CallMemory {
 public:
  CallMemory() = default;
  CallMemory(const CallMemory&) = delete;
  CallMemory& operator=(const CallMemory&) = delete;
  ~CallMemory();

  // On the JavaScript thread, after the arguments were checked into `p` and before a job is bound to them:
  // holds a reference to every array argument, classifies its memory, and for staged arrays points the
  // slot's array in p (reached by its role) at a copy (inputs, and outputs the op table marks `reads`, copied in
  // now). Throws a Napi::Error (allocation failure) with nothing held.
  void Prepare(napi_env env, const args::OpSpec& op, napi_value* argv, args::Parsed& p);

  // On the JavaScript thread, once the job has run: when every array is still attached, with the length and
  // address it had at the call, copies the staged outputs back (for arrays with rows, only the rows' groups of
  // dim values: the gaps of a strided layout are never written) and returns nullptr; otherwise writes nothing
  // and returns an Error with code ERR_INVALID_STATE naming the first array that changed. Releases nothing
  // (the destructor does).
  napi_value Finish(napi_env env, const char* op_name);

 private:
  struct Held {
    Kind kind = Kind::kNone;
    napi_ref ref = nullptr;
    const char* name = nullptr;
    void* user = nullptr;  // the array's data at the call
    size_t length = 0;     // its length in elements at the call
    size_t bytes = 0;
    void* staged = nullptr;  // kStaged: the call's copy (owned here unless alias >= 0)
    size_t capacity = 0;     // its allocated size
    int alias = -1;          // kStaged: the slot whose copy this one shares (an exact in-place view)
    bool copy_out = false;   // kStaged outputs
    // kStaged outputs with rows: only the values the kernel writes are copied back (rows of `heads` groups of
    // dim values), never the gaps between them, which other calls or JavaScript may own (a fused QKV buffer).
    bool rowed = false;
    size_t rows = 0, row_stride = 0, heads = 1, head_stride = 0, dim = 0;
    void* block = nullptr;  // kOwned: the block holding one count for this call
  };
  void copy_back(const Held& h);

  Held held_[args::kMaxSlots];
  size_t n_ = 0;
  napi_env env_ = nullptr;
};

}  // namespace memory
}  // namespace rmsnorm
