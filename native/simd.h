// A deliberately small vector abstraction: just what the normalization kernels need.
//
// The kernel files (native/kernels/*.cc) are compiled once per instruction set, each time with one RMSNORM_TARGET_*
// macro and that target's compiler flags (see CMakeLists.txt). This header turns the macro into two types, Vec<float>
// and Vec<double>, with the same static interface on every target:
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
#include <type_traits>

#include "kernels.h"

// The AVX-512 target with AVX512_BF16 (Zen 4, Sapphire Rapids, Cooper Lake): everything of the AVX-512 target,
// and bfloat16 outputs rounded by VCVTNEPS2BF16.
#if defined(RMSNORM_TARGET_AVX512BF16) && !defined(RMSNORM_TARGET_AVX512)
#define RMSNORM_TARGET_AVX512
#endif

#if defined(RMSNORM_TARGET_AVX512) || defined(RMSNORM_TARGET_AVX2)
#include <immintrin.h>
#elif defined(RMSNORM_TARGET_NEON)
#include <arm_neon.h>
#elif !defined(RMSNORM_TARGET_SCALAR)
#error "the kernel files must be compiled with one RMSNORM_TARGET_* macro"
#endif

namespace {

using rmsnorm::bf16_t;
using rmsnorm::f16_t;

inline float bits_to_f32(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}
inline uint32_t f32_to_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

// Scalar conversion rules, the reference every vector path matches bit for bit: round to nearest even, NaN
// stays NaN (quieted), overflow goes to infinity (float16), subnormals are kept.
inline float bf16_to_f32(uint16_t h) { return bits_to_f32(static_cast<uint32_t>(h) << 16); }
inline uint16_t f32_to_bf16(float f) {
  const uint32_t u = f32_to_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);  // NaN: keep sign, quiet
  return static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
inline float f16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
  if (exp == 0x1f) return bits_to_f32(sign | 0x7f800000u | (man << 13));  // inf, NaN (payload kept)
  if (exp != 0) return bits_to_f32(sign | ((exp + 112) << 23) | (man << 13));
  if (man == 0) return bits_to_f32(sign);
  // Subnormal: man * 2^-24, exact in float32.
  const float v = static_cast<float>(man) * 5.9604644775390625e-8f;
  return sign ? -v : v;
}
inline uint16_t f32_to_f16(float f) {
  const uint32_t u = f32_to_bits(f);
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  const uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u | ((a >> 13) & 0x3ffu));  // NaN, quiet
  if (a >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // rounds past 65504: infinity
  if (a >= 0x38800000u) {                                              // normal float16
    const uint32_t r = a - 0x38000000u;                                // rebias exponent 127 -> 15
    return static_cast<uint16_t>(sign | ((r + 0xfffu + ((r >> 13) & 1u)) >> 13));
  }
  // Subnormal float16 (or zero): round a * 2^24 to an integer, ties to even. a < 2^-14 here, so the product
  // is exact in float32 and below 2^10.
  const float scaled = bits_to_f32(a) * 16777216.0f;
  uint32_t q = static_cast<uint32_t>(scaled);
  const float rest = scaled - static_cast<float>(q);
  if (rest > 0.5f || (rest == 0.5f && (q & 1u))) ++q;
  return static_cast<uint16_t>(sign | q);
}

template <typename T>
struct Vec;

#if defined(RMSNORM_TARGET_AVX512)

inline __mmask16 mask16(size_t n) { return static_cast<__mmask16>((1u << n) - 1u); }
inline __mmask8 mask8(size_t n) { return static_cast<__mmask8>((1u << n) - 1u); }

// Keeps a narrowed vector in a register. Without this GCC folds "narrow, then masked store" into one
// memory-destination VPMOVDW/VCVTPS2PH with a mask, which Zen 4 runs as a long microcoded sequence (it took a
// quarter of the bfloat16 output pass's time on the masked head and tail of each row).
inline __m256i in_register(__m256i v) {
  asm("" : "+v"(v));
  return v;
}

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
  static void stream(float* p, R v) { _mm512_stream_ps(p, v); }  // p aligned to 64 bytes
  static R add(R a, R b) { return _mm512_add_ps(a, b); }
  static R sub(R a, R b) { return _mm512_sub_ps(a, b); }
  static R mul(R a, R b) { return _mm512_mul_ps(a, b); }
  static R fma(R a, R b, R c) { return _mm512_fmadd_ps(a, b, c); }
  static float sum(R v) { return _mm512_reduce_add_ps(v); }

  // bfloat16: widen by shifting the bits up; narrow by integer round-to-nearest-even (exact for subnormals,
  // which the AVX512_BF16 conversion would flush to zero).
  static R load(const bf16_t* p) { return widen_bf16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))); }
  static R loadn(const bf16_t* p, size_t n) { return widen_bf16(_mm256_maskz_loadu_epi16(mask16(n), p)); }
  static void store(bf16_t* p, R v) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), in_register(narrow_bf16(v))); }
  static void storen(bf16_t* p, R v, size_t n) { _mm256_mask_storeu_epi16(p, mask16(n), in_register(narrow_bf16(v))); }
  static void stream(bf16_t* p, R v) { _mm256_stream_si256(reinterpret_cast<__m256i*>(p), narrow_bf16(v)); }
  static R round_to(const bf16_t*, R v) { return _mm512_castsi512_ps(_mm512_slli_epi32(bf16_bits(v), 16)); }
  // float16 through the F16C-style conversions of AVX512F (round to nearest even, IEEE subnormals and NaN).
  static R load(const f16_t* p) { return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))); }
  static R loadn(const f16_t* p, size_t n) { return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask16(n), p)); }
  static void store(f16_t* p, R v) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), in_register(narrow_f16(v))); }
  static void storen(f16_t* p, R v, size_t n) { _mm256_mask_storeu_epi16(p, mask16(n), in_register(narrow_f16(v))); }
  static void stream(f16_t* p, R v) { _mm256_stream_si256(reinterpret_cast<__m256i*>(p), narrow_f16(v)); }
  static R round_to(const f16_t*, R v) { return _mm512_cvtph_ps(narrow_f16(v)); }

 private:
  static R widen_bf16(__m256i h) { return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16)); }
  static __m256i narrow_f16(R v) { return _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  // Sixteen floats rounded to bfloat16 (nearest even; NaN kept, made quiet; subnormals exact).
  static __m256i narrow_bf16(R v) {
#if defined(RMSNORM_TARGET_AVX512BF16)
    // VCVTNEPS2BF16 rounds the same way in one instruction, but flushes subnormal inputs to zero: a vector
    // holding one (rare) takes the integer path instead.
    if (__builtin_expect(_mm512_fpclass_ps_mask(v, 0x20) == 0, 1))
      return reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(v));
#endif
    return _mm512_cvtepi32_epi16(bf16_bits(v));
  }
  // The bfloat16 bits of each lane, in the low 16 bits of a 32-bit lane.
  static __m512i bf16_bits(R v) {
    const __m512i u = _mm512_castps_si512(v);
    const __m512i hi = _mm512_srli_epi32(u, 16);
    const __m512i rounded = _mm512_srli_epi32(
        _mm512_add_epi32(u, _mm512_add_epi32(_mm512_set1_epi32(0x7fff), _mm512_and_si512(hi, _mm512_set1_epi32(1)))),
        16);
    const __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    return _mm512_mask_or_epi32(rounded, nan, hi, _mm512_set1_epi32(0x40));
  }
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
  // Half data widened straight to double (LayerNorm's moments, the exact paths): exact.
  static R load(const bf16_t* p) { return from_bf16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
  static R loadn(const bf16_t* p, size_t n) { return from_bf16(_mm_maskz_loadu_epi16(mask8(n), p)); }
  static R load(const f16_t* p) {
    return _mm512_cvtps_pd(_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
  }
  static R loadn(const f16_t* p, size_t n) {
    return _mm512_cvtps_pd(_mm256_cvtph_ps(_mm_maskz_loadu_epi16(mask8(n), p)));
  }
  static void store(double* p, R v) { _mm512_storeu_pd(p, v); }
  static void storen(double* p, R v, size_t n) { _mm512_mask_storeu_pd(p, mask8(n), v); }
  static void stream(double* p, R v) { _mm512_stream_pd(p, v); }
  static void store(float* p, R v) { _mm256_storeu_ps(p, _mm512_cvtpd_ps(v)); }
  static void storen(float* p, R v, size_t n) { _mm256_mask_storeu_ps(p, mask8(n), _mm512_cvtpd_ps(v)); }
  static R add(R a, R b) { return _mm512_add_pd(a, b); }
  static R sub(R a, R b) { return _mm512_sub_pd(a, b); }
  static R mul(R a, R b) { return _mm512_mul_pd(a, b); }
  static R fma(R a, R b, R c) { return _mm512_fmadd_pd(a, b, c); }
  static double sum(R v) { return _mm512_reduce_add_pd(v); }

 private:
  static R from_bf16(__m128i h) {
    return _mm512_cvtps_pd(_mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16)));
  }
};

#elif defined(RMSNORM_TARGET_AVX2)

// Lane i of the mask is all ones when i < n (maskload/maskstore read the top bit of each lane).
inline __m256i mask_epi32(size_t n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
inline __m256i mask_epi64(size_t n) {
  return _mm256_cmpgt_epi64(_mm256_set1_epi64x(static_cast<long long>(n)), _mm256_setr_epi64x(0, 1, 2, 3));
}

// The first n <= 8 half values at p in a register, the rest zero (AVX2 has no 16-bit masked loads).
inline __m128i load_tail(const void* p, size_t n) {
  uint16_t t[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  std::memcpy(t, p, n * 2);
  return _mm_loadu_si128(reinterpret_cast<const __m128i*>(t));
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
  static void stream(float* p, R v) { _mm256_stream_ps(p, v); }  // p aligned to 32 bytes
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

  // bfloat16 by integer round-to-nearest-even; float16 through F16C. AVX2 has no 16-bit masked moves, so
  // tails go through a small buffer.
  static R load(const bf16_t* p) { return widen_bf16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
  static R loadn(const bf16_t* p, size_t n) { return widen_bf16(load_tail(p, n)); }
  static void store(bf16_t* p, R v) { _mm_storeu_si128(reinterpret_cast<__m128i*>(p), pack(bf16_bits(v))); }
  static void storen(bf16_t* p, R v, size_t n) { store_tail(p, pack(bf16_bits(v)), n); }
  static void stream(bf16_t* p, R v) { _mm_stream_si128(reinterpret_cast<__m128i*>(p), pack(bf16_bits(v))); }
  static R round_to(const bf16_t*, R v) { return _mm256_castsi256_ps(_mm256_slli_epi32(bf16_bits(v), 16)); }
  static R load(const f16_t* p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
  static R loadn(const f16_t* p, size_t n) { return _mm256_cvtph_ps(load_tail(p, n)); }
  static void store(f16_t* p, R v) { _mm_storeu_si128(reinterpret_cast<__m128i*>(p), narrow_f16(v)); }
  static void storen(f16_t* p, R v, size_t n) { store_tail(p, narrow_f16(v), n); }
  static void stream(f16_t* p, R v) { _mm_stream_si128(reinterpret_cast<__m128i*>(p), narrow_f16(v)); }
  static R round_to(const f16_t*, R v) { return _mm256_cvtph_ps(narrow_f16(v)); }
  // Two vectors narrowed into one 32-byte store (p + 8 holds b): one pack and one permute for sixteen values,
  // where narrowing each alone takes a pack and a lane extract.
  static void store2(bf16_t* p, R a, R b) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), pack2(a, b)); }
  static void stream2(bf16_t* p, R a, R b) { _mm256_stream_si256(reinterpret_cast<__m256i*>(p), pack2(a, b)); }
  static void store2(f16_t* p, R a, R b) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), _mm256_set_m128i(narrow_f16(b), narrow_f16(a)));
  }
  static void stream2(f16_t* p, R a, R b) {
    _mm256_stream_si256(reinterpret_cast<__m256i*>(p), _mm256_set_m128i(narrow_f16(b), narrow_f16(a)));
  }
  // Sixteen bfloat16 values as two vectors in even/odd order (see PairOrder): one 32-byte load, and each
  // 32-bit lane's two halves widened in place by a shift and a mask, where widening in element order takes two
  // zero-extensions and two shifts. The store is the inverse: the two rounded vectors merged lane by lane, with
  // no pack and no cross-lane permute.
  static void load_eo(const bf16_t* p, R& a, R& b) {
    const __m256i u = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    a = _mm256_castsi256_ps(_mm256_slli_epi32(u, 16));
    b = _mm256_castsi256_ps(_mm256_and_si256(u, _mm256_set1_epi32(static_cast<int>(0xffff0000u))));
  }
  // Sixteen float32 values in the same order (two in-lane shuffles and two qword permutes: prepare_params).
  static void load_eo(const float* p, R& a, R& b) {
    const R lo = _mm256_loadu_ps(p), hi = _mm256_loadu_ps(p + 8);
    a = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(lo, hi, 0x88)), 0xD8));
    b = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(lo, hi, 0xDD)), 0xD8));
  }
  // Needs values computed from bfloat16 operands only (and finite scalars): a NaN among them then carries a
  // payload widened from bfloat16 (low 16 bits zero) or the default NaN, which the rounding keeps exactly, so
  // no NaN test is needed (a float32 NaN with low payload bits set could carry into the exponent).
  static void store_eo(bf16_t* p, R a, R b) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), merge_eo(a, b)); }
  // The same store, leaving a and b rounded to bfloat16 (as float32) for the caller's own use.
  static void store_eo_rounded(bf16_t* p, R& a, R& b) {
    const __m256i ra = bf16_rounded_high(a), rb = bf16_rounded_high(b);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), merge_rounded(ra, rb));
    const __m256i high = _mm256_set1_epi32(static_cast<int>(0xffff0000u));
    a = _mm256_castsi256_ps(_mm256_and_si256(ra, high));
    b = _mm256_castsi256_ps(_mm256_and_si256(rb, high));
  }
  static void stream_eo(bf16_t* p, R a, R b) { _mm256_stream_si256(reinterpret_cast<__m256i*>(p), merge_eo(a, b)); }

 private:
  static __m256i merge_eo(R a, R b) { return merge_rounded(bf16_rounded_high(a), bf16_rounded_high(b)); }
  // a's rounded bits moved to the low half of each lane, b's (already in the high half) kept there.
  static __m256i merge_rounded(__m256i ra, __m256i rb) {
    return _mm256_blend_epi16(_mm256_srli_epi32(ra, 16), rb, 0xAA);
  }
  static __m256i pack2(R a, R b) {
    // NaN is rare: one compare covers both vectors, and only a pair holding one takes the NaN-keeping path.
    const __m256 nan = _mm256_cmp_ps(a, b, _CMP_UNORD_Q);
    const __m256i packed = __builtin_expect(_mm256_testz_ps(nan, nan), 1)
                               ? _mm256_packus_epi32(bf16_rounded(a), bf16_rounded(b))
                               : _mm256_packus_epi32(bf16_bits(a), bf16_bits(b));
    return _mm256_permute4x64_epi64(packed, 0xD8);
  }
  template <typename H>
  static void store_tail(H* p, __m128i v, size_t n) {
    uint16_t t[8];
    _mm_storeu_si128(reinterpret_cast<__m128i*>(t), v);
    std::memcpy(p, t, n * 2);
  }
  static R widen_bf16(__m128i h) { return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16)); }
  static __m128i narrow_f16(R v) { return _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static __m128i pack(__m256i lanes) {
    return _mm_packus_epi32(_mm256_castsi256_si128(lanes), _mm256_extracti128_si256(lanes, 1));
  }
  // Round to nearest even, in the low 16 bits of each lane; right for every lane but NaN (whose payload may
  // carry into the exponent or the sign).
  static __m256i bf16_rounded(R v) { return _mm256_srli_epi32(bf16_rounded_high(v), 16); }
  // The same in the high 16 bits of each lane (the low 16 bits are left over).
  static __m256i bf16_rounded_high(R v) {
    const __m256i u = _mm256_castps_si256(v);
    const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
    return _mm256_add_epi32(u, _mm256_add_epi32(_mm256_set1_epi32(0x7fff), lsb));
  }
  static __m256i bf16_bits(R v) {
    const __m256i quiet = _mm256_or_si256(_mm256_srli_epi32(_mm256_castps_si256(v), 16), _mm256_set1_epi32(0x40));
    return _mm256_blendv_epi8(bf16_rounded(v), quiet, _mm256_castps_si256(_mm256_cmp_ps(v, v, _CMP_UNORD_Q)));
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
  // Half data widened straight to double (LayerNorm's moments, the exact paths): exact.
  static R load(const bf16_t* p) { return from_bf16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))); }
  static R loadn(const bf16_t* p, size_t n) { return from_bf16(load_tail(p, n)); }
  static R load(const f16_t* p) {
    return _mm256_cvtps_pd(_mm_cvtph_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
  }
  static R loadn(const f16_t* p, size_t n) { return _mm256_cvtps_pd(_mm_cvtph_ps(load_tail(p, n))); }
  static void store(double* p, R v) { _mm256_storeu_pd(p, v); }
  static void storen(double* p, R v, size_t n) { _mm256_maskstore_pd(p, mask_epi64(n), v); }
  static void stream(double* p, R v) { _mm256_stream_pd(p, v); }
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

 private:
  static R from_bf16(__m128i h) { return _mm256_cvtps_pd(_mm_castsi128_ps(_mm_slli_epi32(_mm_cvtepu16_epi32(h), 16))); }
};

#elif defined(RMSNORM_TARGET_NEON)

// NEON has no masked loads: tails go through a zeroed register-sized buffer on the stack.

// The first n <= 4 half values at p in a register, the rest zero.
inline uint16x4_t load_tail(const void* p, size_t n) {
  uint16_t t[4] = {0, 0, 0, 0};
  std::memcpy(t, p, n * 2);
  return vld1_u16(t);
}

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

  static R load(const bf16_t* p) { return widen_bf16(vld1_u16(reinterpret_cast<const uint16_t*>(p))); }
  static R loadn(const bf16_t* p, size_t n) { return widen_bf16(load_tail(p, n)); }
  static void store(bf16_t* p, R v) { vst1_u16(reinterpret_cast<uint16_t*>(p), vmovn_u32(bf16_bits(v))); }
  static void storen(bf16_t* p, R v, size_t n) { store_tail(p, vmovn_u32(bf16_bits(v)), n); }
  static R round_to(const bf16_t*, R v) { return vreinterpretq_f32_u32(vshlq_n_u32(bf16_bits(v), 16)); }
  static R load(const f16_t* p) {
    return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(reinterpret_cast<const uint16_t*>(p))));
  }
  static R loadn(const f16_t* p, size_t n) { return vcvt_f32_f16(vreinterpret_f16_u16(load_tail(p, n))); }
  static void store(f16_t* p, R v) { vst1_u16(reinterpret_cast<uint16_t*>(p), vreinterpret_u16_f16(vcvt_f16_f32(v))); }
  static void storen(f16_t* p, R v, size_t n) { store_tail(p, vreinterpret_u16_f16(vcvt_f16_f32(v)), n); }
  static R round_to(const f16_t*, R v) { return vcvt_f32_f16(vcvt_f16_f32(v)); }

 private:
  template <typename H>
  static void store_tail(H* p, uint16x4_t v, size_t n) {
    uint16_t t[4];
    vst1_u16(t, v);
    std::memcpy(p, t, n * 2);
  }
  static R widen_bf16(uint16x4_t h) { return vreinterpretq_f32_u32(vshll_n_u16(h, 16)); }
  static uint32x4_t bf16_bits(R v) {
    const uint32x4_t u = vreinterpretq_u32_f32(v);
    const uint32x4_t hi = vshrq_n_u32(u, 16);
    const uint32x4_t rounded =
        vshrq_n_u32(vaddq_u32(u, vaddq_u32(vdupq_n_u32(0x7fff), vandq_u32(hi, vdupq_n_u32(1)))), 16);
    const uint32x4_t quiet = vorrq_u32(hi, vdupq_n_u32(0x40));
    const uint32x4_t is_nan = vmvnq_u32(vceqq_f32(v, v));
    return vbslq_u32(is_nan, quiet, rounded);
  }
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
  // Half data widened straight to double (LayerNorm's moments, the exact paths): exact.
  static R load(const bf16_t* p) { return loadn(p, N); }
  static R loadn(const bf16_t* p, size_t n) {
    return vcvt_f64_f32(vget_low_f32(vreinterpretq_f32_u32(vshll_n_u16(load_tail(p, n), 16))));
  }
  static R load(const f16_t* p) { return loadn(p, N); }
  static R loadn(const f16_t* p, size_t n) {
    return vcvt_f64_f32(vget_low_f32(vcvt_f32_f16(vreinterpret_f16_u16(load_tail(p, n)))));
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
struct Vec<float> : ScalarVec<float> {
  using ScalarVec<float>::load;
  using ScalarVec<float>::loadn;
  using ScalarVec<float>::store;
  using ScalarVec<float>::storen;
  static R load(const bf16_t* p) { return bf16_to_f32(p->bits); }
  static R loadn(const bf16_t* p, size_t n) { return n ? bf16_to_f32(p->bits) : 0.0f; }
  static void store(bf16_t* p, R v) { p->bits = f32_to_bf16(v); }
  static void storen(bf16_t* p, R v, size_t n) {
    if (n) p->bits = f32_to_bf16(v);
  }
  static R round_to(const bf16_t*, R v) { return bf16_to_f32(f32_to_bf16(v)); }
  static R load(const f16_t* p) { return f16_to_f32(p->bits); }
  static R loadn(const f16_t* p, size_t n) { return n ? f16_to_f32(p->bits) : 0.0f; }
  static void store(f16_t* p, R v) { p->bits = f32_to_f16(v); }
  static void storen(f16_t* p, R v, size_t n) {
    if (n) p->bits = f32_to_f16(v);
  }
  static R round_to(const f16_t*, R v) { return f16_to_f32(f32_to_f16(v)); }
};

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

// Non-temporal stores: written around the caches, for outputs too large to be read back from them soon. Only
// the x86 paths have them; everything else stores normally. stream_fence() orders them before
// the call's completion is published to another thread.
template <typename V, typename P, typename = void>
struct HasStream : std::false_type {};
template <typename V, typename P>
struct HasStream<V, P, decltype(V::stream(static_cast<P*>(nullptr), typename V::R{}))> : std::true_type {};

template <typename V, typename P>
inline void store_stream(P* p, typename V::R v) {
  if constexpr (HasStream<V, P>::value) {
    V::stream(p, v);
  } else {
    V::store(p, v);
  }
}

// Two consecutive vectors (p and p + V::N): in one store where the target narrows two at once (half data on
// AVX2), else two. stream_pair needs p aligned to the pair's width.
template <typename V, typename P, typename = void>
struct HasPair : std::false_type {};
template <typename V, typename P>
struct HasPair<V, P, decltype(V::store2(static_cast<P*>(nullptr), typename V::R{}, typename V::R{}))> : std::true_type {
};

// A pair's lanes may hold its 2 * V::N values in another order than element order where the target converts
// faster that way; every operand of an element-wise step is then loaded in the same order (load_pair), and
// store_pair puts each value back in its place, so the order never changes a result:
//   kNatural          a = p[0, N), b = p[N, 2N)
//   kEvenOdd          a = the even elements, b = the odd ones: bfloat16 data on AVX2 with bfloat16 parameters
//                     or none, where a 32-bit lane holds two values (float32 parameters would need a shuffle
//                     each, and their NaN payloads a NaN test: they keep the natural order)
//   kEvenOddPrepared  the same for the bfloat16 data, with float32 parameters already stored in that order
//                     in blocks of 2N values (forward.cc, prepare_params): loaded as they lie.
enum PairOrder : int { kNatural, kEvenOdd, kEvenOddPrepared };

// The order the kernels use for pairs of T data with parameters (weight, bias) of type W, if kParams.
template <typename T, typename W, bool kParams>
constexpr int pair_order() {
#if defined(RMSNORM_TARGET_AVX2) && !defined(RMSNORM_TARGET_AVX512)
  if (std::is_same<T, bf16_t>::value && (!kParams || std::is_same<W, bf16_t>::value)) return kEvenOdd;
#endif
  return kNatural;
}

template <typename V, int kOrder = kNatural, typename P>
inline void load_pair(const P* p, typename V::R& a, typename V::R& b) {
  if constexpr (kOrder == kNatural || (kOrder == kEvenOddPrepared && std::is_same<P, float>::value)) {
    a = V::load(p);
    b = V::load(p + V::N);
  } else {
    V::load_eo(p, a, b);
  }
}
template <typename V, int kOrder = kNatural, typename P>
inline void store_pair(P* p, typename V::R a, typename V::R b) {
  if constexpr (kOrder != kNatural) {
    V::store_eo(p, a, b);
  } else if constexpr (HasPair<V, P>::value) {
    V::store2(p, a, b);
  } else {
    V::store(p, a);
    V::store(p + V::N, b);
  }
}
// A pair of float32 values stored rounded to bfloat16 in kEvenOdd order, a and b left holding the stored values.
template <typename V, int kOrder, typename P>
inline void store_pair_rounded(P* p, typename V::R& a, typename V::R& b) {
  static_assert(kOrder == kEvenOdd, "the even/odd order only");
  V::store_eo_rounded(p, a, b);
}
template <typename V, int kOrder = kNatural, typename P>
inline void stream_pair(P* p, typename V::R a, typename V::R b) {
  if constexpr (kOrder != kNatural) {
    V::stream_eo(p, a, b);
  } else if constexpr (HasPair<V, P>::value) {
    V::stream2(p, a, b);
  } else {
    store_stream<V>(p, a);
    store_stream<V>(p + V::N, b);
  }
}

inline void stream_fence() {
#if defined(RMSNORM_TARGET_AVX512) || defined(RMSNORM_TARGET_AVX2)
  _mm_sfence();
#endif
}

// Half data widened straight to double (the rare exact paths only), one element at a time.
template <typename H>
inline float half_to_f32(H h);
template <>
inline float half_to_f32(bf16_t h) {
  return bf16_to_f32(h.bits);
}
template <>
inline float half_to_f32(f16_t h) {
  return f16_to_f32(h.bits);
}

template <typename H>
inline typename Vec<double>::R load_half_as_double(const H* p, size_t n) {
  float t[Vec<double>::N] = {};
  for (size_t i = 0; i < n; ++i) t[i] = half_to_f32(p[i]);
  return Vec<double>::load(t);
}

}  // namespace
