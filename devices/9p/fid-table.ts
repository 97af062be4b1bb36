/**
 * The server's fids: what each names (a share path) and, once opened, its host fd or directory
 * listing. Enforces the share's bounds – how many fids a guest may hold and how many it may have
 * open at once – and moves fids along when the guest renames a directory above them.
 */
import { closeSync } from 'node:fs';
import { E, fail } from './errno.js';
import { isUnder, type SharePath } from './host-fs.js';
import { NOFID } from './messages.js';

export type OpenState =
  | { kind: 'file'; fd: number; readable: boolean; writable: boolean }
  /** `names` is the listing Treaddir serves, taken when the guest reads from offset 0. */
  | { kind: 'dir'; names: string[] | null };

export interface Fid {
  path: SharePath;
  open: OpenState | null;
}

export class FidTable {
  private readonly fids = new Map<number, Fid>();
  private openCount = 0;

  constructor(
    private readonly maxFids: number,
    private readonly maxOpen: number,
  ) {}

  get size(): number {
    return this.fids.size;
  }

  get(fid: number): Fid {
    return this.fids.get(fid) ?? fail(E.EBADF, `unknown fid ${fid}`);
  }

  /** Checks `fid` may be created (unused, not NOFID, within the bound) without creating it. */
  checkNew(fid: number): void {
    if (fid === NOFID || this.fids.has(fid)) fail(E.EINVAL, `fid ${fid} in use or NOFID`);
    if (this.fids.size >= this.maxFids) fail(E.ENFILE, 'too many fids');
  }

  add(fid: number, path: SharePath): Fid {
    this.checkNew(fid);
    const f: Fid = { path, open: null };
    this.fids.set(fid, f);
    return f;
  }

  /** Throws EMFILE if one more open would exceed the bound. */
  checkCanOpen(): void {
    if (this.openCount >= this.maxOpen) fail(E.EMFILE, 'too many open files');
  }

  setOpen(f: Fid, state: OpenState): void {
    if (f.open) fail(E.EBADF, 'fid already open');
    this.checkCanOpen();
    f.open = state;
    this.openCount++;
  }

  /** Closes the fid's host fd (if any) and forgets it. */
  remove(fid: number): void {
    const f = this.fids.get(fid);
    if (!f) return;
    this.close(f);
    this.fids.delete(fid);
  }

  clear(): void {
    for (const f of this.fids.values()) this.close(f);
    this.fids.clear();
  }

  /** After a rename: every fid at or under `from` now lives at `to`. */
  moved(from: SharePath, to: SharePath): void {
    for (const f of this.fids.values()) {
      if (isUnder(f.path, from)) f.path = [...to, ...f.path.slice(from.length)];
    }
  }

  private close(f: Fid): void {
    if (!f.open) return;
    if (f.open.kind === 'file') {
      try {
        closeSync(f.open.fd);
      } catch {
        // Nothing useful to do: the fd is gone either way.
      }
    }
    f.open = null;
    this.openCount--;
  }
}
