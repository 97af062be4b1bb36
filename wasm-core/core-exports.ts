// The core's interface to the host (main/vm), shared by both builds: index.ts (the interpreter)
// and index-jit.ts (the interpreter with the JIT's hooks), which add `run`, the hot loop.
import { Hart, Harts, MAX_HARTS, XREGS, FREGS, PRV_M } from './cpu/state';
import { Csr, csrReset } from './cpu/csr';
import { Clint, readTime, clintReset, mipExtOf, setMipExt } from './cpu/clint';
import { Signals, requestAttention } from './cpu/signals';
import { Counters } from './cpu/interpreter';
import { TrapCounters } from './cpu/trap';
import { initExpandedTable } from './cpu/compressed';
import { Phys, RAM_HOST_OFFSET, ROM_SIZE, romHostOffset } from './mmu/physical';
import { tlbFlushAll, updateContext } from './mmu/mmu';
import { jitFlush as jitFlushAll } from './jit/jit';
import { MIP_MEIP, MIP_SEIP } from './cpu/clint';
import {
  Smp,
  smpReset,
  smpRestored,
  switchTo,
  smpNextDeadline,
  smpInterruptPending,
  hartPc,
  hartPriv,
  hartRetired,
} from './cpu/smp';

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

/**
 * Puts every hart in its reset state (M mode at 0x1000, the boot ROM; the boot ROM reads
 * mhartid, so each enters the firmware with its id). RAM is left alone.
 */
export function reset(): void {
  memory.fill(XREGS, 0, 256);
  memory.fill(FREGS, 0, 256);
  csrReset();
  Hart.pc = 0x1000;
  Hart.priv = PRV_M;
  clintReset();
  Phys.tohostHit = false;
  smpReset(Harts.count);
  jitFlushAll();
  requestAttention();
}

/** Sets how many harts the machine has (1..8) and resets them all. */
export function setHartCount(n: u32): bool {
  if (n < 1 || n > MAX_HARTS) return false;
  Harts.count = n;
  reset();
  return true;
}
export function getHartCount(): u32 {
  return Harts.count;
}
/** The live hart's id. */
export function currentHart(): u32 {
  return Harts.current;
}
/**
 * Makes hart h live (for the host to read or write its state: hartSave/hartRestore act on the
 * live hart). Returns false when there is no hart h.
 */
export function selectHart(h: u32): bool {
  if (h >= Harts.count) return false;
  switchTo(h);
  return true;
}
/** After restoring every hart: which one is live and which wait in WFI (bit per hart). */
export function hartsRestored(current: u32, waiting: u32): void {
  smpRestored(current, waiting);
}
/** Bit h set: hart h waits in WFI. */
export function hartsWaiting(): u32 {
  return Smp.waiting;
}
export function getHartPc(h: u32): u64 {
  return hartPc(h);
}
export function getHartPriv(h: u32): u32 {
  return hartPriv(h);
}
/** Instructions hart h retired since reset or restore. */
export function getHartRetired(h: u32): u64 {
  return hartRetired(h);
}
/** Instructions in one hart's turn (at least 1). */
export function setHartQuantum(n: u32): void {
  Smp.quantum = n < 1 ? 1 : n;
}
/** Turns handed from one hart to another since the start. */
export function getHartSwitches(): u64 {
  return Smp.switches;
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
/** satp of the live hart (its MODE field 0: no address translation, as firmware runs). */
export function getSatp(): u64 {
  return Csr.satp;
}
export function getMmioExits(): u64 {
  return Phys.mmioExits;
}

/** Level of the PLIC's outputs into hart `hart`: bit 0 = M external, bit 1 = S external. */
export function setExternalIrq(lines: u32, hart: u32): void {
  if (hart >= Harts.count) return;
  let v: u64 = 0;
  if (lines & 1) v |= MIP_MEIP;
  if (lines & 2) v |= MIP_SEIP;
  if (v != mipExtOf(hart)) {
    setMipExt(hart, v);
    // The live hart looks at its interrupts; a waiting one is looked at when turns are handed out.
    if (hart == Harts.current) requestAttention();
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
 * The earliest timer deadline of any hart (mtimecmp, or stimecmp with Sstc) as a tick count,
 * for a host sleeping in WFI. u64 max means none is armed.
 */
export function nextTimerDeadline(): u64 {
  return smpNextDeadline();
}

/** True when a hart has an interrupt pending that it enables in mie (its WFI would end). */
export function interruptPending(): bool {
  return smpInterruptPending();
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

// The dirty-page log (main/vm/dirty-log.ts is its TypeScript side).
export { dirtyLogEnable, dirtyLogHarvested, dirtyLogBitmap } from './mmu/dirty';

// The virtqueue processor, split and packed rings (devices/virtio/ring.ts is its TypeScript side).
export * from './ring/queue';

// Saving and restoring the hart (cpu/snapshot.ts): the host reads/writes the slots directly.
export { hartSave, hartRestore } from './cpu/snapshot';
import { HART_STATE, HART_STATE_SLOTS } from './cpu/snapshot';
export function hartStateLayout(what: u32): usize {
  return what == 0 ? HART_STATE : <usize>HART_STATE_SLOTS;
}

// Exported so that Binaryen keeps it out of line (a function with one caller is otherwise
// inlined), off the interpreter's loop: see its comment.
export { illegalInsn } from './cpu/interpreter';
