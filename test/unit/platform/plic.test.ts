import { describe, expect, it } from 'vitest';
import { Plic, type PlicState } from '../../../devices/platform/plic.js';
import { FakeHart, logSink } from './helpers.js';

const PRIORITY = (src: number) => 4 * src;
const PENDING = 0x1000;
const ENABLE = (ctx: number, word = 0) => 0x2000 + 0x80 * ctx + 4 * word;
const THRESHOLD = (ctx: number) => 0x20_0000 + 0x1000 * ctx;
const CLAIM = (ctx: number) => 0x20_0004 + 0x1000 * ctx;
const M = 0;
const S = 1;

function setup(harts = 1) {
  const cpus = Array.from({ length: harts }, () => new FakeHart());
  const hart = cpus[0];
  const log = logSink();
  const plic = new Plic(cpus, log.sink);
  const r = (off: number) => plic.read(off, 4);
  const w = (off: number, v: number) => plic.write(off, 4, v);
  const enable = (ctx: number, ...srcs: number[]) => {
    const words = [0, 0, 0];
    for (const s of srcs) words[s >> 5] |= 1 << (s & 31);
    words.forEach((v, i) => w(ENABLE(ctx, i), v >>> 0));
  };
  return { plic, hart, cpus, r, w, enable, log };
}

describe('PLIC', () => {
  it('routes an enabled source above the threshold to the matching hart line', () => {
    const { plic, hart, w, enable } = setup();
    w(PRIORITY(10), 1);
    enable(S, 10);
    plic.line(10).set(true);
    expect(hart.seip).toBe(true);
    expect(hart.meip).toBe(false);
    w(THRESHOLD(S), 1); // priority must exceed the threshold
    expect(hart.seip).toBe(false);
    w(THRESHOLD(S), 0);
    expect(hart.seip).toBe(true);
    w(PRIORITY(10), 0); // priority 0 never interrupts
    expect(hart.seip).toBe(false);
    w(PRIORITY(10), 1);
    enable(S);
    expect(hart.seip).toBe(false);
    enable(M, 10);
    expect(hart.meip).toBe(true);
  });

  it('claims by priority, then by lowest source number; in-service sources wait', () => {
    const { plic, hart, r, w, enable } = setup();
    for (const [src, prio] of [
      [3, 2],
      [5, 5],
      [7, 5],
      [40, 7],
      [95, 1],
    ]) {
      w(PRIORITY(src), prio);
      plic.line(src).set(true);
    }
    enable(S, 3, 5, 7, 40, 95);
    expect(r(PENDING)).toBe((1 << 3) | (1 << 5) | (1 << 7));
    expect(r(PENDING + 4)).toBe(1 << 8);
    expect(r(PENDING + 8)).toBe((1 << 31) >>> 0);
    const order = [];
    for (let i = 0; i < 6; i++) order.push(r(CLAIM(S)));
    expect(order).toEqual([40, 5, 7, 3, 95, 0]);
    expect(hart.seip).toBe(false);
    // Lines still high: each complete makes its source pending again.
    w(CLAIM(S), 7);
    expect(hart.seip).toBe(true);
    expect(r(CLAIM(S))).toBe(7);
    expect(plic.stats.injected).toEqual({ 3: 1, 5: 1, 7: 2, 40: 1, 95: 1 });
    expect(plic.stats.emptyClaims).toBe(1);
  });

  it('is level-triggered: a request withdrawn before the claim disappears', () => {
    const { plic, hart, r, w, enable } = setup();
    w(PRIORITY(1), 1);
    enable(S, 1);
    const line = plic.line(1);
    line.set(true);
    line.set(false);
    expect(hart.seip).toBe(false);
    expect(r(CLAIM(S))).toBe(0);
    line.set(true);
    expect(r(CLAIM(S))).toBe(1);
    line.set(false); // the device was serviced
    w(CLAIM(S), 1);
    expect(hart.seip).toBe(false);
    expect(r(PENDING)).toBe(0);
    // Raising the line while in service does not interrupt until complete.
    line.set(true);
    expect(r(CLAIM(S))).toBe(1);
    line.set(false);
    line.set(true);
    expect(hart.seip).toBe(false);
    w(CLAIM(S), 1);
    expect(hart.seip).toBe(true);
  });

  it('keeps source 0 out of the enable bits and honours per-context masks', () => {
    const { plic, hart, r, w, enable } = setup();
    w(ENABLE(S), 0xffff_ffff);
    expect(r(ENABLE(S))).toBe(0xffff_fffe);
    w(PRIORITY(2), 3);
    enable(S);
    enable(M, 2);
    plic.line(2).set(true);
    expect([hart.meip, hart.seip]).toEqual([true, false]);
    expect(r(CLAIM(S))).toBe(0);
    expect(r(CLAIM(M))).toBe(2);
    expect(hart.meip).toBe(false);
  });

  it('ignores a complete for a source not enabled on that context, as the spec says', () => {
    const { plic, hart, r, w, enable } = setup();
    w(PRIORITY(9), 1);
    enable(S, 9);
    plic.line(9).set(true);
    expect(r(CLAIM(S))).toBe(9);
    enable(S); // the driver masked it meanwhile
    w(CLAIM(S), 9);
    enable(S, 9);
    expect(hart.seip).toBe(false); // still in service
    // Linux's plic_irq_eoi: enable, complete, disable.
    w(CLAIM(S), 9);
    expect(hart.seip).toBe(true);
    expect(plic.stats.completes).toBe(1);
  });

  it('survives hostile offsets, sizes and values', () => {
    const { plic, r, w, log } = setup();
    const offsets = [
      0,
      2,
      0x17c,
      0x180,
      0xffc,
      0x1000,
      0x100c,
      0x1ffc,
      0x2000 + 0x80 * 2,
      0x2000 + 0x80 + 0xc,
      0x1f_fffc,
      0x20_0008,
      0x20_2000,
      0x20_2004,
      0x5f_fffc,
      0x60_0000,
      0xffff_fffc,
    ];
    for (const off of offsets) {
      for (const size of [1, 2, 4] as const) {
        expect(() => plic.read(off, size)).not.toThrow();
        expect(() => plic.write(off, size, 0xffff_ffff)).not.toThrow();
      }
    }
    w(PRIORITY(4), 0xffff_ffff);
    expect(r(PRIORITY(4))).toBe(7);
    expect(r(PRIORITY(0))).toBe(0);
    w(THRESHOLD(M), 0x1234);
    expect(r(THRESHOLD(M))).toBe(4);
    w(CLAIM(S), 0);
    w(CLAIM(S), 4096);
    expect(r(PENDING)).toBe(0); // pending is read-only
    expect(plic.stats.guestErrors).toBeGreaterThan(40);
    expect(log.lines.length).toBeLessThanOrEqual(17);
    expect(() => plic.line(0)).toThrow();
    expect(() => plic.line(96)).toThrow();
  });

  it('saves and restores its state, re-driving the hart lines', () => {
    const a = setup();
    a.w(PRIORITY(10), 3);
    a.w(PRIORITY(33), 2);
    a.enable(S, 10, 33);
    a.w(THRESHOLD(M), 5);
    a.plic.line(10).set(true);
    a.plic.line(33).set(true);
    expect(a.r(CLAIM(S))).toBe(10);
    const state = JSON.parse(JSON.stringify(a.plic.saveState()));
    const b = setup();
    b.plic.restoreState(state);
    expect(b.plic.saveState()).toEqual(a.plic.saveState());
    expect(b.hart.seip).toBe(true); // 33 still pending
    expect(b.r(CLAIM(S))).toBe(33);
    b.w(CLAIM(S), 10);
    expect(b.r(CLAIM(S))).toBe(10); // line 10 was still high in the snapshot
    b.plic.reset();
    expect(b.r(PRIORITY(10))).toBe(0);
    expect(b.hart.seip).toBe(false);
  });
});

/** Contexts of hart h: 2h is its M-mode, 2h+1 its S-mode (QEMU virt, hart config "MS"). */
const HART_M = (h: number) => 2 * h;
const HART_S = (h: number) => 2 * h + 1;
const lines = (cpus: FakeHart[]) => cpus.map((c) => [c.meip, c.seip]);

describe.each([2, 4])('PLIC with %i harts', (harts) => {
  it('raises only the hart and mode a source is enabled for', () => {
    const { plic, cpus, r, w, enable } = setup(harts);
    w(PRIORITY(10), 1);
    enable(HART_S(1), 10);
    plic.line(10).set(true);
    const want = cpus.map((_, h) => [false, h === 1]);
    expect(lines(cpus)).toEqual(want);
    // Other harts find nothing to claim; hart 1 S-mode gets it and its line drops.
    for (let h = 0; h < harts; h++) {
      expect(r(CLAIM(HART_M(h)))).toBe(0);
      if (h !== 1) expect(r(CLAIM(HART_S(h)))).toBe(0);
    }
    expect(lines(cpus)).toEqual(want);
    expect(r(CLAIM(HART_S(1)))).toBe(10);
    expect(lines(cpus).flat().some(Boolean)).toBe(false);
    // The last hart's M context is its own line.
    enable(HART_M(harts - 1), 10);
    w(CLAIM(HART_S(1)), 10);
    expect(cpus[harts - 1].meip).toBe(true);
    expect(cpus[1].seip).toBe(true);
    expect(cpus[0].meip || cpus[0].seip).toBe(false);
  });

  it('gives a source enabled on two harts to the first claim only', () => {
    const { plic, cpus, r, w, enable } = setup(harts);
    w(PRIORITY(5), 2);
    enable(HART_S(0), 5);
    enable(HART_S(harts - 1), 5);
    const line = plic.line(5);
    line.set(true);
    expect([cpus[0].seip, cpus[harts - 1].seip]).toEqual([true, true]);
    // Both harts take the interrupt; the one that claims second gets nothing (0).
    expect(r(CLAIM(HART_S(harts - 1)))).toBe(5);
    expect(r(CLAIM(HART_S(0)))).toBe(0);
    expect([cpus[0].seip, cpus[harts - 1].seip]).toEqual([false, false]);
    expect(plic.stats).toMatchObject({ claims: 2, emptyClaims: 1 });
    // The claimer completes while the line is still high: pending again, for both.
    w(CLAIM(HART_S(harts - 1)), 5);
    expect([cpus[0].seip, cpus[harts - 1].seip]).toEqual([true, true]);
    expect(r(CLAIM(HART_S(0)))).toBe(5);
    line.set(false);
    w(CLAIM(HART_S(0)), 5);
    expect(cpus.some((c) => c.seip || c.meip)).toBe(false);
    expect(plic.stats.completes).toBe(2);
  });

  it('keeps a threshold per context', () => {
    const { plic, cpus, r, w, enable } = setup(harts);
    w(PRIORITY(33), 2);
    for (let h = 0; h < harts; h++) enable(HART_S(h), 33);
    w(THRESHOLD(HART_S(0)), 2);
    w(THRESHOLD(HART_S(1)), 1);
    plic.line(33).set(true);
    expect(cpus.map((c) => c.seip)).toEqual(cpus.map((_, h) => h !== 0));
    expect(r(THRESHOLD(HART_S(0)))).toBe(2);
    expect(r(THRESHOLD(HART_S(1)))).toBe(1);
    expect(r(THRESHOLD(HART_M(1)))).toBe(0);
    expect(r(CLAIM(HART_S(0)))).toBe(0); // masked by its threshold
    w(THRESHOLD(HART_S(1)), 2);
    expect(cpus[1].seip).toBe(false);
    if (harts > 2) expect(cpus[2].seip).toBe(true);
  });

  it('treats contexts past the last hart as unmapped', () => {
    const { plic, cpus, r, w, enable, log } = setup(harts);
    const past = 2 * harts;
    w(PRIORITY(7), 7);
    plic.line(7).set(true);
    const before = plic.stats.guestErrors;
    for (const ctx of [past, past + 1, 1023, 1024]) {
      w(ENABLE(ctx), 0xffff_ffff);
      expect(r(ENABLE(ctx))).toBe(0);
      w(THRESHOLD(ctx), 0);
      expect(r(THRESHOLD(ctx))).toBe(0);
      expect(r(CLAIM(ctx))).toBe(0);
      w(CLAIM(ctx), 7);
    }
    expect(plic.stats.guestErrors - before).toBe(4 * 6);
    expect(log.lines.length).toBeGreaterThan(0);
    expect(cpus.some((c) => c.seip || c.meip)).toBe(false);
    expect(plic.stats.claims).toBe(0);
    // The last real context still works, and odd sizes there are refused.
    enable(HART_S(harts - 1), 7);
    expect(cpus[harts - 1].seip).toBe(true);
    expect(plic.read(CLAIM(HART_S(harts - 1)), 2)).toBe(0);
    plic.write(THRESHOLD(HART_S(harts - 1)) + 1, 1, 7);
    expect(cpus[harts - 1].seip).toBe(true);
    expect(r(CLAIM(HART_S(harts - 1)))).toBe(7);
  });

  it('saves every context and refuses a state made for another hart count', () => {
    const a = setup(harts);
    a.w(PRIORITY(12), 3);
    a.enable(HART_S(harts - 1), 12);
    a.w(THRESHOLD(HART_M(1)), 6);
    a.plic.line(12).set(true);
    const state = JSON.parse(JSON.stringify(a.plic.saveState()));
    expect(state.enable).toHaveLength(2 * harts);
    expect(state.threshold).toHaveLength(2 * harts);
    const b = setup(harts);
    b.plic.restoreState(state);
    expect(b.plic.saveState()).toEqual(state);
    expect(b.cpus.map((c) => c.seip)).toEqual(b.cpus.map((_, h) => h === harts - 1));
    expect(b.r(THRESHOLD(HART_M(1)))).toBe(6);
    for (const other of [1, harts * 2]) {
      expect(() => setup(other).plic.restoreState(state)).toThrow(
        `plic: the saved state is for ${harts} harts (${2 * harts} PLIC contexts), this ` +
          `machine has ${other} hart${other === 1 ? '' : 's'} (${2 * other} PLIC contexts)`,
      );
    }
  });
});

describe('PLIC state of a 1-hart machine (version 1 files)', () => {
  it('still loads, and a 2-hart machine refuses it', () => {
    // As the single-hart PLIC saved it: two contexts, hart 0 M and S.
    const old: PlicState = {
      version: 1,
      priority: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, ...Array(85).fill(0)],
      pending: [1 << 10, 0, 0],
      inService: [0, 0, 0],
      levels: [1 << 10, 0, 0],
      enable: [
        [0, 0, 0],
        [1 << 10, 0, 0],
      ],
      threshold: [0, 3],
    };
    const one = setup(1);
    one.plic.restoreState(old);
    expect(one.hart.seip).toBe(true);
    expect(one.r(THRESHOLD(S))).toBe(3);
    expect(one.r(CLAIM(S))).toBe(10);
    expect(() => setup(2).plic.restoreState(old)).toThrow(/state is for 1 hart .* has 2 harts/);
    expect(() => setup(1).plic.restoreState({ ...old, threshold: [0] })).toThrow(/plic:/);
  });

  it('needs at least one hart', () => {
    expect(() => new Plic([])).toThrow(RangeError);
  });
});
