// Tests of the F and D extensions (wasm-core/cpu/fpu.ts) through the fpu harness module.
// Expected values come from independent places: literal values worked out by hand, the host's
// own IEEE arithmetic (round-to-nearest-even only), an exact BigInt-rational reference
// implemented below (every rounding mode, every flag, tininess after rounding), and, when a
// riscv64 cross compiler and qemu user mode are installed, QEMU's RISC-V FPU.

import { describe, it, expect, beforeEach } from 'vitest';
import { readFileSync, existsSync, mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  FMT_S,
  FMT_D,
  RNE,
  RTZ,
  RDN,
  RUP,
  RMM,
  DYN,
  F5,
  OP_FMADD,
  OP_FMSUB,
  OP_FNMSUB,
  OP_FNMADD,
  CVT_W,
  CVT_WU,
  CVT_L,
  CVT_LU,
  opFp,
  fadd,
  fsub,
  fmul,
  fdiv,
  fsqrt,
  fsgnj,
  fsgnjn,
  fsgnjx,
  fmin,
  fmax,
  feq,
  flt,
  fle,
  fclass,
  fmvXF,
  fmvFX,
  fcvtToInt,
  fcvtFromInt,
  fcvtSD,
  fcvtDS,
  fma4,
  r4Type,
} from './rv-encode.js';

// ---------------------------------------------------------------------------------------------
// Harness

interface Harness {
  execFp(insn: number): number;
  setFReg(i: number, v: bigint): void;
  getFReg(i: number): bigint;
  setXReg(i: number, v: bigint): void;
  getXReg(i: number): bigint;
  setFrm(v: number): void;
  getFflags(): number;
  setFflags(v: number): void;
  getMstatus(): bigint;
  setMstatus(v: bigint): void;
  // soft-float entry points without the RNE fast paths; isD etc. are 0/1
  sfFlags(): number;
  softAdd(a: bigint, b: bigint, rm: number, isD: number): bigint;
  softMul(a: bigint, b: bigint, rm: number, isD: number): bigint;
  softDiv(a: bigint, b: bigint, rm: number, isD: number): bigint;
  softSqrt(a: bigint, rm: number, isD: number): bigint;
  softMulAdd(
    a: bigint,
    b: bigint,
    c: bigint,
    rm: number,
    isD: number,
    negProd: number,
    negC: number,
  ): bigint;
}

function loadHarness(): Harness {
  const path = fileURLToPath(new URL('../../dist/wasm/fpu-harness.wasm', import.meta.url));
  if (!existsSync(path)) {
    throw new Error(`${path} is missing: run \`node wasm-core/build.mjs\` (npm test does) first`);
  }
  const mod = new WebAssembly.Module(readFileSync(path));
  const inst = new WebAssembly.Instance(mod, {
    env: {
      abort: () => {
        throw new Error('abort called in fpu harness');
      },
    },
  });
  return inst.exports as unknown as Harness;
}

const H = loadHarness();

const NX = 1;
const UF = 2;
const OF = 4;
const DZ = 8;
const NV = 16;

const MODES = [RNE, RTZ, RDN, RUP, RMM];
const MODE_NAMES = ['RNE', 'RTZ', 'RDN', 'RUP', 'RMM'];

const BOX = 0xffffffff00000000n;
const u64 = (x: bigint) => BigInt.asUintN(64, x);
const hex = (x: bigint) => '0x' + u64(x).toString(16);

function resetState(): void {
  for (let i = 0; i < 32; i++) {
    H.setFReg(i, 0n);
    H.setXReg(i, 0n);
  }
  H.setFflags(0);
  H.setFrm(0);
  H.setMstatus(0n);
}

const fr = (i: number) => u64(H.getFReg(i));
const xr = (i: number) => u64(H.getXReg(i));

function exec(insn: number): boolean {
  return H.execFp(insn) !== 0;
}

/** Writes a value of format fmt to f[i] (single precision is NaN-boxed). */
function put(fmt: number, i: number, v: bigint): void {
  H.setFReg(i, fmt === FMT_S ? (v & 0xffffffffn) | BOX : v);
}

/** Reads a value of format fmt from f[i]; a single-precision result must be NaN-boxed. */
function get(fmt: number, i: number): bigint {
  const r = fr(i);
  if (fmt === FMT_S) {
    if (r >> 32n !== 0xffffffffn) throw new Error(`f${i} = ${hex(r)} is not NaN-boxed`);
    return r & 0xffffffffn;
  }
  return r;
}

interface Res {
  r: bigint;
  flags: number;
}

type Enc3 = (fmt: number, rd: number, rs1: number, rs2: number, rm: number) => number;

/** f3 = op(f1, f2) with rounding mode rm; returns f3 and fflags. */
function op2(enc: Enc3, fmt: number, a: bigint, b: bigint, rm: number = RNE): Res {
  H.setFflags(0);
  put(fmt, 1, a);
  put(fmt, 2, b);
  if (!exec(enc(fmt, 3, 1, 2, rm))) throw new Error('illegal instruction');
  return { r: get(fmt, 3), flags: H.getFflags() };
}

function sqrtOp(fmt: number, a: bigint, rm: number = RNE): Res {
  H.setFflags(0);
  put(fmt, 1, a);
  if (!exec(fsqrt(fmt, 3, 1, rm))) throw new Error('illegal instruction');
  return { r: get(fmt, 3), flags: H.getFflags() };
}

function fmaOp(op: number, fmt: number, a: bigint, b: bigint, c: bigint, rm: number = RNE): Res {
  H.setFflags(0);
  put(fmt, 1, a);
  put(fmt, 2, b);
  put(fmt, 4, c);
  if (!exec(fma4(op, fmt, 3, 1, 2, 4, rm))) throw new Error('illegal instruction');
  return { r: get(fmt, 3), flags: H.getFflags() };
}

function toIntOp(fmt: number, kind: number, a: bigint, rm: number = RNE): Res {
  H.setFflags(0);
  put(fmt, 1, a);
  H.setXReg(5, 0x5555n);
  if (!exec(fcvtToInt(fmt, kind, 5, 1, rm))) throw new Error('illegal instruction');
  return { r: xr(5), flags: H.getFflags() };
}

function fromIntOp(fmt: number, kind: number, v: bigint, rm: number = RNE): Res {
  H.setFflags(0);
  H.setXReg(5, v);
  if (!exec(fcvtFromInt(fmt, kind, 3, 5, rm))) throw new Error('illegal instruction');
  return { r: get(fmt, 3), flags: H.getFflags() };
}

function cvtSD(a: bigint, rm: number = RNE): Res {
  H.setFflags(0);
  put(FMT_D, 1, a);
  if (!exec(fcvtSD(3, 1, rm))) throw new Error('illegal instruction');
  return { r: get(FMT_S, 3), flags: H.getFflags() };
}

function cvtDS(a: bigint): Res {
  H.setFflags(0);
  put(FMT_S, 1, a);
  if (!exec(fcvtDS(3, 1, RNE))) throw new Error('illegal instruction');
  return { r: get(FMT_D, 3), flags: H.getFflags() };
}

/** x5 = cmp(f1, f2) */
function cmpOp(
  enc: (fmt: number, rd: number, rs1: number, rs2: number) => number,
  fmt: number,
  a: bigint,
  b: bigint,
): Res {
  H.setFflags(0);
  put(fmt, 1, a);
  put(fmt, 2, b);
  if (!exec(enc(fmt, 5, 1, 2))) throw new Error('illegal instruction');
  return { r: xr(5), flags: H.getFflags() };
}

// ---------------------------------------------------------------------------------------------
// Host bit conversions

const dv = new DataView(new ArrayBuffer(8));
const dBits = (x: number): bigint => {
  dv.setFloat64(0, x);
  return dv.getBigUint64(0);
};
const bitsD = (b: bigint): number => {
  dv.setBigUint64(0, u64(b));
  return dv.getFloat64(0);
};
const sBits = (x: number): bigint => {
  dv.setFloat32(0, x);
  return BigInt(dv.getUint32(0));
};
const bitsS = (b: bigint): number => {
  dv.setUint32(0, Number(b & 0xffffffffn));
  return dv.getFloat32(0);
};

// Frequently used constants.
const D_QNAN = 0x7ff8000000000000n; // canonical
const D_SNAN = 0x7ff0000000000001n;
const D_INF = 0x7ff0000000000000n;
const D_NINF = 0xfff0000000000000n;
const D_MAX = 0x7fefffffffffffffn;
const D_MIN_NORMAL = 0x0010000000000000n;
const D_MIN_SUB = 0x0000000000000001n;
const D_NZERO = 0x8000000000000000n;
const S_QNAN = 0x7fc00000n; // canonical
const S_SNAN = 0x7f800001n;
const S_INF = 0x7f800000n;
const S_NINF = 0xff800000n;
const S_MAX = 0x7f7fffffn;
const S_MIN_NORMAL = 0x00800000n;
const S_MIN_SUB = 0x00000001n;
const S_NZERO = 0x80000000n;

/** binary64 bits of m * 2^e (exact; for building test operands). */
function dExact(m: number, e: number): bigint {
  const x = m * 2 ** e;
  if (!Number.isFinite(x) || x / 2 ** e !== m) throw new Error('not exact');
  return dBits(x);
}

// ---------------------------------------------------------------------------------------------
// Exact reference: IEEE 754 binary32/binary64 with RISC-V NaN rules, on BigInt rationals.

interface Fmt {
  p: number;
  emin: number;
  emax: number;
  bias: number;
  fb: number;
  w: number;
  sign: bigint;
  canon: bigint;
  inf: bigint;
}
const FS: Fmt = {
  p: 24,
  emin: -126,
  emax: 127,
  bias: 127,
  fb: 23,
  w: 32,
  sign: 0x80000000n,
  canon: S_QNAN,
  inf: S_INF,
};
const FD: Fmt = {
  p: 53,
  emin: -1022,
  emax: 1023,
  bias: 1023,
  fb: 52,
  w: 64,
  sign: 0x8000000000000000n,
  canon: D_QNAN,
  inf: D_INF,
};
const fmtOf = (fmt: number) => (fmt === FMT_D ? FD : FS);

interface Dec {
  cls: 'zero' | 'fin' | 'inf' | 'qnan' | 'snan';
  neg: boolean;
  m: bigint;
  e: number;
}

function decode(x: bigint, f: Fmt): Dec {
  const neg = ((x >> BigInt(f.w - 1)) & 1n) === 1n;
  const be = Number((x >> BigInt(f.fb)) & BigInt(2 * f.bias + 1));
  const frac = x & ((1n << BigInt(f.fb)) - 1n);
  if (be === 2 * f.bias + 1) {
    if (frac === 0n) return { cls: 'inf', neg, m: 0n, e: 0 };
    return { cls: (frac >> BigInt(f.fb - 1)) & 1n ? 'qnan' : 'snan', neg, m: 0n, e: 0 };
  }
  if (be === 0) {
    if (frac === 0n) return { cls: 'zero', neg, m: 0n, e: 0 };
    return { cls: 'fin', neg, m: frac, e: 1 - f.bias - f.fb };
  }
  return { cls: 'fin', neg, m: frac | (1n << BigInt(f.fb)), e: be - f.bias - f.fb };
}

const isNaNDec = (d: Dec) => d.cls === 'qnan' || d.cls === 'snan';

interface Rat {
  n: bigint;
  d: bigint; // > 0
}

function ratOf(v: Dec): Rat {
  const m = v.neg ? -v.m : v.m;
  return v.e >= 0 ? { n: m << BigInt(v.e), d: 1n } : { n: m, d: 1n << BigInt(-v.e) };
}
const ratAdd = (a: Rat, b: Rat): Rat => ({ n: a.n * b.d + b.n * a.d, d: a.d * b.d });
const ratMul = (a: Rat, b: Rat): Rat => ({ n: a.n * b.n, d: a.d * b.d });

function bitlen(x: bigint): number {
  return x === 0n ? 0 : x.toString(2).length;
}

function roundsUp(rm: number, neg: boolean, m: bigint, twiceRem: bigint, den: bigint): boolean {
  switch (rm) {
    case RNE:
      return twiceRem > den || (twiceRem === den && (m & 1n) === 1n);
    case RTZ:
      return false;
    case RDN:
      return neg;
    case RUP:
      return !neg;
    default:
      return twiceRem >= den;
  }
}

/** Rounds the non-zero rational num/den to the format in mode rm, with IEEE flags. */
function roundRat(num: bigint, den: bigint, f: Fmt, rm: number): Res {
  const neg = num < 0n;
  const n = neg ? -num : num;
  let E = bitlen(n) - bitlen(den);
  if (E >= 0 ? n < den << BigInt(E) : n << BigInt(-E) < den) E--; // now 2^E <= n/den < 2^(E+1)
  const roundAt = (q: number) => {
    let N = n;
    let D = den;
    if (q >= 0) D = den << BigInt(q);
    else N = n << BigInt(-q);
    const m = N / D;
    const r = N % D;
    if (r === 0n) return { m, inexact: false };
    return { m: roundsUp(rm, neg, m, 2n * r, D) ? m + 1n : m, inexact: true };
  };
  // Tininess after rounding: rounded to p bits with an unbounded exponent, below 2^emin?
  const u = roundAt(E - f.p + 1);
  const tiny = (u.m === 1n << BigInt(f.p) ? E + 1 : E) < f.emin;
  let q = Math.max(E, f.emin) - f.p + 1;
  const r = roundAt(q);
  let m = r.m;
  if (m === 1n << BigInt(f.p)) {
    m >>= 1n;
    q++;
  }
  const sign = neg ? f.sign : 0n;
  let flags = r.inexact ? NX : 0;
  if (r.inexact && tiny) flags |= UF;
  if (m === 0n) return { r: sign, flags };
  const eRes = bitlen(m) - 1 + q;
  if (eRes > f.emax) {
    const toInf = rm === RNE || rm === RMM || (rm === RDN && neg) || (rm === RUP && !neg);
    return { r: sign | (toInf ? f.inf : f.inf - 1n), flags: OF | NX };
  }
  if (bitlen(m) === f.p) {
    return {
      r: sign | (BigInt(eRes + f.bias) << BigInt(f.fb)) | (m - (1n << BigInt(f.p - 1))),
      flags,
    };
  }
  return { r: sign | m, flags }; // subnormal
}

const zeroRes = (neg: boolean, f: Fmt): Res => ({ r: neg ? f.sign : 0n, flags: 0 });
const nanRes = (f: Fmt, invalid: boolean): Res => ({ r: f.canon, flags: invalid ? NV : 0 });
const infRes = (neg: boolean, f: Fmt): Res => ({ r: (neg ? f.sign : 0n) | f.inf, flags: 0 });

function refAdd(a: bigint, b: bigint, f: Fmt, rm: number): Res {
  const A = decode(a, f);
  const B = decode(b, f);
  if (isNaNDec(A) || isNaNDec(B)) return nanRes(f, A.cls === 'snan' || B.cls === 'snan');
  if (A.cls === 'inf' && B.cls === 'inf' && A.neg !== B.neg) return nanRes(f, true);
  if (A.cls === 'inf') return infRes(A.neg, f);
  if (B.cls === 'inf') return infRes(B.neg, f);
  if (A.cls === 'zero' && B.cls === 'zero') {
    return zeroRes(A.neg === B.neg ? A.neg : rm === RDN, f);
  }
  const s = ratAdd(ratOf(A), ratOf(B));
  if (s.n === 0n) return zeroRes(rm === RDN, f);
  return roundRat(s.n, s.d, f, rm);
}

function refMul(a: bigint, b: bigint, f: Fmt, rm: number): Res {
  const A = decode(a, f);
  const B = decode(b, f);
  const neg = A.neg !== B.neg;
  if (isNaNDec(A) || isNaNDec(B)) return nanRes(f, A.cls === 'snan' || B.cls === 'snan');
  if (A.cls === 'inf' || B.cls === 'inf') {
    if (A.cls === 'zero' || B.cls === 'zero') return nanRes(f, true);
    return infRes(neg, f);
  }
  if (A.cls === 'zero' || B.cls === 'zero') return zeroRes(neg, f);
  const p = ratMul(ratOf(A), ratOf(B));
  return roundRat(p.n, p.d, f, rm);
}

function refDiv(a: bigint, b: bigint, f: Fmt, rm: number): Res {
  const A = decode(a, f);
  const B = decode(b, f);
  const neg = A.neg !== B.neg;
  if (isNaNDec(A) || isNaNDec(B)) return nanRes(f, A.cls === 'snan' || B.cls === 'snan');
  if (A.cls === 'inf') return B.cls === 'inf' ? nanRes(f, true) : infRes(neg, f);
  if (B.cls === 'inf') return zeroRes(neg, f);
  if (B.cls === 'zero') {
    if (A.cls === 'zero') return nanRes(f, true);
    return { r: (neg ? f.sign : 0n) | f.inf, flags: DZ };
  }
  if (A.cls === 'zero') return zeroRes(neg, f);
  const x = ratOf(A);
  const y = ratOf(B);
  let n = x.n * y.d;
  let d = x.d * y.n;
  if (d < 0n) {
    n = -n;
    d = -d;
  }
  return roundRat(n, d, f, rm);
}

function isqrt(n: bigint): bigint {
  if (n < 2n) return n;
  let x = 1n << BigInt(Math.ceil(bitlen(n) / 2));
  for (;;) {
    const y = (x + n / x) >> 1n;
    if (y >= x) return x;
    x = y;
  }
}

function refSqrt(a: bigint, f: Fmt, rm: number): Res {
  const A = decode(a, f);
  if (isNaNDec(A)) return nanRes(f, A.cls === 'snan');
  if (A.cls === 'zero') return zeroRes(A.neg, f);
  if (A.neg) return nanRes(f, true);
  if (A.cls === 'inf') return infRes(false, f);
  let m = A.m;
  let e = A.e;
  if (e & 1) {
    m <<= 1n;
    e -= 1;
  }
  // sqrt(m * 2^e) = sqrt(m * 2^160) * 2^(e/2 - 80); an inexact root s.xxx is replaced by s + 1/2,
  // which lies on the same side of every rounding boundary (s has >= 80 bits).
  const M = m << 160n;
  const s = isqrt(M);
  let n = s;
  let k = 80 - e / 2;
  if (s * s !== M) {
    n = 2n * s + 1n;
    k += 1;
  }
  return k >= 0 ? roundRat(n, 1n << BigInt(k), f, rm) : roundRat(n << BigInt(-k), 1n, f, rm);
}

function refFma(
  a: bigint,
  b: bigint,
  c: bigint,
  f: Fmt,
  rm: number,
  negP = false,
  negC = false,
): Res {
  const A = decode(a, f);
  const B = decode(b, f);
  const C = decode(c, f);
  const infZero = (A.cls === 'inf' && B.cls === 'zero') || (A.cls === 'zero' && B.cls === 'inf');
  if (isNaNDec(A) || isNaNDec(B) || isNaNDec(C)) {
    return nanRes(f, A.cls === 'snan' || B.cls === 'snan' || C.cls === 'snan' || infZero);
  }
  if (infZero) return nanRes(f, true);
  const sp = (A.neg !== B.neg) !== negP;
  const sc = C.neg !== negC;
  if (A.cls === 'inf' || B.cls === 'inf') {
    if (C.cls === 'inf' && sc !== sp) return nanRes(f, true);
    return infRes(sp, f);
  }
  if (C.cls === 'inf') return infRes(sc, f);
  const pZero = A.cls === 'zero' || B.cls === 'zero';
  if (pZero && C.cls === 'zero') return zeroRes(sp === sc ? sp : rm === RDN, f);
  let p = ratMul(ratOf(A), ratOf(B));
  if (negP) p = { n: -p.n, d: p.d };
  let cr = ratOf(C);
  if (negC) cr = { n: -cr.n, d: cr.d };
  const s = ratAdd(p, cr);
  if (s.n === 0n) return zeroRes(rm === RDN, f);
  return roundRat(s.n, s.d, f, rm);
}

const INT_MAX = [0x7fffffffn, 0xffffffffffffffffn, 0x7fffffffffffffffn, 0xffffffffffffffffn];
const INT_MIN = [0xffffffff80000000n, 0n, 0x8000000000000000n, 0n];
const INT_LO = [-(2n ** 31n), 0n, -(2n ** 63n), 0n];
const INT_HI = [2n ** 31n - 1n, 2n ** 32n - 1n, 2n ** 63n - 1n, 2n ** 64n - 1n];

function refToInt(a: bigint, kind: number, f: Fmt, rm: number): Res {
  const A = decode(a, f);
  if (isNaNDec(A)) return { r: INT_MAX[kind], flags: NV };
  if (A.cls === 'inf') return { r: A.neg ? INT_MIN[kind] : INT_MAX[kind], flags: NV };
  if (A.cls === 'zero') return { r: 0n, flags: 0 };
  const x = ratOf(A);
  const n = A.neg ? -x.n : x.n;
  let mag = n / x.d;
  const rem = n % x.d;
  if (rem !== 0n && roundsUp(rm, A.neg, mag, 2n * rem, x.d)) mag++;
  const v = A.neg ? -mag : mag;
  if (v < INT_LO[kind]) return { r: INT_MIN[kind], flags: NV };
  if (v > INT_HI[kind]) return { r: INT_MAX[kind], flags: NV };
  const r = kind <= CVT_WU ? u64(BigInt.asIntN(32, v)) : u64(v);
  return { r, flags: rem !== 0n ? NX : 0 };
}

function refFromInt(x: bigint, kind: number, f: Fmt, rm: number): Res {
  let v: bigint;
  if (kind === CVT_W) v = BigInt.asIntN(32, x);
  else if (kind === CVT_WU) v = BigInt.asUintN(32, x);
  else if (kind === CVT_L) v = BigInt.asIntN(64, x);
  else v = BigInt.asUintN(64, x);
  if (v === 0n) return { r: 0n, flags: 0 };
  return roundRat(v, 1n, f, rm);
}

function refConvert(a: bigint, from: Fmt, to: Fmt, rm: number): Res {
  const A = decode(a, from);
  if (isNaNDec(A)) return nanRes(to, A.cls === 'snan');
  if (A.cls === 'inf') return infRes(A.neg, to);
  if (A.cls === 'zero') return zeroRes(A.neg, to);
  const x = ratOf(A);
  return roundRat(x.n, x.d, to, rm);
}

// ---------------------------------------------------------------------------------------------
// Random operands (deterministic PRNG)

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

class Rng {
  private next: () => number;
  constructor(seed: number) {
    this.next = mulberry32(seed);
  }
  u32(): number {
    return this.next();
  }
  int(n: number): number {
    return this.next() % n;
  }
  u64(): bigint {
    return (BigInt(this.next()) << 32n) | BigInt(this.next());
  }
  bits(n: number): bigint {
    return this.u64() & ((1n << BigInt(n)) - 1n);
  }
}

/** A random operand of format f, biased towards interesting regions. */
function randFloat(rng: Rng, f: Fmt, specials = true): bigint {
  const sign = rng.int(2) ? f.sign : 0n;
  const emaxb = 2 * f.bias + 1;
  const frac = () => {
    // Either uniform, or with only a few significant bits (makes exact results likely),
    // or with long runs of ones/zeros (rounding carries).
    switch (rng.int(4)) {
      case 0:
        return rng.bits(f.fb) & ~((1n << BigInt(rng.int(f.fb))) - 1n);
      case 1:
        return (1n << BigInt(f.fb)) - 1n - rng.bits(rng.int(6));
      default:
        return rng.bits(f.fb);
    }
  };
  let be: number;
  switch (rng.int(16)) {
    case 0:
      if (specials) {
        const k = rng.int(6);
        if (k === 0) return sign; // zero
        if (k === 1) return sign | f.inf;
        if (k === 2) return sign | f.canon | rng.bits(f.fb - 1); // qNaN
        if (k === 3) return sign | f.inf | 1n | rng.bits(f.fb - 2); // sNaN
      }
      be = 0; // subnormal
      break;
    case 1:
      be = 0;
      break;
    case 2:
      be = 1 + rng.int(f.p + 2); // near the bottom of the normal range
      break;
    case 3:
      be = emaxb - 1 - rng.int(f.p + 2); // near the top
      break;
    case 4:
    case 5:
    case 6:
      be = rng.int(emaxb); // anywhere
      break;
    default:
      be = f.bias - 30 + rng.int(61); // moderate
  }
  const fr = frac();
  if (be === 0 && fr === 0n) return sign | 1n;
  return sign | (BigInt(be) << BigInt(f.fb)) | fr;
}

/** An operand close to -a or a (cancellation and near-ties in add/sub/fma). */
function nearby(rng: Rng, a: bigint, f: Fmt): bigint {
  const flip = rng.int(2) ? f.sign : 0n;
  const delta = BigInt(rng.int(9)) - 4n;
  const mask = f.w === 64 ? 0xffffffffffffffffn : 0xffffffffn;
  return ((a ^ flip) + delta) & mask;
}

const fmtName = (fmt: number) => (fmt === FMT_D ? 'D' : 'S');

function describeMismatch(what: string, got: Res, want: Res): string {
  return `${what}: got ${hex(got.r)} flags ${got.flags}, want ${hex(want.r)} flags ${want.flags}`;
}

// ---------------------------------------------------------------------------------------------

beforeEach(() => resetState());

describe('decode and legality', () => {
  function snapshot() {
    const f: bigint[] = [];
    const x: bigint[] = [];
    for (let i = 0; i < 32; i++) {
      f.push(fr(i));
      x.push(xr(i));
    }
    return { f, x, fflags: H.getFflags(), mstatus: u64(H.getMstatus()) };
  }

  function expectIllegal(insn: number) {
    for (let i = 0; i < 32; i++) {
      H.setFReg(i, dBits(i + 0.25));
      H.setXReg(i, BigInt(i) * 0x1111n);
    }
    H.setFflags(0);
    H.setMstatus(0x2000n); // FS = Initial
    const before = snapshot();
    expect(exec(insn), hex(BigInt(insn))).toBe(false);
    expect(snapshot()).toEqual(before);
  }

  it('rejects the reserved static rounding modes 5 and 6', () => {
    for (const rm of [5, 6]) {
      expectIllegal(fadd(FMT_D, 3, 1, 2, rm));
      expectIllegal(fmul(FMT_S, 3, 1, 2, rm));
      expectIllegal(fsqrt(FMT_D, 3, 1, rm));
      expectIllegal(fma4(OP_FMADD, FMT_D, 3, 1, 2, 4, rm));
      expectIllegal(fcvtToInt(FMT_D, CVT_W, 5, 1, rm));
      expectIllegal(fcvtFromInt(FMT_S, CVT_L, 3, 5, rm));
      // Widening conversions are exact but still decode rm.
      expectIllegal(fcvtDS(3, 1, rm));
      expectIllegal(fcvtFromInt(FMT_D, CVT_W, 3, 5, rm));
    }
  });

  it('rejects dynamic rounding when frm holds 5, 6 or 7', () => {
    for (const frm of [5, 6, 7]) {
      H.setFrm(frm);
      for (let i = 0; i < 32; i++) H.setFReg(i, dBits(1.5));
      expect(exec(fadd(FMT_D, 3, 1, 2, DYN))).toBe(false);
      expect(exec(fcvtSD(3, 1, DYN))).toBe(false);
      expect(exec(fma4(OP_FNMADD, FMT_S, 3, 1, 2, 4, DYN))).toBe(false);
      expect(fr(3)).toBe(dBits(1.5));
      expect(H.getFflags()).toBe(0);
      // Instructions without a rounding mode are unaffected.
      expect(exec(fsgnj(FMT_D, 3, 1, 2))).toBe(true);
    }
  });

  it('rejects fmt H and Q, bad rs2 selectors, unknown funct5/funct3 and opcodes', () => {
    expectIllegal(opFp(F5.ADD, 2, 3, 1, 2, RNE));
    expectIllegal(opFp(F5.ADD, 3, 3, 1, 2, RNE));
    expectIllegal(fma4(OP_FMADD, 2, 3, 1, 2, 4, RNE));
    expectIllegal(fma4(OP_FMSUB, 3, 3, 1, 2, 4, RNE));
    expectIllegal(opFp(F5.SQRT, FMT_D, 3, 1, 1, RNE)); // FSQRT with rs2 != 0
    expectIllegal(opFp(F5.CVT_IF, FMT_D, 3, 1, 4, RNE)); // FCVT.?.D
    expectIllegal(opFp(F5.CVT_FI, FMT_S, 3, 1, 5, RNE));
    expectIllegal(opFp(F5.CVT_FF, FMT_S, 3, 1, 0, RNE)); // FCVT.S.S
    expectIllegal(opFp(F5.CVT_FF, FMT_D, 3, 1, 1, RNE)); // FCVT.D.D
    expectIllegal(opFp(F5.CVT_FF, FMT_S, 3, 1, 2, RNE)); // FCVT.S.H
    expectIllegal(opFp(F5.SGNJ, FMT_D, 3, 1, 2, 3));
    expectIllegal(opFp(F5.MINMAX, FMT_D, 3, 1, 2, 2));
    expectIllegal(opFp(F5.CMP, FMT_S, 3, 1, 2, 3));
    expectIllegal(opFp(F5.MV_XF, FMT_D, 3, 1, 0, 2));
    expectIllegal(opFp(F5.MV_XF, FMT_D, 3, 1, 1, 0)); // FMV.X.D with rs2 != 0
    expectIllegal(opFp(F5.MV_FX, FMT_D, 3, 1, 0, 1));
    expectIllegal(opFp(F5.MV_FX, FMT_S, 3, 1, 1, 0));
    for (const f5 of [0x06, 0x07, 0x09, 0x0a, 0x0c, 0x10, 0x15, 0x19, 0x1b, 0x1d, 0x1f]) {
      expectIllegal(opFp(f5, FMT_D, 3, 1, 2, 0));
    }
    expectIllegal(r4Type(0x33, 3, RNE, 1, 2, FMT_D, 4)); // not an FP opcode
  });

  it('marks FS dirty when it writes an f register or raises a flag', () => {
    put(FMT_D, 1, dBits(1));
    put(FMT_D, 2, dBits(3));
    H.setMstatus(0x2000n);
    expect(exec(fdiv(FMT_D, 3, 1, 2, RNE))).toBe(true);
    expect(u64(H.getMstatus()) & 0x6000n).toBe(0x6000n);
    expect(u64(H.getMstatus()) >> 63n).toBe(1n); // SD
  });

  it('uses frm for dynamic rounding', () => {
    const a = dBits(1);
    const b = dBits(3);
    const want = [
      0x3fd5555555555555n,
      0x3fd5555555555555n,
      0x3fd5555555555555n,
      0x3fd5555555555556n,
      0x3fd5555555555555n,
    ];
    for (const m of MODES) {
      H.setFrm(m);
      expect(op2(fdiv, FMT_D, a, b, DYN).r).toBe(want[m]);
    }
  });

  it('accrues flags into fflags without clearing earlier ones', () => {
    H.setFflags(NV);
    put(FMT_D, 1, dBits(1));
    put(FMT_D, 2, dBits(3));
    expect(exec(fdiv(FMT_D, 3, 1, 2, RNE))).toBe(true);
    expect(H.getFflags()).toBe(NV | NX);
  });

  it('does not write x0', () => {
    put(FMT_D, 1, dBits(2.5));
    expect(exec(fcvtToInt(FMT_D, CVT_W, 0, 1, RNE))).toBe(true);
    expect(xr(0)).toBe(0n);
    expect(H.getFflags()).toBe(NX);
  });
});

describe('rounding modes', () => {
  // Each row: operands and the expected result for RNE, RTZ, RDN, RUP, RMM.
  it('FADD/FSUB .D and .S on ties and non-ties', () => {
    const one = dBits(1);
    const tieD = dBits(2 ** -53);
    const up = 0x3ff0000000000001n; // 1 + 2^-52
    const nOne = dBits(-1);
    const nUp = 0xbff0000000000001n;
    expect(MODES.map((m) => op2(fadd, FMT_D, one, tieD, m).r)).toEqual([one, one, one, up, up]);
    expect(MODES.map((m) => op2(fsub, FMT_D, nOne, tieD, m).r)).toEqual([
      nOne,
      nOne,
      nUp,
      nOne,
      nUp,
    ]);
    // 1 + 3*2^-54: above the tie
    const above = dBits(3 * 2 ** -54);
    expect(MODES.map((m) => op2(fadd, FMT_D, one, above, m).r)).toEqual([up, one, one, up, up]);
    // tie to even when the last bit is 1: (1 + 2^-52) + 2^-53 -> 1 + 2^-51 for RNE and RMM
    const up2 = 0x3ff0000000000002n;
    expect(MODES.map((m) => op2(fadd, FMT_D, up, tieD, m).r)).toEqual([up2, up, up, up2, up2]);
    for (const m of MODES) expect(op2(fadd, FMT_D, one, tieD, m).flags).toBe(NX);

    const oneS = sBits(1);
    const tieS = sBits(2 ** -24);
    const upS = 0x3f800001n;
    expect(MODES.map((m) => op2(fadd, FMT_S, oneS, tieS, m).r)).toEqual([
      oneS,
      oneS,
      oneS,
      upS,
      upS,
    ]);
    const nOneS = sBits(-1);
    expect(MODES.map((m) => op2(fsub, FMT_S, nOneS, tieS, m).r)).toEqual([
      nOneS,
      nOneS,
      0xbf800001n,
      nOneS,
      0xbf800001n,
    ]);
  });

  it('exact cancellation gives +0, or -0 in RDN', () => {
    const a = dBits(1.75);
    expect(MODES.map((m) => op2(fsub, FMT_D, a, a, m).r)).toEqual([0n, 0n, D_NZERO, 0n, 0n]);
    const s = sBits(-3.5);
    expect(MODES.map((m) => op2(fsub, FMT_S, s, s, m).r)).toEqual([0n, 0n, S_NZERO, 0n, 0n]);
    // (+0) + (-0)
    expect(MODES.map((m) => op2(fadd, FMT_D, 0n, D_NZERO, m).r)).toEqual([0n, 0n, D_NZERO, 0n, 0n]);
    // (-0) + (-0) = -0 in every mode
    expect(MODES.map((m) => op2(fadd, FMT_D, D_NZERO, D_NZERO, m).r)).toEqual(
      MODES.map(() => D_NZERO),
    );
    expect(op2(fsub, FMT_S, S_NZERO, 0n, RNE).r).toBe(S_NZERO);
  });

  it('FMUL', () => {
    // (1 + 2^-52)^2 = 1 + 2^-51 + 2^-104
    const a = 0x3ff0000000000001n;
    const lo = 0x3ff0000000000002n;
    const hi = 0x3ff0000000000003n;
    expect(MODES.map((m) => op2(fmul, FMT_D, a, a, m).r)).toEqual([lo, lo, lo, hi, lo]);
    const na = 0xbff0000000000001n;
    expect(MODES.map((m) => op2(fmul, FMT_D, na, a, m).r)).toEqual([
      lo | D_NZERO,
      lo | D_NZERO,
      hi | D_NZERO,
      lo | D_NZERO,
      lo | D_NZERO,
    ]);
    // single: (1 + 2^-23) * (1 + 2^-23) = 1 + 2^-22 + 2^-46
    const s = 0x3f800001n;
    expect(MODES.map((m) => op2(fmul, FMT_S, s, s, m).r)).toEqual([
      0x3f800002n,
      0x3f800002n,
      0x3f800002n,
      0x3f800003n,
      0x3f800002n,
    ]);
  });

  it('FDIV, including a tie in the subnormal range (RNE vs RMM)', () => {
    const one = dBits(1);
    const three = dBits(3);
    const lo = 0x3fd5555555555555n;
    const hi = 0x3fd5555555555556n;
    expect(MODES.map((m) => op2(fdiv, FMT_D, one, three, m).r)).toEqual([lo, lo, lo, hi, lo]);
    const nOne = dBits(-1);
    expect(MODES.map((m) => op2(fdiv, FMT_D, nOne, three, m).r)).toEqual(
      [lo, lo, hi, lo, lo].map((x) => x | D_NZERO),
    );
    // 2^-1074 / 2 is exactly half the smallest subnormal
    const two = dBits(2);
    const got = MODES.map((m) => op2(fdiv, FMT_D, D_MIN_SUB, two, m));
    expect(got.map((g) => g.r)).toEqual([0n, 0n, 0n, D_MIN_SUB, D_MIN_SUB]);
    expect(got.map((g) => g.flags)).toEqual(MODES.map(() => UF | NX));
    const gotS = MODES.map((m) => op2(fdiv, FMT_S, S_MIN_SUB | S_NZERO, sBits(2), m));
    expect(gotS.map((g) => g.r)).toEqual([
      S_NZERO,
      S_NZERO,
      S_NZERO | S_MIN_SUB,
      S_NZERO,
      S_NZERO | S_MIN_SUB,
    ]);
    // 1/3 in single
    expect(MODES.map((m) => op2(fdiv, FMT_S, sBits(1), sBits(3), m).r)).toEqual([
      0x3eaaaaabn,
      0x3eaaaaaan,
      0x3eaaaaaan,
      0x3eaaaaabn,
      0x3eaaaaabn,
    ]);
  });

  it('FSQRT', () => {
    const lo = 0x3ff6a09e667f3bccn;
    const hi = 0x3ff6a09e667f3bcdn; // sqrt(2) rounded to nearest is above it
    expect(MODES.map((m) => sqrtOp(FMT_D, dBits(2), m).r)).toEqual([hi, lo, lo, hi, hi]);
    expect(MODES.map((m) => sqrtOp(FMT_S, sBits(2), m).r)).toEqual([
      0x3fb504f3n,
      0x3fb504f3n,
      0x3fb504f3n,
      0x3fb504f4n,
      0x3fb504f3n,
    ]);
    for (const m of MODES) {
      expect(sqrtOp(FMT_D, dBits(2), m).flags).toBe(NX);
      expect(sqrtOp(FMT_D, dBits(6.25), m)).toEqual({ r: dBits(2.5), flags: 0 });
      expect(sqrtOp(FMT_S, sBits(0.25), m)).toEqual({ r: sBits(0.5), flags: 0 });
    }
    // sqrt of subnormals: 2^-1073 (odd exponent: inexact) and 2^-1072
    expect(sqrtOp(FMT_D, 2n, RNE)).toEqual({ r: dBits(Math.sqrt(2 ** -1073)), flags: NX });
    expect(sqrtOp(FMT_D, 4n, RNE)).toEqual({ r: dBits(2 ** -536), flags: 0 });
    expect(sqrtOp(FMT_D, D_MIN_SUB, RNE)).toEqual({ r: dBits(2 ** -537), flags: 0 });
  });

  it('FCVT float -> integer', () => {
    const cases: [number, bigint[]][] = [
      [2.5, [2n, 2n, 2n, 3n, 3n]],
      [-2.5, [-2n, -2n, -3n, -2n, -3n]],
      [3.5, [4n, 3n, 3n, 4n, 4n]],
      [0.5, [0n, 0n, 0n, 1n, 1n]],
      [-0.5, [0n, 0n, -1n, 0n, -1n]],
      [1.25, [1n, 1n, 1n, 2n, 1n]],
      [-1.75, [-2n, -1n, -2n, -1n, -2n]],
      [2 ** -1074, [0n, 0n, 0n, 1n, 0n]],
    ];
    for (const [v, want] of cases) {
      for (const kind of [CVT_W, CVT_L]) {
        const got = MODES.map((m) => toIntOp(FMT_D, kind, dBits(v), m));
        expect(
          got.map((g) => g.r),
          `${v}`,
        ).toEqual(want.map((w) => u64(w)));
        expect(got.map((g) => g.flags)).toEqual(MODES.map(() => NX));
        const gotS = MODES.map((m) => toIntOp(FMT_S, kind, sBits(v), m));
        if (v !== 2 ** -1074)
          expect(
            gotS.map((g) => g.r),
            `${v}`,
          ).toEqual(want.map((w) => u64(w)));
      }
    }
  });

  it('FCVT integer -> float', () => {
    // 2^53 + 1 is a tie between 2^53 and 2^53 + 2
    const t = 2n ** 53n + 1n;
    const lo = dBits(2 ** 53);
    const hi = dBits(2 ** 53 + 2);
    expect(MODES.map((m) => fromIntOp(FMT_D, CVT_L, t, m).r)).toEqual([lo, lo, lo, hi, hi]);
    expect(MODES.map((m) => fromIntOp(FMT_D, CVT_L, -t, m).r)).toEqual(
      [lo, lo, hi, lo, hi].map((x) => x | D_NZERO),
    );
    expect(fromIntOp(FMT_D, CVT_L, t, RNE).flags).toBe(NX);
    // 2^53 + 3 rounds up in RNE (tie, odd)
    expect(fromIntOp(FMT_D, CVT_LU, 2n ** 53n + 3n, RNE).r).toBe(dBits(2 ** 53 + 4));
    // W -> S: 2^24 + 1
    const s = 2n ** 24n + 1n;
    expect(MODES.map((m) => fromIntOp(FMT_S, CVT_W, s, m).r)).toEqual([
      sBits(2 ** 24),
      sBits(2 ** 24),
      sBits(2 ** 24),
      sBits(2 ** 24 + 2),
      sBits(2 ** 24 + 2),
    ]);
    // LU: 2^64 - 1 -> 2^64 except toward zero / down
    const m64 = 2n ** 64n - 1n;
    expect(MODES.map((m) => fromIntOp(FMT_D, CVT_LU, m64, m).r)).toEqual([
      dBits(2 ** 64),
      dBits(2 ** 64 - 2048),
      dBits(2 ** 64 - 2048),
      dBits(2 ** 64),
      dBits(2 ** 64),
    ]);
    // W/WU use only the low 32 bits of the X register
    expect(fromIntOp(FMT_D, CVT_W, 0x12345678ffffffffn, RNE)).toEqual({ r: dBits(-1), flags: 0 });
    expect(fromIntOp(FMT_D, CVT_WU, 0x12345678ffffffffn, RNE)).toEqual({
      r: dBits(4294967295),
      flags: 0,
    });
    expect(fromIntOp(FMT_S, CVT_W, 0x80000000n, RNE)).toEqual({ r: sBits(-(2 ** 31)), flags: 0 });
    expect(fromIntOp(FMT_D, CVT_L, 0n, RDN)).toEqual({ r: 0n, flags: 0 }); // +0, even in RDN
    expect(fromIntOp(FMT_D, CVT_L, 0x8000000000000000n, RNE)).toEqual({
      r: dBits(-(2 ** 63)),
      flags: 0,
    });
  });

  it('FCVT.S.D', () => {
    // 1 + 2^-24 is a tie for single precision
    const t = dBits(1 + 2 ** -24);
    expect(MODES.map((m) => cvtSD(t, m).r)).toEqual([
      0x3f800000n,
      0x3f800000n,
      0x3f800000n,
      0x3f800001n,
      0x3f800001n,
    ]);
    expect(cvtSD(t).flags).toBe(NX);
    // overflow
    const big = dBits(1e39);
    expect(MODES.map((m) => cvtSD(big, m))).toEqual([
      { r: S_INF, flags: OF | NX },
      { r: S_MAX, flags: OF | NX },
      { r: S_MAX, flags: OF | NX },
      { r: S_INF, flags: OF | NX },
      { r: S_INF, flags: OF | NX },
    ]);
    // underflow of a tiny double
    expect(MODES.map((m) => cvtSD(D_MIN_SUB | D_NZERO, m))).toEqual([
      { r: S_NZERO, flags: UF | NX },
      { r: S_NZERO, flags: UF | NX },
      { r: S_NZERO | S_MIN_SUB, flags: UF | NX },
      { r: S_NZERO, flags: UF | NX },
      { r: S_NZERO, flags: UF | NX },
    ]);
    expect(cvtSD(dBits(2 ** -149))).toEqual({ r: S_MIN_SUB, flags: 0 }); // exact subnormal
    expect(cvtSD(dBits(0.1))).toEqual({ r: sBits(0.1), flags: NX });
  });

  it('FCVT.D.S is exact, including subnormals', () => {
    expect(cvtDS(S_MIN_SUB)).toEqual({ r: dBits(2 ** -149), flags: 0 });
    expect(cvtDS(sBits(0.1))).toEqual({ r: dBits(Math.fround(0.1)), flags: 0 });
    expect(cvtDS(S_NINF)).toEqual({ r: D_NINF, flags: 0 });
    expect(cvtDS(S_NZERO)).toEqual({ r: D_NZERO, flags: 0 });
  });

  it('FMA', () => {
    // (1 + 2^-52)(1 - 2^-52) = 1 - 2^-104
    const a = 0x3ff0000000000001n;
    const b = 0x3feffffffffffffen;
    const below = 0x3fefffffffffffffn;
    const one = dBits(1);
    expect(MODES.map((m) => fmaOp(OP_FMADD, FMT_D, a, b, 0n, m).r)).toEqual([
      one,
      below,
      below,
      one,
      one,
    ]);
    // minus one: the exact -2^-104 in every mode, no flags
    for (const m of MODES) {
      expect(fmaOp(OP_FMADD, FMT_D, a, b, dBits(-1), m)).toEqual({
        r: dBits(-(2 ** -104)),
        flags: 0,
      });
    }
    // single: (1 + 2^-23)(1 - 2^-23) + 0 = 1 - 2^-46
    const as = 0x3f800001n;
    const bs = 0x3f7ffffen;
    expect(MODES.map((m) => fmaOp(OP_FMADD, FMT_S, as, bs, 0n, m).r)).toEqual([
      sBits(1),
      0x3f7fffffn,
      0x3f7fffffn,
      sBits(1),
      sBits(1),
    ]);
  });
});

describe('exception flags', () => {
  it('NV', () => {
    expect(op2(fmul, FMT_D, D_INF, 0n)).toEqual({ r: D_QNAN, flags: NV });
    expect(op2(fadd, FMT_D, D_INF, D_NINF)).toEqual({ r: D_QNAN, flags: NV });
    expect(op2(fsub, FMT_S, S_INF, S_INF)).toEqual({ r: S_QNAN, flags: NV });
    expect(op2(fdiv, FMT_D, 0n, D_NZERO)).toEqual({ r: D_QNAN, flags: NV });
    expect(op2(fdiv, FMT_S, S_NINF, S_INF)).toEqual({ r: S_QNAN, flags: NV });
    expect(sqrtOp(FMT_D, dBits(-1))).toEqual({ r: D_QNAN, flags: NV });
    expect(sqrtOp(FMT_S, S_NINF)).toEqual({ r: S_QNAN, flags: NV });
    expect(sqrtOp(FMT_D, D_NZERO)).toEqual({ r: D_NZERO, flags: 0 });
    expect(op2(fadd, FMT_D, D_SNAN, dBits(1))).toEqual({ r: D_QNAN, flags: NV });
    expect(op2(fmul, FMT_S, sBits(2), S_SNAN)).toEqual({ r: S_QNAN, flags: NV });
    expect(sqrtOp(FMT_D, D_SNAN)).toEqual({ r: D_QNAN, flags: NV });
    expect(cvtSD(D_SNAN)).toEqual({ r: S_QNAN, flags: NV });
    expect(cvtDS(S_SNAN)).toEqual({ r: D_QNAN, flags: NV });
    // quiet NaNs propagate (as the canonical NaN) without NV
    expect(op2(fadd, FMT_D, D_QNAN | 5n, dBits(1))).toEqual({ r: D_QNAN, flags: 0 });
    expect(op2(fdiv, FMT_S, S_QNAN, 0n)).toEqual({ r: S_QNAN, flags: 0 });
  });

  it('DZ', () => {
    expect(op2(fdiv, FMT_D, dBits(1), 0n)).toEqual({ r: D_INF, flags: DZ });
    expect(op2(fdiv, FMT_D, dBits(-1), 0n)).toEqual({ r: D_NINF, flags: DZ });
    expect(op2(fdiv, FMT_S, sBits(5), S_NZERO)).toEqual({ r: S_NINF, flags: DZ });
    expect(op2(fdiv, FMT_S, S_INF, 0n)).toEqual({ r: S_INF, flags: 0 }); // Inf / 0 is exact
    expect(op2(fdiv, FMT_D, D_MIN_SUB, D_NZERO)).toEqual({ r: D_NINF, flags: DZ });
  });

  it('OF', () => {
    const two = dBits(2);
    expect(MODES.map((m) => op2(fmul, FMT_D, D_MAX, two, m))).toEqual([
      { r: D_INF, flags: OF | NX },
      { r: D_MAX, flags: OF | NX },
      { r: D_MAX, flags: OF | NX },
      { r: D_INF, flags: OF | NX },
      { r: D_INF, flags: OF | NX },
    ]);
    expect(MODES.map((m) => op2(fadd, FMT_S, S_MAX | S_NZERO, S_MAX | S_NZERO, m))).toEqual([
      { r: S_NINF, flags: OF | NX },
      { r: S_MAX | S_NZERO, flags: OF | NX },
      { r: S_NINF, flags: OF | NX },
      { r: S_MAX | S_NZERO, flags: OF | NX },
      { r: S_NINF, flags: OF | NX },
    ]);
    // Rounding up to 2^1024 overflows; MAX + half an ulp of MAX is a tie.
    const halfUlp = dBits(2 ** 970);
    expect(op2(fadd, FMT_D, D_MAX, halfUlp, RNE)).toEqual({ r: D_INF, flags: OF | NX });
    expect(op2(fadd, FMT_D, D_MAX, halfUlp, RTZ)).toEqual({ r: D_MAX, flags: NX });
    expect(op2(fadd, FMT_D, D_MAX, dBits(2 ** 969), RNE)).toEqual({ r: D_MAX, flags: NX });
    expect(op2(fdiv, FMT_D, D_MAX, dBits(0.5), RNE)).toEqual({ r: D_INF, flags: OF | NX });
  });

  it('UF only when tiny and inexact; NX', () => {
    // exact subnormal results raise nothing
    expect(op2(fmul, FMT_D, D_MIN_NORMAL, dBits(0.5))).toEqual({ r: D_MIN_NORMAL >> 1n, flags: 0 });
    expect(op2(fsub, FMT_D, dBits(3 * 2 ** -1022), dBits(2.5 * 2 ** -1022))).toEqual({
      r: D_MIN_NORMAL >> 1n,
      flags: 0,
    });
    // inexact tiny results raise UF and NX
    expect(op2(fmul, FMT_D, D_MIN_SUB, dBits(0.5))).toEqual({ r: 0n, flags: UF | NX });
    expect(op2(fmul, FMT_D, D_MIN_NORMAL, dBits(1 / 3))).toEqual({
      r: 0x0005555555555555n,
      flags: UF | NX,
    });
    expect(op2(fmul, FMT_S, S_MIN_SUB, sBits(0.75))).toEqual({ r: S_MIN_SUB, flags: UF | NX });
    expect(op2(fdiv, FMT_D, dBits(1), dBits(3))).toEqual({ r: 0x3fd5555555555555n, flags: NX });
  });

  it('detects tininess after rounding', () => {
    // (2^27 - 1)(2^27 + 1) * 2^-1076 = (1 - 2^-54) * 2^-1022: with an unbounded exponent it rounds
    // to 2^-1022 in RNE/RUP/RMM (not tiny: no UF), but not in RTZ/RDN (tiny: UF).
    const a = dExact(2 ** 27 - 1, -600);
    const b = dExact(2 ** 27 + 1, -476);
    const got = MODES.map((m) => op2(fmul, FMT_D, a, b, m));
    expect(got).toEqual([
      { r: D_MIN_NORMAL, flags: NX },
      { r: D_MIN_NORMAL - 1n, flags: UF | NX },
      { r: D_MIN_NORMAL - 1n, flags: UF | NX },
      { r: D_MIN_NORMAL, flags: NX },
      { r: D_MIN_NORMAL, flags: NX },
    ]);
    // (2^53 - 1) * 2^-1075 = 2^-1022 - 2^-1075 needs no rounding at 53 bits, so it is tiny; as a
    // subnormal it is a tie that rounds (to even) up to 2^-1022: the result is the smallest
    // normal number and still UF is raised.
    const c = dExact(2 ** 53 - 1, -1045);
    expect(op2(fmul, FMT_D, c, dBits(2 ** -30), RNE)).toEqual({ r: D_MIN_NORMAL, flags: UF | NX });
    expect(op2(fdiv, FMT_D, dExact(2 ** 53 - 1, -1000), dBits(2 ** 75), RNE)).toEqual({
      r: D_MIN_NORMAL,
      flags: UF | NX,
    });
    // single: (2^25 - 1) * 2^-151 = (1 - 2^-25) * 2^-126
    const sa = sBits(31 * 601 * 2 ** -75);
    const sb = sBits(1801 * 2 ** -76);
    const gotS = MODES.map((m) => op2(fmul, FMT_S, sa, sb, m));
    expect(gotS).toEqual([
      { r: S_MIN_NORMAL, flags: NX },
      { r: S_MIN_NORMAL - 1n, flags: UF | NX },
      { r: S_MIN_NORMAL - 1n, flags: UF | NX },
      { r: S_MIN_NORMAL, flags: NX },
      { r: S_MIN_NORMAL, flags: NX },
    ]);
    // the same through FMA (a*b + 0), FDIV and FCVT.S.D
    expect(fmaOp(OP_FMADD, FMT_D, a, b, 0n, RNE)).toEqual({ r: D_MIN_NORMAL, flags: NX });
    expect(fmaOp(OP_FMADD, FMT_D, a, b, 0n, RTZ)).toEqual({ r: D_MIN_NORMAL - 1n, flags: UF | NX });
    const t = dBits((1 - 2 ** -25) * 2 ** -126);
    expect(cvtSD(t, RNE)).toEqual({ r: S_MIN_NORMAL, flags: NX });
    expect(cvtSD(t, RDN)).toEqual({ r: S_MIN_NORMAL - 1n, flags: UF | NX });
  });
});

describe('NaN boxing', () => {
  const oneS = sBits(1);

  it('treats improperly boxed inputs as the canonical NaN', () => {
    H.setFReg(1, oneS); // upper bits zero
    put(FMT_S, 2, oneS);
    expect(exec(fadd(FMT_S, 3, 1, 2, RNE))).toBe(true);
    expect(fr(3)).toBe(BOX | S_QNAN);
    expect(H.getFflags()).toBe(0); // the canonical NaN is quiet
    H.setFReg(1, 0xfffffffe00000000n | oneS); // one upper bit clear
    expect(exec(fmul(FMT_S, 3, 1, 2, RNE))).toBe(true);
    expect(fr(3)).toBe(BOX | S_QNAN);
    // A double in an f register read as single
    put(FMT_D, 1, dBits(1));
    expect(exec(fsqrt(FMT_S, 3, 1, RNE))).toBe(true);
    expect(fr(3)).toBe(BOX | S_QNAN);
    // FCLASS.S sees a quiet NaN
    H.setFReg(1, 0x00000000ff800000n);
    expect(exec(fclass(FMT_S, 5, 1))).toBe(true);
    expect(xr(5)).toBe(1n << 9n);
    // FCVT.D.S
    H.setFReg(1, oneS);
    expect(exec(fcvtDS(3, 1, RNE))).toBe(true);
    expect(fr(3)).toBe(D_QNAN);
    // FCVT.W.S: NaN -> max, NV
    H.setFflags(0);
    expect(exec(fcvtToInt(FMT_S, CVT_W, 5, 1, RNE))).toBe(true);
    expect(xr(5)).toBe(0x7fffffffn);
    expect(H.getFflags()).toBe(NV);
  });

  it('sign injection of an unboxed input injects into the canonical NaN', () => {
    H.setFReg(1, oneS);
    put(FMT_S, 2, sBits(-2));
    expect(exec(fsgnj(FMT_S, 3, 1, 2))).toBe(true);
    expect(fr(3)).toBe(BOX | 0xffc00000n);
    expect(exec(fsgnjn(FMT_S, 3, 1, 2))).toBe(true);
    expect(fr(3)).toBe(BOX | 0x7fc00000n);
    // unboxed sign source: the canonical NaN's sign is 0
    put(FMT_S, 1, sBits(-3));
    H.setFReg(2, 0x80000000n);
    expect(exec(fsgnj(FMT_S, 3, 1, 2))).toBe(true);
    expect(fr(3)).toBe(BOX | sBits(3));
  });

  it('min/max and compares treat it as a quiet NaN', () => {
    H.setFReg(1, oneS);
    put(FMT_S, 2, sBits(-7));
    expect(exec(fmin(FMT_S, 3, 1, 2))).toBe(true);
    expect(fr(3)).toBe(BOX | sBits(-7));
    expect(H.getFflags()).toBe(0);
    expect(exec(feq(FMT_S, 5, 1, 2))).toBe(true);
    expect(xr(5)).toBe(0n);
    expect(H.getFflags()).toBe(0);
    expect(exec(fle(FMT_S, 5, 2, 1))).toBe(true);
    expect(xr(5)).toBe(0n);
    expect(H.getFflags()).toBe(NV);
  });

  it('boxes every single-precision result; FMV.X.W and FMV.W.X move raw bits', () => {
    put(FMT_S, 1, sBits(1.5));
    put(FMT_S, 2, sBits(2));
    for (const insn of [
      fadd(FMT_S, 3, 1, 2, RNE),
      fmin(FMT_S, 3, 1, 2),
      fsgnjx(FMT_S, 3, 1, 2),
      fsqrt(FMT_S, 3, 1, RNE),
      fcvtSD(3, 1, RNE),
      fma4(OP_FMADD, FMT_S, 3, 1, 2, 2, RNE),
    ]) {
      H.setFReg(3, 0n);
      expect(exec(insn)).toBe(true);
      expect(fr(3) >> 32n).toBe(0xffffffffn);
    }
    H.setXReg(5, 0x123456789abcdef0n);
    H.setFReg(3, 0n);
    expect(exec(fcvtFromInt(FMT_S, CVT_L, 3, 5, RNE))).toBe(true);
    expect(fr(3) >> 32n).toBe(0xffffffffn);
    H.setFflags(0); // the moves below raise nothing
    expect(exec(fmvFX(FMT_S, 4, 5))).toBe(true);
    expect(fr(4)).toBe(0xffffffff9abcdef0n);
    expect(exec(fmvFX(FMT_D, 4, 5))).toBe(true);
    expect(fr(4)).toBe(0x123456789abcdef0n);
    // FMV.X.W does not check the boxing and sign-extends bit 31
    H.setFReg(6, 0x1234567880000001n);
    expect(exec(fmvXF(FMT_S, 7, 6))).toBe(true);
    expect(xr(7)).toBe(0xffffffff80000001n);
    H.setFReg(6, 0xffffffff7fffffffn);
    expect(exec(fmvXF(FMT_S, 7, 6))).toBe(true);
    expect(xr(7)).toBe(0x7fffffffn);
    H.setFReg(6, 0xfff0000000000001n);
    expect(exec(fmvXF(FMT_D, 7, 6))).toBe(true);
    expect(xr(7)).toBe(0xfff0000000000001n);
    expect(H.getFflags()).toBe(0);
  });
});

describe('NaN results', () => {
  it('arithmetic returns the canonical NaN whatever the input payload and sign', () => {
    const dn = [0xfff8000000000123n, 0x7ff80000deadbeefn, 0xfff0000000000042n];
    const sn = [0xffc00123n, 0x7fc0beefn, 0xff800042n];
    for (const x of dn) {
      expect(op2(fadd, FMT_D, x, dBits(1)).r).toBe(D_QNAN);
      expect(op2(fsub, FMT_D, dBits(1), x).r).toBe(D_QNAN);
      expect(op2(fmul, FMT_D, x, x).r).toBe(D_QNAN);
      expect(op2(fdiv, FMT_D, x, dBits(1)).r).toBe(D_QNAN);
      expect(sqrtOp(FMT_D, x).r).toBe(D_QNAN);
      expect(fmaOp(OP_FNMADD, FMT_D, dBits(1), dBits(1), x).r).toBe(D_QNAN);
      expect(cvtSD(x).r).toBe(S_QNAN);
    }
    for (const x of sn) {
      expect(op2(fadd, FMT_S, x, sBits(1)).r).toBe(S_QNAN);
      expect(op2(fdiv, FMT_S, sBits(1), x).r).toBe(S_QNAN);
      expect(sqrtOp(FMT_S, x).r).toBe(S_QNAN);
      expect(fmaOp(OP_FMSUB, FMT_S, x, sBits(1), sBits(1)).r).toBe(S_QNAN);
      expect(cvtDS(x).r).toBe(D_QNAN);
    }
  });

  it('sign injection keeps NaN payloads (it is not arithmetic)', () => {
    expect(op2(fsgnjn, FMT_D, 0x7ff0000000000123n, 0n).r).toBe(0xfff0000000000123n);
    expect(op2(fsgnjx, FMT_S, 0xffc00123n, S_NZERO).r).toBe(0x7fc00123n);
    expect(op2(fsgnj, FMT_D, dBits(-2), dBits(3)).r).toBe(dBits(2));
    expect(op2(fsgnjn, FMT_D, dBits(-2), dBits(3)).r).toBe(dBits(-2));
    expect(op2(fsgnjx, FMT_D, dBits(-2), dBits(-3)).r).toBe(dBits(2));
    expect(op2(fsgnj, FMT_D, D_SNAN, dBits(-1)).flags).toBe(0);
  });
});

describe('FMIN/FMAX', () => {
  it('orders -0 below +0', () => {
    expect(op2(fmin, FMT_D, 0n, D_NZERO).r).toBe(D_NZERO);
    expect(op2(fmin, FMT_D, D_NZERO, 0n).r).toBe(D_NZERO);
    expect(op2(fmax, FMT_D, D_NZERO, 0n).r).toBe(0n);
    expect(op2(fmax, FMT_S, 0n, S_NZERO).r).toBe(0n);
    expect(op2(fmin, FMT_S, 0n, S_NZERO).r).toBe(S_NZERO);
  });

  it('orders ordinary values, infinities and subnormals', () => {
    const vals = [D_NINF, dBits(-3), dBits(-1e-310), D_NZERO, 0n, D_MIN_SUB, dBits(2), D_INF];
    for (let i = 0; i < vals.length; i++) {
      for (let j = 0; j < vals.length; j++) {
        const lo = vals[Math.min(i, j)];
        const hi = vals[Math.max(i, j)];
        expect(op2(fmin, FMT_D, vals[i], vals[j])).toEqual({ r: lo, flags: 0 });
        expect(op2(fmax, FMT_D, vals[i], vals[j])).toEqual({ r: hi, flags: 0 });
      }
    }
  });

  it('returns the non-NaN operand; both NaN -> canonical NaN; sNaN raises NV', () => {
    const one = dBits(1);
    for (const f of [fmin, fmax]) {
      expect(op2(f, FMT_D, D_QNAN | 7n, one)).toEqual({ r: one, flags: 0 });
      expect(op2(f, FMT_D, one, 0xfff8000000000000n)).toEqual({ r: one, flags: 0 });
      expect(op2(f, FMT_D, D_SNAN, one)).toEqual({ r: one, flags: NV });
      expect(op2(f, FMT_D, one, D_SNAN | D_NZERO)).toEqual({ r: one, flags: NV });
      expect(op2(f, FMT_D, D_QNAN | 9n, 0xfff8000000000000n)).toEqual({ r: D_QNAN, flags: 0 });
      expect(op2(f, FMT_D, D_SNAN, D_QNAN)).toEqual({ r: D_QNAN, flags: NV });
      expect(op2(f, FMT_S, S_SNAN, sBits(-4))).toEqual({ r: sBits(-4), flags: NV });
      expect(op2(f, FMT_S, 0xffc00001n, sBits(-4))).toEqual({ r: sBits(-4), flags: 0 });
      expect(op2(f, FMT_S, S_SNAN, S_SNAN)).toEqual({ r: S_QNAN, flags: NV });
    }
  });
});

describe('FEQ/FLT/FLE', () => {
  const one = dBits(1);
  it('FEQ is quiet: NV only for signalling NaNs', () => {
    expect(cmpOp(feq, FMT_D, D_QNAN, one)).toEqual({ r: 0n, flags: 0 });
    expect(cmpOp(feq, FMT_D, D_QNAN, D_QNAN)).toEqual({ r: 0n, flags: 0 });
    expect(cmpOp(feq, FMT_D, one, D_SNAN)).toEqual({ r: 0n, flags: NV });
    expect(cmpOp(feq, FMT_S, S_SNAN, S_SNAN)).toEqual({ r: 0n, flags: NV });
    expect(cmpOp(feq, FMT_D, 0n, D_NZERO)).toEqual({ r: 1n, flags: 0 });
    expect(cmpOp(feq, FMT_D, one, one)).toEqual({ r: 1n, flags: 0 });
    expect(cmpOp(feq, FMT_S, sBits(1), sBits(2))).toEqual({ r: 0n, flags: 0 });
  });

  it('FLT and FLE are signalling: NV for any NaN', () => {
    for (const f of [flt, fle]) {
      expect(cmpOp(f, FMT_D, D_QNAN, one)).toEqual({ r: 0n, flags: NV });
      expect(cmpOp(f, FMT_D, one, D_QNAN)).toEqual({ r: 0n, flags: NV });
      expect(cmpOp(f, FMT_S, S_SNAN, sBits(1))).toEqual({ r: 0n, flags: NV });
    }
  });

  it('orders values', () => {
    const vals = [D_NINF, dBits(-2), dBits(-1), D_NZERO, D_MIN_SUB, dBits(1), D_MAX, D_INF];
    for (let i = 0; i < vals.length; i++) {
      for (let j = 0; j < vals.length; j++) {
        expect(cmpOp(flt, FMT_D, vals[i], vals[j]).r).toBe(i < j ? 1n : 0n);
        expect(cmpOp(fle, FMT_D, vals[i], vals[j]).r).toBe(i <= j ? 1n : 0n);
        expect(cmpOp(feq, FMT_D, vals[i], vals[j]).r).toBe(i === j ? 1n : 0n);
      }
    }
    expect(cmpOp(flt, FMT_D, D_NZERO, 0n)).toEqual({ r: 0n, flags: 0 });
    expect(cmpOp(flt, FMT_D, 0n, D_NZERO)).toEqual({ r: 0n, flags: 0 });
    expect(cmpOp(fle, FMT_D, 0n, D_NZERO)).toEqual({ r: 1n, flags: 0 });
    expect(cmpOp(flt, FMT_S, sBits(-2), sBits(-1)).r).toBe(1n);
    expect(cmpOp(flt, FMT_S, sBits(-1), sBits(-2)).r).toBe(0n);
    expect(cmpOp(fle, FMT_S, S_INF, S_INF).r).toBe(1n);
  });
});

describe('FCLASS', () => {
  function cls(fmt: number, v: bigint): bigint {
    put(fmt, 1, v);
    expect(exec(fclass(fmt, 5, 1))).toBe(true);
    return xr(5);
  }
  it('classifies all ten classes', () => {
    const d = [
      D_NINF,
      dBits(-1),
      D_NZERO | D_MIN_SUB,
      D_NZERO,
      0n,
      0x000fffffffffffffn,
      D_MIN_NORMAL,
      D_INF,
      D_SNAN,
      D_QNAN,
    ];
    const s = [
      S_NINF,
      S_NZERO | S_MAX,
      0x807fffffn,
      S_NZERO,
      0n,
      S_MIN_SUB,
      sBits(1),
      S_INF,
      0x7fbfffffn,
      0xffc00000n,
    ];
    for (let i = 0; i < 10; i++) {
      expect(cls(FMT_D, d[i])).toBe(1n << BigInt(i));
      expect(cls(FMT_S, s[i])).toBe(1n << BigInt(i));
    }
    expect(cls(FMT_D, 0xfff0000000000001n)).toBe(1n << 8n);
    expect(cls(FMT_D, 0xfff8000000000001n)).toBe(1n << 9n);
    expect(H.getFflags()).toBe(0);
  });
});

describe('saturating conversions to integers', () => {
  const MAXW = 0x7fffffffn;
  const MINW = 0xffffffff80000000n;
  const MAXL = 0x7fffffffffffffffn;
  const MINL = 0x8000000000000000n;
  const ALL = 0xffffffffffffffffn;

  it('at the 32-bit boundaries', () => {
    const t = (v: number, kind: number, rm: number, r: bigint, flags: number) =>
      expect(toIntOp(FMT_D, kind, dBits(v), rm), `${v} kind ${kind} rm ${rm}`).toEqual({
        r,
        flags,
      });
    t(2 ** 31, CVT_W, RTZ, MAXW, NV);
    t(2 ** 31 - 1, CVT_W, RNE, MAXW, 0);
    t(2 ** 31 - 0.5, CVT_W, RTZ, MAXW, NX);
    t(2 ** 31 - 0.5, CVT_W, RNE, MAXW, NV); // rounds to 2^31: out of range
    t(2 ** 31 - 0.5, CVT_W, RMM, MAXW, NV);
    t(-(2 ** 31), CVT_W, RNE, MINW, 0);
    t(-(2 ** 31) - 0.5, CVT_W, RTZ, MINW, NX);
    t(-(2 ** 31) - 0.5, CVT_W, RNE, MINW, NX); // tie to even (-2^31)
    t(-(2 ** 31) - 0.5, CVT_W, RDN, MINW, NV);
    t(-(2 ** 31) - 1, CVT_W, RTZ, MINW, NV);
    t(1e300, CVT_W, RNE, MAXW, NV);
    t(-1e300, CVT_W, RNE, MINW, NV);
    // WU: the 32-bit result is sign-extended into the X register
    t(2 ** 32 - 1, CVT_WU, RNE, ALL, 0);
    t(2 ** 31, CVT_WU, RNE, 0xffffffff80000000n, 0);
    t(2 ** 32, CVT_WU, RNE, ALL, NV);
    t(2 ** 32 - 0.25, CVT_WU, RTZ, ALL, NX);
    t(2 ** 32 - 0.25, CVT_WU, RUP, ALL, NV);
    t(-0.5, CVT_WU, RTZ, 0n, NX);
    t(-0.5, CVT_WU, RNE, 0n, NX);
    t(-0.5, CVT_WU, RUP, 0n, NX);
    t(-0.5, CVT_WU, RDN, 0n, NV);
    t(-0.5, CVT_WU, RMM, 0n, NV);
    t(-1, CVT_WU, RTZ, 0n, NV);
    t(-1e300, CVT_WU, RTZ, 0n, NV);
    t(-0, CVT_WU, RNE, 0n, 0);
    t(-0, CVT_W, RNE, 0n, 0);
    t(-7.0, CVT_W, RNE, u64(-7n), 0);
    t(123.0, CVT_W, RNE, 123n, 0);
  });

  it('at the 64-bit boundaries', () => {
    const t = (v: number, kind: number, rm: number, r: bigint, flags: number) =>
      expect(toIntOp(FMT_D, kind, dBits(v), rm), `${v} kind ${kind} rm ${rm}`).toEqual({
        r,
        flags,
      });
    t(2 ** 63, CVT_L, RNE, MAXL, NV);
    t(2 ** 63 - 1024, CVT_L, RNE, 0x7ffffffffffffc00n, 0);
    t(-(2 ** 63), CVT_L, RNE, MINL, 0);
    t(-(2 ** 63) - 2048, CVT_L, RNE, MINL, NV);
    t(2 ** 64, CVT_LU, RNE, ALL, NV);
    t(2 ** 64 - 2048, CVT_LU, RNE, 0xfffffffffffff800n, 0);
    t(2 ** 63, CVT_LU, RNE, 0x8000000000000000n, 0);
    t(-0.5, CVT_LU, RTZ, 0n, NX);
    t(-0.5, CVT_LU, RDN, 0n, NV);
    t(-1, CVT_LU, RTZ, 0n, NV);
    t(-(2 ** 70), CVT_LU, RTZ, 0n, NV);
    t(2 ** 70, CVT_L, RTZ, MAXL, NV);
    t(-(2 ** 70), CVT_L, RTZ, MINL, NV);
    t(2.5, CVT_LU, RNE, 2n, NX);
    // single precision sources
    const s = (v: number, kind: number, rm: number, r: bigint, flags: number) =>
      expect(toIntOp(FMT_S, kind, sBits(v), rm), `${v} kind ${kind} rm ${rm}`).toEqual({
        r,
        flags,
      });
    s(2 ** 31, CVT_W, RNE, MAXW, NV);
    s(-(2 ** 31), CVT_W, RNE, MINW, 0);
    s(2 ** 31, CVT_WU, RNE, 0xffffffff80000000n, 0);
    s(2 ** 63, CVT_L, RNE, MAXL, NV);
    s(2 ** 63, CVT_LU, RNE, 0x8000000000000000n, 0);
    s(2 ** 64, CVT_LU, RNE, ALL, NV);
    s(-(2 ** 63), CVT_L, RNE, MINL, 0);
    s(-0.5, CVT_LU, RNE, 0n, NX);
  });

  it('NaN gives the largest value and Inf saturates, with NV', () => {
    const kinds = [CVT_W, CVT_WU, CVT_L, CVT_LU];
    const max = [MAXW, ALL, MAXL, ALL];
    const min = [MINW, 0n, MINL, 0n];
    for (let k = 0; k < 4; k++) {
      for (const nan of [D_QNAN, D_SNAN, 0xfff8000000000000n]) {
        expect(toIntOp(FMT_D, kinds[k], nan)).toEqual({ r: max[k], flags: NV });
      }
      expect(toIntOp(FMT_S, kinds[k], 0xffc00000n)).toEqual({ r: max[k], flags: NV });
      expect(toIntOp(FMT_D, kinds[k], D_INF)).toEqual({ r: max[k], flags: NV });
      expect(toIntOp(FMT_D, kinds[k], D_NINF)).toEqual({ r: min[k], flags: NV });
      expect(toIntOp(FMT_S, kinds[k], S_NINF)).toEqual({ r: min[k], flags: NV });
    }
  });
});

describe('fused multiply-add', () => {
  it('FMADD, FMSUB, FNMSUB, FNMADD signs', () => {
    const [a, b, c] = [dBits(2), dBits(3), dBits(1)];
    expect(fmaOp(OP_FMADD, FMT_D, a, b, c).r).toBe(dBits(7));
    expect(fmaOp(OP_FMSUB, FMT_D, a, b, c).r).toBe(dBits(5));
    expect(fmaOp(OP_FNMSUB, FMT_D, a, b, c).r).toBe(dBits(-5));
    expect(fmaOp(OP_FNMADD, FMT_D, a, b, c).r).toBe(dBits(-7));
    const [as, bs, cs] = [sBits(2), sBits(3), sBits(1)];
    expect(fmaOp(OP_FMADD, FMT_S, as, bs, cs).r).toBe(sBits(7));
    expect(fmaOp(OP_FMSUB, FMT_S, as, bs, cs).r).toBe(sBits(5));
    expect(fmaOp(OP_FNMSUB, FMT_S, as, bs, cs).r).toBe(sBits(-5));
    expect(fmaOp(OP_FNMADD, FMT_S, as, bs, cs).r).toBe(sBits(-7));
  });

  it('signs of zero results', () => {
    const one = dBits(1);
    // 0*1 + 0
    expect(fmaOp(OP_FMADD, FMT_D, 0n, one, 0n).r).toBe(0n);
    expect(fmaOp(OP_FMSUB, FMT_D, 0n, one, 0n).r).toBe(0n); // 0 - 0
    expect(fmaOp(OP_FMSUB, FMT_D, 0n, one, 0n, RDN).r).toBe(D_NZERO);
    expect(fmaOp(OP_FNMSUB, FMT_D, 0n, one, 0n).r).toBe(0n); // -0 + 0
    expect(fmaOp(OP_FNMADD, FMT_D, 0n, one, 0n).r).toBe(D_NZERO); // -0 - 0
    expect(fmaOp(OP_FMADD, FMT_D, D_NZERO, one, D_NZERO).r).toBe(D_NZERO);
    // exact cancellation of a non-zero product
    expect(fmaOp(OP_FMSUB, FMT_D, one, one, one).r).toBe(0n);
    expect(fmaOp(OP_FMSUB, FMT_D, one, one, one, RDN).r).toBe(D_NZERO);
    // 0 * x + c = c exactly
    expect(fmaOp(OP_FMADD, FMT_D, 0n, one, D_MIN_SUB)).toEqual({ r: D_MIN_SUB, flags: 0 });
    expect(fmaOp(OP_FNMADD, FMT_S, 0n, sBits(1), sBits(3))).toEqual({ r: sBits(-3), flags: 0 });
  });

  it('Inf * 0 raises NV even when the addend is a quiet NaN', () => {
    for (const op of [OP_FMADD, OP_FMSUB, OP_FNMSUB, OP_FNMADD]) {
      expect(fmaOp(op, FMT_D, D_INF, 0n, D_QNAN)).toEqual({ r: D_QNAN, flags: NV });
      expect(fmaOp(op, FMT_D, D_NZERO, D_NINF, dBits(1))).toEqual({ r: D_QNAN, flags: NV });
      expect(fmaOp(op, FMT_S, 0n, S_INF, S_QNAN)).toEqual({ r: S_QNAN, flags: NV });
    }
    expect(fmaOp(OP_FMADD, FMT_D, D_QNAN, 0n, dBits(1))).toEqual({ r: D_QNAN, flags: 0 });
    expect(fmaOp(OP_FMADD, FMT_D, dBits(1), dBits(1), D_SNAN)).toEqual({ r: D_QNAN, flags: NV });
    expect(fmaOp(OP_FMADD, FMT_D, D_INF, dBits(1), D_NINF)).toEqual({ r: D_QNAN, flags: NV });
    expect(fmaOp(OP_FMSUB, FMT_D, D_INF, dBits(1), D_INF)).toEqual({ r: D_QNAN, flags: NV });
    expect(fmaOp(OP_FMADD, FMT_D, D_INF, dBits(1), D_INF)).toEqual({ r: D_INF, flags: 0 });
    expect(fmaOp(OP_FNMADD, FMT_D, D_INF, dBits(1), D_INF)).toEqual({ r: D_NINF, flags: 0 });
    expect(fmaOp(OP_FMADD, FMT_D, D_MAX, D_MAX, D_NINF)).toEqual({ r: D_NINF, flags: 0 });
  });

  it('rounds once: differs from a separate multiply and add', () => {
    // (1 + 2^-52)^2 - (1 + 2^-51) = 2^-104, where mul then add gives 0
    const a = 0x3ff0000000000001n;
    const c = 0xbff0000000000002n;
    expect(bitsD(a) * bitsD(a) + bitsD(c)).toBe(0);
    expect(fmaOp(OP_FMADD, FMT_D, a, a, c)).toEqual({ r: dBits(2 ** -104), flags: 0 });
    // Randomly find cases where the double-rounded host result differs, and check them all
    // against the exact reference.
    const rng = new Rng(1234);
    let found = 0;
    let foundS = 0;
    const bad: string[] = [];
    for (let i = 0; i < 20000 && (found < 200 || foundS < 200); i++) {
      const x = 1 + rng.int(1 << 30) / 2 ** 30;
      const y = 1 + rng.int(1 << 30) / 2 ** 30;
      const z = -(x * y) * (1 + (rng.int(1 << 20) - (1 << 19)) * 2 ** -40);
      const naive = dBits(x * y + z);
      const want = refFma(dBits(x), dBits(y), dBits(z), FD, RNE);
      if (naive !== want.r) {
        found++;
        const got = fmaOp(OP_FMADD, FMT_D, dBits(x), dBits(y), dBits(z));
        if (got.r !== want.r || got.flags !== want.flags)
          bad.push(describeMismatch('D', got, want));
      }
      // single: the f64 product is exact, but (f64 sum -> f32) can double-round
      const xs = Math.fround(x);
      const ys = Math.fround(y * (1 + rng.int(1 << 10) * 2 ** -30));
      const zs = Math.fround(-(xs * ys) + rng.int(1 << 12) * 2 ** -(24 + rng.int(40)));
      const naiveS = sBits(Math.fround(xs * ys + zs));
      const naiveS2 = sBits(Math.fround(Math.fround(xs * ys) + zs));
      const wantS = refFma(sBits(xs), sBits(ys), sBits(zs), FS, RNE);
      if (naiveS !== wantS.r || naiveS2 !== wantS.r) {
        foundS++;
        const got = fmaOp(OP_FMADD, FMT_S, sBits(xs), sBits(ys), sBits(zs));
        if (got.r !== wantS.r || got.flags !== wantS.flags)
          bad.push(describeMismatch('S', got, wantS));
      }
    }
    expect(found).toBeGreaterThan(50);
    expect(foundS).toBeGreaterThan(20);
    expect(bad.slice(0, 10)).toEqual([]);
  });
});

describe('randomized: RNE against the host FPU (bit-exact), NX against exact arithmetic', () => {
  type HostOp = (x: number, y: number) => number;
  const hostOps: [string, Enc3, HostOp, typeof refAdd][] = [
    ['fadd', fadd, (x, y) => x + y, refAdd],
    ['fsub', fsub, (x, y) => x - y, (a, b, f, rm) => refAdd(a, b ^ f.sign, f, rm)],
    ['fmul', fmul, (x, y) => x * y, refMul],
    ['fdiv', fdiv, (x, y) => x / y, refDiv],
  ];
  for (const fmt of [FMT_D, FMT_S]) {
    const f = fmtOf(fmt);
    for (const [name, enc, host, ref] of hostOps) {
      it(`${name}.${fmtName(fmt)}`, () => {
        const rng = new Rng(0x1000 + fmt * 16 + enc(0, 0, 0, 0, 0));
        const bad: string[] = [];
        for (let i = 0; i < 10000; i++) {
          const a = randFloat(rng, f);
          const b = rng.int(4) === 0 ? nearby(rng, a, f) : randFloat(rng, f);
          const got = op2(enc, fmt, a, b, RNE);
          const x = fmt === FMT_D ? bitsD(a) : bitsS(a);
          const y = fmt === FMT_D ? bitsD(b) : bitsS(b);
          const h = fmt === FMT_D ? host(x, y) : Math.fround(host(x, y));
          const hb = Number.isNaN(h) ? f.canon : fmt === FMT_D ? dBits(h) : sBits(h);
          const want = ref(a, b, f, RNE);
          if (got.r !== hb || want.r !== hb || got.flags !== want.flags) {
            bad.push(
              `${name} ${hex(a)} ${hex(b)}: host ${hex(hb)}; ` + describeMismatch('', got, want),
            );
          }
        }
        expect(bad.slice(0, 10)).toEqual([]);
      });
    }
    it(`fsqrt.${fmtName(fmt)}`, () => {
      const rng = new Rng(0x2000 + fmt);
      const bad: string[] = [];
      for (let i = 0; i < 10000; i++) {
        const a = randFloat(rng, f);
        const got = sqrtOp(fmt, a, RNE);
        const x = fmt === FMT_D ? bitsD(a) : bitsS(a);
        const h = fmt === FMT_D ? Math.sqrt(x) : Math.fround(Math.sqrt(x));
        const hb = Number.isNaN(h) ? f.canon : fmt === FMT_D ? dBits(h) : sBits(h);
        const want = refSqrt(a, f, RNE);
        if (got.r !== hb || want.r !== hb || got.flags !== want.flags) {
          bad.push(`sqrt ${hex(a)}: host ${hex(hb)}; ` + describeMismatch('', got, want));
        }
      }
      expect(bad.slice(0, 10)).toEqual([]);
    });
  }
});

describe('randomized: every rounding mode against the exact reference', () => {
  const N = 3000;
  for (const fmt of [FMT_D, FMT_S]) {
    const f = fmtOf(fmt);
    const binary: [string, Enc3, typeof refAdd][] = [
      ['fadd', fadd, refAdd],
      ['fsub', fsub, (a, b, ff, rm) => refAdd(a, b ^ ff.sign, ff, rm)],
      ['fmul', fmul, refMul],
      ['fdiv', fdiv, refDiv],
    ];
    for (const [name, enc, ref] of binary) {
      it(`${name}.${fmtName(fmt)}`, () => {
        const rng = new Rng(0x3000 + fmt * 16 + enc(0, 0, 0, 0, 0));
        const bad: string[] = [];
        for (const rm of MODES) {
          for (let i = 0; i < N; i++) {
            const a = randFloat(rng, f);
            const b = rng.int(4) === 0 ? nearby(rng, a, f) : randFloat(rng, f);
            const got = op2(enc, fmt, a, b, rm);
            const want = ref(a, b, f, rm);
            if (got.r !== want.r || got.flags !== want.flags) {
              bad.push(
                describeMismatch(`${name} ${MODE_NAMES[rm]} ${hex(a)} ${hex(b)}`, got, want),
              );
            }
          }
        }
        expect(bad.slice(0, 10)).toEqual([]);
      });
    }

    it(`fsqrt.${fmtName(fmt)}`, () => {
      const rng = new Rng(0x4000 + fmt);
      const bad: string[] = [];
      for (const rm of MODES) {
        for (let i = 0; i < N; i++) {
          const a = randFloat(rng, f);
          const got = sqrtOp(fmt, a, rm);
          const want = refSqrt(a, f, rm);
          if (got.r !== want.r || got.flags !== want.flags) {
            bad.push(describeMismatch(`sqrt ${MODE_NAMES[rm]} ${hex(a)}`, got, want));
          }
        }
      }
      expect(bad.slice(0, 10)).toEqual([]);
    });

    it(`fmadd/fmsub/fnmsub/fnmadd.${fmtName(fmt)}`, () => {
      const rng = new Rng(0x5000 + fmt);
      const bad: string[] = [];
      const ops = [OP_FMADD, OP_FMSUB, OP_FNMSUB, OP_FNMADD];
      for (const rm of MODES) {
        for (let i = 0; i < N; i++) {
          const op = ops[i & 3];
          const a = randFloat(rng, f);
          const b = randFloat(rng, f);
          let c = randFloat(rng, f);
          if (rng.int(3) === 0) {
            // an addend that nearly cancels the product
            const p = refMul(a, b, f, RTZ).r;
            c = nearby(rng, p, f);
          }
          const negP = op === OP_FNMSUB || op === OP_FNMADD;
          const negC = op === OP_FMSUB || op === OP_FNMADD;
          const got = fmaOp(op, fmt, a, b, c, rm);
          const want = refFma(a, b, c, f, rm, negP, negC);
          if (got.r !== want.r || got.flags !== want.flags) {
            bad.push(
              describeMismatch(
                `fma op ${op} ${MODE_NAMES[rm]} ${hex(a)} ${hex(b)} ${hex(c)}`,
                got,
                want,
              ),
            );
          }
        }
      }
      expect(bad.slice(0, 10)).toEqual([]);
    });

    it(`fcvt to and from integers .${fmtName(fmt)}`, () => {
      const rng = new Rng(0x6000 + fmt);
      const bad: string[] = [];
      for (const rm of MODES) {
        for (let i = 0; i < N; i++) {
          const kind = i & 3;
          // floats around the integer ranges
          let a = randFloat(rng, f);
          if (rng.int(2)) {
            const e = rng.int(70) - 4;
            const v = (1 + rng.int(1 << 30) / 2 ** 30) * 2 ** e * (rng.int(2) ? -1 : 1);
            a = fmt === FMT_D ? dBits(v) : sBits(v);
          }
          const got = toIntOp(fmt, kind, a, rm);
          const want = refToInt(a, kind, f, rm);
          if (got.r !== want.r || got.flags !== want.flags) {
            bad.push(describeMismatch(`toInt ${kind} ${MODE_NAMES[rm]} ${hex(a)}`, got, want));
          }
          const v = rng.u64() >> BigInt(rng.int(64));
          const gotF = fromIntOp(fmt, kind, v, rm);
          const wantF = refFromInt(v, kind, f, rm);
          if (gotF.r !== wantF.r || gotF.flags !== wantF.flags) {
            bad.push(describeMismatch(`fromInt ${kind} ${MODE_NAMES[rm]} ${hex(v)}`, gotF, wantF));
          }
        }
      }
      expect(bad.slice(0, 10)).toEqual([]);
    });
  }

  it('fcvt.s.d and fcvt.d.s', () => {
    const rng = new Rng(0x7000);
    const bad: string[] = [];
    for (const rm of MODES) {
      for (let i = 0; i < N * 2; i++) {
        let a = randFloat(rng, FD);
        if (rng.int(2)) {
          // doubles in and around the single range
          const e = rng.int(300) - 170;
          a = (a & 0x800fffffffffffffn) | (BigInt(1023 + e) << 52n);
        }
        const got = cvtSD(a, rm);
        const want = refConvert(a, FD, FS, rm);
        if (got.r !== want.r || got.flags !== want.flags) {
          bad.push(describeMismatch(`s.d ${MODE_NAMES[rm]} ${hex(a)}`, got, want));
        }
      }
    }
    for (let i = 0; i < N * 2; i++) {
      const a = randFloat(rng, FS);
      const got = cvtDS(a);
      const want = refConvert(a, FS, FD, RNE);
      if (got.r !== want.r || got.flags !== want.flags) {
        bad.push(describeMismatch(`d.s ${hex(a)}`, got, want));
      }
    }
    expect(bad.slice(0, 10)).toEqual([]);
  });
});

describe('randomized: the RNE fast paths agree with the soft-float', () => {
  // The fast paths use Wasm's native arithmetic plus exactness tests; the soft-float routines
  // are checked against the exact reference above. Many cheap cases here, aimed at the fast
  // paths' edges: results near the smallest normal and near overflow, significands whose odd
  // parts are just short of / just over 53 (24) bits.
  const soft = (r: bigint): Res => ({ r: u64(r), flags: H.sfFlags() });

  /** An operand whose odd significand has exactly `bits` bits, with a random exponent. */
  function oddOperand(rng: Rng, f: Fmt, bits: number): bigint {
    const m = (rng.bits(bits - 1) | (1n << BigInt(bits - 1)) | 1n) << BigInt(f.p - bits);
    const be = rng.int(4) === 0 ? 1 + rng.int(f.p * 2) : f.bias - 20 + rng.int(40);
    const sign = rng.int(2) ? f.sign : 0n;
    return sign | (BigInt(be) << BigInt(f.fb)) | (m & ((1n << BigInt(f.fb)) - 1n));
  }

  for (const fmt of [FMT_D, FMT_S]) {
    const f = fmtOf(fmt);
    const isD = fmt === FMT_D ? 1 : 0;
    it(`add/sub/mul/div/sqrt/fma .${fmtName(fmt)}`, () => {
      const rng = new Rng(0x8000 + fmt);
      const bad: string[] = [];
      const check = (what: string, got: Res, want: Res) => {
        if (got.r !== want.r || got.flags !== want.flags)
          bad.push(describeMismatch(what, got, want));
      };
      for (let i = 0; i < 40000; i++) {
        let a = randFloat(rng, f);
        let b = rng.int(4) === 0 ? nearby(rng, a, f) : randFloat(rng, f);
        if (rng.int(4) === 0) {
          const la = 1 + rng.int(f.p);
          a = oddOperand(rng, f, la);
          b = oddOperand(rng, f, Math.max(1, Math.min(f.p, f.p + 1 - la + rng.int(3) - 1)));
        }
        const tag = `${hex(a)} ${hex(b)}`;
        check(`add ${tag}`, op2(fadd, fmt, a, b), soft(H.softAdd(a, b, RNE, isD)));
        check(`sub ${tag}`, op2(fsub, fmt, a, b), soft(H.softAdd(a, b ^ f.sign, RNE, isD)));
        check(`mul ${tag}`, op2(fmul, fmt, a, b), soft(H.softMul(a, b, RNE, isD)));
        check(`div ${tag}`, op2(fdiv, fmt, a, b), soft(H.softDiv(a, b, RNE, isD)));
        check(`sqrt ${tag}`, sqrtOp(fmt, a), soft(H.softSqrt(a, RNE, isD)));
        // and a square, so that exact roots are common
        const sq = op2(fmul, fmt, a, a).r;
        check(`sqrt ${hex(sq)}`, sqrtOp(fmt, sq), soft(H.softSqrt(sq, RNE, isD)));
        const c = rng.int(3) === 0 ? nearby(rng, refMul(a, b, f, RTZ).r, f) : randFloat(rng, f);
        const op = [OP_FMADD, OP_FMSUB, OP_FNMSUB, OP_FNMADD][i & 3];
        const negP = op === OP_FNMSUB || op === OP_FNMADD ? 1 : 0;
        const negC = op === OP_FMSUB || op === OP_FNMADD ? 1 : 0;
        check(
          `fma ${op} ${tag} ${hex(c)}`,
          fmaOp(op, fmt, a, b, c),
          soft(H.softMulAdd(a, b, c, RNE, isD, negP, negC)),
        );
      }
      expect(bad.slice(0, 10)).toEqual([]);
    });
  }
});

// ---------------------------------------------------------------------------------------------
// Differential test against QEMU's RISC-V FPU (an independent soft-float implementation), when a
// riscv64 cross compiler and qemu user mode are installed: a small static program reads
// "op rm a b c" lines, loads the raw 64-bit operands into f registers (so NaN-boxing is
// exercised too), runs the instruction with fcsr.frm = rm and prints the result and fflags.

function findTool(names: string[]): string | undefined {
  for (const n of names) {
    const r = spawnSync(n, ['--version'], { stdio: 'ignore' });
    if (r.status === 0) return n;
  }
  return undefined;
}
const CROSS_CC = findTool(['riscv64-linux-gnu-gcc']);
const QEMU_USER = findTool(['qemu-riscv64-static', 'qemu-riscv64']);

interface DiffOp {
  name: string; // assembler mnemonic
  fmt: number; // operand format (for random operands)
  kind: 'f' | 'x' | 'fromInt'; // result in f3 / x5; fromInt: operand in x6
  asm: string; // instruction as the C program runs it (ft0..ft2 in, ft3 or %0 out)
  insn: (rm: number) => number; // our encoding: f1, f2, f4 in; f3 or x5 out; x6 int in
}

function diffOps(): DiffOp[] {
  const ops: DiffOp[] = [];
  for (const fmt of [FMT_S, FMT_D]) {
    const sfx = fmt === FMT_D ? 'd' : 's';
    const bin: [string, Enc3][] = [
      ['fadd', fadd],
      ['fsub', fsub],
      ['fmul', fmul],
      ['fdiv', fdiv],
    ];
    for (const [n, enc] of bin) {
      ops.push({
        name: `${n}.${sfx}`,
        fmt,
        kind: 'f',
        asm: `${n}.${sfx} ft3, ft0, ft1`,
        insn: (rm) => enc(fmt, 3, 1, 2, rm),
      });
    }
    const nr: [string, typeof fmin][] = [
      ['fmin', fmin],
      ['fmax', fmax],
      ['fsgnj', fsgnj],
      ['fsgnjn', fsgnjn],
      ['fsgnjx', fsgnjx],
    ];
    for (const [n, enc] of nr) {
      ops.push({
        name: `${n}.${sfx}`,
        fmt,
        kind: 'f',
        asm: `${n}.${sfx} ft3, ft0, ft1`,
        insn: () => enc(fmt, 3, 1, 2),
      });
    }
    ops.push({
      name: `fsqrt.${sfx}`,
      fmt,
      kind: 'f',
      asm: `fsqrt.${sfx} ft3, ft0`,
      insn: (rm) => fsqrt(fmt, 3, 1, rm),
    });
    const fm: [string, number][] = [
      ['fmadd', OP_FMADD],
      ['fmsub', OP_FMSUB],
      ['fnmsub', OP_FNMSUB],
      ['fnmadd', OP_FNMADD],
    ];
    for (const [n, opc] of fm) {
      ops.push({
        name: `${n}.${sfx}`,
        fmt,
        kind: 'f',
        asm: `${n}.${sfx} ft3, ft0, ft1, ft2`,
        insn: (rm) => fma4(opc, fmt, 3, 1, 2, 4, rm),
      });
    }
    const cmp: [string, typeof feq][] = [
      ['feq', feq],
      ['flt', flt],
      ['fle', fle],
    ];
    for (const [n, enc] of cmp) {
      ops.push({
        name: `${n}.${sfx}`,
        fmt,
        kind: 'x',
        asm: `${n}.${sfx} %0, ft0, ft1`,
        insn: () => enc(fmt, 5, 1, 2),
      });
    }
    ops.push({
      name: `fclass.${sfx}`,
      fmt,
      kind: 'x',
      asm: `fclass.${sfx} %0, ft0`,
      insn: () => fclass(fmt, 5, 1),
    });
    ['w', 'wu', 'l', 'lu'].forEach((k, kind) => {
      ops.push({
        name: `fcvt.${k}.${sfx}`,
        fmt,
        kind: 'x',
        asm: `fcvt.${k}.${sfx} %0, ft0`,
        insn: (rm) => fcvtToInt(fmt, kind, 5, 1, rm),
      });
      ops.push({
        name: `fcvt.${sfx}.${k}`,
        fmt,
        kind: 'fromInt',
        asm: `fcvt.${sfx}.${k} ft3, %1`,
        insn: (rm) => fcvtFromInt(fmt, kind, 3, 6, rm),
      });
    });
  }
  ops.push({
    name: 'fcvt.s.d',
    fmt: FMT_D,
    kind: 'f',
    asm: 'fcvt.s.d ft3, ft0',
    insn: (rm) => fcvtSD(3, 1, rm),
  });
  ops.push({
    name: 'fcvt.d.s',
    fmt: FMT_S,
    kind: 'f',
    asm: 'fcvt.d.s ft3, ft0',
    insn: (rm) => fcvtDS(3, 1, rm),
  });
  ops.push({
    name: 'fmv.x.w',
    fmt: FMT_S,
    kind: 'x',
    asm: 'fmv.x.w %0, ft0',
    insn: () => fmvXF(FMT_S, 5, 1),
  });
  return ops;
}

function diffProgram(ops: DiffOp[]): string {
  const load = 'fmv.d.x ft0, %1\\n fmv.d.x ft1, %2\\n fmv.d.x ft2, %3\\n ';
  const clob = '"ft0", "ft1", "ft2", "ft3"';
  const cases = ops.map((op, i) => {
    let body: string;
    if (op.kind === 'f') {
      body = `"${load}${op.asm}\\n fmv.x.d %0, ft3" : "=r"(r) : "r"(a), "r"(b), "r"(c) : ${clob}`;
    } else if (op.kind === 'x') {
      body = `"${load}${op.asm}" : "=&r"(r) : "r"(a), "r"(b), "r"(c) : ${clob}`;
    } else {
      body = `"${op.asm}\\n fmv.x.d %0, ft3" : "=r"(r) : "r"(a) : "ft3"`;
    }
    return `  case ${i}: __asm__ volatile(${body}); break;`;
  });
  return `#include <stdio.h>
#include <stdint.h>
static uint64_t run(int op, uint64_t a, uint64_t b, uint64_t c) {
  uint64_t r = 0;
  switch (op) {
${cases.join('\n')}
  }
  return r;
}
int main(void) {
  int op; unsigned rm; unsigned long long a, b, c;
  while (scanf("%d %u %llx %llx %llx", &op, &rm, &a, &b, &c) == 5) {
    uint64_t fl;
    __asm__ volatile("fsrm %0" :: "r"((uint64_t)rm));
    __asm__ volatile("fsflags zero");
    uint64_t r = run(op, a, b, c);
    __asm__ volatile("frflags %0" : "=r"(fl));
    printf("%llx %llu\\n", (unsigned long long)r, (unsigned long long)fl);
  }
  return 0;
}
`;
}

describe('differential: QEMU user mode as an independent reference', () => {
  it.skipIf(!CROSS_CC || !QEMU_USER)(
    'agrees on random operands for every instruction and mode',
    () => {
      const ops = diffOps();
      const dir = mkdtempSync(join(tmpdir(), 'wasmvisor-fpu-'));
      try {
        writeFileSync(join(dir, 'fpref.c'), diffProgram(ops));
        const cc = spawnSync(
          CROSS_CC!,
          ['-O1', '-static', '-march=rv64gc', '-o', join(dir, 'fpref'), join(dir, 'fpref.c')],
          { encoding: 'utf8' },
        );
        expect(cc.status, cc.stderr).toBe(0);

        const rng = new Rng(0x9000);
        const perOp = Number(process.env.WASMVISOR_SLOW ? 20000 : 1000);
        const vecs: { op: number; rm: number; a: bigint; b: bigint; c: bigint }[] = [];
        const operand = (fmt: number): bigint => {
          if (fmt === FMT_D) return randFloat(rng, FD);
          const k = rng.int(40);
          if (k === 0) return randFloat(rng, FS); // not NaN-boxed
          if (k === 1) return randFloat(rng, FD); // a double read as single
          return randFloat(rng, FS) | BOX;
        };
        ops.forEach((op, i) => {
          for (let j = 0; j < perOp; j++) {
            const a = op.kind === 'fromInt' ? rng.u64() >> BigInt(rng.int(64)) : operand(op.fmt);
            let b = operand(op.fmt);
            if (rng.int(4) === 0) b = nearby(rng, a, FD); // cancellation, near-equal compares
            vecs.push({ op: i, rm: rng.int(5), a, b, c: operand(op.fmt) });
          }
        });
        const input =
          vecs
            .map(
              (v) => `${v.op} ${v.rm} ${v.a.toString(16)} ${v.b.toString(16)} ${v.c.toString(16)}`,
            )
            .join('\n') + '\n';
        const run = spawnSync(QEMU_USER!, [join(dir, 'fpref')], {
          input,
          encoding: 'utf8',
          maxBuffer: 1 << 28,
        });
        expect(run.status, run.stderr).toBe(0);
        const lines = run.stdout.trim().split('\n');
        expect(lines.length).toBe(vecs.length);

        const bad: string[] = [];
        vecs.forEach((v, i) => {
          const [qr, qf] = lines[i].split(' ');
          const want: Res = { r: BigInt('0x' + qr), flags: Number(qf) };
          const op = ops[v.op];
          H.setFflags(0);
          H.setFrm(v.rm);
          H.setFReg(1, v.a);
          H.setFReg(2, v.b);
          H.setFReg(4, v.c);
          H.setXReg(6, v.a);
          H.setXReg(5, 0n);
          H.setFReg(3, 0n);
          const ok = exec(op.insn(DYN));
          const got: Res = { r: op.kind === 'x' ? xr(5) : fr(3), flags: H.getFflags() };
          if (!ok || got.r !== want.r || got.flags !== want.flags) {
            const tag = `${op.name} ${MODE_NAMES[v.rm]} ${hex(v.a)} ${hex(v.b)} ${hex(v.c)}`;
            bad.push(describeMismatch(tag, got, want));
          }
        });
        expect(bad.slice(0, 10)).toEqual([]);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );
});
