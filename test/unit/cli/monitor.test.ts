/** The (wasmvisor) monitor's commands against a fake VM control: no terminal involved. */
import { describe, it, expect } from 'vitest';
import {
  runMonitorCommand,
  MonitorSession,
  type MonitorTarget,
} from '../../../main/cli/monitor.js';
import type { DeviceRow, VmState, VmStats } from '../../../main/host/api-types.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { netSwitch } from '../../../devices/net/switch.js';
import {
  sharedSwitchSocket,
  shareSwitchesBetweenProcesses,
  stopSharingSwitches,
} from '../../../devices/net/switch-socket.js';
import { encodeFrameHeader, encodeHello } from '../../../devices/net/switch-wire.js';

function fake(withBalloon = true) {
  const calls: string[] = [];
  let state: VmState = 'running';
  const devices: DeviceRow[] = [
    {
      name: 'uart0',
      model: 'ns16550a',
      address: '0x10000000',
      size: 256,
      backend: 'x',
      state: 'ok',
    },
  ];
  devices.push({
    name: 'virtio-blk0',
    model: 'virtio,mmio',
    address: '0x10001000',
    size: 4096,
    backend: '/vm/root.img',
    state: 'ok',
    disk: {
      format: 'raw',
      path: '/vm/root.img',
      virtualSize: 64 << 20,
      actualSize: 1 << 20,
      backingChain: [],
    },
  });
  if (withBalloon) {
    devices.push({
      name: 'virtio-balloon0',
      model: 'virtio,mmio',
      address: '0x10008000',
      size: 4096,
      backend: 'x',
      state: 'ok',
      controls: [
        {
          id: 'target',
          label: 'Guest memory',
          options: [{ value: '256', label: '256 MiB' }],
          value: '512',
          range: { min: 1, max: 512, unit: 'MiB' },
        },
      ],
    });
  }
  const stats = {
    t: 0,
    uptimeSec: 3,
    instret: 1e9,
    mips: 120,
    traps: 0,
    exitsPerSec: {},
    interruptsPerSec: {},
    guestMemMiB: 512,
    wasmMemMiB: 530,
    hostRssMiB: 300,
    balloon: withBalloon
      ? {
          ramBytes: 512 << 20,
          targetBytes: 256 << 20,
          actualBytes: 256 << 20,
          heldBytes: 256 << 20,
          returnedToHost: false,
          notReturned: 'memory not returned to host: addon not built',
          bytesReleased: 0,
          deflatedUnaskedBytes: 3 << 20,
          features: { stats: true, deflateOnOom: false, freePageReporting: true, poison: false },
          stats: { memFree: 100 << 20, memAvailable: 120 << 20, memTotal: 250 << 20 },
        }
      : undefined,
  } satisfies VmStats;
  const t: MonitorTarget = {
    get state() {
      return state;
    },
    pause: () => {
      calls.push('pause');
      state = 'paused';
    },
    resume: () => calls.push('resume'),
    reset: () => calls.push('reset'),
    stop: () => calls.push('stop'),
    devices: () => devices,
    stats: () => stats,
    setDeviceControl: async (d, c, v) => {
      calls.push(`${d} ${c}=${v}`);
      return `${d}: guest memory target ${v} MiB`;
    },
    saveVm: async (path) => {
      calls.push(`save ${path}`);
      if (path.endsWith('readonly/x.vm')) throw new Error(`cannot write ${path}: EACCES`);
      return `saved to ${path} (3.0 MiB); the VM stopped`;
    },
    migrateVm: async (uri) => {
      calls.push(`migrate ${uri}`);
      return `migrated to ${uri}`;
    },
    vmSnapshot: async (action, name) => {
      calls.push(`${action} ${name}`);
      if (name === 'nope') throw new Error('no snapshot named "nope"');
      return `snapshot "${name}": ${action} done`;
    },
    diskOverlay: async (device, file) => {
      calls.push(`overlay ${device} ${file}`);
      if (file.endsWith('exists.qcow2'))
        throw new Error(`${device}: cannot create ${file}: the file exists`);
      return `${device}: switched to ${file}`;
    },
    listSnapshots: async () => [
      {
        name: 'before-upgrade',
        savedAt: '2026-01-02T03:04:05.000Z',
        stateBytes: 4 << 20,
        guestMs: 3_723_456,
        disks: [
          { path: '/vm/root.qcow2', id: '2' },
          { path: '/vm/data.qcow2', id: '1', missing: true },
          { path: '/vm/iso.img' },
        ],
      },
      {
        name: 'elsewhere',
        savedAt: '2026-01-02T05:00:00.000Z',
        stateBytes: 4 << 20,
        guestMs: 1000,
        disks: [],
        otherVm: '512 MiB of RAM, this VM has 256',
      },
      {
        name: 'bad',
        savedAt: '2026-01-03T00:00:00.000Z',
        stateBytes: 12,
        guestMs: 0,
        disks: [],
        error: 'bad.vm: truncated',
      },
    ],
  };
  return { t, calls };
}

describe('monitor commands', () => {
  it('snapshot_blkdev DEVICE FILE switches a disk to an overlay (relative FILE from the cwd); refusals are one line', async () => {
    const { t, calls } = fake();
    expect((await runMonitorCommand(t, 'info block')).output).toBe(
      'virtio-blk0: /vm/root.img (raw)',
    );
    expect((await runMonitorCommand(t, 'snapshot_blkdev virtio-blk0 ov.qcow2')).output).toBe(
      `virtio-blk0: switched to ${resolve('ov.qcow2')}`,
    );
    expect(
      (await runMonitorCommand(t, 'snapshot_blkdev virtio-blk0 /tmp/o.qcow2 qcow2')).output,
    ).toBe('virtio-blk0: switched to /tmp/o.qcow2');
    expect(calls).toEqual([
      `overlay virtio-blk0 ${resolve('ov.qcow2')}`,
      'overlay virtio-blk0 /tmp/o.qcow2',
    ]);
    calls.length = 0;
    // Hostile or mistaken arguments: one line each, nothing asked of the VM.
    expect((await runMonitorCommand(t, 'snapshot_blkdev')).output).toMatch(
      /^usage: snapshot_blkdev DEVICE FILE/,
    );
    expect((await runMonitorCommand(t, 'snapshot_blkdev virtio-blk0')).output).toMatch(/^usage/);
    expect((await runMonitorCommand(t, 'snapshot_blkdev virtio-blk9 /tmp/x')).output).toBe(
      'snapshot_blkdev: no such disk: virtio-blk9 (info block lists them)',
    );
    expect((await runMonitorCommand(t, 'snapshot_blkdev uart0 /tmp/x')).output).toMatch(
      /no such disk: uart0/,
    );
    expect((await runMonitorCommand(t, 'snapshot_blkdev virtio-blk0 /tmp/x raw')).output).toBe(
      'snapshot_blkdev: format raw is not supported (qcow2 only)',
    );
    expect(calls).toEqual([]);
    // The VM's refusal comes back as its line.
    expect(
      (await runMonitorCommand(t, 'snapshot_blkdev virtio-blk0 /tmp/exists.qcow2')).output,
    ).toBe('virtio-blk0: cannot create /tmp/exists.qcow2: the file exists');
  });

  it('savevm / loadvm / delvm NAME drive the VM snapshots; info snapshots lists them', async () => {
    const { t, calls } = fake();
    expect((await runMonitorCommand(t, 'savevm A')).output).toBe('snapshot "A": take done');
    expect((await runMonitorCommand(t, 'loadvm A')).output).toBe('snapshot "A": revert done');
    expect((await runMonitorCommand(t, 'delvm A')).output).toBe('snapshot "A": delete done');
    expect(calls).toEqual(['take A', 'revert A', 'delete A']);
    // One line for a refusal; a missing or second argument is a usage line, nothing is called.
    expect((await runMonitorCommand(t, 'loadvm nope')).output).toBe('no snapshot named "nope"');
    expect((await runMonitorCommand(t, 'savevm')).output).toBe('usage: savevm NAME');
    expect((await runMonitorCommand(t, 'delvm a b')).output).toBe('usage: delvm NAME');
    expect(calls).toHaveLength(4);
    const list = (await runMonitorCommand(t, 'info snapshots')).output.split('\n');
    expect(list[0]).toMatch(/^NAME\s+VM STATE\s+DATE\s+VM CLOCK\s+DISKS$/);
    expect(list[1]).toMatch(
      /^before-upgrade\s+4 MiB\s+2026-01-0\d \d\d:\d\d:05\s+01:02:03\.456\s+/,
    );
    expect(list[1]).toContain(
      '/vm/root.qcow2 (id 2), /vm/data.qcow2 (id 1, MISSING), /vm/iso.img (read-only, as is)',
    );
    expect(list[2]).toMatch(/^elsewhere\s.*of another VM: 512 MiB of RAM, this VM has 256$/);
    expect(list[3]).toMatch(/^bad\s.*unusable: bad\.vm: truncated$/);
  });

  it('info snapshots says when there are none', async () => {
    const { t } = fake();
    t.listSnapshots = async () => [];
    expect((await runMonitorCommand(t, 'info snapshots')).output).toBe(
      'There is no snapshot available.',
    );
  });

  it('save FILE saves the VM to an absolute path and says how to resume it', async () => {
    const { t, calls } = fake();
    const r = await runMonitorCommand(t, 'save  my vm.state ');
    const abs = resolve('my vm.state');
    expect(calls).toEqual([`save ${abs}`]);
    expect(r.output).toBe(
      `saved to ${abs} (3.0 MiB); the VM stopped\nresume it with: wasmvisor run --restore ${abs}`,
    );
    expect((await runMonitorCommand(t, 'save')).output).toMatch(/usage: save FILE/);
    expect((await runMonitorCommand(t, 'save /readonly/x.vm')).output).toBe(
      'cannot write /readonly/x.vm: EACCES',
    );
  });

  it('migrate tcp:HOST:PORT hands the VM to the migration and prints its outcome', async () => {
    const { t, calls } = fake();
    expect((await runMonitorCommand(t, 'migrate tcp:127.0.0.1:4444')).output).toBe(
      'migrated to tcp:127.0.0.1:4444',
    );
    expect(calls).toEqual(['migrate tcp:127.0.0.1:4444']);
    expect((await runMonitorCommand(t, 'migrate')).output).toMatch(/usage: migrate tcp:HOST:PORT/);
    expect((await runMonitorCommand(t, 'migrate a b')).output).toMatch(/usage/);
  });

  it('balloon MIB sets the balloon device control the UI uses', async () => {
    const { t, calls } = fake();
    const r = await runMonitorCommand(t, 'balloon 256');
    expect(calls).toEqual(['virtio-balloon0 target=256']);
    expect(r.output).toMatch(/256 MiB/);
    expect((await runMonitorCommand(t, 'balloon x')).output).toMatch(/usage/);
  });

  it('balloon MIB takes any whole MiB from 1 to RAM, not only the UI steps', async () => {
    const { t, calls } = fake();
    expect((await runMonitorCommand(t, 'balloon 300')).output).toMatch(/target 300 MiB/);
    await runMonitorCommand(t, 'balloon 1');
    await runMonitorCommand(t, 'balloon 512');
    await runMonitorCommand(t, 'balloon 384M');
    expect(calls).toEqual([
      'virtio-balloon0 target=300',
      'virtio-balloon0 target=1',
      'virtio-balloon0 target=512',
      'virtio-balloon0 target=384',
    ]);
    expect((await runMonitorCommand(t, 'balloon 513')).output).toBe(
      "balloon: MIB must be 1..512 (the guest's RAM)",
    );
    expect((await runMonitorCommand(t, 'balloon 1G')).output).toMatch(/1\.\.512/);
    for (const bad of ['balloon 0', 'balloon 1.5', 'balloon -3', 'balloon', 'balloon 1 2']) {
      expect((await runMonitorCommand(t, bad)).output).toMatch(/usage/);
    }
    expect(calls).toHaveLength(4);
  });

  it('info balloon shows sizes, the guest statistics and why memory is not returned', async () => {
    const out = (await runMonitorCommand(fake().t, 'info balloon')).output;
    expect(out).toMatch(/actual=256 MiB/);
    expect(out).toMatch(/free=100 MiB available=120 MiB/);
    expect(out).toMatch(/memory not returned to host/);
    expect(out).toMatch(/host RSS: 300 MiB/);
    expect(out).toMatch(/took back 3 MiB unasked \(deflate on OOM\)/);
  });

  it('info shares and share_access go to the shared folder rows and their access control', async () => {
    const { t, calls } = fake();
    expect((await runMonitorCommand(t, 'info shares')).output).toBe('no shared folders');
    expect((await runMonitorCommand(t, 'share_access virtio-9p0 ro')).output).toBe(
      'no such shared folder: virtio-9p0',
    );
    t.devices().push({
      name: 'virtio-9p0',
      model: 'virtio-mmio 9p (shared folder)',
      address: '0x10007000',
      size: 4096,
      backend: 'host folder /srv (tag srv)',
      state: 'active, mounted',
      controls: [
        {
          id: 'access',
          label: 'Access',
          options: [
            { value: 'rw', label: 'read-write' },
            { value: 'ro', label: 'read-only' },
          ],
          value: 'rw',
        },
      ],
    });
    expect((await runMonitorCommand(t, 'info shares')).output).toBe(
      'virtio-9p0: host folder /srv (tag srv); read-write; active, mounted',
    );
    expect((await runMonitorCommand(t, 'share_access virtio-9p0 yes')).output).toMatch(/usage/);
    await runMonitorCommand(t, 'share_access virtio-9p0 ro');
    expect(calls).toContain('virtio-9p0 access=ro');
  });

  it('without a balloon, and set_link without NICs, says so', async () => {
    const { t } = fake(false);
    expect((await runMonitorCommand(t, 'balloon 100')).output).toMatch(/No balloon/);
    expect((await runMonitorCommand(t, 'info balloon')).output).toMatch(/No balloon/);
    expect((await runMonitorCommand(t, 'set_link net0 off')).output).toBe('no such NIC: net0');
  });

  it('stop, cont, system_reset, quit, info status/devices/stats, help, unknown', async () => {
    const { t, calls } = fake();
    await runMonitorCommand(t, 'stop');
    expect((await runMonitorCommand(t, 'info status')).output).toBe('VM status: paused');
    await runMonitorCommand(t, 'cont');
    await runMonitorCommand(t, 'system_reset');
    expect((await runMonitorCommand(t, 'quit')).quit).toBe(true);
    expect(calls).toEqual(['pause', 'resume', 'reset', 'stop']);
    expect((await runMonitorCommand(t, 'info devices')).output).toMatch(/virtio-balloon0/);
    expect((await runMonitorCommand(t, 'info stats')).output).toMatch(/120\.0 MIPS/);
    expect((await runMonitorCommand(t, 'help')).output).toMatch(/set_link/);
    expect((await runMonitorCommand(t, 'frobnicate')).output).toMatch(/unknown command/);
  });

  it("info blockstats: each disk's requests, bytes, how its reads went, latency and queue depth", async () => {
    const { t } = fake();
    expect((await runMonitorCommand(t, 'info blockstats')).output).toBe('no disks');
    const none: MonitorTarget = { ...t, stats: () => undefined };
    expect((await runMonitorCommand(none, 'info blockstats')).output).toBe('no statistics yet');
    const disk = {
      policy: 'deadline',
      cache: 'writeback',
      reads: 1200,
      writes: 30,
      flushes: 4,
      discards: 1,
      bytesRead: 5 << 20,
      bytesWritten: 3 << 19,
      merges: 7,
      backendCalls: 1224,
      readsAtOnce: 1150,
      readsQueued: 50,
      queueDepth: 0,
      maxQueueDepth: 9,
      latencyUs: { p50: 142, p99: 2350, max: 18_000 },
      errors: 0,
    };
    const withDisks: MonitorTarget = {
      ...t,
      stats: () => ({
        ...t.stats()!,
        disks: {
          'virtio-blk0': disk,
          'virtio-blk1': {
            ...disk,
            readsAtOnce: 0,
            readsQueued: 0,
            readsAtOnceUnavailable: 'the image is open O_DIRECT',
          },
        },
      }),
    };
    expect((await runMonitorCommand(withDisks, 'info blockstats')).output).toBe(
      [
        'virtio-blk0: 1200 reads (5 MiB), 30 writes (1.5 MiB), 4 flushes, 1 discards/write-zeroes, 0 errors',
        '  1224 host calls (7 requests merged into others); scheduler deadline, cache writeback',
        "  host reads: 1150 at once from the host's page cache, 50 through the thread pool",
        '  latency p50 142 µs, p99 2.4 ms, max 18 ms; queue depth 0 now, 9 at most',
        'virtio-blk1: 1200 reads (5 MiB), 30 writes (1.5 MiB), 4 flushes, 1 discards/write-zeroes, 0 errors',
        '  1224 host calls (7 requests merged into others); scheduler deadline, cache writeback',
        '  host reads: none yet (never at once: the image is open O_DIRECT)',
        '  latency p50 142 µs, p99 2.4 ms, max 18 ms; queue depth 0 now, 9 at most',
      ].join('\n'),
    );
  });

  it("info stats: a JIT VM's translated share and block count; none for an interpreted one", async () => {
    const { t } = fake();
    expect((await runMonitorCommand(t, 'info stats')).output).not.toMatch(/jit/);
    const base = t.stats()!;
    const jitVm: MonitorTarget = {
      ...t,
      stats: () => ({
        ...base,
        jit: { blocks: 1444, translatedPercent: 71.25, translatedTotalPercent: 70 },
      }),
    };
    expect((await runMonitorCommand(jitVm, 'info stats')).output).toMatch(
      /^jit: 1444 blocks translated, 71\.3% of instructions in translated code now, 70\.0% since start$/m,
    );
  });

  it('info stats: how the guest clock runs under --icount; nothing about it on host time', async () => {
    const { t } = fake();
    const base = t.stats()!;
    const host: MonitorTarget = { ...t, stats: () => ({ ...base, guestClock: { seconds: 3 } }) };
    expect((await runMonitorCommand(host, 'info stats')).output).not.toMatch(/guest clock/);
    const icount: MonitorTarget = {
      ...t,
      stats: () => ({
        ...base,
        guestClock: { seconds: 754.25, icount: { shift: 2, sleep: false } },
      }),
    };
    expect((await runMonitorCommand(icount, 'info stats')).output).toMatch(
      /^guest clock 754\.3 s, counting instructions \(icount: 2\^2 per 10 MHz tick, sleep off\)$/m,
    );
  });

  it('info cpus: one line per hart, the running one starred, halted ones marked', async () => {
    const { t } = fake();
    const base = t.stats()!;
    const two: MonitorTarget = {
      ...t,
      stats: () => ({
        ...base,
        cpus: {
          harts: [
            {
              id: 0,
              pc: '0xffffffff80002a4c',
              mode: 'S',
              halted: false,
              current: true,
              mips: 212.3,
            },
            {
              id: 1,
              pc: '0xffffffff80005e10',
              mode: 'S',
              halted: true,
              current: false,
              mips: 0.04,
            },
          ],
          switchesPerSec: 812.4,
        },
      }),
    };
    expect((await runMonitorCommand(two, 'info cpus')).output).toBe(
      [
        '* CPU #0: pc=0xffffffff80002a4c (S-mode) 212.3 MIPS',
        '  CPU #1: pc=0xffffffff80005e10 (S-mode, halted) 0.0 MIPS',
        'harts take turns on one host thread: 812 turns passed per second',
      ].join('\n'),
    );
    const one: MonitorTarget = {
      ...t,
      stats: () => ({
        ...base,
        cpus: {
          harts: [
            { id: 0, pc: '0x0000000080000000', mode: 'M', halted: false, current: true, mips: 300 },
          ],
          switchesPerSec: 0,
        },
      }),
    };
    expect((await runMonitorCommand(one, 'info cpus')).output).toBe(
      '* CPU #0: pc=0x0000000080000000 (M-mode)',
    );
    expect((await runMonitorCommand(t, 'info')).output).toMatch(/cpus/);
  });

  it('info network: the switches shared with other processes, their links and counters', async () => {
    const { t } = fake();
    expect((await runMonitorCommand(t, 'info network')).output).toBe(
      'no switch is shared with other processes',
    );
    const dir = mkdtempSync(join(tmpdir(), 'wasmvisor-monitor-net-'));
    shareSwitchesBetweenProcesses({ runtimeDir: dir });
    const nic = netSwitch('mon-lab').connect();
    try {
      let path: string | undefined;
      while (!(path = sharedSwitchSocket('mon-lab'))) await new Promise((r) => setTimeout(r, 10));
      // Another "process": it says hello and sends one broadcast frame.
      const peer = createConnection(path);
      const f = new Uint8Array(60).fill(0xff, 0, 6);
      peer.write(encodeHello('1-00000001', 'mon-lab'));
      peer.write(encodeFrameHeader({ data: f }));
      peer.write(f);
      await new Promise<void>((r) => (nic.onReceive = () => r()));
      expect((await runMonitorCommand(t, 'info network')).output).toBe(
        'switch:mon-lab: linked to 1 other process; frames sent 0, received 1, dropped (peer ' +
          'behind) 0, bad 0; links broken by the peer 0, stale sockets removed 0',
      );
      peer.destroy();
    } finally {
      nic.close();
      stopSharingSwitches();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the line editor echoes, handles backspace, and prompts after each command', async () => {
    const { t, calls } = fake();
    let out = '';
    const s = new MonitorSession(t, (x) => (out += x));
    s.enter();
    s.feed(new TextEncoder().encode('stoq\x7fp\r'));
    await s.idle();
    expect(calls).toEqual(['pause']);
    // Backspace echoes as BS, space, BS.
    expect(out.endsWith('(wasmvisor) stoq\b \bp\r\n(wasmvisor) ')).toBe(true);
  });
});
