/**
 * A download over net=user into an e1000, with the test playing Linux's e1000 driver: a
 * 256-descriptor legacy receive ring of 2048-byte buffers at addresses the test chooses,
 * cleaned and refilled as the driver does (RDT one behind the next descriptor to clean), while
 * a real host server on 127.0.0.1 sends. What a guest would notice:
 *   - with buffers as Linux 6.1 posts them (2 bytes past a 64-byte boundary), each frame's TCP
 *     payload sits at the same address mod 8 as its offset in the stream, so the guest's
 *     copy_to_user copies by words, and 64 KiB still takes about 44 frames (no sliver);
 *   - buffers that disagree mod 8 get MSS frames as before, and nothing is claimed;
 *   - a driver that moves its buffers mid-stream is followed;
 *   - in every case the stream arrives whole, in order, each frame checksummed and no longer
 *     than the MSS, and a hostile ring (buffers outside RAM, moving at random) throws nothing.
 */
import { describe, it, expect, afterEach } from 'vitest';
import { randomBytes } from 'node:crypto';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { E1000 } from '../../../devices/e1000/device.js';
import { REG } from '../../../devices/e1000/regs.js';
import { CFG, CMD_BUS_MASTER, CMD_MEMORY } from '../../../devices/pci/function.js';
import { NetPort } from '../../../devices/net/port.js';
import { UserNetwork } from '../../../devices/net/user/index.js';
import { F, GUEST_MAC, tcp, tcpOut, until } from '../net/user-frames.js';
import { logSink } from '../platform/helpers.js';

const RAM_BASE = 0x8000_0000;
const RING = 0x1000;
const SLOTS = 256;
/** Each slot's buffer lives somewhere in its own 4 KiB: address = BUFS + slot * 4096 + skew. */
const BUFS = 0x10000;
const MSS = 1460;
const HDRS = 14 + 20 + 20;
const FCS = 4;
const RCTL_EN = 1 << 1;
const RCTL_BAM = 1 << 15;

const cleanup: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanup.splice(0)) c();
});

/** A host server on 127.0.0.1 that writes `body` to each connection, then ends it. */
async function source(body: Buffer): Promise<number> {
  const socks: Socket[] = [];
  const srv = createServer({ allowHalfOpen: true }, (s) => {
    socks.push(s);
    s.on('error', () => {});
    s.end(body);
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  cleanup.push(() => {
    for (const s of socks) s.destroy();
    srv.close();
  });
  return (srv.address() as AddressInfo).port;
}

/** A frame the driver cleaned: where its buffer was and what it held (without the FCS). */
interface Rx {
  addr: number;
  frame: Uint8Array;
}

/**
 * The e1000 behind a NetPort on a UserNetwork, and a driver for its receive ring.
 * `skew(slot, n)` is how far past its 4 KiB slot the buffer posted in `slot` for the n-th time
 * starts (0 to 2047); the driver refills a slot right after cleaning it.
 */
function e1000Guest(skew: (slot: number, n: number) => number) {
  const ram = new Uint8Array(BUFS + SLOTS * 4096);
  const dv = new DataView(ram.buffer);
  const net = new UserNetwork('user', { resolver: null });
  const port = new NetPort('e1000-0', net, () => net);
  const log = logSink();
  const nic = new E1000({
    mac: GUEST_MAC,
    port,
    memory: { ram, ramBase: RAM_BASE },
    log: log.sink,
  });
  cleanup.push(() => void port.close());
  nic.pci.writeConfig(CFG.command, 2, CMD_MEMORY | CMD_BUS_MASTER);
  const mmio = nic.pci.bars[0]!.device;
  const w = (off: number, v: number): void => mmio.write(off, 4, v);
  const r = (off: number): number => mmio.read(off, 4);
  const posts = new Array<number>(SLOTS).fill(0);
  const addrs: number[] = [];
  const post = (slot: number, addr = RAM_BASE + BUFS + slot * 4096 + skew(slot, posts[slot]++)) => {
    addrs[slot] = addr;
    dv.setUint32(RING + slot * 16, addr % 2 ** 32, true);
    dv.setUint32(RING + slot * 16 + 4, Math.floor(addr / 2 ** 32), true);
    dv.setUint32(RING + slot * 16 + 8, 0, true);
    dv.setUint32(RING + slot * 16 + 12, 0, true);
  };
  for (let i = 0; i < SLOTS; i++) post(i);
  w(REG.RDBAL, RAM_BASE + RING);
  w(REG.RDBAH, 0);
  w(REG.RDLEN, SLOTS * 16);
  w(REG.RDH, 0);
  w(REG.RDT, SLOTS - 1);
  w(REG.RCTL, RCTL_EN | RCTL_BAM); // 2048-byte buffers, FCS kept (as Linux sets it)
  let next = 0;
  /** Frames received since the last call; their slots are refilled and handed back. */
  const take = (): Rx[] => {
    const out: Rx[] = [];
    while (ram[RING + next * 16 + 12] & 1) {
      const len = dv.getUint16(RING + next * 16 + 8, true);
      const at = addrs[next] - RAM_BASE;
      if (ram[RING + next * 16 + 13] === 0 && at >= 0 && at + len <= ram.length) {
        out.push({ addr: addrs[next], frame: ram.slice(at, at + len - FCS) });
      }
      post(next);
      next = (next + 1) % SLOTS;
    }
    if (out.length > 0) w(REG.RDT, (next + SLOTS - 1) % SLOTS);
    return out;
  };
  return { nic, port, take, post, r, w };
}

/**
 * Plays the guest's TCP against 10.0.2.2:port over the e1000: handshake (MSS 1460), then
 * acknowledges in-order data with an open window until the NAT's FIN. Every data frame must
 * continue the stream where the last one ended (nothing lost, repeated or reordered) and be
 * at most one MSS; `lossy`: a frame beyond a gap (the driver lost one) is dropped and the ACK
 * repeated, as a receiver without an out-of-order queue does. Returns each data frame with its stream offset, and the stream.
 */
async function download(
  g: ReturnType<typeof e1000Guest>,
  port: number,
  bytes: number,
  lossy = false,
) {
  const sport = 40300;
  const send = (o: { seq: number; ack?: number; flags: number; mss?: number }) =>
    g.port.transmit({
      data: tcp({ sport, dport: port, win: 65535, ...o, wscale: o.mss ? 7 : undefined }),
    });
  /** TCP segments among the frames received (ARP and the like skipped). */
  const segments = () =>
    g
      .take()
      .filter((r) => r.frame[12] === 0x08 && r.frame[13] === 0 && r.frame[23] === 6)
      .map((r) => ({ r, t: tcpOut({ data: r.frame }) }));
  send({ seq: 100, flags: F.SYN, mss: MSS });
  let iss: number | undefined;
  await until(() => (iss = segments()[0]?.t.seq) !== undefined);
  send({ seq: 101, ack: iss! + 1, flags: F.ACK });
  const stream = new Uint8Array(bytes);
  const frames: { addr: number; off: number; len: number }[] = [];
  let next = 0;
  let fin = false;
  await until(() => {
    let moved = false;
    for (const { r, t } of segments()) {
      if (t.payload.length > 0) {
        expect(t.payload.length).toBeLessThanOrEqual(MSS);
        const off = (t.seq - iss! - 1) >>> 0;
        if (lossy && off !== next) {
          moved = true; // a frame after one the driver lost: dropped, the ACK repeated
          continue;
        }
        expect(off).toBe(next);
        frames.push({ addr: r.addr, off: next, len: t.payload.length });
        stream.set(t.payload, next);
        next += t.payload.length;
        moved = true;
      }
      if (t.flags & F.FIN && ((t.seq - iss! - 1) >>> 0) + t.payload.length === next) {
        fin = moved = true;
      }
    }
    if (moved) send({ seq: 101, ack: (iss! + 1 + next + (fin ? 1 : 0)) >>> 0, flags: F.ACK });
    return fin;
  }, 15_000);
  return { frames, stream, received: next };
}

/** Frames whose payload's guest address and stream offset differ mod 8 (copied by shifting). */
const shifted = (frames: { addr: number; off: number }[]) =>
  frames.filter((f) => (f.addr + HDRS - f.off) % 8 !== 0);

describe('e1000 download over net=user: payloads where the guest copies by words', () => {
  it("Linux's buffers (2 past a 64-byte boundary): every payload at its stream offset mod 8, 64 KiB in 44 frames", async () => {
    const body = randomBytes(4 << 20);
    const g = e1000Guest(() => 2);
    const r = await download(g, await source(body), body.length);
    expect(r.received).toBe(body.length);
    expect(Buffer.from(r.stream).equals(body)).toBe(true);
    expect(g.nic.rxFrameAlign()).toBe(2);
    // The first segment may start where the NAT did not know the buffers yet; a segment that
    // starts misaligned with little queued (the host's data ran out) keeps its frames so.
    expect(shifted(r.frames).length).toBeLessThan(r.frames.length / 50);
    // Pieces of 1456 (the MSS rounded down to 8), not 1460 and a sliver per 64 KiB segment.
    const full = r.frames.filter((f) => f.len >= MSS - 7);
    expect(full.filter((f) => f.len === 1456).length).toBeGreaterThan(full.length * 0.95);
    expect(r.frames.length).toBeLessThan(Math.ceil(body.length / 1456) * 1.03);
  });

  it('follows buffers skewed elsewhere mod 8 (5 past a 64-byte boundary)', async () => {
    const body = randomBytes(1 << 20);
    const g = e1000Guest(() => 5);
    const r = await download(g, await source(body), body.length);
    expect(Buffer.from(r.stream).equals(body)).toBe(true);
    expect(g.nic.rxFrameAlign()).toBe(5);
    expect(shifted(r.frames).length).toBeLessThan(r.frames.length / 20);
  });

  it('buffers that disagree mod 8: no alignment claimed, MSS frames as before, stream exact', async () => {
    const body = randomBytes(1 << 20);
    const g = e1000Guest((slot) => slot % 3);
    const r = await download(g, await source(body), body.length);
    expect(Buffer.from(r.stream).equals(body)).toBe(true);
    expect(g.nic.rxFrameAlign()).toBeUndefined();
    // Frames are cut at the MSS: only the end of a segment is shorter.
    const cut = r.frames.filter((f) => f.len !== MSS);
    expect(cut.length).toBeLessThan(r.frames.length / 10);
  });

  it('a driver that moves its buffers mid-stream is followed', async () => {
    const body = randomBytes(4 << 20);
    let moved = false;
    // Slots are refilled at 2 mod 8 until half the stream is in, then at 6 mod 8.
    const g = e1000Guest(() => (moved ? 6 : 2));
    const port = await source(body);
    const done = download(g, port, body.length);
    await until(() => g.nic.metrics.rx_bytes > body.length / 2, 15_000);
    moved = true;
    const r = await done;
    expect(Buffer.from(r.stream).equals(body)).toBe(true);
    expect(g.nic.rxFrameAlign()).toBe(6);
    const late = r.frames.filter((f) => (f.addr & 7) === 6);
    expect(late.length).toBeGreaterThan(500);
    expect(shifted(late).length).toBeLessThan(late.length / 20);
  });

  it('a hostile driver (buffers moved at random, some outside RAM, RDH rewritten) throws nothing', async () => {
    const body = randomBytes(1 << 20);
    let seed = 7;
    const rnd = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    // Mostly where Linux puts them (alignment is claimed), a fifth anywhere.
    const g = e1000Guest(() => (rnd() < 0.8 ? 2 : Math.floor(rnd() * 2048)));
    const port = await source(body);
    let outside = 0;
    const bad = setInterval(() => {
      // Descriptors the NIC owns (RDH to RDT) rewritten: a few to buffers outside RAM (their
      // frames come back with an error and are lost: TCP resends them), others moved; and RDH
      // rewritten with its own value (a driver resetting ring state).
      const head = g.r(REG.RDH);
      const owned = (g.r(REG.RDT) - head + SLOTS) % SLOTS;
      if (owned > 1) {
        const slot = (head + 1 + Math.floor(rnd() * (owned - 1))) % SLOTS;
        if (outside < 4) {
          outside++;
          g.post(slot, 0x10);
        } else g.post(slot);
      }
      g.w(REG.RDH, head);
    }, 3);
    cleanup.push(() => clearInterval(bad));
    const r = await download(g, port, body.length, true);
    clearInterval(bad);
    expect(Buffer.from(r.stream).equals(body)).toBe(true);
    expect(g.nic.metrics.rx_bad_descriptors).toBeGreaterThan(0);
    expect(g.nic.metrics.guest_errors).toBe(g.nic.metrics.rx_bad_descriptors);
  });
});
