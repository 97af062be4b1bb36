// RV64 F and D extensions: decode and execute OP-FP (0x53) and the fused multiply-adds
// (0x43 FMADD, 0x47 FMSUB, 0x4B FNMSUB, 0x4F FNMADD). Loads and stores live in the core.
//
// Arithmetic is done by the soft-float modules (softfloat-*.ts) on raw bit patterns, which get
// every rounding mode and flag right. For round-to-nearest-even, the common case in practice,
// add/sub/mul/div/sqrt (S and D) and the S fused multiply-adds go through softfloat-fast.ts,
// which uses Wasm's native (correctly rounded, RNE) f32/f64 operations when the result is a
// normal number and exactness can be decided exactly and cheaply, and otherwise falls back to
// the soft-float code. D fused multiply-adds always use the soft-float (128-bit product).
//
// Single-precision values live NaN-boxed in the 64-bit f registers: reads of an improperly
// boxed value see the canonical NaN, writes set the upper 32 bits to ones.

import { Hart, getF, setF, getX, setX, raiseFflags } from './state';
import { SF, RM_RNE, RM_RMM, CANON_NAN_S } from './softfloat-core';
import { sfAdd, sfMul, sfDiv, sfSqrt, sfMulAdd } from './softfloat-arith';
import { sfEq, sfLt, sfLe, sfMinMax, sfClass } from './softfloat-compare';
import { sfToInt, sfFromInt, sfD2S, sfS2D } from './softfloat-convert';
import {
  fastAddD,
  fastMulD,
  fastDivD,
  fastSqrtD,
  fastAddS,
  fastMulS,
  fastDivS,
  fastSqrtS,
  fastMulAddS,
} from './softfloat-fast';

const BOX: u64 = 0xffffffff00000000;

// OP-FP funct5 values (insn[31:27]); funct7 = funct5 << 2 | fmt.
const F5_ADD: u32 = 0x00;
const F5_SUB: u32 = 0x01;
const F5_MUL: u32 = 0x02;
const F5_DIV: u32 = 0x03;
const F5_SGNJ: u32 = 0x04;
const F5_MINMAX: u32 = 0x05;
const F5_CVT_FF: u32 = 0x08;
const F5_SQRT: u32 = 0x0b;
const F5_CMP: u32 = 0x14;
const F5_CVT_IF: u32 = 0x18; // float -> integer
const F5_CVT_FI: u32 = 0x1a; // integer -> float
const F5_MV_XF: u32 = 0x1c; // FMV.X.{W,D} (funct3 0), FCLASS (funct3 1)
const F5_MV_FX: u32 = 0x1e; // FMV.{W,D}.X

/** Reads f[i] as an operand of the format: single-precision values are NaN-unboxed. */
@inline
function readF(i: u32, isD: bool): u64 {
  const v = getF(i);
  if (isD) return v;
  return (v & BOX) == BOX ? v & 0xffffffff : CANON_NAN_S;
}

/** Writes a result of the format to f[i], NaN-boxing single-precision values. */
@inline
function writeF(i: u32, v: u64, isD: bool): void {
  setF(i, isD ? v : v | BOX);
}

/** Static rm field or, for 7, fcsr.frm; a value > 4 means the encoding is illegal. */
@inline
function resolveRm(funct3: u32): u32 {
  return funct3 == 7 ? Hart.frm : funct3;
}

/**
 * Executes an OP-FP (major opcode 0x53) or fused multiply-add (0x43 FMADD, 0x47 FMSUB,
 * 0x4B FNMSUB, 0x4F FNMADD) instruction for RV64 F and D. The caller has already checked
 * mstatus.FS != Off. Returns false when the encoding is illegal (unknown funct, reserved/invalid
 * rounding mode incl. dynamic rm when frm is 5..7, fmt not S/D), in which case no state may have
 * changed.
 */
export function execFp(insn: u32): bool {
  const opcode = insn & 0x7f;
  const rd = (insn >> 7) & 31;
  const funct3 = (insn >> 12) & 7;
  const rs1 = (insn >> 15) & 31;
  const rs2 = (insn >> 20) & 31;
  const fmt = (insn >> 25) & 3;
  if (fmt > 1) return false; // H and Q are not implemented
  const isD = fmt == 1;

  if (opcode != 0x53) {
    if (opcode != 0x43 && opcode != 0x47 && opcode != 0x4b && opcode != 0x4f) return false;
    const rm = resolveRm(funct3);
    if (rm > RM_RMM) return false;
    const a = readF(rs1, isD);
    const b = readF(rs2, isD);
    const c = readF(insn >> 27, isD);
    const negProd = opcode == 0x4b || opcode == 0x4f; // FNMSUB, FNMADD: -(a*b)
    const negC = opcode == 0x47 || opcode == 0x4f; // FMSUB, FNMADD: -c
    SF.flags = 0;
    const r =
      rm == RM_RNE && !isD
        ? fastMulAddS(a, b, c, negProd, negC)
        : sfMulAdd(a, b, c, rm, isD, negProd, negC);
    writeF(rd, r, isD);
    raiseFflags(SF.flags);
    return true;
  }

  const funct5 = insn >> 27;
  switch (funct5) {
    case F5_ADD:
    case F5_SUB:
    case F5_MUL:
    case F5_DIV: {
      const rm = resolveRm(funct3);
      if (rm > RM_RMM) return false;
      const a = readF(rs1, isD);
      let b = readF(rs2, isD);
      SF.flags = 0;
      if (funct5 == F5_SUB) b ^= isD ? 0x8000000000000000 : 0x80000000;
      let r: u64;
      if (rm == RM_RNE) {
        if (funct5 == F5_MUL) r = isD ? fastMulD(a, b) : fastMulS(a, b);
        else if (funct5 == F5_DIV) r = isD ? fastDivD(a, b) : fastDivS(a, b);
        else r = isD ? fastAddD(a, b) : fastAddS(a, b);
      } else {
        if (funct5 == F5_MUL) r = sfMul(a, b, rm, isD);
        else if (funct5 == F5_DIV) r = sfDiv(a, b, rm, isD);
        else r = sfAdd(a, b, rm, isD);
      }
      writeF(rd, r, isD);
      raiseFflags(SF.flags);
      return true;
    }
    case F5_SQRT: {
      const rm = resolveRm(funct3);
      if (rs2 != 0 || rm > RM_RMM) return false;
      SF.flags = 0;
      const a = readF(rs1, isD);
      let r: u64;
      if (rm == RM_RNE) r = isD ? fastSqrtD(a) : fastSqrtS(a);
      else r = sfSqrt(a, rm, isD);
      writeF(rd, r, isD);
      raiseFflags(SF.flags);
      return true;
    }
    case F5_SGNJ: {
      if (funct3 > 2) return false;
      const a = readF(rs1, isD);
      const b = readF(rs2, isD);
      const sbit: u64 = isD ? 0x8000000000000000 : 0x80000000;
      let r: u64;
      if (funct3 == 0) r = (a & ~sbit) | (b & sbit);
      else if (funct3 == 1) r = (a & ~sbit) | (~b & sbit);
      else r = a ^ (b & sbit);
      writeF(rd, r, isD);
      return true;
    }
    case F5_MINMAX: {
      if (funct3 > 1) return false;
      SF.flags = 0;
      writeF(rd, sfMinMax(readF(rs1, isD), readF(rs2, isD), funct3 == 1, isD), isD);
      raiseFflags(SF.flags);
      return true;
    }
    case F5_CVT_FF: {
      // fmt is the destination format, rs2 the source format.
      const rm = resolveRm(funct3);
      if (rs2 != (isD ? 0 : 1) || rm > RM_RMM) return false;
      SF.flags = 0;
      if (isD) writeF(rd, sfS2D(readF(rs1, false)), true);
      else writeF(rd, sfD2S(readF(rs1, true), rm), false);
      raiseFflags(SF.flags);
      return true;
    }
    case F5_CMP: {
      if (funct3 > 2) return false;
      const a = readF(rs1, isD);
      const b = readF(rs2, isD);
      SF.flags = 0;
      let r: bool;
      if (funct3 == 2) r = sfEq(a, b, isD);
      else if (funct3 == 1) r = sfLt(a, b, isD);
      else r = sfLe(a, b, isD);
      setX(rd, <u64>r);
      raiseFflags(SF.flags);
      return true;
    }
    case F5_CVT_IF: {
      const rm = resolveRm(funct3);
      if (rs2 > 3 || rm > RM_RMM) return false;
      SF.flags = 0;
      setX(rd, sfToInt(readF(rs1, isD), rs2, rm, isD));
      raiseFflags(SF.flags);
      return true;
    }
    case F5_CVT_FI: {
      const rm = resolveRm(funct3);
      if (rs2 > 3 || rm > RM_RMM) return false;
      SF.flags = 0;
      writeF(rd, sfFromInt(getX(rs1), rs2, rm, isD), isD);
      raiseFflags(SF.flags);
      return true;
    }
    case F5_MV_XF: {
      if (rs2 != 0) return false;
      if (funct3 == 0) {
        // FMV.X.W takes the raw low 32 bits (no unboxing) and sign-extends them.
        const v = getF(rs1);
        setX(rd, isD ? v : <u64>(<i64>(<i32>(<u32>v))));
        return true;
      }
      if (funct3 == 1) {
        setX(rd, sfClass(readF(rs1, isD), isD));
        return true;
      }
      return false;
    }
    case F5_MV_FX: {
      if (rs2 != 0 || funct3 != 0) return false;
      const v = getX(rs1);
      setF(rd, isD ? v : (v & 0xffffffff) | BOX);
      return true;
    }
    default:
      return false;
  }
}
