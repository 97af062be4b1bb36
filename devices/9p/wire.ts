/**
 * The 9P wire format: a bounded little-endian reader and a growing writer for message bodies
 * (u8/u16/u32/u64, strings as u16 length + UTF-8, 13-byte qids). A read past the end of the
 * message throws `ProtocolError`, which the server answers with EPROTO.
 */

/** The request's bytes ran out or were not what the protocol allows. */
export class ProtocolError extends Error {
  constructor(why: string) {
    super(why);
    this.name = 'ProtocolError';
  }
}

/** A string's bytes are not valid UTF-8 (answered with EILSEQ). */
export class BadStringError extends Error {
  constructor() {
    super('string is not valid UTF-8');
    this.name = 'BadStringError';
  }
}

export const QID_TYPE = { dir: 0x80, symlink: 0x02, file: 0x00 } as const;

export interface Qid {
  type: number;
  version: number;
  path: bigint;
}

/** Size of the header every message starts with: size[4] type[1] tag[2]. */
export const HEADER_SIZE = 7;
export const QID_SIZE = 13;

const utf8 = new TextDecoder('utf-8', { fatal: true });
const utf8Encoder = new TextEncoder();

export class Reader {
  private readonly view: DataView;
  private pos: number;

  constructor(
    private readonly buf: Uint8Array,
    start = 0,
  ) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    this.pos = start;
  }

  get remaining(): number {
    return this.buf.length - this.pos;
  }

  private need(n: number): number {
    if (n > this.remaining) throw new ProtocolError(`message too short (${n} bytes wanted)`);
    const at = this.pos;
    this.pos += n;
    return at;
  }

  u8(): number {
    return this.view.getUint8(this.need(1));
  }
  u16(): number {
    return this.view.getUint16(this.need(2), true);
  }
  u32(): number {
    return this.view.getUint32(this.need(4), true);
  }
  u64(): bigint {
    return this.view.getBigUint64(this.need(8), true);
  }
  bytes(n: number): Uint8Array {
    const at = this.need(n);
    return this.buf.subarray(at, at + n);
  }
  str(): string {
    const bytes = this.bytes(this.u16());
    try {
      return utf8.decode(bytes);
    } catch {
      throw new BadStringError();
    }
  }
}

/** Byte length of `s` as a 9P string (u16 length + UTF-8). */
export function strSize(s: string): number {
  return 2 + Buffer.byteLength(s, 'utf8');
}

export class Writer {
  private buf = new Uint8Array(256);
  private view = new DataView(this.buf.buffer);
  private pos = HEADER_SIZE;

  get length(): number {
    return this.pos;
  }

  private room(n: number): number {
    if (this.pos + n > this.buf.length) {
      let size = this.buf.length * 2;
      while (size < this.pos + n) size *= 2;
      const bigger = new Uint8Array(size);
      bigger.set(this.buf.subarray(0, this.pos));
      this.buf = bigger;
      this.view = new DataView(bigger.buffer);
    }
    const at = this.pos;
    this.pos += n;
    return at;
  }

  u8(v: number): this {
    this.view.setUint8(this.room(1), v);
    return this;
  }
  u16(v: number): this {
    this.view.setUint16(this.room(2), v, true);
    return this;
  }
  u32(v: number): this {
    this.view.setUint32(this.room(4), v >>> 0, true);
    return this;
  }
  u64(v: bigint | number): this {
    this.view.setBigUint64(this.room(8), BigInt.asUintN(64, BigInt(v)), true);
    return this;
  }
  bytes(b: Uint8Array): this {
    const at = this.room(b.length); // may replace this.buf
    this.buf.set(b, at);
    return this;
  }
  str(s: string): this {
    const b = utf8Encoder.encode(s);
    if (b.length > 0xffff) throw new ProtocolError('string longer than 65535 bytes');
    return this.u16(b.length).bytes(b);
  }
  qid(q: Qid): this {
    return this.u8(q.type).u32(q.version).u64(q.path);
  }

  /**
   * Reserves `n` bytes at the end and returns them to be filled in place (a read's payload goes
   * straight from the host file into the reply). Valid until the next write to this Writer.
   */
  reserve(n: number): Uint8Array {
    const at = this.room(n);
    return this.buf.subarray(at, at + n);
  }

  /** Gives back the last `n` bytes written or reserved (a read that got less than it asked). */
  unwrite(n: number): this {
    this.pos -= Math.min(Math.max(0, n), this.pos - HEADER_SIZE);
    return this;
  }

  /** Writes a u32 at an earlier position (a count known only after the payload). */
  patchU32(at: number, v: number): this {
    if (at < HEADER_SIZE || at + 4 > this.pos) throw new RangeError('patch outside the message');
    this.view.setUint32(at, v >>> 0, true);
    return this;
  }

  /**
   * Fills in the header and returns the whole message: a view of this Writer's buffer (each
   * reply has its own Writer), so the payload is not copied again.
   */
  frame(type: number, tag: number): Uint8Array {
    this.view.setUint32(0, this.pos, true);
    this.view.setUint8(4, type);
    this.view.setUint16(5, tag, true);
    return this.buf.subarray(0, this.pos);
  }
}
