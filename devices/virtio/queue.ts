/**
 * One virtqueue as the device sees it: the configuration the driver wrote through the
 * transport (size, ring addresses, ready) and the device's side of the ring, which the Wasm ring
 * processor walks. Device models use pop / push / publish, as in the spec's "Device Operation".
 */
import {
  RingProcessor,
  ringErrorText,
  RING_FEAT_EVENT_IDX,
  RING_FEAT_INDIRECT,
  RING_FEAT_FRESH,
  RING_FEAT_PACKED,
  type DescriptorChain,
} from './ring.js';

export interface QueueState {
  size: number;
  ready: boolean;
  desc: number;
  avail: number;
  used: number;
  /** Device-side indices from the ring processor (lastAvail | usedIdx << 16), when ready. */
  indices: number;
  /** Notification state (signalled used idx | valid << 16), when ready. */
  signal: number;
  /** Packed rings: the buffers in flight as [id, descriptors, …] (absent for split rings). */
  inflight?: number[];
  /** Packed rings: the pushes not yet published, in order, as [id, len, …]. */
  unpublished?: number[];
}

/** How the driver and device agreed to lay out the queue (negotiated features). */
export interface RingFormat {
  eventIdx: boolean;
  indirect: boolean;
  /** VIRTIO_F_RING_PACKED: a packed ring, else a split one. */
  packed: boolean;
}

export class Virtqueue {
  /** Guest-visible configuration (QueueNum, QueueDesc/Driver/Device, QueueReady). */
  size: number;
  ready = false;
  desc = 0;
  avail = 0;
  used = 0;
  /** Set while the device is in NEEDS_RESET: the ring is left alone until reset. */
  halted = false;
  /** The layout the ring was enabled with. */
  format: RingFormat = { eventIdx: false, indirect: false, packed: false };

  /**
   * While the dirty-page log is on: the device-writable buffers of chains taken and not yet
   * given back, by head. They are marked when taken (a device that writes at once is covered)
   * and again when given back (virtio-blk writes a read's data later, on completion).
   */
  private readonly writing = new Map<number, DescriptorChain>();

  /** Called when the guest broke the ring; the transport marks the device NEEDS_RESET. */
  onBroken: (why: string) => void = () => {};

  constructor(
    private readonly rings: RingProcessor,
    /** Index within the device (0 = first queue). */
    readonly index: number,
    /** The ring processor's handle. */
    readonly handle: number,
    readonly maxSize: number,
  ) {
    this.size = maxSize;
  }

  /**
   * Activates the ring with the negotiated features (QueueReady = 1; `fresh`: the driver
   * enabled it now, as opposed to a restore of a ring in use). Returns an error text when the
   * guest's size or addresses are unusable.
   */
  enable(format: RingFormat, fresh = false): string | undefined {
    if (this.size > this.maxSize) return `queue ${this.index}: size ${this.size} > ${this.maxSize}`;
    // A split ring's size must be a power of 2; a packed ring's need not (virtio 1.2 §2.7, §2.8).
    if (!format.packed && this.size & (this.size - 1)) {
      return `queue ${this.index}: size ${this.size} is not a power of 2`;
    }
    const feats =
      (format.eventIdx ? RING_FEAT_EVENT_IDX : 0) |
      (format.indirect ? RING_FEAT_INDIRECT : 0) |
      (format.packed ? RING_FEAT_PACKED : 0) |
      (fresh ? RING_FEAT_FRESH : 0);
    const r = this.rings.setup(this.handle, this.size, this.desc, this.avail, this.used, feats);
    if (r < 0) return `queue ${this.index}: ${ringErrorText(r)}`;
    this.format = format;
    this.ready = true;
    return undefined;
  }

  /** Back to the reset state (device reset). */
  reset(): void {
    this.writing.clear();
    this.rings.clear(this.handle);
    this.ready = false;
    this.halted = false;
    this.size = this.maxSize;
    this.desc = this.avail = this.used = 0;
  }

  /** Chains the driver has made available and the device has not taken yet. */
  get pending(): number {
    return this.ready && !this.halted ? this.rings.pending(this.handle) : 0;
  }

  /**
   * The next available chain, or null when there is none or the guest broke the ring (then
   * onBroken has been called and the queue must not be used until reset).
   */
  pop(): DescriptorChain | null {
    if (!this.ready || this.halted) return null;
    const r = this.rings.pop(this.handle);
    if (typeof r === 'number') {
      this.onBroken(`queue ${this.index}: ${ringErrorText(r)}`);
      return null;
    }
    if (r && r.writable > 0 && this.rings.host.dirty?.on) {
      this.markWritable(r);
      this.writing.set(r.head, r);
    }
    return r;
  }

  private markWritable(c: DescriptorChain): void {
    const dirty = this.rings.host.dirty!;
    for (const s of c.segments) if (s.writable) dirty.mark(s.addr, s.view.length);
  }

  /**
   * Asks the driver to notify when it next makes a chain available, if none is now (EVENT_IDX:
   * avail_event = the next entry; popping an empty ring writes it). A device that found the ring
   * empty through `pending`, without a pop, must call it before it waits for a kick: a driver
   * with EVENT_IDX kicks only when its new entries cross avail_event, which otherwise still
   * names an entry the device took long ago.
   */
  armNotify(): void {
    if (this.pending === 0) this.pop();
  }

  /** Returns chain `head` to the driver with `len` bytes written (visible at publish()). */
  push(head: number, len: number): void {
    if (!this.ready || this.halted) return;
    if (this.writing.size > 0) {
      const c = this.writing.get(head);
      if (c) {
        this.writing.delete(head);
        if (this.rings.host.dirty?.on) this.markWritable(c);
      }
    }
    const r = this.rings.push(this.handle, head, len);
    if (r < 0) this.onBroken(`queue ${this.index}: ${ringErrorText(r)}`);
  }

  /** Makes pushed chains visible; true when the driver asked for an interrupt. */
  publish(): boolean {
    return this.ready && !this.halted && this.rings.publish(this.handle);
  }

  /**
   * The driver has turned this queue's interrupts off, without EVENT_IDX: it polls the used
   * ring for what the device returns (firmware drivers: U-Boot's, and GRUB's through it).
   */
  get polled(): boolean {
    return this.ready && !this.halted && this.rings.polled(this.handle);
  }

  /**
   * Ends the guest's run slice after the current instruction, so that the host's event loop
   * turns: a polling driver waiting for host I/O then waits one turn, not the rest of a slice.
   */
  endGuestSlice(): void {
    this.rings.host.requestExit?.();
  }

  saveState(): QueueState {
    const s: QueueState = {
      size: this.size,
      ready: this.ready,
      desc: this.desc,
      avail: this.avail,
      used: this.used,
      indices: this.ready ? this.rings.indices(this.handle) : 0,
      signal: this.ready ? this.rings.signalState(this.handle) : 0,
    };
    // Only a packed ring has more to say (virtio-net snapshots its receive queue per frame).
    if (this.ready && this.format.packed) {
      const inflight = this.rings.inflight(this.handle);
      if (inflight.length > 0) s.inflight = inflight;
      const unpublished = this.rings.unpublished(this.handle);
      if (unpublished.length > 0) s.unpublished = unpublished;
    }
    return s;
  }

  restoreState(s: QueueState, format: RingFormat): string | undefined {
    this.reset();
    this.size = s.size;
    this.desc = s.desc;
    this.avail = s.avail;
    this.used = s.used;
    if (!s.ready) return undefined;
    const err = this.enable(format);
    if (err) return err;
    if (!this.rings.restore(this.handle, s.indices, s.signal)) {
      return `queue ${this.index}: ring positions outside the ring`;
    }
    const f = s.inflight ?? [];
    const u = s.unpublished ?? [];
    if ((f.length > 0 || u.length > 0) && !format.packed) {
      return `queue ${this.index}: buffers in flight on a split ring`;
    }
    for (let i = 0; i + 1 < f.length; i += 2) {
      if (!this.rings.setInflight(this.handle, f[i], f[i + 1])) {
        return `queue ${this.index}: buffer ${f[i]} in flight does not fit the ring`;
      }
    }
    for (let i = 0; i + 1 < u.length; i += 2) {
      if (this.rings.push(this.handle, u[i], u[i + 1]) < 0) {
        return `queue ${this.index}: buffer ${u[i]} pushed but not in flight`;
      }
    }
    return undefined;
  }
}
