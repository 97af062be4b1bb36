/**
 * Linux errno numbers (what 9P2000.L's Rlerror carries) and the mapping from Node's `err.code`
 * strings to them. Node names host errors the same way on every POSIX host, so a macOS host's
 * ENOTEMPTY still reaches the guest as Linux's 39. Anything unknown becomes EIO.
 */

export const E = {
  EPERM: 1,
  ENOENT: 2,
  EIO: 5,
  ENXIO: 6,
  E2BIG: 7,
  EBADF: 9,
  EAGAIN: 11,
  ENOMEM: 12,
  EACCES: 13,
  EBUSY: 16,
  EEXIST: 17,
  EXDEV: 18,
  ENODEV: 19,
  ENOTDIR: 20,
  EISDIR: 21,
  EINVAL: 22,
  ENFILE: 23,
  EMFILE: 24,
  ETXTBSY: 26,
  EFBIG: 27,
  ENOSPC: 28,
  ESPIPE: 29,
  EROFS: 30,
  EMLINK: 31,
  ERANGE: 34,
  ENAMETOOLONG: 36,
  ENOSYS: 38,
  ENOTEMPTY: 39,
  ELOOP: 40,
  EPROTO: 71,
  EOVERFLOW: 75,
  EILSEQ: 84,
  EMSGSIZE: 90,
  EOPNOTSUPP: 95,
  EDQUOT: 122,
} as const;

/** A failure to report to the guest as Rlerror(errno). */
export class NineError extends Error {
  constructor(
    readonly errno: number,
    why = '',
  ) {
    super(why || `errno ${errno}`);
    this.name = 'NineError';
  }
}

/** Throws NineError(errno) – shorthand for handlers. */
export function fail(errno: number, why?: string): never {
  throw new NineError(errno, why);
}

const byCode: Record<string, number> = { ...E, ENOTSUP: E.EOPNOTSUPP, EWOULDBLOCK: E.EAGAIN };

/** The Linux errno for a Node/host error (`err.code`); unknown → EIO. */
export function errnoFromHost(err: unknown): number {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code !== 'string') return E.EIO;
  if (Object.hasOwn(byCode, code)) return byCode[code];
  // Node's own argument checks (ERR_INVALID_ARG_VALUE, ERR_OUT_OF_RANGE …): the guest's values.
  if (code.startsWith('ERR_')) return E.EINVAL;
  return E.EIO;
}
