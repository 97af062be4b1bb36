/**
 * Preallocation, judged by qemu-img: a qcow2 qemu-img made with `-o preallocation=metadata` is
 * read (zeros) and written in place by our Qcow2Image back end; images our `img create -o
 * preallocation=metadata|full` makes pass `qemu-img check`, and `qemu-img map` finds in them
 * the allocation it finds in qemu-img's own image of the same size.
 */
import { describe, expect, it, beforeAll, afterAll } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseImgArgs } from '../../../main/cli/img.js';
import { openImage, Qcow2Image } from '../../../devices/block/qcow2/index.js';
import { haveQemuImg, img, qemuImg, qemuIo } from './img-run.js';

interface Extent {
  start: number;
  length: number;
  present: boolean;
  zero: boolean;
  data: boolean;
}

/**
 * qemu-img map's guest ranges, by whether they are allocated (present, data), adjacent ones
 * merged. Host offsets and "zero" (which follows the host file's 4 KiB holes, so the placement
 * of small L2 tables next to data) are layout, not allocation, and are left out.
 */
function allocation(file: string): Omit<Extent, 'zero'>[] {
  const out: Omit<Extent, 'zero'>[] = [];
  for (const e of qemuMap(file)) {
    const last = out[out.length - 1];
    if (last && last.present === e.present && last.data === e.data) last.length += e.length;
    else out.push({ start: e.start, length: e.length, present: e.present, data: e.data });
  }
  return out;
}

function qemuMap(file: string): Extent[] {
  return JSON.parse(qemuImg('map', '--output', 'json', file).out) as Extent[];
}

/** qemu-img info's "actual-size" (bytes the file occupies on the host). */
function actualSize(file: string): number {
  return (JSON.parse(qemuImg('info', '--output', 'json', file).out) as { 'actual-size': number })[
    'actual-size'
  ];
}

describe('preallocation options', () => {
  it('are parsed and refused as qemu-img refuses them', () => {
    expect(
      parseImgArgs(['create', '-f', 'qcow2', '-o', 'preallocation=metadata', 'a', '1M']),
    ).toMatchObject({ cmd: { preallocation: 'metadata' } });
    expect(parseImgArgs(['create', 'a', '1M'])).toMatchObject({ cmd: { preallocation: 'off' } });
    expect(() => parseImgArgs(['create', '-o', 'preallocation=metadata', 'a.raw', '1M'])).toThrow(
      /qcow2 mode/,
    );
    expect(() => parseImgArgs(['create', '-o', 'preallocation=falloc', 'a.raw', '1M'])).toThrow(
      /falloc is not supported/,
    );
    expect(() =>
      parseImgArgs(['create', '-f', 'qcow2', '-o', 'preallocation=bogus', 'a', '1M']),
    ).toThrow(/not off, metadata or full/);
    expect(() =>
      parseImgArgs(['convert', '-c', '-O', 'qcow2', '-o', 'preallocation=metadata', 'a', 'b']),
    ).toThrow(/-c and preallocation/);
    expect(
      parseImgArgs(['convert', '-O', 'qcow2', '-o', 'preallocation=full', 'a', 'b']),
    ).toMatchObject({ cmd: { preallocation: 'full' } });
  });
});

describe.skipIf(!haveQemuImg)('preallocated images, judged by qemu-img', () => {
  let dir: string;
  const at = (n: string): string => join(dir, n);
  const size = 3 << 20;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'wasmvisor-prealloc-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** Writes a pattern at a few places, in and across clusters, through our back end. */
  async function writeThrough(file: string, ref: string): Promise<void> {
    const d = await openImage(file, 'qcow2');
    expect(d).toBeInstanceOf(Qcow2Image);
    const before = statSync(file).size;
    const zeros = new Uint8Array(size);
    await d.read(0, zeros);
    expect(zeros.every((b) => b === 0)).toBe(true);
    for (const [off, len, v] of [
      [0, 4096, 0x11],
      [65536 - 512, 1536, 0x22],
      [size - 512, 512, 0x33],
      [1 << 20, 200 << 10, 0x44],
    ] as const) {
      await d.write(off, new Uint8Array(len).fill(v));
      qemuIo(ref, `write -P ${v} ${off} ${len}`);
    }
    await d.flush();
    await d.close();
    // Written in place: the preallocated clusters took the data, the file did not grow.
    expect(statSync(file).size).toBe(before);
  }

  it.each(['64k', '512'])(
    'qemu-img preallocation=metadata, cluster %s: read as zeros, written in place',
    async (cs) => {
      const f = at(`qemu-meta-${cs}.qcow2`);
      const ref = at(`ref-${cs}.raw`);
      execFileSync('qemu-img', [
        'create',
        '-q',
        '-f',
        'qcow2',
        '-o',
        `preallocation=metadata,cluster_size=${cs}`,
        f,
        `${size}`,
      ]);
      execFileSync('qemu-img', ['create', '-q', '-f', 'raw', ref, `${size}`]);
      await writeThrough(f, ref);
      expect(qemuImg('compare', '-f', 'qcow2', '-F', 'raw', f, ref).status).toBe(0);
      const check = qemuImg('check', f);
      expect(check.status, check.out).toBe(0);
      expect(check.out).toMatch(/100\.00% allocated/);
    },
  );

  it.each([
    ['qcow2', 'metadata', '64k'],
    ['qcow2', 'full', '64k'],
    ['qcow2', 'metadata', '512'],
    ['qcow2', 'full', '512'],
    ['raw', 'full', ''],
  ])('our %s preallocation=%s %s: what qemu-img create makes', async (fmt, mode, cs) => {
    const o = `preallocation=${mode}` + (cs ? `,cluster_size=${cs}` : '');
    const ours = at(`ours-${mode}-${cs}.${fmt}`);
    const theirs = at(`theirs-${mode}-${cs}.${fmt}`);
    const big = 1300 << 20; // more than one L2 table's reach at 64 KiB clusters
    const n = fmt === 'qcow2' && cs === '64k' && mode === 'metadata' ? big : size;
    const r = await img('create', '-f', fmt, '-o', o, ours, `${n}`);
    expect(r.status, r.err).toBe(0);
    expect(r.out).toMatch(
      mode === 'off' ? /size=\d+$/m : new RegExp(`preallocation=${mode}$`, 'm'),
    );
    execFileSync('qemu-img', ['create', '-q', '-f', fmt, '-o', o, theirs, `${n}`]);
    expect(allocation(ours)).toEqual(allocation(theirs));
    // full: every byte written, no hole anywhere; metadata: holes, bar a page at the start.
    const holes = qemuMap(ours)
      .filter((e) => e.zero)
      .reduce((a, e) => a + e.length, 0);
    if (mode === 'full') expect(holes).toBe(0);
    else expect(holes).toBeGreaterThanOrEqual(n - 4096);
    if (fmt === 'qcow2') expect(qemuImg('check', ours).status).toBe(0);
    // Plausible sizes on the host: metadata only, or every byte of the guest's disk.
    const used = actualSize(ours);
    if (mode === 'full') expect(used).toBeGreaterThanOrEqual(n);
    else expect(used).toBeLessThan(n / 8);
    if (fmt === 'qcow2') {
      const ref = at(`ref-ours-${mode}-${cs}.raw`);
      execFileSync('qemu-img', ['create', '-q', '-f', 'raw', ref, `${n}`]);
      if (n === size) {
        await writeThrough(ours, ref);
        expect(qemuImg('compare', '-f', 'qcow2', '-F', 'raw', ours, ref).status).toBe(0);
        expect(qemuImg('check', ours).status).toBe(0);
      }
    }
  });

  it('convert -o preallocation=metadata: the data and the preallocation qemu-img sees', async () => {
    const src = at('conv-src.raw');
    execFileSync('qemu-img', ['create', '-q', '-f', 'raw', src, `${size}`]);
    qemuIo(src, 'write -P 0x5a 65536 8192');
    const dst = at('conv.qcow2');
    const r = await img('convert', '-O', 'qcow2', '-o', 'preallocation=metadata', src, dst);
    expect(r.status, r.err).toBe(0);
    expect(qemuImg('compare', '-f', 'raw', '-F', 'qcow2', src, dst).status).toBe(0);
    expect(qemuImg('check', dst).status).toBe(0);
    expect(allocation(dst).every((e) => e.present && e.data)).toBe(true);
  });

  it('a backing file and preallocation together are refused, naming the file', async () => {
    const base = at('pb.raw');
    execFileSync('qemu-img', ['create', '-q', '-f', 'raw', base, '1M']);
    const r = await img(
      'create',
      '-f',
      'qcow2',
      '-b',
      base,
      '-F',
      'raw',
      '-o',
      'preallocation=metadata',
      at('pb.qcow2'),
    );
    expect(r.status).toBe(1);
    expect(r.err).toMatch(/pb\.qcow2: preallocation and a backing file/);
  });
});
