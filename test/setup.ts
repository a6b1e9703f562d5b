// What the current vitest project (see vitest.config.mts) asked for, and what it should have got.
import { createRequire } from 'node:module';
import * as path from 'node:path';

const require = createRequire(import.meta.url);

export const requested = process.env.RMSNORM_TEST_BACKEND ?? 'js';
export const nativeRequested = requested !== 'js';

/** ISAs the CPU supports, best first (empty when the addon cannot load at all). */
export function supportedIsas(): string[] {
  try {
    // The file the loader was told to use (a sanitized build, a prebuild under test), else the source build.
    const file = process.env.RMSNORM_BINARY
      ? path.resolve(process.env.RMSNORM_BINARY)
      : '../build/Release/rmsnorm.node';
    return (require(file) as { supportedIsas(): string[] }).supportedIsas();
  } catch {
    return [];
  }
}

const rank: Record<string, number> = { scalar: 0, avx2: 1, neon: 1, avx512: 2, avx512bf16: 3 };

/** The ISA a cap should select: the best supported one at or below it. */
export function expectedIsa(): string {
  if (!nativeRequested) return 'js';
  return supportedIsas().find((isa) => rank[isa]! <= rank[requested]!) ?? 'scalar';
}
