/**
 * The Wasm packed-ring processor on its own (virtio 1.2 §2.8): chains across the ring's end and
 * its wrap counters, indirect tables, used descriptors written in completion order and skipped
 * by chain length, pushes held until publish, event suppression both ways, save/restore of
 * buffers in flight, every class of malformed ring a hostile driver can build, and a seeded fuzz.
 */
import { describe, it, expect } from 'vitest';
import {
  testCore,
  GuestMemory,
  PackedDriverQueue,
  RAM_BASE,
  RAM_SIZE,
  DESC_F_AVAIL,
  DESC_F_USED,
  EVENT_DESC,
  EVENT_DISABLE,
  EVENT_ENABLE,
} from './driver.js';
import { checkChain, ringFuzz } from './ring-fuzz.js';
import {
  RingProcessor,
  RING_FEAT_EVENT_IDX,
  RING_FEAT_INDIRECT,
  RING_FEAT_FRESH,
  RING_FEAT_PACKED,
  ringErrorText,
  type DescriptorChain,
} from '../../../devices/virtio/ring.js';

/** A queue as the driver enables it. */
const ALL = RING_FEAT_EVENT_IDX | RING_FEAT_INDIRECT | RING_FEAT_PACKED | RING_FEAT_FRESH;
/** The same queue set up again for a restore. */
const RESTORED = ALL & ~RING_FEAT_FRESH;
const NEXT = 1;
const WRITE = 2;
const INDIRECT = 4;

function setup(size = 8, features = ALL) {
  const core = testCore();
  const mem = new GuestMemory(core);
  const rings = new RingProcessor(core);
  const h = rings.allocate(1);
  const q = new PackedDriverQueue(mem, 0, size);
  expect(rings.setup(h, size, q.desc, q.avail, q.used, features)).toBe(0);
  const pop = (): DescriptorChain | null | number => rings.pop(h);
  const chain = (): DescriptorChain => {
    const c = pop();
    if (c === null || typeof c === 'number') throw new Error(`no chain: ${err(c)}`);
    return c;
  };
  /** The driver posts an 8-byte buffer and the device takes it: its id. */
  const take = (): number => {
    q.add([{ addr: mem.alloc(8), len: 8 }]);
    return chain().head;
  };
  return { core, mem, rings, h, q, pop, chain, take };
}

const err = (r: unknown): string => (typeof r === 'number' ? ringErrorText(r) : String(r));
const buf = (mem: GuestMemory, len: number, write = false) => ({
  addr: mem.alloc(len),
  len,
  write,
});

describe('packed ring: well-formed chains', () => {
  it('returns a chain as segments with its buffer id, and consumes it once', () => {
    const { mem, q, pop, chain } = setup();
    const a = mem.put(Uint8Array.of(1, 2, 3));
    const b = mem.alloc(100);
    const id = q.add([
      { addr: a, len: 3 },
      { addr: b, len: 100, write: true },
    ]);
    const c = chain();
    expect(c.head).toBe(id);
    expect([c.readable, c.writable]).toEqual([3, 100]);
    expect(c.segments.map((s) => [s.addr, s.view.length, s.writable])).toEqual([
      [a, 3, false],
      [b, 100, true],
    ]);
    expect([...c.segments[0].view]).toEqual([1, 2, 3]);
    expect(pop()).toBe(null);
  });

  it('the buffer id is the one in the last descriptor of the chain', () => {
    const { mem, q, chain } = setup();
    q.addDescs(
      [
        { addr: mem.alloc(8), len: 8, flags: 0 },
        { addr: mem.alloc(8), len: 8, flags: WRITE },
      ],
      5,
    );
    expect(chain().head).toBe(5);
  });

  it('chains run across the end of the ring, lap after lap, in a ring whose size is not a power of 2', () => {
    const { mem, rings, h, q, chain } = setup(5);
    for (let i = 0; i < 200; i++) {
      const n = 1 + (i % 3);
      const bufs = Array.from({ length: n }, (_, k) => buf(mem, 4 + k, k === n - 1));
      const id = q.add(bufs);
      const c = chain();
      expect(c.head).toBe(id);
      expect(c.segments.map((s) => s.addr)).toEqual(bufs.map((b) => b.addr));
      rings.push(h, c.head, i);
      expect(rings.publish(h)).toBe(true);
      expect(q.takeUsed()).toEqual([{ id, len: i }]);
    }
    expect(q.availWrap).toBe(q.usedWrap);
  });

  it('follows an indirect table, where only WRITE counts', () => {
    const { mem, q, chain } = setup();
    const bufs = [buf(mem, 16), buf(mem, 512, true), buf(mem, 1, true)];
    const id = q.addIndirect(bufs);
    const c = chain();
    expect(c.head).toBe(id);
    expect(c.segments.map((s) => [s.addr, s.view.length, s.writable])).toEqual(
      bufs.map((b) => [b.addr, b.len, b.write]),
    );
  });

  it('a chain as long as the ring is accepted', () => {
    const { mem, q, chain } = setup(4);
    q.add([buf(mem, 1), buf(mem, 1), buf(mem, 1), buf(mem, 1, true)]);
    expect(chain().segments).toHaveLength(4);
  });

  it('used descriptors go in completion order, each followed by its chain length skipped', () => {
    const { mem, rings, h, q, chain, take } = setup(8);
    const a = q.add([buf(mem, 8), buf(mem, 8, true)]); // 2 descriptors
    const b = q.add([buf(mem, 8, true)]); // 1
    const c = q.add([buf(mem, 8), buf(mem, 8), buf(mem, 8, true)]); // 3
    const got = [chain(), chain(), chain()].map((x) => x.head);
    expect(got).toEqual([a, b, c]);
    // c finishes first, then a, then b: positions 0, 3 and 5 in the ring.
    rings.push(h, c, 30);
    rings.push(h, a, 10);
    rings.push(h, b, 20);
    expect(rings.publish(h)).toBe(true);
    expect(q.takeUsed()).toEqual([
      { id: c, len: 30 },
      { id: a, len: 10 },
      { id: b, len: 20 },
    ]);
    expect(q.nextUsed).toBe(6);
    // A used descriptor with nothing written has WRITE clear; with bytes written, set.
    const flags = (pos: number): number => mem.u16(q.desc + 16 * pos + 14);
    expect(flags(0) & (DESC_F_AVAIL | DESC_F_USED)).toBe(DESC_F_AVAIL | DESC_F_USED);
    expect(flags(0) & WRITE).toBe(WRITE);
    rings.push(h, take(), 0);
    rings.publish(h);
    expect(flags(6) & WRITE).toBe(0);
  });

  it('a push is written into the ring at publish, not before', () => {
    const { mem, rings, h, q, chain } = setup();
    const id = q.add([buf(mem, 8, true)]);
    chain();
    rings.push(h, id, 8);
    expect(q.takeUsed()).toEqual([]);
    rings.publish(h);
    expect(q.takeUsed()).toEqual([{ id, len: 8 }]);
  });
});

describe('packed ring: notifications', () => {
  it('driver event suppression: enabled, disabled', () => {
    const { rings, h, q, take } = setup();
    for (const [flags, want] of [
      [EVENT_ENABLE, true],
      [EVENT_DISABLE, false],
      [EVENT_ENABLE, true],
    ] as const) {
      q.setDriverEvent(flags);
      rings.push(h, take(), 0);
      expect(rings.publish(h)).toBe(want);
      expect(rings.publish(h)).toBe(false); // nothing new
      q.takeUsed();
    }
  });

  it('EVENT_IDX: interrupts only once the named descriptor position is used, across laps', () => {
    const { rings, h, q, take } = setup(4);
    const round = (): boolean => {
      rings.push(h, take(), 0);
      const r = rings.publish(h);
      q.takeUsed();
      return r;
    };
    expect(round()).toBe(true); // the first decision always interrupts (position 0 used)
    // "Interrupt me when the descriptor at position 3 of this lap (wrap 1) is used."
    q.setDriverEvent(EVENT_DESC, 3, 1);
    expect([round(), round()]).toEqual([false, false]); // positions 1, 2
    expect(round()).toBe(true); // position 3
    expect(round()).toBe(false); // position 0 of the next lap (wrap 0)
    // Position 1 in lap wrap 0, then a batch that runs past it.
    q.setDriverEvent(EVENT_DESC, 1, 0);
    for (let i = 0; i < 3; i++) rings.push(h, take(), 0);
    expect(rings.publish(h)).toBe(true); // positions 1..3 used: 1 among them
    q.takeUsed();
    // A position named in the wrong lap is not crossed by this lap's descriptors.
    q.setDriverEvent(EVENT_DESC, 1, 0);
    expect([round(), round()]).toEqual([false, false]); // positions 0, 1 of lap wrap 1
  });

  it('device event suppression: starts at descriptor 0 (EVENT_IDX), then asks for a kick at the next position when the ring is empty', () => {
    const { rings, h, q, pop, take } = setup(4);
    // Set up, it asks for a kick at the first descriptor, not for every one (zeros: ENABLE).
    expect(q.deviceEvent).toEqual({ flags: EVENT_DESC, pos: 0, wrap: 1 });
    expect(pop()).toBe(null);
    expect(q.deviceEvent).toEqual({ flags: EVENT_DESC, pos: 0, wrap: 1 });
    for (let i = 0; i < 5; i++) {
      rings.push(h, take(), 0);
      rings.publish(h);
      q.takeUsed();
    }
    expect(pop()).toBe(null);
    expect(q.deviceEvent).toEqual({ flags: EVENT_DESC, pos: 1, wrap: 0 });
    // Without EVENT_IDX it can only enable notifications.
    const s = setup(4, RING_FEAT_PACKED);
    s.mem.setU16(s.q.used + 2, EVENT_DISABLE);
    expect(s.pop()).toBe(null);
    expect(s.q.deviceEvent.flags).toBe(EVENT_ENABLE);
  });
});

describe('packed ring: saving and restoring', () => {
  it('positions, buffers in flight and pushes not yet published survive', () => {
    const { mem, rings, h, q, chain, take } = setup(6);
    // Two laps' worth of traffic, so the positions carry a wrap counter of 0.
    for (let i = 0; i < 7; i++) {
      rings.push(h, take(), 0);
      rings.publish(h);
      q.takeUsed();
    }
    const a = q.add([buf(mem, 8), buf(mem, 8, true)]);
    const b = q.add([buf(mem, 8, true)]);
    chain();
    chain();
    rings.push(h, b, 5); // pushed, not published
    const saved = {
      indices: rings.indices(h),
      signal: rings.signalState(h),
      inflight: rings.inflight(h),
      unpublished: rings.unpublished(h),
    };
    // (id, descriptors) pairs in id order.
    expect(saved.inflight).toEqual(a < b ? [a, 2, b, 1] : [b, 1, a, 2]);
    expect(saved.unpublished).toEqual([b, 5]);
    // A fresh set-up (a restored VM) picks up where it was, and leaves the device's event
    // suppression structure as the guest last saw it.
    mem.setU16(q.used, 3);
    mem.setU16(q.used + 2, EVENT_DESC);
    expect(rings.setup(h, 6, q.desc, q.avail, q.used, RESTORED)).toBe(0);
    expect(q.deviceEvent).toEqual({ flags: EVENT_DESC, pos: 3, wrap: 0 });
    expect(rings.restore(h, saved.indices, saved.signal)).toBe(true);
    for (let i = 0; i < saved.inflight.length; i += 2) {
      expect(rings.setInflight(h, saved.inflight[i], saved.inflight[i + 1])).toBe(true);
    }
    expect(rings.push(h, saved.unpublished[0], saved.unpublished[1])).toBe(0);
    rings.push(h, a, 7);
    rings.publish(h);
    expect(q.takeUsed()).toEqual([
      { id: b, len: 5 },
      { id: a, len: 7 },
    ]);
    const c = q.add([buf(mem, 8)]);
    expect(chain().head).toBe(c);
  });

  it('restoring positions outside the ring, or ids that do not fit it, is refused', () => {
    const { rings, h } = setup(4);
    expect(rings.restore(h, 4 | (0x8000 << 16), 0)).toBe(false);
    expect(rings.restore(h, 0x8000 | (7 << 16), 0)).toBe(false);
    expect(rings.setInflight(h, 4, 1)).toBe(false);
    expect(rings.setInflight(h, 0, 5)).toBe(false);
    expect(rings.setInflight(h, 0, 0)).toBe(false);
  });
});

describe('packed ring: hostile rings', () => {
  it('a chain whose later descriptor was not made available', () => {
    const { mem, q, pop } = setup();
    q.add([buf(mem, 8), buf(mem, 8, true)]);
    // The driver "forgets" to mark the second descriptor available in this lap.
    mem.setU16(q.desc + 16 + 14, WRITE | DESC_F_USED);
    expect(err(pop())).toMatch(/not made available/);
  });

  it('NEXT on every descriptor, round the ring', () => {
    const { mem, q, pop } = setup(4);
    const a = mem.alloc(8);
    for (let i = 3; i >= 0; i--) q.writeDesc(i, a, 8, 0, DESC_F_AVAIL | NEXT);
    expect(err(pop())).toMatch(/loops/);
  });

  it('buffer ids past the ring, or one already in flight', () => {
    const { mem, q, pop } = setup(4);
    q.addDescs([{ addr: mem.alloc(8), len: 8, flags: 0 }], 4);
    expect(err(pop())).toMatch(/buffer id/);
    const s = setup(4);
    s.q.addDescs([{ addr: s.mem.alloc(8), len: 8, flags: 0 }], 2);
    s.chain();
    s.q.addDescs([{ addr: s.mem.alloc(8), len: 8, flags: 0 }], 2);
    expect(err(s.pop())).toMatch(/already in flight/);
  });

  it('zero lengths, addresses outside RAM, readable after writable', () => {
    for (const [bufs, why] of [
      [[{ addr: RAM_BASE + 0x1000, len: 0 }], /zero-length/],
      [[{ addr: RAM_BASE + RAM_SIZE - 4, len: 8 }], /outside guest RAM/],
      [[{ addr: 0x1000, len: 8 }], /outside guest RAM/],
      [
        [
          { addr: RAM_BASE + 0x1000, len: 8, write: true },
          { addr: RAM_BASE + 0x2000, len: 8 },
        ],
        /readable buffer after/,
      ],
    ] as const) {
      const { q, pop } = setup();
      q.add(bufs.map((b) => ({ ...b })));
      expect(err(pop())).toMatch(why);
    }
  });

  it('a chain carrying 4 GiB or more (one RAM region named 300 times)', () => {
    const { mem, q, pop } = setup(512);
    const t = mem.alloc(16 * 300, 16);
    for (let i = 0; i < 300; i++) {
      mem.setU64(t + 16 * i, RAM_BASE);
      mem.setU32(t + 16 * i + 8, RAM_SIZE);
      mem.setU16(t + 16 * i + 14, 0);
    }
    q.addDescs([{ addr: t, len: 16 * 300, flags: INDIRECT }]);
    expect(err(pop())).toMatch(/4 GiB/);
  });

  it('indirect tables: not negotiated, with NEXT, mid-chain, badly sized, outside RAM, bad entries', () => {
    const table = (mem: GuestMemory, entries: { len: number; flags?: number }[]) => {
      const t = mem.alloc(16 * entries.length, 16);
      entries.forEach((e, i) => {
        mem.setU64(t + 16 * i, mem.alloc(Math.max(e.len, 1)));
        mem.setU32(t + 16 * i + 8, e.len);
        mem.setU16(t + 16 * i + 14, e.flags ?? 0);
      });
      return t;
    };
    const cases: [number, (s: ReturnType<typeof setup>) => void, RegExp][] = [
      [
        RING_FEAT_PACKED,
        (s) => s.q.addDescs([{ addr: table(s.mem, [{ len: 8 }]), len: 16, flags: INDIRECT }]),
        /without VIRTIO_F_INDIRECT_DESC/,
      ],
      [
        ALL,
        (s) =>
          s.q.addDescs([
            { addr: s.mem.alloc(8), len: 8, flags: 0 },
            { addr: table(s.mem, [{ len: 8 }]), len: 16, flags: INDIRECT },
          ]),
        /nested or mid-chain/,
      ],
      [
        ALL,
        (s) =>
          s.q.addDescs([
            { addr: table(s.mem, [{ len: 8 }]), len: 16, flags: INDIRECT | NEXT },
            { addr: s.mem.alloc(8), len: 8, flags: 0 },
          ]),
        /INDIRECT.*NEXT|indirect descriptor with NEXT/,
      ],
      [
        ALL,
        (s) => s.q.addDescs([{ addr: table(s.mem, [{ len: 8 }]), len: 15, flags: INDIRECT }]),
        /indirect table size/,
      ],
      [
        ALL,
        (s) => s.q.addDescs([{ addr: table(s.mem, [{ len: 8 }]), len: 16 * 9, flags: INDIRECT }]),
        /indirect table size/,
      ],
      [
        ALL,
        (s) => s.q.addDescs([{ addr: RAM_BASE + RAM_SIZE - 8, len: 16, flags: INDIRECT }]),
        /indirect table outside/,
      ],
      [
        ALL,
        (s) =>
          s.q.addDescs([
            { addr: table(s.mem, [{ len: 8 }, { len: 0 }]), len: 32, flags: INDIRECT },
          ]),
        /zero-length/,
      ],
      [
        ALL,
        (s) =>
          s.q.addDescs([
            {
              addr: table(s.mem, [{ len: 8, flags: WRITE }, { len: 8 }]),
              len: 32,
              flags: INDIRECT,
            },
          ]),
        /readable buffer after/,
      ],
    ];
    for (const [features, build, why] of cases) {
      const s = setup(8, features);
      build(s);
      expect(err(s.pop())).toMatch(why);
    }
  });

  it('queue setup is checked: ring misaligned, event areas misaligned or outside RAM', () => {
    const core = testCore();
    const rings = new RingProcessor(core);
    const h = rings.allocate(1);
    const base = RAM_BASE + 0x10_0000;
    expect(rings.setup(h, 8, base, base + 0x100, base + 0x104, ALL)).toBe(0);
    expect(rings.setup(h, 8, base + 8, base + 0x100, base + 0x104, ALL)).toBeLessThan(0);
    expect(rings.setup(h, 8, base, base + 0x102, base + 0x104, ALL)).toBeLessThan(0);
    expect(rings.setup(h, 8, base, base + 0x100, RAM_BASE + RAM_SIZE - 2, ALL)).toBeLessThan(0);
    expect(rings.setup(h, 3, RAM_BASE + RAM_SIZE - 48, base, base + 4, ALL)).toBe(0);
    expect(rings.setup(h, 4, RAM_BASE + RAM_SIZE - 48, base, base + 4, ALL)).toBeLessThan(0);
  });

  it('a device pushing an id not in flight, or twice, is refused', () => {
    const { mem, rings, h, q, chain } = setup(4);
    expect(rings.push(h, 0, 0)).toBeLessThan(0);
    expect(rings.push(h, 9, 0)).toBeLessThan(0);
    const id = q.add([buf(mem, 8)]);
    chain();
    expect(rings.push(h, id, 0)).toBe(0);
    expect(rings.push(h, id, 0)).toBeLessThan(0);
  });
});

describe('packed ring: fuzz', () => {
  const SEED = Number(process.env.RING_FUZZ_SEED ?? 0x9ac4);
  const ROUNDS = 20_000;

  it(`${ROUNDS} rounds of random descriptors (seed ${SEED}): no exception, RAM outside the ring and tables unchanged, every segment valid`, () => {
    const core = testCore();
    const rings = new RingProcessor(core);
    const h = rings.allocate(1);
    const ram = core.ram;
    for (let i = 0; i < ram.length; i += 4096) ram[i] = (i >> 12) & 0xff;
    const win = 0x20_0000;
    const winAddr = RAM_BASE + win;
    const MAX = 64;
    const desc = winAddr; // the ring: written by driver and device
    const driverEv = winAddr + 16 * MAX;
    const deviceEv = driverEv + 4; // written by the device
    const tables = winAddr + 0x800; // indirect tables
    const before = ram.slice();
    const dv = new DataView(ram.buffer, ram.byteOffset, ram.byteLength);
    const { rand, int, addr: pickAddr, len: pickLen } = ringFuzz(SEED, { tables, max: MAX });
    const writeDesc = (base: number, i: number, avail: boolean, wrap: number): void => {
      const o = base - RAM_BASE + 16 * i;
      const a = pickAddr();
      dv.setUint32(o, a >>> 0, true);
      dv.setUint32(o + 4, Math.floor(a / 2 ** 32), true);
      dv.setUint32(o + 8, pickLen(), true);
      dv.setUint16(o + 12, rand() < 0.9 ? int(MAX) : int(0x10000), true);
      const r = rand();
      let flags = r < 0.1 ? int(0x10000) : r < 0.2 ? INDIRECT | int(4) : int(4);
      if (avail && r >= 0.1) {
        flags &= ~(DESC_F_AVAIL | DESC_F_USED);
        flags |= wrap ? DESC_F_AVAIL : DESC_F_USED;
      }
      dv.setUint16(o + 14, flags, true);
    };
    let ok = 0;
    let broken = 0;
    for (let round = 0; round < ROUNDS; round++) {
      const qs = 1 + int(MAX);
      expect(rings.setup(h, qs, desc, driverEv, deviceEv, RING_FEAT_PACKED | int(4))).toBe(0);
      // A random starting lap and position, then random descriptors, mostly "available".
      const wrap = int(2);
      const pos = int(qs);
      rings.restore(h, pos | (wrap << 15) | ((pos | (wrap << 15)) << 16), 0);
      for (let i = 0; i < qs; i++) writeDesc(desc, i, rand() < 0.8, i >= pos ? wrap : wrap ^ 1);
      for (let i = 0, n = rand() < 0.05 ? 64 : 4; i < n; i++) writeDesc(tables, int(64), false, 0);
      dv.setUint32(driverEv - RAM_BASE, int(2 ** 32), true);
      for (let k = 0; k < 8; k++) {
        const r = rings.pop(h);
        if (typeof r === 'number') {
          if (r < 0) broken++;
          break;
        }
        if (r === null) break;
        ok++;
        checkChain(r, qs);
        if (r.head >= qs) throw new Error(`buffer id ${r.head} in a ring of ${qs}`);
        if (rand() < 0.7) {
          expect(rings.push(h, r.head, int(2 ** 32))).toBe(0);
          rings.publish(h);
        }
      }
    }
    // Nothing outside the fuzzer's own window changed.
    const cmp = (a: number, b: number): void => {
      expect(Buffer.compare(ram.subarray(a, b), before.subarray(a, b))).toBe(0);
    };
    cmp(0, win);
    cmp(win + 0x10000, ram.length);
    // Between the event areas and the tables nothing was written at all.
    cmp(deviceEv - RAM_BASE + 4, tables - RAM_BASE);
    expect(ok).toBeGreaterThan(1000);
    expect(broken).toBeGreaterThan(1000);
  }, 60_000);
});
