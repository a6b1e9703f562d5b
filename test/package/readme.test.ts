// Every ```js and ```ts block of README.md runs as written: each is saved inside the package (so that
// require('rmsnorm') resolves to this package by its own name) and run by node in a child process; TypeScript
// blocks are type-stripped first.
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const root = path.resolve(__dirname, '../..');
const readme = readFileSync(path.join(root, 'README.md'), 'utf8');
const blocks = [...readme.matchAll(/^```(js|ts)\n([\s\S]*?)^```$/gm)].map((m) => ({ lang: m[1]!, code: m[2]! }));

describe('README.md examples', () => {
  it('has examples to run', () => {
    expect(blocks.length).toBeGreaterThan(0);
  });

  blocks.forEach(({ lang, code }, i) => {
    it(`block ${i + 1} (${lang}) runs`, () => {
      const js =
        lang === 'ts'
          ? ts.transpileModule(code, {
              compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022 },
            }).outputText
          : code;
      const file = path.join(root, `test/.readme-example-${process.pid}-${i}.cjs`);
      writeFileSync(file, js);
      try {
        const r = spawnSync(process.execPath, [file], { cwd: root, encoding: 'utf8', timeout: 60_000 });
        expect(r.stderr.replace(/^.*RMSNORM_NATIVE_UNAVAILABLE.*\n(.*--trace-warnings.*\n)?/m, '')).toBe('');
        expect(r.status).toBe(0);
      } finally {
        rmSync(file, { force: true });
      }
    });
  });
});
