/**
 * The byte format of a switch link between two host processes (switch-peer.ts), over a
 * Unix-domain stream socket. Every message is a 4-byte little-endian body length, then the body,
 * whose first byte is its type:
 *
 *   hello  1, "WVSW", version, id length, id, name length, switch name
 *   frame  2, flags (1 partial checksum, 2 GSO, 4 checksums valid), csum start u16, csum
 *            offset u16, GSO type u8, 0, GSO size u16, GSO header length u16, the Ethernet frame
 *   ack    3, frames u32, bytes u32
 *
 * The other process is untrusted: `WireReader` checks every length before it reads, refuses a
 * body longer than the largest frame at once (it never buffers more than one message), and
 * reports what it cannot parse instead of throwing.
 */
import { ETH_HLEN, GSO_NONE, GSO_TCPV4, GSO_TCPV6, MAX_PACKET, type NetPacket } from './packet.js';

export const WIRE_VERSION = 1;
const MAGIC = [0x57, 0x56, 0x53, 0x57]; // "WVSW"
const T_HELLO = 1;
const T_FRAME = 2;
const T_ACK = 3;
const F_CSUM = 1;
const F_GSO = 2;
const F_VALID = 4;
/** Frame body bytes before the Ethernet frame. */
const FRAME_HDR = 12;
/** The longest body: a frame of MAX_PACKET bytes and its header. */
export const MAX_BODY = FRAME_HDR + MAX_PACKET;

export type WireMessage =
  | { t: 'hello'; version: number; id: string; name: string }
  | { t: 'frame'; p: NetPacket }
  /** A frame whose offload metadata does not fit it: the sender relayed a guest's bad frame. */
  | { t: 'bad-frame'; bytes: number }
  | { t: 'ack'; frames: number; bytes: number };

const ascii = new TextEncoder();
const fromAscii = new TextDecoder('latin1');

export function encodeHello(id: string, name: string): Uint8Array {
  const i = ascii.encode(id);
  const n = ascii.encode(name);
  const body = 1 + 4 + 1 + 1 + i.length + 1 + n.length;
  const b = new Uint8Array(4 + body);
  new DataView(b.buffer).setUint32(0, body, true);
  b[4] = T_HELLO;
  b.set(MAGIC, 5);
  b[9] = WIRE_VERSION;
  b[10] = i.length;
  b.set(i, 11);
  b[11 + i.length] = n.length;
  b.set(n, 12 + i.length);
  return b;
}

/** The length prefix and header of a frame; its bytes follow as they are (not copied). */
export function encodeFrameHeader(p: NetPacket): Uint8Array {
  const b = new Uint8Array(4 + FRAME_HDR);
  const v = new DataView(b.buffer);
  v.setUint32(0, FRAME_HDR + p.data.length, true);
  b[4] = T_FRAME;
  b[5] = (p.csum ? F_CSUM : 0) | (p.gso ? F_GSO : 0) | (p.csumValid ? F_VALID : 0);
  if (p.csum) {
    v.setUint16(6, p.csum.start, true);
    v.setUint16(8, p.csum.offset, true);
  }
  if (p.gso) {
    b[10] = p.gso.type;
    v.setUint16(12, p.gso.size, true);
    v.setUint16(14, p.gso.hdrLen, true);
  }
  return b;
}

export function encodeAck(frames: number, bytes: number): Uint8Array {
  const b = new Uint8Array(4 + 9);
  const v = new DataView(b.buffer);
  v.setUint32(0, 9, true);
  b[4] = T_ACK;
  v.setUint32(5, frames, true);
  v.setUint32(9, bytes, true);
  return b;
}

/**
 * Cuts a byte stream into messages. `push` returns the messages completed by a chunk, or an
 * error string when the stream is not this protocol (the caller closes the connection).
 */
export class WireReader {
  /** Bytes of the message being assembled (its length prefix first). */
  private buf = new Uint8Array(0);
  private have = 0;

  /** Bytes of an unfinished message held (for "truncated" when the stream ends). */
  get pending(): number {
    return this.have;
  }

  push(chunk: Uint8Array, out: WireMessage[]): string | undefined {
    let o = 0;
    while (o < chunk.length) {
      if (this.have < 4) {
        const n = Math.min(4 - this.have, chunk.length - o);
        if (this.buf.length < 4) this.buf = new Uint8Array(4);
        this.buf.set(chunk.subarray(o, o + n), this.have);
        this.have += n;
        o += n;
        if (this.have < 4) return undefined;
        const body = new DataView(this.buf.buffer).getUint32(0, true);
        if (body < 1 || body > MAX_BODY) return `message length ${body}`;
        const whole = new Uint8Array(4 + body);
        whole.set(this.buf.subarray(0, 4));
        this.buf = whole;
      }
      const n = Math.min(this.buf.length - this.have, chunk.length - o);
      this.buf.set(chunk.subarray(o, o + n), this.have);
      this.have += n;
      o += n;
      if (this.have < this.buf.length) return undefined;
      const m = parseBody(this.buf);
      this.have = 0;
      this.buf = new Uint8Array(4);
      if (typeof m === 'string') return m;
      out.push(m);
    }
    return undefined;
  }
}

/** One whole message (length prefix included, already checked against MAX_BODY). */
function parseBody(b: Uint8Array): WireMessage | string {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const len = b.length - 4;
  switch (b[4]) {
    case T_HELLO: {
      if (len < 8 || !MAGIC.every((x, i) => b[5 + i] === x)) return 'not a wasmvisor switch';
      const il = b[10];
      if (len < 8 + il) return 'short hello';
      const nl = b[11 + il];
      if (len !== 8 + il + nl) return 'hello length';
      return {
        t: 'hello',
        version: b[9],
        id: fromAscii.decode(b.subarray(11, 11 + il)),
        name: fromAscii.decode(b.subarray(12 + il, 12 + il + nl)),
      };
    }
    case T_ACK:
      if (len !== 9) return 'ack length';
      return { t: 'ack', frames: v.getUint32(5, true), bytes: v.getUint32(9, true) };
    case T_FRAME: {
      const n = len - FRAME_HDR;
      const flags = b[5];
      if (n < ETH_HLEN || (flags & ~(F_CSUM | F_GSO | F_VALID)) !== 0) return 'frame header';
      // `b` was allocated for this message alone (WireReader starts a new one), so the packet
      // may own a view of it: no copy.
      const data = b.subarray(4 + FRAME_HDR);
      let csum: NetPacket['csum'];
      if (flags & F_CSUM) {
        csum = { start: v.getUint16(6, true), offset: v.getUint16(8, true) };
        if (csum.start + csum.offset + 2 > n) return { t: 'bad-frame', bytes: n };
      }
      let gso: NetPacket['gso'];
      if (flags & F_GSO) {
        const type = b[10];
        if (type !== GSO_NONE && type !== GSO_TCPV4 && type !== GSO_TCPV6)
          return { t: 'bad-frame', bytes: n };
        gso = { type, size: v.getUint16(12, true), hdrLen: v.getUint16(14, true) };
        if (gso.hdrLen > n) return { t: 'bad-frame', bytes: n };
      }
      return { t: 'frame', p: { data, csum, gso, csumValid: (flags & F_VALID) !== 0 } };
    }
    default:
      return `message type ${b[4]}`;
  }
}
