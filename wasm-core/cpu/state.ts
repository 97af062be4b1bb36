// Architectural state of the running hart, kept in Wasm globals and two static register files
// in linear memory. Everything the hot loop touches is here so that other modules (fpu, mmu,
// csr) share one copy without passing it around. With several harts (cpu/smp.ts) only one is
// live at a time; the others wait in their save areas.

/** Integer registers x0..x31 (x0 is kept zero by setX). */
export const XREGS: usize = memory.data(32 * 8, 16);
/** Floating-point registers f0..f31 as raw 64-bit patterns (f32 values are NaN-boxed). */
export const FREGS: usize = memory.data(32 * 8, 16);
/**
 * The LR/SC reservation: u64 physical address, then u32 valid (0/1). In linear memory rather than
 * in globals so that translated blocks (main/vm/jit) share it with the interpreter: an LR run by
 * one and its SC by the other must pair.
 */
export const RESERVATION: usize = memory.data(16, 16);

/** Most harts a machine can have (main/vm/machine.ts MAX_HARTS says the same). */
export const MAX_HARTS: u32 = 8;

/** How many harts the machine has and which one is live (its mhartid). */
export class Harts {
  static count: u32 = 1;
  static current: u32 = 0;
}

export const PRV_U: u32 = 0;
export const PRV_S: u32 = 1;
export const PRV_M: u32 = 3;

// mstatus bits the FPU needs
export const MSTATUS_FS: u64 = 3 << 13;
export const MSTATUS_SD: u64 = 1 << 63;

/** Mutable hart state. Static fields compile to Wasm globals. */
export class Hart {
  static pc: u64 = 0;
  static priv: u32 = PRV_M;
  static mstatus: u64 = 0;
  /** fcsr.fflags (5 bits: NV DZ OF UF NX) */
  static fflags: u32 = 0;
  /** fcsr.frm (3 bits) */
  static frm: u32 = 0;
}

// fflags bits
export const FFLAG_NX: u32 = 1;
export const FFLAG_UF: u32 = 2;
export const FFLAG_OF: u32 = 4;
export const FFLAG_DZ: u32 = 8;
export const FFLAG_NV: u32 = 16;

@inline
export function getX(i: u32): u64 {
  return load<u64>(XREGS + ((<usize>i) << 3));
}

@inline
export function setX(i: u32, v: u64): void {
  if (i != 0) store<u64>(XREGS + ((<usize>i) << 3), v);
}

@inline
export function getF(i: u32): u64 {
  return load<u64>(FREGS + ((<usize>i) << 3));
}

/** Writes an FP register and marks the FP state dirty (mstatus.FS = Dirty). */
@inline
export function setF(i: u32, v: u64): void {
  store<u64>(FREGS + ((<usize>i) << 3), v);
  Hart.mstatus |= MSTATUS_FS | MSTATUS_SD;
}

/** Accrues exception flags into fflags and marks the FP state dirty. */
@inline
export function raiseFflags(bits: u32): void {
  if (bits != 0) {
    Hart.fflags |= bits;
    Hart.mstatus |= MSTATUS_FS | MSTATUS_SD;
  }
}
