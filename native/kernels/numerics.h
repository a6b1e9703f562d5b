// Row statistics, shared by the forward and backward kernels: storage types and their widening, the row
// reductions (one accumulation order for all of them), and the statistics of rows at extreme magnitudes.
// Included by each kernel file (native/kernels/*.cc), which CMakeLists.txt compiles once per target with one
// RMSNORM_TARGET_* macro and that target's flags; everything here has internal linkage, so code built for one
// instruction set is never merged into another's.
//
// Numerical choices, and why:
// - Sums of squares accumulate in double, with four independent vector accumulators. For float32 data the
//   squares of every finite value (1e-45 .. 3.4e38) are exact-range in double, so no float32 row can overflow
//   or underflow the statistic, and the rounding error of the sum is ~1e-16 instead of ~n * 6e-8.
// - float64 rows can overflow (|x| > 1e154) or underflow (|x| < 1e-154) the sum of squares. Those rows (rare:
//   detected by the sum falling outside [2^-969, DBL_MAX]) are summed again scaled by a power of two taken from
//   the largest magnitude, which is exact, and the power is carried through rstd to the output.
// - rstd = 1 / sqrt(mean + eps) with an exact sqrt and an exact divide, once per row, in double.
// - No -ffast-math; the build uses -ffp-contract=off so the compiler fuses nothing behind our back and every
//   target rounds exactly where these files say.
#pragma once

#include <cstdlib>
#include <type_traits>

#include "../kernels.h"
#include "../simd.h"

// For the small helpers of the inner loops, which GCC's inlining budget would otherwise leave out of the large
// kernel functions that call them (a call per vector step costs a third of the backward pass).
#if defined(_MSC_VER) && !defined(__clang__)
#define RMSNORM_ALWAYS_INLINE __forceinline
#define RMSNORM_NOINLINE __declspec(noinline)
#define RMSNORM_LAMBDA_INLINE [[msvc::forceinline]]
#else
#define RMSNORM_ALWAYS_INLINE inline __attribute__((always_inline))
#define RMSNORM_NOINLINE __attribute__((noinline))
#define RMSNORM_LAMBDA_INLINE __attribute__((always_inline))  // after a lambda's parameter list
#endif

namespace {

using rmsnorm::BackwardArgs;
using rmsnorm::NormArgs;

constexpr double kDblMax = 1.7976931348623157e308;
constexpr double kDblMin = 2.2250738585072014e-308;
// A sum of squares at or above this lost nothing to underflowed squares: each square below DBL_MIN is off by at
// most 2^-1074, a relative 2^-105 * k of the sum.
constexpr double kSafeSumMin = 0x1p-969;

// Storage types and the arithmetic they get: float32 and float64 compute in their own type; bfloat16 and
// float16 compute in float32, the type kernels.h gives their statistics too.
template <typename T>
using Compute = rmsnorm::Stat<T>;
template <typename T>
constexpr bool kIsHalf = std::is_same<T, bf16_t>::value || std::is_same<T, f16_t>::value;

inline double to_double(float v) { return v; }
inline double to_double(double v) { return v; }
inline double to_double(bf16_t h) { return bf16_to_f32(h.bits); }
inline double to_double(f16_t h) { return f16_to_f32(h.bits); }

// Rounds a double to the storage type (half types through float32: the double rounding this allows only
// matters for values within 2^-29 relative of a half-way point, and only on the rare exact paths).
template <typename T>
inline T from_double(double v) {
  return static_cast<T>(v);
}
template <>
inline bf16_t from_double<bf16_t>(double v) {
  return {f32_to_bf16(static_cast<float>(v))};
}
template <>
inline f16_t from_double<f16_t>(double v) {
  return {f32_to_f16(static_cast<float>(v))};
}

// Loads of storage data widened to double (the exact paths and the LayerNorm moments use them): by the
// target's vector conversion where it has one for the type, else element by element.
template <typename T, typename = void>
struct HasDoubleLoad : std::false_type {};
template <typename T>
struct HasDoubleLoad<T, decltype(void(Vec<double>::load(static_cast<const T*>(nullptr))))> : std::true_type {};

template <typename T>
inline typename Vec<double>::R dload(const T* p) {
  if constexpr (HasDoubleLoad<T>::value) {
    return Vec<double>::load(p);
  } else {
    return load_half_as_double(p, Vec<double>::N);
  }
}
template <typename T>
inline typename Vec<double>::R dloadn(const T* p, size_t n) {
  if constexpr (HasDoubleLoad<T>::value) {
    return Vec<double>::loadn(p, n);
  } else {
    return load_half_as_double(p, n);
  }
}

// castMode 'llama': a value rounded to the storage type in registers (identity for float32/float64).
template <typename T, typename R>
inline R round_storage(R v) {
  if constexpr (kIsHalf<T>) {
    return Vec<float>::round_to(static_cast<const T*>(nullptr), v);
  } else {
    return v;
  }
}

// A vector of compute type C loaded from any storage type P (weights may be float32 for half data).
template <typename C, typename P>
inline typename Vec<C>::R load_v(const P* p, size_t i, bool full, size_t m) {
  return full ? Vec<C>::load(p + i) : Vec<C>::loadn(p + i, m);
}

template <typename T>
inline T max_mag(T a, T b) {
  return a > b ? a : b;
}

// Elements before p + head is aligned to a vector of N elements (0 when already aligned, when p is not even
// element-aligned, or when the row is too short to gain).
template <typename T>
inline size_t head_to_align(const T* p, size_t n, size_t N) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  if (N == 1 || n < 4 * N || a % sizeof(T) != 0) return 0;
  return (N - (a / sizeof(T)) % N) % N;
}

// ---------------------------------------------------------------------------------------------------------
// Row reductions. Every sum over a row follows one accumulation order, so that the same data gives the same
// bits in every kernel that sums it (the forward pass and the backward pass's recomputed statistics) and on
// every call (the order depends on the length alone, never on the address or the thread count).

// The order: over columns [i, end), K independent accumulators take steps of K vectors of N lanes (accumulator
// j the j-th vector of each step), then accumulator 0 takes single vectors, then accumulator 1 % K the partial
// tail. body(j, i, full, m) adds columns [i, i + m) into accumulator j (m == N when full).
// step(i), where given, does a whole step at i itself (its columns may go to the K accumulators' lanes in
// another fixed order, see sum_squares_blocked).
template <size_t K, size_t N, typename Body, typename Step>
RMSNORM_ALWAYS_INLINE void reduce_steps(size_t i, size_t end, Body body, Step step) {
  for (; i + K * N <= end; i += K * N) step(i);
  for (; i + N <= end; i += N) body(0, i, true, N);
  if (i < end) body(1 % K, i, false, end - i);
}
template <size_t K, size_t N, typename Body>
RMSNORM_ALWAYS_INLINE void reduce_steps(size_t i, size_t end, Body body) {
  reduce_steps<K, N>(i, end, body, [&](size_t s) {
    for (size_t j = 0; j < K; ++j) body(j, s + j * N, true, N);
  });
}

// S sums over [0, n) in double, each in K accumulators combined pairwise at the end ((a0 + a1) + (a2 + a3)).
// body(acc, i, full, m) adds columns [i, i + m) into acc[0 .. S), one of the K accumulator sets.
template <size_t K, size_t S, typename Body>
RMSNORM_ALWAYS_INLINE void double_sums(size_t n, double* out, Body body) {
  static_assert(K == 1 || K == 2 || K == 4, "accumulators are combined pairwise");
  using D = Vec<double>;
  typename D::R acc[K][S];
  for (size_t j = 0; j < K; ++j) {
    for (size_t s = 0; s < S; ++s) acc[j][s] = D::zero();
  }
  reduce_steps<K, D::N>(0, n, [&](size_t j, size_t i, bool full, size_t m) { body(acc[j], i, full, m); });
  for (size_t s = 0; s < S; ++s) {
    if (K == 4) {
      out[s] = D::sum(D::add(D::add(acc[0][s], acc[1 % K][s]), D::add(acc[2 % K][s], acc[3 % K][s])));
    } else if (K == 2) {
      out[s] = D::sum(D::add(acc[0][s], acc[1 % K][s]));
    } else {
      out[s] = D::sum(acc[0][s]);
    }
  }
}

// S sums over [0, n) accumulated in the compute type C (float32 registers for float32 and half data) within
// blocks of kSteps * K vectors, so that each lane of a block adds at most kSteps + 2 terms; each block's
// accumulators are then widened to double lane by lane and added there, in order.
// step(acc, i), where given, adds a whole step of K vectors at i into acc[0 .. K) (see reduce_steps).
template <typename C, size_t K, size_t S, size_t kSteps, typename Body, typename Step>
RMSNORM_ALWAYS_INLINE void blocked_sums(size_t n, double* out, Body body, Step step) {
  using V = Vec<C>;
  using D = Vec<double>;
  constexpr size_t N = V::N, kBlock = kSteps * K * N;
  typename D::R total[S];
  for (size_t s = 0; s < S; ++s) total[s] = D::zero();
  // No alignment peeling here: the blocks, and so the rounding of the sum, must not depend on the address.
  for (size_t start = 0; start < n; start += kBlock) {
    const size_t end = n - start > kBlock ? start + kBlock : n;
    typename V::R acc[K][S];
    for (size_t j = 0; j < K; ++j) {
      for (size_t s = 0; s < S; ++s) acc[j][s] = V::zero();
    }
    reduce_steps<K, N>(
        start, end, [&](size_t j, size_t i, bool full, size_t m) { body(acc[j], i, full, m); },
        [&](size_t i) { step(acc, i); });
    alignas(64) C lanes[K * N];
    for (size_t s = 0; s < S; ++s) {
      for (size_t j = 0; j < K; ++j) V::store(lanes + j * N, acc[j][s]);
      for (size_t l = 0; l < K * N; l += D::N) total[s] = D::add(total[s], D::load(lanes + l));
    }
  }
  for (size_t s = 0; s < S; ++s) out[s] = D::sum(total[s]);
}
template <typename C, size_t K, size_t S, size_t kSteps, typename Body>
RMSNORM_ALWAYS_INLINE void blocked_sums(size_t n, double* out, Body body) {
  using R = typename Vec<C>::R;
  blocked_sums<C, K, S, kSteps>(n, out, body, [&](R(*acc)[S], size_t i) {
    for (size_t j = 0; j < K; ++j) body(acc[j], i + j * Vec<C>::N, true, Vec<C>::N);
  });
}

// Sum of x[i]^2 for i < n, in double.
template <typename T>
double sum_squares(const T* x, size_t n) {
  using D = Vec<double>;
  double ss;
  double_sums<4, 1>(n, &ss, [&](typename D::R* acc, size_t i, bool full, size_t m) {
    const auto v = full ? dload(x + i) : dloadn(x + i, m);
    acc[0] = D::fma(v, v, acc[0]);
  });
  return ss;
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

// Float32 (and half) rows, fast path: squares in float32 within blocks small enough that each lane adds 8 of
// them, 10 at most in a tail (relative error <= 11 * 2^-24 per block sum), blocks accumulated in double. Returns
// a value outside [2^-60, DBL_MAX] (inf, NaN, or tiny) when a square overflowed or underflowed float32, in which
// case the caller sums again in double.
// Where the target pairs T data in another order (bfloat16 on AVX2: simd.h, PairOrder), each whole step of
// four vectors is two pairs, the first pair's lanes into accumulators 0 and 1, the second's into 2 and 3: a
// fixed order too, at half the conversion work. rms_backward_scalars sums in element order, and so fuses its
// sum of squares only where this does.
template <typename T>
double sum_squares_blocked(const T* x, size_t n) {
  using F = Vec<float>;
  double ss;
  auto body = [&](typename F::R* acc, size_t i, bool full, size_t m) {
    const auto v = full ? F::load(x + i) : F::loadn(x + i, m);
    acc[0] = F::fma(v, v, acc[0]);
  };
  constexpr int kOrder = pair_order<T, T, false>();
  if constexpr (kOrder == kNatural) {
    blocked_sums<float, 4, 1, 8>(n, &ss, body);
  } else {
    blocked_sums<float, 4, 1, 8>(n, &ss, body, [&](typename F::R(*acc)[1], size_t i) {
      typename F::R v0, v1, v2, v3;
      load_pair<F, kOrder>(x + i, v0, v1);
      load_pair<F, kOrder>(x + i + 2 * F::N, v2, v3);
      acc[0][0] = F::fma(v0, v0, acc[0][0]);
      acc[1][0] = F::fma(v1, v1, acc[1][0]);
      acc[2][0] = F::fma(v2, v2, acc[2][0]);
      acc[3][0] = F::fma(v3, v3, acc[3][0]);
    });
  }
  return ss;
}

template <typename T>
double sum_squares_row(const T* x, size_t n) {
  if constexpr (std::is_same<Compute<T>, float>::value) {
    const double ss = sum_squares_blocked(x, n);
    if (ss >= 0x1p-60 && ss <= kDblMax) return ss;
  }
  return sum_squares(x, n);  // float64, or a square left float32's range (or the row is 0, inf, NaN)
}

// rstd for a row whose sum of squares over its first k values is ss (as sum_squares_row computes it).
template <typename T>
RowScale rms_scale_from_sum(const T* x, size_t k, double eps, double ss) {
  const double kd = static_cast<double>(k);
  if (ss >= kSafeSumMin && ss <= kDblMax) return {1.0 / __builtin_sqrt(ss / kd + eps), 0};
  if (ss != ss) return {ss, 0};  // NaN in the row: NaN out, as the reference does.
  // Every float32 or half square is a positive double: a zero sum means an all-zero row (padding is common).
  if (!std::is_same<T, double>::value && ss == 0.0) return {1.0 / __builtin_sqrt(eps), 0};

  // Overflowed, underflowed, or all zero: find the largest magnitude.
  double m = 0.0;
  for (size_t i = 0; i < k; ++i) m = max_mag(m, __builtin_fabs(to_double(x[i])));
  if (m == 0.0 || m > kDblMax) return {1.0 / __builtin_sqrt(ss / kd + eps), 0};  // zeros, or a true inf

  const int e = __builtin_ilogb(m);
  ss = 0.0;
  for (size_t i = 0; i < k; ++i) {
    const double v = scale2(to_double(x[i]), -e);
    ss += v * v;
  }
  // mean + eps = (ss/k + eps * 4^-e) * 4^e. When eps * 4^-e overflows, eps dominates the tiny mean outright.
  const double t = scale2(eps, -2 * e);
  if (t > kDblMax) return {1.0 / __builtin_sqrt(eps), 0};
  return {1.0 / __builtin_sqrt(ss / kd + t), e};
}

template <typename T>
RowScale rms_row_scale(const T* x, size_t k, double eps) {
  return rms_scale_from_sum(x, k, eps, sum_squares_row(x, k));
}

// ---------------------------------------------------------------------------------------------------------
// LayerNorm statistics: mean, then the corrected two-pass variance (Chan, Golub & LeVeque):
//   var = (sum (x - mean)^2 - (sum (x - mean))^2 / n) / n,
// all in double. It stays accurate when |mean| is many orders above the spread, where E[x^2] - E[x]^2 would
// cancel to noise. float64 rows whose sums leave double's range are rescaled by a power of two first.

struct RowMoments {
  double mean;
  RowScale s;     // rstd = s.r * 2^-s.e
  double mean_s;  // the mean times 2^-ce (= mean where ce == 0), keeping the fraction a subnormal mean loses
  int ce;         // exact-path outputs are (x * 2^-ce - mean_s) * 2^(ce - s.e) * s.r
  bool exact;     // the vector path would lose the row: x - mean overflows, or the mean's fraction underflows
};

template <typename T>
double row_sum(const T* x, size_t n) {
  using D = Vec<double>;
  double sum;
  double_sums<4, 1>(n, &sum, [&](typename D::R* acc, size_t i, bool full, size_t m) {
    acc[0] = D::add(acc[0], full ? dload(x + i) : dloadn(x + i, m));
  });
  return sum;
}

// sum (x - c)^2 and sum (x - c) over a row, in double.
template <typename T>
void centered_sums(const T* x, size_t n, double c, double* sq, double* lin) {
  using D = Vec<double>;
  const auto vc = D::set1(c);
  double sums[2];
  double_sums<2, 2>(n, sums, [&](typename D::R* acc, size_t i, bool full, size_t m) {
    auto d = D::sub(full ? dload(x + i) : dloadn(x + i, m), vc);
    if (!full) {
      // Lanes past m load as 0; subtracting c there would add c^2 terms, so mask them back to zero.
      double t[D::N];
      D::store(t, d);
      for (size_t j = m; j < D::N; ++j) t[j] = 0.0;
      d = D::load(t);
    }
    acc[0] = D::fma(d, d, acc[0]);
    acc[1] = D::add(acc[1], d);
  });
  *sq = sums[0];
  *lin = sums[1];
}

// A row whose variance comes out 0 has its mean corrected by the deviations' own sum, mean + sum (x - mean) / n.
// For a constant float64 row that is the constant itself, where the first sum's rounding leaves the mean a few
// units off and (x - mean) / sqrt(eps) would turn that into anything up to an infinity for a tiny eps. (Every
// deviation is then the same small multiple of the constant's ulp, so the sums are exact; float32 and half
// rows need no correction, their double sums being exact, but get the same code.)
template <typename T>
RowMoments ln_row_moments(const T* x, size_t n, double eps) {
  const double nd = static_cast<double>(n);
  double mean = row_sum(x, n) / nd;
  double sq, lin;
  centered_sums(x, n, mean, &sq, &lin);
  // For float32 or half data a zero sq means a constant row (the smallest nonzero deviation squared is
  // 2^-298), and a NaN one a NaN or an infinity in the row (no double sum of their values overflows); for
  // float64 a zero sq may be deviations whose squares underflowed, and a NaN one a sum that overflowed, which
  // the rescaled path tells apart.
  constexpr bool kF64 = std::is_same<T, double>::value;
  const bool in_range = mean - mean == 0.0 && sq <= kDblMax && (sq >= kSafeSumMin || (sq == 0.0 && !kF64));
  if (in_range || (sq != sq && !kF64)) {
    // A constant row: var 0, rstd 1/sqrt(eps) (inf for eps 0, then 0 * inf = NaN, as PyTorch).
    const double var = (sq - lin * lin / nd) / nd;
    if (var <= 0.0) mean += lin / nd;  // (not for NaN data: its mean stays what the sum gave)
    // The float32 vector path subtracts the mean as hi + lo in float32: a deviation past 2^125 may overflow
    // there (|x - mean| <= sqrt(sq)), and the mean of a row of subnormals loses its fraction below 2^-149 in
    // lo, an error of rstd * 2^-150 in every output. Both rows, rare, go to the exact path. (float64 rows in
    // range have neither: sq <= DBL_MAX, and a mean that small comes with deviations far larger.)
    const bool exact = !kF64 && (sq > 0x1p250 || (mean != 0.0 && __builtin_fabs(mean) < 0x1p-90));
    return {mean, {1.0 / __builtin_sqrt((var > 0.0 ? var : 0.0) + eps), 0}, mean, 0, exact};
  }
  // float64 only: a sum overflowed or the deviations' squares underflowed, or the row holds NaN or an
  // infinity. Scale by the largest magnitude.
  double m = 0.0;
  bool finite = true;
  for (size_t i = 0; i < n; ++i) {
    const double v = __builtin_fabs(to_double(x[i]));
    finite = finite && v <= kDblMax;  // false for NaN too
    m = max_mag(m, v);
  }
  if (!finite || m == 0.0) return {mean, {1.0 / __builtin_sqrt(eps), 0}, mean, 0, false};  // NaN/inf: NaN out
  const int e = __builtin_ilogb(m);
  double sum = 0.0;
  for (size_t i = 0; i < n; ++i) sum += scale2(to_double(x[i]), -e);
  double mean_s = sum / nd;
  double sq_s = 0.0, lin_s = 0.0;
  for (size_t i = 0; i < n; ++i) {
    const double d = scale2(to_double(x[i]), -e) - mean_s;
    sq_s += d * d;
    lin_s += d;
  }
  const double var_s = (sq_s - lin_s * lin_s / nd) / nd;
  if (var_s <= 0.0) mean_s += lin_s / nd;
  const double t = scale2(eps, -2 * e);
  const double mean_out = scale2(mean_s, e);
  // eps dominates (t overflowed), or the row is constant: var + eps is eps itself, whatever eps * 4^-e underflowed
  // to, and rstd is 1/sqrt(eps) unscaled. A row below eps's square root keeps its scaled mean for the exact path
  // (its mean may be subnormal); a constant row has x - mean = 0 either way.
  if (t > kDblMax) return {mean_out, {1.0 / __builtin_sqrt(eps), 0}, mean_s, e, true};
  if (!(var_s > 0.0)) return {mean_out, {1.0 / __builtin_sqrt(eps), 0}, mean_out, 0, false};
  return {mean_out, {1.0 / __builtin_sqrt(var_s + t), e}, mean_s, e, true};
}

template <typename T>
inline typename Vec<double>::R load_d(const T* p, size_t i, bool full, size_t m) {
  return full ? dload(p + i) : dloadn(p + i, m);
}

template <typename T>
inline void store_d(T* p, size_t i, typename Vec<double>::R v, bool full, size_t m) {
  if (full) {
    Vec<double>::store(p + i, v);
  } else {
    Vec<double>::storen(p + i, v, m);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Conversions between float32 arrays and half-precision bits, vectorized.

template <typename H>
void from_float(const float* src, H* dst, size_t n) {
  using F = Vec<float>;
  size_t i = 0;
  for (; i + F::N <= n; i += F::N) F::store(dst + i, F::load(src + i));
  if (i < n) F::storen(dst + i, F::loadn(src + i, n - i), n - i);
}

template <typename H>
void to_float(const H* src, float* dst, size_t n) {
  using F = Vec<float>;
  size_t i = 0;
  for (; i + F::N <= n; i += F::N) F::store(dst + i, F::load(src + i));
  if (i < n) F::storen(dst + i, F::loadn(src + i, n - i), n - i);
}

}  // namespace
