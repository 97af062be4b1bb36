/**
 * Frames (with their offload metadata) between two threads over a MessagePort, bounded: each
 * side has at most MAX_FRAMES frames / MAX_BYTES bytes sent and not yet acknowledged by the
 * other, and drops (and counts) beyond that, as a full switch port queue does. The receiver
 * acknowledges every ACK_EVERY frames. A frame's bytes are copied into a buffer of their own
 * that is transferred, not cloned, so the sender's packet stays valid and nothing is copied twice.
 *
 * What arrives is checked before it becomes a NetPacket (the other thread runs guest-driven
 * code); anything malformed is dropped and counted, never thrown on.
 */
import type { MessagePort } from 'node:worker_threads';
import { ETH_HLEN, GSO_NONE, GSO_TCPV4, GSO_TCPV6, MAX_PACKET, type NetPacket } from './packet.js';

/** Frames sent and not yet acknowledged, at most. */
export const MAX_FRAMES = 256;
/** Bytes sent and not yet acknowledged, at most. */
export const MAX_BYTES = 4 << 20;
/** The receiver acknowledges after this many frames. */
const ACK_EVERY = 32;

/** A frame on the wire between threads. */
interface FrameMsg {
  t: 'f';
  d: ArrayBuffer;
  /** csum start, offset */
  c?: [number, number];
  /** gso type, size, header length */
  g?: [number, number, number];
  v?: true;
}
interface AckMsg {
  t: 'a';
  n: number;
  b: number;
}

export interface FrameLinkStats {
  sent: number;
  received: number;
  /** Frames not sent because the other side had too many unacknowledged. */
  dropped: number;
  /** Messages that were not a well-formed frame or acknowledgement. */
  malformed: number;
}

export class FrameLink {
  /** Frames from the other thread. */
  onFrame: ((p: NetPacket) => void) | undefined;
  /** The link closed, from either side (or the other thread ended). Called once. */
  onClose: (() => void) | undefined;
  readonly stats: FrameLinkStats = { sent: 0, received: 0, dropped: 0, malformed: 0 };
  private inFlight = { frames: 0, bytes: 0 };
  private unacked = { frames: 0, bytes: 0 };
  private isClosed = false;

  constructor(private readonly port: MessagePort) {
    port.on('message', (m: unknown) => this.onMessage(m));
    port.on('close', () => this.ended());
    // A link never keeps its thread alive by itself: the VM (or the host) does.
    port.unref();
  }

  get closed(): boolean {
    return this.isClosed;
  }

  /** Sends a frame; false (and counted) when closed or the other side is too far behind. */
  send(p: NetPacket): boolean {
    const n = p.data.length;
    if (this.isClosed) return false;
    if (this.inFlight.frames >= MAX_FRAMES || this.inFlight.bytes + n > MAX_BYTES) {
      this.stats.dropped++;
      return false;
    }
    const d = p.data.slice().buffer;
    const m: FrameMsg = { t: 'f', d };
    if (p.csum) m.c = [p.csum.start, p.csum.offset];
    if (p.gso) m.g = [p.gso.type, p.gso.size, p.gso.hdrLen];
    if (p.csumValid) m.v = true;
    this.port.postMessage(m, [d]);
    this.inFlight.frames++;
    this.inFlight.bytes += n;
    this.stats.sent++;
    return true;
  }

  /** Closes both ends; the other side's onClose runs. Idempotent. */
  close(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.port.close();
  }

  private ended(): void {
    this.isClosed = true;
    const cb = this.onClose;
    this.onClose = undefined;
    cb?.();
  }

  private onMessage(m: unknown): void {
    if (this.isClosed) return;
    if (typeof m !== 'object' || m === null) {
      this.stats.malformed++;
      return;
    }
    const msg = m as Partial<Omit<FrameMsg, 't'>> & Partial<Omit<AckMsg, 't'>> & { t?: unknown };
    if (msg.t === 'a' && isCount(msg.n) && isCount(msg.b)) {
      this.inFlight.frames = Math.max(0, this.inFlight.frames - msg.n);
      this.inFlight.bytes = Math.max(0, this.inFlight.bytes - msg.b);
      return;
    }
    const p = msg.t === 'f' ? toPacket(msg) : undefined;
    if (!p) {
      this.stats.malformed++;
      return;
    }
    this.stats.received++;
    this.unacked.frames++;
    this.unacked.bytes += p.data.length;
    if (this.unacked.frames >= ACK_EVERY) {
      const ack: AckMsg = { t: 'a', n: this.unacked.frames, b: this.unacked.bytes };
      this.port.postMessage(ack);
      this.unacked = { frames: 0, bytes: 0 };
    }
    this.onFrame?.(p);
  }
}

function isCount(x: unknown): x is number {
  return typeof x === 'number' && Number.isInteger(x) && x >= 0;
}

function toPacket(m: Partial<Omit<FrameMsg, 't'>>): NetPacket | undefined {
  if (!(m.d instanceof ArrayBuffer)) return undefined;
  if (m.d.byteLength < ETH_HLEN || m.d.byteLength > MAX_PACKET) return undefined;
  let csum: NetPacket['csum'];
  if (m.c !== undefined) {
    if (!Array.isArray(m.c) || !m.c.every(isCount)) return undefined;
    csum = { start: m.c[0], offset: m.c[1] };
  }
  let gso: NetPacket['gso'];
  if (m.g !== undefined) {
    if (!Array.isArray(m.g) || !m.g.every(isCount)) return undefined;
    const [type, size, hdrLen] = m.g;
    if (type !== GSO_NONE && type !== GSO_TCPV4 && type !== GSO_TCPV6) return undefined;
    gso = { type, size, hdrLen };
  }
  return { data: new Uint8Array(m.d), csum, gso, csumValid: m.v === true };
}
