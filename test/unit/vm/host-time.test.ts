// MachineStats.hostTime: how much host time a VM spent running its guest, and how much of that
// its MMIO exits spent in device models (measured only when asked, bench/net.ts's breakdown).
import { describe, expect, it } from 'vitest';
import { VirtMachine } from '../../../main/vm/machine.js';
import { defaultVmConfig } from '../../../main/vm/config.js';
import { VIRT } from '../../../devices/platform/memory-map.js';

const T0 = 5;
const T1 = 6;
const T2 = 7;
const lui = (rd: number, hi20: number) => ((hi20 << 12) | (rd << 7) | 0x37) >>> 0;
const addi = (rd: number, rs1: number, imm: number) =>
  (((imm & 0xfff) << 20) | (rs1 << 15) | (rd << 7) | 0x13) >>> 0;
const lbu = (rd: number, rs1: number, imm: number) =>
  ((imm << 20) | (rs1 << 15) | (4 << 12) | (rd << 7) | 0x03) >>> 0;
const sw = (rs2: number, rs1: number) => ((rs2 << 20) | (rs1 << 15) | (2 << 12) | 0x23) >>> 0;
/** bne rs1, x0, -8 (two instructions back). */
const bneBack8 = (rs1: number) => 0xfe001ce3 | (rs1 << 15);
const JUMP_SELF = 0x0000006f;

/** `reads` reads of the UART's line status register (each one exit), then power off. */
function program(reads: number): number[] {
  return [
    lui(T0, VIRT.uart0.base >>> 12),
    addi(T1, 0, reads),
    lbu(T2, T0, 5),
    addi(T1, T1, -1),
    bneBack8(T1),
    lui(T0, VIRT.test.base >>> 12),
    lui(T1, 5),
    addi(T1, T1, 0x555),
    sw(T1, T0),
    JUMP_SELF,
  ];
}

async function runProgram(timeDevices: boolean, reads: number) {
  const vm = await VirtMachine.open({ ...defaultVmConfig('host-time'), memMiB: 64 });
  try {
    vm.timeDevices = timeDevices;
    const words = new DataView(vm.core.ram.buffer, vm.core.ram.byteOffset, 64);
    program(reads).forEach((w, i) => words.setUint32(i * 4, w, true));
    vm.core.pc = BigInt(VIRT.ram.base);
    const exit = await vm.run();
    return { exit, stats: vm.stats() };
  } finally {
    await vm.close();
  }
}

describe('host time of a VM', () => {
  it('counts time in the guest, and in device models only when asked', async () => {
    const reads = 2000;
    const off = await runProgram(false, reads);
    expect(off.exit).toEqual({ kind: 'poweroff' });
    expect(off.stats.exits['uart0']?.reads).toBe(reads);
    expect(off.stats.hostTime!.runMs).toBeGreaterThan(0);
    expect(off.stats.hostTime!.deviceMs).toBe(0);
    expect(off.stats.hostTime!.runCpuMs).toBe(0);

    const on = await runProgram(true, reads);
    expect(on.exit).toEqual({ kind: 'poweroff' });
    const t = on.stats.hostTime!;
    expect(t.deviceMs).toBeGreaterThan(0);
    expect(t.deviceMs).toBeLessThanOrEqual(t.runMs);
    expect(t.runCpuMs).toBeGreaterThan(0);
  });
});
