/**
 * The block translator against the interpreter: random straight-line blocks of the instructions
 * it translates (ALU, M with MULH*, loads and stores of every width, LUI/AUIPC, AMOs, LR/SC,
 * FENCE, FP loads, stores, moves, arithmetic with random rounding modes, CSR accesses) inside a
 * counted loop, run by a core with the JIT translating every block before its first run and by
 * one without; registers, memory and instret must come out the same. Blocks also hold FENCE.I,
 * which the JIT does not translate and which ends the translated part: what follows runs in the
 * interpreter, so an LR and its SC land on either side. A trap handler skips faulting
 * instructions (misaligned AMOs) and folds mcause and mtval into x28, so a wrong cause or
 * address shows too. Chained blocks, slot reuse and paging have their own cases below, and so
 * do regions (a translation of the blocks of a page reachable from one entry): random programs
 * of branches, jumps and loops inside one page, run in slices of a few instructions too.
 */
import { describe, expect, it } from 'vitest';
import { Core, ExitReason } from '../../../main/vm/core.js';
import type { JitOptions, JitStats } from '../../../main/vm/jit/jit.js';
import { xorshift } from '../../seeded-random.js';
import { bType, iType, jal, rType, sType } from '../rv-encode.js';
import { bareCore, RAM_BASE } from './bare-core.js';

const DATA = 0x8000_8000; // 4 KiB the blocks load from and store to; x31 points at it
const TOHOST = 0x8000_9000; // just past the data page: x31 + 2048
const ITERATIONS = 7;

const uType = (op: number, rd: number, imm20: number) =>
  (((imm20 & 0xfffff) << 12) | (rd << 7) | op) >>> 0;

const FENCE_I = 0x0000100f; // not translated: ends a block
const FENCE = 0x0ff0000f; // fence iorw, iorw
const FENCE_TSO = 0x8330000f;
/** Offsets from x31 of the few doublewords the atomics use, so that LR and SC often pair. */
const ATOMIC_SLOTS = [-2048, -2040, -8, 0, 8, 2040];

/** x29 = an atomic's address (aligned, or 1 in 8 times misaligned), then `insn` with rs1 = x29. */
function atomicAt(rnd: (n: number) => number, size: number, insn: number): number[] {
  let off = ATOMIC_SLOTS[rnd(ATOMIC_SLOTS.length)]! + (size === 4 ? 4 * rnd(2) : 0);
  if (rnd(8) === 0) off += 1 + rnd(size - 1);
  return [iType(0x13, 29, 0, 31, off), (insn | (29 << 15)) >>> 0];
}

/** An AMO (f5 < 0x20), LR or SC of either width, aq/rl random; rs1 is filled in by atomicAt. */
const amo = (f5: number, size: number, rd: number, rs2: number, aqrl: number) =>
  ((f5 << 27) | (aqrl << 25) | (rs2 << 20) | ((size === 4 ? 2 : 3) << 12) | (rd << 7) | 0x2f) >>> 0;

/**
 * A CSR instruction in M-mode: scratch, FP status (illegal with the FPU off), counters (read,
 * written, and instret, which is read-only), mstatus.MIE (nothing is pending), an unknown CSR.
 */
function mModeCsr(rnd: (n: number) => number): number {
  if (rnd(12) === 0) return iType(0x73, rnd(30), rnd(2) ? 6 : 7, 8, 0x300); // csrrsi/ci MIE
  const csrs = [0x340, 0x140, 0x001, 0x002, 0x003, 0xb00, 0xb02, 0xc00, 0xc01, 0xc02, 0x7c0];
  const f3 = 1 + rnd(3) + (rnd(2) ? 4 : 0);
  return iType(0x73, rnd(30), f3, rnd(30), csrs[rnd(csrs.length)]!);
}

/**
 * A CSR instruction in S-mode: sscratch, sstatus.SIE and SUM (SUM changes how loads and stores
 * translate, so the block must leave), and M-mode or counter CSRs, which are illegal there.
 */
function sModeCsr(rnd: (n: number) => number): number[] {
  const rd = rnd(30);
  switch (rnd(4)) {
    case 0:
      return [iType(0x73, rd, 1 + rnd(3) + (rnd(2) ? 4 : 0), rnd(30), 0x140)];
    case 1:
      return [iType(0x73, rd, rnd(2) ? 6 : 7, 2, 0x100)]; // csrrsi / csrrci sstatus, SIE
    case 2:
      return [uType(0x37, 29, 0x40), iType(0x73, rd, rnd(2) ? 2 : 3, 29, 0x100)]; // SUM
    default:
      return [iType(0x73, rd, 2, 0, [0x340, 0x300, 0xc00, 0xc02][rnd(4)]!)];
  }
}

/**
 * One random translatable instruction (with what sets up its address for an atomic, or a CSR
 * read the JIT does not translate); never writes x30 (loop counter) or x31 (data pointer).
 */
function randomInsn(rnd: (n: number) => number): number[] {
  const rd = 1 + rnd(29);
  const rs1 = rnd(30);
  const rs2 = rnd(30);
  const imm = rnd(4096) - 2048;
  const size = rnd(2) ? 4 : 8;
  switch (rnd(23)) {
    case 21:
    case 22:
      return [mModeCsr(rnd)];
    case 18:
    case 19: {
      // Any OP-FP operation (the JIT calls execFp): random rounding modes (5 and 6 are illegal,
      // 7 takes frm, which the prologue may set illegal too) and, rarely, an illegal format.
      const f5 = [0x00, 0x01, 0x02, 0x03, 0x05, 0x08, 0x0b, 0x14, 0x18, 0x1a, 0x1c][rnd(11)]!;
      const fmt = rnd(16) === 0 ? 2 + rnd(2) : rnd(2);
      const rm = rnd(8);
      const r2 = f5 === 0x08 ? 1 - fmt : f5 === 0x18 || f5 === 0x1a ? rnd(4) : rnd(32);
      const f3 = f5 === 0x05 || f5 === 0x1c ? rnd(2) : f5 === 0x14 ? rnd(3) : rm;
      const d = f5 === 0x14 || f5 === 0x18 || f5 === 0x1c ? rd : rnd(32); // x or f destination
      const op = rType(
        0x53,
        d,
        f3,
        f5 === 0x1a ? rd : rnd(32),
        f5 === 0x0b ? 0 : r2,
        (f5 << 2) | fmt,
      );
      // A conversion from x[rd] right after changing it: the block's copy is the current one.
      return f5 === 0x1a ? [iType(0x13, rd, 0, rs1, imm), op] : [op];
    }
    case 20: {
      // FMADD, FMSUB, FNMSUB, FNMADD .S/.D.
      const op = [0x43, 0x47, 0x4b, 0x4f][rnd(4)]!;
      const w = rType(op, rnd(32), rnd(8), rnd(32), rnd(32), (rnd(32) << 2) | rnd(2));
      return [w];
    }
    case 16: {
      // FSGNJ/FSGNJN/FSGNJX.S/D on f registers holding whatever was loaded (boxed or not).
      const fmt = rnd(2);
      return [rType(0x53, rnd(32), rnd(3), rnd(32), rnd(32), (0x04 << 2) | fmt)];
    }
    case 17: {
      const fmt = rnd(2);
      return rnd(2)
        ? [rType(0x53, rd, 0, rnd(32), 0, (0x1c << 2) | fmt)] // FMV.X.W/D
        : [rType(0x53, rnd(32), 0, rs1, 0, (0x1e << 2) | fmt)]; // FMV.W/D.X
    }
    case 14: {
      // FLW/FLD from the data page (1 in 8 misaligned: the slow path), f0..f31.
      const off = rnd(4096 / size) * size - 2048 + (rnd(8) === 0 ? 1 : 0);
      return [iType(0x07, rnd(32), size === 4 ? 2 : 3, 31, Math.min(off, 2047))];
    }
    case 15: {
      const off = rnd(4096 / size) * size - 2048 + (rnd(8) === 0 ? 1 : 0);
      const s = sType(size === 4 ? 2 : 3, 31, rnd(32), Math.min(off, 2047));
      return [((s & ~0x7f) | 0x27) >>> 0];
    }
    case 9:
    case 10: {
      const f5 = [0x00, 0x01, 0x04, 0x08, 0x0c, 0x10, 0x14, 0x18, 0x1c][rnd(9)]!;
      return atomicAt(rnd, size, amo(f5, size, rnd(30), rs2, rnd(4)));
    }
    case 11:
      return atomicAt(rnd, size, amo(2, size, rnd(30), 0, rnd(4)));
    case 12:
      return atomicAt(rnd, size, amo(3, size, rnd(30), rs2, rnd(4)));
    case 13:
      return [[FENCE_I, FENCE, FENCE_TSO][rnd(3)]!];
  }
  return [randomPlain(rnd, rd, rs1, rs2, imm)];
}

function randomPlain(
  rnd: (n: number) => number,
  rd: number,
  rs1: number,
  rs2: number,
  imm: number,
): number {
  switch (rnd(9)) {
    case 0: {
      const f3 = rnd(8);
      if (f3 === 1) return iType(0x13, rd, 1, rs1, rnd(64));
      if (f3 === 5) return iType(0x13, rd, 5, rs1, rnd(64) | (rnd(2) << 10));
      return iType(0x13, rd, f3, rs1, imm);
    }
    case 1: {
      const f3 = rnd(8);
      const f7 = f3 === 0 || f3 === 5 ? [0, 0x20][rnd(2)]! : 0;
      return rType(0x33, rd, f3, rs1, rs2, f7);
    }
    case 2:
      return rType(0x33, rd, rnd(8), rs1, rnd(3) === 0 ? 0 : rs2, 1);
    case 3: {
      const k = rnd(4);
      if (k === 0) return iType(0x1b, rd, 0, rs1, imm);
      if (k === 1) return iType(0x1b, rd, 1, rs1, rnd(32));
      return iType(0x1b, rd, 5, rs1, rnd(32) | (rnd(2) << 10));
    }
    case 4: {
      const k = rnd(5);
      if (k === 0) return rType(0x3b, rd, [0, 1, 5][rnd(3)]!, rs1, rs2, 0);
      if (k === 1) return rType(0x3b, rd, [0, 5][rnd(2)]!, rs1, rs2, 0x20);
      return rType(0x3b, rd, [0, 4, 5, 6, 7][rnd(5)]!, rs1, rnd(3) === 0 ? 0 : rs2, 1);
    }
    case 5:
      return uType(rnd(2) ? 0x37 : 0x17, rd, rnd(1 << 20));
    case 6: {
      // A load from the data page, aligned to its size (misaligned ones take the slow path).
      const f3 = rnd(7);
      const size = 1 << (f3 & 3);
      return iType(0x03, rd, f3, 31, rnd(4096 / size) * size - 2048);
    }
    case 7: {
      const f3 = rnd(4);
      const size = 1 << f3;
      return sType(f3, 31, rs2, rnd(4096 / size) * size - 2048);
    }
    default:
      return rType(0x33, rd, 0, rs1, rs2, rnd(2) ? 0x20 : 0);
  }
}

interface Outcome {
  regs: bigint[];
  data: Buffer;
  instret: bigint;
  blockCalls: bigint;
  blockInsns: bigint;
  /** Guest blocks in the translations (more than translations: regions). */
  regionBlocks: number;
  /** The whole hart (pc, privilege, mstatus, x and f registers, CSRs, counters). */
  hart: Uint8Array;
  priv: number;
}

interface RunOptions {
  /** x31's initial value (default: the middle of DATA). */
  x31?: bigint;
  /** Prepares memory before the run (page tables). */
  setup?: (ram: Uint8Array) => void;
  /** Physical range compared as `data` (default: DATA's 4 KiB). */
  watch?: [number, number];
  /** Instructions per core.run (default 100,000). */
  budget?: number;
}

/**
 * A core with 1 MiB of RAM and no devices (any MMIO access is a bus fault), translating every
 * block before its first run when `jit` is on; `regionBlocks` 1 translates blocks one by one.
 */
function testCore(
  jit: boolean,
  maxSlots?: number,
  regionBlocks?: number,
  threshold = 1,
  more: JitOptions = {},
): Core {
  return bareCore(1 << 20, {
    jit,
    jitOptions: { threshold, batch: 1, maxSlots, regionBlocks, merge: false, ...more },
  });
}

function run(program: number[], init: bigint[], jit: boolean, opts: RunOptions = {}): Outcome {
  const core = testCore(jit);
  const code = Buffer.alloc(program.length * 4);
  program.forEach((w, i) => code.writeUInt32LE(w, i * 4));
  core.ram.set(code, 0);
  for (let i = 0; i < 4096; i++) core.ram[DATA - RAM_BASE + i] = (i * 37 + 11) & 0xff;
  opts.setup?.(core.ram);
  for (let i = 1; i < 30; i++) core.setX(i, init[i]!);
  core.setX(30, BigInt(ITERATIONS));
  core.setX(31, opts.x31 ?? BigInt(DATA + 2048));
  core.setTohost(BigInt(TOHOST));
  core.pc = BigInt(RAM_BASE);
  const budget = opts.budget ?? 100_000;
  for (let n = 0; n < 10_000_000 / budget && core.run(budget) !== ExitReason.Tohost; n++);
  const regs: bigint[] = [];
  for (let i = 0; i < 32; i++) regs.push(core.getX(i));
  const [from, to] = opts.watch ?? [DATA, DATA + 4096];
  return {
    regs,
    data: Buffer.from(core.ram.subarray(from - RAM_BASE, to - RAM_BASE)),
    instret: core.instret,
    blockCalls: core.jit?.currentStats().blockCalls ?? 0n,
    blockInsns: core.jit?.currentStats().blockInsns ?? 0n,
    regionBlocks: core.jit?.currentStats().regionBlocks ?? 0,
    hart: core.saveHart(),
    priv: core.priv,
  };
}

const csrrw = (rd: number, csr: number, rs1: number) => iType(0x73, rd, 1, rs1, csr);
const csrr = (rd: number, csr: number) => iType(0x73, rd, 2, 0, csr);
const MSCRATCH = 0x340;
const MEPC = 0x341;
const MCAUSE = 0x342;
const MTVAL = 0x343;

/**
 * `body` in a loop of ITERATIONS, between a prologue that points mtvec at a handler (which folds
 * mcause ^ mtval into x28 and skips the instruction) and an epilogue that writes tohost. With
 * `satp`, the prologue turns paging on and the loop runs in S-mode (its traps still go to M).
 */
function loopProgram(body: number[], fpOn = false, satp?: { rootPpn: number }, frm = 0): number[] {
  // FS = Initial turns the FPU on; with it off, FP instructions trap (illegal instruction).
  const fp = fpOn
    ? [
        uType(0x37, 29, 2),
        iType(0x73, 0, 2, 29, 0x300), // csrrs mstatus
        iType(0x73, 0, 5, frm, 0x002), // csrrwi frm
      ]
    : [];
  const sMode = satp
    ? [
        iType(0x13, 29, 0, 0, 8),
        iType(0x13, 29, 1, 29, 60), // Sv39
        uType(0x37, 28, satp.rootPpn >>> 12),
        iType(0x13, 28, 0, 28, satp.rootPpn & 0xfff),
        rType(0x33, 29, 6, 29, 28, 0),
        csrrw(0, 0x180, 29), // satp
        iType(0x13, 29, 0, 0, 1),
        iType(0x13, 29, 1, 29, 12),
        iType(0x73, 0, 3, 29, 0x300), // csrrc mstatus: MPP bit 12
        iType(0x13, 29, 0, 0, 1),
        iType(0x13, 29, 1, 29, 11),
        iType(0x73, 0, 2, 29, 0x300), // csrrs mstatus: MPP = S
        uType(0x17, 29, 0),
        iType(0x13, 29, 0, 29, 16),
        csrrw(0, MEPC, 29), // the instruction after mret
        0x30200073, // mret
      ]
    : [];
  const prologueLen = 4 + fp.length + sMode.length;
  const tail = [
    iType(0x13, 30, 0, 30, -1), // addi x30, x30, -1
    bType(1, 30, 0, -(body.length + 1) * 4), // bne x30, x0, start
    iType(0x13, 29, 0, 0, 1),
    iType(0x13, 29, 1, 29, 31),
    uType(0x37, 28, (TOHOST - RAM_BASE) >>> 12),
    rType(0x33, 29, 0, 29, 28, 0), // x29 = TOHOST (mapped to itself under paging)
    iType(0x13, 28, 0, 0, 1),
    sType(3, 29, 28, 0), // sd x28, 0(x29): tohost = 1, passed
    0x0000006f, // j .
  ];
  const handlerAt = (prologueLen + body.length + tail.length) * 4;
  const handler = [
    csrrw(29, MSCRATCH, 29),
    csrr(29, MCAUSE),
    rType(0x33, 28, 0, 28, 29, 0), // add x28, x28, x29
    csrr(29, MTVAL),
    rType(0x33, 28, 4, 28, 29, 0), // xor x28, x28, x29
    csrr(29, MEPC),
    iType(0x13, 29, 0, 29, 4),
    csrrw(0, MEPC, 29),
    csrrw(29, MSCRATCH, 29),
    0x30200073, // mret
  ];
  const prologue = [
    uType(0x17, 29, 0), // auipc x29, 0
    iType(0x13, 29, 0, 29, handlerAt),
    csrrw(0, 0x305, 29), // mtvec
  ];
  // A jump into the loop makes its first iteration a block start too (translated).
  const enter = 0x0040006f; // jal x0, +4
  return [...prologue, ...fp, ...sMode, enter, ...body, ...tail, ...handler];
}

describe('JIT: translated blocks compute what the interpreter computes', () => {
  it('random blocks in a loop (150 programs)', () => {
    const rnd = xorshift(0x5eed);
    let translated = 0n;
    for (let p = 0; p < 150; p++) {
      const body: number[] = [];
      const n = 1 + rnd(40);
      for (let i = 0; i < n; i++) body.push(...randomInsn(rnd));
      const frm = rnd(3) === 0 ? rnd(8) : 0; // 5..7: dynamic rounding is illegal
      const program = loopProgram(body, rnd(4) !== 0, undefined, frm);
      const init = [0n];
      for (let i = 1; i < 30; i++) {
        const pick = rnd(4);
        init.push(
          pick === 0
            ? BigInt(rnd(5)) - 2n
            : pick === 1
              ? 0x8000_0000_0000_0000n
              : (BigInt(rnd(1 << 30)) << 34n) ^ BigInt(rnd(1 << 30)),
        );
      }
      const a = run(program, init, false);
      const b = run(program, init, true);
      expect(a.regs[28], 'reached tohost').toBe(1n);
      const where = `program ${p}: ${body.map((w) => w.toString(16)).join(' ')}`;
      expect(b.regs, where).toEqual(a.regs);
      expect(b.instret, where).toBe(a.instret);
      expect(b.data.equals(a.data), where).toBe(true);
      expect(Buffer.from(b.hart).equals(Buffer.from(a.hart)), `${where}: hart state`).toBe(true);
      translated += b.blockCalls;
    }
    expect(translated).toBeGreaterThan(150n);
  });
});

describe('JIT: LR/SC reservations are shared between translated blocks and the interpreter', () => {
  // x31 points at a doubleword; the CSR read ends the translated part of the block, so each
  // pair below has its LR on one side and its SC on the other.
  const lr = (rd: number) => (amo(2, 8, rd, 0, 0) | (31 << 15)) >>> 0;
  const sc = (rd: number, rs2: number) => (amo(3, 8, rd, rs2, 0) | (31 << 15)) >>> 0;
  const add = (rd: number, rs1: number, rs2: number) => rType(0x33, rd, 0, rs1, rs2, 0);
  const body = [
    lr(5), // in the block
    FENCE_I,
    sc(6, 7), // interpreted: pairs with the block's LR, succeeds (0)
    add(10, 10, 6),
    sc(8, 7), // no reservation left: fails (1)
    add(11, 11, 8),
    lr(12), // interpreted; the SC that pairs with it is the loop's first below
    iType(0x13, 7, 0, 7, 3),
    bType(1, 0, 7, 8), // bne x0, x7, +8: always taken, so the SC starts a block
    0x00000013,
    sc(13, 7), // in a block: pairs with the interpreter's LR, succeeds
    add(10, 10, 13),
    sc(14, 7), // in the same block: fails
    add(11, 11, 14),
  ];

  it('an SC succeeds once after an LR on the other side, then fails', () => {
    const init = Array<bigint>(30).fill(0n);
    init[7] = 5n; // never 0, so the bne above is always taken
    for (const jit of [false, true]) {
      const r = run(loopProgram(body), init, jit);
      expect(r.regs[28], 'reached tohost').toBe(1n);
      expect(r.regs[10], 'failed SCs that should have succeeded').toBe(0n);
      expect(r.regs[11], 'SCs without reservation').toBe(BigInt(2 * ITERATIONS));
      // The last successful SC stored x7 of its iteration.
      expect(r.data.readBigUInt64LE(2048)).toBe(5n + 3n * BigInt(ITERATIONS));
      if (jit) expect(r.blockCalls).toBeGreaterThan(BigInt(ITERATIONS));
    }
  });
});

describe('JIT: FENCE and FENCE.TSO are translated as the no-ops they are', () => {
  it('a loop with fences in its body runs wholly translated and computes the same', () => {
    const addi = (rd: number, rs1: number, imm: number) => iType(0x13, rd, 0, rs1, imm);
    const body = [addi(5, 5, 3), FENCE, addi(6, 5, 1), FENCE_TSO, sType(3, 31, 6, 0)];
    const init = Array<bigint>(30).fill(0n);
    const a = run(loopProgram(body), init, false);
    const b = run(loopProgram(body), init, true);
    expect(b.regs).toEqual(a.regs);
    expect(b.instret).toBe(a.instret);
    expect(b.regs[6]).toBe(3n * BigInt(ITERATIONS) + 1n);
    // Every iteration ran its body, addi and bne inside translated code: no fence ended it.
    expect(b.blockInsns).toBeGreaterThanOrEqual(BigInt(ITERATIONS * (body.length + 2)));
  });
});

describe('JIT: atomics under Sv39 paging follow the interpreter (TLBs, A/D bits, faults)', () => {
  // Physical pages: the page table (root, level 1, level 0) and three data pages, mapped at
  // virtual pages 1, 2 and 3: read-write with A and D clear (the walk sets them), read-only, and
  // read-write with A and D set. Code, the handler and tohost are a 1 GiB page mapped to itself.
  const ROOT = 0x8000_a000;
  const L1 = 0x8000_b000;
  const L0 = 0x8000_c000;
  const PAGES = [0x8000_d000, 0x8000_e000, 0x8000_f000];
  const [V, R, W, X, A, D] = [1n, 2n, 4n, 8n, 64n, 128n];
  const pte = (pa: number, flags: bigint) => (BigInt(pa >>> 12) << 10n) | flags;
  const setup = (ram: Uint8Array) => {
    const view = new DataView(ram.buffer, ram.byteOffset, ram.byteLength);
    const put = (pa: number, v: bigint) => view.setBigUint64(pa - RAM_BASE, v, true);
    put(ROOT + 2 * 8, pte(RAM_BASE, V | R | W | X | A | D));
    put(ROOT, pte(L1, V));
    put(L1, pte(L0, V));
    put(L0 + 8, pte(PAGES[0]!, V | R | W));
    put(L0 + 16, pte(PAGES[1]!, V | R));
    put(L0 + 24, pte(PAGES[2]!, V | R | W | A | D));
    for (const p of PAGES)
      for (let i = 0; i < 4096; i++) ram[p - RAM_BASE + i] = (i * 29 + 7) & 0xff;
  };

  /** An atomic, load or store at one of a few slots of virtual page 1, 2 or 3 (via x29). */
  function pagedOp(rnd: (n: number) => number): number[] {
    const page = 1 + rnd(3);
    const size = rnd(2) ? 4 : 8;
    let off = [0, 8, 16, 0x7f8][rnd(4)]! + (size === 4 ? 4 * rnd(2) : 0);
    if (rnd(10) === 0) off += 1 + rnd(size - 1);
    const rd = rnd(30);
    const rs2 = rnd(30);
    const at = (insn: number) => [
      uType(0x37, 29, page),
      iType(0x13, 29, 0, 29, off),
      (insn | (29 << 15)) >>> 0,
    ];
    const f3 = size === 4 ? 2 : 3;
    switch (rnd(6)) {
      case 0:
      case 1: {
        const f5 = [0x00, 0x01, 0x04, 0x08, 0x0c, 0x10, 0x14, 0x18, 0x1c][rnd(9)]!;
        return at(amo(f5, size, rd, rs2, rnd(4)));
      }
      case 2:
        return at(amo(2, size, rd, 0, rnd(4)));
      case 3:
        return at(amo(3, size, rd, rs2, rnd(4)));
      case 4:
        return at(iType(0x03, rd, f3, 0, 0));
      default:
        return at(sType(f3, 0, rs2, 0));
    }
  }

  it('random blocks of atomics, loads and stores over three kinds of pages (60 programs)', () => {
    const rnd = xorshift(0x9a9e);
    let translated = 0n;
    let walksSetD = 0;
    for (let p = 0; p < 60; p++) {
      const body: number[] = [];
      const n = 1 + rnd(24);
      for (let i = 0; i < n; i++) {
        const k = rnd(8);
        if (k < 5) body.push(...pagedOp(rnd));
        else if (k < 7) body.push(...randomInsn(rnd).filter((w) => (w & 0x7f) !== 0x73));
        else body.push(...(rnd(2) ? [FENCE_I] : sModeCsr(rnd)));
      }
      const program = loopProgram(body, false, { rootPpn: ROOT >>> 12 });
      const init = [0n];
      for (let i = 1; i < 30; i++) init.push(BigInt(rnd(1 << 30)) * 0x1_0000_0001n);
      // x31 in the middle of pages 1 and 2, for the plain loads and stores randomInsn makes.
      const opts: RunOptions = { x31: 0x2000n, setup, watch: [ROOT, PAGES[2]! + 4096] };
      const a = run(program, init, false, opts);
      const b = run(program, init, true, opts);
      expect(a.regs[28], 'reached tohost').toBe(1n);
      expect(a.priv, 'ran in S-mode').toBe(1);
      const where = `program ${p}: ${body.map((w) => w.toString(16)).join(' ')}`;
      expect(b.regs, where).toEqual(a.regs);
      expect(b.instret, where).toBe(a.instret);
      if ((a.data.readBigUInt64LE(L0 + 8 - ROOT) & D) !== 0n) walksSetD++;
      // Page tables (A/D bits) and data pages alike.
      expect(b.data.equals(a.data), where).toBe(true);
      expect(Buffer.from(b.hart).equals(Buffer.from(a.hart)), `${where}: hart state`).toBe(true);
      translated += b.blockCalls;
    }
    expect(translated).toBeGreaterThan(60n);
    expect(walksSetD, 'programs whose accesses set page 1 D bit').toBeGreaterThan(10);
  });

  /**
   * A run of loads or of stores through x29 (translate.ts accessGroups: one TLB check for the
   * run when it lies in one page): x29 anywhere in pages 1-3 (also just below a page's end, so
   * that the run reaches into the next page: read-only, or page 4, unmapped), sometimes
   * misaligned; offsets mostly multiples of the access size; a load into x29 ends a run, and
   * so does arithmetic writing x29; other arithmetic (AUIPC, MUL, DIV among it) may sit between.
   */
  function accessRun(rnd: (n: number) => number): number[] {
    const base =
      ((1 + rnd(3)) << 12) +
      (rnd(3) === 0 ? 4096 - 8 * rnd(6) : 8 * rnd(512)) +
      (rnd(8) === 0 ? 1 + rnd(7) : 0);
    const hi = (base + 0x800) >> 12;
    const words = [uType(0x37, 29, hi), iType(0x13, 29, 0, 29, base - (hi << 12))];
    const load = rnd(2) === 0;
    const n = 2 + rnd(7);
    for (let i = 0; i < n; i++) {
      if (i > 0 && rnd(3) === 0) {
        const rd = rnd(12) === 0 ? 29 : 1 + rnd(27);
        const between = [
          iType(0x13, rd, 0, rnd(30), rnd(4096) - 2048),
          rType(0x33, rd, 0, rnd(30), rnd(30), 0),
          rType(0x33, rd, rnd(2) ? 0 : 4, rnd(30), rnd(30), 1), // MUL, DIV
          uType(0x17, rd, rnd(1 << 20)),
        ];
        words.push(between[rnd(4)]!);
      }
      const f3 = load ? rnd(7) : rnd(4);
      const size = 1 << (f3 & 3);
      const off = rnd(6) === 0 ? rnd(64) - 8 : (rnd(8) - 1) * size;
      if (load)
        words.push(iType(0x03, i === n - 1 && rnd(3) === 0 ? 29 : 1 + rnd(27), f3, 29, off));
      else words.push(sType(f3, 29, 1 + rnd(28), off));
    }
    return words;
  }

  it('runs of loads or stores through one base register fault and translate as the interpreter (80 programs)', () => {
    const rnd = xorshift(0x61e7);
    let translated = 0n;
    for (let p = 0; p < 80; p++) {
      const body: number[] = [];
      const n = 1 + rnd(6);
      for (let i = 0; i < n; i++) body.push(...(rnd(4) === 0 ? pagedOp(rnd) : accessRun(rnd)));
      const program = loopProgram(body, false, { rootPpn: ROOT >>> 12 });
      const init = [0n];
      for (let i = 1; i < 30; i++) init.push(BigInt(rnd(1 << 30)) * 0x1_0000_0001n);
      const opts: RunOptions = { x31: 0x2000n, setup, watch: [ROOT, PAGES[2]! + 4096] };
      const a = run(program, init, false, opts);
      const b = run(program, init, true, opts);
      expect(a.regs[28], 'reached tohost').toBe(1n);
      const where = `program ${p}: ${body.map((w) => w.toString(16)).join(' ')}`;
      expect(b.regs, where).toEqual(a.regs);
      expect(b.instret, where).toBe(a.instret);
      expect(b.data.equals(a.data), where).toBe(true);
      expect(Buffer.from(b.hart).equals(Buffer.from(a.hart)), `${where}: hart state`).toBe(true);
      translated += b.blockInsns;
    }
    expect(translated).toBeGreaterThan(5000n);
  });
});

describe('JIT: a CSR write that asks for attention leaves the block', () => {
  it('an interrupt enabled inside a block is taken right after the enabling instruction', () => {
    // A software interrupt is made pending (CLINT msip, an MMIO store: the block leaves after
    // it), then the next block turns mstatus.MIE on: the interpreter takes the interrupt right
    // there, and so must translated code. The handler folds mcause, minstret and mepc into x25
    // and clears msip.
    const CLINT = 27;
    const body = [
      iType(0x73, 0, 7, 8, 0x300), // csrrci mstatus, MIE
      iType(0x13, 26, 0, 0, 1),
      sType(2, CLINT, 26, 0), // msip = 1
      bType(1, 0, 0, 8), // bne x0, x0: never taken, so what follows starts a block
      iType(0x13, 5, 0, 5, 1),
      iType(0x73, 0, 6, 8, 0x300), // csrrsi mstatus, MIE: the interrupt comes here
      iType(0x13, 6, 0, 6, 1),
      iType(0x13, 7, 0, 7, 1),
    ];
    const tail = [
      iType(0x13, 30, 0, 30, -1),
      bType(1, 30, 0, -(body.length + 1) * 4),
      iType(0x13, 29, 0, 0, 1),
      iType(0x13, 29, 1, 29, 31),
      uType(0x37, 28, (TOHOST - RAM_BASE) >>> 12),
      rType(0x33, 29, 0, 29, 28, 0),
      iType(0x13, 28, 0, 0, 1),
      sType(3, 29, 28, 0), // tohost = 1
      0x0000006f,
    ];
    const prologueLen = 7;
    const handlerAt = (prologueLen + body.length + tail.length) * 4;
    const prologue = [
      uType(0x17, 29, 0),
      iType(0x13, 29, 0, 29, handlerAt),
      csrrw(0, 0x305, 29), // mtvec
      uType(0x37, CLINT, 0x2000), // CLINT base
      iType(0x13, 29, 0, 0, 8),
      iType(0x73, 0, 2, 29, 0x304), // mie.MSIE
      0x0040006f, // jal x0, +4: into the loop
    ];
    const handler = [
      csrrw(29, MSCRATCH, 29),
      csrr(29, MCAUSE),
      rType(0x33, 25, 0, 25, 29, 0),
      csrr(29, 0xb02), // minstret
      rType(0x33, 25, 4, 25, 29, 0),
      csrr(29, MEPC),
      rType(0x33, 25, 4, 25, 29, 0),
      sType(2, CLINT, 0, 0), // msip = 0
      csrrw(29, MSCRATCH, 29),
      0x30200073, // mret
    ];
    const program = [...prologue, ...body, ...tail, ...handler];
    const init = Array<bigint>(30).fill(0n);
    const opts: RunOptions = {};
    const a = run(program, init, false, opts);
    const b = run(program, init, true, opts);
    expect(a.regs[28], 'reached tohost').toBe(1n);
    expect(a.regs[5]).toBe(BigInt(ITERATIONS));
    expect(a.regs[25], 'interrupts taken').not.toBe(0n);
    expect(b.regs).toEqual(a.regs);
    expect(b.instret).toBe(a.instret);
    expect(Buffer.from(b.hart).equals(Buffer.from(a.hart))).toBe(true);
    expect(b.blockInsns).toBeGreaterThan(BigInt(ITERATIONS * 4));
  });
});

// ---- chaining: blocks that continue into the next block's translation (main/vm/jit) ----

const addi = (rd: number, rs1: number, imm: number) => iType(0x13, rd, 0, rs1, imm);
const add = (rd: number, rs1: number, rs2: number) => rType(0x33, rd, 0, rs1, rs2, 0);
const csrw = (csr: number, rs1: number) => iType(0x73, 0, 1, rs1, csr);
const csrs = (csr: number, rs1: number) => iType(0x73, 0, 2, rs1, csr);
const MRET = 0x30200073;
const SFENCE_VMA = 0x12000073;
const CSR = {
  satp: 0x180,
  mstatus: 0x300,
  mie: 0x304,
  mtvec: 0x305,
  mepc: 0x341,
  mcause: 0x342,
  minstret: 0xb02,
};
const UNMAPPED = 0x1000_0000; // no device: the harness's MMIO answers with a bus fault

interface Chained {
  regs: bigint[];
  instret: bigint;
  calls: bigint;
  chained: bigint;
  /** instret after each core.run(budget), when a budget was given. */
  steps: bigint[];
  stats?: JitStats;
}

/**
 * Runs a program to its tohost store: `words` at physical `at` (several pieces), registers
 * from `regs`, optionally in slices of `budget` instructions. With the JIT every block is
 * translated before its first run, so a block's second run already chains.
 */
function runChained(
  pieces: { at: number; words: number[] }[],
  regs: Record<number, bigint>,
  jit: boolean,
  setup?: (core: Core) => void,
  budget = 100_000,
  maxSlots?: number,
  regionBlocks?: number,
  threshold?: number,
  more?: JitOptions,
): Chained {
  const core = testCore(jit, maxSlots, regionBlocks, threshold, more);
  for (const { at, words } of pieces) {
    words.forEach((w, i) => {
      const o = at - RAM_BASE + i * 4;
      core.ram[o] = w & 0xff;
      core.ram[o + 1] = (w >>> 8) & 0xff;
      core.ram[o + 2] = (w >>> 16) & 0xff;
      core.ram[o + 3] = w >>> 24;
    });
  }
  for (const [r, v] of Object.entries(regs)) core.setX(Number(r), v);
  setup?.(core);
  core.setTohost(BigInt(TOHOST));
  core.pc = BigInt(RAM_BASE);
  const steps: bigint[] = [];
  for (let n = 0; n < 100_000 && core.run(budget) !== ExitReason.Tohost; n++) {
    steps.push(core.instret);
  }
  const regsOut: bigint[] = [];
  for (let i = 0; i < 32; i++) regsOut.push(core.getX(i));
  const s = core.jit?.currentStats();
  return {
    regs: regsOut,
    instret: core.instret,
    calls: s?.blockCalls ?? 0n,
    chained: s?.chained ?? 0n,
    steps,
    stats: s,
  };
}

/** Stores x28 (= 1) to tohost through x31, then spins: the end of every program below. */
const PASS = [sType(3, 31, 28, 0), jal(0, 0)];
const ENDING = { 28: 1n, 31: BigInt(TOHOST) };

describe('JIT: chained blocks keep the guarantees of a return to the interpreter', () => {
  it('chains most block entries in a loop of small blocks, and computes the same', () => {
    // 16 blocks of 4 instructions, each jumping to the next, 50 times around.
    const words: number[] = [];
    for (let b = 0; b < 16; b++)
      words.push(addi(10, 10, 1), add(11, 11, 10), addi(12, 11, 7), jal(0, 4));
    words.push(addi(30, 30, -1), bType(1, 30, 0, -(words.length + 1) * 4), ...PASS);
    const regs = { 30: 50n, ...ENDING };
    const a = runChained([{ at: RAM_BASE, words }], regs, false);
    const b = runChained([{ at: RAM_BASE, words }], regs, true, undefined, 100_000, undefined, 1);
    expect(b.regs).toEqual(a.regs);
    expect(b.instret).toBe(a.instret);
    expect(a.regs[10]).toBe(16n * 50n);
    // Without chaining every one of the 16 * 50 block runs would be a call from the core.
    expect(b.chained).toBeGreaterThan(700n);
    expect(b.calls).toBeLessThan(100n);
    // As one region (the default), the jumps and the loop branch stay inside one function.
    const c = runChained([{ at: RAM_BASE, words }], regs, true);
    expect(c.regs).toEqual(a.regs);
    expect(c.instret).toBe(a.instret);
    expect(c.calls).toBeLessThan(20n);
    expect(c.chained).toBeLessThan(20n);
    expect(c.stats!.blockInsns).toBeGreaterThan((a.instret * 9n) / 10n);
  });

  it('merges translations from many modules into few and chains through them the same', () => {
    // Each of the 16 blocks translated alone (regions of one block, batch 1) while the loop runs
    // in slices of 12 instructions: ~3 new modules a slice, merged at each slice's end (two are
    // enough, no quiet spell asked for); every 4 merged modules are merged again.
    const words: number[] = [];
    for (let b = 0; b < 16; b++)
      words.push(addi(10, 10, b + 1), add(11, 11, 10), addi(12, 11, 7), jal(0, 4));
    words.push(addi(30, 30, -1), bType(1, 30, 0, -(words.length + 1) * 4), ...PASS);
    const regs = { 30: 50n, ...ENDING };
    const a = runChained([{ at: RAM_BASE, words }], regs, false);
    const merging = { merge: true, mergeBatches: 2, mergeQuietMs: 0 };
    const at = [{ at: RAM_BASE, words }];
    const b = runChained(at, regs, true, undefined, 12, undefined, 1, 1, merging);
    expect(a.regs[10]).toBe(50n * 136n); // each block adds its own number
    expect(b.regs).toEqual(a.regs);
    expect(b.instret).toBe(a.instret);
    expect(b.stats!.modules).toBeGreaterThanOrEqual(17);
    expect(b.stats!.merges).toBeGreaterThanOrEqual(6);
    // Rebuilt more often than there are translations: merged ones were merged again.
    expect(b.stats!.merged).toBeGreaterThan(b.stats!.blocks);
    expect(b.chained).toBeGreaterThan(400n);
    expect(b.stats!.blockInsns).toBeGreaterThan((a.instret * 9n) / 10n);
    const c = runChained(at, regs, true, undefined, 12, undefined, 1, 1); // merging off
    expect(c.regs).toEqual(a.regs);
    expect(c.stats!.merges ?? 0).toBe(0);
  });

  it('ends a chain when the slice budget is spent, within one block of it', () => {
    const words: number[] = [];
    for (let b = 0; b < 16; b++)
      words.push(addi(10, 10, 1), addi(11, 11, 2), addi(12, 12, 3), jal(0, 4));
    words.push(addi(30, 30, -1), bType(1, 30, 0, -(words.length + 1) * 4), ...PASS);
    const regs = { 30: 40n, ...ENDING };
    const a = runChained([{ at: RAM_BASE, words }], regs, false, undefined, 37);
    const b = runChained([{ at: RAM_BASE, words }], regs, true, undefined, 37, undefined, 1);
    // The same blocks as one region: its intra-region branches check the budget the same way.
    const c = runChained([{ at: RAM_BASE, words }], regs, true, undefined, 37);
    expect(b.chained).toBeGreaterThan(500n);
    expect(c.stats!.blockInsns).toBeGreaterThan((a.instret * 8n) / 10n);
    for (const r of [b, c]) {
      expect(r.regs).toEqual(a.regs);
      expect(r.instret).toBe(a.instret);
      // Every slice returned after its 37 instructions plus at most the rest of one block (4).
      let prev = 0n;
      for (const s of r.steps) {
        expect(s - prev).toBeGreaterThanOrEqual(37n);
        expect(s - prev).toBeLessThanOrEqual(37n + 3n);
        prev = s;
      }
      expect(r.steps.length).toBeGreaterThan(40);
    }
  });

  it('takes an interrupt made pending by a store before the next block, not after it', () => {
    const HANDLER = RAM_BASE + 0x80;
    const words = [
      csrw(CSR.mtvec, 5),
      csrw(CSR.mie, 6),
      csrs(CSR.mstatus, 7),
      // loop (0x0c): on the third pass from the end, msip = 1 (a store to the CLINT)
      addi(10, 10, 1),
      addi(11, 30, -3),
      iType(0x13, 8, 3, 11, 1), // sltiu x8, x11, 1: x8 = (x30 == 3)
      sType(2, 9, 8, 0), // sw x8, 0(x9): msip
      jal(0, 0x40 - 0x1c),
    ];
    const b40 = [addi(12, 12, 1), addi(30, 30, -1), bType(1, 30, 0, 0x0c - 0x48), ...PASS];
    const handler = [
      csrr(13, CSR.mepc),
      add(15, 12, 0), // how many times block B had run when the interrupt was taken
      csrr(14, CSR.minstret),
      sType(2, 9, 0, 0), // msip = 0
      MRET,
    ];
    const pieces = [
      { at: RAM_BASE, words },
      { at: RAM_BASE + 0x40, words: b40 },
      { at: HANDLER, words: handler },
    ];
    const regs = {
      5: BigInt(HANDLER),
      6: 1n << 3n,
      7: 1n << 3n,
      9: 0x200_0000n,
      30: 8n,
      ...ENDING,
    };
    const a = runChained(pieces, regs, false);
    const b = runChained(pieces, regs, true);
    expect(a.regs[13], 'mepc: the jump after the store').toBe(BigInt(RAM_BASE + 0x1c));
    expect(a.regs[15]).toBe(5n);
    expect(b.regs).toEqual(a.regs);
    expect(b.instret).toBe(a.instret);
    expect(b.chained).toBeGreaterThan(0n);
  });

  it('goes on after a load or store that refilled the TLB, and leaves after one that asked for attention', () => {
    // Each lap flushes the TLBs (SFENCE.VMA, which the JIT leaves to the interpreter), so the
    // first load and store of each of its 8 pages take the slow path: translated code goes on
    // after each, as the interpreter does, and the core calls it once a lap. The store to
    // tohost (a slow-path store that asks for attention) ends the program where it stands.
    const words: number[] = [jal(0, 4)];
    for (let p = 0; p < 8; p++) {
      words.push(iType(0x03, 10 + p, 3, 9, 0)); // ld x(10+p), 0(x9)
      words.push(sType(3, 9, 10 + p, 8)); // sd x(10+p), 8(x9)
      words.push(add(9, 9, 6)); // the next page (x6 = 4096)
    }
    words.push(
      uType(0x37, 5, -7 & 0xfffff), // lui x5, -7: back 8 pages, then one further
      add(9, 9, 5),
      addi(30, 30, -1),
      SFENCE_VMA,
      bType(1, 30, 0, 4 - (words.length + 4) * 4),
      ...PASS,
    );
    const regs = { 6: 4096n, 9: BigInt(RAM_BASE + 0x2_0000), 30: 40n, ...ENDING };
    const a = runChained([{ at: RAM_BASE, words }], regs, false);
    const b = runChained([{ at: RAM_BASE, words }], regs, true);
    expect(b.regs).toEqual(a.regs);
    expect(b.instret).toBe(a.instret);
    // Only the SFENCE.VMA and the branch after it run interpreted; were each refill to end the
    // block, the core would call translated code 17 times a lap.
    expect(b.stats!.blockInsns).toBeGreaterThan((a.instret * 9n) / 10n);
    expect(b.calls).toBeLessThanOrEqual(45n);
  });

  it('leaves the exact pc and instret for a fault in the second block of a chain', () => {
    const HANDLER = RAM_BASE + 0x80;
    const words = [
      csrw(CSR.mtvec, 5),
      addi(10, 10, 1), // loop (0x04): block A
      jal(0, 0x20 - 0x08),
    ];
    const b20 = [
      addi(12, 12, 3), // block B
      addi(19, 19, 5),
      iType(0x03, 13, 3, 9, 0), // ld x13, 0(x9): access fault
      addi(30, 30, -1),
      bType(1, 30, 0, 0x04 - 0x30),
      ...PASS,
    ];
    const handler = [
      csrr(14, CSR.mepc),
      csrr(15, CSR.minstret),
      add(16, 16, 15), // sum of instret at each fault
      add(17, 17, 14), // sum of mepc
      csrr(18, CSR.mcause),
      add(20, 19, 0), // x19 as the fault saw it
      addi(14, 14, 4),
      csrw(CSR.mepc, 14),
      MRET,
    ];
    const pieces = [
      { at: RAM_BASE, words },
      { at: RAM_BASE + 0x20, words: b20 },
      { at: HANDLER, words: handler },
    ];
    const regs = { 5: BigInt(HANDLER), 9: BigInt(UNMAPPED), 30: 10n, ...ENDING };
    const a = runChained(pieces, regs, false);
    const b = runChained(pieces, regs, true, undefined, 100_000, undefined, 1);
    // As a region, the fault is in its second block.
    const c = runChained(pieces, regs, true);
    expect(a.regs[18], 'load access fault').toBe(5n);
    expect(a.regs[17]).toBe(10n * BigInt(RAM_BASE + 0x28));
    expect(b.chained).toBeGreaterThan(5n);
    for (const r of [b, c]) {
      expect(r.regs).toEqual(a.regs);
      expect(r.instret).toBe(a.instret);
    }
  });

  it('runs the new code of a chained successor that was changed and followed by FENCE.I', () => {
    const B = RAM_BASE + 0x40;
    const C = RAM_BASE + 0x60;
    const words = [
      jal(0, 4), // so that 0x04 starts a block (a region's entry) in both phases
      addi(30, 0, 5), // 0x04: five passes each
      addi(5, 5, 1), // 0x08: block A
      jal(0, 0x40 - 0x0c),
    ];
    const b40 = [addi(10, 10, 1), jal(0, 0x60 - 0x44)]; // block B: x10 += 1, patched to += 100
    const c60 = [
      addi(30, 30, -1),
      bType(1, 30, 0, 0x08 - 0x64),
      addi(29, 29, -1),
      bType(0, 29, 0, 0x80 - 0x6c), // beqz x29, done
      sType(2, 6, 7, 0), // sw x7, 0(x6): B's first instruction := addi x10, x10, 100
      FENCE_I,
      jal(0, 0x04 - 0x78),
    ];
    const pieces = [
      { at: RAM_BASE, words },
      { at: B, words: b40 },
      { at: C, words: c60 },
      { at: RAM_BASE + 0x80, words: PASS },
    ];
    const regs = { 6: BigInt(B), 7: BigInt(addi(10, 10, 100)), 29: 2n, ...ENDING }; // 2 phases
    const a = runChained(pieces, regs, false);
    const b = runChained(pieces, regs, true, undefined, 100_000, undefined, 1);
    // As a region, B is inside the translation of A: the FENCE.I check covers its bytes too.
    const c = runChained(pieces, regs, true);
    expect(a.regs[10]).toBe(5n + 500n);
    expect(b.chained).toBeGreaterThan(5n);
    expect(c.stats!.stale).toBeGreaterThan(0);
    for (const r of [b, c]) {
      expect(r.regs).toEqual(a.regs);
      expect(r.instret).toBe(a.instret);
    }
  });

  it('finds a successor through the mapping of the current satp (same virtual pc, other code)', () => {
    // Two Sv39 address spaces share the code page at VA 0x1000 and map VA 0x2000 to different
    // functions: f1 adds 1, f2 adds 100. The code calls VA 0x2000 three times, switches satp,
    // and goes around six times; the calls and returns chain through the fetch TLB.
    const PT1 = RAM_BASE + 0x4_0000;
    const PT2 = RAM_BASE + 0x4_3000;
    const CODE = RAM_BASE + 0x1_0000;
    // f1 sits right after the code page: a translation that assumed the next virtual page is
    // the next host page would find f1 in both spaces.
    const F1 = CODE + 0x1000;
    const F2 = RAM_BASE + 0x3_0000;
    const satp = (root: number) => (8n << 60n) | BigInt(root / 4096);
    const boot = [csrw(CSR.satp, 21), csrw(CSR.mstatus, 5), csrw(CSR.mepc, 6), MRET];
    const code = [
      addi(29, 0, 3), // 0x1000 outer
      jal(1, 0x2000 - 0x1004), // 0x1004 inner: call VA 0x2000
      addi(29, 29, -1),
      bType(1, 29, 0, -8),
      csrw(CSR.satp, 20), // 0x1010: the other address space
      add(22, 20, 0),
      add(20, 21, 0),
      add(21, 22, 0),
      SFENCE_VMA,
      addi(30, 30, -1),
      bType(1, 30, 0, 0x1000 - 0x1028),
      ...PASS,
    ];
    const ret = iType(0x67, 0, 0, 1, 0);
    const pieces = [
      { at: RAM_BASE, words: boot },
      { at: CODE, words: code },
      { at: F1, words: [addi(10, 10, 1), ret] },
      { at: F2, words: [addi(10, 10, 100), ret] },
    ];
    const setup = (core: Core) => {
      const view = new DataView(core.ram.buffer, core.ram.byteOffset, core.ram.byteLength);
      const pte = (at: number, i: number, pa: number, flags: number) =>
        view.setBigUint64(at - RAM_BASE + i * 8, (BigInt(pa / 4096) << 10n) | BigInt(flags), true);
      const LEAF = 0xcf; // V R W X A D
      for (const [root, f] of [
        [PT1, F1],
        [PT2, F2],
      ] as const) {
        pte(root, 0, root + 0x1000, 1); // VA 0..1 GiB -> level-1 table
        pte(root + 0x1000, 0, root + 0x2000, 1); // VA 0..2 MiB -> level-0 table
        pte(root + 0x2000, 1, CODE, LEAF); // VA 0x1000: the shared code
        pte(root + 0x2000, 2, f, LEAF); // VA 0x2000: this space's function
        pte(root + 0x2000, 3, TOHOST, LEAF); // VA 0x3000: tohost
      }
    };
    const regs = {
      5: 1n << 11n, // mstatus.MPP = S
      6: 0x1000n,
      20: satp(PT2),
      21: satp(PT1),
      30: 6n,
      28: 1n,
      31: 0x3000n,
    };
    const a = runChained(pieces, regs, false, setup);
    const b = runChained(pieces, regs, true, setup);
    expect(a.regs[10]).toBe(3n * (1n + 100n + 1n + 100n + 1n + 100n));
    expect(b.regs).toEqual(a.regs);
    expect(b.instret).toBe(a.instret);
    expect(b.chained).toBeGreaterThan(10n);
  });

  it('reuses the table slots of evicted translations instead of starting over', () => {
    // Blocks A and B share a block-map entry (their host addresses hash alike). At threshold 1
    // a translation holds the entry against one run of the other block, and the next run
    // evicts it and translates that block: A and B take turns, ~70 translations in 16 table
    // slots, which without reuse would drop everything every 16.
    const ramHost = new Core(RAM_BASE, 1 << 20, {
      mmioRead: () => 0,
      mmioWrite: () => undefined,
      hostTicks: () => 0,
    }).ram.byteOffset;
    const hash = (off: number) => {
      const h = (ramHost + off) >>> 0;
      return ((h >>> 1) ^ (h >>> 17)) & 0xffff;
    };
    const A = 0x100;
    let B = 0x2_0000;
    while (hash(B) !== hash(A)) B += 4;
    expect(B).toBeLessThan(1 << 20);
    const C = 0x200;
    const pieces = [
      { at: RAM_BASE, words: [jal(0, A)] },
      { at: RAM_BASE + A, words: [addi(10, 10, 1), jal(0, B - A - 4)] },
      { at: RAM_BASE + B, words: [addi(11, 11, 2), jal(0, C - B - 4)] },
      { at: RAM_BASE + C, words: [addi(30, 30, -1), bType(1, 30, 0, A - C - 4), ...PASS] },
    ];
    const regs = { 30: 100n, ...ENDING };
    const a = runChained(pieces, regs, false);
    const b = runChained(pieces, regs, true, undefined, 100_000, 16);
    expect(a.regs[11]).toBe(200n);
    expect(b.regs).toEqual(a.regs);
    expect(b.instret).toBe(a.instret);
    expect(b.stats!.blocks).toBeGreaterThan(60);
    expect(b.stats!.flushes).toBe(0);
    expect(b.stats!.slots).toBeLessThanOrEqual(16);
    expect(b.stats!.slotsReused).toBeGreaterThan(50);
    // Merging while slots are freed and taken again keeps only what the block map still names.
    const merging = { merge: true, mergeBatches: 2, mergeQuietMs: 0 };
    const m = runChained(pieces, regs, true, undefined, 50, 16, undefined, undefined, merging);
    expect(m.regs).toEqual(a.regs);
    expect(m.instret).toBe(a.instret);
    expect(m.stats!.merges).toBeGreaterThan(5);
    expect(m.stats!.flushes).toBe(0);

    // B run once every 16 laps: A's translation (queued after `threshold` runs) outlasts it.
    const rare = [
      { at: RAM_BASE, words: [jal(0, A)] },
      { at: RAM_BASE + A, words: [addi(10, 10, 1), jal(0, C - A - 4)] },
      { at: RAM_BASE + B, words: [addi(11, 11, 2), jal(0, A - B - 4)] },
      {
        at: RAM_BASE + C,
        words: [
          addi(30, 30, -1),
          bType(0, 30, 0, 16), // beqz x30, done
          iType(0x13, 5, 7, 30, 15), // andi x5, x30, 15
          bType(1, 5, 0, A - C - 12), // bnez x5, A
          jal(0, B - C - 16),
          ...PASS,
        ],
      },
    ];
    const laps = { 30: 1600n, ...ENDING };
    const c = runChained(rare, laps, false);
    const d = runChained(rare, laps, true, undefined, 100_000, 16, undefined, 50);
    expect(c.regs[11]).toBe(2n * 99n); // at x30 = 1584, 1568 ... 16
    expect(d.regs).toEqual(c.regs);
    expect(d.instret).toBe(c.instret);
    expect(d.stats!.blocks).toBeLessThan(10);
    // Evicted at B's every run, A would never reach the threshold: ~64% would run translated.
    expect(d.stats!.blockInsns).toBeGreaterThan((c.instret * 9n) / 10n);
  });
});

describe('JIT: a region (the blocks of a page reachable from one entry) computes what the interpreter computes', () => {
  /** x27 bounds the backward branches taken: the random instructions write x26 instead. */
  const noX27 = (w: number) => {
    const op = w & 0x7f;
    if (op === 0x23 || op === 0x27 || op === 0x63 || ((w >>> 7) & 31) !== 27) return w;
    return ((w & ~(31 << 7)) | (26 << 7)) >>> 0;
  };
  type Control = { kind: number; to: number; cond: number; rs1: number; rs2: number; rd: number };

  /**
   * Segments of random instructions (loads from an unmapped address among them: access faults
   * in the middle of a region), each ending in a forward branch or JAL to a later segment, a
   * backward branch or JAL (taken while x27 lasts) to an earlier one, or nothing.
   */
  function regionBody(rnd: (n: number) => number): number[] {
    const segs = 2 + rnd(10);
    const words: number[] = [];
    const starts: number[] = [];
    const fixups: { at: number; c: Control }[] = [];
    for (let i = 0; i < segs; i++) {
      starts.push(words.length);
      const n = rnd(7);
      for (let k = 0; k < n; k++) {
        if (rnd(12) === 0)
          words.push(uType(0x37, 29, UNMAPPED >>> 12), iType(0x03, 1 + rnd(25), 3, 29, 0));
        else words.push(...randomInsn(rnd).map(noX27));
      }
      const kind = rnd(5);
      const c: Control = {
        kind,
        to: kind <= 2 ? i + 1 + rnd(segs - i) : rnd(i + 1), // forward: up to the loop's tail
        cond: [0, 1, 4, 5, 6, 7][rnd(6)]!,
        rs1: rnd(30),
        rs2: rnd(30),
        rd: [0, 1, 5, 12][rnd(4)]!,
      };
      if (kind === 0) continue;
      if (kind >= 3) words.push(iType(0x13, 27, 0, 27, -1));
      if (kind === 4) words.push(bType(5, 0, 27, 8)); // bge x0, x27: skip the jump when spent
      fixups.push({ at: words.length, c });
      words.push(0);
    }
    starts.push(words.length); // the loop's tail
    for (const { at, c } of fixups) {
      const d = (starts[c.to]! - at) * 4;
      if (c.kind === 1) words[at] = bType(c.cond, c.rs1, c.rs2, d);
      else if (c.kind === 2) words[at] = jal(c.rd, d);
      else if (c.kind === 3)
        words[at] = bType(4, 0, 27, d); // blt x0, x27
      else words[at] = jal(0, d);
    }
    return words;
  }

  it('random multi-block programs in one page, some in slices of a few instructions (120 programs)', () => {
    const rnd = xorshift(0x7e610);
    let regionBlocks = 0;
    let translated = 0n;
    for (let p = 0; p < 120; p++) {
      const body = regionBody(rnd);
      const program = loopProgram(body, rnd(4) !== 0);
      expect(program.length * 4).toBeLessThan(4096);
      const init = [0n];
      for (let i = 1; i < 30; i++)
        init.push(rnd(2) ? BigInt(rnd(5)) - 2n : BigInt(rnd(1 << 30)) << 20n);
      init[27] = BigInt(rnd(40));
      const budget = rnd(3) === 0 ? 100_000 : 1 + rnd(60);
      const a = run(program, init, false, { budget });
      const b = run(program, init, true, { budget });
      expect(a.regs[28], 'reached tohost').toBe(1n);
      const where = `program ${p} (budget ${budget}): ${body.map((w) => w.toString(16)).join(' ')}`;
      expect(b.regs, where).toEqual(a.regs);
      expect(b.instret, where).toBe(a.instret);
      expect(b.data.equals(a.data), where).toBe(true);
      expect(Buffer.from(b.hart).equals(Buffer.from(a.hart)), `${where}: hart state`).toBe(true);
      regionBlocks += b.regionBlocks;
      translated += b.blockInsns;
    }
    expect(translated).toBeGreaterThan(10_000n);
    expect(regionBlocks).toBeGreaterThan(500);
  });
});
