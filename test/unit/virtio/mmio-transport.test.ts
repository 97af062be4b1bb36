/**
 * virtio-mmio transport: registers, feature negotiation, the status state machine, queue setup,
 * interrupts, and NEEDS_RESET when the driver breaks the protocol. The device behind it is
 * virtio-rng (the simplest), driven by the mock driver.
 */
import { describe, it, expect } from 'vitest';
import { MockDriver, DriverQueue } from './driver.js';
import { VirtioRng } from '../../../devices/virtio/rng/device.js';
import { MMIO, STATUS, F, bit, MMIO_MAGIC } from '../../../devices/virtio/constants.js';

const rng = (): MockDriver => new MockDriver(new VirtioRng('virtio-rng0', 16));

describe('virtio-mmio transport', () => {
  it('identifies itself as a version 2 transport', () => {
    const d = rng();
    expect(d.r(MMIO.magic)).toBe(MMIO_MAGIC);
    expect(d.r(MMIO.version)).toBe(2);
    expect(d.r(MMIO.deviceId)).toBe(4);
    expect(d.r(MMIO.vendorId)).toBe(0x554d4551);
  });

  it('an empty slot answers device ID 0 and ignores writes', () => {
    const d = new MockDriver(undefined);
    expect(d.r(MMIO.magic)).toBe(MMIO_MAGIC);
    expect(d.r(MMIO.version)).toBe(2);
    expect(d.r(MMIO.deviceId)).toBe(0);
    d.w(MMIO.status, 1);
    expect(d.r(MMIO.status)).toBe(0);
    expect(d.transport.name).toBe('virtio-mmio0');
  });

  it('offers VERSION_1, EVENT_IDX and INDIRECT_DESC, not ACCESS_PLATFORM', () => {
    const f = rng().offeredFeatures();
    expect(f & bit(F.version1)).not.toBe(0n);
    expect(f & bit(F.eventIdx)).not.toBe(0n);
    expect(f & bit(F.indirectDesc)).not.toBe(0n);
    expect(f & bit(F.accessPlatform)).toBe(0n);
  });

  it('negotiates, sets up a queue and serves it after DRIVER_OK', () => {
    const d = rng().init();
    expect(d.status).toBe(STATUS.acknowledge | STATUS.driver | STATUS.featuresOk | STATUS.driverOk);
    expect(d.transport.features & bit(F.eventIdx)).not.toBe(0n);
    d.w(MMIO.queueSel, 0);
    expect(d.r(MMIO.queueReady)).toBe(1);
    expect(d.r(MMIO.queueNumMax)).toBe(16);
    expect(d.r(MMIO.queueDescLow)).toBe(d.queues[0].desc);
    d.w(MMIO.queueSel, 5);
    expect(d.r(MMIO.queueNumMax)).toBe(0);
  });

  it('refuses FEATURES_OK for features not offered, or without VERSION_1', () => {
    const d = rng();
    d.w(MMIO.status, STATUS.acknowledge | STATUS.driver);
    d.writeFeatures(bit(F.version1) | bit(50));
    d.w(MMIO.status, STATUS.acknowledge | STATUS.driver | STATUS.featuresOk);
    expect(d.status & STATUS.featuresOk).toBe(0);
    d.w(MMIO.status, 0);
    d.w(MMIO.status, STATUS.acknowledge | STATUS.driver);
    d.writeFeatures(0n);
    d.w(MMIO.status, STATUS.acknowledge | STATUS.driver | STATUS.featuresOk);
    expect(d.status & STATUS.featuresOk).toBe(0);
    expect(d.needsReset).toBe(false);
  });

  it('features changed after FEATURES_OK: NEEDS_RESET and a config interrupt', () => {
    const d = rng().init();
    d.w(MMIO.driverFeaturesSel, 0);
    d.w(MMIO.driverFeatures, 0);
    expect(d.needsReset).toBe(true);
    expect(d.r(MMIO.interruptStatus) & 2).toBe(2);
    expect(d.irq.level).toBe(true);
    expect(d.transport.metrics.needs_reset).toBe(1);
    expect(d.transport.features & bit(F.version1)).not.toBe(0n); // unchanged
    // A reset brings it back.
    d.init();
    expect(d.needsReset).toBe(false);
    expect(d.irq.level).toBe(false);
  });

  it('queue reconfigured while ready, or enabled before FEATURES_OK: NEEDS_RESET', () => {
    const d = rng().init();
    d.w(MMIO.queueSel, 0);
    d.w(MMIO.queueDescLow, 0x1000);
    expect(d.needsReset).toBe(true);
    const e = rng();
    e.w(MMIO.status, STATUS.acknowledge | STATUS.driver);
    e.w(MMIO.queueSel, 0);
    e.w(MMIO.queueReady, 1);
    expect(e.needsReset).toBe(true);
  });

  it('rings outside RAM or misaligned are refused at QueueReady', () => {
    for (const [reg, val] of [
      [MMIO.queueDescLow, 0x1000], // below RAM
      [MMIO.queueDescLow, 0x8000_0008], // not 16-aligned
      [MMIO.queueDriverLow, 0x80ff_fffe], // runs past the end of RAM
      [MMIO.queueDeviceLow, 0x8000_0002], // not 4-aligned
    ] as const) {
      const d = rng();
      d.w(MMIO.status, STATUS.acknowledge | STATUS.driver);
      d.writeFeatures(d.offeredFeatures());
      d.w(MMIO.status, STATUS.acknowledge | STATUS.driver | STATUS.featuresOk);
      d.w(MMIO.queueSel, 0);
      d.w(MMIO.queueNum, 16);
      d.w(MMIO.queueDescLow, 0x8000_0000);
      d.w(MMIO.queueDriverLow, 0x8000_1000);
      d.w(MMIO.queueDeviceLow, 0x8000_2000);
      d.w(reg, val);
      d.w(MMIO.queueReady, 1);
      expect(d.r(MMIO.queueReady)).toBe(0);
      expect(d.needsReset).toBe(true);
    }
  });

  it('a queue size above QueueNumMax, or not a power of 2 (split rings), is refused', () => {
    const d = rng();
    expect(() => d.init({ queueSizes: [32] })).not.toThrow();
    expect(d.needsReset).toBe(true);
    const e = rng();
    expect(() => e.init({ queueSizes: [12] })).not.toThrow();
    expect(e.needsReset).toBe(true);
  });

  it('DRIVER_OK without FEATURES_OK, and clearing status bits, are violations', () => {
    const d = rng();
    d.w(MMIO.status, STATUS.acknowledge | STATUS.driver | STATUS.driverOk);
    expect(d.needsReset).toBe(true);
    const e = rng().init();
    e.w(MMIO.status, STATUS.acknowledge);
    expect(e.needsReset).toBe(true);
  });

  it('notify on a queue never set up is counted and ignored', () => {
    const d = rng();
    d.w(MMIO.queueNotify, 0);
    d.init();
    d.w(MMIO.queueNotify, 7);
    expect(d.transport.metrics.queue_notifies).toBe(2);
    expect(d.transport.metrics.notifies_ignored).toBe(2);
    expect(d.needsReset).toBe(false);
  });

  it('registers accessed with the wrong width are ignored and counted', () => {
    const d = rng();
    expect(d.transport.read(MMIO.magic, 2)).toBe(0);
    d.transport.write(MMIO.status, 1, 1);
    expect(d.status).toBe(0);
    expect(d.transport.metrics.errors).toBe(2);
  });

  it('shared memory regions read as absent; config generation is readable', () => {
    const d = rng();
    d.w(MMIO.shmSel, 0);
    expect(d.r(MMIO.shmLenLow)).toBe(0xffff_ffff);
    expect(d.r(MMIO.shmLenHigh)).toBe(0xffff_ffff);
    expect(d.r(MMIO.configGeneration)).toBe(0);
  });

  it('interrupt status is acknowledged bit by bit and drives the line', () => {
    const d = rng().init();
    const q = d.queues[0];
    const buf = d.mem.alloc(8);
    q.add([{ addr: buf, len: 8, write: true }]);
    d.kick();
    expect(d.irq.level).toBe(true);
    expect(d.r(MMIO.interruptStatus)).toBe(1);
    d.w(MMIO.interruptAck, 2);
    expect(d.irq.level).toBe(true);
    d.w(MMIO.interruptAck, 1);
    expect(d.irq.level).toBe(false);
    expect(d.transport.metrics.interrupts).toBe(1);
  });

  it('buffers made available before DRIVER_OK are served at DRIVER_OK', () => {
    const d = rng();
    d.w(MMIO.status, STATUS.acknowledge | STATUS.driver);
    d.writeFeatures(d.offeredFeatures());
    d.w(MMIO.status, STATUS.acknowledge | STATUS.driver | STATUS.featuresOk);
    const q = new DriverQueue(d.mem, 0, 16);
    d.setupQueue(q);
    q.add([{ addr: d.mem.alloc(4), len: 4, write: true }]);
    d.kick();
    expect(q.takeUsed()).toEqual([]);
    d.w(MMIO.status, STATUS.acknowledge | STATUS.driver | STATUS.featuresOk | STATUS.driverOk);
    expect(q.takeUsed()).toHaveLength(1);
  });

  it('saves and restores its state, rings included', () => {
    const d = rng().init();
    const q = d.queues[0];
    q.add([{ addr: d.mem.alloc(4), len: 4, write: true }]);
    d.kick();
    const s = JSON.parse(JSON.stringify(d.transport.saveState()));
    d.w(MMIO.status, 0);
    expect(d.status).toBe(0);
    d.transport.restoreState(s);
    expect(d.status & STATUS.driverOk).toBe(STATUS.driverOk);
    q.takeUsed();
    q.add([{ addr: d.mem.alloc(4), len: 4, write: true }]);
    d.kick();
    expect(q.takeUsed()).toHaveLength(1);
  });
});
