// The core's half of the dynamic translator (main/vm/jit is the other half). Hot guest blocks
// are compiled by the host into Wasm functions placed in this module's exported function table;
// the interpreter calls them with call_indirect, so a compiled block costs no trip through JS.
//
// Blocks are keyed by the host address of their first instruction, which names the physical
// code (a page of RAM or the boot ROM) independently of the virtual mapping: the same code
// mapped twice shares one translation, and a satp write or sfence.vma invalidates nothing.
// Translated code computes pc-relative values from the virtual pc it is called with. RISC-V
// requires FENCE.I between writing code and executing it, so FENCE.I drops every translation.
import { Fault, vloadSlow, vstoreSlow } from '../mmu/mmu';

// The host translates the queued blocks now (main/vm/jit/jit.ts drain).
@external('env', 'jitDrain')
declare function hostJitDrain(): void;

export class Jit {
  static enabled: bool = false;
  /** Executions of a block start before it is queued for translation. */
  static threshold: u32 = 16;
  /** Queued blocks that make the core ask the host to translate at once (else at slice end). */
  static batch: u32 = 16;
  static queued: u32 = 0;
  static flushes: u32 = 0;
  static blockCalls: u64 = 0;
}

const MAP_BITS: u32 = 14;
const MAP_MASK: u32 = (1 << MAP_BITS) - 1;
/**
 * Block map, direct-mapped on the host address: u32 tag (host address, 0 = empty), i32 state
 * (> 0: table index of the compiled function; 0: counting; -1: queued; -2: not translatable),
 * u32 execution count, u32 unused.
 */
export const JIT_MAP: usize = memory.data(<i32>((1 << MAP_BITS) * 16), 16);
export const QUEUE_MAX: u32 = 256;
/** Blocks waiting for the host: u32 host address, u32 unused, u64 virtual pc. */
export const JIT_QUEUE: usize = memory.data(<i32>(QUEUE_MAX * 16), 16);
/** Block exit state: u64 next pc, u32 fault flag (set by the slow paths below). */
export const JIT_STATE: usize = memory.data(16, 16);

export const STATE_TRANSLATED_MIN: i32 = 1;
export const STATE_QUEUED: i32 = -1;

@inline
export function jitEntry(host: usize): usize {
  return JIT_MAP + ((<usize>((<u32>host >> 1) & MAP_MASK)) << 4);
}

/**
 * Counts an execution of the block starting at host/pc; queues it once hot (with threshold 1, at
 * its first execution). A full queue is translated at once, so the state may be > 0 afterwards.
 */
export function jitCount(e: usize, host: usize, pc: u64): void {
  if (load<u32>(e) != <u32>host) {
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

/** Drops every translation (FENCE.I, reset). The host reuses its table slots after this. */
export function jitFlush(): void {
  memory.fill(JIT_MAP, 0, (1 << MAP_BITS) * 16);
  Jit.queued = 0;
  Jit.flushes++;
}

// ---- imported by the translated modules ----

/** A load that missed the inline TLB check. Sets the fault flag if it faulted. */
export function jitLoadSlow(va: u64, size: u32): u64 {
  const v = vloadSlow(va, size);
  if (Fault.pending) store<u32>(JIT_STATE, 1, 8);
  return v;
}

export function jitStoreSlow(va: u64, size: u32, v: u64): void {
  vstoreSlow(va, size, v);
  if (Fault.pending) store<u32>(JIT_STATE, 1, 8);
}
