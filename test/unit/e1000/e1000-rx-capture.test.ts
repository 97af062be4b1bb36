/**
 * A capture on an e1000 records what the guest got. The NAT hands the NIC large TCP segments
 * and the e1000 model cuts them itself, into pieces that keep the payload word-aligned in
 * Linux's receive buffers (1456 bytes, not the 1460 MSS); the test plays Linux's driver (a
 * 256-descriptor ring of 2048-byte buffers, 2 bytes past a 64-byte boundary) and reads the
 * pcap back: its frames must be the frames the descriptors got, byte for byte and in order —
 * also for a segment that waited in the port's backlog for buffers. A segment the NIC loses
 * (ring and backlog full) never reaches the guest; the capture holds it as the MSS frames a
 * link would have carried, in the order it arrived (after the frames that waited).
 */
import { describe, it, expect, afterEach } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { E1000 } from '../../../devices/e1000/device.js';
import { REG } from '../../../devices/e1000/regs.js';
import { CFG, CMD_BUS_MASTER, CMD_MEMORY } from '../../../devices/pci/function.js';
import { NetPort } from '../../../devices/net/port.js';
import type { NetBackend } from '../../../devices/net/backend.js';
import { GSO_TCPV4, type NetPacket } from '../../../devices/net/packet.js';
import { onesSum, put16, segmentTcp } from '../../../devices/net/offload.js';
import { GUEST_MAC, GW_MAC } from '../net/user-frames.js';
import { pcapFrames } from '../net/pcap-frames.js';
import { logSink } from '../platform/helpers.js';

const RAM_BASE = 0x8000_0000;
const RING = 0x1000;
const SLOTS = 256;
const BUFS = 0x10000;
const MSS = 1460;
const FCS = 4;
const RCTL_EN = 1 << 1;
const RCTL_BAM = 1 << 15;
/** 44 pieces of 1456: a segment the NAT sends while the e1000 says where frames land. */
const SEGMENT = 44 * 1456;

const cleanup: (() => void | Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0)) await c();
});

/** A back end the test delivers frames from. */
class FakeNat implements NetBackend {
  readonly spec = 'user';
  readonly carrier = true;
  onReceive: ((p: NetPacket) => void) | undefined;
  onCarrier: ((up: boolean) => void) | undefined;
  rxFrameAlign: (() => number | undefined) | undefined;
  send(): void {}
  close(): void {}
}

/**
 * A large segment as net=user sends it (10.0.2.2:80 → 10.0.2.15:40000): TSO metadata with the
 * MSS the guest announced and a partial checksum seeded with the pseudo-header sum.
 */
function natSegment(seq: number, payload: Uint8Array): NetPacket {
  const d = new Uint8Array(54 + payload.length);
  d.set(GUEST_MAC, 0);
  d.set(GW_MAC, 6);
  put16(d, 12, 0x0800);
  d[14] = 0x45;
  put16(d, 16, 40 + payload.length);
  d[22] = 64;
  d[23] = 6;
  d.set([10, 0, 2, 2, 10, 0, 2, 15], 26);
  put16(d, 34, 80);
  put16(d, 36, 40000);
  new DataView(d.buffer).setUint32(38, seq);
  d[46] = 0x50;
  d[47] = 0x18; // ACK PSH
  put16(d, 48, 65535);
  d.set(payload, 54);
  const seed = onesSum(d, 26, 34) + 6 + 20 + payload.length;
  put16(d, 50, (seed & 0xffff) + (seed >>> 16));
  return {
    data: d,
    csum: { start: 34, offset: 16 },
    gso: { type: GSO_TCPV4, size: MSS, hdrLen: 54 },
  };
}

/** A 60-byte frame for the guest (not TCP: taken as it is). */
function small(tag: number): NetPacket {
  const d = new Uint8Array(60);
  d.set(GUEST_MAC, 0);
  d.set(GW_MAC, 6);
  put16(d, 12, 0x88b5); // local experimental ethertype
  d[14] = tag;
  return { data: d };
}

/** The e1000 on a NetPort, its receive ring set up as Linux's driver does. */
function e1000Guest() {
  const ram = new Uint8Array(BUFS + SLOTS * 4096);
  const dv = new DataView(ram.buffer);
  const nat = new FakeNat();
  const port = new NetPort('e1000-0', nat, () => nat);
  const nic = new E1000({
    mac: GUEST_MAC,
    port,
    memory: { ram, ramBase: RAM_BASE },
    log: logSink().sink,
  });
  cleanup.push(() => port.close());
  nic.pci.writeConfig(CFG.command, 2, CMD_MEMORY | CMD_BUS_MASTER);
  const mmio = nic.pci.bars[0]!.device;
  const w = (off: number, v: number): void => mmio.write(off, 4, v);
  const addr = (slot: number) => BUFS + slot * 4096 + 2; // 2 past a 64-byte boundary
  for (let i = 0; i < SLOTS; i++) dv.setUint32(RING + i * 16, RAM_BASE + addr(i), true);
  w(REG.RDBAL, RAM_BASE + RING);
  w(REG.RDBAH, 0);
  w(REG.RDLEN, SLOTS * 16);
  w(REG.RDH, 0);
  w(REG.RDT, SLOTS - 1);
  w(REG.RCTL, RCTL_EN | RCTL_BAM); // 2048-byte buffers, FCS kept
  let next = 0;
  const got: Uint8Array[] = [];
  /** Cleans what the NIC wrote back (each frame one buffer), refills, moves RDT. */
  const clean = (): void => {
    let n = 0;
    while (ram[RING + next * 16 + 12] & 1) {
      const d = RING + next * 16;
      expect(ram[d + 12] & 2, 'one buffer per frame').toBe(2); // EOP
      expect(ram[d + 13], 'no receive error').toBe(0);
      const len = dv.getUint16(d + 8, true);
      got.push(ram.slice(addr(next), addr(next) + len - FCS));
      ram[d + 12] = 0;
      next = (next + 1) % SLOTS;
      n++;
    }
    if (n > 0) w(REG.RDT, (next + SLOTS - 1) % SLOTS);
  };
  return { nic, port, nat, got, clean, deliver: (p: NetPacket) => nat.onReceive!(p) };
}

function tempPcap(): string {
  const dir = mkdtempSync(join(tmpdir(), 'wv-e1000-pcap-'));
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  return join(dir, 'e1000.pcap');
}

/** TCP payload lengths of the TCP frames among `frames`. */
const tcpLens = (frames: Uint8Array[]) =>
  frames.filter((f) => f[23] === 6).map((f) => f.length - 54);

describe('e1000 capture', () => {
  it('records the aligned pieces the guest got, byte for byte, also after a wait in the backlog', async () => {
    const g = e1000Guest();
    const pcap = tempPcap();
    await g.port.startCapture(pcap);
    g.deliver(small(1)); // the NIC learns where Linux's buffers put a frame
    expect(g.nic.rxFrameAlign()).toBe(2);
    const stream = randomBytes(6 * SEGMENT);
    // 1 + 5 × 44 descriptors fit the ring's 255; the sixth segment and a frame after it wait.
    for (let i = 0; i < 6; i++) {
      g.deliver(natSegment(1000 + i * SEGMENT, stream.subarray(i * SEGMENT, (i + 1) * SEGMENT)));
    }
    g.deliver(small(2));
    expect(g.port.stats.rx_backlog).toBe(2);
    g.clean(); // the driver refills: the port hands over what waited
    g.clean();
    expect(g.port.stats.rx_backlog).toBe(0);
    await g.port.stopCapture();

    const recorded = pcapFrames(pcap);
    expect(g.got).toHaveLength(1 + 6 * 44 + 1);
    expect(recorded).toEqual(g.got);
    // What the guest got: 1456-byte pieces (not 1460), the stream whole and in order.
    expect(new Set(tcpLens(recorded))).toEqual(new Set([1456]));
    const payload = Buffer.concat(recorded.filter((f) => f[23] === 6).map((f) => f.subarray(54)));
    expect(payload.equals(stream)).toBe(true);
    expect(g.port.stats.captured).toBe(recorded.length);
  });

  it('a segment lost to a full ring and backlog is recorded as MSS frames, in arrival order', async () => {
    const g = e1000Guest();
    const pcap = tempPcap();
    await g.port.startCapture(pcap);
    for (let i = 0; i < 255 + 256; i++) g.deliver(small(i & 0xff)); // ring full, then backlog
    expect(g.port.stats.rx_backlog).toBe(256);
    const lost = natSegment(5000, randomBytes(SEGMENT));
    g.deliver(lost);
    expect(g.port.stats.rx_dropped).toBe(1);
    for (let i = 0; i < 4; i++) g.clean();
    expect(g.got).toHaveLength(255 + 256);
    await g.port.stopCapture();

    const mss = segmentTcp(lost.data, MSS).map((f) => f.data);
    expect(tcpLens(mss)).toContain(1460);
    // The ring's 255 frames and the backlog's 256 as the guest got them, then the lost segment
    // as a link carries it (the guest never saw it).
    expect(pcapFrames(pcap)).toEqual([...g.got, ...mss]);
    expect(g.port.stats.captured).toBe(g.got.length + mss.length);
  });
});
