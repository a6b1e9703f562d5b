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
//
// checkLinked(file, target) checks a linked prebuild against its target's floor (scripts/prebuild.mjs runs both
// on every build, and `--check` before publishing):
//   - linux (glibc): no symbol version above GLIBC_2.17, no GLIBCXX_* or CXXABI_* at all (libstdc++ is linked
//     in), no libstdc++.so among the needed libraries, and only the Node-API entry points exported;
//   - linux (musl): needs only musl's libc (libc.so), no glibc symbol version;
//   - win32: imports only NODE.EXE, KERNEL32.dll and msvcrt.dll (no MinGW runtime DLL);
//   - darwin: a Mach-O dylib or bundle for the right CPU that loads only libSystem, and for arm64 a code
//     signature (arm64 macOS runs no unsigned code).
// As a command: node scripts/check-baseline.mjs --linked <file> <target>.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
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
      else if (name.endsWith('.o') || name.endsWith('.obj')) out.push(p);
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
        if (mnemonic === 'xgetbv' && /cpu\.cc\.o(bj)?$/.test(object)) offending = false;
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

export const GLIBC_FLOOR = '2.17';
const versionLess = (a, b) => a.localeCompare(b, 'en', { numeric: true }) < 0;
const ELF_MACHINE = { x64: 62, arm64: 183 };
const MACHO_CPU = { x64: 0x01000007, arm64: 0x0100000c };
const NAPI_EXPORTS = ['napi_register_module_v1', 'node_api_module_get_api_version_v1'];

// The load commands of a 64-bit little-endian Mach-O file that the check needs.
function machO(buf) {
  if (buf.length < 32 || buf.readUInt32LE(0) !== 0xfeedfacf) return null;
  const out = { cpu: buf.readUInt32LE(4), filetype: buf.readUInt32LE(12), dylibs: [], signed: false, minos: null };
  let off = 32;
  for (let i = 0, n = buf.readUInt32LE(16); i < n && off + 8 <= buf.length; i++) {
    const cmd = buf.readUInt32LE(off);
    const size = buf.readUInt32LE(off + 4);
    if (cmd === 0xc || cmd === 0x80000018 || cmd === 0x8000001f || cmd === 0x80000023) {
      // LC_LOAD_DYLIB, LC_LOAD_WEAK_DYLIB, LC_REEXPORT_DYLIB, LC_LOAD_UPWARD_DYLIB: name at offset (cmd + 8)
      const name = buf.subarray(off + buf.readUInt32LE(off + 8), off + size);
      out.dylibs.push(name.subarray(0, name.indexOf(0) < 0 ? name.length : name.indexOf(0)).toString());
    } else if (cmd === 0x1d)
      out.signed = true; // LC_CODE_SIGNATURE
    else if (cmd === 0x32) {
      const v = buf.readUInt32LE(off + 12); // LC_BUILD_VERSION minos, xxxx.yy.zz
      out.minos = `${v >>> 16}.${(v >>> 8) & 0xff}`;
    }
    off += size;
  }
  return out;
}

export function checkLinked(file, target, { objdump = 'objdump' } = {}) {
  const [system, arch] = target.split('-');
  const buf = readFileSync(file);
  const problems = [];
  let summary = '';
  if (system === 'darwin') {
    const m = machO(buf);
    if (!m) return { ok: false, problems: ['not a 64-bit Mach-O file'], summary: 'not Mach-O' };
    if (m.cpu !== MACHO_CPU[arch]) problems.push(`built for Mach-O CPU type 0x${m.cpu.toString(16)}, not ${arch}`);
    if (m.filetype !== 6 && m.filetype !== 8) problems.push(`Mach-O file type ${m.filetype} is not a dylib or bundle`);
    const extra = m.dylibs.filter((d) => d !== '/usr/lib/libSystem.B.dylib');
    if (extra.length) problems.push(`loads ${extra.join(', ')} besides libSystem`);
    // Apple silicon runs no unsigned code; zig's linker signs arm64 binaries ad hoc (x86-64 needs no signature).
    if (!m.signed && arch === 'arm64') problems.push('has no code signature');
    summary = `macOS >= ${m.minos ?? '?'}, loads ${m.dylibs.join(', ') || 'nothing'}, ${m.signed ? 'ad-hoc signed' : 'unsigned'}`;
  } else if (system === 'win32') {
    if (buf.readUInt16LE(0) !== 0x5a4d) return { ok: false, problems: ['not a PE file'], summary: 'not PE' };
    const pe = buf.readUInt32LE(0x3c);
    if (buf.readUInt32BE(pe) !== 0x50450000 || buf.readUInt16LE(pe + 4) !== 0x8664)
      problems.push('not an x86-64 PE file');
    if (objdump) {
      const dlls = [...execFileSync(objdump, ['-p', file], { encoding: 'utf8' }).matchAll(/DLL Name: (\S+)/g)].map(
        (x) => x[1],
      );
      const extra = dlls.filter((d) => !/^(NODE\.EXE|KERNEL32\.dll|msvcrt\.dll)$/i.test(d));
      if (extra.length) problems.push(`imports ${extra.join(', ')} (a runtime DLL the user may not have)`);
      if (!dlls.some((d) => /^node\.exe$/i.test(d))) problems.push('does not import Node-API from NODE.EXE');
      summary = `imports ${dlls.join(', ')}`;
    }
  } else {
    if (buf.readUInt32BE(0) !== 0x7f454c46) return { ok: false, problems: ['not an ELF file'], summary: 'not ELF' };
    if (buf.readUInt16LE(18) !== ELF_MACHINE[arch]) problems.push(`ELF machine ${buf.readUInt16LE(18)} is not ${arch}`);
    if (objdump) {
      const dynamic = execFileSync(objdump, ['-T', '-p', file], { encoding: 'utf8', maxBuffer: 256 << 20 });
      const needed = [...dynamic.matchAll(/^\s*NEEDED\s+(\S+)/gm)].map((x) => x[1]);
      const versions = (prefix) =>
        [...new Set([...dynamic.matchAll(new RegExp(`\\b${prefix}_([0-9][0-9.]*)`, 'g'))].map((x) => x[1]))].sort(
          (a, b) => (versionLess(a, b) ? -1 : 1),
        );
      const glibc = versions('GLIBC');
      const cxx = [...versions('GLIBCXX').map((v) => `GLIBCXX_${v}`), ...versions('CXXABI').map((v) => `CXXABI_${v}`)];
      // Defined dynamic symbols: "<value> <flags> <section> <size> <version> <name>", the section not *UND*.
      const exported = dynamic
        .split('\n')
        .filter((l) => /^[0-9a-f]{8,}\s/.test(l) && !/\*UND\*/.test(l) && /\s[gu]\s/.test(l.slice(0, 24)))
        .map((l) => l.trim().split(/\s+/).pop());
      if (system === 'linuxmusl') {
        const extra = needed.filter((n) => n !== 'libc.so');
        if (extra.length) problems.push(`needs ${extra.join(', ')} besides musl's libc.so`);
        if (glibc.length) problems.push(`references glibc symbol versions (GLIBC_${glibc.pop()})`);
        summary = `needs ${needed.join(', ') || 'nothing'}`;
      } else {
        const top = glibc[glibc.length - 1];
        if (top && versionLess(GLIBC_FLOOR, top)) problems.push(`needs glibc ${top}, above the ${GLIBC_FLOOR} floor`);
        if (cxx.length) problems.push(`needs libstdc++ symbol versions ${cxx.join(', ')}`);
        const libstdcxx = needed.filter((n) => /^libstdc\+\+/.test(n));
        if (libstdcxx.length) problems.push(`needs ${libstdcxx.join(', ')}`);
        summary = `needs glibc >= ${top ?? '?'}, ${cxx.length ? cxx.join(' ') : 'no libstdc++ version'}; NEEDED ${needed.join(' ')}`;
      }
      const stray = exported.filter((e) => !NAPI_EXPORTS.includes(e));
      if (stray.length)
        problems.push(
          `exports ${stray.slice(0, 5).join(', ')}${stray.length > 5 ? ` and ${stray.length - 5} more` : ''} besides the Node-API entry points`,
        );
    }
  }
  if (!objdump && system !== 'darwin')
    summary = `${summary ? `${summary}; ` : ''}format only (no objdump for ${target})`;
  return { ok: problems.length === 0, problems, summary };
}

if (process.argv[1] === fileURLToPath(import.meta.url) && process.argv[2] === '--linked') {
  const [file, target = ''] = process.argv.slice(3);
  const objdump = target.startsWith('darwin')
    ? null
    : target.endsWith('-arm64') && process.arch !== 'arm64'
      ? 'aarch64-linux-gnu-objdump'
      : 'objdump';
  const result = checkLinked(path.resolve(file), target, { objdump });
  console.log(`${file}: ${result.summary}`);
  for (const line of result.problems) console.error(`${file}: ${line}`);
  process.exit(result.ok ? 0 : 1);
} else if (process.argv[1] === fileURLToPath(import.meta.url)) {
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
