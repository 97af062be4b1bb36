// Conversions: float -> integer (saturating, RISC-V semantics), integer -> float, and between
// binary32 and binary64. Flags accrue in SF.flags.

import {
  SF,
  NV,
  NX,
  RM_RNE,
  canonNaN,
  fSign,
  infOf,
  zeroOf,
  isSpecial,
  isNaN_,
  isSNaN,
  isZero,
  normSig,
  normExp,
  roundsUp,
  roundPack,
} from './softfloat-core';

/** Integer formats, numbered like the rs2 field of FCVT. */
export const INT_W: u32 = 0;
export const INT_WU: u32 = 1;
export const INT_L: u32 = 2;
export const INT_LU: u32 = 3;

/** Largest value of the integer format as it appears in an RV64 X register. */
@inline
function intMax(kind: u32): u64 {
  switch (kind) {
    case INT_W:
      return 0x7fffffff;
    case INT_WU:
      return 0xffffffffffffffff; // 0xffffffff sign-extended
    case INT_L:
      return 0x7fffffffffffffff;
    default:
      return 0xffffffffffffffff;
  }
}

/** Smallest value of the integer format as it appears in an RV64 X register. */
@inline
function intMin(kind: u32): u64 {
  switch (kind) {
    case INT_W:
      return 0xffffffff80000000;
    case INT_L:
      return 0x8000000000000000;
    default:
      return 0; // unsigned
  }
}

@inline
function invalidInt(neg: bool, kind: u32): u64 {
  SF.flags |= NV;
  return neg ? intMin(kind) : intMax(kind);
}

/**
 * FCVT.{W,WU,L,LU}.{S,D}: rounds x to an integer in mode rm. NaN gives the largest value,
 * Inf and out-of-range values saturate; those raise NV (and not NX). A 32-bit result is
 * sign-extended to 64 bits, as RV64 writes it to the X register.
 */
export function sfToInt(x: u64, kind: u32, rm: u32, isD: bool): u64 {
  const sign = fSign(x, isD);
  if (isSpecial(x, isD)) {
    if (isNaN_(x, isD)) return invalidInt(false, kind);
    return invalidInt(sign != 0, kind);
  }
  if (isZero(x, isD)) return 0;
  const sig = normSig(x, isD);
  const e = normExp(x, isD); // |x| = sig * 2^e, 2^63 <= sig < 2^64
  if (e > 0) return invalidInt(sign != 0, kind); // |x| >= 2^64
  let mag: u64;
  let rem: u64;
  let half: u64;
  if (e == 0) {
    mag = sig;
    rem = 0;
    half = 0;
  } else if (e > -64) {
    const n = -e;
    mag = sig >> n;
    rem = sig & (((<u64>1) << n) - 1);
    half = (<u64>1) << (n - 1);
  } else if (e == -64) {
    mag = 0;
    rem = sig;
    half = 0x8000000000000000;
  } else {
    mag = 0; // |x| < 1/2
    rem = 1;
    half = 2;
  }
  if (rem != 0 && roundsUp(rm, sign, mag, rem, half)) mag++; // cannot wrap: e < 0 here

  let ok: bool;
  switch (kind) {
    case INT_W:
      ok = sign != 0 ? mag <= 0x80000000 : mag <= 0x7fffffff;
      break;
    case INT_WU:
      ok = sign != 0 ? mag == 0 : mag <= 0xffffffff;
      break;
    case INT_L:
      ok = sign != 0 ? mag <= 0x8000000000000000 : mag <= 0x7fffffffffffffff;
      break;
    default:
      ok = sign != 0 ? mag == 0 : true;
  }
  if (!ok) return invalidInt(sign != 0, kind);
  if (rem != 0) SF.flags |= NX;
  const v = sign != 0 ? 0 - mag : mag;
  if (kind == INT_W || kind == INT_WU) return <u64>(<i64>(<i32>(<u32>v)));
  return v;
}

/**
 * FCVT.{S,D}.{W,WU,L,LU}: v is the X register; the W forms use its low 32 bits (signed or
 * unsigned). Zero converts to +0.
 */
export function sfFromInt(v: u64, kind: u32, rm: u32, isD: bool): u64 {
  let sign: u32 = 0;
  let mag: u64;
  switch (kind) {
    case INT_W: {
      const w = <i64>(<i32>(<u32>v));
      sign = <u32>(w < 0);
      mag = sign != 0 ? <u64>(0 - w) : <u64>w;
      break;
    }
    case INT_WU:
      mag = v & 0xffffffff;
      break;
    case INT_L:
      sign = <u32>(v >> 63);
      mag = sign != 0 ? 0 - v : v;
      break;
    default:
      mag = v;
  }
  if (mag == 0) return 0;
  return roundPack(sign, 0, mag, rm, isD);
}

/** FCVT.S.D: binary64 -> binary32, rounded in mode rm. */
export function sfD2S(x: u64, rm: u32): u64 {
  const sign = fSign(x, true);
  if (isSpecial(x, true)) {
    if (isNaN_(x, true)) {
      if (isSNaN(x, true)) SF.flags |= NV;
      return canonNaN(false);
    }
    return infOf(sign, false);
  }
  if (isZero(x, true)) return zeroOf(sign, false);
  return roundPack(sign, normExp(x, true), normSig(x, true), rm, false);
}

/** FCVT.D.S: binary32 -> binary64; exact except for NaNs. */
export function sfS2D(x: u64): u64 {
  const sign = fSign(x, false);
  if (isSpecial(x, false)) {
    if (isNaN_(x, false)) {
      if (isSNaN(x, false)) SF.flags |= NV;
      return canonNaN(true);
    }
    return infOf(sign, true);
  }
  if (isZero(x, false)) return zeroOf(sign, true);
  return roundPack(sign, normExp(x, false), normSig(x, false), RM_RNE, true);
}
