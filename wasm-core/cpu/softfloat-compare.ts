// Comparisons, FMIN/FMAX (RISC-V 2.2 semantics, IEEE 754-2019 minimumNumber/maximumNumber)
// and FCLASS on raw bit patterns. Flags accrue in SF.flags.

import {
  SF,
  NV,
  canonNaN,
  fSign,
  fExp,
  fFrac,
  expMax,
  isNaN_,
  isSNaN,
  isZero,
} from './softfloat-core';

/** a < b for non-NaN a, b, ordering -0 below +0. */
@inline
function lessTotal(a: u64, b: u64, isD: bool): bool {
  const sa = fSign(a, isD);
  if (sa != fSign(b, isD)) return sa != 0;
  return sa != 0 ? a > b : a < b;
}

/** FEQ: quiet comparison, NV only for a signalling NaN; +0 == -0. */
export function sfEq(a: u64, b: u64, isD: bool): bool {
  if (isNaN_(a, isD) || isNaN_(b, isD)) {
    if (isSNaN(a, isD) || isSNaN(b, isD)) SF.flags |= NV;
    return false;
  }
  return a == b || (isZero(a, isD) && isZero(b, isD));
}

/** FLT: signalling comparison, NV for any NaN. */
export function sfLt(a: u64, b: u64, isD: bool): bool {
  if (isNaN_(a, isD) || isNaN_(b, isD)) {
    SF.flags |= NV;
    return false;
  }
  if (isZero(a, isD) && isZero(b, isD)) return false;
  return lessTotal(a, b, isD);
}

/** FLE: signalling comparison, NV for any NaN. */
export function sfLe(a: u64, b: u64, isD: bool): bool {
  if (isNaN_(a, isD) || isNaN_(b, isD)) {
    SF.flags |= NV;
    return false;
  }
  if (isZero(a, isD) && isZero(b, isD)) return true;
  return a == b || lessTotal(a, b, isD);
}

/**
 * FMIN (isMax false) / FMAX: -0 < +0; a single NaN operand yields the other operand; two NaNs
 * yield the canonical NaN; a signalling NaN raises NV.
 */
export function sfMinMax(a: u64, b: u64, isMax: bool, isD: bool): u64 {
  const an = isNaN_(a, isD);
  const bn = isNaN_(b, isD);
  if (an || bn) {
    if (isSNaN(a, isD) || isSNaN(b, isD)) SF.flags |= NV;
    if (an && bn) return canonNaN(isD);
    return an ? b : a;
  }
  return lessTotal(a, b, isD) != isMax ? a : b;
}

/** FCLASS: one-hot mask of the ten classes. */
export function sfClass(x: u64, isD: bool): u64 {
  const neg = fSign(x, isD) != 0;
  const be = fExp(x, isD);
  const frac = fFrac(x, isD);
  if (be == expMax(isD)) {
    if (frac == 0) return neg ? 1 << 0 : 1 << 7; // -Inf / +Inf
    return isSNaN(x, isD) ? 1 << 8 : 1 << 9;
  }
  if (be == 0) {
    if (frac == 0) return neg ? 1 << 3 : 1 << 4; // -0 / +0
    return neg ? 1 << 2 : 1 << 5; // subnormal
  }
  return neg ? 1 << 1 : 1 << 6; // normal
}
