/**
 * 9P handlers that read or change directories: Treaddir, Tmkdir, Tmknod, Tsymlink, Treadlink,
 * Tlink, Trename, Trenameat, Tunlinkat, Tremove. Every new or removed name goes through
 * `ShareFs.child`, so it is one validated name inside a real directory of the share.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { E, fail } from './errno.js';
import { qidOf, type BigStats, type SharePath } from './host-fs.js';
import { AT_REMOVEDIR } from './messages.js';
import { guestMode, ioBudget, mustWrite, type Handler, type Session } from './session.js';
import { QID_SIZE, strSize } from './wire.js';

/** Linux DT_* values for Rreaddir's type byte. */
function direntType(st: BigStats): number {
  if (st.isDirectory()) return 4;
  if (st.isFile()) return 8;
  if (st.isSymbolicLink()) return 10;
  if (st.isFIFO()) return 1;
  if (st.isCharacterDevice()) return 2;
  if (st.isBlockDevice()) return 6;
  if (st.isSocket()) return 12;
  return 0;
}

const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const PATH_MAX = 4096;

/**
 * Treaddir: entries qid[13] offset[8] type[1] name[s]. An entry's offset is its index + 1 in a
 * listing taken when the guest reads from offset 0 (and kept on the fid), so paging with any
 * count returns each entry once. Entries gone since the listing are skipped.
 */
export const readdir: Handler = (s, r, w, maxReply) => {
  const { open, path } = s.fids.get(r.u32());
  const offset = r.u64();
  const budget = ioBudget(s, r.u32(), maxReply);
  if (!open) fail(E.EBADF, 'directory not open');
  if (open.kind !== 'dir') fail(E.ENOTDIR);
  const dir = s.share.dir(path);
  if (offset === 0n || !open.names) open.names = ['.', '..', ...fs.readdirSync(dir)];
  const names = open.names;

  const entries = new Uint8Array(budget);
  const out = new DataView(entries.buffer);
  let used = 0;
  let i = offset > BigInt(names.length) ? names.length : Number(offset);
  for (; i < names.length; i++) {
    const name = names[i];
    let st: BigStats;
    try {
      // Host names from readdir are single names already; "." and ".." are ours.
      const host =
        name === '.' ? dir : name === '..' ? s.share.dir(path.slice(0, -1)) : join(dir, name);
      st = s.share.lstat(host);
    } catch {
      continue; // removed (or renamed) since the listing
    }
    const nameBytes = Buffer.from(name, 'utf8');
    const size = QID_SIZE + 8 + 1 + strSize(name);
    if (used + size > budget) break;
    const q = qidOf(st);
    out.setUint8(used, q.type);
    out.setUint32(used + 1, q.version, true);
    out.setBigUint64(used + 5, q.path, true);
    out.setBigUint64(used + 13, BigInt(i + 1), true);
    out.setUint8(used + 21, direntType(st));
    out.setUint16(used + 22, nameBytes.length, true);
    entries.set(nameBytes, used + 24);
    used += size;
  }
  if (used === 0 && i < names.length) fail(E.EINVAL, 'reply too small for the next entry');
  w.u32(used).bytes(entries.subarray(0, used));
};

/** Answers with the qid of the entry just made. */
function replyQid(s: Session, host: string, w: Parameters<Handler>[2]): void {
  w.qid(qidOf(s.share.lstat(host)));
}

export const mkdir: Handler = (s, r, w) => {
  const dir = s.fids.get(r.u32()).path;
  const name = r.str();
  const mode = guestMode(r.u32(), true);
  r.u32(); // gid
  mustWrite(s);
  const { host } = s.share.child(dir, name);
  fs.mkdirSync(host, { mode });
  replyQid(s, host, w);
};

/**
 * Tmknod makes regular files only (an empty file, like mknod(2) with S_IFREG). FIFOs, sockets
 * and device nodes are refused with EPERM: Node cannot make FIFOs, and the share must never
 * hold host device nodes.
 */
export const mknod: Handler = (s, r, w) => {
  const dir = s.fids.get(r.u32()).path;
  const name = r.str();
  const mode = r.u32();
  r.u32(); // major
  r.u32(); // minor
  r.u32(); // gid
  mustWrite(s);
  const type = mode & S_IFMT;
  if (type !== 0 && type !== S_IFREG) fail(E.EPERM, 'only regular files can be made');
  const { host } = s.share.child(dir, name);
  const C = fs.constants;
  const flags = C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW | C.O_NONBLOCK;
  fs.closeSync(fs.openSync(host, flags, guestMode(mode, false)));
  replyQid(s, host, w);
};

/** Tsymlink stores the target text as given; only the guest ever resolves it. */
export const symlink: Handler = (s, r, w) => {
  const dir = s.fids.get(r.u32()).path;
  const name = r.str();
  const target = r.str();
  r.u32(); // gid
  mustWrite(s);
  if (target === '' || target.includes('\0')) fail(E.EINVAL, 'bad symlink target');
  if (Buffer.byteLength(target, 'utf8') >= PATH_MAX) fail(E.ENAMETOOLONG);
  const { host } = s.share.child(dir, name);
  fs.symlinkSync(target, host);
  replyQid(s, host, w);
};

export const readlink: Handler = (s, r, w) => {
  const { path } = s.fids.get(r.u32());
  w.str(fs.readlinkSync(s.share.entry(path), 'utf8'));
};

/** Tlink(dfid, fid, name): both are share fids. Symlinks are not hard-linked (some hosts' link(2) would follow them). */
export const link: Handler = (s, r) => {
  const dir = s.fids.get(r.u32()).path;
  const target = s.fids.get(r.u32()).path;
  const name = r.str();
  mustWrite(s);
  const from = s.share.entry(target);
  const st = s.share.lstat(from);
  if (st.isDirectory() || st.isSymbolicLink()) fail(E.EPERM, 'cannot hard-link this');
  fs.linkSync(from, s.share.child(dir, name).host);
};

/** Renames `from` to `to` on the host; fids at or under `from` follow it. */
function move(s: Session, from: SharePath, to: { path: SharePath; host: string }): void {
  if (from.length === 0) fail(E.EBUSY, 'cannot rename the root');
  fs.renameSync(s.share.entry(from), to.host);
  s.fids.moved(from, to.path);
}

export const rename: Handler = (s, r) => {
  const from = s.fids.get(r.u32()).path;
  const dir = s.fids.get(r.u32()).path;
  const name = r.str();
  mustWrite(s);
  move(s, from, s.share.child(dir, name));
};

export const renameat: Handler = (s, r) => {
  const oldDir = s.fids.get(r.u32()).path;
  const oldName = r.str();
  const newDir = s.fids.get(r.u32()).path;
  const newName = r.str();
  mustWrite(s);
  const from = s.share.child(oldDir, oldName).path;
  move(s, from, s.share.child(newDir, newName));
};

export const unlinkat: Handler = (s, r) => {
  const dir = s.fids.get(r.u32()).path;
  const name = r.str();
  const flags = r.u32();
  mustWrite(s);
  const { host } = s.share.child(dir, name);
  if (flags & AT_REMOVEDIR) fs.rmdirSync(host);
  else fs.unlinkSync(host);
};

/** Tremove: removes the fid's file or empty directory; the fid is clunked either way. */
export const remove: Handler = (s, r) => {
  const fid = r.u32();
  const { path } = s.fids.get(fid);
  try {
    mustWrite(s);
    if (path.length === 0) fail(E.EBUSY, 'cannot remove the root');
    const host = s.share.entry(path);
    if (s.share.lstat(host).isDirectory()) fs.rmdirSync(host);
    else fs.unlinkSync(host);
  } finally {
    s.fids.remove(fid);
  }
};
