/**
 * Under deterministic time (`--icount`) the JIT translates the same blocks at the same guest
 * instructions however fast the host runs: a short queue waits for guest instructions, not
 * milliseconds (main/vm/jit/jit.ts drain). Which code runs translated decides where a block ends,
 * and so where a hart's turn or an interrupt falls: two boots with two harts printed different
 * kernel timestamps when a slow host had translated sooner.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ExitReason } from '../../../main/vm/core.js';
import { addi, bne, sd } from '../rv-encode.js';
import { bareCore, RAM_BASE } from './bare-core.js';

const TOHOST = RAM_BASE + 0x3000;

/** 4,000,000 laps of a two-instruction loop (a few waits' worth), then tohost = 1. */
const PROGRAM = [
  addi(5, 0, 2000),
  addi(6, 0, 2000),
  addi(5, 5, -1), // loop:
  bne(5, 0, -4),
  addi(5, 0, 2000),
  addi(6, 6, -1),
  bne(6, 0, -16), // to loop, 2000 times
  addi(27, 0, 1),
  sd(28, 27),
];

/**
 * Runs PROGRAM in slices of 5,000 instructions with the host's clock advancing `msPerRead` each
 * time it is read; returns how many instructions ran translated. The one hot block is queued
 * alone, so only the queue's wait decides when it is translated.
 */
function translatedInsns(deterministic: boolean, msPerRead: number): bigint {
  let clock = 0;
  vi.spyOn(performance, 'now').mockImplementation(() => (clock += msPerRead));
  const core = bareCore(1 << 16, { jit: true, jitOptions: { threshold: 50, batch: 64 } });
  core.setDeterministicTime(deterministic);
  const view = new DataView(core.ram.buffer, core.ram.byteOffset);
  PROGRAM.forEach((w, i) => view.setUint32(i * 4, w, true));
  core.setX(28, BigInt(TOHOST));
  core.setTohost(BigInt(TOHOST));
  core.pc = BigInt(RAM_BASE);
  for (let n = 0; n < 100_000 && core.run(5000) !== ExitReason.Tohost; n++);
  expect(core.getX(6)).toBe(0n);
  vi.restoreAllMocks();
  return core.jit?.currentStats().blockInsns ?? 0n;
}

describe('JIT under deterministic time', () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it('translates at the same instructions on a fast host and a slow one', () => {
    const fast = translatedInsns(true, 0); // the host's clock never moves
    const slow = translatedInsns(true, 50); // every read is 50 ms later
    expect(fast).toBeGreaterThan(0n); // translated after a wait of guest instructions
    expect(slow).toBe(fast);
  });

  it('with host time, a slow host translates sooner (what deterministic time must avoid)', () => {
    const fast = translatedInsns(false, 0);
    const slow = translatedInsns(false, 50);
    expect(slow).toBeGreaterThan(fast);
  });
});
