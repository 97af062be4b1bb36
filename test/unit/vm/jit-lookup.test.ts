/**
 * Where the JIT build's interpreter looks blocks up (wasm-core/cpu/interpreter.ts jitLook): at a
 * branch or jump into the code page it is executing, and at the refill of its code-page cache
 * that a jump into another page causes. Blocks reached only by jumps between pages must
 * be counted, translated and entered like the others, and translated runs must end exactly as
 * interpreted ones, whatever the slice length.
 */
import { describe, expect, it } from 'vitest';
import { ExitReason } from '../../../main/vm/core.js';
import { bType, iType, jal, rType } from '../rv-encode.js';
import { bareCore, RAM_BASE } from './bare-core.js';

const PAGE_B = RAM_BASE + 0x1000;
const TOHOST = RAM_BASE + 0x3000;
const LAPS = 300;

const addi = (rd: number, rs1: number, imm: number) => iType(0x13, rd, 0, rs1, imm);
const jalr = (rd: number, rs1: number) => iType(0x67, rd, 0, rs1, 0);
const bne = (rs1: number, rs2: number, imm: number) => bType(1, rs1, rs2, imm);
const sd = (rs1: number, rs2: number) => ((rs2 << 20) | (rs1 << 15) | (3 << 12) | 0x23) >>> 0;

/**
 * A loop in the first page that calls a routine in the next page each lap: the routine's block
 * is only ever entered by a JAL from another page, the block after the call only by the JALR
 * back.
 */
const PAGE_A_CODE = [
  addi(30, 0, LAPS),
  jal(1, PAGE_B - (RAM_BASE + 4)), // loop: call the routine
  addi(30, 30, -1),
  addi(8, 8, 5),
  bne(30, 0, -12),
  addi(29, 0, 1),
  sd(28, 29), // tohost = 1
  jal(0, 0),
];
const PAGE_B_CODE = [
  addi(5, 5, 1),
  addi(6, 6, 3),
  rType(0x33, 7, 4, 7, 5, 0), // xor x7, x7, x5
  rType(0x33, 9, 0, 9, 7, 0), // add x9, x9, x7
  jalr(0, 1),
];

interface Outcome {
  regs: bigint[];
  instret: bigint;
  blockInsns: bigint;
}

function run(jit: boolean, slice: number): Outcome {
  const core = bareCore(1 << 16, { jit, jitOptions: { threshold: 5, batch: 1 } });
  const put = (at: number, words: number[]): void =>
    words.forEach((w, i) =>
      new DataView(core.ram.buffer, core.ram.byteOffset).setUint32(at - RAM_BASE + i * 4, w, true),
    );
  put(RAM_BASE, PAGE_A_CODE);
  put(PAGE_B, PAGE_B_CODE);
  core.setX(28, BigInt(TOHOST));
  core.setTohost(BigInt(TOHOST));
  core.pc = BigInt(RAM_BASE);
  for (let n = 0; n < 1_000_000 && core.run(slice) !== ExitReason.Tohost; n++);
  const regs: bigint[] = [];
  for (let i = 0; i < 32; i++) regs.push(core.getX(i));
  return { regs, instret: core.instret, blockInsns: core.jit?.currentStats().blockInsns ?? 0n };
}

describe('JIT block lookup', () => {
  it('translates and enters blocks that are only reached by jumps between pages', () => {
    const a = run(false, 100_000);
    const b = run(true, 100_000);
    expect(a.regs[5], 'the routine ran every lap').toBe(BigInt(LAPS));
    expect(b.regs).toEqual(a.regs);
    expect(b.instret).toBe(a.instret);
    // Only the one-instruction block at the loop's top is entered from its own page: without
    // the lookups at page changes the JIT would run ~1 instruction in 10 of the laps.
    expect(Number(b.blockInsns) / Number(b.instret)).toBeGreaterThan(0.8);
  });

  it('ends translated runs exactly as interpreted ones when slices end at branches', () => {
    for (const slice of [1, 2, 3, 7, 10]) {
      const a = run(false, slice);
      const b = run(true, slice);
      expect(b.regs, `slices of ${slice}`).toEqual(a.regs);
      expect(b.instret, `slices of ${slice}`).toBe(a.instret);
      if (slice >= 7) expect(b.blockInsns, `slices of ${slice}`).toBeGreaterThan(0n);
    }
  });
});
