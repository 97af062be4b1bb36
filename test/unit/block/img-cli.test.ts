/**
 * `wasmvisor img create|info|check`, judged by qemu-img: images we create pass `qemu-img check`
 * and `qemu-img info` reports what ours does; our check finds the leaks and corruptions qemu-img
 * finds (same exit statuses), and what our `-r` repairs qemu-img finds clean.
 */
import { describe, expect, it, beforeAll, afterAll } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, openSync, readSync, rmSync, statSync, writeSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseImgArgs, parseSize } from '../../../main/cli/img.js';
import { haveQemuImg, img, qemuImg } from './img-run.js';
import { parseCommand } from '../../../main/cli/args.js';

type Json = Record<string, unknown> & { 'format-specific'?: { data: Record<string, unknown> } };

/** The fields both tools report, from qemu-img info --output json. */
function common(j: Json): Record<string, unknown> {
  const d = j['format-specific']?.data ?? {};
  return {
    format: j['format'],
    'virtual-size': j['virtual-size'],
    'cluster-size': j['cluster-size'],
    'backing-filename': j['backing-filename'],
    'full-backing-filename': j['full-backing-filename'],
    'backing-filename-format': j['backing-filename-format'],
    'dirty-flag': j['dirty-flag'],
    compat: d['compat'],
    'refcount-bits': d['refcount-bits'],
    'lazy-refcounts': d['lazy-refcounts'],
    corrupt: d['corrupt'],
  };
}

/** Sets the 16-bit refcount of cluster `c` in a 64 KiB-cluster image with one refcount block. */
function setRefcount16(file: string, c: number, v: number): void {
  const fd = openSync(file, 'r+');
  try {
    const h = Buffer.alloc(64);
    readSync(fd, h, 0, 64, 0);
    const table = Number(h.readBigUInt64BE(48));
    const e = Buffer.alloc(8);
    readSync(fd, e, 0, 8, table);
    const block = Number(e.readBigUInt64BE(0));
    const b = Buffer.alloc(2);
    b.writeUInt16BE(v);
    writeSync(fd, b, 0, 2, block + c * 2);
  } finally {
    closeSync(fd);
  }
}

describe('img argument parsing', () => {
  it('reads sizes as qemu-img does and refuses a backing file without its format', () => {
    expect(parseSize('10G', 's')).toBe(10 * 2 ** 30);
    expect(parseSize('64k', 's')).toBe(65536);
    expect(parseSize('1.5M', 's')).toBe(1.5 * 2 ** 20);
    expect(parseSize('512', 's')).toBe(512);
    expect(() => parseSize('ten', 's')).toThrow(/cannot read/);
    expect(() => parseImgArgs(['create', '-f', 'qcow2', '-b', 'b.raw', 'x.qcow2'])).toThrow(
      /needs its format/,
    );
    expect(() => parseImgArgs(['create', '-f', 'vmdk', 'x', '1M'])).toThrow(/not supported/);
    expect(() => parseImgArgs(['check', '-r', 'some', 'x'])).toThrow(/leaks or all/);
    const c = parseCommand(['img', 'create', '-f', 'qcow2', '-o', 'cluster_size=4k', 'a', '1G']);
    expect(c).toMatchObject({
      kind: 'img',
      cmd: { op: 'create', format: 'qcow2', clusterSize: 4096, size: 2 ** 30, file: 'a' },
    });
  });
});

describe.skipIf(!haveQemuImg)('wasmvisor img, judged by qemu-img', () => {
  let dir: string;
  const at = (n: string): string => join(dir, n);
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'wasmvisor-img-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it.each([
    ['512', 16],
    ['64k', 1],
    ['64k', 16],
    ['2M', 64],
  ])(
    'create -o cluster_size=%s,refcount_bits=%i: qemu-img check clean, info agrees',
    async (cs, bits) => {
      const f = at(`c${cs}-${bits}.qcow2`);
      const r = await img(
        'create',
        '-q',
        '-f',
        'qcow2',
        '-o',
        `cluster_size=${cs},refcount_bits=${bits}`,
        f,
        '3G',
      );
      expect(r).toMatchObject({ status: 0, err: '' });
      expect(qemuImg('check', f).status).toBe(0);
      const theirs = JSON.parse(qemuImg('info', '--output', 'json', f).out) as Json;
      const ours = JSON.parse((await img('info', '--output', 'json', f)).out) as Json;
      expect(common(ours)).toEqual(common(theirs));
      expect(ours['cluster-size']).toBe(parseSize(cs, 'cs'));
      expect(ours['format-specific']?.data['refcount-bits']).toBe(bits);
    },
  );

  it('create raw and a qcow2 over it (size from the backing file); chains agree', async () => {
    expect((await img('create', '-f', 'raw', at('base.raw'), '100M')).out).toMatch(
      /^Formatting '.*base\.raw', fmt=raw size=104857600$/m,
    );
    expect(statSync(at('base.raw')).size).toBe(100 << 20);
    const r = await img('create', '-f', 'qcow2', '-b', 'base.raw', '-F', 'raw', at('mid.qcow2'));
    expect(r.status, r.err).toBe(0);
    await img('create', '-q', '-f', 'qcow2', '-b', 'mid.qcow2', '-F', 'qcow2', at('top.qcow2'));
    expect(qemuImg('check', at('top.qcow2')).status).toBe(0);
    const theirs = JSON.parse(
      qemuImg('info', '--backing-chain', '--output', 'json', at('top.qcow2')).out,
    ) as Json[];
    const ours = JSON.parse(
      (await img('info', '--backing-chain', '--output', 'json', at('top.qcow2'))).out,
    ) as Json[];
    expect(ours.map(common)).toEqual(theirs.map(common));
    // The whole list, key for key and value for value, as qemu-img prints it.
    expect(ours).toEqual(theirs);
    expect(ours.map((j) => j['virtual-size'])).toEqual([100 << 20, 100 << 20, 100 << 20]);
    const text = (await img('info', at('top.qcow2'))).out;
    expect(text).toMatch(/^file format: qcow2$/m);
    expect(text).toMatch(/^backing file: mid\.qcow2/m);
    expect(text).toMatch(/^virtual size: 100 MiB \(104857600 bytes\)$/m);
  });

  it('check finds the leak and the corruption qemu-img finds; -r repairs what qemu-img accepts', async () => {
    const f = at('hurt.qcow2');
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', f, '16M']);
    execFileSync('qemu-io', ['-c', 'write -P 0x5a 0 128k', f]);
    expect((await img('check', f)).status).toBe(0);
    // A leak: the header cluster counted twice.
    setRefcount16(f, 0, 2);
    expect(qemuImg('check', f).status).toBe(3);
    let r = await img('check', f);
    expect(r.status).toBe(3);
    expect(r.out).toMatch(/1 leaked clusters were found/);
    r = await img('check', '-r', 'leaks', f);
    expect(r.status, r.out).toBe(0);
    expect(qemuImg('check', f).status).toBe(0);
    // A corruption: the last data cluster (it ends the file) marked free.
    const last = statSync(f).size / 65536 - 1;
    setRefcount16(f, last, 0);
    expect(qemuImg('check', f).status).toBe(2);
    r = await img('check', f);
    expect(r.status).toBe(2);
    expect(r.out).toMatch(new RegExp(`cluster ${last}: refcount 0, used 1 times`));
    expect((await img('check', '-r', 'leaks', f)).status).toBe(2);
    r = await img('check', '-r', 'all', f);
    expect(r.status, r.out).toBe(0);
    expect(r.out).toMatch(/1 corruptions/);
    expect(qemuImg('check', f).status).toBe(0);
    expect(execFileSync('qemu-io', ['-c', 'read -P 0x5a 0 128k', f]).toString()).toMatch(
      /read 131072\/131072/,
    );
  });

  it('an L2 table past the end of the file is a corruption for both (status 2), not a failure', async () => {
    const f = at('l2-gone.qcow2');
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', f, '16M']);
    execFileSync('qemu-io', ['-c', 'write 0 4k', f]);
    const fd = openSync(f, 'r+');
    const h = Buffer.alloc(64);
    readSync(fd, h, 0, 64, 0);
    const e = Buffer.alloc(8);
    e.writeBigUInt64BE((1n << 63n) | BigInt(64 << 20));
    writeSync(fd, e, 0, 8, Number(h.readBigUInt64BE(40)));
    closeSync(fd);
    expect(qemuImg('check', f).status).toBe(2);
    const r = await img('check', f);
    expect(r.status).toBe(2);
    expect(r.out).toMatch(/L2 table 0 at 67108864 lies outside the file/);
  });

  it('errors are one line naming the file', async () => {
    for (const argv of [
      ['info', at('missing.qcow2')],
      ['check', at('missing.qcow2')],
      ['create', '-f', 'qcow2', join(dir, 'no', 'dir.qcow2'), '1M'],
      ['create', '-f', 'qcow2', '-b', 'gone.raw', '-F', 'raw', at('x.qcow2')],
    ]) {
      const r = await img(...argv);
      expect(r.status).toBe(1);
      expect(r.err).toMatch(/^wasmvisor: img \w+: .*(missing\.qcow2|dir\.qcow2|gone\.raw)/);
      expect(r.err.trim().split('\n')).toHaveLength(1);
    }
    // Not a qcow2 at all: qemu-img's "format has no checks" status.
    expect((await img('check', at('base.raw'))).status).toBe(63);
    const junk = at('junk.qcow2');
    execFileSync('sh', ['-c', `printf 'QFI\\373\\0\\0\\0\\011' > ${junk}`]);
    const r = await img('info', junk);
    expect(r.status).toBe(1);
    expect(r.err).toMatch(/junk\.qcow2: too short to be a qcow2 image/);
  });
});
