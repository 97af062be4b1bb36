/**
 * virtio-mmio, version 2 ("modern", virtio 1.2 §4.2): one 4 KiB register window per slot of the
 * virt board (0x10001000 + n·0x1000, PLIC source 1 + n). A slot without a device answers magic,
 * version and vendor with device ID 0, as QEMU's empty transports do, so that the DTB can list
 * all eight slots and Linux skips the empty ones.
 *
 * The transport owns feature negotiation, the status state machine, queue configuration and
 * the interrupt status; the device model behind it owns the queues' meaning. A driver that
 * breaks the protocol (features changed after FEATURES_OK, queue registers changed while the
 * queue is live, a malformed ring...) puts the device in NEEDS_RESET: counted, logged, and the
 * driver is told through a configuration-change interrupt once DRIVER_OK was set.
 */
import { GuestErrorLog, hex, type LogSink } from '../platform/guest-log.js';
import type { IrqLine, MmioDevice } from '../platform/mmio.js';
import {
  MMIO,
  MMIO_MAGIC,
  MMIO_VENDOR_QEMU,
  STATUS,
  ISR_USED_BUFFER,
  ISR_CONFIG_CHANGE,
  F,
  bit,
} from './constants.js';
import type { VirtioContext, VirtioDevice } from './device.js';
import { Virtqueue, type QueueState } from './queue.js';
import type { RingProcessor } from './ring.js';

/** Ring/transport features every device gets on top of its own. */
export const TRANSPORT_FEATURES = bit(F.version1) | bit(F.eventIdx) | bit(F.indirectDesc);

export interface VirtioMmioState {
  version: 1;
  status: number;
  needsReset: boolean;
  deviceFeaturesSel: number;
  driverFeaturesSel: number;
  /** Accepted features as a decimal string (JSON has no 64-bit integers). */
  driverFeatures: string;
  queueSel: number;
  shmSel: number;
  interruptStatus: number;
  configGeneration: number;
  queues: QueueState[];
  device: unknown;
}

/** Transport counters; the bus counts the MMIO exits themselves. */
export interface VirtioTransportMetrics {
  [name: string]: number;
  /** QueueNotify writes (kicks) from the driver. */
  queue_notifies: number;
  /** Kicks that could not be served: queue not ready, out of range, before DRIVER_OK. */
  notifies_ignored: number;
  /** Used-buffer interrupts injected. */
  interrupts: number;
  /** Configuration-change interrupts injected. */
  config_interrupts: number;
  /** Protocol violations and bad register accesses. */
  errors: number;
  /** Times the device entered NEEDS_RESET. */
  needs_reset: number;
  /** Device resets by the driver (status 0). */
  resets: number;
}

export interface VirtioMmioOptions {
  /** Slot number, used in the name of an empty transport ("virtio-mmio3"). */
  slot: number;
  irq: IrqLine;
  rings: RingProcessor;
  device?: VirtioDevice;
  log?: LogSink;
}

export class VirtioMmioTransport implements MmioDevice {
  readonly name: string;
  readonly device: VirtioDevice | undefined;
  readonly queues: readonly Virtqueue[];
  readonly metrics: VirtioTransportMetrics = {
    queue_notifies: 0,
    notifies_ignored: 0,
    interrupts: 0,
    config_interrupts: 0,
    errors: 0,
    needs_reset: 0,
    resets: 0,
  };
  readonly offeredFeatures: bigint;

  private status = 0;
  private needsReset = false;
  private deviceFeaturesSel = 0;
  private driverFeaturesSel = 0;
  private driverFeatures = 0n;
  private queueSel = 0;
  private shmSel = 0;
  private isr = 0;
  private configGeneration = 0;

  private readonly irq: IrqLine;
  private readonly log: GuestErrorLog;
  private readonly ctx: VirtioContext;

  constructor(opts: VirtioMmioOptions) {
    this.device = opts.device;
    this.irq = opts.irq;
    this.name = opts.device?.name ?? `virtio-mmio${opts.slot}`;
    this.log = new GuestErrorLog(this.name, opts.log);
    // ACCESS_PLATFORM stays off: the device sees guest-physical addresses (no IOMMU).
    this.offeredFeatures = opts.device
      ? (opts.device.features | TRANSPORT_FEATURES) & ~bit(F.accessPlatform)
      : 0n;
    const sizes = opts.device?.queueMaxSizes ?? [];
    for (const s of sizes) {
      if (!Number.isInteger(s) || s < 1 || s > opts.rings.maxQueueSize) {
        throw new RangeError(`${this.name}: queue size ${s} outside 1..${opts.rings.maxQueueSize}`);
      }
    }
    const h = sizes.length ? opts.rings.allocate(sizes.length) : 0;
    this.queues = sizes.map((max, i) => {
      const q = new Virtqueue(opts.rings, i, h + i, max);
      q.onBroken = (why) => this.fail(why);
      return q;
    });
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const self = this;
    this.ctx = {
      queues: this.queues,
      get features() {
        return self.driverFeatures;
      },
      signalUsed: (q) => this.signalUsed(q),
      fail: (why) => this.fail(why),
    };
    if (opts.device) opts.device.onConfigChange = () => this.configChanged();
  }

  /** The features the driver accepted (valid once FEATURES_OK is set). */
  get features(): bigint {
    return this.driverFeatures;
  }

  get deviceStatus(): number {
    return this.status | (this.needsReset ? STATUS.needsReset : 0);
  }

  read(offset: number, size: 1 | 2 | 4): number {
    if (offset >= MMIO.config) {
      if (!this.device) return 0;
      return this.device.readConfig(offset - MMIO.config, size);
    }
    if (size !== 4 || offset & 3) {
      this.violation(`${size}-byte read of register ${hex(offset)} (registers are 32-bit)`, false);
      return 0;
    }
    switch (offset) {
      case MMIO.magic:
        return MMIO_MAGIC;
      case MMIO.version:
        return 2;
      case MMIO.vendorId:
        return MMIO_VENDOR_QEMU;
    }
    const dev = this.device;
    if (!dev) return 0; // an empty slot: device ID 0 and nothing else
    switch (offset) {
      case MMIO.deviceId:
        return dev.deviceId;
      case MMIO.deviceFeatures:
        if (this.deviceFeaturesSel > 1) return 0;
        return Number((this.offeredFeatures >> BigInt(32 * this.deviceFeaturesSel)) & 0xffff_ffffn);
      case MMIO.queueNumMax:
        return this.queues[this.queueSel]?.maxSize ?? 0;
      case MMIO.queueReady:
        return this.queues[this.queueSel]?.ready ? 1 : 0;
      case MMIO.interruptStatus:
        return this.isr;
      case MMIO.status:
        return this.deviceStatus;
      case MMIO.queueDescLow:
      case MMIO.queueDescHigh:
      case MMIO.queueDriverLow:
      case MMIO.queueDriverHigh:
      case MMIO.queueDeviceLow:
      case MMIO.queueDeviceHigh: {
        // Readable in version 2 (the spec lists them R/W).
        const q = this.queues[this.queueSel];
        if (!q) return 0;
        const v =
          offset < MMIO.queueDriverLow ? q.desc : offset < MMIO.queueDeviceLow ? q.avail : q.used;
        return offset & 4 ? Math.floor(v / 0x1_0000_0000) >>> 0 : v >>> 0;
      }
      case MMIO.shmLenLow:
      case MMIO.shmLenHigh:
      case MMIO.shmBaseLow:
      case MMIO.shmBaseHigh:
        return 0xffff_ffff; // no shared memory regions: length -1 means "absent"
      case MMIO.queueReset:
        return 0;
      case MMIO.configGeneration:
        return this.configGeneration;
    }
    this.violation(`read of unknown or write-only register ${hex(offset)}`, false);
    return 0;
  }

  write(offset: number, size: 1 | 2 | 4, value: number): void {
    const dev = this.device;
    if (offset >= MMIO.config) {
      if (dev) dev.writeConfig(offset - MMIO.config, size, value);
      return;
    }
    if (size !== 4 || offset & 3) {
      this.violation(`${size}-byte write of register ${hex(offset)} (registers are 32-bit)`, false);
      return;
    }
    if (!dev) return; // writes to an empty slot go nowhere
    const q = this.queues[this.queueSel];
    switch (offset) {
      case MMIO.deviceFeaturesSel:
        this.deviceFeaturesSel = value;
        return;
      case MMIO.driverFeaturesSel:
        this.driverFeaturesSel = value;
        return;
      case MMIO.driverFeatures: {
        if (this.status & STATUS.featuresOk) {
          this.violation('driver features written after FEATURES_OK', true);
          return;
        }
        if (this.driverFeaturesSel > 1) {
          if (value !== 0) this.violation(`feature word ${this.driverFeaturesSel} set`, false);
          return;
        }
        const shift = BigInt(32 * this.driverFeaturesSel);
        this.driverFeatures =
          (this.driverFeatures & ~(0xffff_ffffn << shift)) | (BigInt(value >>> 0) << shift);
        return;
      }
      case MMIO.queueSel:
        this.queueSel = value;
        return;
      case MMIO.queueNum:
      case MMIO.queueDescLow:
      case MMIO.queueDescHigh:
      case MMIO.queueDriverLow:
      case MMIO.queueDriverHigh:
      case MMIO.queueDeviceLow:
      case MMIO.queueDeviceHigh:
        if (!q) {
          this.violation(`queue register ${hex(offset)} written for queue ${this.queueSel}`, false);
          return;
        }
        if (q.ready) {
          this.violation(`queue ${q.index} reconfigured while ready`, true);
          return;
        }
        this.writeQueueReg(q, offset, value);
        return;
      case MMIO.queueReady:
        if (!q) {
          this.violation(`QueueReady for queue ${this.queueSel}`, false);
          return;
        }
        if ((value & 1) === 0) {
          q.reset();
          return;
        }
        if (q.ready) return;
        if (!(this.status & STATUS.featuresOk)) {
          this.violation(`queue ${q.index} enabled before FEATURES_OK`, true);
          return;
        }
        {
          const err = q.enable(this.has(F.eventIdx), this.has(F.indirectDesc));
          if (err) this.violation(err, true);
        }
        return;
      case MMIO.queueNotify:
        this.metrics.queue_notifies++;
        this.notify(value & 0xffff);
        return;
      case MMIO.interruptAck:
        this.isr &= ~value;
        this.irq.set(this.isr !== 0);
        return;
      case MMIO.status:
        this.writeStatus(value & 0xff);
        return;
      case MMIO.shmSel:
        this.shmSel = value;
        return;
      case MMIO.queueReset:
        return; // VIRTIO_F_RING_RESET is not offered
    }
    this.violation(`write of unknown or read-only register ${hex(offset)} = ${hex(value)}`, false);
  }

  private writeQueueReg(q: Virtqueue, offset: number, value: number): void {
    const v = value >>> 0;
    const hi = v * 0x1_0000_0000;
    switch (offset) {
      case MMIO.queueNum:
        q.size = v;
        return;
      case MMIO.queueDescLow:
        q.desc = q.desc - (q.desc % 0x1_0000_0000) + v;
        return;
      case MMIO.queueDescHigh:
        q.desc = (q.desc % 0x1_0000_0000) + hi;
        return;
      case MMIO.queueDriverLow:
        q.avail = q.avail - (q.avail % 0x1_0000_0000) + v;
        return;
      case MMIO.queueDriverHigh:
        q.avail = (q.avail % 0x1_0000_0000) + hi;
        return;
      case MMIO.queueDeviceLow:
        q.used = q.used - (q.used % 0x1_0000_0000) + v;
        return;
      case MMIO.queueDeviceHigh:
        q.used = (q.used % 0x1_0000_0000) + hi;
        return;
    }
  }

  private has(f: number): boolean {
    return (this.driverFeatures & bit(f)) !== 0n;
  }

  private writeStatus(value: number): void {
    if (value === 0) {
      this.metrics.resets++;
      this.reset();
      return;
    }
    const old = this.status;
    let v = value & ~STATUS.needsReset;
    if (old & ~v) {
      this.violation(`status bits cleared (${hex(old)} -> ${hex(v)}) without a reset`, true);
      return;
    }
    if (v & STATUS.featuresOk && !(old & STATUS.featuresOk)) {
      const extra = this.driverFeatures & ~this.offeredFeatures;
      if (extra !== 0n || !this.has(F.version1)) {
        // Not accepted: FEATURES_OK stays clear, which the driver reads back and gives up.
        this.log.report(
          extra !== 0n
            ? `driver accepted features not offered (0x${extra.toString(16)})`
            : 'driver did not accept VIRTIO_F_VERSION_1 (legacy drivers are not supported)',
        );
        this.metrics.errors++;
        v &= ~STATUS.featuresOk;
      }
    }
    if (v & STATUS.driverOk && !(old & STATUS.driverOk) && !(v & STATUS.featuresOk)) {
      this.violation('DRIVER_OK without FEATURES_OK', true);
      return;
    }
    this.status = v;
    if (v & STATUS.driverOk && !(old & STATUS.driverOk) && this.device && !this.needsReset) {
      this.device.activate(this.ctx);
      // Buffers made available before DRIVER_OK are served now.
      for (const q of this.queues) if (q.ready && !this.needsReset) this.device.notify(q.index);
    }
  }

  private notify(index: number): void {
    const q = this.queues[index];
    if (!(this.status & STATUS.driverOk) || this.needsReset || !q || !q.ready) {
      this.metrics.notifies_ignored++;
      if (!q || !q.ready) this.log.report(`notify on queue ${index}, which is not set up`);
      return;
    }
    this.device!.notify(index);
  }

  private signalUsed(q: Virtqueue): void {
    if (this.needsReset || !(this.status & STATUS.driverOk)) return;
    if (!q.publish()) return;
    this.metrics.interrupts++;
    this.isr |= ISR_USED_BUFFER;
    this.irq.set(true);
  }

  /** The device's configuration changed: new generation, and a config interrupt after DRIVER_OK. */
  configChanged(): void {
    this.configGeneration = (this.configGeneration + 1) >>> 0;
    if (this.status & STATUS.driverOk) this.configInterrupt();
  }

  private configInterrupt(): void {
    this.metrics.config_interrupts++;
    this.isr |= ISR_CONFIG_CHANGE;
    this.irq.set(true);
  }

  /** The guest broke the protocol; `needsReset` stops the device until the driver resets it. */
  private violation(why: string, needsReset: boolean): void {
    if (needsReset) this.fail(why);
    else {
      this.metrics.errors++;
      this.log.report(why);
    }
  }

  private fail(why: string): void {
    this.metrics.errors++;
    if (this.needsReset) return;
    this.log.report(`${why}: device needs reset`);
    this.needsReset = true;
    this.metrics.needs_reset++;
    for (const q of this.queues) q.halted = true;
    if (this.status & STATUS.driverOk) this.configInterrupt();
  }

  /** Device reset: the state after power-on, as the driver's write of 0 to Status asks. */
  reset(): void {
    this.device?.reset();
    for (const q of this.queues) q.reset();
    this.status = 0;
    this.needsReset = false;
    this.deviceFeaturesSel = 0;
    this.driverFeaturesSel = 0;
    this.driverFeatures = 0n;
    this.queueSel = 0;
    this.shmSel = 0;
    this.isr = 0;
    this.irq.set(false);
  }

  /** Counters of the transport and the device, flat, for stats. */
  stats(): Record<string, number> {
    return { ...this.metrics, ...(this.device?.metrics ?? {}) };
  }

  saveState(): VirtioMmioState {
    return {
      version: 1,
      status: this.status,
      needsReset: this.needsReset,
      deviceFeaturesSel: this.deviceFeaturesSel,
      driverFeaturesSel: this.driverFeaturesSel,
      driverFeatures: this.driverFeatures.toString(),
      queueSel: this.queueSel,
      shmSel: this.shmSel,
      interruptStatus: this.isr,
      configGeneration: this.configGeneration,
      queues: this.queues.map((q) => q.saveState()),
      device: this.device?.saveState(),
    };
  }

  restoreState(s: VirtioMmioState): void {
    if (s.version !== 1) throw new Error(`${this.name}: unsupported state version ${s.version}`);
    if (s.queues.length !== this.queues.length) {
      throw new Error(`${this.name}: saved state has ${s.queues.length} queues`);
    }
    this.status = s.status;
    this.needsReset = s.needsReset;
    this.deviceFeaturesSel = s.deviceFeaturesSel;
    this.driverFeaturesSel = s.driverFeaturesSel;
    this.driverFeatures = BigInt(s.driverFeatures);
    this.queueSel = s.queueSel;
    this.shmSel = s.shmSel;
    this.isr = s.interruptStatus;
    this.configGeneration = s.configGeneration;
    s.queues.forEach((qs, i) => {
      const err = this.queues[i].restoreState(qs, this.has(F.eventIdx), this.has(F.indirectDesc));
      if (err) throw new Error(`${this.name}: ${err}`);
      this.queues[i].halted = this.needsReset;
    });
    if (this.device) {
      this.device.restoreState(s.device);
      if (this.status & STATUS.driverOk) this.device.activate(this.ctx);
    }
    this.irq.set(this.isr !== 0);
  }
}
