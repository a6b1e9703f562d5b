// Node-API entry points. The TypeScript facade (lib/validate.ts) checks every argument first and produces the
// user-facing errors; this file checks again, defensively, so that a call that slips past the facade gets an
// exception and never reaches a kernel with bad pointers or lengths. The overlap checks between arrays are
// made only here when the native module is in use (from the data pointers read anyway), with the same messages
// as lib/validate.ts.
//
// Each op is described by a table of its array arguments (OpSpec); one parser checks any op against its table
// and produces a Job: plain C++ with no Node-API inside, run on the calling thread.
//
// The hot path of a call: one callback, one napi_get_typedarray_info per array, a few napi_get_value_double,
// no allocation for forward ops.
#include <napi.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <vector>

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
  Napi::Error error = range ? Napi::Error(Napi::RangeError::New(env, message))
                            : Napi::Error(Napi::TypeError::New(env, message));
  error.Set("code", Napi::String::New(env, code));
  throw error;
}

std::string quoted(const char* name) { return std::string("The \"") + name + "\" argument"; }

struct ArrayArg {
  bool present = false;
  napi_typedarray_type type = napi_float32_array;
  size_t length = 0;
  void* data = nullptr;
  size_t bytes() const { return length * (type == napi_float64_array ? 8 : type == napi_float32_array ? 4 : 2); }
};

bool is_detached(napi_env env, napi_value typed_array) {
  napi_value buffer;
  bool detached = false;
  return napi_get_typedarray_info(env, typed_array, nullptr, nullptr, nullptr, &buffer, nullptr) == napi_ok &&
         napi_is_detached_arraybuffer(env, buffer, &detached) == napi_ok && detached;
}

// Reads a typed-array argument with one napi call. Null and undefined are accepted when `optional`.
ArrayArg read_array(napi_env env, napi_value v, const char* name, bool optional) {
  ArrayArg a;
  // Not asking for the ArrayBuffer: creating its handle costs as much as the rest of the call.
  if (napi_get_typedarray_info(env, v, &a.type, &a.length, &a.data, nullptr, nullptr) == napi_ok) {
    if (a.type != napi_float32_array && a.type != napi_float64_array && a.type != napi_uint16_array) {
      fail(env, "ERR_INVALID_ARG_TYPE", quoted(name) + " must be a Float32Array, Float64Array or Uint16Array");
    }
    if (a.length == 0 && is_detached(env, v)) {
      fail(env, "ERR_INVALID_ARG_VALUE", quoted(name) + " must not be on a detached ArrayBuffer");
    }
    a.present = true;
    return a;
  }
  napi_valuetype t;
  if (optional && napi_typeof(env, v, &t) == napi_ok && (t == napi_null || t == napi_undefined)) return a;
  fail(env, "ERR_INVALID_ARG_TYPE", quoted(name) + " must be a Float32Array, Float64Array or Uint16Array");
}

double read_number(napi_env env, napi_value v, const char* name) {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok) fail(env, "ERR_INVALID_ARG_TYPE", quoted(name) + " must be of type number");
  return d;
}

bool read_bool(napi_env env, napi_value v, const char* name) {
  bool b;
  if (napi_get_value_bool(env, v, &b) != napi_ok) fail(env, "ERR_INVALID_ARG_TYPE", quoted(name) + " must be of type boolean");
  return b;
}

// ---------------------------------------------------------------------------------------------------------
// Op descriptions

enum class Len { kTotal, kDim, kRows };  // x.length, dim, rows

struct Slot {
  const char* name;
  Len len;
  bool nullable;
  bool output;
  int same_ok = -1;  // index of the one slot this output may be exactly the same view of (in place)
};

enum Scalar : unsigned { kOffset = 1, kPartial = 2, kAccumulate = 4 };

// The element type a slot must have follows from its length and direction: rows-long slots and dim-long
// outputs (dweight, dbias) hold statistics (float32 for half data), dim-long inputs are parameters (float32 or
// the half type for half data), everything else has x's type.
enum class Elem { kData, kParam, kStat };
Elem elem_of(const Slot& slot) {
  if (slot.len == Len::kTotal) return Elem::kData;
  if (slot.len == Len::kRows || slot.output) return Elem::kStat;
  return Elem::kParam;
}

struct OpSpec {
  const char* name;
  std::vector<Slot> slots;  // the array arguments, first; slot 0 sets the element type and the total length
  unsigned scalars;         // after the arrays: dim, eps, those flagged here in flag order, then dtype, castMode
};

// dtype codes: 0 for Float32Array/Float64Array data, 1 bfloat16, 2 float16 (Uint16Array data).
enum DType : int { kNoDType = 0, kBFloat16 = 1, kFloat16 = 2 };

// Slot layouts; lib/index.ts passes arguments in exactly this order.
const OpSpec kRmsNorm{"rmsNorm",
                      {{"x", Len::kTotal, false, false},
                       {"weight", Len::kDim, true, false},
                       {"options.bias", Len::kDim, true, false},
                       {"options.out", Len::kTotal, false, true, 0},
                       {"options.rstd", Len::kRows, true, true}},
                      kOffset | kPartial};
const OpSpec kLayerNorm{"layerNorm",
                        {{"x", Len::kTotal, false, false},
                         {"weight", Len::kDim, true, false},
                         {"bias", Len::kDim, true, false},
                         {"options.out", Len::kTotal, false, true, 0},
                         {"options.mean", Len::kRows, true, true},
                         {"options.rstd", Len::kRows, true, true}},
                        0};
const OpSpec kAddRmsNorm{"addRmsNorm",
                         {{"x", Len::kTotal, false, false},
                          {"residual", Len::kTotal, false, true},
                          {"weight", Len::kDim, true, false},
                          {"options.bias", Len::kDim, true, false},
                          {"options.out", Len::kTotal, false, true, 0},
                          {"options.rstd", Len::kRows, true, true}},
                         kOffset | kPartial};
const OpSpec kRmsNormBackward{"rmsNormBackward",
                              {{"dy", Len::kTotal, false, false},
                               {"x", Len::kTotal, false, false},
                               {"weight", Len::kDim, true, false},
                               {"options.rstd", Len::kRows, true, false},
                               {"options.dx", Len::kTotal, false, true, 0},
                               {"options.dweight", Len::kDim, true, true},
                               {"options.dbias", Len::kDim, true, true}},
                              kOffset | kPartial | kAccumulate};
const OpSpec kLayerNormBackward{"layerNormBackward",
                                {{"dy", Len::kTotal, false, false},
                                 {"x", Len::kTotal, false, false},
                                 {"weight", Len::kDim, true, false},
                                 {"options.mean", Len::kRows, true, false},
                                 {"options.rstd", Len::kRows, true, false},
                                 {"options.dx", Len::kTotal, false, true, 0},
                                 {"options.dweight", Len::kDim, true, true},
                                 {"options.dbias", Len::kDim, true, true}},
                                kAccumulate};

constexpr size_t kMaxSlots = 8;

struct Parsed {
  ArrayArg a[kMaxSlots];
  size_t dim = 0, rows = 0, k = 0;
  double eps = 1e-5, offset = 0.0, partial = 1.0;
  bool accumulate = false;
  bool llama = false;
  int dtype = kNoDType;
  napi_typedarray_type data = napi_float32_array;   // x's type
  napi_typedarray_type param = napi_float32_array;  // weight/bias type
};

const char* type_name(napi_typedarray_type t) {
  return t == napi_float64_array ? "Float64Array" : t == napi_float32_array ? "Float32Array" : "Uint16Array";
}

bool overlaps(const ArrayArg& p, const ArrayArg& q) {
  if (!p.present || !q.present || p.length == 0 || q.length == 0) return false;
  const auto a = reinterpret_cast<uintptr_t>(p.data), b = reinterpret_cast<uintptr_t>(q.data);
  return a < b + q.bytes() && b < a + p.bytes();
}

bool same_view(const ArrayArg& p, const ArrayArg& q) { return p.data == q.data && p.bytes() == q.bytes(); }

size_t expected_length(Len len, const Parsed& p, size_t total) {
  return len == Len::kTotal ? total : len == Len::kDim ? p.dim : p.rows;
}

const char* length_name(Len len, const OpSpec& op) {
  return len == Len::kTotal ? (std::string(op.slots[0].name) == "dy" ? "dy.length" : "x.length")
                            : len == Len::kDim ? "dim" : "rows";
}

Parsed parse(napi_env env, const OpSpec& op, napi_value* argv, size_t argc) {
  const size_t n_slots = op.slots.size();
  const size_t n_scalars = 4 + ((op.scalars & kOffset) ? 1 : 0) + ((op.scalars & kPartial) ? 1 : 0) +
                           ((op.scalars & kAccumulate) ? 1 : 0);
  if (argc != n_slots + n_scalars) {
    fail(env, "ERR_INVALID_ARG_TYPE", std::string(op.name) + " expects " + std::to_string(n_slots + n_scalars) + " arguments");
  }
  Parsed p;
  for (size_t i = 0; i < n_slots; ++i) p.a[i] = read_array(env, argv[i], op.slots[i].name, op.slots[i].nullable);
  size_t s = n_slots;
  const double dim = read_number(env, argv[s++], "options.dim");
  if (!(dim >= 1 && dim <= 4294967295.0) || std::floor(dim) != dim) {
    fail(env, "ERR_OUT_OF_RANGE", quoted("options.dim") + " must be a positive integer no greater than 4294967295", true);
  }
  p.dim = static_cast<size_t>(dim);
  p.eps = read_number(env, argv[s++], "options.eps");
  if (!(p.eps >= 0 && p.eps <= 1.7976931348623157e308)) fail(env, "ERR_OUT_OF_RANGE", quoted("options.eps") + " must be a finite number >= 0", true);
  if (op.scalars & kOffset) {
    p.offset = read_number(env, argv[s++], "options.offset");
    if (!std::isfinite(p.offset)) fail(env, "ERR_OUT_OF_RANGE", quoted("options.offset") + " must be a finite number", true);
    for (size_t i = 0; i < n_slots; ++i) {
      if (p.offset != 0 && std::strcmp(op.slots[i].name, "weight") == 0 && !p.a[i].present) {
        fail(env, "ERR_INVALID_ARG_VALUE", quoted("options.offset") + " requires a weight (weight is null)");
      }
    }
  }
  if (op.scalars & kPartial) {
    p.partial = read_number(env, argv[s++], "options.partial");
    if (!(p.partial > 0 && p.partial <= 1)) fail(env, "ERR_OUT_OF_RANGE", quoted("options.partial") + " must be in (0, 1]", true);
  }
  if (op.scalars & kAccumulate) p.accumulate = read_bool(env, argv[s++], "options.accumulate");
  const double dtype = read_number(env, argv[s++], "options.dtype");
  const double cast = read_number(env, argv[s++], "options.castMode");

  const ArrayArg& first = p.a[0];
  p.data = first.type;
  const bool half = first.type == napi_uint16_array;
  if (half ? !(dtype == kBFloat16 || dtype == kFloat16) : dtype != kNoDType) {
    fail(env, "ERR_INVALID_ARG_VALUE", quoted("options.dtype") + (half ? " must be 'bfloat16' or 'float16' for Uint16Array data" : " applies to Uint16Array data only"));
  }
  p.dtype = static_cast<int>(dtype);
  if (!(cast == 0 || cast == 1)) fail(env, "ERR_INVALID_ARG_VALUE", quoted("options.castMode") + " must be 'fp32' or 'llama'");
  p.llama = cast == 1;
  const napi_typedarray_type stat = half ? napi_float32_array : first.type;
  p.param = first.type;
  bool param_seen = false;
  for (size_t i = 1; i < n_slots; ++i) {
    const ArrayArg& a = p.a[i];
    if (!a.present) continue;
    const Elem e = elem_of(op.slots[i]);
    napi_typedarray_type want = e == Elem::kData ? first.type : e == Elem::kStat ? stat : first.type;
    if (e == Elem::kParam && half) {
      // float32 or the half type, the same for every parameter of the call.
      if (!param_seen && (a.type == napi_float32_array || a.type == napi_uint16_array)) p.param = a.type;
      want = p.param;
      param_seen = true;
    }
    if (a.type != want) {
      fail(env, "ERR_INVALID_ARG_TYPE", quoted(op.slots[i].name) + " must be a " + type_name(want) + ", received a " + type_name(a.type));
    }
  }
  if (first.length % p.dim != 0) {
    fail(env, "ERR_OUT_OF_RANGE",
         quoted(op.slots[0].name) + " must have a length that is a multiple of dim (" + std::to_string(p.dim) +
             "), received length " + std::to_string(first.length),
         true);
  }
  p.rows = first.length / p.dim;
  for (size_t i = 1; i < n_slots; ++i) {
    const size_t want = expected_length(op.slots[i].len, p, first.length);
    if (p.a[i].present && p.a[i].length != want) {
      fail(env, "ERR_OUT_OF_RANGE",
           quoted(op.slots[i].name) + " must have length " + std::to_string(want) + " (" +
               length_name(op.slots[i].len, op) + "), received length " + std::to_string(p.a[i].length),
           true);
    }
  }
  // Outputs must not overlap any other array, except the one they may be in place on.
  for (size_t o = 0; o < n_slots; ++o) {
    if (!op.slots[o].output) continue;
    for (size_t i = 0; i < n_slots; ++i) {
      if (i == o || !overlaps(p.a[o], p.a[i])) continue;
      const bool same_ok = op.slots[o].same_ok == static_cast<int>(i);
      if (same_ok && same_view(p.a[o], p.a[i])) continue;
      fail(env, "ERR_INVALID_ARG_VALUE",
           quoted(op.slots[o].name) + " must not overlap \"" + op.slots[i].name + "\"" +
               (same_ok ? " unless it is exactly the same view (in place)" : ""));
    }
  }
  const double kd = std::ceil(p.partial * static_cast<double>(p.dim));
  p.k = kd < 1 ? 1 : (kd > static_cast<double>(p.dim) ? p.dim : static_cast<size_t>(kd));
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
  virtual ~Job() = default;
  virtual void Run() = 0;
};

// Outputs at least this large are written with non-temporal stores: they cannot stay in cache for whoever reads
// them next, and streaming them skips reading each destination line before overwriting it (measured on
// 2048 x 4096 float32: the pass then moves the bytes a copy does, instead of half as many again).
constexpr size_t kStreamMinBytes = size_t(8) << 20;

// Calls below this many elements run inline on the calling thread: waking pool threads costs more than the
// work would save: measured on a 2-core VM, waking a pool thread costs ~20-30 us, and 2 threads first win at
// about 1M elements (256 x 4096 float32: 175 us on one thread).
constexpr size_t kParallelMinElements = size_t(1) << 20;

template <typename T, typename W>
struct ForwardJob final : Job {
  rmsnorm::RowKernel<T, W> kernel;
  NormArgs<T, W> args;
  void Run() override {
    const size_t rows = args.rows;
    if (rows == 0) return;
    const size_t tasks = rows * args.dim < kParallelMinElements ? 1 : (rows < threads ? rows : threads);
    if (tasks <= 1) return kernel(args, 0, rows);
    // Contiguous row blocks; rows are independent, so the result is the same for any partition.
    auto block = [&](size_t t) { kernel(args, t * rows / tasks, (t + 1) * rows / tasks); };
    rmsnorm::parallel_for(tasks, static_cast<unsigned>(tasks), block);
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
    if (blocks > 0 && (dweight || dbias)) {
      std::vector<double>& scratch = Scratch(2 * blocks * dim);
      dw = dweight ? scratch.data() : nullptr;
      db = dbias ? scratch.data() + blocks * dim : nullptr;
    }
    auto block = [&](size_t b) {
      kernel(args, b * rows / blocks, (b + 1) * rows / blocks, dw ? dw + b * dim : nullptr, db ? db + b * dim : nullptr);
    };
    const bool parallel = rows * dim >= kParallelMinElements && threads > 1;
    rmsnorm::parallel_for(blocks, parallel ? threads : 1, block);
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

template <typename T, typename W>
void bind_forward(ForwardJob<T, W>& job, rmsnorm::RowKernel<T, W> kernel, const Parsed& p, const ArrayArg& x,
                  const ArrayArg& w, const ArrayArg& b, const ArrayArg& y, const ArrayArg& rstd, const ArrayArg* mean,
                  const ArrayArg* residual) {
  using S = rmsnorm::Stat<T>;
  job.kernel = kernel;
  NormArgs<T, W>& a = job.args;
  a.x = in<T>(x);
  a.y = out<T>(y);
  a.weight = in<W>(w);
  a.bias = in<W>(b);
  a.rstd = out<S>(rstd);
  a.mean = mean ? out<S>(*mean) : nullptr;
  a.residual = residual ? out<T>(*residual) : nullptr;
  a.rows = p.rows;
  a.dim = p.dim;
  a.k = p.k;
  a.eps = p.eps;
  a.offset = p.offset;
  a.llama = p.llama;
  a.stream = p.rows * p.dim * sizeof(T) >= kStreamMinBytes;
}

template <typename T, typename W>
void bind_backward(BackwardJob<T, W>& job, rmsnorm::BackwardKernel<T, W> kernel, const Parsed& p, const ArrayArg& dy,
                   const ArrayArg& x, const ArrayArg& w, const ArrayArg* mean, const ArrayArg& rstd,
                   const ArrayArg& dx, const ArrayArg& dw, const ArrayArg& db) {
  using S = rmsnorm::Stat<T>;
  job.kernel = kernel;
  BackwardArgs<T, W>& a = job.args;
  a.dy = in<T>(dy);
  a.x = in<T>(x);
  a.weight = in<W>(w);
  a.mean = mean ? in<S>(*mean) : nullptr;
  a.rstd = in<S>(rstd);
  a.dx = out<T>(dx);
  a.rows = p.rows;
  a.dim = p.dim;
  a.k = p.k;
  a.eps = p.eps;
  a.offset = p.offset;
  job.dweight = out<S>(dw);
  job.dbias = out<S>(db);
  job.accumulate = p.accumulate;
}

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

// Binds the checked arguments of `op` to one OpTable's kernel.
template <typename T, typename W>
void bind_with(AnyJob& job, const OpSpec& op, const rmsnorm::OpTable<T, W>& t, const Parsed& p) {
  const ArrayArg* a = p.a;
  if (&op == &kRmsNorm || &op == &kLayerNorm || &op == &kAddRmsNorm) {
    // Slot positions: rmsNorm (x, weight, bias, out, rstd); layerNorm (x, weight, bias, out, mean, rstd);
    // addRmsNorm (x, residual, weight, bias, out, rstd).
    const bool add = &op == &kAddRmsNorm, ln = &op == &kLayerNorm;
    const size_t w = add ? 2 : 1;
    auto kernel = ln ? t.layer_norm : add ? t.add_rms_norm : t.rms_norm;
    bind_forward(job.emplace<ForwardJob<T, W>>(), kernel, p, a[0], a[w], a[w + 1], a[w + 2], a[ln || add ? 5 : 4],
                 ln ? &a[4] : nullptr, add ? &a[1] : nullptr);
    return;
  }
  // rmsNormBackward (dy, x, weight, rstd, dx, dweight, dbias); layerNormBackward (dy, x, weight, mean, rstd,
  // dx, dweight, dbias).
  const bool ln = &op == &kLayerNormBackward;
  const size_t r = ln ? 4 : 3;
  bind_backward(job.emplace<BackwardJob<T, W>>(), ln ? t.layer_norm_backward : t.rms_norm_backward, p, a[0], a[1],
                a[2], ln ? &a[3] : nullptr, a[r], a[r + 1], a[r + 2], a[r + 3]);
}

void bind(AnyJob& job, const OpSpec& op, const KernelTable* t, const Parsed& p) {
  const bool w32 = p.param == napi_float32_array;
  switch (p.data) {
    case napi_float64_array: return bind_with(job, op, t->f64, p);
    case napi_uint16_array:
      if (p.dtype == kBFloat16) return w32 ? bind_with(job, op, t->bf16_w32, p) : bind_with(job, op, t->bf16, p);
      return w32 ? bind_with(job, op, t->f16_w32, p) : bind_with(job, op, t->f16, p);
    default: return bind_with(job, op, t->f32, p);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Async calls: the same job, run on a libuv thread. The typed arrays are held by references until the job has
// settled, so they cannot be collected while the kernels use them.

struct AsyncCall {
  AnyJob job;
  napi_ref refs[kMaxSlots] = {};
  size_t n_refs = 0;
  napi_deferred deferred = nullptr;
  napi_async_work work = nullptr;

  static void Execute(napi_env, void* data) { static_cast<AsyncCall*>(data)->job.active->Run(); }

  static void Complete(napi_env env, napi_status status, void* data) {
    auto* call = static_cast<AsyncCall*>(data);
    for (size_t i = 0; i < call->n_refs; ++i) napi_delete_reference(env, call->refs[i]);
    napi_delete_async_work(env, call->work);
    if (status == napi_ok) {
      napi_value undefined;
      napi_get_undefined(env, &undefined);
      napi_resolve_deferred(env, call->deferred, undefined);
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
// The addon instance: one per Node.js environment (main thread or worker), holding its kernel choice and
// thread count.

class Addon : public Napi::Addon<Addon> {
 public:
  Addon(Napi::Env env, Napi::Object exports) {
    const KernelTable* tables[4];
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
  }

  static constexpr unsigned kMaxThreads = 1024;

 private:
  const KernelTable* table_;
  unsigned threads_;

  void Export(napi_env env, Napi::Object exports, const char* name, napi_callback cb) {
    napi_value fn;
    NAPI_THROW_IF_FAILED_VOID(env, napi_create_function(env, name, NAPI_AUTO_LENGTH, cb, this, &fn));
    exports.Set(name, Napi::Value(env, fn));
  }

  // Raw napi_callbacks rather than InstanceMethods: node-addon-api's CallbackInfo heap-allocates the argument
  // list past six arguments, and these calls take up to thirteen.
  template <const OpSpec& kOp>
  static napi_value Sync(napi_env env, napi_callback_info cbinfo) {
    napi_value argv[16];
    size_t argc = 16;
    void* self = nullptr;
    if (napi_get_cb_info(env, cbinfo, &argc, argv, nullptr, &self) != napi_ok) return nullptr;
    try {
      if (argc > 16) fail(env, "ERR_INVALID_ARG_TYPE", std::string(kOp.name) + ": too many arguments");
      AnyJob job;
      static_cast<Addon*>(self)->Bind(job, kOp, parse(env, kOp, argv, argc));
      job.active->Run();
    } catch (const Napi::Error& e) {
      e.ThrowAsJavaScriptException();
    }
    return nullptr;
  }

  // The same arguments as the sync form; returns a promise of undefined. Bad arguments throw synchronously
  // (the facade turns that into a rejection).
  template <const OpSpec& kOp>
  static napi_value Async(napi_env env, napi_callback_info cbinfo) {
    napi_value argv[16];
    size_t argc = 16;
    void* self = nullptr;
    if (napi_get_cb_info(env, cbinfo, &argc, argv, nullptr, &self) != napi_ok) return nullptr;
    try {
      if (argc > 16) fail(env, "ERR_INVALID_ARG_TYPE", std::string(kOp.name) + ": too many arguments");
      auto call = std::make_unique<AsyncCall>();
      static_cast<Addon*>(self)->Bind(call->job, kOp, parse(env, kOp, argv, argc));
      napi_value promise, name;
      NAPI_THROW_IF_FAILED(env, napi_create_promise(env, &call->deferred, &promise), nullptr);
      for (size_t i = 0; i < kOp.slots.size(); ++i) {
        napi_valuetype t;
        if (napi_typeof(env, argv[i], &t) == napi_ok && t == napi_object) {
          NAPI_THROW_IF_FAILED(env, napi_create_reference(env, argv[i], 1, &call->refs[call->n_refs]), nullptr);
          ++call->n_refs;
        }
      }
      NAPI_THROW_IF_FAILED(env, napi_create_string_utf8(env, kOp.name, NAPI_AUTO_LENGTH, &name), nullptr);
      NAPI_THROW_IF_FAILED(env, napi_create_async_work(env, nullptr, name, &AsyncCall::Execute, &AsyncCall::Complete,
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

  void Bind(AnyJob& job, const OpSpec& op, const Parsed& p) const {
    bind(job, op, table_, p);
    job.active->threads = threads_;
  }

  Napi::Value SupportedIsas(const Napi::CallbackInfo& info) {
    const KernelTable* tables[4];
    const int n = rmsnorm::supported_tables(tables);
    Napi::Array out = Napi::Array::New(info.Env(), n);
    for (int i = 0; i < n; ++i) out.Set(i, Napi::String::New(info.Env(), tables[i]->isa));
    return out;
  }

  // selectIsa(cap): use the best kernels at or below `cap`; returns the ISA now in use.
  Napi::Value SelectIsa(const Napi::CallbackInfo& info) {
    if (info.Length() < 1 || !info[0].IsString()) fail(info.Env(), "ERR_INVALID_ARG_TYPE", quoted("isa") + " must be a string");
    const std::string cap = info[0].As<Napi::String>().Utf8Value();
    const KernelTable* t = rmsnorm::select_table(cap.c_str());
    if (!t) {
      fail(info.Env(), "ERR_INVALID_ARG_VALUE",
           quoted("isa") + " must name an instruction set of this architecture, received '" + cap + "'");
    }
    table_ = t;
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
      const ArrayArg src = read_array(env, argv[1], "src", false);
      const ArrayArg dst = read_array(env, argv[2], "out", false);
      const napi_typedarray_type want_src = to_half ? napi_float32_array : napi_uint16_array;
      const napi_typedarray_type want_dst = to_half ? napi_uint16_array : napi_float32_array;
      if (src.type != want_src) fail(env, "ERR_INVALID_ARG_TYPE", quoted("src") + " must be a " + type_name(want_src));
      if (dst.type != want_dst) fail(env, "ERR_INVALID_ARG_TYPE", quoted("out") + " must be a " + type_name(want_dst));
      if (dst.length != src.length) {
        fail(env, "ERR_OUT_OF_RANGE",
             quoted("out") + " must have length " + std::to_string(src.length) + ", received length " + std::to_string(dst.length), true);
      }
      if (overlaps(src, dst)) fail(env, "ERR_INVALID_ARG_VALUE", quoted("out") + " must not overlap \"src\"");
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
