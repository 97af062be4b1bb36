// IEEE 754 arithmetic for binary32/binary64 on raw bit patterns, rounded once in any RISC-V
// rounding mode, with exact exception flags (accrued in SF.flags). See softfloat-core.ts for the
// conventions. Every NaN result is the RISC-V canonical NaN.
//
// add/mul/fma work on integer significands (fma with a 128-bit product and a 128-bit sum).
// div/sqrt take Wasm's native f64 division / square root of the significands (IEEE-754 requires
// them to be correctly rounded to nearest-even, and the operands are normal numbers in [1,4), so
// nothing can overflow or underflow) and then decide, with an exact 128-bit integer product,
// whether the true result lies above, below or exactly on that 53-bit value. The sticky form
// 4q-1 / 4q / 4q+1 then rounds correctly to any precision <= 53 bits in any mode.

import {
  SF,
  NV,
  DZ,
  RM_RDN,
  canonNaN,
  fSign,
  infOf,
  zeroOf,
  signBit,
  isSpecial,
  isNaN_,
  isInf_,
  isSNaN,
  isZero,
  normSig,
  normExp,
  mul128,
  shiftRightJam,
  roundPack,
} from './softfloat-core';

/** NaN result of a two-operand operation: canonical NaN, NV if either input is signalling. */
@inline
function nanResult2(a: u64, b: u64, isD: bool): u64 {
  if (isSNaN(a, isD) || isSNaN(b, isD)) SF.flags |= NV;
  return canonNaN(isD);
}

@inline
function invalid(isD: bool): u64 {
  SF.flags |= NV;
  return canonNaN(isD);
}

/** a + b. Subtraction is a + (b with its sign bit flipped). */
export function sfAdd(a: u64, b: u64, rm: u32, isD: bool): u64 {
  let sa = fSign(a, isD);
  let sb = fSign(b, isD);
  if (isSpecial(a, isD) || isSpecial(b, isD)) {
    if (isNaN_(a, isD) || isNaN_(b, isD)) return nanResult2(a, b, isD);
    if (isInf_(a, isD)) {
      if (isInf_(b, isD) && sa != sb) return invalid(isD); // Inf - Inf
      return a;
    }
    return b;
  }
  const za = isZero(a, isD);
  const zb = isZero(b, isD);
  if (za || zb) {
    if (za && zb) return sa == sb ? a : zeroOf(rm == RM_RDN ? 1 : 0, isD);
    return za ? b : a; // x + 0 = x exactly
  }
  // Leading ones at bit 61 leave room for the carry; the low bits are still zero, so the
  // shift is exact.
  let sigA = normSig(a, isD) >> 2;
  let ea = normExp(a, isD) + 2;
  let sigB = normSig(b, isD) >> 2;
  let eb = normExp(b, isD) + 2;
  if (ea < eb || (ea == eb && sigA < sigB)) {
    const ts = sigA;
    sigA = sigB;
    sigB = ts;
    const te = ea;
    ea = eb;
    eb = te;
    const tsg = sa;
    sa = sb;
    sb = tsg;
  }
  // |A| >= |B|. Aligning B with a sticky bit is exact enough: for a difference of exponents
  // <= 1 nothing is lost; beyond that at most one leading bit cancels, so the sticky bit stays
  // below the rounding position.
  sigB = shiftRightJam(sigB, ea - eb);
  let sig: u64;
  if (sa == sb) {
    sig = sigA + sigB;
  } else {
    sig = sigA - sigB;
    if (sig == 0) return zeroOf(rm == RM_RDN ? 1 : 0, isD); // exact cancellation
  }
  return roundPack(sa, ea, sig, rm, isD);
}

export function sfMul(a: u64, b: u64, rm: u32, isD: bool): u64 {
  const sign = fSign(a, isD) ^ fSign(b, isD);
  if (isSpecial(a, isD) || isSpecial(b, isD)) {
    if (isNaN_(a, isD) || isNaN_(b, isD)) return nanResult2(a, b, isD);
    if (isZero(a, isD) || isZero(b, isD)) return invalid(isD); // Inf * 0
    return infOf(sign, isD);
  }
  if (isZero(a, isD) || isZero(b, isD)) return zeroOf(sign, isD);
  const lo = mul128(normSig(a, isD), normSig(b, isD));
  const sig = SF.hi | <u64>(lo != 0);
  return roundPack(sign, normExp(a, isD) + normExp(b, isD) + 64, sig, rm, isD);
}

const ONE_BITS: u64 = 0x3ff0000000000000;
const FRAC52: u64 = 0x000fffffffffffff;
const HIDDEN52: u64 = 0x0010000000000000;

/**
 * Compares the 128-bit product q*y with x << sh (x < 2^55, 0 < sh < 64): returns -1, 0 or 1 as
 * q*y is smaller, equal or larger.
 */
@inline
function cmpProduct(q: u64, y: u64, x: u64, sh: i32): i32 {
  const plo = mul128(q, y);
  const phi = SF.hi;
  const lhi = x >> (64 - sh);
  const llo = x << sh;
  if (phi != lhi) return phi > lhi ? 1 : -1;
  if (plo != llo) return plo > llo ? 1 : -1;
  return 0;
}

export function sfDiv(a: u64, b: u64, rm: u32, isD: bool): u64 {
  const sign = fSign(a, isD) ^ fSign(b, isD);
  if (isSpecial(a, isD) || isSpecial(b, isD)) {
    if (isNaN_(a, isD) || isNaN_(b, isD)) return nanResult2(a, b, isD);
    if (isInf_(a, isD)) {
      if (isInf_(b, isD)) return invalid(isD); // Inf / Inf
      return infOf(sign, isD);
    }
    return zeroOf(sign, isD); // finite / Inf
  }
  if (isZero(b, isD)) {
    if (isZero(a, isD)) return invalid(isD); // 0 / 0
    SF.flags |= DZ;
    return infOf(sign, isD);
  }
  if (isZero(a, isD)) return zeroOf(sign, isD);

  // a = x * 2^(ea+63), b = y * 2^(eb+63) with x, y in [1, 2) holding at most 53 bits.
  const xs = normSig(a, isD) >> 11;
  const ys = normSig(b, isD) >> 11;
  const q = reinterpret<f64>(ONE_BITS | (xs & FRAC52)) / reinterpret<f64>(ONE_BITS | (ys & FRAC52));
  const qb = reinterpret<u64>(q);
  const qe = <i32>(qb >> 52) - 1023; // q in (1/2, 2): qe is -1 or 0
  const qs = (qb & FRAC52) | HIDDEN52; // q = qs * 2^(qe-52)
  // x/y vs q  <=>  xs * 2^(52-qe) vs qs * ys
  const c = cmpProduct(qs, ys, xs, 52 - qe);
  const sig = (qs << 2) - <u64>(c > 0) + <u64>(c < 0);
  return roundPack(sign, normExp(a, isD) - normExp(b, isD) + qe - 54, sig, rm, isD);
}

export function sfSqrt(a: u64, rm: u32, isD: bool): u64 {
  if (isSpecial(a, isD)) {
    if (isNaN_(a, isD)) return nanResult2(a, a, isD);
    if (fSign(a, isD) != 0) return invalid(isD); // sqrt(-Inf)
    return a;
  }
  if (isZero(a, isD)) return a; // sqrt(+-0) = +-0
  if (fSign(a, isD) != 0) return invalid(isD);

  // a = x * 2^k with x in [1,2); make k even by moving one factor 2 into x (then x in [2,4)).
  let xs = normSig(a, isD) >> 11; // x = xs * 2^-52
  let k = normExp(a, isD) + 63;
  let xb = ONE_BITS | (xs & FRAC52);
  if ((k & 1) != 0) {
    k -= 1;
    xs <<= 1;
    xb += HIDDEN52; // exponent + 1
  }
  const r = sqrt<f64>(reinterpret<f64>(xb));
  const rb = reinterpret<u64>(r);
  const re = <i32>(rb >> 52) - 1023; // 0: r in [1, 2)
  const rs = (rb & FRAC52) | HIDDEN52; // r = rs * 2^(re-52)
  // sqrt(x) vs r  <=>  xs * 2^(52-2re) vs rs^2
  const c = cmpProduct(rs, rs, xs, 52 - 2 * re);
  const sig = (rs << 2) - <u64>(c > 0) + <u64>(c < 0);
  return roundPack(0, (k >> 1) + re - 54, sig, rm, isD);
}

// ---- fused multiply-add ----

/** SF.hi:return = (hi:lo) >> n with a sticky bit; n >= 0. */
@inline
function shiftRightJam128(hi: u64, lo: u64, n: i32): u64 {
  if (n <= 0) {
    SF.hi = hi;
    return lo;
  }
  if (n < 64) {
    SF.hi = hi >> n;
    return (hi << (64 - n)) | (lo >> n) | <u64>((lo << (64 - n)) != 0);
  }
  SF.hi = 0;
  if (n == 64) return hi | <u64>(lo != 0);
  if (n < 128) return (hi >> (n - 64)) | <u64>((hi << (128 - n)) != 0 || lo != 0);
  return <u64>((hi | lo) != 0);
}

/**
 * (negProd ? -(a*b) : a*b) + (negC ? -c : c), rounded once. The product is exact in 128 bits;
 * the sum is formed in 128 bits with a sticky bit for the aligned-out part of the smaller term.
 * RISC-V: Inf * 0 raises NV even when c is a quiet NaN.
 */
export function sfMulAdd(
  a: u64,
  b: u64,
  c: u64,
  rm: u32,
  isD: bool,
  negProd: bool,
  negC: bool,
): u64 {
  const infTimesZero =
    (isInf_(a, isD) && isZero(b, isD)) || (isZero(a, isD) && isInf_(b, isD));
  if (isNaN_(a, isD) || isNaN_(b, isD) || isNaN_(c, isD)) {
    if (isSNaN(a, isD) || isSNaN(b, isD) || isSNaN(c, isD) || infTimesZero) SF.flags |= NV;
    return canonNaN(isD);
  }
  if (infTimesZero) return invalid(isD);
  const sp = fSign(a, isD) ^ fSign(b, isD) ^ <u32>negProd;
  const sc = fSign(c, isD) ^ <u32>negC;
  if (isInf_(a, isD) || isInf_(b, isD)) {
    if (isInf_(c, isD) && sc != sp) return invalid(isD); // Inf - Inf
    return infOf(sp, isD);
  }
  if (isInf_(c, isD)) return infOf(sc, isD);
  const cZero = isZero(c, isD);
  if (isZero(a, isD) || isZero(b, isD)) {
    if (cZero) return zeroOf(sp == sc ? sp : <u32>(rm == RM_RDN), isD);
    return (c & ~signBit(isD)) | zeroOf(sc, isD); // 0 + c = c exactly
  }

  // Product P = (phi:plo) * 2^ep, normalized to leading bit 126 (exact: it has <= 106 bits).
  let plo = mul128(normSig(a, isD), normSig(b, isD));
  let phi = SF.hi;
  let ep = normExp(a, isD) + normExp(b, isD);
  if ((phi >> 63) != 0) {
    plo = (plo >> 1) | (phi << 63);
    phi >>= 1;
    ep += 1;
  }
  if (cZero) return roundPack(sp, ep + 64, phi | <u64>(plo != 0), rm, isD);

  // Addend C = (chi:clo) * 2^ec, also with its leading one at bit 126.
  const sigC = normSig(c, isD);
  let chi = sigC >> 1;
  let clo = sigC << 63;
  let ec = normExp(c, isD) - 63;

  // Let (bhi:blo) be the term of larger magnitude.
  let bhi: u64, blo: u64, shi: u64, slo: u64, eb: i32, es: i32, sign: u32;
  if (ep > ec || (ep == ec && (phi > chi || (phi == chi && plo >= clo)))) {
    bhi = phi;
    blo = plo;
    eb = ep;
    shi = chi;
    slo = clo;
    es = ec;
    sign = sp;
  } else {
    bhi = chi;
    blo = clo;
    eb = ec;
    shi = phi;
    slo = plo;
    es = ep;
    sign = sc;
  }
  // As in sfAdd: for a shift <= 1 nothing non-zero is shifted out (both terms have >= 20 zero
  // low bits); for larger shifts at most one leading bit cancels.
  slo = shiftRightJam128(shi, slo, eb - es);
  shi = SF.hi;
  let rhi: u64, rlo: u64;
  if (sp == sc) {
    rlo = blo + slo;
    rhi = bhi + shi + <u64>(rlo < blo);
  } else {
    rlo = blo - slo;
    rhi = bhi - shi - <u64>(blo < slo);
    if ((rhi | rlo) == 0) return zeroOf(<u32>(rm == RM_RDN), isD);
  }
  // Normalize to leading bit 127 and fold the low half into a sticky bit.
  const s = rhi != 0 ? <i32>clz<u64>(rhi) : 64 + <i32>clz<u64>(rlo);
  if (s >= 64) {
    rhi = rlo << (s - 64);
    rlo = 0;
  } else if (s > 0) {
    rhi = (rhi << s) | (rlo >> (64 - s));
    rlo <<= s;
  }
  return roundPack(sign, eb - s + 64, rhi | <u64>(rlo != 0), rm, isD);
}
