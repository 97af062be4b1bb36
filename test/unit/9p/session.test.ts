/**
 * 9P session basics played by a hand-built guest: Tversion, Tattach, Twalk, Tgetattr, Tclunk,
 * Tstatfs, the unsupported requests, locks, and the server's constructor checks.
 */
import { lstatSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { NinePServer } from '../../../devices/9p/server.js';
import { errnoOf, Guest, NOFID, QT, setup, str, u32, u64, u8, type Fixture } from './guest.js';

let f: Fixture;
beforeEach(() => {
  f = setup();
});
afterEach(() => f.cleanup());

describe('Tversion / Tattach', () => {
  it('negotiates min(client msize, MAX_MSIZE) for 9P2000.L', () => {
    const g = new Guest(f.server);
    expect(g.version(8192)).toEqual({ msize: 8192, version: '9P2000.L' });
    expect(g.version(1 << 30)).toEqual({ msize: NinePServer.MAX_MSIZE, version: '9P2000.L' });
  });

  it('answers "unknown" to any other version', () => {
    expect(new Guest(f.server).version(8192, '9P2000.u').version).toBe('unknown');
    expect(new Guest(f.server).version(8192, '9P2000').version).toBe('unknown');
  });

  it('Tversion and reset() forget every fid', () => {
    f.g.walk(0, 1);
    expect(f.server.fidCount).toBe(2);
    f.g.version();
    expect(f.server.fidCount).toBe(0);
    expect(errnoOf(() => f.g.walk(0, 1))).toBe(9); // EBADF: fid 0 is gone
    f.g.attach(0);
    f.server.reset();
    expect(f.server.fidCount).toBe(0);
  });

  it('attach gives the root qid (a directory, the host inode)', () => {
    expect(f.rootQid.type).toBe(QT.dir);
    expect(f.rootQid.path).toBe(lstatSync(f.root, { bigint: true }).ino);
    expect(errnoOf(() => f.g.attach(0))).toBe(22); // fid in use
  });

  it('refuses Tauth, xattrs, and unknown types with errors', () => {
    expect(errnoOf(() => f.g.call(102, u32(5), str('u'), str(''), u32(0)))).toBe(95);
    expect(errnoOf(() => f.g.call(30, u32(0), u32(1), str('user.x')))).toBe(95);
    expect(errnoOf(() => f.g.call(32, u32(0), str('user.x'), u64(1), u32(0)))).toBe(95);
    expect(errnoOf(() => f.g.call(200))).toBe(95);
    expect(errnoOf(() => f.g.call(101))).toBe(95); // an R-type sent as a request
  });

  it('Tflush answers Rflush', () => {
    expect(f.g.call(108, Buffer.from([1, 0])).done).toBe(true);
  });
});

describe('Twalk', () => {
  beforeEach(() => {
    mkdirSync(join(f.root, 'a/b'), { recursive: true });
    writeFileSync(join(f.root, 'a/b/file'), 'hello');
  });

  it('walks names and returns their qids (host inodes)', () => {
    const qids = f.g.walk(0, 1, 'a', 'b', 'file');
    expect(qids.map((q) => q.type)).toEqual([QT.dir, QT.dir, QT.file]);
    expect(qids[2].path).toBe(lstatSync(join(f.root, 'a/b/file'), { bigint: true }).ino);
    expect(f.g.getattr(1).size).toBe(5n);
  });

  it('a partial walk returns the qids walked and makes no newfid', () => {
    expect(f.g.walk(0, 1, 'a', 'nope', 'x')).toHaveLength(1);
    expect(f.server.fidCount).toBe(1);
    expect(errnoOf(() => f.g.getattr(1))).toBe(9);
  });

  it('fails with ENOENT if the first name does not exist', () => {
    expect(errnoOf(() => f.g.walk(0, 1, 'nope'))).toBe(2);
  });

  it('nwname 0 clones; newfid == fid moves the fid; "." stays', () => {
    expect(f.g.walk(0, 1)).toEqual([]);
    expect(f.g.getattr(1).qid).toEqual(f.rootQid);
    f.g.walk(1, 1, 'a', '.', 'b');
    expect(f.g.getattr(1).qid.path).toBe(lstatSync(join(f.root, 'a/b'), { bigint: true }).ino);
    expect(errnoOf(() => f.g.walk(0, 1))).toBe(22); // newfid in use
  });

  it('".." goes to the parent and never above the root', () => {
    const qids = f.g.walk(0, 1, 'a', '..', '..', '..');
    expect(qids.slice(1)).toEqual([f.rootQid, f.rootQid, f.rootQid]);
    expect(f.g.getattr(1).qid).toEqual(f.rootQid);
  });

  it('cannot walk from a file', () => {
    f.g.walk(0, 1, 'a', 'b', 'file');
    expect(errnoOf(() => f.g.walk(1, 2, 'x'))).toBe(20);
  });
});

describe('Tgetattr', () => {
  it('reports the host lstat values', () => {
    writeFileSync(join(f.root, 'f'), 'twelve bytes');
    f.g.walk(0, 1, 'f');
    const a = f.g.getattr(1);
    const st = lstatSync(join(f.root, 'f'), { bigint: true });
    expect(a.complete).toBe(true);
    expect(a.valid).toBe(0x7ffn);
    expect(a.mode).toBe(Number(st.mode));
    expect([a.uid, a.gid]).toEqual([Number(st.uid), Number(st.gid)]);
    expect([a.nlink, a.size, a.blocks]).toEqual([st.nlink, 12n, st.blocks]);
    expect(a.mtime).toEqual([st.mtimeNs / 1_000_000_000n, st.mtimeNs % 1_000_000_000n]);
    expect(a.qid).toEqual({ type: QT.file, version: 0, path: st.ino });
  });
});

describe('Tclunk, Tstatfs, locks', () => {
  it('clunk forgets the fid; clunking an unknown fid is EBADF', () => {
    f.g.walk(0, 1);
    f.g.clunk(1);
    expect(f.server.fidCount).toBe(1);
    expect(errnoOf(() => f.g.clunk(1))).toBe(9);
  });

  it('statfs reports the 9p magic and the host filesystem', () => {
    const s = f.g.statfs(0);
    expect(s.type).toBe(0x01021997);
    expect(s.namelen).toBe(255);
    expect(s.bsize).toBeGreaterThan(0);
    expect(s.blocks).toBeGreaterThan(0n);
    expect(s.bfree).toBeLessThanOrEqual(s.blocks);
  });

  it('Tlock succeeds; Tgetlock reports F_UNLCK with the rest echoed', () => {
    const lock = f.g.call(52, u32(0), u8(1), u32(0), u64(0), u64(10), u32(42), str('c'));
    expect(lock.u8()).toBe(0);
    const p = f.g.call(54, u32(0), u8(1), u64(5), u64(10), u32(42), str('client'));
    expect([p.u8(), p.u64(), p.u64(), p.u32(), p.str()]).toEqual([2, 5n, 10n, 42, 'client']);
  });
});

describe('constructor', () => {
  it('throws a clear Error for a missing root or a file root', () => {
    expect(() => new NinePServer({ root: join(f.base, 'missing') })).toThrow(
      /missing: no such folder$/,
    );
    writeFileSync(join(f.base, 'plain'), '');
    expect(() => new NinePServer({ root: join(f.base, 'plain') })).toThrow(/plain: not a folder$/);
  });

  it('counts requests, errors and bytes', () => {
    const before = { ...f.server.metrics };
    errnoOf(() => f.g.walk(0, 1, 'nope'));
    expect(f.server.metrics.requests).toBe(before.requests + 1);
    expect(f.server.metrics.errors).toBe(before.errors + 1);
    expect(NOFID).toBe(0xffffffff);
  });
});
