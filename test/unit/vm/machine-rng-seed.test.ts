import { describe, expect, it } from 'vitest';
import { defaultVmConfig } from '../../../main/vm/config.js';
import { VirtMachine } from '../../../main/vm/machine.js';
import { decompile, hasDtc, indexDts } from '../platform/dts.js';

/** The device tree a machine boots with, as it lies in guest RAM. */
function bootDtb(vm: VirtMachine): Uint8Array {
  const { dtbAddr, dtbSize } = vm.boot!;
  return vm.core.ram.slice(dtbAddr - 0x8000_0000, dtbAddr - 0x8000_0000 + dtbSize);
}

const seedOf = (dtb: Uint8Array): string | null | undefined =>
  indexDts(decompile(dtb).dts).get('/chosen')!.get('rng-seed');

describe.skipIf(!hasDtc)("the guest's early entropy (/chosen/rng-seed)", () => {
  it('gives every boot 32 fresh random bytes, as QEMU does', () => {
    const a = seedOf(bootDtb(VirtMachine.fromConfig(defaultVmConfig())));
    const b = seedOf(bootDtb(VirtMachine.fromConfig(defaultVmConfig())));
    expect(a).toMatch(/^<(0x[0-9a-f]+ ){7}0x[0-9a-f]+>$/);
    expect(b).toMatch(/^<(0x[0-9a-f]+ ){7}0x[0-9a-f]+>$/);
    expect(a).not.toBe(b);
  });

  it('gives none under deterministic time, so two runs stay the same', () => {
    const cfg = { ...defaultVmConfig(), icount: { shift: 4, sleep: false } };
    const a = bootDtb(VirtMachine.fromConfig(cfg));
    expect(seedOf(a)).toBeUndefined();
    expect(Buffer.from(a).equals(Buffer.from(bootDtb(VirtMachine.fromConfig(cfg))))).toBe(true);
  });
});
