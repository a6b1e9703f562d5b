// The two passes of the forward kernel timed alone, in cache, for float32, bfloat16 and float16 rows: where the
// time of a half-precision call goes when it is bound by the core rather than by memory (docs/performance.md,
// "Limits measured"). Built against the AVX2 kernel source itself:
//
//   g++ -O3 -std=c++17 -ffp-contract=off -fno-math-errno -mavx2 -mfma -mf16c -Inative -Inative/kernels \
//       bench/native/passes.cc -o /tmp/passes && /tmp/passes
//
// Prints ns per value: the sum of squares (pass 1) and the scaled output pass (pass 2), best of 2000 runs over
// 4 rows x 4096 (in L2).
#define RMSNORM_TARGET_AVX2 1
#include <chrono>
#include <cmath>
#include <cstdio>
#include <vector>

#include "../../native/kernels/forward.cc"

namespace {

template <class F>
double best_ns(F f) {
  double best = 1e300;
  for (int r = 0; r < 2000; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    const double t = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
    if (t < best) best = t;
  }
  return best;
}

volatile double sink = 0;

template <typename T, typename W = float>
void passes(const char* name, const std::vector<float>& values) {
  constexpr size_t kDim = 4096, kRows = 4, kN = kDim * kRows;
  std::vector<T> x(kN), y(kN);
  for (size_t i = 0; i < kN; ++i) x[i] = from_double<T>(values[i]);
  const std::vector<W> w(kDim, from_double<W>(1.1));
  const double p1 = best_ns([&] {
    double s = 0;
    for (size_t r = 0; r < kRows; ++r) s += sum_squares_row(x.data() + r * kDim, kDim);
    sink = s;
  });
  const double p2 = best_ns([&] {
    for (size_t r = 0; r < kRows; ++r) {
      scale_row<T, W, false, kWeightTerm>(x.data() + r * kDim, y.data() + r * kDim, w.data(), nullptr, 0.0f, 0.0f, 0.7f,
                                          0.0f, kDim, false, nullptr);
    }
  });
  std::printf("%-27s pass 1 %.3f ns/value, pass 2 %.3f ns/value\n", name, p1 / kN, p2 / kN);
}

}  // namespace

int main() {
  std::vector<float> values(4096 * 4);
  for (size_t i = 0; i < values.size(); ++i) values[i] = static_cast<float>(std::sin(i * 0.37) * 2);
  passes<float>("float32", values);
  passes<rmsnorm::bf16_t>("bfloat16", values);
  passes<rmsnorm::bf16_t, rmsnorm::bf16_t>("bfloat16 (bfloat16 weight)", values);
  passes<rmsnorm::f16_t>("float16", values);
  passes<rmsnorm::f16_t, rmsnorm::f16_t>("float16 (float16 weight)", values);
}
