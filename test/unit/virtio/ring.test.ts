/**
 * The Wasm split-ring processor on its own: well-formed chains (direct and indirect), every
 * class of malformed chain a hostile driver can build, used-ring publication with flags and
 * event-idx suppression, and a seeded fuzz run of random chains.
 */
import { describe, it, expect } from 'vitest';
import { testCore, GuestMemory, DriverQueue, RAM_BASE, RAM_SIZE, type Buf } from './driver.js';
import { checkChain, ringFuzz } from './ring-fuzz.js';
import {
  RingProcessor,
  RING_FEAT_EVENT_IDX,
  RING_FEAT_INDIRECT,
  ringErrorText,
  type DescriptorChain,
} from '../../../devices/virtio/ring.js';

const ALL = RING_FEAT_EVENT_IDX | RING_FEAT_INDIRECT;

function setup(size = 8, features = ALL) {
  const core = testCore();
  const mem = new GuestMemory(core);
  const rings = new RingProcessor(core);
  const h = rings.allocate(1);
  const q = new DriverQueue(mem, 0, size);
  expect(rings.setup(h, size, q.desc, q.avail, q.used, features)).toBe(0);
  const pop = (): DescriptorChain | null | number => rings.pop(h);
  return { core, mem, rings, h, q, pop };
}

const err = (r: unknown): string => (typeof r === 'number' ? ringErrorText(r) : String(r));

describe('ring processor: well-formed chains', () => {
  it('returns a direct chain as segments, readable first, and consumes it once', () => {
    const { mem, q, pop } = setup();
    const a = mem.put(Uint8Array.of(1, 2, 3));
    const b = mem.alloc(100);
    const head = q.add([
      { addr: a, len: 3 },
      { addr: b, len: 100, write: true },
    ]);
    const c = pop() as DescriptorChain;
    expect(c.head).toBe(head);
    expect(c.readable).toBe(3);
    expect(c.writable).toBe(100);
    expect(c.segments.map((s) => [s.addr, s.view.length, s.writable])).toEqual([
      [a, 3, false],
      [b, 100, true],
    ]);
    expect([...c.segments[0].view]).toEqual([1, 2, 3]);
    // A zero-copy view: writing it writes guest RAM.
    c.segments[1].view[0] = 0xaa;
    expect(mem.u8(b)).toBe(0xaa);
    expect(pop()).toBe(null);
  });

  it('follows an indirect table', () => {
    const { mem, q, pop } = setup();
    const bufs: Buf[] = [
      { addr: mem.alloc(16), len: 16 },
      { addr: mem.alloc(512), len: 512, write: true },
      { addr: mem.alloc(1), len: 1, write: true },
    ];
    const head = q.addIndirect(bufs);
    const c = pop() as DescriptorChain;
    expect(c.head).toBe(head);
    expect(c.segments.map((s) => s.view.length)).toEqual([16, 512, 1]);
    expect(c.writable).toBe(513);
  });

  it('a chain as long as the queue is accepted', () => {
    const { mem, q, pop } = setup(4);
    const bufs = [0, 1, 2, 3].map(() => ({ addr: mem.alloc(8), len: 8 }));
    q.add(bufs);
    expect((pop() as DescriptorChain).segments).toHaveLength(4);
  });

  it('pushes used entries and publishes them in one batch', () => {
    const { mem, rings, h, q, pop } = setup();
    const ids = [0, 1, 2].map(() => q.add([{ addr: mem.alloc(8), len: 8, write: true }]));
    const heads = [pop(), pop(), pop()].map((c) => (c as DescriptorChain).head);
    expect(heads).toEqual(ids);
    // Out of order completion.
    rings.push(h, ids[2], 8);
    rings.push(h, ids[0], 4);
    expect(q.takeUsed()).toEqual([]); // not visible before publish
    expect(rings.publish(h)).toBe(true);
    expect(q.takeUsed()).toEqual([
      { id: ids[2], len: 8 },
      { id: ids[0], len: 4 },
    ]);
    expect(rings.publish(h)).toBe(false); // nothing new
  });

  it('honours VRING_AVAIL_F_NO_INTERRUPT without EVENT_IDX', () => {
    const { mem, rings, h, q, pop } = setup(8, RING_FEAT_INDIRECT);
    q.add([{ addr: mem.alloc(8), len: 8, write: true }]);
    const c = pop() as DescriptorChain;
    q.setNoInterrupt(true);
    rings.push(h, c.head, 1);
    expect(rings.publish(h)).toBe(false);
    expect(q.takeUsed()).toHaveLength(1);
  });

  it('event idx: interrupts only when used_event is crossed; asks to be kicked at avail_event', () => {
    const { mem, rings, h, q, pop } = setup();
    const buf = (): Buf => ({ addr: mem.alloc(8), len: 8, write: true });
    for (let i = 0; i < 4; i++) q.add([buf()]);
    const cs = [pop(), pop(), pop(), pop()] as DescriptorChain[];
    expect(pop()).toBe(null);
    expect(q.availEvent).toBe(4); // kick me when entry 4 is made available
    q.setUsedEvent(0);
    rings.push(h, cs[0].head, 8);
    expect(rings.publish(h)).toBe(true); // first notification decision is always yes
    q.setUsedEvent(2); // "interrupt me when used.idx passes 2"
    rings.push(h, cs[1].head, 8);
    expect(rings.publish(h)).toBe(false); // used.idx = 2
    rings.push(h, cs[2].head, 8);
    expect(rings.publish(h)).toBe(true); // used.idx = 3 crossed 2
    rings.push(h, cs[3].head, 8);
    expect(rings.publish(h)).toBe(false);
  });

  it('event idx across the 16-bit wrap, and used_event values a hostile driver picks', () => {
    const { mem, rings, h, q, pop } = setup();
    // Both rings 6 entries short of the wrap, as after 65530 completions.
    const start = 0xfffa;
    q.availIdx = q.lastUsed = start;
    mem.setU16(q.avail + 2, start);
    mem.setU16(q.used + 2, start);
    rings.restore(h, start | (start << 16), start | (1 << 16));
    const buf = (): Buf => ({ addr: mem.alloc(8), len: 8, write: true });
    /** Completes one chain and publishes: whether the device would interrupt. */
    const complete = (): boolean => {
      q.add([buf()]);
      const c = pop() as DescriptorChain;
      rings.push(h, c.head, 8);
      return rings.publish(h);
    };
    // "Interrupt me once used.idx passes 1": silent through 0xfffb..0x0001, then one interrupt.
    q.setUsedEvent(1);
    const fired: boolean[] = [];
    for (let i = 0; i < 9; i++) fired.push(complete()); // used.idx 0xfffb ... 0x0003
    expect(fired).toEqual([false, false, false, false, false, false, false, true, false]);
    expect(q.takeUsed()).toHaveLength(9);
    expect(mem.u16(q.used + 2)).toBe(3);
    // Asking to be kicked at the next entry, past the wrap.
    expect(pop()).toBe(null);
    expect(q.availEvent).toBe(3);
    // A threshold far ahead (half the index space): never crossed by these, so no interrupt;
    // the driver starves itself, the device carries on.
    q.setUsedEvent(3 + 0x8000);
    expect([complete(), complete()]).toEqual([false, false]);
    // A stale threshold (already passed): not crossed again, no interrupt.
    q.setUsedEvent(2);
    expect(complete()).toBe(false);
    // Several completions published at once that cross the threshold: one interrupt.
    q.setUsedEvent(7);
    for (let i = 0; i < 3; i++) {
      q.add([buf()]);
      const c = pop() as DescriptorChain;
      rings.push(h, c.head, 8);
    }
    expect(rings.publish(h)).toBe(true); // used.idx 6 -> 9 passed 7
    expect(rings.publish(h)).toBe(false); // nothing new
    expect(q.takeUsed()).toHaveLength(6);
  });

  it('indices survive save/restore', () => {
    const { mem, rings, h, q, pop } = setup();
    q.add([{ addr: mem.alloc(8), len: 8 }]);
    const c = pop() as DescriptorChain;
    rings.push(h, c.head, 0);
    rings.publish(h);
    const idx = rings.indices(h);
    const sig = rings.signalState(h);
    expect(idx).toBe(1 | (1 << 16));
    rings.setup(h, 8, q.desc, q.avail, q.used, ALL);
    rings.restore(h, idx, sig);
    q.add([{ addr: mem.alloc(8), len: 8 }]);
    expect((pop() as DescriptorChain).head).toBe(1);
  });
});

describe('ring processor: hostile chains', () => {
  it('a descriptor loop', () => {
    const { mem, q, pop } = setup();
    const a = mem.alloc(8);
    q.writeDesc(q.desc, 0, { addr: a, len: 8 }, 1, 1);
    q.writeDesc(q.desc, 1, { addr: a, len: 8 }, 1, 0);
    q.publishHead(0);
    expect(err(pop())).toMatch(/loop/);
  });

  it('a self-loop in an indirect table', () => {
    const { mem, q, pop } = setup();
    const t = mem.alloc(32);
    q.writeDesc(t, 0, { addr: mem.alloc(8), len: 8 }, 1, 1);
    q.writeDesc(t, 1, { addr: mem.alloc(8), len: 8 }, 1, 1);
    q.writeDesc(q.desc, 0, { addr: t, len: 32 }, 4, 0);
    q.publishHead(0);
    expect(err(pop())).toMatch(/loop/);
  });

  it('a chain longer than the queue (next index past the table)', () => {
    const { mem, q, pop } = setup(4);
    q.writeDesc(q.desc, 3, { addr: mem.alloc(8), len: 8 }, 1, 4);
    q.publishHead(3);
    expect(err(pop())).toMatch(/next descriptor index/);
  });

  it('a head index past the queue, and avail.idx far ahead', () => {
    const a = setup(4);
    a.q.publishHead(9);
    expect(err(a.pop())).toMatch(/head/);
    const b = setup(4);
    b.mem.setU16(b.q.avail + 2, 100);
    expect(err(b.pop())).toMatch(/avail.idx/);
  });

  it('addresses past RAM, straddling its end, and below it', () => {
    for (const buf of [
      { addr: RAM_BASE + RAM_SIZE, len: 1 },
      { addr: RAM_BASE + RAM_SIZE - 4, len: 8 },
      { addr: 0x1000, len: 8 },
      { addr: 2 ** 53, len: 8 },
    ]) {
      const { q, pop } = setup();
      q.add([buf]);
      expect(err(pop())).toMatch(/outside guest RAM/);
    }
  });

  it('zero and huge lengths', () => {
    const a = setup();
    a.q.add([{ addr: a.mem.alloc(8), len: 0 }]);
    expect(err(a.pop())).toMatch(/zero-length/);
    const b = setup();
    b.q.add([{ addr: RAM_BASE, len: 0xffff_ffff }]);
    expect(err(b.pop())).toMatch(/outside guest RAM/);
  });

  it('a readable buffer after a writable one', () => {
    const { mem, q, pop } = setup();
    q.add([
      { addr: mem.alloc(8), len: 8, write: true },
      { addr: mem.alloc(8), len: 8 },
    ]);
    expect(err(pop())).toMatch(/readable buffer after/);
  });

  it('indirect tables: not negotiated, nested, with NEXT, badly sized, outside RAM', () => {
    const noInd = setup(8, RING_FEAT_EVENT_IDX);
    noInd.q.addIndirect([{ addr: noInd.mem.alloc(8), len: 8 }]);
    expect(err(noInd.pop())).toMatch(/without VIRTIO_F_INDIRECT_DESC/);

    const nested = setup();
    const inner = nested.mem.alloc(16);
    nested.q.writeDesc(inner, 0, { addr: nested.mem.alloc(8), len: 8 }, 0, 0);
    nested.q.addIndirect([{ addr: inner, len: 16 }]);
    // Mark the table's first entry INDIRECT.
    const outer = nested.mem.u32(nested.q.desc) + 0; // head 0's table address (low word)
    nested.mem.setU16(outer + 12, 4);
    expect(err(nested.pop())).toMatch(/nested/);

    const withNext = setup();
    withNext.q.writeDesc(withNext.q.desc, 0, { addr: withNext.mem.alloc(32), len: 32 }, 4 | 1, 1);
    withNext.q.publishHead(0);
    expect(err(withNext.pop())).toMatch(/NEXT/);

    for (const len of [0, 24, 16 * 9]) {
      const s = setup();
      s.q.writeDesc(s.q.desc, 0, { addr: s.mem.alloc(256), len }, 4, 0);
      s.q.publishHead(0);
      expect(err(s.pop())).toMatch(/indirect table size/);
    }
    const misaligned = setup();
    misaligned.q.writeDesc(
      misaligned.q.desc,
      0,
      { addr: misaligned.mem.alloc(48) + 4, len: 32 },
      4,
      0,
    );
    misaligned.q.publishHead(0);
    expect(err(misaligned.pop())).toMatch(/misaligned/);
    const out = setup();
    out.q.writeDesc(out.q.desc, 0, { addr: RAM_BASE + RAM_SIZE - 16, len: 32 }, 4, 0);
    out.q.publishHead(0);
    expect(err(out.pop())).toMatch(/indirect table outside/);
  });

  it('queue setup is checked: size 0, too big, misaligned or outside RAM', () => {
    const core = testCore();
    const rings = new RingProcessor(core);
    const h = rings.allocate(1);
    expect(rings.setup(h, 0, RAM_BASE, RAM_BASE, RAM_BASE, 0)).toBeLessThan(0);
    expect(rings.setup(h, 2048, RAM_BASE, RAM_BASE, RAM_BASE, 0)).toBeLessThan(0);
    expect(rings.setup(h, 8, RAM_BASE + 8, RAM_BASE, RAM_BASE, 0)).toBeLessThan(0);
    expect(rings.setup(h, 8, RAM_BASE, RAM_BASE + 1, RAM_BASE, 0)).toBeLessThan(0);
    expect(rings.setup(h, 8, RAM_BASE, RAM_BASE, RAM_BASE + RAM_SIZE - 8, 0)).toBeLessThan(0);
    expect(rings.pop(h)).toBeLessThan(0); // a failed setup leaves the queue unusable
    expect(rings.pop(63)).toBeLessThan(0); // never set up
    expect(rings.pop(1000)).toBeLessThan(0); // no such queue
    expect(rings.push(h, 0, 0)).toBeLessThan(0);
  });

  it('a device pushing an id past the queue is refused', () => {
    const { rings, h } = setup(4);
    expect(rings.push(h, 4, 0)).toBeLessThan(0);
  });
});

describe('ring processor: fuzz', () => {
  const SEED = Number(process.env.RING_FUZZ_SEED ?? 0x5eed);
  const CHAINS = 100_000;

  it(`${CHAINS} random chains (seed ${SEED}): no exception, RAM outside the rings unchanged, every segment valid`, () => {
    const core = testCore();
    const rings = new RingProcessor(core);
    const h = rings.allocate(1);
    const ram = core.ram;
    // Everything the fuzzer writes lives in one 64 KiB window; data buffers point anywhere.
    for (let i = 0; i < ram.length; i += 4096) ram[i] = (i >> 12) & 0xff;
    const win = 0x20_0000;
    const winAddr = RAM_BASE + win;
    const MAX = 64;
    const desc = winAddr;
    const avail = winAddr + 16 * MAX;
    const used = avail + 0x200;
    const tables = used + 0x400; // indirect tables
    const usedOff = used - RAM_BASE;
    const usedLen = 6 + 8 * MAX;
    const before = ram.slice();
    const dv = new DataView(ram.buffer, ram.byteOffset, ram.byteLength);
    const { rand, int, addr: pickAddr, len: pickLen } = ringFuzz(SEED, { tables, max: MAX });
    const writeDesc = (base: number, i: number): void => {
      const o = base - RAM_BASE + 16 * i;
      const a = pickAddr();
      dv.setUint32(o, a >>> 0, true);
      dv.setUint32(o + 4, Math.floor(a / 2 ** 32), true);
      dv.setUint32(o + 8, pickLen(), true);
      // Mostly NEXT/WRITE, sometimes INDIRECT, sometimes junk.
      const r = rand();
      const flags = r < 0.1 ? int(0x10000) : r < 0.2 ? 4 | int(4) : int(4);
      dv.setUint16(o + 12, flags, true);
      dv.setUint16(o + 14, int(MAX + 4), true);
    };
    let ok = 0;
    let broken = 0;
    let chains = 0;
    while (chains < CHAINS) {
      const size = rand() < 0.5 ? 1 << int(7) : 1 + int(MAX);
      const feats = int(4);
      expect(rings.setup(h, Math.min(size, MAX), desc, avail, used, feats)).toBe(0);
      const qs = Math.min(size, MAX);
      // Rewrite a few random descriptors each round (all of them now and then).
      const full = rand() < 0.05;
      for (let i = 0, n = full ? qs : 4; i < n; i++) writeDesc(desc, full ? i : int(qs));
      for (let i = 0, n = full ? 64 : 4; i < n; i++) writeDesc(tables, full ? i : int(64));
      const burst = 1 + int(8);
      for (let i = 0; i < qs; i++) dv.setUint16(avail - RAM_BASE + 4 + 2 * i, int(qs + 2), true);
      dv.setUint16(avail - RAM_BASE + 2, rand() < 0.9 ? burst : int(0x10000), true);
      for (let k = 0; k < burst && chains < CHAINS; k++, chains++) {
        const r = rings.pop(h);
        if (typeof r === 'number') {
          if (r < 0) broken++;
          break;
        }
        if (r === null) break;
        ok++;
        checkChain(r, qs);
        if (rand() < 0.5) {
          rings.push(h, r.head, int(2 ** 32));
          rings.publish(h);
        }
      }
    }
    // Nothing outside the fuzzer's own window changed except the used ring (device-written).
    const cmp = (a: number, b: number): void => {
      expect(Buffer.compare(ram.subarray(a, b), before.subarray(a, b))).toBe(0);
    };
    cmp(0, win);
    cmp(win + 0x10000, ram.length);
    const dataBefore = before.subarray(usedOff + usedLen, usedOff + 0x400);
    expect(Buffer.compare(ram.subarray(usedOff + usedLen, usedOff + 0x400), dataBefore)).toBe(0);
    expect(ok).toBeGreaterThan(1000);
    expect(broken).toBeGreaterThan(1000);
  }, 60_000);
});
