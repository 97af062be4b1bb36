/**
 * A NIC's connection to the network, shared by every NIC model (e1000, virtio-net): the back
 * end it is plugged into, the administrative link state (the "cable" the user can pull), the
 * capture tap, and a small receive backlog.
 *
 * The NIC model implements `NicFrontend`; everything the user switches while the guest runs
 * (setLink, setBackend, startCapture/stopCapture) is here, so it works the same for both.
 *
 * Backlog: a back end delivers whenever it likes, and the guest may have no receive buffers
 * posted at that instant (it refills them a few microseconds of its time later). Frames wait in
 * a bounded FIFO until the NIC asks for them again (`flush`, called when the guest posts
 * buffers); beyond the bound they are dropped and counted, as a real NIC's FIFO overflows.
 *
 * Capture: a tap at the NIC's end of the cable, which sees every frame in the order it reaches
 * the NIC. Transmitted frames are recorded as the NIC sends them. A received frame is recorded
 * when it leaves the backlog (the backlog is a FIFO, so in arrival order, which is the order
 * the guest gets them): taken by the NIC — a large segment the model cut itself (an e1000) as
 * the frames it placed (`RxTaken.pieces`), anything else as the wire frames a link would carry
 * (MSS-cut, checksums finished) — or discarded with the backlog (NIC reset, setBackend, carrier
 * lost). A frame lost because the backlog was full (the NIC's ring and FIFO were) never reaches
 * the guest, but the tap saw it arrive: it is recorded as MSS wire frames right after the frame
 * ahead of it leaves the backlog (at most LOST_HELD such frames are held; beyond, one is
 * recorded at once, ahead of the frames still waiting). Every frame that reaches the port with
 * the carrier up is recorded once, by the capture running when it leaves the backlog.
 */
import { PcapWriter } from './pcap.js';
import type { NetBackend } from './backend.js';
import { toWireFrames } from './offload.js';
import type { NetPacket } from './packet.js';

/**
 * What a NIC model did with a frame from its port: `false`, no room in the guest's buffers
 * right now (the port keeps it in its backlog); `true`, taken as it came (placed, or dropped by
 * the NIC's own filter); `{ pieces }`, a large segment the model cut itself and placed as frames
 * with these payload lengths (cutTcp's `pieces`), so the capture can record those frames.
 */
export type RxTaken = boolean | { readonly pieces: readonly number[] };

/** What a NIC model offers its port. */
export interface NicFrontend {
  /** Places a frame in the guest's receive buffers (see RxTaken). */
  receive(p: NetPacket): RxTaken;
  /** The carrier the guest should see changed. */
  carrierChanged(up: boolean): void;
  /** The NIC is on another network now (setBackend): a NIC that can, has the guest announce itself. */
  networkChanged?(): void;
  /**
   * Where byte 0 of a received frame lands in guest memory, modulo 8, as the NIC saw it on the
   * frames it placed last (undefined: unknown, or the driver's buffers disagree). See
   * `NetBackend.rxFrameAlign`.
   */
  rxFrameAlign?(): number | undefined;
}

export interface NetPortStats {
  [name: string]: number;
  tx_frames: number;
  tx_bytes: number;
  rx_frames: number;
  rx_bytes: number;
  /** Frames sent while the link was down (dropped). */
  tx_link_down: number;
  /** Frames dropped on receive: link down, or the backlog was full. */
  rx_dropped: number;
  rx_backlog: number;
  link_changes: number;
  /** 1 while the user's link setting is up (it survives setBackend), else 0. */
  link_up: number;
  /** 1 while the guest sees a carrier (link up and a back end with a cable), else 0. */
  carrier: number;
  captured: number;
  capture_dropped: number;
}

/** Frames waiting for guest receive buffers at most. */
const BACKLOG_FRAMES = 256;
/** Frames lost to a full backlog held for the capture, to be recorded in arrival order. */
const LOST_HELD = 256;

export type BackendFactory = (spec: string) => NetBackend;

export class NetPort {
  readonly counters = {
    tx_frames: 0,
    tx_bytes: 0,
    rx_frames: 0,
    rx_bytes: 0,
    tx_link_down: 0,
    rx_dropped: 0,
    link_changes: 0,
  };
  frontend: NicFrontend | undefined;
  private backend: NetBackend;
  private adminUp = true;
  private lastCarrier: boolean;
  private readonly backlog: NetPacket[] = [];
  /** Frames lost to a full backlog (while capturing), by the backlog frame they came after. */
  private readonly lostAfter = new Map<NetPacket, NetPacket[]>();
  private lostHeld = 0;
  private capture: PcapWriter | undefined;
  /** Counts of captures already stopped, so the stats keep growing across captures. */
  private capturedBefore = { frames: 0, dropped: 0 };

  constructor(
    readonly name: string,
    backend: NetBackend,
    private readonly open: BackendFactory,
  ) {
    this.backend = backend;
    this.attach(backend);
    this.lastCarrier = this.carrier;
  }

  /** What the guest sees: the user's link setting and a back end with a cable. */
  get carrier(): boolean {
    return this.adminUp && this.backend.carrier;
  }

  get linkUp(): boolean {
    return this.adminUp;
  }

  get backendSpec(): string {
    return this.backend.spec;
  }

  get capturePath(): string | undefined {
    return this.capture?.path;
  }

  /** Plugs or pulls the cable; the guest sees a carrier change. */
  setLink(up: boolean): void {
    this.adminUp = up;
    this.carrierMaybeChanged();
  }

  /**
   * Moves the NIC to another network ("none", "switch:lab") while the guest runs. The user's
   * link setting stays as it is: a pulled cable is not plugged in by moving the NIC.
   */
  setBackend(spec: string): void {
    const next = this.open(spec); // throws NetSpecError before anything changes
    this.backend.onReceive = undefined;
    this.backend.onCarrier = undefined;
    this.backend.close();
    this.backend = next;
    this.attach(next);
    this.discardBacklog();
    this.carrierMaybeChanged();
    this.frontend?.networkChanged?.();
  }

  /**
   * Tees every frame the NIC sends or receives to a pcap file, from the next frame on (a
   * received frame when it leaves the backlog: see the class comment). A capture already
   * running is stopped first (and its file completed). The file holds wire frames with
   * checksums that verify: a partial checksum is finished, a large segment (TSO/GSO) is recorded
   * as the frames an e1000 model cut it into for the guest, or else cut into its MSS-sized
   * frames, the packets a physical link would carry. `append`: go on after the frames a file
   * of ours already holds.
   */
  async startCapture(path: string, o: { append?: boolean } = {}): Promise<void> {
    const w = await PcapWriter.open(path, o);
    const old = this.capture;
    this.capture = w; // synchronous swap: no frame falls between the two files
    if (old) await this.finish(old);
  }

  /** Ends the capture; resolves once every captured frame is in the file. */
  async stopCapture(): Promise<void> {
    const old = this.capture;
    this.capture = undefined;
    if (old) await this.finish(old);
  }

  /** The NIC transmits a frame (its data must not be written afterwards). */
  transmit(p: NetPacket): void {
    if (this.capture) this.tee(this.capture, p);
    if (!this.carrier) {
      this.counters.tx_link_down++;
      return;
    }
    this.counters.tx_frames++;
    this.counters.tx_bytes += p.data.length;
    this.backend.send(p);
  }

  /** The guest posted receive buffers: hand over what waited for them. */
  flush(): void {
    const f = this.frontend;
    if (!f) return;
    while (this.backlog.length > 0) {
      const taken = f.receive(this.backlog[0]);
      if (taken === false) return;
      this.received(this.backlog.shift()!, taken);
    }
  }

  /** Drops everything queued (NIC reset). */
  clearBacklog(): void {
    this.discardBacklog();
  }

  get stats(): NetPortStats {
    const backend: Record<string, number> = {};
    for (const [k, v] of Object.entries(this.backend.stats?.() ?? {})) backend[`backend_${k}`] = v;
    return {
      ...backend,
      ...this.counters,
      rx_backlog: this.backlog.length,
      link_up: this.adminUp ? 1 : 0,
      carrier: this.carrier ? 1 : 0,
      captured: this.capturedBefore.frames + (this.capture?.stats.frames ?? 0),
      capture_dropped: this.capturedBefore.dropped + (this.capture?.stats.dropped ?? 0),
    };
  }

  /** Leaves the network and completes any capture. */
  async close(): Promise<void> {
    this.backend.onReceive = undefined;
    this.backend.close();
    await this.stopCapture().catch(() => {});
  }

  private attach(b: NetBackend): void {
    b.onReceive = (p) => this.fromBackend(p);
    b.onCarrier = () => this.carrierMaybeChanged();
    b.rxFrameAlign = () => this.frontend?.rxFrameAlign?.();
  }

  private fromBackend(p: NetPacket): void {
    if (!this.carrier) {
      this.counters.rx_dropped++;
      return;
    }
    const f = this.frontend;
    if (this.backlog.length === 0 && f) {
      const taken = f.receive(p);
      if (taken !== false) return this.received(p, taken);
    }
    if (this.backlog.length >= BACKLOG_FRAMES) {
      this.counters.rx_dropped++;
      if (this.capture) this.holdLost(p);
      return;
    }
    this.backlog.push(p);
  }

  /** The NIC took `p`: counted, and recorded as the NIC placed it. */
  private received(p: NetPacket, taken: Exclude<RxTaken, false>): void {
    this.countRx(p);
    this.left(p, taken === true ? undefined : taken.pieces);
  }

  /** Empties the backlog; the capture records what it held (the tap saw it arrive). */
  private discardBacklog(): void {
    for (const p of this.backlog) this.left(p);
    this.backlog.length = 0;
    this.lostAfter.clear();
    this.lostHeld = 0;
  }

  /** `p` arrived with the backlog full: recorded after the frame ahead of it (class comment). */
  private holdLost(p: NetPacket): void {
    const ahead = this.backlog[this.backlog.length - 1];
    if (this.lostHeld >= LOST_HELD) return this.tee(this.capture!, p);
    const held = this.lostAfter.get(ahead);
    if (held) held.push(p);
    else this.lostAfter.set(ahead, [p]);
    this.lostHeld++;
  }

  /** `p` left the backlog (or never waited): recorded, then the frames lost behind it. */
  private left(p: NetPacket, pieces?: readonly number[]): void {
    const w = this.capture;
    if (w) this.tee(w, p, pieces);
    if (this.lostAfter.size === 0) return;
    const lost = this.lostAfter.get(p);
    if (!lost) return;
    this.lostAfter.delete(p);
    this.lostHeld -= lost.length;
    if (w) for (const l of lost) this.tee(w, l);
  }

  /** Records `p` as wire frames: cut into `pieces` when the NIC model cut it so, else at the MSS. */
  private tee(w: PcapWriter, p: NetPacket, pieces?: readonly number[]): void {
    if (!p.gso && !p.csum) return w.write(p.data);
    const frames = toWireFrames(p, pieces);
    // Headers that do not parse: record the frame as it is rather than lose it.
    if (frames.length === 0) return w.write(p.data);
    for (const f of frames) w.write(f.data);
  }

  private countRx(p: NetPacket): void {
    this.counters.rx_frames++;
    this.counters.rx_bytes += p.data.length;
  }

  private carrierMaybeChanged(): void {
    const c = this.carrier;
    if (c === this.lastCarrier) return;
    this.lastCarrier = c;
    this.counters.link_changes++;
    if (!c) this.discardBacklog();
    this.frontend?.carrierChanged(c);
  }

  private async finish(w: PcapWriter): Promise<void> {
    this.capturedBefore.frames += w.stats.frames;
    this.capturedBefore.dropped += w.stats.dropped;
    await w.close();
  }
}
