// The files derived from the op table (lib/op-table.ts) must be what scripts/gen-ops.mjs makes of it today:
// binding.d.ts, lib/ops.gen.ts and native/ops.gen.h are committed, and `npm run gen` rewrites them.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
// @ts-expect-error: a plain ES module without types
import { generate } from '../../scripts/gen-ops.mjs';

const root = path.resolve(__dirname, '../..');

const files = await (generate as () => Promise<Record<string, string>>)();

describe('files generated from the op table', () => {
  it('covers the three derived files', () => {
    expect(Object.keys(files).sort()).toEqual(['binding.d.ts', 'lib/ops.gen.ts', 'native/ops.gen.h']);
  });
  for (const [file, text] of Object.entries(files)) {
    it(`${file} matches lib/op-table.ts (run npm run gen)`, () => {
      expect(readFileSync(path.join(root, file), 'utf8')).toBe(text);
    });
  }
});
