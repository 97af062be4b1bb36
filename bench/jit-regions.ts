/**
 * `node dist/bench/jit-regions.js`: a bare-metal loop of short blocks in one page — 16 "if"
 * diamonds (addi, andi, a conditional branch over two instructions, a load, an add), 7
 * instructions and 2-3 blocks each — run by the interpreter, by the JIT translating each block
 * on its own (chained), and by the JIT translating the page's blocks as one region
 * (main/vm/jit/translate.ts), alternately; prints the median MIPS per host CPU second of each.
 * Short blocks are where per-block translation gained least (each block loads the guest
 * registers it uses and stores those it writes, and returns to the dispatcher to reach the next).
 */
import { Core, ExitReason } from '../main/vm/core.js';

const RAM_BASE = 0x8000_0000;
const TOHOST = 0x8001_0000;
const LAPS = 3_000_000n;

const iType = (op: number, rd: number, f3: number, rs1: number, imm: number) =>
  (((imm & 0xfff) << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | op) >>> 0;
const rType = (rd: number, f3: number, rs1: number, rs2: number) =>
  ((rs2 << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | 0x33) >>> 0;
const bType = (f3: number, rs1: number, rs2: number, imm: number) =>
  ((((imm >> 12) & 1) << 31) |
    (((imm >> 5) & 0x3f) << 25) |
    (rs2 << 20) |
    (rs1 << 15) |
    (f3 << 12) |
    (((imm >> 1) & 0xf) << 8) |
    (((imm >> 11) & 1) << 7) |
    0x63) >>>
  0;

function program(): number[] {
  const w: number[] = [];
  for (let b = 0; b < 16; b++) {
    w.push(
      iType(0x13, 10, 0, 10, 1), // addi a0, a0, 1
      iType(0x13, 11, 7, 10, 1 << (b % 3)), // andi a1, a0, 1|2|4
      bType(0, 11, 0, 12), // beqz a1, +12
      iType(0x13, 12, 0, 12, 3), // addi a2, a2, 3
      rType(13, 4, 13, 12), // xor a3, a3, a2
      iType(0x03, 14, 3, 31, 8 * b), // ld a4, 8b(t6)
      rType(13, 0, 13, 14), // add a3, a3, a4
    );
  }
  w.push(iType(0x13, 30, 0, 30, -1), bType(1, 30, 0, -w.length * 4)); // loop LAPS times
  w.push(iType(0x13, 28, 0, 0, 1), 0x01ceb023, 0x0000006f); // sd t3, 0(t4); j .
  return w;
}

type Mode = 'interpreter' | 'blocks' | 'regions';

function run(mode: Mode): number {
  let core: Core | undefined = undefined;
  core = new Core(
    RAM_BASE,
    1 << 20,
    {
      mmioRead: () => {
        core!.busFault();
        return 0;
      },
      mmioWrite: () => core!.busFault(),
      hostTicks: () => 0,
    },
    {
      jit: mode !== 'interpreter',
      jitOptions: { regionBlocks: mode === 'blocks' ? 1 : undefined },
    },
  );
  const view = new DataView(core.ram.buffer, core.ram.byteOffset);
  program().forEach((w, i) => view.setUint32(i * 4, w, true));
  core.setX(30, LAPS);
  core.setX(31, BigInt(RAM_BASE + 0x8000));
  core.setX(29, BigInt(TOHOST));
  core.setTohost(BigInt(TOHOST));
  core.pc = BigInt(RAM_BASE);
  const c0 = process.cpuUsage();
  while (core.run(4_000_000) !== ExitReason.Tohost);
  const cpu = process.cpuUsage(c0);
  return Number(core.instret) / (cpu.user + cpu.system);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const RUNS = 3;
  const modes: Mode[] = ['interpreter', 'blocks', 'regions'];
  const mips = new Map<Mode, number[]>(modes.map((m) => [m, []]));
  for (let i = 0; i < RUNS; i++) for (const m of modes) mips.get(m)!.push(run(m));
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  console.log(`jit-regions: 16 diamonds a lap (${RUNS} runs each, alternating; median MIPS/CPU s)`);
  for (const m of modes)
    console.log(`  ${m.padEnd(12)} ${median(mips.get(m)!).toFixed(0).padStart(6)}`);
}
