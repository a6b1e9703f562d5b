// Checks that a cmake-js build of the addon runs on every CPU of its architecture: only the per-ISA kernel
// objects (kernels_avx2, kernels_avx512, kernels_avx512bf16) may contain instructions beyond the architecture's baseline
// (x86-64 = SSE2; AArch64 = ARMv8.0-A with Advanced SIMD), and nothing in them may be reachable without
// going through the kernel table that cpu.cc hands out only after cpuid + xgetbv said yes:
//   - the baseline objects (binding, cpu, pool, kernels_scalar, and kernels_neon, NEON being AArch64
//     baseline) contain no AVX/AVX-512 (VEX/EVEX), SSE3..SSE4.2, POPCNT/LZCNT/BMI/MOVBE... instruction;
//     cpu.cc alone may use xgetbv, which it runs only after cpuid reported OSXSAVE;
//   - the ISA objects define no global or weak symbol except their kernel table and the entry points in their
//     own namespace rmsnorm::<isa> (which table.cc gathers into the table: a shared inline function or template
//     instantiated there could otherwise be picked by the linker for baseline callers), and no static
//     initializer (which would run at load on any CPU).
// Usage: node scripts/check-baseline.mjs <cmake-js build dir> <x64|arm64>. Exits non-zero with a list of
// offending instructions or symbols. Needs binutils for the target (objdump, nm; aarch64-linux-gnu-* for arm64).
import { execFileSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const X86_BEYOND_BASELINE = new RegExp(
  '^(' +
    [
      // SSE3, SSSE3
      'addsubp[sd]',
      'h(add|sub)p[sd]',
      'lddqu',
      'movddup',
      'movs[hl]dup',
      'fisttp',
      'monitor',
      'mwait',
      'pabs[bwd]',
      'palignr',
      'ph(add|sub)(w|d|sw)',
      'pmaddubsw',
      'pmulhrsw',
      'pshufb',
      'psign[bwd]',
      // SSE4.1, SSE4.2
      'blendv?p[sd]',
      'dpp[sd]',
      'extractps',
      'insertps',
      'movntdqa',
      'mpsadbw',
      'packusdw',
      'pblendvb',
      'pblendw',
      'pcmpeqq',
      'pextr[bdq]',
      'phminposuw',
      'pinsr[bdq]',
      'pm(ax|in)(sb|sd|ud|uw)',
      'pmov[sz]x.*',
      'pmuldq',
      'pmulld',
      'ptest',
      'round[ps][sd]',
      'crc32.*',
      'pcmp[ei]str[im]',
      'pcmpgtq',
      // bit manipulation and friends
      'popcnt',
      'lzcnt',
      'tzcnt',
      'andn',
      'bextr',
      'blsi',
      'blsmsk',
      'blsr',
      'bzhi',
      'mulx',
      'pdep',
      'pext',
      'rorx',
      'sarx',
      'shlx',
      'shrx',
      'movbe',
      'cmpxchg16b',
      'adcx',
      'adox',
      'rdrand',
      'rdseed',
      // AVX, AVX2, FMA, F16C, AVX-512: every VEX/EVEX mnemonic starts with v (verr/verw are not AVX)
      'v(?!err|erw).*',
      'k(and|andn|or|xor|xnor|not|mov|shift.*|test|unpck.*|ortest|add)[bwdq]?',
      // XSAVE: only cpu.cc may read XCR0, and only after checking OSXSAVE
      'xgetbv',
    ].join('|') +
    ')$',
);
const X86_WIDE_REGISTER = /\b([yz]mm\d+|k[0-7])\b/;

const ARM64_BEYOND_BASELINE = new RegExp(
  '^(' +
    [
      // LSE atomics (ARMv8.1): GCC calls out-of-line helpers that check at run time instead
      'casp?(a|l|al)?[bh]?',
      'ld(add|clr|eor|set|smax|smin|umax|umin)(a|l|al)?[bh]?',
      'st(add|clr|eor|set|smax|smin|umax|umin)l?[bh]?',
      'swp(a|l|al)?[bh]?',
      // optional or later extensions: CRC32, RCpc, dot product, int8/bf16 matrix, JavaScript conversion
      'crc32c?[bhwx]',
      'ldapu?r[bh]?',
      '[su]dot',
      'usdot',
      '[su]?mmla',
      'usmmla',
      'bf(cvt.*|dot|mmla.*)',
      'fjcvtzs',
    ].join('|') +
    ')$',
);
const ARM64_SVE_OPERAND = /\b(z\d+\.[bhsdq]|p\d+\/[zm])\b/;

function listObjects(dir) {
  const out = [];
  const walk = (d) => {
    for (const name of readdirSync(d)) {
      const p = path.join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (name.endsWith('.o')) out.push(p);
    }
  };
  walk(path.join(dir, 'CMakeFiles'));
  return out.sort();
}

// Which kernel target an object belongs to ("avx2", "avx512", "avx512bf16", "neon", "scalar"), or null for the rest.
function isaOf(object) {
  const m = /kernels_([a-z0-9]+)\.dir/.exec(object);
  return m ? m[1] : null;
}

function disassemble(objdump, object, intel) {
  const args = ['-d', '--no-show-raw-insn', ...(intel ? ['-M', 'intel'] : []), object];
  return execFileSync(objdump, args, { encoding: 'utf8', maxBuffer: 256 << 20 });
}

export function checkBaseline(buildDir, arch, { tools = '' } = {}) {
  const objdump = `${tools}objdump`;
  const nm = `${tools}nm`;
  const objects = listObjects(buildDir);
  if (objects.length === 0) throw new Error(`no object files under ${buildDir}/CMakeFiles`);
  const problems = [];
  const summary = [];
  for (const object of objects) {
    const isa = isaOf(object);
    const rel = path.relative(buildDir, object);
    const wide = arch === 'x64' && (isa === 'avx2' || isa === 'avx512' || isa === 'avx512bf16');
    if (wide) {
      // Only the kernel table and this ISA's own namespace may be visible to the linker, and nothing may run
      // before the table is chosen.
      const symbols = execFileSync(nm, ['--defined-only', '--extern-only', object], { encoding: 'utf8' })
        .split('\n')
        .filter(Boolean)
        .map((line) => line.trim().split(/\s+/).pop());
      const own = `_ZN7rmsnorm${isa.length}${isa}`; // rmsnorm::<isa>::
      const extra = symbols.filter((s) => !/kernel_table_/.test(s) && !s.startsWith(own));
      if (extra.length) problems.push(`${rel}: defines symbols other than its kernel table: ${extra.join(', ')}`);
      const sections = execFileSync(objdump, ['-h', object], { encoding: 'utf8' });
      if (/\.(init_array|ctors|preinit_array)\b/.test(sections)) problems.push(`${rel}: has a static initializer`);
      summary.push(
        `${rel}: ${isa} kernels (${symbols.length} exported symbol${symbols.length === 1 ? '' : 's'}: ${symbols.join(', ')})`,
      );
      continue;
    }
    let current = '?';
    let count = 0;
    const bad = new Map();
    for (const line of disassemble(objdump, object, arch === 'x64').split('\n')) {
      const fn = /^[0-9a-f]+ <(.+)>:$/.exec(line);
      if (fn) {
        current = fn[1];
        continue;
      }
      const insn = /^\s*[0-9a-f]+:\s+(\S+)\s*(.*)$/.exec(line);
      if (!insn) continue;
      count++;
      let mnemonic = insn[1];
      let operands = insn[2];
      if (/^(rep[a-z]*|lock|data16|addr32|notrack|bnd|cs|ds|es|ss|fs|gs)$/.test(mnemonic)) {
        const rest = /^(\S+)\s*(.*)$/.exec(operands) ?? [];
        mnemonic = rest[1] ?? mnemonic;
        operands = rest[2] ?? '';
      }
      let offending = false;
      if (arch === 'x64') {
        offending = X86_BEYOND_BASELINE.test(mnemonic) || X86_WIDE_REGISTER.test(operands);
        if (mnemonic === 'xgetbv' && /cpu\.cc\.o$/.test(object)) offending = false;
      } else {
        offending = ARM64_BEYOND_BASELINE.test(mnemonic) || ARM64_SVE_OPERAND.test(operands);
      }
      if (offending) {
        const key = `${mnemonic} in ${current}`;
        bad.set(key, (bad.get(key) ?? 0) + 1);
      }
    }
    for (const [key, n] of bad) problems.push(`${rel}: ${key}${n > 1 ? ` (${n}×)` : ''}`);
    summary.push(`${rel}: ${count} instructions, ${bad.size === 0 ? 'baseline only' : `${bad.size} beyond baseline`}`);
  }
  return { ok: problems.length === 0, problems, summary };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [dir, arch = process.arch] = process.argv.slice(2);
  if (!dir || (arch !== 'x64' && arch !== 'arm64')) {
    console.error('usage: node scripts/check-baseline.mjs <cmake-js build dir> <x64|arm64>');
    process.exit(2);
  }
  const tools = arch !== process.arch && arch === 'arm64' ? 'aarch64-linux-gnu-' : '';
  const result = checkBaseline(path.resolve(dir), arch, { tools });
  for (const line of result.summary) console.log(line);
  for (const line of result.problems) console.error(`beyond the ${arch} baseline: ${line}`);
  process.exit(result.ok ? 0 : 1);
}
