/**
 * Software offloads on IPv6 frames built by hand: TSO6/GSO segmentation (what an e1000 receiving
 * a virtio-net's large segment gets), partial checksums, and hostile headers — extension
 * headers, lying payload lengths, truncation — refused (an empty list), never thrown on.
 * Checksums are verified here with a sum written independently of offload.ts.
 */
import { describe, it, expect } from 'vitest';
import { GSO_TCPV6 } from '../../../devices/net/packet.js';
import {
  finishChecksum,
  segmentTcp,
  tcpGsoType,
  toWireFrames,
} from '../../../devices/net/offload.js';
import { sum16 } from './user-frames.js';

const SRC = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]; // fd00::1
const DST = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]; // fd00::2
const ETH = 14;
const IP6 = 40;

/** The IPv6 pseudo-header of RFC 8200 section 8.1 for a TCP segment of `len` bytes. */
function pseudo(f: Uint8Array, len: number): number[] {
  return [
    ...f.subarray(ETH + 8, ETH + 40),
    (len >>> 24) & 0xff,
    (len >>> 16) & 0xff,
    (len >>> 8) & 0xff,
    len & 0xff,
    0,
    0,
    0,
    6,
  ];
}

interface Opts {
  /** Extension headers before TCP: [next-header value of this header's type, bytes]. */
  ext?: { type: number; bytes: number[] }[];
  /** payload_len to write (default: the true length). */
  payloadLen?: number;
  /** Bytes after the IP packet (link padding). */
  pad?: number;
  flags?: number;
}

/** Ethernet + IPv6 (+ extension headers) + 20-byte TCP header + `payload` bytes. */
function tcp6(payload: number, o: Opts = {}): Uint8Array {
  const ext = o.ext ?? [];
  const extLen = ext.reduce((n, e) => n + e.bytes.length, 0);
  const ipLen = IP6 + extLen + 20 + payload;
  const d = new Uint8Array(ETH + ipLen + (o.pad ?? 0));
  d.set([0x52, 0, 0, 0, 0, 2, 0x52, 0, 0, 0, 0, 1, 0x86, 0xdd], 0);
  const ip = ETH;
  d[ip] = 0x60;
  const pl = o.payloadLen ?? ipLen - IP6;
  d[ip + 4] = pl >> 8;
  d[ip + 5] = pl & 0xff;
  d[ip + 6] = ext.length ? ext[0].type : 6;
  d[ip + 7] = 64;
  d.set(SRC, ip + 8);
  d.set(DST, ip + 24);
  let off = ip + IP6;
  for (const [i, e] of ext.entries()) {
    d.set(e.bytes, off);
    d[off] = i + 1 < ext.length ? ext[i + 1].type : 6;
    off += e.bytes.length;
  }
  const t = off;
  d.set([0x9c, 0x40, 0x00, 0x50], t); // ports 40000 → 80
  d.set([0xff, 0xff, 0xfc, 0x00], t + 4); // seq close to wrapping
  d[t + 12] = 0x50;
  d[t + 13] = o.flags ?? 0x19; // FIN PSH ACK
  d[t + 14] = 0xff;
  d[t + 15] = 0xff;
  for (let i = 0; i < payload; i++) d[t + 20 + i] = (i * 7 + 3) & 0xff;
  return d;
}

/** An 8-byte hop-by-hop or destination-options header (PadN). */
const opts8 = (type: number) => ({ type, bytes: [0, 0, 1, 4, 0, 0, 0, 0] });

/** Checks one wire segment; returns its TCP payload and sequence number. */
function checkSegment(f: Uint8Array, tcpOff: number): { payload: Uint8Array; seq: number } {
  expect(f[ETH] >> 4).toBe(6);
  const payloadLen = (f[ETH + 4] << 8) | f[ETH + 5];
  expect(ETH + IP6 + payloadLen).toBe(f.length);
  const tcpLen = f.length - tcpOff;
  expect(sum16(pseudo(f, tcpLen), f.subarray(tcpOff))).toBe(0xffff);
  const seq =
    ((f[tcpOff + 4] << 24) | (f[tcpOff + 5] << 16) | (f[tcpOff + 6] << 8) | f[tcpOff + 7]) >>> 0;
  return { payload: f.subarray(tcpOff + 20), seq };
}

describe('IPv6 TCP segmentation (TSO6 / GSO in software)', () => {
  it('cuts a 64 KiB segment into MSS frames with IPv6 payload lengths and pseudo-header checksums', () => {
    const n = 65_000;
    const d = tcp6(n);
    expect(tcpGsoType(d)).toBe(GSO_TCPV6);
    const segs = toWireFrames({
      data: d,
      csum: { start: ETH + IP6, offset: 16 },
      gso: { type: GSO_TCPV6, size: 1440, hdrLen: ETH + IP6 + 20 },
    });
    expect(segs).toHaveLength(Math.ceil(n / 1440));
    const t = ETH + IP6;
    const data: number[] = [];
    for (const [i, s] of segs.entries()) {
      expect(s.csumValid).toBe(true);
      expect(s.data.length).toBeLessThanOrEqual(ETH + IP6 + 20 + 1440);
      const { payload, seq } = checkSegment(s.data, t);
      expect(seq).toBe((0xfffffc00 + i * 1440) >>> 0); // wraps past 2^32
      expect(s.data[t + 13] & 0x09).toBe(i === segs.length - 1 ? 0x09 : 0); // FIN/PSH last only
      data.push(...payload);
    }
    expect(Buffer.from(data).equals(Buffer.from(d.subarray(t + 20)))).toBe(true);
    expect(d[t + 16] | d[t + 17]).toBe(0); // the input is not modified
  });

  it('steps over hop-by-hop and destination options, keeping them in every segment', () => {
    const d = tcp6(3000, { ext: [opts8(0), opts8(60)] });
    const segs = segmentTcp(d, 1000);
    expect(segs).toHaveLength(3);
    const t = ETH + IP6 + 16;
    for (const s of segs) {
      expect(s.data[ETH + 6]).toBe(0);
      expect(Array.from(s.data.subarray(ETH + IP6, t))).toEqual(
        Array.from(d.subarray(ETH + IP6, t)),
      );
      expect(checkSegment(s.data, t).payload).toHaveLength(1000);
    }
  });

  it('takes payload_len 0 as "the whole frame" (e1000 TSO) and drops padding after a shorter one', () => {
    const zero = segmentTcp(tcp6(2000, { payloadLen: 0 }), 1000);
    expect(zero).toHaveLength(2);
    for (const s of zero) checkSegment(s.data, ETH + IP6);
    // 26 bytes of padding after the packet must not become TCP payload
    const padded = tcp6(1500, { pad: 26 });
    padded.fill(0xee, padded.length - 26);
    const segs = segmentTcp(padded, 1000);
    expect(segs.map((s) => s.data.length - ETH - IP6 - 20)).toEqual([1000, 500]);
    for (const s of segs) checkSegment(s.data, ETH + IP6);
    // a small (non-GSO) packet with padding: one frame, the padding cut off
    const small = segmentTcp(tcp6(0, { pad: 6, flags: 0x10 }), 1000);
    expect(small).toHaveLength(1);
    expect(small[0].data.length).toBe(ETH + IP6 + 20);
    checkSegment(small[0].data, ETH + IP6);
  });

  it('finishes a partial TCP checksum over IPv6 from the pseudo-header seed', () => {
    const d = tcp6(333);
    const t = ETH + IP6;
    const seed = sum16(pseudo(d, d.length - t)); // what Linux leaves: ~csum_ipv6_magic(.., 0)
    d[t + 16] = seed >> 8;
    d[t + 17] = seed & 0xff;
    const out = toWireFrames({ data: d, csum: { start: t, offset: 16 } });
    expect(out).toHaveLength(1);
    checkSegment(out[0].data, t);
    expect(finishChecksum(d, t, 16)).toBe(true);
    expect(finishChecksum(d, t, d.length)).toBe(false);
  });

  it('a TCP checksum that comes out 0 stays 0; a UDP one becomes all ones (0 is "none")', () => {
    for (const [proto, at, want] of [
      [6, 16, 0x0000],
      [17, 6, 0xffff],
    ] as const) {
      const d = tcp6(40);
      const t = ETH + IP6;
      d[ETH + 6] = proto;
      const field = t + at;
      d[field] = d[field + 1] = 0;
      // Make the whole sum (pseudo-header included) 0xffff with the last two payload bytes,
      // so the complemented checksum is 0.
      d[d.length - 2] = d[d.length - 1] = 0;
      const rest = sum16(
        pseudo(d, d.length - t).map((b, i) => (i === 39 ? proto : b)),
        d.subarray(t),
      );
      const fix = 0xffff - rest;
      d[d.length - 2] = fix >> 8;
      d[d.length - 1] = fix & 0xff;
      const seed = sum16(pseudo(d, d.length - t).map((b, i) => (i === 39 ? proto : b)));
      d[field] = seed >> 8;
      d[field + 1] = seed & 0xff;
      expect(finishChecksum(d, t, at)).toBe(true);
      expect((d[field] << 8) | d[field + 1]).toBe(want);
    }
  });

  it('refuses hostile IPv6 headers instead of throwing', () => {
    const refused = (d: Uint8Array, mss = 1000) => segmentTcp(d, mss).length === 0;
    // extension headers it cannot or must not step over
    expect(refused(tcp6(2000, { ext: [{ type: 43, bytes: [0, 0, 0, 0, 0, 0, 0, 0] }] }))).toBe(
      true,
    ); // routing
    expect(refused(tcp6(2000, { ext: [{ type: 44, bytes: [0, 0, 0, 1, 0, 0, 0, 7] }] }))).toBe(
      true,
    ); // fragment
    expect(refused(tcp6(2000, { ext: [{ type: 51, bytes: [0, 1, 0, 0, 0, 0, 0, 0] }] }))).toBe(
      true,
    ); // AH
    expect(refused(tcp6(2000, { ext: [opts8(60), opts8(0)] }))).toBe(true); // hop-by-hop not first
    expect(refused(tcp6(2000, { ext: Array.from({ length: 5 }, () => opts8(60)) }))).toBe(true);
    const udp = tcp6(2000);
    udp[ETH + 6] = 17;
    expect(refused(udp)).toBe(true);
    // an extension header whose length runs past the packet
    const long = tcp6(100, { ext: [opts8(60)] });
    long[ETH + IP6 + 1] = 255; // (255 + 1) * 8 bytes
    expect(refused(long)).toBe(true);
    // payload_len larger than the frame, or too small to hold the TCP header
    expect(refused(tcp6(2000, { payloadLen: 2021 }))).toBe(true);
    expect(refused(tcp6(2000, { payloadLen: 10 }))).toBe(true);
    // truncated: inside the IPv6 header, inside the TCP header; wrong version nibble
    const full = tcp6(2000);
    expect(refused(full.subarray(0, ETH + 30))).toBe(true);
    expect(refused(tcp6(0).subarray(0, ETH + IP6 + 12))).toBe(true);
    const v4 = tcp6(2000);
    v4[ETH] = 0x40;
    expect(refused(v4)).toBe(true);
    // TCP data offset beyond the packet; MSS below the minimum
    const thl = tcp6(10);
    thl[ETH + IP6 + 12] = 0xf0;
    expect(refused(thl)).toBe(true);
    expect(refused(tcp6(5000), 8)).toBe(true);
    expect(toWireFrames({ data: udp, gso: { type: GSO_TCPV6, size: 1000, hdrLen: 74 } })).toEqual(
      [],
    );
  });

  it('survives random corruption: never throws, and whatever comes out is well-formed', () => {
    let seed = 12345;
    const rnd = (n: number) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const base = tcp6(4000, { ext: [opts8(0)] });
    let accepted = 0;
    for (let round = 0; round < 3000; round++) {
      const d = base.slice(0, ETH + rnd(base.length - ETH + 1));
      for (let k = rnd(4); k >= 0; k--) d[ETH + rnd(IP6 + 30)] = rnd(256);
      let segs: ReturnType<typeof segmentTcp> = [];
      expect(() => (segs = segmentTcp(d, 64 + rnd(2000)))).not.toThrow();
      for (const s of segs) {
        if (s.data[ETH] >> 4 !== 6) continue;
        const pl = (s.data[ETH + 4] << 8) | s.data[ETH + 5];
        expect(ETH + IP6 + pl).toBe(s.data.length);
      }
      if (segs.length) accepted++;
    }
    expect(accepted).toBeGreaterThan(0); // not everything was refused
  });
});
