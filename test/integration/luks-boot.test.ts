/**
 * Encrypted root disks under a real guest: the bundled kernel boots with its root file system
 * on a qcow2 with encrypt.format=luks and on a raw LUKS image (both made by qemu-img from an ext4
 * image of the bundled initramfs), the key from a file; the guest writes, syncs and powers off.
 * qemu-img, given the key, is the judge: `check` clean, and the decrypted image passes
 * `e2fsck -fn` and holds the guest's bytes. The key never shows in the output.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  bootRoot,
  bootWriteAndPowerOff,
  expectWrittenFiles,
  makeRootImage,
  missingTools,
  tool,
} from './root-disk.js';
import { qemuImgMakingKeySlot } from '../unit/block/img-run.js';

const tools = missingTools(['mke2fs', 'debugfs', 'e2fsck', 'cpio', 'qemu-img']);
const PASS = 'luks-root-passphrase-7f3a';

describe.skipIf(tools.length > 0)(`encrypted root file system (needs ${tools.join(', ')})`, () => {
  let dir: string;
  let raw: string;
  let key: string;
  const secret = () => `secret,id=sec0,file=${key}`;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'wasmvisor-luks-boot-'));
    raw = makeRootImage(dir);
    key = join(dir, 'key');
    writeFileSync(key, PASS);
  });

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** qemu-img convert into an encrypted image (its PBKDF2 benchmark's flakes retried). */
  function encrypt(format: 'qcow2' | 'luks', out: string): void {
    const o =
      format === 'luks'
        ? 'key-secret=sec0,iter-time=200'
        : 'encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=200';
    const r = qemuImgMakingKeySlot(
      'convert',
      '--object',
      secret(),
      '-f',
      'raw',
      '-O',
      format,
      '-o',
      o,
      raw,
      out,
    );
    expect(r.status, r.out).toBe(0);
  }

  const imageOpts = (format: 'qcow2' | 'luks', path: string) =>
    format === 'luks'
      ? `driver=luks,file.filename=${path},key-secret=sec0`
      : `driver=qcow2,file.filename=${path},encrypt.key-secret=sec0`;

  it.each(['qcow2', 'luks'] as const)(
    'boots with root on an encrypted %s, writes, syncs, powers off; qemu-img and e2fsck agree',
    async (format) => {
      const img = join(dir, `root.${format}`);
      encrypt(format, img);
      const token = `wasmvisor-luks-${format}-${Date.now().toString(36)}`;
      const printed = await bootWriteAndPowerOff(
        `${img},format=${format},key-file=${key}`,
        `luks-boot-${format}.log`,
        token,
      );
      expect(printed).not.toContain(PASS);
      if (format === 'qcow2') {
        const c = tool('qemu-img', [
          'check',
          '--object',
          secret(),
          '--image-opts',
          imageOpts(format, img),
        ]);
        expect(c.status, c.out).toBe(0);
      }
      const back = join(dir, `back-${format}.raw`);
      const conv = tool('qemu-img', [
        'convert',
        '--object',
        secret(),
        '--image-opts',
        imageOpts(format, img),
        '-O',
        'raw',
        back,
      ]);
      expect(conv.status, conv.out).toBe(0);
      expectWrittenFiles(back, token);
    },
    240_000,
  );

  it('a wrong key is one line naming the image, and the guest never starts', async () => {
    const img = join(dir, 'wrong.luks');
    encrypt('luks', img);
    const bad = join(dir, 'bad-key');
    writeFileSync(bad, 'not the key');
    const s = bootRoot(`${img},format=luks,key-file=${bad}`, 'luks-boot-wrong.log');
    try {
      const exit = await s.waitForExit(60_000);
      expect(exit.code).not.toBe(0);
      expect(s.stderr).toContain(`wrong passphrase for ${img}: no key slot opened`);
    } finally {
      await s.close();
    }
  }, 90_000);
});
