// The normalization kernels, written once over the Vec<T> abstraction of simd.h and compiled once per target
// (CMakeLists.txt builds this file with RMSNORM_TARGET_SCALAR, _AVX2, _AVX512 or _NEON and that target's
// flags). Each build exports one KernelTable; cpu.cc picks the table at load time.
//
// Numerical choices, and why:
// - Sums of squares accumulate in double, with four independent vector accumulators. For float32 data the
//   squares of every finite value (1e-45 .. 3.4e38) are exact-range in double, so no float32 row can overflow
//   or underflow the statistic, and the rounding error of the sum is ~1e-16 instead of ~n * 6e-8.
// - float64 rows can overflow (|x| > 1e154) or underflow (|x| < 1e-154) the sum of squares. Those rows (rare:
//   detected by the sum falling outside [2^-969, DBL_MAX]) are summed again scaled by a power of two taken from
//   the largest magnitude, which is exact, and the power is carried through rstd to the output.
// - rstd = 1 / sqrt(mean + eps) with an exact sqrt and an exact divide, once per row, in double.
// - The output pass multiplies in the storage type, (x * rstd) * (offset + weight) + bias, the order PyTorch
//   uses, with FMA for the last step where the target has it. When rstd itself is not a normal number of the
//   storage type (float32 rows of magnitude below ~1e-38 or above ~1e38, eps = 0), the row is written by an
//   exact scalar path in double instead, so such rows never turn into inf, 0 or NaN by accident.
// - No -ffast-math; the build uses -ffp-contract=off so the compiler fuses nothing behind our back and every
//   target rounds exactly where this file says.
#include "kernels.h"
#include "simd.h"

namespace {

using rmsnorm::NormArgs;

constexpr double kDblMax = 1.7976931348623157e308;
constexpr double kDblMin = 2.2250738585072014e-308;
// A sum of squares at or above this lost nothing to underflowed squares: each square below DBL_MIN is off by at
// most 2^-1074, a relative 2^-105 * k of the sum.
constexpr double kSafeSumMin = 0x1p-969;

template <typename T>
inline T max_mag(T a, T b) { return a > b ? a : b; }

// Sum of x[i]^2 for i < n, in double.
template <typename T>
double sum_squares(const T* x, size_t n) {
  using D = Vec<double>;
  constexpr size_t N = D::N;
  typename D::R a0 = D::zero(), a1 = D::zero(), a2 = D::zero(), a3 = D::zero();
  size_t i = 0;
  for (; i + 4 * N <= n; i += 4 * N) {
    const auto v0 = D::load(x + i), v1 = D::load(x + i + N), v2 = D::load(x + i + 2 * N),
               v3 = D::load(x + i + 3 * N);
    a0 = D::fma(v0, v0, a0);
    a1 = D::fma(v1, v1, a1);
    a2 = D::fma(v2, v2, a2);
    a3 = D::fma(v3, v3, a3);
  }
  for (; i + N <= n; i += N) {
    const auto v = D::load(x + i);
    a0 = D::fma(v, v, a0);
  }
  if (i < n) {
    const auto v = D::loadn(x + i, n - i);
    a1 = D::fma(v, v, a1);
  }
  return D::sum(D::add(D::add(a0, a1), D::add(a2, a3)));
}

// 2^e for |e| <= 1022, built from the exponent bits: exact, and no libm call.
inline double pow2(int e) {
  const uint64_t bits = static_cast<uint64_t>(e + 1023) << 52;
  double d;
  std::memcpy(&d, &bits, sizeof d);
  return d;
}

// x * 2^e for any e, exact whenever the result is a normal number (a few steps keep each factor representable).
inline double scale2(double x, int e) {
  for (; e > 1022; e -= 1022) x *= pow2(1022);
  for (; e < -1022; e += 1022) x *= pow2(-1022);
  return x * pow2(e);
}

// The row's reciprocal RMS as r * 2^-e (e != 0 only for rescaled float64 rows).
struct RowScale {
  double r;
  int e;
};

// Float32 rows, fast path: squares in float32 within blocks small enough that each lane adds 8
// them, 10 at most in a tail (relative error <= 11 * 2^-24 per block sum), blocks accumulated in double. Returns a value outside
// [2^-60, DBL_MAX] (inf, NaN, or tiny) when a square overflowed or underflowed float32, in which case the
// caller sums again in double.
inline double sum_squares_blocked(const float* x, size_t n) {
  using F = Vec<float>;
  using D = Vec<double>;
  constexpr size_t N = F::N, kBlock = 8 * 4 * N;
  typename D::R total = D::zero();
  size_t i = 0;
  while (i < n) {
    const size_t end = n - i > kBlock ? i + kBlock : n;
    typename F::R a0 = F::zero(), a1 = F::zero(), a2 = F::zero(), a3 = F::zero();
    for (; i + 4 * N <= end; i += 4 * N) {
      const auto v0 = F::load(x + i), v1 = F::load(x + i + N), v2 = F::load(x + i + 2 * N), v3 = F::load(x + i + 3 * N);
      a0 = F::fma(v0, v0, a0);
      a1 = F::fma(v1, v1, a1);
      a2 = F::fma(v2, v2, a2);
      a3 = F::fma(v3, v3, a3);
    }
    for (; i + N <= end; i += N) {
      const auto v = F::load(x + i);
      a0 = F::fma(v, v, a0);
    }
    if (i < end) {
      const auto v = F::loadn(x + i, end - i);
      a1 = F::fma(v, v, a1);
      i = end;
    }
    // Each lane holds at most 10 squares: widen every lane to double before any further addition.
    alignas(64) float lanes[4 * N];
    F::store(lanes, a0);
    F::store(lanes + N, a1);
    F::store(lanes + 2 * N, a2);
    F::store(lanes + 3 * N, a3);
    for (size_t j = 0; j < 4 * N; j += D::N) total = D::add(total, D::load(lanes + j));
  }
  return D::sum(total);
}

template <typename T>
double sum_squares_row(const T* x, size_t n) {
  return sum_squares(x, n);
}
template <>
double sum_squares_row<float>(const float* x, size_t n) {
  const double ss = sum_squares_blocked(x, n);
  if (ss >= 0x1p-60 && ss <= kDblMax) return ss;
  return sum_squares(x, n);  // a square left float32's range (or the row is zero, inf or NaN): exact path
}

template <typename T>
RowScale rms_row_scale(const T* x, size_t k, double eps) {
  const double kd = static_cast<double>(k);
  double ss = sum_squares_row(x, k);
  if (ss >= kSafeSumMin && ss <= kDblMax) return {1.0 / __builtin_sqrt(ss / kd + eps), 0};
  if (ss != ss) return {ss, 0};  // NaN in the row: NaN out, as the reference does.
  // Every float32 square is a positive double: a zero sum means an all-zero row (padding is common; keep it fast).
  if (sizeof(T) == sizeof(float) && ss == 0.0) return {1.0 / __builtin_sqrt(eps), 0};

  // Overflowed, underflowed, or all zero: find the largest magnitude.
  double m = 0.0;
  for (size_t i = 0; i < k; ++i) m = max_mag(m, __builtin_fabs(static_cast<double>(x[i])));
  if (m == 0.0 || m > kDblMax) return {1.0 / __builtin_sqrt(ss / kd + eps), 0};  // zeros, or a true inf

  const int e = __builtin_ilogb(m);
  ss = 0.0;
  for (size_t i = 0; i < k; ++i) {
    const double v = scale2(static_cast<double>(x[i]), -e);
    ss += v * v;
  }
  // mean + eps = (ss/k + eps * 4^-e) * 4^e. When eps * 4^-e overflows, eps dominates the tiny mean outright.
  const double t = scale2(eps, -2 * e);
  if (t > kDblMax) return {1.0 / __builtin_sqrt(eps), 0};
  return {1.0 / __builtin_sqrt(ss / kd + t), e};
}

// Is multiplying by rstd = r * 2^-e in the storage type exact-range for this row?
template <typename T>
bool fast_scale(const RowScale& s, double rstd);
template <>
bool fast_scale<float>(const RowScale&, double rstd) {
  return rstd >= 0x1p-126 && rstd <= 0x1p126;
}
template <>
bool fast_scale<double>(const RowScale& s, double rstd) {
  return s.e == 0 && rstd >= kDblMin && rstd <= kDblMax;
}

// y = (x * rstd) * (offset + w) + b over one row, vectorized; kWeight/kBias select the terms at compile time.
template <typename T, bool kWeight, bool kBias>
void scale_row(const T* x, T* y, const T* w, const T* b, T rstd, T offset, size_t n) {
  using V = Vec<T>;
  constexpr size_t N = V::N;
  const auto vr = V::set1(rstd);
  const auto vo = V::set1(offset);
  auto one = [&](typename V::R xv, size_t i, bool full, size_t m) {
    auto v = V::mul(xv, vr);
    if (kWeight) {
      const auto wv = V::add(full ? V::load(w + i) : V::loadn(w + i, m), vo);
      if (kBias) {
        v = V::fma(v, wv, full ? V::load(b + i) : V::loadn(b + i, m));
      } else {
        v = V::mul(v, wv);
      }
    } else if (kBias) {
      v = V::add(v, full ? V::load(b + i) : V::loadn(b + i, m));
    }
    return v;
  };
  size_t i = 0;
  for (; i + 2 * N <= n; i += 2 * N) {
    const auto v0 = one(V::load(x + i), i, true, N);
    const auto v1 = one(V::load(x + i + N), i + N, true, N);
    V::store(y + i, v0);
    V::store(y + i + N, v1);
  }
  for (; i + N <= n; i += N) V::store(y + i, one(V::load(x + i), i, true, N));
  if (i < n) V::storen(y + i, one(V::loadn(x + i, n - i), i, false, n - i), n - i);
}

// The same row in double, one element at a time, for rows whose rstd is outside the storage type's normal range.
template <typename T, bool kWeight, bool kBias>
void scale_row_exact(const T* x, T* y, const T* w, const T* b, const RowScale& s, double offset, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    double v = scale2(static_cast<double>(x[i]), -s.e) * s.r;
    if (kWeight) v *= offset + static_cast<double>(w[i]);
    if (kBias) v += static_cast<double>(b[i]);
    y[i] = static_cast<T>(v);
  }
}

template <typename T, bool kWeight, bool kBias>
void rms_norm_rows_impl(const NormArgs<T>& a, size_t r0, size_t r1) {
  for (size_t r = r0; r < r1; ++r) {
    const T* x = a.x + r * a.dim;
    T* y = a.y + r * a.dim;
    const RowScale s = rms_row_scale(x, a.k, a.eps);
    const double rstd = s.e == 0 ? s.r : scale2(s.r, -s.e);
    if (a.rstd) a.rstd[r] = static_cast<T>(rstd);
    if (fast_scale<T>(s, rstd)) {
      scale_row<T, kWeight, kBias>(x, y, a.weight, a.bias, static_cast<T>(rstd), static_cast<T>(a.offset), a.dim);
    } else {
      scale_row_exact<T, kWeight, kBias>(x, y, a.weight, a.bias, s, a.offset, a.dim);
    }
  }
}

template <typename T>
void rms_norm_rows(const NormArgs<T>& a, size_t r0, size_t r1) {
  if (a.weight) {
    if (a.bias) return rms_norm_rows_impl<T, true, true>(a, r0, r1);
    return rms_norm_rows_impl<T, true, false>(a, r0, r1);
  }
  if (a.bias) return rms_norm_rows_impl<T, false, true>(a, r0, r1);
  return rms_norm_rows_impl<T, false, false>(a, r0, r1);
}

}  // namespace

namespace rmsnorm {

#if defined(RMSNORM_TARGET_AVX512)
#define RMSNORM_TABLE kernel_table_avx512
#define RMSNORM_ISA_NAME "avx512"
#elif defined(RMSNORM_TARGET_AVX2)
#define RMSNORM_TABLE kernel_table_avx2
#define RMSNORM_ISA_NAME "avx2"
#elif defined(RMSNORM_TARGET_NEON)
#define RMSNORM_TABLE kernel_table_neon
#define RMSNORM_ISA_NAME "neon"
#else
#define RMSNORM_TABLE kernel_table_scalar
#define RMSNORM_ISA_NAME "scalar"
#endif

extern const KernelTable RMSNORM_TABLE = {
    RMSNORM_ISA_NAME,
    &rms_norm_rows<float>,
    &rms_norm_rows<double>,
};

}  // namespace rmsnorm
