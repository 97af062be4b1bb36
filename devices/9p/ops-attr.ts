/**
 * 9P attribute handlers: Tgetattr (the host's lstat, or fstat for an open file), Tsetattr
 * (mode without setuid, size, times; ownership is left as it is) and Tstatfs.
 */
import * as fs from 'node:fs';
import { E, fail } from './errno.js';
import type { Fid } from './fid-table.js';
import { qidOf, type BigStats } from './host-fs.js';
import { GETATTR_BASIC, SETATTR, V9FS_MAGIC } from './messages.js';
import { guestMode, mustWrite, safeNumber, type Handler, type Session } from './session.js';

const NS = 1_000_000_000n;

/** The fid's host fd if it is an open file (works after the name was unlinked), else its path. */
function target(
  s: Session,
  f: Fid,
): { fd: number; host?: undefined } | { fd?: undefined; host: string } {
  if (f.open?.kind === 'file') return { fd: f.open.fd };
  return { host: s.share.entry(f.path) };
}

function stat(t: ReturnType<typeof target>): BigStats {
  return t.fd !== undefined
    ? fs.fstatSync(t.fd, { bigint: true })
    : fs.lstatSync(t.host, { bigint: true });
}

export const getattr: Handler = (s, r, w) => {
  const f = s.fids.get(r.u32());
  r.u64(); // request_mask: the basic set is always answered
  const st = stat(target(s, f));
  w.u64(GETATTR_BASIC).qid(qidOf(st));
  w.u32(Number(st.mode)).u32(Number(st.uid)).u32(Number(st.gid));
  w.u64(st.nlink).u64(st.rdev).u64(st.size).u64(st.blksize).u64(st.blocks);
  for (const ns of [st.atimeNs, st.mtimeNs, st.ctimeNs]) w.u64(ns / NS).u64(ns % NS);
  w.u64(0).u64(0); // btime (not in the basic set)
  w.u64(0).u64(0); // gen, data_version
};

/** A time from Tsetattr: the given one with *_SET, else now. Seconds, as Node's utimes wants. */
function newTime(set: boolean, sec: bigint, nsec: bigint): number {
  if (!set) return Date.now() / 1000;
  if (nsec >= NS) fail(E.EINVAL, 'nanoseconds out of range');
  return Number(BigInt.asIntN(64, sec)) + Number(nsec) / 1e9;
}

export const setattr: Handler = (s, r) => {
  const f = s.fids.get(r.u32());
  const valid = r.u32();
  const mode = r.u32();
  r.u32(); // uid, gid: ownership is left as it is (below)
  r.u32();
  const size = r.u64();
  const [aSec, aNsec, mSec, mNsec] = [r.u64(), r.u64(), r.u64(), r.u64()];
  mustWrite(s);
  const t = target(s, f);
  const st = stat(t);
  const isLink = st.isSymbolicLink();

  // A symlink's own mode cannot be set on Linux and is never followed here: skipped.
  if (valid & SETATTR.mode && !isLink) {
    const m = guestMode(mode, st.isDirectory());
    if (t.fd !== undefined) fs.fchmodSync(t.fd, m);
    else fs.chmodSync(t.host, m); // not a symlink (lstat above, nothing ran since)
  }

  // Ownership is not changed: the files stay the host user's (like QEMU's security_model=none,
  // which tries and ignores the failure; trying would let a guest give files away to other host
  // users when wasmvisor runs as root). A chown the guest asks for succeeds without effect.

  if (valid & SETATTR.size) {
    const len = safeNumber(size);
    if (st.isDirectory()) fail(E.EISDIR);
    if (!st.isFile()) fail(E.EINVAL, 'only regular files have a size to set');
    if (f.open?.kind === 'file' && f.open.writable) fs.ftruncateSync(f.open.fd, len);
    else truncateByPath(s.share.entry(f.path), len);
  }

  if (valid & (SETATTR.atime | SETATTR.mtime)) {
    const atime =
      valid & SETATTR.atime
        ? newTime((valid & SETATTR.atimeSet) !== 0, aSec, aNsec)
        : Number(st.atimeNs) / 1e9;
    const mtime =
      valid & SETATTR.mtime
        ? newTime((valid & SETATTR.mtimeSet) !== 0, mSec, mNsec)
        : Number(st.mtimeNs) / 1e9;
    if (t.fd !== undefined) fs.futimesSync(t.fd, atime, mtime);
    else fs.lutimesSync(t.host, atime, mtime);
  }
  // SETATTR.ctime: the host updates ctime itself on any change.
};

/** truncate(2) without following a symlink: open O_NOFOLLOW, check it is a file, ftruncate. */
function truncateByPath(host: string, len: number): void {
  const C = fs.constants;
  const fd = fs.openSync(host, C.O_WRONLY | C.O_NOFOLLOW | C.O_NONBLOCK);
  try {
    if (!fs.fstatSync(fd).isFile()) fail(E.EINVAL);
    fs.ftruncateSync(fd, len);
  } finally {
    fs.closeSync(fd);
  }
}

export const statfs: Handler = (s, r, w) => {
  s.fids.get(r.u32());
  const st = fs.statfsSync(s.share.root, { bigint: true });
  w.u32(V9FS_MAGIC).u32(Number(st.bsize));
  w.u64(st.blocks).u64(st.bfree).u64(st.bavail).u64(st.files).u64(st.ffree);
  w.u64(0); // fsid
  w.u32(255); // namelen
};
