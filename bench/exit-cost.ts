/**
 * What one exit costs here: the same two-instruction guest loop (`lw`/`lbu` from one address,
 * `j` back) run on a real VirtMachine, once reading guest RAM and once reading a device
 * register, so every iteration of the second is an exit through the whole path — the core's
 * slow memory path, the Wasm → JS import, the bus lookup and the device model's register read —
 * and nothing else. The difference per iteration is the cost of an exit.
 *
 * This is the figure behind the emulation-vs-paravirtualization table (bench/net.ts): on a
 * hardware hypervisor an exit is a world switch (and for an emulated NIC a trip to a user-space
 * device model), which is why e1000's many exits cost it throughput there; in wasmvisor an exit
 * is a function call, so the guest's own instructions dominate both NICs.
 *
 * The guest code is hand-encoded (no toolchain needed), written over the firmware's RAM before
 * the machine ever runs, executed in M-mode with no paging:
 *
 *   setup:  t0 = ADDR (RAM: li t0,1; slli t0,t0,31; addi t0,t0,0x400 — device: lui t0,HI)
 *   loop:   lw t2, 0(t0)   (or lbu t2, 5(t0) for the UART's line status register)
 *           j loop
 *
 * The VM is pinned to the interpreter (jit: false), though VMs translate hot code by default:
 * this is the interpreter's exit path, and the output says so. Translated loads reach a device
 * through jitLoadSlow instead, a path this bench does not time.
 */
import { VirtMachine } from '../main/vm/machine.js';
import { defaultVmConfig } from '../main/vm/config.js';
import { VIRT } from '../devices/platform/memory-map.js';

const T0 = 5;
const T2 = 7;
const addi = (rd: number, rs1: number, imm: number): number =>
  ((imm & 0xfff) << 20) | (rs1 << 15) | (rd << 7) | 0x13;
const slli = (rd: number, rs1: number, sh: number): number =>
  (sh << 20) | (rs1 << 15) | (1 << 12) | (rd << 7) | 0x13;
const lui = (rd: number, hi20: number): number => ((hi20 << 12) | (rd << 7) | 0x37) >>> 0;
const load = (f3: number, rd: number, rs1: number, imm: number): number =>
  (imm << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | 0x03;
const LW = 2;
const LBU = 4;
/** jal x0, -4: back to the load. */
const J_BACK = 0xffdff06f;

interface Variant {
  what: string;
  setup: number[];
  load: number;
  iterations: number;
}

const VARIANTS: Variant[] = [
  {
    what: 'guest RAM load (no exit)',
    // t0 = 0x80000400, past the code.
    setup: [addi(T0, 0, 1), slli(T0, T0, 31), addi(T0, T0, 0x400)],
    load: load(LW, T2, T0, 0),
    iterations: 20_000_000,
  },
  {
    what: 'virtio-mmio MagicValue read (exit)',
    setup: [lui(T0, VIRT.virtio.base >>> 12), addi(0, 0, 0), addi(0, 0, 0)],
    load: load(LW, T2, T0, 0),
    iterations: 2_000_000,
  },
  {
    what: '16550 LSR read (exit)',
    setup: [lui(T0, VIRT.uart0.base >>> 12), addi(0, 0, 0), addi(0, 0, 0)],
    load: load(LBU, T2, T0, 5),
    iterations: 2_000_000,
  },
];

/** Nanoseconds per loop iteration (two instructions: the load and the jump), best of `runs`. */
async function nsPerIteration(v: Variant, runs = 5): Promise<number> {
  // The interpreter's exit path (translated loads reach a device through another, jitLoadSlow).
  const vm = await VirtMachine.open({ ...defaultVmConfig('exit-cost'), memMiB: 64, jit: false });
  try {
    const code = [...v.setup, v.load, J_BACK];
    const words = new DataView(vm.core.ram.buffer, vm.core.ram.byteOffset, 64);
    code.forEach((w, i) => words.setUint32(i * 4, w >>> 0, true));
    vm.core.pc = BigInt(VIRT.ram.base);
    vm.core.run(v.setup.length);
    let best = Infinity;
    for (let r = 0; r < runs; r++) {
      const t0 = performance.now();
      vm.core.run(v.iterations * 2);
      best = Math.min(best, ((performance.now() - t0) * 1e6) / v.iterations);
    }
    const pc = Number(vm.core.pc) - VIRT.ram.base;
    if (pc !== v.setup.length * 4 && pc !== (v.setup.length + 1) * 4) {
      throw new Error(`${v.what}: the loop left its two instructions (pc offset ${pc})`);
    }
    return best;
  } finally {
    await vm.close();
  }
}

async function main(): Promise<void> {
  console.log(
    'exit cost: a guest loop of one load and one jump, on a real VirtMachine, interpreted ' +
      "(the interpreter's exit path; translated code reaches a device another way)",
  );
  const results: number[] = [];
  for (const v of VARIANTS) {
    const ns = await nsPerIteration(v);
    results.push(ns);
    console.log(`  ${v.what.padEnd(36)} ${ns.toFixed(1).padStart(7)} ns per iteration`);
  }
  const ram = results[0]!;
  for (const [i, v] of VARIANTS.entries()) {
    if (i === 0) continue;
    const exit = results[i]! - ram;
    console.log(`  one exit (${v.what.replace(' (exit)', '')}): ${exit.toFixed(0)} ns`);
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
