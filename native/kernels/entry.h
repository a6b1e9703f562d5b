// The entry points of one target's kernels, defined by forward.cc and backward.cc and gathered into that
// target's KernelTable by table.cc. Each target (RMSNORM_TARGET_*) puts them in its own namespace, so the object
// files of several instruction sets link into one addon without sharing a symbol.
#pragma once

#include <cstddef>

#include "../kernels.h"

#if defined(RMSNORM_TARGET_AVX512BF16)
#define RMSNORM_ISA avx512bf16
#elif defined(RMSNORM_TARGET_AVX512)
#define RMSNORM_ISA avx512
#elif defined(RMSNORM_TARGET_AVX2)
#define RMSNORM_ISA avx2
#elif defined(RMSNORM_TARGET_NEON)
#define RMSNORM_ISA neon
#elif defined(RMSNORM_TARGET_SCALAR)
#define RMSNORM_ISA scalar
#else
#error "the kernel files must be compiled with one RMSNORM_TARGET_* macro"
#endif

namespace rmsnorm {
namespace RMSNORM_ISA {

template <typename T, typename W>
void rms_norm_rows(const NormArgs<T, W>& a, size_t r0, size_t r1);
template <typename T, typename W>
void layer_norm_rows(const NormArgs<T, W>& a, size_t r0, size_t r1);
template <typename T, typename W>
void add_rms_norm_rows(const NormArgs<T, W>& a, size_t r0, size_t r1);
template <typename T, typename W>
void rms_norm_backward_rows(const BackwardArgs<T, W>& a, size_t r0, size_t r1, double* dw, double* db);
template <typename T, typename W>
void layer_norm_backward_rows(const BackwardArgs<T, W>& a, size_t r0, size_t r1, double* dw, double* db);

}  // namespace RMSNORM_ISA
}  // namespace rmsnorm

// Explicit instantiations for every (data, parameter) pair a KernelTable holds.
#define RMSNORM_FOR_EACH_TYPE_PAIR(X) \
  X(float, float)                     \
  X(double, double)                   \
  X(bf16_t, bf16_t)                   \
  X(bf16_t, float)                    \
  X(f16_t, f16_t)                     \
  X(f16_t, float)
