// Node-API entry points. The TypeScript facade (lib/validate.ts) checks every argument first and produces the
// user-facing errors; this file checks again, defensively, so that a call that slips past the facade gets an
// exception and never reaches a kernel with bad pointers or lengths.
//
// The hot path of a call: one callback, one napi_get_typedarray_info per array, a few napi_get_value_double,
// no allocation.
#include <napi.h>

#include <cmath>
#include <cstdint>
#include <string>

#include "cpu.h"
#include "kernels.h"

namespace {

using rmsnorm::KernelTable;
using rmsnorm::NormArgs;

[[noreturn]] void fail(napi_env env, const char* code, const std::string& message, bool range = false) {
  Napi::Error error = range ? Napi::Error(Napi::RangeError::New(env, message))
                            : Napi::Error(Napi::TypeError::New(env, message));
  error.Set("code", Napi::String::New(env, code));
  throw error;
}

struct ArrayArg {
  bool present = false;
  napi_typedarray_type type = napi_float32_array;
  size_t length = 0;
  void* data = nullptr;
  size_t bytes() const { return length * (type == napi_float64_array ? 8 : 4); }
};

bool is_detached(napi_env env, napi_value typed_array) {
  napi_value buffer;
  bool detached = false;
  return napi_get_typedarray_info(env, typed_array, nullptr, nullptr, nullptr, &buffer, nullptr) == napi_ok &&
         napi_is_detached_arraybuffer(env, buffer, &detached) == napi_ok && detached;
}

// Reads a typed-array argument with one napi call. Null and undefined are accepted when `optional`.
ArrayArg read_array(napi_env env, napi_value v, const char* name, bool optional) {
  ArrayArg a;
  // Not asking for the ArrayBuffer: creating its handle costs as much as the rest of the call.
  if (napi_get_typedarray_info(env, v, &a.type, &a.length, &a.data, nullptr, nullptr) == napi_ok) {
    if (a.type != napi_float32_array && a.type != napi_float64_array) {
      fail(env, "ERR_INVALID_ARG_TYPE",
           std::string("The \"") + name + "\" argument must be a Float32Array or Float64Array");
    }
    if (a.length == 0 && is_detached(env, v)) {
      fail(env, "ERR_INVALID_ARG_VALUE", std::string("The \"") + name + "\" argument must not be on a detached ArrayBuffer");
    }
    a.present = true;
    return a;
  }
  napi_valuetype t;
  if (optional && napi_typeof(env, v, &t) == napi_ok && (t == napi_null || t == napi_undefined)) return a;
  fail(env, "ERR_INVALID_ARG_TYPE", std::string("The \"") + name + "\" argument must be a Float32Array or Float64Array");
}

double read_number(napi_env env, napi_value v, const char* name) {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok) {
    fail(env, "ERR_INVALID_ARG_TYPE", std::string("The \"") + name + "\" argument must be of type number");
  }
  return d;
}

void expect_same_type(napi_env env, const ArrayArg& x, const ArrayArg& a, const char* name) {
  if (a.present && a.type != x.type) {
    fail(env, "ERR_INVALID_ARG_TYPE", std::string("The \"") + name + "\" argument must have the element type of \"x\"");
  }
}

void expect_length(napi_env env, const ArrayArg& a, size_t length, const char* name, const char* what) {
  if (a.present && a.length != length) {
    fail(env, "ERR_OUT_OF_RANGE",
         std::string("The \"") + name + "\" argument must have length " + std::to_string(length) + " (" + what +
             "), received length " + std::to_string(a.length),
         true);
  }
}

// An output may be exactly the same view as an input (in place) when `same_ok`, and must not overlap it otherwise.
void expect_disjoint(napi_env env, const ArrayArg& out, const char* out_name, const ArrayArg& in, const char* in_name,
                     bool same_ok) {
  if (!out.present || !in.present || out.length == 0 || in.length == 0) return;
  const auto o = reinterpret_cast<uintptr_t>(out.data), i = reinterpret_cast<uintptr_t>(in.data);
  if (same_ok && o == i && out.bytes() == in.bytes()) return;
  if (o < i + in.bytes() && i < o + out.bytes()) {
    // Same text as lib/validate.ts checkDisjoint: with the native backend this is the check users see.
    fail(env, "ERR_INVALID_ARG_VALUE",
         std::string("The \"") + out_name + "\" argument must not overlap \"" + in_name + "\"" +
             (same_ok ? " unless it is exactly the same view (in place)" : ""));
  }
}

size_t read_dim(napi_env env, napi_value v) {
  const double d = read_number(env, v, "dim");
  if (!(d >= 1 && d <= 9007199254740991.0) || std::floor(d) != d) {
    fail(env, "ERR_OUT_OF_RANGE", "The \"dim\" argument must be a positive integer", true);
  }
  return static_cast<size_t>(d);
}

class Addon : public Napi::Addon<Addon> {
 public:
  Addon(Napi::Env env, Napi::Object exports) {
    const KernelTable* tables[4];
    table_ = rmsnorm::supported_tables(tables) > 0 ? tables[0] : &rmsnorm::kernel_table_scalar;
    DefineAddon(exports, {
                             InstanceMethod("supportedIsas", &Addon::SupportedIsas),
                             InstanceMethod("selectIsa", &Addon::SelectIsa),
                             InstanceMethod("isa", &Addon::Isa),
                         });
    exports.Set("rmsNorm", RawFunction(env, "rmsNorm", &Addon::RmsNorm));
  }

 private:
  const KernelTable* table_;

  Napi::Function RawFunction(napi_env env, const char* name, napi_callback cb) {
    napi_value fn;
    NAPI_THROW_IF_FAILED(env, napi_create_function(env, name, NAPI_AUTO_LENGTH, cb, this, &fn), Napi::Function());
    return Napi::Function(env, fn);
  }

  Napi::Value SupportedIsas(const Napi::CallbackInfo& info) {
    const KernelTable* tables[4];
    const int n = rmsnorm::supported_tables(tables);
    Napi::Array out = Napi::Array::New(info.Env(), n);
    for (int i = 0; i < n; ++i) out.Set(i, Napi::String::New(info.Env(), tables[i]->isa));
    return out;
  }

  // selectIsa(cap): use the best kernels at or below `cap`; returns the ISA now in use.
  Napi::Value SelectIsa(const Napi::CallbackInfo& info) {
    if (info.Length() < 1 || !info[0].IsString()) fail(info.Env(), "ERR_INVALID_ARG_TYPE", "The \"isa\" argument must be a string");
    const std::string cap = info[0].As<Napi::String>().Utf8Value();
    const KernelTable* t = rmsnorm::select_table(cap.c_str());
    if (!t) fail(info.Env(), "ERR_INVALID_ARG_VALUE", "The \"isa\" argument must name an instruction set of this architecture, received '" + cap + "'");
    table_ = t;
    return Napi::String::New(info.Env(), t->isa);
  }

  Napi::Value Isa(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), table_->isa); }

  // rmsNorm(x, weight, bias, out, rstd, dim, eps, offset, partial). A raw napi_callback rather than an
  // InstanceMethod: node-addon-api's CallbackInfo heap-allocates the argument list past six arguments.
  static napi_value RmsNorm(napi_env env, napi_callback_info cbinfo) {
    napi_value argv[9];
    size_t argc = 9;
    void* self = nullptr;
    if (napi_get_cb_info(env, cbinfo, &argc, argv, nullptr, &self) != napi_ok) return nullptr;
    try {
      if (argc != 9) fail(env, "ERR_INVALID_ARG_TYPE", "rmsNorm expects 9 arguments");
      static_cast<Addon*>(self)->RmsNormChecked(env, argv);
    } catch (const Napi::Error& e) {
      e.ThrowAsJavaScriptException();
    }
    return nullptr;
  }

  void RmsNormChecked(napi_env env, napi_value* argv) {
    const ArrayArg x = read_array(env, argv[0], "x", false);
    const ArrayArg w = read_array(env, argv[1], "weight", true);
    const ArrayArg b = read_array(env, argv[2], "options.bias", true);
    const ArrayArg y = read_array(env, argv[3], "options.out", false);
    const ArrayArg rs = read_array(env, argv[4], "options.rstd", true);
    const size_t dim = read_dim(env, argv[5]);
    const double eps = read_number(env, argv[6], "options.eps");
    const double offset = read_number(env, argv[7], "options.offset");
    const double partial = read_number(env, argv[8], "options.partial");
    if (!(eps >= 0 && eps <= 1.7976931348623157e308)) fail(env, "ERR_OUT_OF_RANGE", "The \"options.eps\" argument must be a finite number >= 0", true);
    if (!std::isfinite(offset)) fail(env, "ERR_OUT_OF_RANGE", "The \"options.offset\" argument must be a finite number", true);
    if (!(partial > 0 && partial <= 1)) fail(env, "ERR_OUT_OF_RANGE", "The \"options.partial\" argument must be in (0, 1]", true);
    if (offset != 0 && !w.present) fail(env, "ERR_INVALID_ARG_VALUE", "The \"options.offset\" argument requires a weight (weight is null)");
    expect_same_type(env, x, w, "weight");
    expect_same_type(env, x, b, "options.bias");
    expect_same_type(env, x, y, "options.out");
    expect_same_type(env, x, rs, "options.rstd");
    if (x.length % dim != 0) {
      fail(env, "ERR_OUT_OF_RANGE",
           "The \"x\" argument must have a length that is a multiple of dim (" + std::to_string(dim) +
               "), received length " + std::to_string(x.length),
           true);
    }
    const size_t rows = x.length / dim;
    expect_length(env, w, dim, "weight", "dim");
    expect_length(env, b, dim, "options.bias", "dim");
    expect_length(env, y, x.length, "options.out", "x.length");
    expect_length(env, rs, rows, "options.rstd", "rows");
    expect_disjoint(env, y, "options.out", x, "x", true);
    expect_disjoint(env, y, "options.out", w, "weight", false);
    expect_disjoint(env, y, "options.out", b, "options.bias", false);
    expect_disjoint(env, rs, "options.rstd", x, "x", false);
    expect_disjoint(env, rs, "options.rstd", y, "options.out", false);
    expect_disjoint(env, rs, "options.rstd", w, "weight", false);
    expect_disjoint(env, rs, "options.rstd", b, "options.bias", false);

    const double kd = std::ceil(partial * static_cast<double>(dim));
    const size_t k = kd < 1 ? 1 : (kd > static_cast<double>(dim) ? dim : static_cast<size_t>(kd));
    if (x.type == napi_float32_array) {
      Run(table_->rms_norm_f32, Args<float>(x, w, b, y, rs, rows, dim, k, eps, offset));
    } else {
      Run(table_->rms_norm_f64, Args<double>(x, w, b, y, rs, rows, dim, k, eps, offset));
    }
  }

  template <typename T>
  static NormArgs<T> Args(const ArrayArg& x, const ArrayArg& w, const ArrayArg& b, const ArrayArg& y,
                          const ArrayArg& rs, size_t rows, size_t dim, size_t k, double eps, double offset) {
    NormArgs<T> a;
    a.x = static_cast<const T*>(x.data);
    a.y = static_cast<T*>(y.data);
    a.weight = w.present ? static_cast<const T*>(w.data) : nullptr;
    a.bias = b.present ? static_cast<const T*>(b.data) : nullptr;
    a.rstd = rs.present ? static_cast<T*>(rs.data) : nullptr;
    a.rows = rows;
    a.dim = dim;
    a.k = k;
    a.eps = eps;
    a.offset = offset;
    return a;
  }

  template <typename T>
  static void Run(rmsnorm::RowKernel<T> kernel, const NormArgs<T>& a) {
    if (a.rows > 0) kernel(a, 0, a.rows);
  }
};

}  // namespace

NODE_API_ADDON(Addon)
