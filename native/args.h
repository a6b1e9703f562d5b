// The argument rules of the native entry points, in plain C++ with no Node-API, so that a fuzz target
// (fuzz/args_fuzz.cc) can drive exactly the rules the addon applies. binding.cc reads each argument once into
// a RawArgs (what kind of value it is, and for a typed array its element type, length and data pointer);
// check() then applies every rule in a fixed order and reports the first one broken, with the same codes and
// messages as lib/validate.ts.
//
// What a successful check() guarantees the kernels (fuzz/args_fuzz.cc asserts each point): every present
// array has the element type its slot requires (its Elem in ops.gen.h: data slots have x's type; for Float32Array and
// Float64Array data every slot has x's type; for Uint16Array data, dtype is 1 (bfloat16) or 2 (float16),
// statistics slots are Float32Array and the parameters are all Float32Array or all Uint16Array); every array
// with rows (x, out, residual, dy, dx) holds its layout, (rows - 1) * rowStride + rowSpan elements with
// rowStride >= rowSpan = (heads - 1) * headStride + dim, headStride >= dim, heads >= 1; the others have exactly
// their expected length (dim, or rows * heads); non-nullable slots are present;
// dim >= 1; eps finite and >= 0; offset finite; partial in (0, 1] and 1 <= k <= dim; dtype is 0 for float
// data; castMode is 0 or 1; no output shares a byte with another array except an exactly equal view of its
// in-place slot with the same row stride (arrays with rows of one row stride are compared row by row).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "ops.gen.h"

namespace rmsnorm {
namespace args {

// dtype codes: 0 for Float32Array/Float64Array data, 1 bfloat16, 2 float16 (Uint16Array data).
enum DType : int { kNoDType = 0, kBFloat16 = 1, kFloat16 = 2 };

// The typed-array element types the entry points accept.
enum class Type : uint8_t { kF32, kF64, kU16 };

inline const char* type_name(Type t) {
  return t == Type::kF64 ? "Float64Array" : t == Type::kF32 ? "Float32Array" : "Uint16Array";
}
inline size_t type_size(Type t) {
  constexpr size_t kSize[] = {4, 8, 2};  // by Type: kF32, kF64, kU16
  return kSize[static_cast<size_t>(t)];
}

// The number of arguments an op takes: its arrays, then its scalars.
inline size_t n_scalars(const OpSpec& op) { return op.scalars.size(); }
inline size_t arity(const OpSpec& op) { return op.slots.size() + op.scalars.size(); }
inline bool has_scalar(const OpSpec& op, Scalar s) {
  for (Scalar t : op.scalars) {
    if (t == s) return true;
  }
  return false;
}
inline size_t role_index(Role r) { return static_cast<size_t>(r); }

// ---------------------------------------------------------------------------------------------------------
// Arguments as read, and as checked

// type, length and data are meaningful only when present (every reader checks it first), so they are left
// uninitialized: a Parsed is built on every call, and zeroing all its arrays cost more than reading them.
struct ArrayArg {
  bool present = false;
  Type type;
  size_t length;
  void* data;
  size_t bytes() const { return length * type_size(type); }
};

// One array argument as binding.cc found it.
// Left uninitialized (binding.cc fills every field check() reads): this is on the hot path of every call.
struct RawArray {
  enum Kind : uint8_t {
    kTyped,       // a Float32Array, Float64Array or Uint16Array: type, length and data are set
    kOtherTyped,  // a typed array of another element type
    kNullish,     // null or undefined
    kOther,       // anything else
  };
  Kind kind;
  Type type;
  bool detached;  // a zero-length kTyped array on a detached ArrayBuffer
  size_t length;
  void* data;
};

// One scalar argument: whether it was a number (and its value) and whether it was a boolean (and its value).
struct RawScalar {
  bool ok;  // of the expected type: a number (dim, eps, offset, partial, dtype, castMode) or a boolean (accumulate)
  bool boolean;
  double number;
};

struct RawArgs {
  size_t argc;  // the number of arguments the call was given; the rest is read only when it is the op's arity
  RawArray arrays[kMaxSlots];
  RawScalar scalars[kMaxScalars];  // in the op's order (OpSpec::scalars)
};

struct Parsed {
  ArrayArg arrays[kRoleCount];  // by role; absent roles stay !present
  ArrayArg& operator[](Role r) { return arrays[role_index(r)]; }
  const ArrayArg& operator[](Role r) const { return arrays[role_index(r)]; }
  size_t dim = 0, rows = 0, k = 0;
  // The layout: rows of `heads` groups of dim values, group h at h * head_stride from its row's start; each
  // array with rows (Len::kTotal) has its own row stride, by role.
  size_t heads = 1, head_stride = 0, row_span = 0;
  size_t stride[kRoleCount] = {};
  double residual_scale = 1.0;
  double eps = 1e-5, offset = 0.0, partial = 1.0;
  bool accumulate = false;
  bool llama = false;  // castMode 1
  int dtype = kNoDType;
  Type data = Type::kF32;   // x's type
  Type param = Type::kF32;  // weight/bias type
};

struct Error {
  const char* code = nullptr;  // ERR_INVALID_ARG_TYPE, ERR_OUT_OF_RANGE or ERR_INVALID_ARG_VALUE
  std::string message;
  bool range = false;  // a RangeError (else a TypeError)
};

inline std::string quoted(const char* name) { return std::string("The \"") + name + "\" argument"; }

inline bool overlaps(const ArrayArg& p, const ArrayArg& q) {
  if (!p.present || !q.present || p.length == 0 || q.length == 0) return false;
  const auto a = reinterpret_cast<uintptr_t>(p.data), b = reinterpret_cast<uintptr_t>(q.data);
  return a < b + q.bytes() && b < a + p.bytes();
}

inline bool same_view(const ArrayArg& p, const ArrayArg& q) { return p.data == q.data && p.bytes() == q.bytes(); }

// The elements an array with rows spans from its first element: (rows - 1) * row_stride + row_span, 0 with no
// rows (lib/validate.ts's layoutExtent). False when it does not fit in a size_t.
inline bool layout_extent(size_t rows, size_t row_stride, size_t row_span, size_t* extent) {
  if (rows == 0) {
    *extent = 0;
    return true;
  }
  size_t a;
  return !__builtin_mul_overflow(rows - 1, row_stride, &a) && !__builtin_add_overflow(a, row_span, extent);
}

// Where an array lies, in bytes, for the overlap rules: rows of `span` bytes every `stride` bytes (an array
// without rows: one row, the whole array).
struct Footprint {
  uintptr_t start = 0;
  size_t rows = 0, stride = 0, span = 0;
};

inline Footprint footprint(const ArrayArg& a, const Slot& slot, const Parsed& p) {
  Footprint f;
  f.start = reinterpret_cast<uintptr_t>(a.data);
  const size_t size = type_size(a.type);
  if (slot.len == Len::kTotal) {
    f.rows = p.rows;
    f.stride = p.stride[static_cast<size_t>(slot.role)] * size;
    f.span = p.row_span * size;
  } else {
    f.rows = a.length == 0 ? 0 : 1;
    f.stride = a.bytes();
    f.span = a.bytes();
  }
  return f;
}

// Do two footprints share a byte? Rows of equal stride, or any rows and one span, are compared row by row
// (interleaved views of one fused buffer do not overlap); otherwise the whole extents. The same rule as
// lib/validate.ts.
inline bool footprints_overlap(const Footprint& a, const Footprint& b) {
  if (a.rows == 0 || b.rows == 0 || a.span == 0 || b.span == 0) return false;
  const size_t ea = (a.rows - 1) * a.stride + a.span, eb = (b.rows - 1) * b.stride + b.span;
  if (!(a.start < b.start + eb && b.start < a.start + ea)) return false;
  // The stride of a single row does not matter: take the other's.
  const size_t sa = a.rows == 1 ? b.stride : a.stride, sb = b.rows == 1 ? sa : b.stride;
  if (sa != sb) return true;
  // Row i of a and row j of b meet when some k = j - i in [-(a.rows - 1), b.rows - 1] has
  // -b.span < d + k * stride < a.span, with d = b.start - a.start.
  const double s = static_cast<double>(sa);
  const double d = static_cast<double>(b.start) - static_cast<double>(a.start);
  const double lo = std::max(-static_cast<double>(a.rows - 1), std::floor((-static_cast<double>(b.span) - d) / s) + 1);
  const double hi = std::min(static_cast<double>(b.rows - 1), std::ceil((static_cast<double>(a.span) - d) / s) - 1);
  return lo <= hi;
}

inline size_t expected_length(Len len, const Parsed& p, size_t total) {
  return len == Len::kTotal ? total : len == Len::kDim ? p.dim : p.rows * p.heads;
}

inline std::string length_name(Len len, const OpSpec& op) {
  return len == Len::kTotal ? std::string(op.slots[0].name) + ".length" : len == Len::kDim ? "dim" : "rows * heads";
}

// The rules of a call's layout (check() applies them to every call with one): heads >= 1, headStride >= dim,
// a layout that fits in a size_t, every row stride >= the row span, and every array with rows holding its extent.
// Sets p.row_span. Returns false and fills `e` with the first rule broken.
inline bool check_layout(const Slot* slots, size_t n_slots, Parsed& p, Error& e) {
  auto fail = [&e](const char* code, std::string message, bool range = false) {
    e.code = code;
    e.message = std::move(message);
    e.range = range;
    return false;
  };
  const char* kRange = "ERR_OUT_OF_RANGE";
  if (p.heads < 1) return fail(kRange, quoted("options.heads") + " must be an integer >= 1", true);
  if (p.head_stride < p.dim) {
    return fail(kRange, quoted("options.headStride") + " must be an integer >= " + std::to_string(p.dim) + " (dim)",
                true);
  }
  size_t span;
  if (__builtin_mul_overflow(p.heads - 1, p.head_stride, &span) || __builtin_add_overflow(span, p.dim, &span) ||
      __builtin_mul_overflow(p.rows, p.heads, &span) /* rows * heads must fit too */) {
    return fail(kRange, quoted("options.heads") + " must give a layout that fits in memory", true);
  }
  p.row_span = (p.heads - 1) * p.head_stride + p.dim;
  for (size_t i = 0; i < n_slots; ++i) {
    const ArrayArg& a = p[slots[i].role];
    if (slots[i].len != Len::kTotal || !a.present) continue;
    const size_t stride = p.stride[role_index(slots[i].role)];
    if (stride < p.row_span) {
      return fail(kRange,
                  quoted(slots[i].name) + " must have a row stride >= " + std::to_string(p.row_span) +
                      " (the row span), received " + std::to_string(stride),
                  true);
    }
    size_t extent = 0;
    if (!layout_extent(p.rows, stride, p.row_span, &extent) || a.length < extent) {
      return fail(kRange,
                  quoted(slots[i].name) + " must have length at least " + std::to_string(extent) +
                      " (its layout), received length " + std::to_string(a.length),
                  true);
    }
  }
  return true;
}

// Applies every rule of `op` to `raw` in order. Returns true and fills `p` (default-constructed by the caller),
// or returns false and fills `e` with the first rule broken.
inline bool check(const OpSpec& op, const RawArgs& raw, Parsed& p, Error& e) {
  auto fail = [&e](const char* code, std::string message, bool range = false) {
    e.code = code;
    e.message = std::move(message);
    e.range = range;
    return false;
  };
  const char* kType = "ERR_INVALID_ARG_TYPE";
  const char* kRange = "ERR_OUT_OF_RANGE";
  const char* kValue = "ERR_INVALID_ARG_VALUE";
  const size_t n_slots = op.slots.size();
  // Read through plain pointers: the compiler then need not reload the vectors after each write to p.
  const Slot* const slots = op.slots.data();
  const Scalar* const scalars = op.scalars.data();
  // A dense call may leave out the layout scalars: x is then rows × dim and every array with rows dense.
  const bool dense = raw.argc == arity(op) - op.n_layout;
  if (raw.argc != arity(op) && !dense) {
    return fail(kType, std::string(op.name) + " expects " + std::to_string(arity(op)) + " arguments (or " +
                           std::to_string(arity(op) - op.n_layout) + " for a dense call)");
  }
  const size_t n_given = raw.argc - n_slots;
  for (size_t i = 0; i < n_slots; ++i) {
    const RawArray& r = raw.arrays[i];
    const char* name = slots[i].name;
    if (r.kind == RawArray::kTyped) {
      if (r.length == 0 && r.detached) return fail(kValue, quoted(name) + " must not be on a detached ArrayBuffer");
      ArrayArg& a = p[slots[i].role];
      a.present = true;
      a.type = r.type;
      a.length = r.length;
      a.data = r.data;
    } else if (!(r.kind == RawArray::kNullish && slots[i].nullable)) {
      return fail(kType, quoted(name) + " must be a Float32Array, Float64Array or Uint16Array");
    }
  }
  // The scalars, in the op's order: each of its JavaScript type, then its own range.
  double dtype = 0, cast = 0;
  for (size_t s = 0; s < n_given; ++s) {
    const Scalar kind = scalars[s];
    const RawScalar& r = raw.scalars[s];
    const char* name = kScalarName[static_cast<size_t>(kind)];
    if (!r.ok) {
      return fail(kType, quoted(name) + (kScalarIsBoolean[static_cast<size_t>(kind)] ? " must be of type boolean"
                                                                                     : " must be of type number"));
    }
    switch (kind) {
      case Scalar::kDim:
        if (!(r.number >= 1 && r.number <= 4294967295.0) || std::floor(r.number) != r.number) {
          return fail(kRange, quoted(name) + " must be a positive integer no greater than 4294967295", true);
        }
        p.dim = static_cast<size_t>(r.number);
        break;
      case Scalar::kEps:
        p.eps = r.number;
        if (!(p.eps >= 0 && p.eps <= 1.7976931348623157e308)) {
          return fail(kRange, quoted(name) + " must be a finite number >= 0", true);
        }
        break;
      case Scalar::kOffset:
        p.offset = r.number;
        if (!std::isfinite(p.offset)) return fail(kRange, quoted(name) + " must be a finite number", true);
        if (p.offset != 0 && !p[Role::kWeight].present) {
          return fail(kValue, quoted(name) + " requires a weight (weight is null)");
        }
        break;
      case Scalar::kPartial:
        p.partial = r.number;
        if (!(p.partial > 0 && p.partial <= 1)) return fail(kRange, quoted(name) + " must be in (0, 1]", true);
        break;
      case Scalar::kAccumulate: p.accumulate = r.boolean; break;
      case Scalar::kDType: dtype = r.number; break;
      case Scalar::kCastMode: cast = r.number; break;
      case Scalar::kResidualScale:
        p.residual_scale = r.number;
        if (!std::isfinite(r.number)) return fail(kRange, quoted(name) + " must be a finite number", true);
        break;
      default: {
        // The layout's counts: rows, heads, headStride and the row strides, integers below 2^53.
        if (!(r.number >= 0 && r.number <= 9007199254740991.0) || std::floor(r.number) != r.number) {
          return fail(kRange, quoted(name) + " must be a non-negative integer", true);
        }
        const size_t v = static_cast<size_t>(r.number);
        switch (kind) {
          case Scalar::kRows: p.rows = v; break;
          case Scalar::kHeads: p.heads = v; break;
          case Scalar::kHeadStride: p.head_stride = v; break;
          case Scalar::kXRowStride: p.stride[role_index(Role::kX)] = v; break;
          case Scalar::kOutRowStride: p.stride[role_index(Role::kOut)] = v; break;
          case Scalar::kResidualRowStride: p.stride[role_index(Role::kResidual)] = v; break;
          case Scalar::kDyRowStride: p.stride[role_index(Role::kDy)] = v; break;
          case Scalar::kDxRowStride: p.stride[role_index(Role::kDx)] = v; break;
          default: break;
        }
      }
    }
  }

  const ArrayArg& first = p[slots[0].role];
  p.data = first.type;
  const bool half = first.type == Type::kU16;
  if (half ? !(dtype == kBFloat16 || dtype == kFloat16) : dtype != kNoDType) {
    return fail(kValue, quoted("options.dtype") + (half ? " must be 'bfloat16' or 'float16' for Uint16Array data"
                                                        : " applies to Uint16Array data only"));
  }
  p.dtype = static_cast<int>(dtype);
  if (!(cast == 0 || cast == 1)) return fail(kValue, quoted("options.castMode") + " must be 'fp32' or 'llama'");
  p.llama = cast == 1;
  const Type stat = half ? Type::kF32 : first.type;
  p.param = first.type;
  bool param_seen = false;
  for (size_t i = 1; i < n_slots; ++i) {
    const ArrayArg& a = p[slots[i].role];
    if (!a.present) continue;
    const Elem el = slots[i].elem;
    Type want = el == Elem::kStat ? stat : first.type;
    if (el == Elem::kParam && half) {
      // float32 or the half type, the same for every parameter of the call.
      if (!param_seen && (a.type == Type::kF32 || a.type == Type::kU16)) p.param = a.type;
      want = p.param;
      param_seen = true;
    }
    if (a.type != want) {
      return fail(kType, quoted(slots[i].name) + " must be a " + type_name(want) + ", received a " + type_name(a.type));
    }
  }
  if (dense) {
    // x.length must be a whole number of rows, and every array with rows exactly as long.
    if (first.length % p.dim != 0) {
      return fail(kRange,
                  quoted(slots[0].name) + " must have a length that is a multiple of dim (" + std::to_string(p.dim) +
                      "), received length " + std::to_string(first.length),
                  true);
    }
    p.rows = first.length / p.dim;
    p.heads = 1;
    p.head_stride = p.dim;
    for (size_t i = 0; i < n_slots; ++i) {
      const ArrayArg& a = p[slots[i].role];
      if (slots[i].len != Len::kTotal) continue;
      p.stride[role_index(slots[i].role)] = p.dim;
      if (a.present && a.length != first.length) {
        return fail(kRange,
                    quoted(slots[i].name) + " must have length " + std::to_string(first.length) + " (" +
                        length_name(Len::kTotal, op) + "), received length " + std::to_string(a.length),
                    true);
      }
    }
  }
  // The layout: heads >= 1, headStride >= dim, every row stride >= the row span, and every array with rows
  // holds its extent. A dense call meets all of it by construction (one head, every row stride dim, every array
  // with rows exactly rows * dim long, as checked above), so only a call with a layout is checked here.
  p.row_span = p.dim;
  if (!dense && !check_layout(slots, n_slots, p, e)) return false;
  for (size_t i = 1; i < n_slots; ++i) {
    const ArrayArg& a = p[slots[i].role];
    if (slots[i].len == Len::kTotal) continue;
    const size_t want = expected_length(slots[i].len, p, first.length);
    if (a.present && a.length != want) {
      return fail(kRange,
                  quoted(slots[i].name) + " must have length " + std::to_string(want) + " (" +
                      length_name(slots[i].len, op) + "), received length " + std::to_string(a.length),
                  true);
    }
  }
  // Outputs must not overlap any other array, except the one they may be in place on.
  for (size_t o = 0; o < n_slots; ++o) {
    if (!slots[o].output) continue;
    const ArrayArg& out = p[slots[o].role];
    if (!out.present) continue;
    for (size_t i = 0; i < n_slots; ++i) {
      const ArrayArg& other = p[slots[i].role];
      if (i == o || !other.present || !overlaps(out, other)) continue;
      // Only arrays whose whole extents meet are compared by their footprints.
      const Footprint fo = footprint(out, slots[o], p);
      const Footprint fi = footprint(other, slots[i], p);
      if (!footprints_overlap(fo, fi)) continue;
      const bool same_ok = slots[o].same_ok == static_cast<int>(i);
      if (same_ok && same_view(out, other) && fo.stride == fi.stride) continue;
      return fail(kValue, quoted(slots[o].name) + " must not overlap \"" + slots[i].name + "\"" +
                              (same_ok ? " unless it is exactly the same view (in place)" : ""));
    }
  }
  const double kd = std::ceil(p.partial * static_cast<double>(p.dim));
  p.k = kd < 1 ? 1 : (kd > static_cast<double>(p.dim) ? p.dim : static_cast<size_t>(kd));
  return true;
}

}  // namespace args
}  // namespace rmsnorm
