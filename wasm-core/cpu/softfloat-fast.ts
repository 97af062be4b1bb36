// Fast paths for round-to-nearest-even (what nearly all software runs with): Wasm's native
// f32/f64 add, mul, div and sqrt are IEEE-754 correctly rounded to nearest-even, so the result
// bits are right by definition; what Wasm does not give is the exception flags. Each function
// below takes the native result only when it can derive the flags exactly and cheaply:
//   - the result is finite and normal with a biased exponent >= 2, so neither overflow nor
//     underflow (even tininess after rounding) is possible: the only possible flag is NX;
//   - exactness is decided without error: for add with the TwoSum error-free transformation
//     (its error term is computed exactly, barring overflow inside it, which shows up as a
//     non-finite error and falls back), for mul/div/sqrt with the odd parts of the significands
//     (a product of odd integers is representable only if it has <= p bits);
// otherwise they fall back to the soft-float routine, which handles every case.

import { SF, NX, RM_RNE } from './softfloat-core';
import { sfAdd, sfMul, sfDiv, sfSqrt, sfMulAdd } from './softfloat-arith';

const FRAC_D: u64 = 0x000fffffffffffff;
const HIDDEN_D: u64 = 0x0010000000000000;

/** Significand of a finite binary64 (with the hidden bit for normals), as an odd integer. */
@inline
function oddSigD(x: u64): u64 {
  const m = (x & FRAC_D) | ((x & 0x7ff0000000000000) != 0 ? HIDDEN_D : 0);
  return m >> ctz<u64>(m);
}

@inline
function bitLen(x: u64): i32 {
  return 64 - <i32>clz<u64>(x);
}

/** Whether the product of the odd integers a and b equals c (c < 2^53). */
@inline
function oddProductIs(a: u64, b: u64, c: u64): bool {
  if (bitLen(a) + bitLen(b) > 54) return false; // the product has >= 54 bits, c < 2^53
  return a * b == c;
}

/** Biased exponent of a binary64 result is in [2, 0x7fe]. */
@inline
function safeD(r: u64): bool {
  return ((r >> 52) & 0x7ff) - 2 <= 0x7fe - 2;
}

/** Biased exponent of a binary32 result is in [2, 0xfe]. */
@inline
function safeS(r: u32): bool {
  return ((r >> 23) & 0xff) - 2 <= 0xfe - 2;
}

export function fastAddD(a: u64, b: u64): u64 {
  const x = reinterpret<f64>(a);
  const y = reinterpret<f64>(b);
  const s = x + y;
  // TwoSum: s + err == x + y exactly. A sum is never tiny-and-inexact (subnormal sums are
  // exact), and an overflowing s (Inf) makes err NaN.
  const bb = s - x;
  const err = x - (s - bb) + (y - bb);
  if (err == 0) return reinterpret<u64>(s);
  if (err - err == 0) {
    SF.flags |= NX;
    return reinterpret<u64>(s);
  }
  return sfAdd(a, b, RM_RNE, true);
}

export function fastMulD(a: u64, b: u64): u64 {
  const r = reinterpret<u64>(reinterpret<f64>(a) * reinterpret<f64>(b));
  if (!safeD(r)) return sfMul(a, b, RM_RNE, true);
  const oa = oddSigD(a);
  const ob = oddSigD(b);
  // exact iff odd(a)*odd(b) < 2^53
  const l = bitLen(oa) + bitLen(ob);
  if (l > 54 || (l == 54 && oa * ob >= HIDDEN_D << 1)) SF.flags |= NX;
  return r;
}

export function fastDivD(a: u64, b: u64): u64 {
  const r = reinterpret<u64>(reinterpret<f64>(a) / reinterpret<f64>(b));
  if (!safeD(r)) return sfDiv(a, b, RM_RNE, true);
  // exact iff q * b == a, i.e. odd(q) * odd(b) == odd(a)
  if (!oddProductIs(oddSigD(r), oddSigD(b), oddSigD(a))) SF.flags |= NX;
  return r;
}

export function fastSqrtD(a: u64): u64 {
  // positive, finite, non-zero (subnormals included): the root is normal
  if (a - 1 >= 0x7fefffffffffffff) return sfSqrt(a, RM_RNE, true);
  const r = reinterpret<u64>(sqrt<f64>(reinterpret<f64>(a)));
  const o = oddSigD(r);
  if (!oddProductIs(o, o, oddSigD(a))) SF.flags |= NX;
  return r;
}

// binary32: operands are the low 32 bits (already NaN-unboxed). Products of two binary32
// significands are exact in binary64, which makes the exactness checks one comparison.

export function fastAddS(a: u64, b: u64): u64 {
  const x = reinterpret<f32>(<u32>a);
  const y = reinterpret<f32>(<u32>b);
  const s = x + y;
  const bb = s - x;
  const err = x - (s - bb) + (y - bb);
  if (err == 0) return <u64>reinterpret<u32>(s);
  if (err - err == 0) {
    SF.flags |= NX;
    return <u64>reinterpret<u32>(s);
  }
  return sfAdd(a, b, RM_RNE, false);
}

export function fastMulS(a: u64, b: u64): u64 {
  const x = reinterpret<f32>(<u32>a);
  const y = reinterpret<f32>(<u32>b);
  const p = x * y;
  const r = reinterpret<u32>(p);
  if (!safeS(r)) return sfMul(a, b, RM_RNE, false);
  if (<f64>x * <f64>y != <f64>p) SF.flags |= NX;
  return <u64>r;
}

export function fastDivS(a: u64, b: u64): u64 {
  const x = reinterpret<f32>(<u32>a);
  const y = reinterpret<f32>(<u32>b);
  const q = x / y;
  const r = reinterpret<u32>(q);
  if (!safeS(r)) return sfDiv(a, b, RM_RNE, false);
  if (<f64>q * <f64>y != <f64>x) SF.flags |= NX;
  return <u64>r;
}

export function fastSqrtS(a: u64): u64 {
  if (a - 1 >= 0x7f7fffff) return sfSqrt(a, RM_RNE, false);
  const x = reinterpret<f32>(<u32>a);
  const q = sqrt<f32>(x);
  if (<f64>q * <f64>q != <f64>x) SF.flags |= NX;
  return <u64>reinterpret<u32>(q);
}

/**
 * FMADD.S family in RNE. The binary64 product of two binary32 values is exact; the sum is
 * rounded to binary64 and then, if TwoSum shows it was inexact, moved to the neighbour with an
 * odd significand ("round to odd"). Rounding a round-to-odd value with >= p+2 bits to p bits
 * gives the correctly rounded result (Boldo & Melquiond), so the final binary32 conversion
 * rounds once, in effect. Non-normal results, NaN and Inf fall back to the soft-float code.
 */
export function fastMulAddS(a: u64, b: u64, c: u64, negProd: bool, negC: bool): u64 {
  let p = <f64>reinterpret<f32>(<u32>a) * <f64>reinterpret<f32>(<u32>b);
  let z = <f64>reinterpret<f32>(<u32>c);
  if (negProd) p = -p;
  if (negC) z = -z;
  const s = p + z;
  const bb = s - p;
  const err = p - (s - bb) + (z - bb);
  let sb = reinterpret<u64>(s);
  if (err != 0) {
    if (err - err != 0) return sfMulAdd(a, b, c, RM_RNE, false, negProd, negC);
    if ((sb & 1) == 0) {
      // one ulp towards the exact value: up in magnitude if err has the sign of s
      sb += (sb >> 63) == reinterpret<u64>(err) >> 63 ? 1 : <u64>-1;
    }
  }
  const so = reinterpret<f64>(sb);
  const r = <f32>so;
  const rb = reinterpret<u32>(r);
  if (!safeS(rb)) return sfMulAdd(a, b, c, RM_RNE, false, negProd, negC);
  if (err != 0 || <f64>r != so) SF.flags |= NX;
  return <u64>rb;
}
