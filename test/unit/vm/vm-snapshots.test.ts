/**
 * VM snapshots' pieces on a machine that is built but not booted (no guest needed): names that
 * can become file names, the refusal of a writable raw disk with nothing changed, one state file
 * per name beside a qcow2 internal snapshot of the same name, a take that replaces, the listing,
 * a revert that puts the disk back (and refuses a disk whose snapshot is gone), and delete.
 * qemu-img, when installed, is the judge of the disk snapshots.
 */
import { describe, it, expect, beforeEach, afterEach } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VirtMachine } from '../../../main/vm/machine.js';
import { defaultVmConfig, type DiskConfig, type VmConfig } from '../../../main/vm/config.js';
import type { Disk } from '../../../devices/block/index.js';
import { createQcow2 } from '../../../devices/block/qcow2/create.js';
import { imageInfo } from '../../../devices/block/qcow2/inspect.js';
import { Qcow2Image } from '../../../devices/block/qcow2/qcow2-image.js';
import {
  checkSnapshotName,
  deleteVmSnapshot,
  hardwareDiffers,
  listVmSnapshots,
  snapshotDir,
  snapshotFile,
  snapshotRefusal,
  takeVmSnapshot,
  withImageFile,
} from '../../../main/vm/vmstate/vm-snapshots.js';
import { checkDisks, readSavedVm } from '../../../main/vm/vmstate/saved-vm.js';
import { openSavedVm } from '../../../main/vm/vmstate/resume.js';
import { deleteSnapshot } from '../../../devices/block/qcow2/snapshots.js';

const hasQemuImg = spawnSync('qemu-img', ['--version']).status === 0;

const disk = (path: string, format: DiskConfig['format'], more: Partial<DiskConfig> = {}) =>
  ({ path, format, readOnly: false, cache: 'writeback', sched: 'noop', ...more }) as DiskConfig;

/** The names of a qcow2's internal snapshots. */
async function diskSnaps(path: string): Promise<string[]> {
  return ((await imageInfo(path, 'qcow2')).snapshots ?? []).map((s) => s.name);
}

/** Opens the machine of `cfg`, keeping its disks so the test reaches their qcow2 images. */
async function open(cfg: VmConfig): Promise<{ vm: VirtMachine; disks: Disk[] }> {
  const disks: Disk[] = [];
  const vm = await VirtMachine.open(cfg, () => {}, {
    wrapDisk: (d, i) => ((disks[i] = d), d),
  });
  return { vm, disks };
}

describe('snapshot names', () => {
  it('accepts file-safe names and refuses the rest with one line', () => {
    for (const ok of ['A', 'before-upgrade', 'v1.2_x', '_tmp', 'x'.repeat(64)]) {
      expect(() => checkSnapshotName(ok)).not.toThrow();
    }
    for (const bad of ['', '../x', 'a/b', '.hidden', '..', '-rf', 'x'.repeat(65), 'a b', 'ü']) {
      expect(() => checkSnapshotName(bad)).toThrow(/^bad snapshot name .*: use 1-64 letters/);
    }
    expect(snapshotFile('/d', 'A')).toBe('/d/A.vm');
    expect(() => snapshotFile('/d', '../../etc/passwd')).toThrow(/bad snapshot name/);
    expect(snapshotDir('/data', 'vm1')).toBe('/data/snapshots/vm1');
    expect(() => snapshotDir('/data', '..')).toThrow(/cannot name a snapshot directory/);
  });
});

describe('VM snapshots of a machine with a qcow2 disk', () => {
  let dir: string;
  let snaps: string;
  let qcow: string;
  let cfg: VmConfig;

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'wasmvisor-vmsnap-'));
    snaps = join(dir, 'snapshots', 'snap');
    qcow = join(dir, 'disk.qcow2');
    await createQcow2(qcow, { size: 4 << 20 });
    cfg = { ...defaultVmConfig('snap'), memMiB: 32, disks: [disk(qcow, 'qcow2')] };
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('refuses a writable raw disk (naming it) and a snapshot=on disk, before changing anything', async () => {
    const raw = join(dir, 'data.img');
    writeFileSync(raw, new Uint8Array(1 << 20));
    const withRaw: VmConfig = { ...cfg, disks: [disk(qcow, 'qcow2'), disk(raw, 'raw')] };
    const { vm, disks } = await open(withRaw);
    try {
      vm.pause();
      const take = takeVmSnapshot(vm, withRaw, snaps, 'A', (i) => disks[i]?.image);
      await expect(take).rejects.toThrow(
        `cannot take a snapshot: disk ${raw} is writable but a raw image cannot hold snapshots (switch it to a qcow2 overlay first: snapshot_blkdev virtio-blk1 FILE; or attach it read-only)`,
      );
    } finally {
      await vm.close();
    }
    // Nothing changed: no disk snapshot on the qcow2 beside it, no state file, no directory.
    expect(await diskSnaps(qcow)).toEqual([]);
    expect(existsSync(snaps)).toBe(false);
    expect(snapshotRefusal({ ...cfg, disks: [disk(qcow, 'qcow2', { snapshot: true })] })).toMatch(
      /disk .*disk\.qcow2 is snapshot=on/,
    );
    // A read-only raw disk cannot change under the snapshot: it is recorded, not refused.
    expect(snapshotRefusal({ ...cfg, disks: [disk(raw, 'raw', { readOnly: true })] })).toBe(
      undefined,
    );
  });

  it('one state file per name beside a disk snapshot of that name; a take replaces; delete removes both', async () => {
    const { vm, disks } = await open(cfg);
    try {
      vm.pause();
      const a = await takeVmSnapshot(vm, cfg, snaps, 'A', (i) => disks[i]?.image);
      const b = await takeVmSnapshot(vm, cfg, snaps, 'B', (i) => disks[i]?.image);
      expect(a.file).toBe(join(snaps, 'A.vm'));
      expect(a.disks).toEqual([{ path: qcow, id: '1' }]);
      expect(b.disks).toEqual([{ path: qcow, id: '2' }]);
      // Again under the same name: the old disk snapshot goes, a new one comes (savevm's way).
      const a2 = await takeVmSnapshot(vm, cfg, snaps, 'A', (i) => disks[i]?.image);
      expect(a2.disks).toEqual([{ path: qcow, id: '3' }]);
    } finally {
      await vm.close();
    }
    expect(readdirSync(snaps).sort()).toEqual(['A.vm', 'B.vm']);
    expect(await diskSnaps(qcow)).toEqual(['B', 'A']);
    if (hasQemuImg) {
      const l = spawnSync('qemu-img', ['snapshot', '-l', qcow], { encoding: 'utf8' });
      expect(l.stdout).toMatch(/^2\s+B\s/m);
      expect(l.stdout).toMatch(/^3\s+A\s/m);
    }
    const list = await listVmSnapshots(snaps);
    expect(list.map((s) => [s.name, s.disks])).toEqual([
      ['B', [{ path: qcow, id: '2' }]],
      ['A', [{ path: qcow, id: '3' }]],
    ]);
    expect(list[0]!.stateBytes).toBeGreaterThan(1000);
    // Seen from a VM with other hardware (a CLI session of the same name): marked, not offered.
    const other = await listVmSnapshots(snaps, { ...cfg, memMiB: 64 });
    expect(other.map((s) => s.otherVm)).toEqual([
      '32 MiB of RAM, this VM has 64',
      '32 MiB of RAM, this VM has 64',
    ]);
    expect((await listVmSnapshots(snaps, cfg)).map((s) => s.otherVm)).toEqual([
      undefined,
      undefined,
    ]);

    // The disk in use elsewhere (another VM holds it open): refused, nothing deleted.
    const holder = await Qcow2Image.open(qcow);
    try {
      await expect(deleteVmSnapshot(snaps, 'A', cfg)).rejects.toThrow(
        new RegExp(`^cannot delete snapshot "A" from ${qcow}: .*`),
      );
    } finally {
      await holder.close();
    }
    expect(readdirSync(snaps).sort()).toEqual(['A.vm', 'B.vm']);
    expect(await diskSnaps(qcow)).toEqual(['B', 'A']);
    expect(await deleteVmSnapshot(snaps, 'A', cfg)).toBe(`snapshot "A" deleted (from ${qcow})`);
    expect(readdirSync(snaps)).toEqual(['B.vm']);
    expect(await diskSnaps(qcow)).toEqual(['B']);
    await expect(deleteVmSnapshot(snaps, 'A', cfg)).rejects.toThrow('no snapshot named "A"');
    if (hasQemuImg) {
      const l = spawnSync('qemu-img', ['snapshot', '-l', qcow], { encoding: 'utf8' });
      expect(l.stdout).not.toMatch(/\sA\s/);
      expect(spawnSync('qemu-img', ['check', qcow]).status).toBe(0);
    }
  });

  it('a revert puts the disk back; a disk whose snapshot is gone is refused', async () => {
    const { vm, disks } = await open(cfg);
    const before = new Uint8Array(4096).fill(0xaa);
    const after = new Uint8Array(4096).fill(0x55);
    try {
      await disks[0]!.write(0, before);
      vm.pause();
      await takeVmSnapshot(vm, cfg, snaps, 'A', (i) => disks[i]?.image);
      // The guest writes on after the snapshot.
      await disks[0]!.write(0, after);
      await disks[0]!.flush();
    } finally {
      await vm.close();
    }
    const saved = await readSavedVm(snapshotFile(snaps, 'A'));
    expect(saved.info.disks[0]!.snapshot).toEqual({ id: '1', name: 'A' });
    // The image changed since (size, mtime): still accepted, it is recognised by its snapshot.
    await expect(checkDisks(saved)).resolves.toBeUndefined();
    const back = await openSavedVm(saved);
    try {
      const buf = new Uint8Array(4096);
      await back.blks()[0]!.backend.read(0, buf);
      expect(buf).toEqual(before);
    } finally {
      await back.close();
    }
    // Someone deleted the disk snapshot (img snapshot -d): the state has no disk to go with.
    await withImageFile(qcow, (m) => deleteSnapshot(m, 'A'));
    await expect(checkDisks(saved)).rejects.toThrow(
      /disk .*disk\.qcow2 has no snapshot "A" \(id 1\) any more/,
    );
    const list = await listVmSnapshots(snaps);
    expect(list[0]!.disks).toEqual([{ path: qcow, id: '1', missing: true }]);
  });

  it('a read-only disk is recorded as it is, not snapshotted; a revert refuses it once changed', async () => {
    const ro = join(dir, 'iso.img');
    writeFileSync(ro, new Uint8Array(1 << 20).fill(7));
    const both: VmConfig = {
      ...cfg,
      disks: [disk(qcow, 'qcow2'), disk(ro, 'raw', { readOnly: true })],
    };
    const { vm, disks } = await open(both);
    try {
      vm.pause();
      const t = await takeVmSnapshot(vm, both, snaps, 'A', (i) => disks[i]?.image);
      expect(t.disks).toEqual([{ path: qcow, id: '1' }]);
    } finally {
      await vm.close();
    }
    const saved = await readSavedVm(snapshotFile(snaps, 'A'));
    expect(saved.info.disks.map((d) => d.snapshot)).toEqual([{ id: '1', name: 'A' }, undefined]);
    expect((await listVmSnapshots(snaps))[0]!.disks).toEqual([
      { path: qcow, id: '1' },
      { path: ro },
    ]);
    await expect(checkDisks(saved)).resolves.toBeUndefined();
    writeFileSync(ro, new Uint8Array(1 << 20).fill(8));
    utimesSync(ro, new Date(), new Date(Date.now() + 60_000));
    await expect(checkDisks(saved)).rejects.toThrow(
      /disk .*iso\.img changed since the state was saved/,
    );
  });

  it('a damaged state file is listed with its error and can still be deleted', async () => {
    const { mkdirSync } = await import('node:fs');
    mkdirSync(snaps, { recursive: true });
    writeFileSync(join(snaps, 'X.vm'), 'WVMSTATE but not really');
    writeFileSync(join(snaps, 'notes.txt'), 'not a snapshot');
    const list = await listVmSnapshots(snaps);
    expect(list).toHaveLength(1);
    expect(list[0]!.name).toBe('X');
    expect(list[0]!.error).toMatch(/X\.vm: truncated/);
    expect(await deleteVmSnapshot(snaps, 'X', cfg)).toMatch(/snapshot "X" deleted/);
    expect(readdirSync(snaps)).toEqual(['notes.txt']);
  });

  it('a snapshot of a VM with other hardware is recognised as such', () => {
    expect(hardwareDiffers(cfg, cfg)).toBe(undefined);
    expect(hardwareDiffers(cfg, { ...cfg, memMiB: 64 })).toBe('32 MiB of RAM, this VM has 64');
    expect(hardwareDiffers(cfg, { ...cfg, disks: [] })).toMatch(
      /^disks .*disk\.qcow2 \(qcow2\); this VM has no disks$/,
    );
  });
});
