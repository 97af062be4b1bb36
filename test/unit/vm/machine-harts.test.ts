import { describe, expect, it, vi } from 'vitest';
import { defaultVmConfig, MAX_CPUS } from '../../../main/vm/config.js';
import { MachineConfigError, MAX_HARTS, VirtMachine } from '../../../main/vm/machine.js';

const UART = 0x1000_0000;
const PLIC = 0x0c00_0000;

describe('a machine with several harts (--smp)', () => {
  it('lets a definition ask for as many CPUs as the machine has harts', () => {
    expect(MAX_CPUS).toBe(MAX_HARTS);
  });

  it('describes every hart in the device tree it boots with', () => {
    const vm = VirtMachine.fromConfig({ ...defaultVmConfig(), cpus: 3 });
    expect(vm.board.harts).toBe(3);
    const { dtbAddr, dtbSize } = vm.boot!;
    const dtb = Buffer.from(
      vm.core.ram.subarray(dtbAddr - 0x8000_0000, dtbAddr - 0x8000_0000 + dtbSize),
    );
    for (const h of [0, 1, 2]) expect(dtb.includes(`cpu@${h}\0`)).toBe(true);
    expect(dtb.includes('cpu@3\0')).toBe(false);
    const one = VirtMachine.fromConfig(defaultVmConfig());
    expect(one.board.harts).toBe(1);
  });

  it("drives each hart's external interrupt lines from its own PLIC contexts", () => {
    const vm = VirtMachine.fromConfig({ ...defaultVmConfig(), cpus: 2 });
    const irq = vi.spyOn(vm.core, 'setExternalIrq');
    const bus = vm.board.bus;
    bus.write(PLIC + 4 * 10, 4, 1); // UART priority
    bus.write(PLIC + 0x2000 + 0x80 * 3, 4, 1 << 10); // enabled for context 3: hart 1 S-mode
    bus.write(UART + 1, 1, 0x01); // UART: interrupt on received data
    vm.board.consoleInput(new TextEncoder().encode('x'));
    expect(irq.mock.calls).toEqual([[false, true, 1]]);
    bus.write(PLIC + 0x2000 + 0x80 * 2, 4, 1 << 10); // and context 2: hart 1 M-mode
    expect(irq.mock.calls.at(-1)).toEqual([true, true, 1]);
    expect(bus.read(PLIC + 0x20_3004, 4)).toBe(10); // hart 1 S claims
    expect(irq.mock.calls.at(-1)).toEqual([false, false, 1]);
    expect(irq.mock.calls.every(([, , hart]) => hart === 1)).toBe(true);
  });

  it('refuses a hart count outside 1..MAX_HARTS', () => {
    for (const harts of [0, MAX_HARTS + 1, 1.5]) {
      expect(() => new VirtMachine({ memMiB: 16, harts, bootargs: '', restoring: true })).toThrow(
        MachineConfigError,
      );
    }
    expect(() => new VirtMachine({ memMiB: 16, harts: 9, bootargs: '', restoring: true })).toThrow(
      'CPUs: 9 is not a number from 1 to 8',
    );
  });
});
