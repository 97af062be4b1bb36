// CLINT (msip, mtimecmp, mtime) inside the core: the timer is read and programmed on every tick,
// so it must not cost an exit. Time comes from the host clock (10 MHz ticks) or, in
// deterministic mode, from instructions retired.
import { requestAttention } from './signals';

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
  static msip: u32 = 0;
  static mtimecmp: u64 = 0xffff_ffff_ffff_ffff;
  /** Added to the raw clock so that guest writes to mtime take effect. */
  static timeOffset: u64 = 0;
  /** 0 = host clock; n > 0 = deterministic, one tick per 2^n... see ticksPerInsnShift. */
  static deterministic: bool = false;
  /** In deterministic mode, time = instret >> shift. */
  static shift: u32 = 4;
  /** Instructions retired, kept by the interpreter (read here for deterministic time). */
  static instret: u64 = 0;
}

@inline
export function readTime(): u64 {
  if (Clint.deterministic) return (Clint.instret >> Clint.shift) + Clint.timeOffset;
  return <u64>hostTicks() + Clint.timeOffset;
}

export function clintRead(off: u32, size: u32): u64 {
  if (off < 4) return <u64>Clint.msip;
  if (off >= 0x4000 && off < 0x4008) {
    const v = Clint.mtimecmp;
    return size == 8 ? v : off == 0x4000 ? v & 0xffff_ffff : v >> 32;
  }
  if (off >= 0xbff8 && off < 0xc000) {
    const v = readTime();
    return size == 8 ? v : off == 0xbff8 ? v & 0xffff_ffff : v >> 32;
  }
  return 0;
}

export function clintWrite(off: u32, size: u32, v: u64): void {
  if (off < 4) {
    Clint.msip = <u32>v & 1;
  } else if (off >= 0x4000 && off < 0x4008) {
    if (size == 8) Clint.mtimecmp = v;
    else if (off == 0x4000) Clint.mtimecmp = (Clint.mtimecmp & 0xffff_ffff_0000_0000) | (v & 0xffff_ffff);
    else Clint.mtimecmp = (Clint.mtimecmp & 0xffff_ffff) | (v << 32);
  } else if (off >= 0xbff8 && off < 0xc000) {
    const now = readTime();
    let t = v;
    if (size != 8) t = off == 0xbff8 ? (now & 0xffff_ffff_0000_0000) | (v & 0xffff_ffff) : (now & 0xffff_ffff) | (v << 32);
    Clint.timeOffset += t - now;
  }
  requestAttention();
}
