/**
 * 9P file and directory operations against a temp share: create/write/read, readdir (with
 * paging), mkdir, rename/renameat with fids following, unlinkat, remove, symlink/readlink,
 * link, mknod, setattr and fsync – each checked on the host tree too.
 */
import {
  existsSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  readlinkSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { errnoOf, O, QT, setup, type Fixture } from './guest.js';

let f: Fixture;
beforeEach(() => {
  f = setup();
});
afterEach(() => f.cleanup());

const host = (rel: string) => join(f.root, rel);

describe('create, write, read', () => {
  it('Tlcreate + Twrite + Tread round-trip, and the host file has the bytes', () => {
    f.g.walk(0, 1);
    const qid = f.g.lcreate(1, 'hello.txt', O.RDWR, 0o640);
    expect(qid.type).toBe(QT.file);
    expect(qid.path).toBe(lstatSync(host('hello.txt'), { bigint: true }).ino);
    expect(f.g.write(1, 0, 'hello, ')).toBe(7);
    expect(f.g.write(1, 7, 'world')).toBe(5);
    expect(f.g.read(1, 0, 100).toString()).toBe('hello, world');
    expect(f.g.read(1, 7, 3).toString()).toBe('wor');
    expect(f.g.read(1, 100, 10).length).toBe(0);
    expect(readFileSync(host('hello.txt'), 'utf8')).toBe('hello, world');
    expect(statSync(host('hello.txt')).mode & 0o777).toBe(0o640);
    expect(f.server.metrics.bytes_written).toBe(12);
    expect(f.server.metrics.bytes_read).toBe(15);
    f.g.clunk(1);
    expect(f.g.getattr(0).qid.type).toBe(QT.dir); // fid 0 still the root
  });

  it('Tlcreate with O_EXCL on an existing name is EEXIST', () => {
    writeFileSync(host('x'), 'old');
    f.g.walk(0, 1);
    expect(errnoOf(() => f.g.lcreate(1, 'x', O.RDWR | O.EXCL))).toBe(17);
  });

  it('Tlopen honours access mode, O_TRUNC and O_APPEND', () => {
    writeFileSync(host('f'), 'abcdef');
    f.g.walk(0, 1, 'f');
    f.g.lopen(1, O.RDONLY);
    expect(errnoOf(() => f.g.write(1, 0, 'x'))).toBe(9);
    f.g.walk(0, 2, 'f');
    f.g.lopen(2, O.WRONLY);
    expect(errnoOf(() => f.g.read(2, 0, 1))).toBe(9);
    f.g.walk(0, 3, 'f');
    f.g.lopen(3, O.WRONLY | O.TRUNC);
    expect(readFileSync(host('f'), 'utf8')).toBe('');
    f.g.walk(0, 4, 'f');
    f.g.lopen(4, O.WRONLY | O.APPEND);
    f.g.write(4, 0, 'one');
    f.g.write(4, 0, 'two');
    expect(readFileSync(host('f'), 'utf8')).toBe('onetwo');
    expect(errnoOf(() => f.g.lopen(4, O.RDONLY))).toBe(9); // already open
  });

  it('Tlopen of a directory for writing is EISDIR; O_DIRECTORY on a file is ENOTDIR', () => {
    writeFileSync(host('f'), '');
    f.g.walk(0, 1);
    expect(errnoOf(() => f.g.lopen(1, O.RDWR))).toBe(21);
    f.g.walk(0, 2, 'f');
    expect(errnoOf(() => f.g.lopen(2, O.DIRECTORY))).toBe(20);
  });

  it('Tread of a directory is EISDIR; of an unopened fid EBADF', () => {
    f.g.walk(0, 1);
    f.g.lopen(1, O.RDONLY);
    expect(errnoOf(() => f.g.read(1, 0, 10))).toBe(21);
    expect(errnoOf(() => f.g.read(0, 0, 10))).toBe(9);
  });

  it('an open file still reads, getattrs and truncates after its name is unlinked', () => {
    writeFileSync(host('f'), 'data');
    f.g.walk(0, 1, 'f');
    f.g.lopen(1, O.RDWR);
    f.g.unlinkat(0, 'f');
    expect(f.g.read(1, 0, 10).toString()).toBe('data');
    f.g.setattr(1, 8, { size: 2 });
    expect(f.g.getattr(1).size).toBe(2n);
  });

  it('Tfsync works on open files and directories, EBADF when not open', () => {
    f.g.walk(0, 1);
    f.g.lcreate(1, 'f');
    f.g.fsync(1);
    f.g.walk(0, 2);
    f.g.lopen(2, O.RDONLY);
    f.g.fsync(2);
    expect(errnoOf(() => f.g.fsync(0))).toBe(9);
  });
});

describe('directories', () => {
  it('Tmkdir makes a host directory; Treaddir lists it with "." and ".."', () => {
    const q = f.g.mkdir(0, 'sub', 0o750);
    expect(q.type).toBe(QT.dir);
    expect(statSync(host('sub')).isDirectory()).toBe(true);
    expect(statSync(host('sub')).mode & 0o777).toBe(0o750);
    writeFileSync(host('file'), 'x');
    f.g.walk(0, 1);
    f.g.lopen(1, O.RDONLY);
    const entries = f.g.readdirAll(1);
    expect(entries.map((e) => e.name).sort()).toEqual(['.', '..', 'file', 'sub']);
    const byName = new Map(entries.map((e) => [e.name, e]));
    expect(byName.get('sub')?.type).toBe(4);
    expect(byName.get('file')?.type).toBe(8);
    expect(byName.get('sub')?.qid.path).toBe(q.path);
    expect(byName.get('..')?.qid).toEqual(f.rootQid); // ".." of the root is the root
  });

  it('Treaddir paging with small counts returns every entry exactly once', () => {
    const names = Array.from({ length: 150 }, (_, i) => `entry-${i}-${'x'.repeat(i % 40)}`);
    for (const n of names) writeFileSync(host(n), '');
    f.g.walk(0, 1);
    f.g.lopen(1, O.RDONLY);
    for (const count of [80, 100, 333, 8192]) {
      const got = f.g.readdirAll(1, count).map((e) => e.name);
      expect(got).toHaveLength(names.length + 2);
      expect(got.sort()).toEqual(['.', '..', ...names].sort());
    }
    // A count too small for the next entry is an error, not a false end of directory.
    expect(errnoOf(() => f.g.readdir(1, 0, 10))).toBe(22);
  });

  it('Treaddir needs a directory opened for reading', () => {
    expect(errnoOf(() => f.g.readdir(0, 0, 1000))).toBe(9);
    writeFileSync(host('f'), '');
    f.g.walk(0, 1, 'f');
    f.g.lopen(1, O.RDONLY);
    expect(errnoOf(() => f.g.readdir(1, 0, 1000))).toBe(20);
  });

  it('Tunlinkat removes a file, and a directory only with AT_REMOVEDIR', () => {
    writeFileSync(host('f'), '');
    mkdirSync(host('d'));
    f.g.unlinkat(0, 'f');
    expect(existsSync(host('f'))).toBe(false);
    expect(errnoOf(() => f.g.unlinkat(0, 'd'))).not.toBe(0);
    expect(existsSync(host('d'))).toBe(true);
    f.g.unlinkat(0, 'd', 0x200);
    expect(existsSync(host('d'))).toBe(false);
    expect(errnoOf(() => f.g.unlinkat(0, 'd', 0x200))).toBe(2);
  });

  it('Tunlinkat of a non-empty directory is ENOTEMPTY', () => {
    mkdirSync(host('d'));
    writeFileSync(host('d/f'), '');
    expect(errnoOf(() => f.g.unlinkat(0, 'd', 0x200))).toBe(39);
  });

  it('Tremove removes the entry and clunks the fid (even on failure)', () => {
    writeFileSync(host('f'), '');
    f.g.walk(0, 1, 'f');
    f.g.remove(1);
    expect(existsSync(host('f'))).toBe(false);
    expect(f.server.fidCount).toBe(1);
    f.g.walk(0, 2);
    expect(errnoOf(() => f.g.remove(2))).toBe(16); // the root
    expect(f.server.fidCount).toBe(1);
  });
});

describe('rename', () => {
  beforeEach(() => {
    mkdirSync(host('dir/inner'), { recursive: true });
    writeFileSync(host('dir/inner/file'), 'content');
    mkdirSync(host('dest'));
  });

  it('Trename moves the entry and fids under it follow', () => {
    f.g.walk(0, 1, 'dir');
    f.g.walk(0, 2, 'dir', 'inner', 'file');
    f.g.walk(0, 3, 'dest');
    f.g.rename(1, 3, 'moved');
    expect(existsSync(host('dir'))).toBe(false);
    expect(readFileSync(host('dest/moved/inner/file'), 'utf8')).toBe('content');
    f.g.lopen(2, O.RDONLY); // opened by its (updated) path
    expect(f.g.read(2, 0, 100).toString()).toBe('content');
    expect(f.g.walk(1, 4, 'inner')).toHaveLength(1);
  });

  it('Trenameat moves by names and fids under it follow', () => {
    f.g.walk(0, 2, 'dir', 'inner');
    f.g.walk(0, 3, 'dest');
    f.g.renameat(0, 'dir', 3, 'renamed');
    expect(readFileSync(host('dest/renamed/inner/file'), 'utf8')).toBe('content');
    f.g.walk(2, 4, 'file');
    f.g.lopen(4, O.RDONLY);
    expect(f.g.read(4, 0, 100).toString()).toBe('content');
  });

  it('a sibling with the same prefix does not follow', () => {
    mkdirSync(host('dir2'));
    writeFileSync(host('dir2/x'), 'x2');
    f.g.walk(0, 1, 'dir2', 'x');
    f.g.renameat(0, 'dir', 0, 'gone');
    f.g.lopen(1, O.RDONLY);
    expect(f.g.read(1, 0, 10).toString()).toBe('x2');
  });

  it('renaming the root is EBUSY', () => {
    expect(errnoOf(() => f.g.rename(0, 0, 'x'))).toBe(16);
  });
});

describe('symlink, link, mknod', () => {
  it('Tsymlink stores the target text as given; Treadlink returns it', () => {
    const q = f.g.symlink(0, 'ln', '../../etc/passwd');
    expect(q.type).toBe(QT.symlink);
    expect(readlinkSync(host('ln'))).toBe('../../etc/passwd');
    f.g.walk(0, 1, 'ln');
    expect(f.g.readlink(1)).toBe('../../etc/passwd');
    expect(f.g.getattr(1).qid.type).toBe(QT.symlink);
    expect(errnoOf(() => f.g.readlink(0))).toBe(22);
    expect(errnoOf(() => f.g.symlink(0, 'empty', ''))).toBe(22);
  });

  it('Tlink makes a hard link inside the share', () => {
    writeFileSync(host('f'), 'linked');
    f.g.walk(0, 1, 'f');
    f.g.link(0, 1, 'g');
    expect(readFileSync(host('g'), 'utf8')).toBe('linked');
    expect(statSync(host('f')).nlink).toBe(2);
    expect(errnoOf(() => f.g.link(0, 0, 'rootlink'))).toBe(1); // directories: EPERM
  });

  it('Tmknod makes regular files and refuses FIFOs and devices with EPERM', () => {
    const q = f.g.mknod(0, 'reg', 0o100600);
    expect(q.type).toBe(QT.file);
    expect(statSync(host('reg')).isFile()).toBe(true);
    expect(statSync(host('reg')).mode & 0o777).toBe(0o600);
    expect(errnoOf(() => f.g.mknod(0, 'fifo', 0o010644))).toBe(1);
    expect(errnoOf(() => f.g.mknod(0, 'chr', 0o020644))).toBe(1);
    expect(existsSync(host('fifo')) || existsSync(host('chr'))).toBe(false);
  });
});

describe('Tsetattr', () => {
  beforeEach(() => writeFileSync(host('f'), '0123456789'));

  it('sets size', () => {
    f.g.walk(0, 1, 'f');
    f.g.setattr(1, 8, { size: 4 });
    expect(readFileSync(host('f'), 'utf8')).toBe('0123');
    f.g.setattr(1, 8, { size: 6 });
    expect(statSync(host('f')).size).toBe(6);
    expect(errnoOf(() => f.g.setattr(0, 8, { size: 0 }))).toBe(21);
  });

  it('sets mode', () => {
    f.g.walk(0, 1, 'f');
    f.g.setattr(1, 1, { mode: 0o100600 });
    expect(statSync(host('f')).mode & 0o7777).toBe(0o600);
  });

  it('sets times to given values with *_SET, and to now without', () => {
    f.g.walk(0, 1, 'f');
    f.g.setattr(1, 0x10 | 0x20 | 0x80 | 0x100, {
      atime: [1_000_000_000, 500_000_000],
      mtime: [1_200_000_000, 0],
    });
    let st = statSync(host('f'));
    expect(st.mtimeMs).toBe(1_200_000_000_000);
    expect(st.atimeMs).toBe(1_000_000_000_500);
    f.g.setattr(1, 0x20, {}); // MTIME without MTIME_SET: now; atime kept
    st = statSync(host('f'));
    expect(Math.abs(st.mtimeMs - Date.now())).toBeLessThan(60_000);
    expect(st.atimeMs).toBe(1_000_000_000_500);
    const a = f.g.getattr(1);
    expect(a.atime).toEqual([1_000_000_000n, 500_000_000n]);
  });

  it('leaves ownership as it is: a chown succeeds without effect (even where it could work)', () => {
    f.g.walk(0, 1, 'f');
    const st = statSync(host('f'));
    f.g.setattr(1, 2 | 4, { uid: 12345, gid: 54321 });
    const after = statSync(host('f'));
    expect([after.uid, after.gid]).toEqual([st.uid, st.gid]);
  });

  it('never makes a setuid file, and setgid only on a directory', () => {
    f.g.walk(0, 1, 'f');
    f.g.setattr(1, 1, { mode: 0o6755 });
    expect(statSync(host('f')).mode & 0o7777).toBe(0o755);
    f.g.walk(0, 2);
    f.g.lcreate(2, 'new', O.RDWR | O.CREAT, 0o4700);
    expect(statSync(host('new')).mode & 0o7000).toBe(0);
    f.g.mkdir(0, 'd', 0o2775);
    f.g.walk(0, 3, 'd');
    f.g.setattr(3, 1, { mode: 0o6775 });
    expect(statSync(host('d')).mode & 0o7777).toBe(0o2775);
    f.g.mknod(0, 'n', 0o104755);
    expect(statSync(host('n')).mode & 0o7000).toBe(0);
  });
});
