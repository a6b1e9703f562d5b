// One target's KernelTable: the forward and backward entry points of this instruction set (forward.cc,
// backward.cc) for every data and parameter type, and the array conversions. cpu.cc picks a table at load time.
#include "entry.h"
#include "numerics.h"

namespace rmsnorm {
namespace {

template <typename T, typename W>
constexpr OpTable<T, W> op_table() {
  return {&RMSNORM_ISA::rms_norm_rows<T, W>, &RMSNORM_ISA::layer_norm_rows<T, W>, &RMSNORM_ISA::add_rms_norm_rows<T, W>,
          &RMSNORM_ISA::rms_norm_backward_rows<T, W>, &RMSNORM_ISA::layer_norm_backward_rows<T, W>};
}

}  // namespace

#define RMSNORM_STR2(x) #x
#define RMSNORM_STR(x) RMSNORM_STR2(x)
#define RMSNORM_TABLE_NAME2(isa) kernel_table_##isa
#define RMSNORM_TABLE_NAME(isa) RMSNORM_TABLE_NAME2(isa)

extern const KernelTable RMSNORM_TABLE_NAME(RMSNORM_ISA) = {
    RMSNORM_STR(RMSNORM_ISA),   op_table<float, float>(),
    op_table<double, double>(), op_table<bf16_t, bf16_t>(),
    op_table<bf16_t, float>(),  op_table<f16_t, f16_t>(),
    op_table<f16_t, float>(),   {&from_float<bf16_t>, &to_float<bf16_t>, &from_float<f16_t>, &to_float<f16_t>},
};

}  // namespace rmsnorm
