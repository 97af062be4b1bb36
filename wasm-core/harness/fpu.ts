// Test harness for the FPU: exposes the register files, fcsr and execFp, plus the soft-float
// routines themselves so that tests can cross-check the fast paths against them in every mode.

import { Hart, getF, setF, getX, setX } from '../cpu/state';
import { SF } from '../cpu/softfloat-core';
import { sfAdd, sfMul, sfDiv, sfSqrt, sfMulAdd } from '../cpu/softfloat-arith';
import { sfToInt, sfFromInt, sfD2S, sfS2D } from '../cpu/softfloat-convert';

import { execFp } from '../cpu/fpu';
export { execFp };

export function setFReg(i: u32, v: u64): void {
  setF(i, v);
}

export function getFReg(i: u32): u64 {
  return getF(i);
}

export function setXReg(i: u32, v: u64): void {
  setX(i, v);
}

export function getXReg(i: u32): u64 {
  return getX(i);
}

export function setFrm(v: u32): void {
  Hart.frm = v;
}

export function getFflags(): u32 {
  return Hart.fflags;
}

export function setFflags(v: u32): void {
  Hart.fflags = v;
}

export function getMstatus(): u64 {
  return Hart.mstatus;
}

export function setMstatus(v: u64): void {
  Hart.mstatus = v;
}

// Direct soft-float entry points (no fast paths). Flags of the last call: sfFlags().
export function sfFlags(): u32 {
  return SF.flags;
}

export function softAdd(a: u64, b: u64, rm: u32, isD: bool): u64 {
  SF.flags = 0;
  return sfAdd(a, b, rm, isD);
}

export function softMul(a: u64, b: u64, rm: u32, isD: bool): u64 {
  SF.flags = 0;
  return sfMul(a, b, rm, isD);
}

export function softDiv(a: u64, b: u64, rm: u32, isD: bool): u64 {
  SF.flags = 0;
  return sfDiv(a, b, rm, isD);
}

export function softSqrt(a: u64, rm: u32, isD: bool): u64 {
  SF.flags = 0;
  return sfSqrt(a, rm, isD);
}

export function softMulAdd(
  a: u64,
  b: u64,
  c: u64,
  rm: u32,
  isD: bool,
  negProd: bool,
  negC: bool,
): u64 {
  SF.flags = 0;
  return sfMulAdd(a, b, c, rm, isD, negProd, negC);
}

export function softToInt(a: u64, kind: u32, rm: u32, isD: bool): u64 {
  SF.flags = 0;
  return sfToInt(a, kind, rm, isD);
}

export function softFromInt(v: u64, kind: u32, rm: u32, isD: bool): u64 {
  SF.flags = 0;
  return sfFromInt(v, kind, rm, isD);
}

export function softD2S(a: u64, rm: u32): u64 {
  SF.flags = 0;
  return sfD2S(a, rm);
}

export function softS2D(a: u64): u64 {
  SF.flags = 0;
  return sfS2D(a);
}

/** Executes insn n times (for rough timing from the tests or by hand). */
export function benchExec(insn: u32, n: i32): void {
  for (let i = 0; i < n; i++) execFp(insn);
}
