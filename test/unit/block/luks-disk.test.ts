/**
 * Encrypted disks as a user meets them: `wasmvisor img create -f luks` / `-o encrypt.format=luks`
 * with the key in a file (QEMU's `--object secret` spelling too), `img info`'s encrypt section in
 * qemu-img's keys, `--disk …,key-file=PATH` opening the disk for the VM, a key on the command line
 * refused, a wrong key one error naming the image.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseImgArgs } from '../../../main/cli/img.js';
import { parseDiskSpec, validateVmConfig } from '../../../main/vm/config.js';
import { openDisk } from '../../../devices/block/index.js';
import { diskImageInfo } from '../../../main/worker/controls/disk-snapshots.js';
import { haveQemuImg, img } from './img-run.js';

let dir: string;
let keyFile: string;
let n = 0;
const tmp = (name: string) => join(dir, `${n++}-${name}`);

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'wasmvisor-luks-disk-'));
  keyFile = join(dir, 'key');
  writeFileSync(keyFile, 'hunter2\n'); // the newline is part of the key, as in QEMU
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('img create/info with encryption', () => {
  it("creates raw LUKS with QEMU's spelling; info shows the encrypt section as qemu-img does", async () => {
    const f = tmp('a.luks');
    const c = await img(
      'create',
      '-f',
      'luks',
      '--object',
      `secret,id=sec0,file=${keyFile}`,
      '-o',
      'key-secret=sec0,iter-time=10',
      f,
      '4M',
    );
    expect(c.status, c.err).toBe(0);
    const i = await img('info', '--output', 'json', f);
    const j = JSON.parse(i.out) as Record<string, unknown> & {
      'format-specific': { type: string; data: Record<string, unknown> };
    };
    expect(j.format).toBe('luks');
    expect(j['virtual-size']).toBe(4 << 20);
    expect(j.encrypted).toBe(true);
    expect(j['format-specific'].type).toBe('luks');
    expect(j['format-specific'].data).toMatchObject({
      'cipher-alg': 'aes-256',
      'cipher-mode': 'xts',
      'ivgen-alg': 'plain64',
      'hash-alg': 'sha256',
      'payload-offset': 2068480,
    });
    const text = await img('info', f);
    expect(text.out).toContain('encrypted: yes');
    expect(text.out).toContain('cipher alg: aes-256');
    expect(text.out).not.toContain('hunter2');
  });

  it('creates qcow2 with encrypt.format=luks and --key-file; info nests encrypt like qemu-img', async () => {
    const f = tmp('a.qcow2');
    const c = await img(
      'create',
      '-f',
      'qcow2',
      '--key-file',
      keyFile,
      '-o',
      'encrypt.format=luks,encrypt.iter-time=10',
      f,
      '4M',
    );
    expect(c.status, c.err).toBe(0);
    const j = JSON.parse((await img('info', '--output', 'json', f)).out) as {
      encrypted: boolean;
      'format-specific': {
        data: { encrypt: Record<string, unknown> & { slots: { active: boolean }[] } };
      };
    };
    expect(j.encrypted).toBe(true);
    const e = j['format-specific'].data.encrypt;
    expect(e.format).toBe('luks');
    expect(e.slots.filter((s) => s.active)).toHaveLength(1);
    expect((await img('check', f)).status).toBe(0);
    if (haveQemuImg) {
      const q = spawnSync(
        'qemu-img',
        [
          'check',
          '--object',
          `secret,id=sec0,file=${keyFile}`,
          '--image-opts',
          `driver=qcow2,file.filename=${f},encrypt.key-secret=sec0`,
        ],
        { encoding: 'utf-8' },
      );
      expect(q.status, q.stderr).toBe(0);
    }
  });

  it('refuses a key on the command line, a missing key, and unknown algorithms', () => {
    expect(() =>
      parseImgArgs([
        'create',
        '-f',
        'luks',
        '--object',
        'secret,id=s,data=pw',
        '-o',
        'key-secret=s',
        'x',
        '1M',
      ]),
    ).toThrow(/visible to every user/);
    expect(() => parseImgArgs(['create', '-f', 'luks', 'x', '1M'])).toThrow(/needs a key/);
    expect(() =>
      parseImgArgs([
        'create',
        '-f',
        'qcow2',
        '-o',
        'encrypt.format=luks,encrypt.key-secret=s',
        'x',
        '1M',
      ]),
    ).toThrow(/no --object secret,id=s/);
    expect(() =>
      parseImgArgs([
        'create',
        '-f',
        'qcow2',
        '--key-file',
        'k',
        '-o',
        'encrypt.format=luks,encrypt.cipher-mode=cbc',
        'x',
        '1M',
      ]),
    ).toThrow(/xts only/);
    expect(() => parseImgArgs(['create', '-f', 'raw', '--key-file', 'k', 'x', '1M'])).toThrow(
      /without encryption/,
    );
  });
});

describe('--disk with key-file', () => {
  it('parses key-file and refuses a key given inline', () => {
    expect(parseDiskSpec(`x.qcow2,format=qcow2,key-file=${keyFile}`).keyFile).toBe(keyFile);
    expect(parseDiskSpec('x.luks,format=luks').format).toBe('luks');
    expect(() => parseDiskSpec('x.luks,format=luks,key=hunter2')).toThrow(/visible to every user/);
    const v = validateVmConfig({
      name: 'v',
      memMiB: 256,
      disks: [{ path: 'x.luks', format: 'luks', keyFile: 'k' }],
    });
    expect(v.disks[0]?.keyFile).toBe('k');
  });

  it.each(['luks', 'qcow2'] as const)(
    'a %s disk opens with its key file, keeps data, refuses a wrong key',
    async (fmt) => {
      const f = tmp(`d.${fmt}`);
      const args =
        fmt === 'luks'
          ? ['-f', 'luks', '-o', 'iter-time=10']
          : ['-f', 'qcow2', '-o', 'encrypt.format=luks,encrypt.iter-time=10'];
      expect((await img('create', ...args, '--key-file', keyFile, f, '2M')).status).toBe(0);
      const d = await openDisk(parseDiskSpec(`${f},format=${fmt},key-file=${keyFile}`));
      const data = new Uint8Array(8192).map((_, i) => i * 31);
      await d.write(4096, data);
      await d.flush();
      await d.close();
      const cfg = parseDiskSpec(`${f},format=${fmt},ro,key-file=${keyFile}`);
      const again = await openDisk(cfg);
      // What the device manager shows of it.
      expect((await diskImageInfo(again, cfg)).encryption).toBe('LUKS aes-xts-plain64');
      const back = new Uint8Array(8192);
      await again.read(4096, back);
      await again.close();
      expect(Buffer.from(back).equals(Buffer.from(data))).toBe(true);
      const wrong = tmp('wrong');
      writeFileSync(wrong, 'hunter2'); // no newline: another key
      await expect(openDisk(parseDiskSpec(`${f},format=${fmt},key-file=${wrong}`))).rejects.toThrow(
        `wrong passphrase for ${f}: no key slot opened`,
      );
      await expect(openDisk(parseDiskSpec(`${f},format=${fmt}`))).rejects.toThrow(
        /encrypted \(LUKS\)/,
      );
      await expect(
        openDisk(parseDiskSpec(`${f},format=${fmt},key-file=${join(dir, 'nope')}`)),
      ).rejects.toThrow(/key file .*nope: no such file/);
      // snapshot=on over the encrypted image: the overlay reads through with the same key.
      const snap = await openDisk(
        parseDiskSpec(`${f},format=${fmt},snapshot=on,key-file=${keyFile}`),
      );
      const s = new Uint8Array(8192);
      await snap.read(4096, s);
      await snap.close();
      expect(Buffer.from(s).equals(Buffer.from(data))).toBe(true);
    },
  );
});
