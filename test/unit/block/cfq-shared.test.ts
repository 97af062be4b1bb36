import { describe, it, expect } from 'vitest';
import { Worker } from 'node:worker_threads';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import {
  cfqMemoryStats,
  createCfqMemory,
  releaseCfqThread,
  SharedCfqCoordinator,
} from '../../../devices/block/cfq-shared.js';
import { IoScheduler } from '../../../devices/block/scheduler.js';
import { FakeBackend, settle } from './fake-backend.js';

const K = 4096;
const buf = (): Uint8Array => new Uint8Array(K);
const flood = (s: IoScheduler, n: number) =>
  Array.from({ length: n }, (_, i) => s.read(i * 2 * K, buf()));
const opts = { sliceRequests: 2, sliceMs: 1e9, idleMs: 0 };

describe('cfq across threads: slots', () => {
  it("a dead thread's slots and slice are freed by the host, and the others go on", async () => {
    const mem = createCfqMemory(4);
    // Thread 7 floods and holds the slice, then "dies" (its coordinator is simply dropped).
    const dead = new SharedCfqCoordinator(mem, { ...opts, thread: 7 });
    const fd = new FakeBackend(1 << 26, true);
    const d = new IoScheduler(fd, { policy: 'cfq', inFlight: 1, cfq: dead });
    void flood(d, 8).map((p) => p.catch(() => {}));
    await settle();
    expect(fd.calls.length).toBe(1);
    const live = new SharedCfqCoordinator(mem, { ...opts, thread: 8 });
    const fa = new FakeBackend(1 << 26, true);
    const a = new IoScheduler(fa, { policy: 'cfq', inFlight: 1, cfq: live });
    const reads = flood(a, 3);
    await settle();
    // The dead disk holds the slice with a call in flight: the live one waits.
    expect(fa.calls.length).toBe(0);
    expect(cfqMemoryStats(mem).slotsUsed).toBe(2);
    expect(releaseCfqThread(mem, 7)).toBe(1);
    expect(cfqMemoryStats(mem).slotsUsed).toBe(1);
    // The live disk's thread is woken (Atomics.notify → waitAsync) and dispatches.
    for (let i = 0; i < 50 && fa.calls.length === 0; i++) await settle();
    expect(fa.calls.length).toBe(1);
    while (fa.calls.length < 3 || fa.held.length > 0) {
      if (fa.held.length > 0) await fa.release();
      else await settle();
    }
    await Promise.all(reads);
    await a.close();
    expect(cfqMemoryStats(mem).slotsUsed).toBe(0);
  });

  it('a disk beyond the last slot falls back to in-thread slices, logged, never an error', async () => {
    const mem = createCfqMemory(1);
    const logs: string[] = [];
    const cfq = new SharedCfqCoordinator(mem, { ...opts, log: (m) => logs.push(m) });
    const fa = new FakeBackend(1 << 26, false);
    const fb = new FakeBackend(1 << 26, false);
    const a = new IoScheduler(fa, { policy: 'cfq', cfq });
    const b = new IoScheduler(fb, { policy: 'cfq', cfq });
    expect(cfq.overflowed).toBe(1);
    expect(cfqMemoryStats(mem)).toMatchObject({ slotsUsed: 1, overflow: 1 });
    expect(logs.join()).toMatch(/all 1 shared slots are taken/);
    await Promise.all([...flood(a, 4), ...flood(b, 4)]);
    expect([fa.calls.length, fb.calls.length]).toEqual([4, 4]);
    await Promise.all([a.close(), b.close()]);
    expect(cfq.memberCount).toBe(0);
    expect(cfqMemoryStats(mem).slotsUsed).toBe(0);
  });
});

describe('cfq across threads: a real worker thread', () => {
  it("a flooding disk in another thread cannot keep this thread's disk from dispatching", async () => {
    const sliceRequests = 4;
    const mem = createCfqMemory();
    const calls = new SharedArrayBuffer(4);
    const flooded = new Int32Array(calls);
    // The worker runs TypeScript through tsx's loader, registered in the worker itself.
    const tsx = pathToFileURL(createRequire(import.meta.url).resolve('tsx/esm/api')).href.replace(
      /\.cjs$/,
      '.mjs',
    );
    const script = new URL('./cfq-flood-worker.ts', import.meta.url).href;
    const w = new Worker(
      `import(${JSON.stringify(tsx)}).then((t) => { t.register(); return import(${JSON.stringify(script)}); });`,
      { eval: true, workerData: { mem, calls, sliceRequests } },
    );
    const thread = w.threadId;
    try {
      await new Promise((r, j) => {
        w.once('message', r);
        w.once('error', j);
      });
      while (Atomics.load(flooded, 0) < 10) await new Promise((r) => setTimeout(r, 1));
      // This thread: a synchronous reader (one read at a time) on its own disk.
      const cfq = new SharedCfqCoordinator(mem, { sliceRequests, sliceMs: 1e9, idleMs: 0 });
      const fb = new FakeBackend(1 << 26, false);
      const b = new IoScheduler(fb, { policy: 'cfq', inFlight: 1, cfq });
      // A read's wait: the flood's calls from queuing the read to its dispatch to this disk's
      // back end (counted at dispatch, so a host that is slow to resume this thread after the
      // read completes, while the flood has the next slice, does not count against the wait).
      const gaps: number[] = [];
      let dispatchedAt = 0;
      fb.onCall = () => (dispatchedAt = Atomics.load(flooded, 0));
      for (let i = 0; i < 20; i++) {
        const before = Atomics.load(flooded, 0);
        await b.read((1000 + i * 7) * K, buf());
        gaps.push(dispatchedAt - before);
      }
      // Each read waited at most for the flood's current slice (plus its one call in flight).
      // The first read registers this disk and may meet a slice being handed over (the flood
      // can pass the slice to itself once before it sees the new start time): two slices.
      expect(gaps[0], gaps.join()).toBeLessThanOrEqual(2 * sliceRequests + 1);
      expect(Math.max(...gaps.slice(1)), gaps.join()).toBeLessThanOrEqual(sliceRequests + 1);
      // And the slices were shared: this disk's reads (served at once by its back end) waited
      // for the flood's slices in between (without the shared coordinator: about 0 calls).
      expect(
        gaps.reduce((x, y) => x + y),
        gaps.join(),
      ).toBeGreaterThan(20);
      await b.close();
      expect(cfqMemoryStats(mem).slotsUsed).toBe(1);
    } finally {
      await w.terminate();
    }
    // As vm-runner does on a worker's exit: the dead worker's slot is freed.
    expect(releaseCfqThread(mem, thread)).toBe(1);
    expect(cfqMemoryStats(mem).slotsUsed).toBe(0);
  });
});

describe('cfq across threads: wake-ups', () => {
  it('a slice handed on while a waiting disk is trying for it is not missed', async () => {
    const mem = createCfqMemory(4);
    const x = new SharedCfqCoordinator(mem, { ...opts, thread: 1 });
    const y = new SharedCfqCoordinator(mem, { ...opts, thread: 2 });
    // B (thread 2) holds the slice with a request in hand.
    const b = { work: true, busy: true };
    const memberB = { hasWork: () => b.work, busy: () => b.busy, kick: () => {} };
    y.join(memberB);
    expect(y.mayDispatch(memberB)).toBe(true);
    // A (thread 1) has a request and loses its try: it waits for a wake-up.
    let dispatched = 0;
    let kicks = 0;
    const memberA = {
      hasWork: () => dispatched === 0,
      busy: () => dispatched === 0,
      kick: () => {
        kicks++;
        if (x.mayDispatch(memberA)) dispatched++;
        // Right after A's first woken try failed, thread 2 finishes and hands the slice on,
        // to A: what another thread may do at any instant.
        else if (kicks === 1) {
          b.work = false;
          b.busy = false;
          y.idle(memberB);
        }
      },
    };
    x.join(memberA);
    expect(x.mayDispatch(memberA)).toBe(false);
    // Something else moves the wake-up word (a third thread's slot is freed): A tries again.
    const z = new SharedCfqCoordinator(mem, { ...opts, thread: 3 });
    z.join({ hasWork: () => false, busy: () => false, kick: () => {} });
    expect(releaseCfqThread(mem, 3)).toBe(1);
    for (let i = 0; i < 50 && dispatched === 0; i++) await settle();
    // With sliceMs this long a missed wake-up waits for good (in VMs: up to a slice, 20 ms).
    expect(kicks).toBeGreaterThanOrEqual(2);
    expect(dispatched).toBe(1);
    x.leave(memberA);
    y.leave(memberB);
    expect(cfqMemoryStats(mem).slotsUsed).toBe(0);
  });
});
