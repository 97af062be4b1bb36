// The virtqueue processor's interface to TypeScript (devices/virtio/ring.ts): set up, pop,
// push and publish on a queue handle, with the split walker (split.ts) or the packed one
// (packed.ts) as the queue was set up. It lives in the core module so that it reads the rings
// straight from linear memory; device models get each chain back as (guest address, length,
// writable) segments in a static scratch table (CHAIN) and read/write the buffers as views of
// guest RAM.
import {
  CHAIN,
  RING_E_NOT_READY,
  RING_E_SETUP,
  RING_FEAT_PACKED,
  RING_MAX_QUEUES,
  RING_MAX_SIZE,
  R_AVAIL_GPA,
  R_DESC_GPA,
  R_FEATURES,
  R_LAST_AVAIL,
  R_SIGNALLED,
  R_SIGNALLED_VALID,
  R_SIZE,
  R_UNPUBLISHED,
  R_USED_GPA,
  R_USED_IDX,
  rec,
} from './record';
import { splitPending, splitPolled, splitPop, splitPublish, splitPush, splitSetup } from './split';
import {
  packedInflight,
  packedPending,
  packedPolled,
  packedPop,
  packedPublish,
  packedPush,
  packedSetInflight,
  packedSetup,
  packedUnpublished,
} from './packed';

export function ringChainAddr(): usize {
  return CHAIN;
}
export function ringMaxSize(): u32 {
  return RING_MAX_SIZE;
}
export function ringMaxQueues(): u32 {
  return RING_MAX_QUEUES;
}

@inline
function isPacked(r: usize): bool {
  return (load<u32>(r + R_FEATURES) & RING_FEAT_PACKED) != 0;
}

/**
 * Sets up queue `q` with the guest's size and area addresses (at QueueReady = 1): the split
 * layout (descriptor table, available ring, used ring) or, with RING_FEAT_PACKED, the packed
 * one (descriptor ring, driver and device event suppression). Checks sizes, alignment and that
 * every area lies in RAM.
 */
export function ringSetup(q: u32, size: u32, desc: u64, avail: u64, used: u64, features: u32): i32 {
  if (q >= RING_MAX_QUEUES) return RING_E_NOT_READY;
  const r = rec(q);
  store<u32>(r + R_SIZE, 0);
  if (size == 0 || size > RING_MAX_SIZE) return RING_E_SETUP;
  const e =
    (features & RING_FEAT_PACKED) != 0
      ? packedSetup(q, r, size, desc, avail, used, features)
      : splitSetup(r, size, desc, avail, used);
  if (e != 0) return e;
  store<u64>(r + R_DESC_GPA, desc);
  store<u64>(r + R_AVAIL_GPA, avail);
  store<u64>(r + R_USED_GPA, used);
  store<u32>(r + R_SIGNALLED_VALID, 0);
  store<u32>(r + R_UNPUBLISHED, 0);
  store<u32>(r + R_FEATURES, features);
  store<u32>(r + R_SIZE, size);
  return 0;
}

/** Forgets queue `q` (device reset). */
export function ringClear(q: u32): void {
  if (q < RING_MAX_QUEUES) store<u32>(rec(q) + R_SIZE, 0);
}

/** Device-side indices, for saveState: lastAvail | usedIdx << 16 (packed: off_wrap each). */
export function ringIndices(q: u32): u32 {
  if (q >= RING_MAX_QUEUES) return 0;
  const r = rec(q);
  return (load<u32>(r + R_LAST_AVAIL) & 0xffff) | (load<u32>(r + R_USED_IDX) << 16);
}
/** Notification state, for saveState: signalled | valid << 16. */
export function ringSignalState(q: u32): u32 {
  if (q >= RING_MAX_QUEUES) return 0;
  const r = rec(q);
  return (load<u32>(r + R_SIGNALLED) & 0xffff) | (load<u32>(r + R_SIGNALLED_VALID) << 16);
}
/**
 * Restores what ringIndices/ringSignalState saved (after ringSetup). A packed queue's positions
 * must lie inside its ring; false (nothing restored) when they do not.
 */
export function ringRestore(q: u32, indices: u32, signal: u32): bool {
  if (q >= RING_MAX_QUEUES) return false;
  const r = rec(q);
  const size = load<u32>(r + R_SIZE);
  if (size == 0) return false;
  const last = indices & 0xffff;
  const used = indices >>> 16;
  const signalled = signal & 0xffff;
  if (isPacked(r)) {
    if ((last & 0x7fff) >= size || (used & 0x7fff) >= size || (signalled & 0x7fff) >= size) {
      return false;
    }
  }
  store<u32>(r + R_LAST_AVAIL, last);
  store<u32>(r + R_USED_IDX, used);
  store<u32>(r + R_SIGNALLED, signalled);
  store<u32>(r + R_SIGNALLED_VALID, (signal >> 16) & 1);
  return true;
}

/**
 * Chains the driver has made available and the device has not taken yet (0 if broken). A
 * packed queue says only whether there is one: 1 or 0.
 */
export function ringPending(q: u32): u32 {
  if (q >= RING_MAX_QUEUES) return 0;
  const r = rec(q);
  const size = load<u32>(r + R_SIZE);
  if (size == 0) return 0;
  return isPacked(r) ? packedPending(r) : splitPending(r, size);
}

/**
 * Takes the next available chain. Returns its segment count (≥ 1) with the chain in CHAIN, 0
 * when the ring is empty (and asks the driver to notify on the next one, with EVENT_IDX), or
 * a negative RING_E_* code.
 */
export function ringPop(q: u32): i32 {
  if (q >= RING_MAX_QUEUES) return RING_E_NOT_READY;
  const r = rec(q);
  const size = load<u32>(r + R_SIZE);
  if (size == 0) return RING_E_NOT_READY;
  return isPacked(r) ? packedPop(q, r, size) : splitPop(r, size);
}

/** Gives chain `id` back with `len` bytes written into it (the interrupt waits for ringPublish). */
export function ringPush(q: u32, id: u32, len: u32): i32 {
  if (q >= RING_MAX_QUEUES) return RING_E_NOT_READY;
  const r = rec(q);
  const size = load<u32>(r + R_SIZE);
  if (size == 0) return RING_E_NOT_READY;
  return isPacked(r) ? packedPush(q, r, size, id, len) : splitPush(r, size, id, len);
}

/**
 * Publishes the pushed entries and says whether the driver wants an interrupt for them: 1 =
 * interrupt, 0 = suppressed or nothing new. Negative: the queue is not set up.
 */
export function ringPublish(q: u32): i32 {
  if (q >= RING_MAX_QUEUES) return RING_E_NOT_READY;
  const r = rec(q);
  const size = load<u32>(r + R_SIZE);
  if (size == 0) return RING_E_NOT_READY;
  const n = load<u32>(r + R_UNPUBLISHED);
  if (n == 0) return 0;
  store<u32>(r + R_UNPUBLISHED, 0);
  return isPacked(r) ? packedPublish(q, r, size, n) : splitPublish(r, size);
}

/**
 * Whether the driver polls queue `q`: it has turned the queue's interrupts off, and without
 * EVENT_IDX (which drivers that want interrupts later use instead), so it will look at the used
 * ring itself. False for a queue not set up.
 */
export function ringPolled(q: u32): bool {
  if (q >= RING_MAX_QUEUES) return false;
  const r = rec(q);
  if (load<u32>(r + R_SIZE) == 0) return false;
  return isPacked(r) ? packedPolled(r) : splitPolled(r);
}

/**
 * A packed queue's buffers in flight, for saveState: (id, descriptors) u32 pairs written to
 * CHAIN; returns how many (0 for a split queue, whose ring itself says all it needs).
 */
export function ringInflight(q: u32): u32 {
  if (q >= RING_MAX_QUEUES) return 0;
  const r = rec(q);
  const size = load<u32>(r + R_SIZE);
  if (size == 0 || !isPacked(r)) return 0;
  return packedInflight(q, r, size);
}

/**
 * A packed queue's pushes not yet published, for saveState: (id, len) u32 pairs written to
 * CHAIN in order; returns how many (0 for a split queue). Restore them by pushing them again
 * after ringSetInflight.
 */
export function ringUnpublished(q: u32): u32 {
  if (q >= RING_MAX_QUEUES) return 0;
  const r = rec(q);
  if (load<u32>(r + R_SIZE) == 0 || !isPacked(r)) return 0;
  return packedUnpublished(q, r);
}

/** Restores one of ringInflight's pairs (after ringSetup); false when it cannot be. */
export function ringSetInflight(q: u32, id: u32, ndesc: u32): bool {
  if (q >= RING_MAX_QUEUES) return false;
  const r = rec(q);
  const size = load<u32>(r + R_SIZE);
  if (size == 0 || !isPacked(r)) return false;
  return packedSetInflight(q, r, size, id, ndesc);
}
