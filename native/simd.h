// A deliberately small vector abstraction: just what the normalization kernels need.
//
// kernels.cc is compiled once per instruction set, each time with one RMSNORM_TARGET_* macro and that
// target's compiler flags (see CMakeLists.txt). This header turns the macro into two types, Vec<float> and
// Vec<double>, with the same static interface on every target:
//
//   N                         lanes per register
//   zero(), set1(s)
//   load(p), store(p, v)      unaligned, full register
//   loadn(p, n), storen(p, v, n)   the first n < N lanes; lanes past n load as 0 and are never written
//   add, sub, mul, fma(a, b, c) = a * b + c (fused where the target has FMA), sum(v) (horizontal add)
//
// Vec<double> also loads float data widened to double (load(const float*), loadn(const float*, n)) and
// stores narrowed to float (store(float*, v), storen), so one templated double-precision loop serves float32
// and float64 rows alike.
//
// Everything lives in an anonymous namespace: each translation unit gets its own copy, so code compiled with
// AVX-512 flags can never be merged by the linker into code that runs on a CPU without it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#if defined(RMSNORM_TARGET_AVX512) || defined(RMSNORM_TARGET_AVX2)
#include <immintrin.h>
#elif defined(RMSNORM_TARGET_NEON)
#include <arm_neon.h>
#elif !defined(RMSNORM_TARGET_SCALAR)
#error "kernels.cc must be compiled with one RMSNORM_TARGET_* macro"
#endif

namespace {

template <typename T>
struct Vec;

#if defined(RMSNORM_TARGET_AVX512)

inline __mmask16 mask16(size_t n) { return static_cast<__mmask16>((1u << n) - 1u); }
inline __mmask8 mask8(size_t n) { return static_cast<__mmask8>((1u << n) - 1u); }

template <>
struct Vec<float> {
  using R = __m512;
  static constexpr size_t N = 16;
  static R zero() { return _mm512_setzero_ps(); }
  static R set1(float s) { return _mm512_set1_ps(s); }
  static R load(const float* p) { return _mm512_loadu_ps(p); }
  static R loadn(const float* p, size_t n) { return _mm512_maskz_loadu_ps(mask16(n), p); }
  static void store(float* p, R v) { _mm512_storeu_ps(p, v); }
  static void storen(float* p, R v, size_t n) { _mm512_mask_storeu_ps(p, mask16(n), v); }
  static R add(R a, R b) { return _mm512_add_ps(a, b); }
  static R sub(R a, R b) { return _mm512_sub_ps(a, b); }
  static R mul(R a, R b) { return _mm512_mul_ps(a, b); }
  static R fma(R a, R b, R c) { return _mm512_fmadd_ps(a, b, c); }
  static float sum(R v) { return _mm512_reduce_add_ps(v); }
};

template <>
struct Vec<double> {
  using R = __m512d;
  static constexpr size_t N = 8;
  static R zero() { return _mm512_setzero_pd(); }
  static R set1(double s) { return _mm512_set1_pd(s); }
  static R load(const double* p) { return _mm512_loadu_pd(p); }
  static R loadn(const double* p, size_t n) { return _mm512_maskz_loadu_pd(mask8(n), p); }
  static R load(const float* p) { return _mm512_cvtps_pd(_mm256_loadu_ps(p)); }
  static R loadn(const float* p, size_t n) { return _mm512_cvtps_pd(_mm256_maskz_loadu_ps(mask8(n), p)); }
  static void store(double* p, R v) { _mm512_storeu_pd(p, v); }
  static void storen(double* p, R v, size_t n) { _mm512_mask_storeu_pd(p, mask8(n), v); }
  static void store(float* p, R v) { _mm256_storeu_ps(p, _mm512_cvtpd_ps(v)); }
  static void storen(float* p, R v, size_t n) { _mm256_mask_storeu_ps(p, mask8(n), _mm512_cvtpd_ps(v)); }
  static R add(R a, R b) { return _mm512_add_pd(a, b); }
  static R sub(R a, R b) { return _mm512_sub_pd(a, b); }
  static R mul(R a, R b) { return _mm512_mul_pd(a, b); }
  static R fma(R a, R b, R c) { return _mm512_fmadd_pd(a, b, c); }
  static double sum(R v) { return _mm512_reduce_add_pd(v); }
};

#elif defined(RMSNORM_TARGET_AVX2)

// Lane i of the mask is all ones when i < n (maskload/maskstore read the top bit of each lane).
inline __m256i mask_epi32(size_t n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
inline __m256i mask_epi64(size_t n) {
  return _mm256_cmpgt_epi64(_mm256_set1_epi64x(static_cast<long long>(n)), _mm256_setr_epi64x(0, 1, 2, 3));
}

template <>
struct Vec<float> {
  using R = __m256;
  static constexpr size_t N = 8;
  static R zero() { return _mm256_setzero_ps(); }
  static R set1(float s) { return _mm256_set1_ps(s); }
  static R load(const float* p) { return _mm256_loadu_ps(p); }
  static R loadn(const float* p, size_t n) { return _mm256_maskload_ps(p, mask_epi32(n)); }
  static void store(float* p, R v) { _mm256_storeu_ps(p, v); }
  static void storen(float* p, R v, size_t n) { _mm256_maskstore_ps(p, mask_epi32(n), v); }
  static R add(R a, R b) { return _mm256_add_ps(a, b); }
  static R sub(R a, R b) { return _mm256_sub_ps(a, b); }
  static R mul(R a, R b) { return _mm256_mul_ps(a, b); }
  static R fma(R a, R b, R c) { return _mm256_fmadd_ps(a, b, c); }
  static float sum(R v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
};

template <>
struct Vec<double> {
  using R = __m256d;
  static constexpr size_t N = 4;
  static R zero() { return _mm256_setzero_pd(); }
  static R set1(double s) { return _mm256_set1_pd(s); }
  static R load(const double* p) { return _mm256_loadu_pd(p); }
  static R loadn(const double* p, size_t n) { return _mm256_maskload_pd(p, mask_epi64(n)); }
  static R load(const float* p) { return _mm256_cvtps_pd(_mm_loadu_ps(p)); }
  static R loadn(const float* p, size_t n) {
    return _mm256_cvtps_pd(_mm_maskload_ps(p, _mm256_castsi256_si128(mask_epi32(n))));
  }
  static void store(double* p, R v) { _mm256_storeu_pd(p, v); }
  static void storen(double* p, R v, size_t n) { _mm256_maskstore_pd(p, mask_epi64(n), v); }
  static void store(float* p, R v) { _mm_storeu_ps(p, _mm256_cvtpd_ps(v)); }
  static void storen(float* p, R v, size_t n) {
    _mm_maskstore_ps(p, _mm256_castsi256_si128(mask_epi32(n)), _mm256_cvtpd_ps(v));
  }
  static R add(R a, R b) { return _mm256_add_pd(a, b); }
  static R sub(R a, R b) { return _mm256_sub_pd(a, b); }
  static R mul(R a, R b) { return _mm256_mul_pd(a, b); }
  static R fma(R a, R b, R c) { return _mm256_fmadd_pd(a, b, c); }
  static double sum(R v) {
    __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
  }
};

#elif defined(RMSNORM_TARGET_NEON)

// NEON has no masked loads: tails go through a zeroed register-sized buffer on the stack.
template <>
struct Vec<float> {
  using R = float32x4_t;
  static constexpr size_t N = 4;
  static R zero() { return vdupq_n_f32(0.0f); }
  static R set1(float s) { return vdupq_n_f32(s); }
  static R load(const float* p) { return vld1q_f32(p); }
  static R loadn(const float* p, size_t n) {
    float t[N] = {0, 0, 0, 0};
    std::memcpy(t, p, n * sizeof(float));
    return vld1q_f32(t);
  }
  static void store(float* p, R v) { vst1q_f32(p, v); }
  static void storen(float* p, R v, size_t n) {
    float t[N];
    vst1q_f32(t, v);
    std::memcpy(p, t, n * sizeof(float));
  }
  static R add(R a, R b) { return vaddq_f32(a, b); }
  static R sub(R a, R b) { return vsubq_f32(a, b); }
  static R mul(R a, R b) { return vmulq_f32(a, b); }
  static R fma(R a, R b, R c) { return vfmaq_f32(c, a, b); }
  static float sum(R v) { return vaddvq_f32(v); }
};

template <>
struct Vec<double> {
  using R = float64x2_t;
  static constexpr size_t N = 2;
  static R zero() { return vdupq_n_f64(0.0); }
  static R set1(double s) { return vdupq_n_f64(s); }
  static R load(const double* p) { return vld1q_f64(p); }
  static R loadn(const double* p, size_t n) {
    double t[N] = {0, 0};
    std::memcpy(t, p, n * sizeof(double));
    return vld1q_f64(t);
  }
  static R load(const float* p) { return vcvt_f64_f32(vld1_f32(p)); }
  static R loadn(const float* p, size_t n) {
    float t[N] = {0, 0};
    std::memcpy(t, p, n * sizeof(float));
    return vcvt_f64_f32(vld1_f32(t));
  }
  static void store(double* p, R v) { vst1q_f64(p, v); }
  static void storen(double* p, R v, size_t n) {
    double t[N];
    vst1q_f64(t, v);
    std::memcpy(p, t, n * sizeof(double));
  }
  static void store(float* p, R v) { vst1_f32(p, vcvt_f32_f64(v)); }
  static void storen(float* p, R v, size_t n) {
    float t[N];
    vst1_f32(t, vcvt_f32_f64(v));
    std::memcpy(p, t, n * sizeof(float));
  }
  static R add(R a, R b) { return vaddq_f64(a, b); }
  static R sub(R a, R b) { return vsubq_f64(a, b); }
  static R mul(R a, R b) { return vmulq_f64(a, b); }
  static R fma(R a, R b, R c) { return vfmaq_f64(c, a, b); }
  static double sum(R v) { return vaddvq_f64(v); }
};

#else  // RMSNORM_TARGET_SCALAR: one lane, plain C++; builds for any CPU.

template <typename T>
struct ScalarVec {
  using R = T;
  static constexpr size_t N = 1;
  static R zero() { return T(0); }
  static R set1(T s) { return s; }
  static R load(const T* p) { return *p; }
  static R loadn(const T* p, size_t n) { return n ? *p : T(0); }
  static void store(T* p, R v) { *p = v; }
  static void storen(T* p, R v, size_t n) {
    if (n) *p = v;
  }
  static R add(R a, R b) { return a + b; }
  static R sub(R a, R b) { return a - b; }
  static R mul(R a, R b) { return a * b; }
  // Unfused on purpose: the baseline has no FMA instruction and a libm fma() call would be far slower.
  static R fma(R a, R b, R c) { return a * b + c; }
  static T sum(R v) { return v; }
};

template <>
struct Vec<float> : ScalarVec<float> {};

template <>
struct Vec<double> : ScalarVec<double> {
  using ScalarVec<double>::load;
  using ScalarVec<double>::loadn;
  static R load(const float* p) { return static_cast<double>(*p); }
  static R loadn(const float* p, size_t n) { return n ? static_cast<double>(*p) : 0.0; }
  using ScalarVec<double>::store;
  using ScalarVec<double>::storen;
  static void store(float* p, R v) { *p = static_cast<float>(v); }
  static void storen(float* p, R v, size_t n) {
    if (n) *p = static_cast<float>(v);
  }
};

#endif

}  // namespace
