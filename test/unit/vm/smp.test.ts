// Several harts in one core (wasm-core/cpu/smp.ts), played by bare-metal programs every hart
// runs from the boot ROM: atomics and LR/SC from all harts at once under short and long turns,
// mhartid, per-hart minstret, an IPI through the CLINT's msip waking a hart from WFI, per-hart
// timers waking only their own hart, and a save/restore of every hart between turns.
import { describe, expect, it } from 'vitest';
import { Core, ExitReason } from '../../../main/vm/core.js';
import { bType, iType, jal, rType, sType } from '../rv-encode.js';
import { RAM_BASE } from './bare-core.js';

const DATA = RAM_BASE + 0x8000; // s0 in the programs
const COUNTER = DATA; // amoadd.d by every hart
const LRSC = DATA + 8; // incremented with LR/SC by every hart
const DONE = DATA + 16; // hart h stores h + 1 at DONE + 8h
const MINSTRET = DATA + 256; // hart h's own minstret when it finished its loops
const WOKE = DATA + 128; // hart 1 stores 100 + mhartid here when the IPI woke it
const TOHOST = DATA + 512;
const IDS = DATA + 768; // hart h stores 1 + (mvendorid | marchid | mimpid)
const N = 400; // iterations of each loop, per hart

const R = { zero: 0, t0: 5, t1: 6, t2: 7, s0: 8, s1: 9, a0: 10, a1: 11, t3: 28, t4: 29, t5: 30 };
const CSR = { mhartid: 0xf14, minstret: 0xb02, mie: 0x304, mip: 0x344 };
const WFI = 0x10500073;
const PAUSE = 0x0100000f;

const addi = (rd: number, rs1: number, imm: number) => iType(0x13, rd, 0, rs1, imm);
const lui = (rd: number, imm20: number) => (((imm20 & 0xfffff) << 12) | (rd << 7) | 0x37) >>> 0;
const add = (rd: number, rs1: number, rs2: number) => rType(0x33, rd, 0, rs1, rs2, 0);
const slli = (rd: number, rs1: number, sh: number) => iType(0x13, rd, 1, rs1, sh);
const andi = (rd: number, rs1: number, imm: number) => iType(0x13, rd, 7, rs1, imm);
const ld = (rd: number, rs1: number, imm: number) => iType(0x03, rd, 3, rs1, imm);
const sd = (rs1: number, rs2: number, imm: number) => sType(3, rs1, rs2, imm);
const sw = (rs1: number, rs2: number, imm: number) => sType(2, rs1, rs2, imm);
const csrr = (rd: number, csr: number) => iType(0x73, rd, 2, 0, csr);
const csrrs = (rs1: number, csr: number) => iType(0x73, 0, 2, rs1, csr);
const csrw = (rs1: number, csr: number) => iType(0x73, 0, 1, rs1, csr);
const amoaddD = (rd: number, rs1: number, rs2: number) =>
  ((rs2 << 20) | (rs1 << 15) | (3 << 12) | (rd << 7) | 0x2f) >>> 0;
const lrD = (rd: number, rs1: number) =>
  ((2 << 27) | (rs1 << 15) | (3 << 12) | (rd << 7) | 0x2f) >>> 0;
const scD = (rd: number, rs1: number, rs2: number) =>
  ((3 << 27) | (rs2 << 20) | (rs1 << 15) | (3 << 12) | (rd << 7) | 0x2f) >>> 0;

/** A few-line assembler: instructions, labels, branches and jumps to labels. */
class Asm {
  private readonly words: (
    number | { kind: 'b' | 'j'; f3: number; rs1: number; rs2: number; to: string }
  )[] = [];
  private readonly labels = new Map<string, number>();
  label(name: string): this {
    this.labels.set(name, this.words.length * 4);
    return this;
  }
  emit(...insns: number[]): this {
    this.words.push(...insns);
    return this;
  }
  branch(f3: number, rs1: number, rs2: number, to: string): this {
    this.words.push({ kind: 'b', f3, rs1, rs2, to });
    return this;
  }
  jump(to: string): this {
    this.words.push({ kind: 'j', f3: 0, rs1: 0, rs2: 0, to });
    return this;
  }
  bytes(): Uint8Array {
    const out = new Uint32Array(this.words.length);
    this.words.forEach((w, i) => {
      if (typeof w === 'number') out[i] = w;
      else {
        const target = this.labels.get(w.to);
        if (target === undefined) throw new Error(`no label ${w.to}`);
        const off = target - i * 4;
        out[i] = w.kind === 'b' ? bType(w.f3, w.rs1, w.rs2, off) : jal(0, off);
      }
    });
    return new Uint8Array(out.buffer);
  }
}
const BEQ = 0;
const BNE = 1;

/** The boot ROM every hart starts in: t0 = RAM_BASE, jump there. */
const ROM = new Uint8Array(
  new Uint32Array([addi(R.t0, 0, 1), slli(R.t0, R.t0, 31), iType(0x67, 0, 0, R.t0, 0)]).buffer,
);

/**
 * Every hart: count to N with amoadd.d and with LR/SC on shared words, record its minstret and
 * that it is done. Hart 0 then waits (with PAUSE) for hart 1, sends it an IPI through msip[1],
 * waits for its answer and writes tohost. The other harts enable MSIE and WFI; the one woken
 * clears its msip and writes 100 + mhartid to WOKE, then parks (mie = 0: no WFI ends).
 */
function counterProgram(stall = PAUSE): Uint8Array {
  const a = new Asm()
    .emit(csrr(R.a0, CSR.mhartid), lui(R.s1, 8), add(R.s0, R.t0, R.s1), addi(R.t1, 0, 1))
    .emit(addi(R.a1, 0, N))
    .label('amo')
    .emit(amoaddD(0, R.s0, R.t1), addi(R.a1, R.a1, -1))
    .branch(BNE, R.a1, 0, 'amo')
    .emit(addi(R.a1, 0, N), addi(R.s1, R.s0, 8))
    .label('lrsc')
    .emit(lrD(R.t2, R.s1), addi(R.t2, R.t2, 1), scD(R.t3, R.s1, R.t2))
    .branch(BNE, R.t3, 0, 'lrsc')
    .emit(addi(R.a1, R.a1, -1))
    .branch(BNE, R.a1, 0, 'lrsc')
    .emit(csrr(R.t4, CSR.minstret), slli(R.t5, R.a0, 3), add(R.t5, R.t5, R.s0))
    .emit(sd(R.t5, R.t4, 256), addi(R.t4, R.a0, 1), sd(R.t5, R.t4, 16))
    // the ID CSRs other than mhartid, ORed: 0 on every hart
    .emit(csrr(R.t4, 0xf11), csrr(R.t3, 0xf12), rType(0x33, R.t4, 6, R.t4, R.t3, 0))
    .emit(csrr(R.t3, 0xf13), rType(0x33, R.t4, 6, R.t4, R.t3, 0), addi(R.t4, R.t4, 1))
    .emit(sd(R.t5, R.t4, 768))
    .branch(BNE, R.a0, 0, 'secondary')
    .label('wait1')
    .emit(ld(R.t4, R.s0, 24), stall)
    .branch(BEQ, R.t4, 0, 'wait1')
    .emit(lui(R.t5, 0x2000), sw(R.t5, R.t1, 4))
    .label('wait2')
    .emit(ld(R.t4, R.s0, 128), stall)
    .branch(BEQ, R.t4, 0, 'wait2')
    .emit(sd(R.s0, R.t1, 512))
    .label('spin')
    .jump('spin')
    .label('secondary')
    .emit(addi(R.t4, 0, 8), csrrs(R.t4, CSR.mie))
    .label('sleep')
    .emit(WFI, csrr(R.t4, CSR.mip), andi(R.t4, R.t4, 8))
    .branch(BEQ, R.t4, 0, 'sleep')
    .emit(lui(R.t5, 0x2000), slli(R.t4, R.a0, 2), add(R.t5, R.t5, R.t4), sw(R.t5, 0, 0))
    .emit(csrr(R.t4, CSR.mhartid), addi(R.t4, R.t4, 100), sd(R.s0, R.t4, 128), csrw(0, CSR.mie))
    .label('park')
    .emit(WFI)
    .jump('park');
  return a.bytes();
}

/**
 * Every hart: mtimecmp[h] = 1000 * (h + 1), MTIE on, WFI until mip.MTIP, then store 1 at
 * WOKE + 8h, turn its interrupts off and park.
 */
function timerProgram(): Uint8Array {
  return new Asm()
    .emit(csrr(R.a0, CSR.mhartid), lui(R.s1, 8), add(R.s0, R.t0, R.s1), addi(R.t1, 0, 1))
    .emit(addi(R.t4, R.a0, 1), addi(R.t2, 0, 1000))
    .emit(rType(0x33, R.t4, 0, R.t4, R.t2, 1)) // mul t4, t4, t2
    .emit(lui(R.t5, 0x2004), slli(R.t3, R.a0, 3), add(R.t5, R.t5, R.t3), sd(R.t5, R.t4, 0))
    .emit(addi(R.t4, 0, 0x80), csrrs(R.t4, CSR.mie))
    .label('sleep')
    .emit(WFI, csrr(R.t4, CSR.mip), andi(R.t4, R.t4, 0x80))
    .branch(BEQ, R.t4, 0, 'sleep')
    .emit(slli(R.t3, R.a0, 3), add(R.t3, R.t3, R.s0), sd(R.t3, R.t1, 128), csrw(0, CSR.mie))
    .label('park')
    .emit(WFI)
    .jump('park')
    .bytes();
}

function smpCore(harts: number, program: Uint8Array, clock = { ticks: 0 }, jit = false): Core {
  const core: Core = new Core(
    RAM_BASE,
    1 << 20,
    {
      mmioRead: () => {
        core.busFault();
        return 0;
      },
      mmioWrite: () => core.busFault(),
      hostTicks: () => clock.ticks,
    },
    { jit },
  );
  core.setHarts(harts);
  core.rom.set(ROM);
  core.ram.set(program, 0);
  core.setTohost(BigInt(TOHOST));
  return core;
}

const u64 = (core: Core, addr: number): bigint =>
  new DataView(core.ram.buffer, core.ram.byteOffset + (addr - RAM_BASE), 8).getBigUint64(0, true);

function runToTohost(core: Core, budget: number): ExitReason {
  let r = ExitReason.Budget;
  for (let i = 0; i < 2000 && r !== ExitReason.Tohost; i++) r = core.run(budget);
  return r;
}

describe('SMP: harts in turns', () => {
  for (const [harts, quantum] of [
    [2, 16384],
    [3, 5],
    [4, 37],
    [8, 1000],
  ] as const) {
    it(`${harts} harts, turns of ${quantum}: atomics, LR/SC, mhartid, own minstret, an IPI`, () => {
      const core = smpCore(harts, counterProgram());
      core.hartQuantum = quantum;
      expect(runToTohost(core, 50_000)).toBe(ExitReason.Tohost);
      expect(u64(core, COUNTER)).toBe(BigInt(harts * N));
      expect(u64(core, LRSC)).toBe(BigInt(harts * N));
      for (let h = 0; h < harts; h++) expect(u64(core, DONE + 8 * h)).toBe(BigInt(h + 1));
      // mvendorid, marchid, mimpid read 0 on every hart (only mhartid differs); stored + 1
      for (let h = 0; h < harts; h++) expect(u64(core, IDS + 8 * h)).toBe(1n);
      expect(u64(core, WOKE)).toBe(101n); // hart 1 woke from WFI by msip, and only it
      // Each hart's minstret counts its own instructions: its loops, not the others' turns.
      // Counted with the others' turns, each would be near the total and their sum several times it.
      const own = 3 * N + 4 * N;
      let sum = 0n;
      for (let h = 0; h < harts; h++) {
        const m = u64(core, MINSTRET + 8 * h);
        expect(m).toBeGreaterThan(BigInt(own));
        sum += m;
      }
      expect(sum).toBeLessThan(core.instret);
      const info = core.hartInfo();
      expect(info.map((h) => h.id)).toEqual([...Array(harts).keys()]);
      expect(info[0]!.current).toBe(true);
      expect(info.slice(1).every((h) => h.halted && h.priv === 3)).toBe(true);
      expect(core.hartSwitches).toBeGreaterThan(0n);
      // Each hart's count of what it retired (the per-CPU MIPS) adds up to the core's.
      expect(info.reduce((t, h) => t + h.retired, 0n)).toBe(core.instret);
      expect(info.every((h) => h.retired > BigInt(own))).toBe(true);
    });
  }

  for (const [name, stall] of [
    ['PAUSE', PAUSE],
    ['div t3, t3, zero', rType(0x33, R.t3, 4, R.t3, 0, 1)],
  ] as const) {
    it(`a hart spinning with ${name} gives up its turn (no whole quantum wasted)`, () => {
      const core = smpCore(2, counterProgram(stall));
      core.hartQuantum = 1_000_000;
      expect(runToTohost(core, 50_000)).toBe(ExitReason.Tohost);
      expect(u64(core, WOKE)).toBe(101n);
      // Hart 0's two waits would each burn a million-instruction turn without the yield.
      expect(core.instret).toBeLessThan(100_000n);
    });
  }

  it('one hart: a core without SMP runs the same program to its WFI', () => {
    const core = smpCore(1, counterProgram());
    // Alone, hart 0 waits for a hart 1 that does not exist: it spins on PAUSE, no yield.
    for (let i = 0; i < 3; i++) expect(core.run(20_000)).toBe(ExitReason.Budget);
    expect(u64(core, COUNTER)).toBe(BigInt(N));
    expect(core.hartSwitches).toBe(0n);
    expect(core.hartInfo()).toHaveLength(1);
  });

  it('per-hart timers: all harts in WFI end the slice; each timer wakes only its own hart', () => {
    const clock = { ticks: 0 };
    const core = smpCore(3, timerProgram(), clock);
    expect(core.run(100_000)).toBe(ExitReason.Wfi);
    expect(core.hartInfo().every((h) => h.halted)).toBe(true);
    expect(core.interruptPending()).toBe(false);
    expect(core.nextTimerDeadline()).toBe(1000n);
    clock.ticks = 1500;
    expect(core.interruptPending()).toBe(true);
    expect(core.run(100_000)).toBe(ExitReason.Wfi);
    expect([0, 1, 2].map((h) => u64(core, WOKE + 8 * h))).toEqual([1n, 0n, 0n]);
    // Hart 0 turned MTIE off: its passed deadline no longer counts.
    expect(core.nextTimerDeadline()).toBe(2000n);
    clock.ticks = 3000;
    expect(core.run(100_000)).toBe(ExitReason.Wfi);
    expect([0, 1, 2].map((h) => u64(core, WOKE + 8 * h))).toEqual([1n, 1n, 1n]);
    expect(core.nextTimerDeadline()).toBe(0xffff_ffff_ffff_ffffn);
  });

  it('saving and restoring every hart mid-run gives the same outcome', () => {
    const a = smpCore(3, counterProgram());
    a.hartQuantum = 7;
    a.run(3_000); // mid-loops: harts in LR/SC, one live, others waiting for their turn
    const saved = a.saveHarts();
    expect(saved.harts).toHaveLength(3);
    const ram = a.ram.slice();
    const b = smpCore(3, new Uint8Array(0));
    b.hartQuantum = 7;
    b.ram.set(ram);
    expect(b.restoreHarts(saved)).toBeUndefined();
    // The same harts, each where it was (the per-hart instruction counts restart at a restore).
    const where = (c: Core) => c.hartInfo().map(({ retired: _, ...h }) => h);
    expect(where(b)).toEqual(where(a));
    expect(runToTohost(a, 50_000)).toBe(ExitReason.Tohost);
    expect(runToTohost(b, 50_000)).toBe(ExitReason.Tohost);
    expect(u64(b, COUNTER)).toBe(3n * BigInt(N));
    expect(u64(b, LRSC)).toBe(3n * BigInt(N));
    expect(b.instret).toBe(a.instret);
    expect(Buffer.compare(b.ram, a.ram)).toBe(0); // (toEqual on 1 MiB takes seconds)

    const one = smpCore(1, new Uint8Array(0));
    expect(one.restoreHarts(saved)).toBe('3 CPUs, this VM has 1');
    expect(b.restoreHarts({ ...saved, current: 5 })).toBe('running CPU 5 of 3');
  });

  it('the JIT: translated loops on several harts keep the counts', () => {
    const core = smpCore(2, counterProgram(), { ticks: 0 }, true);
    core.hartQuantum = 3000;
    expect(runToTohost(core, 50_000)).toBe(ExitReason.Tohost);
    expect(u64(core, COUNTER)).toBe(2n * BigInt(N));
    expect(u64(core, LRSC)).toBe(2n * BigInt(N));
    expect(u64(core, WOKE)).toBe(101n);
  });

  for (const jit of [false, true]) {
    it(`csrrs on mip while the PLIC's line is high leaves SEIP to the line${jit ? ' (JIT)' : ''}`, () => {
      // OpenSBI delivers an IPI to S-mode with csrrs mip, SSIP. Were SEIP read from the line and
      // written back as the software bit, S-mode would see SEIP forever after the line dropped:
      // an endless stream of empty PLIC claims on any SMP guest.
      const program = new Asm()
        .emit(lui(R.s1, 8), add(R.s0, R.t0, R.s1), addi(R.t1, 0, 2))
        .emit(iType(0x73, 0, 2, R.t1, CSR.mip)) // csrrs zero, mip, t1
        .label('loop')
        .emit(csrr(R.t2, CSR.mip), sd(R.s0, R.t2, 0))
        .jump('loop')
        .bytes();
      const core = smpCore(1, program, { ticks: 0 }, jit);
      core.setExternalIrq(false, true, 0);
      core.run(200);
      expect(u64(core, DATA) & 0x202n).toBe(0x202n); // SSIP set by software, SEIP by the line
      core.setExternalIrq(false, false, 0);
      core.run(200);
      expect(u64(core, DATA) & 0x202n).toBe(0x2n);
    });
  }

  it('refuses a hart count outside 1..8', () => {
    const core = smpCore(1, new Uint8Array(0));
    expect(() => core.setHarts(0)).toThrow(RangeError);
    expect(() => core.setHarts(9)).toThrow(RangeError);
    expect(() => core.setHarts(1.5)).toThrow(RangeError);
    expect(core.harts).toBe(1);
  });
});
