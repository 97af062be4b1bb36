/**
 * A seeded fuzzer over qcow2 headers and tables (issue 7, acceptance 4): valid images that
 * qemu-img makes — plain, with an internal snapshot, over a backing file, compressed, version 2,
 * 1-bit and 64-bit refcounts — are mutated (header fields, extensions, backing name, L1/L2
 * entries, refcount table and blocks, snapshot table, truncation), then opened, read, written,
 * discarded, flushed and closed through our qcow2 layer. Every case must either work or fail
 * with a BlockError; nothing else may be thrown, nothing may hang, and guest data must never
 * land on the clusters that held the image's metadata.
 *
 * QCOW2_FUZZ_CASES (default 10000) and QCOW2_FUZZ_SEED (default 1) choose the run; a failure
 * names its seed and case so it can be replayed alone.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BlockError, type BlockBackend } from '../../../devices/block/backend.js';
import { checkQcow2, openImage } from '../../../devices/block/qcow2/index.js';
import { img } from './img-run.js';
import { xorshift } from '../../seeded-random.js';

const haveQemu =
  spawnSync('qemu-img', ['--version']).status === 0 &&
  spawnSync('qemu-io', ['--version']).status === 0;
const CASES = Number(process.env.QCOW2_FUZZ_CASES ?? 10000);
const SEED = Number(process.env.QCOW2_FUZZ_SEED ?? 1);
/** What a guest write puts in every 16 bytes: never a valid table entry pattern. */
const MARK = new TextEncoder().encode('WASMVISOR-FUZZ!!');

let dir: string;
beforeAll(() => {
  // Memory-backed where there is one: ten thousand small images are written and read back.
  dir = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'wasmvisor-fuzz-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function run(cmd: string, ...args: string[]): void {
  const r = spawnSync(cmd, args, { encoding: 'utf-8', cwd: dir });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stdout}${r.stderr}`);
}

/** Where things are in a valid image: what the mutator aims at. */
interface Layout {
  name: string;
  bytes: Uint8Array;
  cs: number;
  headerLength: number;
  extEnd: number;
  backingName?: [number, number];
  l1: [number, number];
  l2: number[];
  reftable: [number, number];
  refblocks: number[];
  refBits: number;
  snapshots?: [number, number];
  /** Host clusters holding metadata (header, tables, blocks, snapshot table and L1s). */
  metadata: Set<number>;
}

function layoutOf(name: string, bytes: Uint8Array): Layout {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const u64 = (o: number) => Number(dv.getBigUint64(o) & 0x00fffffffffffe00n);
  const cs = 2 ** dv.getUint32(20);
  const version = dv.getUint32(4);
  const headerLength = version >= 3 ? dv.getUint32(100) : 72;
  const backingOff = Number(dv.getBigUint64(8));
  const backingLen = dv.getUint32(16);
  const l1Off = Number(dv.getBigUint64(40));
  const l1Size = dv.getUint32(36);
  const rtOff = Number(dv.getBigUint64(48));
  const rtClusters = dv.getUint32(56);
  const nbSnap = dv.getUint32(60);
  const snapOff = Number(dv.getBigUint64(64));
  const metadata = new Set<number>([0]);
  const span = (off: number, len: number) => {
    for (let c = Math.floor(off / cs); c * cs < off + len; c++) metadata.add(c);
  };
  span(l1Off, l1Size * 8);
  span(rtOff, rtClusters * cs);
  const l2: number[] = [];
  const tablesOf = (off: number, n: number) => {
    for (let i = 0; i < n; i++) {
      const e = u64(off + i * 8);
      if (e) {
        l2.push(e);
        metadata.add(e / cs);
      }
    }
  };
  tablesOf(l1Off, l1Size);
  const refblocks: number[] = [];
  for (let i = 0; i < (rtClusters * cs) / 8; i++) {
    const e = u64(rtOff + i * 8);
    if (e) {
      refblocks.push(e);
      metadata.add(e / cs);
    }
  }
  let snapshots: [number, number] | undefined;
  if (nbSnap > 0) {
    let p = snapOff;
    for (let s = 0; s < nbSnap; s++) {
      const sl1 = Number(dv.getBigUint64(p));
      const sl1Size = dv.getUint32(p + 8);
      span(sl1, sl1Size * 8);
      tablesOf(sl1, sl1Size);
      const idLen = dv.getUint16(p + 12);
      const nameLen = dv.getUint16(p + 14);
      const extra = dv.getUint32(p + 36);
      p += 40 + extra + idLen + nameLen;
      p = Math.ceil(p / 8) * 8;
    }
    snapshots = [snapOff, p - snapOff];
    span(snapOff, p - snapOff);
  }
  return {
    name,
    bytes,
    cs,
    headerLength,
    extEnd: backingOff > 0 ? backingOff : Math.min(cs, bytes.length),
    ...(backingOff > 0 ? { backingName: [backingOff, backingLen] as [number, number] } : {}),
    l1: [l1Off, l1Size],
    l2,
    reftable: [rtOff, rtClusters],
    refblocks,
    refBits: 2 ** (version >= 3 ? dv.getUint32(96) : 4),
    ...(snapshots ? { snapshots } : {}),
    metadata,
  };
}

/** The valid images the fuzzer starts from, made by qemu-img and qemu-io. */
function makeBases(): Layout[] {
  const io = (f: string, ...cmds: string[]) => run('qemu-io', ...cmds.flatMap((c) => ['-c', c]), f);
  const writes = ['write -P 1 0 8k', 'write -P 2 64k 4k', 'write -z 200k 8k', 'write -P 3 900k 1k'];
  run('qemu-img', 'create', '-q', '-f', 'qcow2', '-o', 'cluster_size=512', 'plain.qcow2', '1M');
  io('plain.qcow2', ...writes);
  run('qemu-img', 'create', '-q', '-f', 'qcow2', '-o', 'cluster_size=4k', 'snap.qcow2', '2M');
  io('snap.qcow2', ...writes);
  run('qemu-img', 'snapshot', '-c', 's1', 'snap.qcow2');
  io('snap.qcow2', 'write -P 4 0 4k', 'write -P 5 512k 4k');
  run('qemu-img', 'create', '-q', '-f', 'raw', 'base.raw', '1M');
  io('base.raw', 'write -P 9 0 1M');
  run(
    'qemu-img',
    ...['create', '-q', '-f', 'qcow2', '-o', 'cluster_size=1k', '-b', 'base.raw', '-F', 'raw'],
    'over.qcow2',
  );
  io('over.qcow2', ...writes);
  run(
    'qemu-img',
    'convert',
    '-q',
    '-c',
    '-O',
    'qcow2',
    '-o',
    'cluster_size=4k',
    'base.raw',
    'c.qcow2',
  );
  run(
    'qemu-img',
    'create',
    '-q',
    '-f',
    'qcow2',
    '-o',
    'compat=0.10,cluster_size=512',
    'v2.qcow2',
    '1M',
  );
  io('v2.qcow2', ...writes);
  for (const bits of [1, 64]) {
    const f = `r${bits}.qcow2`;
    run(
      ...(['qemu-img', 'create', '-q', '-f', 'qcow2'] as const),
      '-o',
      `cluster_size=512,refcount_bits=${bits}`,
      f,
      '1M',
    );
    io(f, ...writes);
  }
  return ['plain', 'snap', 'over', 'c', 'v2', 'r1', 'r64'].map((n) =>
    layoutOf(`${n}.qcow2`, new Uint8Array(readFileSync(join(dir, `${n}.qcow2`)))),
  );
}

/** Header fields: [offset, width in bytes]. */
const HEADER_FIELDS: [number, 4 | 8][] = [
  [4, 4], // version
  [8, 8], // backing_file_offset
  [16, 4], // backing_file_size
  [20, 4], // cluster_bits
  [24, 8], // size
  [32, 4], // crypt_method
  [36, 4], // l1_size
  [40, 8], // l1_table_offset
  [48, 8], // refcount_table_offset
  [56, 4], // refcount_table_clusters
  [60, 4], // nb_snapshots
  [64, 8], // snapshots_offset
  [72, 8], // incompatible_features
  [80, 8], // compatible_features
  [88, 8], // autoclear_features
  [96, 4], // refcount_order
  [100, 4], // header_length
];

/** One mutation of a copy of `b`; returns a description for the failure message. */
function mutate(L: Layout, b: Uint8Array, rnd: (n: number) => number): string {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const cs = L.cs;
  const size = b.length;
  const offsets = [0, 512, cs, L.l1[0], L.reftable[0], ...L.l2, ...L.refblocks, size, size + cs];
  const interesting64 = (): bigint => {
    switch (rnd(10)) {
      case 0:
        return 0n;
      case 1:
        return BigInt(offsets[rnd(offsets.length)]) | (rnd(2) ? 1n << 63n : 0n);
      case 2:
        return 1n << BigInt(rnd(64));
      case 3:
        return 0xffffffffffffffffn;
      case 4:
        return BigInt(rnd(size)) | (1n << 63n);
      case 5:
        return (1n << 62n) | BigInt(offsets[rnd(offsets.length)]); // compressed
      case 6:
        return BigInt(offsets[rnd(offsets.length)] + 1 + rnd(cs - 1)); // unaligned
      default:
        return (BigInt(rnd(2 ** 30)) << 32n) | BigInt(rnd(2 ** 30) * 4);
    }
  };
  const interesting32 = (): number =>
    [0, 1, 2, 0xffffffff, 0x7fffffff, 0x80000000, rnd(64), rnd(2 ** 31), 9, 21, 22][rnd(11)];
  const set64 = (at: number, what: string) => {
    if (at + 8 > size) return `${what}: past EOF`;
    const old = dv.getBigUint64(at);
    const v = rnd(4) === 0 ? old ^ (1n << BigInt(rnd(64))) : interesting64();
    dv.setBigUint64(at, v);
    return `${what} @${at}: ${old.toString(16)} → ${v.toString(16)}`;
  };
  const pickEntry = (base: number, n: number) => base + 8 * rnd(Math.max(1, n));
  switch (rnd(12)) {
    case 0:
    case 1:
    case 2: {
      const [at, w] = HEADER_FIELDS[rnd(HEADER_FIELDS.length)];
      if (w === 8) return set64(at, 'header');
      const old = dv.getUint32(at);
      const v = rnd(3) === 0 ? (old + rnd(5) - 2) >>> 0 : interesting32();
      dv.setUint32(at, v);
      return `header @${at}: ${old} → ${v}`;
    }
    case 3: {
      // Header extensions (and what lies between them and the backing name).
      const from = L.headerLength;
      const to = Math.max(from + 8, L.extEnd);
      const at = from + rnd(to - from);
      if (rnd(2)) {
        const v = interesting32();
        if (at + 4 <= size) dv.setUint32(at, v);
        return `extension @${at} = ${v}`;
      }
      b[at] = rnd(256);
      return `extension byte @${at}`;
    }
    case 4: {
      if (!L.backingName) return set64(8, 'backing offset');
      const [off, len] = L.backingName;
      const at = off + rnd(len);
      b[at] = [0x2f, 0x2e, 0, 0xff, rnd(256)][rnd(5)];
      return `backing name byte @${at}`;
    }
    case 5:
    case 6:
      return set64(pickEntry(L.l1[0], L.l1[1]), 'L1 entry');
    case 7:
    case 8: {
      if (L.l2.length === 0) return set64(pickEntry(L.l1[0], L.l1[1]), 'L1 entry');
      const t = L.l2[rnd(L.l2.length)];
      return set64(t + 8 * rnd(cs / 8), 'L2 entry');
    }
    case 9:
      return set64(pickEntry(L.reftable[0], (L.reftable[1] * cs) / 8), 'refcount table entry');
    case 10: {
      if (L.refblocks.length === 0) return 'nothing';
      const blk = L.refblocks[rnd(L.refblocks.length)];
      const at = blk + rnd(cs);
      const old = b[at];
      b[at] = [0, 0xff, old + 1, old - 1, rnd(256)][rnd(5)] & 0xff;
      return `refcount block byte @${at}: ${old} → ${b[at]}`;
    }
    default: {
      if (L.snapshots && rnd(2)) {
        const [off, len] = L.snapshots;
        const at = off + rnd(len);
        if (rnd(2) && at + 8 <= size) return set64(at, 'snapshot table');
        b[at] = rnd(256);
        return `snapshot table byte @${at}`;
      }
      const at = rnd(size);
      b[at] ^= 1 << rnd(8);
      return `bit flip @${at}`;
    }
  }
}

const within = <T>(p: Promise<T>, ms: number, what: string): Promise<T> => {
  let t: ReturnType<typeof setTimeout>;
  return Promise.race([
    p,
    new Promise<T>((_, reject) => {
      t = setTimeout(() => reject(new Error(`hang: ${what} took over ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(t));
};

type Outcome = 'refused' | 'errors' | 'clean';

/** Opens, reads, maybe writes: refused at open, some requests failed, or all worked. */
async function exercise(path: string, rnd: (n: number) => number, rw: boolean): Promise<Outcome> {
  let img: BlockBackend;
  try {
    img = await openImage(path, 'qcow2', { readOnly: !rw, cache: 'unsafe' });
  } catch (e) {
    if (e instanceof BlockError) return 'refused';
    throw e;
  }
  let outcome: Outcome = 'clean';
  const tolerate = async (op: () => Promise<void>) => {
    try {
      await op();
    } catch (e) {
      if (!(e instanceof BlockError)) throw e;
      outcome = 'errors';
    }
  };
  try {
    const sectors = Math.max(1, Math.floor(img.size / 512));
    const span = (n: number) => Math.min(n, sectors) * 512;
    for (let i = 0; i < 3; i++) {
      const len = span(1 + rnd(16));
      const at = rnd(Math.max(1, sectors - len / 512 + 1)) * 512;
      await tolerate(() => img.read(at, new Uint8Array(len)));
    }
    if (rw && !img.readOnly) {
      for (let i = 0; i < 3; i++) {
        const len = span(1 + rnd(16));
        const at = rnd(Math.max(1, sectors - len / 512 + 1)) * 512;
        const buf = new Uint8Array(len);
        for (let k = 0; k < len; k += 16) buf.set(MARK, k);
        const op = rnd(5);
        if (op === 0) await tolerate(() => img.discard(at, len));
        else if (op === 1) await tolerate(() => img.writeZeroes(at, len, rnd(2) === 0));
        else await tolerate(() => img.write(at, buf));
      }
      await tolerate(() => img.flush());
    }
  } finally {
    await tolerate(() => img.close());
  }
  return outcome;
}

/** Whether a cluster of the file holds guest data written by this case (the marker). */
function holdsMark(file: Uint8Array, off: number, len: number): boolean {
  const end = Math.min(off + len, file.length) - MARK.length;
  outer: for (let p = off; p <= end; p += 16) {
    for (let k = 0; k < MARK.length; k++) if (file[p + k] !== MARK[k]) continue outer;
    return true;
  }
  return false;
}

describe.skipIf(!haveQemu)('qcow2 fuzzer (seeded)', () => {
  it(`${CASES} mutated images: a BlockError or correct behaviour, never anything else`, async () => {
    const bases = makeBases();
    const rnd = xorshift(SEED);
    const path = join(dir, 'fuzz.qcow2');
    const outcomes: Record<Outcome, number> = { refused: 0, errors: 0, clean: 0 };
    let checked = 0;
    for (let k = 0; k < CASES; k++) {
      const L = bases[k % bases.length];
      const b = new Uint8Array(L.bytes);
      const what: string[] = [];
      let bytes = b;
      for (let m = 1 + rnd(3); m > 0; m--) what.push(mutate(L, bytes, rnd));
      if (rnd(40) === 0) {
        bytes = b.subarray(0, rnd(b.length));
        what.push(`truncated to ${bytes.length}`);
      }
      // The backing base sits next to the image, as qemu-img named it.
      const fuzzPath = L.name === 'over.qcow2' ? join(dir, 'fuzz-over.qcow2') : path;
      writeFileSync(fuzzPath, bytes);
      const rw = rnd(10) < 7;
      const label = `seed ${SEED} case ${k} (${L.name}): ${what.join('; ')}`;
      try {
        outcomes[await within(exercise(fuzzPath, rnd, rw), 10_000, label)]++;
        if (rw && rnd(20) === 0) {
          checked++;
          await within(
            checkQcow2(fuzzPath).catch((e: unknown) => {
              if (!(e instanceof BlockError)) throw e;
            }),
            10_000,
            `check: ${label}`,
          );
        }
      } catch (e) {
        throw new Error(`${label}: ${(e as Error).stack ?? String(e)}`);
      }
      const grown = statSync(fuzzPath).size;
      if (grown > bytes.length + (4 << 20)) {
        expect.fail(`${label}: the file grew from ${bytes.length} to ${grown} bytes`);
      }
      if (rw) {
        // Guest data never lands on a cluster that held metadata the mutation did not touch.
        const after = new Uint8Array(readFileSync(fuzzPath));
        for (const c of L.metadata) {
          if (c * L.cs >= bytes.length) continue;
          const before = bytes.subarray(c * L.cs, (c + 1) * L.cs);
          if (holdsMark(after, c * L.cs, L.cs) && !holdsMark(before, 0, L.cs)) {
            expect.fail(`${label}: guest data written over metadata cluster ${c}`);
          }
        }
      }
    }
    console.log(
      `qcow2 fuzzer: ${CASES} cases (seed ${SEED}): ${outcomes.refused} refused at open, ` +
        `${outcomes.errors} with failed requests, ${outcomes.clean} clean; ` +
        `${checked} checked after writes`,
    );
    // The mutations must leave many images usable, or the fuzzer only tests the header parser.
    expect(outcomes.clean + outcomes.errors).toBeGreaterThan(CASES / 4);
  }, 600_000);
});

describe.skipIf(!haveQemu)('named hostile qcow2 tables', () => {
  /** A 512 B-cluster image with data, its layout, and a writer of mutated copies. */
  function image(name: string, refBits = 16): { L: Layout; path: string } {
    const path = `${name}.qcow2`;
    run(
      ...(['qemu-img', 'create', '-q', '-f', 'qcow2'] as const),
      '-o',
      `cluster_size=512,refcount_bits=${refBits}`,
      path,
      '1M',
    );
    run('qemu-io', '-c', 'write -P 1 0 4k', '-c', 'write -P 2 300k 1k', path);
    return {
      L: layoutOf(path, new Uint8Array(readFileSync(join(dir, path)))),
      path: join(dir, path),
    };
  }
  const mark = (n: number) => {
    const b = new Uint8Array(n);
    for (let k = 0; k < n; k += 16) b.set(MARK, k);
    return b;
  };

  it('an L2 entry pointing at the L1 table: the write is refused, the L1 table untouched', async () => {
    const { L, path } = image('l2-at-l1');
    const dv = new DataView(L.bytes.buffer);
    // Guest cluster 0's entry → the L1 table's cluster, COPIED (ours to write in place).
    dv.setBigUint64(L.l2[0], BigInt(L.l1[0]) | (1n << 63n));
    writeFileSync(path, L.bytes);
    const img = await openImage(path, 'qcow2', { cache: 'unsafe' });
    await expect(img.write(0, mark(512))).rejects.toThrow(/overwrite metadata in cluster/);
    await expect(img.write(0, mark(512))).rejects.toThrow(path);
    await img.close();
    const after = readFileSync(path);
    expect(holdsMark(after, L.l1[0], L.cs)).toBe(false);
  });

  it('refcounts that call a table cluster free: allocation refuses it, data elsewhere works', async () => {
    const { L, path } = image('free-l2');
    const dv = new DataView(L.bytes.buffer);
    // The refcount of the first L2 table's cluster dropped to 0 (16-bit refcounts).
    dv.setUint16(L.refblocks[0] + 2 * (L.l2[0] / L.cs), 0);
    writeFileSync(path, L.bytes);
    const img = await openImage(path, 'qcow2', { cache: 'unsafe' });
    // A new cluster is needed: the allocator reaches the "free" L2 table and refuses it.
    const err = await img.write(512 * 1024, mark(512)).catch((e: Error) => e);
    expect(err).toBeInstanceOf(BlockError);
    expect((err as Error).message).toMatch(/metadata uses it .*check -r all/);
    await img.close().catch(() => {});
    expect(holdsMark(readFileSync(path), L.l2[0], L.cs)).toBe(false);
  });

  it('a data cluster past the end of the file: reads zeros, a write is refused, no growth', async () => {
    const { L, path } = image('past-eof');
    const dv = new DataView(L.bytes.buffer);
    dv.setBigUint64(L.l2[0], (1n << 40n) | (1n << 63n));
    writeFileSync(path, L.bytes);
    const img = await openImage(path, 'qcow2', { cache: 'unsafe' });
    const got = new Uint8Array(512).fill(7);
    await img.read(0, got);
    expect(got.every((x) => x === 0)).toBe(true);
    await expect(img.write(0, mark(512))).rejects.toThrow(/past the end of the file/);
    await img.close();
    expect(statSync(path).size).toBe(L.bytes.length);
    // And the checker names it instead of walking a terabyte of clusters.
    const r = await checkQcow2(path);
    expect(r.corruptions).toBeGreaterThan(0);
  });

  it('refcount table and L2 table entries past EOF are refused with messages naming them', async () => {
    const a = image('rt-eof');
    new DataView(a.L.bytes.buffer).setBigUint64(a.L.reftable[0], 1n << 40n);
    writeFileSync(a.path, a.L.bytes);
    await expect(openImage(a.path, 'qcow2')).rejects.toThrow(
      /refcount block 0 .* outside the file/,
    );
    const b = image('l2-eof');
    new DataView(b.L.bytes.buffer).setBigUint64(b.L.l1[0], (1n << 40n) | (1n << 63n));
    writeFileSync(b.path, b.L.bytes);
    const img = await openImage(b.path, 'qcow2', { readOnly: true });
    await expect(img.read(0, new Uint8Array(512))).rejects.toThrow(
      /L2 table 0 .* outside the file/,
    );
    await img.close();
  });

  it('refcount overflow: a snapshot of a 1-bit-refcount image is refused, the image stays clean', async () => {
    const { path } = image('r1', 1);
    const r = await img('snapshot', '-c', 's1', path);
    expect(r.status).not.toBe(0);
    expect(r.err).toMatch(/refcount/);
    expect(spawnSync('qemu-img', ['check', path]).status).toBe(0);
  });
});
