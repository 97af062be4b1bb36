/**
 * A bare-metal loop shaped like kernel locking code, for the JIT's atomics: an uncontended
 * spinlock (AMOSWAP.W.AQ, FENCE, a read-modify-write, FENCE RW,W, a releasing store), a
 * compare-and-swap increment (LR.D/SC.D retry loop) and an AMOADD.D. Assembled from this source
 * with riscv64-linux-gnu-gcc -march=rv64gc -nostdlib -no-pie -Wl,-Ttext=0x80000000:
 *
 *   _start: li s0, 0x80100000; addi s2, s0, 8; li s1, 10000000; li a0, 1
 *   loop:   amoswap.w.aq t0, a0, (s0); fence rw, rw
 *           ld t5, 16(s0); add t5, t5, a0; sd t5, 16(s0)
 *           fence rw, w; sw zero, 0(s0)
 *   1:      lr.d t2, (s2); addi t3, t2, 1; sc.d t4, t3, (s2); bnez t4, 1b
 *           amoadd.d zero, a0, (s2)
 *           addi s1, s1, -1; bnez s1, loop
 *           li t0, 0x80001000; li t1, 1; sd t1, 0(t0); 2: j 2b
 *
 * `node dist/bench/atomic-loop.js`: interpreter and JIT, alternately (when atomics and fences
 * ended blocks, the loop's head was untranslatable and all of it ran in the interpreter).
 */
import { runGuestLoop } from './cpu-loop.js';

const CODE_HEX =
  '05641b041480520413098400b79498009b8404680545af22a40c0f003003033f04012a9f2338e4010f001003' +
  '23200400af330910138e1300af3ec919e39a0efe2f30a900fd14e1f8b70208008522b202054323b0620001a0';

const RUNS = 5;
const int: number[] = [];
const jit: number[] = [];
for (let i = 0; i < RUNS; i++) {
  int.push(runGuestLoop(CODE_HEX, false).mips);
  jit.push(runGuestLoop(CODE_HEX, true).mips);
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
console.log(`atomic-loop (${RUNS} runs each, alternating; median MIPS)`);
console.log(`  interpreter  ${median(int).toFixed(0).padStart(6)}`);
console.log(
  `  JIT          ${median(jit).toFixed(0).padStart(6)}   (x${(median(jit) / median(int)).toFixed(1)})`,
);
