// The forward kernels (rmsNorm, addRmsNorm, layerNorm), written once over the Vec<T> abstraction of simd.h and
// compiled once per target (see numerics.h): the statistics of a row, then one output pass from cache.
//
// - The output pass multiplies in the storage type, (x * rstd) * (offset + weight) + bias, the order PyTorch
//   uses, with FMA for the last step where the target has it. When rstd itself is not a normal number of the
//   storage type (float32 rows of magnitude below ~1e-38 or above ~1e38, eps = 0), the row is written by an
//   exact scalar path in double instead, so such rows never turn into inf, 0 or NaN by accident.
#include "entry.h"
#include "numerics.h"

namespace {

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
// the storage type before the weight, as Hugging Face's Llama/Granite RMSNorm does). kPreparedTerm: the
// parameters come from prepare_params (float32, pair order, the offset 0 already added).
enum Term : unsigned { kWeightTerm = 1, kBiasTerm = 2, kLlamaTerm = 4, kPreparedTerm = 8 };

// Does this target prepare the parameters of calls on T data (PairOrder kEvenOddPrepared)?
template <typename T>
constexpr bool kPrepares = pair_order<T, T, false>() == kEvenOdd;

// Where value i of a row of n lies in parameters laid out by prepare_params from column h on (the start of the
// pair loop: scale_row's head): blocks of a pair (2 * N values) in even/odd order, the first h values and the
// last (n - h) % (2 * N) in place.
inline size_t prepared_index(size_t i, size_t n, size_t h) {
  constexpr size_t kPair = 2 * Vec<float>::N;
  if (i < h || i - h >= (n - h) / kPair * kPair) return i;
  const size_t j = (i - h) % kPair;
  return i - j + (j % 2 ? kPair / 2 + j / 2 : j / 2);
}

// Parameters of T data widened to float32 once per call and thread, plus the offset (0: so -0 becomes +0, as
// the kernel's own addition makes it), in the pair order the kernel loads its data in from column h: each pair
// loaded in that order and stored as it lies. False where a float32 NaN with payload bits in its low half
// would come out (its rounding could carry into the exponent; the pair store has no NaN test): the call then
// takes the other path.
template <typename P>
bool prepare_params(const P* src, float* dst, size_t n, size_t h) {
  using F = Vec<float>;
  constexpr size_t kPair = 2 * F::N;
  const auto zero = F::zero();
  auto widen = [](P v) { return 0.0f + static_cast<float>(to_double(v)); };
  size_t i = 0;
  for (; i < h; ++i) dst[i] = widen(src[i]);
  for (; i + kPair <= n; i += kPair) {
    typename F::R a, b;
    load_pair<F, kEvenOdd>(src + i, a, b);
    F::store(dst + i, F::add(zero, a));
    F::store(dst + i + F::N, F::add(zero, b));
  }
  for (; i < n; ++i) dst[i] = widen(src[i]);
  unsigned bad = 0;
  if constexpr (std::is_same<P, float>::value) {
    for (i = 0; i < n; ++i) {
      uint32_t u;
      std::memcpy(&u, dst + i, sizeof u);
      bad |= ((u & 0x7fffffffu) > 0x7f800000u) & ((u & 0xffffu) != 0);
    }
  }
  return bad == 0;
}

// The column where scale_row's pair loop starts on a row written at y (its head): the first cache line.
template <typename T>
size_t pair_start(const T* y, size_t n) {
  constexpr size_t N = Vec<Compute<T>>::N;
  return head_to_align(y, n, 64 / sizeof(T) > N ? 64 / sizeof(T) : N);
}

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
void scale_row(const T* x, T* y, const W* w, const W* b, Compute<T> center_hi, Compute<T> center_lo, Compute<T> rstd,
               Compute<T> offset, size_t n, bool stream, const T* next, size_t param_head = 0) {
  using C = Compute<T>;
  using V = Vec<C>;
  constexpr size_t N = V::N;
  const auto vr = V::set1(rstd);
  const auto vo = V::set1(offset);
  const auto vch = V::set1(center_hi);
  const auto vcl = V::set1(center_lo);
  // One vector of outputs from x, weight and bias vectors (the latter two ignored where kT lacks them).
  auto one = [&](typename V::R xv, typename V::R wv, typename V::R bv) {
    if (kCenter) xv = V::sub(V::sub(xv, vch), vcl);
    auto v = V::mul(xv, vr);
    if ((kT & kLlamaTerm)) v = round_storage<T>(v);
    if ((kT & kWeightTerm)) {
      if (!(kT & kPreparedTerm)) wv = V::add(wv, vo);
      if ((kT & kBiasTerm) && !(kT & kLlamaTerm)) {
        v = V::fma(v, wv, bv);
      } else {
        v = V::mul(v, wv);
        if ((kT & kBiasTerm)) v = V::add(v, bv);
      }
    } else if ((kT & kBiasTerm)) {
      v = V::add(v, bv);
    }
    return v;
  };
  // The vector at i (m lanes), in element order.
  auto at = [&](size_t i, bool full, size_t m) {
    auto wv = V::zero(), bv = V::zero();
    if ((kT & kWeightTerm)) wv = load_v<C>(w, i, full, m);
    if ((kT & kBiasTerm)) bv = load_v<C>(b, i, full, m);
    return one(load_v<C>(x, i, full, m), wv, bv);
  };
  // The pair at i, in the target's pair order for this data and these parameters (simd.h, PairOrder).
  constexpr int kOrder =
      (kT & kPreparedTerm) ? kEvenOddPrepared : pair_order<T, W, (kT & (kWeightTerm | kBiasTerm)) != 0>();
  auto pair = [&](size_t i, typename V::R& v0, typename V::R& v1) {
    typename V::R x0, x1, w0 = V::zero(), w1 = V::zero(), b0 = V::zero(), b1 = V::zero();
    load_pair<V, kOrder>(x + i, x0, x1);
    if constexpr ((kT & kWeightTerm) != 0) load_pair<V, kOrder>(w + i, w0, w1);
    if constexpr ((kT & kBiasTerm) != 0) load_pair<V, kOrder>(b + i, b0, b1);
    v0 = one(x0, w0, b0);
    v1 = one(x1, w1, b1);
  };
  // A short masked head first, so the main loop's stores start on a cache line: an unaligned 64-byte store
  // spans two lines, and a streamed line is written whole by consecutive stores (a line left half-written is
  // flushed from the write-combining buffers as a partial write). Each element is computed the same way in the
  // head, the pairs and the tail, whatever their lane order, so the split (which depends on the address) never
  // changes a result. Prepared parameters fix the head for the whole call at that of its first row: the same
  // for every row where rows lie a multiple of 64 bytes apart; other rows then store unaligned, never streamed.
  const size_t head = (kT & kPreparedTerm) ? param_head : pair_start(y, n);
  size_t i = 0;
  for (; i < head; i += N) {
    const size_t m = head - i < N ? head - i : N;
    V::storen(y + i, at(i, false, m), m);
  }
  i = head;
  typename V::R v0, v1;
  if (stream && reinterpret_cast<uintptr_t>(y + i) % 64 == 0) {
    for (; i + 2 * N <= n; i += 2 * N) {
      if (next) prefetch_span(next + i, 2 * N);
      pair(i, v0, v1);
      stream_pair<V, kOrder>(y + i, v0, v1);
    }
  }
  for (; i + 2 * N <= n; i += 2 * N) {
    if (next) prefetch_span(next + i, 2 * N);
    pair(i, v0, v1);
    store_pair<V, kOrder>(y + i, v0, v1);
  }
  for (; i + N <= n; i += N) V::store(y + i, at(i, true, N));
  if (i < n) V::storen(y + i, at(i, false, n - i), n - i);
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
                     double offset, size_t n, size_t param_head = 0) {
  const int e = kCenter ? s.e - ce : s.e;
  for (size_t i = 0; i < n; ++i) {
    const size_t pi = (kT & kPreparedTerm) ? prepared_index(i, n, param_head) : i;  // (the offset is then 0)
    double d = to_double(x[i]);
    if (kCenter) d = scale2(d, -ce) - center_s;
    double v;
    if (std::is_same<T, double>::value && d - d == 0.0 && d != 0.0 && s.r - s.r == 0.0 && s.r != 0.0) {
      v = mul_exp(d, e, s.r, (kT & kWeightTerm) ? offset + to_double(w[pi]) : 1.0);
    } else {
      v = scale2(d, -e) * s.r;
      if ((kT & kLlamaTerm)) v = to_double(from_double<T>(v));
      if ((kT & kWeightTerm)) v *= offset + to_double(w[pi]);
    }
    if ((kT & kBiasTerm)) v += to_double(b[pi]);
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
                                 a.stream, next, a.param_head);
  } else {
    scale_row_exact<T, W, kCenter, kT>(x, y, a.weight, a.bias, center_s, ce, s, a.offset, a.dim, a.param_head);
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
    const T* x = a.x + a.at(r, a.x_stride);
    const RowScale s = rms_row_scale(x, a.k, a.eps);
    const double rstd = s.e == 0 ? s.r : scale2(s.r, -s.e);
    if (a.rstd) a.rstd[r] = static_cast<Compute<T>>(rstd);
    write_row<T, W, false, kT>(a, x, a.y + a.at(r, a.y_stride), 0.0, 0.0, 0, s, rstd,
                               tail_may_overflow(x, a.k, a.dim, rstd),
                               r + 1 < r1 ? a.x + a.at(r + 1, a.x_stride) : nullptr);
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
    double ss;
    auto body = [&](typename F::R* acc, size_t i, bool full, size_t m) {
      const auto sum =
          full ? F::add(F::load(res + i), F::load(x + i)) : F::add(F::loadn(res + i, m), F::loadn(x + i, m));
      const auto v = round_storage<T>(sum);
      if (full) {
        F::store(res + i, v);
      } else {
        F::storen(res + i, v, m);
      }
      acc[0] = F::fma(v, v, acc[0]);
    };
    constexpr int kOrder = pair_order<T, T, false>();
    if constexpr (kOrder == kEvenOdd) {
      // Whole steps as one pair in even/odd order (simd.h PairOrder): sums of two bfloat16 values need no NaN
      // test, and the rounded values come back from the store for the sum of squares.
      blocked_sums<float, 2, 1, 8>(n, &ss, body, [&](typename F::R(*acc)[1], size_t i) {
        typename F::R r0, r1, x0, x1;
        load_pair<F, kOrder>(res + i, r0, r1);
        load_pair<F, kOrder>(x + i, x0, x1);
        r0 = F::add(r0, x0);
        r1 = F::add(r1, x1);
        store_pair_rounded<F, kOrder>(res + i, r0, r1);
        acc[0][0] = F::fma(r0, r0, acc[0][0]);
        acc[1][0] = F::fma(r1, r1, acc[1][0]);
      });
    } else {
      blocked_sums<float, 2, 1, 8>(n, &ss, body);
    }
    if (ss >= 0x1p-60 && ss <= kDblMax) return ss;
    return sum_squares(static_cast<const T*>(res), n);
  }
}

// residual[i] += x[i] * scale over one row (Granite's residual multiplier): in double, rounded once to T on
// store, as the fallback computes it.
template <typename T>
void add_scaled_row(const T* x, T* res, size_t n, double scale) {
  for (size_t i = 0; i < n; ++i) res[i] = from_double<T>(to_double(res[i]) + to_double(x[i]) * scale);
}

template <typename T, typename W, unsigned kT>
void add_rms_norm_rows_impl(const NormArgs<T, W>& a, size_t r0, size_t r1) {
  for (size_t r = r0; r < r1; ++r) {
    T* res = a.residual + a.at(r, a.res_stride);
    const T* x = a.x + a.at(r, a.x_stride);
    double ss;
    if (a.residual_scale == 1.0) {
      const double full = add_rows_sum_squares(x, res, a.dim);
      // With partial < 1 the statistic covers only the first k values: sum those again (rare; cached).
      ss = a.k == a.dim ? full : sum_squares_row(static_cast<const T*>(res), a.k);
    } else {
      add_scaled_row(x, res, a.dim, a.residual_scale);
      ss = sum_squares_row(static_cast<const T*>(res), a.k);
    }
    const RowScale s = rms_scale_from_sum(static_cast<const T*>(res), a.k, a.eps, ss);
    const double rstd = s.e == 0 ? s.r : scale2(s.r, -s.e);
    if (a.rstd) a.rstd[r] = static_cast<Compute<T>>(rstd);
    write_row<T, W, false, kT>(a, res, a.y + a.at(r, a.y_stride), 0.0, 0.0, 0, s, rstd,
                               tail_may_overflow(static_cast<const T*>(res), a.k, a.dim, rstd));
  }
}

template <typename T, typename W, unsigned kT>
void layer_norm_rows_impl(const NormArgs<T, W>& a, size_t r0, size_t r1) {
  for (size_t r = r0; r < r1; ++r) {
    const T* x = a.x + a.at(r, a.x_stride);
    const RowMoments mo = ln_row_moments(x, a.dim, a.eps);
    const double rstd = mo.s.e == 0 ? mo.s.r : scale2(mo.s.r, -mo.s.e);
    if (a.rstd) a.rstd[r] = static_cast<Compute<T>>(rstd);
    if (a.mean) a.mean[r] = static_cast<Compute<T>>(mo.mean);
    write_row<T, W, true, kT>(a, x, a.y + a.at(r, a.y_stride), mo.mean, mo.mean_s, mo.ce, mo.s, rstd, mo.exact,
                              r + 1 < r1 ? a.x + a.at(r + 1, a.x_stride) : nullptr);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Dispatch on which affine terms are present (and castMode for half types), so the inner loops carry no
// branches.

// Runs Impl with the call's terms, plus kExtra.
template <typename T, typename W, template <typename, typename, unsigned> class Impl, unsigned kExtra = 0>
void run_terms(const NormArgs<T, W>& a, size_t r0, size_t r1) {
  const unsigned terms =
      (a.weight ? kWeightTerm : 0u) | (a.bias ? kBiasTerm : 0u) | (kIsHalf<T> && a.llama ? kLlamaTerm : 0u);
  switch (terms) {
    case 0: return Impl<T, W, kExtra | 0>::run(a, r0, r1);
    case 1: return Impl<T, W, kExtra | 1>::run(a, r0, r1);
    case 2: return Impl<T, W, kExtra | 2>::run(a, r0, r1);
    case 3: return Impl<T, W, kExtra | 3>::run(a, r0, r1);
  }
  if constexpr (kIsHalf<T>) {
    switch (terms) {
      case 4: return Impl<T, W, kExtra | 4>::run(a, r0, r1);
      case 5: return Impl<T, W, kExtra | 5>::run(a, r0, r1);
      case 6: return Impl<T, W, kExtra | 6>::run(a, r0, r1);
      case 7: return Impl<T, W, kExtra | 7>::run(a, r0, r1);
    }
  }
}

template <typename T, typename W, template <typename, typename, unsigned> class Impl>
void dispatch_terms(const NormArgs<T, W>& a, size_t r0, size_t r1) {
  // For calls of several rows the parameters are widened to float32 once per call and thread (the exact
  // conversion each row would otherwise repeat), and the float32-parameter kernels run: bit for bit the same.
  // malloc, not new: the kernel objects carry no exception-handling machinery.
  if (r1 - r0 >= 4 && (a.weight || a.bias)) {
    // Where the target pairs the data in even/odd order (bfloat16 on AVX2), they are stored in that order
    // with the offset added (prepare_params): the pair loop then loads them as they lie, with no conversion
    // and no addition. Offset 0 only (the exact path's double sum would differ otherwise).
    if constexpr (kPrepares<T>) {
      if (a.offset == 0) {
        if (float* buffer = static_cast<float*>(std::malloc(2 * a.dim * sizeof(float)))) {
          const float* const w = a.weight ? buffer : nullptr;
          const float* const b = a.bias ? buffer + a.dim : nullptr;
          NormArgs<T, float> p = a.with_params(w, b);
          p.param_head = pair_start(a.y + a.at(r0, a.y_stride), a.dim);
          const bool ok = (!w || prepare_params(a.weight, buffer, a.dim, p.param_head)) &
                          (!b || prepare_params(a.bias, buffer + a.dim, a.dim, p.param_head));
          if (ok) run_terms<T, float, Impl, kPreparedTerm>(p, r0, r1);
          std::free(buffer);
          if (ok) return;
        }
      }
    }
    // Half parameters elsewhere, in element order. Not where the target pairs half data with half
    // parameters in another order (bfloat16 on AVX2): widening them with the data costs less than loading
    // float32 there.
    if constexpr (kIsHalf<W> && pair_order<T, W, true>() == kNatural) {
      if (float* buffer = static_cast<float*>(std::malloc(2 * a.dim * sizeof(float)))) {
        if (a.weight) to_float(a.weight, buffer, a.dim);
        if (a.bias) to_float(a.bias, buffer + a.dim, a.dim);
        run_terms<T, float, Impl>(a.with_params(a.weight ? static_cast<const float*>(buffer) : nullptr,
                                                a.bias ? static_cast<const float*>(buffer + a.dim) : nullptr),
                                  r0, r1);
        std::free(buffer);
        return;
      }
    }
  }
  run_terms<T, W, Impl>(a, r0, r1);
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

}  // namespace

namespace rmsnorm {
namespace RMSNORM_ISA {

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

#define RMSNORM_INSTANTIATE(T, W)                                             \
  template void rms_norm_rows<T, W>(const NormArgs<T, W>&, size_t, size_t);   \
  template void layer_norm_rows<T, W>(const NormArgs<T, W>&, size_t, size_t); \
  template void add_rms_norm_rows<T, W>(const NormArgs<T, W>&, size_t, size_t);
RMSNORM_FOR_EACH_TYPE_PAIR(RMSNORM_INSTANTIATE)
#undef RMSNORM_INSTANTIATE

}  // namespace RMSNORM_ISA
}  // namespace rmsnorm
