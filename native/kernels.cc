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

#include <cstdlib>
#include <type_traits>

namespace {

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

// Loads of storage data widened to double (float16/bfloat16 element by element: only the exact paths and the
// LayerNorm moments use them).
template <typename T>
inline typename Vec<double>::R dload(const T* p) {
  if constexpr (kIsHalf<T>) {
    return load_half_as_double(p, Vec<double>::N);
  } else {
    return Vec<double>::load(p);
  }
}
template <typename T>
inline typename Vec<double>::R dloadn(const T* p, size_t n) {
  if constexpr (kIsHalf<T>) {
    return load_half_as_double(p, n);
  } else {
    return Vec<double>::loadn(p, n);
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
inline T max_mag(T a, T b) { return a > b ? a : b; }

// Elements before p + head is aligned to a vector of N elements (0 when already aligned, when p is not even
// element-aligned, or when the row is too short to gain).
template <typename T>
inline size_t head_to_align(const T* p, size_t n, size_t N) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  if (N == 1 || n < 4 * N || a % sizeof(T) != 0) return 0;
  return (N - (a / sizeof(T)) % N) % N;
}

// Sum of x[i]^2 for i < n, in double.
template <typename T>
double sum_squares(const T* x, size_t n) {
  using D = Vec<double>;
  constexpr size_t N = D::N;
  typename D::R a0 = D::zero(), a1 = D::zero(), a2 = D::zero(), a3 = D::zero();
  size_t i = 0;
  for (; i + 4 * N <= n; i += 4 * N) {
    const auto v0 = dload(x + i), v1 = dload(x + i + N), v2 = dload(x + i + 2 * N), v3 = dload(x + i + 3 * N);
    a0 = D::fma(v0, v0, a0);
    a1 = D::fma(v1, v1, a1);
    a2 = D::fma(v2, v2, a2);
    a3 = D::fma(v3, v3, a3);
  }
  for (; i + N <= n; i += N) {
    const auto v = dload(x + i);
    a0 = D::fma(v, v, a0);
  }
  if (i < n) {
    const auto v = dloadn(x + i, n - i);
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

// Float32 (and half) rows, fast path: squares in float32 within blocks small enough that each lane adds 8
// them, 10 at most in a tail (relative error <= 11 * 2^-24 per block sum), blocks accumulated in double. Returns a value outside
// [2^-60, DBL_MAX] (inf, NaN, or tiny) when a square overflowed or underflowed float32, in which case the
// caller sums again in double.
template <typename T>
double sum_squares_blocked(const T* x, size_t n) {
  using F = Vec<float>;
  using D = Vec<double>;
  constexpr size_t N = F::N, kBlock = 8 * 4 * N;
  typename D::R total = D::zero();
  // No alignment peeling here: the blocks, and so the rounding of the sum, must not depend on the address.
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

// Is multiplying by rstd = r * 2^-e in the compute type exact-range for this row?
template <typename C>
bool fast_scale(const RowScale& s, double rstd);
template <>
bool fast_scale<float>(const RowScale&, double rstd) {
  return rstd >= 0x1p-126 && rstd <= 0x1p126;
}
template <>
bool fast_scale<double>(const RowScale& s, double rstd) {
  return s.e == 0 && rstd >= kDblMin && rstd <= kDblMax;
}

// What a forward kernel instantiation writes: which affine terms, and castMode 'llama' (round x * rstd to
// the storage type before the weight, as Hugging Face's Llama/Granite RMSNorm does).
enum Term : unsigned { kWeightTerm = 1, kBiasTerm = 2, kLlamaTerm = 4 };

// Asks for the cache lines of p[0, n) (the next row, while this one is scaled from cache): the row's first pass
// then reads it from cache instead of waiting on memory line after line.
template <typename T>
inline void prefetch_span(const T* p, size_t n) {
  const char* c = reinterpret_cast<const char*>(p);
  for (size_t off = 0; off < n * sizeof(T); off += 64) __builtin_prefetch(c + off, 0, 3);
}

// The output pass of one row, vectorized in the compute type C: y = ((x - center) * rstd) * (offset + w) + b.
// kCenter (LayerNorm) subtracts the mean given as hi + lo, so a float32 row whose |mean| dwarfs its spread
// loses nothing to the rounding of the mean. With (kT & kLlamaTerm), x * rstd is rounded to the storage type first and
// the affine step is a plain multiply and add (no fused rounding), to match that rule bit for bit.
template <typename T, typename W, bool kCenter, unsigned kT>
void scale_row(const T* x, T* y, const W* w, const W* b, Compute<T> center_hi, Compute<T> center_lo,
               Compute<T> rstd, Compute<T> offset, size_t n, bool stream, const T* next) {
  using C = Compute<T>;
  using V = Vec<C>;
  constexpr size_t N = V::N;
  const auto vr = V::set1(rstd);
  const auto vo = V::set1(offset);
  const auto vch = V::set1(center_hi);
  const auto vcl = V::set1(center_lo);
  auto one = [&](typename V::R xv, size_t i, bool full, size_t m) {
    if (kCenter) xv = V::sub(V::sub(xv, vch), vcl);
    auto v = V::mul(xv, vr);
    if ((kT & kLlamaTerm)) v = round_storage<T>(v);
    if ((kT & kWeightTerm)) {
      const auto wv = V::add(load_v<C>(w, i, full, m), vo);
      if ((kT & kBiasTerm) && !(kT & kLlamaTerm)) {
        v = V::fma(v, wv, load_v<C>(b, i, full, m));
      } else {
        v = V::mul(v, wv);
        if ((kT & kBiasTerm)) v = V::add(v, load_v<C>(b, i, full, m));
      }
    } else if ((kT & kBiasTerm)) {
      v = V::add(v, load_v<C>(b, i, full, m));
    }
    return v;
  };
  // A short masked head first, so the main loop's stores are aligned to their width: an unaligned 64-byte
  // store spans two cache lines, and this pass is bound by its stores. Each element is computed the same way
  // in the head and the loop, so the split (which depends on the address) never changes a result.
  size_t i = head_to_align(y, n, N);
  if (i) V::storen(y, one(V::loadn(x, i), 0, false, i), i);
  if (stream && reinterpret_cast<uintptr_t>(y + i) % (N * sizeof(T)) == 0) {
    for (; i + 2 * N <= n; i += 2 * N) {
      if (next) prefetch_span(next + i, 2 * N);
      const auto v0 = one(V::load(x + i), i, true, N);
      const auto v1 = one(V::load(x + i + N), i + N, true, N);
      store_stream<V>(y + i, v0);
      store_stream<V>(y + i + N, v1);
    }
  }
  for (; i + 2 * N <= n; i += 2 * N) {
    if (next) prefetch_span(next + i, 2 * N);
    const auto v0 = one(V::load(x + i), i, true, N);
    const auto v1 = one(V::load(x + i + N), i + N, true, N);
    V::store(y + i, v0);
    V::store(y + i + N, v1);
  }
  for (; i + N <= n; i += N) V::store(y + i, one(V::load(x + i), i, true, N));
  if (i < n) V::storen(y + i, one(V::loadn(x + i, n - i), i, false, n - i), n - i);
}

// d * 2^-e * r * f for finite non-zero d and r, with no intermediate overflow or underflow: d, f and the
// product with r are split into fraction and exponent first, so each multiplication is of fractions in
// [0.5, 1) and the exponents are applied once at the end. Where no intermediate leaves double's normal range
// this rounds exactly as ((d * 2^-e) * r) * f does.
inline double mul_exp(double d, int e, double r, double f) {
  int ed, ep, ef = 0;
  const double md = __builtin_frexp(d, &ed);
  const double mp = __builtin_frexp(md * r, &ep);
  if (f - f == 0.0) f = __builtin_frexp(f, &ef);  // (0 stays 0; an infinite f goes in as it is)
  return scale2(mp * f, ed + ep + ef - e);
}

// The same row in double, one element at a time, for rows the vector path cannot take: rstd outside the
// compute type's normal range, rows rescaled by a power of two, and rows with an intermediate that would leave
// the compute type's range (see write_row). With rstd = r * 2^-s.e, and the mean given as center_s scaled by
// 2^-ce (0 for RMSNorm, and ce = 0):
//   y = ((x * 2^-ce - center_s) * 2^(ce - s.e) * r) * (offset + w) + b.
// LayerNorm subtracts in scaled form because x - mean itself may overflow (a float64 row spanning more than
// DBL_MAX), and the mean of a row of subnormals keeps its fraction only scaled up. For float64 data the
// products go through mul_exp: x * 2^-e alone can overflow for a value past the first k (partial < 1) whose
// output is finite.
template <typename T, typename W, bool kCenter, unsigned kT>
void scale_row_exact(const T* x, T* y, const W* w, const W* b, double center_s, int ce, const RowScale& s,
                     double offset, size_t n) {
  const int e = kCenter ? s.e - ce : s.e;
  for (size_t i = 0; i < n; ++i) {
    double d = to_double(x[i]);
    if (kCenter) d = scale2(d, -ce) - center_s;
    double v;
    if (std::is_same<T, double>::value && d - d == 0.0 && d != 0.0 && s.r - s.r == 0.0 && s.r != 0.0) {
      v = mul_exp(d, e, s.r, (kT & kWeightTerm) ? offset + to_double(w[i]) : 1.0);
    } else {
      v = scale2(d, -e) * s.r;
      if ((kT & kLlamaTerm)) v = to_double(from_double<T>(v));
      if ((kT & kWeightTerm)) v *= offset + to_double(w[i]);
    }
    if ((kT & kBiasTerm)) v += to_double(b[i]);
    y[i] = from_double<T>(v);
  }
}

// Writes one normalized row given its statistics: by the vector path when rstd is a normal number of the
// compute type and the caller saw no intermediate leaving its range (`exact` false), else by the exact path.
// center is the mean (0 for RMSNorm); center_s the same times 2^-ce, for the exact path.
template <typename T, typename W, bool kCenter, unsigned kT>
void write_row(const NormArgs<T, W>& a, const T* x, T* y, double center, double center_s, int ce, const RowScale& s,
               double rstd, bool exact, const T* next = nullptr) {
  using C = Compute<T>;
  if (!exact && fast_scale<C>(s, rstd)) {
    const C hi = static_cast<C>(center);
    const C lo = static_cast<C>(center - static_cast<double>(hi));
    scale_row<T, W, kCenter, kT>(x, y, a.weight, a.bias, hi, lo, static_cast<C>(rstd), static_cast<C>(a.offset), a.dim,
                                 a.stream, next);
  } else {
    scale_row_exact<T, W, kCenter, kT>(x, y, a.weight, a.bias, center_s, ce, s, a.offset, a.dim);
  }
}

// With partial < 1 the values past the first k do not enter rstd, so one of them may be far larger than those
// that do, and x * rstd may overflow the compute type although the output (times a small weight) is finite.
// That needs rstd > 1 (else |x * rstd| <= |x|), so only such partial rows pay for a look at their tail: its
// sum of squares bounds its largest magnitude. True sends the row to the exact path.
template <typename T>
bool tail_may_overflow(const T* x, size_t k, size_t n, double rstd) {
  if (k == n || !(rstd > 1.0)) return false;
  // The bound keeps |x * rstd| below 2^125 (float) or 2^510 (double): far from overflow, and within what a
  // double sum of squares can tell.
  constexpr double kLimit = std::is_same<Compute<T>, float>::value ? 0x1p250 : 0x1p1020;
  const double ss = sum_squares_row(x + k, n - k);
  return !(ss * rstd * rstd < kLimit);  // inf or NaN in the tail, or a sum that overflowed: exact path
}

// ---------------------------------------------------------------------------------------------------------
// RMSNorm forward

template <typename T, typename W, unsigned kT>
void rms_norm_rows_impl(const NormArgs<T, W>& a, size_t r0, size_t r1) {
  for (size_t r = r0; r < r1; ++r) {
    const T* x = a.x + r * a.dim;
    const RowScale s = rms_row_scale(x, a.k, a.eps);
    const double rstd = s.e == 0 ? s.r : scale2(s.r, -s.e);
    if (a.rstd) a.rstd[r] = static_cast<Compute<T>>(rstd);
    write_row<T, W, false, kT>(a, x, a.y + r * a.dim, 0.0, 0.0, 0, s, rstd, tail_may_overflow(x, a.k, a.dim, rstd),
                               r + 1 < r1 ? x + a.dim : nullptr);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Fused residual add + RMSNorm: residual += x (rounded to T), then y = rmsNorm(residual). The first pass adds,
// stores the new residual and sums its squares; the second scales the row, which is still in cache.

// residual[i] += x[i] over one row, returning the sum of squares of the new (rounded) values like
// sum_squares_row: float32 blocks for float32 and half data, double for float64.
template <typename T>
double add_rows_sum_squares(const T* x, T* res, size_t n) {
  if constexpr (std::is_same<T, double>::value) {
    using V = Vec<double>;
    constexpr size_t N = V::N;
    size_t i = 0;
    for (; i + N <= n; i += N) V::store(res + i, V::add(V::load(res + i), V::load(x + i)));
    if (i < n) V::storen(res + i, V::add(V::loadn(res + i, n - i), V::loadn(x + i, n - i)), n - i);
    return sum_squares(static_cast<const T*>(res), n);
  } else {
    using F = Vec<float>;
    using D = Vec<double>;
    constexpr size_t N = F::N, kBlock = 8 * 2 * N;
    typename D::R total = D::zero();
    size_t i = 0;
    while (i < n) {
      const size_t end = n - i > kBlock ? i + kBlock : n;
      typename F::R a0 = F::zero(), a1 = F::zero();
      for (; i + 2 * N <= end; i += 2 * N) {
        const auto v0 = round_storage<T>(F::add(F::load(res + i), F::load(x + i)));
        const auto v1 = round_storage<T>(F::add(F::load(res + i + N), F::load(x + i + N)));
        F::store(res + i, v0);
        F::store(res + i + N, v1);
        a0 = F::fma(v0, v0, a0);
        a1 = F::fma(v1, v1, a1);
      }
      for (; i + N <= end; i += N) {
        const auto v = round_storage<T>(F::add(F::load(res + i), F::load(x + i)));
        F::store(res + i, v);
        a0 = F::fma(v, v, a0);
      }
      if (i < end) {
        const size_t m = end - i;
        const auto v = round_storage<T>(F::add(F::loadn(res + i, m), F::loadn(x + i, m)));
        F::storen(res + i, v, m);
        a1 = F::fma(v, v, a1);
        i = end;
      }
      alignas(64) float lanes[2 * N];
      F::store(lanes, a0);
      F::store(lanes + N, a1);
      for (size_t j = 0; j < 2 * N; j += D::N) total = D::add(total, D::load(lanes + j));
    }
    const double ss = D::sum(total);
    if (ss >= 0x1p-60 && ss <= kDblMax) return ss;
    return sum_squares(static_cast<const T*>(res), n);
  }
}

template <typename T, typename W, unsigned kT>
void add_rms_norm_rows_impl(const NormArgs<T, W>& a, size_t r0, size_t r1) {
  for (size_t r = r0; r < r1; ++r) {
    T* res = a.residual + r * a.dim;
    const double full = add_rows_sum_squares(a.x + r * a.dim, res, a.dim);
    // With partial < 1 the statistic covers only the first k values: sum those again (rare; cached).
    const double ss = a.k == a.dim ? full : sum_squares_row(static_cast<const T*>(res), a.k);
    const RowScale s = rms_scale_from_sum(static_cast<const T*>(res), a.k, a.eps, ss);
    const double rstd = s.e == 0 ? s.r : scale2(s.r, -s.e);
    if (a.rstd) a.rstd[r] = static_cast<Compute<T>>(rstd);
    write_row<T, W, false, kT>(a, res, a.y + r * a.dim, 0.0, 0.0, 0, s, rstd,
                               tail_may_overflow(static_cast<const T*>(res), a.k, a.dim, rstd));
  }
}

// ---------------------------------------------------------------------------------------------------------
// LayerNorm forward: mean, then the corrected two-pass variance (Chan, Golub & LeVeque):
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
  constexpr size_t N = D::N;
  typename D::R a0 = D::zero(), a1 = D::zero(), a2 = D::zero(), a3 = D::zero();
  size_t i = 0;
  for (; i + 4 * N <= n; i += 4 * N) {
    a0 = D::add(a0, dload(x + i));
    a1 = D::add(a1, dload(x + i + N));
    a2 = D::add(a2, dload(x + i + 2 * N));
    a3 = D::add(a3, dload(x + i + 3 * N));
  }
  for (; i + N <= n; i += N) a0 = D::add(a0, dload(x + i));
  if (i < n) a1 = D::add(a1, dloadn(x + i, n - i));
  return D::sum(D::add(D::add(a0, a1), D::add(a2, a3)));
}

// sum (x - c)^2 and sum (x - c) over a row, in double.
template <typename T>
void centered_sums(const T* x, size_t n, double c, double* sq, double* lin) {
  using D = Vec<double>;
  constexpr size_t N = D::N;
  const auto vc = D::set1(c);
  typename D::R s0 = D::zero(), s1 = D::zero(), l0 = D::zero(), l1 = D::zero();
  size_t i = 0;
  for (; i + 2 * N <= n; i += 2 * N) {
    const auto d0 = D::sub(dload(x + i), vc), d1 = D::sub(dload(x + i + N), vc);
    s0 = D::fma(d0, d0, s0);
    s1 = D::fma(d1, d1, s1);
    l0 = D::add(l0, d0);
    l1 = D::add(l1, d1);
  }
  for (; i + N <= n; i += N) {
    const auto d = D::sub(dload(x + i), vc);
    s0 = D::fma(d, d, s0);
    l0 = D::add(l0, d);
  }
  if (i < n) {
    const size_t m = n - i;
    // Lanes past m load as 0; subtracting c there would add c^2 terms, so mask them back to zero.
    double t[N];
    D::store(t, D::sub(dloadn(x + i, m), vc));
    for (size_t j = m; j < N; ++j) t[j] = 0.0;
    const auto d = D::load(t);
    s1 = D::fma(d, d, s1);
    l1 = D::add(l1, d);
  }
  *sq = D::sum(D::add(s0, s1));
  *lin = D::sum(D::add(l0, l1));
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

template <typename T, typename W, unsigned kT>
void layer_norm_rows_impl(const NormArgs<T, W>& a, size_t r0, size_t r1) {
  for (size_t r = r0; r < r1; ++r) {
    const T* x = a.x + r * a.dim;
    const RowMoments mo = ln_row_moments(x, a.dim, a.eps);
    const double rstd = mo.s.e == 0 ? mo.s.r : scale2(mo.s.r, -mo.s.e);
    if (a.rstd) a.rstd[r] = static_cast<Compute<T>>(rstd);
    if (a.mean) a.mean[r] = static_cast<Compute<T>>(mo.mean);
    write_row<T, W, true, kT>(a, x, a.y + r * a.dim, mo.mean, mo.mean_s, mo.ce, mo.s, rstd, mo.exact,
                              r + 1 < r1 ? x + a.dim : nullptr);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Backward passes, in double throughout (float32 data is widened on load and narrowed on store).
//
// RMSNorm, with g = dy * (offset + w) and rstd over the first k values:
//   dx[j] = rstd * g[j] - [j < k] * x[j] * rstd^3 / k * sum_i g[i] x[i]
//   dweight[j] += dy[j] * x[j] * rstd,  dbias[j] += dy[j]
// LayerNorm, with xhat = (x - mean) * rstd and g = dy * w:
//   dx[j] = rstd * (g[j] - mean(g) - xhat[j] * mean(g * xhat))
//   dweight[j] += dy[j] * xhat[j],  dbias[j] += dy[j]

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

// Runs body(i, full, m) over [0, n) in steps of Vec<double>::N, the last step partial.
template <typename Body>
inline void for_each_lane_block(size_t n, Body body) {
  constexpr size_t N = Vec<double>::N;
  size_t i = 0;
  for (; i + N <= n; i += N) body(i, true, N);
  if (i < n) body(i, false, n - i);
}

// The effective weight (offset + w) as doubles, or 1 without a weight.
template <typename T>
inline typename Vec<double>::R weight_d(const T* w, double offset, size_t i, bool full, size_t m) {
  using D = Vec<double>;
  return w ? D::add(load_d(w, i, full, m), D::set1(offset)) : D::set1(1.0);
}

// Rows are taken in groups of kGroup: each row's scalars first, then one pass over the columns that writes dx
// for every row of the group and adds the group's summed dweight/dbias contributions to dw/db once, so the
// double accumulators are read and written once per group rather than once per row. The grouping is fixed by
// the row range, so the sums never depend on scheduling.
constexpr size_t kGroup = 4;

// dw[i .. i+m) (+)= sw; db (+)= sb, where sw and sb are vectors of the storage type holding the group's summed
// contributions: widened to double lane by lane. The first group of a range overwrites (`first`), so the
// caller's scratch needs no zeroing.
template <typename T>
inline void add_group_grads(double* dw, double* db, bool first, size_t i, size_t m, typename Vec<T>::R sw,
                            typename Vec<T>::R sb) {
  using D = Vec<double>;
  constexpr size_t N = Vec<T>::N;
  alignas(64) T lanes[2][N];
  Vec<T>::store(lanes[0], sw);
  Vec<T>::store(lanes[1], sb);
  double* acc[2] = {dw, db};
  for (int t = 0; t < 2; ++t) {
    if (!acc[t]) continue;
    for (size_t j = 0; j < m; j += D::N) {
      const bool full = j + D::N <= m;
      const size_t part = full ? D::N : m - j;
      const auto v = full ? D::load(lanes[t] + j) : D::loadn(lanes[t] + j, part);
      store_d(acc[t], i + j, first ? v : D::add(load_d(acc[t], i + j, full, part), v), full, part);
    }
  }
}

// Runs body(i, full, m) over [0, n): first a partial step of `head` columns (when head > 0), then steps of
// the compute type's lanes, the last step partial.
template <typename T, typename Body>
inline void for_each_block(size_t n, size_t head, Body body) {
  constexpr size_t N = Vec<Compute<T>>::N;
  size_t i = head < n ? head : n;
  if (i) body(0, false, i);
  for (; i + N <= n; i += N) body(i, true, N);
  if (i < n) body(i, false, n - i);
}

// A vector of T's compute type loaded from T data.
template <typename T>
inline typename Vec<Compute<T>>::R load_t(const T* p, size_t i, bool full, size_t m) {
  return load_v<Compute<T>>(p, i, full, m);
}

// Row reductions of the backward passes: K sums accumulated in the storage type over blocks of at most 8
// vector steps per lane (so a float32 lane sum carries at most 8 roundings), each block widened to double and
// added there. body(i, full, m, acc) adds the terms of columns [i, i+m) into acc[0..K).
template <typename T, size_t K, typename Body>
void blocked_row_sums(size_t n, double* out, Body body) {
  using C = Compute<T>;
  using V = Vec<C>;
  using D = Vec<double>;
  constexpr size_t N = V::N, kBlock = 8 * N;
  typename D::R total[K];
  for (size_t t = 0; t < K; ++t) total[t] = D::zero();
  for (size_t start = 0; start < n; start += kBlock) {
    const size_t end = n - start > kBlock ? start + kBlock : n;
    typename V::R acc[K];
    for (size_t t = 0; t < K; ++t) acc[t] = V::zero();
    size_t i = start;
    for (; i + N <= end; i += N) body(i, true, N, acc);
    if (i < end) body(i, false, end - i, acc);
    alignas(64) C lanes[N];
    for (size_t t = 0; t < K; ++t) {
      V::store(lanes, acc[t]);
      for (size_t j = 0; j < N; j += D::N) total[t] = D::add(total[t], D::load(lanes + j));
    }
  }
  for (size_t t = 0; t < K; ++t) out[t] = D::sum(total[t]);
}

// Per-row scalars of the RMSNorm backward: rstd, and q = rstd / k * sum_i g[i] x[i], so that
// dx[j] = rstd * (g[j] - [j < k] * xhat[j] * q) with xhat = x * rstd. Written this way every factor stays near
// the data's own scale: rstd^3 alone underflows float32 for rows of magnitude 1e13 and more.
template <typename T, typename W>
void rms_backward_scalars(const rmsnorm::BackwardArgs<T, W>& a, size_t r, double* rstd_out, double* q_out) {
  const size_t n = a.dim;
  const T* x = a.x + r * n;
  const T* dy = a.dy + r * n;
  // Every output depends on rstd, so the dot product runs over the whole row. Without a saved rstd and with
  // the statistic over the whole row (k == n), the sum of squares comes from the same pass: RMSNorm's
  // backward then reads each row once before its column pass, where LayerNorm's needs its mean first.
  using C = Compute<T>;
  using V = Vec<C>;
  const auto vo = V::set1(static_cast<C>(a.offset));
  const bool fuse = !a.rstd && a.k == n;
  double sums[2] = {0.0, 0.0};  // sum g x, sum x^2
  auto dot_body = [&](size_t i, bool full, size_t m, typename V::R* acc) {
    const auto wv = a.weight ? V::add(load_v<C>(a.weight, i, full, m), vo) : V::set1(C(1));
    const auto xv = load_t(x, i, full, m);
    acc[0] = V::fma(V::mul(load_t(dy, i, full, m), wv), xv, acc[0]);
    if (fuse) acc[1] = V::fma(xv, xv, acc[1]);
  };
  if (fuse) {
    blocked_row_sums<T, 2>(n, sums, dot_body);
  } else {
    blocked_row_sums<T, 1>(n, sums, dot_body);
  }
  const double dot = sums[0];
  double rstd;
  if (a.rstd) {
    rstd = static_cast<double>(a.rstd[r]);
  } else {
    // The fused float32 sum is usable where the forward pass's blocked sum is (sum_squares_row); anywhere
    // else, and for k < n, the forward's own path computes it.
    double ss = sums[1];
    const bool usable = fuse && (std::is_same<T, double>::value || (ss >= 0x1p-60 && ss <= kDblMax));
    if (!usable) ss = sum_squares_row(x, a.k);
    const RowScale s = rms_scale_from_sum(x, a.k, a.eps, ss);
    rstd = s.e == 0 ? s.r : scale2(s.r, -s.e);
  }
  *rstd_out = rstd;
  *q_out = rstd * dot / static_cast<double>(a.k);
}

// Where the column blocks of rows [r, r + G) start, so that their dx stores are aligned to the vector width
// (an unaligned 64-byte store spans two cache lines), and whether those stores may bypass the caches (the call
// asked for it and the rows are all aligned alike). Every element is computed the same way in any block, so
// the split never changes a result.
struct DxLayout {
  size_t head;
  bool stream;
};
template <typename T, typename W>
inline DxLayout dx_layout(const rmsnorm::BackwardArgs<T, W>& a, size_t r) {
  constexpr size_t N = Vec<Compute<T>>::N;
  const size_t n = a.dim;
  if (n % N != 0) return {0, false};
  const T* row = a.dx + r * n;
  const size_t head = head_to_align(row, n, N);
  return {head, a.stream && reinterpret_cast<uintptr_t>(row + head) % (N * sizeof(T)) == 0};
}

// Asks for columns [i, i + m) of the next group's x and dy rows (into L2: a group's rows exceed L1), so that its
// scalars pass, which streams them from memory, finds them in cache.
template <typename T, typename W>
inline void prefetch_group(const rmsnorm::BackwardArgs<T, W>& a, size_t r, size_t rows, size_t i, size_t m) {
  for (size_t g = 0; g < rows; ++g) {
    const size_t base = (r + g) * a.dim + i;
    for (size_t off = 0; off < m * sizeof(T); off += 64) {
      __builtin_prefetch(reinterpret_cast<const char*>(a.x + base) + off, 0, 2);
      __builtin_prefetch(reinterpret_cast<const char*>(a.dy + base) + off, 0, 2);
    }
  }
}

// Stores a block of dx; full aligned blocks of a large call bypass the caches (`stream`): dx is written once,
// and read by the next layer's backward pass long after this call has evicted it; streaming skips reading
// each destination line before overwriting it. The group's rows are stored together for each block, after all
// their loads: rows of Granite's widths are a multiple of 4 KiB apart, and a load right after a store whose
// address matches it in the low 12 bits waits on that store (measured: 64 x 4096 float32, 5-8% faster).
template <typename V, typename T>
inline void store_dx(T* p, typename V::R d, bool full, size_t m, bool stream) {
  if (!full) {
    V::storen(p, d, m);
  } else if (stream) {
    store_stream<V>(p, d);
  } else {
    V::store(p, d);
  }
}

// The column pass runs in the storage type (float32 data in float32 registers): each dx element is two
// products and a difference of values the scalars pass computed in double.
template <typename T, typename W, size_t G>
void rms_backward_group(const rmsnorm::BackwardArgs<T, W>& a, size_t r, double* dw, double* db, bool first,
                        size_t r_end) {
  using C = Compute<T>;
  using V = Vec<C>;
  const size_t n = a.dim, k = a.k;
  double rstd[G], q[G];
  for (size_t g = 0; g < G; ++g) rms_backward_scalars<T, W>(a, r + g, &rstd[g], &q[g]);
  typename V::R vr[G], vnq[G];
  for (size_t g = 0; g < G; ++g) {
    vr[g] = V::set1(static_cast<C>(rstd[g]));
    vnq[g] = V::set1(static_cast<C>(-q[g]));
  }
  const auto vo = V::set1(static_cast<C>(a.offset));
  const DxLayout layout = dx_layout(a, r);
  // Only for calls too large for the caches (those that stream dx): in cache, the prefetches cost ~10%.
  const size_t next_rows = a.stream && r + G < r_end ? (r_end - r - G < G ? r_end - r - G : G) : 0;
  for_each_block<T>(n, layout.head, [&](size_t i, bool full, size_t m) {
    prefetch_group(a, r + G, next_rows, i, m);
    const auto wv = a.weight ? V::add(load_v<C>(a.weight, i, full, m), vo) : V::set1(C(1));
    typename V::R sw = V::zero(), sb = V::zero(), dv[G];
#pragma GCC unroll 4
    for (size_t g = 0; g < G; ++g) {
      const size_t base = (r + g) * n;
      const auto dyv = load_t(a.dy + base, i, full, m);
      const auto xv = load_t(a.x + base, i, full, m);
      const auto xhat = V::mul(xv, vr[g]);
      const auto gv = V::mul(dyv, wv);
      sw = V::fma(dyv, xhat, sw);
      sb = V::add(sb, dyv);
      typename V::R d;
      if (k == n || i + m <= k) {
        d = V::mul(vr[g], V::fma(xhat, vnq[g], gv));  // rstd * (g - xhat * q)
      } else if (i < k) {
        // The block straddles k: only lanes before k carry the statistic's term, computed as above, so a
        // column's result never depends on where the blocks split.
        alignas(64) C t[V::N], plain[V::N];
        V::store(t, V::fma(xhat, vnq[g], gv));
        V::store(plain, gv);
        for (size_t j = k - i; j < V::N; ++j) t[j] = plain[j];
        d = V::mul(vr[g], V::load(t));
      } else {
        d = V::mul(vr[g], gv);
      }
      dv[g] = d;
    }
    for (size_t g = 0; g < G; ++g) store_dx<V>(a.dx + (r + g) * n + i, dv[g], full, m, layout.stream);
    add_group_grads<C>(dw, db, first, i, m, sw, sb);
  });
}

// Without saved statistics: the mean, then one pass for the variance and the two gradient sums together,
// since sum g * xhat = rstd * sum g * (x - mean). Returns false for rows whose moments need the rescaled path
// of ln_row_moments (float64 extremes), which the caller then takes.
template <typename T, typename W>
bool ln_backward_scalars_fused(const rmsnorm::BackwardArgs<T, W>& a, size_t r, double* mean_out, double* rstd_out,
                               double* ga, double* gb) {
  using D = Vec<double>;
  const size_t n = a.dim;
  const double nd = static_cast<double>(n);
  const T* x = a.x + r * n;
  const T* dy = a.dy + r * n;
  double mean = row_sum(x, n) / nd;
  const auto vm = D::set1(mean);
  typename D::R sq = D::zero(), lin = D::zero(), sg = D::zero(), sgd = D::zero();
  for_each_lane_block(n, [&](size_t i, bool full, size_t m) {
    auto d = D::sub(load_d(x, i, full, m), vm);
    if (!full) {
      // Lanes past m would contribute (0 - mean): zero them.
      double t[D::N];
      D::store(t, d);
      for (size_t j = m; j < D::N; ++j) t[j] = 0.0;
      d = D::load(t);
    }
    const auto g = D::mul(load_d(dy, i, full, m), weight_d(a.weight, 0.0, i, full, m));
    sq = D::fma(d, d, sq);
    lin = D::add(lin, d);
    sg = D::add(sg, g);
    sgd = D::fma(g, d, sgd);
  });
  const double s2 = D::sum(sq), s1 = D::sum(lin);
  const bool in_range = mean - mean == 0.0 && s2 <= kDblMax && (s2 >= kSafeSumMin || (s2 == 0.0 && sizeof(T) == 4));
  // A NaN s2 is NaN or infinite data, NaN out either way; for float64 it may also be a sum that overflowed,
  // which ln_row_moments handles.
  if (!in_range && (s2 == s2 || std::is_same<T, double>::value)) return false;
  const double var = (s2 - s1 * s1 / nd) / nd;
  const double rstd = 1.0 / __builtin_sqrt((var > 0.0 ? var : 0.0) + a.eps);
  double sgd_sum = D::sum(sgd);
  if (var <= 0.0) {
    // The correction ln_row_moments makes: a constant row's mean becomes the constant, so its xhat is 0 and not
    // the mean's rounding times 1/sqrt(eps). sum g (x - mean) follows the shifted mean.
    const double shift = s1 / nd;
    mean += shift;
    sgd_sum -= shift * D::sum(sg);
  }
  *mean_out = mean;
  *rstd_out = rstd;
  *ga = D::sum(sg) / nd;
  *gb = rstd * sgd_sum / nd;
  return true;
}

// Per-row scalars of the LayerNorm backward: mean, rstd, mean(g) and mean(g * xhat).
template <typename T, typename W>
void ln_backward_scalars(const rmsnorm::BackwardArgs<T, W>& a, size_t r, double* mean_out, double* rstd_out, double* ga,
                         double* gb) {
  const size_t n = a.dim;
  const T* x = a.x + r * n;
  const T* dy = a.dy + r * n;
  double mean, rstd;
  if (a.rstd && a.mean) {
    mean = static_cast<double>(a.mean[r]);
    rstd = static_cast<double>(a.rstd[r]);
  } else if (ln_backward_scalars_fused<T, W>(a, r, mean_out, rstd_out, ga, gb)) {
    return;
  } else {
    const RowMoments mo = ln_row_moments(x, n, a.eps);
    mean = mo.mean;
    rstd = mo.s.e == 0 ? mo.s.r : scale2(mo.s.r, -mo.s.e);
  }
  using C = Compute<T>;
  using V = Vec<C>;
  const C hi = static_cast<C>(mean);
  const auto vmh = V::set1(hi), vml = V::set1(static_cast<C>(mean - static_cast<double>(hi)));
  const auto vr = V::set1(static_cast<C>(rstd));
  double sums[2];
  blocked_row_sums<T, 2>(n, sums, [&](size_t i, bool full, size_t m, typename V::R* acc) {
    const auto g = V::mul(load_t(dy, i, full, m), a.weight ? load_v<C>(a.weight, i, full, m) : V::set1(C(1)));
    auto xhat = V::mul(V::sub(V::sub(load_t(x, i, full, m), vmh), vml), vr);
    if (!full) {
      // Lanes past m: g is 0 there (dy loads as 0), but xhat = (0 - mean) * rstd may overflow to an infinity,
      // and 0 * inf is NaN. Zero them.
      alignas(64) C t[V::N];
      V::store(t, xhat);
      for (size_t j = m; j < V::N; ++j) t[j] = C(0);
      xhat = V::load(t);
    }
    acc[0] = V::add(acc[0], g);
    acc[1] = V::fma(g, xhat, acc[1]);
  });
  *mean_out = mean;
  *rstd_out = rstd;
  *ga = sums[0] / static_cast<double>(n);
  *gb = sums[1] / static_cast<double>(n);
}

template <typename T, typename W, size_t G>
void ln_backward_group(const rmsnorm::BackwardArgs<T, W>& a, size_t r, double* dw, double* db, bool first,
                       size_t r_end) {
  using C = Compute<T>;
  using V = Vec<C>;
  const size_t n = a.dim;
  double mean[G], rstd[G], ga[G], gb[G];
  for (size_t g = 0; g < G; ++g) ln_backward_scalars<T, W>(a, r + g, &mean[g], &rstd[g], &ga[g], &gb[g]);
  // The mean as hi + lo in the storage type, as in the forward pass, so x - mean keeps its precision.
  typename V::R vmh[G], vml[G], vr[G], va[G], vnb[G];
  for (size_t g = 0; g < G; ++g) {
    const C hi = static_cast<C>(mean[g]);
    vmh[g] = V::set1(hi);
    vml[g] = V::set1(static_cast<C>(mean[g] - static_cast<double>(hi)));
    vr[g] = V::set1(static_cast<C>(rstd[g]));
    va[g] = V::set1(static_cast<C>(ga[g]));
    vnb[g] = V::set1(static_cast<C>(-gb[g]));
  }
  const DxLayout layout = dx_layout(a, r);
  // Only for calls too large for the caches (those that stream dx): in cache, the prefetches cost ~10%.
  const size_t next_rows = a.stream && r + G < r_end ? (r_end - r - G < G ? r_end - r - G : G) : 0;
  for_each_block<T>(n, layout.head, [&](size_t i, bool full, size_t m) {
    prefetch_group(a, r + G, next_rows, i, m);
    const auto wv = a.weight ? load_v<C>(a.weight, i, full, m) : V::set1(C(1));
    typename V::R sw = V::zero(), sb = V::zero(), dv[G];
#pragma GCC unroll 4
    for (size_t g = 0; g < G; ++g) {
      const size_t base = (r + g) * n;
      const auto dyv = load_t(a.dy + base, i, full, m);
      const auto xhat = V::mul(V::sub(V::sub(load_t(a.x + base, i, full, m), vmh[g]), vml[g]), vr[g]);
      sw = V::fma(dyv, xhat, sw);
      sb = V::add(sb, dyv);
      const auto t = V::fma(xhat, vnb[g], V::sub(V::mul(dyv, wv), va[g]));  // g - mean(g) - xhat * mean(g xhat)
      dv[g] = V::mul(vr[g], t);
    }
    for (size_t g = 0; g < G; ++g) store_dx<V>(a.dx + (r + g) * n + i, dv[g], full, m, layout.stream);
    add_group_grads<C>(dw, db, first, i, m, sw, sb);
  });
}

template <typename T, typename W,
          void (*Group4)(const rmsnorm::BackwardArgs<T, W>&, size_t, double*, double*, bool, size_t),
          void (*Group1)(const rmsnorm::BackwardArgs<T, W>&, size_t, double*, double*, bool, size_t)>
void backward_rows(const rmsnorm::BackwardArgs<T, W>& a, size_t r0, size_t r1, double* dw, double* db) {
  size_t r = r0;
  for (; r + kGroup <= r1; r += kGroup) Group4(a, r, dw, db, r == r0, r1);
  for (; r < r1; ++r) Group1(a, r, dw, db, r == r0, r1);
}

template <typename T, typename W>
void rms_norm_backward_rows(const rmsnorm::BackwardArgs<T, W>& a, size_t r0, size_t r1, double* dw, double* db) {
  backward_rows<T, W, &rms_backward_group<T, W, kGroup>, &rms_backward_group<T, W, 1>>(a, r0, r1, dw, db);
  if (a.stream) stream_fence();
}

template <typename T, typename W>
void layer_norm_backward_rows(const rmsnorm::BackwardArgs<T, W>& a, size_t r0, size_t r1, double* dw, double* db) {
  backward_rows<T, W, &ln_backward_group<T, W, kGroup>, &ln_backward_group<T, W, 1>>(a, r0, r1, dw, db);
  if (a.stream) stream_fence();
}

// ---------------------------------------------------------------------------------------------------------
// Dispatch on which affine terms are present (and castMode for half types), so the inner loops carry no
// branches.

template <typename H>
void to_float(const H* src, float* dst, size_t n);

template <typename T, typename W, template <typename, typename, unsigned> class Impl>
void dispatch_terms(const NormArgs<T, W>& a, size_t r0, size_t r1) {
  // Half-precision parameters are widened to float32 once per call and thread (the exact conversion each row
  // would otherwise repeat: two instructions per vector) for calls of several rows, which then run the
  // float32-parameter kernels: bit for bit the same. malloc, not new: the kernel objects carry no
  // exception-handling machinery.
  if constexpr (kIsHalf<W>) {
    if (r1 - r0 >= 4 && (a.weight || a.bias)) {
      if (float* buffer = static_cast<float*>(std::malloc(2 * a.dim * sizeof(float)))) {
        if (a.weight) to_float(a.weight, buffer, a.dim);
        if (a.bias) to_float(a.bias, buffer + a.dim, a.dim);
        dispatch_terms<T, float, Impl>(a.with_params(a.weight ? static_cast<const float*>(buffer) : nullptr,
                                                     a.bias ? static_cast<const float*>(buffer + a.dim) : nullptr),
                                       r0, r1);
        std::free(buffer);
        return;
      }
    }
  }
  const unsigned terms = (a.weight ? kWeightTerm : 0u) | (a.bias ? kBiasTerm : 0u) | (kIsHalf<T> && a.llama ? kLlamaTerm : 0u);
  switch (terms) {
    case 0: return Impl<T, W, 0>::run(a, r0, r1);
    case 1: return Impl<T, W, 1>::run(a, r0, r1);
    case 2: return Impl<T, W, 2>::run(a, r0, r1);
    case 3: return Impl<T, W, 3>::run(a, r0, r1);
  }
  if constexpr (kIsHalf<T>) {
    switch (terms) {
      case 4: return Impl<T, W, 4>::run(a, r0, r1);
      case 5: return Impl<T, W, 5>::run(a, r0, r1);
      case 6: return Impl<T, W, 6>::run(a, r0, r1);
      case 7: return Impl<T, W, 7>::run(a, r0, r1);
    }
  }
}

template <typename T, typename W, unsigned kT>
struct RmsNormImpl {
  static void run(const NormArgs<T, W>& a, size_t r0, size_t r1) { rms_norm_rows_impl<T, W, kT>(a, r0, r1); }
};
template <typename T, typename W, unsigned kT>
struct LayerNormImpl {
  static void run(const NormArgs<T, W>& a, size_t r0, size_t r1) { layer_norm_rows_impl<T, W, kT>(a, r0, r1); }
};
template <typename T, typename W, unsigned kT>
struct AddRmsNormImpl {
  static void run(const NormArgs<T, W>& a, size_t r0, size_t r1) { add_rms_norm_rows_impl<T, W, kT>(a, r0, r1); }
};

template <typename T, typename W>
void rms_norm_rows(const NormArgs<T, W>& a, size_t r0, size_t r1) {
  dispatch_terms<T, W, RmsNormImpl>(a, r0, r1);
  if (a.stream) stream_fence();
}
template <typename T, typename W>
void layer_norm_rows(const NormArgs<T, W>& a, size_t r0, size_t r1) {
  dispatch_terms<T, W, LayerNormImpl>(a, r0, r1);
  if (a.stream) stream_fence();
}
template <typename T, typename W>
void add_rms_norm_rows(const NormArgs<T, W>& a, size_t r0, size_t r1) {
  dispatch_terms<T, W, AddRmsNormImpl>(a, r0, r1);
  if (a.stream) stream_fence();
}

template <typename T, typename W>
constexpr rmsnorm::OpTable<T, W> op_table() {
  return {&rms_norm_rows<T, W>, &layer_norm_rows<T, W>, &add_rms_norm_rows<T, W>, &rms_norm_backward_rows<T, W>,
          &layer_norm_backward_rows<T, W>};
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

namespace rmsnorm {

#if defined(RMSNORM_TARGET_AVX512BF16)
#define RMSNORM_TABLE kernel_table_avx512bf16
#define RMSNORM_ISA_NAME "avx512bf16"
#elif defined(RMSNORM_TARGET_AVX512)
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
    op_table<float, float>(),
    op_table<double, double>(),
    op_table<bf16_t, bf16_t>(),
    op_table<bf16_t, float>(),
    op_table<f16_t, f16_t>(),
    op_table<f16_t, float>(),
    {&from_float<bf16_t>, &to_float<bf16_t>, &from_float<f16_t>, &to_float<f16_t>},
};

}  // namespace rmsnorm
