/**
 * virtio-mmio, version 2 ("modern", virtio 1.2 §4.2): one 4 KiB register window per slot of the
 * virt board (0x10001000 + n·0x1000, PLIC source 1 + n). A slot without a device answers magic,
 * version and vendor with device ID 0, as QEMU's empty transports do, so that the DTB can list
 * all eight slots and Linux skips the empty ones.
 *
 * This file is the register map only; feature negotiation, the status machine, queue setup,
 * notifications, interrupts and NEEDS_RESET are the shared `VirtioTransportCore`
 * (transport-core.ts), which virtio-pci uses as well.
 */
import { hex, type LogSink } from '../platform/guest-log.js';
import type { IrqLine, MmioDevice } from '../platform/mmio.js';
import { F, MMIO, MMIO_MAGIC, MMIO_VENDOR_QEMU } from './constants.js';
import type { VirtioDevice } from './device.js';
import type { Virtqueue, QueueState } from './queue.js';
import type { RingProcessor } from './ring.js';
import {
  VirtioTransportCore,
  type QueueAddress,
  type VirtioTransportMetrics,
} from './transport-core.js';

export { TRANSPORT_FEATURES, type VirtioTransportMetrics } from './transport-core.js';

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

export interface VirtioMmioOptions {
  /** Slot number, used in the name of an empty transport ("virtio-mmio3"). */
  slot: number;
  irq: IrqLine;
  rings: RingProcessor;
  device?: VirtioDevice;
  /** Offer packed rings (VIRTIO_F_RING_PACKED, QEMU's `packed=on`). */
  packed?: boolean;
  log?: LogSink;
}

/** The ring address registers: which address, which half. */
const ADDRESS_REGS: Record<number, [QueueAddress, boolean]> = {
  [MMIO.queueDescLow]: ['desc', false],
  [MMIO.queueDescHigh]: ['desc', true],
  [MMIO.queueDriverLow]: ['avail', false],
  [MMIO.queueDriverHigh]: ['avail', true],
  [MMIO.queueDeviceLow]: ['used', false],
  [MMIO.queueDeviceHigh]: ['used', true],
};

export class VirtioMmioTransport implements MmioDevice {
  readonly name: string;
  readonly core: VirtioTransportCore;
  private shmSel = 0;

  constructor(opts: VirtioMmioOptions) {
    this.name = opts.device?.name ?? `virtio-mmio${opts.slot}`;
    this.core = new VirtioTransportCore({
      name: this.name,
      rings: opts.rings,
      device: opts.device,
      packed: opts.packed,
      log: opts.log,
      interruptChanged: (isr) => opts.irq.set(isr !== 0),
    });
  }

  get device(): VirtioDevice | undefined {
    return this.core.device;
  }
  get queues(): readonly Virtqueue[] {
    return this.core.queues;
  }
  get metrics(): VirtioTransportMetrics {
    return this.core.metrics;
  }
  get offeredFeatures(): bigint {
    return this.core.offeredFeatures;
  }
  /** The features the driver accepted (valid once FEATURES_OK is set). */
  get features(): bigint {
    return this.core.driverFeatures;
  }
  get deviceStatus(): number {
    return this.core.deviceStatus;
  }

  /** The driver accepted VIRTIO_F_RING_PACKED: its queues are packed rings. */
  get packedRings(): boolean {
    return this.core.has(F.ringPacked);
  }

  read(offset: number, size: 1 | 2 | 4): number {
    const c = this.core;
    if (offset >= MMIO.config) {
      if (!c.device) return 0;
      return c.device.readConfig(offset - MMIO.config, size);
    }
    if (size !== 4 || offset & 3) {
      c.violation(`${size}-byte read of register ${hex(offset)} (registers are 32-bit)`, false);
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
    const dev = c.device;
    if (!dev) return 0; // an empty slot: device ID 0 and nothing else
    const addr = ADDRESS_REGS[offset];
    if (addr) {
      // Readable in version 2 (the spec lists them R/W).
      const q = c.selectedQueue;
      return q ? VirtioTransportCore.addressHalf(q, addr[0], addr[1]) : 0;
    }
    switch (offset) {
      case MMIO.deviceId:
        return dev.deviceId;
      case MMIO.deviceFeatures:
        return c.deviceFeatureWord();
      case MMIO.queueNumMax:
        return c.selectedQueue?.maxSize ?? 0;
      case MMIO.queueReady:
        return c.selectedQueue?.ready ? 1 : 0;
      case MMIO.interruptStatus:
        return c.isr;
      case MMIO.status:
        return c.deviceStatus;
      case MMIO.shmLenLow:
      case MMIO.shmLenHigh:
      case MMIO.shmBaseLow:
      case MMIO.shmBaseHigh:
        return 0xffff_ffff; // no shared memory regions: length -1 means "absent"
      case MMIO.queueReset:
        return 0;
      case MMIO.configGeneration:
        return c.configGeneration;
    }
    c.violation(`read of unknown or write-only register ${hex(offset)}`, false);
    return 0;
  }

  write(offset: number, size: 1 | 2 | 4, value: number): void {
    const c = this.core;
    const dev = c.device;
    if (offset >= MMIO.config) {
      if (dev) dev.writeConfig(offset - MMIO.config, size, value);
      return;
    }
    if (size !== 4 || offset & 3) {
      c.violation(`${size}-byte write of register ${hex(offset)} (registers are 32-bit)`, false);
      return;
    }
    if (!dev) return; // writes to an empty slot go nowhere
    const addr = ADDRESS_REGS[offset];
    if (addr) {
      const q = c.configurableQueue(`queue register ${hex(offset)}`);
      if (q) VirtioTransportCore.setAddressHalf(q, addr[0], addr[1], value);
      return;
    }
    switch (offset) {
      case MMIO.deviceFeaturesSel:
        c.deviceFeaturesSel = value;
        return;
      case MMIO.driverFeaturesSel:
        c.driverFeaturesSel = value;
        return;
      case MMIO.driverFeatures:
        c.writeDriverFeatureWord(value);
        return;
      case MMIO.queueSel:
        c.queueSel = value;
        return;
      case MMIO.queueNum: {
        const q = c.configurableQueue('QueueNum');
        if (q) q.size = value >>> 0;
        return;
      }
      case MMIO.queueReady: {
        const q = c.selectedQueue;
        if (!q) c.violation(`QueueReady for queue ${c.queueSel}`, false);
        else if ((value & 1) === 0) q.reset();
        else c.enableQueue(q);
        return;
      }
      case MMIO.queueNotify:
        c.notify(value & 0xffff);
        return;
      case MMIO.interruptAck:
        c.acknowledge(value);
        return;
      case MMIO.status:
        c.writeStatus(value & 0xff);
        return;
      case MMIO.shmSel:
        this.shmSel = value;
        return;
      case MMIO.queueReset:
        return; // VIRTIO_F_RING_RESET is not offered
    }
    c.violation(`write of unknown or read-only register ${hex(offset)} = ${hex(value)}`, false);
  }

  /** The device's configuration changed: new generation, and a config interrupt after DRIVER_OK. */
  configChanged(): void {
    this.core.configChanged();
  }

  /** Device reset: the state after power-on, as the driver's write of 0 to Status asks. */
  reset(): void {
    this.core.reset();
    this.shmSel = 0;
  }

  /** Counters of the transport and the device, flat, for stats. */
  stats(): Record<string, number> {
    return this.core.stats();
  }

  saveState(): VirtioMmioState {
    return { version: 1, ...this.core.saveState(), shmSel: this.shmSel };
  }

  restoreState(s: VirtioMmioState): void {
    if (s.version !== 1) throw new Error(`${this.name}: unsupported state version ${s.version}`);
    this.core.restoreState(s);
    this.shmSel = s.shmSel;
  }
}
