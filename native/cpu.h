// CPU feature detection and kernel selection. Detection runs once per process (the answer cannot change);
// each addon instance keeps its own choice, capped by RMSNORM_ISA.
#pragma once

#include "kernels.h"

namespace rmsnorm {

constexpr int kMaxTables = 5;

// Kernel tables this CPU (and its operating system) can run, best first; always ends with the scalar table.
// Returns the number of entries written to out (at most kMaxTables).
int supported_tables(const KernelTable* out[kMaxTables]);

// The best supported table whose ISA is at or below `cap` in the order scalar < avx2 < avx512 < avx512bf16
// (x86-64) or scalar < neon (arm64). Returns null for a cap that is not an ISA name of this architecture.
const KernelTable* select_table(const char* cap);

}  // namespace rmsnorm
