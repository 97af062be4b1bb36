/**
 * qcow2 judged by qemu-img: images we write pass `qemu-img check` and `qemu-img compare` against
 * a raw reference; images qemu-img and qemu-io make (including compressed ones and backing
 * chains) read back as qemu-img reads them; hostile headers give clear errors.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createQcow2, openImage } from '../../../devices/block/qcow2/index.js';
import { haveQemuImg } from './img-run.js';

const MiB = 1 << 20;
let dir: string;
let n = 0;
const tmp = (name: string) => join(dir, `${n++}-${name}`);

function qemu(cmd: string, args: string[]): { status: number | null; out: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf-8' });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

const pattern = (len: number, seed: number): Uint8Array => {
  const b = new Uint8Array(len);
  for (let i = 0; i < len; i++) b[i] = (i * 7 + seed * 13 + (i >> 9)) & 0xff;
  return b;
};

/** Reads a whole image through our layer. */
async function readAll(path: string): Promise<Uint8Array> {
  const d = await openImage(path, undefined, { readOnly: true });
  const b = new Uint8Array(d.size);
  await d.read(0, b);
  await d.close();
  return b;
}

/** The same image as qemu-img reads it. */
function qemuRaw(path: string): Uint8Array {
  const out = tmp('conv.raw');
  const r = qemu('qemu-img', ['convert', '-O', 'raw', path, out]);
  expect(r.status, r.out).toBe(0);
  return new Uint8Array(readFileSync(out));
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'wasmvisor-qcow2-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe.skipIf(!haveQemuImg)('qcow2 images we write, judged by qemu-img', () => {
  const sizes = [512, 4096, 65536, 2 * MiB];
  const widths = [1, 2, 4, 8, 16, 32, 64];
  const cases = sizes.flatMap((cs) =>
    widths.filter((w) => cs === 65536 || w === 1 || w === 16 || w === 64).map((w) => [cs, w]),
  );
  it.each(cases)('cluster %i B, refcount %i bits: check clean, compare equal', async (cs, w) => {
    const size = 24 * MiB;
    const img = tmp('w.qcow2');
    await createQcow2(img, { size, clusterSize: cs, refcountBits: w });
    const ref = new Uint8Array(size);
    const d = await openImage(img, 'qcow2');
    const put = async (off: number, b: Uint8Array) => {
      await d.write(off, b);
      ref.set(b, off);
    };
    await put(0, pattern(MiB + 4096, 1));
    await put(5 * MiB + 512, pattern(3 * 512, 2)); // partial cluster: head/tail filled
    await put(9 * MiB, pattern(2 * MiB, 3));
    await d.flush();
    await put(9 * MiB + 8192, pattern(8192, 4)); // in place
    await d.writeZeroes(10 * MiB, 2 * MiB, true);
    ref.fill(0, 10 * MiB, 12 * MiB);
    await d.discard(0, 2 * MiB); // whole clusters of the range read as zeros (no backing)
    ref.fill(0, 0, Math.floor((2 * MiB) / cs) * cs);
    await put(20 * MiB, pattern(3 * MiB, 5)); // reuses freed clusters
    await d.close();
    const chk = qemu('qemu-img', ['check', img]);
    expect(chk.status, chk.out).toBe(0);
    const raw = tmp('ref.raw');
    writeFileSync(raw, ref);
    const cmp = qemu('qemu-img', ['compare', '-f', 'qcow2', '-F', 'raw', img, raw]);
    expect(cmp.status, cmp.out).toBe(0);
  });

  it('grows the refcount table (512 B clusters, 1-bit refcounts, 40 MiB written)', async () => {
    const img = tmp('grow.qcow2');
    await createQcow2(img, { size: 64 * MiB, clusterSize: 512, refcountBits: 1 });
    const d = await openImage(img, 'qcow2', { l2CacheBytes: 16 * 512 });
    for (let i = 0; i < 40; i++) await d.write(i * MiB, pattern(MiB, i));
    await d.close();
    const chk = qemu('qemu-img', ['check', img]);
    expect(chk.status, chk.out).toBe(0);
    const back = await readAll(img);
    expect(
      Buffer.from(back.subarray(39 * MiB, 40 * MiB)).equals(Buffer.from(pattern(MiB, 39))),
    ).toBe(true);
  });
});

describe.skipIf(!haveQemuImg)('qcow2 images qemu-img makes, read by us', () => {
  it('reads what qemu-io wrote, at several cluster sizes', async () => {
    for (const cs of [512, 65536, 2 * MiB]) {
      const img = tmp('q.qcow2');
      expect(
        qemu('qemu-img', ['create', '-f', 'qcow2', '-o', `cluster_size=${cs}`, img, '16M']).status,
      ).toBe(0);
      const io = qemu('qemu-io', [
        '-f',
        'qcow2',
        '-c',
        'write -P 0xab 1M 3M',
        '-c',
        'write -z 2M 64k',
        '-c',
        'write -P 0x11 7680 1024',
        img,
      ]);
      expect(io.status, io.out).toBe(0);
      expect(Buffer.from(await readAll(img)).equals(Buffer.from(qemuRaw(img)))).toBe(true);
    }
  });

  it('reads compressed clusters (qemu-img convert -c) and v2 images', async () => {
    const raw = tmp('src.raw');
    const src = new Uint8Array(8 * MiB);
    src.set(pattern(3 * MiB, 9), MiB);
    for (let i = 5 * MiB; i < 6 * MiB; i++) src[i] = (Math.sin(i) * 1000) & 0xff;
    writeFileSync(raw, src);
    const c = tmp('c.qcow2');
    expect(qemu('qemu-img', ['convert', '-c', '-O', 'qcow2', raw, c]).status).toBe(0);
    expect(Buffer.from(await readAll(c)).equals(Buffer.from(src))).toBe(true);
    const v2 = tmp('v2.qcow2');
    expect(qemu('qemu-img', ['convert', '-O', 'qcow2', '-o', 'compat=0.10', raw, v2]).status).toBe(
      0,
    );
    expect(Buffer.from(await readAll(v2)).equals(Buffer.from(src))).toBe(true);
    // Writing over a compressed cluster replaces it; qemu-img still agrees.
    const d = await openImage(c, 'qcow2');
    await d.write(MiB + 4096, pattern(4096, 1));
    await d.close();
    src.set(pattern(4096, 1), MiB + 4096);
    expect(qemu('qemu-img', ['check', c]).status).toBe(0);
    expect(Buffer.from(qemuRaw(c)).equals(Buffer.from(src))).toBe(true);
  });

  it('backing chains: raw ← qcow2 ← qcow2 with relative names; writes stay in the top', async () => {
    const sub = join(dir, `chain-${n++}`);
    mkdirSync(join(sub, 'lower'), { recursive: true });
    const base = new Uint8Array(4 * MiB);
    base.set(pattern(4 * MiB, 2));
    writeFileSync(join(sub, 'lower', 'base.raw'), base);
    expect(
      qemu('qemu-img', [
        'create',
        '-f',
        'qcow2',
        '-b',
        'base.raw',
        '-F',
        'raw',
        join(sub, 'lower', 'mid.qcow2'),
      ]).status,
    ).toBe(0);
    expect(
      qemu('qemu-io', ['-c', 'write -P 0x55 1M 64k', join(sub, 'lower', 'mid.qcow2')]).status,
    ).toBe(0);
    const top = join(sub, 'top.qcow2');
    await createQcow2(top, { backingFile: 'lower/mid.qcow2', backingFormat: 'qcow2' });
    const d = await openImage(top, 'qcow2');
    expect(d.size).toBe(4 * MiB);
    await d.write(2 * MiB + 512, pattern(512, 7));
    await d.discard(MiB, 65536); // a backing file shows through: must read as zeros, not as mid
    await d.close();
    expect(qemu('qemu-img', ['check', top]).status).toBe(0);
    const expected = qemuRaw(top);
    expect(Buffer.from(await readAll(top)).equals(Buffer.from(expected))).toBe(true);
    expect(expected.subarray(MiB, MiB + 65536).every((b) => b === 0)).toBe(true);
    expect(
      Buffer.from(readFileSync(join(sub, 'lower', 'base.raw'))).equals(Buffer.from(base)),
    ).toBe(true);
  });
});

describe('hostile and unusual qcow2 headers give clear errors', () => {
  async function header(mut: (dv: DataView) => void): Promise<string> {
    const img = tmp('h.qcow2');
    await createQcow2(img, { size: 16 * MiB });
    const b = readFileSync(img);
    mut(new DataView(b.buffer, b.byteOffset, b.byteLength));
    writeFileSync(img, b);
    return img;
  }
  const cases: [string, (dv: DataView) => void, RegExp][] = [
    ['huge L1', (dv) => dv.setUint32(36, 0xffffffff), /L1 table .* too large/],
    ['L1 past EOF', (dv) => dv.setBigUint64(40, 1n << 40n), /L1 table .* past the end/],
    ['L1 over header', (dv) => dv.setBigUint64(40, 0n), /overlaps the header/],
    ['overlapping tables', (dv) => dv.setBigUint64(40, dv.getBigUint64(48)), /overlap/],
    ['huge size', (dv) => dv.setBigUint64(24, 1n << 62n), /too large/],
    ['cluster bits', (dv) => dv.setUint32(20, 30), /cluster_bits/],
    [
      'unknown feature',
      (dv) => dv.setBigUint64(72, 1n << 40n),
      /unsupported incompatible features: bit 40/,
    ],
    ['refcount order', (dv) => dv.setUint32(96, 9), /refcount_order/],
  ];
  it.each(cases)('%s', async (_, mut, re) => {
    const img = await header(mut);
    await expect(openImage(img, 'qcow2')).rejects.toThrow(re);
    await expect(openImage(img, 'qcow2')).rejects.toThrow(img);
  });

  it('a backing loop and a missing backing file name the files', async () => {
    const a = tmp('a.qcow2');
    const b = tmp('b.qcow2');
    await createQcow2(b, { size: MiB });
    await createQcow2(a, { backingFile: b, backingFormat: 'qcow2' });
    // Point b back at a (same-length rewrite is not needed: create b anew naming a).
    await createQcow2(b, { size: MiB, backingFile: a, backingFormat: 'qcow2' }).catch(() => {});
    rmSync(b);
    await expect(openImage(a, 'qcow2')).rejects.toThrow(/no such file/);
    writeFileSync(b, '');
    const c = tmp('c.qcow2');
    await createQcow2(c, { size: MiB });
    const hb = readFileSync(c);
    writeFileSync(b, hb);
    // b names a as its backing file via a hand-made header: a → b → a.
    const name = new TextEncoder().encode(a);
    const dv = new DataView(hb.buffer, hb.byteOffset, hb.byteLength);
    dv.setBigUint64(8, 1024n);
    dv.setUint32(16, name.length);
    hb.set(name, 1024);
    writeFileSync(b, hb);
    await expect(openImage(a, 'qcow2')).rejects.toThrow(/loops back/);
  });

  it('a raw disk the user named raw is never read as qcow2', async () => {
    const img = tmp('fake.raw');
    await createQcow2(img, { size: MiB, backingFile: '/etc/passwd', backingFormat: 'raw' });
    const d = await openImage(img, 'raw', { readOnly: true });
    expect(d.constructor.name).toBe('RawFile');
    await d.close();
  });

  it('the corrupt bit opens read-only; the dirty bit is repaired on open', async () => {
    const img = await header((dv) => dv.setBigUint64(72, 2n));
    const logs: string[] = [];
    const d = await openImage(img, 'qcow2', { log: (m) => logs.push(m) });
    expect(d.readOnly).toBe(true);
    expect(logs.join()).toMatch(/marked corrupt/);
    await d.close();
    if (!haveQemuImg) return;
    // A dirty image whose refcount for a used cluster is stale (as lazy refcounts leave it).
    const dirty = tmp('dirty.qcow2');
    await createQcow2(dirty, { size: 4 * MiB });
    let w = await openImage(dirty, 'qcow2');
    await w.write(0, pattern(65536 * 3, 1));
    await w.close();
    const b = readFileSync(dirty);
    const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
    const rb = Number(dv.getBigUint64(65536));
    dv.setUint16(rb + 2 * 5, 0); // cluster 5 (a data cluster) loses its refcount
    dv.setBigUint64(72, 1n);
    writeFileSync(dirty, b);
    w = await openImage(dirty, 'qcow2', { log: (m) => logs.push(m) });
    await w.close();
    expect(logs.join()).toMatch(/repairing/);
    const chk = qemu('qemu-img', ['check', dirty]);
    expect(chk.status, chk.out).toBe(0);
  });
});
