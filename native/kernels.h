// The interface between the Node-API binding and the per-ISA kernels. Plain C++ only: no Node-API here.
#pragma once

#include <cstddef>

namespace rmsnorm {

// One forward call's arguments. Pointers an op does not use, or the caller did not give, are null. Lengths
// were checked by the binding: x, y, residual hold rows * dim values; weight and bias dim; rstd and mean rows.
template <typename T>
struct NormArgs {
  const T* x = nullptr;
  T* y = nullptr;
  const T* weight = nullptr;
  const T* bias = nullptr;
  T* rstd = nullptr;
  T* mean = nullptr;      // layerNorm: receives each row's mean
  T* residual = nullptr;  // addRmsNorm: residual += x, then y = rmsNorm(residual)
  size_t rows = 0;
  size_t dim = 0;
  size_t k = 0;         // pRMSNorm: the statistic covers the first k values of each row (k == dim by default)
  double eps = 1e-5;
  double offset = 0.0;  // y = x * rstd * (offset + weight) + bias
};

// One backward call's arguments. rstd (and mean, for LayerNorm) come from the forward pass, or are null and
// recomputed from x.
template <typename T>
struct BackwardArgs {
  const T* dy = nullptr;
  const T* x = nullptr;
  const T* weight = nullptr;
  const T* rstd = nullptr;
  const T* mean = nullptr;
  T* dx = nullptr;  // may be exactly dy
  size_t rows = 0;
  size_t dim = 0;
  size_t k = 0;
  double eps = 1e-5;
  double offset = 0.0;
};

// A forward row-range kernel: rows [r0, r1). Rows are independent, so any partition gives bitwise the same
// result.
template <typename T>
using RowKernel = void (*)(const NormArgs<T>& args, size_t r0, size_t r1);

// A backward row-range kernel: writes dx for rows [r0, r1) (r1 > r0) and those rows' summed contributions to
// dweight and dbias, in row order, into dw and db (length dim, overwritten; either may be null when not
// wanted). The caller fixes the row blocks from the shape alone and sums the blocks in order, so the
// reductions never depend on scheduling.
template <typename T>
using BackwardKernel = void (*)(const BackwardArgs<T>& args, size_t r0, size_t r1, double* dw, double* db);

template <typename T>
struct OpTable {
  RowKernel<T> rms_norm;
  RowKernel<T> layer_norm;
  RowKernel<T> add_rms_norm;
  BackwardKernel<T> rms_norm_backward;
  BackwardKernel<T> layer_norm_backward;
};

struct KernelTable {
  const char* isa;  // "scalar", "avx2", "avx512", "neon"
  OpTable<float> f32;
  OpTable<double> f64;
};

// Defined by kernels.cc, compiled once per target with that target's flags.
extern const KernelTable kernel_table_scalar;
#if defined(__x86_64__) || defined(_M_X64)
extern const KernelTable kernel_table_avx2;
extern const KernelTable kernel_table_avx512;
#endif
#if defined(__aarch64__) || defined(_M_ARM64)
extern const KernelTable kernel_table_neon;
#endif

}  // namespace rmsnorm
