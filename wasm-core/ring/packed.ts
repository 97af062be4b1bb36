// The packed-virtqueue walker (virtio 1.2 §2.8): one ring of descriptors that the driver makes
// available and the device overwrites with used ones, and two event suppression structures.
// queue.ts exports it as the ring* API for queues set up with RING_FEAT_PACKED.
//
// Positions carry their wrap counter in bit 15 (the off_wrap format). A chain's descriptors
// are consecutive in the ring; its buffer id is in the last one. A used descriptor goes at the
// next used position and the device then skips as many descriptors as the chain had, so it
// must remember, per buffer id in flight, how many that was (IDS). A used descriptor is written
// at publish, not at push (PENDING keeps the pushes in order until then), so a device can take
// back what it popped and pushed since its last publish by restoring its queue's state, as it
// can on a split ring, whose used.idx moves only at publish. Every value the guest wrote is
// checked before use; a broken ring returns a negative RING_E_* code (NEEDS_RESET).
import {
  CHAIN,
  DESC_F_INDIRECT,
  DESC_F_NEXT,
  DESC_F_WRITE,
  RING_E_BUFFER_ID,
  RING_E_INDIRECT_ADDR,
  RING_E_INDIRECT_FEATURE,
  RING_E_INDIRECT_NESTED,
  RING_E_INDIRECT_NEXT,
  RING_E_INDIRECT_SIZE,
  RING_E_LOOP,
  RING_E_SETUP,
  RING_E_UNAVAILABLE,
  RING_E_USED_ID,
  RING_FEAT_EVENT_IDX,
  RING_FEAT_FRESH,
  RING_FEAT_INDIRECT,
  RING_MAX_QUEUES,
  RING_MAX_SIZE,
  R_AVAIL,
  R_DESC,
  R_FEATURES,
  R_INFLIGHT,
  R_LAST_AVAIL,
  R_SIGNALLED,
  R_SIGNALLED_VALID,
  R_UNPUBLISHED,
  R_USED,
  R_USED_IDX,
  chainEnd,
  chainSegment,
  chainStart,
  ramHost,
} from './record';
import { dirtyMarkHost } from '../mmu/dirty';

const DESC_F_AVAIL: u32 = 1 << 7;
const DESC_F_USED: u32 = 1 << 15;
const WRAP: u32 = 1 << 15;

// Event suppression flags (the low 2 bits of the structure's second le16).
const EVENT_ENABLE: u32 = 0;
const EVENT_DISABLE: u32 = 1;
const EVENT_DESC: u32 = 2;

/**
 * Per queue, per buffer id: descriptors its chain took in the ring (0 = not in flight), with
 * PUSHED set from its push to the publish that writes its used descriptor.
 */
const IDS: usize = memory.data(<i32>(RING_MAX_QUEUES * RING_MAX_SIZE * 2), 16);
const PUSHED: u32 = 0x8000;
/** Per queue: the pushes not yet published, in order, as (id, len) u32 pairs. */
const PENDING: usize = memory.data(<i32>(RING_MAX_QUEUES * RING_MAX_SIZE * 8), 16);

@inline
function idSlot(q: u32, id: u32): usize {
  return IDS + ((<usize>q * <usize>RING_MAX_SIZE + <usize>id) << 1);
}

@inline
function pendingSlot(q: u32, i: u32): usize {
  return PENDING + ((<usize>q * <usize>RING_MAX_SIZE + <usize>i) << 3);
}

/** Position `pw` (off_wrap) moved on by `n` descriptors in a ring of `size`. */
@inline
function advance(pw: u32, n: u32, size: u32): u32 {
  let pos = (pw & 0x7fff) + n;
  let wrap = pw & WRAP;
  if (pos >= size) {
    pos -= size;
    wrap ^= WRAP;
  }
  return pos | wrap;
}

/** Was the descriptor with these flags made available in the driver's lap `wrap`? */
@inline
function isAvail(flags: u32, wrap: u32): bool {
  const a = (flags & DESC_F_AVAIL) != 0;
  const u = (flags & DESC_F_USED) != 0;
  return a == (wrap != 0) && u != (wrap != 0);
}

/**
 * Checks the three areas of a packed queue (ring 16-aligned, the two 4-byte suppression
 * structures 4-aligned, all in RAM), stores their host addresses in record `r` and starts
 * both wrap counters at 1 with nothing in flight; 0 or RING_E_SETUP. With EVENT_IDX the
 * device's structure starts as "kick me when descriptor 0 of the first lap is made available":
 * its zeros would say "kick me for every descriptor" until the device first found the ring
 * empty, which a receive queue kept full seldom does (a split ring's zeroed avail_event means
 * descriptor 0 already).
 */
export function packedSetup(
  q: u32,
  r: usize,
  size: u32,
  desc: u64,
  driver: u64,
  device: u64,
  features: u32,
): i32 {
  const d = ramHost(desc, 16 * <u64>size, 16);
  const drv = ramHost(driver, 4, 4);
  const dev = ramHost(device, 4, 4);
  if (d == 0 || drv == 0 || dev == 0) return RING_E_SETUP;
  store<u32>(r + R_DESC, <u32>d);
  store<u32>(r + R_AVAIL, <u32>drv);
  store<u32>(r + R_USED, <u32>dev);
  store<u32>(r + R_LAST_AVAIL, WRAP);
  store<u32>(r + R_USED_IDX, WRAP);
  store<u32>(r + R_SIGNALLED, WRAP);
  store<u32>(r + R_INFLIGHT, 0);
  memory.fill(idSlot(q, 0), 0, <usize>RING_MAX_SIZE << 1);
  // Only when the driver enables the queue: a restored queue's structure says what it said.
  if ((features & (RING_FEAT_EVENT_IDX | RING_FEAT_FRESH)) == (RING_FEAT_EVENT_IDX | RING_FEAT_FRESH)) {
    store<u16>(dev, <u16>WRAP);
    store<u16>(dev, <u16>EVENT_DESC, 2);
    dirtyMarkHost(dev, 4);
  }
  return 0;
}

/** 1 when the driver has made a chain available that the device has not taken, else 0. */
export function packedPending(r: usize): u32 {
  const pw = load<u32>(r + R_LAST_AVAIL);
  const d = <usize>load<u32>(r + R_DESC) + (<usize>(pw & 0x7fff) << 4);
  return isAvail(<u32>load<u16>(d, 14), pw & WRAP) ? 1 : 0;
}

/**
 * Takes the next available chain. Returns its segment count (≥ 1) with the chain in CHAIN (its
 * buffer id as the head), 0 when the next descriptor is not available (and, with EVENT_IDX,
 * asks the driver to notify when it is), or a negative RING_E_* code.
 */
export function packedPop(q: u32, r: usize, size: u32): i32 {
  const ring = <usize>load<u32>(r + R_DESC);
  const start = load<u32>(r + R_LAST_AVAIL);
  const features = load<u32>(r + R_FEATURES);
  let pw = start;
  let d = ring + (<usize>(pw & 0x7fff) << 4);
  let flags = <u32>load<u16>(d, 14);
  if (!isAvail(flags, pw & WRAP)) {
    const ev = <usize>load<u32>(r + R_USED);
    if ((features & RING_FEAT_EVENT_IDX) != 0) {
      // "Notify me when you make the descriptor at this position available, in this lap."
      store<u16>(ev, <u16>start);
      store<u16>(ev, <u16>EVENT_DESC, 2);
    } else {
      store<u16>(ev, <u16>EVENT_ENABLE, 2);
    }
    dirtyMarkHost(ev, 4);
    return 0;
  }
  let ndesc: u32 = 0;
  let n: u32 = 0;
  chainStart();
  for (;;) {
    if (ndesc >= size) return RING_E_LOOP; // NEXT all the way round the ring
    if (ndesc > 0) {
      d = ring + (<usize>(pw & 0x7fff) << 4);
      flags = <u32>load<u16>(d, 14);
      // The driver makes a chain's first descriptor available last: the rest must be too.
      if (!isAvail(flags, pw & WRAP)) return RING_E_UNAVAILABLE;
    }
    ndesc++;
    pw = advance(pw, 1, size);
    const addr = load<u64>(d);
    const len = load<u32>(d, 8);
    if ((flags & DESC_F_INDIRECT) != 0) {
      if ((features & RING_FEAT_INDIRECT) == 0) return RING_E_INDIRECT_FEATURE;
      if (ndesc != 1) return RING_E_INDIRECT_NESTED;
      if ((flags & DESC_F_NEXT) != 0) return RING_E_INDIRECT_NEXT;
      if (len == 0 || (len & 15) != 0 || (len >> 4) > size) return RING_E_INDIRECT_SIZE;
      const t = ramHost(addr, <u64>len, 8);
      if (t == 0) return RING_E_INDIRECT_ADDR;
      // Every entry of the table is a buffer: in it only WRITE counts (no NEXT, no ids).
      const entries = len >> 4;
      for (let i: u32 = 0; i < entries; i++) {
        const e = t + (<usize>i << 4);
        const f = <u32>load<u16>(e, 14);
        const err = chainSegment(n, load<u64>(e), load<u32>(e, 8), (f & DESC_F_WRITE) != 0);
        if (err != 0) return err;
        n++;
      }
      break;
    }
    const err = chainSegment(n, addr, len, (flags & DESC_F_WRITE) != 0);
    if (err != 0) return err;
    n++;
    if ((flags & DESC_F_NEXT) == 0) break;
  }
  // The buffer id is in the chain's last descriptor.
  const id = <u32>load<u16>(d, 12);
  if (id >= size) return RING_E_BUFFER_ID;
  const slot = idSlot(q, id);
  if (load<u16>(slot) != 0) return RING_E_BUFFER_ID; // already in flight
  store<u16>(slot, <u16>ndesc);
  store<u32>(r + R_INFLIGHT, load<u32>(r + R_INFLIGHT) + 1);
  chainEnd(id, n);
  store<u32>(r + R_LAST_AVAIL, pw);
  return <i32>n;
}

/**
 * Gives buffer `id` back with `len` bytes written into it: its used descriptor is written at
 * the next packedPublish, at the next used position, after which the device skips the
 * descriptors its chain took.
 */
export function packedPush(q: u32, r: usize, size: u32, id: u32, len: u32): i32 {
  if (id >= size) return RING_E_USED_ID;
  const slot = idSlot(q, id);
  const k = <u32>load<u16>(slot);
  if (k == 0 || (k & PUSHED) != 0) return RING_E_USED_ID; // not in flight: a device bug
  const n = load<u32>(r + R_UNPUBLISHED);
  if (n >= size) return RING_E_USED_ID; // more pushes than buffers can be in flight
  store<u16>(slot, <u16>(k | PUSHED));
  const p = pendingSlot(q, n);
  store<u32>(p, id);
  store<u32>(p, len, 4);
  store<u32>(r + R_UNPUBLISHED, n + 1);
  return 0;
}

/** Writes the used descriptors of the `n` pending pushes, in push order. */
function writeUsed(q: u32, r: usize, size: u32, n: u32): void {
  const ring = <usize>load<u32>(r + R_DESC);
  let pw = load<u32>(r + R_USED_IDX);
  for (let i: u32 = 0; i < n; i++) {
    const p = pendingSlot(q, i);
    const id = load<u32>(p);
    const len = load<u32>(p, 4);
    const slot = idSlot(q, id);
    const ndesc = <u32>load<u16>(slot) & ~PUSHED;
    store<u16>(slot, 0);
    const d = ring + (<usize>(pw & 0x7fff) << 4);
    store<u32>(d, len, 8);
    store<u16>(d, <u16>id, 12);
    const lap = (pw & WRAP) != 0 ? DESC_F_AVAIL | DESC_F_USED : 0;
    store<u16>(d, <u16>(lap | (len != 0 ? DESC_F_WRITE : 0)), 14);
    dirtyMarkHost(d, 16);
    pw = advance(pw, ndesc, size);
  }
  store<u32>(r + R_USED_IDX, pw);
  store<u32>(r + R_INFLIGHT, load<u32>(r + R_INFLIGHT) - n);
}

/** Position `pw` (off_wrap) as a count 0..2·size-1 from the start of an even lap. */
@inline
function linear(pw: u32, size: u32): u32 {
  return (pw & 0x7fff) + ((pw & WRAP) != 0 ? 0 : size);
}

/** The driver has disabled events (its suppression structure) without EVENT_IDX: it polls. */
export function packedPolled(r: usize): bool {
  if ((load<u32>(r + R_FEATURES) & RING_FEAT_EVENT_IDX) != 0) return false;
  return (<u32>load<u16>(<usize>load<u32>(r + R_AVAIL), 2) & 3) == EVENT_DISABLE;
}

/**
 * Writes the used descriptors of the `n` pushes since the last publish and says whether the
 * driver wants an interrupt for them: its Driver Event Suppression structure enables,
 * disables, or (EVENT_IDX) names the descriptor position whose use should interrupt.
 */
export function packedPublish(q: u32, r: usize, size: u32, n: u32): i32 {
  writeUsed(q, r, size, n);
  const ev = <usize>load<u32>(r + R_AVAIL);
  const flags = <u32>load<u16>(ev, 2) & 3;
  const now = load<u32>(r + R_USED_IDX);
  const old = load<u32>(r + R_SIGNALLED);
  const valid = load<u32>(r + R_SIGNALLED_VALID);
  store<u32>(r + R_SIGNALLED, now);
  store<u32>(r + R_SIGNALLED_VALID, 1);
  if (flags == EVENT_DISABLE) return 0;
  if (flags != EVENT_DESC || (load<u32>(r + R_FEATURES) & RING_FEAT_EVENT_IDX) == 0) return 1;
  if (valid == 0) return 1;
  // Interrupt when the named position lies in [old, now): among the descriptors used since.
  const lap = size << 1;
  const e = linear(<u32>load<u16>(ev), size);
  const o = linear(old, size);
  const span = (linear(now, size) + lap - o) % lap;
  return (e + lap - o) % lap < span ? 1 : 0;
}

/**
 * Writes the buffer ids in flight on queue `q` (pushed but not published included) into CHAIN
 * as (id, descriptors) u32 pairs, for saveState; returns how many.
 */
export function packedInflight(q: u32, r: usize, size: u32): u32 {
  // The common case, asked on every frame virtio-net receives: nothing in flight.
  if (load<u32>(r + R_INFLIGHT) == 0) return 0;
  let n: u32 = 0;
  for (let id: u32 = 0; id < size; id++) {
    const k = <u32>load<u16>(idSlot(q, id)) & ~PUSHED;
    if (k == 0) continue;
    store<u32>(CHAIN + (<usize>n << 3), id);
    store<u32>(CHAIN + (<usize>n << 3), k, 4);
    n++;
  }
  return n;
}

/**
 * Writes the pushes not yet published on queue `q` into CHAIN as (id, len) u32 pairs, in
 * order, for saveState; returns how many (R_UNPUBLISHED).
 */
export function packedUnpublished(q: u32, r: usize): u32 {
  const n = load<u32>(r + R_UNPUBLISHED);
  memory.copy(CHAIN, pendingSlot(q, 0), <usize>n << 3);
  return n;
}

/** Restores one in-flight buffer id (after setup); false when out of range. */
export function packedSetInflight(q: u32, r: usize, size: u32, id: u32, ndesc: u32): bool {
  if (id >= size || ndesc == 0 || ndesc > size) return false;
  const slot = idSlot(q, id);
  if (load<u16>(slot) == 0) store<u32>(r + R_INFLIGHT, load<u32>(r + R_INFLIGHT) + 1);
  store<u16>(slot, <u16>ndesc);
  return true;
}
