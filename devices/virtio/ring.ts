/**
 * The TypeScript side of the virtqueue processor in wasm-core/ring (split and packed rings):
 * typed access to its exports, the chain scratch table, and zero-copy views of the guest buffers
 * a chain names.
 */
import type { DirtyLog } from '../platform/dirty-log.js';

/** Why a ring is broken; the index is minus the core's RING_E_* code. */
export const RING_ERRORS: readonly string[] = [
  'ok',
  'queue not set up',
  'avail.idx moved more than the queue size ahead',
  'head descriptor index out of range',
  'next descriptor index out of range',
  'descriptor chain loops (longer than its table)',
  'buffer outside guest RAM',
  'zero-length buffer',
  'device-readable buffer after a device-writable one',
  'indirect descriptor without VIRTIO_F_INDIRECT_DESC',
  'nested or mid-chain indirect descriptor',
  'indirect table size not a non-zero multiple of 16 within the queue size',
  'indirect descriptor with NEXT set',
  'indirect table outside guest RAM or misaligned',
  'chain carries 4 GiB or more',
  'used id out of range',
  'queue size or ring address invalid (size, alignment, outside RAM)',
  'buffer id out of range or already in flight',
  'chained descriptor not made available',
];

export const RING_FEAT_EVENT_IDX = 1;
export const RING_FEAT_INDIRECT = 2;
export const RING_FEAT_PACKED = 4;
/** The driver has just enabled the queue (not a restore of one in use). */
export const RING_FEAT_FRESH = 8;

export function ringErrorText(code: number): string {
  return RING_ERRORS[-code] ?? `ring error ${code}`;
}

interface RingExports {
  memory: WebAssembly.Memory;
  ringChainAddr(): number;
  ringMaxSize(): number;
  ringMaxQueues(): number;
  ringSetup(
    q: number,
    size: number,
    desc: bigint,
    avail: bigint,
    used: bigint,
    features: number,
  ): number;
  ringClear(q: number): void;
  ringIndices(q: number): number;
  ringSignalState(q: number): number;
  ringRestore(q: number, indices: number, signal: number): number;
  ringInflight(q: number): number;
  ringSetInflight(q: number, id: number, ndesc: number): number;
  ringUnpublished(q: number): number;
  ringPending(q: number): number;
  ringPop(q: number): number;
  ringPush(q: number, id: number, len: number): number;
  ringPublish(q: number): number;
  ringPolled(q: number): number;
}

/** What the core needs to offer: its exports, guest RAM and where RAM starts. */
export interface RingHost {
  readonly wasmExports: WebAssembly.Exports;
  readonly ram: Uint8Array;
  readonly ramBase: number;
  /** The dirty-page log, for the buffers devices write (virtio's DMA). */
  readonly dirty?: DirtyLog;
  /** Ends the guest's run slice after the current instruction (the core's requestExit). */
  requestExit?(): void;
}

/** One buffer of a chain: a zero-copy view of guest RAM. */
export interface Segment {
  /** Guest physical address. */
  readonly addr: number;
  readonly writable: boolean;
  readonly view: Uint8Array;
}

/** A descriptor chain taken from the available ring (readable segments first). */
export interface DescriptorChain {
  readonly head: number;
  readonly segments: readonly Segment[];
  /** Total bytes in device-readable / device-writable segments. */
  readonly readable: number;
  readonly writable: number;
}

/** The ring processor of one core; queue handles are handed out to transports. */
export class RingProcessor {
  readonly maxQueueSize: number;
  readonly maxQueues: number;
  private readonly x: RingExports;
  private readonly chain: Uint32Array;
  private nextHandle = 0;

  constructor(readonly host: RingHost) {
    this.x = host.wasmExports as unknown as RingExports;
    if (typeof this.x.ringPop !== 'function') {
      throw new Error('core.wasm has no ring processor: rebuild with `npm run build:wasm`');
    }
    this.maxQueueSize = this.x.ringMaxSize();
    this.maxQueues = this.x.ringMaxQueues();
    this.chain = new Uint32Array(
      this.x.memory.buffer,
      this.x.ringChainAddr(),
      4 + 4 * this.maxQueueSize,
    );
  }

  /** Reserves `n` consecutive queue handles; returns the first. */
  allocate(n: number): number {
    if (this.nextHandle + n > this.maxQueues) {
      throw new Error(`ring processor: more than ${this.maxQueues} virtqueues`);
    }
    const h = this.nextHandle;
    this.nextHandle += n;
    return h;
  }

  setup(
    h: number,
    size: number,
    desc: number,
    avail: number,
    used: number,
    features: number,
  ): number {
    return this.x.ringSetup(h, size, BigInt(desc), BigInt(avail), BigInt(used), features);
  }
  clear(h: number): void {
    this.x.ringClear(h);
  }
  /** Device-side indices (unsigned: a packed ring's wrap counters use the top bits). */
  indices(h: number): number {
    return this.x.ringIndices(h) >>> 0;
  }
  signalState(h: number): number {
    return this.x.ringSignalState(h) >>> 0;
  }
  /** False when the indices do not fit the ring (a packed position outside it). */
  restore(h: number, indices: number, signal: number): boolean {
    return this.x.ringRestore(h, indices, signal) !== 0;
  }
  /** A packed queue's buffers in flight as [id, descriptors, …] ([] for a split queue). */
  inflight(h: number): number[] {
    const n = this.x.ringInflight(h);
    return Array.from(this.chain.subarray(0, 2 * n));
  }
  /** A packed queue's pushes not yet published as [id, len, …], in order ([] for split). */
  unpublished(h: number): number[] {
    const n = this.x.ringUnpublished(h);
    return Array.from(this.chain.subarray(0, 2 * n));
  }
  /** Restores one buffer in flight; false when it does not fit the ring. */
  setInflight(h: number, id: number, ndesc: number): boolean {
    return this.x.ringSetInflight(h, id, ndesc) !== 0;
  }
  pending(h: number): number {
    return this.x.ringPending(h);
  }

  /**
   * Takes the next chain: a DescriptorChain, null when the ring is empty, or a negative
   * RING_E_* code when the guest broke the ring.
   */
  pop(h: number): DescriptorChain | null | number {
    const n = this.x.ringPop(h);
    if (n <= 0) return n === 0 ? null : n;
    const c = this.chain;
    const ram = this.host.ram;
    const base = this.host.ramBase;
    const segments: Segment[] = new Array<Segment>(n);
    for (let i = 0, o = 4; i < n; i++, o += 4) {
      const addr = c[o] + c[o + 1] * 0x1_0000_0000;
      const off = addr - base;
      segments[i] = {
        addr,
        writable: c[o + 3] !== 0,
        view: ram.subarray(off, off + c[o + 2]),
      };
    }
    return { head: c[0], segments, readable: c[2], writable: c[3] };
  }

  push(h: number, id: number, len: number): number {
    return this.x.ringPush(h, id, len >>> 0);
  }

  /** Publishes pushed entries; true when the driver wants an interrupt. */
  publish(h: number): boolean {
    return this.x.ringPublish(h) > 0;
  }

  /** The driver turned the queue's interrupts off without EVENT_IDX: it polls the used ring. */
  polled(h: number): boolean {
    return this.x.ringPolled(h) !== 0;
  }
}
