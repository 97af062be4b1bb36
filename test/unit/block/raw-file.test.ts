import { afterAll, beforeAll, describe, it, expect } from 'vitest';
import { constants, open } from 'node:fs/promises';
import {
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BlockError } from '../../../devices/block/backend.js';
import { loadHostNative } from '../../../devices/block/host-native.js';
import { RawFile, type RawFileHandle } from '../../../devices/block/raw-file.js';

const K = 4096;
const MiB = 1 << 20;
let dir: string;
let n = 0;

/** A fresh image filled with a pattern (byte i = i*7 mod 251), fully allocated. */
function image(size = MiB): string {
  const p = join(dir, `disk-${n++}.img`);
  const b = Buffer.alloc(size);
  for (let i = 0; i < size; i++) b[i] = (i * 7) % 251;
  writeFileSync(p, b);
  return p;
}

/** Opens through a wrapper that records open flags and counts fdatasync calls. */
function observed(): {
  openFile: (p: string, f: number) => Promise<RawFileHandle>;
  syncs: () => number;
  flags: () => number;
} {
  let syncs = 0;
  let flags = -1;
  return {
    openFile: async (p, f) => {
      flags = f;
      const h = await open(p, f);
      const datasync = h.datasync.bind(h);
      h.datasync = () => {
        syncs++;
        return datasync();
      };
      return h;
    },
    syncs: () => syncs,
    flags: () => flags,
  };
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'wasmvisor-block-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('raw file back end', () => {
  it('reads and writes in place, single and vectored', async () => {
    const p = image();
    const d = await RawFile.open(p);
    expect(d.size).toBe(MiB);
    expect(d.name).toBe(p);
    const r = new Uint8Array(K);
    await d.read(8 * K, r);
    expect(r[1]).toBe(((8 * K + 1) * 7) % 251);
    await d.write(K, new Uint8Array(K).fill(0xaa));
    const a = new Uint8Array(512).fill(1);
    const b = new Uint8Array(1024).fill(2);
    await d.writev(2 * K, [a, b]);
    const ra = new Uint8Array(1024);
    const rb = new Uint8Array(512);
    await d.readv(2 * K, [ra, rb]);
    expect([ra[0], ra[511], ra[512], rb[511]]).toEqual([1, 1, 2, 2]);
    await d.close();
    const f = readFileSync(p);
    expect([f[K], f[2 * K - 1], f[2 * K], f[2 * K + 1535]]).toEqual([0xaa, 0xaa, 1, 2]);
    expect(f[2 * K + 1536]).toBe(((2 * K + 1536) * 7) % 251);
  });

  it('reads into a view of a WebAssembly.Memory without copying (guest RAM)', async () => {
    const d = await RawFile.open(image());
    const mem = new WebAssembly.Memory({ initial: 2 });
    const view = new Uint8Array(mem.buffer, 65536 + 512, K);
    await d.read(0, view);
    expect(new Uint8Array(mem.buffer)[65536 + 512 + 3]).toBe(21);
    await d.close();
  });

  it('rejects out-of-range, unaligned and absurd requests with BlockError', async () => {
    const d = await RawFile.open(image());
    const bad: [number, number][] = [
      [-512, 512],
      [MiB, 512],
      [MiB - 512, 1024],
      [100, 512],
      [0, 100],
      [2 ** 53, 512],
      [Number.MAX_SAFE_INTEGER, 512],
      [NaN, 512],
      [Infinity, 512],
      [0.5, 512],
    ];
    for (const [off, len] of bad) {
      await expect(d.read(off, new Uint8Array(len))).rejects.toMatchObject({
        kind: 'out-of-range',
      });
      await expect(d.discard(off, len)).rejects.toBeInstanceOf(BlockError);
      await expect(d.writeZeroes(off, len, false)).rejects.toBeInstanceOf(BlockError);
    }
    await expect(d.discard(0, 2 ** 60)).rejects.toMatchObject({ kind: 'out-of-range' });
    await expect(d.discard(0, -512)).rejects.toMatchObject({ kind: 'out-of-range' });
    await expect(d.read(MiB, new Uint8Array(0))).resolves.toBeUndefined();
    await d.close();
  });

  it('opens read-only with O_RDONLY and refuses every kind of write', async () => {
    const p = image();
    const o = observed();
    const d = await RawFile.open(p, { readOnly: true, openFile: o.openFile });
    expect(o.flags() & 3).toBe(constants.O_RDONLY);
    expect(d.readOnly).toBe(true);
    await expect(d.write(0, new Uint8Array(512))).rejects.toMatchObject({ kind: 'read-only' });
    await expect(d.writev(0, [new Uint8Array(512)])).rejects.toMatchObject({ kind: 'read-only' });
    await expect(d.discard(0, 512)).rejects.toMatchObject({ kind: 'read-only' });
    await expect(d.writeZeroes(0, 512, true)).rejects.toMatchObject({ kind: 'read-only' });
    await expect(d.flush()).resolves.toBeUndefined();
    await d.close();
    expect(readFileSync(p)[1]).toBe(7);
  });

  it('writeback syncs on flush only; writethrough syncs every write; unsafe never', async () => {
    const run = async (cache: 'writeback' | 'writethrough' | 'unsafe'): Promise<number[]> => {
      const o = observed();
      const d = await RawFile.open(image(), { cache, openFile: o.openFile });
      await d.write(0, new Uint8Array(512));
      await d.write(K, new Uint8Array(512));
      const afterWrites = o.syncs();
      await d.flush();
      const afterFlush = o.syncs();
      expect(d.stats().syncs).toBe(afterFlush);
      await d.close();
      return [afterWrites, afterFlush];
    };
    expect(await run('writeback')).toEqual([0, 1]);
    expect(await run('writethrough')).toEqual([2, 3]);
    expect(await run('unsafe')).toEqual([0, 0]);
  });

  it('switches cache mode live', async () => {
    const o = observed();
    const d = await RawFile.open(image(), { cache: 'unsafe', openFile: o.openFile });
    await d.flush();
    d.setCacheMode('writethrough');
    expect(d.cacheMode).toBe('writethrough');
    await d.write(0, new Uint8Array(512));
    expect(o.syncs()).toBe(1);
    await d.close();
  });

  const native = loadHostNative();

  it.runIf(native.native)('discard punches a hole: reads as zeros, frees blocks', async () => {
    const p = image(4 * MiB);
    const d = await RawFile.open(p);
    expect(d.stats().sparse).toBe(true);
    const before = statSync(p).blocks;
    await d.discard(MiB, 2 * MiB);
    await d.flush();
    const r = new Uint8Array(2 * MiB).fill(9);
    await d.read(MiB, r);
    expect(r.every((x) => x === 0)).toBe(true);
    const edge = new Uint8Array(512);
    await d.read(3 * MiB, edge);
    expect(edge[1]).toBe(((3 * MiB + 1) * 7) % 251);
    expect(before - statSync(p).blocks).toBeGreaterThanOrEqual((2 * MiB) / 512 - 8);
    expect(d.stats().holesPunched).toBe(1);
    expect(d.stats().zeroBytesWritten).toBe(0);
    await d.close();
  });

  it.runIf(native.native)('write-zeroes: unmap punches, no-unmap keeps blocks', async () => {
    const p = image(4 * MiB);
    const d = await RawFile.open(p);
    const b0 = statSync(p).blocks;
    await d.writeZeroes(0, MiB, false);
    expect(statSync(p).blocks).toBeGreaterThanOrEqual(b0 - 8);
    await d.writeZeroes(2 * MiB, MiB, true);
    expect(b0 - statSync(p).blocks).toBeGreaterThanOrEqual(MiB / 512 - 8);
    const r = new Uint8Array(MiB).fill(9);
    await d.read(0, r);
    expect(r.every((x) => x === 0)).toBe(true);
    await d.read(2 * MiB, r.fill(9));
    expect(r.every((x) => x === 0)).toBe(true);
    await d.close();
  });

  it('without host helpers, discard writes zeros and says sparse: false', async () => {
    const p = image(2 * MiB + 512);
    const d = await RawFile.open(p, { native: null });
    expect(d.stats().sparse).toBe(false);
    expect(d.stats().sparseUnavailable).toMatch(/disabled/);
    await d.discard(512, 2 * MiB);
    await d.writeZeroes(0, 512, true);
    const f = readFileSync(p);
    expect(f.subarray(0, 2 * MiB + 512).every((x) => x === 0)).toBe(true);
    expect(d.stats().zeroBytesWritten).toBe(2 * MiB + 512);
    await d.close();
  });

  it('falls back to zeros, once, when the file system cannot punch', async () => {
    const logs: string[] = [];
    let punches = 0;
    const unsupported = (): Promise<void> => {
      punches++;
      return Promise.reject(Object.assign(new Error('not supported'), { code: 'EOPNOTSUPP' }));
    };
    const p = image();
    const d = await RawFile.open(p, {
      native: { punchHole: unsupported, zeroRange: unsupported },
      log: (m) => logs.push(m),
    });
    await d.discard(0, K);
    await d.discard(K, K);
    expect(punches).toBe(1);
    expect(d.stats().sparse).toBe(false);
    expect(d.stats().sparseUnavailable).toMatch(/EOPNOTSUPP/);
    expect(logs.length).toBe(1);
    expect(
      readFileSync(p)
        .subarray(0, 2 * K)
        .every((x) => x === 0),
    ).toBe(true);
    await d.close();
  });

  it('maps host I/O errors to BlockError("io")', async () => {
    const d = await RawFile.open(image(), {
      native: {
        punchHole: () => Promise.reject(Object.assign(new Error('EIO'), { code: 'EIO' })),
        zeroRange: () => Promise.resolve(),
      },
    });
    await expect(d.discard(0, K)).rejects.toMatchObject({ kind: 'io' });
    await d.close();
  });

  it('reads zeros past a file truncated under it', async () => {
    const p = image();
    const d = await RawFile.open(p);
    truncateSync(p, MiB / 2);
    const r = new Uint8Array(K).fill(9);
    await d.read(MiB - K, r);
    expect(r.every((x) => x === 0)).toBe(true);
    await d.close();
  });

  it('names the file and the problem when it cannot be a disk', async () => {
    const missing = join(dir, 'nope.img');
    await expect(RawFile.open(missing)).rejects.toThrow(`disk image ${missing}: no such file`);
    const sub = join(dir, 'a-directory');
    mkdirSync(sub);
    await expect(RawFile.open(sub)).rejects.toThrow(/a-directory: is a directory/);
    await expect(RawFile.open(sub, { readOnly: true })).rejects.toThrow(/is a directory/);
    const odd = join(dir, 'odd.img');
    writeFileSync(odd, Buffer.alloc(1000));
    await expect(RawFile.open(odd)).rejects.toThrow(
      /odd\.img: its size \(1000 bytes\) is not a multiple of 512/,
    );
    await expect(RawFile.open(odd)).rejects.toBeInstanceOf(BlockError);
  });

  it.skipIf(process.getuid?.() === 0)('says permission denied for an unreadable file', async () => {
    const p = image();
    const { chmodSync } = await import('node:fs');
    chmodSync(p, 0);
    await expect(RawFile.open(p, { readOnly: true })).rejects.toThrow(/permission denied/);
  });

  it('finishes running requests before close, then refuses', async () => {
    const d = await RawFile.open(image());
    const r = d.read(0, new Uint8Array(K));
    await d.close();
    await expect(r).resolves.toBeUndefined();
    await expect(d.read(0, new Uint8Array(K))).rejects.toMatchObject({ kind: 'io' });
  });

  it('bypasses the page cache with O_DIRECT for aligned (Wasm memory) buffers', async () => {
    const p = image();
    let d: RawFile;
    try {
      d = await RawFile.open(p, { direct: true });
    } catch {
      return; // a file system without O_DIRECT (tmpfs): nothing to check here
    }
    const mem = new WebAssembly.Memory({ initial: 1 });
    const view = new Uint8Array(mem.buffer, 4096, K);
    await d.read(0, view);
    expect(view[3]).toBe(21);
    view.fill(5);
    await d.write(K, view);
    await d.close();
    expect(readFileSync(p)[K]).toBe(5);
  });
});
