import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { defaultVmConfig } from '../../../main/vm/config.js';
import { MachineConfigError, VirtMachine } from '../../../main/vm/machine.js';
import { VIRT } from '../../../devices/platform/memory-map.js';

const dir = mkdtempSync(join(tmpdir(), 'wasmvisor-fwcfg-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("a VM's fw_cfg files", () => {
  it('reads file= when the VM is built, takes string= as it is, and lists both', () => {
    const f = join(dir, 'config.json');
    writeFileSync(f, '{"a":1}');
    const vm = VirtMachine.fromConfig({
      ...defaultVmConfig(),
      fwCfg: [
        { name: 'opt/org.example/config', file: f },
        { name: 'opt/org.example/note', string: 'hello' },
      ],
    });
    const row = vm.devices().find((d) => d.name === 'fw-cfg')!;
    expect(row).toMatchObject({ model: 'qemu,fw-cfg-mmio', base: VIRT.fwCfg.base });
    expect(row.backend).toBe('opt/org.example/config, opt/org.example/note');
    // Through the bus, as the guest reaches it: the directory names the file, its key serves it.
    const bus = vm.board.bus;
    bus.write(VIRT.fwCfg.base + 8, 2, 0x1900); // FW_CFG_FILE_DIR, big-endian
    const listing = Uint8Array.from({ length: 4 + 64 * 5 }, () => bus.read(VIRT.fwCfg.base, 1));
    const dv = new DataView(listing.buffer);
    const names = Array.from({ length: dv.getUint32(0) }, (_, i) =>
      new TextDecoder().decode(listing.subarray(12 + 64 * i, 68 + 64 * i)).replace(/\0.*$/s, ''),
    );
    const i = names.indexOf('opt/org.example/config');
    expect(dv.getUint32(4 + 64 * i)).toBe(7);
    const key = dv.getUint16(8 + 64 * i);
    bus.write(VIRT.fwCfg.base + 8, 2, ((key & 0xff) << 8) | (key >> 8));
    const got = Uint8Array.from({ length: 7 }, () => bus.read(VIRT.fwCfg.base, 1));
    expect(new TextDecoder().decode(got)).toBe('{"a":1}');
    expect(
      VirtMachine.fromConfig(defaultVmConfig())
        .devices()
        .find((d) => d.name === 'fw-cfg'),
    ).toMatchObject({ backend: "QEMU's items, no user files" });
  });

  it('refuses files it cannot read, naming them', () => {
    const build = (file: string) => () =>
      VirtMachine.fromConfig({ ...defaultVmConfig(), fwCfg: [{ name: 'opt/x', file }] });
    expect(build(join(dir, 'nope'))).toThrow(MachineConfigError);
    expect(build(join(dir, 'nope'))).toThrow(/fw_cfg opt\/x: .*nope: .*ENOENT/);
    expect(build(dir)).toThrow(/not a regular file/);
  });
});
