// The split-virtqueue walker (virtio 1.2 §2.7): walks descriptor chains in guest RAM and
// fills the used ring, on the device's side of the queue. queue.ts exports it as the ring* API
// for queues set up without RING_FEAT_PACKED.
//
// Every value the guest wrote is checked before use. A broken ring returns a negative RING_E*
// code: the device goes NEEDS_RESET. Nothing here allocates, traps or calls out of Wasm.
import {
  CHAIN,
  DESC_F_INDIRECT,
  DESC_F_NEXT,
  DESC_F_WRITE,
  RING_E_AVAIL_IDX,
  RING_E_HEAD,
  RING_E_INDIRECT_ADDR,
  RING_E_INDIRECT_FEATURE,
  RING_E_INDIRECT_NESTED,
  RING_E_INDIRECT_NEXT,
  RING_E_INDIRECT_SIZE,
  RING_E_LOOP,
  RING_E_NEXT,
  RING_E_SETUP,
  RING_E_USED_ID,
  RING_FEAT_EVENT_IDX,
  RING_FEAT_INDIRECT,
  R_AVAIL,
  R_DESC,
  R_FEATURES,
  R_LAST_AVAIL,
  R_SIGNALLED,
  R_SIGNALLED_VALID,
  R_SIZE,
  R_UNPUBLISHED,
  R_USED,
  R_USED_IDX,
  chainEnd,
  chainSegment,
  chainStart,
  ramHost,
} from './record';
import { dirtyMarkHost } from '../mmu/dirty';

const AVAIL_F_NO_INTERRUPT: u32 = 1;

/**
 * Checks the three areas of a split queue (alignment 16/2/4, event-idx fields included, all
 * in RAM) and stores their host addresses in record `r`; 0 or RING_E_SETUP.
 */
export function splitSetup(r: usize, size: u32, desc: u64, avail: u64, used: u64): i32 {
  const s = <u64>size;
  const d = ramHost(desc, 16 * s, 16);
  const a = ramHost(avail, 6 + 2 * s, 2);
  const u = ramHost(used, 6 + 8 * s, 4);
  if (d == 0 || a == 0 || u == 0) return RING_E_SETUP;
  store<u32>(r + R_DESC, <u32>d);
  store<u32>(r + R_AVAIL, <u32>a);
  store<u32>(r + R_USED, <u32>u);
  store<u32>(r + R_LAST_AVAIL, 0);
  store<u32>(r + R_USED_IDX, 0);
  store<u32>(r + R_SIGNALLED, 0);
  return 0;
}

/** Chains the driver has made available and the device has not taken yet (0 if broken). */
export function splitPending(r: usize, size: u32): u32 {
  const n = (<u32>load<u16>(<usize>load<u32>(r + R_AVAIL) + 2) - load<u32>(r + R_LAST_AVAIL)) & 0xffff;
  return n <= size ? n : 0;
}

/**
 * Takes the next available chain. Returns its segment count (≥ 1) with the chain in CHAIN, 0
 * when the ring is empty (and asks the driver, through avail_event, to notify on the next
 * one), or a negative RING_E_* code.
 */
export function splitPop(r: usize, size: u32): i32 {
  const avail = <usize>load<u32>(r + R_AVAIL);
  const last = load<u32>(r + R_LAST_AVAIL);
  const pending = (<u32>load<u16>(avail + 2) - last) & 0xffff;
  if (pending == 0) {
    // Event idx: "notify me when you make entry `last` available" (used->avail_event).
    if ((load<u32>(r + R_FEATURES) & RING_FEAT_EVENT_IDX) != 0) {
      const ae = <usize>load<u32>(r + R_USED) + 4 + 8 * <usize>size;
      store<u16>(ae, <u16>last);
      dirtyMarkHost(ae, 2);
    }
    return 0;
  }
  if (pending > size) return RING_E_AVAIL_IDX;
  const head = <u32>load<u16>(avail + 4 + 2 * <usize>(last % size));
  if (head >= size) return RING_E_HEAD;

  const features = load<u32>(r + R_FEATURES);
  let table = <usize>load<u32>(r + R_DESC);
  let tableLen = size;
  let idx = head;
  let inIndirect = false;
  let visited: u32 = 0;
  let n: u32 = 0;
  chainStart();
  for (;;) {
    const d = table + (<usize>idx << 4);
    const addr = load<u64>(d);
    const len = load<u32>(d, 8);
    const flags = <u32>load<u16>(d, 12);
    visited++;
    if ((flags & DESC_F_INDIRECT) != 0) {
      if ((features & RING_FEAT_INDIRECT) == 0) return RING_E_INDIRECT_FEATURE;
      // Only the head of a chain may point to a table, and a table holds no further tables.
      // Tables need 8-byte alignment, not 16: Linux's kmalloc'd tables are only 8-aligned.
      if (inIndirect || n != 0) return RING_E_INDIRECT_NESTED;
      if ((flags & DESC_F_NEXT) != 0) return RING_E_INDIRECT_NEXT;
      if (len == 0 || (len & 15) != 0 || (len >> 4) > size) return RING_E_INDIRECT_SIZE;
      const t = ramHost(addr, <u64>len, 8);
      if (t == 0) return RING_E_INDIRECT_ADDR;
      table = t;
      tableLen = len >> 4;
      idx = 0;
      visited = 0;
      inIndirect = true;
      continue;
    }
    if (n >= size) return RING_E_LOOP;
    const e = chainSegment(n, addr, len, (flags & DESC_F_WRITE) != 0);
    if (e != 0) return e;
    n++;
    if ((flags & DESC_F_NEXT) == 0) break;
    idx = <u32>load<u16>(d, 14);
    if (idx >= tableLen) return RING_E_NEXT;
    if (visited >= tableLen) return RING_E_LOOP;
  }
  chainEnd(head, n);
  store<u32>(r + R_LAST_AVAIL, (last + 1) & 0xffff);
  return <i32>n;
}

/**
 * Gives chain `id` back with `len` bytes written into it. The driver sees it at the next
 * splitPublish, so a batch of completions costs one used.idx update and one interrupt.
 */
export function splitPush(r: usize, size: u32, id: u32, len: u32): i32 {
  if (id >= size) return RING_E_USED_ID;
  const usedIdx = load<u32>(r + R_USED_IDX);
  const e = <usize>load<u32>(r + R_USED) + 4 + (<usize>(usedIdx % size) << 3);
  store<u32>(e, id);
  store<u32>(e, len, 4);
  dirtyMarkHost(e, 8);
  store<u32>(r + R_USED_IDX, (usedIdx + 1) & 0xffff);
  store<u32>(r + R_UNPUBLISHED, load<u32>(r + R_UNPUBLISHED) + 1);
  return 0;
}

/** The driver has turned interrupts off (avail NO_INTERRUPT) without EVENT_IDX: it polls. */
export function splitPolled(r: usize): bool {
  if ((load<u32>(r + R_FEATURES) & RING_FEAT_EVENT_IDX) != 0) return false;
  return (<u32>load<u16>(<usize>load<u32>(r + R_AVAIL)) & AVAIL_F_NO_INTERRUPT) != 0;
}

/**
 * Publishes the pushed entries (used.idx) and says whether the driver wants an interrupt for
 * them: 1 = interrupt, 0 = suppressed (used_event with EVENT_IDX, else avail NO_INTERRUPT).
 * The caller has checked that something was pushed.
 */
export function splitPublish(r: usize, size: u32): i32 {
  const newIdx = load<u32>(r + R_USED_IDX);
  store<u16>(<usize>load<u32>(r + R_USED) + 2, <u16>newIdx);
  dirtyMarkHost(<usize>load<u32>(r + R_USED) + 2, 2);
  const avail = <usize>load<u32>(r + R_AVAIL);
  if ((load<u32>(r + R_FEATURES) & RING_FEAT_EVENT_IDX) == 0) {
    return (<u32>load<u16>(avail) & AVAIL_F_NO_INTERRUPT) != 0 ? 0 : 1;
  }
  const old = load<u32>(r + R_SIGNALLED);
  const valid = load<u32>(r + R_SIGNALLED_VALID);
  store<u32>(r + R_SIGNALLED, newIdx);
  store<u32>(r + R_SIGNALLED_VALID, 1);
  if (valid == 0) return 1;
  // vring_need_event(used_event, new, old): did the driver's threshold fall in (old, new]?
  const usedEvent = <u32>load<u16>(avail + 4 + 2 * <usize>size);
  return ((newIdx - usedEvent - 1) & 0xffff) < ((newIdx - old) & 0xffff) ? 1 : 0;
}
