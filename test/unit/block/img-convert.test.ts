/**
 * `wasmvisor img convert` and compressed clusters, judged by qemu-img: what we write is
 * identical to the source for `qemu-img compare`, clean for `qemu-img check`, and sparse; the
 * compressed images qemu-img writes read the same through us; a guest write over a compressed
 * cluster keeps the refcounts exact; zstd images are refused by name.
 */
import { describe, expect, it, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openImage } from '../../../devices/block/qcow2/index.js';
import { parseImgArgs } from '../../../main/cli/img.js';
import { Progress } from '../../../main/cli/img-progress.js';
import { haveQemuImg, img, qemuImg, qemuIo } from './img-run.js';

const MiB = 1 << 20;

/** 6 MiB of mixed content: random (incompressible), text (compressible), zeros, a partial tail. */
function mixedRaw(path: string): Buffer {
  const b = Buffer.alloc(6 * MiB - 512 * 3);
  let x = 12345;
  for (let i = 0; i < MiB; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  b.write('a compressible line of text, again and again\n'.repeat(40000), 2 * MiB);
  b.fill(0x5a, 5 * MiB, 5 * MiB + 70000);
  b.fill(7, b.length - 1000);
  writeFileSync(path, b);
  return b;
}

describe.skipIf(!haveQemuImg)('img convert, judged by qemu-img', () => {
  let dir: string;
  const at = (f: string) => join(dir, f);
  let content: Buffer;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'wasmvisor-convert-'));
    content = mixedRaw(at('src.raw'));
    // A three-deep qcow2 chain reading as src.raw with a few changes on top.
    expect(qemuImg('convert', '-O', 'qcow2', at('src.raw'), at('base.qcow2')).status).toBe(0);
    qemuImg('create', '-f', 'qcow2', '-b', 'base.qcow2', '-F', 'qcow2', at('mid.qcow2'));
    qemuIo(at('mid.qcow2'), 'write -P 0x11 1M 128k', 'write -z 2M 64k');
    qemuImg('create', '-f', 'qcow2', '-b', 'mid.qcow2', '-F', 'qcow2', at('top.qcow2'));
    qemuIo(at('top.qcow2'), 'write -P 0x22 1088k 4k', 'write -z -u 5M 64k');
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('copies a backing chain into raw and qcow2 images that qemu-img finds identical and clean', async () => {
    for (const [fmt, opts] of [
      ['raw', []],
      ['qcow2', []],
      ['qcow2', ['-o', 'cluster_size=512,refcount_bits=1']],
      ['qcow2', ['-o', 'cluster_size=2M']],
    ] as const) {
      const out = at(`out-${fmt}-${opts.length}.img`);
      const r = await img('convert', '-O', fmt, ...opts, at('top.qcow2'), out);
      expect(r.err).toBe('');
      expect(r.status).toBe(0);
      expect(qemuImg('compare', at('top.qcow2'), out)).toMatchObject({ status: 0 });
      if (fmt === 'qcow2') expect(qemuImg('check', out)).toMatchObject({ status: 0 });
    }
  });

  it('keeps zero runs out of the output: holes in raw, no clusters in qcow2', async () => {
    await img('convert', '-O', 'raw', at('top.qcow2'), at('sparse.raw'));
    const st = statSync(at('sparse.raw'));
    expect(st.size).toBe(content.length);
    // Data: 1 MiB random + ~1.7 MiB text + 70 kB + the tail; the rest (~2.5 MiB) must be holes.
    expect(st.blocks * 512).toBeLessThan(4 * MiB);
    await img('convert', '-O', 'qcow2', at('top.qcow2'), at('sparse.qcow2'));
    const map = JSON.parse(qemuImg('map', '--output', 'json', at('sparse.qcow2')).out) as {
      start: number;
      length: number;
      data: boolean;
    }[];
    const data = map.filter((e) => e.data).reduce((n, e) => n + e.length, 0);
    expect(data).toBeLessThan(4 * MiB);
    // The zeroed 64 KiB at 2 MiB and 5 MiB are not allocated.
    const covers = (o: number) => map.find((e) => e.start <= o && o < e.start + e.length)!;
    expect(covers(2 * MiB).data).toBe(false);
    expect(covers(5 * MiB).data).toBe(false);
  });

  it('-c writes compressed clusters qemu-img reads, and leaves incompressible ones plain', async () => {
    for (const cs of ['512', '64k', '2M']) {
      const out = at(`c-${cs}.qcow2`);
      expect(
        (
          await img(
            'convert',
            '-c',
            '-O',
            'qcow2',
            '-o',
            `cluster_size=${cs}`,
            at('top.qcow2'),
            out,
          )
        ).status,
      ).toBe(0);
      expect(qemuImg('compare', at('top.qcow2'), out)).toMatchObject({ status: 0 });
      expect(qemuImg('check', out)).toMatchObject({ status: 0 });
    }
    const plain = statSync(at('out-qcow2-0.img')).size;
    const packed = statSync(at('c-64k.qcow2')).size;
    expect(packed).toBeLessThan(plain - MiB); // the text compresses well
    const check = qemuImg('check', at('c-64k.qcow2')).out;
    const pct = Number(/([\d.]+)% compressed clusters/.exec(check)![1]);
    expect(pct).toBeGreaterThan(20); // text and fills compressed
    expect(pct).toBeLessThan(90); // the random MiB stayed plain
  });

  it('reads the compressed images qemu-img writes, at every cluster size', async () => {
    for (const cs of ['512', '64k', '2M']) {
      const c = at(`q-${cs}.qcow2`);
      qemuImg('convert', '-c', '-O', 'qcow2', '-o', `cluster_size=${cs}`, at('src.raw'), c);
      expect(qemuImg('check', c).out).toMatch(/[1-9][\d.]*% compressed clusters/);
      const back = at(`q-${cs}.raw`);
      expect((await img('convert', '-O', 'raw', c, back)).status).toBe(0);
      expect(readFileSync(back).equals(content)).toBe(true);
    }
  });

  it('a write into a compressed cluster moves it to a fresh cluster and frees the compressed bytes', async () => {
    const f = at('cow.qcow2');
    qemuImg('convert', '-c', '-O', 'qcow2', at('src.raw'), f);
    const d = await openImage(f, 'qcow2');
    // 2 MiB + 4 KiB: inside the text, a compressed cluster sharing host clusters with neighbours.
    const patch = Buffer.alloc(4096, 0xee);
    await d.write(2 * MiB + 4096, patch);
    await d.writeZeroes(3 * MiB, 64 * 1024, true);
    await d.close();
    expect(qemuImg('check', f)).toMatchObject({ status: 0 }); // no leak, no corruption
    const expected = Buffer.from(content);
    patch.copy(expected, 2 * MiB + 4096);
    expected.fill(0, 3 * MiB, 3 * MiB + 64 * 1024);
    writeFileSync(at('expected.raw'), expected);
    expect(qemuImg('compare', at('expected.raw'), f)).toMatchObject({ status: 0 });
  });

  it('refuses zstd-compressed images by name, from their header', async () => {
    const z = at('z.qcow2');
    qemuImg('convert', '-c', '-O', 'qcow2', '-o', 'compression_type=zstd', at('src.raw'), z);
    expect(qemuImg('info', z).out).toMatch(/compression type: zstd/);
    const r = await img('convert', '-O', 'raw', z, at('z.raw'));
    expect(r.status).toBe(1);
    expect(r.err).toContain(`${z}: zstd-compressed clusters are not supported by this host's zlib`);
    await expect(openImage(z, 'qcow2')).rejects.toThrow(/zstd-compressed clusters/);
    expect(() =>
      parseImgArgs(['convert', '-O', 'qcow2', '-o', 'compression_type=zstd', 'a', at('w.qcow2')]),
    ).toThrow(
      /creating .*w\.qcow2: zstd-compressed clusters are not supported by this host's zlib/,
    );
  });

  it('walks a vast sparse disk by its tables, not cluster by cluster (4 TiB, one cluster used)', async () => {
    const f = at('vast.qcow2');
    qemuImg('create', '-f', 'qcow2', f, '4T');
    qemuIo(f, 'write -P 9 3T 64k');
    expect((await img('convert', '-O', 'raw', f, at('vast.raw'))).status).toBe(0);
    expect(statSync(at('vast.raw')).blocks * 512).toBeLessThanOrEqual(1 << 20);
    expect(qemuImg('compare', f, at('vast.raw'))).toMatchObject({ status: 0 });
    rmSync(at('vast.raw'));
    expect((await img('convert', '-O', 'qcow2', f, at('vast2.qcow2'))).status).toBe(0);
    expect(await img('compare', f, at('vast2.qcow2'))).toMatchObject({ status: 0 });
    qemuIo(f, 'write -P 8 3T 512');
    expect((await img('compare', f, at('vast2.qcow2'))).out).toBe(
      `Content mismatch at offset ${3 * 2 ** 40}!\n`,
    );
  });

  it('reads an encrypted image given --key-file (convert, compare, map), and names it without', async () => {
    const key = at('key.txt');
    writeFileSync(key, 'correct horse');
    const e = at('e.luks');
    const made = await img(
      'create',
      '-q',
      '-f',
      'luks',
      '--key-file',
      key,
      '-o',
      'iter-time=10',
      e,
      '4M',
    );
    expect(made.status, made.err).toBe(0);
    const d = await openImage(e, 'luks', { key: readFileSync(key) });
    await d.write(MiB, Buffer.alloc(65536, 0x5a));
    await d.close();
    const r = await img('convert', '-f', 'luks', '--key-file', key, '-O', 'raw', e, at('e.raw'));
    expect(r.status, r.err).toBe(0);
    // (What was never written decrypts to noise, as in QEMU: only the written part is known.)
    const out = readFileSync(at('e.raw'));
    expect(out.length).toBe(4 * MiB);
    expect(out.subarray(MiB, MiB + 65536).equals(Buffer.alloc(65536, 0x5a))).toBe(true);
    const same = await img('compare', '-f', 'luks', '-F', 'raw', '--key-file', key, e, at('e.raw'));
    expect(same).toMatchObject({ status: 0, out: 'Images are identical.\n' });
    // As qemu-img: encrypted data is data, at no offset it could show.
    expect((await img('map', '-f', 'luks', '--key-file', key, '--output', 'json', e)).out).toBe(
      `[{ "start": 0, "length": ${4 * MiB}, "depth": 0, "present": true, "zero": false, "data": true}]\n`,
    );
    const noKey = await img('convert', '-f', 'luks', '-O', 'raw', e, at('f.raw'));
    expect(noKey.status).toBe(1);
    expect(noKey.err).toContain(`${e} is encrypted`);
  });

  it('refuses options that make no sense for the output', () => {
    expect(() => parseImgArgs(['convert', '-O', 'luks', 'a', 'b'])).toThrow(/luks output/);
    expect(() => parseImgArgs(['convert', '-c', 'a', 'b'])).toThrow(/need -O qcow2/);
    expect(() => parseImgArgs(['convert', 'a'])).toThrow(/give SRC and DST/);
  });

  it('-p reports progress: percentage lines off a terminal, a redrawn bar on one', async () => {
    const r = await img('convert', '-p', '-O', 'raw', at('top.qcow2'), at('p.raw'));
    const lines = r.out.trim().split('\n');
    expect(lines[0]).toBe('0%');
    expect(lines[lines.length - 1]).toBe('100%');
    expect(lines.every((l) => /^\d+%$/.test(l))).toBe(true);
    let tty = '';
    const p = new Progress({ out: (s) => (tty += s), tty: true });
    p.report(168, 400);
    p.finish();
    expect(tty).toBe('    (0.00/100%)\r    (42.00/100%)\r    (100.00/100%)\r\n');
  });
});
