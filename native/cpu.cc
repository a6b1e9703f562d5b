#include "cpu.h"

#include <cstring>

#if defined(__x86_64__) || defined(_M_X64)
#include <cpuid.h>
#endif

namespace rmsnorm {

namespace {

#if defined(__x86_64__) || defined(_M_X64)

struct X86Features {
  bool avx2 = false;        // AVX2 + FMA + F16C, with the OS saving YMM state
  bool avx512 = false;      // AVX-512 F/BW/DQ/VL, with the OS saving opmask and ZMM state
  bool avx512bf16 = false;  // and AVX512_BF16
};

// XGETBV reads which register files the OS saves on a context switch. Without that, an AVX instruction can
// run on a CPU that has it and still corrupt state, so CPUID alone is not enough.
unsigned long long xgetbv0() {
  unsigned eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<unsigned long long>(edx) << 32) | eax;
}

X86Features detect_x86() {
  X86Features f;
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool osxsave = c & (1u << 27), avx = c & (1u << 28), fma = c & (1u << 12), f16c = c & (1u << 29);
  if (!osxsave || !avx) return f;
  const unsigned long long xcr0 = xgetbv0();
  const bool ymm_state = (xcr0 & 0x6) == 0x6;    // SSE + AVX
  const bool zmm_state = (xcr0 & 0xE6) == 0xE6;  // + opmask, ZMM_Hi256, Hi16_ZMM
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return f;
  const unsigned max_subleaf = a;
  const bool avx2 = b & (1u << 5);
  const bool avx512f = b & (1u << 16), avx512dq = b & (1u << 17), avx512bw = b & (1u << 30), avx512vl = b & (1u << 31);
  f.avx2 = ymm_state && avx2 && fma && f16c;
  f.avx512 = f.avx2 && zmm_state && avx512f && avx512dq && avx512bw && avx512vl;
  if (f.avx512 && max_subleaf >= 1 && __get_cpuid_count(7, 1, &a, &b, &c, &d)) f.avx512bf16 = a & (1u << 5);
  return f;
}

const X86Features& features() {
  static const X86Features f = detect_x86();  // thread-safe one-time init
  return f;
}

#endif

int isa_rank(const char* name) {
  if (std::strcmp(name, "scalar") == 0) return 0;
#if defined(__x86_64__) || defined(_M_X64)
  if (std::strcmp(name, "avx2") == 0) return 1;
  if (std::strcmp(name, "avx512") == 0) return 2;
  if (std::strcmp(name, "avx512bf16") == 0) return 3;
#endif
#if defined(__aarch64__) || defined(_M_ARM64)
  if (std::strcmp(name, "neon") == 0) return 1;
#endif
  return -1;
}

}  // namespace

int supported_tables(const KernelTable* out[kMaxTables]) {
  int n = 0;
#if defined(__x86_64__) || defined(_M_X64)
  if (features().avx512bf16) out[n++] = &kernel_table_avx512bf16;
  if (features().avx512) out[n++] = &kernel_table_avx512;
  if (features().avx2) out[n++] = &kernel_table_avx2;
#endif
#if defined(__aarch64__) || defined(_M_ARM64)
  out[n++] = &kernel_table_neon;  // Advanced SIMD is part of the AArch64 baseline
#endif
  out[n++] = &kernel_table_scalar;
  return n;
}

const KernelTable* select_table(const char* cap) {
  const int limit = isa_rank(cap);
  if (limit < 0) return nullptr;
  const KernelTable* tables[kMaxTables];
  const int n = supported_tables(tables);
  for (int i = 0; i < n; ++i) {
    if (isa_rank(tables[i]->isa) <= limit) return tables[i];
  }
  return &kernel_table_scalar;
}

}  // namespace rmsnorm
