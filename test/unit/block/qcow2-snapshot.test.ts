/**
 * qcow2 internal snapshots and resize, judged by qemu-img: snapshots we take are listed and
 * applied by qemu-img and the ones it takes by us; shared clusters are copied before a write
 * (the snapshot's data survives), apply brings the data back, delete frees the clusters, and
 * `qemu-img check` finds neither corruption nor leak after every step. Resize grows both formats
 * and shrinks only when told to, and a qcow2 only over clusters that hold nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, openSync, rmSync, statSync, writeSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseImgArgs } from '../../../main/cli/img.js';
import {
  applySnapshot,
  checkQcow2,
  createQcow2,
  createSnapshot,
  openImage,
  type Qcow2Image,
} from '../../../devices/block/qcow2/index.js';
import { haveQemuImg, img, qemuImg } from './img-run.js';

const MiB = 1 << 20;
let dir: string;
let n = 0;
const tmp = (name: string) => join(dir, `${n++}-${name}`);

/** qemu-img check: no corruption, no leak (exit 0). */
function clean(file: string): void {
  const r = qemuImg('check', file);
  expect(r.status, r.out).toBe(0);
  expect(r.out).toMatch(/No errors were found/);
}

/** Clusters in use by every table (active and snapshots), as our check counts them. */
async function inUse(file: string): Promise<number> {
  const r = await checkQcow2(file);
  expect(r.corruptions + r.leaks).toBe(0);
  return r.usedClusters;
}

/** qemu-io reads `len` bytes at `off` and says whether all are `byte`. */
function holds(file: string, off: number, len: number, byte: number): boolean {
  const r = spawnSync('qemu-io', ['-r', '-c', `read -P ${byte} ${off} ${len}`, file], {
    encoding: 'utf-8',
  });
  return r.status === 0 && !/Pattern verification failed/.test(r.stdout + r.stderr);
}

async function write(file: string, off: number, len: number, byte: number): Promise<void> {
  const d = await openImage(file, 'qcow2');
  await d.write(off, new Uint8Array(len).fill(byte));
  await d.close();
}

async function readByte(file: string, off: number): Promise<number> {
  const d = await openImage(file, 'qcow2', { readOnly: true });
  const b = new Uint8Array(512);
  await d.read(off, b);
  await d.close();
  return b[0];
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'wasmvisor-qsnap-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe.skipIf(!haveQemuImg)('qcow2 internal snapshots, judged by qemu-img', () => {
  it.each([512, 65536, 2 * MiB])(
    'cluster %i B: ours are listed and applied by qemu-img; writes copy shared clusters',
    async (cs) => {
      const f = tmp('ours.qcow2');
      await createQcow2(f, { size: 8 * MiB, clusterSize: cs });
      await write(f, 0, 3 * MiB, 0x11);
      expect((await img('snapshot', '-c', 'before', f)).status).toBe(0);
      clean(f);
      await write(f, MiB, 4096, 0x22); // inside a shared cluster: copied first
      await write(f, 6 * MiB, 4096, 0x33); // a new cluster
      clean(f);
      expect(holds(f, MiB, 4096, 0x22)).toBe(true);
      expect(holds(f, MiB + 4096, 4096, 0x11)).toBe(true); // the rest of the copied cluster
      const list = qemuImg('snapshot', '-l', f);
      expect(list.out).toMatch(/^1 +before +0 B /m);
      // qemu-img reverts our image to our snapshot.
      const copy = tmp('copy.qcow2');
      execFileSync('cp', [f, copy]);
      expect(qemuImg('snapshot', '-a', 'before', copy).status).toBe(0);
      expect(holds(copy, 0, 3 * MiB, 0x11)).toBe(true);
      expect(holds(copy, 6 * MiB, 4096, 0)).toBe(true);
      clean(copy);
      // And so do we.
      expect((await img('snapshot', '-a', 'before', f)).status).toBe(0);
      clean(f);
      expect(holds(f, 0, 3 * MiB, 0x11)).toBe(true);
      expect(holds(f, 6 * MiB, 4096, 0)).toBe(true);
    },
  );

  it('theirs: listed as qemu-img lists them, written, applied and deleted by us', async () => {
    const f = tmp('theirs.qcow2');
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', f, '16M']);
    execFileSync('qemu-io', ['-c', 'write -P 0x41 0 2M', f]);
    execFileSync('qemu-img', ['snapshot', '-c', 'one', f]);
    execFileSync('qemu-io', ['-c', 'write -P 0x42 0 1M', f]);
    execFileSync('qemu-img', ['snapshot', '-c', 'two', f]);
    const env = { ...process.env };
    const ours = await img('snapshot', '-l', f);
    expect(ours.out).toBe(execFileSync('qemu-img', ['snapshot', '-l', f], { env }).toString());
    const info = await img('info', '--output', 'json', f);
    const theirs = JSON.parse(qemuImg('info', '--output', 'json', f).out) as {
      snapshots: unknown;
    };
    expect((JSON.parse(info.out) as { snapshots: unknown }).snapshots).toEqual(theirs.snapshots);
    expect((await img('check', f)).status).toBe(0);

    await write(f, 512 * 1024, 4096, 0x43);
    clean(f);
    expect(await readByte(f, 512 * 1024)).toBe(0x43);
    expect((await img('snapshot', '-a', 'one', f)).status).toBe(0);
    clean(f);
    expect(holds(f, 0, 2 * MiB, 0x41)).toBe(true);
    expect((await img('snapshot', '-a', '2', f)).status).toBe(0); // by id
    expect(holds(f, 0, MiB, 0x42)).toBe(true);
    expect(holds(f, MiB, MiB, 0x41)).toBe(true);
    clean(f);
    const used = await inUse(f);
    expect((await img('snapshot', '-d', 'one', f)).status).toBe(0);
    expect((await img('snapshot', '-d', 'two', f)).status).toBe(0);
    clean(f);
    expect(await inUse(f)).toBeLessThan(used);
    expect(qemuImg('snapshot', '-l', f).out).toBe('');
    expect(holds(f, 0, MiB, 0x42)).toBe(true);
    // With the snapshots gone the clusters are ours alone again: written in place.
    const size = statSync(f).size;
    await write(f, 0, MiB, 0x44);
    expect(statSync(f).size).toBe(size);
    clean(f);
  });

  it('delete frees what only the snapshot held; the image returns to its size in use', async () => {
    const f = tmp('free.qcow2');
    await createQcow2(f, { size: 32 * MiB });
    await write(f, 0, 4 * MiB, 0x51);
    clean(f);
    const before = await inUse(f);
    await img('snapshot', '-c', 'a', f);
    await write(f, 0, 4 * MiB, 0x52); // every cluster copied
    await img('snapshot', '-c', 'b', f);
    await write(f, 0, 2 * MiB, 0x53);
    clean(f);
    expect(await inUse(f)).toBeGreaterThan(before + 64);
    expect((await img('snapshot', '-a', 'a', f)).status).toBe(0);
    expect(holds(f, 0, 4 * MiB, 0x51)).toBe(true);
    for (const s of ['a', 'b']) expect((await img('snapshot', '-d', s, f)).status).toBe(0);
    // Only the active tree's clusters are left (the snapshot tables are gone too).
    clean(f);
    expect(await inUse(f)).toBe(before);
    expect(holds(f, 0, 4 * MiB, 0x51)).toBe(true);
  });

  it('an encrypted image: the copied cluster is re-encrypted for its new place', async () => {
    const f = tmp('enc.qcow2');
    const key = new TextEncoder().encode('snap-secret');
    await createQcow2(f, { size: 4 * MiB, encrypt: { passphrase: key, iterTimeMs: 10 } });
    const q = (await openImage(f, 'qcow2', { key })) as Qcow2Image;
    await q.write(0, new Uint8Array(128 * 1024).fill(0x71));
    await q.withMetadata((m) => createSnapshot(m, 'enc'));
    await q.write(4096, new Uint8Array(4096).fill(0x72)); // copies cluster 0
    const b = new Uint8Array(8192);
    await q.read(0, b);
    expect([b[0], b[4096]]).toEqual([0x71, 0x72]);
    await q.withMetadata((m) => applySnapshot(m, 'enc'));
    await q.read(0, b);
    expect([b[0], b[4096]]).toEqual([0x71, 0x71]);
    await q.close();
    // Snapshots are metadata: img snapshot needs no key (and reads no data).
    expect((await img('snapshot', '-d', 'enc', f)).status).toBe(0);
    expect((await img('snapshot', '-c', 'later', f)).status).toBe(0);
    const secret = ['--object', 'secret,id=s0,data=snap-secret', '--image-opts'];
    const r = qemuImg('check', ...secret, `driver=qcow2,file.filename=${f},encrypt.key-secret=s0`);
    expect(r.status, r.out).toBe(0);
    const l = qemuImg(
      'snapshot',
      '-l',
      ...secret,
      `driver=qcow2,file.filename=${f},encrypt.key-secret=s0`,
    );
    expect(l.out).toMatch(/^1 +later /m);
  });

  it('refuses what it cannot do with one clear line', async () => {
    const f = tmp('r.qcow2');
    await createQcow2(f, { size: MiB });
    await img('snapshot', '-c', 'x', f);
    const dup = await img('snapshot', '-c', 'x', f);
    expect(dup.status).toBe(1);
    expect(dup.err).toMatch(/snapshot named "x" exists already/);
    const none = await img('snapshot', '-a', 'nope', f);
    expect(none.err).toMatch(/no snapshot with the id or name "nope"/);
    const raw = tmp('r.raw');
    await img('create', '-q', raw, '1M');
    expect((await img('snapshot', '-c', 'x', raw)).err).toMatch(/raw format has no internal/);
    const one = tmp('one.qcow2');
    await createQcow2(one, { size: MiB, refcountBits: 1 });
    expect((await img('snapshot', '-c', 'x', one)).err).toMatch(/1-bit refcounts/);
    clean(one);
    expect(() => parseImgArgs(['snapshot', '-l', '-c', 'x', f])).toThrow(/give one of/);
  });

  it('a hostile snapshot table gives a clear error, not a crash', async () => {
    const f = tmp('bad.qcow2');
    await createQcow2(f, { size: MiB });
    await img('snapshot', '-c', 'x', f);
    const fd = openSync(f, 'r+');
    const b = Buffer.alloc(12);
    b.writeUInt32BE(60000, 0); // nb_snapshots far beyond the table
    b.writeBigUInt64BE(BigInt(Math.ceil(statSync(f).size / 65536 + 1) * 65536), 4);
    writeSync(fd, b, 0, 12, 60);
    closeSync(fd);
    const r = await img('snapshot', '-l', f);
    expect(r.status).toBe(1);
    expect(r.err).toMatch(/snapshot table lies past the end of the file/);
    const w = await img('snapshot', '-c', 'y', f);
    expect(w.status).toBe(1);
  });
});

describe.skipIf(!haveQemuImg)('img resize, judged by qemu-img', () => {
  it('raw: grows, shrinks only with --shrink', async () => {
    const f = tmp('r.raw');
    await img('create', '-q', f, '4M');
    expect((await img('resize', f, '+2M')).status).toBe(0);
    expect(statSync(f).size).toBe(6 * MiB);
    const no = await img('resize', f, '-1M');
    expect(no.status).toBe(1);
    expect(no.err).toMatch(/--shrink/);
    expect((await img('resize', '--shrink', f, '-1M')).status).toBe(0);
    expect(statSync(f).size).toBe(5 * MiB);
  });

  it('qcow2: grows its L1 table, keeps the data, shrinks only over unused clusters', async () => {
    const f = tmp('g.qcow2');
    // 512-byte clusters: an L2 table covers 32 KiB, so growing to 64 MiB needs a larger L1.
    await createQcow2(f, { size: 2 * MiB, clusterSize: 512 });
    await write(f, MiB, 64 * 1024, 0x61);
    expect((await img('resize', f, '64M')).status).toBe(0);
    clean(f);
    const j = JSON.parse(qemuImg('info', '--output', 'json', f).out) as { 'virtual-size': number };
    expect(j['virtual-size']).toBe(64 * MiB);
    expect(holds(f, MiB, 64 * 1024, 0x61)).toBe(true);
    await write(f, 60 * MiB, 4096, 0x62);
    clean(f);
    const refused = await img('resize', '--shrink', f, '32M');
    expect(refused.status).toBe(1);
    expect(refused.err).toMatch(/data is allocated at 62914560, past the new end/);
    await write(f, 60 * MiB, 4096, 0); // still allocated, just zeros: refused as well
    expect((await img('resize', '--shrink', f, '32M')).status).toBe(1);
    expect((await img('resize', '--shrink', f, '62M')).status).toBe(0);
    const k = JSON.parse(qemuImg('info', '--output', 'json', f).out) as { 'virtual-size': number };
    expect(k['virtual-size']).toBe(62 * MiB);
    expect(holds(f, MiB, 64 * 1024, 0x61)).toBe(true);
    clean(f);
    expect((await img('resize', f, '-1M')).err).toMatch(/--shrink/);
    // qemu-img writes past where we grew it, and reads back what we wrote.
    execFileSync('qemu-io', ['-c', 'write -P 0x63 61M 4k', f]);
    expect(await readByte(f, 61 * MiB)).toBe(0x63);
  });
});
