// libFuzzer target for the native argument checks (native/args.h, the rules binding.cc applies to every call
// that reaches the addon). Each input is decoded into one call as binding.cc would read it: an op, an argument
// count, and for each argument what it was (a Float32Array, Float64Array or Uint16Array with a length and an address
// inside one of a few simulated ArrayBuffers, so views overlap in every way; another typed array; null or undefined;
// anything else; a detached zero-length view) and for the scalars a number taken bit for bit from the input,
// a boolean, or a value of another type; dtype and castMode are mostly valid, sometimes anything.
//
// It checks, under AddressSanitizer and UndefinedBehaviorSanitizer:
// - soundness: when check() accepts a call, every promise args.h makes the kernels holds (types, including
//   the half-precision rules: Uint16Array data with dtype 1 or 2, Float32Array statistics, parameters all
//   Float32Array or all Uint16Array; lengths: every array with rows holds its strided layout, the others have
//   dim or rows * heads entries; dim, eps, offset, partial, k, heads, headStride and the row strides in range;
//   no output sharing an element the call touches with another array except an exactly equal in-place view
//   with the same row stride; offset only with a weight);
// - agreement: check() accepts exactly the calls an independent, rule-by-rule reading of the contract accepts,
//   and rejects the others with the code of the first rule broken (ERR_INVALID_ARG_TYPE, ERR_OUT_OF_RANGE or
//   ERR_INVALID_ARG_VALUE), a RangeError exactly for ERR_OUT_OF_RANGE, and a message naming the argument.
#include <fuzzer/FuzzedDataProvider.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "../native/args.h"

namespace {

namespace args = rmsnorm::args;
using args::Type;

size_t width(Type t) { return t == Type::kF64 ? 8 : t == Type::kF32 ? 4 : 2; }

// Where a slot's accumulate, dtype and castMode scalars are.
bool has(const args::OpSpec& op, args::Scalar s) {
  for (args::Scalar t : op.scalars) {
    if (t == s) return true;
  }
  return false;
}
size_t accumulate_index(const args::OpSpec& op) {
  return 2 + (has(op, args::Scalar::kOffset) ? 1 : 0) + (has(op, args::Scalar::kPartial) ? 1 : 0);
}

// What kind of array a slot holds, from the contract: the same length as x is data; a rows-long slot, or a
// dim-long output, is a statistic; a dim-long input is a parameter.
bool is_data(const args::Slot& s) { return s.len == args::Len::kTotal; }
bool is_stat(const args::Slot& s) { return s.len == args::Len::kRows || (s.len == args::Len::kDim && s.output); }

// The layout scalars of an op, from the contract: rows, heads, headStride, then one row stride per array with
// rows in slot order, then addRmsNorm's residualScale.
size_t n_data(const args::OpSpec& op) {
  size_t k = 0;
  for (const args::Slot& s : op.slots) k += is_data(s) ? 1 : 0;
  return k;
}
bool has_residual_scale(const args::OpSpec& op) { return std::strcmp(op.name, "addRmsNorm") == 0; }

// Do rows [a, a + la) every s bytes (ra of them) and rows [b, b + lb) every t bytes (rb of them) share a byte?
// Row by row when there are few, else by the contract's closed form (rows of equal stride, or a single row,
// meet when some difference of row indexes k has -lb < b - a + k s < la; of unequal strides, when their
// extents meet).
bool rows_meet(uint64_t a, uint64_t ra, uint64_t s, uint64_t la, uint64_t b, uint64_t rb, uint64_t t, uint64_t lb) {
  if (ra == 0 || rb == 0 || la == 0 || lb == 0) return false;
  const uint64_t ea = (ra - 1) * s + la, eb = (rb - 1) * t + lb;
  if (a + ea <= b || b + eb <= a) return false;
  if (ra == 1) s = t;  // the stride of a single row does not matter
  if (rb == 1) t = s;
  if (s != t) return true;
  if (ra * rb <= 4096) {
    for (uint64_t i = 0; i < ra; ++i)
      for (uint64_t j = 0; j < rb; ++j) {
        const uint64_t x = a + i * s, y = b + j * t;
        if (x < y + lb && y < x + la) return true;
      }
    return false;
  }
  // d + k s grows with k: take the largest k in range with d + k s < la, and ask whether it is above -lb.
  const long double d = static_cast<long double>(b) - static_cast<long double>(a), sd = static_cast<long double>(s);
  long double k = std::ceil((static_cast<long double>(la) - d) / sd) - 1;
  if (k > static_cast<long double>(rb - 1)) k = static_cast<long double>(rb - 1);
  if (k < -static_cast<long double>(ra - 1)) return false;
  return d + k * sd > -static_cast<long double>(lb);
}

const args::OpSpec* const kOps[] = {&args::kRmsNorm, &args::kLayerNorm, &args::kAddRmsNorm, &args::kRmsNormBackward,
                                    &args::kLayerNormBackward};

[[noreturn]] void die(const char* what, const args::OpSpec& op, const std::string& detail) {
  std::fprintf(stderr, "args_fuzz: %s: %s: %s\n", op.name, what, detail.c_str());
  std::abort();
}

// Simulated ArrayBuffers: four of them, far apart, at realistic user-space addresses.
constexpr uintptr_t kBufferBase = uintptr_t(1) << 40;
constexpr uintptr_t kBufferStride = uintptr_t(1) << 36;

double decode_number(FuzzedDataProvider& in) {
  static const double kInteresting[] = {0.0,
                                        -0.0,
                                        1.0,
                                        -1.0,
                                        0.5,
                                        1e-5,
                                        2.0,
                                        3.0,
                                        4.0,
                                        8.0,
                                        16.0,
                                        1e-9,
                                        1e300,
                                        -1e-5,
                                        2.5,
                                        4294967295.0,
                                        4294967296.0,
                                        1.0000000000000002,
                                        NAN,
                                        INFINITY,
                                        -INFINITY,
                                        5e-324,
                                        1.7976931348623157e308};
  const uint8_t how = in.ConsumeIntegral<uint8_t>();
  if (how < 96) return kInteresting[how % (sizeof kInteresting / sizeof kInteresting[0])];
  if (how < 192) return static_cast<double>(in.ConsumeIntegralInRange<int>(-4, 40));  // small integers
  const uint64_t bits = in.ConsumeIntegral<uint64_t>();
  double d;
  std::memcpy(&d, &bits, sizeof d);
  return d;
}

// Do the elements the call touches in slots o and i meet? An array with rows touches its rows' spans; any
// other array all of itself.
bool touched_meet(const args::OpSpec& op, const args::RawArgs& raw, size_t o, size_t i, uint64_t rows, uint64_t span,
                  const uint64_t* stride_of) {
  auto shape = [&](size_t k, uint64_t* r, uint64_t* st, uint64_t* len) {
    const args::RawArray& a = raw.arrays[k];
    const uint64_t w = width(a.type);
    if (is_data(op.slots[k])) {
      *r = rows;
      *st = stride_of[k] * w;
      *len = span * w;
    } else {
      *r = 1;
      *st = a.length * w;
      *len = a.length * w;
    }
  };
  uint64_t ro, so, lo, ri, si, li;
  shape(o, &ro, &so, &lo);
  shape(i, &ri, &si, &li);
  return rows_meet(reinterpret_cast<uintptr_t>(raw.arrays[o].data), ro, so, lo,
                   reinterpret_cast<uintptr_t>(raw.arrays[i].data), ri, si, li);
}

// The contract, rule by rule, written from lib/validate.ts's point of view (not from args.h): the code of the
// first rule `raw` breaks, or nullptr when it breaks none.
const char* expected_code(const args::OpSpec& op, const args::RawArgs& raw) {
  const size_t n = op.slots.size();
  const bool has_offset = has(op, args::Scalar::kOffset), has_partial = has(op, args::Scalar::kPartial),
             has_accumulate = has(op, args::Scalar::kAccumulate);
  const size_t n_layout = 3 + n_data(op) + (has_residual_scale(op) ? 1 : 0);
  const size_t want_argc = n + 2 + has_offset + has_partial + has_accumulate + 2 + n_layout;
  if (raw.argc != want_argc) return "ERR_INVALID_ARG_TYPE";
  // Arrays, in order: not an array (or null where one is required), another element kind, or detached.
  for (size_t i = 0; i < n; ++i) {
    const args::RawArray& a = raw.arrays[i];
    if (a.kind == args::RawArray::kNullish && op.slots[i].nullable) continue;
    if (a.kind != args::RawArray::kTyped) return "ERR_INVALID_ARG_TYPE";
    if (a.length == 0 && a.detached) return "ERR_INVALID_ARG_VALUE";
  }
  const args::RawScalar* s = raw.scalars;
  // dim
  if (!s[0].ok) return "ERR_INVALID_ARG_TYPE";
  const double dim = s[0].number;
  if (std::isnan(dim) || dim < 1 || dim > 4294967295.0 || dim != std::trunc(dim)) return "ERR_OUT_OF_RANGE";
  // eps
  if (!s[1].ok) return "ERR_INVALID_ARG_TYPE";
  if (!std::isfinite(s[1].number) || s[1].number < 0) return "ERR_OUT_OF_RANGE";
  size_t next = 2;
  if (has_offset) {
    const args::RawScalar& o = s[next++];
    if (!o.ok) return "ERR_INVALID_ARG_TYPE";
    if (!std::isfinite(o.number)) return "ERR_OUT_OF_RANGE";
    size_t w = 0;
    while (std::strcmp(op.slots[w].name, "weight") != 0) ++w;
    if (o.number != 0 && raw.arrays[w].kind != args::RawArray::kTyped) return "ERR_INVALID_ARG_VALUE";
  }
  if (has_partial) {
    const args::RawScalar& p = s[next++];
    if (!p.ok) return "ERR_INVALID_ARG_TYPE";
    if (!(p.number > 0) || p.number > 1) return "ERR_OUT_OF_RANGE";
  }
  if (has_accumulate && !s[next++].ok) return "ERR_INVALID_ARG_TYPE";
  // dtype and castMode: numbers.
  if (!s[next].ok || !s[next + 1].ok) return "ERR_INVALID_ARG_TYPE";
  const double dtype = s[next].number, cast = s[next + 1].number;
  // The layout: non-negative integers below 2^53, then residualScale finite.
  uint64_t lay[3 + args::kMaxSlots] = {};
  for (size_t j = 0; j < 3 + n_data(op); ++j) {
    const args::RawScalar& v = s[next + 2 + j];
    if (!v.ok) return "ERR_INVALID_ARG_TYPE";
    if (!(v.number >= 0 && v.number <= 9007199254740991.0) || v.number != std::trunc(v.number))
      return "ERR_OUT_OF_RANGE";
    lay[j] = static_cast<uint64_t>(v.number);
  }
  if (has_residual_scale(op)) {
    const args::RawScalar& v = s[next + 2 + 3 + n_data(op)];
    if (!v.ok) return "ERR_INVALID_ARG_TYPE";
    if (!std::isfinite(v.number)) return "ERR_OUT_OF_RANGE";
  }
  // Uint16Array data needs dtype 1 (bfloat16) or 2 (float16); float data needs dtype 0.
  const Type x = raw.arrays[0].type;
  const bool half = x == Type::kU16;
  if (half && !(dtype == 1 || dtype == 2)) return "ERR_INVALID_ARG_VALUE";
  if (!half && dtype != 0) return "ERR_INVALID_ARG_VALUE";
  if (!(cast == 0 || cast == 1)) return "ERR_INVALID_ARG_VALUE";
  // Element types: float data makes every array x's type. Half data: data slots Uint16Array, statistics
  // Float32Array, parameters Float32Array or Uint16Array, the same for all of them.
  bool have_param = false;
  Type param = Type::kF32;
  for (size_t i = 1; i < n; ++i) {
    const args::RawArray& a = raw.arrays[i];
    if (a.kind != args::RawArray::kTyped) continue;
    if (!half || is_data(op.slots[i])) {
      if (a.type != x) return "ERR_INVALID_ARG_TYPE";
    } else if (is_stat(op.slots[i])) {
      if (a.type != Type::kF32) return "ERR_INVALID_ARG_TYPE";
    } else {
      if (a.type == Type::kF64) return "ERR_INVALID_ARG_TYPE";
      if (have_param && a.type != param) return "ERR_INVALID_ARG_TYPE";
      have_param = true;
      param = a.type;
    }
  }
  // Lengths: heads >= 1, headStride >= dim, a row span and rows * heads that fit; each array with rows (in slot
  // order) a row stride >= the span and room for (rows - 1) * stride + span elements; the others dim or
  // rows * heads.
  const uint64_t d = static_cast<uint64_t>(dim), rows = lay[0], heads = lay[1], hs = lay[2];
  if (heads < 1 || hs < d) return "ERR_OUT_OF_RANGE";
  const unsigned __int128 span128 = static_cast<unsigned __int128>(heads - 1) * hs + d;
  if (span128 > UINT64_MAX || static_cast<unsigned __int128>(rows) * heads > UINT64_MAX) return "ERR_OUT_OF_RANGE";
  const uint64_t span = static_cast<uint64_t>(span128);
  uint64_t stride_of[args::kMaxSlots] = {};
  for (size_t i = 0, j = 0; i < n; ++i) {
    if (!is_data(op.slots[i])) continue;
    stride_of[i] = lay[3 + j++];
    if (raw.arrays[i].kind != args::RawArray::kTyped) continue;
    if (stride_of[i] < span) return "ERR_OUT_OF_RANGE";
    const unsigned __int128 extent = rows == 0 ? 0 : static_cast<unsigned __int128>(rows - 1) * stride_of[i] + span;
    if (extent > raw.arrays[i].length) return "ERR_OUT_OF_RANGE";
  }
  for (size_t i = 1; i < n; ++i) {
    if (raw.arrays[i].kind != args::RawArray::kTyped || is_data(op.slots[i])) continue;
    const uint64_t want = op.slots[i].len == args::Len::kDim ? d : rows * heads;
    if (raw.arrays[i].length != want) return "ERR_OUT_OF_RANGE";
  }
  // Overlaps: an output may share memory with no other array, except its in-place slot when exactly equal.
  for (size_t o = 0; o < n; ++o) {
    const args::RawArray& out = raw.arrays[o];
    if (!op.slots[o].output || out.kind != args::RawArray::kTyped || out.length == 0) continue;
    const uintptr_t o0 = reinterpret_cast<uintptr_t>(out.data), o1 = o0 + out.length * width(out.type);
    for (size_t i = 0; i < n; ++i) {
      const args::RawArray& other = raw.arrays[i];
      if (i == o || other.kind != args::RawArray::kTyped || other.length == 0) continue;
      const uintptr_t i0 = reinterpret_cast<uintptr_t>(other.data), i1 = i0 + other.length * width(other.type);
      if (o1 <= i0 || i1 <= o0) continue;
      if (!touched_meet(op, raw, o, i, rows, span, stride_of)) continue;
      if (static_cast<int>(i) == op.slots[o].same_ok && o0 == i0 && o1 == i1 && stride_of[o] == stride_of[i]) continue;
      return "ERR_INVALID_ARG_VALUE";
    }
  }
  return nullptr;
}

// A dense call (the layout scalars left out): the rules of x as rows × dim, every array with rows x's length.
const char* expected_code_dense(const args::OpSpec& op, const args::RawArgs& raw) {
  const size_t n = op.slots.size();
  const bool has_offset = has(op, args::Scalar::kOffset), has_partial = has(op, args::Scalar::kPartial),
             has_accumulate = has(op, args::Scalar::kAccumulate);
  const size_t want_argc = n + 2 + has_offset + has_partial + has_accumulate + 2;
  if (raw.argc != want_argc) return "ERR_INVALID_ARG_TYPE";
  // Arrays, in order: not an array (or null where one is required), another element kind, or detached.
  for (size_t i = 0; i < n; ++i) {
    const args::RawArray& a = raw.arrays[i];
    if (a.kind == args::RawArray::kNullish && op.slots[i].nullable) continue;
    if (a.kind != args::RawArray::kTyped) return "ERR_INVALID_ARG_TYPE";
    if (a.length == 0 && a.detached) return "ERR_INVALID_ARG_VALUE";
  }
  const args::RawScalar* s = raw.scalars;
  // dim
  if (!s[0].ok) return "ERR_INVALID_ARG_TYPE";
  const double dim = s[0].number;
  if (std::isnan(dim) || dim < 1 || dim > 4294967295.0 || dim != std::trunc(dim)) return "ERR_OUT_OF_RANGE";
  // eps
  if (!s[1].ok) return "ERR_INVALID_ARG_TYPE";
  if (!std::isfinite(s[1].number) || s[1].number < 0) return "ERR_OUT_OF_RANGE";
  size_t next = 2;
  if (has_offset) {
    const args::RawScalar& o = s[next++];
    if (!o.ok) return "ERR_INVALID_ARG_TYPE";
    if (!std::isfinite(o.number)) return "ERR_OUT_OF_RANGE";
    size_t w = 0;
    while (std::strcmp(op.slots[w].name, "weight") != 0) ++w;
    if (o.number != 0 && raw.arrays[w].kind != args::RawArray::kTyped) return "ERR_INVALID_ARG_VALUE";
  }
  if (has_partial) {
    const args::RawScalar& p = s[next++];
    if (!p.ok) return "ERR_INVALID_ARG_TYPE";
    if (!(p.number > 0) || p.number > 1) return "ERR_OUT_OF_RANGE";
  }
  if (has_accumulate && !s[next++].ok) return "ERR_INVALID_ARG_TYPE";
  // dtype and castMode: numbers.
  if (!s[next].ok || !s[next + 1].ok) return "ERR_INVALID_ARG_TYPE";
  const double dtype = s[next].number, cast = s[next + 1].number;
  // Uint16Array data needs dtype 1 (bfloat16) or 2 (float16); float data needs dtype 0.
  const Type x = raw.arrays[0].type;
  const bool half = x == Type::kU16;
  if (half && !(dtype == 1 || dtype == 2)) return "ERR_INVALID_ARG_VALUE";
  if (!half && dtype != 0) return "ERR_INVALID_ARG_VALUE";
  if (!(cast == 0 || cast == 1)) return "ERR_INVALID_ARG_VALUE";
  // Element types: float data makes every array x's type. Half data: data slots Uint16Array, statistics
  // Float32Array, parameters Float32Array or Uint16Array, the same for all of them.
  bool have_param = false;
  Type param = Type::kF32;
  for (size_t i = 1; i < n; ++i) {
    const args::RawArray& a = raw.arrays[i];
    if (a.kind != args::RawArray::kTyped) continue;
    if (!half || is_data(op.slots[i])) {
      if (a.type != x) return "ERR_INVALID_ARG_TYPE";
    } else if (is_stat(op.slots[i])) {
      if (a.type != Type::kF32) return "ERR_INVALID_ARG_TYPE";
    } else {
      if (a.type == Type::kF64) return "ERR_INVALID_ARG_TYPE";
      if (have_param && a.type != param) return "ERR_INVALID_ARG_TYPE";
      have_param = true;
      param = a.type;
    }
  }
  // Lengths.
  const uint64_t total = raw.arrays[0].length, d = static_cast<uint64_t>(dim);
  if (total % d != 0) return "ERR_OUT_OF_RANGE";
  for (size_t i = 1; i < n; ++i) {
    if (raw.arrays[i].kind != args::RawArray::kTyped) continue;
    const uint64_t want = op.slots[i].len == args::Len::kTotal ? total
                          : op.slots[i].len == args::Len::kDim ? d
                                                               : total / d;
    if (raw.arrays[i].length != want) return "ERR_OUT_OF_RANGE";
  }
  // Overlaps: an output may share memory with no other array, except its in-place slot when exactly equal.
  for (size_t o = 0; o < n; ++o) {
    const args::RawArray& out = raw.arrays[o];
    if (!op.slots[o].output || out.kind != args::RawArray::kTyped || out.length == 0) continue;
    const uintptr_t o0 = reinterpret_cast<uintptr_t>(out.data), o1 = o0 + out.length * width(out.type);
    for (size_t i = 0; i < n; ++i) {
      const args::RawArray& other = raw.arrays[i];
      if (i == o || other.kind != args::RawArray::kTyped || other.length == 0) continue;
      const uintptr_t i0 = reinterpret_cast<uintptr_t>(other.data), i1 = i0 + other.length * width(other.type);
      if (o1 <= i0 || i1 <= o0) continue;
      if (static_cast<int>(i) == op.slots[o].same_ok && o0 == i0 && o1 == i1) continue;
      return "ERR_INVALID_ARG_VALUE";
    }
  }
  return nullptr;
}

// What a successful check promises the kernels.
void check_promises(const args::OpSpec& op, const args::RawArgs& raw, const args::Parsed& p) {
  const size_t n = op.slots.size();
  auto fail = [&op](const char* what) { die("accepted a call that breaks a promise", op, what); };
  if (p.dim < 1 || p.dim > 4294967295ull) fail("dim");
  if (!(p.eps >= 0 && std::isfinite(p.eps))) fail("eps");
  if (!std::isfinite(p.offset)) fail("offset");
  if (!(p.partial > 0 && p.partial <= 1)) fail("partial");
  if (p.k < 1 || p.k > p.dim) fail("k");
  const double kd = std::ceil(p.partial * static_cast<double>(p.dim));
  if (p.k != (kd < 1 ? 1 : kd > static_cast<double>(p.dim) ? p.dim : static_cast<size_t>(kd))) fail("k formula");
  if (!p[op.slots[0].role].present || p[op.slots[0].role].type != p.data) fail("slot 0");
  const bool half = p.data == Type::kU16;
  if (half ? !(p.dtype == 1 || p.dtype == 2) : p.dtype != 0) fail("dtype");
  if (half ? !(p.param == Type::kF32 || p.param == Type::kU16) : p.param != p.data) fail("param type");
  const size_t acc = accumulate_index(op) + (has(op, args::Scalar::kAccumulate) ? 1 : 0);
  if (p.dtype != static_cast<int>(raw.scalars[acc].number)) fail("dtype value");
  if (p.llama != (raw.scalars[acc + 1].number == 1)) fail("castMode");
  if (p.heads < 1 || p.head_stride < p.dim || p.row_span != (p.heads - 1) * p.head_stride + p.dim) fail("heads");
  for (size_t i = 0; i < n; ++i) {
    const args::ArrayArg& a = p[op.slots[i].role];
    if (!a.present) {
      if (!op.slots[i].nullable) fail("a required array is missing");
      if (raw.arrays[i].kind != args::RawArray::kNullish) fail("a given array was dropped");
      continue;
    }
    const Type want_type = is_data(op.slots[i])   ? p.data
                           : is_stat(op.slots[i]) ? (half ? Type::kF32 : p.data)
                                                  : p.param;
    if (a.type != want_type) fail("element type");
    if (is_data(op.slots[i])) {
      const size_t st = p.stride[static_cast<size_t>(op.slots[i].role)];
      if (st < p.row_span) fail("row stride");
      if (p.rows > 0 && a.length < (p.rows - 1) * st + p.row_span) fail("length past the layout");
    } else if (a.length != (op.slots[i].len == args::Len::kDim ? p.dim : p.rows * p.heads)) {
      fail("length");
    }
    if (a.data != raw.arrays[i].data) fail("data pointer");
    if (std::strcmp(op.slots[i].name, "weight") == 0 && p.offset != 0 && !a.present) fail("offset without weight");
  }
  for (size_t i = 0; i < n; ++i) {
    if (std::strcmp(op.slots[i].name, "weight") == 0 && p.offset != 0 && !p[op.slots[i].role].present)
      fail("offset without weight");
  }
  for (size_t o = 0; o < n; ++o) {
    if (!op.slots[o].output || !p[op.slots[o].role].present) continue;
    for (size_t i = 0; i < n; ++i) {
      if (i == o || !p[op.slots[i].role].present || p[op.slots[o].role].length == 0 || p[op.slots[i].role].length == 0)
        continue;
      const uintptr_t o0 = reinterpret_cast<uintptr_t>(p[op.slots[o].role].data), o1 = o0 + p[op.slots[o].role].bytes();
      const uintptr_t i0 = reinterpret_cast<uintptr_t>(p[op.slots[i].role].data), i1 = i0 + p[op.slots[i].role].bytes();
      uint64_t stride_of[args::kMaxSlots] = {};
      for (size_t k = 0; k < n; ++k) stride_of[k] = p.stride[static_cast<size_t>(op.slots[k].role)];
      const bool disjoint = o1 <= i0 || i1 <= o0 || !touched_meet(op, raw, o, i, p.rows, p.row_span, stride_of);
      const bool in_place =
          static_cast<int>(i) == op.slots[o].same_ok && o0 == i0 && o1 == i1 && stride_of[o] == stride_of[i];
      if (!disjoint && !in_place) fail("an output overlaps another array");
    }
  }
  if (has(op, args::Scalar::kAccumulate)) {
    if (p.accumulate != raw.scalars[accumulate_index(op)].boolean) fail("accumulate");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  const args::OpSpec& op = *kOps[in.ConsumeIntegralInRange<size_t>(0, 4)];
  const size_t n = op.slots.size();
  args::RawArgs raw;
  std::memset(&raw, 0xA5, sizeof raw);  // fields binding.cc leaves unset hold garbage there too
  const uint8_t argc_kind = in.ConsumeIntegralInRange<uint8_t>(0, 15);
  raw.argc = argc_kind == 0  ? in.ConsumeIntegralInRange<size_t>(0, 24)
             : argc_kind < 5 ? args::arity(op) - op.n_layout  // a dense call
                             : args::arity(op);
  // A shape most calls stick to, so that length rules pass often enough to reach the overlap rules.
  const size_t dim = in.ConsumeIntegralInRange<size_t>(1, 9), rows = in.ConsumeIntegralInRange<size_t>(0, 5);
  // A layout most calls stick to: a few heads, small gaps between heads and between rows.
  const size_t heads = in.ConsumeIntegralInRange<size_t>(0, 3) == 0 ? in.ConsumeIntegralInRange<size_t>(2, 3) : 1;
  const size_t head_stride = dim + (in.ConsumeBool() ? 0 : in.ConsumeIntegralInRange<size_t>(0, 3));
  const size_t span = (heads - 1) * head_stride + dim;
  size_t gap[args::kMaxSlots];
  for (size_t i = 0; i < n; ++i) gap[i] = in.ConsumeBool() ? 0 : in.ConsumeIntegralInRange<size_t>(0, 4);
  // The call's data type, and for half data its parameter type.
  const uint8_t base = in.ConsumeIntegralInRange<uint8_t>(0, 2);
  const Type x = base == 0 ? Type::kF32 : base == 1 ? Type::kF64 : Type::kU16;
  const Type param = x == Type::kU16 && in.ConsumeBool() ? Type::kF32 : x;
  const Type stat = x == Type::kU16 ? Type::kF32 : x;
  const Type kTypes[] = {Type::kF32, Type::kF64, Type::kU16};
  for (size_t i = 0; i < n; ++i) {
    args::RawArray& a = raw.arrays[i];
    const uint8_t kind = in.ConsumeIntegral<uint8_t>();
    if (kind < 24) {
      a.kind = args::RawArray::kNullish;
    } else if (kind < 30) {
      a.kind = args::RawArray::kOther;
    } else if (kind < 34) {
      a.kind = args::RawArray::kOtherTyped;
      a.length = in.ConsumeIntegralInRange<size_t>(0, 64);
    } else {
      a.kind = args::RawArray::kTyped;
      const args::Slot& slot = op.slots[i];
      a.type = is_data(slot) ? x : is_stat(slot) ? stat : param;
      if (in.ConsumeIntegralInRange<uint8_t>(0, 31) == 0) a.type = kTypes[in.ConsumeIntegralInRange<uint8_t>(0, 2)];
      const args::Len len = op.slots[i].len;
      size_t length = len == args::Len::kTotal ? (rows == 0 ? 0 : (rows - 1) * (span + gap[i]) + span)
                      : len == args::Len::kDim ? dim
                                               : rows * heads;
      const uint8_t off = in.ConsumeIntegral<uint8_t>();
      if (off < 24)
        length = in.ConsumeIntegralInRange<size_t>(0, 64);  // any length
      else if (off < 28)
        length = in.ConsumeIntegral<uint64_t>() >> 14;  // up to 2^50
      a.length = length;
      a.detached = a.length == 0 && in.ConsumeBool();
      // Placement: one of four buffers, at an element offset that makes views overlap, touch, or coincide.
      const uintptr_t buffer = kBufferBase + kBufferStride * in.ConsumeIntegralInRange<unsigned>(0, 3);
      const size_t element = in.ConsumeIntegralInRange<size_t>(0, 80);
      const unsigned misalign =
          in.ConsumeIntegralInRange<uint8_t>(0, 15) == 0 ? in.ConsumeIntegralInRange<unsigned>(1, 3) : 0;
      a.data = reinterpret_cast<void*>(buffer + element * width(a.type) + misalign);
    }
  }
  // Which array each row stride scalar belongs to (they follow the op's arrays with rows, in slot order).
  size_t stride_slot[args::kMaxSlots];
  for (size_t i = 0, j = 0; i < n; ++i)
    if (is_data(op.slots[i])) stride_slot[j++] = i;
  const size_t first_layout = accumulate_index(op) + (has(op, args::Scalar::kAccumulate) ? 1 : 0) + 2;
  for (size_t j = 0; j < args::kMaxScalars; ++j) {
    args::RawScalar& s = raw.scalars[j];
    const bool boolean = has(op, args::Scalar::kAccumulate) && j == accumulate_index(op);
    const size_t n_scalars = first_layout;
    const uint8_t kind = in.ConsumeIntegral<uint8_t>();
    s.ok = kind >= 16;  // otherwise a string, an object, null, undefined, a BigInt...
    if (boolean) {
      s.boolean = in.ConsumeBool();
    } else if (j == 0 && kind >= 64) {
      s.number = static_cast<double>(dim);  // the shape's dim, mostly
    } else if (j == 1 && kind >= 64) {
      s.number = 1e-5;
    } else if (j == n_scalars - 2 && kind >= 64) {  // dtype: the one the data type needs, mostly
      s.number = x == Type::kU16 ? 1 + (kind & 1) : 0;
    } else if (j == n_scalars - 1 && kind >= 64) {  // castMode
      s.number = kind & 1;
    } else if (j >= first_layout && j < first_layout + 3 + n_data(op) && kind >= 64) {  // the shape's layout
      const size_t l = j - first_layout;
      s.number = static_cast<double>(l == 0   ? rows
                                     : l == 1 ? heads
                                     : l == 2 ? head_stride
                                              : span + gap[stride_slot[l - 3]]);
    } else if (j == first_layout + 3 + n_data(op) && has_residual_scale(op) && kind >= 64) {
      s.number = kind & 1 ? 1.0 : 0.22;
    } else {
      s.number = decode_number(in);
    }
  }

  args::Parsed p;
  args::Error e;
  const bool ok = args::check(op, raw, p, e);
  const char* want = raw.argc == args::arity(op) - op.n_layout ? expected_code_dense(op, raw) : expected_code(op, raw);
  if (ok) {
    if (want) die("accepted a call the contract refuses", op, std::string("expected ") + want);
    check_promises(op, raw, p);
    return 0;
  }
  if (!want) die("refused a valid call", op, std::string(e.code) + ": " + e.message);
  if (std::strcmp(want, e.code) != 0)
    die("refused with another code", op, std::string("expected ") + want + ", got " + e.code + ": " + e.message);
  if (e.range != (std::strcmp(e.code, "ERR_OUT_OF_RANGE") == 0)) die("error class", op, e.message);
  const bool names_op = e.message.rfind(op.name, 0) == 0;
  if (!names_op && e.message.rfind("The \"", 0) != 0) die("message names no argument", op, e.message);
  return 0;
}
