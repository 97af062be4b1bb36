/**
 * virtio-net (virtio 1.2 §5.1) on a NetPort: one receive and one transmit queue, MAC and link
 * STATUS in the config space (a carrier change is announced with a configuration-change
 * interrupt), mergeable receive buffers, and the offloads that let a large TCP segment cross
 * the ring once: CSUM/GUEST_CSUM (partial checksums travel as metadata) and HOST_TSO4/6,
 * GUEST_TSO4/6 (segments up to 64 KiB travel with their gso_size). What the other end cannot
 * take is finished in software (devices/net/offload.ts): a receiver that did not negotiate the
 * guest offloads gets wire-sized frames with complete checksums.
 *
 * A control queue (ctrl.ts) lets the driver set the rx modes, its MAC and a MAC table; the
 * receive filter (rx-filter.ts) then drops, and counts, frames not for the guest before they
 * take a receive buffer. GUEST_ANNOUNCE: `announce()` asks the guest to send gratuitous packets
 * (ARP) through STATUS.ANNOUNCE, e.g. after the NIC moved to another network.
 */
import { DEVICE_ID, bit } from '../constants.js';
import type { VirtioContext, VirtioDevice } from '../device.js';
import type { Virtqueue } from '../queue.js';
import type { Segment } from '../ring.js';
import type { NetPort, NicFrontend } from '../../net/port.js';
import {
  GSO_NONE,
  GSO_TCPV4,
  GSO_TCPV6,
  MAX_PACKET,
  type GsoType,
  type NetPacket,
} from '../../net/packet.js';
import { finishChecksum, segmentTcp } from '../../net/offload.js';
import { serveControlQueue, type ControlTarget } from './ctrl.js';
import { RxFilter, macFromState, type RxFilterState } from './rx-filter.js';

/** Feature bits of §5.1.3. */
export const NET_F = {
  csum: 0,
  guestCsum: 1,
  mac: 5,
  guestTso4: 7,
  guestTso6: 8,
  hostTso4: 11,
  hostTso6: 12,
  mrgRxbuf: 15,
  status: 16,
  ctrlVq: 17,
  ctrlRx: 18,
  ctrlRxExtra: 20,
  guestAnnounce: 21,
  ctrlMacAddr: 23,
} as const;

const HDR_LEN = 12;
const HDR_F_NEEDS_CSUM = 1;
const HDR_F_DATA_VALID = 2;
const GSO_ECN = 0x80;
const STATUS_LINK_UP = 1;
const STATUS_ANNOUNCE = 2;
const RX = 0;
const TX = 1;
const CTRL = 2;
/** Commands are small and Linux has one in flight at a time; QEMU's control queue is 64 too. */
const CTRL_QUEUE_SIZE = 64;

export interface VirtioNetMetrics {
  [name: string]: number;
  tx_packets: number;
  tx_bytes: number;
  tx_gso: number;
  tx_csum: number;
  tx_malformed: number;
  /** Transmissions completed in the kick because the driver polls (see transmit). */
  tx_polled_completions: number;
  rx_packets: number;
  rx_bytes: number;
  rx_gso: number;
  rx_segmented: number;
  rx_no_buffers: number;
  rx_too_big: number;
  rx_buffers_used: number;
  /** Receive chains with no room for a header (read-only, or too short): returned unused. */
  rx_bad_buffers: number;
  link_changes: number;
  /** Frames the receive filter kept from the guest (not its MAC, table, modes). */
  rx_filtered: number;
  /** Frames with offload metadata whose headers the software offload could not cut or finish. */
  rx_offload_dropped: number;
  ctrl_commands: number;
  ctrl_errors: number;
  ctrl_malformed: number;
  /** Announce requests made to the guest, and the acks it sent. */
  announces: number;
  announce_acks: number;
}

/** Version 1 (before the control queue) had the MAC only; it restores as a reset filter. */
export interface VirtioNetState {
  version: 2;
  /** The configured MAC (what a device reset goes back to). */
  mac: number[];
  /** Rx modes, the MAC the driver set, the MAC table. */
  filter: RxFilterState;
  /** STATUS.ANNOUNCE is set, not yet acknowledged. */
  announce: boolean;
}

export class VirtioNet implements VirtioDevice, NicFrontend {
  readonly deviceId = DEVICE_ID.net;
  readonly features =
    bit(NET_F.csum) |
    bit(NET_F.guestCsum) |
    bit(NET_F.mac) |
    bit(NET_F.guestTso4) |
    bit(NET_F.guestTso6) |
    bit(NET_F.hostTso4) |
    bit(NET_F.hostTso6) |
    bit(NET_F.mrgRxbuf) |
    bit(NET_F.status) |
    bit(NET_F.ctrlVq) |
    bit(NET_F.ctrlRx) |
    bit(NET_F.ctrlRxExtra) |
    bit(NET_F.guestAnnounce) |
    bit(NET_F.ctrlMacAddr);
  readonly queueMaxSizes: readonly number[];
  readonly metrics: VirtioNetMetrics = {
    tx_packets: 0,
    tx_bytes: 0,
    tx_gso: 0,
    tx_csum: 0,
    tx_malformed: 0,
    tx_polled_completions: 0,
    rx_packets: 0,
    rx_bytes: 0,
    rx_gso: 0,
    rx_segmented: 0,
    rx_no_buffers: 0,
    rx_too_big: 0,
    rx_buffers_used: 0,
    rx_bad_buffers: 0,
    link_changes: 0,
    rx_filtered: 0,
    rx_offload_dropped: 0,
    ctrl_commands: 0,
    ctrl_errors: 0,
    ctrl_malformed: 0,
    announces: 0,
    announce_acks: 0,
  };
  onConfigChange?: () => void;
  /** The configured MAC; the one in use (config space, filter) is `filter.mac`. */
  readonly mac: Uint8Array;
  readonly filter: RxFilter;
  private announcing = false;
  private readonly control: ControlTarget;
  private ctx: VirtioContext | undefined;
  private feats = 0n;
  /** Heads of sent chains not yet returned to the driver (returned when the slice ends). */
  private readonly txDone: number[] = [];
  private txCompletionQueued = false;
  /** Guest address of byte 0 of the last frame placed, modulo 8; -1: its buffers disagreed. */
  private lastAlign: number | undefined;
  /** lastAlign when the frame before agreed with it (see rxFrameAlign). */
  private rxAlign: number | undefined;

  constructor(
    readonly name: string,
    mac: Uint8Array,
    readonly port: NetPort,
    queueSize = 256,
  ) {
    this.mac = mac.slice(0, 6);
    this.filter = new RxFilter(this.mac);
    const has = (f: number): boolean => this.has(f);
    this.control = {
      filter: this.filter,
      get features() {
        return {
          rx: has(NET_F.ctrlRx),
          rxExtra: has(NET_F.ctrlRxExtra),
          macAddr: has(NET_F.ctrlMacAddr),
          announce: has(NET_F.guestAnnounce),
        };
      },
      announceAcked: () => {
        this.announcing = false;
        this.metrics.announce_acks++;
      },
    };
    this.queueMaxSizes = [queueSize, queueSize, CTRL_QUEUE_SIZE];
    port.frontend = this;
  }

  readConfig(offset: number, size: number): number {
    const cfg = new Uint8Array(8);
    cfg.set(this.filter.mac);
    cfg[6] = (this.port.carrier ? STATUS_LINK_UP : 0) | (this.announcing ? STATUS_ANNOUNCE : 0);
    let v = 0;
    for (let i = size - 1; i >= 0; i--) {
      const o = offset + i;
      v = v * 256 + (o < cfg.length ? cfg[o] : 0);
    }
    return v >>> 0;
  }

  writeConfig(): void {
    // The MAC is read-only without VIRTIO_NET_F_CTRL_MAC_ADDR (legacy writes are not offered).
  }

  activate(ctx: VirtioContext): void {
    this.ctx = ctx;
    this.feats = ctx.features;
    this.port.flush();
  }

  notify(queue: number): void {
    if (!this.ctx) return;
    if (queue === TX) this.transmit(this.ctx);
    else if (queue === RX) this.port.flush();
    else if (queue === CTRL)
      serveControlQueue(this.ctx, this.ctx.queues[CTRL], this.control, this.metrics);
  }

  reset(): void {
    this.ctx = undefined;
    this.feats = 0n;
    this.txDone.length = 0;
    this.rxAlign = undefined;
    this.lastAlign = undefined;
    this.port.clearBacklog();
    this.filter.reset(this.mac);
    this.announcing = false;
  }

  carrierChanged(): void {
    this.metrics.link_changes++;
    this.onConfigChange?.();
  }

  /**
   * Asks the guest to announce itself (gratuitous ARP) to the network: STATUS.ANNOUNCE and a
   * configuration interrupt. False when the driver did not negotiate GUEST_ANNOUNCE.
   */
  announce(): boolean {
    if (!this.ctx || !this.has(NET_F.guestAnnounce)) return false;
    this.announcing = true;
    this.metrics.announces++;
    this.onConfigChange?.();
    return true;
  }

  /**
   * Where the driver's receive buffers put byte 0 of a frame, modulo 8: known when every buffer
   * of the first frame, or of the last two frames, agreed (Linux posts 64-byte aligned
   * buffers, so with MRG_RXBUF this is 4: after the 12-byte header). net=user uses it to cut
   * its TCP stream where the payload lands word-aligned relative to the stream
   * (devices/net/user/tcp-conn.ts). Not saved state: the next frames find it again.
   */
  rxFrameAlign(): number | undefined {
    return this.rxAlign;
  }

  /** From the port: the NIC is on another network now; its neighbours there must learn it. */
  networkChanged(): void {
    if (this.port.carrier) this.announce();
  }

  get stats(): Record<string, number> {
    const out: Record<string, number> = { ...this.metrics };
    for (const [k, v] of Object.entries(this.port.stats)) out[`net_${k}`] = v;
    // Gauges of what the driver asked for.
    const f = this.filter;
    out.rx_mode_promisc = f.promisc ? 1 : 0;
    out.rx_mode_allmulti = f.allmulti ? 1 : 0;
    out.mac_table_unicast = f.unicastEntries;
    out.mac_table_multicast = f.multicastEntries;
    out.mac_table_overflow = (f.overflowed.unicast ? 1 : 0) | (f.overflowed.multicast ? 2 : 0);
    return out;
  }

  saveState(): VirtioNetState {
    return {
      version: 2,
      mac: Array.from(this.mac),
      filter: this.filter.save(),
      announce: this.announcing,
    };
  }

  restoreState(s: unknown): void {
    const st = s as VirtioNetState | { version: 1; mac: number[] };
    if (st?.version !== 1 && st?.version !== 2) throw new Error(`${this.name}: unsupported state`);
    const configured = macFromState(st.mac);
    const filter = st.version === 2 ? st.filter : new RxFilter(configured).save();
    new RxFilter(configured).restore(filter); // throws on a bad state before anything changes
    this.mac.set(configured);
    this.filter.restore(filter);
    this.announcing = st.version === 2 && st.announce === true;
  }

  private has(f: number): boolean {
    return (this.feats & bit(f)) !== 0n;
  }

  // ---- transmit ------------------------------------------------------------------------------

  /**
   * Sends every chain the driver queued. The frames leave at once (the back end has them before
   * the guest's kick returns), but the chains are returned to the driver, with one interrupt, only
   * once the guest's current slice ends (a microtask runs when the core returns to the run loop),
   * as a real NIC completes a transmission after the wire time. Completing inside the kick let
   * Linux free each skb at once, which defeats TCP autocorking: every small write() became its
   * own MSS-sized packet. With completions pending, the guest's stack merges what the
   * application writes meanwhile into large TSO segments (bench/net.ts). A driver that has
   * turned the queue's interrupts off polls the used ring instead (U-Boot spins on it after each
   * frame, and GRUB's network boot sends through U-Boot): it gets its chains back in the kick,
   * or every frame it sent would cost it the rest of the slice, ~1 ms of spinning.
   */
  private transmit(ctx: VirtioContext): void {
    const q = ctx.queues[TX];
    for (let c = q.pop(); c; c = q.pop()) {
      const p = this.parseTx(c.segments, c.readable);
      if (p) {
        this.metrics.tx_packets++;
        this.metrics.tx_bytes += p.data.length;
        this.port.transmit(p);
      } else this.metrics.tx_malformed++;
      this.txDone.push(c.head);
    }
    if (this.txDone.length > 0 && q.polled) {
      this.metrics.tx_polled_completions++;
      this.completeTx();
    } else if (this.txDone.length > 0 && !this.txCompletionQueued) {
      this.txCompletionQueued = true;
      queueMicrotask(() => this.completeTx());
    }
  }

  /** Returns the sent chains to the driver (see transmit). */
  private completeTx(): void {
    this.txCompletionQueued = false;
    const ctx = this.ctx;
    if (!ctx || this.txDone.length === 0) return;
    const q = ctx.queues[TX];
    for (const head of this.txDone) q.push(head, 0);
    this.txDone.length = 0;
    ctx.signalUsed(q);
  }

  /** Header + frame from a chain's readable buffers; undefined if malformed. */
  private parseTx(segs: readonly Segment[], readable: number): NetPacket | undefined {
    const len = readable - HDR_LEN;
    if (len < 14 || len > MAX_PACKET) return undefined;
    const all = new Uint8Array(readable);
    let o = 0;
    for (const s of segs) {
      if (s.writable) break;
      all.set(s.view, o);
      o += s.view.length;
    }
    const hv = new DataView(all.buffer, 0, HDR_LEN);
    const flags = all[0];
    const gsoType = all[1] & ~GSO_ECN;
    const hdrLen = hv.getUint16(2, true);
    const gsoSize = hv.getUint16(4, true);
    const csumStart = hv.getUint16(6, true);
    const csumOffset = hv.getUint16(8, true);
    const data = all.subarray(HDR_LEN);
    let csum: NetPacket['csum'];
    if (flags & HDR_F_NEEDS_CSUM) {
      if (!this.has(NET_F.csum) || csumStart + csumOffset + 2 > len) return undefined;
      csum = { start: csumStart, offset: csumOffset };
      this.metrics.tx_csum++;
    }
    let gso: NetPacket['gso'];
    if (gsoType !== GSO_NONE) {
      const ok =
        (gsoType === GSO_TCPV4 && this.has(NET_F.hostTso4)) ||
        (gsoType === GSO_TCPV6 && this.has(NET_F.hostTso6));
      if (!ok || gsoSize === 0 || !csum) return undefined;
      gso = { type: gsoType as GsoType, size: gsoSize, hdrLen: Math.min(hdrLen, len) };
      this.metrics.tx_gso++;
    }
    return { data, csum, gso };
  }

  // ---- receive -------------------------------------------------------------------------------

  /** From the port: place `p` in receive buffers; false when the guest has too few posted. */
  receive(p: NetPacket): boolean {
    const ctx = this.ctx;
    if (!ctx) return false;
    if (!this.filter.accepts(p.data)) {
      this.metrics.rx_filtered++;
      return true; // taken: not for this guest, it must not wait for receive buffers
    }
    const q = ctx.queues[RX];
    if (q.pending === 0) {
      q.armNotify(); // the guest's next refill must kick us: this frame waits in the backlog
      this.metrics.rx_no_buffers++;
      return false;
    }
    const guestCsum = this.has(NET_F.guestCsum);
    let frames: NetPacket[] = [p];
    if (p.gso) {
      const can =
        (p.gso.type === GSO_TCPV4 && this.has(NET_F.guestTso4)) ||
        (p.gso.type === GSO_TCPV6 && this.has(NET_F.guestTso6));
      if (!can) {
        frames = segmentTcp(p.data, p.gso.size);
        this.metrics.rx_segmented++;
      }
    } else if (p.csum && !guestCsum) {
      const d = p.data.slice();
      frames = finishChecksum(d, p.csum.start, p.csum.offset) ? [{ data: d, csumValid: true }] : [];
    }
    if (frames.length === 0) {
      this.metrics.rx_offload_dropped++; // headers that do not parse: nothing to place
      return true;
    }
    const snapshot = q.saveState();
    for (const f of frames) {
      const r = this.place(q, f, guestCsum);
      if (r === 'full') {
        // Not enough buffers for the whole frame: give back what was taken, try again later.
        q.restoreState(snapshot, q.format);
        this.metrics.rx_no_buffers++;
        return false;
      }
    }
    ctx.signalUsed(q);
    return true;
  }

  /** Writes one frame with its header into as many chains as it needs (one without MRG_RXBUF). */
  private place(q: Virtqueue, f: NetPacket, guestCsum: boolean): 'ok' | 'full' | 'dropped' {
    const hdr = new Uint8Array(HDR_LEN);
    const hv = new DataView(hdr.buffer);
    if (f.gso && f.csum) {
      hdr[0] = HDR_F_NEEDS_CSUM;
      hdr[1] = f.gso.type;
      hv.setUint16(2, f.gso.hdrLen, true);
      hv.setUint16(4, f.gso.size, true);
      hv.setUint16(6, f.csum.start, true);
      hv.setUint16(8, f.csum.offset, true);
      this.metrics.rx_gso++;
    } else if (f.csum) {
      hdr[0] = HDR_F_NEEDS_CSUM;
      hv.setUint16(6, f.csum.start, true);
      hv.setUint16(8, f.csum.offset, true);
    } else if (f.csumValid && guestCsum) {
      hdr[0] = HDR_F_DATA_VALID;
    }
    const total = HDR_LEN + f.data.length;
    const mergeable = this.has(NET_F.mrgRxbuf);
    const heads: { head: number; len: number }[] = [];
    let firstSegs: readonly Segment[] | undefined;
    let written = 0;
    /** Byte 0's address mod 8 as each buffer with frame bytes puts it; -1: they disagree. */
    let align: number | undefined;
    while (written < total) {
      const c = q.pop();
      if (!c) return 'full';
      if (mergeable && (c.writable === 0 || (!firstSegs && c.writable < HDR_LEN))) {
        // No room for the header (or for anything): a guest's mistake. Hand the chain back
        // unused (Linux drops a used buffer shorter than the header) and take the next one.
        this.metrics.rx_bad_buffers++;
        q.push(c.head, 0);
        continue;
      }
      if (!firstSegs) firstSegs = c.segments;
      if (!mergeable && c.writable < total) {
        // The guest's buffer cannot hold this frame: drop it, return the buffer unused.
        this.metrics.rx_too_big++;
        q.push(c.head, 0);
        return 'dropped';
      }
      let len = 0;
      for (const s of c.segments) {
        if (!s.writable || written >= total) continue;
        const n = Math.min(s.view.length, total - written);
        copyOut(s.view, hdr, f.data, written, n);
        if (written + n > HDR_LEN) {
          // Frame byte (written - HDR_LEN) is at s.addr (`&` keeps the low bits of any address).
          const a = (s.addr - written + HDR_LEN) & 7;
          align = align === undefined || align === a ? a : -1;
        }
        written += n;
        len += n;
      }
      heads.push({ head: c.head, len });
      if (!mergeable) break;
    }
    // num_buffers lives in the header at the start of the first chain (which may split it).
    if (mergeable) {
      hv.setUint16(10, heads.length, true);
      writeHeaderField(firstSegs!, hdr, 10, 2);
    }
    for (const h of heads) q.push(h.head, h.len);
    const a = align ?? -1;
    this.rxAlign = a >= 0 && (this.lastAlign ?? a) === a ? a : undefined;
    this.lastAlign = a;
    this.metrics.rx_buffers_used += heads.length;
    this.metrics.rx_packets++;
    this.metrics.rx_bytes += f.data.length;
    return 'ok';
  }
}

/** Copies bytes [from, from + n) of (header ++ frame) to the start of `dst`. */
function copyOut(
  dst: Uint8Array,
  hdr: Uint8Array,
  data: Uint8Array,
  from: number,
  n: number,
): void {
  let o = 0;
  if (from < HDR_LEN) {
    const k = Math.min(HDR_LEN - from, n);
    dst.set(hdr.subarray(from, from + k), 0);
    o = k;
  }
  const start = from + o - HDR_LEN;
  if (n > o) dst.set(data.subarray(start, start + (n - o)), o);
}

/** Rewrites header bytes [at, at + n) in a chain's writable buffers, wherever they fell. */
function writeHeaderField(segs: readonly Segment[], hdr: Uint8Array, at: number, n: number): void {
  let base = 0;
  for (const s of segs) {
    if (!s.writable) continue;
    for (let i = at; i < at + n; i++) {
      if (i >= base && i < base + s.view.length) s.view[i - base] = hdr[i];
    }
    base += s.view.length;
    if (base >= at + n) return;
  }
}
