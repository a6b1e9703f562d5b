// The package as npm delivers it: `npm pack`, then `npm install <tarball>` into a fresh project with npm's
// defaults (npm 11 runs no dependency install script unless allowed, and the package needs none), then used
// from CommonJS, an ES module and TypeScript, with and without its prebuilt binary.
//
// The tarball holds prebuilds/: made by `npm run prebuilds` (.ci/run does it before `npm test`). When the one
// for this machine is missing or older than the native sources, this test builds it first (slower).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exec } from './exec';

const root = path.resolve(__dirname, '..', '..');
const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as {
  name: string;
  version: string;
  scripts: Record<string, string>;
  dependencies: Record<string, string>;
};
const tuple = `${process.platform}-${process.arch}`;
const prebuildName = 'rmsnorm.napi.glibc.node';
// Every platform's binary is in the one tarball (docs/platforms.md says why): it must stay small to download.
const MAX_TARBALL = 6 * 1024 * 1024;
// What `npm run prebuilds -- --all` makes (scripts/prebuild.mjs); .ci/run sets RMSNORM_TEST_PREBUILDS=all.
const ALL_PREBUILDS = [
  'linux-x64/rmsnorm.napi.glibc.node',
  'linux-x64/rmsnorm.napi.musl.node',
  'linux-arm64/rmsnorm.napi.glibc.node',
  'linux-arm64/rmsnorm.napi.musl.node',
  'darwin-x64/rmsnorm.napi.node',
  'darwin-arm64/rmsnorm.napi.node',
  'win32-x64/rmsnorm.napi.node',
];

// npm as the user runs it: the same npm as `npm test` when there is one, and none of the npm_* settings
// that `npm test` puts in the environment.
const npmCli = process.env.npm_execpath;
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!/^npm_/i.test(k) && !k.startsWith('RMSNORM_') && k !== 'NODE_OPTIONS' && !k.startsWith('VITEST')) env[k] = v;
  }
  return { ...env, ...extra };
}
async function npm(args: string[], cwd: string) {
  const [cmd, pre] = npmCli && /\.c?js$/.test(npmCli) ? [process.execPath, [npmCli]] : ['npm', []];
  const r = await exec(cmd, [...pre, ...args], { cwd, env: cleanEnv(), timeout: 120_000 });
  if (r.status !== 0) throw new Error(`npm ${args.join(' ')} failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}
function node(args: string[], cwd: string, env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, args, { cwd, env: cleanEnv(env), encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stdout: r.stdout.trim(), stderr: r.stderr };
}

// The best kernels this CPU should get, from /proc/cpuinfo rather than from the addon itself.
function expectedIsa(): string {
  if (process.arch === 'arm64') return 'neon';
  if (process.arch !== 'x64') return 'scalar';
  const flags = new Set(
    (/^flags\s*:(.*)$/m.exec(existsSync('/proc/cpuinfo') ? readFileSync('/proc/cpuinfo', 'utf8') : '')?.[1] ?? '')
      .trim()
      .split(/\s+/),
  );
  if (['avx512f', 'avx512bw', 'avx512dq', 'avx512vl'].every((f) => flags.has(f)))
    return flags.has('avx512_bf16') ? 'avx512bf16' : 'avx512';
  if (['avx2', 'fma', 'f16c'].every((f) => flags.has(f))) return 'avx2';
  return 'scalar';
}

const tmp = mkdtempSync(path.join(os.tmpdir(), 'rmsnorm-install-'));
const consumer = path.join(tmp, 'consumer');
const installed = path.join(consumer, 'node_modules', pkg.name);
let tarball = '';
let packed: { filename: string; files: { path: string }[] };

beforeAll(async () => {
  const current = await exec(process.execPath, ['scripts/prebuild.mjs', '--check', '--arch', process.arch], {
    cwd: root,
    timeout: 60_000,
  });
  if (process.platform === 'linux' && current.status !== 0) {
    const r = await exec(process.execPath, ['scripts/prebuild.mjs'], { cwd: root, timeout: 600_000 });
    if (r.status !== 0) throw new Error(`npm run prebuilds failed:\n${r.stdout}\n${r.stderr}`);
  }
  // --ignore-scripts: `prepare` would rebuild what `npm test` has just built (dist/ by pretest, the addon by
  // `npm run build`); the tarball's contents are the same.
  [packed] = JSON.parse(await npm(['pack', '--json', '--ignore-scripts', '--pack-destination', tmp], root)) as [
    typeof packed,
  ];
  tarball = path.join(tmp, packed.filename);
  mkdirSync(consumer);
  writeFileSync(
    path.join(consumer, 'package.json'),
    JSON.stringify({ name: 'consumer', version: '1.0.0', private: true }),
  );
  // node-gyp-build, the one runtime dependency, comes from npm's cache when it is there, else the registry.
  await npm(['install', tarball, '--prefer-offline', '--no-audit', '--no-fund'], consumer);
}, 900_000);

afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('npm pack', () => {
  it('the tarball holds the built JavaScript and types, the native sources and the stripped prebuilds, under 6 MB', () => {
    const files = packed.files.map((f) => f.path).sort();
    for (const f of [
      'package.json',
      'README.md',
      'dist/index.js',
      'dist/index.mjs',
      'dist/index.d.ts',
      'dist/loader.js',
      'binding.d.ts',
      'CMakeLists.txt',
      'native/kernels/forward.cc',
      'native/kernels/backward.cc',
      'native/kernels/numerics.h',
      'native/ops.gen.h',
      `prebuilds/${tuple}/${prebuildName}`,
    ]) {
      expect(files).toContain(f);
    }
    // CI cross-compiles linux-arm64 too (RMSNORM_TEST_ARM64=1); then it must ship.
    if (process.env.RMSNORM_TEST_ARM64 === '1') expect(files).toContain(`prebuilds/linux-arm64/${prebuildName}`);
    if (process.env.RMSNORM_TEST_PREBUILDS === 'all') {
      expect(files.filter((f) => f.startsWith('prebuilds/')).sort()).toEqual(
        ALL_PREBUILDS.map((f) => `prebuilds/${f}`).sort(),
      );
      expect(files).toContain('native/compat/glibc_compat.cc');
    }
    const stray = files.filter((f) =>
      /\.map$|^(lib|test|scripts|bench|examples|build|build-prebuild|cmake|\.ci)\/|node_modules|\.tgz$/.test(f),
    );
    expect(stray).toEqual([]);
    expect(statSync(tarball).size).toBeLessThan(MAX_TARBALL);

    // Nothing for npm to run or block at install: no install scripts and no binding.gyp (which npm would
    // answer with an implicit `node-gyp rebuild`).
    for (const s of ['preinstall', 'install', 'postinstall']) expect(pkg.scripts[s]).toBeUndefined();
    expect(files).not.toContain('binding.gyp');
    expect(Object.keys(pkg.dependencies)).toEqual(['node-gyp-build']);

    const readelf = spawnSync('readelf', ['-S', path.join(root, 'prebuilds', tuple, prebuildName)], {
      encoding: 'utf8',
    });
    if (readelf.status === 0) expect(readelf.stdout).not.toMatch(/\.symtab|\.debug_/);
  });
});

describe('installed from the tarball', () => {
  const call = `const y = m.rmsNorm(new Float32Array([2, 2, -4, 4]), null, { dim: 2, eps: 0 });`;
  const report = (extra = '') =>
    `JSON.stringify({ ...m.backend(), loadError: m.backend().loadError && m.backend().loadError.code, y: Array.from(y)${extra} })`;
  const expectedY = [1, 1, -1, 1]; // exact: each row's mean square is a square

  it('require() loads the prebuilt binary and the best kernels of this CPU', () => {
    const r = node(
      [
        '-e',
        `const m = require('rmsnorm'); ${call}
      console.log(${report(`, files: Object.keys(require.cache).filter((f) => f.endsWith('.node'))`)})`,
      ],
      consumer,
    );
    expect(r.stderr).toBe('');
    const got = JSON.parse(r.stdout) as Record<string, unknown>;
    expect(got).toMatchObject({ native: true, isa: expectedIsa(), version: pkg.version, y: expectedY });
    expect(got.loadError).toBeUndefined();
    expect(got.files).toEqual([path.join(installed, 'prebuilds', tuple, prebuildName)]);
  });

  it('import loads the same, with named and default exports', () => {
    const r = node(
      [
        '--input-type=module',
        '-e',
        `import * as m from 'rmsnorm'; import d from 'rmsnorm'; ${call}
      if (d.rmsNorm !== m.rmsNorm) throw new Error('default export differs'); console.log(${report()});`,
      ],
      consumer,
    );
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toMatchObject({ native: true, isa: expectedIsa(), y: expectedY });
  });

  it('TypeScript: the shipped types accept a correct call and reject a wrong one (CommonJS and nodenext)', () => {
    const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc');
    const options = (module: string, resolution: string, extra: Record<string, unknown> = {}) => ({
      compilerOptions: {
        strict: true,
        types: [],
        lib: ['es2022'],
        target: 'es2022',
        module,
        moduleResolution: resolution,
        ...extra,
      },
    });
    // No @types/node in the consumer: the package's types must not need them.
    writeFileSync(
      path.join(consumer, 'ok.ts'),
      `import { rmsNorm, rmsNormBackward, backend, RMSNorm, type Isa } from 'rmsnorm';
declare const console: { log(...a: unknown[]): void };
const y: Float32Array = rmsNorm(new Float32Array([2, 2, -4, 4]), null, { dim: 2, eps: 0 });
const z: Float64Array = rmsNorm(new Float64Array(8), new Float64Array(4), { eps: 1e-5 });
const g = rmsNormBackward(new Float32Array(8), new Float32Array(8), new Float32Array(4));
const isa: Isa = backend().isa;
new RMSNorm(4).forward(new Float32Array(8));
console.log(JSON.stringify({ y: Array.from(y), z: z.length, dx: g.dx.length, isa }));
`,
    );
    writeFileSync(
      path.join(consumer, 'ok.mts'),
      `import * as m from 'rmsnorm';\nimport d from 'rmsnorm';\nexport const y: Float32Array = m.rmsNorm(new Float32Array(8), new Float32Array(4));\nexport const same: boolean = d.backend().isa === m.backend().isa;\n`,
    );
    writeFileSync(
      path.join(consumer, 'bad.ts'),
      `import { rmsNorm } from 'rmsnorm';\n\nrmsNorm(new Float32Array(8), new Float64Array(4));\n`,
    );
    writeFileSync(
      path.join(consumer, 'tsconfig.cjs.json'),
      JSON.stringify({ ...options('commonjs', 'node10', { outDir: 'out' }), files: ['ok.ts'] }),
    );
    writeFileSync(
      path.join(consumer, 'tsconfig.esm.json'),
      JSON.stringify({ ...options('nodenext', 'nodenext', { noEmit: true }), files: ['ok.mts', 'ok.ts'] }),
    );
    writeFileSync(
      path.join(consumer, 'tsconfig.bad.json'),
      JSON.stringify({ ...options('commonjs', 'node10', { noEmit: true }), files: ['bad.ts'] }),
    );

    const cjs = node([tsc, '-p', 'tsconfig.cjs.json'], consumer);
    expect(cjs.stdout + cjs.stderr).toBe('');
    expect(cjs.status).toBe(0);
    const esm = node([tsc, '-p', 'tsconfig.esm.json'], consumer);
    expect(esm.stdout + esm.stderr).toBe('');
    expect(esm.status).toBe(0);
    const bad = node([tsc, '-p', 'tsconfig.bad.json'], consumer);
    expect(bad.status).not.toBe(0);
    expect(bad.stdout).toMatch(
      /bad\.ts\(3,30\): error TS2345: Argument of type 'Float64Array.*' is not assignable to parameter of type 'Float32Array.*'/,
    );

    const ran = node([path.join('out', 'ok.js')], consumer);
    expect(ran.stderr).toBe('');
    expect(JSON.parse(ran.stdout)).toEqual({ y: expectedY, z: 8, dx: 8, isa: expectedIsa() });
  });

  it('without the prebuilt binary: the fallback runs and warns once with RMSNORM_NATIVE_UNAVAILABLE', () => {
    const prebuilds = path.join(installed, 'prebuilds');
    renameSync(prebuilds, `${prebuilds}.away`);
    try {
      const r = node(
        [
          '-e',
          `const m = require('rmsnorm'); ${call} m.rmsNorm(new Float32Array(2), null, { dim: 2 }); console.log(${report()})`,
        ],
        consumer,
      );
      expect(r.status).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({
        native: false,
        isa: 'js',
        loadError: 'RMSNORM_NATIVE_UNAVAILABLE',
        y: expectedY,
      });
      expect(r.stderr.match(/\[RMSNORM_NATIVE_UNAVAILABLE\]/g)).toHaveLength(1);
      expect(r.stderr).toContain(path.join(prebuilds, tuple, '*.node'));

      const strict = node(['-e', `require('rmsnorm')`], consumer, { RMSNORM_BACKEND: 'native' });
      expect(strict.status).not.toBe(0);
      expect(strict.stderr).toContain(`${path.join(installed, 'build', 'Release', '*.node')}: none`);
      expect(strict.stderr).toContain(`${path.join(prebuilds, tuple, '*.node')}: no such directory`);
      expect(strict.stderr).toContain(
        `cd ${installed} && npm install --ignore-scripts --no-package-lock && npx cmake-js compile --out build`,
      );
    } finally {
      renameSync(`${prebuilds}.away`, prebuilds);
    }
  });
});
