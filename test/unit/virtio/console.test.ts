/** virtio-console played by the mock driver: output on transmitq, input into receiveq buffers. */
import { it, expect } from 'vitest';
import { MockDriver, forEachRingLayout } from './driver.js';
import { VirtioConsole } from '../../../devices/virtio/console/device.js';

const text = (b: Uint8Array): string => new TextDecoder().decode(b);
const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);

function consoleDriver() {
  const dev = new VirtioConsole();
  const out: string[] = [];
  dev.onOutput = (b) => out.push(text(b));
  const d = new MockDriver(dev).init();
  return { d, dev, out, rx: d.queues[0], tx: d.queues[1] };
}

forEachRingLayout('virtio-console', () => {
  it('is a console device with a receive and a transmit queue', () => {
    const { d } = consoleDriver();
    expect(d.r(0x008)).toBe(3);
    expect(d.queues).toHaveLength(2);
  });

  it('writes the guest output (all readable segments, in order) and returns the buffers', () => {
    const { d, out, tx } = consoleDriver();
    const id = tx.add([
      { addr: d.mem.put(bytes('hello, ')), len: 7 },
      { addr: d.mem.put(bytes('world')), len: 5 },
    ]);
    d.kick(1);
    expect(out.join('')).toBe('hello, world');
    expect(tx.takeUsed()).toEqual([{ id, len: 0 }]);
    expect(d.irq.level).toBe(true);
  });

  it('delivers input into posted buffers, buffering it until the guest posts one', () => {
    const { d, dev, rx } = consoleDriver();
    dev.input(bytes('ls\r'));
    expect(rx.takeUsed()).toEqual([]);
    const a = d.mem.alloc(2);
    const b = d.mem.alloc(16);
    rx.add([{ addr: a, len: 2, write: true }]);
    rx.add([{ addr: b, len: 16, write: true }]);
    d.kick(0);
    expect(rx.takeUsed()).toEqual([
      { id: 0, len: 2 },
      { id: 1, len: 1 },
    ]);
    expect(text(d.mem.read(a, 2)) + text(d.mem.read(b, 1))).toBe('ls\r');
    dev.input(bytes('x'));
    expect(rx.takeUsed()).toEqual([]); // no buffer posted: kept
    rx.add([{ addr: b, len: 16, write: true }]);
    d.kick(0);
    expect(rx.takeUsed()).toEqual([{ id: 2, len: 1 }]);
    expect(dev.metrics.rx_bytes).toBe(4);
  });

  it('never writes into a read-only receive buffer', () => {
    const { d, dev, rx } = consoleDriver();
    const a = d.mem.alloc(8);
    rx.add([{ addr: a, len: 8 }]);
    dev.input(bytes('abc'));
    d.kick(0);
    expect(d.mem.read(a, 8).every((x) => x === 0)).toBe(true);
    expect(rx.takeUsed()).toEqual([{ id: 0, len: 0 }]);
  });

  it('keeps undelivered input across save/restore', () => {
    const { dev } = consoleDriver();
    dev.input(bytes('abc'));
    const s = JSON.parse(JSON.stringify(dev.saveState()));
    const other = new VirtioConsole();
    other.restoreState(s);
    expect(other.saveState().pendingInput).toEqual([...bytes('abc')]);
  });
});
