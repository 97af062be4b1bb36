/**
 * snapshot=on (QEMU's -snapshot): the guest's writes land in a temporary qcow2 overlay that is
 * gone when the disk closes; the user's image — raw or qcow2 — stays byte-identical.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDisk, SnapshotOverlays } from '../../../devices/block/index.js';
import { createQcow2, openImage } from '../../../devices/block/qcow2/index.js';
import { parseDiskSpec, validateVmConfig } from '../../../main/vm/config.js';

let dir: string;
let tmp: string;
const savedTmp = process.env.TMPDIR;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'wasmvisor-snap-'));
  tmp = join(dir, 'tmp');
  mkdirSync(tmp);
  process.env.TMPDIR = tmp; // where the overlay goes: checked empty after each test
});
afterAll(() => {
  if (savedTmp === undefined) delete process.env.TMPDIR;
  else process.env.TMPDIR = savedTmp;
  rmSync(dir, { recursive: true, force: true });
});

const sha = (p: string): string => createHash('sha256').update(readFileSync(p)).digest('hex');

describe('snapshot=on', () => {
  it('parses in --disk and in a VM definition', () => {
    expect(parseDiskSpec('a.img,snapshot=on')).toMatchObject({ path: 'a.img', snapshot: true });
    expect(parseDiskSpec('a.img,snapshot=off').snapshot).toBe(false);
    expect(() => parseDiskSpec('a.img,snapshot=yes')).toThrow(/snapshot must be on or off/);
    const vm = validateVmConfig({
      name: 'x',
      memMiB: 256,
      disks: [{ path: 'a.img', snapshot: true }],
    });
    expect(vm.disks[0].snapshot).toBe(true);
    expect(() =>
      validateVmConfig({ name: 'x', memMiB: 256, disks: [{ path: 'a', snapshot: 1 }] }),
    ).toThrow(/"snapshot" must be true or false/);
  });

  it.each(['raw', 'qcow2'] as const)(
    'over a %s image: writes read back, the image is untouched, the overlay is gone',
    async (format) => {
      const img = join(dir, `base.${format}`);
      const size = 4 << 20;
      const pattern = new Uint8Array(size).map((_, i) => (i * 7) & 0xff);
      if (format === 'raw') writeFileSync(img, pattern);
      else {
        await createQcow2(img, { size, clusterSize: 4096 });
        const q = await openImage(img, 'qcow2');
        await q.write(0, pattern);
        await q.close();
      }
      const before = sha(img);
      const disk = await openDisk(parseDiskSpec(`${img},format=${format},snapshot=on`));
      expect(disk.size).toBe(size);
      expect(disk.readOnly).toBe(false);
      expect(disk.stats().path).toBe(img);
      expect(readdirSync(tmp)).toEqual([]); // unlinked while open
      const w = new Uint8Array(8192).fill(0xee);
      await disk.write(65536, w);
      await disk.flush();
      await disk.discard(1 << 20, 65536);
      const r = new Uint8Array(3 * 65536);
      await disk.read(0, r);
      expect(r.subarray(0, 65536)).toEqual(pattern.subarray(0, 65536));
      expect(r.subarray(65536, 65536 + 8192)).toEqual(w);
      expect(r.subarray(65536 + 8192)).toEqual(pattern.subarray(65536 + 8192, 3 * 65536));
      await disk.close();
      expect(sha(img)).toBe(before);
      expect(readdirSync(tmp)).toEqual([]);
      // A second snapshot run starts from the image again.
      const again = await openDisk(parseDiskSpec(`${img},format=${format},snapshot=on`));
      const r2 = new Uint8Array(8192);
      await again.read(65536, r2);
      expect(r2).toEqual(pattern.subarray(65536, 65536 + 8192));
      await again.close();
    },
  );

  it('a VM keeps its overlay across reopenings (resets) until the VM ends', async () => {
    const img = join(dir, 'kept.raw');
    writeFileSync(img, new Uint8Array(1 << 20).fill(0x11));
    const before = sha(img);
    const keep = new SnapshotOverlays();
    const cfg = parseDiskSpec(`${img},snapshot=on`);
    const first = await openDisk(cfg, { overlays: { keep, slot: 0 } });
    await first.write(0, new Uint8Array(4096).fill(0x22));
    await first.close();
    const second = await openDisk(cfg, { overlays: { keep, slot: 0 } });
    const r = new Uint8Array(8192);
    await second.read(0, r);
    expect(r.subarray(0, 4096).every((b) => b === 0x22)).toBe(true);
    expect(r.subarray(4096).every((b) => b === 0x11)).toBe(true);
    await second.close();
    await keep.close();
    expect(sha(img)).toBe(before);
    expect(readdirSync(tmp)).toEqual([]);
    // After the VM ended, a new one starts from the image.
    const keep2 = new SnapshotOverlays();
    const third = await openDisk(cfg, { overlays: { keep: keep2, slot: 0 } });
    await third.read(0, r);
    expect(r.every((b) => b === 0x11)).toBe(true);
    await third.close();
    await keep2.close();
  });

  it('a missing image is an error naming it, and leaves nothing behind', async () => {
    const p = join(dir, 'missing.img');
    await expect(openDisk(parseDiskSpec(`${p},snapshot=on`))).rejects.toThrow(
      /missing\.img: no such file/,
    );
    expect(readdirSync(tmp)).toEqual([]);
  });
});
