/**
 * One link of a switch to the same switch in another host process: a Unix-domain stream socket
 * carrying frames with their offload metadata (switch-wire.ts), bounded as frame-link.ts bounds
 * a link between threads: at most MAX_FRAMES frames / MAX_BYTES bytes sent and not yet
 * acknowledged, beyond which frames are dropped and counted (a full switch port queue); the
 * receiver acknowledges every ACK_EVERY frames.
 *
 * Both ends say hello first (magic, version, their process's id, the switch name); frames flow
 * only after each has heard the other's. The other process is untrusted: a message that is not
 * this protocol, a hello that does not match, a stream that ends inside a message, or a peer
 * that stops reading while we keep writing are counted and end the connection; a frame whose
 * offload metadata does not fit it is dropped and counted (the link stays: it is a guest's frame
 * the other process relayed). Nothing here throws at the caller.
 */
import type { Socket } from 'node:net';
import { MAX_BYTES, MAX_FRAMES } from './frame-link.js';
import type { NetPacket } from './packet.js';
import {
  encodeAck,
  encodeFrameHeader,
  encodeHello,
  WIRE_VERSION,
  WireReader,
  type WireMessage,
} from './switch-wire.js';

/** The receiver acknowledges after this many frames. */
const ACK_EVERY = 32;
/** How long the other end has to say hello. */
const HELLO_TIMEOUT_MS = 5000;
/**
 * Bytes we may have queued on the socket: the unacknowledged frames plus slack for headers and
 * acknowledgements. More means the other process reads nothing (its acks are what lets us send
 * frames, but our acks to it are not bounded by anything it does).
 */
const MAX_QUEUED = MAX_BYTES + (1 << 20);

export interface PeerLinkStats {
  sent: number;
  received: number;
  /** Frames not sent because the other side had too many unacknowledged. */
  dropped: number;
  /** Frames whose offload metadata did not fit them. */
  bad_frames: number;
  /** Connections ended because the other end broke the protocol. */
  malformed: number;
  /** Connections that ended in the middle of a message. */
  truncated: number;
}

export class PeerLink {
  /** Frames from the other process (after both hellos). */
  onFrame: ((p: NetPacket) => void) | undefined;
  /** The other end's hello; return false to refuse it (the link then closes). */
  onHello: ((id: string) => boolean) | undefined;
  /** The link ended, either way; `failed` when the other end broke the protocol. Called once. */
  onClose: ((why: string, failed: boolean) => void) | undefined;
  /** The other process's id, once it said hello. */
  peerId: string | undefined;
  private readonly reader = new WireReader();
  private readonly inFlight = { frames: 0, bytes: 0 };
  private unacked = { frames: 0, bytes: 0 };
  private isClosed = false;
  private readonly helloTimer: ReturnType<typeof setTimeout>;
  private corked = false;

  constructor(
    private readonly sock: Socket,
    /** This process's id and the switch's name, told in our hello. */
    readonly ownId: string,
    readonly name: string,
    /** Whether we connected (rather than accepted). */
    readonly outgoing: boolean,
    private readonly stats: PeerLinkStats,
  ) {
    sock.on('data', (d: Buffer) => this.onData(d));
    sock.on('error', (e) => this.end(e.message, false));
    sock.on('close', () => this.end('closed', false));
    // Links never keep a process alive: its VMs do.
    sock.unref();
    this.helloTimer = setTimeout(() => this.fail('no hello'), HELLO_TIMEOUT_MS);
    this.helloTimer.unref();
    this.write(encodeHello(ownId, name));
  }

  get closed(): boolean {
    return this.isClosed;
  }

  /** Sends a frame; false (and counted) when closed, not yet greeted, or the peer is behind. */
  send(p: NetPacket): boolean {
    if (this.isClosed || this.peerId === undefined) return false;
    const n = p.data.length;
    if (this.inFlight.frames >= MAX_FRAMES || this.inFlight.bytes + n > MAX_BYTES) {
      this.stats.dropped++;
      return false;
    }
    this.write(encodeFrameHeader(p));
    // The packet's bytes are not written after send(), so the socket may take them as they are.
    this.write(p.data);
    this.inFlight.frames++;
    this.inFlight.bytes += n;
    this.stats.sent++;
    return true;
  }

  /** Ends the connection (quietly: nothing is counted). Idempotent. */
  close(why = 'closed here'): void {
    if (this.isClosed) return;
    this.sock.destroy();
    this.end(why, false);
  }

  private write(b: Uint8Array): void {
    if (this.sock.writableLength > MAX_QUEUED) {
      this.fail('the other process reads nothing');
      return;
    }
    // Writes of one turn of the event loop go out together (one writev, not one per frame).
    if (!this.corked) {
      this.corked = true;
      this.sock.cork();
      process.nextTick(() => {
        this.corked = false;
        this.sock.uncork();
      });
    }
    this.sock.write(b);
  }

  private fail(why: string): void {
    if (this.isClosed) return;
    this.stats.malformed++;
    this.sock.destroy();
    this.end(why, true);
  }

  private end(why: string, failed: boolean): void {
    if (!this.isClosed) {
      this.isClosed = true;
      if (this.reader.pending > 0 && !failed) {
        this.stats.truncated++;
        why = 'ended inside a message';
        failed = true;
      }
      this.sock.destroy();
    }
    clearTimeout(this.helloTimer);
    const cb = this.onClose;
    this.onClose = undefined;
    cb?.(why, failed);
  }

  private onData(d: Buffer): void {
    if (this.isClosed) return;
    const msgs: WireMessage[] = [];
    const err = this.reader.push(d, msgs);
    // Messages before the bad bytes still count (they were well formed).
    for (const m of msgs) {
      if (this.isClosed) return;
      this.onMessage(m);
    }
    if (err !== undefined) this.fail(err);
  }

  private onMessage(m: WireMessage): void {
    if (m.t === 'hello') {
      if (this.peerId !== undefined) return this.fail('second hello');
      if (m.version !== WIRE_VERSION) return this.fail(`version ${m.version}`);
      if (m.name !== this.name || !/^[\w.-]{1,64}$/.test(m.id) || m.id === this.ownId)
        return this.fail('hello does not match');
      clearTimeout(this.helloTimer);
      this.peerId = m.id;
      if (this.onHello && !this.onHello(m.id)) this.close('duplicate');
      return;
    }
    if (this.peerId === undefined) return this.fail('frame before hello');
    if (m.t === 'ack') {
      this.inFlight.frames = Math.max(0, this.inFlight.frames - m.frames);
      this.inFlight.bytes = Math.max(0, this.inFlight.bytes - m.bytes);
      return;
    }
    // A dropped frame is acknowledged too: the sender counted it as in flight.
    this.unacked.frames++;
    this.unacked.bytes += m.t === 'frame' ? m.p.data.length : m.bytes;
    if (this.unacked.frames >= ACK_EVERY) {
      this.write(encodeAck(this.unacked.frames, this.unacked.bytes));
      this.unacked = { frames: 0, bytes: 0 };
    }
    if (m.t === 'bad-frame') {
      this.stats.bad_frames++;
      return;
    }
    this.stats.received++;
    this.onFrame?.(m.p);
  }
}
