// Node-API entry points. The TypeScript facade (lib/validate.ts) checks every argument first and produces the
// user-facing errors; this file checks again, defensively, so that a call that slips past the facade gets an
// exception and never reaches a kernel with bad pointers or lengths. The overlap checks between arrays are
// made only here when the native module is in use (from the data pointers read anyway), with the same messages
// as lib/validate.ts.
//
// Each op is described by its OpSpec (native/ops.gen.h, generated from lib/op-table.ts); parse() reads the arguments
// and args::check() applies the rules (plain C++, so fuzz/args_fuzz.cc can drive the same rules without Node); the
// checked arguments become a Job: plain C++ with no Node-API inside, run on the calling thread.
//
// The hot path of a call: one callback, one napi_get_typedarray_info per array, a few napi_get_value_double,
// no allocation for forward ops.
#include <napi.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <vector>

#include "args.h"
#include "async_memory.h"
#include "cpu.h"
#include "kernels.h"
#include "pool.h"

namespace {

using rmsnorm::BackwardArgs;
using rmsnorm::bf16_t;
using rmsnorm::f16_t;
using rmsnorm::KernelTable;
using rmsnorm::NormArgs;

[[noreturn]] void fail(napi_env env, const char* code, const std::string& message, bool range = false) {
  Napi::Error error =
      range ? Napi::Error(Napi::RangeError::New(env, message)) : Napi::Error(Napi::TypeError::New(env, message));
  error.Set("code", Napi::String::New(env, code));
  throw error;
}

namespace args = rmsnorm::args;
using args::ArrayArg;
using args::kAddRmsNorm;
using args::kLayerNorm;
using args::kLayerNormBackward;
using args::kMaxSlots;
using args::kRmsNorm;
using args::kRmsNormBackward;
using args::OpSpec;
using args::Parsed;
using args::quoted;
using args::Role;
using args::Type;

bool is_detached(napi_env env, napi_value typed_array) {
  napi_value buffer;
  bool detached = false;
  return napi_get_typedarray_info(env, typed_array, nullptr, nullptr, nullptr, &buffer, nullptr) == napi_ok &&
         napi_is_detached_arraybuffer(env, buffer, &detached) == napi_ok && detached;
}

// Reads a typed-array argument with one napi call (two for null, undefined and non-arrays).
void read_array(napi_env env, napi_value v, args::RawArray& r) {
  napi_typedarray_type type;
  // Not asking for the ArrayBuffer: creating its handle costs as much as the rest of the call.
  if (napi_get_typedarray_info(env, v, &type, &r.length, &r.data, nullptr, nullptr) == napi_ok) {
    switch (type) {
      case napi_float32_array: r.type = Type::kF32; break;
      case napi_float64_array: r.type = Type::kF64; break;
      case napi_uint16_array: r.type = Type::kU16; break;
      default: r.kind = args::RawArray::kOtherTyped; return;
    }
    r.kind = args::RawArray::kTyped;
    r.detached = r.length == 0 && is_detached(env, v);
    return;
  }
  napi_valuetype t;
  r.kind = napi_typeof(env, v, &t) == napi_ok && (t == napi_null || t == napi_undefined) ? args::RawArray::kNullish
                                                                                         : args::RawArray::kOther;
}

// For convert(): one array argument, read and checked on its own (throws unless it is a non-detached
// Float32Array, Float64Array or Uint16Array).
ArrayArg read_array(napi_env env, napi_value v, const char* name) {
  args::RawArray r;
  read_array(env, v, r);
  if (r.kind != args::RawArray::kTyped) {
    fail(env, "ERR_INVALID_ARG_TYPE", quoted(name) + " must be a Float32Array, Float64Array or Uint16Array");
  }
  if (r.length == 0 && r.detached)
    fail(env, "ERR_INVALID_ARG_VALUE", quoted(name) + " must not be on a detached ArrayBuffer");
  ArrayArg a;
  a.present = true;
  a.type = r.type;
  a.length = r.length;
  a.data = r.data;
  return a;
}

double read_number(napi_env env, napi_value v, const char* name) {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok)
    fail(env, "ERR_INVALID_ARG_TYPE", quoted(name) + " must be of type number");
  return d;
}

// Reads every argument of `op`, then checks them all (native/args.h); throws the first rule broken.
Parsed parse(napi_env env, const OpSpec& op, napi_value* argv, size_t argc) {
  args::RawArgs raw;
  raw.argc = argc;
  if (argc == args::arity(op) || argc == args::arity(op) - op.n_layout) {
    const size_t n_slots = op.slots.size();
    for (size_t i = 0; i < n_slots; ++i) read_array(env, argv[i], raw.arrays[i]);
    for (size_t j = 0; j < argc - n_slots; ++j) {
      args::RawScalar& r = raw.scalars[j];
      if (args::kScalarIsBoolean[static_cast<size_t>(op.scalars[j])]) {
        r.ok = napi_get_value_bool(env, argv[n_slots + j], &r.boolean) == napi_ok;
      } else {
        r.ok = napi_get_value_double(env, argv[n_slots + j], &r.number) == napi_ok;
      }
    }
  }
  Parsed p;
  args::Error e;
  if (!args::check(op, raw, p, e)) fail(env, e.code, e.message, e.range);
  return p;
}

template <typename T>
const T* in(const ArrayArg& a) {
  return a.present ? static_cast<const T*>(a.data) : nullptr;
}
template <typename T>
T* out(const ArrayArg& a) {
  return a.present ? static_cast<T*>(a.data) : nullptr;
}

// ---------------------------------------------------------------------------------------------------------
// Jobs: checked arguments bound to a kernel; Run() touches no JavaScript value.

struct Job {
  unsigned threads = 1;  // the most threads this job may use (the instance's setThreads value)
  // kNormal: the calling thread and the normal pool (sync calls, async calls run inline). kBackground: all of the
  // row work on the low-priority pool, even a single block (async calls run off-thread; pool.h).
  rmsnorm::PoolKind pool = rmsnorm::PoolKind::kNormal;
  double patience_ns = 0;                 // kBackground: when the caller stops waiting and works itself (pool.h)
  rmsnorm::CallParams* params = nullptr;  // the kernel's scalars (the Addon may turn `stream` off after binding)
  virtual ~Job() = default;
  virtual void Run() = 0;
};

// Outputs at least this large are candidates for non-temporal stores ("large"): they cannot stay in cache for
// whoever reads them next, and streaming them skips reading each destination line before overwriting it.
// Only rows of at least a page are candidates: a row that starts or ends inside a cache line writes that line
// partly with ordinary stores and partly with streaming ones, and short rows (a 128-value head of QK-norm: 8
// lines, 2 of them shared) lose far more than streaming saves (measured on 65536 x 128 float32: 7x slower
// streamed); from a page up, the shared lines are at most 2 in 64. Whether a candidate does stream is measured
// by the calls themselves (StreamChoice).
constexpr size_t kStreamMinRowBytes = 4096;
constexpr size_t kStreamMinBytes = size_t(8) << 20;

// RMSNORM_STREAM=0: every output written with ordinary stores; RMSNORM_STREAM=1: every large output streamed
// (also what RMSNORM_CALIBRATE=0 gives); otherwise each kind of large call measures both ways (StreamChoice).
enum class StreamMode { kMeasured, kNever, kAlways };
StreamMode stream_mode() {
  static const StreamMode mode = [] {
    const char* v = std::getenv("RMSNORM_STREAM");
    if (v && std::strcmp(v, "0") == 0) return StreamMode::kNever;
    if (v && std::strcmp(v, "1") == 0) return StreamMode::kAlways;
    const char* c = std::getenv("RMSNORM_CALIBRATE");
    return c && std::strcmp(c, "0") == 0 ? StreamMode::kAlways : StreamMode::kMeasured;
  }();
  return mode;
}

template <typename T, typename W>
struct ForwardJob final : Job {
  rmsnorm::RowKernel<T, W> kernel;
  NormArgs<T, W> args;
  void Run() override {
    const size_t rows = args.rows;
    if (rows == 0) return;
    // Up to four row blocks per thread, handed out as threads come free: a pool thread that wakes late (or a
    // core another process holds) leaves its blocks to the others instead of holding the call up.
    // Async calls cut finer still (sixteen per thread): a block an idle-priority thread holds while other
    // processes keep every core busy is work the calling thread cannot take over (pool.h, patience).
    const size_t per_thread = pool == rmsnorm::PoolKind::kBackground ? 16 : 4;
    const size_t want = threads <= 1 && pool == rmsnorm::PoolKind::kNormal ? 1 : per_thread * threads;
    const size_t tasks = rows < want ? rows : want;
    if (tasks <= 1 && pool == rmsnorm::PoolKind::kNormal) return kernel(args, 0, rows);
    // Contiguous row blocks; rows are independent, so the result is the same for any partition.
    auto block = [&](size_t t) { kernel(args, t * rows / tasks, (t + 1) * rows / tasks); };
    rmsnorm::parallel_for(tasks, threads, block, pool, patience_ns);
  }
};

// dweight/dbias are reduced over fixed blocks of rows chosen from the shape alone (at most kMaxBlocks), each
// block summed in row order in double, then the blocks in block order: the same bits however the blocks are
// scheduled. The per-block sums live in a scratch buffer kept per thread, so repeated calls do not pay for
// fresh pages.
template <typename T, typename W>
struct BackwardJob final : Job {
  using S = rmsnorm::Stat<T>;
  rmsnorm::BackwardKernel<T, W> kernel;
  BackwardArgs<T, W> args;
  S* dweight = nullptr;
  S* dbias = nullptr;
  bool accumulate = false;

  static constexpr size_t kMaxBlocks = 16;
  static constexpr size_t kMinBlockRows = 16;

  static std::vector<double>& Scratch(size_t size) {
    thread_local std::vector<double> scratch;
    if (scratch.size() < size) scratch.resize(size);
    return scratch;
  }

  void Run() override {
    const size_t rows = args.rows, dim = args.dim;
    // At least kMinBlockRows rows per block: small calls keep their partial sums few and in cache.
    const size_t by_rows = (rows + kMinBlockRows - 1) / kMinBlockRows;
    const size_t blocks = by_rows < kMaxBlocks ? by_rows : kMaxBlocks;
    double* dw = nullptr;
    double* db = nullptr;
    // Both sums always have room, wanted or not: the kernel's column loop then never tests for them.
    if (blocks > 0) {
      std::vector<double>& scratch = Scratch(2 * blocks * dim);
      dw = scratch.data();
      db = scratch.data() + blocks * dim;
    }
    auto block = [&](size_t b) {
      kernel(args, b * rows / blocks, (b + 1) * rows / blocks, dw + b * dim, db + b * dim);
    };
    rmsnorm::parallel_for(blocks, threads, block, pool, patience_ns);
    Reduce(dw, dweight, blocks);
    Reduce(db, dbias, blocks);
  }

  // Sums the blocks into the first, in block order (row-contiguous, so it vectorizes), then stores.
  void Reduce(double* partial, S* target, size_t blocks) const {
    if (!target) return;
    const size_t dim = args.dim;
    if (blocks == 0) {
      if (!accumulate) std::fill(target, target + dim, S(0));
      return;
    }
    for (size_t b = 1; b < blocks; ++b) {
      const double* p = partial + b * dim;
      for (size_t j = 0; j < dim; ++j) partial[j] += p[j];
    }
    for (size_t j = 0; j < dim; ++j) {
      target[j] = static_cast<S>(accumulate ? static_cast<double>(target[j]) + partial[j] : partial[j]);
    }
  }
};

template <typename... Ts>
constexpr size_t max_sizeof() {
  size_t m = 0;
  for (size_t s : {sizeof(Ts)...}) m = s > m ? s : m;
  return m;
}

// Room for the one job a call needs, constructed in place: a synchronous call builds it on the stack (no
// allocation on the hot path) and initializes only that job.
class AnyJob {
 public:
  AnyJob() = default;
  AnyJob(const AnyJob&) = delete;
  AnyJob& operator=(const AnyJob&) = delete;
  ~AnyJob() {
    if (active) active->~Job();
  }

  template <typename J>
  J& emplace() {
    static_assert(sizeof(J) <= sizeof(storage_), "AnyJob storage too small");
    J* job = new (storage_) J();
    active = job;
    return *job;
  }

  Job* active = nullptr;

 private:
  alignas(16) unsigned char storage_[max_sizeof<
      ForwardJob<float, float>, ForwardJob<double, double>, ForwardJob<bf16_t, bf16_t>, ForwardJob<bf16_t, float>,
      ForwardJob<f16_t, f16_t>, ForwardJob<f16_t, float>, BackwardJob<float, float>, BackwardJob<double, double>,
      BackwardJob<bf16_t, bf16_t>, BackwardJob<bf16_t, float>, BackwardJob<f16_t, f16_t>, BackwardJob<f16_t, float>>()];
};

// The call's scalars, for any op.
template <typename T>
rmsnorm::CallParams call_params(const Parsed& p) {
  rmsnorm::CallParams c;
  c.rows = p.rows * p.heads;
  c.dim = p.dim;
  c.heads = p.heads;
  c.head_stride = p.head_stride;
  c.x_stride = p.stride[args::role_index(Role::kX)];
  c.y_stride = p.stride[args::role_index(Role::kOut)];
  c.res_stride = p.stride[args::role_index(Role::kResidual)];
  c.dy_stride = p.stride[args::role_index(Role::kDy)];
  c.dx_stride = p.stride[args::role_index(Role::kDx)];
  c.residual_scale = p.residual_scale;
  c.k = p.k;
  c.eps = p.eps;
  c.offset = p.offset;
  c.llama = p.llama;
  c.large = c.rows * p.dim * sizeof(T) >= kStreamMinBytes && p.dim * sizeof(T) >= kStreamMinRowBytes;
  c.stream = c.large && stream_mode() != StreamMode::kNever;  // the Addon may turn it off (StreamChoice)
  return c;
}

// Binds the checked arrays to a forward kernel by role (roles an op lacks are absent, so null).
template <typename T, typename W>
void bind_forward(AnyJob& job, rmsnorm::RowKernel<T, W> kernel, const Parsed& p) {
  using S = rmsnorm::Stat<T>;
  ForwardJob<T, W>& j = job.emplace<ForwardJob<T, W>>();
  j.kernel = kernel;
  NormArgs<T, W>& a = j.args;
  static_cast<rmsnorm::CallParams&>(a) = call_params<T>(p);
  j.params = &a;
  a.x = in<T>(p[Role::kX]);
  a.y = out<T>(p[Role::kOut]);
  a.weight = in<W>(p[Role::kWeight]);
  a.bias = in<W>(p[Role::kBias]);
  a.rstd = out<S>(p[Role::kRstd]);
  a.mean = out<S>(p[Role::kMean]);
  a.residual = out<T>(p[Role::kResidual]);
}

template <typename T, typename W>
void bind_backward(AnyJob& job, rmsnorm::BackwardKernel<T, W> kernel, const Parsed& p) {
  using S = rmsnorm::Stat<T>;
  BackwardJob<T, W>& j = job.emplace<BackwardJob<T, W>>();
  j.kernel = kernel;
  BackwardArgs<T, W>& a = j.args;
  static_cast<rmsnorm::CallParams&>(a) = call_params<T>(p);
  j.params = &a;
  a.dy = in<T>(p[Role::kDy]);
  a.x = in<T>(p[Role::kX]);
  a.weight = in<W>(p[Role::kWeight]);
  a.mean = in<S>(p[Role::kMean]);
  a.rstd = in<S>(p[Role::kRstd]);
  a.dx = out<T>(p[Role::kDx]);
  j.dweight = out<S>(p[Role::kDweight]);
  j.dbias = out<S>(p[Role::kDbias]);
  j.accumulate = p.accumulate;
}

// Binds the checked arguments of `op` to its kernel in one OpTable.
template <typename T, typename W>
void bind_with(AnyJob& job, const OpSpec& op, const rmsnorm::OpTable<T, W>& t, const Parsed& p) {
  if (&op == &args::kRmsNorm) return bind_forward(job, t.rms_norm, p);
  if (&op == &args::kLayerNorm) return bind_forward(job, t.layer_norm, p);
  if (&op == &args::kAddRmsNorm) return bind_forward(job, t.add_rms_norm, p);
  if (&op == &args::kRmsNormBackward) return bind_backward(job, t.rms_norm_backward, p);
  bind_backward(job, t.layer_norm_backward, p);
}

void bind(AnyJob& job, const OpSpec& op, const KernelTable* t, const Parsed& p) {
  const bool w32 = p.param == Type::kF32;
  switch (p.data) {
    case Type::kF64: return bind_with(job, op, t->f64, p);
    case Type::kU16:
      if (p.dtype == args::kBFloat16) return w32 ? bind_with(job, op, t->bf16_w32, p) : bind_with(job, op, t->bf16, p);
      return w32 ? bind_with(job, op, t->f16_w32, p) : bind_with(job, op, t->f16, p);
    default: return bind_with(job, op, t->f32, p);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Async calls: the same job, run on a libuv thread. What happens to the memory of each array (used directly,
// or staged through a copy) and the check at completion are in async_memory.h.

struct AsyncCall {
  AnyJob job;
  rmsnorm::memory::CallMemory memory;  // holds the arrays until the call settles
  const char* name = nullptr;
  napi_deferred deferred = nullptr;
  napi_async_work work = nullptr;

  static void Execute(napi_env, void* data) { static_cast<AsyncCall*>(data)->job.active->Run(); }

  static void Complete(napi_env env, napi_status status, void* data) {
    auto* call = static_cast<AsyncCall*>(data);
    napi_delete_async_work(env, call->work);
    if (status == napi_ok) {
      // an array detached or resized while the call ran: reject, write nothing.
      napi_value error = call->memory.Finish(env, call->name);
      if (error) {
        napi_reject_deferred(env, call->deferred, error);
      } else {
        napi_value undefined;
        napi_get_undefined(env, &undefined);
        napi_resolve_deferred(env, call->deferred, undefined);
      }
    } else {
      napi_value message, error;
      napi_create_string_utf8(env, "rmsnorm: the async call was cancelled", NAPI_AUTO_LENGTH, &message);
      napi_create_error(env, nullptr, message, &error);
      napi_reject_deferred(env, call->deferred, error);
    }
    delete call;
  }
};

// ---------------------------------------------------------------------------------------------------------
// Where a call runs, from measurements made once per process on this machine (not constants tuned on one
// CPU): round trips to a pool thread (the fastest of a few: a lower bound on what handing work to another
// thread costs), to a thread still spinning after its last job (Rh: a call right after another) and to a
// blocked one (Rb: a call after a pause), and the speed of the instance's float32 rmsNorm kernel on one
// 4096-value row (its bytes read and written over its time, the fastest of a few runs; in cache, so an upper
// bound on speed). With W the time the call's bytes (its arrays: an upper bound on what it reads and writes)
// take at that speed:
//   - a call runs on more than one thread when W >= 2 Rh (and its arrays hold at least kParallelMinBytes): row
//     blocks go to whichever thread is free, so a helper that is slow to wake costs the caller only the wake-up
//     call and at most the block it took last, and an awake one halves the time;
//   - an async call runs inline (on the JavaScript thread, resolved when it returns) when W < Rb: handing it
//     to another thread and back would take longer than doing it (an async call pays far more: libuv's queue
//     and the event loop's wake-up). docs/async.md.
// RMSNORM_CALIBRATE=0 skips the measurements and uses fixed bounds instead (kFixedParallelMinBytes,
// kFixedInlineMaxBytes), for runs that must not depend on them. The measurements take about 1 ms, at the
// first call large enough to ask (kAskMinBytes): smaller calls never parallelize and always run inline; calls
// of kInlineCapBytes and more never run inline.

constexpr size_t kAskMinBytes = size_t(64) << 10;
constexpr double kFixedParallelMinBytes = double(8 << 20);
constexpr double kParallelMinBytes = double(256 << 10);
constexpr double kFixedInlineMaxBytes = double(64 << 10);
// However the measurements come out (a round trip measured on a machine under heavy load can be long), an async
// call of this many bytes or more goes off-thread: it bounds what an inline call can hold the event loop up for.
constexpr double kInlineCapBytes = double(1 << 20);

bool calibration_allowed() {
  static const bool allowed = [] {
    const char* v = std::getenv("RMSNORM_CALIBRATE");
    return !(v && std::strcmp(v, "0") == 0);
  }();
  return allowed;
}

// The round trip to a pool thread that is blocked (a call after a pause), and to one still spinning after its
// last job (a call right after another).
double round_trip_ns(bool blocked) {
  static std::once_flag once;
  static double ns[2] = {0, 0};
  std::call_once(once, [] {
    ns[0] = rmsnorm::round_trip_ns(false);
    ns[1] = rmsnorm::round_trip_ns(true);
  });
  return ns[blocked ? 1 : 0];
}

// Bytes the kernels of `t` move per nanosecond on a 4096-value float32 row (x read, out written).
double kernel_bytes_per_ns(const KernelTable* t) {
  constexpr size_t kDim = 4096;
  std::vector<float> x(kDim), y(kDim);
  for (size_t i = 0; i < kDim; ++i) x[i] = static_cast<float>(i % 7) - 3.0f;
  NormArgs<float, float> a;
  a.rows = 1;
  a.dim = a.k = kDim;
  a.x_stride = a.y_stride = kDim;
  a.x = x.data();
  a.y = y.data();
  double best = 0;
  for (int i = 0; i < 6; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    t->f32.rms_norm(a, 0, 1);
    const double ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
    if (i == 0 || ns < best) best = ns;  // the first run also faults the pages in and warms the caches
  }
  return 2.0 * kDim * sizeof(float) / (best > 1 ? best : 1);
}

// Bytes of every array of the call (its row arrays with their gaps, parameters, statistics).
size_t call_bytes(const Parsed& p) {
  size_t bytes = 0;
  for (const ArrayArg& a : p.arrays) {
    if (a.present) bytes += a.bytes();
  }
  return bytes;
}

// ---------------------------------------------------------------------------------------------------------
// Streamed or ordinary stores for large outputs: chosen by the calls themselves. Which wins depends on the CPU
// and on the op (on Zen 3, streaming made rmsNorm 1.4-1.6x faster and the backward passes, which write four
// rows of dx at once, 1.1-1.3x slower at 2048 x 2560), so no fixed rule holds everywhere. For each op, data type and
// size class (powers of two from kStreamMinBytes), the first large sync calls alternate the two ways,
// streamed first, each timed; after kTrialsPerWay of each, the way with the shorter best time per byte is
// kept for the rest of the process. Both ways write the same bits. Async calls take the way decided so far
// (streamed until then) and are not timed: they share the machine with the JavaScript thread.

class StreamChoice {
 public:
  static constexpr int kTrialsPerWay = 3;
  static constexpr size_t kOps = 5, kTypes = 4, kClasses = 8;

  // The entry for a large call of `op` on data of this type moving `bytes` in all.
  static size_t Slot(const OpSpec& op, const Parsed& p, size_t bytes) {
    const size_t o = &op == &args::kRmsNorm           ? 0
                     : &op == &args::kLayerNorm       ? 1
                     : &op == &args::kAddRmsNorm      ? 2
                     : &op == &args::kRmsNormBackward ? 3
                                                      : 4;
    const size_t t = p.data == Type::kF64 ? 1 : p.data != Type::kU16 ? 0 : p.dtype == args::kBFloat16 ? 2 : 3;
    size_t c = 0;
    for (size_t b = bytes / kStreamMinBytes; b > 1 && c + 1 < kClasses; b >>= 1) ++c;
    return (o * kTypes + t) * kClasses + c;
  }
  // Whether this call streams, and whether it is a trial to time (sync calls only).
  bool Streams(size_t slot, bool sync, bool* trial) const {
    const Entry& e = entries_[slot];
    *trial = sync && e.decided < 0;
    if (e.decided >= 0) return e.decided == 1;
    return sync ? e.tried[1] <= e.tried[0] : true;
  }
  void Record(size_t slot, bool streamed, double ns_per_byte) {
    Entry& e = entries_[slot];
    if (e.decided >= 0) return;
    const int w = streamed ? 1 : 0;
    ++e.tried[w];
    if (ns_per_byte < e.best[w]) e.best[w] = ns_per_byte;
    if (e.tried[0] >= kTrialsPerWay && e.tried[1] >= kTrialsPerWay) e.decided = e.best[1] <= e.best[0] ? 1 : 0;
  }

 private:
  struct Entry {
    int decided = -1;  // -1 still trying; 0 ordinary stores; 1 streamed
    int tried[2] = {0, 0};
    double best[2] = {1e300, 1e300};
  };
  Entry entries_[kOps * kTypes * kClasses];
};

// ---------------------------------------------------------------------------------------------------------
// The addon instance: one per Node.js environment (main thread or worker), holding its kernel choice and
// thread count.

class Addon : public Napi::Addon<Addon> {
 public:
  Addon(Napi::Env env, Napi::Object exports) {
    const KernelTable* tables[rmsnorm::kMaxTables];
    table_ = rmsnorm::supported_tables(tables) > 0 ? tables[0] : &rmsnorm::kernel_table_scalar;
    threads_ = rmsnorm::hardware_threads();
    DefineAddon(exports, {
                             InstanceMethod("supportedIsas", &Addon::SupportedIsas),
                             InstanceMethod("selectIsa", &Addon::SelectIsa),
                             InstanceMethod("isa", &Addon::Isa),
                             InstanceMethod("setThreads", &Addon::SetThreads),
                             InstanceMethod("threads", &Addon::Threads),
                         });
    Export(env, exports, "convert", &Addon::Convert);
    Export(env, exports, "rmsNorm", &Addon::Sync<kRmsNorm>);
    Export(env, exports, "layerNorm", &Addon::Sync<kLayerNorm>);
    Export(env, exports, "addRmsNorm", &Addon::Sync<kAddRmsNorm>);
    Export(env, exports, "rmsNormBackward", &Addon::Sync<kRmsNormBackward>);
    Export(env, exports, "layerNormBackward", &Addon::Sync<kLayerNormBackward>);
    Export(env, exports, "rmsNormAsync", &Addon::Async<kRmsNorm>);
    Export(env, exports, "layerNormAsync", &Addon::Async<kLayerNorm>);
    Export(env, exports, "addRmsNormAsync", &Addon::Async<kAddRmsNorm>);
    Export(env, exports, "rmsNormBackwardAsync", &Addon::Async<kRmsNormBackward>);
    Export(env, exports, "layerNormBackwardAsync", &Addon::Async<kLayerNormBackward>);
    Export(env, exports, "allocate", &Addon::Allocate);
    Export(env, exports, "noop", &Addon::Noop);
  }

  static constexpr unsigned kMaxThreads = 1024;

 private:
  const KernelTable* table_;
  unsigned threads_;
  // The instance's kernel speed (see "Where a call runs"): measured at the first call that asks, and again
  // after selectIsa. < 0: not yet.
  double kernel_bytes_per_ns_ = -1;
  StreamChoice stream_choice_;

  double KernelBytesPerNs() {
    if (kernel_bytes_per_ns_ < 0) kernel_bytes_per_ns_ = kernel_bytes_per_ns(table_);
    return kernel_bytes_per_ns_;
  }
  // Bytes the kernel moves in one round trip to a blocked (or a spinning) pool thread.
  double RoundTripBytes(bool blocked) { return round_trip_ns(blocked) * KernelBytesPerNs(); }
  bool Parallel(double bytes) {
    if (threads_ <= 1 || bytes < kParallelMinBytes) return false;
    return bytes >= (calibration_allowed() ? 2 * RoundTripBytes(false) : kFixedParallelMinBytes);
  }
  // How long the libuv thread of an async call waits for the idle-priority pool before working itself: ten
  // times the call's time at the measured (in-cache) speed, plus 2 ms. Reached only when other processes keep
  // every core busy (the pool's threads then get next to no time); an idle machine finishes well within it.
  // With RMSNORM_CALIBRATE=0, 1 byte/ns stands in for the measured speed (slower than any kernel's).
  double Patience(const Parsed& p) {
    const double speed = calibration_allowed() ? KernelBytesPerNs() : 1.0;
    return 2e6 + 10 * static_cast<double>(call_bytes(p)) / speed;
  }
  bool RunsInline(const Parsed& p) {
    const double bytes = static_cast<double>(call_bytes(p));
    if (bytes < kAskMinBytes) return true;
    if (bytes >= kInlineCapBytes) return false;
    return bytes < (calibration_allowed() ? RoundTripBytes(true) : kFixedInlineMaxBytes) && !Parallel(bytes);
  }

  void Export(napi_env env, Napi::Object exports, const char* name, napi_callback cb) {
    napi_value fn;
    NAPI_THROW_IF_FAILED_VOID(env, napi_create_function(env, name, NAPI_AUTO_LENGTH, cb, this, &fn));
    exports.Set(name, Napi::Value(env, fn));
  }

  // Raw napi_callbacks rather than InstanceMethods: node-addon-api's CallbackInfo heap-allocates the argument
  // list past six arguments, and these calls take up to nineteen.
  static constexpr size_t kMaxArgs = 24;
  template <const OpSpec& kOp>
  static napi_value Sync(napi_env env, napi_callback_info cbinfo) {
    napi_value argv[kMaxArgs];
    size_t argc = kMaxArgs;
    void* self = nullptr;
    if (napi_get_cb_info(env, cbinfo, &argc, argv, nullptr, &self) != napi_ok) return nullptr;
    try {
      if (argc > kMaxArgs) fail(env, "ERR_INVALID_ARG_TYPE", std::string(kOp.name) + ": too many arguments");
      AnyJob job;
      Addon* addon = static_cast<Addon*>(self);
      const Parsed p = parse(env, kOp, argv, argc);
      addon->RunSync(job, addon->Bind(job, kOp, p, true), p);
    } catch (const Napi::Error& e) {
      e.ThrowAsJavaScriptException();
    }
    return nullptr;
  }

  // The same arguments as the sync form; returns a promise of undefined. Bad arguments throw synchronously
  // (the facade turns that into a rejection).
  template <const OpSpec& kOp>
  static napi_value Async(napi_env env, napi_callback_info cbinfo) {
    napi_value argv[kMaxArgs];
    size_t argc = kMaxArgs;
    void* self = nullptr;
    if (napi_get_cb_info(env, cbinfo, &argc, argv, nullptr, &self) != napi_ok) return nullptr;
    try {
      if (argc > kMaxArgs) fail(env, "ERR_INVALID_ARG_TYPE", std::string(kOp.name) + ": too many arguments");
      Addon* addon = static_cast<Addon*>(self);
      Parsed p = parse(env, kOp, argv, argc);
      if (addon->RunsInline(p)) {
        // Done before returning, so no JavaScript can run meanwhile: the arrays are used directly, as by the
        // sync form (nothing held, nothing staged), and the promise is returned resolved.
        AnyJob job;
        addon->RunSync(job, addon->Bind(job, kOp, p, true), p);
        napi_deferred deferred;
        napi_value promise, undefined;
        NAPI_THROW_IF_FAILED(env, napi_create_promise(env, &deferred, &promise), nullptr);
        NAPI_THROW_IF_FAILED(env, napi_get_undefined(env, &undefined), nullptr);
        NAPI_THROW_IF_FAILED(env, napi_resolve_deferred(env, deferred, undefined), nullptr);
        return promise;
      }
      auto call = std::make_unique<AsyncCall>();
      call->memory.Prepare(env, kOp, argv, p);  // hold, classify, stage (rebinds p's pointers)
      call->name = kOp.name;
      addon->Bind(call->job, kOp, p, false);
      call->job.active->pool = rmsnorm::PoolKind::kBackground;
      call->job.active->patience_ns = addon->Patience(p);
      napi_value promise, name;
      NAPI_THROW_IF_FAILED(env, napi_create_promise(env, &call->deferred, &promise), nullptr);
      NAPI_THROW_IF_FAILED(env, napi_create_string_utf8(env, kOp.name, NAPI_AUTO_LENGTH, &name), nullptr);
      NAPI_THROW_IF_FAILED(env,
                           napi_create_async_work(env, nullptr, name, &AsyncCall::Execute, &AsyncCall::Complete,
                                                  call.get(), &call->work),
                           nullptr);
      NAPI_THROW_IF_FAILED(env, napi_queue_async_work(env, call->work), nullptr);
      call.release();  // owned by the queued work now; Complete deletes it
      return promise;
    } catch (const Napi::Error& e) {
      e.ThrowAsJavaScriptException();
    }
    return nullptr;
  }

  // noop(...): the calibration entry. It takes any arguments, reads none of them and returns undefined: the cost of
  // a call into the addon with a given argument list, the floor under the cost of an op's call with the same list.
  static napi_value Noop(napi_env, napi_callback_info) { return nullptr; }

  // allocate(bytes): a zero-filled ArrayBuffer whose memory async calls use directly.
  static napi_value Allocate(napi_env env, napi_callback_info cbinfo) {
    napi_value argv[1];
    size_t argc = 1;
    if (napi_get_cb_info(env, cbinfo, &argc, argv, nullptr, nullptr) != napi_ok) return nullptr;
    try {
      const double bytes = argc == 1 ? read_number(env, argv[0], "bytes") : -1;
      if (!(bytes >= 0 && bytes <= 9007199254740991.0) || std::floor(bytes) != bytes) {
        fail(env, "ERR_OUT_OF_RANGE", quoted("bytes") + " must be a non-negative integer", true);
      }
      return rmsnorm::memory::allocate(env, static_cast<size_t>(bytes));
    } catch (const Napi::Error& e) {
      e.ThrowAsJavaScriptException();
    }
    return nullptr;
  }

  // Binds the call; for a large call with streaming measured, also chooses its stores. Returns the
  // StreamChoice slot when the call is a trial to time (sync calls only), else -1.
  long Bind(AnyJob& job, const OpSpec& op, const Parsed& p, bool sync) {
    bind(job, op, table_, p);
    const size_t bytes = call_bytes(p);
    job.active->threads = Parallel(static_cast<double>(bytes)) ? threads_ : 1;
    rmsnorm::CallParams& c = *job.active->params;
    if (!c.large || stream_mode() != StreamMode::kMeasured) return -1;
    const size_t slot = StreamChoice::Slot(op, p, bytes);
    bool trial = false;
    c.stream = stream_choice_.Streams(slot, sync, &trial);
    return trial ? static_cast<long>(slot) : -1;
  }
  // Runs a bound sync call, timing it when it is a streaming trial.
  void RunSync(AnyJob& job, long trial, const Parsed& p) {
    if (trial < 0) return job.active->Run();
    const bool streamed = job.active->params->stream;
    const auto t0 = std::chrono::steady_clock::now();
    job.active->Run();
    const double ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
    stream_choice_.Record(static_cast<size_t>(trial), streamed, ns / static_cast<double>(call_bytes(p)));
  }

  Napi::Value SupportedIsas(const Napi::CallbackInfo& info) {
    const KernelTable* tables[rmsnorm::kMaxTables];
    const int n = rmsnorm::supported_tables(tables);
    Napi::Array out = Napi::Array::New(info.Env(), n);
    for (int i = 0; i < n; ++i) out.Set(i, Napi::String::New(info.Env(), tables[i]->isa));
    return out;
  }

  // selectIsa(cap): use the best kernels at or below `cap`; returns the ISA now in use.
  Napi::Value SelectIsa(const Napi::CallbackInfo& info) {
    if (info.Length() < 1 || !info[0].IsString())
      fail(info.Env(), "ERR_INVALID_ARG_TYPE", quoted("isa") + " must be a string");
    const std::string cap = info[0].As<Napi::String>().Utf8Value();
    const KernelTable* t = rmsnorm::select_table(cap.c_str());
    if (!t) {
      fail(info.Env(), "ERR_INVALID_ARG_VALUE",
           quoted("isa") + " must name an instruction set of this architecture, received '" + cap + "'");
    }
    table_ = t;
    kernel_bytes_per_ns_ = -1;  // measured again for these kernels
    return Napi::String::New(info.Env(), t->isa);
  }

  Napi::Value Isa(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), table_->isa); }

  Napi::Value SetThreads(const Napi::CallbackInfo& info) {
    const double n = info.Length() > 0 && info[0].IsNumber() ? info[0].As<Napi::Number>().DoubleValue() : 0;
    if (!(n >= 1 && n <= kMaxThreads) || std::floor(n) != n) {
      fail(info.Env(), "ERR_OUT_OF_RANGE", quoted("n") + " must be an integer from 1 to 1024", true);
    }
    threads_ = static_cast<unsigned>(n);
    return info.Env().Undefined();
  }

  Napi::Value Threads(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), threads_); }

  // convert(direction, src, dst): 0 float32 -> bfloat16, 1 bfloat16 -> float32, 2 float32 -> float16,
  // 3 float16 -> float32. src and dst have equal lengths and do not overlap (checked by the facade and here).
  static napi_value Convert(napi_env env, napi_callback_info cbinfo) {
    napi_value argv[3];
    size_t argc = 3;
    void* self = nullptr;
    if (napi_get_cb_info(env, cbinfo, &argc, argv, nullptr, &self) != napi_ok) return nullptr;
    try {
      if (argc != 3) fail(env, "ERR_INVALID_ARG_TYPE", "convert expects 3 arguments");
      const double direction = read_number(env, argv[0], "direction");
      if (!(direction == 0 || direction == 1 || direction == 2 || direction == 3)) {
        fail(env, "ERR_OUT_OF_RANGE", quoted("direction") + " must be 0, 1, 2 or 3", true);
      }
      const bool to_half = direction == 0 || direction == 2;
      const ArrayArg src = read_array(env, argv[1], "src");
      const ArrayArg dst = read_array(env, argv[2], "out");
      const Type want_src = to_half ? Type::kF32 : Type::kU16;
      const Type want_dst = to_half ? Type::kU16 : Type::kF32;
      if (src.type != want_src)
        fail(env, "ERR_INVALID_ARG_TYPE", quoted("src") + " must be a " + args::type_name(want_src));
      if (dst.type != want_dst)
        fail(env, "ERR_INVALID_ARG_TYPE", quoted("out") + " must be a " + args::type_name(want_dst));
      if (dst.length != src.length) {
        fail(env, "ERR_OUT_OF_RANGE",
             quoted("out") + " must have length " + std::to_string(src.length) + ", received length " +
                 std::to_string(dst.length),
             true);
      }
      if (args::overlaps(src, dst)) fail(env, "ERR_INVALID_ARG_VALUE", quoted("out") + " must not overlap \"src\"");
      const rmsnorm::ConvertTable& c = static_cast<Addon*>(self)->table_->convert;
      const size_t n = src.length;
      if (direction == 0) c.to_bf16(static_cast<const float*>(src.data), static_cast<bf16_t*>(dst.data), n);
      if (direction == 1) c.from_bf16(static_cast<const bf16_t*>(src.data), static_cast<float*>(dst.data), n);
      if (direction == 2) c.to_f16(static_cast<const float*>(src.data), static_cast<f16_t*>(dst.data), n);
      if (direction == 3) c.from_f16(static_cast<const f16_t*>(src.data), static_cast<float*>(dst.data), n);
    } catch (const Napi::Error& e) {
      e.ThrowAsJavaScriptException();
    }
    return nullptr;
  }
};

}  // namespace

NODE_API_ADDON(Addon)
