/**
 * snapshot_blkdev as a user runs it: the bundled kernel with its root on a raw ext4 image writes
 * a file, and while a writer keeps the disk busy the monitor switches the disk to a qcow2
 * overlay; the guest notices nothing (no I/O or ext4 error) and writes more. Then `savevm`
 * works on the VM (the raw disk refused it before), `loadvm` brings the file back as it was at
 * the snapshot, and when the VM ends the CLI says where the disk now lives. Afterwards the raw
 * image is byte for byte what it was at the switch, the overlay holds the new file, and qemu-img
 * checks the overlay clean and sees the raw image as its backing file. A second switch, over the
 * qcow2 overlay, makes a chain of three, and the closing line names the newest file.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bootRoot, catImage, makeRootImage, missingTools, tool } from './root-disk.js';

const PROMPT = /# /;
const tools = missingTools(['mke2fs', 'cpio', 'qemu-img', 'debugfs']);
const sha = (file: string): string => createHash('sha256').update(readFileSync(file)).digest('hex');

describe.skipIf(tools.length > 0)(`snapshot_blkdev (needs ${tools.join(', ')})`, () => {
  let dir: string;
  let raw: string;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'wasmvisor-blkdev-'));
    raw = makeRootImage(dir);
  });
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('switches the running raw root disk to an overlay; savevm and loadvm then work', async () => {
    const ov = join(dir, 'root-ov.qcow2');
    const ov2 = join(dir, 'root-ov2.qcow2');
    const s = bootRoot(raw, 'disk-overlay.log', { WASMVISOR_DATA_DIR: join(dir, 'data') });
    let rawAtSwitch: string;
    try {
      await s.expect(PROMPT, 90_000);
      s.sendLine('echo first > /root/a.txt; sync; echo w1-$((6*7))');
      await s.expect(/^w1-42\r?$/m, 20_000);
      await s.monitorCommand(
        'savevm before',
        /^cannot take a snapshot: disk .*root\.img is writable but a raw image cannot hold snapshots \(switch it to a qcow2 overlay first: snapshot_blkdev virtio-blk0 FILE/m,
      );
      // A writer that keeps requests going through the switch.
      s.sendLine(
        '(i=0; while [ $i -lt 40 ]; do dd if=/dev/urandom of=/root/busy bs=16k count=4 conv=fsync 2>/dev/null; i=$((i+1)); done; echo busy-done) & echo bg-$((1+1))',
      );
      await s.expect(/^bg-2\r?$/m, 10_000);
      await s.monitorCommand(
        `snapshot_blkdev virtio-blk0 ${ov}`,
        new RegExp(
          `^virtio-blk0: switched to ${ov} \\(qcow2, backing file ${raw}, raw\\); ${raw} is read-only from now on\\r?$`,
          'm',
        ),
      );
      rawAtSwitch = sha(raw);
      await s.expect(/^busy-done\r?$/m, 120_000);
      s.sendLine('echo second > /root/b.txt; sync; echo w2-$((7*7))');
      await s.expect(/^w2-49\r?$/m, 20_000);
      await s.monitorCommand(
        'savevm S1',
        new RegExp(
          `^snapshot "S1" taken in [\\d.]+ s \\(VM state [\\d.]+ MiB; disks: ${ov} \\(id 1\\)\\)\\r?$`,
          'm',
        ),
      );
      s.sendLine('echo third > /root/b.txt; sync; cat /root/b.txt');
      await s.expect(/^third\r?$/m, 20_000);
      await s.monitorCommand(
        'loadvm S1',
        /^reverted to snapshot "S1"; the VM runs on from it\r?$/m,
      );
      s.sendLine('cat /root/b.txt; echo errors-$(dmesg | grep -ciE "i/o error|ext4-fs error")-end');
      await s.expect(/^second\r?$/m, 20_000);
      const e = await s.expect(/errors-(\d+)-end/, 20_000);
      expect(e.match[1]).toBe('0');
      // Once more, now over the qcow2 overlay: a chain of three.
      await s.monitorCommand(
        `snapshot_blkdev virtio-blk0 ${ov2} qcow2`,
        new RegExp(`^virtio-blk0: switched to ${ov2} \\(qcow2, backing file ${ov}, qcow2\\)`, 'm'),
      );
      s.sendLine('echo fourth > /root/c.txt; sync; echo w3-$((8*8))');
      await s.expect(/^w3-64\r?$/m, 20_000);
      s.sendLine('sync; poweroff');
      expect((await s.waitForExit(60_000)).code).toBe(0);
      // A CLI run has no definition to update: it says where the disk now lives (the newest).
      expect(s.stderr).toContain(
        `wasmvisor: disk ${raw} now lives in ${ov2}: run with --disk ${ov2},format=qcow2`,
      );
      expect(s.stderr).not.toContain(`now lives in ${ov}:`);
    } finally {
      await s.close();
    }
    // The raw image is exactly what it was at the switch; it has a.txt and not b.txt.
    expect(sha(raw)).toBe(rawAtSwitch!);
    expect(catImage(raw, '/root/a.txt')).toBe('first\n');
    expect(catImage(raw, '/root/b.txt')).toBe('');
    // The overlay: clean, on the raw image, holding the guest's later file.
    const check = tool('qemu-img', ['check', ov]);
    expect(check.status, check.out).toBe(0);
    expect(check.out).toMatch(/No errors were found/);
    const chain = tool('qemu-img', ['info', '--backing-chain', ov]);
    expect(chain.status, chain.out).toBe(0);
    expect(chain.out).toMatch(
      new RegExp(
        `image: ${ov}[\\s\\S]*file format: qcow2[\\s\\S]*backing file: ${raw}[\\s\\S]*image: ${raw}[\\s\\S]*file format: raw`,
      ),
    );
    const flat = join(dir, 'flat.img');
    expect(tool('qemu-img', ['convert', '-O', 'raw', ov, flat]).status).toBe(0);
    expect(catImage(flat, '/root/b.txt')).toBe('second\n');
    expect(catImage(flat, '/root/a.txt')).toBe('first\n');
    expect(catImage(flat, '/root/c.txt')).toBe('');
    // The second overlay: on the first, holding what came after it.
    expect(tool('qemu-img', ['check', ov2]).status).toBe(0);
    const chain2 = tool('qemu-img', ['info', '--backing-chain', ov2]).out;
    expect(chain2).toMatch(new RegExp(`image: ${ov2}[\\s\\S]*image: ${ov}[\\s\\S]*image: ${raw}`));
    const flat2 = join(dir, 'flat2.img');
    expect(tool('qemu-img', ['convert', '-O', 'raw', ov2, flat2]).status).toBe(0);
    expect(catImage(flat2, '/root/c.txt')).toBe('fourth\n');
    expect(catImage(flat2, '/root/b.txt')).toBe('second\n');
  }, 300_000);
});
