/**
 * The JIT's threshold is a rate, not a total (wasm-core/jit/jit.ts jitDecayTick): every `decay`
 * instructions the counts of blocks not yet translated are halved, so code that runs once in a
 * long while (a disk read's path through the kernel, once per request) stays interpreted however
 * long the guest runs, while a hot loop is translated as before. Either way the guest computes
 * exactly what the interpreter computes.
 */
import { describe, expect, it } from 'vitest';
import { ExitReason } from '../../../main/vm/core.js';
import { addi, bne, iType, jal, sd } from '../rv-encode.js';
import { bareCore, RAM_BASE } from './bare-core.js';

const ROUTINE = RAM_BASE + 0x1000;
const TOHOST = RAM_BASE + 0x3000;
const LAPS = 400;
const INNER = 500; // the hot loop's laps per outer lap: ~1000 instructions between two calls

/** LAPS times: a hot inner loop of INNER laps, then a call to a routine in the next page. */
const MAIN = [
  addi(30, 0, LAPS),
  addi(29, 0, INNER), // outer:
  addi(29, 29, -1), // inner:
  bne(29, 0, -4),
  jal(1, ROUTINE - (RAM_BASE + 16)),
  addi(30, 30, -1),
  bne(30, 0, -20), // to outer
  addi(27, 0, 1),
  sd(28, 27), // tohost = 1
  jal(0, 0),
];
const ROUTINE_CODE = [addi(9, 9, 1), addi(5, 5, 3), iType(0x67, 0, 0, 1, 0)];

interface Outcome {
  regs: bigint[];
  instret: bigint;
  blocks: number;
  blockInsns: bigint;
}

/** The program with `inner` laps of the inner loop a call, at the JIT's `threshold` and `decay`. */
function run(jit: boolean, decay?: number, inner = INNER, threshold = 50): Outcome {
  const core = bareCore(1 << 16, { jit, jitOptions: { threshold, batch: 1, decay } });
  const view = new DataView(core.ram.buffer, core.ram.byteOffset);
  const put = (at: number, words: number[]): void =>
    words.forEach((w, i) => view.setUint32(at - RAM_BASE + i * 4, w, true));
  put(RAM_BASE, [MAIN[0]!, addi(29, 0, inner), ...MAIN.slice(2)]);
  put(ROUTINE, ROUTINE_CODE);
  core.setX(28, BigInt(TOHOST));
  core.setTohost(BigInt(TOHOST));
  core.pc = BigInt(RAM_BASE);
  // Short slices: counts are halved between slices, at most once each.
  for (let n = 0; n < 100_000 && core.run(200) !== ExitReason.Tohost; n++);
  const regs: bigint[] = [];
  for (let i = 0; i < 32; i++) regs.push(core.getX(i));
  const s = core.jit?.currentStats();
  return { regs, instret: core.instret, blocks: s?.blocks ?? 0, blockInsns: s?.blockInsns ?? 0n };
}

describe('JIT: the threshold asks for a rate (counts decay)', () => {
  it('leaves code that runs once per ~1000 instructions interpreted, translates the hot loop', () => {
    const interpreted = run(false);
    expect(interpreted.regs[9]).toBe(BigInt(LAPS));
    const decaying = run(true, 256);
    const summing = run(true, 0);
    for (const o of [decaying, summing]) {
      expect(o.regs).toEqual(interpreted.regs);
      expect(o.instret).toBe(interpreted.instret);
      // The inner loop is ~99% of the instructions: translated in both.
      expect(o.blockInsns).toBeGreaterThan((interpreted.instret * 9n) / 10n);
    }
    // Counted in total, the routine (run LAPS times, 8x the threshold) and the blocks around
    // the call are translated too; halved every 256 instructions their counts never pass 2.
    expect(decaying.blocks).toBe(1);
    expect(summing.blocks).toBeGreaterThanOrEqual(3);
  });

  it('still translates a block that runs often enough between halvings', () => {
    // 8 inner laps a call: the routine runs every ~22 instructions, ~12 times per halving, and
    // reaches a threshold of 10 (with the blocks around the call).
    const often = run(true, 256, 8, 10);
    expect(often.regs).toEqual(run(false, undefined, 8, 10).regs);
    expect(often.regs[9]).toBe(BigInt(LAPS));
    expect(often.blocks).toBeGreaterThanOrEqual(3);
  });
});
