/**
 * virtio-pci played like Linux's virtio_pci_modern through ECAM and the BAR: identity and
 * capabilities, negotiation, queues served after DRIVER_OK, the INTx line and the ISR read that
 * acknowledges it, the PCI_CFG window, link changes reaching a virtio-net driver, and the
 * hostile cases (odd widths and offsets, bad queues, early enable, notify of absent queues,
 * reset mid-flight), which are counted and never throw.
 */
import { describe, it, expect } from 'vitest';
import { PciMockDriver, BAR_BASE } from './pci-driver.js';
import { VirtioRng } from '../../../devices/virtio/rng/device.js';
import { VirtioNet } from '../../../devices/virtio/net/device.js';
import { NetPort } from '../../../devices/net/port.js';
import type { NetBackend } from '../../../devices/net/backend.js';
import type { NetPacket } from '../../../devices/net/packet.js';
import { CFG } from '../../../devices/pci/function.js';
import {
  PCI_CAP,
  PCI_COMMON as C,
  STATUS,
  F,
  bit,
  PCI_NO_VECTOR,
} from '../../../devices/virtio/constants.js';
import { VIRTIO_PCI_LAYOUT } from '../../../devices/virtio/pci-transport.js';
import { RAM_BASE, RAM_SIZE } from './driver.js';

const MAC = Uint8Array.from([0x52, 0x54, 0, 0x12, 0x34, 0x77]);

class FakeWire implements NetBackend {
  readonly sent: NetPacket[] = [];
  carrier = true;
  onReceive: ((p: NetPacket) => void) | undefined;
  onCarrier: ((up: boolean) => void) | undefined;
  readonly spec = 'switch:fake';
  send(p: NetPacket): void {
    this.sent.push(p);
  }
  close(): void {}
}

const rng = (): PciMockDriver => new PciMockDriver(new VirtioRng());

function net() {
  const wire = new FakeWire();
  const port = new NetPort('virtio-net0', wire, () => wire);
  const dev = new VirtioNet('virtio-net0', MAC, port, 64);
  return { d: new PciMockDriver(dev), dev, port, wire };
}

describe('virtio-pci transport', () => {
  it('is a modern-only virtio function: 1AF4:1041, revision 1, Ethernet class, INTA, no MSI-X', () => {
    const { d } = net();
    expect(d.cfgRead(CFG.vendorId, 2)).toBe(0x1af4);
    expect(d.cfgRead(CFG.deviceId, 2)).toBe(0x1041);
    expect(d.cfgRead(CFG.revision, 1)).toBe(1);
    expect(d.cfgRead(CFG.subsystemId, 2)).toBeGreaterThanOrEqual(0x40);
    expect(d.cfgRead(CFG.classCode - 1, 4) >>> 8).toBe(0x020000);
    expect(d.cfgRead(CFG.interruptPin, 1)).toBe(1);
    // Only a 32-bit memory BAR, no I/O BAR (no legacy interface).
    for (let i = 0; i < 6; i++) {
      d.cfgWrite(CFG.bar0 + 4 * i, 4, 0xffff_ffff);
      const v = d.cfgRead(CFG.bar0 + 4 * i, 4);
      if (i === 0) expect(v & 1).toBe(0);
      else expect(v).toBe(0);
    }
    // The capability list holds vendor (virtio) capabilities only: no MSI-X (id 0x11), no MSI.
    const ids: number[] = [];
    for (let at = d.cfgRead(CFG.capPtr, 1); at; at = d.cfgRead(at + 1, 1)) {
      ids.push(d.cfgRead(at, 1));
    }
    expect(new Set(ids)).toEqual(new Set([PCI_CAP.vendorId]));
    d.probe();
    const types = d.caps.map((c) => c.cfgType);
    expect(types).toEqual(
      expect.arrayContaining([
        PCI_CAP.common,
        PCI_CAP.notify,
        PCI_CAP.isr,
        PCI_CAP.device,
        PCI_CAP.pciCfg,
      ]),
    );
    expect(d.cap(PCI_CAP.common).length).toBeGreaterThanOrEqual(0x38);
    expect(d.cap(PCI_CAP.notify).capLen).toBe(20);
    expect(d.cap(PCI_CAP.notify).multiplier).toBe(4);
    for (const c of d.caps.filter((x) => x.cfgType !== PCI_CAP.pciCfg)) {
      expect(c.offset + c.length).toBeLessThanOrEqual(VIRTIO_PCI_LAYOUT.barSize);
    }
  });

  it('a virtio-net driver negotiates, reads its MAC, sends a frame and takes an interrupt', async () => {
    const { d, wire } = net();
    d.init();
    expect(d.transport.core.driverFeatures & bit(F.version1)).not.toBe(0n);
    const mac = Array.from({ length: 6 }, (_, i) => d.bus.read(d.addr(PCI_CAP.device, i), 1));
    expect(mac).toEqual(Array.from(MAC));
    expect(d.read(C.numQueues, 2)).toBe(3);
    expect(d.read(C.configMsixVector, 2)).toBe(PCI_NO_VECTOR);
    // A frame with its 12-byte virtio_net_hdr on the transmit queue (queue 1).
    const frame = new Uint8Array(12 + 60);
    frame.set([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, ...MAC, 0x08, 0x06], 12);
    const tx = d.queues[1];
    tx.add([{ addr: d.mem.put(frame), len: frame.length }]);
    d.kick(1);
    await new Promise((r) => setImmediate(r));
    expect(wire.sent).toHaveLength(1);
    expect(wire.sent[0].data.length).toBe(60);
    expect(tx.takeUsed()).toHaveLength(1);
    // Used buffer interrupt: pin A high until the driver reads the ISR.
    expect(d.irq.level).toBe(true);
    expect(d.cfgRead(CFG.status, 2) & 8).toBe(8);
    expect(d.readIsr()).toBe(1);
    expect(d.irq.level).toBe(false);
    expect(d.readIsr()).toBe(0);
  });

  it('a received frame lands in a posted buffer; link down reaches the driver as a config interrupt', () => {
    const { d, port, wire } = net();
    d.init();
    const rx = d.queues[0];
    const buf = d.mem.alloc(2048);
    rx.add([{ addr: buf, len: 2048, write: true }]);
    d.kick(0);
    const f = new Uint8Array(64);
    f.set(MAC, 0);
    wire.onReceive!({ data: f });
    expect(rx.takeUsed()).toEqual([{ id: 0, len: 12 + 64 }]);
    expect(d.readIsr() & 1).toBe(1);
    const gen = d.read(C.configGeneration, 1);
    port.setLink(false);
    expect(d.irq.level).toBe(true);
    expect(d.readIsr()).toBe(2);
    expect(d.bus.read(d.addr(PCI_CAP.device, 6), 2) & 1).toBe(0); // STATUS.LINK_UP clear
    expect(d.read(C.configGeneration, 1)).not.toBe(gen);
    port.setLink(true);
    expect(d.bus.read(d.addr(PCI_CAP.device, 6), 2) & 1).toBe(1);
  });

  it('INTx disable in the command register masks the line, not the ISR', () => {
    const d = rng().init();
    d.cfgWrite(CFG.command, 2, d.cfgRead(CFG.command, 2) | 0x400);
    d.queues[0].add([{ addr: d.mem.alloc(8), len: 8, write: true }]);
    d.kick(0);
    expect(d.irq.level).toBe(false);
    d.cfgWrite(CFG.command, 2, d.cfgRead(CFG.command, 2) & ~0x400);
    expect(d.irq.level).toBe(true);
    expect(d.readIsr()).toBe(1);
  });

  it('refuses FEATURES_OK without VERSION_1 (no legacy) or with features not offered', () => {
    const d = rng().probe();
    expect(() => d.init({ accept: (f) => f & ~bit(F.version1) })).toThrow(/refused/);
    expect(() => d.init({ accept: (f) => f | bit(50) })).toThrow(/refused/);
    expect(d.transport.metrics.errors).toBe(2);
    expect(() => d.init()).not.toThrow();
  });

  it('the PCI_CFG window reads and writes the BAR through configuration space', () => {
    const d = rng().probe();
    const cap = d.cap(PCI_CAP.pciCfg);
    expect(cap.capLen).toBe(20);
    const at = cap.at;
    d.cfgWrite(at + 4, 1, 0); // bar
    d.cfgWrite(at + 8, 4, VIRTIO_PCI_LAYOUT.common + C.numQueues); // offset
    d.cfgWrite(at + 12, 4, 2); // length
    expect(d.cfgRead(at + 16, 4)).toBe(1); // rng: one queue
    d.cfgWrite(at + 8, 4, VIRTIO_PCI_LAYOUT.common + C.deviceStatus);
    d.cfgWrite(at + 12, 4, 1);
    d.cfgWrite(at + 16, 4, STATUS.acknowledge);
    expect(d.status).toBe(STATUS.acknowledge);
    // A window naming another BAR or an unaligned offset: counted, nothing happens.
    const errors = d.transport.metrics.errors;
    d.cfgWrite(at + 4, 1, 3);
    expect(d.cfgRead(at + 16, 4)).toBe(0);
    d.cfgWrite(at + 4, 1, 0);
    d.cfgWrite(at + 8, 4, 0x3fff);
    d.cfgWrite(at + 12, 4, 4);
    d.cfgWrite(at + 16, 4, 0);
    expect(d.transport.metrics.errors).toBe(errors + 2);
    expect(d.status).toBe(STATUS.acknowledge);
  });

  describe('hostile driver', () => {
    it('odd widths and offsets anywhere in the BAR and config space are counted, never thrown', () => {
      const d = rng().init();
      const errors = d.transport.metrics.errors;
      expect(() => {
        for (let off = 0; off < VIRTIO_PCI_LAYOUT.barSize; off += 3) {
          for (const size of [1, 2, 4] as const) {
            if (off % size) continue; // the bus splits nothing: alignment is the core's business
            d.bus.read(BAR_BASE + off, size);
            // Writes of garbage everywhere except the status (a reset would hide later checks).
            if (off !== C.deviceStatus) d.bus.write(BAR_BASE + off, size, 0xdead_beef);
          }
        }
        for (let off = 0; off < 0x1000; off += 1) d.cfgWrite(off, 1, 0xa5);
      }).not.toThrow();
      expect(d.transport.metrics.errors).toBeGreaterThan(errors);
      expect(d.bus.fault).toBe(false);
    });

    it('a 4-byte access to a 2-byte field is ignored and counted', () => {
      const d = rng().init();
      const before = d.transport.metrics.errors;
      d.write(C.queueSelect, 4, 0x0001_0000);
      expect(d.read(C.queueSelect, 2)).toBe(0);
      expect(d.read(C.deviceStatus, 4)).toBe(0);
      expect(d.transport.metrics.errors).toBe(before + 2);
    });

    it('ring addresses outside RAM, a size not a power of two or above the maximum: NEEDS_RESET at enable', () => {
      for (const [i, bad] of [
        (d: PciMockDriver) => d.write(C.queueDescLow, 4, RAM_BASE + RAM_SIZE),
        (d: PciMockDriver) => d.write(C.queueDeviceHigh, 4, 1),
        (d: PciMockDriver) => d.write(C.queueSize, 2, 24),
        (d: PciMockDriver) => d.write(C.queueSize, 2, 2048),
        (d: PciMockDriver) => d.write(C.queueSize, 2, 0),
      ].entries()) {
        const d = rng().probe();
        expect(() => d.init()).not.toThrow();
        d.status = 0;
        d.status = STATUS.acknowledge | STATUS.driver;
        d.writeFeatures(d.offeredFeatures());
        d.status = STATUS.acknowledge | STATUS.driver | STATUS.featuresOk;
        d.setupQueue(d.queues[0], false);
        bad(d);
        d.write(C.queueEnable, 2, 1);
        expect(d.needsReset, `case ${i}`).toBe(true);
        expect(d.read(C.queueEnable, 2)).toBe(0);
        expect(d.transport.metrics.needs_reset).toBe(1);
      }
    });

    it('enabling a queue before FEATURES_OK, or changing it while live, is NEEDS_RESET', () => {
      const d = rng().probe();
      d.status = STATUS.acknowledge | STATUS.driver;
      d.write(C.queueSelect, 2, 0);
      d.write(C.queueEnable, 2, 1);
      expect(d.needsReset).toBe(true);
      const e = rng().init();
      e.write(C.queueSelect, 2, 0);
      e.write(C.queueSize, 2, 16);
      expect(e.needsReset).toBe(true);
      // A config interrupt tells the driver (DRIVER_OK was set).
      expect(e.readIsr() & 2).toBe(2);
    });

    it('queues that do not exist: size 0, enable and notify counted and ignored', () => {
      const d = rng().init();
      d.write(C.queueSelect, 2, 7);
      expect(d.read(C.queueSize, 2)).toBe(0);
      d.write(C.queueEnable, 2, 1);
      d.write(C.queueDescLow, 4, RAM_BASE);
      expect(d.needsReset).toBe(false);
      const m = d.transport.metrics;
      d.bus.write(d.addr(PCI_CAP.notify, 7 * 4), 2, 7);
      d.bus.write(d.addr(PCI_CAP.notify, 2), 2, 0); // between two queues' addresses
      d.bus.write(d.addr(PCI_CAP.notify, 0x800), 4, 0); // far beyond the last queue
      expect(m.queue_notifies).toBe(3);
      expect(m.notifies_ignored).toBe(3);
      expect(d.needsReset).toBe(false);
      // queue_enable = 0 is not the driver's to write: ignored, the queue stays live.
      d.write(C.queueSelect, 2, 0);
      d.write(C.queueEnable, 2, 0);
      expect(d.read(C.queueEnable, 2)).toBe(1);
    });

    it('a reset mid-flight drops the queues; late kicks are ignored and the device comes back', () => {
      const d = rng().init();
      const q = d.queues[0];
      q.add([{ addr: d.mem.alloc(16), len: 16, write: true }]);
      d.status = 0;
      expect(d.status).toBe(0);
      expect(d.read(C.queueEnable, 2)).toBe(0);
      expect(d.irq.level).toBe(false);
      d.kick(0);
      expect(q.takeUsed()).toEqual([]);
      expect(d.transport.metrics.notifies_ignored).toBe(1);
      d.init();
      d.queues[0].add([{ addr: d.mem.alloc(16), len: 16, write: true }]);
      d.kick(0);
      expect(d.queues[0].takeUsed()).toHaveLength(1);
    });

    it('virtio-net reset between the kick and the transmit completion: nothing lands after it', async () => {
      const { d, wire } = net();
      d.init();
      const tx = d.queues[1];
      const frame = new Uint8Array(12 + 60);
      frame.set([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, ...MAC, 0x08, 0x06], 12);
      tx.add([{ addr: d.mem.put(frame), len: frame.length }]);
      d.kick(1);
      d.status = 0; // the completion is still queued (returned when the slice ends)
      await new Promise((r) => setImmediate(r));
      expect(wire.sent).toHaveLength(1); // it did leave
      expect(tx.takeUsed()).toEqual([]); // but the reset ring is left alone
      expect(d.irq.level).toBe(false);
      expect(d.readIsr()).toBe(0);
      d.init();
      expect(d.needsReset).toBe(false);
    });

    it('a malformed ring: NEEDS_RESET, counted, a config interrupt, kicks ignored until reset', () => {
      const d = rng().init();
      const q = d.queues[0];
      q.writeDesc(q.desc, 0, { addr: d.mem.alloc(8), len: 8, write: true }, 1, 0); // loops
      q.publishHead(0);
      expect(() => d.kick(0)).not.toThrow();
      expect(d.needsReset).toBe(true);
      expect(d.readIsr() & 2).toBe(2);
      d.kick(0);
      expect(d.transport.metrics.notifies_ignored).toBe(1);
      d.init();
      expect(d.needsReset).toBe(false);
    });
  });

  it('saves and restores its state, the BAR assignment and rings included', () => {
    const d = rng().init();
    const s = JSON.parse(JSON.stringify(d.transport.saveState()));
    d.status = 0;
    d.transport.pci.reset();
    expect(d.bus.read(BAR_BASE + C.numQueues, 2)).not.toBe(1); // unmapped
    d.transport.restoreState(s);
    expect(d.status & STATUS.driverOk).toBe(STATUS.driverOk);
    d.queues[0].add([{ addr: d.mem.alloc(16), len: 16, write: true }]);
    d.kick(0);
    expect(d.queues[0].takeUsed()).toHaveLength(1);
  });
});
