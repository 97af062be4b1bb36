/**
 * The byte format of the links between processes (devices/net/switch-wire.ts): what is encoded
 * comes back the same however the stream is cut into chunks; lengths past the largest frame are
 * refused before anything is buffered; random and mutated streams never throw.
 */
import { describe, expect, it } from 'vitest';
import {
  encodeAck,
  encodeFrameHeader,
  encodeHello,
  MAX_BODY,
  WireReader,
  type WireMessage,
} from '../../../devices/net/switch-wire.js';
import { GSO_TCPV6, type NetPacket } from '../../../devices/net/packet.js';
import { xorshift } from '../../seeded-random.js';

const SEED = Number(process.env.WIRE_FUZZ_SEED ?? 7);

function frameBytes(p: NetPacket): Uint8Array {
  const h = encodeFrameHeader(p);
  const b = new Uint8Array(h.length + p.data.length);
  b.set(h);
  b.set(p.data, h.length);
  return b;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Feeds `bytes` in chunks of random sizes; returns the messages and the first error. */
function read(
  bytes: Uint8Array,
  rnd: (n: number) => number,
): { msgs: WireMessage[]; err?: string } {
  const r = new WireReader();
  const msgs: WireMessage[] = [];
  for (let o = 0; o < bytes.length;) {
    const n = 1 + rnd(Math.min(4096, bytes.length - o));
    const err = r.push(bytes.subarray(o, o + n), msgs);
    if (err !== undefined) return { msgs, err };
    o += n;
  }
  return { msgs };
}

describe('switch link byte format', () => {
  const rnd = xorshift(SEED);
  const data = (n: number): Uint8Array => Uint8Array.from({ length: n }, () => rnd(256));
  const packets: NetPacket[] = [
    { data: data(60) },
    { data: data(1514), csum: { start: 34, offset: 16 }, csumValid: true },
    {
      data: data(65_000),
      csum: { start: 54, offset: 16 },
      gso: { type: GSO_TCPV6, size: 1440, hdrLen: 74 },
    },
  ];
  const stream = concat([
    encodeHello('4242-0a0b0c0d', 'lab'),
    ...packets.map(frameBytes),
    encodeAck(32, 70_000),
  ]);

  it('round-trips hello, frames with their metadata, and acks, however the stream is cut', () => {
    for (let k = 0; k < 50; k++) {
      const { msgs, err } = read(stream, rnd);
      expect(err).toBeUndefined();
      expect(msgs.map((m) => m.t)).toEqual(['hello', 'frame', 'frame', 'frame', 'ack']);
      expect(msgs[0]).toEqual({ t: 'hello', version: 1, id: '4242-0a0b0c0d', name: 'lab' });
      for (const [i, p] of packets.entries()) {
        const m = msgs[i + 1] as Extract<WireMessage, { t: 'frame' }>;
        expect(Buffer.from(m.p.data).equals(Buffer.from(p.data))).toBe(true);
        expect(m.p.csum).toEqual(p.csum);
        expect(m.p.gso).toEqual(p.gso);
        expect(m.p.csumValid).toBe(p.csumValid === true);
      }
      expect(msgs[4]).toEqual({ t: 'ack', frames: 32, bytes: 70_000 });
    }
  });

  it('refuses a length past the largest frame at once, and unknown types', () => {
    const r = new WireReader();
    const huge = new Uint8Array(4);
    new DataView(huge.buffer).setUint32(0, MAX_BODY + 1, true);
    expect(r.push(huge, [])).toMatch(/message length/);
    expect(new WireReader().push(Uint8Array.of(1, 0, 0, 0, 77), [])).toMatch(/type 77/);
    expect(new WireReader().push(Uint8Array.of(0, 0, 0, 0), [])).toMatch(/length 0/);
  });

  it('a frame whose offload metadata lies outside it is reported as bad, not thrown on', () => {
    const msgs: WireMessage[] = [];
    const bad = frameBytes({ data: data(60), gso: { type: 1, size: 1000, hdrLen: 200 } });
    expect(new WireReader().push(bad, msgs)).toBeUndefined();
    expect(msgs).toEqual([{ t: 'bad-frame', bytes: 60 }]);
  });

  it('random bytes and mutated streams never throw (seed via WIRE_FUZZ_SEED)', () => {
    let errors = 0;
    for (let k = 0; k < 2000; k++) {
      const b = k % 2 ? data(1 + rnd(300)) : stream.slice();
      if (k % 2 === 0) for (let m = 0; m < 1 + rnd(8); m++) b[rnd(b.length)] = rnd(256);
      const { err } = read(b, rnd);
      if (err) errors++;
    }
    expect(errors).toBeGreaterThan(0);
  });
});
