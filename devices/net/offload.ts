/**
 * Software offloads for NICs and back ends that cannot take a packet's metadata: finish a
 * partial checksum, or cut a large TCP segment into MSS-sized frames with their own IP and TCP
 * headers and checksums (what a NIC's TSO engine or Linux's GSO does). Used by e1000's TSO, by
 * an e1000 receiving a large segment from a virtio-net, and by a virtio-net whose driver did not
 * negotiate the guest offloads.
 *
 * Headers are untrusted: every offset is checked against the frame, and a packet that cannot be
 * parsed is refused (an empty list), never thrown on.
 */
import { ETH_HLEN, GSO_NONE, GSO_TCPV4, GSO_TCPV6, MAX_PACKET, type NetPacket } from './packet.js';

const ETHERTYPE_IPV4 = 0x0800;
const ETHERTYPE_IPV6 = 0x86dd;
const ETHERTYPE_VLAN = 0x8100;
const PROTO_TCP = 6;
/** Where a UDP header keeps its checksum: a partial checksum at this offset is UDP's. */
const UDP_CSUM_OFFSET = 6;
const TCP_FIN = 0x01;
const TCP_PSH = 0x08;
const TCP_CWR = 0x80;
/** Segments per large packet at most (64 KiB / 88-byte minimum MSS, rounded up). */
const MAX_SEGMENTS = 1024;
/** Smallest MSS we cut with: anything smaller is hostile (a 64 KiB packet into 1-byte frames). */
const MIN_MSS = 64;

/**
 * One's-complement sum of data[start, end) added to `sum` (not folded).
 *
 * The bulk is read as little-endian 32-bit words (two 16-bit words each) and byte-swapped once
 * at the end: the one's-complement sum does not depend on byte order (RFC 1071 §2(B)), and V8
 * compiles DataView reads to plain loads, so this is ~2.4× the byte-pair loop on 64 KiB — it
 * runs over every byte e1000's TSO and the NAT's checks touch.
 */
export function onesSum(data: Uint8Array, start: number, end: number, sum = 0): number {
  let i = start;
  if (end - start >= 64) {
    const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
    let swapped = 0;
    for (; i + 7 < end; i += 8) {
      const a = dv.getUint32(i, true);
      const b = dv.getUint32(i + 4, true);
      swapped += (a >>> 16) + (a & 0xffff) + (b >>> 16) + (b & 0xffff);
    }
    swapped = fold(swapped);
    sum += ((swapped & 0xff) << 8) | (swapped >>> 8);
  }
  for (; i + 1 < end; i += 2) sum += (data[i] << 8) | data[i + 1];
  if (i < end) sum += data[i] << 8;
  return sum;
}

/** Folds a 32-bit-ish sum to 16 bits. */
export function fold(sum: number): number {
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return sum;
}

/** The Internet checksum of data[start, end) (already complemented). */
export function internetChecksum(data: Uint8Array, start: number, end: number, seed = 0): number {
  return ~fold(onesSum(data, start, end, seed)) & 0xffff;
}

/** Big-endian 16-bit read and write (network byte order). */
export const get16 = (d: Uint8Array, o: number): number => (d[o] << 8) | d[o + 1];
export const put16 = (d: Uint8Array, o: number, v: number): void => {
  d[o] = (v >>> 8) & 0xff;
  d[o + 1] = v & 0xff;
};

/** Where the L3 header starts (after an optional VLAN tag) and its ethertype. */
export function l3Offset(d: Uint8Array): { off: number; type: number } | undefined {
  if (d.length < ETH_HLEN) return undefined;
  let type = get16(d, 12);
  let off = ETH_HLEN;
  if (type === ETHERTYPE_VLAN) {
    if (d.length < ETH_HLEN + 4) return undefined;
    type = get16(d, 16);
    off += 4;
  }
  return { off, type };
}

/**
 * Finishes a partial checksum in place: the field already holds the pseudo-header sum (as
 * virtio's NEEDS_CSUM and e1000's TUCSO seed say), so fold in the rest and complement.
 * False when the offsets are outside the frame.
 */
export function finishChecksum(d: Uint8Array, start: number, offset: number): boolean {
  const field = start + offset;
  if (start < 0 || offset < 0 || field + 2 > d.length) return false;
  const sum = onesSum(d, start, d.length);
  let c = ~fold(sum) & 0xffff;
  // A UDP checksum (the field 6 bytes into its header) of 0 would mean "none": send all ones
  // instead, the same value in one's complement. TCP and ICMPv6 keep 0: a sender never
  // computes 0xffff for them, and checkers (Wireshark) flag it.
  if (c === 0 && offset === UDP_CSUM_OFFSET) c = 0xffff;
  put16(d, field, c);
  return true;
}

/**
 * Turns a packet into frames that can go on a wire: a partial checksum is finished, a large
 * TCP segment is cut — into MSS frames, or into the `pieces` (payload lengths) a NIC model cut
 * it into (cutTcp's own answer, so the frames are the ones that model wrote). Returns [] (and
 * the caller counts a drop) if the headers do not parse. The input packet is not modified.
 */
export function toWireFrames(p: NetPacket, pieces?: readonly number[]): NetPacket[] {
  if (p.gso && p.gso.type !== GSO_NONE) {
    return segmentTcp(p.data, p.gso.size, pieces && followPieces(pieces));
  }
  if (p.csum) {
    const d = p.data.slice();
    if (!finishChecksum(d, p.csum.start, p.csum.offset)) return [];
    return [{ data: d, csumValid: true }];
  }
  return [p];
}

/** Parsed Ethernet/IP/TCP offsets of a TCP packet. */
interface TcpLayout {
  ipOff: number;
  v4: boolean;
  tcpOff: number;
  hdrEnd: number;
  /** End of the IP packet: bytes after it (link-layer padding) are not TCP payload. */
  end: number;
}

/** IPv6 extension headers we can step over when cutting: their contents do not change. */
const IPV6_HOP_BY_HOP = 0;
const IPV6_DEST_OPTS = 60;
/** Extension headers followed at most (a real stack sends none or one before TCP). */
const MAX_IPV6_EXT = 4;

/**
 * The end of the IP packet from its length field: 0 means "the rest of the frame" (e1000's
 * driver clears IPv4 tot_len and IPv6 payload_len for TSO); a length beyond the frame is a
 * truncated or lying header (undefined); a shorter one leaves padding after the packet.
 */
function ipEnd(d: Uint8Array, ipOff: number, hdr: number, stated: number): number | undefined {
  if (stated === 0) return d.length;
  const end = ipOff + hdr + stated;
  return end > d.length ? undefined : end;
}

/**
 * Where TCP starts after the IPv6 header: hop-by-hop (first only) and destination options
 * are stepped over; a routing header (the pseudo-header would name its final destination),
 * a fragment, AH/ESP or anything else is refused.
 */
function ipv6TcpOffset(d: Uint8Array, ipOff: number, end: number): number | undefined {
  let next = d[ipOff + 6];
  let off = ipOff + 40;
  for (let i = 0; next !== PROTO_TCP; i++) {
    if (i >= MAX_IPV6_EXT) return undefined;
    if (next === IPV6_HOP_BY_HOP ? i !== 0 : next !== IPV6_DEST_OPTS) return undefined;
    if (off + 8 > end) return undefined;
    next = d[off];
    off += (d[off + 1] + 1) * 8;
  }
  return off;
}

function parseTcp(d: Uint8Array): TcpLayout | undefined {
  const l3 = l3Offset(d);
  if (!l3) return undefined;
  const ipOff = l3.off;
  let tcpOff: number | undefined;
  let end: number | undefined;
  let v4: boolean;
  if (l3.type === ETHERTYPE_IPV4) {
    if (d.length < ipOff + 20 || d[ipOff] >> 4 !== 4) return undefined;
    const ihl = (d[ipOff] & 0xf) * 4;
    if (ihl < 20 || d[ipOff + 9] !== PROTO_TCP) return undefined;
    const totLen = get16(d, ipOff + 2);
    if (totLen !== 0 && totLen < ihl) return undefined;
    end = ipEnd(d, ipOff, 0, totLen);
    tcpOff = ipOff + ihl;
    v4 = true;
  } else if (l3.type === ETHERTYPE_IPV6) {
    if (d.length < ipOff + 40 || d[ipOff] >> 4 !== 6) return undefined;
    end = ipEnd(d, ipOff, 40, get16(d, ipOff + 4));
    if (end === undefined) return undefined;
    tcpOff = ipv6TcpOffset(d, ipOff, end);
    v4 = false;
  } else return undefined;
  if (end === undefined || tcpOff === undefined || end < tcpOff + 20) return undefined;
  const thl = (d[tcpOff + 12] >> 4) * 4;
  if (thl < 20 || end < tcpOff + thl) return undefined;
  return { ipOff, v4, tcpOff, hdrEnd: tcpOff + thl, end };
}

/** Writes IP lengths and checksums and the TCP checksum of one complete frame. */
function fixTcpFrame(f: Uint8Array, L: TcpLayout): void {
  const tcpLen = f.length - L.tcpOff;
  let pseudo: number;
  if (L.v4) {
    put16(f, L.ipOff + 2, f.length - L.ipOff);
    put16(f, L.ipOff + 10, 0);
    put16(f, L.ipOff + 10, internetChecksum(f, L.ipOff, L.tcpOff));
    pseudo = onesSum(f, L.ipOff + 12, L.ipOff + 20) + PROTO_TCP + tcpLen;
  } else {
    // payload_len counts extension headers too; the pseudo-header (RFC 8200 8.1) has both
    // addresses, the TCP length and next header 6, whatever extension headers come first.
    put16(f, L.ipOff + 4, f.length - L.ipOff - 40);
    pseudo = onesSum(f, L.ipOff + 8, L.ipOff + 40) + PROTO_TCP + tcpLen;
  }
  put16(f, L.tcpOff + 16, 0);
  put16(f, L.tcpOff + 16, internetChecksum(f, L.tcpOff, f.length, pseudo));
}

/**
 * Cuts a TCP packet (IPv4, or IPv6 with at most hop-by-hop/destination options before TCP)
 * into frames of at most `mss` payload bytes. Lengths, IPv4 IDs, sequence numbers and both
 * checksums are computed from scratch, so the TCP checksum seed the sender left does not
 * matter. An IP length of 0 means "up to the end of the frame" (e1000's driver clears tot_len
 * and payload_len for TSO); a non-zero one is believed if it fits (what follows is padding)
 * and refused if it claims more than the frame holds. FIN and PSH stay on the last frame
 * only, CWR on the first only.
 *
 * `pieceLength`, when given, may end each piece that has more after it up to 7 bytes early
 * (the bytes open the next piece): a NIC model uses it to put each piece's payload at the
 * guest address its stream offset wants (e1000's receive, where the descriptors are known).
 */
export function segmentTcp(d: Uint8Array, mss: number, pieceLength?: PieceLength): NetPacket[] {
  const cut = cutTcp(d, mss, pieceLength);
  if (!cut) return [];
  return cut.pieces.map((n, i) => {
    const f = new Uint8Array(cut.hdrLen + n);
    cut.write(i, f);
    return { data: f, csumValid: true };
  });
}

/** A TCP packet planned into pieces (cutTcp), each written where its receiver wants it. */
export interface TcpCut {
  /** The headers each piece repeats (Ethernet to TCP options). */
  readonly hdrLen: number;
  /** Each piece's payload length, in order (one 0 for a packet without payload). */
  readonly pieces: readonly number[];
  /** Writes piece i, headers and checksums complete, into dst: exactly hdrLen + pieces[i] bytes. */
  write(i: number, dst: Uint8Array): void;
}

/**
 * segmentTcp without the frames: where the pieces go and a writer for each, so a NIC model can
 * write them straight into the guest's buffers (no copy of each piece on the way). Undefined
 * for a packet segmentTcp refuses.
 */
export function cutTcp(d: Uint8Array, mss: number, pieceLength?: PieceLength): TcpCut | undefined {
  if (d.length > MAX_PACKET) return undefined;
  const L = parseTcp(d);
  if (!L) return undefined;
  const payload = L.end - L.hdrEnd;
  if (payload <= 0) return { hdrLen: L.end, pieces: [0], write: (_, f) => writeWhole(d, L, f) };
  if (mss < MIN_MSS) return undefined;
  // Pieces are at least mss - 7 bytes (pieceLength's answer is clamped), so this bounds them.
  if (Math.ceil(payload / (pieceLength ? mss - 7 : mss)) > MAX_SEGMENTS) return undefined;
  const pieces: number[] = [];
  const starts: number[] = [];
  for (let done = 0; done < payload;) {
    const left = payload - done;
    let len = Math.min(mss, left);
    if (pieceLength && left > mss) {
      const want = pieceLength(L.hdrEnd, done, len, left);
      if (Number.isInteger(want) && want >= len - 7 && want < len) len = want;
    }
    starts.push(done);
    pieces.push(len);
    done += len;
  }
  const seq0 = ((d[L.tcpOff + 4] << 24) | (d[L.tcpOff + 5] << 16) | get16(d, L.tcpOff + 6)) >>> 0;
  const id0 = L.v4 ? get16(d, L.ipOff + 4) : 0;
  const flags = d[L.tcpOff + 13];
  const last = pieces.length - 1;
  const write = (i: number, f: Uint8Array): void => {
    const start = L.hdrEnd + starts[i];
    f.set(d.subarray(0, L.hdrEnd));
    f.set(d.subarray(start, start + pieces[i]), L.hdrEnd);
    const seq = (seq0 + starts[i]) >>> 0;
    f[L.tcpOff + 4] = seq >>> 24;
    f[L.tcpOff + 5] = (seq >>> 16) & 0xff;
    put16(f, L.tcpOff + 6, seq & 0xffff);
    let fl = flags;
    if (i !== last) fl &= ~(TCP_FIN | TCP_PSH);
    if (i !== 0) fl &= ~TCP_CWR;
    f[L.tcpOff + 13] = fl;
    if (L.v4) put16(f, L.ipOff + 4, (id0 + i) & 0xffff);
    fixTcpFrame(f, L);
  };
  return { hdrLen: L.hdrEnd, pieces, write };
}

/** A packet without payload: its headers (up to the IP length) with lengths and checksums. */
function writeWhole(d: Uint8Array, L: TcpLayout, f: Uint8Array): void {
  f.set(d.subarray(0, L.end));
  fixTcpFrame(f, L);
}

/**
 * How long a piece of a large segment is (segmentTcp): `full` (the MSS) is the most it may
 * be; an answer from full - 7 to full - 1 ends it early, anything else is taken as `full`.
 * Asked only for pieces with more after them: `hdrLen` is each frame's header length, `done`
 * the payload bytes before this piece, `left` the bytes from it on.
 */
export type PieceLength = (hdrLen: number, done: number, full: number, left: number) => number;

/**
 * A PieceLength that makes the cut another cutTcp of the same packet made (its `pieces`), so
 * the frames can be built again later (the capture of what an e1000 placed). A plan that does
 * not fit the packet only gets MSS pieces where it does not: cutTcp checks every answer.
 */
export function followPieces(pieces: readonly number[]): PieceLength {
  let i = 0;
  let at = 0; // payload bytes in pieces[0, i)
  return (_hdrLen, done, full) => {
    while (i < pieces.length && at < done) at += pieces[i++];
    return at === done && i < pieces.length ? pieces[i] : full;
  };
}

/** The GSO type a TCP packet would need (for e1000's TSO): by its IP version. */
export function tcpGsoType(d: Uint8Array): typeof GSO_TCPV4 | typeof GSO_TCPV6 | undefined {
  const L = parseTcp(d);
  if (!L) return undefined;
  return L.v4 ? GSO_TCPV4 : GSO_TCPV6;
}
