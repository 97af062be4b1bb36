// The core's interface to the host (main/vm), shared by both builds: index.ts (the interpreter)
// and index-jit.ts (the interpreter with the JIT's hooks), which add `run`, the hot loop.
import { Hart, XREGS, FREGS, PRV_M } from './cpu/state';
import { Csr, csrReset, currentMip } from './cpu/csr';
import { Clint, readTime } from './cpu/clint';
import { Signals, requestAttention } from './cpu/signals';
import { Counters } from './cpu/interpreter';
import { TrapCounters } from './cpu/trap';
import { initExpandedTable } from './cpu/compressed';
import { Phys, RAM_HOST_OFFSET, ROM_SIZE, romHostOffset } from './mmu/physical';
import { tlbFlushAll, updateContext } from './mmu/mmu';
import { jitFlush as jitFlushAll } from './jit/jit';
import { MIP_MEIP, MIP_SEIP } from './cpu/clint';

export { XREGS, FREGS };

/**
 * Sizes the machine: grows linear memory to hold `ramBytes` of guest RAM at ramHostOffset().
 * Returns false when the memory cannot grow that far.
 */
export function init(ramBase: u64, ramBytes: u64): bool {
  const needed = <u64>RAM_HOST_OFFSET + ramBytes;
  const have = <u64>memory.size() << 16;
  if (needed > have) {
    const pages = <i32>((needed - have + 0xffff) >> 16);
    if (memory.grow(pages) < 0) return false;
  }
  Phys.ramBase = ramBase;
  Phys.ramSize = ramBytes;
  initExpandedTable();
  reset();
  return true;
}

/** Puts the hart in its reset state (M mode at 0x1000, the boot ROM). RAM is left alone. */
export function reset(): void {
  memory.fill(XREGS, 0, 256);
  memory.fill(FREGS, 0, 256);
  csrReset();
  Hart.pc = 0x1000;
  Hart.priv = PRV_M;
  Clint.msip = 0;
  Clint.mtimecmp = 0xffff_ffff_ffff_ffff;
  Phys.tohostHit = false;
  updateContext();
  tlbFlushAll();
  jitFlushAll();
  requestAttention();
}

export function ramHostOffset(): usize {
  return RAM_HOST_OFFSET;
}
export function romHostOffsetExport(): usize {
  return romHostOffset();
}
export function romSize(): u64 {
  return ROM_SIZE;
}


export function getPc(): u64 {
  return Hart.pc;
}
export function setPc(pc: u64): void {
  Hart.pc = pc;
}
export function getPriv(): u32 {
  return Hart.priv;
}
export function getInstret(): u64 {
  return Clint.instret;
}
export function getTraps(): u64 {
  return TrapCounters.taken;
}
export function getInterrupts(): u64 {
  return Counters.interrupts;
}
export function getMmioExits(): u64 {
  return Phys.mmioExits;
}

/**
 * Level of the PLIC's outputs into hart `hart`: bit 0 = M external, bit 1 = S external.
 * (Only hart 0 exists until cpu/smp.ts lands.)
 */
export function setExternalIrq(lines: u32, hart: u32): void {
  if (hart != 0) return;
  let v: u64 = 0;
  if (lines & 1) v |= MIP_MEIP;
  if (lines & 2) v |= MIP_SEIP;
  if (v != Csr.mipExt) {
    Csr.mipExt = v;
    requestAttention();
  }
}

/** Called by the host's MMIO handler when an access hit no device: the core raises a fault. */
export function busFault(): void {
  Phys.busFault = true;
}

/** Asks the running slice to stop after the current instruction (e.g. poweroff). */
export function requestExit(reason: i32): void {
  Signals.exitReason = reason;
  requestAttention();
}

/** Physical address of riscv-tests' `tohost`; stores to it end the slice with EXIT_TOHOST. */
export function setTohost(pa: u64): void {
  Phys.tohost = pa;
  tlbFlushAll();
}
export function clearTohost(): void {
  Phys.tohostHit = false;
}

/** Time: host clock (default) or deterministic (time = instret >> shift). */
export function setDeterministicTime(on: bool, shift: u32): void {
  Clint.deterministic = on;
  Clint.shift = shift;
}

/** Current mtime, in timebase ticks. */
export function getTime(): u64 {
  return readTime();
}

/**
 * Deterministic time only: moves the clock forward to tick `t` (never back). The host calls it
 * when the hart waits in WFI for a timer, since no instruction retires there to move time.
 */
export function warpTime(t: u64): void {
  if (!Clint.deterministic) return;
  const now = readTime();
  if (t <= now) return;
  Clint.timeOffset += t - now;
  requestAttention();
}

/**
 * The earliest timer deadline (mtimecmp, or stimecmp with Sstc) as a tick count, for a host
 * sleeping in WFI. u64 max means none is armed.
 */
export function nextTimerDeadline(): u64 {
  let d = Clint.mtimecmp;
  if ((Csr.menvcfg >> 63) != 0 && Csr.stimecmp < d) d = Csr.stimecmp;
  return d;
}

/** True when an interrupt enabled in mie is pending (a WFI would wake). */
export function interruptPending(): bool {
  return (currentMip() & Csr.mie) != 0;
}

export function getX(i: u32): u64 {
  return load<u64>(XREGS + ((<usize>i) << 3));
}
export function setX(i: u32, v: u64): void {
  if (i != 0) store<u64>(XREGS + ((<usize>i) << 3), v);
}
export function getCsrMcause(): u64 {
  return Csr.mcause;
}
export function getCsrMepc(): u64 {
  return Csr.mepc;
}
export function getCsrScause(): u64 {
  return Csr.scause;
}
export function getCsrSepc(): u64 {
  return Csr.sepc;
}

// The virtio split-ring processor (devices/virtio/ring.ts is its TypeScript side).
export * from './ring/split';

// Saving and restoring the hart (cpu/snapshot.ts): the host reads/writes the slots directly.
export { hartSave, hartRestore } from './cpu/snapshot';
import { HART_STATE, HART_STATE_SLOTS } from './cpu/snapshot';
export function hartStateLayout(what: u32): usize {
  return what == 0 ? HART_STATE : <usize>HART_STATE_SLOTS;
}
