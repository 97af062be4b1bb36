/**
 * snapshot_blkdev's switch on a machine that is built but not booted: requests in flight on the
 * raw disk complete there, requests that arrive during the switch wait and land in the overlay,
 * the raw image is unchanged afterwards, the overlay passes qemu-img check with the raw image as
 * its backing file, the disk keeps its cache mode and scheduler, the raw image's lock is only a
 * read lock, a VM snapshot can then be taken; and hostile or mistaken requests are refused with
 * one line, the disk working on as before.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VirtMachine } from '../../../main/vm/machine.js';
import { defaultVmConfig, type DiskConfig, type VmConfig } from '../../../main/vm/config.js';
import { SwitchableDisk, findDisk } from '../../../main/worker/controls/disk-controls.js';
import { switchToOverlay } from '../../../main/worker/controls/disk-overlay.js';
import { ControlError, type ControlContext } from '../../../main/worker/device-controls.js';
import { openDisk } from '../../../devices/block/index.js';
import { imageInfo } from '../../../devices/block/qcow2/index.js';
import { takeVmSnapshot } from '../../../main/vm/vmstate/vm-snapshots.js';

const hasQemuImg = spawnSync('qemu-img', ['--version']).status === 0;
const MiB = 1 << 20;

const disk = (path: string, more: Partial<DiskConfig> = {}): DiskConfig => ({
  path,
  format: 'raw',
  readOnly: false,
  cache: 'writeback',
  sched: 'noop',
  ...more,
});

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const block = (fill: number): Uint8Array => new Uint8Array(64 * 1024).fill(fill);

describe('snapshot_blkdev: switching a running disk to a qcow2 overlay', () => {
  let dir: string;
  let raw: string;
  let vm: VirtMachine;
  let cfg: VmConfig;
  let ctx: ControlContext;
  const sw = (i = 0): SwitchableDisk => findDisk(`virtio-blk${i}`, ctx)!.sw;

  async function boot(disks: DiskConfig[]): Promise<void> {
    cfg = { ...defaultVmConfig('ov'), memMiB: 32, disks };
    vm = await VirtMachine.open(cfg, () => {}, { wrapDisk: (d) => new SwitchableDisk(d) });
    ctx = { machine: vm, config: cfg };
  }

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'wasmvisor-overlay-'));
    raw = join(dir, 'root.img');
    writeFileSync(raw, new Uint8Array(8 * MiB).fill(0x11));
  });
  afterEach(async () => {
    await vm?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('lets requests in flight finish on the raw image and sends later ones to the overlay', async () => {
    await boot([disk(raw, { cache: 'writethrough', sched: 'deadline' })]);
    // Live changes before the switch carry over (the definition said writethrough/deadline).
    const d = sw();
    d.disk.setCacheMode('unsafe');
    d.disk.setPolicy('scan');
    const ov = join(dir, 'root-overlay.qcow2');

    // Writes under way when the switch is asked for: they belong to the raw image (the
    // overlay is made first; the switch point is when the disk starts holding requests).
    const before = [0, 1, 2, 3].map((i) => d.write(i * 65536, block(0xa0 + i)));
    const switching = switchToOverlay('virtio-blk0', ov, ctx);
    await expect.poll(() => d.switching, { interval: 1 }).toBe(true);
    // Writes and reads that arrive while it switches: they wait, then go to the overlay.
    const during = [4, 5].map((i) => d.write(i * 65536, block(0xb0 + i)));
    const readBack = new Uint8Array(65536);
    const reading = d.read(0, readBack);
    const r = await switching;
    await Promise.all([...before, ...during, reading]);
    // The read queued behind the switch saw the write made before it (through the backing file).
    expect(readBack[0]).toBe(0xa0);
    expect(r.message).toBe(
      `virtio-blk0: switched to ${ov} (qcow2, backing file ${raw}, raw); ${raw} is read-only from now on`,
    );
    expect(r.disk).toMatchObject({ path: ov, format: 'qcow2', cache: 'unsafe', sched: 'scan' });
    expect(cfg.disks[0]).toEqual(r.disk);
    expect(d.disk.stats()).toMatchObject({ path: ov, cache: 'unsafe', policy: 'scan' });
    expect(d.readOnly).toBe(false);

    // The raw image holds the writes from before the switch and none after.
    const rawBytes = readFileSync(raw);
    expect(rawBytes[0]).toBe(0xa0);
    expect(rawBytes[3 * 65536]).toBe(0xa3);
    expect(rawBytes[4 * 65536]).toBe(0x11);
    const rawHash = sha(rawBytes);
    // More guest writes: only the overlay changes.
    await d.write(6 * 65536, block(0xc6));
    await d.flush();
    expect(sha(readFileSync(raw))).toBe(rawHash);
    const got = new Uint8Array(65536);
    await d.read(4 * 65536, got);
    expect(got[100]).toBe(0xb4);
    await d.read(6 * 65536, got);
    expect(got[0]).toBe(0xc6);

    // The base is a backing file now: another read-only opening is fine, a writer is refused.
    const ro = await openDisk(disk(raw, { readOnly: true }));
    await ro.close();
    await expect(openDisk(disk(raw))).rejects.toThrow(/failed to get "write" lock/);

    const info = await imageInfo(ov, 'qcow2');
    expect(info.virtualSize).toBe(8 * MiB);
    expect(info.backingFilename).toBe(raw);
    expect(info.backingFormat).toBe('raw');
  });

  it.skipIf(!hasQemuImg)(
    'leaves an overlay qemu-img checks clean, with the raw image as its backing file',
    async () => {
      await boot([disk(raw)]);
      const ov = join(dir, 'ov.qcow2');
      await switchToOverlay('virtio-blk0', ov, ctx);
      await sw().write(MiB, block(0x77));
      await vm.close();
      const check = spawnSync('qemu-img', ['check', ov], { encoding: 'utf8' });
      expect(check.stdout + check.stderr).toMatch(/No errors were found/);
      expect(check.status).toBe(0);
      const chain = spawnSync('qemu-img', ['info', '--backing-chain', '--output', 'json', ov], {
        encoding: 'utf8',
      });
      expect(chain.status).toBe(0);
      const layers = JSON.parse(chain.stdout) as { filename: string; format: string }[];
      expect(layers.map((l) => [l.filename, l.format])).toEqual([
        [ov, 'qcow2'],
        [raw, 'raw'],
      ]);
      // qemu-img reads the guest's write through the overlay.
      const out = join(dir, 'flat.img');
      expect(spawnSync('qemu-img', ['convert', '-O', 'raw', ov, out]).status).toBe(0);
      expect(readFileSync(out)[MiB]).toBe(0x77);
    },
  );

  it('lets a VM snapshot be taken once the raw disk lives in an overlay', async () => {
    await boot([disk(raw)]);
    const snaps = join(dir, 'snapshots');
    const image = (i: number) => sw(i).disk.image;
    vm.pause();
    await expect(takeVmSnapshot(vm, cfg, snaps, 'A', image)).rejects.toThrow(
      /snapshot_blkdev virtio-blk0 FILE/,
    );
    await switchToOverlay('virtio-blk0', join(dir, 'ov.qcow2'), ctx);
    const t = await takeVmSnapshot(vm, cfg, snaps, 'A', image);
    expect(t.disks).toEqual([{ path: join(dir, 'ov.qcow2'), id: '1' }]);
  });

  it('refuses hostile and mistaken requests with one line, and the disk works on', async () => {
    const ro = join(dir, 'ro.img');
    const snap = join(dir, 'snap.img');
    writeFileSync(ro, new Uint8Array(MiB));
    writeFileSync(snap, new Uint8Array(MiB));
    await boot([disk(raw), disk(ro, { readOnly: true }), disk(snap, { snapshot: true })]);
    const taken = join(dir, 'taken.qcow2');
    writeFileSync(taken, 'keep me');
    const notDir = join(dir, 'root.img', 'x.qcow2');
    const cases: [string, string, RegExp][] = [
      ['virtio-blk7', join(dir, 'a.qcow2'), /^virtio-blk7: no such disk$/],
      ['uart0', join(dir, 'a.qcow2'), /^uart0: no such disk$/],
      ['virtio-blk0', 'relative.qcow2', /^virtio-blk0: the overlay's path must be absolute/],
      ['virtio-blk0', '', /^virtio-blk0: the overlay's path must be absolute/],
      [
        'virtio-blk0',
        taken,
        /^virtio-blk0: cannot create .*taken\.qcow2: the file exists \(an existing file is never written over\); not switched$/,
      ],
      ['virtio-blk0', raw, /cannot create .*root\.img: the file exists/],
      [
        'virtio-blk0',
        notDir,
        /cannot create .*: a part of the path is not a directory; not switched$/,
      ],
      ['virtio-blk0', join(dir, 'no', 'such', 'dir.qcow2'), /: no such directory; not switched$/],
      [
        'virtio-blk1',
        join(dir, 'b.qcow2'),
        /^virtio-blk1: .*ro\.img is read-only: there are no writes to move/,
      ],
      [
        'virtio-blk2',
        join(dir, 'c.qcow2'),
        /^virtio-blk2: .*snap\.img is snapshot=on: its writes already go to a temporary overlay/,
      ],
    ];
    // /sys refuses file creation even to root (a chmod'ed directory would not stop root).
    if (existsSync('/sys/kernel')) {
      cases.push(['virtio-blk0', '/sys/wasmvisor-ov.qcow2', /: permission denied; not switched$/]);
    }
    for (const [device, file, why] of cases) {
      const e = await switchToOverlay(device, file, ctx).catch((x: unknown) => x);
      expect(e, `${device} ${file}`).toBeInstanceOf(ControlError);
      expect((e as Error).message).toMatch(why);
      expect((e as Error).message).not.toMatch(/\n/);
    }
    // Nothing was changed: no files left behind, the file that existed kept, the disk on raw.
    expect(readFileSync(taken, 'utf8')).toBe('keep me');
    for (const f of ['a.qcow2', 'b.qcow2', 'c.qcow2']) expect(existsSync(join(dir, f))).toBe(false);
    expect(cfg.disks[0]!.path).toBe(raw);
    await sw().write(0, block(0x42));
    expect(readFileSync(raw)[0]).toBe(0x42);
    // A disk switched to read-only live is refused too.
    sw().refuseWrites = true;
    await expect(switchToOverlay('virtio-blk0', join(dir, 'd.qcow2'), ctx)).rejects.toThrow(
      /switched to read-only; not switched$/,
    );
  });

  it('refuses an encrypted (LUKS) disk: the overlay would hold its writes in the clear', async () => {
    const key = join(dir, 'key');
    writeFileSync(key, 'secret');
    const luks = join(dir, 'x.luks');
    const made = spawnSync(
      process.execPath,
      [
        join(import.meta.dirname, '..', '..', '..', 'bin', 'wasmvisor.mjs'),
        'img',
        'create',
        '-f',
        'luks',
        '--key-file',
        key,
        '-o',
        'iter-time=10',
        luks,
        '1M',
      ],
      { encoding: 'utf8' },
    );
    expect(made.status, made.stderr).toBe(0);
    await boot([disk(luks, { format: 'luks', keyFile: key })]);
    await expect(switchToOverlay('virtio-blk0', join(dir, 'e.qcow2'), ctx)).rejects.toThrow(
      /^virtio-blk0: .*x\.luks is encrypted \(LUKS\): an overlay would keep the guest's new writes unencrypted; not switched$/,
    );
    expect(existsSync(join(dir, 'e.qcow2'))).toBe(false);
  });
});

describe('SwitchableDisk.replace', () => {
  /** A disk whose writes complete only when the test says so, recording where each went. */
  function heldDisk(name: string, log: string[]) {
    const held: (() => void)[] = [];
    const d = {
      name,
      size: MiB,
      readOnly: false,
      closed: false,
      held,
      write: (off: number) =>
        new Promise<void>((r) =>
          held.push(() => {
            log.push(`${name} write ${off}`);
            r();
          }),
        ),
      read: async (off: number) => void log.push(`${name} read ${off}`),
      flush: async () => void log.push(`${name} flush`),
      close: async () => {
        d.closed = true;
        log.push(`${name} close`);
      },
    };
    return d;
  }

  it('waits for the old disk’s requests, holds new ones, then runs them on the new disk', async () => {
    const log: string[] = [];
    const oldDisk = heldDisk('old', log);
    const newDisk = heldDisk('new', log);
    const sw = new SwitchableDisk(oldDisk as never);
    const w1 = sw.write(0, new Uint8Array(512));
    const w2 = sw.write(512, new Uint8Array(512));
    let opened = false;
    const replacing = sw.replace(async (old) => {
      await old.flush();
      await old.close();
      opened = true;
      return newDisk as never;
    });
    await new Promise((r) => setTimeout(r, 5));
    expect(sw.switching).toBe(true);
    // Two writes still on the old disk: the replacement waits for them.
    expect(opened).toBe(false);
    const r1 = sw.read(1024, new Uint8Array(512));
    const w3 = sw.write(2048, new Uint8Array(512));
    oldDisk.held.shift()!();
    await new Promise((r) => setTimeout(r, 5));
    expect(opened).toBe(false);
    oldDisk.held.shift()!();
    await replacing;
    await r1;
    expect(sw.switching).toBe(false);
    newDisk.held.shift()!();
    await Promise.all([w1, w2, w3]);
    expect(log).toEqual([
      'old write 0',
      'old write 512',
      'old flush',
      'old close',
      'new read 1024',
      'new write 2048',
    ]);
    expect(sw.disk).toBe(newDisk);
  });

  it('keeps a usable disk when opening the new one fails', async () => {
    const log: string[] = [];
    const oldDisk = heldDisk('old', log);
    const sw = new SwitchableDisk(oldDisk as never);
    await expect(
      sw.replace(async () => {
        throw new Error('cannot open');
      }),
    ).rejects.toThrow('cannot open');
    // Not stuck: requests still run.
    expect(sw.switching).toBe(false);
    await sw.read(0, new Uint8Array(512));
    expect(log).toEqual(['old read 0']);
  });
});
