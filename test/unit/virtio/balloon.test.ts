/**
 * virtio-balloon played by the mock driver: inflate/deflate with PFN arrays, the config space,
 * statistics, free page reporting, page poison, and hostile input (PFNs outside RAM, duplicates,
 * oversized arrays, racing inflate/deflate, short stats buffers).
 */
import { it, expect } from 'vitest';
import { MockDriver, RAM_BASE, RAM_SIZE, testCore, forEachRingLayout } from './driver.js';
import {
  VirtioBalloon,
  BALLOON_F,
  MAX_PFNS_PER_CHAIN,
  type VirtioBalloonOptions,
} from '../../../devices/virtio/balloon/device.js';
import {
  hostPageReleaser,
  type PageReleaser,
} from '../../../devices/virtio/balloon/host-memory.js';
import { MMIO } from '../../../devices/virtio/constants.js';

const PAGE = 4096;
const BASE_PFN = RAM_BASE / PAGE;
/** Test pages well above the mock driver's rings and buffers (which start at RAM + 1 MiB). */
const FIRST = 8 * 256; // page 2048 = RAM + 8 MiB

class FakeReleaser implements PageReleaser {
  calls: [number, number][] = [];
  constructor(readonly pageSize = 4096) {}
  release(ram: Uint8Array, offset: number, length: number): void {
    this.calls.push([offset, length]);
    ram.fill(0, offset, offset + length);
  }
}

function setup(opts: Partial<VirtioBalloonOptions> = {}, accept?: (f: bigint) => bigint) {
  const rel = new FakeReleaser();
  const dev = new VirtioBalloon({
    ram: testCore().ram,
    ramBase: RAM_BASE,
    releaser: rel,
    ...opts,
  });
  const d = new MockDriver(dev).init({ accept });
  return { d, dev, rel };
}

function pfnArray(d: MockDriver, pfns: number[]): number {
  const a = d.mem.alloc(pfns.length * 4 || 4, 4);
  const dv = new DataView(new ArrayBuffer(pfns.length * 4));
  pfns.forEach((p, i) => dv.setUint32(i * 4, p >>> 0, true));
  d.mem.write(a, new Uint8Array(dv.buffer));
  return a;
}

function send(d: MockDriver, q: number, pfns: number[]): void {
  const a = pfnArray(d, pfns);
  d.queues[q].add([{ addr: a, len: pfns.length * 4 }]);
  d.kick(q);
}

const cfg = (d: MockDriver, off: number): number => d.r(MMIO.config + off);

forEachRingLayout('virtio-balloon', () => {
  it('offers its features per setting and numbers the queues that exist', () => {
    const a = new VirtioBalloon({ ram: new Uint8Array(PAGE * 16), ramBase: 0, releaser: null });
    expect(a.queueMaxSizes).toHaveLength(2);
    expect(a.features & (1n << BigInt(BALLOON_F.statsVq))).toBe(0n);
    const b = new VirtioBalloon({
      ram: new Uint8Array(PAGE * 16),
      ramBase: 0,
      releaser: null,
      statsPeriodS: 2,
      freePageReporting: true,
      deflateOnOom: true,
    });
    expect(b.queueMaxSizes).toHaveLength(4);
    for (const f of [BALLOON_F.statsVq, BALLOON_F.reporting, BALLOON_F.deflateOnOom]) {
      expect(b.features & (1n << BigInt(f))).not.toBe(0n);
    }
    expect(b.features & 1n).toBe(0n); // MUST_TELL_HOST is not offered
  });

  it('the target reaches num_pages with a config interrupt; the driver writes actual', () => {
    const { d, dev } = setup();
    dev.setTargetPages(300);
    expect(cfg(d, 0)).toBe(300);
    expect(d.ack() & 2).toBe(2);
    d.transport.write(MMIO.config + 4, 4, 300);
    expect(dev.actualPages).toBe(300);
    d.transport.write(MMIO.config + 0, 4, 5); // num_pages is the device's: ignored
    expect(cfg(d, 0)).toBe(300);
    dev.setTargetPages(1e12); // clamped to RAM
    expect(cfg(d, 0)).toBe(RAM_SIZE / PAGE);
  });

  it('inflate holds the pages and releases contiguous runs in one call; deflate gives them back', () => {
    const { d, dev, rel } = setup();
    const ram = d.core.ram;
    ram.fill(0xab, FIRST * PAGE, (FIRST + 8) * PAGE);
    // Linux sends pages in any order: 3 contiguous + 1 apart.
    send(
      d,
      0,
      [FIRST + 2, FIRST, FIRST + 1, FIRST + 5].map((p) => p + BASE_PFN),
    );
    expect(d.queues[0].takeUsed()).toEqual([{ id: 0, len: 0 }]);
    expect(rel.calls).toEqual([
      [FIRST * PAGE, 3 * PAGE],
      [(FIRST + 5) * PAGE, PAGE],
    ]);
    expect(dev.heldPageCount).toBe(4);
    expect(ram[FIRST * PAGE]).toBe(0);
    expect(ram[(FIRST + 3) * PAGE]).toBe(0xab); // not named: untouched
    expect(dev.metrics).toMatchObject({ pages_inflated: 4, bytes_released: 4 * PAGE });
    send(
      d,
      1,
      [FIRST, FIRST + 5].map((p) => p + BASE_PFN),
    );
    expect(d.queues[1].takeUsed()).toHaveLength(1);
    expect(dev.heldPageCount).toBe(2);
    expect(dev.isHeld(FIRST)).toBe(false);
    expect(dev.isHeld(FIRST + 1)).toBe(true);
  });

  it('deflates below the target (deflate on OOM) are counted apart from the ones asked for', () => {
    const { d, dev } = setup({ deflateOnOom: true });
    const pfns = (n: number, from = 0) =>
      Array.from({ length: n }, (_, i) => FIRST + from + i + BASE_PFN);
    dev.setTargetPages(8);
    send(d, 0, pfns(8));
    dev.setTargetPages(6); // the host asks for 2 back
    send(d, 1, pfns(2));
    expect(dev.metrics.pages_deflated).toBe(2);
    expect(dev.metrics.pages_deflated_unasked).toBe(0);
    send(d, 1, pfns(3, 2)); // the guest takes 3 more on its own
    expect(dev.metrics.pages_deflated).toBe(5);
    expect(dev.metrics.pages_deflated_unasked).toBe(3);
    expect(dev.info().deflatedUnaskedBytes).toBe(3 * PAGE);
  });

  it('hostile PFNs: outside RAM, duplicates, deflate of pages not held — counted, nothing else touched', () => {
    const { d, dev, rel } = setup();
    const ram = d.core.ram;
    ram.fill(0x5a, FIRST * PAGE, (FIRST + 4) * PAGE);
    const before = ram.slice();
    const outside = [0, BASE_PFN - 1, BASE_PFN + RAM_SIZE / PAGE, 0xffff_ffff];
    send(d, 0, [...outside, FIRST + BASE_PFN, FIRST + BASE_PFN]);
    expect(dev.metrics.bad_pfns).toBe(4);
    expect(dev.metrics.duplicate_pfns).toBe(1);
    expect(dev.heldPageCount).toBe(1);
    expect(rel.calls).toEqual([[FIRST * PAGE, PAGE]]);
    send(d, 1, [FIRST + 1 + BASE_PFN, 0xffff_ffff]); // not held; outside
    expect(dev.metrics.duplicate_pfns).toBe(2);
    expect(dev.metrics.bad_pfns).toBe(5);
    expect(dev.heldPageCount).toBe(1);
    // Only the one page named (and the rings/arrays the driver wrote) changed.
    for (let i = (FIRST + 1) * PAGE; i < (FIRST + 4) * PAGE; i++) {
      if (ram[i] !== before[i]) throw new Error(`byte ${i} changed`);
    }
    expect(d.needsReset).toBe(false);
  });

  it('an array longer than any driver sends is cut at MAX_PFNS_PER_CHAIN; odd tails ignored', () => {
    const { d, dev } = setup();
    const pfns = Array.from(
      { length: MAX_PFNS_PER_CHAIN + 10 },
      (_, i) => FIRST + (i % 1024) + BASE_PFN,
    );
    send(d, 0, pfns);
    expect(dev.heldPageCount).toBe(1024);
    expect(dev.metrics.duplicate_pfns).toBe(MAX_PFNS_PER_CHAIN - 1024);
    expect(dev.metrics.ignored_pfns).toBe(10);
    const a = pfnArray(d, [BASE_PFN + 1]);
    d.queues[0].add([{ addr: a, len: 3 }]); // not a whole PFN
    d.kick(0);
    expect(dev.metrics.ignored_pfns).toBe(11);
  });

  it('inflate and deflate racing on the same pages end consistent', () => {
    const { d, dev } = setup();
    const p = [FIRST, FIRST + 1].map((x) => x + BASE_PFN);
    // Both queues filled before either kick; served in kick order.
    d.queues[1].add([{ addr: pfnArray(d, p), len: 8 }]);
    d.queues[0].add([{ addr: pfnArray(d, p), len: 8 }]);
    d.kick(1);
    d.kick(0);
    expect(dev.heldPageCount).toBe(2);
    expect(dev.metrics.duplicate_pfns).toBe(2); // the early deflate named pages not held
    send(d, 1, p);
    send(d, 1, p);
    expect(dev.heldPageCount).toBe(0);
  });

  it('with 16 KiB host pages only whole host pages are released', () => {
    const rel = new FakeReleaser(16384);
    const { d } = setup({ releaser: rel });
    send(
      d,
      0,
      [FIRST, FIRST + 1, FIRST + 2].map((p) => p + BASE_PFN),
    );
    expect(rel.calls).toEqual([]);
    send(
      d,
      0,
      [FIRST + 3, FIRST + 5].map((p) => p + BASE_PFN),
    );
    expect(rel.calls).toEqual([[FIRST * PAGE, 16384]]);
  });

  it('without a releaser the balloon works and says memory is not returned', () => {
    const { d, dev } = setup({ releaser: null, notReturnedReason: 'addon not built' });
    d.core.ram.fill(7, FIRST * PAGE, (FIRST + 1) * PAGE);
    send(d, 0, [FIRST + BASE_PFN]);
    expect(dev.heldPageCount).toBe(1);
    expect(d.core.ram[FIRST * PAGE]).toBe(7); // held pages are never written by the host
    const i = dev.info();
    expect(i.returnedToHost).toBe(false);
    expect(i.notReturned).toMatch(/memory not returned to host: addon not built/);
  });

  it('stats: reads the tagged values, holds the buffer, and gives it back every period', () => {
    const { d, dev } = setup({ statsPeriodS: 1 });
    const q = d.queues[2];
    const entries: [number, bigint][] = [
      [4, 100n << 20n],
      [5, 512n << 20n],
      [6, 200n << 20n],
      [3, 1234n],
      [42, 1n], // unknown tag: ignored
    ];
    const buf = new DataView(new ArrayBuffer(entries.length * 10));
    entries.forEach(([t, v], i) => {
      buf.setUint16(i * 10, t, true);
      buf.setBigUint64(i * 10 + 2, v, true);
    });
    const a = d.mem.put(new Uint8Array(buf.buffer));
    q.add([{ addr: a, len: buf.byteLength }]);
    d.kick(2);
    expect(dev.info().stats).toEqual({
      memFree: 100 << 20,
      memTotal: 512 << 20,
      memAvailable: 200 << 20,
      minorFaults: 1234,
    });
    expect(q.takeUsed()).toEqual([]); // held until the next period
    dev.tick(500);
    expect(q.takeUsed()).toEqual([]);
    dev.tick(1500);
    expect(q.takeUsed()).toEqual([{ id: 0, len: 0 }]);
    expect(dev.metrics.stats_updates).toBe(1);
  });

  it('stats buffers that are too short or writable are counted, never a crash', () => {
    const { d, dev } = setup({ statsPeriodS: 1 });
    const q = d.queues[2];
    q.add([{ addr: d.mem.alloc(7), len: 7 }]);
    d.kick(2);
    expect(dev.metrics.stats_bad).toBe(1);
    q.add([{ addr: d.mem.alloc(20), len: 20, write: true }]);
    d.kick(2);
    expect(dev.metrics.stats_bad).toBe(2);
    expect(q.takeUsed()).toHaveLength(1); // the first held buffer went back
    expect(d.needsReset).toBe(false);
  });

  it('free page reporting releases the reported blocks (queue 2 without stats, 3 with)', () => {
    for (const statsPeriodS of [0, 5]) {
      const { d, dev, rel } = setup({ freePageReporting: true, statsPeriodS });
      const qi = statsPeriodS ? 3 : 2;
      const addr = RAM_BASE + FIRST * PAGE;
      d.core.ram.fill(9, FIRST * PAGE, (FIRST + 512) * PAGE);
      d.queues[qi].add([{ addr, len: 2 << 20, write: true }]);
      d.kick(qi);
      expect(d.queues[qi].takeUsed()).toHaveLength(1);
      expect(rel.calls).toEqual([[FIRST * PAGE, 2 << 20]]);
      expect(d.core.ram[FIRST * PAGE + 100]).toBe(0);
      expect(dev.metrics).toMatchObject({ reports: 1, reported_bytes: 2 << 20 });
      expect(dev.heldPageCount).toBe(0); // reported pages stay the guest's
    }
  });

  it('page poison: a non-zero poison_val keeps reported pages resident; zero releases them', () => {
    const { d, dev, rel } = setup({ freePageReporting: true });
    d.transport.write(MMIO.config + 12, 4, 0xaaaa_aaaa);
    expect(cfg(d, 12)).toBe(0xaaaa_aaaa);
    d.core.ram.fill(0xaa, FIRST * PAGE, (FIRST + 1) * PAGE);
    d.queues[2].add([{ addr: RAM_BASE + FIRST * PAGE, len: PAGE, write: true }]);
    d.kick(2);
    expect(rel.calls).toEqual([]);
    expect(d.core.ram[FIRST * PAGE]).toBe(0xaa);
    expect(dev.metrics.reports_kept_poison).toBe(1);
    d.transport.write(MMIO.config + 12, 4, 0);
    d.queues[2].add([{ addr: RAM_BASE + FIRST * PAGE, len: PAGE, write: true }]);
    d.kick(2);
    expect(rel.calls).toHaveLength(1);
  });

  it('a driver that does not accept PAGE_POISON cannot make reports stay', () => {
    const { d, rel } = setup(
      { freePageReporting: true },
      (f) => f & ~(1n << BigInt(BALLOON_F.pagePoison)),
    );
    d.transport.write(MMIO.config + 12, 4, 0xaaaa_aaaa); // meaningless without the feature
    d.queues[2].add([{ addr: RAM_BASE + FIRST * PAGE, len: PAGE, write: true }]);
    d.kick(2);
    expect(rel.calls).toHaveLength(1);
  });

  it('saves and restores the held pages, target, actual and stats buffer', () => {
    const { d, dev } = setup({ statsPeriodS: 1 });
    dev.setTargetPages(10);
    send(
      d,
      0,
      [FIRST, FIRST + 1, FIRST + 7].map((p) => p + BASE_PFN),
    );
    d.transport.write(MMIO.config + 4, 4, 3);
    const s = JSON.parse(JSON.stringify(dev.saveState()));
    expect(s.held).toEqual([
      [FIRST, 2],
      [FIRST + 7, 1],
    ]);
    const other = new VirtioBalloon({ ram: d.core.ram, ramBase: RAM_BASE, releaser: null });
    other.restoreState(s);
    expect(other.heldPageCount).toBe(3);
    expect(other.targetPages).toBe(10);
    expect(other.actualPages).toBe(3);
    expect(() => other.restoreState({ ...s, held: [[RAM_SIZE / PAGE, 1]] })).toThrow(/outside/);
    dev.reset();
    expect(dev.heldPageCount).toBe(0);
    expect(dev.targetPages).toBe(10); // the host's wish survives a device reset
  });

  it('with the real addon, released guest pages read back as zero', () => {
    const r = hostPageReleaser();
    if (!r.releaser) {
      expect(r.reason).toBeTruthy();
      return;
    }
    const { d, dev } = setup({ releaser: r.releaser });
    d.core.ram.fill(0xee, FIRST * PAGE, (FIRST + 16) * PAGE);
    send(
      d,
      0,
      Array.from({ length: 16 }, (_, i) => FIRST + i + BASE_PFN),
    );
    expect(dev.metrics.bytes_released).toBe(16 * PAGE);
    expect(d.core.ram.subarray(FIRST * PAGE, (FIRST + 16) * PAGE).every((x) => x === 0)).toBe(true);
    expect(d.core.ram[(FIRST + 16) * PAGE]).toBe(0);
  });
});
