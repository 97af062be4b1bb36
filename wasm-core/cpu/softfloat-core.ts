// Soft-float core shared by every F/D operation: format descriptors, field access, 64x64->128
// multiply, shift-right-with-sticky ("jam") helpers and the single rounding/packing routine.
//
// Values travel as raw IEEE bit patterns in a u64. A single-precision value sits in the low 32
// bits with the upper bits zero (NaN-boxing is fpu.ts's business, not ours). Operations are
// generic over the format through a `isD` flag (true = binary64, false = binary32); every
// function is small enough that the optimizer folds the flag when it is a constant.
//
// A finite non-zero operand is "unpacked" to (sig, e) with value = sig * 2^e and sig normalized
// so that its leading one is bit 63. Results are computed exactly, or as an integer whose bit 0
// is a sticky bit standing for "some non-zero bits were shifted out below here", and then
// rounded once by roundPack().

import { FFLAG_NX, FFLAG_UF, FFLAG_OF, FFLAG_DZ, FFLAG_NV } from './state';

// Rounding modes as encoded in the instruction rm field / fcsr.frm.
export const RM_RNE: u32 = 0;
export const RM_RTZ: u32 = 1;
export const RM_RDN: u32 = 2;
export const RM_RUP: u32 = 3;
export const RM_RMM: u32 = 4;

export const NX: u32 = FFLAG_NX;
export const UF: u32 = FFLAG_UF;
export const OF: u32 = FFLAG_OF;
export const DZ: u32 = FFLAG_DZ;
export const NV: u32 = FFLAG_NV;

export const CANON_NAN_S: u64 = 0x7fc00000;
export const CANON_NAN_D: u64 = 0x7ff8000000000000;

/** Scratch state of the soft-float unit (Wasm globals). */
export class SF {
  /** Exception flags accrued by the current operation; fpu.ts moves them to fcsr. */
  static flags: u32 = 0;
  /** High half of the last mul128() product. */
  static hi: u64 = 0;
}

// ---- format descriptors ----

/** Number of stored fraction bits: 52 or 23. */
@inline
export function fracBits(isD: bool): i32 {
  return isD ? 52 : 23;
}

/** Precision including the hidden bit: 53 or 24. */
@inline
export function precBits(isD: bool): i32 {
  return isD ? 53 : 24;
}

@inline
export function expBias(isD: bool): i32 {
  return isD ? 1023 : 127;
}

/** All-ones biased exponent (Inf/NaN): 0x7ff or 0xff. */
@inline
export function expMax(isD: bool): i32 {
  return isD ? 0x7ff : 0xff;
}

@inline
export function signBit(isD: bool): u64 {
  return isD ? 0x8000000000000000 : 0x80000000;
}

@inline
export function fracMask(isD: bool): u64 {
  return isD ? 0x000fffffffffffff : 0x007fffff;
}

@inline
export function canonNaN(isD: bool): u64 {
  return isD ? CANON_NAN_D : CANON_NAN_S;
}

@inline
export function infOf(sign: u32, isD: bool): u64 {
  return isD
    ? ((<u64>sign) << 63) | 0x7ff0000000000000
    : ((<u64>sign) << 31) | 0x7f800000;
}

@inline
export function zeroOf(sign: u32, isD: bool): u64 {
  return (<u64>sign) << (isD ? 63 : 31);
}

// ---- field access and classification ----

@inline
export function fSign(x: u64, isD: bool): u32 {
  return <u32>(x >> (isD ? 63 : 31)) & 1;
}

@inline
export function fExp(x: u64, isD: bool): i32 {
  return isD ? <i32>((x >> 52) & 0x7ff) : <i32>((x >> 23) & 0xff);
}

@inline
export function fFrac(x: u64, isD: bool): u64 {
  return x & fracMask(isD);
}

/** Inf or NaN. */
@inline
export function isSpecial(x: u64, isD: bool): bool {
  return fExp(x, isD) == expMax(isD);
}

@inline
export function isNaN_(x: u64, isD: bool): bool {
  return fExp(x, isD) == expMax(isD) && fFrac(x, isD) != 0;
}

@inline
export function isInf_(x: u64, isD: bool): bool {
  return fExp(x, isD) == expMax(isD) && fFrac(x, isD) == 0;
}

/** Signalling NaN: a NaN whose most significant fraction bit is clear. */
@inline
export function isSNaN(x: u64, isD: bool): bool {
  return isNaN_(x, isD) && ((x >> (fracBits(isD) - 1)) & 1) == 0;
}

@inline
export function isZero(x: u64, isD: bool): bool {
  return (x & ~signBit(isD)) == 0;
}

/** Significand of a finite non-zero value, shifted so that its leading one is bit 63. */
@inline
export function normSig(x: u64, isD: bool): u64 {
  const f = fFrac(x, isD);
  if (fExp(x, isD) != 0) return (f | ((<u64>1) << fracBits(isD))) << (63 - fracBits(isD));
  return f << clz<u64>(f);
}

/** Exponent matching normSig(): value = normSig(x) * 2^normExp(x). */
@inline
export function normExp(x: u64, isD: bool): i32 {
  const be = fExp(x, isD);
  if (be != 0) return be - expBias(isD) - 63;
  return 1 - expBias(isD) - fracBits(isD) - <i32>clz<u64>(fFrac(x, isD));
}

// ---- integer helpers ----

/** 64x64 -> 128-bit unsigned multiply. Returns the low half; the high half goes to SF.hi. */
@inline
export function mul128(a: u64, b: u64): u64 {
  const a0 = a & 0xffffffff;
  const a1 = a >> 32;
  const b0 = b & 0xffffffff;
  const b1 = b >> 32;
  const p00 = a0 * b0;
  const p01 = a0 * b1;
  const p10 = a1 * b0;
  const p11 = a1 * b1;
  const mid = (p00 >> 32) + (p01 & 0xffffffff) + (p10 & 0xffffffff);
  SF.hi = p11 + (p01 >> 32) + (p10 >> 32) + (mid >> 32);
  return (mid << 32) | (p00 & 0xffffffff);
}

/** x >> n for any n >= 0, with bit 0 set if any one bit was shifted out. */
@inline
export function shiftRightJam(x: u64, n: i32): u64 {
  if (n <= 0) return x;
  if (n >= 64) return <u64>(x != 0);
  return (x >> n) | <u64>((x << (64 - n)) != 0);
}

/**
 * Whether to add one unit in the last place, given the discarded bits `rem` (non-zero), the
 * value `half` that rem would have at exactly one half ulp, and the current last bit `lsb`.
 */
@inline
export function roundsUp(rm: u32, sign: u32, lsb: u64, rem: u64, half: u64): bool {
  switch (rm) {
    case RM_RNE:
      return rem > half || (rem == half && (lsb & 1) != 0);
    case RM_RDN:
      return sign != 0;
    case RM_RUP:
      return sign == 0;
    case RM_RMM:
      return rem >= half;
    default:
      return false; // RTZ
  }
}

/** Result of an overflow in mode rm: Inf or the largest finite value, with OF and NX. */
export function overflowResult(sign: u32, rm: u32, isD: bool): u64 {
  SF.flags |= OF | NX;
  const inf = infOf(sign, isD);
  let toInf: bool;
  switch (rm) {
    case RM_RTZ:
      toInf = false;
      break;
    case RM_RDN:
      toInf = sign != 0;
      break;
    case RM_RUP:
      toInf = sign == 0;
      break;
    default:
      toInf = true; // RNE, RMM
  }
  return toInf ? inf : inf - 1;
}

/**
 * Rounds sign * sig * 2^e (sig != 0; bit 0 may be a sticky bit) to the format once, in mode rm,
 * and returns the packed bits. Raises NX, OF and UF; underflow uses tininess detected after
 * rounding (RISC-V's choice): the result is tiny if, rounded to the format's precision with an
 * unbounded exponent range, it would still be below the smallest normal.
 */
export function roundPack(sign: u32, e: i32, sig: u64, rm: u32, isD: bool): u64 {
  const s = <i32>clz<u64>(sig);
  sig <<= s;
  e -= s;
  const prec = precBits(isD);
  const rb = 64 - prec; // rounding bits below the kept significand: 11 or 40
  const half: u64 = (<u64>1) << (rb - 1);
  const remMask: u64 = ((<u64>1) << rb) - 1;
  const sbit: u64 = (<u64>sign) << (isD ? 63 : 31);
  let be = e + 63 + expBias(isD);

  if (be >= 1) {
    let q = sig >> rb;
    const rem = sig & remMask;
    if (rem != 0) {
      SF.flags |= NX;
      if (roundsUp(rm, sign, q, rem, half)) {
        q++;
        if (q >> (<u64>prec) != 0) {
          q >>= 1;
          be++;
        }
      }
    }
    if (be >= expMax(isD)) return overflowResult(sign, rm, isD);
    return sbit | ((<u64>be) << fracBits(isD)) | (q & fracMask(isD));
  }

  // Below the normal range. Tiny unless rounding at full precision carries up to 2^emin.
  let tiny = true;
  if (be == 0) {
    const q = sig >> rb;
    const rem = sig & remMask;
    if (rem != 0 && q == ((<u64>1) << prec) - 1 && roundsUp(rm, sign, q, rem, half)) {
      tiny = false;
    }
  }
  sig = shiftRightJam(sig, 1 - be);
  let q = sig >> rb;
  const rem = sig & remMask;
  if (rem != 0) {
    SF.flags |= tiny ? NX | UF : NX;
    if (roundsUp(rm, sign, q, rem, half)) q++; // may carry into the smallest normal: still right
  }
  return sbit | q;
}
