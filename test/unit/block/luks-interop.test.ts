/**
 * Encrypted images judged by qemu-img, both ways: raw LUKS and qcow2 with encrypt.format=luks
 * that qemu-img creates and qemu-io fills are read and written here; the ones we create are
 * opened by qemu-img (info, check, compare against a raw reference, with the key as a secret
 * object read from a file). A wrong key is one error naming the image.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createQcow2, openImage } from '../../../devices/block/qcow2/index.js';
import { createLuks } from '../../../devices/block/luks/create.js';
import { haveQemuImg, qemuImgMakingKeySlot } from './img-run.js';

const MiB = 1 << 20;
const PASS = 'open sesame, 42';
let dir: string;
let keyFile: string;
let n = 0;
const tmp = (name: string) => join(dir, `${n++}-${name}`);
const key = new TextEncoder().encode(PASS);
const SECRET = () => `secret,id=sec0,file=${keyFile}`;

function qemu(cmd: string, args: string[]): { status: number | null; out: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf-8' });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

/** qemu's --image-opts for an encrypted image of ours. */
const opts = (fmt: 'luks' | 'qcow2', path: string) =>
  fmt === 'luks'
    ? `driver=luks,file.filename=${path},key-secret=sec0`
    : `driver=qcow2,file.filename=${path},encrypt.key-secret=sec0`;

function qemuIo(fmt: 'luks' | 'qcow2', path: string, ...cmds: string[]): void {
  const args = ['--object', SECRET(), '--image-opts', opts(fmt, path)];
  for (const c of cmds) args.push('-c', c);
  const r = qemu('qemu-io', args);
  expect(r.status, r.out).toBe(0);
  expect(r.out).not.toMatch(/error|failed/i);
}

/** qemu-img compare of our image against a raw file: "Images are identical". */
function expectSameAsRaw(fmt: 'luks' | 'qcow2', path: string, ref: Uint8Array): void {
  const raw = tmp('ref.raw');
  writeFileSync(raw, ref);
  const r = qemu('qemu-img', [
    'compare',
    '--object',
    SECRET(),
    '--image-opts',
    opts(fmt, path),
    `driver=raw,file.filename=${raw}`,
  ]);
  expect(r.status, r.out).toBe(0);
}

function expectCheckClean(path: string): void {
  const r = qemu('qemu-img', ['check', '--object', SECRET(), '--image-opts', opts('qcow2', path)]);
  expect(r.status, r.out).toBe(0);
  expect(r.out).toContain('No errors were found');
}

const pattern = (len: number, seed: number): Uint8Array => {
  const b = new Uint8Array(len);
  for (let i = 0; i < len; i++) b[i] = (i * 7 + seed * 13 + (i >> 9)) & 0xff;
  return b;
};

/** qemu-img create with a short iter-time (its PBKDF2 benchmark's flakes retried). */
const qemuCreate = (fmt: 'luks' | 'qcow2', path: string, size: string) => {
  const o =
    fmt === 'luks'
      ? 'key-secret=sec0,iter-time=200'
      : 'encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=200';
  const r = qemuImgMakingKeySlot(
    'create',
    '-q',
    '-f',
    fmt,
    '--object',
    SECRET(),
    '-o',
    o,
    path,
    size,
  );
  expect(r.status, r.out).toBe(0);
};

/** A copy of the one image qemu-img made of this format (its PBKDF2 benchmark takes seconds). */
const made = new Map<string, string>();
function qemuMade(fmt: 'luks' | 'qcow2', name: string): string {
  let src = made.get(fmt);
  if (!src) {
    src = join(dir, `qemu-made.${fmt}`);
    qemuCreate(fmt, src, '8M');
    made.set(fmt, src);
  }
  const p = tmp(name);
  copyFileSync(src, p);
  return p;
}

/** Whether two byte arrays are equal (without a huge diff when they are not). */
const same = (a: Uint8Array, b: Uint8Array) => Buffer.from(a).equals(Buffer.from(b));

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'wasmvisor-luks-'));
  keyFile = join(dir, 'key');
  writeFileSync(keyFile, PASS);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe.skipIf(!haveQemuImg)('encrypted images qemu-img makes, read and written here', () => {
  it.each(['luks', 'qcow2'] as const)(
    '%s: reads what qemu-io wrote, writes what qemu-img reads',
    async (fmt) => {
      const img = qemuMade(fmt, `q.${fmt}`);
      qemuIo(fmt, img, 'write -P 0xab 65536 4096', 'write -P 0x11 0 512', 'write -P 0x5a 7M 1M');
      const ref = new Uint8Array(8 * MiB);
      ref.fill(0xab, 65536, 65536 + 4096);
      ref.fill(0x11, 0, 512);
      ref.fill(0x5a, 7 * MiB, 8 * MiB);
      const d = await openImage(img, fmt, { key });
      expect(d.size).toBe(8 * MiB);
      const got = new Uint8Array(MiB);
      await d.read(7 * MiB, got);
      expect(got.every((b) => b === 0x5a)).toBe(true);
      const head = new Uint8Array(65536 + 4096);
      await d.read(0, head);
      expect(same(head.subarray(0, 512), ref.subarray(0, 512))).toBe(true);
      expect(same(head.subarray(65536), ref.subarray(65536, 65536 + 4096))).toBe(true);
      if (fmt === 'qcow2') expect(same(head, ref.subarray(0, head.length))).toBe(true);
      // Ours: a partial cluster (head/tail filled from qemu's data) and a fresh range.
      const a = pattern(3 * 512, 1);
      await d.write(65536 + 1024, a);
      ref.set(a, 65536 + 1024);
      const b = pattern(MiB + 4096, 2);
      await d.write(2 * MiB, b);
      ref.set(b, 2 * MiB);
      await d.writeZeroes(7 * MiB, 65536, false);
      ref.fill(0, 7 * MiB, 7 * MiB + 65536);
      if (fmt === 'luks') {
        // Sectors never written read as noise in a raw LUKS image (here and in QEMU): write them.
        const z = new Uint8Array(8 * MiB);
        for (const [s, e] of [
          [512, 65536],
          [65536 + 4096, 2 * MiB],
          [3 * MiB + 4096, 7 * MiB],
        ]) {
          await d.write(s, z.subarray(0, e - s));
        }
      }
      await d.close();
      expectSameAsRaw(fmt, img, ref);
      if (fmt === 'qcow2') expectCheckClean(img);
    },
  );

  it.each(['luks', 'qcow2'] as const)(
    '%s: a wrong key is one error naming the image',
    async (fmt) => {
      const img = qemuMade(fmt, `w.${fmt}`);
      await expect(openImage(img, fmt, { key: new TextEncoder().encode('nope') })).rejects.toThrow(
        `wrong passphrase for ${img}: no key slot opened`,
      );
      await expect(openImage(img, undefined, {})).rejects.toThrow(
        /is encrypted \(LUKS\): give its key/,
      );
    },
  );
});

describe.skipIf(!haveQemuImg)('encrypted images we make, read by qemu-img', () => {
  it("raw LUKS: qemu-img info sees QEMU's layout; qemu-io reads our data and we read its", async () => {
    const img = tmp('ours.luks');
    await createLuks(img, 4 * MiB, { passphrase: key, iterTimeMs: 10 });
    const info = qemu('qemu-img', [
      'info',
      '--output',
      'json',
      '--object',
      SECRET(),
      '--image-opts',
      opts('luks', img),
    ]);
    expect(info.status, info.out).toBe(0);
    const j = JSON.parse(info.out) as {
      'virtual-size': number;
      'format-specific': { data: Record<string, unknown> & { slots: { active: boolean }[] } };
    };
    expect(j['virtual-size']).toBe(4 * MiB);
    const fs = j['format-specific'].data;
    expect(fs['cipher-alg']).toBe('aes-256');
    expect(fs['cipher-mode']).toBe('xts');
    expect(fs['ivgen-alg']).toBe('plain64');
    expect(fs['hash-alg']).toBe('sha256');
    expect(fs['payload-offset']).toBe(2068480);
    expect(fs.slots.map((s) => s.active)).toEqual([
      true,
      false,
      false,
      false,
      false,
      false,
      false,
      false,
    ]);
    const d = await openImage(img, 'luks', { key });
    const ref = pattern(4 * MiB, 3);
    await d.write(0, ref);
    await d.close();
    expectSameAsRaw('luks', img, ref);
    qemuIo('luks', img, 'write -P 0x77 1M 64k');
    ref.fill(0x77, MiB, MiB + 65536);
    const back = await openImage(img, 'luks', { key, readOnly: true });
    const got = new Uint8Array(4 * MiB);
    await back.read(0, got);
    await back.close();
    expect(same(got, ref)).toBe(true);
  });

  it.each([512, 65536, 2 * MiB])(
    'qcow2 + LUKS, %i-byte clusters: check clean, compare equal',
    async (cs) => {
      const img = tmp('ours.qcow2');
      await createQcow2(img, {
        size: 12 * MiB,
        clusterSize: cs,
        encrypt: { passphrase: key, iterTimeMs: 10 },
      });
      expectCheckClean(img);
      const ref = new Uint8Array(12 * MiB);
      const d = await openImage(img, 'qcow2', { key });
      const put = async (off: number, b: Uint8Array) => {
        await d.write(off, b);
        ref.set(b, off);
      };
      await put(0, pattern(MiB + 4096, 1));
      await put(5 * MiB + 512, pattern(3 * 512, 2));
      await d.flush();
      await put(5 * MiB + 8192, pattern(8192, 4));
      await d.writeZeroes(0, 65536, true);
      ref.fill(0, 0, 65536);
      await d.discard(9 * MiB, 2 * MiB);
      await put(10 * MiB, pattern(2 * MiB, 5));
      await d.close();
      expectCheckClean(img);
      expectSameAsRaw('qcow2', img, ref);
      // The file never holds guest bytes in the clear.
      const file = readFileSync(img);
      expect(file.includes(Buffer.from(pattern(8192, 4)))).toBe(false);
    },
  );
});
