/**
 * What every virtio transport does the same way, whatever its registers look like (virtio 1.2
 * §2, §3): feature negotiation, the device status state machine, queue configuration and
 * enabling, notifications, the interrupt status bits, configuration changes, NEEDS_RESET and
 * device reset. virtio-mmio (`mmio-transport.ts`) and virtio-pci (`pci/transport.ts`) each map
 * their register layout onto this and decide how the interrupt reaches the guest (a PLIC line,
 * a PCI INTx pin).
 *
 * A driver that breaks the protocol (features changed after FEATURES_OK, queue registers
 * changed while the queue is live, a malformed ring...) puts the device in NEEDS_RESET:
 * counted, logged, and the driver is told through a configuration-change interrupt once
 * DRIVER_OK was set. Nothing the guest writes throws.
 */
import { GuestErrorLog, hex, type LogSink } from '../platform/guest-log.js';
import { STATUS, ISR_USED_BUFFER, ISR_CONFIG_CHANGE, F, bit } from './constants.js';
import type { VirtioContext, VirtioDevice } from './device.js';
import { Virtqueue, type QueueState, type RingFormat } from './queue.js';
import type { RingProcessor } from './ring.js';

/** Ring/transport features every device gets on top of its own. */
export const TRANSPORT_FEATURES = bit(F.version1) | bit(F.eventIdx) | bit(F.indirectDesc);

/** Transport counters; the bus counts the MMIO exits themselves. */
export interface VirtioTransportMetrics {
  [name: string]: number;
  /** Notifications (kicks) from the driver. */
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

/** The transport-independent part of a transport's saved state. */
export interface VirtioCoreState {
  status: number;
  needsReset: boolean;
  deviceFeaturesSel: number;
  driverFeaturesSel: number;
  /** Accepted features as a decimal string (JSON has no 64-bit integers). */
  driverFeatures: string;
  queueSel: number;
  interruptStatus: number;
  configGeneration: number;
  queues: QueueState[];
  device: unknown;
}

export interface VirtioTransportCoreOptions {
  /** Name in logs ("virtio-net0", "virtio-mmio3"). */
  name: string;
  rings: RingProcessor;
  device?: VirtioDevice;
  /**
   * Offer VIRTIO_F_RING_PACKED (QEMU's `packed=on`): a driver that accepts it lays its queues
   * out as packed rings. Absent: split rings only, as QEMU's default.
   */
  packed?: boolean;
  log?: LogSink;
  /** The interrupt status changed: the transport drives its line (high while non-zero). */
  interruptChanged(isr: number): void;
}

/** Which ring address register a transport's write goes to. */
export type QueueAddress = 'desc' | 'avail' | 'used';

export class VirtioTransportCore {
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

  /** Status as the driver wrote it (NEEDS_RESET is kept apart). */
  status = 0;
  needsReset = false;
  deviceFeaturesSel = 0;
  driverFeaturesSel = 0;
  driverFeatures = 0n;
  /** Queue select, as written (may name a queue that does not exist). */
  queueSel = 0;
  isr = 0;
  configGeneration = 0;

  private readonly log: GuestErrorLog;
  private readonly ctx: VirtioContext;
  private readonly interruptChanged: (isr: number) => void;

  constructor(o: VirtioTransportCoreOptions) {
    this.name = o.name;
    this.device = o.device;
    this.interruptChanged = o.interruptChanged;
    this.log = new GuestErrorLog(o.name, o.log);
    // ACCESS_PLATFORM stays off: the device sees guest-physical addresses (no IOMMU).
    this.offeredFeatures = o.device
      ? (o.device.features | TRANSPORT_FEATURES | (o.packed ? bit(F.ringPacked) : 0n)) &
        ~bit(F.accessPlatform)
      : 0n;
    const sizes = o.device?.queueMaxSizes ?? [];
    for (const s of sizes) {
      if (!Number.isInteger(s) || s < 1 || s > o.rings.maxQueueSize) {
        throw new RangeError(`${o.name}: queue size ${s} outside 1..${o.rings.maxQueueSize}`);
      }
    }
    const h = sizes.length ? o.rings.allocate(sizes.length) : 0;
    this.queues = sizes.map((max, i) => {
      const q = new Virtqueue(o.rings, i, h + i, max);
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
    if (o.device) o.device.onConfigChange = () => this.configChanged();
  }

  /** Status as the driver reads it. */
  get deviceStatus(): number {
    return this.status | (this.needsReset ? STATUS.needsReset : 0);
  }

  /** The queue QueueSel names, if it exists. */
  get selectedQueue(): Virtqueue | undefined {
    return this.queues[this.queueSel];
  }

  has(f: number): boolean {
    return (this.driverFeatures & bit(f)) !== 0n;
  }

  /** The ring layout the accepted features ask for. */
  get ringFormat(): RingFormat {
    return {
      eventIdx: this.has(F.eventIdx),
      indirect: this.has(F.indirectDesc),
      packed: this.has(F.ringPacked),
    };
  }

  /** The 32 offered feature bits DeviceFeaturesSel selects (0 beyond the second word). */
  deviceFeatureWord(): number {
    if (this.deviceFeaturesSel > 1) return 0;
    return Number((this.offeredFeatures >> BigInt(32 * this.deviceFeaturesSel)) & 0xffff_ffffn);
  }

  /** The 32 accepted feature bits DriverFeaturesSel selects. */
  driverFeatureWord(): number {
    if (this.driverFeaturesSel > 1) return 0;
    return Number((this.driverFeatures >> BigInt(32 * this.driverFeaturesSel)) & 0xffff_ffffn);
  }

  writeDriverFeatureWord(value: number): void {
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
  }

  /**
   * The selected queue, if the driver may change its configuration now: it must exist and not
   * be live (changing a live queue is NEEDS_RESET). `what` names the register in the log.
   */
  configurableQueue(what: string): Virtqueue | undefined {
    const q = this.selectedQueue;
    if (!q) {
      this.violation(`${what} written for queue ${this.queueSel}, which does not exist`, false);
      return undefined;
    }
    if (q.ready) {
      this.violation(`queue ${q.index} reconfigured while ready`, true);
      return undefined;
    }
    return q;
  }

  /** Writes 32 bits of a ring address: `high` selects bits 32..63. */
  static setAddressHalf(q: Virtqueue, which: QueueAddress, high: boolean, value: number): void {
    const v = value >>> 0;
    const old = q[which];
    const lo = old % 0x1_0000_0000;
    q[which] = high ? lo + v * 0x1_0000_0000 : old - lo + v;
  }

  /** Reads 32 bits of a ring address. */
  static addressHalf(q: Virtqueue, which: QueueAddress, high: boolean): number {
    const v = q[which];
    return high ? Math.floor(v / 0x1_0000_0000) >>> 0 : v >>> 0;
  }

  /** QueueReady / queue_enable = 1: activates the selected queue's ring. */
  enableQueue(q: Virtqueue): void {
    if (q.ready) return;
    if (!(this.status & STATUS.featuresOk)) {
      this.violation(`queue ${q.index} enabled before FEATURES_OK`, true);
      return;
    }
    const err = q.enable(this.ringFormat, true);
    if (err) this.violation(err, true);
  }

  writeStatus(value: number): void {
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

  /** The driver notified queue `index`. */
  notify(index: number): void {
    this.metrics.queue_notifies++;
    const q = this.queues[index];
    if (!(this.status & STATUS.driverOk) || this.needsReset || !q || !q.ready) {
      this.metrics.notifies_ignored++;
      if (!q || !q.ready) this.log.report(`notify on queue ${index}, which is not set up`);
      return;
    }
    this.device!.notify(index);
  }

  /** Clears interrupt status bits (virtio-mmio's InterruptACK; virtio-pci's ISR read). */
  acknowledge(bits: number): void {
    this.isr &= ~bits;
    this.interruptChanged(this.isr);
  }

  private signalUsed(q: Virtqueue): void {
    if (this.needsReset || !(this.status & STATUS.driverOk)) return;
    if (!q.publish()) return;
    this.metrics.interrupts++;
    this.isr |= ISR_USED_BUFFER;
    this.interruptChanged(this.isr);
  }

  /** The device's configuration changed: new generation, and a config interrupt after DRIVER_OK. */
  configChanged(): void {
    this.configGeneration = (this.configGeneration + 1) >>> 0;
    if (this.status & STATUS.driverOk) this.configInterrupt();
  }

  private configInterrupt(): void {
    this.metrics.config_interrupts++;
    this.isr |= ISR_CONFIG_CHANGE;
    this.interruptChanged(this.isr);
  }

  /** The guest did something wrong: counted and logged; `needsReset` also stops the device. */
  violation(why: string, needsReset: boolean): void {
    if (needsReset) this.fail(why);
    else {
      this.metrics.errors++;
      this.log.report(why);
    }
  }

  /** The guest broke the protocol; NEEDS_RESET stops the device until the driver resets it. */
  fail(why: string): void {
    this.metrics.errors++;
    if (this.needsReset) return;
    this.log.report(`${why}: device needs reset`);
    this.needsReset = true;
    this.metrics.needs_reset++;
    for (const q of this.queues) q.halted = true;
    if (this.status & STATUS.driverOk) this.configInterrupt();
  }

  /** Device reset: the state after power-on, as the driver's write of 0 to the status asks. */
  reset(): void {
    this.device?.reset();
    for (const q of this.queues) q.reset();
    this.status = 0;
    this.needsReset = false;
    this.deviceFeaturesSel = 0;
    this.driverFeaturesSel = 0;
    this.driverFeatures = 0n;
    this.queueSel = 0;
    this.isr = 0;
    this.interruptChanged(0);
  }

  /** Counters of the transport and the device, flat, for stats. */
  stats(): Record<string, number> {
    return { ...this.metrics, ...(this.device?.metrics ?? {}) };
  }

  saveState(): VirtioCoreState {
    return {
      status: this.status,
      needsReset: this.needsReset,
      deviceFeaturesSel: this.deviceFeaturesSel,
      driverFeaturesSel: this.driverFeaturesSel,
      driverFeatures: this.driverFeatures.toString(),
      queueSel: this.queueSel,
      interruptStatus: this.isr,
      configGeneration: this.configGeneration,
      queues: this.queues.map((q) => q.saveState()),
      device: this.device?.saveState(),
    };
  }

  restoreState(s: VirtioCoreState): void {
    if (s.queues.length !== this.queues.length) {
      throw new Error(`${this.name}: saved state has ${s.queues.length} queues`);
    }
    this.status = s.status;
    this.needsReset = s.needsReset;
    this.deviceFeaturesSel = s.deviceFeaturesSel;
    this.driverFeaturesSel = s.driverFeaturesSel;
    this.driverFeatures = BigInt(s.driverFeatures);
    this.queueSel = s.queueSel;
    this.isr = s.interruptStatus;
    this.configGeneration = s.configGeneration;
    s.queues.forEach((qs, i) => {
      const err = this.queues[i].restoreState(qs, this.ringFormat);
      if (err) throw new Error(`${this.name}: ${err}`);
      this.queues[i].halted = this.needsReset;
    });
    if (this.device) {
      this.device.restoreState(s.device);
      if (this.status & STATUS.driverOk) this.device.activate(this.ctx);
    }
    this.interruptChanged(this.isr);
  }
}
