// Several harts on one thread, in turns (as QEMU's single-threaded TCG runs them). One hart is
// live at a time, in the globals of state.ts/csr.ts; the others wait in save areas laid out as a
// saved hart's slots (snapshot.ts hartStore/hartLoad). A turn ends after `Smp.quantum`
// instructions, at a WFI, or at a spin-wait's stall, PAUSE or `div x, x, zero` (a spinning hart
// gives the one it waits for its turn sooner; interpreter.ts raises EXIT_YIELD). A hart that executed WFI sits out its turns until an interrupt it enables is
// pending; when every hart waits, the slice ends with EXIT_WFI and the host sleeps.
//
// What each hart sees as its own: registers, CSRs, PMP, privilege, msip/mtimecmp and the PLIC
// lines (clint.ts, by hart id), minstret/mcycle (its own instructions: the offsets absorb the
// other harts' turns). Shared: RAM, mtime, the TLB (flushed when the incoming hart's satp or
// PMP differ, since its tags do not name the hart), the JIT's translations (keyed by physical
// code). The LR/SC reservation is dropped at every switch: another hart may have written the
// reserved word, and an SC may always fail, so an LR/SC loop retries in its next turn.
import { Hart, Harts, MAX_HARTS, RESERVATION } from './state';
import { Csr, PMP, currentMip, mipOf } from './csr';
import { Clint, readTime, msipOf, mtimecmpOf, mipExtOf, MIP_MTIP, MIP_STIP } from './clint';
import { EXIT_BUDGET, EXIT_WFI, EXIT_YIELD, requestAttention } from './signals';
import { interpret } from './interpreter';
import { hartStore, hartLoad, HART_STATE_SLOTS, S_PC, S_PRIV, S_MIE, S_MIPSW, S_MENVCFG, S_SATP, S_STIMECMP, S_PMP } from './snapshot';
import { tlbFlushAll, updateContext } from '../mmu/mmu';

const AREA_BYTES: usize = <usize>HART_STATE_SLOTS * 8;
const AREAS: usize = memory.data(<i32>(MAX_HARTS * HART_STATE_SLOTS * 8), 8);
/** Clint.instret when each hart's last turn ended. */
const LEFT_AT: usize = memory.data(<i32>MAX_HARTS * 8, 8);
/** Instructions each hart retired in its finished turns (for the host's per-CPU MIPS). */
const RETIRED: usize = memory.data(<i32>MAX_HARTS * 8, 8);

export class Smp {
  /** Bit h: hart h executed WFI and waits for an interrupt it enables. */
  static waiting: u32 = 0;
  /** Instructions in one hart's turn. */
  static quantum: u32 = 16384;
  /** Turns handed from one hart to another. */
  static switches: u64 = 0;
  /** Clint.instret when the live hart's turn began. */
  static turnStart: u64 = 0;
}

@inline
function area(h: u32): usize {
  return AREAS + <usize>h * AREA_BYTES;
}
@inline
function slot(h: u32, s: u32): u64 {
  return load<u64>(area(h) + (<usize>s << 3));
}

/** Makes hart h the live one; the live one goes to its save area. */
export function switchTo(h: u32): void {
  const cur = Harts.current;
  if (h == cur) return;
  hartStore(area(cur));
  store<u64>(LEFT_AT + (<usize>cur << 3), Clint.instret);
  const r = RETIRED + (<usize>cur << 3);
  store<u64>(r, load<u64>(r) + (Clint.instret - Smp.turnStart));
  Smp.turnStart = Clint.instret;
  // The TLB's entries hold translations and PMP checks of the hart that filled them; another
  // address space or PMP setting must not use them.
  const keepTlb = slot(h, S_SATP) == Csr.satp && memory.compare(area(h) + (<usize>S_PMP << 3), PMP, 8 * 18) == 0;
  Harts.current = h;
  hartLoad(area(h));
  const others = Clint.instret - load<u64>(LEFT_AT + (<usize>h << 3));
  Csr.instretOffset -= others;
  Csr.cycleOffset -= others;
  store<u32>(RESERVATION, 0, 8);
  updateContext();
  if (!keepTlb) tlbFlushAll();
  Smp.switches++;
  requestAttention();
}

/** Whether hart h has an interrupt pending that it enables in mie (a WFI would end). */
export function hartWakes(h: u32): bool {
  if (h == Harts.current) return (currentMip() & Csr.mie) != 0;
  const ip = mipOf(
    slot(h, S_MIPSW),
    mipExtOf(h),
    msipOf(h),
    mtimecmpOf(h),
    slot(h, S_MENVCFG),
    slot(h, S_STIMECMP),
    readTime(),
  );
  return (ip & slot(h, S_MIE)) != 0;
}

/** The first hart from `start` on (round) that may run, waking it; -1 when all wait. */
function pickFrom(start: u32): i32 {
  const n = Harts.count;
  for (let i: u32 = 0; i < n; i++) {
    let h = start + i;
    if (h >= n) h -= n;
    const bit: u32 = 1 << h;
    if ((Smp.waiting & bit) == 0) return <i32>h;
    if (hartWakes(h)) {
      Smp.waiting &= ~bit;
      return <i32>h;
    }
  }
  return -1;
}

/**
 * The machine's harts in turns for up to `budget` instructions (J as interpret's: the build
 * with or without the JIT's hooks). Returns EXIT_WFI when every hart waits, or
 * the first exit that is not a turn's end (tohost, host); the hart that took it stays live.
 */
export function runHarts<J>(budget: i32): i32 {
  let left: i64 = budget;
  let start = Harts.current;
  while (left > 0) {
    const h = pickFrom(start);
    if (h < 0) return EXIT_WFI;
    switchTo(<u32>h);
    const q: i64 = left < <i64>Smp.quantum ? left : <i64>Smp.quantum;
    const before = Clint.instret;
    const r = interpret<J>(<i32>q);
    const ran = <i64>(Clint.instret - before);
    left -= ran > 0 ? ran : 1;
    if (r == EXIT_WFI) Smp.waiting |= 1 << <u32>h;
    else if (r != EXIT_BUDGET && r != EXIT_YIELD) return r;
    start = <u32>h + 1 < Harts.count ? <u32>h + 1 : 0;
  }
  return EXIT_BUDGET;
}

/**
 * Sets the number of harts (1..MAX_HARTS) and puts every hart in the reset state the live one
 * is in (call after reset()); hart 0 is live.
 */
export function smpReset(count: u32): void {
  Harts.count = count < 1 ? 1 : count > MAX_HARTS ? MAX_HARTS : count;
  const live = Harts.current;
  hartStore(area(live));
  for (let h: u32 = 0; h < MAX_HARTS; h++) {
    if (h != live) memory.copy(area(h), area(live), AREA_BYTES);
  }
  restartCounts();
  Harts.current = 0;
  hartLoad(area(0));
  Smp.waiting = 0;
  store<u32>(RESERVATION, 0, 8);
  updateContext();
  tlbFlushAll();
}

/**
 * After the host restored every hart (each made live with switchTo, then hartRestore): no turn
 * of another hart is owed to any minstret, and `current`/`waiting` are as saved.
 */
export function smpRestored(current: u32, waiting: u32): void {
  switchTo(current < Harts.count ? current : 0);
  Smp.waiting = waiting & ((1 << Harts.count) - 1);
  restartCounts();
}

/** From now on: no other hart's turn is owed to any minstret, and no hart has retired anything. */
function restartCounts(): void {
  for (let h: u32 = 0; h < MAX_HARTS; h++) {
    store<u64>(LEFT_AT + (<usize>h << 3), Clint.instret);
    store<u64>(RETIRED + (<usize>h << 3), 0);
  }
  Smp.turnStart = Clint.instret;
}

/** Instructions hart h retired since reset or restore (its share of Clint.instret). */
export function hartRetired(h: u32): u64 {
  const done = load<u64>(RETIRED + (<usize>h << 3));
  return h == Harts.current ? done + (Clint.instret - Smp.turnStart) : done;
}

/** Hart h's pc (the live one's, or the one it will resume at). */
export function hartPc(h: u32): u64 {
  return h == Harts.current ? Hart.pc : slot(h, S_PC);
}
/** Hart h's privilege level. */
export function hartPriv(h: u32): u32 {
  return h == Harts.current ? Hart.priv : <u32>slot(h, S_PRIV);
}

/**
 * The earliest deadline of a timer that would end a hart's WFI (mtimecmp with mie.MTIE, stimecmp
 * with Sstc and mie.STIE), u64 max when none is. A timer whose interrupt the hart does not
 * enable cannot wake it, so the host need not wake up for it.
 */
export function smpNextDeadline(): u64 {
  let d: u64 = 0xffff_ffff_ffff_ffff;
  for (let h: u32 = 0; h < Harts.count; h++) {
    const live = h == Harts.current;
    const mie = live ? Csr.mie : slot(h, S_MIE);
    const envcfg = live ? Csr.menvcfg : slot(h, S_MENVCFG);
    const st = live ? Csr.stimecmp : slot(h, S_STIMECMP);
    const m = mtimecmpOf(h);
    if ((mie & MIP_MTIP) != 0 && m < d) d = m;
    if ((envcfg >> 63) != 0 && (mie & MIP_STIP) != 0 && st < d) d = st;
  }
  return d;
}

/** Whether any hart would wake from WFI now. */
export function smpInterruptPending(): bool {
  for (let h: u32 = 0; h < Harts.count; h++) if (hartWakes(h)) return true;
  return false;
}
