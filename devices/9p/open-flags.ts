/**
 * Linux open(2) flags as the guest sends them in Tlopen/Tlcreate, translated to the host's
 * `fs.constants`. Only what matters for a file server is kept; O_NOFOLLOW and O_NONBLOCK are
 * always added on the host (never follow a symlink, never block the VM on a FIFO or device).
 */
import { constants as C } from 'node:fs';
import { E, fail } from './errno.js';

/** Linux values (octal, as in asm-generic/fcntl.h). */
export const L = {
  O_ACCMODE: 0o3,
  O_RDONLY: 0o0,
  O_WRONLY: 0o1,
  O_RDWR: 0o2,
  O_CREAT: 0o100,
  O_EXCL: 0o200,
  O_TRUNC: 0o1000,
  O_APPEND: 0o2000,
  O_NONBLOCK: 0o4000,
  O_DSYNC: 0o10000,
  O_DIRECTORY: 0o200000,
  O_NOFOLLOW: 0o400000,
  O_SYNC: 0o4010000,
} as const;

export interface OpenMode {
  /** Flags for `fs.openSync` on the host. */
  host: number;
  readable: boolean;
  writable: boolean;
  /** The guest asked for O_DIRECTORY: the target must be a directory. */
  directory: boolean;
  /** Would change the file (write access or O_TRUNC). */
  changes: boolean;
}

export function hostOpenMode(linux: number, create: boolean): OpenMode {
  const acc = linux & L.O_ACCMODE;
  if (acc === 3) fail(E.EINVAL, 'bad access mode');
  const readable = acc !== L.O_WRONLY;
  const writable = acc !== L.O_RDONLY;
  let host = acc === L.O_RDONLY ? C.O_RDONLY : acc === L.O_WRONLY ? C.O_WRONLY : C.O_RDWR;
  host |= C.O_NOFOLLOW | C.O_NONBLOCK;
  if (linux & L.O_TRUNC) host |= C.O_TRUNC;
  if (linux & L.O_APPEND) host |= C.O_APPEND;
  if ((linux & L.O_SYNC) === L.O_SYNC) host |= C.O_SYNC;
  else if (linux & L.O_DSYNC) host |= C.O_DSYNC ?? C.O_SYNC;
  if (create) {
    host |= C.O_CREAT;
    if (linux & L.O_EXCL) host |= C.O_EXCL;
  }
  const changes = writable || (linux & L.O_TRUNC) !== 0 || create;
  return { host, readable, writable, directory: (linux & L.O_DIRECTORY) !== 0, changes };
}
