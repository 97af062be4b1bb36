/** virtio-rng played by the mock driver: random bytes into writable buffers, nothing elsewhere. */
import { it, expect } from 'vitest';
import {
  DESC_F_AVAIL,
  EVENT_DISABLE,
  MockDriver,
  PackedDriverQueue,
  forEachRingLayout,
} from './driver.js';
import { VirtioRng } from '../../../devices/virtio/rng/device.js';
import { MMIO } from '../../../devices/virtio/constants.js';

forEachRingLayout('virtio-rng', () => {
  it('fills each posted buffer with random bytes and returns it with its length', () => {
    const d = new MockDriver(new VirtioRng()).init();
    const q = d.queues[0];
    const a = d.mem.alloc(64);
    const b = d.mem.alloc(3);
    const ids = [
      q.add([{ addr: a, len: 64, write: true }]),
      q.add([{ addr: b, len: 3, write: true }]),
    ];
    d.kick();
    expect(q.takeUsed()).toEqual([
      { id: ids[0], len: 64 },
      { id: ids[1], len: 3 },
    ]);
    expect(d.mem.read(a, 64).some((x) => x !== 0)).toBe(true);
    expect(d.transport.metrics.interrupts).toBe(1); // one batch, one interrupt
    expect(d.device!.metrics).toMatchObject({ requests: 2, bytes: 67 });
  });

  it('leaves read-only buffers alone (a chain without a writable buffer is returned empty)', () => {
    const d = new MockDriver(new VirtioRng()).init();
    const q = d.queues[0];
    const a = d.mem.alloc(32);
    q.add([{ addr: a, len: 32 }]);
    d.kick();
    expect(q.takeUsed()).toEqual([{ id: 0, len: 0 }]);
    expect(d.mem.read(a, 32).every((x) => x === 0)).toBe(true);
    expect(d.device!.metrics.bad_requests).toBe(1);
  });

  it('a hostile chain (loop) puts it in NEEDS_RESET and nothing escapes', () => {
    const d = new MockDriver(new VirtioRng()).init();
    const a = d.mem.alloc(8);
    const q = d.queues[0];
    if (q instanceof PackedDriverQueue) {
      // Every descriptor of the ring available, each chained to the next: round and round.
      for (let i = q.size - 1; i >= 0; i--) q.writeDesc(i, a, 8, 0, DESC_F_AVAIL | 2 | 1);
    } else {
      d.split(0).writeDesc(q.desc, 0, { addr: a, len: 8, write: true }, 1, 0);
      d.split(0).publishHead(0);
    }
    expect(() => d.kick()).not.toThrow();
    expect(d.needsReset).toBe(true);
    expect(d.r(MMIO.interruptStatus) & 2).toBe(2);
    expect(d.log.lines.join('\n')).toMatch(/loops/);
    // Kicks after that are ignored until the driver resets the device.
    d.kick();
    expect(d.transport.metrics.notifies_ignored).toBe(1);
  });

  it('respects the driver asking for no interrupts', () => {
    const d = new MockDriver(new VirtioRng()).init({ accept: (f) => f & ~(1n << 29n) });
    const q = d.queues[0];
    if (q instanceof PackedDriverQueue) q.setDriverEvent(EVENT_DISABLE);
    else d.split(0).setNoInterrupt(true);
    q.add([{ addr: d.mem.alloc(8), len: 8, write: true }]);
    d.kick();
    expect(q.takeUsed()).toHaveLength(1);
    expect(d.irq.level).toBe(false);
  });
});
