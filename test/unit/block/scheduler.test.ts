import { describe, it, expect } from 'vitest';
import { BlockError } from '../../../devices/block/backend.js';
import { CfqCoordinator, type CfqArbiter, type CfqOptions } from '../../../devices/block/cfq.js';
import { createCfqMemory, SharedCfqCoordinator } from '../../../devices/block/cfq-shared.js';
import { IoScheduler, type SchedulerOptions } from '../../../devices/block/scheduler.js';
import type { SchedulerPolicy } from '../../../main/vm/config.js';
import { FakeBackend, settle } from './fake-backend.js';

const K = 4096;
const buf = (): Uint8Array => new Uint8Array(K);

/**
 * Dispatches a read at 50 (so the head sits at 51), queues reads at `later` while it runs, then
 * releases calls one by one with one call in flight: returns the order the back end saw.
 */
async function orderFor(
  policy: SchedulerPolicy,
  later: number[],
  opts: SchedulerOptions = {},
): Promise<number[]> {
  const fake = new FakeBackend(1 << 24, true);
  const s = new IoScheduler(fake, { policy, inFlight: 1, cfq: new CfqCoordinator(), ...opts });
  const done = [s.read(50 * K, buf())];
  await settle();
  for (const o of later) done.push(s.read(o * K, buf()));
  while (fake.held.length > 0) await fake.release();
  await Promise.all(done);
  return fake.order();
}

describe('I/O scheduler: policies', () => {
  const later = [10, 90, 40, 60, 45];

  it('noop dispatches in arrival order', async () => {
    expect(await orderFor('noop', later)).toEqual([50, 10, 90, 40, 60, 45]);
  });

  it('sstf takes the request nearest the head, either side', async () => {
    expect(await orderFor('sstf', later)).toEqual([50, 45, 40, 60, 90, 10]);
  });

  it('scan sweeps up, then turns and sweeps down', async () => {
    expect(await orderFor('scan', later)).toEqual([50, 60, 90, 45, 40, 10]);
  });

  it('deadline sweeps one way in sorted order and wraps to the oldest', async () => {
    expect(await orderFor('deadline', later)).toEqual([50, 60, 90, 10, 40, 45]);
  });

  it('lifo dispatches the newest first', async () => {
    expect(await orderFor('lifo', later)).toEqual([50, 45, 60, 40, 90, 10]);
  });

  it('random picks a seeded random order: the same seed, the same order', async () => {
    const many = Array.from({ length: 20 }, (_, i) => 100 + i * 3);
    const a = await orderFor('random', many, { randomSeed: 7 });
    expect(await orderFor('random', many, { randomSeed: 7 })).toEqual(a);
    expect(await orderFor('random', many, { randomSeed: 8 })).not.toEqual(a);
    expect(a.slice(1)).not.toEqual(many);
    expect([...a.slice(1)].sort((x, y) => x - y)).toEqual(many);
  });

  it('cfq sweeps one disk in one direction (C-SCAN) and wraps to the lowest', async () => {
    expect(await orderFor('cfq', later)).toEqual([50, 60, 90, 10, 40, 45]);
  });

  it('deadline gives writes a batch after writesStarved read batches', async () => {
    const fake = new FakeBackend(1 << 24, true);
    const s = new IoScheduler(fake, {
      policy: 'deadline',
      inFlight: 1,
      deadline: { fifoBatch: 1, writesStarved: 2 },
    });
    const done = [10, 20, 30, 40, 50].map((o) => s.read(o * K, buf()));
    done.push(s.write(15 * K, buf()), s.write(25 * K, buf()));
    await settle();
    while (fake.held.length > 0) await fake.release();
    await Promise.all(done);
    expect(fake.order()).toEqual([10, 20, 25, 30, 40, 15, 50]);
  });

  /** A request behind the head while new ones keep arriving just ahead of it. */
  async function starvation(policy: SchedulerPolicy): Promise<{ servedAt: number | null }> {
    let now = 0;
    const fake = new FakeBackend(1 << 26, true);
    const s = new IoScheduler(fake, {
      policy,
      inFlight: 1,
      now: () => now,
      deadline: { fifoBatch: 1 },
    });
    const all = [s.read(50 * K, buf())];
    await settle();
    all.push(s.read(10 * K, buf())); // the one that may starve
    let servedAt: number | null = null;
    for (let step = 0; step < 12; step++) {
      now += 100;
      const head = fake.calls[fake.calls.length - 1].offset / K;
      all.push(s.read((head + 5) * K, buf())); // always ahead of the head, never adjacent
      await fake.release();
      if (servedAt === null && fake.order().includes(10)) servedAt = now;
    }
    while (fake.held.length > 0) await fake.release();
    await Promise.all(all);
    return { servedAt };
  }

  it('deadline serves an expired read (500 ms) ahead of the sorted order; sstf starves it', async () => {
    const d = await starvation('deadline');
    expect(d.servedAt).not.toBeNull();
    expect(d.servedAt!).toBeGreaterThanOrEqual(500);
    expect(d.servedAt!).toBeLessThanOrEqual(700);
    expect((await starvation('sstf')).servedAt).toBeNull();
    expect((await starvation('scan')).servedAt).toBeNull();
  });

  it('switches policy live and refuses unknown ones', async () => {
    const fake = new FakeBackend(1 << 24, true);
    const s = new IoScheduler(fake, { policy: 'noop', inFlight: 1 });
    const done = [s.read(50 * K, buf())];
    await settle();
    for (const o of [10, 90, 52]) done.push(s.read(o * K, buf()));
    s.setPolicy('sstf');
    expect(s.stats().policy).toBe('sstf');
    while (fake.held.length > 0) await fake.release();
    await Promise.all(done);
    expect(fake.order()).toEqual([50, 52, 90, 10]);
    expect(() => s.setPolicy('bfq' as SchedulerPolicy)).toThrow(RangeError);
  });
});

/** Two disks' coordinators: one in-thread coordinator, or two over one SharedArrayBuffer. */
type CfqPair = (opts: CfqOptions) => { ca: CfqArbiter; cb: CfqArbiter };
const cfqPairs: [string, CfqPair][] = [
  [
    'in one thread',
    (opts) => {
      const c = new CfqCoordinator(opts);
      return { ca: c, cb: c };
    },
  ],
  [
    'across threads (two coordinators over one SharedArrayBuffer)',
    (opts) => {
      const mem = createCfqMemory(4);
      return {
        ca: new SharedCfqCoordinator(mem, { ...opts, thread: 1 }),
        cb: new SharedCfqCoordinator(mem, { ...opts, thread: 2 }),
      };
    },
  ],
];

describe.each(cfqPairs)('I/O scheduler: cfq between disks %s', (_, coordinators) => {
  /**
   * Two disks sharing one coordinator, one call in flight each: runs until `calls` calls were
   * made, completing the oldest held call each step (or waiting for an idle pause to end), and
   * returns which disk each dispatch came from. `feed` runs after each step (the submitters).
   */
  async function interleave(
    a: FakeBackend,
    b: FakeBackend,
    calls: number,
    feed: () => void = () => {},
  ): Promise<string> {
    const seen = { a: 0, b: 0 };
    let order = '';
    const note = (): void => {
      for (; seen.a < a.calls.length; seen.a++) order += 'a';
      for (; seen.b < b.calls.length; seen.b++) order += 'b';
    };
    await settle();
    note();
    for (let step = 0; step < 1000 && order.length < calls; step++) {
      if (a.held.length === 0 && b.held.length === 0) {
        await new Promise((r) => setTimeout(r, 5));
        note();
        continue;
      }
      // The older of the two held calls completes first.
      const fa = a.held.length > 0 ? order.lastIndexOf('a') : Infinity;
      const fb = b.held.length > 0 ? order.lastIndexOf('b') : Infinity;
      await (fa <= fb ? a : b).release();
      feed();
      await settle();
      note();
    }
    while (a.held.length > 0) await a.release();
    while (b.held.length > 0) await b.release();
    return order;
  }

  const pair = (opts: CfqOptions, inFlight = 1) => {
    const { ca, cb } = coordinators(opts);
    const fa = new FakeBackend(1 << 26, true);
    const fb = new FakeBackend(1 << 26, true);
    const a = new IoScheduler(fa, { policy: 'cfq', inFlight, cfq: ca });
    const b = new IoScheduler(fb, { policy: 'cfq', inFlight, cfq: cb });
    const members = (): number => (ca === cb ? ca.memberCount : ca.memberCount + cb.memberCount);
    return { fa, fb, a, b, members };
  };
  // Every other 4 KiB block: nothing merges.
  const flood = (s: IoScheduler, n: number) =>
    Array.from({ length: n }, (_, i) => s.read(i * 2 * K, buf()));

  it('two flooding disks take turns in slices of sliceRequests', async () => {
    const { fa, fb, a, b } = pair({ sliceRequests: 4, sliceMs: 1e9, idleMs: 0 });
    const all = [...flood(a, 12), ...flood(b, 12)];
    const order = await interleave(fa, fb, 24);
    await Promise.all(all);
    expect(order).toBe('aaaabbbbaaaabbbbaaaabbbb');
  });

  it('a sequential flood on one disk cannot starve a synchronous reader on another', async () => {
    for (const idleMs of [0, 20]) {
      const { fa, fb, a, b } = pair({ sliceRequests: 4, sliceMs: 1e9, idleMs });
      // Disk a: a stream of 40 reads, queued all at once.
      const all = flood(a, 40);
      // Disk b: one read at a time, the next as soon as the last completes (20 in all).
      let left = 20;
      let waiting = false;
      const feed = (): void => {
        if (waiting || left === 0) return;
        waiting = true;
        left--;
        all.push(
          b.read((1000 + left * 7) * K, buf()).then(() => {
            waiting = false;
          }),
        );
      };
      feed();
      const order = await interleave(fa, fb, 60, feed);
      await Promise.all(all);
      expect(order.replace(/a/g, '').length).toBe(20);
      // Whenever b has a request queued, at most one slice of a's (4) goes before it.
      const whileBWaits = order.slice(0, order.lastIndexOf('b'));
      for (const run of whileBWaits.split('b')) expect(run.length, order).toBeLessThanOrEqual(4);
      expect(order.replace(/b/g, '').length).toBe(40);
      if (idleMs > 0) {
        // b keeps its slice while it resubmits at once (slice_idle): runs of up to 4.
        expect(whileBWaits).toMatch(/abbbba/);
      } else {
        // Without the idle pause b hands the slice on each time it runs dry.
        expect(order.slice(0, order.lastIndexOf('a'))).not.toMatch(/bb/);
      }
    }
  });

  it('an idle disk is skipped: a lone disk dispatches at full depth', async () => {
    const { fa, fb, a, b, members } = pair({ sliceRequests: 2, sliceMs: 1e9, idleMs: 0 }, 4);
    const all = flood(a, 8);
    await settle();
    expect(fa.calls.length).toBe(4);
    while (fa.held.length > 0) await fa.release();
    await Promise.all(all);
    expect(fa.calls.length).toBe(8);
    expect(fb.calls.length).toBe(0);
    await Promise.all([a.close(), b.close()]);
    expect(members()).toBe(0);
  });

  it('switching a disk away from cfq leaves the round and hands on its slice', async () => {
    const { fa, fb, a, b, members } = pair({ sliceRequests: 2, sliceMs: 1e9, idleMs: 0 });
    const all = [...flood(a, 6), ...flood(b, 6)];
    await settle();
    expect(members()).toBe(2);
    b.setPolicy('noop');
    expect(members()).toBe(1);
    const order = await interleave(fa, fb, 12);
    await Promise.all(all);
    expect(order.length).toBe(12);
  });
});

describe('I/O scheduler: merging', () => {
  it('merges contiguous reads (back and front) into one readv, each buffer getting its data', async () => {
    const fake = new FakeBackend();
    const s = new IoScheduler(fake, { policy: 'noop', inFlight: 1 });
    const bufs = [2, 1, 3, 0].map(() => buf());
    await Promise.all([2, 1, 3, 0].map((o, i) => s.read(o * K, bufs[i])));
    expect(fake.calls).toEqual([{ op: 'read', offset: 0, length: 4 * K, segments: 4 }]);
    [2, 1, 3, 0].forEach((o, i) => expect(bufs[i][0]).toBe((o * 8) & 0xff));
    expect(s.stats().merges).toBe(3);
    expect(s.stats().backendCalls).toBe(1);
  });

  it('merges writes, never a read with a write, and keeps data in place', async () => {
    const fake = new FakeBackend();
    const s = new IoScheduler(fake, { policy: 'noop', inFlight: 1 });
    const w = (o: number): Uint8Array => new Uint8Array(K).fill(o);
    await Promise.all([
      s.write(7 * K, w(7)),
      s.write(8 * K, w(8)),
      s.read(9 * K, buf()),
      s.write(10 * K, w(10)),
    ]);
    expect(fake.calls.map((c) => [c.op, c.offset / K, c.segments])).toEqual([
      ['write', 7, 2],
      ['read', 9, 1],
      ['write', 10, 1],
    ]);
    expect(fake.data[7 * K]).toBe(7);
    expect(fake.data[9 * K - 1]).toBe(8);
    expect(fake.data[10 * K]).toBe(10);
  });

  it('respects the merge size limit and merges discards without buffers', async () => {
    const fake = new FakeBackend();
    const s = new IoScheduler(fake, { policy: 'noop', inFlight: 1, maxMergeBytes: 2 * K });
    await Promise.all([0, 1, 2, 3].map((o) => s.read(o * K, buf())));
    expect(fake.calls.map((c) => c.segments)).toEqual([2, 2]);
    fake.calls.length = 0;
    await Promise.all([s.discard(0, 8 * K), s.discard(8 * K, 8 * K), s.discard(32 * K, K)]);
    expect(fake.calls.map((c) => [c.op, c.offset / K, c.length / K])).toEqual([
      ['discard', 0, 16],
      ['discard', 32, 1],
    ]);
  });

  it('does not merge reads when the back end has no readv', async () => {
    const fake = new FakeBackend();
    const plain = {
      name: fake.name,
      size: fake.size,
      readOnly: false,
      read: fake.read.bind(fake),
      write: fake.write.bind(fake),
      flush: fake.flush.bind(fake),
      discard: fake.discard.bind(fake),
      writeZeroes: fake.writeZeroes.bind(fake),
      close: fake.close.bind(fake),
    };
    const s = new IoScheduler(plain, { inFlight: 1 });
    await Promise.all([0, 1, 2].map((o) => s.read(o * K, buf())));
    expect(fake.calls.length).toBe(3);
    expect(s.stats().merges).toBe(0);
  });
});

describe('I/O scheduler: flush barrier, errors, depth', () => {
  it('sends flush after the writes queued before it, and holds later ones until it is done', async () => {
    const fake = new FakeBackend(1 << 24, true);
    const s = new IoScheduler(fake, { inFlight: 4 });
    const log: string[] = [];
    const p = [
      s.write(0, buf()).then(() => log.push('w0')),
      s.write(10 * K, buf()).then(() => log.push('w10')),
      s.flush().then(() => log.push('flush')),
      s.write(20 * K, buf()).then(() => log.push('w20')),
    ];
    await settle();
    expect(fake.calls.map((c) => c.op)).toEqual(['write', 'write']);
    await fake.release();
    expect(fake.calls.length).toBe(2); // one write still running: no flush yet
    await fake.release();
    expect(fake.calls.map((c) => c.op)).toEqual(['write', 'write', 'flush']);
    await fake.release();
    expect(fake.calls.map((c) => c.op)).toEqual(['write', 'write', 'flush', 'write']);
    await fake.release();
    await Promise.all(p);
    expect(log).toEqual(['w0', 'w10', 'flush', 'w20']);
  });

  it('coalesces back-to-back flushes with nothing between them', async () => {
    const fake = new FakeBackend();
    const s = new IoScheduler(fake);
    await Promise.all([s.flush(), s.flush(), s.flush()]);
    expect(fake.calls.filter((c) => c.op === 'flush').length).toBe(1);
    expect(s.stats().requests.flush).toBe(3);
  });

  it('fails only the request at fault when a merged call fails', async () => {
    const fake = new FakeBackend();
    fake.failOffset = 2 * K + 100;
    const s = new IoScheduler(fake, { inFlight: 1 });
    const bufs = [0, 1, 2, 3].map(() => buf());
    const results = await Promise.allSettled([0, 1, 2, 3].map((o, i) => s.read(o * K, bufs[i])));
    expect(results.map((r) => r.status)).toEqual([
      'fulfilled',
      'fulfilled',
      'rejected',
      'fulfilled',
    ]);
    expect((results[2] as PromiseRejectedResult).reason).toBeInstanceOf(BlockError);
    expect(bufs[3][0]).toBe(24);
    expect(s.stats().errors).toBe(1);
    expect(s.stats().bytesRead).toBe(3 * K);
  });

  it('keeps going when the back end throws synchronously', async () => {
    const fake = new FakeBackend();
    const s = new IoScheduler(
      Object.assign(Object.create(fake) as FakeBackend, {
        flush: (): Promise<void> => {
          throw new Error('boom');
        },
      }),
    );
    await expect(s.flush()).rejects.toThrow('boom');
    await expect(s.read(0, buf())).resolves.toBeUndefined();
  });

  it('bounds the calls in flight and counts depth, kinds, bytes and latency', async () => {
    const fake = new FakeBackend();
    const s = new IoScheduler(fake, { policy: 'sstf', inFlight: 3 });
    const reads = Array.from({ length: 40 }, (_, i) => s.read(((i * 37) % 1000) * 2 * K, buf()));
    const writes = Array.from({ length: 10 }, (_, i) =>
      s.write((2001 + i * 2) * K, new Uint8Array(K)),
    );
    await Promise.all([...reads, ...writes, s.flush()]);
    expect(fake.maxRunning).toBeLessThanOrEqual(3);
    const st = s.stats();
    expect(st.inFlightLimit).toBe(3);
    expect(st.maxQueueDepth).toBe(51);
    expect(st.queueDepth).toBe(0);
    expect(st.requests).toEqual({
      total: 51,
      read: 40,
      write: 10,
      flush: 1,
      discard: 0,
      writeZeroes: 0,
    });
    expect(st.bytesRead).toBe(40 * K);
    expect(st.bytesWritten).toBe(10 * K);
    expect(st.latencyUs.count).toBe(51);
    expect(st.latencyUs.p50).toBeGreaterThan(0);
    expect(st.latencyUs.p99).toBeGreaterThanOrEqual(st.latencyUs.p50);
  });

  it('refuses writes on a read-only disk without calling the back end', async () => {
    const fake = new FakeBackend(1 << 20, false, true);
    const s = new IoScheduler(fake);
    for (const p of [s.write(0, buf()), s.discard(0, K), s.writeZeroes(0, K, true)]) {
      await expect(p).rejects.toMatchObject({ kind: 'read-only' });
    }
    await expect(s.read(0, buf())).resolves.toBeUndefined();
    expect(fake.calls.map((c) => c.op)).toEqual(['read']);
    expect(s.stats().errors).toBe(3);
  });

  it('close completes queued requests, closes the back end, then refuses', async () => {
    const fake = new FakeBackend(1 << 20, true);
    const s = new IoScheduler(fake, { inFlight: 1 });
    const r = [s.read(0, buf()), s.read(8 * K, buf())];
    const closed = s.close();
    await settle();
    while (fake.held.length > 0) await fake.release();
    await Promise.all(r);
    await closed;
    expect(fake.closed).toBe(true);
    await expect(s.read(0, buf())).rejects.toBeInstanceOf(BlockError);
  });

  it('rejects a bad in-flight setting', () => {
    expect(() => new IoScheduler(new FakeBackend(), { inFlight: 0 })).toThrow(RangeError);
  });
});

describe('I/O scheduler: hostile requests', () => {
  it('refuses negative, huge, fractional and unaligned ranges before the back end', async () => {
    const fake = new FakeBackend(1 << 20);
    const s = new IoScheduler(fake);
    const bad: [number, number][] = [
      [-512, 512],
      [1 << 20, 512],
      [(1 << 20) - 512, 1024],
      [511, 512],
      [0, 513],
      [2 ** 53, 512],
      [2 ** 64, 512],
      [NaN, 512],
      [-Infinity, 512],
      [1.5, 512],
    ];
    for (const [off, len] of bad) {
      await expect(s.read(off, new Uint8Array(len))).rejects.toMatchObject({
        kind: 'out-of-range',
      });
      await expect(s.discard(off, len)).rejects.toBeInstanceOf(BlockError);
      await expect(s.writeZeroes(off, len, true)).rejects.toBeInstanceOf(BlockError);
    }
    await expect(s.discard(0, Number.MAX_VALUE)).rejects.toBeInstanceOf(BlockError);
    expect(fake.calls).toEqual([]);
    expect(s.stats().errors).toBe(bad.length * 3 + 1);
    expect(s.stats().queueDepth).toBe(0);
  });

  it('survives a seeded storm of random requests under every policy', async () => {
    let seed = 12345;
    const rnd = (n: number): number => {
      // xorshift32: cheap, and its low bits are as good as its high ones (unlike an LCG's).
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      return (seed >>> 0) % n;
    };
    const fake = new FakeBackend(1 << 22);
    const s = new IoScheduler(fake, { inFlight: 3 });
    const policies: SchedulerPolicy[] = ['noop', 'sstf', 'scan', 'deadline'];
    const all: Promise<'ok' | 'refused'>[] = [];
    for (let i = 0; i < 3000; i++) {
      const valid = rnd(4) !== 0;
      const off = valid ? rnd(1 << 13) * 512 - (rnd(8) === 0 ? 4096 : 0) : rnd(1 << 30) - 5;
      const len = valid ? (1 + rnd(16)) * 512 : rnd(3000);
      const kind = rnd(10);
      const p =
        kind < 5
          ? s.read(off, new Uint8Array(len))
          : kind < 8
            ? s.write(off, new Uint8Array(len))
            : kind < 9
              ? s.discard(off, len)
              : s.flush();
      all.push(
        p.then(
          () => 'ok' as const,
          (e: unknown) => {
            expect(e).toBeInstanceOf(BlockError);
            return 'refused' as const;
          },
        ),
      );
      if (rnd(100) === 0) s.setPolicy(policies[rnd(4)]);
      if (rnd(50) === 0) await settle();
    }
    const results = await Promise.all(all);
    expect(results.filter((r) => r === 'ok').length).toBeGreaterThan(1500);
    expect(s.stats().queueDepth).toBe(0);
    expect(s.stats().errors).toBe(results.filter((r) => r === 'refused').length);
    expect(fake.maxRunning).toBeLessThanOrEqual(3);
  });
});
