/** Shared folders in VM definitions: `--share` parsing, definition validation, the board's slots. */
import { describe, it, expect, afterAll } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseCommand } from '../../../main/cli/args.js';
import {
  ConfigError,
  defaultVmConfig,
  parseShareSpecs,
  validateVmConfig,
} from '../../../main/vm/config.js';
import { MachineConfigError, VirtMachine } from '../../../main/vm/machine.js';

const dir = mkdtempSync(join(tmpdir(), 'wv-share-cfg-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('--share', () => {
  it('takes a path with tag= and ro, and tags by position without', () => {
    expect(parseShareSpecs(['/a', '/b,tag=docs,ro', '/c,,d,readonly=on'])).toEqual([
      { path: '/a', tag: 'host0' },
      { path: '/b', tag: 'docs', readOnly: true },
      { path: '/c,d', tag: 'host2', readOnly: true },
    ]);
    expect(parseShareSpecs(['/p,bus=pci', '/m,bus=mmio'])).toEqual([
      { path: '/p', tag: 'host0', bus: 'pci' },
      { path: '/m', tag: 'host1' },
    ]);
    const cmd = parseCommand(['run', '--share', '/x,tag=src']);
    expect(cmd.kind === 'run' && cmd.vm.shares).toEqual([{ path: '/x', tag: 'src' }]);
  });

  it('says what is wrong with a bad one', () => {
    expect(() => parseShareSpecs(['/a,rw'])).toThrow(/unknown option "rw"/);
    expect(() => parseShareSpecs(['/a,bus=isa'])).toThrow(/unknown option "bus=isa"/);
    expect(() => parseShareSpecs([',tag=x'])).toThrow(/path/);
    expect(() => parseShareSpecs(['/a,tag=two words'])).toThrow(/space/);
    expect(() => parseShareSpecs(['/a,tag=' + 'x'.repeat(32)])).toThrow(/31 bytes/);
    expect(() => parseShareSpecs(['/a,tag=t', '/b,tag=t'])).toThrow(/"t" is given twice/);
    expect(() => parseShareSpecs(['/1', '/2', '/3', '/4', '/5'])).toThrow(/at most 4/);
    expect(() => parseShareSpecs(['/a,ro=yes'])).toThrow(ConfigError);
    expect(() => parseCommand(['run', '--restore', 'f', '--share', '/a'])).toThrow(/--share/);
  });
});

describe('shares in a definition', () => {
  it('validates untrusted JSON and keeps what is valid', () => {
    const ok = validateVmConfig({
      ...defaultVmConfig('v'),
      shares: [{ path: '/srv', tag: 'srv', readOnly: true }],
    });
    expect(ok.shares).toEqual([{ path: '/srv', tag: 'srv', readOnly: true }]);
    expect(validateVmConfig({ ...defaultVmConfig('v'), shares: [] }).shares).toBeUndefined();
    for (const bad of [
      'x',
      [1],
      [{ path: '', tag: 'a' }],
      [{ path: '/a', tag: 5 }],
      [{ path: '/a', tag: 'a', readOnly: 'yes' }],
      [{ path: '/a\0b', tag: 'a' }],
      [{ path: '/a', tag: 'a', bus: 'usb' }],
    ]) {
      expect(() => validateVmConfig({ ...defaultVmConfig('v'), shares: bad })).toThrow(ConfigError);
    }
  });

  it('a share with bus: pci sits on PCIe as a virtio-pci function (device 0x1049)', () => {
    const cfg = {
      ...defaultVmConfig('v'),
      shares: [
        { path: dir, tag: 'm' },
        { path: dir, tag: 'p', bus: 'pci' as const },
      ],
    };
    const vm = VirtMachine.fromConfig(cfg, () => {});
    expect(vm.shares.map((s) => s.tag)).toEqual(['m', 'p']);
    expect(vm.virtioPci.map((t) => t.name)).toEqual(['virtio-9p1']);
    expect(vm.virtio.filter((t) => t.device).map((t) => t.name)).toEqual(['virtio-9p0']);
    const fn = vm.pci.functions().find((f) => f.fn.name === 'virtio-9p1')!;
    expect(fn.fn.readConfig(0, 4)).toBe(0x1049_1af4);
  });

  it('a folder that is not there, or more devices than slots, is a clear error', () => {
    const cfg = { ...defaultVmConfig('v'), shares: [{ path: join(dir, 'nope'), tag: 'a' }] };
    expect(() => VirtMachine.fromConfig(cfg)).toThrow(MachineConfigError);
    expect(() => VirtMachine.fromConfig(cfg)).toThrow(/nope/);
    const full = {
      ...defaultVmConfig('v'),
      rng: true,
      balloon: { enabled: true },
      nics: [1, 2, 3, 4].map(() => ({ model: 'virtio' as const, net: 'none' })),
      shares: [0, 1, 2].map((i) => ({ path: dir, tag: `t${i}` })),
    };
    expect(() => VirtMachine.fromConfig(full as never)).toThrow(/9 virtio-mmio devices[^]*8 slots/);
  });
});
