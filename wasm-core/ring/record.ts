// What the split (split.ts) and packed (packed.ts) virtqueue walkers share: the per-queue
// records in core memory, the chain scratch table handed to TypeScript, the error codes and
// the guest-address checks. queue.ts exports the ring* API and picks the walker per queue.
import { Phys, RAM_HOST_OFFSET } from '../mmu/physical';

/** Largest queue size any device may offer (split rings allow 32768, packed 32768; QEMU 1024). */
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
export const RING_E_USED_ID: i32 = -15; // device pushed an id >= queue size / not in flight (a device bug)
export const RING_E_SETUP: i32 = -16; // size 0/too big, or a ring area misaligned/outside RAM
export const RING_E_BUFFER_ID: i32 = -17; // packed: buffer id >= queue size, or already in flight
export const RING_E_UNAVAILABLE: i32 = -18; // packed: a chained descriptor not made available

export const DESC_F_NEXT: u32 = 1;
export const DESC_F_WRITE: u32 = 2;
export const DESC_F_INDIRECT: u32 = 4;

/** ringSetup feature flags. */
export const RING_FEAT_EVENT_IDX: u32 = 1;
export const RING_FEAT_INDIRECT: u32 = 2;
/** The queue is a packed virtqueue (VIRTIO_F_RING_PACKED), else a split one. */
export const RING_FEAT_PACKED: u32 = 4;
/**
 * The driver has just enabled the queue (not a restore of a queue in use): the device's side of
 * the ring starts from scratch (packed.ts: the device event suppression structure).
 */
export const RING_FEAT_FRESH: u32 = 8;

// One record per queue: host addresses of the three areas plus the device-side indices.
// Split: descriptor table, available ring, used ring; indices are free-running 16-bit counters.
// Packed: descriptor ring, driver and device event suppression; "indices" are ring positions
// with the wrap counter in bit 15 (the off_wrap format of the event suppression structures).
export const R_DESC: usize = 0; // u32 host address of the descriptor table / ring
export const R_AVAIL: usize = 4; // u32 host address of the driver area
export const R_USED: usize = 8; // u32 host address of the device area
export const R_SIZE: usize = 12; // u32 queue size; 0 = not set up
export const R_LAST_AVAIL: usize = 16; // u32 (16-bit) next avail entry to consume
export const R_USED_IDX: usize = 20; // u32 (16-bit) shadow of used.idx / next used position
export const R_SIGNALLED: usize = 24; // u32 (16-bit) used index at the last notification decision
export const R_SIGNALLED_VALID: usize = 28; // u32 bool
export const R_FEATURES: usize = 32; // u32 RING_FEAT_*
export const R_UNPUBLISHED: usize = 36; // u32 entries pushed since the last publish
export const R_DESC_GPA: usize = 40; // u64 guest addresses, for saveState
export const R_AVAIL_GPA: usize = 48;
export const R_USED_GPA: usize = 56;
export const R_INFLIGHT: usize = 64; // u32 packed: buffer ids in flight (popped, not published)
const REC: usize = 80;
const RINGS: usize = memory.data(<i32>(RING_MAX_QUEUES * <u32>REC), 16);

// The chain handed to TypeScript: a 16-byte header then one 16-byte record per segment.
//   header: head id, segment count, readable bytes, writable bytes (u32 each)
//   segment: guest address (u64), length (u32), flags (u32: 1 = device-writable)
export const CHAIN: usize = memory.data(<i32>(16 + RING_MAX_SIZE * 16), 16);

/** Host address of [gpa, gpa+len) when it lies wholly in guest RAM and is `align`-aligned; 0 if not. */
@inline
export function ramHost(gpa: u64, len: u64, align: u64): usize {
  const r = gpa - Phys.ramBase;
  if (r >= Phys.ramSize || len > Phys.ramSize - r) return 0;
  if ((gpa & (align - 1)) != 0) return 0;
  return RAM_HOST_OFFSET + <usize>r;
}

@inline
export function rec(q: u32): usize {
  return RINGS + <usize>q * REC;
}

/**
 * Records one buffer in CHAIN (slot `n`) and adds it to the chain's readable or writable total
 * in CHAIN's header; returns 0 or the RING_E_* code of a buffer the chain may not carry (empty,
 * outside RAM, readable after writable, totals of 4 GiB or more).
 */
export function chainSegment(n: u32, addr: u64, len: u32, writable: bool): i32 {
  if (len == 0) return RING_E_ZERO_LEN;
  if (ramHost(addr, <u64>len, 1) == 0) return RING_E_ADDR;
  const h = CHAIN;
  if (writable) {
    const w = <u64>load<u32>(h, 12) + <u64>len;
    if (w > 0xffff_ffff) return RING_E_TOO_BIG;
    store<u32>(h, <u32>w, 12);
  } else {
    if (load<u32>(h, 12) != 0) return RING_E_ORDER;
    const r = <u64>load<u32>(h, 8) + <u64>len;
    if (r > 0xffff_ffff) return RING_E_TOO_BIG;
    store<u32>(h, <u32>r, 8);
  }
  const out = CHAIN + 16 + (<usize>n << 4);
  store<u64>(out, addr);
  store<u32>(out, len, 8);
  store<u32>(out, writable ? 1 : 0, 12);
  return 0;
}

/** Starts a chain in CHAIN: no segments, no bytes. */
@inline
export function chainStart(): void {
  store<u64>(CHAIN, 0, 8);
}

/** Finishes a chain in CHAIN with its id and segment count. */
@inline
export function chainEnd(head: u32, n: u32): void {
  store<u32>(CHAIN, head);
  store<u32>(CHAIN, n, 4);
}
