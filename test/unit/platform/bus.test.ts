import { describe, expect, it } from 'vitest';
import { MmioBus } from '../../../devices/platform/bus.js';
import type { MmioDevice } from '../../../devices/platform/mmio.js';

/** Remembers accesses; reads return base-relative offset + size marker. */
class Probe implements MmioDevice {
  log: string[] = [];
  constructor(readonly name: string) {}
  read(offset: number, size: 1 | 2 | 4): number {
    this.log.push(`r ${offset} ${size}`);
    return 0xdead_beef;
  }
  write(offset: number, size: 1 | 2 | 4, value: number): void {
    this.log.push(`w ${offset} ${size} ${value.toString(16)}`);
  }
}

const quiet = () => {};

function board() {
  const bus = new MmioBus(quiet);
  const a = new Probe('a');
  const b = new Probe('b');
  const c = new Probe('c');
  // Mapped out of order on purpose.
  bus.map(0x1000_0000, 0x100, b);
  bus.map(0x10_0000, 0x1000, a);
  bus.map(0x1_0000_0000, 0x1000, c);
  return { bus, a, b, c };
}

describe('MmioBus', () => {
  it('dispatches to the device covering the address with a device-relative offset', () => {
    const { bus, a, b, c } = board();
    bus.write(0x1000_0005, 1, 0x41);
    bus.read(0x10_0ffc, 4);
    bus.write(0x1_0000_0010, 2, 0x1234);
    expect(b.log).toEqual(['w 5 1 41']);
    expect(a.log).toEqual(['r 4092 4']);
    expect(c.log).toEqual(['w 16 2 1234']);
    expect(bus.fault).toBe(false);
  });

  it('zero-extends reads and masks written values to the access size', () => {
    const { bus, a } = board();
    expect(bus.read(0x10_0000, 1)).toBe(0xef);
    expect(bus.read(0x10_0000, 2)).toBe(0xbeef);
    expect(bus.read(0x10_0000, 4)).toBe(0xdead_beef);
    bus.write(0x10_0000, 1, 0x1ff);
    bus.write(0x10_0000, 4, -1);
    expect(a.log.slice(-2)).toEqual(['w 0 1 ff', 'w 0 4 ffffffff']);
  });

  it('counts reads and writes per device', () => {
    const { bus } = board();
    for (let i = 0; i < 3; i++) bus.read(0x1000_0000, 1);
    bus.write(0x1000_0001, 1, 0);
    bus.read(0x10_0000, 4);
    expect(bus.stats()).toEqual({
      a: { reads: 1, writes: 0, errors: 0 },
      b: { reads: 3, writes: 1, errors: 0 },
      c: { reads: 0, writes: 0, errors: 0 },
    });
    bus.resetStats();
    expect(bus.stats().b).toEqual({ reads: 0, writes: 0, errors: 0 });
  });

  it('flags unmapped addresses, accesses that straddle a range end, and bad sizes', () => {
    const { bus } = board();
    const seen: string[] = [];
    bus.onUnmapped = (addr, size, write) =>
      seen.push(`${write ? 'w' : 'r'} ${addr.toString(16)}/${size}`);
    expect(bus.read(0x2000_0000, 4)).toBe(0);
    expect(bus.fault).toBe(true);
    bus.fault = false;
    bus.write(0x10_0ffe, 4, 1); // last 2 bytes of a, first 2 beyond
    expect(bus.fault).toBe(true);
    bus.fault = false;
    bus.read(0x10_0000, 8);
    bus.read(0x10_0000, 3);
    bus.read(0xfffff, 1); // just below a
    bus.read(0x1000_0100, 1); // just past b
    expect(seen).toEqual([
      'r 20000000/4',
      'w 100ffe/4',
      'r 100000/8',
      'r 100000/3',
      'r fffff/1',
      'r 10000100/1',
    ]);
    expect(bus.unmapped).toEqual({ reads: 5, writes: 1 });
  });

  it('rejects overlapping mappings', () => {
    const { bus } = board();
    expect(() => bus.map(0x10_0800, 0x1000, new Probe('x'))).toThrow(/overlaps a/);
    expect(() => bus.map(0x0, 0, new Probe('y'))).toThrow(/bad range/);
  });

  it('contains a device that throws: the access is dropped and counted', () => {
    const bus = new MmioBus(quiet);
    bus.map(0x1000, 0x10, {
      name: 'broken',
      read: () => {
        throw new Error('boom');
      },
      write: () => {
        throw new Error('boom');
      },
    });
    expect(bus.read(0x1000, 4)).toBe(0);
    bus.write(0x1000, 4, 1);
    expect(bus.fault).toBe(false);
    expect(bus.stats().broken).toEqual({ reads: 1, writes: 1, errors: 2 });
  });

  it('finds the right device among many, with the last-hit cache switching correctly', () => {
    const bus = new MmioBus(quiet);
    const probes = Array.from({ length: 20 }, (_, i) => new Probe(`p${i}`));
    probes.forEach((p, i) => bus.map(0x1000_0000 + i * 0x1000, 0x1000, p));
    for (let i = 19; i >= 0; i -= 3) bus.read(0x1000_0000 + i * 0x1000 + 8, 4);
    for (let i = 19; i >= 0; i--) expect(probes[i].log.length).toBe((19 - i) % 3 === 0 ? 1 : 0);
  });
});
