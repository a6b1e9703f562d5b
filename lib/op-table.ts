// The one description of each op: its array arguments (their role, length, element class, nullability,
// direction and in-place partner) and its scalar arguments, in the order the kernels take them.
//
// Derived from this table:
//   - lib/ops.gen.ts: the calls of the kernel entry points (the argument order), for the facade;
//   - binding.d.ts: the types of the native module (and of the fallback, which implements the same interface);
//   - native/ops.gen.h: the C++ slot tables that native/args.h checks and native/binding.cc binds by role;
//   - the facade's array checks (lib/ops.ts reads name, element class, length class and nullability here).
// `npm run gen` (scripts/gen-ops.mjs) rewrites the generated files; test/op-table.test.ts fails when they drift.
//
// Adding an option to an op: a scalar here (and in SCALARS when it is new), its validation rule in
// lib/validate.ts (and native/args.h) if it has one, its use in the kernel. See CONTRIBUTING.md.

/** What an array is to the kernel: native code reaches arrays by role, never by position. */
export type Role = 'x' | 'dy' | 'residual' | 'weight' | 'bias' | 'out' | 'dx' | 'mean' | 'rstd' | 'dweight' | 'dbias';

/**
 * Expected length: 'total' for arrays with rows (x, out, residual, dy, dx: at least the extent of their strided
 * layout, exactly x's length for a dense call), dim, or 'rows' (one entry per row and head).
 */
export type LengthClass = 'total' | 'dim' | 'rows';

/**
 * Element type: 'data' has x's type; 'param' (weight, bias) x's type, or for half data Float32Array or the
 * half type, the same for every parameter; 'stat' (statistics, parameter gradients) x's type, Float32Array for
 * half data.
 */
export type ElementClass = 'data' | 'param' | 'stat';

export interface ArraySlot {
  readonly role: Role;
  /** The name the user knows it by, as error messages give it. */
  readonly name: string;
  readonly length: LengthClass;
  readonly element: ElementClass;
  /** May the kernel receive null? (Outputs the facade allocates are never null by then.) */
  readonly nullable: boolean;
  readonly output: boolean;
  /** The one array this output may be exactly the same view of (in place). */
  readonly inPlace?: Role;
  /**
   * An output the user may omit: the facade then allocates it ('always'), or only when the call has a weight
   * ('withWeight'; otherwise the kernel gets null).
   */
  readonly allocate?: 'always' | 'withWeight';
  /**
   * An output whose prior contents the kernel reads: always (residual += x), or only with the accumulate scalar
   * (dweight/dbias added to). An async call that copies the array copies it in as well as out.
   */
  readonly reads?: 'always' | 'accumulate';
}

/** The scalars the kernels take, with their JavaScript type. */
export const SCALARS = {
  /** Row length. */
  dim: 'number',
  /** Added under the square root. */
  eps: 'number',
  /** y = x * rstd * (offset + weight) + bias. */
  offset: 'number',
  /** pRMSNorm: the fraction of each row the statistic covers. */
  partial: 'number',
  /** Add into dweight/dbias rather than overwrite them. */
  accumulate: 'boolean',
  /** 0 float data, 1 bfloat16, 2 float16. */
  dtype: 'number',
  /** 0 'fp32', 1 'llama'. */
  castMode: 'number',
  /** The number of rows (resolved by the facade: given, or from x's length and stride). */
  rows: 'number',
  /** Groups of dim values per row, each normalized on its own (per-head QK-norm). */
  heads: 'number',
  /** Elements from the start of one head to the next within a row (>= dim). */
  headStride: 'number',
  /** Elements from the start of one row of x to the next. */
  xRowStride: 'number',
  /** Elements from the start of one row of out to the next. */
  outRowStride: 'number',
  /** Elements from the start of one row of residual to the next. */
  residualRowStride: 'number',
  /** Elements from the start of one row of dy to the next. */
  dyRowStride: 'number',
  /** Elements from the start of one row of dx to the next. */
  dxRowStride: 'number',
  /** addRmsNorm: residual += x * residualScale. */
  residualScale: 'number',
} as const;
export type ScalarName = keyof typeof SCALARS;

/**
 * The layout scalars: each op takes those it has last, and a dense call may leave all of them out (the kernels
 * then take x as rows × dim, every array with rows dense, and residualScale 1), so it pays nothing for them.
 */
export const LAYOUT_SCALARS: readonly ScalarName[] = [
  'rows',
  'heads',
  'headStride',
  'xRowStride',
  'outRowStride',
  'residualRowStride',
  'dyRowStride',
  'dxRowStride',
  'residualScale',
];

export interface OpDescription {
  /** One line for binding.d.ts. */
  readonly doc: string;
  /** The arrays, first; the first sets the element type and the total length. */
  readonly arrays: readonly ArraySlot[];
  /** After the arrays, in this order. */
  readonly scalars: readonly ScalarName[];
}

const x = { role: 'x', name: 'x', length: 'total', element: 'data', nullable: false, output: false } as const;
const weight = {
  role: 'weight',
  name: 'weight',
  length: 'dim',
  element: 'param',
  nullable: true,
  output: false,
} as const;
const rstdOut = {
  role: 'rstd',
  name: 'options.rstd',
  length: 'rows',
  element: 'stat',
  nullable: true,
  output: true,
} as const;
const outOnX = {
  role: 'out',
  name: 'options.out',
  length: 'total',
  element: 'data',
  nullable: false,
  output: true,
  inPlace: 'x',
  allocate: 'always',
} as const;
const dy = { role: 'dy', name: 'dy', length: 'total', element: 'data', nullable: false, output: false } as const;
const dxOnDy = {
  role: 'dx',
  name: 'options.dx',
  length: 'total',
  element: 'data',
  nullable: false,
  output: true,
  inPlace: 'dy',
  allocate: 'always',
} as const;
const dweight = {
  role: 'dweight',
  name: 'options.dweight',
  length: 'dim',
  element: 'stat',
  nullable: true,
  output: true,
  allocate: 'withWeight',
  reads: 'accumulate',
} as const;
const dbias = {
  role: 'dbias',
  name: 'options.dbias',
  length: 'dim',
  element: 'stat',
  nullable: true,
  output: true,
  allocate: 'always',
  reads: 'accumulate',
} as const;
const statIn = (role: 'mean' | 'rstd') =>
  ({ role, name: `options.${role}`, length: 'rows', element: 'stat', nullable: true, output: false }) as const;

export const OPS = {
  rmsNorm: {
    doc: 'RMSNorm of each row of x into out (which may be x); 1/rms into rstd when given.',
    arrays: [
      x,
      weight,
      { role: 'bias', name: 'options.bias', length: 'dim', element: 'param', nullable: true, output: false },
      outOnX,
      rstdOut,
    ],
    scalars: [
      'dim',
      'eps',
      'offset',
      'partial',
      'dtype',
      'castMode',
      'rows',
      'heads',
      'headStride',
      'xRowStride',
      'outRowStride',
    ],
  },
  layerNorm: {
    doc: 'LayerNorm of each row of x into out (which may be x); statistics into mean and rstd when given.',
    arrays: [
      x,
      weight,
      { role: 'bias', name: 'bias', length: 'dim', element: 'param', nullable: true, output: false },
      outOnX,
      { role: 'mean', name: 'options.mean', length: 'rows', element: 'stat', nullable: true, output: true },
      rstdOut,
    ],
    scalars: ['dim', 'eps', 'dtype', 'castMode', 'rows', 'heads', 'headStride', 'xRowStride', 'outRowStride'],
  },
  addRmsNorm: {
    doc: 'residual += x * residualScale, then RMSNorm of residual into out (which may be x).',
    arrays: [
      x,
      {
        role: 'residual',
        name: 'residual',
        length: 'total',
        element: 'data',
        nullable: false,
        output: true,
        reads: 'always',
      },
      weight,
      { role: 'bias', name: 'options.bias', length: 'dim', element: 'param', nullable: true, output: false },
      outOnX,
      rstdOut,
    ],
    scalars: [
      'dim',
      'eps',
      'offset',
      'partial',
      'dtype',
      'castMode',
      'rows',
      'heads',
      'headStride',
      'xRowStride',
      'residualRowStride',
      'outRowStride',
      'residualScale',
    ],
  },
  rmsNormBackward: {
    doc: 'Gradients of rmsNorm: dx (may be dy); dweight/dbias when given, overwritten or added to (accumulate).',
    arrays: [dy, x, weight, statIn('rstd'), dxOnDy, dweight, dbias],
    scalars: [
      'dim',
      'eps',
      'offset',
      'partial',
      'accumulate',
      'dtype',
      'castMode',
      'rows',
      'heads',
      'headStride',
      'dyRowStride',
      'xRowStride',
      'dxRowStride',
    ],
  },
  layerNormBackward: {
    doc: 'Gradients of layerNorm; mean and rstd are recomputed unless both are given.',
    arrays: [dy, x, weight, statIn('mean'), statIn('rstd'), dxOnDy, dweight, dbias],
    scalars: [
      'dim',
      'eps',
      'accumulate',
      'dtype',
      'castMode',
      'rows',
      'heads',
      'headStride',
      'dyRowStride',
      'xRowStride',
      'dxRowStride',
    ],
  },
} as const satisfies Record<string, OpDescription>;

export type OpName = keyof typeof OPS;
