import { describe, it, expect } from 'vitest';
import { parseCommand, parseMemMiB, USAGE, UsageError } from '../../../main/cli/args.js';

describe('wasmvisor command line', () => {
  it('defaults run to the bundled guest with 256 MiB on ttyS0', () => {
    expect(parseCommand(['run'])).toEqual({
      kind: 'run',
      stats: false,
      vm: {
        name: 'bundled',
        memMiB: 256,
        firmware: undefined,
        kernel: undefined,
        initrd: undefined,
        append: undefined,
        disks: [],
        console: 'ttyS0',
        rng: false,
        nics: [],
      },
    });
  });

  it('takes the QEMU-like overrides', () => {
    const c = parseCommand(
      [
        'run',
        '--kernel',
        'K',
        '--initrd',
        'I',
        '--bios',
        'B',
        '--append',
        'console=ttyS0 quiet',
      ].concat(['--mem', '1G', '--stats', '--console', 'hvc0', '--rng']),
    );
    expect(c).toMatchObject({
      stats: true,
      vm: { kernel: 'K', initrd: 'I', firmware: 'B', append: 'console=ttyS0 quiet', memMiB: 1024 },
    });
    expect(c).toMatchObject({ vm: { console: 'hvc0', rng: true } });
    expect(() => parseCommand(['run', '--console', 'ttyS1'])).toThrow(/ttyS0 or hvc0/);
  });

  it('--incoming tcp:HOST:PORT waits for a migrating VM; nothing that shapes a VM goes with it', () => {
    expect(parseCommand(['run', '--incoming', 'tcp::4444', '--no-jit'])).toMatchObject({
      kind: 'run',
      incoming: 'tcp::4444',
      jit: false,
    });
    expect(() => parseCommand(['run', '--incoming', 'tcp:x'])).toThrow(
      /--incoming: "tcp:x" is not tcp:HOST:PORT/,
    );
    expect(() => parseCommand(['run', '--incoming', 'tcp::4444', '--mem', '1G'])).toThrow(
      /--incoming takes the VM's definition from the migration; --mem cannot go with it/,
    );
    expect(() => parseCommand(['run', '--incoming', 'tcp::4444', '--restore', 'f'])).toThrow(
      /give one/,
    );
  });

  it('--virtio-packed offers packed rings on every virtio device; packed=on|off per disk and NIC', () => {
    const c = parseCommand([
      'run',
      '--virtio-packed',
      '--disk',
      'a.img,packed=off',
      '--nic',
      'virtio-pci,net=user,packed=on',
    ]);
    expect(c).toMatchObject({
      vm: {
        virtioPacked: true,
        disks: [{ path: 'a.img', packed: false }],
        nics: [{ packed: true }],
      },
    });
    const d = parseCommand(['run']);
    expect(d.kind === 'run' && 'virtioPacked' in d.vm).toBe(false);
  });

  it('leaves the JIT to its default unless --jit or --no-jit chooses', () => {
    expect(parseCommand(['run', '--jit'])).toMatchObject({ vm: { jit: true } });
    expect(parseCommand(['run', '--no-jit'])).toMatchObject({ vm: { jit: false } });
    const c = parseCommand(['run']);
    expect(c.kind === 'run' && 'jit' in c.vm).toBe(false);
    expect(() => parseCommand(['run', '--jit', '--no-jit'])).toThrow(/give one/);
  });

  it('--smp N and --smp cpus=N give the guest N CPUs, 1..8', () => {
    expect(parseCommand(['run', '--smp', '2'])).toMatchObject({ vm: { cpus: 2 } });
    expect(parseCommand(['run', '--smp=8'])).toMatchObject({ vm: { cpus: 8 } });
    expect(parseCommand(['run', '--smp', 'cpus=4', '--stats'])).toMatchObject({
      stats: true,
      vm: { cpus: 4 },
    });
    // One CPU is the default and is not written into the definition.
    for (const argv of [['run'], ['run', '--smp', '1']]) {
      const c = parseCommand(argv);
      expect(c.kind === 'run' && 'cpus' in c.vm).toBe(false);
    }
    expect(() => parseCommand(['run', '--smp', '9'])).toThrow(
      new UsageError('--smp: 9 CPUs is outside 1..8'),
    );
    expect(() => parseCommand(['run', '--smp', '0'])).toThrow(/outside 1\.\.8/);
    for (const bad of ['cpus=2,sockets=2', 'two', '2.5', 'maxcpus=4', '']) {
      expect(() => parseCommand(['run', '--smp', bad]), bad).toThrow(
        new UsageError(`--smp: cannot read "${bad}" (give N or cpus=N, N in 1..8)`),
      );
    }
    expect(() => parseCommand(['run', '--smp'])).toThrow(UsageError);
    expect(() => parseCommand(['run', '--smp=-1'])).toThrow(/cannot read "-1"/);
    expect(USAGE).toMatch(/--smp N\|cpus=N .*1\.\.8/);
  });

  it("--icount and --rtc: deterministic time and the RTC's start, as QEMU spells them", () => {
    expect(parseCommand(['run', '--icount'])).toMatchObject({
      vm: { icount: { shift: 4, sleep: true } },
    });
    expect(parseCommand(['run', '--icount', '--stats'])).toMatchObject({
      stats: true,
      vm: { icount: { shift: 4, sleep: true } },
    });
    expect(parseCommand(['run', '--icount', '7'])).toMatchObject({ vm: { icount: { shift: 7 } } });
    expect(parseCommand(['run', '--icount', 'shift=0,sleep=off'])).toMatchObject({
      vm: { icount: { shift: 0, sleep: false } },
    });
    const plain = parseCommand(['run']);
    expect(plain.kind === 'run' && plain.vm.icount).toBeUndefined();
    expect(() => parseCommand(['run', '--icount', 'shift=11'])).toThrow(/shift must be .* 0\.\.10/);
    expect(() => parseCommand(['run', '--icount', 'shift=-1'])).toThrow(/shift must be/);
    expect(() => parseCommand(['run', '--icount', 'sleep=maybe'])).toThrow(
      /sleep must be on or off/,
    );
    expect(() => parseCommand(['run', '--icount', 'fast'])).toThrow(/unknown option "fast"/);

    expect(parseCommand(['run', '--rtc', 'base=2020-01-02T03:04:05'])).toMatchObject({
      vm: { rtcBase: '2020-01-02T03:04:05Z' },
    });
    expect(parseCommand(['run', '--rtc', 'base=1999-12-31'])).toMatchObject({
      vm: { rtcBase: '1999-12-31T00:00:00Z' },
    });
    const utc = parseCommand(['run', '--rtc', 'base=utc']);
    expect(utc.kind === 'run' && utc.vm.rtcBase).toBeUndefined();
    for (const bad of [
      '2026-02-30',
      '2026-13-01',
      '2026-01-01T24:00:00',
      '1969-12-31',
      'tomorrow',
    ]) {
      expect(() => parseCommand(['run', '--rtc', `base=${bad}`]), bad).toThrow(
        /is not a (date|time)/,
      );
    }
    expect(() => parseCommand(['run', '--rtc', 'clock=vm'])).toThrow(/unknown option "clock=vm"/);
    for (const flag of [['--icount'], ['--icount', 'shift=2'], ['--rtc', 'base=utc']]) {
      expect(() => parseCommand(['run', '--restore', 'vm.state', ...flag])).toThrow(
        /--restore takes the VM's definition from the file; --(icount|rtc) cannot go with it/,
      );
    }
  });

  it('parses repeatable --disk specs in order', () => {
    const c = parseCommand([
      'run',
      '--disk',
      'root.img',
      '--disk',
      'data.img,ro,cache=unsafe,sched=deadline,format=raw',
    ]);
    expect(c).toMatchObject({
      vm: {
        disks: [
          { path: 'root.img', format: 'raw', readOnly: false, cache: 'writeback', sched: 'noop' },
          { path: 'data.img', format: 'raw', readOnly: true, cache: 'unsafe', sched: 'deadline' },
        ],
      },
    });
    expect(() => parseCommand(['run', '--disk', 'x.img,cache=fast'])).toThrow(/cache must be/);
    expect(parseCommand(['run', '--disk', 'x.img,format=qcow2'])).toMatchObject({
      vm: { disks: [{ path: 'x.img', format: 'qcow2' }] },
    });
    expect(() => parseCommand(['run', '--disk', 'x.img,format=vmdk'])).toThrow(/not supported/);
    expect(() => parseCommand(['run', '--disk', 'x.img,bogus'])).toThrow(/unknown option/);
  });

  it('--restore takes the definition from the file: VM options conflict, --stats and --[no-]jit do not', () => {
    expect(parseCommand(['run', '--restore', 'vm.state', '--stats', '--jit'])).toMatchObject({
      kind: 'run',
      restore: 'vm.state',
      stats: true,
      jit: true,
    });
    expect(parseCommand(['run', '--restore', 'vm.state', '--no-jit'])).toMatchObject({
      restore: 'vm.state',
      jit: false,
    });
    for (const [flag, ...rest] of [
      ['--mem', '512M'],
      ['--smp', '2'],
      ['--disk', 'x.img'],
      ['--nic', 'e1000'],
      ['--kernel', 'Image'],
      ['--rng'],
      ['--virtio-packed'],
      ['--balloon'],
      ['--console', 'hvc0'],
      ['--fw-cfg', 'opt/a,string=b'],
    ]) {
      expect(() => parseCommand(['run', '--restore', 'vm.state', flag!, ...rest])).toThrow(
        new UsageError(
          `--restore takes the VM's definition from the file; ${flag!.replace(/,.*/, '')} cannot go with it`,
        ),
      );
    }
    expect(() => parseCommand(['run', '--restore', ''])).toThrow(/give the saved VM file/);
  });

  it("hands files to the guest through fw_cfg as QEMU's -fw_cfg is written", () => {
    const run = (...a: string[]) => parseCommand(['run', ...a]);
    expect(
      run('--fw-cfg', 'name=opt/org.example/cfg,file=/tmp/c.json', '--fw-cfg', 'opt/b,string=x'),
    ).toMatchObject({
      vm: {
        fwCfg: [
          { name: 'opt/org.example/cfg', file: '/tmp/c.json' },
          { name: 'opt/b', string: 'x' },
        ],
      },
    });
    // ",," is a comma (QEMU's escaping); "=" inside the value is kept.
    expect(run('--fw-cfg', 'opt/s,string=a,,b=c,,')).toMatchObject({
      vm: { fwCfg: [{ name: 'opt/s', string: 'a,b=c,' }] },
    });
    expect(run('--fw-cfg', 'opt/e,string=')).toMatchObject({
      vm: { fwCfg: [{ name: 'opt/e', string: '' }] },
    });
    expect(run()).not.toHaveProperty('vm.fwCfg');
    for (const [spec, why] of [
      ['opt/a', /one of file= and string=/],
      ['opt/a,file=x,string=y', /one of file= and string=/],
      ['etc/a,string=y', /under "opt\/"/],
      ['name=opt/a,name=opt/b,string=y', /name= given twice/],
      ['opt/a,size=3', /unknown option/],
      ['opt/a,file=', /needs a path/],
      ['string=x', /give name=/],
    ] as const) {
      expect(() => run('--fw-cfg', spec), spec).toThrow(why);
    }
  });

  it('reads memory sizes the way users write them', () => {
    expect(parseMemMiB('512')).toBe(512);
    expect(parseMemMiB('512M')).toBe(512);
    expect(parseMemMiB('2G')).toBe(2048);
    expect(parseMemMiB('64MiB')).toBe(64);
    expect(() => parseMemMiB('lots')).toThrow(UsageError);
    expect(() => parseMemMiB('8M')).toThrow(/outside/);
    expect(() => parseMemMiB('4G')).toThrow(/outside/);
  });

  it('parses run-elf with its bounds', () => {
    expect(parseCommand(['run-elf', 'x.elf', '--timeout', '2.5', '--max-insns', '1000'])).toEqual({
      kind: 'run-elf',
      file: 'x.elf',
      timeoutMs: 2500,
      maxInsns: 1000,
      stats: false,
    });
    expect(() => parseCommand(['run-elf'])).toThrow(/exactly one/);
    expect(() => parseCommand(['run-elf', 'x', '--timeout=0'])).toThrow(/positive/);
  });

  it('parses ui with an optional port', () => {
    expect(parseCommand(['ui'])).toEqual({ kind: 'ui' });
    expect(parseCommand(['ui', '--port', '8080'])).toEqual({ kind: 'ui', port: 8080 });
    expect(() => parseCommand(['ui', '--port', '70000'])).toThrow(/port number/);
    expect(() => parseCommand(['ui', 'x'])).toThrow(/unexpected argument/);
  });

  it('rejects unknown commands and options with a usage error', () => {
    expect(() => parseCommand(['frobnicate'])).toThrow(UsageError);
    expect(() => parseCommand(['run', '--frob'])).toThrow(UsageError);
    expect(() => parseCommand(['run', 'extra'])).toThrow(/unexpected argument/);
    expect(parseCommand([])).toEqual({ kind: 'help' });
  });
});
