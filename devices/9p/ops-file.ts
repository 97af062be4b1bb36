/**
 * 9P handlers for open files: Tlopen, Tlcreate, Tread, Twrite, Tfsync, Tlock, Tgetlock.
 * Host files are opened with O_NOFOLLOW|O_NONBLOCK and checked with fstat afterwards, so only
 * regular files (or directories, which serve Treaddir and hold no host fd) are ever opened.
 */
import * as fs from 'node:fs';
import { E, fail } from './errno.js';
import type { Fid } from './fid-table.js';
import { qidOf } from './host-fs.js';
import { hostOpenMode, type OpenMode } from './open-flags.js';
import {
  guestMode,
  ioBudget,
  mustWrite,
  safeNumber,
  type Handler,
  type Session,
} from './session.js';

/** Rlopen/Rlcreate iounit: 0 lets the client use msize - P9_IOHDRSZ. */
const IOUNIT = 0;

function unopened(s: Session, fid: number): Fid {
  const f = s.fids.get(fid);
  if (f.open) fail(E.EBADF, 'fid already open');
  return f;
}

/**
 * Opens `host` and keeps the fd on `f` if it is a regular file; FIFOs, devices and sockets are
 * refused with ENXIO (a guest must not make the VM wait on a host pipe or touch host devices).
 */
function openRegular(s: Session, f: Fid, host: string, mode: OpenMode, perm?: number) {
  s.fids.checkCanOpen();
  const fd = fs.openSync(host, mode.host, perm);
  let st: fs.BigIntStats;
  try {
    st = fs.fstatSync(fd, { bigint: true });
    if (!st.isFile()) fail(st.isDirectory() ? E.EISDIR : E.ENXIO, 'not a regular file');
  } catch (err) {
    fs.closeSync(fd);
    throw err;
  }
  s.fids.setOpen(f, { kind: 'file', fd, readable: mode.readable, writable: mode.writable });
  return qidOf(st);
}

export const lopen: Handler = (s, r, w) => {
  const f = unopened(s, r.u32());
  const mode = hostOpenMode(r.u32(), false);
  if (mode.changes) mustWrite(s);
  const host = s.share.entry(f.path);
  const st = s.share.lstat(host);
  if (st.isSymbolicLink()) fail(E.ELOOP, 'symlinks are not opened on the host');
  let qid;
  if (st.isDirectory()) {
    if (mode.writable) fail(E.EISDIR);
    s.fids.setOpen(f, { kind: 'dir', names: null });
    qid = qidOf(st);
  } else {
    if (mode.directory) fail(E.ENOTDIR);
    qid = openRegular(s, f, host, mode);
  }
  w.qid(qid).u32(IOUNIT);
};

export const lcreate: Handler = (s, r, w) => {
  const f = unopened(s, r.u32());
  const name = r.str();
  const flags = r.u32();
  const perm = guestMode(r.u32(), false);
  r.u32(); // gid: ownership is the host user's
  mustWrite(s);
  const child = s.share.child(f.path, name);
  const qid = openRegular(s, f, child.host, hostOpenMode(flags, true), perm);
  f.path = child.path;
  w.qid(qid).u32(IOUNIT);
};

function openFile(s: Session, fid: number) {
  const open = s.fids.get(fid).open;
  if (!open) fail(E.EBADF, 'fid not open');
  if (open.kind !== 'file') fail(E.EISDIR);
  return open;
}

export const read: Handler = (s, r, w, maxReply) => {
  const file = openFile(s, r.u32());
  const offset = safeNumber(r.u64());
  const count = r.u32();
  if (!file.readable) fail(E.EBADF, 'not open for reading');
  const want = ioBudget(s, count, maxReply);
  const countAt = w.length;
  w.u32(0);
  // Straight into the reply: no buffer in between.
  const got = want > 0 ? fs.readSync(file.fd, w.reserve(want), 0, want, offset) : 0;
  w.unwrite(want - got).patchU32(countAt, got);
  s.metrics.bytes_read += got;
};

export const write: Handler = (s, r, w) => {
  const file = openFile(s, r.u32());
  const offset = safeNumber(r.u64());
  const data = r.bytes(r.u32());
  mustWrite(s);
  if (!file.writable) fail(E.EBADF, 'not open for writing');
  const put = fs.writeSync(file.fd, data, 0, data.length, offset);
  s.metrics.bytes_written += put;
  w.u32(put);
};

export const fsync: Handler = (s, r) => {
  const open = s.fids.get(r.u32()).open;
  const datasync = r.u32() !== 0;
  if (!open) fail(E.EBADF, 'fid not open');
  if (open.kind === 'file') (datasync ? fs.fdatasyncSync : fs.fsyncSync)(open.fd);
};

/** Tlock: locks are the guest's business (one guest per share); always granted. */
export const lock: Handler = (s, r, w) => {
  s.fids.get(r.u32());
  r.u8(); // type
  r.u32(); // flags
  r.u64(); // start
  r.u64(); // length
  r.u32(); // proc_id
  r.str(); // client_id
  w.u8(0); // P9_LOCK_SUCCESS
};

/** Tgetlock: nothing else holds a lock, so the range is reported unlocked. */
export const getlock: Handler = (s, r, w) => {
  s.fids.get(r.u32());
  r.u8(); // type
  const start = r.u64();
  const length = r.u64();
  const procId = r.u32();
  const clientId = r.str();
  w.u8(2).u64(start).u64(length).u32(procId).str(clientId); // F_UNLCK
};
