// The argument rules of the native entry points, in plain C++ with no Node-API, so that a fuzz target
// (fuzz/args_fuzz.cc) can drive exactly the rules the addon applies. binding.cc reads each argument once into
// a RawArgs (what kind of value it is, and for a typed array its element type, length and data pointer);
// check() then applies every rule in a fixed order and reports the first one broken, with the same codes and
// messages as lib/validate.ts.
//
// What a successful check() guarantees the kernels (fuzz/args_fuzz.cc asserts each point): every present
// array has the element type its slot requires (its Elem in ops.gen.h: data slots have x's type; for Float32Array and
// Float64Array data every slot has x's type; for Uint16Array data, dtype is 1 (bfloat16) or 2 (float16),
// statistics slots are Float32Array and the parameters are all Float32Array or all Uint16Array) and exactly
// its expected length (x.length, dim or rows, with rows * dim == x.length); non-nullable slots are present;
// dim >= 1; eps finite and >= 0; offset finite; partial in (0, 1] and 1 <= k <= dim; dtype is 0 for float
// data; castMode is 0 or 1; no output shares a byte with another array except an exactly equal view of its
// in-place slot.
#pragma once

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
inline size_t type_size(Type t) { return t == Type::kF64 ? 8 : t == Type::kF32 ? 4 : 2; }

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

struct ArrayArg {
  bool present = false;
  Type type = Type::kF32;
  size_t length = 0;
  void* data = nullptr;
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

inline size_t expected_length(Len len, const Parsed& p, size_t total) {
  return len == Len::kTotal ? total : len == Len::kDim ? p.dim : p.rows;
}

inline std::string length_name(Len len, const OpSpec& op) {
  return len == Len::kTotal ? std::string(op.slots[0].name) + ".length" : len == Len::kDim ? "dim" : "rows";
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
  if (raw.argc != arity(op)) {
    return fail(kType, std::string(op.name) + " expects " + std::to_string(arity(op)) + " arguments");
  }
  for (size_t i = 0; i < n_slots; ++i) {
    const RawArray& r = raw.arrays[i];
    const char* name = op.slots[i].name;
    if (r.kind == RawArray::kTyped) {
      if (r.length == 0 && r.detached) return fail(kValue, quoted(name) + " must not be on a detached ArrayBuffer");
      ArrayArg& a = p[op.slots[i].role];
      a.present = true;
      a.type = r.type;
      a.length = r.length;
      a.data = r.data;
    } else if (!(r.kind == RawArray::kNullish && op.slots[i].nullable)) {
      return fail(kType, quoted(name) + " must be a Float32Array, Float64Array or Uint16Array");
    }
  }
  // The scalars, in the op's order: each of its JavaScript type, then its own range.
  double dtype = 0, cast = 0;
  for (size_t s = 0; s < op.scalars.size(); ++s) {
    const Scalar kind = op.scalars[s];
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
    }
  }

  const ArrayArg& first = p[op.slots[0].role];
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
    const ArrayArg& a = p[op.slots[i].role];
    if (!a.present) continue;
    const Elem el = op.slots[i].elem;
    Type want = el == Elem::kStat ? stat : first.type;
    if (el == Elem::kParam && half) {
      // float32 or the half type, the same for every parameter of the call.
      if (!param_seen && (a.type == Type::kF32 || a.type == Type::kU16)) p.param = a.type;
      want = p.param;
      param_seen = true;
    }
    if (a.type != want) {
      return fail(kType,
                  quoted(op.slots[i].name) + " must be a " + type_name(want) + ", received a " + type_name(a.type));
    }
  }
  if (first.length % p.dim != 0) {
    return fail(kRange,
                quoted(op.slots[0].name) + " must have a length that is a multiple of dim (" + std::to_string(p.dim) +
                    "), received length " + std::to_string(first.length),
                true);
  }
  p.rows = first.length / p.dim;
  for (size_t i = 1; i < n_slots; ++i) {
    const ArrayArg& a = p[op.slots[i].role];
    const size_t want = expected_length(op.slots[i].len, p, first.length);
    if (a.present && a.length != want) {
      return fail(kRange,
                  quoted(op.slots[i].name) + " must have length " + std::to_string(want) + " (" +
                      length_name(op.slots[i].len, op) + "), received length " + std::to_string(a.length),
                  true);
    }
  }
  // Outputs must not overlap any other array, except the one they may be in place on.
  for (size_t o = 0; o < n_slots; ++o) {
    if (!op.slots[o].output) continue;
    const ArrayArg& out = p[op.slots[o].role];
    for (size_t i = 0; i < n_slots; ++i) {
      const ArrayArg& other = p[op.slots[i].role];
      if (i == o || !overlaps(out, other)) continue;
      const bool same_ok = op.slots[o].same_ok == static_cast<int>(i);
      if (same_ok && same_view(out, other)) continue;
      return fail(kValue, quoted(op.slots[o].name) + " must not overlap \"" + op.slots[i].name + "\"" +
                              (same_ok ? " unless it is exactly the same view (in place)" : ""));
    }
  }
  const double kd = std::ceil(p.partial * static_cast<double>(p.dim));
  p.k = kd < 1 ? 1 : (kd > static_cast<double>(p.dim) ? p.dim : static_cast<size_t>(kd));
  return true;
}

}  // namespace args
}  // namespace rmsnorm
