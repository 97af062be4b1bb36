/**
 * 9P session handlers: Tversion, Tauth, Tattach, Tflush, Twalk, Tclunk, and the xattr
 * requests this server does not support.
 */
import { E, fail } from './errno.js';
import { qidOf, type SharePath } from './host-fs.js';
import { MAXWELEM, VERSION_9P2000_L } from './messages.js';
import type { Handler, Session } from './session.js';
import { HEADER_SIZE, QID_SIZE, type Qid } from './wire.js';

/** Smallest msize that leaves room for any fixed-size reply and some data. */
export const MIN_MSIZE = 256;

export const version =
  (maxMsize: number): Handler =>
  (s, r, w) => {
    const msize = r.u32();
    const ver = r.str();
    s.fids.clear();
    if (msize < MIN_MSIZE) fail(E.EINVAL, `msize ${msize} too small`);
    const ok = ver === VERSION_9P2000_L;
    if (ok) s.msize = Math.min(msize, maxMsize);
    w.u32(Math.min(msize, maxMsize)).str(ok ? VERSION_9P2000_L : 'unknown');
  };

export const auth: Handler = () => fail(E.EOPNOTSUPP, 'no authentication');

export const attach: Handler = (s, r, w) => {
  const fid = r.u32();
  r.u32(); // afid: no authentication
  r.str(); // uname
  r.str(); // aname: one export per server
  r.u32(); // n_uname
  s.fids.checkNew(fid);
  const qid = qidOf(s.share.lstat(s.share.dir([])));
  s.fids.add(fid, []);
  w.qid(qid);
};

export const flush: Handler = (_s, r) => {
  r.u16(); // oldtag: requests are answered synchronously, nothing is ever pending
};

/** One walk step from directory `path`; "." stays, ".." never rises above the root. */
function step(s: Session, path: SharePath, name: string): SharePath {
  if (name === '' || name.includes('/') || name.includes('\0')) fail(E.EINVAL, 'bad walk name');
  s.share.dir(path); // only a real directory can be walked from
  if (name === '.') return path;
  if (name === '..') return path.slice(0, -1);
  return [...path, name];
}

export const walk: Handler = (s, r, w, maxReply) => {
  const fid = r.u32();
  const newfid = r.u32();
  const n = r.u16();
  if (n > MAXWELEM) fail(E.EINVAL, `walk of ${n} names`);
  if (HEADER_SIZE + 2 + n * QID_SIZE > maxReply) fail(E.EMSGSIZE, 'Rwalk would not fit');
  const names: string[] = [];
  for (let i = 0; i < n; i++) names.push(r.str());

  const f = s.fids.get(fid);
  if (newfid === fid) {
    if (f.open) fail(E.EBADF, 'cannot walk an open fid in place');
  } else {
    s.fids.checkNew(newfid);
  }
  let path = f.path;
  const qids: Qid[] = [];
  for (const name of names) {
    try {
      const next = step(s, path, name);
      qids.push(qidOf(s.share.lstat(s.share.entry(next))));
      path = next;
    } catch (err) {
      if (qids.length === 0) throw err;
      break;
    }
  }
  if (qids.length === n) {
    if (newfid === fid) f.path = path;
    else s.fids.add(newfid, path);
  }
  w.u16(qids.length);
  for (const q of qids) w.qid(q);
};

export const clunk: Handler = (s, r) => {
  const fid = r.u32();
  s.fids.get(fid);
  s.fids.remove(fid);
};

export const notSupported: Handler = () => fail(E.EOPNOTSUPP);
