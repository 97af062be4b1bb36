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
 */
import { PcapWriter } from './pcap.js';
import type { NetBackend } from './backend.js';
import { toWireFrames } from './offload.js';
import type { NetPacket } from './packet.js';

/** What a NIC model offers its port. */
export interface NicFrontend {
  /** Places a frame in the guest's receive buffers; false if there is no room right now. */
  receive(p: NetPacket): boolean;
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
    this.backlog.length = 0;
    this.carrierMaybeChanged();
    this.frontend?.networkChanged?.();
  }

  /**
   * Tees every frame the NIC sends or receives to a pcap file, from the next frame on. A
   * capture already running is stopped first (and its file completed). The file holds wire
   * frames: a large segment (TSO/GSO) is recorded cut into its MSS-sized frames and a partial
   * checksum finished, so a reader sees the packets a physical link would carry, each with
   * checksums that verify. `append`: go on after the frames a file of ours already holds.
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
      if (!f.receive(this.backlog[0])) return;
      this.countRx(this.backlog.shift()!);
    }
  }

  /** Drops everything queued (NIC reset). */
  clearBacklog(): void {
    this.backlog.length = 0;
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
    if (this.capture) this.tee(this.capture, p);
    const f = this.frontend;
    if (this.backlog.length === 0 && f && f.receive(p)) {
      this.countRx(p);
      return;
    }
    if (this.backlog.length >= BACKLOG_FRAMES) {
      this.counters.rx_dropped++;
      return;
    }
    this.backlog.push(p);
  }

  private tee(w: PcapWriter, p: NetPacket): void {
    if (!p.gso && !p.csum) return w.write(p.data);
    const frames = toWireFrames(p);
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
    if (!c) this.backlog.length = 0;
    this.frontend?.carrierChanged(c);
  }

  private async finish(w: PcapWriter): Promise<void> {
    this.capturedBefore.frames += w.stats.frames;
    this.capturedBefore.dropped += w.stats.dropped;
    await w.close();
  }
}
