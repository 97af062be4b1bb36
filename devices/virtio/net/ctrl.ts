/**
 * virtio-net's control queue (virtio 1.2 §5.1.6.5): the driver's commands to the device, each a
 * chain of { u8 class; u8 command; command data } (device-readable) and one ack byte
 * (device-writable), answered VIRTIO_NET_OK or VIRTIO_NET_ERR before the chain is returned.
 * Linux spins on the reply, so every command is served inside the kick.
 *
 * Classes served: RX (rx modes, with CTRL_RX / CTRL_RX_EXTRA), MAC (MAC_TABLE_SET with CTRL_RX,
 * MAC_ADDR_SET with CTRL_MAC_ADDR) and ANNOUNCE (ACK, with GUEST_ANNOUNCE). VLAN, MQ, guest
 * offloads and the rest are not offered: they are answered ERR, as is any command whose data
 * has the wrong size or whose feature was not negotiated.
 *
 * The guest is untrusted: the command data is read in place from its buffers (a table claiming
 * four billion entries is checked against the bytes that are there, nothing is allocated for it),
 * and a chain with no room for class and command or for the ack byte is a broken request, the
 * device goes to NEEDS_RESET as virtio-blk does for a request without header or status (and as
 * QEMU does for "virtio-net ctrl missing headers").
 */
import type { VirtioContext } from '../device.js';
import type { Virtqueue } from '../queue.js';
import type { Segment } from '../ring.js';
import { MAC_TABLE_ENTRIES, type RxFilter, type RxMode } from './rx-filter.js';

export const CTRL_CLASS = { rx: 0, mac: 1, vlan: 2, announce: 3, mq: 4 } as const;
/** VIRTIO_NET_CTRL_RX commands 0..5, in order (2..5 need CTRL_RX_EXTRA). */
export const RX_MODES: readonly RxMode[] = [
  'promisc',
  'allmulti',
  'alluni',
  'nomulti',
  'nouni',
  'nobcast',
];
export const MAC_CMD = { tableSet: 0, addrSet: 1 } as const;
export const ANNOUNCE_ACK = 0;
export const CTRL_OK = 0;
export const CTRL_ERR = 1;

/** The control features the driver accepted. */
export interface ControlFeatures {
  rx: boolean;
  rxExtra: boolean;
  macAddr: boolean;
  announce: boolean;
}

/** What the control queue acts on. */
export interface ControlTarget {
  readonly filter: RxFilter;
  readonly features: ControlFeatures;
  /** The driver acknowledged an announce request (it has sent its gratuitous packets). */
  announceAcked(): void;
}

export interface ControlMetrics {
  /** Commands answered (OK or ERR). */
  ctrl_commands: number;
  /** Commands answered VIRTIO_NET_ERR: unknown, not negotiated, wrong size, bad MAC. */
  ctrl_errors: number;
  /** Chains without class/command or ack byte: NEEDS_RESET. */
  ctrl_malformed: number;
}

/** Serves every chain the driver queued on the control queue. */
export function serveControlQueue(
  ctx: VirtioContext,
  q: Virtqueue,
  target: ControlTarget,
  metrics: ControlMetrics,
): void {
  let used = 0;
  for (let c = q.pop(); c; c = q.pop()) {
    const ack = c.segments.find((s) => s.writable);
    if (c.readable < 2 || !ack) {
      metrics.ctrl_malformed++;
      ctx.fail(`control request ${c.head} has no class and command or no ack byte`);
      return;
    }
    const r = new ChainReader(c.segments, c.readable);
    const status = execute(target, r.u8(), r.u8(), r);
    metrics.ctrl_commands++;
    if (status !== CTRL_OK) metrics.ctrl_errors++;
    ack.view[0] = status;
    q.push(c.head, 1);
    used++;
  }
  if (used) ctx.signalUsed(q);
}

function execute(t: ControlTarget, cls: number, cmd: number, data: ChainReader): number {
  const f = t.features;
  switch (cls) {
    case CTRL_CLASS.rx: {
      const mode = RX_MODES[cmd];
      if (!mode || !f.rx || (cmd >= 2 && !f.rxExtra) || data.remaining !== 1) return CTRL_ERR;
      t.filter.setMode(mode, data.u8() !== 0);
      return CTRL_OK;
    }
    case CTRL_CLASS.mac:
      if (cmd === MAC_CMD.tableSet && f.rx) return setMacTable(t.filter, data);
      if (cmd === MAC_CMD.addrSet && f.macAddr) return setMac(t.filter, data);
      return CTRL_ERR;
    case CTRL_CLASS.announce:
      if (cmd !== ANNOUNCE_ACK || !f.announce || data.remaining !== 0) return CTRL_ERR;
      t.announceAcked();
      return CTRL_OK;
  }
  return CTRL_ERR;
}

/** MAC_ADDR_SET: six bytes, a unicast address that is not all zeros (Linux checks the same). */
function setMac(filter: RxFilter, data: ChainReader): number {
  if (data.remaining !== 6) return CTRL_ERR;
  const m = data.bytes(6);
  if (m[0] & 1 || m.every((b) => b === 0)) return CTRL_ERR;
  filter.mac.set(m);
  return CTRL_OK;
}

/**
 * MAC_TABLE_SET: two tables, unicast then multicast, each a le32 count and count MACs, and
 * nothing after them. A class whose entries do not fit in what the table has left overflows
 * (every address of that class passes). On any error the old table stays.
 */
function setMacTable(filter: RxFilter, data: ChainReader): number {
  const uni = readTable(data, MAC_TABLE_ENTRIES);
  if (!uni) return CTRL_ERR;
  const multi = readTable(data, MAC_TABLE_ENTRIES - uni.macs.length);
  if (!multi || data.remaining !== 0) return CTRL_ERR;
  filter.setTable(uni.macs, uni.overflow, multi.macs, multi.overflow);
  return CTRL_OK;
}

function readTable(
  data: ChainReader,
  room: number,
): { macs: Uint8Array[]; overflow: boolean } | undefined {
  if (data.remaining < 4) return undefined;
  const n = data.u32();
  if (n * 6 > data.remaining) return undefined;
  if (n > room) {
    data.skip(n * 6);
    return { macs: [], overflow: true };
  }
  const macs: Uint8Array[] = [];
  for (let i = 0; i < n; i++) macs.push(data.bytes(6));
  return { macs, overflow: false };
}

/**
 * Reads a chain's device-readable bytes in order, in place (no copy of the whole chain: a
 * hostile one may name far more bytes than a command can use). Callers check `remaining`.
 */
export class ChainReader {
  remaining: number;
  private seg = 0;
  private off = 0;

  constructor(
    private readonly segs: readonly Segment[],
    readable: number,
  ) {
    this.remaining = readable;
  }

  u8(): number {
    return this.bytes(1)[0];
  }

  u32(): number {
    const b = this.bytes(4);
    return (b[0] | (b[1] << 8) | (b[2] << 16) | (b[3] << 24)) >>> 0;
  }

  /** A copy of the next `n` bytes (n ≤ remaining). */
  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    this.walk(n, (v, at) => out.set(v, at));
    return out;
  }

  skip(n: number): void {
    this.walk(n, () => {});
  }

  private walk(n: number, take: (v: Uint8Array, at: number) => void): void {
    n = Math.min(n, this.remaining);
    this.remaining -= n;
    let done = 0;
    while (done < n) {
      const v = this.segs[this.seg].view;
      const k = Math.min(v.length - this.off, n - done);
      take(v.subarray(this.off, this.off + k), done);
      done += k;
      this.off += k;
      if (this.off === v.length) {
        this.seg++;
        this.off = 0;
      }
    }
  }
}
