/**
 * virtio-blk with the guest's own driver: the bundled kernel boots with its root file system on
 * /dev/vda (an ext4 image made here with mke2fs from the bundled initramfs), writes files,
 * syncs and powers off; the host reads the bytes back out of the image (debugfs), e2fsck finds
 * it clean, and a second boot reads them back (mostly at once from the host's page cache, says
 * the monitor's `info blockstats`). Durability: SIGKILL right after the guest's
 * `sync` returns loses nothing that was synced.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ROOT_PROMPT,
  bootRoot,
  bootWriteAndPowerOff,
  catImage,
  expectWrittenFiles,
  makeRootImage,
  missingTools,
  seqText,
  tool,
} from './root-disk.js';

const tools = missingTools(['mke2fs', 'debugfs', 'e2fsck', 'cpio']);
const PROMPT = ROOT_PROMPT;
const boot = bootRoot;

describe.skipIf(tools.length > 0)(`virtio-blk root file system (needs ${tools.join(', ')})`, () => {
  let dir: string;
  let img: string;
  const token = `wasmvisor-${Date.now().toString(36)}`;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'wasmvisor-blk-'));
    img = makeRootImage(dir);
  });

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('boots with root on /dev/vda, writes, syncs, powers off; the bytes are in the image', async () => {
    await bootWriteAndPowerOff(img, 'virtio-blk-1.log', token);
    expectWrittenFiles(img, token);
  }, 150_000);

  it('a second boot reads the files back', async () => {
    const s = boot(img, 'virtio-blk-2.log');
    try {
      await s.expect(PROMPT, 90_000);
      s.sendLine('cat /root/hello.txt; md5sum /root/seq.txt');
      await s.expect(new RegExp(`^${token}\\r?$`, 'm'), 10_000);
      const md5 = execFileSync('md5sum', { input: seqText(20000) })
        .toString()
        .split(' ')[0];
      await s.expect(new RegExp(`^${md5}\\s+/root/seq.txt`, 'm'), 10_000);
      // The image was just written, so the host's page cache holds it: reads went at once.
      await new Promise((r) => setTimeout(r, 1500)); // the stats sample after the reads
      const st = await s.monitorCommand(
        'info blockstats',
        /^virtio-blk0: (\d+) reads .*\r?\n.*\r?\n {2}host reads: (\d+) at once from the host's page cache, (\d+) through the thread pool\r?$/m,
      );
      // Host reads, not guest requests: the scheduler merges neighbouring requests into one.
      const [reads, atOnce, queued] = st.match.slice(1, 4).map(Number);
      expect(atOnce! + queued!).toBeLessThanOrEqual(reads!);
      expect(atOnce!).toBeGreaterThan(queued!);
      s.sendLine('poweroff');
      expect((await s.waitForExit(30_000)).code).toBe(0);
    } finally {
      await s.close();
    }
    expect(tool('e2fsck', ['-fn', img]).status).toBe(0);
  }, 150_000);

  it('data synced before a SIGKILL of the host is in the image', async () => {
    const s = boot(img, 'virtio-blk-kill.log');
    const durable = `durable-${token}`;
    try {
      await s.expect(PROMPT, 90_000);
      s.sendLine(`echo ${durable} > /root/durable.txt; sync; echo SYNC-RETURNED`);
      await s.expect(/^SYNC-RETURNED\r?$/m, 30_000);
      const exit = await s.close('SIGKILL');
      expect(exit.signal).toBe('SIGKILL');
    } finally {
      await s.close();
    }
    // The file system was not unmounted: replay its journal (as the next mount would) on a
    // copy, then read the file.
    const copy = join(dir, 'killed.img');
    copyFileSync(img, copy);
    const fsck = tool('e2fsck', ['-fy', copy]);
    expect(fsck.status, fsck.out).toBeLessThanOrEqual(1); // 0 clean, 1 journal replayed/fixed
    expect(catImage(copy, '/root/durable.txt')).toBe(`${durable}\n`);
  }, 150_000);
});
