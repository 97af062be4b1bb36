// Reads the host's page cache serves at once (devices/block/read-now.ts): the data is the file's,
// whatever part is cached; what is not goes to the thread pool; O_DIRECT files, long reads and
// hosts without RWF_NOWAIT never try; the counters say which way each read went.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadHostNative, type HostNative } from '../../../devices/host-native.js';
import { READ_NOW_MAX_BYTES, ReadNow } from '../../../devices/block/read-now.js';
import { readFully, type ScatterFile } from '../../../devices/block/scatter-io.js';
import { RawFile, type RawFileHandle } from '../../../devices/block/raw-file.js';
import { HostFile } from '../../../devices/block/qcow2/host-file.js';

const MiB = 1 << 20;
const native = loadHostNative().native;
let dir: string;
let path: string;
/** The image's bytes: byte i = (i * 13) mod 251. */
let bytes: Buffer;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'wasmvisor-readnow-'));
  path = join(dir, 'disk.img');
  bytes = Buffer.alloc(MiB);
  for (let i = 0; i < MiB; i++) bytes[i] = (i * 13) % 251;
  writeFileSync(path, bytes); // just written: in the page cache
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A file handle that counts the reads that reach it (the thread pool's path). */
async function counted(
  p: string,
  flags = 'r',
): Promise<{ fh: RawFileHandle; calls: () => number }> {
  const fh = await open(p, flags);
  let calls = 0;
  const read = fh.read.bind(fh) as (...a: unknown[]) => ReturnType<typeof fh.read>;
  const readv = fh.readv.bind(fh);
  Object.assign(fh, {
    read: (...a: unknown[]) => {
      calls++;
      return read(...a);
    },
    readv: (b: Uint8Array[], pos: number) => {
      calls++;
      return readv(b, pos);
    },
  });
  return { fh, calls: () => calls };
}

/** The image as a read-only RawFile whose handle counts the reads that reach the thread pool. */
async function countedRaw(): Promise<{ f: RawFile; calls: () => number }> {
  const { fh, calls } = await counted(path);
  return { f: await RawFile.open(path, { readOnly: true, openFile: async () => fh }), calls };
}

/** A ReadNow over a fake addon that serves `serve(pos, total)` bytes (or -1) from `bytes`. */
function fakeNow(serve: (pos: number, total: number) => number): ReadNow {
  const fake: HostNative = {
    punchHole: async () => {},
    zeroRange: async () => {},
    readNow: (_fd, views, pos) => {
      const total = views.reduce((n, v) => n + v.length, 0);
      const n = serve(pos, total);
      let o = 0;
      for (const v of views) {
        const k = Math.min(v.length, Math.max(0, n - o));
        v.set(bytes.subarray(pos + o, pos + o + k));
        o += k;
      }
      return n;
    },
  };
  return new ReadNow(0, fake, false);
}

describe('reads at once from the page cache', () => {
  it.skipIf(!native?.readNow)(
    'a cached read never reaches the thread pool, and its bytes are the file’s',
    async () => {
      const { f, calls } = await countedRaw();
      // Scattered over uneven views (whole sectors in all), at an odd sector.
      const views = [new Uint8Array(512), new Uint8Array(3000), new Uint8Array(8192 - 512 - 3000)];
      await f.readv(25 * 512, views);
      expect(Buffer.concat(views)).toEqual(bytes.subarray(25 * 512, 25 * 512 + 8192));
      const one = new Uint8Array(4096);
      await f.read(MiB - 4096, one);
      expect(Buffer.from(one)).toEqual(bytes.subarray(MiB - 4096));
      expect(calls()).toBe(0);
      expect(f.stats()).toMatchObject({ readsAtOnce: 2, readsQueued: 0 });
      expect(f.stats().readsAtOnceUnavailable).toBeUndefined();
      await f.close();
    },
  );

  it.skipIf(!native?.readNow)(
    'more views than one system call takes: the rest follow, still at once',
    async () => {
      const { f, calls } = await countedRaw();
      const views = Array.from({ length: 200 }, () => new Uint8Array(512));
      await f.readv(4096, views);
      expect(Buffer.concat(views)).toEqual(bytes.subarray(4096, 4096 + 200 * 512));
      expect(calls()).toBe(0);
      await f.close();
    },
  );

  it.skipIf(!native?.readNow)(
    'longer than READ_NOW_MAX_BYTES: the thread pool reads it',
    async () => {
      const { f, calls } = await countedRaw();
      const b = new Uint8Array(READ_NOW_MAX_BYTES + 4096);
      await f.read(0, b);
      expect(Buffer.from(b)).toEqual(bytes.subarray(0, b.length));
      expect(calls()).toBeGreaterThan(0);
      expect(f.stats()).toMatchObject({ readsAtOnce: 0, readsQueued: 1 });
      await f.close();
    },
  );

  it('an O_DIRECT image never reads at once: the call would wait for the device', async () => {
    const f = await RawFile.open(path, { readOnly: true, direct: true }).catch(() => undefined);
    if (!f) return; // a file system without O_DIRECT (tmpfs): nothing to check here
    const b = new Uint8Array(4096);
    await f.read(0, b).catch(() => {});
    expect(f.stats().readsAtOnce).toBe(0);
    expect(f.stats().readsAtOnceUnavailable).toMatch(/O_DIRECT/);
    await f.close();
  });

  it('without the addon, or turned off, reads go to the thread pool and the stats say why', async () => {
    const f = await RawFile.open(path, { readOnly: true, native: null });
    const b = new Uint8Array(4096);
    await f.read(4096, b);
    expect(Buffer.from(b)).toEqual(bytes.subarray(4096, 8192));
    expect(f.stats()).toMatchObject({ readsAtOnce: 0, readsQueued: 1 });
    expect(f.stats().readsAtOnceUnavailable).toBe('host helpers disabled');
    await f.close();
    process.env.WASMVISOR_READ_NOW = '0';
    try {
      const g = await RawFile.open(path, { readOnly: true });
      await g.read(0, b);
      expect(g.stats().readsAtOnceUnavailable).toMatch(/WASMVISOR_READ_NOW=0/);
      await g.close();
    } finally {
      delete process.env.WASMVISOR_READ_NOW;
    }
  });

  it('part cached: what the cache held is kept, the rest comes from the thread pool', async () => {
    const { fh, calls } = await counted(path);
    // 5000 bytes at once, then "would wait".
    let first = true;
    const now = fakeNow(() => {
      const n = first ? 5000 : -1;
      first = false;
      return n;
    });
    const views = [new Uint8Array(4096), new Uint8Array(4096)];
    await readFully(fh as ScatterFile, 100, views, now);
    expect(Buffer.concat(views)).toEqual(bytes.subarray(100, 100 + 8192));
    expect(calls()).toBe(1);
    expect(now.stats()).toMatchObject({ readsAtOnce: 0, readsQueued: 1 });
    await fh.close();
  });

  it('short reads at once go on until done; the end of the file reads as zeros', async () => {
    const { fh, calls } = await counted(path);
    const now = fakeNow((pos, total) => (pos >= MiB ? 0 : Math.min(1000, total, MiB - pos)));
    const b = new Uint8Array(8192).fill(0xee);
    await readFully(fh as ScatterFile, MiB - 2500, [b], now);
    expect(Buffer.from(b.subarray(0, 2500))).toEqual(bytes.subarray(MiB - 2500));
    expect(b.subarray(2500).every((x) => x === 0)).toBe(true);
    expect(calls()).toBe(0);
    expect(now.stats().readsAtOnce).toBe(1);
    await fh.close();
  });

  it('a host that refuses RWF_NOWAIT reads stops being asked; other errors are the thread pool’s to report', async () => {
    let asked = 0;
    const refusing = (code: string): HostNative => ({
      punchHole: async () => {},
      zeroRange: async () => {},
      readNow: () => {
        asked++;
        throw Object.assign(new Error(code), { code });
      },
    });
    const r = new ReadNow(0, refusing('EOPNOTSUPP'), false);
    expect(r.tryRead(0, [new Uint8Array(16)], 16)).toBe(-1);
    expect(r.tryRead(0, [new Uint8Array(16)], 16)).toBe(-1);
    expect(asked).toBe(1);
    expect(r.stats().readsAtOnceUnavailable).toMatch(/EOPNOTSUPP/);
    asked = 0;
    const e = new ReadNow(0, refusing('EIO'), false);
    e.tryRead(0, [new Uint8Array(16)], 16);
    e.tryRead(0, [new Uint8Array(16)], 16);
    expect(asked).toBe(2);
    expect(e.stats().readsAtOnceUnavailable).toBeUndefined();
  });

  it.skipIf(!native?.readNow)('the addon checks its arguments and reports a bad descriptor', () => {
    const fd = openSync(path, 'r');
    closeSync(fd);
    expect(() => native!.readNow!(fd, [new Uint8Array(8)], 0)).toThrow(
      expect.objectContaining({ code: 'EBADF' }),
    );
    expect(() => native!.readNow!(0, [new Uint16Array(4) as unknown as Uint8Array], 0)).toThrow(
      /expected \(fd, Uint8Array\[\], position\)/,
    );
    expect(() => native!.readNow!(0, [], -1)).toThrow(/expected/);
  });

  it.skipIf(!native?.readNow)('qcow2’s host file reads at once too', async () => {
    const f = await HostFile.open(path, true, 'writeback', false);
    const b = await f.read(777, 3000);
    expect(Buffer.from(b)).toEqual(bytes.subarray(777, 3777));
    expect(f.readNowStats()).toMatchObject({ readsAtOnce: 1, readsQueued: 0 });
    await f.close();
  });
});
