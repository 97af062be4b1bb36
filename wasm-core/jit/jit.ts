// The core's half of the dynamic translator (main/vm/jit is the other half). Hot guest blocks
// are compiled by the host into Wasm functions placed in this module's exported function table;
// the interpreter calls them with call_indirect, so a compiled block costs no trip through JS.
//
// Blocks are keyed by the host address of their first instruction, which names the physical
// code (a page of RAM or the boot ROM) independently of the virtual mapping: the same code
// mapped twice shares one translation, and a satp write or sfence.vma invalidates nothing.
// Translated code computes pc-relative values from the virtual pc it is called with. RISC-V
// requires FENCE.I between writing code and executing it; Linux issues hundreds while booting,
// mostly without changing code that was translated, so FENCE.I only starts a new epoch: a
// translation from an older epoch is checked against the copy of the guest bytes it was made
// from before its next run, and dropped if they changed.
import {
  Fault,
  Ctx,
  vloadSlow,
  vstoreSlow,
  tlbFill,
  raiseFault,
  Xlate,
  ACCESS_LOAD,
  ACCESS_STORE,
  CAUSE_LOAD_ACCESS,
  CAUSE_STORE_ACCESS,
} from '../mmu/mmu';
import { Phys, physLoad, physStore, RAM_HOST_OFFSET, ROM_BASE, romHostOffset } from '../mmu/physical';
import { Hart, RESERVATION, MSTATUS_FS, MSTATUS_SD } from '../cpu/state';
import { execFp } from '../cpu/fpu';
import { csrRead, csrWrite, CsrResult } from '../cpu/csr';
import { Clint } from '../cpu/clint';
import { Signals } from '../cpu/signals';
import { CAUSE_ILLEGAL_INSN, CAUSE_MISALIGNED_LOAD, CAUSE_MISALIGNED_STORE, takeTrap } from '../cpu/trap';

// The host translates the queued blocks now (main/vm/jit/jit.ts drain).
@external('env', 'jitDrain')
declare function hostJitDrain(): void;

/**
 * Calls translated block `fn` (a slot of the dispatcher's table, main/vm/jit/dispatcher.ts): a
 * Wasm function imported from the dispatcher module, so no call leaves WebAssembly. Returns
 * `budget` minus the instructions retired (negative when the last block ran past it): the block
 * may have continued into others by tail calls (main/vm/jit/translate.ts, "chaining"). The core
 * has no table of its own because exporting one cost the interpreter ~15% (the optimizer then
 * keeps every function's table entry and indirect-callability).
 */
@external('env', 'jitCall')
export declare function jitCall(fn: i32, pc: u64, ctx: u64, budget: i32): i32;

export class Jit {
  static enabled: bool = false;
  /** Executions of a block start before it is queued for translation. */
  static threshold: u32 = 16;
  /** Queued blocks that make the core ask the host to translate at once (else at slice end). */
  static batch: u32 = 16;
  static queued: u32 = 0;
  static flushes: u32 = 0;
  /** Incremented by FENCE.I; a translation made in an older one is checked before it runs. */
  static epoch: u32 = 1;
  static revalidated: u32 = 0;
  static stale: u32 = 0;
  static blockCalls: u64 = 0;
  /** Entries in JIT_FREE. */
  static freeSlots: u32 = 0;
  /** Instructions those calls retired (their mean length is the JIT's reach). */
  static blockInsns: u64 = 0;
  /** The pc after jitBlock ran translated code. */
  static pc: u64 = 0;
  /**
   * Set by a branch or jump to another page than the interpreter's cached one, and when
   * jitBlock leaves a block start to the interpreter: the next refill of that cache looks pc up.
   */
  static jumped: bool = false;
  /** Instructions between two halvings of the blocks' counts (0: never; jitDecay). */
  static decayEvery: u64 = 0;
  static nextDecay: u64 = 0;
}

/** Blocks entered by chaining from another block (kept by translated code in JIT_STATE). */
export function jitChained(): u64 {
  return load<u64>(JIT_STATE, JIT_STATE_CHAINED);
}

export const MAP_BITS: u32 = 16;
const MAP_MASK: u32 = (1 << MAP_BITS) - 1;
/**
 * Block map, direct-mapped on the host address, 32 bytes an entry: u32 tag (host address, 0 =
 * empty), i32 state (> 0: table index of the compiled function; 0: counting; -1: queued; -2:
 * not translatable), u32 execution count, u32 epoch of the translation, u32 offset in
 * JIT_COPIES and u32 length of the guest bytes it was made from (written by the host).
 */
export const MAP_ENTRY_SHIFT: u32 = 5;
export const JIT_MAP: usize = memory.data(<i32>((1 << MAP_BITS) << MAP_ENTRY_SHIFT), 16);
/** Copies of translated guest code, for the check after FENCE.I (host-managed, bump allocated). */
export const JIT_COPIES_SIZE: u32 = 1 << 21;
export const JIT_COPIES: usize = memory.data(<i32>JIT_COPIES_SIZE, 16);
export const QUEUE_MAX: u32 = 256;
/** Blocks waiting for the host: u32 host address, u32 unused, u64 virtual pc. */
export const JIT_QUEUE: usize = memory.data(<i32>(QUEUE_MAX * 16), 16);
/**
 * Block exit state, shared with translated code: u64 next pc, u32 fault flag (set by the slow
 * paths below), u32 the current FENCE.I epoch (a chained successor must be of this one), u64 the
 * fetch TLB's context and u32 the budget given to the chain's first block (both written before
 * each call: translated code looks successors up in the fetch TLB as the interpreter would, and
 * counts what the chain retired so far), u64 count of blocks entered by chaining (statistics).
 */
export const JIT_STATE: usize = memory.data(40, 16);
export const JIT_STATE_EPOCH: usize = 12;
export const JIT_STATE_FETCH_CTX: usize = 16;
export const JIT_STATE_CHAINED: usize = 24;
export const JIT_STATE_BUDGET: usize = 32;
/** Set by jitCsr when the block must leave after the instruction (u32, 1 = leave). */
export const JIT_LEAVE: usize = memory.data(8, 8);

export const STATE_TRANSLATED_MIN: i32 = 1;
export const STATE_QUEUED: i32 = -1;

@inline
export function jitEntry(host: usize): usize {
  // Kernel text spans megabytes: fold the high bits in so that code 128 KiB apart does not collide.
  const h = <u32>host;
  return JIT_MAP + ((<usize>(((h >> 1) ^ (h >> 17)) & MAP_MASK)) << MAP_ENTRY_SHIFT);
}

/**
 * For a translation from an older epoch: true when the guest code still matches the copy it was
 * translated from (it then belongs to this epoch); false drops it (the block counts afresh).
 */
export function jitRevalidate(e: usize, host: usize): bool {
  const copy = JIT_COPIES + <usize>load<u32>(e, 16);
  const len = <usize>load<u32>(e, 20);
  let i: usize = 0;
  let same = true;
  for (; i + 8 <= len; i += 8) {
    if (load<u64>(host + i) != load<u64>(copy + i)) {
      same = false;
      break;
    }
  }
  for (; same && i < len; i += 2) if (load<u16>(host + i) != load<u16>(copy + i)) same = false;
  if (same) {
    store<u32>(e, Jit.epoch, 12);
    Jit.revalidated++;
    return true;
  }
  jitFreeSlot(load<i32>(e, 4));
  store<i32>(e, 0, 4);
  store<u32>(e, 0, 8);
  Jit.stale++;
  return false;
}

/**
 * Table slots of evicted or stale translations, for the host to reuse (main/vm/jit/jit.ts
 * install). No chain can still hold one: chains only run between the interpreter's lookups,
 * and only map entries name slots. When the list is full a slot leaks until the next flush.
 */
export const FREE_MAX: u32 = 4096;
export const JIT_FREE: usize = memory.data(<i32>(FREE_MAX * 4), 16);

function jitFreeSlot(state: i32): void {
  if (state < STATE_TRANSLATED_MIN || Jit.freeSlots >= FREE_MAX) return;
  store<i32>(JIT_FREE + (<usize>Jit.freeSlots << 2), state);
  Jit.freeSlots++;
}

/** A freed table slot for a new translation, or 0 when there is none. */
export function jitTakeFreeSlot(): i32 {
  if (Jit.freeSlots == 0) return 0;
  Jit.freeSlots--;
  return load<i32>(JIT_FREE + (<usize>Jit.freeSlots << 2));
}

/** FENCE.I: translations must be checked against the guest code before they run again. */
export function jitNewEpoch(): void {
  Jit.epoch++;
  store<u32>(JIT_STATE, Jit.epoch, JIT_STATE_EPOCH);
}

/**
 * Counts an execution of the block starting at host/pc; queues it once hot (with threshold 1, at
 * its first execution). A full queue is translated at once, so the state may be > 0 afterwards.
 *
 * An entry held by another block (the map is direct-mapped) goes to the more frequent of the
 * two: each run of the newcomer takes one from the holder's count (a translation keeps the count
 * it was queued with, `threshold`), and only an entry counted down to 0 changes hands. Evicting
 * at once let a block that runs now and then destroy a hot translation (which then had to
 * count to the threshold again), and two blocks that alternate never reach the threshold: in
 * Debian's stock kernel boot such pairs ran tens of millions of instructions interpreted.
 */
export function jitCount(e: usize, host: usize, pc: u64): void {
  if (load<u32>(e) != <u32>host) {
    const held = load<u32>(e, 8);
    if (held > 0) {
      store<u32>(e, held - 1, 8);
      return;
    }
    jitFreeSlot(load<i32>(e, 4)); // another block's translation is evicted
    store<u32>(e, <u32>host);
    store<i32>(e, 0, 4);
    store<u32>(e, 0, 8);
  }
  const n = load<u32>(e, 8) + 1;
  store<u32>(e, n, 8);
  if (n >= Jit.threshold && Jit.queued < QUEUE_MAX) {
    const q = JIT_QUEUE + (<usize>Jit.queued << 4);
    store<u32>(q, <u32>host);
    store<u64>(q, pc, 8);
    Jit.queued++;
    store<i32>(e, STATE_QUEUED, 4);
    if (Jit.queued >= Jit.batch) hostJitDrain();
  }
}

/**
 * The interpreter's lookup of the block at pc (host address `host`) when it is not just counting
 * (cpu/interpreter.ts jitLook): counts it, and if it has a translation of this epoch, runs it,
 * then does the same for the block the chain stopped at if that is in pc's page. Returns 0
 * when nothing ran, else 1 (Jit.pc is the next pc) or 2 when the first instruction trapped
 * before retiring (the interpreter then shortens its slice, as for its own traps). Exported by
 * index-jit.ts so that Binaryen does not inline it into the interpreter's loop: its code there
 * cost the loop's speed on code that was never translated.
 */
export function jitBlock(host: usize, pc: u64): i32 {
  // The code page the interpreter has cached: a chain that ends in it is looked up here.
  const page = pc & ~(<u64>0xfff);
  const pageHost = host - <usize>(pc & 0xfff);
  let r = 0;
  while (true) {
    // A block may run past the slice's end by its own length, never loop past it. When the
    // slice is spent or something asked for attention (a branch that ended the slice, a CSR
    // write in the chain), the interpreter sees to that first; its cache refill (Jit.jumped)
    // then looks the block up.
    const stop = Signals.stopAt;
    const now = Clint.instret;
    if (stop <= now) {
      Jit.jumped = true;
      return r;
    }
    const e = jitEntry(host);
    let state = load<i32>(e, 4);
    if (state == 0 || load<u32>(e) != <u32>host) {
      jitCount(e, host, pc);
      // Translated now if that filled the queue; another block's if that one kept the entry.
      state = load<u32>(e) == <u32>host ? load<i32>(e, 4) : 0;
    }
    if (state <= 0 || (load<u32>(e, 12) != Jit.epoch && !jitRevalidate(e, host))) return r;
    const left = stop - now;
    const budget: i32 = left > 0x7fff_ffff ? 0x7fff_ffff : <i32>left;
    Jit.blockCalls++;
    // Translated code finds chained successors in the fetch TLB under this context, and
    // counts what the chain retired from this budget (jitCsr's instret).
    store<u64>(JIT_STATE, Ctx.fetch, JIT_STATE_FETCH_CTX);
    store<i32>(JIT_STATE, budget, JIT_STATE_BUDGET);
    const n = <i64>budget - <i64>jitCall(state, pc, Ctx.data, budget);
    Clint.instret += <u64>n;
    Jit.blockInsns += <u64>n;
    pc = load<u64>(JIT_STATE);
    Jit.pc = pc;
    if (load<u32>(JIT_STATE, 8) != 0) {
      // A load or store faulted: pc is that instruction's (which instret counts, as here).
      // The trap asks for attention, after which the interpreter looks the handler up.
      store<u32>(JIT_STATE, 0, 8);
      Fault.pending = false;
      Jit.pc = takeTrap(pc, Fault.cause, Fault.tval, false);
      Jit.jumped = true;
      return n == 0 && r == 0 ? 2 : 1;
    }
    r = 1;
    // The chain's end starts a block: in the cached page it is looked up here (the interpreter's
    // cache would hit it without a lookup); in another, the interpreter's refill looks it up.
    const off = pc - page;
    if (off >= 0xffe) {
      Jit.jumped = true;
      return 1;
    }
    host = pageHost + <usize>off;
  }
}

/**
 * Halves the execution count of every block that is still counting, every Jit.decayEvery
 * instructions (called between slices), so that the threshold measures how often a block runs,
 * not how often it ever ran: a block reaches it only if it runs about threshold / 2 times in
 * decayEvery instructions. Code that runs once per request (a disk read's path through the
 * kernel: ~19,000 instructions in ~1,700 blocks, each run once per read) otherwise crossed the
 * threshold after enough requests and ran slower translated than interpreted: each of its many
 * translations is entered cold (host i-cache and branch predictors), ~100 ns an entry against
 * ~13 ns when hot. Translations and queued blocks keep their counts.
 */
export function jitDecayTick(): void {
  if (Jit.decayEvery == 0 || Clint.instret < Jit.nextDecay) return;
  Jit.nextDecay = Clint.instret + Jit.decayEvery;
  const end = JIT_MAP + ((<usize>1 << MAP_BITS) << MAP_ENTRY_SHIFT);
  for (let e = JIT_MAP; e < end; e += <usize>1 << MAP_ENTRY_SHIFT) {
    if (load<i32>(e, 4) == 0) store<u32>(e, load<u32>(e, 8) >> 1, 8);
  }
}

/** Drops every translation (reset; the host when its table or copy area is full). */
export function jitFlush(): void {
  memory.fill(JIT_MAP, 0, (1 << MAP_BITS) << MAP_ENTRY_SHIFT);
  store<u32>(JIT_STATE, Jit.epoch, JIT_STATE_EPOCH);
  Jit.queued = 0;
  Jit.freeSlots = 0; // the host starts its slots over
  Jit.flushes++;
}

// ---- imported by the translated modules ----

/**
 * A load that missed the inline TLB check. Sets the fault flag if it faulted, and JIT_LEAVE
 * when the access asked the core for attention (an MMIO access that raised an interrupt, tohost):
 * the block then leaves right after it, where the interpreter would look; else (a TLB refill, a
 * misaligned or quiet MMIO access) it goes on, as the interpreter does.
 */
export function jitLoadSlow(va: u64, size: u32): u64 {
  const v = vloadSlow(va, size);
  if (Fault.pending) store<u32>(JIT_STATE, 1, 8);
  store<u32>(JIT_LEAVE, Signals.stopAt == 0 ? 1 : 0);
  return v;
}

/** A store that missed the inline TLB check: as jitLoadSlow. */
export function jitStoreSlow(va: u64, size: u32, v: u64): void {
  vstoreSlow(va, size, v);
  if (Fault.pending) store<u32>(JIT_STATE, 1, 8);
  store<u32>(JIT_LEAVE, Signals.stopAt == 0 ? 1 : 0);
}

/**
 * An AMO, LR or SC that missed the block's inline TLB check (misaligned, not in the TLB, or not
 * plain RAM): what the interpreter does for it (cpu/interpreter.ts, the A extension), returning
 * rd's new value; a fault sets the flag. The translation goes through tlbFill, which walks and
 * sets A/D exactly as translate() does and also caches a RAM page, so the next access to it takes
 * the block's inline path. Only encodings the translator accepts arrive here.
 */
export function jitAtomicSlow(insn: u32, addr: u64, src: u64): u64 {
  const v = atomicSlow(insn, addr, src);
  store<u32>(JIT_LEAVE, Signals.stopAt == 0 ? 1 : 0); // as jitLoadSlow
  return v;
}

function atomicSlow(insn: u32, addr: u64, src: u64): u64 {
  const f5 = insn >> 27;
  const size: u32 = ((insn >> 12) & 7) == 2 ? 4 : 8;
  if ((addr & (<u64>size - 1)) != 0) {
    raiseFault(f5 == 2 ? CAUSE_MISALIGNED_LOAD : CAUSE_MISALIGNED_STORE, addr);
    store<u32>(JIT_STATE, 1, 8);
    return 0;
  }
  tlbFill(addr, f5 == 2 ? ACCESS_LOAD : ACCESS_STORE);
  if (Fault.pending) {
    store<u32>(JIT_STATE, 1, 8);
    return 0;
  }
  const pa = Xlate.pa;
  Phys.busFault = false;
  if (f5 == 2) {
    // LR
    let v = physLoad(pa, size);
    if (Phys.busFault) return atomicBusFault(CAUSE_LOAD_ACCESS, addr);
    store<u64>(RESERVATION, pa);
    store<u32>(RESERVATION, 1, 8);
    return size == 4 ? <u64>(<i64>(<i32>v)) : v;
  }
  if (f5 == 3) {
    // SC
    const ok = load<u32>(RESERVATION, 8) != 0 && load<u64>(RESERVATION) == pa;
    store<u32>(RESERVATION, 0, 8);
    if (!ok) return 1;
    physStore(pa, size, src);
    if (Phys.busFault) return atomicBusFault(CAUSE_STORE_ACCESS, addr);
    return 0;
  }
  let old = physLoad(pa, size);
  if (Phys.busFault) return atomicBusFault(CAUSE_STORE_ACCESS, addr);
  if (size == 4) old = <u64>(<i64>(<i32>old));
  physStore(pa, size, amoResult(f5, size, old, src));
  if (Phys.busFault) return atomicBusFault(CAUSE_STORE_ACCESS, addr);
  return old;
}

function atomicBusFault(cause: u64, addr: u64): u64 {
  Phys.busFault = false;
  raiseFault(cause, addr);
  store<u32>(JIT_STATE, 1, 8);
  return 0;
}

/** The value an AMO stores (old is sign-extended for .W, whose store keeps the low 32 bits). */
function amoResult(f5: u32, size: u32, old: u64, src: u64): u64 {
  switch (f5) {
    case 0x01:
      return src;
    case 0x00:
      return old + src;
    case 0x04:
      return old ^ src;
    case 0x0c:
      return old & src;
    case 0x08:
      return old | src;
    case 0x10:
      return size == 4 ? (<i32>old < <i32>src ? old : src) : <i64>old < <i64>src ? old : src;
    case 0x14:
      return size == 4 ? (<i32>old > <i32>src ? old : src) : <i64>old > <i64>src ? old : src;
    case 0x18:
      return size == 4 ? (<u32>old < <u32>src ? old : src) : old < src ? old : src;
    default:
      return size == 4 ? (<u32>old > <u32>src ? old : src) : old > src ? old : src;
  }
}

/** Physical address minus host address for RAM (rom = false) or the boot ROM, for LR/SC. */
export function jitPhysMinusHost(rom: bool): u64 {
  if (rom) return ROM_BASE - <u64>romHostOffset();
  return Phys.ramBase - <u64>RAM_HOST_OFFSET;
}

/**
 * Called before a block's first FP load or store: with mstatus.FS Off it raises the illegal
 * instruction trap the interpreter would (mtval = the instruction's encoding, `tval`) and returns
 * 0; the block then leaves without counting the instruction, as the interpreter does not. Nothing
 * inside a block can turn FS off, so one check serves all of its FP instructions.
 */
export function jitFpCheck(tval: u32): u32 {
  if ((Hart.mstatus & MSTATUS_FS) != 0) return 1;
  raiseFault(CAUSE_ILLEGAL_INSN, <u64>tval);
  store<u32>(JIT_STATE, 1, 8);
  return 0;
}

/** After an FP load wrote its register: mstatus.FS = Dirty, as the interpreter's setF does. */
export function jitFpDirty(): void {
  Hart.mstatus |= MSTATUS_FS | MSTATUS_SD;
}

/**
 * An FP instruction a block does not translate inline (arithmetic, compares, conversions, fused
 * multiply-adds): the interpreter's execFp, so the result, fflags and mstatus.FS are exactly
 * the interpreter's. When execFp rejects the encoding (nothing changed then) this raises the
 * illegal-instruction trap (mtval `tval`) and returns 0; the block leaves without counting it.
 */
export function jitFpOp(insn: u32, tval: u32): u32 {
  if (execFp(insn)) return 1;
  raiseFault(CAUSE_ILLEGAL_INSN, <u64>tval);
  store<u32>(JIT_STATE, 1, 8);
  return 0;
}

/**
 * A CSR instruction (CSRRW/S/C and the immediate forms; `src` is x[rs1] or the immediate): what
 * the interpreter does, with instret counting the `retired` instructions the block has run so
 * far and this one, as the interpreter's would (counter CSRs and deterministic time read it).
 * Returns rd's value. An illegal access raises the trap (mtval `tval`) with nothing changed.
 * When the access asked the core for attention (mstatus, satp, interrupt enables, timers...)
 * JIT_LEAVE tells the block to leave right after it, so interrupts, a new translation context
 * or a new FS are seen exactly where the interpreter would see them.
 */
export function jitCsr(insn: u32, src: u64, retired: u32, tval: u32): u64 {
  const csr = insn >> 20;
  const rs1 = (insn >> 15) & 31;
  const op = (insn >> 12) & 3;
  const counted = <u64>retired + 1;
  Clint.instret += counted;
  let ok = csrRead(csr);
  const old = CsrResult.value;
  if (ok && (op == 1 || rs1 != 0)) {
    const base = CsrResult.rmw; // mip.SEIP: the software bit only (cpu/csr.ts)
    ok = csrWrite(csr, op == 1 ? src : op == 2 ? base | src : base & ~src);
  }
  Clint.instret -= counted;
  if (!ok) {
    raiseFault(CAUSE_ILLEGAL_INSN, <u64>tval);
    store<u32>(JIT_STATE, 1, 8);
    return 0;
  }
  store<u32>(JIT_LEAVE, Signals.stopAt == 0 ? 1 : 0);
  return old;
}
