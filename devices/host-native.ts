/**
 * Loads the optional host-helper addon built by native/build.mjs (dist/native/wasmvisor-native.node).
 * It is optional by design: when it is missing or fails to load, `loadHostNative()` returns null
 * with the reason, and callers fall back (the raw back end writes zeros instead of punching holes;
 * the balloon keeps pages resident). Shared by devices/block and devices/virtio/balloon.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface HostNative {
  /** fallocate(PUNCH_HOLE|KEEP_SIZE): range reads as zeros, blocks freed. Rejects with `code`. */
  punchHole(fd: number, offset: number, length: number): Promise<void>;
  /** fallocate(ZERO_RANGE|KEEP_SIZE): range reads as zeros, stays allocated. */
  zeroRange(fd: number, offset: number, length: number): Promise<void>;
  /**
   * Gives the pages under `view` back to the OS (they read as zeros afterwards). Start and
   * length must be multiples of `pageSize`. Missing in addons built before it existed.
   */
  madviseDontNeed?(view: Uint8Array): void;
  /** The host page size (present with madviseDontNeed). */
  pageSize?: number;
  /**
   * One-byte open-file-description locks (fcntl F_OFD_SETLK), QEMU's image locks: shared or
   * exclusive; never waits (a conflict throws with code 'EAGAIN'); 'ENOSYS' where the host has
   * no OFD locks. Missing in addons built before they existed.
   */
  ofdLock?(fd: number, byte: number, exclusive: boolean): void;
  ofdUnlock?(fd: number, byte: number): void;
  /** Whether another open file description holds a lock on `byte` that would conflict. */
  ofdTest?(fd: number, byte: number, exclusive: boolean): boolean;
  /**
   * lseek(SEEK_DATA, or SEEK_HOLE with `hole`): the next data (hole) at or after `offset`, -1
   * when no data follows. Missing in addons built before it existed.
   */
  seekData?(fd: number, offset: number, hole: boolean): number;
  /**
   * preadv2(RWF_NOWAIT) into the views at `position` (up to 64 views): the bytes the host's page
   * cache held (0 at the end of the file), -1 when nothing could be read without waiting for
   * the disk. Throws with `code` ('EOPNOTSUPP', 'ENOSYS', 'EINVAL' where the host cannot).
   * Missing in addons built before it existed.
   */
  readNow?(fd: number, views: readonly Uint8Array[], position: number): number;
  /**
   * An ICMP echo socket (Linux): an unprivileged ICMP datagram socket, else (EACCES: outside
   * net.ipv4.ping_group_range) a raw ICMP socket when the process may open one; `mode` forces
   * one kind. `onMessage` gets, on the event loop, echo replies with the socket's identifier
   * (payload: the echo data) and ICMP errors quoting its requests (payload null; info: the
   * second header word), each with the sequence number sent and the TTL / hop limit it arrived
   * with (-1: unknown). Throws with `code` (the datagram socket's errno) and `rawCode` (the raw
   * socket's) when neither opens; 'ENOSYS' off Linux. Missing in addons built before it existed.
   */
  icmpEchoOpen?(
    ipv6: boolean,
    onMessage: (
      from: string,
      type: number,
      code: number,
      seq: number,
      payload: Buffer | null,
      ttl: number,
      info: number,
    ) => void,
    mode?: 'auto' | 'dgram' | 'raw',
  ): IcmpEchoSocket;
}

/** What icmpEchoOpen returns. */
export interface IcmpEchoSocket {
  /** 'dgram' (ICMP datagram socket) or 'raw'. */
  readonly kind: 'dgram' | 'raw';
  /** The echo identifier on the wire (a datagram socket's is the kernel's). */
  readonly id: number;
  /** Sends an echo request (our identifier, `seq`, `payload`; `ttl` -1: the default). Throws with `code`. */
  send(addr: string, seq: number, payload: Uint8Array, ttl?: number): void;
  /** Stops receiving and closes the socket. Idempotent. */
  close(): void;
}

export type HostNativeResult =
  { native: HostNative; reason?: undefined } | { native: null; reason: string };

let cached: HostNativeResult | undefined;

/** Finds the addon from both the TypeScript sources and the compiled dist/ tree. */
function addonPath(): string | undefined {
  const here = dirname(fileURLToPath(import.meta.url));
  const candidates = [
    join(here, '..', 'dist', 'native', 'wasmvisor-native.node'),
    join(here, '..', '..', 'dist', 'native', 'wasmvisor-native.node'),
    join(here, '..', 'native', 'wasmvisor-native.node'),
  ];
  return candidates.find((p) => existsSync(p));
}

export function loadHostNative(): HostNativeResult {
  if (cached) return cached;
  if (process.env.WASMVISOR_NO_NATIVE) {
    cached = { native: null, reason: 'disabled by WASMVISOR_NO_NATIVE' };
    return cached;
  }
  const path = addonPath();
  if (!path) {
    cached = { native: null, reason: 'addon not built (native/build.mjs)' };
    return cached;
  }
  try {
    const mod = createRequire(import.meta.url)(path) as Partial<HostNative>;
    if (typeof mod.punchHole !== 'function' || typeof mod.zeroRange !== 'function') {
      cached = { native: null, reason: `${path}: unexpected exports` };
    } else cached = { native: mod as HostNative };
  } catch (e) {
    cached = { native: null, reason: `${path}: ${(e as Error).message}` };
  }
  return cached;
}
