// The core module with the JIT's hooks (dist/wasm/core-jit.wasm): the interpreter looks hot
// blocks up in the JIT map and calls their translations (main/vm/jit translates them).
import { interpret } from './cpu/interpreter';
import { runHarts } from './cpu/smp';
import { Harts } from './cpu/state';
import { XREGS, FREGS, RESERVATION } from './cpu/state';
import { TLB_FETCH, TLB_LOAD, TLB_STORE } from './mmu/mmu';
import { RAM_HOST_OFFSET } from './mmu/physical';
import { EXPANDED } from './cpu/compressed';
import { Jit, JIT_MAP, JIT_QUEUE, JIT_STATE, JIT_LEAVE, JIT_COPIES, JIT_COPIES_SIZE, jitFlush as jitFlushAll, jitDecayTick } from './jit/jit';

export * from './core-exports';

/** Runs up to `budget` instructions; returns the exit reason (EXIT_* in cpu/signals.ts). */
export function run(budget: i32): i32 {
  const r = Harts.count == 1 ? interpret<u16>(budget) : runHarts<u16>(budget);
  jitDecayTick();
  return r;
}

// ---- the JIT's hooks (main/vm/jit translates; wasm-core/jit holds the map and slow paths) ----
export {
  jitLoadSlow,
  jitStoreSlow,
  jitAtomicSlow,
  jitPhysMinusHost,
  jitFpCheck,
  jitFpDirty,
  jitFpOp,
  jitCsr,
  jitFlush,
  jitChained,
  jitTakeFreeSlot,
  jitBlock,
} from './jit/jit';

export function jitEnable(on: bool, threshold: u32, batch: u32): void {
  Jit.enabled = on;
  Jit.threshold = threshold;
  Jit.batch = batch;
  jitFlushAll();
}
/** Halve counting blocks' counts every `every` instructions (0: never); see jitDecayTick. */
export function jitSetDecay(every: u64): void {
  Jit.decayEvery = every;
  Jit.nextDecay = every;
}
export function jitLayout(what: u32): usize {
  if (what == 0) return XREGS;
  if (what == 1) return JIT_MAP;
  if (what == 2) return JIT_QUEUE;
  if (what == 3) return JIT_STATE;
  if (what == 4) return TLB_LOAD;
  if (what == 5) return TLB_STORE;
  if (what == 6) return EXPANDED;
  if (what == 7) return RESERVATION;
  if (what == 8) return RAM_HOST_OFFSET;
  if (what == 9) return FREGS;
  if (what == 10) return JIT_LEAVE;
  if (what == 11) return TLB_FETCH;
  return 0;
}
export function jitQueued(): u32 {
  return Jit.queued;
}
export function jitTakeQueue(): void {
  Jit.queued = 0;
}
export function jitFreeSlots(): u32 {
  return Jit.freeSlots;
}
export function jitFlushes(): u32 {
  return Jit.flushes;
}
export function jitEpoch(): u32 {
  return Jit.epoch;
}
export function jitCopies(): usize {
  return JIT_COPIES;
}
export function jitCopiesSize(): u32 {
  return JIT_COPIES_SIZE;
}
export function jitRevalidated(): u32 {
  return Jit.revalidated;
}
export function jitStale(): u32 {
  return Jit.stale;
}
export function jitBlockCalls(): u64 {
  return Jit.blockCalls;
}
export function jitBlockInsns(): u64 {
  return Jit.blockInsns;
}
