// Core.unbound: a core made before its machine (a live migration's destination receives RAM into
// it); the machine built around it takes it when it fits and binds its imports, once.
import { describe, expect, it } from 'vitest';
import { Core } from '../../../main/vm/core.js';
import { VirtMachine } from '../../../main/vm/machine.js';
import { defaultVmConfig } from '../../../main/vm/config.js';
import { VIRT } from '../../../devices/platform/memory-map.js';

const MiB = 1 << 20;

describe('a core made before its machine', () => {
  it('the machine built around it keeps its RAM and binds it; the imports are bound once', () => {
    const core = Core.unbound(VIRT.ram.base, 64 * MiB, { jit: false });
    expect(core.awaitsImports).toBe(true);
    core.ram[12345] = 0x5a; // as a received page
    const cfg = { ...defaultVmConfig('pre'), memMiB: 64, jit: false };
    const vm = VirtMachine.fromConfig(cfg, undefined, [], undefined, true, core);
    expect(vm.core).toBe(core);
    expect(vm.core.ram[12345]).toBe(0x5a);
    expect(core.awaitsImports).toBe(false);
    expect(() =>
      core.bindImports({ mmioRead: () => 0, mmioWrite: () => {}, hostTicks: () => 0 }),
    ).toThrow(/has its imports already/);
  });

  it('one that does not fit (RAM size, JIT) is left alone and a new core is made', () => {
    const cfg = { ...defaultVmConfig('pre'), memMiB: 64, jit: false };
    const small = Core.unbound(VIRT.ram.base, 32 * MiB, { jit: false });
    expect(VirtMachine.fromConfig(cfg, undefined, [], undefined, true, small).core).not.toBe(small);
    const jitted = Core.unbound(VIRT.ram.base, 64 * MiB, { jit: true });
    expect(VirtMachine.fromConfig(cfg, undefined, [], undefined, true, jitted).core).not.toBe(
      jitted,
    );
    expect(small.awaitsImports && jitted.awaitsImports).toBe(true);
  });

  it('run before its machine bound it, it says so instead of calling nothing', () => {
    const core = Core.unbound(VIRT.ram.base, 16 * MiB, { jit: false });
    // Its first slice reads the clock, one of the imports.
    expect(() => core.run(1000)).toThrow(/runs before its machine bound its imports/);
  });
});
