// libFuzzer target for the kernels (native/kernels/), built by fuzz/build.sh for every instruction set the
// host runs (the scalar, AVX2 and AVX-512 tables, chosen at run time like the addon does) and run under
// AddressSanitizer and UndefinedBehaviorSanitizer. Each input is decoded into one call: an op, an element type,
// a shape, which optional arrays are given, eps, offset, partial and the values, which are taken bit for bit
// from the input (so NaN, infinities, subnormals and the largest finite values all occur) or, for the
// backward passes, as moderate numbers. Every array is its own heap block of exactly its length, so a read or
// write one element past any of them is an AddressSanitizer report.
//
// For each kernel table it checks:
// - forward ops (rmsNorm, addRmsNorm, layerNorm): every output, rstd and mean against a long double reference
//   (64-bit significand: no float64 square over- or underflows it), within 4 ulp (float32, the README) or
//   1e-13 relative (float64, the contract) of the scale its rounding is relative to, NaN where the reference is NaN and
//   the same infinity where it is infinite; addRmsNorm's residual bit for bit;
// - backward ops: dx, dweight and dbias against the analytic gradients in long double, element by element,
//   relative to the sum of the magnitudes of their terms;
// - every op: running the rows in two pieces gives the same bits as running them at once (the thread pool
//   splits rows anywhere), and the inputs are left unchanged.
// For the half-precision tables (bfloat16 and float16 data, with parameters of the data type or float32), on
// moderate values converted from float32 by the table's own conversions: no read or write outside any array,
// the same bits when the rows run in two pieces, the inputs left unchanged, and finite outputs for finite
// moderate inputs (their accuracy is checked against the fallback by the vitest suites, not here).
// A failed check prints what differed and aborts, which libFuzzer reports as a crash with the input saved.
//
// Not checked, by design of the kernels: an output whose value before the bias, (x - mean) * rstd * (offset +
// weight), leaves the storage type's range (the bias could bring it back, the kernels do not try).
#include <fuzzer/FuzzedDataProvider.h>

#include <cinttypes>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <type_traits>
#include <vector>

#include "../native/cpu.h"
#include "../native/kernels.h"

namespace {

using LD = long double;

template <typename T>
struct Limits {
  static constexpr int kMant = std::numeric_limits<T>::digits - 1;  // 23 or 52
  static LD max() { return static_cast<LD>(std::numeric_limits<T>::max()); }
  static LD tiny() { return static_cast<LD>(std::numeric_limits<T>::min()); }
  static LD sub() { return static_cast<LD>(std::numeric_limits<T>::denorm_min()); }
  static LD ulp_of(LD s) {  // a unit in the last place of T at magnitude s
    s = fabsl(s);
    if (!(s >= tiny())) return sub();
    int e;
    frexpl(s, &e);  // s = f * 2^e, f in [0.5, 1)
    return ldexpl(1.0L, e - 1 - kMant);
  }
};

// The README's 4 ulp for float32; the contract's relative 1e-13 (450 ulp) for float64.
template <typename T>
constexpr int budget() {
  return sizeof(T) == 4 ? 4 : 450;
}

// The call being checked and its data row, printed when a check fails.
struct Context {
  const struct Call* call = nullptr;
  const void* data = nullptr;  // the row-major data the statistics are taken over (T = float or double)
  bool f64 = false;
} context;

void print_context(size_t row);

[[noreturn]] void die(const char* what, const char* isa, size_t row, size_t i, LD got, LD want, LD tol) {
  std::fprintf(stderr, "kernels_fuzz: %s [%s] row %zu index %zu: got %.21Lg, want %.21Lg (tolerance %.3Lg)\n", what,
               isa, row, i, got, want, tol);
  print_context(row);
  std::abort();
}

// got against the reference `want`: NaN where want is NaN, equal infinities, else |got - want| <= tol.
// `limit` is the largest magnitude the storage type holds: a finite want beyond it must round to infinity, and
// near it either is accepted.
template <typename T>
void expect_close(const char* what, const char* isa, size_t row, size_t i, T got_t, LD want, LD tol) {
  const LD got = static_cast<LD>(got_t);
  if (std::isnan(want) || std::isnan(got)) {
    if (!(std::isnan(want) && std::isnan(got))) die(what, isa, row, i, got, want, tol);
    return;
  }
  if (std::isinf(want)) {
    if (got != want) die(what, isa, row, i, got, want, tol);
    return;
  }
  const LD max = Limits<T>::max();
  if (std::isinf(got)) {
    // Overflow: right when the exact value is beyond the largest finite value by more than its rounding slack.
    if ((got > 0) != (want > 0) || fabsl(want) + tol < max) die(what, isa, row, i, got, want, tol);
    return;
  }
  if (fabsl(got - want) > tol) die(what, isa, row, i, got, want, tol);
}

// ---------------------------------------------------------------------------------------------------------
// Decoding

struct Call {
  int op;  // 0 rmsNorm, 1 layerNorm, 2 addRmsNorm, 3 rmsNormBackward, 4 layerNormBackward
  size_t rows, dim, k;
  double eps, offset, partial;
  bool weight, bias, rstd, mean, in_place, accumulate;
  size_t split;  // the second run goes [0, split) then [split, rows)
};

void print_context(size_t row) {
  const Call* c = context.call;
  if (!c) return;
  std::fprintf(stderr,
               "  op %d %s rows %zu dim %zu k %zu eps %.17g offset %.17g partial %.17g weight %d bias %d rstd %d mean "
               "%d in_place %d split %zu\n",
               c->op, context.f64 ? "float64" : "float32", c->rows, c->dim, c->k, c->eps, c->offset, c->partial,
               c->weight, c->bias, c->rstd, c->mean, c->in_place, c->split);
  if (!context.data || row >= c->rows) return;
  std::fprintf(stderr, "  row %zu:", row);
  for (size_t i = 0; i < c->dim && i < 64; ++i) {
    const double v = context.f64 ? static_cast<const double*>(context.data)[row * c->dim + i]
                                 : static_cast<const float*>(context.data)[row * c->dim + i];
    std::fprintf(stderr, " %.9g", v);
  }
  std::fprintf(stderr, "%s\n", c->dim > 64 ? " ..." : "");
}

// Dense rows: every row stride dim, one head (the binding sets the layout of every call; the fuzzer's calls are
// dense).
void dense_layout(rmsnorm::CallParams& a, size_t dim) {
  a.heads = 1;
  a.head_stride = dim;
  a.x_stride = a.y_stride = a.res_stride = a.dy_stride = a.dx_stride = dim;
}

template <typename T>
T decode_value(FuzzedDataProvider& in, bool moderate) {
  if (moderate) return static_cast<T>(in.ConsumeIntegral<int16_t>()) / static_cast<T>(256);  // [-128, 128)
  if (sizeof(T) == 4) {
    const uint32_t bits = in.ConsumeIntegral<uint32_t>();
    float f;
    std::memcpy(&f, &bits, 4);
    return static_cast<T>(f);
  }
  const uint64_t bits = in.ConsumeIntegral<uint64_t>();
  double d;
  std::memcpy(&d, &bits, 8);
  return static_cast<T>(d);
}

template <typename T>
std::unique_ptr<T[]> make_array(FuzzedDataProvider& in, size_t n, bool moderate) {
  std::unique_ptr<T[]> a(new T[n == 0 ? 1 : n]);  // a heap block of exactly n elements (1 when n is 0)
  // Values run short when the input does: repeat what was decoded, so long rows still carry the input's values.
  size_t have = 0;
  for (size_t i = 0; i < n; ++i) {
    if (in.remaining_bytes() >= sizeof(T) || (moderate && in.remaining_bytes() >= 2)) {
      a[i] = decode_value<T>(in, moderate);
      have = i + 1;
    } else {
      a[i] = have ? a[i % have] : static_cast<T>(static_cast<double>(i % 7) - 3.0);
    }
  }
  return a;
}

template <typename T>
std::unique_ptr<T[]> copy_of(const T* a, size_t n) {
  std::unique_ptr<T[]> c(new T[n == 0 ? 1 : n]);
  if (n) std::memcpy(c.get(), a, n * sizeof(T));
  return c;
}

template <typename T>
bool same_bits(const T* a, const T* b, size_t n) {
  return n == 0 || std::memcmp(a, b, n * sizeof(T)) == 0;
}

// ---------------------------------------------------------------------------------------------------------
// Reference statistics, in long double

LD rms_rstd(const LD* x, size_t k, double eps) {
  LD ss = 0;
  for (size_t i = 0; i < k; ++i) ss += x[i] * x[i];
  return 1.0L / sqrtl(ss / static_cast<LD>(k) + static_cast<LD>(eps));
}

void ln_moments(const LD* x, size_t n, double eps, LD* mean, LD* rstd) {
  LD sum = 0;
  for (size_t i = 0; i < n; ++i) sum += x[i];
  const LD m = sum / static_cast<LD>(n);
  LD sq = 0;
  for (size_t i = 0; i < n; ++i) sq += (x[i] - m) * (x[i] - m);
  *mean = m;
  *rstd = 1.0L / sqrtl(sq / static_cast<LD>(n) + static_cast<LD>(eps));
}

// ---------------------------------------------------------------------------------------------------------
// Forward ops

template <typename T>
void check_forward(const Call& c, const rmsnorm::KernelTable& table, const rmsnorm::OpTable<T, T>& ops,
                   FuzzedDataProvider& in) {
  const size_t n = c.rows * c.dim;
  const bool add = c.op == 2, ln = c.op == 1;
  auto x = make_array<T>(in, n, false);
  auto residual = add ? make_array<T>(in, n, false) : nullptr;
  auto w = c.weight ? make_array<T>(in, c.dim, false) : nullptr;
  auto b = c.bias ? make_array<T>(in, c.dim, false) : nullptr;
  // Weights and biases are finite (the contract's NaN/Inf rules are about the data); any finite value goes.
  for (size_t i = 0; i < c.dim; ++i) {
    if (w && !std::isfinite(w[i])) w[i] = static_cast<T>(1);
    if (b && !std::isfinite(b[i])) b[i] = static_cast<T>(0);
  }
  const auto x0 = copy_of(x.get(), n);
  const auto res0 = add ? copy_of(residual.get(), n) : nullptr;
  const auto w0 = w ? copy_of(w.get(), c.dim) : nullptr;
  const auto b0 = b ? copy_of(b.get(), c.dim) : nullptr;

  // Run 1: all rows at once. Run 2: the same call in two pieces, on fresh copies.
  struct Outputs {
    std::unique_ptr<T[]> x, residual, y, rstd, mean;
  } run[2];
  for (int r = 0; r < 2; ++r) {
    Outputs& o = run[r];
    o.x = copy_of(x0.get(), n);
    if (add) o.residual = copy_of(res0.get(), n);
    if (!c.in_place) o.y.reset(new T[n == 0 ? 1 : n]);
    if (c.rstd) o.rstd.reset(new T[c.rows == 0 ? 1 : c.rows]);
    if (c.mean && ln) o.mean.reset(new T[c.rows == 0 ? 1 : c.rows]);
    rmsnorm::NormArgs<T> a;
    a.x = o.x.get();
    a.y = c.in_place ? o.x.get() : o.y.get();
    a.weight = w.get();
    a.bias = b.get();
    a.rstd = o.rstd.get();
    a.mean = o.mean.get();
    a.residual = o.residual.get();
    a.rows = c.rows;
    a.dim = c.dim;
    dense_layout(a, c.dim);
    a.k = ln ? c.dim : c.k;
    a.eps = c.eps;
    a.offset = ln ? 0.0 : c.offset;
    const auto kernel = ln ? ops.layer_norm : add ? ops.add_rms_norm : ops.rms_norm;
    if (r == 0) {
      kernel(a, 0, c.rows);
    } else {
      kernel(a, 0, c.split);
      kernel(a, c.split, c.rows);
    }
  }
  Outputs& o = run[0];
  const T* y = c.in_place ? o.x.get() : o.y.get();
  const T* y2 = c.in_place ? run[1].x.get() : run[1].y.get();
  if (!same_bits(y, y2, n)) die("rows split in two pieces give other bits", table.isa, 0, 0, 0, 0, 0);
  if (c.rstd && !same_bits(o.rstd.get(), run[1].rstd.get(), c.rows))
    die("split rstd differs", table.isa, 0, 0, 0, 0, 0);
  if (add && !same_bits(o.residual.get(), run[1].residual.get(), n))
    die("split residual differs", table.isa, 0, 0, 0, 0, 0);
  if ((w && !same_bits(w.get(), w0.get(), c.dim)) || (b && !same_bits(b.get(), b0.get(), c.dim))) {
    die("weight or bias was written", table.isa, 0, 0, 0, 0, 0);
  }
  if (!c.in_place && !same_bits(o.x.get(), x0.get(), n)) die("x was written", table.isa, 0, 0, 0, 0, 0);

  // The data the statistics are taken over: x, or for addRmsNorm the new residual, which must be res + x
  // rounded to T (bit for bit, NaN payloads aside).
  const T* data = x0.get();
  if (add) {
    for (size_t i = 0; i < n; ++i) {
      const T want = static_cast<T>(res0[i] + x0[i]);
      const T got = o.residual[i];
      if (!(got == want || (std::isnan(got) && std::isnan(want)))) {
        die("residual is not residual + x", table.isa, i / c.dim, i % c.dim, got, want, 0);
      }
    }
    data = o.residual.get();
  }
  context.call = &c;
  context.data = data;
  context.f64 = sizeof(T) == 8;

  constexpr int B = budget<T>();
  const LD max = Limits<T>::max();
  const LD offset = ln ? 0.0L : static_cast<LD>(c.offset);
  std::vector<LD> row(c.dim);
  for (size_t r = 0; r < c.rows; ++r) {
    for (size_t i = 0; i < c.dim; ++i) row[i] = static_cast<LD>(data[r * c.dim + i]);
    LD mean = 0, rstd;
    if (ln) {
      ln_moments(row.data(), c.dim, c.eps, &mean, &rstd);
    } else {
      rstd = rms_rstd(row.data(), c.k, c.eps);
    }
    bool row_finite = true;
    bool constant = true;
    for (size_t i = 0; i < c.dim; ++i) {
      row_finite = row_finite && std::isfinite(row[i]);
      constant = constant && row[i] == row[0];
    }
    // eps = 0 with a constant row is 0 / 0: NaN throughout (the kernels' mean is the constant itself, where
    // the long double reference's sum may round).
    if (ln && c.eps == 0 && constant && row_finite) {
      for (size_t i = 0; i < c.dim; ++i) {
        expect_close("layerNorm y (constant row, eps 0)", table.isa, r, i, y[r * c.dim + i], NAN, 0);
      }
      continue;
    }
    // The mean of the magnitudes: the error of a computed mean is relative to it (the sum may cancel).
    LD abs_mean = 0;
    if (ln) {
      for (size_t i = 0; i < c.dim; ++i) abs_mean += fabsl(row[i]);
      abs_mean /= static_cast<LD>(c.dim);
    }
    if (c.rstd && (row_finite || !ln))
      expect_close("rstd", table.isa, r, 0, o.rstd[r], rstd, B * Limits<T>::ulp_of(rstd));
    if (o.mean && row_finite)
      expect_close("mean", table.isa, r, 0, o.mean[r], mean,
                   B * Limits<T>::ulp_of(fabsl(mean) + abs_mean + 1.0L / rstd));
    for (size_t i = 0; i < c.dim; ++i) {
      const LD xi = row[i];
      const LD wi = w ? offset + static_cast<LD>(w[i]) : 1.0L;
      const LD bi = b ? static_cast<LD>(b[i]) : 0.0L;
      const LD centered = xi - mean;
      const LD normed = centered * rstd;
      const LD want = normed * wi + bi;
      // NaN or an infinity in the row must stay in the row (the other rows are checked). For rmsNorm the values
      // are what the formula gives in IEEE arithmetic (README: an infinity gives rstd 0, so finite values become
      // 0 and the infinity NaN); LayerNorm does not document the values of such a row.
      if (ln && !row_finite) continue;
      // An output whose value before the bias leaves T's range is not checked (the header says why). Every
      // other one is, whatever its intermediates: with partial < 1 a value past the first k may make x * rstd
      // far larger than T holds where a small weight brings the output back, and LayerNorm's x - mean may
      // exceed T's range.
      if (std::isfinite(normed) && (fabsl(wi) > max || fabsl(normed * wi) > max)) continue;
      // Tolerance: B units in the last place of the magnitude the rounding errors are relative to, plus what
      // a product that underflowed to T's subnormals can lose, scaled by the weight after it.
      const LD scale =
          (fabsl(xi) + fabsl(mean) + abs_mean) * rstd * (w ? fabsl(offset) + fabsl(static_cast<LD>(w[i])) : 1.0L) +
          fabsl(bi);
      const LD tol = B * Limits<T>::ulp_of(scale) + 2 * Limits<T>::sub() * (fabsl(wi) + 1);
      expect_close(ln    ? "layerNorm y"
                   : add ? "addRmsNorm y"
                         : "rmsNorm y",
                   table.isa, r, i, y[r * c.dim + i], want, tol);
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// Backward ops, on moderate values

template <typename T>
void check_backward(const Call& c, const rmsnorm::KernelTable& table, const rmsnorm::OpTable<T, T>& ops,
                    FuzzedDataProvider& in) {
  const size_t n = c.rows * c.dim;
  const bool ln = c.op == 4;
  auto dy = make_array<T>(in, n, true);
  auto x = make_array<T>(in, n, true);
  auto w = c.weight ? make_array<T>(in, c.dim, true) : nullptr;
  const auto dy0 = copy_of(dy.get(), n);
  const auto x0 = copy_of(x.get(), n);
  context.call = &c;
  context.data = x0.get();
  context.f64 = sizeof(T) == 8;

  // Reference statistics, and the saved ones the call may be given (rounded to T, as a forward pass stores them).
  std::vector<LD> rstd(c.rows), mean(c.rows);
  std::vector<LD> row(c.dim);
  for (size_t r = 0; r < c.rows; ++r) {
    for (size_t i = 0; i < c.dim; ++i) row[i] = static_cast<LD>(x[r * c.dim + i]);
    if (ln) {
      ln_moments(row.data(), c.dim, c.eps, &mean[r], &rstd[r]);
    } else {
      rstd[r] = rms_rstd(row.data(), c.k, c.eps);
    }
  }
  const bool saved = c.rstd;  // layerNorm uses saved statistics only when both are given
  std::unique_ptr<T[]> s_rstd, s_mean;
  if (saved) {
    s_rstd.reset(new T[c.rows == 0 ? 1 : c.rows]);
    for (size_t r = 0; r < c.rows; ++r) {
      s_rstd[r] = static_cast<T>(rstd[r]);
      rstd[r] = static_cast<LD>(s_rstd[r]);
    }
    if (ln) {
      s_mean.reset(new T[c.rows == 0 ? 1 : c.rows]);
      for (size_t r = 0; r < c.rows; ++r) {
        s_mean[r] = static_cast<T>(mean[r]);
        mean[r] = static_cast<LD>(s_mean[r]);
      }
    }
  }

  std::unique_ptr<T[]> dx[2];
  std::unique_ptr<double[]> dw[2], db[2];
  for (int r = 0; r < 2; ++r) {
    // dx may be dy itself (in place): then each run works on its own copy of dy.
    std::unique_ptr<T[]> dy_run = c.in_place ? copy_of(dy0.get(), n) : nullptr;
    dw[r].reset(c.weight || c.accumulate ? new double[c.dim] : nullptr);
    db[r].reset(new double[c.dim]);
    rmsnorm::BackwardArgs<T> a;
    a.dy = c.in_place ? dy_run.get() : dy.get();
    a.x = x.get();
    a.weight = w.get();
    a.rstd = s_rstd.get();
    a.mean = s_mean.get();
    if (c.in_place) {
      dx[r] = std::move(dy_run);
    } else {
      dx[r].reset(new T[n == 0 ? 1 : n]);
    }
    a.dx = dx[r].get();
    a.rows = c.rows;
    a.dim = c.dim;
    dense_layout(a, c.dim);
    a.k = ln ? c.dim : c.k;
    a.eps = c.eps;
    a.offset = ln ? 0.0 : c.offset;
    const auto kernel = ln ? ops.layer_norm_backward : ops.rms_norm_backward;
    if (c.rows == 0) continue;  // the binding never calls a backward kernel on no rows
    if (r == 0) {
      kernel(a, 0, c.rows, dw[r].get(), db[r].get());
    } else {
      // Two blocks, summed in order as the binding does.
      std::unique_ptr<double[]> dw2(dw[r] ? new double[c.dim] : nullptr), db2(new double[c.dim]);
      const size_t s = c.split == 0 ? 1 : c.split;
      kernel(a, 0, s, dw[r].get(), db[r].get());
      if (s < c.rows) {
        kernel(a, s, c.rows, dw2.get(), db2.get());
        for (size_t j = 0; j < c.dim; ++j) {
          if (dw[r]) dw[r][j] += dw2[j];
          db[r][j] += db2[j];
        }
      }
    }
  }
  if (c.rows == 0) return;
  if (!same_bits(dx[0].get(), dx[1].get(), n))
    die("backward rows split in two pieces give another dx", table.isa, 0, 0, 0, 0, 0);
  if (!same_bits(x.get(), x0.get(), n) || (!c.in_place && !same_bits(dy.get(), dy0.get(), n))) {
    die("backward wrote an input", table.isa, 0, 0, 0, 0, 0);
  }

  // Element-wise tolerance relative to the sum of the magnitudes of each result's terms.
  const LD tol = sizeof(T) == 4 ? 3e-6L : 1e-13L;
  std::vector<LD> ref_dw(c.dim, 0), ref_db(c.dim, 0), mag_dw(c.dim, 0), mag_db(c.dim, 0);
  for (size_t r = 0; r < c.rows; ++r) {
    const T* xr = x0.get() + r * c.dim;
    const T* dyr = dy0.get() + r * c.dim;
    const LD rs = rstd[r];
    auto g = [&](size_t i) {
      return static_cast<LD>(dyr[i]) * (w ? static_cast<LD>(c.offset) * (ln ? 0 : 1) + static_cast<LD>(w[i]) : 1.0L);
    };
    if (!ln) {
      LD dot = 0, dot_mag = 0;
      for (size_t i = 0; i < c.dim; ++i) {
        dot += g(i) * xr[i];
        dot_mag += fabsl(g(i) * xr[i]);
      }
      const LD kd = static_cast<LD>(c.k);
      for (size_t i = 0; i < c.dim; ++i) {
        const LD xi = xr[i];
        const LD want = rs * g(i) - (i < c.k ? xi * rs * rs * rs * dot / kd : 0.0L);
        const LD mag = fabsl(rs * g(i)) + (i < c.k ? fabsl(xi) * rs * rs * rs * dot_mag / kd : 0.0L);
        expect_close("rmsNormBackward dx", table.isa, r, i, dx[0][r * c.dim + i], want,
                     tol * mag + Limits<T>::ulp_of(want) * 2);
        ref_dw[i] += static_cast<LD>(dyr[i]) * xi * rs;
        mag_dw[i] += fabsl(static_cast<LD>(dyr[i]) * xi * rs);
        ref_db[i] += dyr[i];
        mag_db[i] += fabsl(static_cast<LD>(dyr[i]));
      }
    } else {
      const LD nd = static_cast<LD>(c.dim);
      LD sg = 0, sgx = 0, sg_mag = 0, sgx_mag = 0;
      for (size_t i = 0; i < c.dim; ++i) {
        const LD xhat = (static_cast<LD>(xr[i]) - mean[r]) * rs;
        sg += g(i);
        sgx += g(i) * xhat;
        sg_mag += fabsl(g(i));
        sgx_mag += fabsl(g(i) * xhat);
      }
      for (size_t i = 0; i < c.dim; ++i) {
        const LD xhat = (static_cast<LD>(xr[i]) - mean[r]) * rs;
        const LD want = rs * (g(i) - sg / nd - xhat * sgx / nd);
        const LD mag = rs * (fabsl(g(i)) + sg_mag / nd + fabsl(xhat) * sgx_mag / nd) +
                       rs * fabsl(xhat) * (fabsl(static_cast<LD>(xr[i])) + fabsl(mean[r])) * rs * sgx_mag / nd;
        expect_close("layerNormBackward dx", table.isa, r, i, dx[0][r * c.dim + i], want,
                     tol * mag + Limits<T>::ulp_of(want) * 2);
        ref_dw[i] += static_cast<LD>(dyr[i]) * xhat;
        mag_dw[i] +=
            fabsl(static_cast<LD>(dyr[i]) * xhat) * (1 + (fabsl(static_cast<LD>(xr[i])) + fabsl(mean[r])) * rs);
        ref_db[i] += dyr[i];
        mag_db[i] += fabsl(static_cast<LD>(dyr[i]));
      }
    }
  }
  for (size_t i = 0; i < c.dim; ++i) {
    if (dw[0]) {
      for (int r = 0; r < 2; ++r) {
        expect_close<double>("dweight", table.isa, 0, i, dw[r][i], ref_dw[i], tol * mag_dw[i] + 1e-300L);
      }
    }
    for (int r = 0; r < 2; ++r)
      expect_close<double>("dbias", table.isa, 0, i, db[r][i], ref_db[i], tol * mag_db[i] + 1e-300L);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Half-precision tables: memory safety and determinism

template <typename H>
std::unique_ptr<H[]> make_half(FuzzedDataProvider& in, size_t n, void (*to_half)(const float*, H*, size_t)) {
  const auto f = make_array<float>(in, n, true);
  std::unique_ptr<H[]> h(new H[n == 0 ? 1 : n]);
  if (n) to_half(f.get(), h.get(), n);
  return h;
}

template <typename H, typename W>
std::unique_ptr<W[]> make_param(FuzzedDataProvider& in, size_t n, void (*to_half)(const float*, H*, size_t)) {
  if constexpr (std::is_same<W, float>::value) {
    return make_array<float>(in, n, true);
  } else {
    return make_half<H>(in, n, to_half);
  }
}

template <typename H>
float to_float(H h, void (*from_half)(const H*, float*, size_t)) {
  float f;
  from_half(&h, &f, 1);
  return f;
}

template <typename H, typename W>
void check_half(const Call& c, const char* name, const rmsnorm::OpTable<H, W>& ops,
                void (*to_half)(const float*, H*, size_t), void (*from_half)(const H*, float*, size_t),
                FuzzedDataProvider& in) {
  const size_t n = c.rows * c.dim;
  context.call = &c;
  context.data = nullptr;  // the failure messages below print no row (the half inputs are not float)
  const bool ln = c.op == 1 || c.op == 4, add = c.op == 2;
  auto x = make_half<H>(in, n, to_half);
  auto other = make_half<H>(in, n, to_half);  // residual (addRmsNorm) or dy (backward)
  auto w = c.weight ? make_param<H, W>(in, c.dim, to_half) : nullptr;
  auto b = c.bias ? make_param<H, W>(in, c.dim, to_half) : nullptr;
  const auto x0 = copy_of(x.get(), n);
  const auto other0 = copy_of(other.get(), n);
  const auto w0 = w ? copy_of(w.get(), c.dim) : nullptr;
  const auto b0 = b ? copy_of(b.get(), c.dim) : nullptr;
  if (c.op <= 2) {
    std::unique_ptr<H[]> y[2], xs[2], res[2];
    std::unique_ptr<float[]> rstd[2], mean[2];
    for (int r = 0; r < 2; ++r) {
      xs[r] = copy_of(x0.get(), n);
      if (add) res[r] = copy_of(other0.get(), n);
      if (!c.in_place) y[r].reset(new H[n == 0 ? 1 : n]);
      if (c.rstd) rstd[r].reset(new float[c.rows == 0 ? 1 : c.rows]);
      if (c.mean && ln) mean[r].reset(new float[c.rows == 0 ? 1 : c.rows]);
      rmsnorm::NormArgs<H, W> a;
      a.x = xs[r].get();
      a.y = c.in_place ? xs[r].get() : y[r].get();
      a.weight = w.get();
      a.bias = b.get();
      a.rstd = rstd[r].get();
      a.mean = mean[r].get();
      a.residual = res[r].get();
      a.rows = c.rows;
      a.dim = c.dim;
      dense_layout(a, c.dim);
      a.k = ln ? c.dim : c.k;
      a.eps = c.eps;
      a.offset = ln ? 0.0 : c.offset;
      a.llama = c.accumulate;  // the flag picks castMode here
      const auto kernel = ln ? ops.layer_norm : add ? ops.add_rms_norm : ops.rms_norm;
      if (r == 0) {
        kernel(a, 0, c.rows);
      } else {
        kernel(a, 0, c.split);
        kernel(a, c.split, c.rows);
      }
    }
    const H* y0 = c.in_place ? xs[0].get() : y[0].get();
    const H* y1 = c.in_place ? xs[1].get() : y[1].get();
    if (!same_bits(y0, y1, n)) die("half: rows split in two pieces give other bits", name, 0, 0, 0, 0, 0);
    if (c.rstd && !same_bits(rstd[0].get(), rstd[1].get(), c.rows))
      die("half: split rstd differs", name, 0, 0, 0, 0, 0);
    if (mean[0] && !same_bits(mean[0].get(), mean[1].get(), c.rows))
      die("half: split mean differs", name, 0, 0, 0, 0, 0);
    if (add && !same_bits(res[0].get(), res[1].get(), n)) die("half: split residual differs", name, 0, 0, 0, 0, 0);
    if (!c.in_place && !same_bits(xs[0].get(), x0.get(), n)) die("half: x was written", name, 0, 0, 0, 0, 0);
    if ((w && !same_bits(w.get(), w0.get(), c.dim)) || (b && !same_bits(b.get(), b0.get(), c.dim))) {
      die("half: weight or bias was written", name, 0, 0, 0, 0, 0);
    }
    if (c.rstd && c.eps >= 1e-12) {
      for (size_t r = 0; r < c.rows; ++r) {
        if (!std::isfinite(rstd[0][r])) die("half: rstd of moderate data is not finite", name, r, 0, rstd[0][r], 0, 0);
      }
    }
    (void)from_half;
    return;
  }
  // Backward: dx (possibly in place on dy), and the per-block sums.
  const bool saved = c.rstd;
  std::unique_ptr<float[]> s_rstd, s_mean;
  if (saved) {
    s_rstd.reset(new float[c.rows == 0 ? 1 : c.rows]);
    s_mean.reset(ln ? new float[c.rows == 0 ? 1 : c.rows] : nullptr);
    for (size_t r = 0; r < c.rows; ++r) {
      double ss = 0, sum = 0;
      for (size_t i = 0; i < c.dim; ++i) {
        const double v = to_float(x0[r * c.dim + i], from_half);
        ss += v * v;
        sum += v;
      }
      const double m = ln ? sum / static_cast<double>(c.dim) : 0.0;
      double var = 0;
      for (size_t i = 0; i < c.dim; ++i) {
        const double v = to_float(x0[r * c.dim + i], from_half) - m;
        var += v * v;
      }
      s_rstd[r] = static_cast<float>(1.0 / std::sqrt((ln ? var : ss) / static_cast<double>(c.dim) + c.eps));
      if (ln) s_mean[r] = static_cast<float>(m);
    }
  }
  std::unique_ptr<H[]> dx[2];
  std::unique_ptr<double[]> dw[2], db[2];
  for (int r = 0; r < 2; ++r) {
    std::unique_ptr<H[]> dy_run = c.in_place ? copy_of(other0.get(), n) : nullptr;
    dw[r].reset(new double[c.dim]);
    db[r].reset(new double[c.dim]);
    rmsnorm::BackwardArgs<H, W> a;
    a.dy = c.in_place ? dy_run.get() : other.get();
    a.x = x.get();
    a.weight = w.get();
    a.rstd = s_rstd.get();
    a.mean = s_mean.get();
    if (c.in_place) {
      dx[r] = std::move(dy_run);
    } else {
      dx[r].reset(new H[n == 0 ? 1 : n]);
    }
    a.dx = dx[r].get();
    a.rows = c.rows;
    a.dim = c.dim;
    dense_layout(a, c.dim);
    a.k = ln ? c.dim : c.k;
    a.eps = c.eps;
    a.offset = ln ? 0.0 : c.offset;
    const auto kernel = ln ? ops.layer_norm_backward : ops.rms_norm_backward;
    if (c.rows == 0) continue;
    if (r == 0) {
      kernel(a, 0, c.rows, dw[r].get(), db[r].get());
    } else {
      std::unique_ptr<double[]> dw2(new double[c.dim]), db2(new double[c.dim]);
      const size_t s = c.split == 0 ? 1 : c.split;
      kernel(a, 0, s, dw[r].get(), db[r].get());
      if (s < c.rows) kernel(a, s, c.rows, dw2.get(), db2.get());
    }
  }
  if (c.rows == 0) return;
  if (!same_bits(dx[0].get(), dx[1].get(), n))
    die("half backward: rows split in two pieces give another dx", name, 0, 0, 0, 0, 0);
  if (!same_bits(x.get(), x0.get(), n) || (!c.in_place && !same_bits(other.get(), other0.get(), n))) {
    die("half backward wrote an input", name, 0, 0, 0, 0, 0);
  }
}

template <typename T>
void run_all(const Call& c, const uint8_t* data, size_t size, size_t header) {
  const rmsnorm::KernelTable* tables[rmsnorm::kMaxTables];
  const int count = rmsnorm::supported_tables(tables);
  for (int t = 0; t < count; ++t) {
    // Every table decodes the same values from the same bytes.
    FuzzedDataProvider in(data + header, size - header);
    const rmsnorm::OpTable<T, T>& ops = sizeof(T) == 4
                                            ? reinterpret_cast<const rmsnorm::OpTable<T, T>&>(tables[t]->f32)
                                            : reinterpret_cast<const rmsnorm::OpTable<T, T>&>(tables[t]->f64);
    if (c.op <= 2) {
      check_forward<T>(c, *tables[t], ops, in);
    } else {
      check_backward<T>(c, *tables[t], ops, in);
    }
  }
}

// The half tables: bfloat16 or float16 data, with parameters of the data type or float32.
void run_half(const Call& c, int which, const uint8_t* data, size_t size, size_t header) {
  const rmsnorm::KernelTable* tables[rmsnorm::kMaxTables];
  const int count = rmsnorm::supported_tables(tables);
  for (int t = 0; t < count; ++t) {
    FuzzedDataProvider in(data + header, size - header);
    const rmsnorm::KernelTable& k = *tables[t];
    const rmsnorm::ConvertTable& cv = k.convert;
    switch (which) {
      case 0: check_half(c, k.isa, k.bf16, cv.to_bf16, cv.from_bf16, in); break;
      case 1: check_half(c, k.isa, k.bf16_w32, cv.to_bf16, cv.from_bf16, in); break;
      case 2: check_half(c, k.isa, k.f16, cv.to_f16, cv.from_f16, in); break;
      default: check_half(c, k.isa, k.f16_w32, cv.to_f16, cv.from_f16, in); break;
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  constexpr size_t kHeader = 16;
  if (size < kHeader) return 0;
  FuzzedDataProvider h(data, kHeader);
  Call c{};
  c.op = h.ConsumeIntegralInRange<int>(0, 4);
  const uint8_t type = h.ConsumeIntegral<uint8_t>();  // even: float32; 1 mod 4: float64; else a half table
  const bool f64 = (type & 3) == 1;
  const bool half = (type & 3) == 3;
  // Shapes: mostly short rows (every tail length of every vector width), sometimes past the 512-value blocks of
  // the float32 sum of squares and the 4-row groups of the backward passes.
  const uint8_t shape = h.ConsumeIntegral<uint8_t>();
  c.dim = (shape & 0x80) ? 1 + h.ConsumeIntegralInRange<size_t>(0, 1199) : 1 + (shape & 0x7f);
  c.rows = h.ConsumeIntegralInRange<size_t>(0, 9);
  const uint8_t flags = h.ConsumeIntegral<uint8_t>();
  c.weight = flags & 1;
  c.bias = flags & 2;
  c.rstd = flags & 4;
  c.mean = flags & 8;
  c.in_place = flags & 16;
  c.accumulate = flags & 32;
  const uint16_t p = h.ConsumeIntegral<uint16_t>();
  c.partial = (flags & 64) ? (static_cast<double>(p) + 1.0) / 65536.0 : 1.0;
  const double kd = std::ceil(c.partial * static_cast<double>(c.dim));
  c.k = kd < 1 ? 1 : (kd > static_cast<double>(c.dim) ? c.dim : static_cast<size_t>(kd));
  const uint8_t e = h.ConsumeIntegral<uint8_t>();
  static const double kEps[] = {1e-5, 0.0, 1e-12, 1e-6, 0.5, 1.0, 1e30, 1e300, 5e-324, 1e-300};
  c.eps = kEps[e % 10];
  const bool backward = c.op >= 3;
  if (backward && c.eps < 1e-6) c.eps = 1e-5;  // all-zero rows of moderate data must keep a finite rstd
  if (backward && c.eps > 1) c.eps = 1;
  // offset: a value of the element type (binding.cc passes a double, the kernels round it to T), given only
  // with a weight, as the binding requires.
  const int16_t o = h.ConsumeIntegral<int16_t>();
  c.offset = c.weight && (flags & 128) ? static_cast<double>(o) / 64.0 : 0.0;
  c.split = c.rows ? h.ConsumeIntegralInRange<size_t>(0, c.rows) : 0;
  if (half) {
    run_half(c, (type >> 2) & 3, data, size, kHeader);
  } else if (f64) {
    run_all<double>(c, data, size, kHeader);
  } else {
    run_all<float>(c, data, size, kHeader);
  }
  return 0;
}
