/**
 * A hostile guest trying to leave the share: "..", bad names, host symlinks (to files and to
 * directories outside), and stale fids whose path was swapped for a symlink. Nothing outside the
 * share may be read or written. (Malformed messages and bounds: protocol.test.ts, fuzz.test.ts.)
 */
import { lstatSync, mkdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { errnoOf, O, QT, setup, snapshot, str, u32, type Fixture } from './guest.js';

let f: Fixture;
let outsideBefore: string;
beforeEach(() => {
  f = setup();
  outsideBefore = snapshot(f.outside);
});
afterEach(() => {
  expect(snapshot(f.outside)).toBe(outsideBefore); // nothing outside was written
  f.cleanup();
});

const EINVAL = 22;
describe('escaping the root by names', () => {
  it('walking "../.." from the root stays at the root', () => {
    expect(f.g.walk(0, 1, '..', '..', '..')).toEqual([f.rootQid, f.rootQid, f.rootQid]);
    expect(f.g.getattr(1).qid).toEqual(f.rootQid);
    // The share's own name, seen from "above" the root, does not exist: still inside.
    expect(f.g.walk(0, 2, '..', 'share')).toHaveLength(1);
    // From the root, "../outside" is not the host's sibling directory: a partial walk.
    expect(f.g.walk(0, 3, '..', 'outside')).toHaveLength(1);
    expect(f.server.fidCount).toBe(2);
  });

  it('walk names with "/" or NUL are EINVAL', () => {
    expect(errnoOf(() => f.g.walk(0, 1, '../outside'))).toBe(EINVAL);
    expect(errnoOf(() => f.g.walk(0, 1, 'a/b'))).toBe(EINVAL);
    expect(errnoOf(() => f.g.walk(0, 1, 'a\0b'))).toBe(EINVAL);
    expect(errnoOf(() => f.g.walk(0, 1, ''))).toBe(EINVAL);
  });

  const badNames = ['', '.', '..', '../outside/x', 'a/b', '/abs', 'nul\0byte'];
  for (const bad of badNames) {
    it(`refuses the name ${JSON.stringify(bad)} in every create/rename/link op`, () => {
      writeFileSync(join(f.root, 'file'), 'x');
      f.g.walk(0, 1, 'file');
      f.g.walk(0, 2);
      const ops: (() => unknown)[] = [
        () => f.g.lcreate(2, bad),
        () => f.g.mkdir(0, bad),
        () => f.g.mknod(0, bad, 0o100644),
        () => f.g.symlink(0, bad, 'target'),
        () => f.g.link(0, 1, bad),
        () => f.g.rename(1, 0, bad),
        () => f.g.renameat(0, 'file', 0, bad),
        () => f.g.renameat(0, bad, 0, 'new'),
        () => f.g.unlinkat(0, bad),
        () => f.g.unlinkat(0, bad, 0x200),
      ];
      for (const op of ops) expect(errnoOf(op)).toBe(EINVAL);
      expect(readFileSync(join(f.root, 'file'), 'utf8')).toBe('x');
    });
  }

  it('names that are not UTF-8 are refused (EILSEQ)', () => {
    const bad = Buffer.from([0x66, 0xff, 0xfe]);
    expect(errnoOf(() => f.g.call(72, u32(0), str(bad), u32(0o755), u32(0)))).toBe(84);
  });
});

describe('host symlinks are never followed', () => {
  beforeEach(() => {
    symlinkSync(join(f.outside, 'secret'), join(f.root, 'to-file'));
    symlinkSync(f.outside, join(f.root, 'to-dir'));
  });

  it('a symlink to a file outside: walk gives a symlink qid, lopen is ELOOP', () => {
    const [q] = f.g.walk(0, 1, 'to-file');
    expect(q.type).toBe(QT.symlink);
    expect(q.path).toBe(lstatSync(join(f.root, 'to-file'), { bigint: true }).ino);
    expect(errnoOf(() => f.g.lopen(1, O.RDONLY))).toBe(40);
    expect(errnoOf(() => f.g.lopen(1, O.RDWR | O.TRUNC))).toBe(40);
    expect(f.g.getattr(1).qid.type).toBe(QT.symlink); // lstat, not stat
    expect(f.g.readlink(1)).toBe(join(f.outside, 'secret'));
    expect(f.server.metrics.bytes_read).toBe(0);
  });

  it('setattr on the symlink does not touch the file outside', () => {
    const st = statSync(join(f.outside, 'secret'));
    f.g.walk(0, 1, 'to-file');
    f.g.setattr(1, 1, { mode: 0o777 });
    expect(errnoOf(() => f.g.setattr(1, 8, { size: 0 }))).toBe(EINVAL);
    f.g.setattr(1, 0x10 | 0x20 | 0x80 | 0x100, { atime: [1000, 0], mtime: [1000, 0] });
    const after = statSync(join(f.outside, 'secret'));
    expect([after.mode, after.size, after.mtimeMs]).toEqual([st.mode, st.size, st.mtimeMs]);
    expect(lstatSync(join(f.root, 'to-file')).mtimeMs).toBe(1_000_000); // lutimes on the link
  });

  it('Tlcreate of an existing symlink name does not open its target', () => {
    f.g.walk(0, 1);
    expect(errnoOf(() => f.g.lcreate(1, 'to-file', O.RDWR | O.TRUNC))).toBe(40);
    f.g.walk(0, 2);
    expect(errnoOf(() => f.g.lcreate(2, 'to-file', O.RDWR | O.EXCL))).toBe(17);
  });

  it('Tlink of a symlink is refused (some hosts would link its target)', () => {
    f.g.walk(0, 1, 'to-file');
    expect(errnoOf(() => f.g.link(0, 1, 'hard'))).toBe(1);
  });

  it('a symlink to a directory outside cannot be walked, created or listed through', () => {
    expect(f.g.walk(0, 1, 'to-dir', 'secret')).toHaveLength(1); // stops at the link
    expect(f.server.fidCount).toBe(1);
    f.g.walk(0, 2, 'to-dir');
    expect(errnoOf(() => f.g.walk(2, 3, 'secret'))).toBe(40);
    expect(errnoOf(() => f.g.lopen(2, O.RDONLY))).toBe(40);
    expect(errnoOf(() => f.g.lcreate(2, 'planted'))).toBe(40);
    expect(errnoOf(() => f.g.mkdir(2, 'planted'))).toBe(40);
    expect(errnoOf(() => f.g.symlink(2, 'planted', 'x'))).toBe(40);
    expect(errnoOf(() => f.g.unlinkat(2, 'secret'))).toBe(40);
    expect(errnoOf(() => f.g.renameat(2, 'secret', 0, 'stolen'))).toBe(40);
  });

  it('a guest-made symlink swapped in under a stale directory fid is not followed', () => {
    mkdirSync(join(f.root, 'd'));
    f.g.walk(0, 1, 'd');
    f.g.walk(0, 2, 'd');
    f.g.lopen(2, O.RDONLY);
    f.g.unlinkat(0, 'd', 0x200);
    f.g.symlink(0, 'd', f.outside); // the guest can write any target text
    expect(errnoOf(() => f.g.walk(1, 3, 'secret'))).toBe(40);
    expect(errnoOf(() => f.g.lcreate(1, 'planted'))).toBe(40);
    expect(errnoOf(() => f.g.readdir(2, 0, 4096))).toBe(40);
  });

  it('a fid below a directory swapped for a symlink cannot reach through it', () => {
    mkdirSync(join(f.root, 'e'));
    writeFileSync(join(f.root, 'e/secret'), 'inside');
    f.g.walk(0, 4, 'e', 'secret'); // same name as the file outside
    f.g.walk(0, 5, 'e');
    f.g.unlinkat(5, 'secret');
    f.g.unlinkat(0, 'e', 0x200);
    f.g.symlink(0, 'e', f.outside);
    expect(errnoOf(() => f.g.lopen(4, O.RDWR))).toBe(40);
    expect(errnoOf(() => f.g.getattr(4))).toBe(40);
    expect(errnoOf(() => f.g.setattr(4, 8, { size: 0 }))).toBe(40);
    expect(errnoOf(() => f.g.setattr(4, 1, { mode: 0o777 }))).toBe(40);
    expect(errnoOf(() => f.g.rename(4, 0, 'stolen'))).toBe(40);
    expect(errnoOf(() => f.g.link(0, 4, 'stolen'))).toBe(40);
    expect(errnoOf(() => f.g.remove(4))).toBe(40);
    expect(f.server.metrics.bytes_read).toBe(0);
  });
});
