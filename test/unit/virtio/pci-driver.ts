/**
 * A mock virtio-pci driver for unit tests, played like Linux's virtio_pci_modern: it finds the
 * vendor capabilities by walking the PCI capability list through ECAM, sizes and assigns the
 * BAR they name, enables memory decoding and bus mastering, and negotiates through the common
 * configuration in that BAR. Rings live in a real core's RAM (driver.ts's GuestMemory and
 * DriverQueue), so the device under test walks them exactly as in a VM.
 */
import { MmioBus } from '../../../devices/platform/bus.js';
import { VIRT } from '../../../devices/platform/memory-map.js';
import { PciHost } from '../../../devices/pci/host.js';
import { CFG, CMD_BUS_MASTER, CMD_MEMORY } from '../../../devices/pci/function.js';
import { RingProcessor } from '../../../devices/virtio/ring.js';
import { VirtioPciTransport } from '../../../devices/virtio/pci-transport.js';
import { PCI_CAP, PCI_COMMON as C, STATUS } from '../../../devices/virtio/constants.js';
import type { VirtioDevice } from '../../../devices/virtio/device.js';
import { FakeLine, logSink } from '../platform/helpers.js';
import { DriverQueue, GuestMemory, testCore, type DriverOptions } from './driver.js';

export const SLOT = 1;
export const BAR_BASE = VIRT.pcieMmio.base + 0x10_0000;

/** One virtio_pci_cap as the driver reads it from configuration space. */
export interface VirtioCap {
  /** Offset of the capability in configuration space. */
  at: number;
  cfgType: number;
  capLen: number;
  bar: number;
  offset: number;
  length: number;
  /** NOTIFY only. */
  multiplier?: number;
}

export class PciMockDriver {
  readonly core = testCore();
  readonly mem = new GuestMemory(this.core);
  readonly rings = new RingProcessor(this.core);
  readonly bus = new MmioBus();
  readonly lines = new Map<number, FakeLine>();
  readonly log = logSink();
  readonly host: PciHost;
  readonly transport: VirtioPciTransport;
  caps: VirtioCap[] = [];
  queues: DriverQueue[] = [];

  constructor(readonly device: VirtioDevice) {
    this.host = new PciHost({
      bus: this.bus,
      irq: (n) => {
        const l = new FakeLine();
        this.lines.set(n, l);
        return l;
      },
      log: this.log.sink,
    });
    this.bus.map(VIRT.pcieEcam.base, VIRT.pcieEcam.size, this.host);
    this.transport = new VirtioPciTransport({ device, rings: this.rings, log: this.log.sink });
    this.host.plug(SLOT, this.transport.pci);
  }

  /** The INTx line pin A of our slot drives. */
  get irq(): FakeLine {
    return this.lines.get(PciHost.irqOf(SLOT, 1))!;
  }

  cfgRead(reg: number, size: 1 | 2 | 4): number {
    return this.bus.read(VIRT.pcieEcam.base + (SLOT << 15) + reg, size);
  }
  cfgWrite(reg: number, size: 1 | 2 | 4, v: number): void {
    this.bus.write(VIRT.pcieEcam.base + (SLOT << 15) + reg, size, v);
  }

  /** Walks the capability list and keeps the virtio ones. */
  findCaps(): VirtioCap[] {
    const caps: VirtioCap[] = [];
    let at = this.cfgRead(CFG.capPtr, 1);
    for (let n = 0; at && n < 48; n++) {
      if (this.cfgRead(at, 1) === PCI_CAP.vendorId) {
        const cap: VirtioCap = {
          at,
          capLen: this.cfgRead(at + 2, 1),
          cfgType: this.cfgRead(at + 3, 1),
          bar: this.cfgRead(at + 4, 1),
          offset: this.cfgRead(at + 8, 4),
          length: this.cfgRead(at + 12, 4),
        };
        if (cap.cfgType === PCI_CAP.notify) cap.multiplier = this.cfgRead(at + 16, 4);
        caps.push(cap);
      }
      at = this.cfgRead(at + 1, 1);
    }
    return caps;
  }

  cap(type: number): VirtioCap {
    const c = this.caps.find((x) => x.cfgType === type);
    if (!c) throw new Error(`no virtio capability of type ${type}`);
    return c;
  }

  /** Sizes the BAR, puts it at BAR_BASE and enables memory decoding and bus mastering. */
  probe(): this {
    this.caps = this.findCaps();
    const bar = this.cap(PCI_CAP.common).bar;
    const reg = CFG.bar0 + 4 * bar;
    this.cfgWrite(reg, 4, 0xffff_ffff);
    const size = ~(this.cfgRead(reg, 4) & 0xffff_fff0) + 1;
    if (size <= 0) throw new Error('BAR reads back no size');
    this.cfgWrite(reg, 4, BAR_BASE);
    this.cfgWrite(CFG.command, 2, CMD_MEMORY | CMD_BUS_MASTER);
    return this;
  }

  /** Address of `off` in the structure of capability `type`. */
  addr(type: number, off: number): number {
    const c = this.cap(type);
    return BAR_BASE + c.offset + off;
  }
  read(off: number, size: 1 | 2 | 4): number {
    return this.bus.read(this.addr(PCI_CAP.common, off), size);
  }
  write(off: number, size: 1 | 2 | 4, v: number): void {
    this.bus.write(this.addr(PCI_CAP.common, off), size, v);
  }
  get status(): number {
    return this.read(C.deviceStatus, 1);
  }
  set status(v: number) {
    this.write(C.deviceStatus, 1, v);
  }
  get needsReset(): boolean {
    return (this.status & STATUS.needsReset) !== 0;
  }

  offeredFeatures(): bigint {
    this.write(C.deviceFeatureSelect, 4, 0);
    const lo = BigInt(this.read(C.deviceFeature, 4));
    this.write(C.deviceFeatureSelect, 4, 1);
    const hi = BigInt(this.read(C.deviceFeature, 4));
    return lo | (hi << 32n);
  }

  writeFeatures(f: bigint): void {
    this.write(C.driverFeatureSelect, 4, 0);
    this.write(C.driverFeature, 4, Number(f & 0xffff_ffffn));
    this.write(C.driverFeatureSelect, 4, 1);
    this.write(C.driverFeature, 4, Number(f >> 32n));
  }

  /** virtio_pci_modern's probe and virtio's: reset, ACK, DRIVER, features, queues, DRIVER_OK. */
  init(opts: DriverOptions = {}): this {
    if (!this.caps.length) this.probe();
    this.status = 0;
    this.status = STATUS.acknowledge;
    this.status = STATUS.acknowledge | STATUS.driver;
    const offered = this.offeredFeatures();
    this.writeFeatures(opts.accept ? opts.accept(offered) : offered);
    this.status = STATUS.acknowledge | STATUS.driver | STATUS.featuresOk;
    if (!(this.status & STATUS.featuresOk)) throw new Error('device refused the features');
    const n = this.read(C.numQueues, 2);
    this.queues = [];
    for (let i = 0; i < n; i++) {
      this.write(C.queueSelect, 2, i);
      const max = this.read(C.queueSize, 2);
      const q = new DriverQueue(this.mem, i, opts.queueSizes?.[i] ?? max);
      this.setupQueue(q);
      this.queues.push(q);
    }
    this.status = STATUS.acknowledge | STATUS.driver | STATUS.featuresOk | STATUS.driverOk;
    return this;
  }

  setupQueue(q: DriverQueue, enable = true): void {
    this.write(C.queueSelect, 2, q.index);
    this.write(C.queueSize, 2, q.size);
    this.write(C.queueDescLow, 4, q.desc);
    this.write(C.queueDescHigh, 4, 0);
    this.write(C.queueDriverLow, 4, q.avail);
    this.write(C.queueDriverHigh, 4, 0);
    this.write(C.queueDeviceLow, 4, q.used);
    this.write(C.queueDeviceHigh, 4, 0);
    if (enable) this.write(C.queueEnable, 2, 1);
  }

  /** Kicks queue `index` at its notification address, as vp_notify does (16-bit index). */
  kick(index = 0): void {
    this.write(C.queueSelect, 2, index);
    const off = this.read(C.queueNotifyOff, 2);
    const mul = this.cap(PCI_CAP.notify).multiplier!;
    this.bus.write(this.addr(PCI_CAP.notify, off * mul), 2, index);
  }

  /** The interrupt handler's ISR read (which acknowledges). */
  readIsr(): number {
    return this.bus.read(this.addr(PCI_CAP.isr, 0), 1);
  }
}
