// The package as a user meets it: CommonJS and ES-module entry points, the loader's choices and its errors.
// Each case runs in a fresh Node.js process, since the backend is chosen once, at load.
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, rmSync, readFileSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const root = path.resolve(__dirname, '..', '..');
const version = (JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { version: string }).version;

function run(code: string, env: Record<string, string | undefined> = {}, opts: { cwd?: string; esm?: boolean } = {}) {
  const childEnv: Record<string, string | undefined> = {
    ...process.env,
    RMSNORM_BACKEND: undefined,
    RMSNORM_ISA: undefined,
    ...env,
  };
  for (const k of Object.keys(childEnv)) if (childEnv[k] === undefined) delete childEnv[k];
  const args = opts.esm ? ['--input-type=module', '-e', code] : ['-e', code];
  const r = spawnSync(process.execPath, args, {
    cwd: opts.cwd ?? root,
    env: childEnv as NodeJS.ProcessEnv,
    encoding: 'utf8',
  });
  return { status: r.status, stdout: r.stdout.trim(), stderr: r.stderr };
}

const supported = JSON.parse(
  run(`console.log(JSON.stringify(require('./build/Release/rmsnorm.node').supportedIsas()))`).stdout,
) as string[];

// A copy of the package with its JavaScript but no native binary anywhere: what a user gets on a platform
// with no prebuild and no compiler. It sits inside the repository so node-gyp-build still resolves.
const bare = mkdtempSync(path.join(root, 'test', '.bare-'));
cpSync(path.join(root, 'dist'), path.join(bare, 'dist'), { recursive: true });
cpSync(path.join(root, 'package.json'), path.join(bare, 'package.json'));
afterAll(() => rmSync(bare, { recursive: true, force: true }));

describe('entry points', () => {
  it('require() loads the native kernels and reports them', () => {
    const r = run(`const m = require('./'); console.log(JSON.stringify(m.backend()))`);
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({
      native: true,
      isa: supported[0],
      threads: os.availableParallelism(),
      version,
    });
  });

  it('import loads the same module instance and the same API', () => {
    const r = run(
      `import * as esm from 'rmsnorm'; import def from 'rmsnorm'; import { createRequire } from 'node:module';
       const cjs = createRequire(import.meta.url)('rmsnorm');
       const y = esm.rmsNorm(new Float32Array([3, 4]), null, { dim: 2, eps: 0 });
       console.log(JSON.stringify({ same: esm.rmsNorm === cjs.rmsNorm && def === cjs, names: Object.keys(cjs).sort().join() === Object.keys(esm).filter((k) => k !== 'default').sort().join(), y: Array.from(y), isa: esm.backend().isa }));`,
      {},
      { esm: true },
    );
    expect(r.stderr).toBe('');
    const got = JSON.parse(r.stdout) as { y: number[] };
    expect(got).toEqual({ same: true, names: true, y: expect.any(Array), isa: supported[0] });
    expect(got.y[0]).toBeCloseTo(3 / Math.sqrt(12.5), 6);
    expect(got.y[1]).toBeCloseTo(4 / Math.sqrt(12.5), 6);
  });
});

describe('loader', () => {
  it('RMSNORM_BACKEND=js uses the fallback without a warning', () => {
    const r = run(`const m = require('./'); console.log(JSON.stringify(m.backend()))`, { RMSNORM_BACKEND: 'js' });
    expect(JSON.parse(r.stdout)).toEqual({ native: false, isa: 'js', threads: 1, version });
    expect(r.stderr).toBe('');
  });

  it.each(['scalar', 'avx2', 'avx512', 'avx512bf16', 'neon'])('RMSNORM_ISA=%s caps the kernels', (cap) => {
    const rank: Record<string, number> = { scalar: 0, avx2: 1, neon: 1, avx512: 2, avx512bf16: 3 };
    const valid = process.arch === 'arm64' ? cap === 'scalar' || cap === 'neon' : cap !== 'neon';
    const r = run(`const m = require('./'); console.log(m.backend().isa)`, { RMSNORM_ISA: cap });
    if (valid) {
      expect(r.stdout).toBe(supported.find((isa) => rank[isa]! <= rank[cap]!));
      expect(r.stderr).toBe('');
    } else {
      // A name of another architecture: warned about, and ignored.
      expect(r.stdout).toBe(supported[0]);
      expect(r.stderr).toMatch(/RMSNORM_INVALID_ENV/);
    }
  });

  it('an unknown RMSNORM_ISA or RMSNORM_BACKEND warns with a code and keeps working', () => {
    const r = run(`const m = require('./'); console.log(m.backend().isa)`, {
      RMSNORM_ISA: 'sse9',
      RMSNORM_BACKEND: 'fastest',
    });
    expect(r.status).toBe(0);
    expect(r.stdout).toBe(supported[0]);
    expect(r.stderr).toMatch(/\[RMSNORM_INVALID_ENV\].*RMSNORM_BACKEND/);
    expect(r.stderr).toMatch(/\[RMSNORM_INVALID_ENV\].*RMSNORM_ISA="sse9"/);
  });

  it('without a native binary: the fallback runs, warns once with a code, and backend() says why', () => {
    const r = run(
      `const m = require('./');
       const y = m.rmsNorm(new Float32Array([3, 4]), null, { dim: 2, eps: 0 });
       m.rmsNorm(new Float32Array([3, 4]), null, { dim: 2 });
       const b = m.backend();
       console.log(JSON.stringify({ native: b.native, isa: b.isa, err: b.loadError && b.loadError.code, y: Array.from(y) }));`,
      {},
      { cwd: bare },
    );
    expect(r.status).toBe(0);
    const got = JSON.parse(r.stdout) as { y: number[] };
    expect(got).toEqual({
      native: false,
      isa: 'js',
      err: 'RMSNORM_NATIVE_UNAVAILABLE',
      y: [Math.fround(3 / Math.sqrt(12.5)), Math.fround(4 / Math.sqrt(12.5))],
    });
    expect(r.stderr.match(/\[RMSNORM_NATIVE_UNAVAILABLE\]/g)).toHaveLength(1);
  });

  it('without a native binary and RMSNORM_BACKEND=native: an actionable error', () => {
    const r = run(`require('./')`, { RMSNORM_BACKEND: 'native' }, { cwd: bare });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(new RegExp(`no native module could be loaded for ${process.platform}-${process.arch}`));
    // Every place it looked, as a concrete path, and why nothing loaded there.
    expect(r.stderr).toContain(`${path.join(bare, 'build', 'Release', '*.node')}: none`);
    expect(r.stderr).toContain(`${path.join(bare, 'build', 'Debug', '*.node')}: none`);
    expect(r.stderr).toContain(
      `${path.join(bare, 'prebuilds', `${process.platform}-${process.arch}`, '*.node')}: no such directory`,
    );
    expect(r.stderr).toMatch(/To build it from source .*cmake-js compile/);
  });

  it('a binary that is there but does not load is recorded, and the next candidate is tried', () => {
    // A file of the right name that is not a shared library: in build/Release it is skipped with a
    // warning and the prebuild loads; as the only prebuild, backend() reports it in loadError.attempts.
    const dir = mkdtempSync(path.join(root, 'test', '.bare-'));
    try {
      cpSync(path.join(root, 'dist'), path.join(dir, 'dist'), { recursive: true });
      cpSync(path.join(root, 'package.json'), path.join(dir, 'package.json'));
      const prebuild = path.join(dir, 'prebuilds', `${process.platform}-${process.arch}`, 'rmsnorm.napi.node');
      mkdirSync(path.dirname(prebuild), { recursive: true });
      writeFileSync(prebuild, 'not a shared library');
      const r = run(
        `const b = require('./').backend(); console.log(JSON.stringify({ isa: b.isa, attempts: b.loadError.attempts }))`,
        {},
        { cwd: dir },
      );
      const got = JSON.parse(r.stdout) as { isa: string; attempts: { file: string; error: string }[] };
      expect(got.isa).toBe('js');
      expect(got.attempts.map((a) => a.file)).toEqual([
        path.join(dir, 'build', 'Release', '*.node'),
        path.join(dir, 'build', 'Debug', '*.node'),
        prebuild,
      ]);
      expect(got.attempts[2]!.error).toMatch(/invalid ELF header|too short/);
      expect(r.stderr).toContain(`${prebuild}: `);

      mkdirSync(path.join(dir, 'build', 'Release'), { recursive: true });
      writeFileSync(path.join(dir, 'build', 'Release', 'rmsnorm.node'), 'not a shared library either');
      cpSync(path.join(root, 'build', 'Release', 'rmsnorm.node'), prebuild);
      const s = run(`console.log(require('./').backend().isa)`, {}, { cwd: dir });
      expect(s.status).toBe(0);
      expect(s.stdout).toBe(supported[0]);
      expect(s.stderr).toMatch(/\[RMSNORM_NATIVE_SKIPPED\].*build\/Release\/rmsnorm\.node/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('on Linux, the prebuild for this C library: .glibc.node on glibc, .musl.node on musl', () => {
    // Both flavours side by side, as the tarball ships them; the one for the other C library is not a library
    // at all, so loading it would show. Which C library this is comes from process.report (glibc builds of
    // Node.js record glibcVersionRuntime), so a report without it stands in for a musl Node.js here.
    const dir = mkdtempSync(path.join(root, 'test', '.bare-'));
    try {
      cpSync(path.join(root, 'dist'), path.join(dir, 'dist'), { recursive: true });
      cpSync(path.join(root, 'package.json'), path.join(dir, 'package.json'));
      const tupleDir = path.join(dir, 'prebuilds', `${process.platform}-${process.arch}`);
      mkdirSync(tupleDir, { recursive: true });
      const glibc = path.join(tupleDir, 'rmsnorm.napi.glibc.node');
      const musl = path.join(tupleDir, 'rmsnorm.napi.musl.node');
      const probe = `const b = require('./').backend(); console.log(JSON.stringify({ isa: b.isa, attempts: b.loadError ? b.loadError.attempts.slice(2) : [] }))`;
      const asMusl = `const r = process.report.getReport; process.report.getReport = () => ({ ...r.call(process.report), header: {} }); `;

      cpSync(path.join(root, 'build', 'Release', 'rmsnorm.node'), glibc);
      writeFileSync(musl, 'not a shared library');
      const onGlibc = run(probe, {}, { cwd: dir });
      expect(onGlibc.stderr).toBe('');
      expect(JSON.parse(onGlibc.stdout)).toEqual({ isa: supported[0], attempts: [] });
      for (const [code, env] of [
        [asMusl, {}],
        ['', { LIBC: 'musl' }],
      ] as const) {
        const onMusl = run(code + probe, env, { cwd: dir });
        const got = JSON.parse(onMusl.stdout) as { isa: string; attempts: { file: string; error: string }[] };
        expect(got.isa).toBe('js');
        expect(got.attempts.map((a) => a.file)).toEqual([musl]);
      }

      // And the other way round: a musl process loads the musl file, a glibc one never falls back to it.
      cpSync(path.join(root, 'build', 'Release', 'rmsnorm.node'), musl);
      writeFileSync(glibc, 'not a shared library');
      expect(JSON.parse(run(asMusl + probe, {}, { cwd: dir }).stdout)).toEqual({ isa: supported[0], attempts: [] });
      const glibcAgain = JSON.parse(run(probe, {}, { cwd: dir }).stdout) as {
        isa: string;
        attempts: { file: string }[];
      };
      expect(glibcAgain.isa).toBe('js');
      expect(glibcAgain.attempts.map((a) => a.file)).toEqual([glibc]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
