// The backward kernels (rmsNormBackward, layerNormBackward), written once over the Vec<T> abstraction of simd.h
// and compiled once per target (see numerics.h). Per-row scalars in double, then one column pass per group of
// rows in the compute type, shared by both ops (backward_group below).
//
// RMSNorm, with g = dy * (offset + w) and rstd over the first k values:
//   dx[j] = rstd * g[j] - [j < k] * x[j] * rstd^3 / k * sum_i g[i] x[i]
//   dweight[j] += dy[j] * x[j] * rstd,  dbias[j] += dy[j]
// LayerNorm, with xhat = (x - mean) * rstd and g = dy * w:
//   dx[j] = rstd * (g[j] - mean(g) - xhat[j] * mean(g * xhat))
//   dweight[j] += dy[j] * xhat[j],  dbias[j] += dy[j]
#include "entry.h"
#include "numerics.h"

#include <cstdlib>

namespace {

// The effective weight (offset + w) as doubles, or 1 without a weight.
template <typename T>
inline typename Vec<double>::R weight_d(const T* w, double offset, size_t i, bool full, size_t m) {
  using D = Vec<double>;
  return w ? D::add(load_d(w, i, full, m), D::set1(offset)) : D::set1(1.0);
}

// Rows are taken in groups of kGroup: each row's scalars first, then one pass over the columns that writes dx
// for every row of the group and adds the group's summed dweight/dbias contributions to dw/db once, so the
// double accumulators are read and written once per group rather than once per row. The grouping is fixed by
// the row range and the rows' strides (see rows_share_sets), so the sums never depend on scheduling or on
// where the arrays lie.
constexpr size_t kGroup = 4;

// dw[i .. i+m) (+)= sw; db (+)= sb, where sw and sb are vectors of the storage type holding the group's summed
// contributions: widened to double lane by lane. The first group of a range overwrites (`first`), so the
// caller's scratch needs no zeroing. Both accumulators are always there (backward_rows gives scratch for one the
// caller does not want): no per-step tests in the column loop.
template <typename T>
RMSNORM_ALWAYS_INLINE void add_group_grads(double* dw, double* db, bool first, size_t i, size_t m,
                                           typename Vec<T>::R sw, typename Vec<T>::R sb) {
  using D = Vec<double>;
  constexpr size_t N = Vec<T>::N;
  alignas(64) T lanes[2][N];
  Vec<T>::store(lanes[0], sw);
  Vec<T>::store(lanes[1], sb);
  double* acc[2] = {dw, db};
  for (int t = 0; t < 2; ++t) {
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
RMSNORM_ALWAYS_INLINE void for_each_block(size_t n, size_t head, Body body) {
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

// Row reductions of the backward passes: K sums accumulated in the compute type over blocks of at most 8
// vector steps per lane (so a float32 lane sum carries at most 8 roundings), each block widened to double and
// added there. body(i, full, m, acc) adds the terms of columns [i, i+m) into acc[0..K). Four accumulator sets
// take turns, as in the forward pass's sum of squares (so a fused sum of squares has its bits): with one, each
// step waited on the previous step's FMA, and the pass ran at one vector per FMA latency.
template <typename T, size_t K, typename Body>
void blocked_row_sums(size_t n, double* out, Body body) {
  using V = Vec<Compute<T>>;
  blocked_sums<Compute<T>, 4, K, 8>(n, out,
                                    [&](typename V::R* acc, size_t i, bool full, size_t m) { body(i, full, m, acc); });
}

// Per-row scalars of the RMSNorm backward: rstd, and q = rstd / k * sum_i g[i] x[i], so that
// dx[j] = rstd * (g[j] - [j < k] * xhat[j] * q) with xhat = x * rstd. Written this way every factor stays near
// the data's own scale: rstd^3 alone underflows float32 for rows of magnitude 1e13 and more.
template <typename T, typename W>
void rms_backward_scalars(const rmsnorm::BackwardArgs<T, W>& a, size_t r, double* rstd_out, double* q_out) {
  const size_t n = a.dim;
  const T* x = a.x + a.at(r, a.x_stride);
  const T* dy = a.dy + a.at(r, a.dy_stride);
  // Every output depends on rstd, so the dot product runs over the whole row. Without a saved rstd and with
  // the statistic over the whole row (k == n), the sum of squares comes from the same pass: RMSNorm's
  // backward then reads each row once before its column pass, where LayerNorm's needs its mean first.
  using C = Compute<T>;
  using V = Vec<C>;
  const auto vo = V::set1(static_cast<C>(a.offset));
  const bool fuse = !a.rstd && a.k == n && pair_order<T, T, false>() == kNatural;  // (sum_squares_blocked)
  double sums[2] = {0.0, 0.0};                                                     // sum g x, sum x^2
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
  // Every group's dx must start at the same offset within a vector, or the one head below does not fit all.
  if (a.dx_stride % N != 0 || (a.heads > 1 && a.head_stride % N != 0)) return {0, false};
  const T* row = a.dx + a.at(r, a.dx_stride);
  // Streamed rows align to a cache line (see backward_group), others to a vector.
  const size_t unit = a.stream && 64 % sizeof(T) == 0 && 64 / sizeof(T) > N ? 64 / sizeof(T) : N;
  if (a.dx_stride % unit != 0 || (a.heads > 1 && a.head_stride % unit != 0)) return {head_to_align(row, n, N), false};
  const size_t head = head_to_align(row, n, unit);
  return {head, a.stream && reinterpret_cast<uintptr_t>(row + head) % 64 == 0};
}

// Asks for columns [i, i + m) of the next group's x and dy rows (into L2: a group's rows exceed L1), so that its
// scalars pass, which streams them from memory, finds them in cache.
template <typename T, typename W>
inline void prefetch_group(const rmsnorm::BackwardArgs<T, W>& a, size_t r, size_t rows, size_t i, size_t m) {
  for (size_t g = 0; g < rows; ++g) {
    const size_t xb = a.at(r + g, a.x_stride) + i, dyb = a.at(r + g, a.dy_stride) + i;
    for (size_t off = 0; off < m * sizeof(T); off += 64) {
      __builtin_prefetch(reinterpret_cast<const char*>(a.x + xb) + off, 0, 2);
      __builtin_prefetch(reinterpret_cast<const char*>(a.dy + dyb) + off, 0, 2);
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

// Without saved statistics: the mean, then one pass for the variance and the two gradient sums together,
// since sum g * xhat = rstd * sum g * (x - mean). Returns false for rows whose moments need the rescaled path
// of ln_row_moments (float64 extremes), which the caller then takes.
template <typename T, typename W>
bool ln_backward_scalars_fused(const rmsnorm::BackwardArgs<T, W>& a, size_t r, double* mean_out, double* rstd_out,
                               double* ga, double* gb) {
  using D = Vec<double>;
  const size_t n = a.dim;
  const double nd = static_cast<double>(n);
  const T* x = a.x + a.at(r, a.x_stride);
  const T* dy = a.dy + a.at(r, a.dy_stride);
  double mean = row_sum(x, n) / nd;
  const auto vm = D::set1(mean);
  double sums[4];  // sum (x - mean)^2, sum (x - mean), sum g, sum g (x - mean)
  double_sums<1, 4>(n, sums, [&](typename D::R* acc, size_t i, bool full, size_t m) {
    auto d = D::sub(load_d(x, i, full, m), vm);
    if (!full) {
      // Lanes past m would contribute (0 - mean): zero them.
      double t[D::N];
      D::store(t, d);
      for (size_t j = m; j < D::N; ++j) t[j] = 0.0;
      d = D::load(t);
    }
    const auto g = D::mul(load_d(dy, i, full, m), weight_d(a.weight, 0.0, i, full, m));
    acc[0] = D::fma(d, d, acc[0]);
    acc[1] = D::add(acc[1], d);
    acc[2] = D::add(acc[2], g);
    acc[3] = D::fma(g, d, acc[3]);
  });
  const double s2 = sums[0], s1 = sums[1];
  const bool in_range = mean - mean == 0.0 && s2 <= kDblMax && (s2 >= kSafeSumMin || (s2 == 0.0 && sizeof(T) == 4));
  // A NaN s2 is NaN or infinite data, NaN out either way; for float64 it may also be a sum that overflowed,
  // which ln_row_moments handles.
  if (!in_range && (s2 == s2 || std::is_same<T, double>::value)) return false;
  const double var = (s2 - s1 * s1 / nd) / nd;
  const double rstd = 1.0 / __builtin_sqrt((var > 0.0 ? var : 0.0) + a.eps);
  double sgd_sum = sums[3];
  if (var <= 0.0) {
    // The correction ln_row_moments makes: a constant row's mean becomes the constant, so its xhat is 0 and not
    // the mean's rounding times 1/sqrt(eps). sum g (x - mean) follows the shifted mean.
    const double shift = s1 / nd;
    mean += shift;
    sgd_sum -= shift * sums[2];
  }
  *mean_out = mean;
  *rstd_out = rstd;
  *ga = sums[2] / nd;
  *gb = rstd * sgd_sum / nd;
  return true;
}

// Per-row scalars of the LayerNorm backward: mean, rstd, mean(g) and mean(g * xhat).
template <typename T, typename W>
void ln_backward_scalars(const rmsnorm::BackwardArgs<T, W>& a, size_t r, double* mean_out, double* rstd_out, double* ga,
                         double* gb) {
  const size_t n = a.dim;
  const T* x = a.x + a.at(r, a.x_stride);
  const T* dy = a.dy + a.at(r, a.dy_stride);
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
// The column pass of a group of G rows, the same for both ops: each row's scalars first (Op::row), then one
// pass over the columns that writes dx for every row of the group and adds the group's summed dweight/dbias
// contributions once. It runs in the compute type (float32 data in float32 registers): each dx element is a few
// products and differences of values the scalars pass computed in double. Op supplies
//   Row                 the per-row vector constants, from row(a, r)
//   Cols, cols(a)       the call's column-pass scalars, copied out of `a` once per group
//   weight(cols, i, ...)   the weight term of columns [i, i + m)
//   xhat(row, x)        the normalized input
//   dx(cols, row, dy, xhat, w, i, m)   the gradient of columns [i, i + m)
template <typename Op, typename T, typename W, size_t G>
void backward_group(const rmsnorm::BackwardArgs<T, W>& a, size_t r, double* dw, double* db, bool first, size_t r_end) {
  using C = Compute<T>;
  using V = Vec<C>;
  const size_t n = a.dim;
  typename Op::Row rows[G];
  const T* xg[G];
  const T* dyg[G];
  T* dxg[G];
  for (size_t g = 0; g < G; ++g) {
    rows[g] = Op::row(a, r + g);
    xg[g] = a.x + a.at(r + g, a.x_stride);
    dyg[g] = a.dy + a.at(r + g, a.dy_stride);
    dxg[g] = a.dx + a.at(r + g, a.dx_stride);
  }
  const DxLayout layout = dx_layout(a, r);
  // Only for calls too large for the caches: in cache, the prefetches cost ~10%.
  const size_t next_rows = a.large && r + G < r_end ? (r_end - r - G < G ? r_end - r - G : G) : 0;
  // The call's scalars as locals: the loop's stores (vector intrinsics may alias anything) would otherwise make
  // the compiler reload them from `a` at every step.
  const typename Op::Cols cols = Op::cols(a);
  // One vector step of the column pass: dx of every row of the group into dv, dweight/dbias into dw/db.
  auto step = [&](size_t i, bool full, size_t m, typename V::R* dv) RMSNORM_LAMBDA_INLINE {
    prefetch_group(a, r + G, next_rows, i, m);
    const auto wv = Op::weight(cols, i, full, m);
    typename V::R sw = V::zero(), sb = V::zero();
#pragma GCC unroll 4
    for (size_t g = 0; g < G; ++g) {
      const auto dyv = load_t(dyg[g], i, full, m);
      const auto xhat = Op::xhat(rows[g], load_t(xg[g], i, full, m));
      sw = V::fma(dyv, xhat, sw);
      sb = V::add(sb, dyv);
      dv[g] = Op::dx(cols, rows[g], dyv, xhat, wv, i, m);
    }
    add_group_grads<C>(dw, db, first, i, m, sw, sb);
  };
  constexpr size_t N = V::N;
  // Streamed rows are written a whole cache line at a time (kLine vector steps, then each row's line in
  // consecutive stores): a line left half-written while the group's other rows are stored is flushed from the
  // write-combining buffers as a partial line, which costs a read-modify-write of that line in memory (measured
  // on Zen 3 with 32-byte vectors: 2x slower than ordinary stores; 64-byte vectors fill a line in one store).
  constexpr size_t kLine = 64 / (N * sizeof(T)) > 0 ? 64 / (N * sizeof(T)) : 1;
  typename V::R dv[G];
  const size_t head = layout.head < n ? layout.head : n;
  size_t i = 0;
  for (; i < head; i += N) {
    const size_t m = head - i < N ? head - i : N;
    step(i, m == N, m, dv);
    for (size_t g = 0; g < G; ++g) store_dx<V>(dxg[g] + i, dv[g], m == N, m, false);
  }
  i = head;
  if (kLine > 1 && layout.stream) {
    for (; i + kLine * N <= n; i += kLine * N) {
      typename V::R line[kLine][G];
      for (size_t l = 0; l < kLine; ++l) step(i + l * N, true, N, line[l]);
      for (size_t g = 0; g < G; ++g) {
        for (size_t l = 0; l < kLine; ++l) store_stream<V>(dxg[g] + i + l * N, line[l][g]);
      }
    }
  }
  for (; i + N <= n; i += N) {
    step(i, true, N, dv);
    for (size_t g = 0; g < G; ++g) store_dx<V>(dxg[g] + i, dv[g], true, N, layout.stream);
  }
  if (i < n) {
    step(i, false, n - i, dv);
    for (size_t g = 0; g < G; ++g) store_dx<V>(dxg[g] + i, dv[g], false, n - i, false);
  }
}

// RMSNorm: xhat = x * rstd, dx = rstd * (g - [j < k] * xhat * q) with g = dy * (offset + w).
template <typename T, typename W>
struct RmsBackward {
  using C = Compute<T>;
  using V = Vec<C>;
  struct Row {
    typename V::R r, nq;  // rstd, -q
  };
  RMSNORM_NOINLINE static Row row(const rmsnorm::BackwardArgs<T, W>& a, size_t r) {
    double rstd, q;
    rms_backward_scalars<T, W>(a, r, &rstd, &q);
    return {V::set1(static_cast<C>(rstd)), V::set1(static_cast<C>(-q))};
  }
  struct Cols {
    const W* weight;
    typename V::R offset;
    size_t n, k;
  };
  static Cols cols(const rmsnorm::BackwardArgs<T, W>& a) {
    return {a.weight, V::set1(static_cast<C>(a.offset)), a.dim, a.k};
  }
  RMSNORM_ALWAYS_INLINE static typename V::R weight(const Cols& c, size_t i, bool full, size_t m) {
    return c.weight ? V::add(load_v<C>(c.weight, i, full, m), c.offset) : V::set1(C(1));
  }
  RMSNORM_ALWAYS_INLINE static typename V::R xhat(const Row& row, typename V::R xv) { return V::mul(xv, row.r); }
  RMSNORM_ALWAYS_INLINE static typename V::R dx(const Cols& c, const Row& row, typename V::R dyv, typename V::R xhat,
                                                typename V::R wv, size_t i, size_t m) {
    const size_t n = c.n, k = c.k;
    const auto gv = V::mul(dyv, wv);
    if (k == n || i + m <= k) return V::mul(row.r, V::fma(xhat, row.nq, gv));  // rstd * (g - xhat * q)
    if (i < k) {
      // The block straddles k: only lanes before k carry the statistic's term, computed as above, so a
      // column's result never depends on where the blocks split.
      alignas(64) C t[V::N], plain[V::N];
      V::store(t, V::fma(xhat, row.nq, gv));
      V::store(plain, gv);
      for (size_t j = k - i; j < V::N; ++j) t[j] = plain[j];
      return V::mul(row.r, V::load(t));
    }
    return V::mul(row.r, gv);
  }
};

// LayerNorm: xhat = (x - mean) * rstd with the mean as hi + lo in the compute type, as in the forward pass, so
// x - mean keeps its precision; dx = rstd * (g - mean(g) - xhat * mean(g * xhat)) with g = dy * w.
template <typename T, typename W>
struct LnBackward {
  using C = Compute<T>;
  using V = Vec<C>;
  struct Row {
    typename V::R mh, ml, r, a, nb;  // mean (hi, lo), rstd, mean(g), -mean(g * xhat)
  };
  RMSNORM_NOINLINE static Row row(const rmsnorm::BackwardArgs<T, W>& a, size_t r) {
    double mean, rstd, ga, gb;
    ln_backward_scalars<T, W>(a, r, &mean, &rstd, &ga, &gb);
    const C hi = static_cast<C>(mean);
    return {V::set1(hi), V::set1(static_cast<C>(mean - static_cast<double>(hi))), V::set1(static_cast<C>(rstd)),
            V::set1(static_cast<C>(ga)), V::set1(static_cast<C>(-gb))};
  }
  struct Cols {
    const W* weight;
  };
  static Cols cols(const rmsnorm::BackwardArgs<T, W>& a) { return {a.weight}; }
  RMSNORM_ALWAYS_INLINE static typename V::R weight(const Cols& c, size_t i, bool full, size_t m) {
    return c.weight ? load_v<C>(c.weight, i, full, m) : V::set1(C(1));
  }
  RMSNORM_ALWAYS_INLINE static typename V::R xhat(const Row& row, typename V::R xv) {
    return V::mul(V::sub(V::sub(xv, row.mh), row.ml), row.r);
  }
  RMSNORM_ALWAYS_INLINE static typename V::R dx(const Cols&, const Row& row, typename V::R dyv, typename V::R xhat,
                                                typename V::R wv, size_t, size_t) {
    return V::mul(row.r, V::fma(xhat, row.nb, V::sub(V::mul(dyv, wv), row.a)));
  }
};

// Whether consecutive rows of x, dy or dx lie a multiple of 4 KiB apart (power-of-two widths: 4096 float32,
// 4096 bfloat16 values). Such rows map to the same sets of an L1 cache whose sets span 4 KiB (every x86 core:
// 32 KiB 8-way, 48 KiB 12-way; the 16 KiB span of some Arm cores is a multiple of it), so a group of four rows
// of three arrays is twelve lines competing for one set, evicted before their second use. Such calls take
// groups of two (six lines). A rule from the cache's geometry, which Zen 3 and Zen 4 share (32 KiB, 8 ways), not
// a timing: measured on Zen 3 only, 64 x 4096 float32, one thread: groups of four 0.48-1.9 ns per value
// depending on where x, dy and dx lie relative to each other, groups of two 0.50-0.67; at 2560 values (rows
// 2 KiB apart modulo 4 KiB) groups of four stay about 10% faster.
template <typename T, typename W>
bool rows_share_sets(const rmsnorm::BackwardArgs<T, W>& a) {
  constexpr size_t kSpan = 4096 / sizeof(T);
  const auto apart = [&](size_t stride) { return (a.heads == 1 ? stride : a.head_stride) % kSpan == 0; };
  return apart(a.x_stride) || apart(a.dy_stride) || apart(a.dx_stride);
}

template <typename Op, typename T, typename W>
void backward_rows(const rmsnorm::BackwardArgs<T, W>& a, size_t r0, size_t r1, double* dw, double* db) {
  if (r0 >= r1) return;
  // Sums nobody asked for go to scratch, so the column loop never tests for them. The binding always passes
  // both (its scratch); this is for other callers. (malloc, not std::vector: a library template instantiated
  // in an ISA object could be picked by the linker for baseline code; scripts/check-baseline.mjs.)
  double* unused = nullptr;
  if (!dw || !db) {
    unused = static_cast<double*>(std::malloc(a.dim * sizeof(double)));
    if (!unused) return;
    if (!dw) dw = unused;
    if (!db) db = unused;
  }
  size_t r = r0;
  if (rows_share_sets(a)) {
    for (; r + 2 <= r1; r += 2) backward_group<Op, T, W, 2>(a, r, dw, db, r == r0, r1);
  } else {
    for (; r + kGroup <= r1; r += kGroup) backward_group<Op, T, W, kGroup>(a, r, dw, db, r == r0, r1);
  }
  for (; r < r1; ++r) backward_group<Op, T, W, 1>(a, r, dw, db, r == r0, r1);
  if (a.stream) stream_fence();
  std::free(unused);
}

}  // namespace

namespace rmsnorm {
namespace RMSNORM_ISA {

template <typename T, typename W>
void rms_norm_backward_rows(const BackwardArgs<T, W>& a, size_t r0, size_t r1, double* dw, double* db) {
  backward_rows<RmsBackward<T, W>>(a, r0, r1, dw, db);
}
template <typename T, typename W>
void layer_norm_backward_rows(const BackwardArgs<T, W>& a, size_t r0, size_t r1, double* dw, double* db) {
  backward_rows<LnBackward<T, W>>(a, r0, r1, dw, db);
}

#define RMSNORM_INSTANTIATE(T, W)                                                                          \
  template void rms_norm_backward_rows<T, W>(const BackwardArgs<T, W>&, size_t, size_t, double*, double*); \
  template void layer_norm_backward_rows<T, W>(const BackwardArgs<T, W>&, size_t, size_t, double*, double*);
RMSNORM_FOR_EACH_TYPE_PAIR(RMSNORM_INSTANTIATE)
#undef RMSNORM_INSTANTIATE

}  // namespace RMSNORM_ISA
}  // namespace rmsnorm
