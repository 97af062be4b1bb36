/**
 * qcow2 under a real guest: the bundled kernel boots with its root file system on a qcow2 image
 * (converted by qemu-img from an ext4 image made with mke2fs from the bundled initramfs), writes,
 * syncs and powers off. qemu-img is the judge of the image (`check` clean), the guest's file
 * system of the data (`e2fsck -fn` clean after `qemu-img convert -O raw`, debugfs reads the
 * bytes). Second: a qcow2 overlay on a raw base takes every write; the base stays byte-identical
 * until `wasmvisor img commit` merges the overlay into it.
 * Third: snapshot=on (QEMU's -snapshot) over raw and qcow2: the guest writes, the image does not
 * change.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
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
  tool,
} from './root-disk.js';
import { parseImgArgs, runImg } from '../../main/cli/img.js';

const PROMPT = ROOT_PROMPT;
const boot = bootRoot;
const tools = missingTools(['mke2fs', 'debugfs', 'e2fsck', 'cpio', 'qemu-img']);
const sha256 = (f: string): string => createHash('sha256').update(readFileSync(f)).digest('hex');

/** qemu-img check's verdict; exit 0 means no corruption and no leak. */
function expectCheckClean(img: string): void {
  const c = tool('qemu-img', ['check', img]);
  expect(c.status, c.out).toBe(0);
  expect(c.out).toMatch(/No errors were found on the image/);
}

describe.skipIf(tools.length > 0)(`qcow2 root file system (needs ${tools.join(', ')})`, () => {
  let dir: string;
  let raw: string;
  const token = `wasmvisor-qcow2-${Date.now().toString(36)}`;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'wasmvisor-qcow2-boot-'));
    raw = makeRootImage(dir);
  });

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('boots with root on a qcow2, writes, syncs, powers off; qemu-img and e2fsck agree', async () => {
    const q = join(dir, 'root.qcow2');
    execFileSync('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', raw, q]);
    await bootWriteAndPowerOff(`${q},format=qcow2`, 'qcow2-boot-1.log', token);
    expectCheckClean(q);
    const back = join(dir, 'back.raw');
    execFileSync('qemu-img', ['convert', '-f', 'qcow2', '-O', 'raw', q, back]);
    expectWrittenFiles(back, token);
  }, 180_000);

  it('a qcow2 overlay on a raw base takes the writes (base untouched); img commit merges them', async () => {
    const base = join(dir, 'base.raw');
    execFileSync('cp', ['--sparse=always', raw, base]);
    const before = sha256(base);
    const ov = join(dir, 'ov.qcow2');
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', 'base.raw', '-F', 'raw', ov]);
    const t2 = `${token}-overlay`;
    await bootWriteAndPowerOff(`${ov},format=qcow2`, 'qcow2-boot-overlay.log', t2);
    expect(sha256(base)).toBe(before);
    expectCheckClean(ov);
    const info = JSON.parse(tool('qemu-img', ['info', '--output', 'json', ov]).out) as {
      'backing-filename'?: string;
    };
    expect(info['backing-filename']).toBe('base.raw');
    const merged = join(dir, 'merged.raw');
    execFileSync('qemu-img', ['convert', '-f', 'qcow2', '-O', 'raw', ov, merged]);
    expectWrittenFiles(merged, t2);
    // The base never saw the file.
    expect(catImage(base, '/root/hello.txt')).not.toContain(t2);
    // `img commit` merges the overlay into the base: the base's file system is clean and holds
    // the guest's files; the emptied overlay is clean and still reads the same.
    let err = '';
    const io = { out: () => {}, err: (m: string) => (err += m) };
    expect(await runImg(parseImgArgs(['commit', ov]), io), err).toBe(0);
    expectWrittenFiles(base, t2);
    expectCheckClean(ov);
    expect(tool('qemu-img', ['compare', ov, merged]).status).toBe(0);
  }, 180_000);

  it.each(['raw', 'qcow2'] as const)(
    'snapshot=on over a %s image: the guest writes, the image stays byte-identical',
    async (format) => {
      const img = join(dir, `snap.${format}`);
      execFileSync('qemu-img', ['convert', '-f', 'raw', '-O', format, raw, img]);
      const before = sha256(img);
      const t3 = `${token}-snapshot-${format}`;
      await bootWriteAndPowerOff(
        `${img},format=${format},snapshot=on`,
        `qcow2-snapshot-${format}.log`,
        t3,
      );
      expect(sha256(img)).toBe(before);
      if (format === 'qcow2') expectCheckClean(img);
    },
    180_000,
  );

  it("snapshot=on keeps the guest's writes across a reboot (as QEMU), not past exit", async () => {
    const img = join(dir, 'reboot.raw');
    execFileSync('cp', ['--sparse=always', raw, img]);
    const before = sha256(img);
    const t4 = `${token}-reboot`;
    const s = boot(`${img},snapshot=on`, 'qcow2-snapshot-reboot.log');
    try {
      await s.expect(PROMPT, 90_000);
      s.sendLine(`echo ${t4} > /root/kept.txt; sync; echo WROTE`);
      await s.expect(/^WROTE\r?$/m, 30_000);
      s.sendLine('reboot');
      await s.expect(/reboot: Restarting system/, 30_000);
      await s.expect(PROMPT, 90_000);
      s.sendLine('cat /root/kept.txt');
      await s.expect(new RegExp(`^${t4}\\r?$`, 'm'), 10_000);
      s.sendLine('poweroff');
      expect((await s.waitForExit(30_000)).code).toBe(0);
    } finally {
      await s.close();
    }
    expect(sha256(img)).toBe(before);
  }, 240_000);
});
