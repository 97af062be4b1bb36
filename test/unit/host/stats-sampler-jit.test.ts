/**
 * The live stats of a VM with the JIT on carry the share of instructions that ran in translated
 * code (over the last interval and since start) and the translated-block count; the UI's chart
 * and toolbar and the monitor's `info stats` show them. A VM without the JIT has none.
 */
import { describe, it, expect } from 'vitest';
import { StatsSampler } from '../../../main/worker/stats-sampler.js';
import type { MachineStats } from '../../../main/vm/machine.js';
import type { JitStats } from '../../../main/vm/jit/jit.js';

const machine = (instret: number, jit?: { blockInsns: number; blocks: number }): MachineStats => ({
  instret: BigInt(instret),
  seconds: 0,
  mips: 0,
  exits: {},
  harts: { cpus: [], switches: 0 },
  interrupts: {},
  traps: 0n,
  virtio: {},
  ...(jit
    ? {
        jit: {
          blocks: jit.blocks,
          modules: 1,
          untranslatable: 0,
          flushes: 0,
          epochs: 0,
          revalidated: 0,
          stale: 0,
          blockCalls: BigInt(jit.blockInsns / 50),
          chained: BigInt(jit.blockInsns / 10),
          blockInsns: BigInt(jit.blockInsns),
          insns: jit.blocks * 5,
          compileMs: 1,
          slots: jit.blocks,
          slotsReused: 0,
        } satisfies JitStats,
      }
    : {}),
});

describe('stats sampler: the JIT share', () => {
  it('gives the translated share of the last interval and since start, and the blocks', () => {
    let now = 0;
    const sampler = new StatsSampler(
      64,
      () => now,
      () => undefined,
    );
    const first = sampler.sample(machine(1_000_000, { blockInsns: 0, blocks: 0 }), 0);
    expect(first.jit).toEqual({ blocks: 0, translatedPercent: 0, translatedTotalPercent: 0 });
    now = 250;
    // 9 M more instructions, 8.1 M of them translated: 90% now, 81% of all 10 M.
    const s = sampler.sample(machine(10_000_000, { blockInsns: 8_100_000, blocks: 321 }), 0);
    expect(s.jit!.blocks).toBe(321);
    expect(s.jit!.translatedPercent).toBeCloseTo(90, 6);
    expect(s.jit!.translatedTotalPercent).toBeCloseTo(81, 6);
    // Paused: nothing retired, the share stays what the running VM had (not 0, not NaN).
    now = 500;
    const paused = sampler.sample(machine(10_000_000, { blockInsns: 8_100_000, blocks: 321 }), 0);
    expect(paused.jit!.translatedPercent).toBeCloseTo(90, 6);
    // The interpreter alone again (say, after a reset dropped the translations): 0% now.
    now = 750;
    const cold = sampler.sample(machine(12_000_000, { blockInsns: 8_100_000, blocks: 321 }), 0);
    expect(cold.jit!.translatedPercent).toBe(0);
    expect(cold.jit!.translatedTotalPercent).toBeCloseTo(67.5, 6);
  });

  it('has no JIT figures for a VM that interprets', () => {
    const sampler = new StatsSampler(
      64,
      () => 0,
      () => undefined,
    );
    expect(sampler.sample(machine(5), 0).jit).toBeUndefined();
  });
});
