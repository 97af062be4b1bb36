// The split-virtqueue processor (virtio 1.2 §2.7): walks descriptor chains in guest RAM and
// fills the used ring, on the device's side of the queue. It lives in the core module so that it
// reads the rings straight from linear memory; TypeScript device models call it from their
// QueueNotify handler and get each chain back as (guest address, length, writable) segments in
// a static scratch table (CHAIN below), then read/write the buffers as views of guest RAM.
//
// Every value the guest wrote is checked before use. A broken ring returns a negative RING_E*
// code: the device goes NEEDS_RESET. Nothing here allocates, traps or calls out of Wasm.
import { Phys, RAM_HOST_OFFSET } from '../mmu/physical';

/** Largest queue size any device may offer (the spec's split-ring limit is 32768; QEMU's 1024). */
export const RING_MAX_SIZE: u32 = 1024;
/** Queues across all devices (8 virtio-mmio slots × up to 8 queues). */
export const RING_MAX_QUEUES: u32 = 64;

// Error codes returned by ringSetup/ringPop/ringPush (mirrored in devices/virtio/ring.ts).
export const RING_E_NOT_READY: i32 = -1; // no such queue, or not set up
export const RING_E_AVAIL_IDX: i32 = -2; // avail.idx moved more than the queue size ahead
export const RING_E_HEAD: i32 = -3; // head index >= queue size
export const RING_E_NEXT: i32 = -4; // next index outside the (direct or indirect) table
export const RING_E_LOOP: i32 = -5; // chain longer than its table: a loop
export const RING_E_ADDR: i32 = -6; // buffer outside guest RAM
export const RING_E_ZERO_LEN: i32 = -7; // zero-length buffer
export const RING_E_ORDER: i32 = -8; // device-readable buffer after a device-writable one
export const RING_E_INDIRECT_FEATURE: i32 = -9; // INDIRECT without VIRTIO_F_INDIRECT_DESC
export const RING_E_INDIRECT_NESTED: i32 = -10; // INDIRECT inside an indirect table, or mid-chain
export const RING_E_INDIRECT_SIZE: i32 = -11; // table length not a multiple of 16, 0, or > size
export const RING_E_INDIRECT_NEXT: i32 = -12; // INDIRECT together with NEXT
export const RING_E_INDIRECT_ADDR: i32 = -13; // table outside RAM or not 8-byte aligned
export const RING_E_TOO_BIG: i32 = -14; // readable or writable total >= 4 GiB
export const RING_E_USED_ID: i32 = -15; // device pushed an id >= queue size (a device bug)
export const RING_E_SETUP: i32 = -16; // size 0/too big, or a ring area misaligned/outside RAM

const DESC_F_NEXT: u32 = 1;
const DESC_F_WRITE: u32 = 2;
const DESC_F_INDIRECT: u32 = 4;
const AVAIL_F_NO_INTERRUPT: u32 = 1;

/** ringSetup feature flags. */
export const RING_FEAT_EVENT_IDX: u32 = 1;
export const RING_FEAT_INDIRECT: u32 = 2;

// One record per queue: host addresses of the three areas plus the device-side indices.
const R_DESC: usize = 0; // u32 host address of the descriptor table
const R_AVAIL: usize = 4; // u32 host address of the driver area
const R_USED: usize = 8; // u32 host address of the device area
const R_SIZE: usize = 12; // u32 queue size; 0 = not set up
const R_LAST_AVAIL: usize = 16; // u32 (16-bit) next avail entry to consume
const R_USED_IDX: usize = 20; // u32 (16-bit) shadow of used.idx (published by ringPublish)
const R_SIGNALLED: usize = 24; // u32 (16-bit) used.idx at the last notification decision
const R_SIGNALLED_VALID: usize = 28; // u32 bool
const R_FEATURES: usize = 32; // u32 RING_FEAT_*
const R_UNPUBLISHED: usize = 36; // u32 entries pushed since the last publish
const R_DESC_GPA: usize = 40; // u64 guest addresses, for saveState
const R_AVAIL_GPA: usize = 48;
const R_USED_GPA: usize = 56;
const REC: usize = 64;
const RINGS: usize = memory.data(<i32>(RING_MAX_QUEUES * <u32>REC), 16);

// The chain handed to TypeScript: a 16-byte header then one 16-byte record per segment.
//   header: head id, segment count, readable bytes, writable bytes (u32 each)
//   segment: guest address (u64), length (u32), flags (u32: 1 = device-writable)
const CHAIN: usize = memory.data(<i32>(16 + RING_MAX_SIZE * 16), 16);

export function ringChainAddr(): usize {
  return CHAIN;
}
export function ringMaxSize(): u32 {
  return RING_MAX_SIZE;
}
export function ringMaxQueues(): u32 {
  return RING_MAX_QUEUES;
}

/** Host address of [gpa, gpa+len) when it lies wholly in guest RAM and is `align`-aligned; 0 if not. */
@inline
function ramHost(gpa: u64, len: u64, align: u64): usize {
  const r = gpa - Phys.ramBase;
  if (r >= Phys.ramSize || len > Phys.ramSize - r) return 0;
  if ((gpa & (align - 1)) != 0) return 0;
  return RAM_HOST_OFFSET + <usize>r;
}

@inline
function rec(q: u32): usize {
  return RINGS + <usize>q * REC;
}

/**
 * Sets up queue `q` with the guest's size and ring addresses (at QueueReady = 1). Checks sizes,
 * alignment (16/2/4) and that the three areas lie in RAM (event-idx fields included).
 */
export function ringSetup(q: u32, size: u32, desc: u64, avail: u64, used: u64, features: u32): i32 {
  if (q >= RING_MAX_QUEUES) return RING_E_NOT_READY;
  const r = rec(q);
  store<u32>(r + R_SIZE, 0);
  if (size == 0 || size > RING_MAX_SIZE) return RING_E_SETUP;
  const s = <u64>size;
  const d = ramHost(desc, 16 * s, 16);
  const a = ramHost(avail, 6 + 2 * s, 2);
  const u = ramHost(used, 6 + 8 * s, 4);
  if (d == 0 || a == 0 || u == 0) return RING_E_SETUP;
  store<u32>(r + R_DESC, <u32>d);
  store<u32>(r + R_AVAIL, <u32>a);
  store<u32>(r + R_USED, <u32>u);
  store<u64>(r + R_DESC_GPA, desc);
  store<u64>(r + R_AVAIL_GPA, avail);
  store<u64>(r + R_USED_GPA, used);
  store<u32>(r + R_LAST_AVAIL, 0);
  store<u32>(r + R_USED_IDX, 0);
  store<u32>(r + R_SIGNALLED, 0);
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

/** Device-side indices, for saveState: lastAvail | usedIdx << 16. */
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
/** Restores what ringIndices/ringSignalState saved (after ringSetup). */
export function ringRestore(q: u32, indices: u32, signal: u32): void {
  if (q >= RING_MAX_QUEUES) return;
  const r = rec(q);
  store<u32>(r + R_LAST_AVAIL, indices & 0xffff);
  store<u32>(r + R_USED_IDX, indices >> 16);
  store<u32>(r + R_SIGNALLED, signal & 0xffff);
  store<u32>(r + R_SIGNALLED_VALID, (signal >> 16) & 1);
}

/** Chains the driver has made available and the device has not taken yet (0 if broken). */
export function ringPending(q: u32): u32 {
  if (q >= RING_MAX_QUEUES) return 0;
  const r = rec(q);
  const size = load<u32>(r + R_SIZE);
  if (size == 0) return 0;
  const n = (<u32>load<u16>(<usize>load<u32>(r + R_AVAIL) + 2) - load<u32>(r + R_LAST_AVAIL)) & 0xffff;
  return n <= size ? n : 0;
}

/**
 * Takes the next available chain. Returns its segment count (≥ 1) with the chain in CHAIN, 0
 * when the ring is empty (and asks the driver, through avail_event, to notify on the next
 * one), or a negative RING_E_* code.
 */
export function ringPop(q: u32): i32 {
  if (q >= RING_MAX_QUEUES) return RING_E_NOT_READY;
  const r = rec(q);
  const size = load<u32>(r + R_SIZE);
  if (size == 0) return RING_E_NOT_READY;
  const avail = <usize>load<u32>(r + R_AVAIL);
  const last = load<u32>(r + R_LAST_AVAIL);
  const pending = (<u32>load<u16>(avail + 2) - last) & 0xffff;
  if (pending == 0) {
    // Event idx: "notify me when you make entry `last` available" (used->avail_event).
    if ((load<u32>(r + R_FEATURES) & RING_FEAT_EVENT_IDX) != 0) {
      store<u16>(<usize>load<u32>(r + R_USED) + 4 + 8 * <usize>size, <u16>last);
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
  let readable: u64 = 0;
  let writable: u64 = 0;
  let out = CHAIN + 16;
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
    if (len == 0) return RING_E_ZERO_LEN;
    if (ramHost(addr, <u64>len, 1) == 0) return RING_E_ADDR;
    const w = (flags & DESC_F_WRITE) != 0;
    if (w) writable += <u64>len;
    else {
      if (writable != 0) return RING_E_ORDER;
      readable += <u64>len;
    }
    if (n >= size) return RING_E_LOOP;
    store<u64>(out, addr);
    store<u32>(out, len, 8);
    store<u32>(out, w ? 1 : 0, 12);
    out += 16;
    n++;
    if ((flags & DESC_F_NEXT) == 0) break;
    idx = <u32>load<u16>(d, 14);
    if (idx >= tableLen) return RING_E_NEXT;
    if (visited >= tableLen) return RING_E_LOOP;
  }
  if (readable > 0xffff_ffff || writable > 0xffff_ffff) return RING_E_TOO_BIG;
  store<u32>(CHAIN, head);
  store<u32>(CHAIN, n, 4);
  store<u32>(CHAIN, <u32>readable, 8);
  store<u32>(CHAIN, <u32>writable, 12);
  store<u32>(r + R_LAST_AVAIL, (last + 1) & 0xffff);
  return <i32>n;
}

/**
 * Gives chain `id` back with `len` bytes written into it. The driver sees it at the next
 * ringPublish, so a batch of completions costs one used.idx update and one interrupt.
 */
export function ringPush(q: u32, id: u32, len: u32): i32 {
  if (q >= RING_MAX_QUEUES) return RING_E_NOT_READY;
  const r = rec(q);
  const size = load<u32>(r + R_SIZE);
  if (size == 0) return RING_E_NOT_READY;
  if (id >= size) return RING_E_USED_ID;
  const usedIdx = load<u32>(r + R_USED_IDX);
  const e = <usize>load<u32>(r + R_USED) + 4 + (<usize>(usedIdx % size) << 3);
  store<u32>(e, id);
  store<u32>(e, len, 4);
  store<u32>(r + R_USED_IDX, (usedIdx + 1) & 0xffff);
  store<u32>(r + R_UNPUBLISHED, load<u32>(r + R_UNPUBLISHED) + 1);
  return 0;
}

/**
 * Publishes the pushed entries (used.idx) and says whether the driver wants an interrupt for
 * them: 1 = interrupt, 0 = suppressed (used_event with EVENT_IDX, else avail NO_INTERRUPT) or
 * nothing new. Negative: the queue is not set up.
 */
export function ringPublish(q: u32): i32 {
  if (q >= RING_MAX_QUEUES) return RING_E_NOT_READY;
  const r = rec(q);
  const size = load<u32>(r + R_SIZE);
  if (size == 0) return RING_E_NOT_READY;
  if (load<u32>(r + R_UNPUBLISHED) == 0) return 0;
  store<u32>(r + R_UNPUBLISHED, 0);
  const newIdx = load<u32>(r + R_USED_IDX);
  store<u16>(<usize>load<u32>(r + R_USED) + 2, <u16>newIdx);
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
