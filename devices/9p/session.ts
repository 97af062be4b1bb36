/**
 * What every 9P request handler works with: the confined share, the fid table, the negotiated
 * msize and the share's options. Handlers read their request body from a Reader, write their
 * reply body to a Writer, and report failures by throwing (NineError, or a host error).
 */
import { E, fail } from './errno.js';
import type { FidTable } from './fid-table.js';
import type { ShareFs } from './host-fs.js';
import type { Reader, Writer } from './wire.js';

export interface NinePMetrics {
  requests: number;
  errors: number;
  bytes_read: number;
  bytes_written: number;
  bad_requests: number;
  [k: string]: number;
}

export interface Session {
  readonly share: ShareFs;
  readonly fids: FidTable;
  /** Every change refused with EROFS; may be switched while the guest has the share mounted. */
  readOnly: boolean;
  readonly metrics: NinePMetrics;
  /** Negotiated by Tversion. */
  msize: number;
}

/** Handles one request body; `maxReply` bounds the whole reply message in bytes. */
export type Handler = (s: Session, r: Reader, w: Writer, maxReply: number) => void;

/** Size of Rread/Rreaddir before their payload: header + count[4]. */
export const IO_HEADER = 11;

/**
 * The permission bits a guest may give a host file: never set-user-ID, and set-group-ID only on
 * a directory (where it means "new entries take the directory's group"). A guest must not leave a
 * setuid program in the user's folder, least of all when wasmvisor runs as root.
 */
export function guestMode(mode: number, isDir: boolean): number {
  return mode & (isDir ? 0o3777 : 0o1777);
}

/** Refuses a change on a read-only share. */
export function mustWrite(s: Session): void {
  if (s.readOnly) fail(E.EROFS, 'read-only share');
}

/** How many payload bytes an Rread/Rreaddir may carry. */
export function ioBudget(s: Session, count: number, maxReply: number): number {
  return Math.max(0, Math.min(count, s.msize - IO_HEADER, maxReply - IO_HEADER));
}

/** A guest u64 offset/size as a safe JS number (EFBIG past 2^53). */
export function safeNumber(v: bigint): number {
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) fail(E.EFBIG);
  return Number(v);
}
