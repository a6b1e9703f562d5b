// Formats the C++ sources with the clang-format binary of the `clang-format` npm package (a devDependency, so
// a fresh `npm install` is enough), or with --check only reports the files it would change (npm run lint).
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);

/** The clang-format executable the npm package ships for this platform, or null. */
export function clangFormatBinary() {
  const { getNativeBinary } = require('clang-format');
  try {
    return getNativeBinary();
  } catch {
    return null;
  }
}

/** Formats C++ text as the repository's .clang-format says (for generated files). */
export function formatCpp(text, assumeFilename) {
  const binary = clangFormatBinary();
  if (!binary) return text;
  const r = spawnSync(binary, [`--assume-filename=${assumeFilename}`, '--style=file'], {
    cwd: root,
    input: text,
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`clang-format failed: ${r.stderr}`);
  return r.stdout;
}

function sources() {
  const files = [];
  for (const dir of ['native', 'native/kernels', 'fuzz', 'bench/native']) {
    for (const name of readdirSync(path.join(root, dir))) {
      if (/\.(cc|h)$/.test(name)) files.push(path.join(dir, name));
    }
  }
  return files;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const check = process.argv.includes('--check');
  const binary = clangFormatBinary();
  if (!binary) {
    console.warn(
      `clang-format: the npm package has no binary for ${process.platform}-${process.arch}; C++ not checked`,
    );
    process.exit(0);
  }
  const files = sources();
  if (!check) {
    const r = spawnSync(binary, ['-i', '--style=file', ...files], { cwd: root, stdio: 'inherit' });
    process.exit(r.status ?? 1);
  }
  const bad = files.filter((f) => {
    const r = spawnSync(binary, ['--style=file', f], { cwd: root, encoding: 'utf8', maxBuffer: 1 << 26 });
    return r.status !== 0 || r.stdout !== readFileSync(path.join(root, f), 'utf8');
  });
  for (const f of bad) console.error(`${f} is not clang-formatted (npm run format)`);
  if (!bad.length) console.log(`clang-format: ${files.length} C++ files formatted`);
  process.exit(bad.length ? 1 : 0);
}
