/**
 * 9P2000.L message type numbers (T-messages; each reply is its request's number + 1) and the
 * protocol's fixed values (NOFID, NOTAG, setattr bits, the walk limit).
 */

export const T = {
  statfs: 8,
  lopen: 12,
  lcreate: 14,
  symlink: 16,
  mknod: 18,
  rename: 20,
  readlink: 22,
  getattr: 24,
  setattr: 26,
  xattrwalk: 30,
  xattrcreate: 32,
  readdir: 40,
  fsync: 50,
  lock: 52,
  getlock: 54,
  link: 70,
  mkdir: 72,
  renameat: 74,
  unlinkat: 76,
  version: 100,
  auth: 102,
  attach: 104,
  flush: 108,
  walk: 110,
  read: 116,
  write: 118,
  clunk: 120,
  remove: 122,
} as const;

/** Error reply: ecode[4] (a Linux errno). */
export const RLERROR = 7;

export const NOFID = 0xffffffff;
export const NOTAG = 0xffff;
/** Most names one Twalk may carry. */
export const MAXWELEM = 16;

export const VERSION_9P2000_L = '9P2000.L';

/** Tsetattr `valid` bits. */
export const SETATTR = {
  mode: 0x1,
  uid: 0x2,
  gid: 0x4,
  size: 0x8,
  atime: 0x10,
  mtime: 0x20,
  ctime: 0x40,
  atimeSet: 0x80,
  mtimeSet: 0x100,
} as const;

/** Tgetattr `valid` for the basic fields (mode .. blocks). */
export const GETATTR_BASIC = 0x7ffn;

/** Tunlinkat flag. */
export const AT_REMOVEDIR = 0x200;

/** The filesystem magic Tstatfs reports (V9FS_MAGIC). */
export const V9FS_MAGIC = 0x01021997;

/**
 * Size of each fixed-size reply (header included). The server refuses a request whose reply
 * could not fit the guest's buffer before doing it, so nothing changes without the guest
 * hearing of it. Rwalk checks its own (variable) size; Rread/Rreaddir shrink to fit.
 */
export const REPLY_SIZE: Readonly<Record<number, number>> = {
  [T.attach]: 20,
  [T.lopen]: 24,
  [T.lcreate]: 24,
  [T.mkdir]: 20,
  [T.symlink]: 20,
  [T.mknod]: 20,
  [T.getattr]: 160,
  [T.statfs]: 67,
  [T.write]: 11,
  [T.read]: 11,
  [T.readdir]: 11,
  [T.lock]: 8,
  [T.walk]: 9,
};
