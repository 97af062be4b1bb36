/**
 * Live device controls and console streams through the host API, with real VM workers: a disk's
 * scheduler, cache mode and read-only switch (and what the guest then sees), disk throughput in
 * the stats, hvc0 and ttyS0 as separate consoles, and the RPC layer's checks on these requests.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { HostApi, HostError } from '../../../main/host/host-api.js';
import { RpcSession } from '../../../main/host/rpc.js';
import type { ClientEvent, VmStats } from '../../../main/host/api-types.js';
import { StatsSampler } from '../../../main/worker/stats-sampler.js';
import { createQcow2, openImage } from '../../../devices/block/qcow2/index.js';
import type { MachineStats } from '../../../main/vm/machine.js';

const PROMPT = /:~# /;
const dirs: string[] = [];
const hosts: HostApi[] = [];
function newHost(): HostApi {
  const dir = mkdtempSync(join(tmpdir(), 'wasmvisor-ctl-'));
  dirs.push(dir);
  const h = new HostApi({ dataDir: dir });
  hosts.push(h);
  return h;
}

afterEach(async () => {
  await Promise.all(hosts.splice(0).map((h) => h.shutdown()));
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function watch(h: HostApi, name: string, stream?: 'ttyS0' | 'hvc0') {
  let text = '';
  const att = h.attachConsole(name, (b) => (text += Buffer.from(b).toString('latin1')), stream);
  text += Buffer.from(att.scrollback).toString('latin1');
  return {
    get text() {
      return text;
    },
    /** Forgets what came so far (the next waitFor looks only at new output). */
    clear() {
      text = '';
    },
    async waitFor(re: RegExp, ms = 60_000): Promise<void> {
      const t0 = Date.now();
      while (!re.test(text)) {
        if (Date.now() - t0 > ms)
          throw new Error(`timeout waiting for ${re}:\n${text.slice(-600)}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
  };
}

const type = (h: HostApi, name: string, line: string) =>
  h.consoleInput(name, new TextEncoder().encode(line + '\n'));

describe('disk controls', () => {
  it('switch the scheduler and cache mode live, refuse bad values, and gate writes', async () => {
    const h = newHost();
    const img = join(h.dataDir, 'scratch.img');
    writeFileSync(img, Buffer.alloc(1024 * 1024, 0x5a));
    h.createVm({ name: 'disk', memMiB: 128, disks: [{ path: img }] });
    const stats: VmStats[] = [];
    h.subscribe((e) => e.type === 'stats' && e.name === 'disk' && stats.push(e.stats));
    await expect(h.setDeviceControl('disk', 'virtio-blk0', 'sched', 'scan')).rejects.toThrow(
      /not running/,
    );
    h.startVm('disk');
    const con = watch(h, 'disk');
    await con.waitFor(PROMPT);

    const row = () => h.listDevices('disk').find((d) => d.name === 'virtio-blk0')!;
    expect(row().controls?.map((c) => `${c.id}=${c.value}`)).toEqual([
      'readOnly=off',
      'cache=writeback',
      'sched=noop',
    ]);
    // Devices without controls declare none.
    expect(h.listDevices('disk').find((d) => d.name === 'uart0')!.controls).toBeUndefined();

    await expect(h.setDeviceControl('disk', 'virtio-blk0', 'sched', 'deadline')).resolves.toBe(
      'virtio-blk0: scheduler deadline',
    );
    await expect.poll(() => row().backend).toMatch(/sched=deadline/);
    expect(row().controls!.find((c) => c.id === 'sched')!.value).toBe('deadline');
    await expect(h.setDeviceControl('disk', 'virtio-blk0', 'cache', 'unsafe')).resolves.toMatch(
      /cache unsafe — flushes are ignored/,
    );
    await expect.poll(() => row().backend).toMatch(/cache=unsafe/);

    await expect(h.setDeviceControl('disk', 'virtio-blk0', 'sched', 'fifo')).rejects.toThrow(
      /Scheduler must be one of noop, sstf, scan, deadline/,
    );
    await expect(h.setDeviceControl('disk', 'virtio-blk0', 'speed', 'x')).rejects.toThrow(
      /no control "speed"/,
    );
    await expect(h.setDeviceControl('disk', 'nvme0', 'sched', 'noop')).rejects.toThrow(HostError);

    // Reading the disk shows up as throughput in the stats.
    type(h, 'disk', 'dd if=/dev/vda of=/dev/null bs=64k 2>/dev/null; echo read-$?');
    await con.waitFor(/^read-0/m);
    await expect
      .poll(() => stats.some((s) => (s.bytesPerSec?.['virtio-blk0']?.read_bytes ?? 0) > 0))
      .toBe(true);

    // Read-only now: writes fail with I/O errors; the guest is told at the next reset.
    await expect(h.setDeviceControl('disk', 'virtio-blk0', 'readOnly', 'on')).resolves.toMatch(
      /writes refused .* after the next reset/,
    );
    await expect
      .poll(() => row().controls!.find((c) => c.id === 'readOnly'))
      .toMatchObject({ value: 'on', note: expect.stringMatching(/I\/O errors/) });
    type(h, 'disk', 'dd if=/dev/zero of=/dev/vda bs=4k count=1 conv=fsync 2>&1; echo write-$?');
    await con.waitFor(/^write-[1-9]/m);
    // And back: the image is still open read-write, so writes work again at once.
    await expect(h.setDeviceControl('disk', 'virtio-blk0', 'readOnly', 'off')).resolves.toBe(
      'virtio-blk0: read-write',
    );
    type(h, 'disk', 'dd if=/dev/zero of=/dev/vda bs=4k count=1 conv=fsync 2>/dev/null; echo ok-$?');
    await con.waitFor(/^ok-0/m);

    // After a reset the guest negotiates VIRTIO_BLK_F_RO; the way back waits for a reset too.
    await h.setDeviceControl('disk', 'virtio-blk0', 'readOnly', 'on');
    h.resetVm('disk');
    await con.waitFor(/\[wasmvisor: reset\][\s\S]*:~# /);
    type(h, 'disk', 'echo ro-$(cat /sys/block/vda/ro)');
    await con.waitFor(/^ro-1/m);
    await expect(h.setDeviceControl('disk', 'virtio-blk0', 'readOnly', 'off')).resolves.toMatch(
      /stays read-only until the next reset/,
    );
    expect(row().controls!.find((c) => c.id === 'readOnly')!.note).toMatch(/reopened read-write/);
    expect(row().controls!.find((c) => c.id === 'sched')!.value).toBe('deadline'); // kept
  }, 90_000);
});

describe('disk snapshots through the host API', () => {
  it('create, apply and delete on a paused VM; refused while it runs and on raw disks', async () => {
    const h = newHost();
    const img = join(h.dataDir, 'snap.qcow2');
    const raw = join(h.dataDir, 'plain.img');
    await createQcow2(img, { size: 4 * 1024 * 1024 });
    writeFileSync(raw, Buffer.alloc(1024 * 1024));
    h.createVm({
      name: 'snap',
      memMiB: 128,
      disks: [{ path: img, format: 'qcow2' }, { path: raw }],
    });
    h.startVm('snap');
    const con = watch(h, 'snap');
    await con.waitFor(PROMPT);
    const disk = () => h.listDevices('snap').find((d) => d.name === 'virtio-blk0')!.disk!;
    await expect.poll(() => disk()?.format).toBe('qcow2');
    expect(disk()).toMatchObject({ path: img, virtualSize: 4 * 1024 * 1024, backingChain: [] });
    expect(h.listDevices('snap').find((d) => d.name === 'virtio-blk1')!.disk).toMatchObject({
      format: 'raw',
      virtualSize: 1024 * 1024,
    });
    const put = async (text: string) => {
      type(
        h,
        'snap',
        `echo ${text} | dd of=/dev/vda bs=512 count=1 conv=sync,fsync 2>/dev/null; echo put-$?`,
      );
      await con.waitFor(new RegExp(`^put-0[\\s\\S]*${PROMPT.source}`, 'm'));
      con.clear();
    };
    await put('first-version');
    await expect(h.diskSnapshot('snap', 'virtio-blk0', 'create', 'one')).rejects.toThrow(
      /pause "snap" before/,
    );
    h.pauseVm('snap');
    await h.waitForState('snap', 'paused');
    await expect(h.diskSnapshot('snap', 'virtio-blk0', 'create', 'one')).resolves.toMatch(
      /snapshot 1 "one" created/,
    );
    expect(disk().snapshots!.map((x) => x.name)).toEqual(['one']);
    await expect(h.diskSnapshot('snap', 'virtio-blk0', 'create', 'one')).rejects.toThrow(
      /exists already/,
    );
    await expect(h.diskSnapshot('snap', 'virtio-blk1', 'create', 'x')).rejects.toThrow(
      /raw image has no internal snapshots/,
    );
    h.resumeVm('snap');
    await h.waitForState('snap', 'running');
    await put('second-version');
    h.pauseVm('snap');
    await h.waitForState('snap', 'paused');
    await expect(h.diskSnapshot('snap', 'virtio-blk0', 'apply', 'one')).resolves.toMatch(
      /reverted to snapshot "one" — reset the VM/,
    );
    await expect(h.diskSnapshot('snap', 'virtio-blk0', 'create', 'two')).resolves.toMatch(/"two"/);
    await expect(h.diskSnapshot('snap', 'virtio-blk0', 'delete', 'one')).resolves.toMatch(
      /"one" deleted/,
    );
    expect(disk().snapshots!.map((x) => x.name)).toEqual(['two']);
    // After a reset the guest reads the reverted disk.
    h.resumeVm('snap');
    h.resetVm('snap');
    await con.waitFor(/\[wasmvisor: reset\][\s\S]*:~# /);
    type(h, 'snap', 'head -c 13 /dev/vda; echo');
    await con.waitFor(/^first-version$/m);
    h.stopVm('snap');
    await h.waitForState('snap', 'stopped');
    const d = await openImage(img, 'qcow2', { readOnly: true });
    const b = new Uint8Array(512);
    await d.read(0, b);
    await d.close();
    expect(Buffer.from(b.subarray(0, 13)).toString()).toBe('first-version');
  }, 120_000);
});

describe('console streams', () => {
  it('keeps hvc0 and ttyS0 apart, each with its own scrollback and input', async () => {
    const h = newHost();
    h.createVm({ name: 'hvc', memMiB: 128, console: 'hvc0' });
    expect(() => h.attachConsole('bundled', () => {}, 'hvc0')).toThrow(/has no console hvc0/);
    h.startVm('hvc');
    const hvc = watch(h, 'hvc'); // the default stream is the VM's console
    await hvc.waitFor(PROMPT);
    const uart = watch(h, 'hvc', 'ttyS0');
    expect(uart.text).toMatch(/OpenSBI/); // the firmware prints on the UART
    expect(hvc.text).not.toMatch(/OpenSBI/);
    expect(uart.text).not.toMatch(PROMPT);
    type(h, 'hvc', 'echo on-hvc-$((20+1))');
    await hvc.waitFor(/^on-hvc-21/m);
    expect(uart.text).not.toMatch(/on-hvc/);
    // The guest writes to its UART too: that output reaches only the ttyS0 stream.
    type(h, 'hvc', 'echo to-uart > /dev/ttyS0');
    await uart.waitFor(/to-uart/);
    expect(hvc.text).not.toMatch(/^to-uart/m);
  }, 60_000);
});

describe('RPC checks for controls and streams', () => {
  const session = () => {
    const h = newHost();
    const events: ClientEvent[] = [];
    return { h, s: new RpcSession(h, (e) => events.push(e)), events };
  };

  it('validates parameters before anything reaches the host', async () => {
    const { s } = session();
    expect(s.handle({ id: 1, method: 'setDeviceControl', params: { name: 'bundled' } })).toEqual({
      id: 1,
      error: '"device" must be a non-empty string',
    });
    expect(
      s.handle({ id: 2, method: 'attachConsole', params: { name: 'bundled', stream: 'ttyS9' } }),
    ).toEqual({ id: 2, error: '"stream" must be one of ttyS0, hvc0' });
    expect(
      s.handle({ id: 3, method: 'consoleInput', params: { name: 'bundled', stream: 7, data: '' } }),
    ).toEqual({ id: 3, error: '"stream" must be one of ttyS0, hvc0' });
    expect(
      s.handle({ id: 4, method: 'attachConsole', params: { name: 'bundled', stream: 'hvc0' } }),
    ).toEqual({ id: 4, error: '"bundled" has no console hvc0 (it has ttyS0)' });
    const params = { name: 'bundled', device: 'virtio-blk0', control: 'sched', value: 'noop' };
    await expect(s.handle({ id: 5, method: 'setDeviceControl', params })).resolves.toEqual({
      id: 5,
      error: '"bundled" is not running',
    });
    expect(s.handle({ id: 6, method: 'attachConsole', params: { name: 'bundled' } })).toEqual({
      id: 6,
      result: { scrollback: '' },
    });
    const snap = { name: 'bundled', device: 'virtio-blk0', action: 'revert', snapshot: 'x' };
    expect(s.handle({ id: 7, method: 'diskSnapshot', params: snap })).toEqual({
      id: 7,
      error: '"action" must be one of create, apply, delete',
    });
    await expect(
      s.handle({ id: 8, method: 'diskSnapshot', params: { ...snap, action: 'create' } }),
    ).resolves.toEqual({ id: 8, error: '"bundled" is not running' });
    s.close();
  });
});

describe('throughput in the stats snapshot', () => {
  it('turns every *_bytes counter into bytes per second, per device', () => {
    let now = 0;
    const sampler = new StatsSampler(
      64,
      () => now,
      () => undefined,
    );
    const m = (rd: number, tx: number): MachineStats => ({
      instret: 0n,
      seconds: 0,
      mips: 0,
      exits: {},
      interrupts: {},
      harts: { cpus: [], switches: 0 },
      traps: 0n,
      virtio: {
        'virtio-blk0': { read_bytes: rd, write_bytes: 0, requests: 9 },
        'virtio-net0': { tx_bytes: tx, rx_bytes: 0 },
      },
      // Another device family's counters, beside virtio's (e1000s keep theirs apart).
      ...({ nics: { 'e1000-0': { rx_bytes: rd * 2 } } } as object),
    });
    sampler.sample(m(0, 0), 0);
    now = 500;
    const s = sampler.sample(m(1000, 4000), 0);
    expect(s.bytesPerSec).toEqual({
      'virtio-blk0': { read_bytes: 2000, write_bytes: 0 },
      'virtio-net0': { tx_bytes: 8000, rx_bytes: 0 },
      'e1000-0': { rx_bytes: 4000 },
    });
  });
});
