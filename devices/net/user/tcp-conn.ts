/**
 * One proxied TCP connection: the guest's end is terminated here (sequence numbers, windows,
 * retransmission, FIN/RST), the host's end is a net.Socket.
 *
 * Guest → host: in-order data is written to the socket as a view of the guest's frame (no
 * copy); the window we advertise is what is left of the connection's buffer share
 * (`tcpRecvBuffer`, less when many connections share `tcpRecvTotal`) after the socket's
 * unwritten bytes, so a slow host reader closes the guest's window instead of growing a
 * queue. Out-of-order segments are not kept (the guest resends after our duplicate ACK).
 *
 * Host → guest: socket data waits in a queue of at most `tcpSendBuffer` bytes (the socket is
 * paused beyond that) until the guest acknowledges it; segments go out within the guest's
 * window, at most MAX_FLIGHT frames at once (the NIC's receive backlog is bounded), resent from
 * the first unacknowledged byte on timeout or after three duplicate ACKs. A segment carries up
 * to 64 KiB, as a TSO frame whose gso size is the guest's MSS (tcp-segment.ts): a virtio-net
 * guest that negotiated GUEST_TSO4 takes it in one piece, so a download crosses the ring in
 * large frames; other receivers cut it into MSS frames with full checksums.
 */
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { NetPacket } from '../packet.js';
import type { UserNetLimits } from './config.js';
import type { Counters } from './counters.js';
import {
  ACK,
  FIN,
  MAX_TSO_PAYLOAD,
  PSH,
  RST,
  SYN,
  tcpPacket,
  tcpPayloadAt,
  type IpAddr,
  type TcpSegment,
} from './tcp-segment.js';

/** What a connection needs from the table that owns it. */
export interface ConnOwner {
  readonly limits: UserNetLimits;
  readonly counters: Counters;
  /** Connections open (they share `limits.tcpRecvTotal`). */
  readonly size: number;
  /** Sends a frame to the guest's MAC. */
  emit(build: (guestMac: Uint8Array, ourMac: Uint8Array) => NetPacket): void;
  /** Where byte 0 of a frame lands in the guest's buffer, mod 8, if the NIC knows (NetBackend). */
  rxFrameAlign(): number | undefined;
  /** The connection is finished: forget it. */
  removed(c: TcpConn): void;
  /** Run flush() after the current burst of guest frames (ACKs and socket writes coalesce). */
  wantFlush(c: TcpConn): void;
}

export type ConnState =
  /** Guest sent SYN; the host socket is connecting. */
  | 'connecting'
  /** Host socket connected; our SYN-ACK is out. */
  | 'syn-rcvd'
  /** A forwarded host connection: our SYN to the guest is out. */
  | 'syn-sent'
  | 'open'
  | 'closed';

/** Our MSS towards the guest's stack (a 1500-byte MTU). */
export const OUR_MSS = 1460;
/** The same over IPv6 (its header is 20 bytes longer). */
export const OUR_MSS6 = 1440;
/** The window scale we use when the guest offers scaling (windows up to 8 MiB). */
const OUR_WSCALE = 7;
/**
 * Frames in flight towards the guest at most (the NIC backlog holds 256 frames). Each is up to
 * 64 KiB, so the guest's window and `tcpSendBuffer` are what bound the bytes.
 */
const MAX_FLIGHT = 48;
/**
 * MSS pieces per TSO frame at most: what 64 KiB holds at a 1460-byte MSS. A receiver that cuts
 * the frame needs a buffer per piece at once (an e1000 descriptor each), so a guest announcing a
 * small MSS gets smaller frames rather than one that needs more buffers than its ring has.
 */
const MAX_TSO_SEGS = 44;
const RTO_MIN_MS = 200;
const RTO_MAX_MS = 10_000;
/** Queued data (in MSS) from which a segment starting misaligned is cut short (segmentLength). */
const REALIGN_MSS = 4;
/** Smallest MSS we honour: a guest announcing less would make us cut data into slivers. */
const MIN_MSS = 64;

export class TcpConn {
  state: ConnState;
  /** Next sequence number expected from the guest. */
  private rcvNxt = 0;
  private rcvWscale = 0;
  private guestFin = false;
  /** Ours, towards the guest. */
  private readonly iss: number;
  private sndUna: number;
  private sndNxt: number;
  private sndWnd = 0;
  private sndWscale = 0;
  private mss = 536;
  /** Host bytes from sndUna on (sent-unacked, then unsent). */
  private readonly queue: Buffer[] = [];
  private qHead = 0;
  private qBytes = 0;
  /** Where each frame in flight ends (sequence numbers, oldest first): MAX_FLIGHT counts them. */
  private readonly flightEnds: number[] = [];
  private hostEof = false;
  /** Host data arrived since the last flush (pumped then, with what else the loop reads). */
  private hostPending = false;
  private finSent = false;
  private finAcked = false;
  private ackPending = false;
  private corked = false;
  private sockPaused = false;
  private lastWin = 0;
  private timer: NodeJS.Timeout | undefined;
  private rto = RTO_MIN_MS;
  private retries = 0;
  private dupAcks = 0;

  constructor(
    private readonly owner: ConnOwner,
    readonly key: string,
    readonly guestIp: IpAddr,
    readonly guestPort: number,
    /** The host end as the guest sees it (10.0.2.2 or fec0::2 for the host's loopback). */
    readonly peerIp: IpAddr,
    readonly peerPort: number,
    readonly sock: Socket,
    syn: TcpSegment | undefined,
  ) {
    // RFC 6528's clock-driven ISS (a 4 µs tick plus a random offset): a new connection on a
    // 4-tuple the guest still holds in TIME-WAIT starts above the old one and is accepted.
    this.iss = (Math.floor(performance.now() * 250) + Math.floor(Math.random() * 0x10000)) >>> 0;
    this.sndUna = this.sndNxt = this.iss;
    if (syn) {
      // The guest opened it: answer its SYN once the host socket connects.
      this.state = 'connecting';
      this.rcvNxt = (syn.seq + 1) >>> 0;
      this.takeSynOptions(syn);
      this.sndWnd = syn.win; // never scaled in a SYN
      this.arm(owner.limits.tcpConnectMs);
      sock.once('connect', () => this.hostConnected());
    } else {
      // A forwarded host connection: offer it to the guest.
      this.state = 'syn-sent';
      this.sendSyn();
    }
    sock.on('data', (b: Buffer) => this.hostData(b));
    sock.on('end', () => this.hostEnd());
    sock.on('drain', () => this.hostDrained());
    sock.on('error', () => this.hostError());
    sock.on('close', () => this.hostClosed());
  }

  get halfOpen(): boolean {
    return this.state === 'connecting' || this.state === 'syn-rcvd';
  }

  /** Host bytes buffered for the guest (for tests of the bound). */
  get queued(): number {
    return this.qBytes;
  }

  /** A segment from the guest for this connection. */
  segment(s: TcpSegment): void {
    if (this.state === 'closed') return;
    if (s.flags & RST) return this.guestReset(s);
    if (this.state === 'syn-sent') return this.synSentSegment(s);
    if (s.flags & SYN) {
      // A retransmitted SYN: our SYN-ACK (or ACK) was lost.
      this.owner.counters.count('tcp_syn_retransmit');
      if (this.state === 'syn-rcvd') this.sendSynAck();
      else if (this.state === 'open') this.sendAck();
      return;
    }
    if (!(s.flags & ACK) || this.state === 'connecting') {
      this.owner.counters.count('tcp_unexpected');
      return;
    }
    if (!this.ackArrived(s)) return;
    if (this.state === 'syn-rcvd') {
      this.state = 'open';
      this.owner.counters.count('tcp_established');
    }
    if (s.payload.length > 0 || s.flags & FIN) this.guestData(s);
    this.pump();
    this.maybeFinished();
  }

  /**
   * Coalesced work after a burst of guest frames or host reads: push socket writes, send what
   * the host gave meanwhile (as few large segments), send one ACK unless data carried it.
   */
  flush(): void {
    if (this.corked) {
      this.corked = false;
      this.sock.uncork();
    }
    if (this.hostPending) {
      this.hostPending = false;
      this.pump();
    }
    if (this.ackPending && this.state === 'open') this.sendAck();
  }

  /** Drops the connection without a word to the guest (the back end is closing). */
  destroy(): void {
    this.finish();
    this.sock.destroy();
  }

  // ---- guest side -------------------------------------------------------------------------

  /** The MSS we announce: what a 1500-byte MTU leaves in the connection's address family. */
  private get ourMss(): number {
    return typeof this.guestIp === 'number' ? OUR_MSS : OUR_MSS6;
  }

  private takeSynOptions(s: TcpSegment): void {
    this.mss = Math.max(MIN_MSS, Math.min(s.mss ?? 536, this.ourMss));
    if (s.wscale !== undefined) {
      this.sndWscale = s.wscale;
      this.rcvWscale = OUR_WSCALE;
    }
  }

  private synSentSegment(s: TcpSegment): void {
    if ((s.flags & (SYN | ACK)) !== (SYN | ACK) || s.ack !== (this.iss + 1) >>> 0) {
      this.owner.counters.count('tcp_unexpected');
      // An ACK for something else (the guest's challenge ACK from an old connection on this
      // 4-tuple): a RST at its ACK clears the old state, and our next SYN gets through.
      if (s.flags & ACK) {
        this.owner.emit((gm, om) => tcpPacket(gm, om, { ...this.header(RST, s.ack), ack: 0 }, 0));
      }
      return;
    }
    this.rcvNxt = (s.seq + 1) >>> 0;
    this.takeSynOptions(s);
    if (s.wscale === undefined) this.rcvWscale = 0;
    this.sndUna = this.sndNxt = s.ack;
    this.sndWnd = s.win;
    this.state = 'open';
    this.owner.counters.count('tcp_established');
    this.disarm();
    this.retries = 0;
    this.sendAck();
    this.sock.resume();
    this.pump();
  }

  /** Processes the ACK field; false when the segment is to be ignored. */
  private ackArrived(s: TcpSegment): boolean {
    const acked = (s.ack - this.sndUna) | 0;
    const flight = (this.sndNxt - this.sndUna) >>> 0;
    if (acked > flight || acked < -0x4000_0000) {
      // Acknowledges what we never sent: answer with our state, ignore the rest.
      this.owner.counters.count('tcp_bad_ack');
      this.sendAck();
      return false;
    }
    const wnd = s.win << this.sndWscale;
    if (acked > 0) {
      let bytes = acked;
      if (this.finSent && s.ack === this.sndNxt) {
        this.finAcked = true;
        bytes--;
      }
      if (this.state === 'syn-rcvd') bytes--; // our SYN
      this.consume(Math.min(bytes, this.qBytes));
      this.sndUna = s.ack;
      const ends = this.flightEnds;
      while (ends.length > 0 && ((ends[0] - s.ack) | 0) <= 0) ends.shift();
      this.retries = 0;
      this.rto = RTO_MIN_MS;
      this.dupAcks = 0;
      if (this.sndUna === this.sndNxt) this.disarm();
      else this.timer?.refresh();
    } else if (
      acked === 0 &&
      flight > 0 &&
      s.payload.length === 0 &&
      !(s.flags & FIN) &&
      wnd === this.sndWnd &&
      ++this.dupAcks === 3
    ) {
      this.owner.counters.count('tcp_fast_retransmit');
      this.goBack();
    }
    this.sndWnd = wnd;
    return true;
  }

  private guestData(s: TcpSegment): void {
    let data = s.payload;
    let fin = (s.flags & FIN) !== 0;
    const off = (s.seq - this.rcvNxt) | 0;
    if (off > 0) {
      this.owner.counters.count('tcp_out_of_order');
      this.sendAck(); // a duplicate ACK: the guest resends from rcvNxt
      return;
    }
    if (off < 0) {
      if (-off > data.length || (-off === data.length && !fin)) {
        this.owner.counters.count('tcp_duplicate');
        this.sendAck();
        return;
      }
      data = data.subarray(-off);
    }
    if (this.guestFin) {
      if (data.length > 0) this.owner.counters.count('tcp_data_after_fin');
      this.ackLater();
      return;
    }
    const wnd = this.recvWindow();
    if (data.length > wnd) {
      this.owner.counters.count('tcp_beyond_window');
      data = data.subarray(0, wnd);
      fin = false;
    }
    if (data.length > 0) {
      if (!this.corked) {
        this.corked = true;
        this.sock.cork();
        this.owner.wantFlush(this);
      }
      // The frame is never written after the NIC hands it over: the socket keeps a view.
      this.sock.write(Buffer.from(data.buffer, data.byteOffset, data.length));
      this.rcvNxt = (this.rcvNxt + data.length) >>> 0;
      this.owner.counters.count('tcp_bytes_out', data.length);
    }
    if (fin) {
      this.rcvNxt = (this.rcvNxt + 1) >>> 0;
      this.guestFin = true;
      this.sock.end();
    }
    this.ackLater();
  }

  private guestReset(s: TcpSegment): void {
    const off = (s.seq - this.rcvNxt) | 0;
    if (this.state !== 'syn-sent' && (off < 0 || off > Math.max(this.recvWindow(), 1))) {
      this.owner.counters.count('tcp_rst_out_of_window');
      return;
    }
    this.owner.counters.count('tcp_guest_reset');
    this.finish();
    this.sock.resetAndDestroy();
  }

  /** This connection's share of the receive buffers: its own bound, or less when many share. */
  private recvLimit(): number {
    const l = this.owner.limits;
    return Math.min(l.tcpRecvBuffer, Math.floor(l.tcpRecvTotal / Math.max(1, this.owner.size)));
  }

  /** Guest → host bytes we can still take: the socket's unwritten bytes count against it. */
  private recvWindow(): number {
    return Math.max(0, this.recvLimit() - this.sock.writableLength);
  }

  private ackLater(): void {
    if (!this.ackPending) {
      this.ackPending = true;
      this.owner.wantFlush(this);
    }
  }

  // ---- host side --------------------------------------------------------------------------

  private hostConnected(): void {
    if (this.state !== 'connecting') return;
    this.state = 'syn-rcvd';
    this.disarm();
    this.sock.setNoDelay(true);
    this.sendSynAck();
  }

  private hostData(b: Buffer): void {
    if (this.state === 'closed' || this.hostEof) return;
    this.queue.push(b);
    this.qBytes += b.length;
    this.owner.counters.count('tcp_bytes_in', b.length);
    if (this.qBytes >= this.owner.limits.tcpSendBuffer && !this.sockPaused) {
      this.sockPaused = true;
      this.sock.pause();
    }
    // A socket read brings at most 64 KiB, and one turn of the event loop often reads several:
    // sending after the turn makes them one large segment each 64 KiB, not one plus a sliver
    // per read.
    if (!this.hostPending) {
      this.hostPending = true;
      this.owner.wantFlush(this);
    }
  }

  private hostEnd(): void {
    this.hostEof = true;
    this.pump();
    this.maybeFinished();
  }

  private hostDrained(): void {
    // The window we advertised may have been small: tell the guest it opened again.
    if (this.state === 'open' && this.lastWin < this.recvLimit() / 2) {
      this.sendAck();
    }
  }

  private hostError(): void {
    if (this.state === 'closed') return;
    if (this.state === 'connecting') {
      this.owner.counters.count('tcp_refused');
      this.refuse();
      return;
    }
    this.owner.counters.count('tcp_host_reset');
    this.resetGuest();
  }

  private hostClosed(): void {
    if (this.state === 'connecting') this.hostError();
    else if (this.state !== 'closed' && !this.hostEof) {
      this.hostEof = true;
      this.pump();
    }
  }

  // ---- sending ----------------------------------------------------------------------------

  /**
   * The largest segment we send: a whole number of MSS-sized pieces in one IPv4 packet. When the
   * NIC says where frames land (rxFrameAlign), pieces of the MSS rounded down to 8 bytes: a NIC
   * that cuts the segment keeps its pieces word-aligned that way (e1000: 1456 bytes), and 44 of
   * them then fill the segment without a sliver left for a 45th frame.
   */
  private get segMax(): number {
    const piece = this.owner.rxFrameAlign() === undefined ? this.mss : this.mss & ~7;
    return Math.min(Math.floor(MAX_TSO_PAYLOAD / this.mss), MAX_TSO_SEGS) * piece;
  }

  /** Sends what the guest's window allows, then a FIN once the host is done. */
  private pump(): void {
    if (this.state !== 'open') return;
    const wnd = this.sndWnd;
    while (!this.finSent) {
      const off = (this.sndNxt - this.sndUna) >>> 0;
      const avail = this.qBytes - off;
      const room = wnd - off;
      if (avail > 0 && room > 0) {
        if (this.flightEnds.length >= MAX_FLIGHT) break;
        // Sender-side silly window avoidance (RFC 1122 4.2.3.4): while data is in flight, room
        // for less than an MSS and less than half the window waits for the ACK that opens it.
        if (room < avail && room < this.mss && room < wnd / 2 && off > 0) break;
        const n = this.segmentLength(off, Math.min(avail, room, this.segMax), avail);
        this.sendData(off, n, avail === n);
        continue;
      }
      if (avail === 0 && this.hostEof) {
        this.finSent = true;
        this.send(FIN | ACK, this.sndNxt);
        this.sndNxt = (this.sndNxt + 1) >>> 0;
      }
      break;
    }
    if (this.sndNxt !== this.sndUna || this.qBytes > 0) this.arm(this.rto);
    if (this.sockPaused && this.qBytes < this.owner.limits.tcpSendBuffer / 2) {
      this.sockPaused = false;
      this.sock.resume();
    }
  }

  /**
   * How much of the `n` bytes at `off` (from sndUna) the next segment carries: all of them,
   * unless the NIC says where frames land in the guest's buffers (`rxFrameAlign`). Then large
   * segments end where the next one's payload lands at the same address modulo 8 as its
   * stream offset: a guest that reads the stream into an aligned buffer in full blocks (dd,
   * any reader when data is plentiful) copies each byte from and to the same alignment, which
   * the guest's copy_to_user does by words. Otherwise it shifts every word: Linux 6.1 on
   * RISC-V spends 1 instruction per byte instead of 0.3, and a download most of its time
   * there. A segment that starts misaligned while 4 MSS or more are queued is one MSS, ending
   * aligned (an extra frame costs the guest less than shifting 4 MSS). At most 7 bytes move to
   * the next segment; nothing waits for them.
   */
  private segmentLength(off: number, n: number, avail: number): number {
    const frame = this.owner.rxFrameAlign();
    if (frame === undefined || n <= this.mss) return n;
    const target = (frame + tcpPayloadAt(typeof this.guestIp === 'number')) & 7;
    const start = (this.sndUna + off - this.iss - 1) & 7; // the stream offset's
    if (start !== target && avail >= REALIGN_MSS * this.mss) n = this.mss;
    return n < avail ? n - ((start + n - target) & 7) : n;
  }

  /** Sends queue bytes [off, off+n) from sndUna as one segment (a TSO frame beyond the MSS). */
  private sendData(off: number, n: number, last: boolean): void {
    const seq = (this.sndUna + off) >>> 0;
    this.owner.emit((gm, om) => {
      const p = tcpPacket(gm, om, this.header(ACK | (last ? PSH : 0), seq), n, this.mss);
      this.copyOut(p.data, p.data.length - n, off, n); // the payload ends the frame
      return p;
    });
    if (n > this.mss) this.owner.counters.count('tcp_tso_out');
    this.sndNxt = (seq + n) >>> 0;
    this.flightEnds.push(this.sndNxt);
  }

  private copyOut(f: Uint8Array, at: number, off: number, n: number): void {
    let skip = this.qHead + off;
    for (const c of this.queue) {
      if (n === 0) return;
      if (skip >= c.length) {
        skip -= c.length;
        continue;
      }
      const k = Math.min(n, c.length - skip);
      f.set(c.subarray(skip, skip + k), at);
      at += k;
      n -= k;
      skip = 0;
    }
  }

  private consume(n: number): void {
    this.qBytes -= n;
    while (n > 0) {
      const rest = this.queue[0].length - this.qHead;
      if (n < rest) {
        this.qHead += n;
        return;
      }
      n -= rest;
      this.queue.shift();
      this.qHead = 0;
    }
  }

  /** Resends from the first unacknowledged byte. */
  private goBack(): void {
    this.sndNxt = this.sndUna;
    this.flightEnds.length = 0;
    if (!this.finAcked) this.finSent = false;
    this.pump();
  }

  private header(flags: number, seq: number) {
    const win = Math.min(0xffff, this.recvWindow() >>> this.rcvWscale);
    this.lastWin = win << this.rcvWscale;
    this.ackPending = false;
    return {
      src: this.peerIp,
      sport: this.peerPort,
      dst: this.guestIp,
      dport: this.guestPort,
      seq,
      ack: flags & ACK ? this.rcvNxt : 0,
      flags,
      win,
    };
  }

  private send(flags: number, seq: number): void {
    this.owner.emit((gm, om) => tcpPacket(gm, om, this.header(flags, seq), 0));
  }

  private sendAck(): void {
    this.send(ACK, this.sndNxt);
  }

  private sendSyn(): void {
    this.owner.emit((gm, om) =>
      tcpPacket(gm, om, { ...this.header(SYN, this.iss), mss: this.ourMss, wscale: OUR_WSCALE }, 0),
    );
    this.sndNxt = (this.iss + 1) >>> 0;
    this.rcvWscale = OUR_WSCALE; // until the guest's SYN-ACK says whether it scales
    this.arm(this.rto);
  }

  private sendSynAck(): void {
    const h = { ...this.header(SYN | ACK, this.iss), mss: this.ourMss };
    // The window in a SYN is never scaled.
    h.win = Math.min(0xffff, this.recvWindow());
    const wscale = this.sndWscale || this.rcvWscale ? OUR_WSCALE : undefined;
    this.owner.emit((gm, om) => tcpPacket(gm, om, { ...h, wscale }, 0));
    this.sndNxt = (this.iss + 1) >>> 0;
    this.arm(this.rto);
  }

  // ---- timers and the end -----------------------------------------------------------------

  private arm(ms: number): void {
    if (!this.timer) {
      this.timer = setTimeout(() => this.timeout(), ms);
      this.timer.unref();
    }
  }

  private disarm(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private timeout(): void {
    this.timer = undefined;
    if (this.state === 'closed') return;
    if (this.state === 'connecting') {
      this.owner.counters.count('tcp_connect_timeout');
      this.refuse();
      return;
    }
    if (this.state === 'open' && this.sndWnd === 0 && this.qBytes > 0) {
      // Zero-window probe (not a retry: the guest may read again much later): one byte
      // beyond the window makes it restate the window.
      this.rto = Math.min(this.rto * 2, RTO_MAX_MS);
      this.sndNxt = this.sndUna;
      this.flightEnds.length = 0;
      this.sendData(0, 1, true);
      this.arm(this.rto);
      return;
    }
    if (++this.retries > this.owner.limits.tcpRetries) {
      this.owner.counters.count('tcp_retries_exceeded');
      this.resetGuest();
      return;
    }
    this.owner.counters.count('tcp_retransmit');
    this.rto = Math.min(this.rto * 2, RTO_MAX_MS);
    if (this.state === 'syn-sent') this.sendSyn();
    else if (this.state === 'syn-rcvd') this.sendSynAck();
    else this.goBack();
  }

  /** The host refused (or never answered) the guest's connection: RST to its SYN. */
  private refuse(): void {
    this.send(RST | ACK, 0);
    this.finish();
    this.sock.destroy();
  }

  /** The connection is broken: RST to the guest, and to the host peer. */
  private resetGuest(): void {
    this.send(RST | ACK, this.sndNxt);
    this.finish();
    this.sock.resetAndDestroy();
  }

  private maybeFinished(): void {
    // Both FINs sent and acknowledged: the socket closes itself once its writes are flushed.
    if (this.guestFin && this.finAcked && this.state !== 'closed') {
      this.owner.counters.count('tcp_closed');
      this.finish();
    }
  }

  private finish(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.disarm();
    this.queue.length = 0;
    this.qBytes = 0;
    this.owner.removed(this);
  }
}
