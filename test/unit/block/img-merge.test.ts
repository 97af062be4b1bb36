/**
 * `wasmvisor img commit|rebase|map|compare`, each run next to qemu-img on copies of the same
 * images: the results read the same (`qemu-img compare`), are clean (`qemu-img check`), name the
 * same backing file, and map / compare print what qemu-img prints.
 */
import { describe, expect, it, beforeEach, afterEach } from 'vitest';
import {
  closeSync,
  copyFileSync,
  ftruncateSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { loadHostNative } from '../../../devices/host-native.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { haveQemuImg, img, qemuImg, qemuIo } from './img-run.js';

/** base ← mid ← top, all qcow2: data, zero clusters, a compressed run, a shorter base. */
function chain(dir: string): void {
  const at = (f: string) => join(dir, f);
  const text = Buffer.from('some compressible text for the base image\n'.repeat(30000));
  writeFileSync(at('seed.raw'), Buffer.concat([text, Buffer.alloc(3 * 2 ** 20 - text.length)]));
  qemuImg('convert', '-c', '-O', 'qcow2', at('seed.raw'), at('base.qcow2'));
  qemuIo(at('base.qcow2'), 'write -P 1 2M 512k');
  qemuImg('create', '-f', 'qcow2', '-b', 'base.qcow2', '-F', 'qcow2', at('mid.qcow2'), '4M');
  qemuIo(at('mid.qcow2'), 'write -P 2 512k 1M', 'write -z 2M 64k', 'write -P 3 3M 64k');
  qemuImg('create', '-f', 'qcow2', '-b', 'mid.qcow2', '-F', 'qcow2', at('top.qcow2'));
  qemuIo(at('top.qcow2'), 'write -P 4 1M 4k', 'write -z -u 0 64k', 'write -P 5 3584k 8k');
}

describe.skipIf(!haveQemuImg)('img commit / rebase / map / compare next to qemu-img', () => {
  let dir: string;
  const at = (f: string) => join(dir, f);
  /** A copy of the chain in a subdirectory, for qemu-img to work on. */
  const theirs = (f: string) => join(dir, 'q', f);

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'wasmvisor-merge-'));
    chain(dir);
    mkdirSync(join(dir, 'q'));
    for (const f of ['base.qcow2', 'mid.qcow2', 'top.qcow2']) copyFileSync(at(f), theirs(f));
    copyFileSync(at('top.qcow2'), at('before.qcow2'));
    copyFileSync(at('top.qcow2'), theirs('before.qcow2'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const sameAsQemu = (f: string) => {
    expect(qemuImg('compare', at(f), theirs(f))).toMatchObject({ status: 0 });
    expect(qemuImg('check', at(f))).toMatchObject({ status: 0 });
  };
  const backing = (f: string) =>
    (JSON.parse(qemuImg('info', '--output', 'json', f).out) as Record<string, unknown>)[
      'backing-filename'
    ];

  it('commit writes the top of a 3-deep chain into the middle and empties the top', async () => {
    const r = await img('commit', at('top.qcow2'));
    expect(r).toMatchObject({ status: 0, out: 'Image committed.\n' });
    expect(qemuImg('commit', theirs('top.qcow2')).status).toBe(0);
    for (const f of ['base.qcow2', 'mid.qcow2', 'top.qcow2']) sameAsQemu(f);
    // The chain still reads what it read before; the base is untouched; the top holds nothing.
    expect(qemuImg('compare', at('top.qcow2'), at('before.qcow2')).status).toBe(0);
    expect(qemuImg('compare', at('base.qcow2'), theirs('base.qcow2')).status).toBe(0);
    const map = JSON.parse(qemuImg('map', '--output', 'json', at('top.qcow2')).out) as {
      depth: number;
    }[];
    expect(map.every((e) => e.depth > 0)).toBe(true);
  });

  it('commit -d keeps the overlay as it was', async () => {
    expect((await img('commit', '-q', '-d', at('top.qcow2'))).status).toBe(0);
    expect(qemuImg('commit', '-d', theirs('top.qcow2')).status).toBe(0);
    sameAsQemu('mid.qcow2');
    expect(qemuImg('map', '--output', 'json', at('top.qcow2')).out).toBe(
      qemuImg('map', '--output', 'json', at('before.qcow2')).out,
    );
  });

  it('commit refuses an image without a backing file', async () => {
    const r = await img('commit', at('base.qcow2'));
    expect(r.status).toBe(1);
    expect(r.err).toMatch(/base\.qcow2 has no backing file/);
  });

  it('safe rebase onto another base (and onto none) keeps the contents, as qemu-img does', async () => {
    expect((await img('rebase', '-b', 'base.qcow2', '-F', 'qcow2', at('top.qcow2'))).status).toBe(
      0,
    );
    qemuImg('rebase', '-b', 'base.qcow2', '-F', 'qcow2', theirs('top.qcow2'));
    sameAsQemu('top.qcow2');
    expect(qemuImg('compare', at('top.qcow2'), at('before.qcow2')).status).toBe(0);
    expect(backing(at('top.qcow2'))).toBe('base.qcow2');
    // Same clusters copied (where qemu-img writes zeros as data, ours are zero clusters).
    const allocated = (f: string) =>
      (JSON.parse(qemuImg('map', '--output', 'json', f).out) as { depth: number; length: number }[])
        .filter((e) => e.depth === 0)
        .reduce((n, e) => n + e.length, 0);
    expect(allocated(at('top.qcow2'))).toBe(allocated(theirs('top.qcow2')));
    expect((await img('rebase', '-p', '-b', '', at('mid.qcow2'))).status).toBe(0);
    qemuImg('rebase', '-b', '', theirs('mid.qcow2'));
    sameAsQemu('mid.qcow2');
    expect(backing(at('mid.qcow2'))).toBeUndefined();
  });

  it('unsafe rebase only rewrites the header', async () => {
    copyFileSync(at('mid.qcow2'), at('mid2.qcow2'));
    const r = await img('rebase', '-u', '-b', 'mid2.qcow2', '-F', 'qcow2', at('top.qcow2'));
    expect(r.status).toBe(0);
    qemuImg('rebase', '-u', '-b', 'mid2.qcow2', '-F', 'qcow2', theirs('top.qcow2'));
    expect(backing(at('top.qcow2'))).toBe('mid2.qcow2');
    copyFileSync(at('mid.qcow2'), theirs('mid2.qcow2'));
    sameAsQemu('top.qcow2');
    expect(qemuImg('compare', at('top.qcow2'), at('before.qcow2')).status).toBe(0);
    await expect(img('rebase', '-b', 'x.qcow2', at('top.qcow2'))).rejects.toThrow(
      /needs its format/,
    );
  });

  it('map prints what qemu-img map prints, in JSON and in the human form', async () => {
    for (const f of ['top.qcow2', 'mid.qcow2', 'base.qcow2']) {
      const ours = await img('map', '--output', 'json', at(f));
      expect(ours.status).toBe(0);
      expect(ours.out).toBe(qemuImg('map', '--output', 'json', at(f)).out);
    }
    // The human form cannot place compressed clusters: both refuse while base.qcow2 has some.
    expect(qemuImg('map', at('top.qcow2')).status).toBe(1);
    expect(await img('map', at('top.qcow2'))).toMatchObject({
      status: 1,
      err: expect.stringMatching(/compressed clusters/) as unknown,
    });
    qemuImg('convert', '-O', 'qcow2', at('base.qcow2'), at('plain.qcow2'));
    qemuImg('rebase', '-u', '-b', 'plain.qcow2', '-F', 'qcow2', at('mid.qcow2'));
    for (const f of ['top.qcow2', 'mid.qcow2']) {
      expect((await img('map', at(f))).out).toBe(qemuImg('map', at(f)).out);
    }
  });

  it.skipIf(!loadHostNative().native?.seekData)(
    'map of a chain over a sparse raw base: holes and data as qemu-img sees them',
    async () => {
      const raw = at('holes.raw');
      const fd = openSync(raw, 'w');
      ftruncateSync(fd, 4 << 20);
      writeSync(fd, Buffer.alloc(70000, 1), 0, 70000, 0);
      writeSync(fd, Buffer.alloc(65536), 0, 65536, 1 << 20); // written zeros: data, as for QEMU
      writeSync(fd, Buffer.alloc(4096, 2), 0, 4096, 3 << 20);
      closeSync(fd);
      const ov = at('over-raw.qcow2');
      qemuImg('create', '-f', 'qcow2', '-b', 'holes.raw', '-F', 'raw', ov);
      qemuIo(ov, 'write -P 3 64k 64k', 'write -z 2M 64k');
      for (const f of [raw, ov]) {
        expect((await img('map', '--output', 'json', f)).out).toBe(
          qemuImg('map', '--output', 'json', f).out,
        );
      }
    },
  );

  it('compare gives qemu-img compare’s verdicts and exit statuses', async () => {
    const cases: string[][] = [
      [at('top.qcow2'), at('before.qcow2')],
      [at('top.qcow2'), at('mid.qcow2')],
      [at('base.qcow2'), at('mid.qcow2')],
      ['-s', at('base.qcow2'), at('mid.qcow2')],
      [at('mid.qcow2'), at('base.qcow2')],
      [at('top.qcow2'), at('missing.qcow2')],
    ];
    for (const args of cases) {
      const ours = await img('compare', ...args);
      const q = qemuImg('compare', ...args);
      expect(ours.status).toBe(q.status);
      if (q.status !== 2) expect(ours.out).toBe(q.out);
    }
  });
});
