/**
 * virtio over PCI (virtio 1.2 §4.1), modern only: a PCI function with vendor 0x1AF4 and device
 * ID 0x1040 + the virtio device ID, plugged into the PCIe host bridge (devices/pci) like the
 * e1000. There is no legacy I/O BAR, so only VERSION_1 drivers bind (as with virtio-mmio).
 *
 * One 16 KiB memory BAR (BAR0) holds the four structures the vendor-specific capabilities point
 * at, one 4 KiB page each:
 *
 *   0x0000 common configuration   features, status, queue select / size / enable / addresses
 *   0x1000 ISR status             one byte; reading it returns and clears the bits (INTx low)
 *   0x2000 device configuration   the device model's config space (MAC, link status...)
 *   0x3000 notifications          queue n is kicked by a write at 0x3000 + n·4
 *                                 (queue_notify_off = n, notify_off_multiplier = 4)
 *
 * plus the PCI_CFG capability, a window in configuration space through which a driver can reach
 * the BAR without mapping it (the spec requires it; Linux does not use it).
 *
 * Interrupts are INTx (pin A, a PLIC source after the host bridge's swizzle): the PLIC has no
 * MSI controller behind it and the host bridge no MSI doorbell, so the function has no MSI-X
 * capability and Linux's virtio_pci falls back to one shared INTx line, reading the ISR byte in
 * its handler. The vector fields of the common configuration read NO_VECTOR.
 *
 * Everything virtio-specific beyond the register layout (negotiation, status, queue setup and
 * its checks, NEEDS_RESET, reset) is the shared VirtioTransportCore, as for virtio-mmio.
 */
import { hex, type LogSink } from '../platform/guest-log.js';
import type { MmioDevice } from '../platform/mmio.js';
import { PciFunction, type PciFunctionState } from '../pci/function.js';
import {
  DEVICE_ID,
  F,
  PCI_CAP,
  PCI_COMMON,
  PCI_DEVICE_ID_BASE,
  PCI_NO_VECTOR,
  PCI_VENDOR_VIRTIO,
} from './constants.js';
import type { VirtioDevice } from './device.js';
import type { Virtqueue } from './queue.js';
import type { RingProcessor } from './ring.js';
import {
  VirtioTransportCore,
  type QueueAddress,
  type VirtioCoreState,
  type VirtioTransportMetrics,
} from './transport-core.js';

/** The BAR holding the structures, its size and where each structure sits in it. */
export const VIRTIO_PCI_BAR = 0;
export const VIRTIO_PCI_LAYOUT = {
  common: 0x0000,
  isr: 0x1000,
  device: 0x2000,
  notify: 0x3000,
  /** Each structure's page. */
  page: 0x1000,
  barSize: 0x4000,
} as const;
/** Queue n's notification address is notify + n · this. */
export const NOTIFY_OFF_MULTIPLIER = 4;

/** PCI class codes (class, subclass, prog-if) by virtio device type. */
const CLASS_CODES: Record<number, number> = {
  [DEVICE_ID.net]: 0x02_00_00, // Ethernet controller
  [DEVICE_ID.blk]: 0x01_80_00, // other mass storage controller
  [DEVICE_ID.console]: 0x07_80_00, // other communication controller
};
const CLASS_OTHER = 0xff_00_00; // unassigned class

export interface VirtioPciState {
  version: 1;
  core: VirtioCoreState;
  pci: PciFunctionState;
}

export interface VirtioPciOptions {
  device: VirtioDevice;
  rings: RingProcessor;
  /** Offer packed rings (VIRTIO_F_RING_PACKED, QEMU's `packed=on`). */
  packed?: boolean;
  log?: LogSink;
}

/** The ring address fields of the common configuration: which address, which half. */
const ADDRESS_FIELDS: Record<number, [QueueAddress, boolean]> = {
  [PCI_COMMON.queueDescLow]: ['desc', false],
  [PCI_COMMON.queueDescHigh]: ['desc', true],
  [PCI_COMMON.queueDriverLow]: ['avail', false],
  [PCI_COMMON.queueDriverHigh]: ['avail', true],
  [PCI_COMMON.queueDeviceLow]: ['used', false],
  [PCI_COMMON.queueDeviceHigh]: ['used', true],
};

/** Width of each common configuration field (64-bit addresses are accessed as two halves). */
const FIELD_SIZE: Record<number, number> = {
  [PCI_COMMON.deviceFeatureSelect]: 4,
  [PCI_COMMON.deviceFeature]: 4,
  [PCI_COMMON.driverFeatureSelect]: 4,
  [PCI_COMMON.driverFeature]: 4,
  [PCI_COMMON.configMsixVector]: 2,
  [PCI_COMMON.numQueues]: 2,
  [PCI_COMMON.deviceStatus]: 1,
  [PCI_COMMON.configGeneration]: 1,
  [PCI_COMMON.queueSelect]: 2,
  [PCI_COMMON.queueSize]: 2,
  [PCI_COMMON.queueMsixVector]: 2,
  [PCI_COMMON.queueEnable]: 2,
  [PCI_COMMON.queueNotifyOff]: 2,
  [PCI_COMMON.queueDescLow]: 4,
  [PCI_COMMON.queueDescHigh]: 4,
  [PCI_COMMON.queueDriverLow]: 4,
  [PCI_COMMON.queueDriverHigh]: 4,
  [PCI_COMMON.queueDeviceLow]: 4,
  [PCI_COMMON.queueDeviceHigh]: 4,
  [PCI_COMMON.queueNotifyData]: 2,
  [PCI_COMMON.queueReset]: 2,
  [PCI_COMMON.adminQueueIndex]: 2,
  [PCI_COMMON.adminQueueNum]: 2,
};

/** A virtio_pci_cap body (the bytes after cap_vndr and cap_next), little-endian. */
function capBody(cfgType: number, offset: number, length: number, extra: number[] = []): number[] {
  const le32 = (v: number): number[] => [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, v >>> 24];
  const capLen = 16 + extra.length;
  return [capLen, cfgType, VIRTIO_PCI_BAR, 0, 0, 0, ...le32(offset), ...le32(length), ...extra];
}

/** Body offsets of the PCI_CFG capability's driver-written fields and its data window. */
const PCI_CFG_BAR = 2;
const PCI_CFG_OFFSET = 6;
const PCI_CFG_LENGTH = 10;
const PCI_CFG_DATA = 14;

export class VirtioPciTransport {
  readonly name: string;
  readonly core: VirtioTransportCore;
  /** The function to plug into the host bridge. */
  readonly pci: PciFunction;
  /** What BAR0 decodes, once the guest assigned and enabled it. */
  private readonly bar: MmioDevice;

  constructor(o: VirtioPciOptions) {
    const dev = o.device;
    this.name = dev.name;
    const id = PCI_DEVICE_ID_BASE + dev.deviceId;
    const L = VIRTIO_PCI_LAYOUT;
    this.bar = {
      name: dev.name,
      read: (off, size) => this.readBar(off, size),
      write: (off, size, v) => this.writeBar(off, size, v),
    };
    this.pci = new PciFunction({
      name: dev.name,
      vendorId: PCI_VENDOR_VIRTIO,
      deviceId: id,
      // Revision 1 and a subsystem ID ≥ 0x40 mark a non-transitional (modern-only) device.
      revision: 1,
      subsystemVendorId: PCI_VENDOR_VIRTIO,
      subsystemId: id,
      classCode: CLASS_CODES[dev.deviceId] ?? CLASS_OTHER,
      interruptPin: 1,
      bars: [{ kind: 'mem32', size: L.barSize, device: this.bar }],
      capabilities: [
        { id: PCI_CAP.vendorId, body: capBody(PCI_CAP.common, L.common, PCI_COMMON.size) },
        {
          id: PCI_CAP.vendorId,
          body: capBody(
            PCI_CAP.notify,
            L.notify,
            Math.max(1, dev.queueMaxSizes.length) * NOTIFY_OFF_MULTIPLIER,
            [NOTIFY_OFF_MULTIPLIER, 0, 0, 0],
          ),
        },
        { id: PCI_CAP.vendorId, body: capBody(PCI_CAP.isr, L.isr, 1) },
        { id: PCI_CAP.vendorId, body: capBody(PCI_CAP.device, L.device, L.page) },
        {
          id: PCI_CAP.vendorId,
          body: capBody(PCI_CAP.pciCfg, 0, 0, [0, 0, 0, 0]),
          // The driver writes bar, offset and length; the data bytes are the window below.
          writable: [0, 0, 0xff, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
        },
      ],
    });
    this.core = new VirtioTransportCore({
      name: dev.name,
      rings: o.rings,
      device: dev,
      packed: o.packed,
      log: o.log,
      interruptChanged: (isr) => this.pci.setIntx(isr !== 0),
    });
    const cfgCap = this.pci.capabilityOffsets[4];
    const field = (at: number, size: number): number => this.pci.readConfig(cfgCap + 2 + at, size);
    this.pci.configWindow = {
      start: cfgCap + 2 + PCI_CFG_DATA,
      length: 4,
      read: (off, size) => {
        const len = field(PCI_CFG_LENGTH, 4);
        if (!this.cfgWindowOk(off, field(PCI_CFG_BAR, 1), field(PCI_CFG_OFFSET, 4), len)) {
          return 0;
        }
        const v = this.readBar(field(PCI_CFG_OFFSET, 4), len as 1 | 2 | 4);
        return size === 4 ? v : v & ((1 << (8 * size)) - 1);
      },
      write: (off, _size, value) => {
        const len = field(PCI_CFG_LENGTH, 4);
        if (!this.cfgWindowOk(off, field(PCI_CFG_BAR, 1), field(PCI_CFG_OFFSET, 4), len)) return;
        this.writeBar(field(PCI_CFG_OFFSET, 4), len as 1 | 2 | 4, value);
      },
    };
  }

  get device(): VirtioDevice {
    return this.core.device!;
  }
  get queues(): readonly Virtqueue[] {
    return this.core.queues;
  }
  get metrics(): VirtioTransportMetrics {
    return this.core.metrics;
  }
  get deviceStatus(): number {
    return this.core.deviceStatus;
  }

  /** The driver accepted VIRTIO_F_RING_PACKED: its queues are packed rings. */
  get packedRings(): boolean {
    return this.core.has(F.ringPacked);
  }

  /** A PCI_CFG window access must name BAR0, length 1, 2 or 4, aligned, inside the BAR. */
  private cfgWindowOk(at: number, bar: number, offset: number, len: number): boolean {
    const ok =
      at === 0 &&
      bar === VIRTIO_PCI_BAR &&
      (len === 1 || len === 2 || len === 4) &&
      offset % len === 0 &&
      offset + len <= VIRTIO_PCI_LAYOUT.barSize;
    if (!ok) {
      this.core.violation(
        `PCI_CFG window access: bar ${bar}, offset ${hex(offset)}, length ${len}`,
        false,
      );
    }
    return ok;
  }

  private readBar(off: number, size: 1 | 2 | 4): number {
    const L = VIRTIO_PCI_LAYOUT;
    const page = off - (off % L.page);
    const at = off % L.page;
    switch (page) {
      case L.common:
        return this.readCommon(at, size);
      case L.isr: {
        // Reading the ISR acknowledges it: the line drops until the next event.
        const isr = this.core.isr;
        if (at === 0) this.core.acknowledge(isr);
        return at === 0 ? isr : 0;
      }
      case L.device:
        return this.device.readConfig(at, size);
      case L.notify:
        return 0; // write-only
    }
    return 0;
  }

  private writeBar(off: number, size: 1 | 2 | 4, value: number): void {
    const L = VIRTIO_PCI_LAYOUT;
    const page = off - (off % L.page);
    const at = off % L.page;
    switch (page) {
      case L.common:
        this.writeCommon(at, size, value);
        return;
      case L.device:
        this.device.writeConfig(at, size, value);
        return;
      case L.notify:
        this.writeNotify(at, size);
        return;
    }
    this.core.violation(
      `write to read-only ${page === L.isr ? 'ISR' : 'BAR'} at ${hex(off)}`,
      false,
    );
  }

  /** A driver accesses each field with its own width; anything else is counted and ignored. */
  private fieldOk(at: number, size: number, write: boolean): boolean {
    if (FIELD_SIZE[at] === size) return true;
    this.core.violation(
      `${size}-byte ${write ? 'write' : 'read'} of common configuration at ${hex(at)}`,
      false,
    );
    return false;
  }

  private readCommon(at: number, size: number): number {
    if (!this.fieldOk(at, size, false)) return 0;
    const c = this.core;
    const q = c.selectedQueue;
    const addr = ADDRESS_FIELDS[at];
    if (addr) return q ? VirtioTransportCore.addressHalf(q, addr[0], addr[1]) : 0;
    switch (at) {
      case PCI_COMMON.deviceFeatureSelect:
        return c.deviceFeaturesSel >>> 0;
      case PCI_COMMON.deviceFeature:
        return c.deviceFeatureWord();
      case PCI_COMMON.driverFeatureSelect:
        return c.driverFeaturesSel >>> 0;
      case PCI_COMMON.driverFeature:
        return c.driverFeatureWord();
      case PCI_COMMON.configMsixVector:
      case PCI_COMMON.queueMsixVector:
        return PCI_NO_VECTOR;
      case PCI_COMMON.numQueues:
        return c.queues.length;
      case PCI_COMMON.deviceStatus:
        return c.deviceStatus;
      case PCI_COMMON.configGeneration:
        return c.configGeneration & 0xff;
      case PCI_COMMON.queueSelect:
        return c.queueSel;
      case PCI_COMMON.queueSize:
        return q?.size ?? 0; // 0: the queue does not exist
      case PCI_COMMON.queueEnable:
        return q?.ready ? 1 : 0;
      case PCI_COMMON.queueNotifyOff:
        return q ? q.index : 0;
    }
    return 0; // notify data, queue reset, admin queue: features not offered
  }

  private writeCommon(at: number, size: number, value: number): void {
    if (!this.fieldOk(at, size, true)) return;
    const c = this.core;
    const addr = ADDRESS_FIELDS[at];
    if (addr) {
      const q = c.configurableQueue(`queue address ${hex(at)}`);
      if (q) VirtioTransportCore.setAddressHalf(q, addr[0], addr[1], value);
      return;
    }
    switch (at) {
      case PCI_COMMON.deviceFeatureSelect:
        c.deviceFeaturesSel = value >>> 0;
        return;
      case PCI_COMMON.driverFeatureSelect:
        c.driverFeaturesSel = value >>> 0;
        return;
      case PCI_COMMON.driverFeature:
        c.writeDriverFeatureWord(value);
        return;
      case PCI_COMMON.configMsixVector:
      case PCI_COMMON.queueMsixVector:
        return; // no MSI-X: the field keeps reading NO_VECTOR, which tells the driver
      case PCI_COMMON.deviceStatus:
        c.writeStatus(value & 0xff);
        return;
      case PCI_COMMON.queueSelect:
        c.queueSel = value & 0xffff;
        return;
      case PCI_COMMON.queueSize: {
        const q = c.configurableQueue('queue_size');
        if (q) q.size = value & 0xffff;
        return;
      }
      case PCI_COMMON.queueEnable: {
        const q = c.selectedQueue;
        if (!q) c.violation(`queue_enable for queue ${c.queueSel}, which does not exist`, false);
        // Writing 0 is forbidden to the driver (queues are disabled by a device reset).
        else if ((value & 1) === 0) c.violation(`queue ${q.index}: queue_enable = 0`, false);
        else c.enableQueue(q);
        return;
      }
      case PCI_COMMON.queueReset:
        return; // VIRTIO_F_RING_RESET is not offered
    }
    c.violation(`write of read-only common configuration field ${hex(at)}`, false);
  }

  /** The address names the queue (queue_notify_off · multiplier); the value is not needed. */
  private writeNotify(at: number, size: number): void {
    if (at % NOTIFY_OFF_MULTIPLIER !== 0 || size === 1) {
      this.core.metrics.queue_notifies++;
      this.core.metrics.notifies_ignored++;
      this.core.violation(`${size}-byte notify at ${hex(at)}`, false);
      return;
    }
    this.core.notify(at / NOTIFY_OFF_MULTIPLIER);
  }

  /** The device's configuration changed: new generation, and a config interrupt after DRIVER_OK. */
  configChanged(): void {
    this.core.configChanged();
  }

  /** System reset: the virtio device and the PCI function back to power-on. */
  reset(): void {
    this.core.reset();
    this.pci.reset();
  }

  /** Counters of the transport and the device, flat, for stats. */
  stats(): Record<string, number> {
    return this.core.stats();
  }

  saveState(): VirtioPciState {
    return { version: 1, core: this.core.saveState(), pci: this.pci.saveState() };
  }

  restoreState(s: VirtioPciState): void {
    if (s?.version !== 1) throw new Error(`${this.name}: unsupported state version`);
    this.pci.restoreState(s.pci);
    this.core.restoreState(s.core);
  }
}
