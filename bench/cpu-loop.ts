/**
 * A CPU-bound bare-metal guest loop for measuring MIPS: ALU ops, loads/stores, a multiply and
 * branches over a 4 KiB buffer, then a store to tohost. Assembled from this source with
 * riscv64-linux-gnu-gcc -march=rv64gc -nostdlib -no-pie -Wl,-Ttext=0x80000000 and embedded as
 * bytes so the bench needs no toolchain:
 *
 *   _start: li s0, 0x80100000; li s1, 20000; li a0, 0x12345678
 *   outer:  mv t0, s0; li t1, 512
 *   inner:  ld t2,0(t0); add t2,t2,a0; xor a0,a0,t2; slli t3,a0,7; srli t4,a0,3
 *           add a0,t3,t4; mul t5,t2,t1; add a0,a0,t5; sd a0,0(t0); addi t0,t0,8
 *           addi t1,t1,-1; bnez t1,inner
 *           addi s1,s1,-1; bnez s1,outer
 *           li t0, 0x80001000; li t1, 1; sd t1, 0(t0); 1: j 1b
 */
import { Core, ExitReason } from '../main/vm/core.js';
import { HostClock } from '../main/vm/clock.js';

const CODE_HEX =
  '05641b041480520495649b8404e2375534121b058567a2821303002083b30200aa9333457500131e7500935e35' +
  '003305de01338f63027a9523b0a200a1027d13e31e03fcfd14e1f8b70208008522b202054323b0620001a0';
const RAM_BASE = 0x8000_0000;
const TOHOST = 0x8000_1000;

export interface LoopResult {
  instructions: number;
  seconds: number;
  mips: number;
}

/** Runs the loop once in a fresh core (interpreter only, or with the JIT) and returns its speed. */
export function runCpuLoop(jit = false): LoopResult {
  return runGuestLoop(CODE_HEX, jit);
}

/** Runs bare-metal code (hex, loaded at RAM_BASE, ends by storing to TOHOST) in a fresh core. */
export function runGuestLoop(codeHex: string, jit: boolean): LoopResult {
  const clock = new HostClock();
  let core: Core | undefined = undefined;
  core = new Core(
    RAM_BASE,
    4 << 20,
    {
      mmioRead: () => {
        core!.busFault();
        return 0;
      },
      mmioWrite: () => core!.busFault(),
      hostTicks: () => clock.ticks(),
    },
    { jit },
  );
  core.ram.set(Buffer.from(codeHex, 'hex'), 0);
  core.setTohost(BigInt(TOHOST));
  core.pc = BigInt(RAM_BASE);
  const t0 = performance.now();
  for (;;) {
    const r = core.run(4_000_000);
    if (r === ExitReason.Tohost) break;
  }
  const seconds = (performance.now() - t0) / 1000;
  const instructions = Number(core.instret);
  return { instructions, seconds, mips: instructions / seconds / 1e6 };
}

/** `node dist/bench/cpu-loop.js`: the loop with the interpreter and with the JIT, alternately. */
if (import.meta.url === `file://${process.argv[1]}`) {
  const RUNS = 5;
  const int: number[] = [];
  const jit: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    int.push(runCpuLoop(false).mips);
    jit.push(runCpuLoop(true).mips);
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  console.log(`cpu-loop (${RUNS} runs each, alternating; median MIPS)`);
  console.log(`  interpreter  ${median(int).toFixed(0).padStart(6)}`);
  console.log(
    `  JIT          ${median(jit).toFixed(0).padStart(6)}   (x${(median(jit) / median(int)).toFixed(1)})`,
  );
}
