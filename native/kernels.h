// The interface between the Node-API binding and the per-ISA kernels. Plain C++ only: no Node-API here.
#pragma once

#include <cstddef>
#include <cstdint>

namespace rmsnorm {

// Half-precision storage: the bits of a bfloat16 or IEEE float16 value. Arithmetic on them is float32.
struct bf16_t {
  uint16_t bits;
};
struct f16_t {
  uint16_t bits;
};

// The type of statistics (rstd, mean), dweight and dbias for data of type T: T itself for float32 and
// float64, float32 for the half types.
template <typename T>
struct StatOf {
  using type = T;
};
template <>
struct StatOf<bf16_t> {
  using type = float;
};
template <>
struct StatOf<f16_t> {
  using type = float;
};
template <typename T>
using Stat = typename StatOf<T>::type;

// The scalars of one call, the same block for every op: the forward and backward argument structs embed it, so
// a new field reaches every kernel (and the rebinding of half-precision parameters below) without being copied
// by hand anywhere.
//
// Layout: a kernel's "rows" are the (row, head) groups of dim values, u = row * heads + head; group u of an
// array with row stride s starts at at(u, s). Statistics (rstd, mean) have one entry per group.
struct CallParams {
  size_t rows = 0;  // groups: rows * heads
  size_t dim = 0;
  size_t heads = 1;
  size_t head_stride = 0;  // elements from one head's start to the next within a row
  // Row strides in elements (dim * heads for dense arrays).
  size_t x_stride = 0, y_stride = 0, res_stride = 0, dy_stride = 0, dx_stride = 0;
  double residual_scale = 1.0;  // addRmsNorm: residual += x * residual_scale
  size_t k = 0;                 // pRMSNorm: the statistic covers the first k values of each row (k == dim by default)
  double eps = 1e-5;
  double offset = 0.0;    // y = x * rstd * (offset + weight) + bias
  bool llama = false;     // castMode 'llama' (half types, forward): round x * rstd to T before the weight
  bool large = false;     // an output far larger than the caches (the backward pass then prefetches its next rows)
  bool stream = false;    // write y or dx with non-temporal stores (large outputs, where they were measured to win)
  size_t param_head = 0;  // forward kernels with prepared parameters (forward.cc): the column their pairs start at

  // The offset of group u in an array of row stride s.
  size_t at(size_t u, size_t s) const { return heads == 1 ? u * s : (u / heads) * s + (u % heads) * head_stride; }
};

// The data arrays of one forward call (everything but the parameters). Pointers an op does not use, or the
// caller did not give, are null. Lengths were checked by the binding: x, y, residual hold rows * dim values;
// rstd and mean rows.
template <typename T>
struct ForwardData {
  const T* x = nullptr;
  T* y = nullptr;
  Stat<T>* rstd = nullptr;
  Stat<T>* mean = nullptr;  // layerNorm: receives each row's mean
  T* residual = nullptr;    // addRmsNorm: residual += x, then y = rmsNorm(residual)
};

// One forward call's arguments. T is the data type (x, y, residual); W the parameter type (weight, bias, length
// dim): T, or float32 for half data.
template <typename T, typename W = T>
struct NormArgs : CallParams, ForwardData<T> {
  const W* weight = nullptr;
  const W* bias = nullptr;

  // The same call with other parameter arrays (weight and bias of type P).
  template <typename P>
  NormArgs<T, P> with_params(const P* w, const P* b) const {
    NormArgs<T, P> r;
    static_cast<CallParams&>(r) = *this;
    static_cast<ForwardData<T>&>(r) = *this;
    r.weight = w;
    r.bias = b;
    return r;
  }
};

// One backward call's arguments. rstd (and mean, for LayerNorm) come from the forward pass, or are null and
// recomputed from x.
template <typename T, typename W = T>
struct BackwardArgs : CallParams {
  const T* dy = nullptr;
  const T* x = nullptr;
  const W* weight = nullptr;
  const Stat<T>* rstd = nullptr;
  const Stat<T>* mean = nullptr;
  T* dx = nullptr;  // may be exactly dy
};

// A forward row-range kernel: rows [r0, r1). Rows are independent, so any partition gives bitwise the same
// result.
template <typename T, typename W>
using RowKernel = void (*)(const NormArgs<T, W>& args, size_t r0, size_t r1);

// A backward row-range kernel: writes dx for rows [r0, r1) (r1 > r0) and those rows' summed contributions to
// dweight and dbias, in row order, into dw and db (length dim, overwritten; either may be null when not
// wanted). The caller fixes the row blocks from the shape alone and sums the blocks in order, so the
// reductions never depend on scheduling.
template <typename T, typename W>
using BackwardKernel = void (*)(const BackwardArgs<T, W>& args, size_t r0, size_t r1, double* dw, double* db);

template <typename T, typename W>
struct OpTable {
  RowKernel<T, W> rms_norm;
  RowKernel<T, W> layer_norm;
  RowKernel<T, W> add_rms_norm;
  BackwardKernel<T, W> rms_norm_backward;
  BackwardKernel<T, W> layer_norm_backward;
};

// Array conversions: round to nearest even, NaN stays NaN, overflow to infinity (float16), subnormals kept.
struct ConvertTable {
  void (*to_bf16)(const float* src, bf16_t* dst, size_t n);
  void (*from_bf16)(const bf16_t* src, float* dst, size_t n);
  void (*to_f16)(const float* src, f16_t* dst, size_t n);
  void (*from_f16)(const f16_t* src, float* dst, size_t n);
};

struct KernelTable {
  const char* isa;  // "scalar", "avx2", "avx512", "avx512bf16", "neon"
  OpTable<float, float> f32;
  OpTable<double, double> f64;
  OpTable<bf16_t, bf16_t> bf16;     // bfloat16 data and parameters
  OpTable<bf16_t, float> bf16_w32;  // bfloat16 data, float32 parameters
  OpTable<f16_t, f16_t> f16;
  OpTable<f16_t, float> f16_w32;
  ConvertTable convert;
};

// Defined by native/kernels/table.cc, compiled once per target with that target's flags.
extern const KernelTable kernel_table_scalar;
#if defined(__x86_64__) || defined(_M_X64)
extern const KernelTable kernel_table_avx2;
extern const KernelTable kernel_table_avx512;
extern const KernelTable kernel_table_avx512bf16;
#endif
#if defined(__aarch64__) || defined(_M_ARM64)
extern const KernelTable kernel_table_neon;
#endif

}  // namespace rmsnorm
