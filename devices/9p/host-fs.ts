/**
 * Confined host paths for a 9P share. A guest path is kept as a list of names under the share's
 * root; host paths are only ever formed here, from the root and names this module validated.
 * Every directory on the way to an entry is checked with lstat to be a real directory (not a
 * symlink) right before use, so a symlink the guest made – or one it swapped in under a fid's
 * path – is never followed on the host. All calls are synchronous: no other guest request runs
 * between a check and the use of the path.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { E, fail } from './errno.js';
import { QID_TYPE, type Qid } from './wire.js';

/** Path of an entry relative to the share root, as validated names ("" root = []). */
export type SharePath = readonly string[];

export type BigStats = fs.BigIntStats;

/** Rejects names that could leave their directory: "", ".", "..", or containing "/" or NUL. */
export function checkName(name: string): string {
  if (name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0')) {
    fail(E.EINVAL, `bad name ${JSON.stringify(name)}`);
  }
  if (Buffer.byteLength(name, 'utf8') > 255) fail(E.ENAMETOOLONG);
  return name;
}

export function qidOf(st: BigStats): Qid {
  const type = st.isDirectory() ? QID_TYPE.dir : st.isSymbolicLink() ? QID_TYPE.symlink : 0;
  return { type, version: 0, path: st.ino };
}

export function isUnder(path: SharePath, prefix: SharePath): boolean {
  return path.length >= prefix.length && prefix.every((n, i) => path[i] === n);
}

export class ShareFs {
  /** The root with symlinks resolved once, when the share is made (the host user chose it). */
  readonly root: string;

  constructor(root: string) {
    let st: fs.Stats;
    try {
      st = fs.statSync(root);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const why =
        code === 'ENOENT' ? 'no such folder' : code === 'EACCES' ? 'permission denied' : code;
      throw new Error(`shared folder ${root}: ${why ?? (err as Error).message}`);
    }
    if (!st.isDirectory()) throw new Error(`shared folder ${root}: not a folder`);
    this.root = fs.realpathSync(root);
  }

  /** Host path of `path`, having checked that every directory leading to it is a real one. */
  entry(path: SharePath): string {
    let host = this.root;
    for (let i = 0; i < path.length; i++) {
      if (i > 0) this.requireDir(host);
      host = join(host, path[i]);
    }
    return host;
  }

  /** Host path of a directory `path` (itself checked too: a real directory, not a symlink). */
  dir(path: SharePath): string {
    const host = this.entry(path);
    this.requireDir(host);
    return host;
  }

  /** Host path of `name` inside directory `dir`, with the name validated. */
  child(dir: SharePath, name: string): { path: SharePath; host: string } {
    checkName(name);
    return { path: [...dir, name], host: join(this.dir(dir), name) };
  }

  lstat(host: string): BigStats {
    return fs.lstatSync(host, { bigint: true });
  }

  private requireDir(host: string): void {
    const st = fs.lstatSync(host);
    if (!st.isDirectory()) fail(st.isSymbolicLink() ? E.ELOOP : E.ENOTDIR);
  }
}
