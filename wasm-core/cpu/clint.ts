// CLINT (msip, mtimecmp, mtime) inside the core: the timer is read and programmed on every tick,
// so it must not cost an exit. Time comes from the host clock (10 MHz ticks) or, in
// deterministic mode, from instructions retired.
import { requestAttention } from './signals';
import { Harts, MAX_HARTS } from './state';

export const CLINT_BASE: u64 = 0x200_0000;
export const CLINT_SIZE: u64 = 0x1_0000;

@external('env', 'hostTicks')
declare function hostTicks(): f64;

export const MIP_SSIP: u64 = 1 << 1;
export const MIP_MSIP: u64 = 1 << 3;
export const MIP_STIP: u64 = 1 << 5;
export const MIP_MTIP: u64 = 1 << 7;
export const MIP_SEIP: u64 = 1 << 9;
export const MIP_MEIP: u64 = 1 << 11;

export class Clint {
  /** Added to the raw clock so that guest writes to mtime take effect. */
  static timeOffset: u64 = 0;
  /** 0 = host clock; n > 0 = deterministic, one tick per 2^n... see ticksPerInsnShift. */
  static deterministic: bool = false;
  /** In deterministic mode, time = instret >> shift. */
  static shift: u32 = 4;
  /** Instructions retired by all harts, kept by the interpreter (deterministic time counts them). */
  static instret: u64 = 0;
}

// Per hart, indexed by hart id: msip (u32), mtimecmp (u64) and the PLIC's lines into the hart
// (mip.MEIP/SEIP as u64). Any hart (or the host, for the lines) may write another's, so they live
// here rather than in the running hart's save area (cpu/smp.ts).
const MSIP: usize = memory.data(<i32>MAX_HARTS * 4, 8);
const MTIMECMP: usize = memory.data(<i32>MAX_HARTS * 8, 8);
const MIP_EXT: usize = memory.data(<i32>MAX_HARTS * 8, 8);

@inline
export function msipOf(h: u32): u32 {
  return load<u32>(MSIP + (<usize>h << 2));
}
@inline
export function setMsip(h: u32, v: u32): void {
  store<u32>(MSIP + (<usize>h << 2), v & 1);
}
@inline
export function mtimecmpOf(h: u32): u64 {
  return load<u64>(MTIMECMP + (<usize>h << 3));
}
@inline
export function setMtimecmp(h: u32, v: u64): void {
  store<u64>(MTIMECMP + (<usize>h << 3), v);
}
/** The PLIC's lines into hart h as mip bits (MEIP, SEIP). */
@inline
export function mipExtOf(h: u32): u64 {
  return load<u64>(MIP_EXT + (<usize>h << 3));
}
@inline
export function setMipExt(h: u32, v: u64): void {
  store<u64>(MIP_EXT + (<usize>h << 3), v);
}

/** Every hart's msip clear and mtimecmp at its maximum (the CLINT's reset). */
export function clintReset(): void {
  for (let h: u32 = 0; h < MAX_HARTS; h++) {
    setMsip(h, 0);
    setMtimecmp(h, 0xffff_ffff_ffff_ffff);
  }
}

@inline
export function readTime(): u64 {
  if (Clint.deterministic) return (Clint.instret >> Clint.shift) + Clint.timeOffset;
  return <u64>hostTicks() + Clint.timeOffset;
}

// Register map (SiFive CLINT, as QEMU's virt): msip of hart h at 4h, mtimecmp at 0x4000 + 8h,
// mtime at 0xbff8. Registers of harts the machine does not have read 0 and ignore writes.
const MSIP_END: u32 = 0x4000;
const MTIMECMP_BASE: u32 = 0x4000;
const MTIME: u32 = 0xbff8;

export function clintRead(off: u32, size: u32): u64 {
  if (off < MSIP_END) {
    const h = off >> 2;
    return h < Harts.count && (off & 3) == 0 ? <u64>msipOf(h) : 0;
  }
  if (off >= MTIMECMP_BASE && off < MTIME) {
    const h = (off - MTIMECMP_BASE) >> 3;
    if (h >= Harts.count) return 0;
    const v = mtimecmpOf(h);
    return size == 8 ? v : (off & 4) == 0 ? v & 0xffff_ffff : v >> 32;
  }
  if (off >= MTIME && off < 0xc000) {
    const v = readTime();
    return size == 8 ? v : off == MTIME ? v & 0xffff_ffff : v >> 32;
  }
  return 0;
}

export function clintWrite(off: u32, size: u32, v: u64): void {
  if (off < MSIP_END) {
    const h = off >> 2;
    if (h < Harts.count && (off & 3) == 0) setMsip(h, <u32>v);
  } else if (off >= MTIMECMP_BASE && off < MTIME) {
    const h = (off - MTIMECMP_BASE) >> 3;
    if (h >= Harts.count) return;
    const old = mtimecmpOf(h);
    if (size == 8) setMtimecmp(h, v);
    else if ((off & 4) == 0) setMtimecmp(h, (old & 0xffff_ffff_0000_0000) | (v & 0xffff_ffff));
    else setMtimecmp(h, (old & 0xffff_ffff) | (v << 32));
  } else if (off >= MTIME && off < 0xc000) {
    const now = readTime();
    let t = v;
    if (size != 8) t = off == MTIME ? (now & 0xffff_ffff_0000_0000) | (v & 0xffff_ffff) : (now & 0xffff_ffff) | (v << 32);
    Clint.timeOffset += t - now;
  }
  requestAttention();
}
