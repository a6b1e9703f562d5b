// The interface between the Node-API binding and the per-ISA kernels. Plain C++ only: no Node-API here.
#pragma once

#include <cstddef>

namespace rmsnorm {

// One call's arguments. Pointers that an op does not use, or that the caller did not give, are null.
// Lengths were checked by the binding: x, y hold rows * dim values; weight and bias hold dim; rstd holds rows.
template <typename T>
struct NormArgs {
  const T* x = nullptr;
  T* y = nullptr;
  const T* weight = nullptr;
  const T* bias = nullptr;
  T* rstd = nullptr;
  size_t rows = 0;
  size_t dim = 0;
  size_t k = 0;         // pRMSNorm: the statistic covers the first k values of each row (k == dim by default)
  double eps = 1e-5;
  double offset = 0.0;  // y = x * rstd * (offset + weight) + bias
};

// A row-range kernel: processes rows [r0, r1) of the call. Rows are independent, so any partition of the
// rows gives bitwise the same result.
template <typename T>
using RowKernel = void (*)(const NormArgs<T>& args, size_t r0, size_t r1);

struct KernelTable {
  const char* isa;  // "scalar", "avx2", "avx512", "neon"
  RowKernel<float> rms_norm_f32;
  RowKernel<double> rms_norm_f64;
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
