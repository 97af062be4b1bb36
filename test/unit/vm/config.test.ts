import { describe, it, expect } from 'vitest';
import {
  validateVmConfig,
  ConfigError,
  effectiveAppend,
  defaultVmConfig,
  parseDiskSpec,
  parseNicSpec,
  MAX_CPUS,
} from '../../../main/vm/config.js';
import { vmJit } from '../../../main/vm/core.js';

describe('VM definitions', () => {
  it('fills defaults for optional fields', () => {
    const c = validateVmConfig({ name: 'lab-1', memMiB: 512 });
    expect(c).toEqual({ ...defaultVmConfig('lab-1'), memMiB: 512 });
    expect(effectiveAppend(c)).toBe('console=ttyS0');
    expect(effectiveAppend({ ...c, console: 'hvc0' })).toBe('console=hvc0');
    expect(effectiveAppend({ ...c, append: 'quiet' })).toBe('quiet');
  });

  it('keeps the CPU count of a saved definition, leaving the default 1 out', () => {
    expect(validateVmConfig({ name: 'a', memMiB: 256, cpus: 4 }).cpus).toBe(4);
    const one = validateVmConfig({ name: 'a', memMiB: 256, cpus: 1 });
    expect('cpus' in one).toBe(false);
    expect(validateVmConfig({ name: 'a', memMiB: 256, cpus: MAX_CPUS }).cpus).toBe(8);
  });

  it("keeps a definition's JIT choice; absent is the default (on)", () => {
    expect(validateVmConfig({ name: 'a', memMiB: 256, jit: true }).jit).toBe(true);
    expect(validateVmConfig({ name: 'a', memMiB: 256, jit: false }).jit).toBe(false);
    expect('jit' in validateVmConfig({ name: 'a', memMiB: 256 })).toBe(false);
  });

  it('keeps deterministic time and the RTC start of a saved definition, normalised', () => {
    const c = validateVmConfig({
      name: 'a',
      memMiB: 256,
      icount: { shift: 2, sleep: false },
      rtcBase: '2020-01-02T03:04:05',
    });
    expect(c.icount).toEqual({ shift: 2, sleep: false });
    expect(c.rtcBase).toBe('2020-01-02T03:04:05Z');
    expect(validateVmConfig({ name: 'a', memMiB: 256, icount: {} }).icount).toEqual({
      shift: 4,
      sleep: true,
    });
    const plain = validateVmConfig({ name: 'a', memMiB: 256 });
    expect('icount' in plain || 'rtcBase' in plain).toBe(false);
  });

  it('keeps the fw_cfg files of a definition and rejects bad ones naming them', () => {
    const base = { name: 'f', memMiB: 64, disks: [], console: 'ttyS0', rng: false, nics: [] };
    const files = [
      { name: 'opt/a', file: '/x' },
      { name: 'opt/b', string: 'hi' },
    ];
    expect(validateVmConfig({ ...base, fwCfg: files }).fwCfg).toEqual(files);
    expect(validateVmConfig(base)).not.toHaveProperty('fwCfg');
    for (const [fwCfg, why] of [
      [{}, /must be a list/],
      [[7], /fwCfg\[0\]: expected an object/],
      [[{ name: 'a', string: '' }], /fwCfg\[0\]: .*under "opt\/"/],
      [[{ name: 'opt/a', string: 3 }], /string= must be text/],
      [[{ name: 'opt/a' }], /one of file= and string=/],
      [
        [
          { name: 'opt/a', file: '/x' },
          { name: 'opt/a', string: '' },
        ],
        /"opt\/a" given twice/,
      ],
    ] as const) {
      expect(() => validateVmConfig({ ...base, fwCfg }), JSON.stringify(fwCfg)).toThrow(why);
    }
  });

  it('rejects malformed definitions naming the field', () => {
    const bad: [unknown, RegExp][] = [
      [null, /expected an object/],
      [{ memMiB: 256 }, /"name"/],
      [{ name: '../etc', memMiB: 256 }, /"name" may use/],
      [{ name: 'a', memMiB: 1e9 }, /"memMiB"/],
      [{ name: 'a', memMiB: 256, console: 'tty9' }, /"console"/],
      [{ name: 'a', memMiB: 256, cpus: 0 }, /"cpus" must be an integer in 1\.\.8/],
      [{ name: 'a', memMiB: 256, cpus: 9 }, /"cpus"/],
      [{ name: 'a', memMiB: 256, cpus: 2.5 }, /"cpus"/],
      [{ name: 'a', memMiB: 256, cpus: '2' }, /"cpus"/],
      [{ name: 'a', memMiB: 256, disks: {} }, /"disks" must be a list/],
      [{ name: 'a', memMiB: 256, disks: [{}] }, /disks\[0\]: "path"/],
      [{ name: 'a', memMiB: 256, disks: [{ path: 'x', cache: 'fast' }] }, /"cache"/],
      [{ name: 'a', memMiB: 256, disks: [{ path: 'x', bus: 'isa' }] }, /"bus"/],
      [{ name: 'a', memMiB: 256, nics: [{ model: 'rtl8139', net: 'none' }] }, /virtio-pci/],
      [{ name: 'a', memMiB: 256, kernel: 7 }, /"kernel"/],
      [{ name: 'a', memMiB: 256, rng: 'yes' }, /"rng"/],
      [{ name: 'a', memMiB: 256, jit: 1 }, /"jit"/],
      [{ name: 'a', memMiB: 256, icount: 4 }, /icount: expected an object/],
      [{ name: 'a', memMiB: 256, icount: { shift: 2.5 } }, /icount: shift must be/],
      [{ name: 'a', memMiB: 256, icount: { shift: 99 } }, /icount: shift must be/],
      [{ name: 'a', memMiB: 256, icount: { sleep: 'no' } }, /"sleep"/],
      [{ name: 'a', memMiB: 256, rtcBase: 0 }, /"rtcBase"/],
      [{ name: 'a', memMiB: 256, rtcBase: '2026-02-29' }, /rtcBase: "2026-02-29" is not a date/],
    ];
    for (const [input, msg] of bad) {
      expect(() => validateVmConfig(input), JSON.stringify(input)).toThrow(ConfigError);
      expect(() => validateVmConfig(input)).toThrow(msg);
    }
  });

  it('puts virtio devices on PCI when asked: --disk ...,bus=pci and --nic virtio-pci', () => {
    expect(parseDiskSpec('a.img,bus=pci').bus).toBe('pci');
    expect(parseDiskSpec('a.img,bus=mmio').bus).toBeUndefined();
    expect(() => parseDiskSpec('a.img,bus=usb')).toThrow(/bus must be mmio or pci/);
    expect(parseNicSpec('virtio-pci,net=user').model).toBe('virtio-pci');
    const c = validateVmConfig({
      name: 'a',
      memMiB: 256,
      disks: [{ path: 'x', bus: 'pci' }, { path: 'y' }],
      nics: [{ model: 'virtio-pci', net: 'none' }],
    });
    expect(c.disks.map((d) => d.bus)).toEqual(['pci', undefined]);
    expect(c.nics[0].model).toBe('virtio-pci');
  });

  it('packed virtqueues: --disk/--nic packed=on|off, a VM-wide virtioPacked; never for an e1000', () => {
    expect(parseDiskSpec('a.img,packed=on').packed).toBe(true);
    expect(parseDiskSpec('a.img,packed=off').packed).toBe(false);
    expect(parseDiskSpec('a.img').packed).toBeUndefined();
    expect(() => parseDiskSpec('a.img,packed=yes')).toThrow(/packed must be on or off/);
    expect(parseNicSpec('virtio,net=user,packed=on').packed).toBe(true);
    expect(parseNicSpec('virtio-pci,packed=off').packed).toBe(false);
    expect(() => parseNicSpec('e1000,packed=on')).toThrow(/virtio option, not e1000/);
    const c = validateVmConfig({
      name: 'a',
      memMiB: 256,
      virtioPacked: true,
      disks: [{ path: 'x', packed: false }, { path: 'y' }],
      nics: [{ model: 'virtio', net: 'none', packed: true }],
    });
    expect(c.virtioPacked).toBe(true);
    expect(c.disks.map((d) => d.packed)).toEqual([false, undefined]);
    expect(c.nics[0].packed).toBe(true);
    // Off is the default and stays out of the file.
    expect(
      'virtioPacked' in validateVmConfig({ name: 'a', memMiB: 256, virtioPacked: false }),
    ).toBe(false);
    for (const bad of [
      { virtioPacked: 'yes' },
      { disks: [{ path: 'x', packed: 1 }] },
      { nics: [{ model: 'virtio', net: 'none', packed: 'on' }] },
      { nics: [{ model: 'e1000', net: 'none', packed: true }] },
    ]) {
      expect(() => validateVmConfig({ name: 'a', memMiB: 256, ...bad })).toThrow(/packed/i);
    }
  });
});

describe('whether a VM translates hot code (vmJit)', () => {
  const withEnv = (v: string | undefined, f: () => void): void => {
    const was = process.env.WASMVISOR_JIT;
    if (v === undefined) delete process.env.WASMVISOR_JIT;
    else process.env.WASMVISOR_JIT = v;
    try {
      f();
    } finally {
      if (was === undefined) delete process.env.WASMVISOR_JIT;
      else process.env.WASMVISOR_JIT = was;
    }
  };

  it('follows the definition; without one, WASMVISOR_JIT=1 or 0; without that, on', () => {
    withEnv(undefined, () => {
      expect(vmJit(undefined)).toBe(true);
      expect(vmJit(false)).toBe(false);
      expect(vmJit(true)).toBe(true);
    });
    withEnv('0', () => {
      expect(vmJit(undefined)).toBe(false);
      expect(vmJit(true)).toBe(true);
    });
    withEnv('1', () => expect(vmJit(false)).toBe(false));
    withEnv('yes', () => expect(vmJit(undefined)).toBe(true));
  });
});
