/**
 * Image locking, as QEMU does it: an image opened read-write cannot be opened again — by this
 * process, another wasmvisor, or QEMU — until it is closed; read-only openings share (backing
 * files are opened read-only, so one base serves many overlays), but keep writers out.
 *
 * The scheme is QEMU's (block/file-posix.c), so the two see each other's locks: for each
 * permission bit i an opening holds (consistent read 0, write 1, write-unchanged 2, resize 3) it
 * takes a shared one-byte lock at offset 100 + i, and for each permission it does not let others
 * have, one at 200 + i. An opening conflicts when another holds a byte 200 + i for a permission
 * i it wants, or a byte 100 + i for one it refuses to share. The locks are open-file-description
 * locks (fcntl F_OFD_SETLK): per open file, released when it is closed or the process dies —
 * SIGKILL included, so a crash never leaves an image locked.
 *
 * They need the optional native addon (native/). Without it, or where the host has no OFD locks
 * (macOS), only openings within this process see each other (a registry by device and inode);
 * another process is not kept out, and `lockImage` says so in its result.
 */
import { loadHostNative, type HostNative } from '../host-native.js';
import { BlockError } from './backend.js';

const PERM_BASE = 100;
const SHARED_BASE = 200;
const PERM_NAMES = ['consistent read', 'write', 'write unchanged', 'resize'];
const READ = 1;
const WRITE = 2;
const WRITE_UNCHANGED = 4;
const RESIZE = 8;

/** What an opening holds and what it lets others hold (QEMU's perm / shared_perm). */
interface Perms {
  perm: number;
  shared: number;
}

/** A VM's writable disk (QEMU's for a guest device), and a read-only opening or backing file. */
const WRITER: Perms = {
  perm: READ | WRITE | WRITE_UNCHANGED | RESIZE,
  shared: READ | WRITE_UNCHANGED,
};
const READER: Perms = { perm: READ, shared: READ | WRITE_UNCHANGED };
const ALL = READ | WRITE | WRITE_UNCHANGED | RESIZE;

export interface ImageLock {
  /** 'ofd': fcntl locks other processes (and QEMU) see; 'process': this process only. */
  readonly scope: 'ofd' | 'process';
  /** Why the scope is only this process. */
  readonly reason?: string;
  /** Gives the lock up (closing the file does too, for OFD locks). */
  release(): void;
  /**
   * A writer's lock becomes a reader's, in place (no instant without a lock): what an image
   * keeps when it turns into a backing file (an external snapshot). The file is not written
   * through this opening afterwards. No-op for a reader's lock.
   */
  downgrade(): void;
}

type LockNative = Required<Pick<HostNative, 'ofdLock' | 'ofdUnlock' | 'ofdTest'>>;

function ofdNative(): { native: LockNative | null; reason?: string } {
  const r = loadHostNative();
  const n = r.native;
  if (!n) return { native: null, reason: r.reason };
  if (!n.ofdLock || !n.ofdUnlock || !n.ofdTest) {
    return { native: null, reason: 'the addon predates image locks (rebuild: native/build.mjs)' };
  }
  return { native: n as LockNative };
}

/** The openings of this process, by file identity. */
const held = new Map<string, Perms[]>();

function conflict(mine: Perms, other: Perms): number {
  return (mine.perm & ~other.shared & ALL) | (~mine.shared & other.perm & ALL);
}

function lockError(path: string, p: Perms, bits: number): BlockError {
  const i = 31 - Math.clz32(bits & -bits);
  const name = PERM_NAMES[i] ?? `permission ${i}`;
  // QEMU: `Failed to get "write" lock` (to write) / `Failed to get shared "write" lock` (to read).
  const kind = p.perm & (1 << i) ? `"${name}"` : `shared "${name}"`;
  return new BlockError(
    'io',
    `disk image ${path}: failed to get ${kind} lock: is another process (or another disk of ` +
      `this one) using the image?`,
  );
}

/**
 * Locks an open image for writing (`write`) or reading. Throws a BlockError naming the file when
 * another opening is in the way; otherwise returns the lock (release it when closing).
 */
export function lockImage(
  fd: number,
  path: string,
  id: { dev: number; ino: number },
  write: boolean,
  native: LockNative | null | undefined = ofdNative().native,
): ImageLock {
  const p = write ? WRITER : READER;
  const key = `${id.dev}:${id.ino}`;
  const here = held.get(key) ?? [];
  for (const o of here) {
    const c = conflict(p, o);
    if (c) throw lockError(path, p, c);
  }
  let scope: ImageLock['scope'] = 'process';
  let reason: string | undefined;
  if (native) {
    try {
      ofdAcquire(native, fd, path, p);
      scope = 'ofd';
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOSYS') throw e;
      reason = 'the host has no OFD locks';
    }
  } else reason = ofdNative().reason ?? 'no native addon';
  here.push(p);
  held.set(key, here);
  let released = false;
  let mine = p;
  return {
    scope,
    ...(reason ? { reason } : {}),
    release: () => {
      if (released) return;
      released = true;
      const list = held.get(key) ?? [];
      list.splice(list.indexOf(mine), 1);
      if (list.length === 0) held.delete(key);
      if (scope === 'ofd') for (let i = 0; i < 4; i++) unlockQuietly(native!, fd, i);
    },
    downgrade: () => {
      if (released || mine === READER) return;
      const list = held.get(key) ?? [];
      list[list.indexOf(mine)] = READER;
      // Drop the permission bytes a reader does not hold; the bytes that keep others from
      // writing stay (a reader refuses to share "write" as a writer does).
      if (scope === 'ofd') {
        for (let i = 0; i < 4; i++) {
          const bit = 1 << i;
          if (mine.perm & bit && !(READER.perm & bit)) unlockByte(native!, fd, PERM_BASE + i);
          if (~mine.shared & bit && READER.shared & bit) unlockByte(native!, fd, SHARED_BASE + i);
        }
      }
      mine = READER;
    },
  };
}

function unlockByte(n: LockNative, fd: number, byte: number): void {
  try {
    n.ofdUnlock(fd, byte);
  } catch {
    // The file may be closed already, which released the locks.
  }
}

function unlockQuietly(n: LockNative, fd: number, i: number): void {
  try {
    n.ofdUnlock(fd, PERM_BASE + i);
    n.ofdUnlock(fd, SHARED_BASE + i);
  } catch {
    // The file may be closed already, which released the locks.
  }
}

/** QEMU's order: take our bytes, then test the bytes of the permissions that would conflict. */
function ofdAcquire(n: LockNative, fd: number, path: string, p: Perms): void {
  const taken: number[] = [];
  try {
    for (let i = 0; i < 4; i++) {
      const bit = 1 << i;
      for (const [set, base] of [
        [p.perm & bit, PERM_BASE],
        [~p.shared & bit, SHARED_BASE],
      ] as const) {
        if (!set) continue;
        try {
          n.ofdLock(fd, base + i, false);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code === 'EAGAIN') throw lockError(path, p, bit);
          throw e;
        }
        taken.push(base + i);
      }
    }
    for (let i = 0; i < 4; i++) {
      const bit = 1 << i;
      if (p.perm & bit && n.ofdTest(fd, SHARED_BASE + i, true)) throw lockError(path, p, bit);
      if (~p.shared & bit && n.ofdTest(fd, PERM_BASE + i, true)) throw lockError(path, p, bit);
    }
  } catch (e) {
    for (const b of taken) {
      try {
        n.ofdUnlock(fd, b);
      } catch {
        // best effort: closing the file releases them anyway
      }
    }
    throw e;
  }
}
