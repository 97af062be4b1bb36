/**
 * The live-migration stream between two wasmvisor processes (source.ts, destination.ts): a
 * sequence of messages, each a 1-byte type, a 4-byte big-endian length and that many bytes.
 *
 *   source → destination: HELLO (JSON: the VM's definition and RAM size), PAGES (RAM pages as
 *   they are sent round after round), FINAL (the VM's state as a saved-VM file without its RAM
 *   section), RELEASED (the source closed its disks: the destination may open them)
 *   destination → source: READY (FINAL was read and checked), RUNNING (the VM runs there), or
 *   ERROR (JSON { message }) from either side, which ends the migration.
 *
 * A PAGES payload is a run of entries: a 4-byte big-endian page number (4 KiB pages from RAM's
 * base) with bit 31 set for a page of zeros, then the page's 4096 bytes unless it is zeros. The
 * peer is another process of this user, but a stream that does not parse is an error that names
 * what was wrong, never a crash.
 */
import type { Socket } from 'node:net';
import { isZero } from '../../../devices/zero-bytes.js';

export const MIGRATION_MAGIC = 'wasmvisor-migration';
export const MIGRATION_VERSION = 1;
export const PAGE_BYTES = 4096;
/** Entries per PAGES message (~1 MiB of page data). */
export const PAGES_PER_MESSAGE = 256;
/** The largest message either side accepts (FINAL holds the devices' state, not RAM). */
export const MAX_MESSAGE = 64 << 20;
const ZERO_FLAG = 0x8000_0000;

export const MSG = {
  hello: 1,
  pages: 2,
  final: 3,
  ready: 4,
  released: 5,
  running: 6,
  error: 7,
} as const;
export type MessageType = (typeof MSG)[keyof typeof MSG];
const NAMES = Object.fromEntries(Object.entries(MSG).map(([k, v]) => [v, k])) as Record<
  number,
  string
>;

export class MigrationError extends Error {}

export interface Message {
  type: MessageType;
  data: Uint8Array;
}

/** Writes messages to a socket, waiting for it to drain when its buffer is full. */
export class MessageWriter {
  constructor(private readonly socket: Socket) {}

  async send(type: MessageType, data: Uint8Array = new Uint8Array(0)): Promise<void> {
    const head = Buffer.alloc(5);
    head[0] = type;
    head.writeUInt32BE(data.length, 1);
    const a = this.socket.write(head);
    const b = this.socket.write(data);
    if (!a || !b) await this.drained();
  }

  sendJson(type: MessageType, value: unknown): Promise<void> {
    return this.send(type, new TextEncoder().encode(JSON.stringify(value)));
  }

  private drained(): Promise<void> {
    return new Promise((resolve, reject) => {
      const done = (): void => {
        this.socket.off('drain', done);
        this.socket.off('close', closed);
        resolve();
      };
      const closed = (): void => {
        this.socket.off('drain', done);
        reject(new MigrationError('the other side closed the connection'));
      };
      this.socket.once('drain', done);
      this.socket.once('close', closed);
    });
  }
}

/** Reads whole messages off a socket, in order. */
export class MessageReader {
  private chunks: Buffer[] = [];
  private have = 0;
  private waiting: (() => void) | undefined;
  private ended: string | undefined;

  constructor(socket: Socket) {
    socket.on('data', (d: Buffer) => {
      this.chunks.push(d);
      this.have += d.length;
      this.waiting?.();
    });
    const end = (why: string): void => {
      this.ended ??= why;
      this.waiting?.();
    };
    socket.on('end', () => end('the other side closed the connection'));
    socket.on('close', () => end('the connection closed'));
    socket.on('error', (e) => end(`connection error: ${e.message}`));
  }

  /** The next message; rejects when the stream ends or holds something that is not one. */
  async next(): Promise<Message> {
    const head = await this.take(5);
    const type = head[0]!;
    const len = head.readUInt32BE(1);
    if (!(type in NAMES)) throw new MigrationError(`unknown message type ${type} in the stream`);
    if (len > MAX_MESSAGE) {
      throw new MigrationError(`a ${NAMES[type]} message of ${len} bytes is too large`);
    }
    return { type: type as MessageType, data: await this.take(len) };
  }

  /** The next message, which must be `type` (an ERROR from the peer becomes its message). */
  async expect(type: MessageType): Promise<Uint8Array> {
    const m = await this.next();
    if (m.type === MSG.error) throw new MigrationError(errorText(m.data));
    if (m.type !== type) {
      throw new MigrationError(`expected ${NAMES[type]}, got ${NAMES[m.type]}`);
    }
    return m.data;
  }

  private async take(n: number): Promise<Buffer> {
    while (this.have < n) {
      if (this.ended) throw new MigrationError(this.ended);
      await new Promise<void>((r) => (this.waiting = r));
      this.waiting = undefined;
    }
    const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
    const out = all.subarray(0, n);
    const rest = all.subarray(n);
    this.chunks = rest.length ? [rest] : [];
    this.have = rest.length;
    return out;
  }
}

/** `p`, or a MigrationError "`what` within N s" once `ms` have passed. */
export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      t = setTimeout(() => reject(new MigrationError(`${what} within ${ms / 1000} s`)), ms);
    }),
  ]).finally(() => clearTimeout(t));
}

export function parseJson(data: Uint8Array, what: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(new TextDecoder().decode(data));
  } catch {
    throw new MigrationError(`${what}: not valid JSON`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    throw new MigrationError(`${what}: not an object`);
  }
  return v as Record<string, unknown>;
}

function errorText(data: Uint8Array): string {
  try {
    const m = parseJson(data, 'ERROR').message;
    return typeof m === 'string' ? m : 'the other side failed';
  } catch {
    return 'the other side failed';
  }
}

/** A PAGES payload for `pages` of `ram` (copies them: the guest may write on meanwhile). */
export function encodePages(ram: Uint8Array, pages: readonly number[]): Uint8Array {
  let size = 0;
  const zero: boolean[] = pages.map((p) => {
    const z = isZero(ram, p * PAGE_BYTES, (p + 1) * PAGE_BYTES);
    size += 4 + (z ? 0 : PAGE_BYTES);
    return z;
  });
  const out = Buffer.allocUnsafe(size);
  let o = 0;
  pages.forEach((p, i) => {
    out.writeUInt32BE((p | (zero[i] ? ZERO_FLAG : 0)) >>> 0, o);
    o += 4;
    if (!zero[i]) {
      out.set(ram.subarray(p * PAGE_BYTES, (p + 1) * PAGE_BYTES), o);
      o += PAGE_BYTES;
    }
  });
  return out;
}

/**
 * Applies a PAGES payload to `ram`; returns how many pages it held. `present` (a bitmap, a bit
 * per page) says which pages hold data: set for a page that came with its bytes, cleared for
 * one that came as zeros; `ram` must then have started as zeros (a zero page that never held
 * data is not written, so fresh memory stays untouched).
 */
export function applyPages(data: Uint8Array, ram: Uint8Array, present?: Uint8Array): number {
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const count = ram.length / PAGE_BYTES;
  let o = 0;
  let n = 0;
  while (o < data.length) {
    if (o + 4 > data.length) throw new MigrationError('a PAGES message ends inside an entry');
    const e = dv.getUint32(o);
    o += 4;
    const p = e & ~ZERO_FLAG;
    if (p >= count) throw new MigrationError(`page ${p} is past the end of RAM (${count} pages)`);
    const at = p * PAGE_BYTES;
    const bit = 1 << (p & 7);
    if (e & ZERO_FLAG) {
      // With `present`, `ram` started as zeros: a page that never held data here is zeros
      // already, and left untouched it takes no host memory.
      if (!present || present[p >> 3]! & bit) ram.fill(0, at, at + PAGE_BYTES);
      if (present) present[p >> 3]! &= ~bit;
    } else {
      if (present) present[p >> 3]! |= bit;
      if (o + PAGE_BYTES > data.length)
        throw new MigrationError('a PAGES message ends inside a page');
      ram.set(data.subarray(o, o + PAGE_BYTES), at);
      o += PAGE_BYTES;
    }
    n++;
  }
  return n;
}

/** The page numbers set in a dirty-page bitmap (page p: bit p % 8 of byte p / 8). */
export function dirtyPages(bitmap: Uint8Array, pages: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < bitmap.length; i++) {
    const b = bitmap[i]!;
    if (b === 0) continue;
    for (let k = 0; k < 8; k++) {
      const p = i * 8 + k;
      if (b & (1 << k) && p < pages) out.push(p);
    }
  }
  return out;
}

/**
 * "tcp:HOST:PORT" (QEMU's syntax; HOST may be empty for 127.0.0.1 or [v6] in brackets). A
 * listening side may give port 0: any free one.
 */
export function parseMigrationUri(uri: string, listen = false): { host: string; port: number } {
  const m = /^tcp:(\[[^\]]*\]|[^:]*):(\d{1,5})$/.exec(uri.trim());
  const port = m ? Number(m[2]) : NaN;
  if (!m || port < (listen ? 0 : 1) || port > 65535) {
    throw new MigrationError(`"${uri}" is not tcp:HOST:PORT (e.g. tcp:127.0.0.1:4444)`);
  }
  const host = m[1]!.replace(/^\[|\]$/g, '') || '127.0.0.1';
  return { host, port };
}
