/** Back ends and offloads with hand-built frames: switch learning, link, capture, segmentation. */
import { describe, it, expect } from 'vitest';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { netSwitch, NetPort, openNetBackend, checkNetSpec } from '../../../devices/net/index.js';
import type { NetPacket } from '../../../devices/net/packet.js';
import { GSO_TCPV4 } from '../../../devices/net/packet.js';
import { internetChecksum, segmentTcp, toWireFrames } from '../../../devices/net/offload.js';
import { parseNicSpec } from '../../../main/vm/config.js';
import { pcapFrames } from './pcap-frames.js';

function nic(spec: string) {
  const got: NetPacket[] = [];
  const carrier: boolean[] = [];
  let room = true;
  const port = new NetPort('n', openNetBackend(spec), openNetBackend);
  port.frontend = {
    receive: (p) => (room ? (got.push(p), true) : false),
    carrierChanged: (up) => carrier.push(up),
  };
  return { port, got, carrier, setRoom: (r: boolean) => (room = r) };
}

const frame = (dst: number, src: number, len = 60): NetPacket => {
  const d = new Uint8Array(len);
  d.set([0x52, 0, 0, 0, 0, dst], 0);
  d.set([0x52, 0, 0, 0, 0, src], 6);
  if (dst === 0xff) d.fill(0xff, 0, 6);
  return { data: d };
};

function tcpPacket(payload: number): Uint8Array {
  const d = new Uint8Array(54 + payload);
  d[12] = 0x08;
  d[14] = 0x45;
  d[22] = 64;
  d[23] = 6;
  d.set([10, 0, 0, 1, 10, 0, 0, 2], 26);
  d[46] = 0x50;
  d[47] = 0x19; // ACK PSH FIN
  for (let i = 54; i < d.length; i++) d[i] = i & 0xff;
  return d;
}

describe('switch:NAME', () => {
  it('floods unknown destinations, then forwards to the learnt port only', () => {
    const a = nic('switch:t1');
    const b = nic('switch:t1');
    const c = nic('switch:t1');
    a.port.transmit(frame(2, 1));
    expect([b.got.length, c.got.length]).toEqual([1, 1]);
    b.port.transmit(frame(1, 2));
    expect(a.got).toHaveLength(1);
    expect(c.got).toHaveLength(1); // 1 was learnt: no flood
    a.port.transmit(frame(2, 1));
    expect([b.got.length, c.got.length]).toEqual([2, 1]);
    expect(netSwitch('t1').stats).toMatchObject({ ports: 3, forwarded: 2, flooded: 1 });
  });

  it('link down drops both ways and tells the NIC; setBackend moves it between networks', () => {
    const a = nic('switch:t2');
    const b = nic('switch:t2');
    a.port.setLink(false);
    expect(a.carrier).toEqual([false]);
    a.port.transmit(frame(0xff, 1));
    b.port.transmit(frame(0xff, 2));
    expect([a.got.length, b.got.length]).toEqual([0, 0]);
    a.port.setLink(true);
    a.port.setBackend('none');
    expect(a.carrier).toEqual([false, true, false]);
    a.port.setBackend('switch:t2');
    b.port.transmit(frame(0xff, 2));
    expect(a.got).toHaveLength(1);
    expect(() => a.port.setBackend('user,bogus=1')).toThrow(/unknown option "bogus=1"/);
    expect(a.port.backendSpec).toBe('switch:t2');
  });

  it('a pulled cable stays pulled when the NIC moves to another network', () => {
    const a = nic('switch:t5');
    const b = nic('switch:t6');
    a.port.setLink(false);
    a.port.setBackend('switch:t6');
    expect(a.port.linkUp).toBe(false);
    expect(a.port.carrier).toBe(false);
    expect(a.carrier).toEqual([false]); // the guest was not told of a carrier in between
    expect(a.port.stats).toMatchObject({ link_up: 0, carrier: 0 });
    b.port.transmit(frame(0xff, 2));
    a.port.transmit(frame(0xff, 1));
    expect([a.got.length, b.got.length]).toEqual([0, 0]);
    a.port.setLink(true);
    expect(a.carrier).toEqual([false, true]);
    expect(a.port.stats).toMatchObject({ link_up: 1, carrier: 1 });
    a.port.setBackend('none');
    expect(a.port.stats).toMatchObject({ link_up: 1, carrier: 0 });
  });

  it('holds frames while the guest has no buffers, bounded', () => {
    const a = nic('switch:t3');
    const b = nic('switch:t3');
    b.setRoom(false);
    for (let i = 0; i < 300; i++) a.port.transmit(frame(0xff, 1));
    expect(b.port.stats.rx_backlog).toBe(256);
    expect(b.port.stats.rx_dropped).toBe(44);
    b.setRoom(true);
    b.port.flush();
    expect(b.got).toHaveLength(256);
  });

  it('captures to a pcap file tshark can read, switching files without losing frames', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wv-pcap-'));
    const a = nic('switch:t4');
    nic('switch:t4');
    await a.port.startCapture(join(dir, '1.pcap'));
    a.port.transmit(frame(0xff, 1, 70));
    a.port.transmit(frame(0xff, 1, 80));
    await a.port.startCapture(join(dir, '2.pcap'));
    a.port.transmit(frame(0xff, 1, 90));
    await a.port.stopCapture();
    const f1 = readFileSync(join(dir, '1.pcap'));
    const f2 = readFileSync(join(dir, '2.pcap'));
    expect(f1.readUInt32LE(0)).toBe(0xa1b2c3d4);
    expect(f1.readUInt32LE(20)).toBe(1); // Ethernet
    expect(f1.length).toBe(24 + 16 + 70 + 16 + 80);
    expect(f2.length).toBe(24 + 16 + 90);
    expect(a.port.stats.captured).toBe(3);
  });

  it('records received frames in arrival order: what waited when taken, a frame lost to the full backlog after the one ahead of it, what a pulled cable discards', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wv-pcap-'));
    const a = nic('switch:t4c');
    const b = nic('switch:t4c');
    const tagged = (i: number) => frame(2, 1, 60 + i); // each frame's length says which it is
    b.port.transmit(frame(0xff, 2)); // b's MAC learnt
    await b.port.startCapture(join(dir, 'b.pcap'));
    b.setRoom(false);
    for (let i = 0; i < 257; i++) a.port.transmit(tagged(i)); // 256 wait, the last is lost
    expect(b.port.stats).toMatchObject({ rx_backlog: 256, rx_dropped: 1 });
    expect(b.port.stats.captured).toBe(0); // nothing has left the backlog yet
    b.setRoom(true);
    b.port.flush();
    a.port.transmit(tagged(257));
    b.setRoom(false);
    a.port.transmit(tagged(258));
    b.port.setLink(false); // the backlog is discarded: the tap saw 258 arrive
    await b.port.stopCapture();
    expect(b.got.map((p) => p.data.length - 60)).toEqual([
      ...Array.from({ length: 256 }, (_, i) => i),
      257,
    ]);
    const lens = pcapFrames(join(dir, 'b.pcap')).map((f) => f.length - 60);
    expect(lens).toEqual(Array.from({ length: 259 }, (_, i) => i));
  });

  it('a resumed capture appends to a pcap file of its own; any other file starts anew', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wv-pcap-'));
    const a = nic('switch:t4b');
    const f = join(dir, 'keep.pcap');
    await a.port.startCapture(f);
    a.port.transmit(frame(0xff, 1, 70));
    await a.port.stopCapture();
    await a.port.startCapture(f, { append: true });
    a.port.transmit(frame(0xff, 1, 80));
    await a.port.stopCapture();
    expect(readFileSync(f).length).toBe(24 + 16 + 70 + 16 + 80); // one header, both frames
    const other = join(dir, 'other.pcap');
    writeFileSync(other, 'not a capture of ours, 24+ bytes long...');
    await a.port.startCapture(other, { append: true });
    a.port.transmit(frame(0xff, 1, 90));
    await a.port.stopCapture();
    const o = readFileSync(other);
    expect(o.readUInt32LE(0)).toBe(0xa1b2c3d4);
    expect(o.length).toBe(24 + 16 + 90);
  });

  it('records a large segment as the MSS frames it stands for, each with checksums that verify', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wv-pcap-'));
    const a = nic('switch:t5');
    nic('switch:t5');
    await a.port.startCapture(join(dir, 'gso.pcap'));
    const big = tcpPacket(10_000);
    a.port.transmit({
      data: big,
      csum: { start: 34, offset: 16 },
      gso: { type: GSO_TCPV4, size: 1448, hdrLen: 54 },
    });
    await a.port.stopCapture();
    const f = readFileSync(join(dir, 'gso.pcap'));
    const frames: Uint8Array[] = [];
    for (let o = 24; o < f.length; o += 16 + f.readUInt32LE(o + 8)) {
      frames.push(new Uint8Array(f.subarray(o + 16, o + 16 + f.readUInt32LE(o + 8))));
    }
    expect(frames).toHaveLength(Math.ceil(10_000 / 1448));
    expect(a.port.stats.captured).toBe(frames.length);
    let payload = 0;
    for (const d of frames) {
      expect(d.length).toBeLessThanOrEqual(54 + 1448);
      expect(internetChecksum(d, 14, 34)).toBe(0);
      const ph = new Uint8Array([
        ...d.subarray(26, 34),
        0,
        6,
        (d.length - 34) >> 8,
        (d.length - 34) & 0xff,
      ]);
      expect(internetChecksum(d, 34, d.length, 0xffff - internetChecksum(ph, 0, 12))).toBe(0);
      expect(d.subarray(54)).toEqual(big.subarray(54 + payload, 54 + payload + d.length - 54));
      payload += d.length - 54;
    }
    expect(payload).toBe(10_000);
  });
});

describe('offloads', () => {
  it('segments a 64 KiB TCP packet with fresh lengths, sequence numbers and checksums', () => {
    const d = tcpPacket(65_000);
    const segs = segmentTcp(d, 1448);
    expect(segs).toHaveLength(Math.ceil(65_000 / 1448));
    let payload = 0;
    for (const [i, s] of segs.entries()) {
      const f = s.data;
      expect(internetChecksum(f, 14, 34)).toBe(0);
      const pseudo = [f[26], f[27], f[28], f[29], f[30], f[31], f[32], f[33]];
      const ph = new Uint8Array([...pseudo, 0, 6, (f.length - 34) >> 8, (f.length - 34) & 0xff]);
      const sum = internetChecksum(f, 34, f.length, 0xffff - internetChecksum(ph, 0, 12));
      expect(sum).toBe(0);
      expect(f[47] & 0x09).toBe(i === segs.length - 1 ? 0x09 : 0);
      payload += f.length - 54;
    }
    expect(payload).toBe(65_000);
  });

  it('cuts pieces up to 7 bytes short where asked, the stream and sequence numbers exact', () => {
    const d = tcpPacket(20_000);
    const seq0 = 0x0123_4567;
    new DataView(d.buffer).setUint32(38, seq0);
    const asked: number[] = [];
    // Sensible answers (1 to 7 short), and ones that are not (too short, longer, NaN, negative).
    const answers = [1444, 1448, 1441, 1000, 1500, NaN, -3, 1445.5, 1447];
    const segs = segmentTcp(d, 1448, (hdrLen, done, full, left) => {
      expect(hdrLen).toBe(54);
      expect(full).toBe(1448);
      expect(left).toBe(20_000 - done);
      return answers[asked.push(done) - 1] ?? 1448;
    });
    const lens = segs.map((s) => s.data.length - 54);
    expect(lens.slice(0, 9)).toEqual([1444, 1448, 1441, 1448, 1448, 1448, 1448, 1448, 1447]);
    let payload = 0;
    for (const s of segs) {
      const f = s.data;
      expect(new DataView(f.buffer, f.byteOffset).getUint32(38)).toBe(seq0 + payload);
      expect(f.subarray(54)).toEqual(d.subarray(54 + payload, 54 + payload + f.length - 54));
      payload += f.length - 54;
    }
    expect(payload).toBe(20_000);
    // Asked for every piece but the last, which takes what is left.
    expect(asked).toHaveLength(segs.length - 1);
    expect(segs.at(-1)!.data[47] & 0x09).toBe(0x09);
  });

  it('refuses hostile packets instead of throwing: runts, bad header lengths, tiny MSS, giants', () => {
    expect(segmentTcp(new Uint8Array(10), 1000)).toEqual([]);
    const bad = tcpPacket(10);
    bad[14] = 0x4f; // IHL 60: the TCP header would start beyond the frame
    expect(segmentTcp(bad, 1000)).toEqual([]);
    const badTcp = tcpPacket(10);
    badTcp[46] = 0xf0; // TCP data offset 60 > the frame
    expect(segmentTcp(badTcp, 1000)).toEqual([]);
    expect(segmentTcp(tcpPacket(5000), 1)).toEqual([]);
    expect(segmentTcp(new Uint8Array(70_000), 1000)).toEqual([]);
    const udp = tcpPacket(100);
    udp[23] = 17;
    expect(toWireFrames({ data: udp, gso: { type: GSO_TCPV4, size: 50, hdrLen: 54 } })).toEqual([]);
    expect(toWireFrames({ data: tcpPacket(10), csum: { start: 60, offset: 16 } })).toEqual([]);
  });

  it('finishes a partial checksum (pseudo-header seed already in the field)', () => {
    const d = tcpPacket(100);
    const out = toWireFrames({ data: d, csum: { start: 34, offset: 16 } });
    expect(out).toHaveLength(1);
    expect(out[0].csumValid).toBe(true);
    expect(d[50]).toBe(0); // the input is not modified
  });
});

describe('--nic and net= specs', () => {
  it('parses QEMU-like NIC options (hostfwd/restrict of net=user kept in net), rejects bad ones', () => {
    expect(parseNicSpec('e1000,net=switch:lab,mac=52:54:00:AA:00:01,capture=x.pcap')).toEqual({
      model: 'e1000',
      net: 'switch:lab',
      mac: '52:54:00:aa:00:01',
      capture: 'x.pcap',
    });
    expect(parseNicSpec('virtio')).toMatchObject({ model: 'virtio', net: 'none' });
    expect(() => parseNicSpec('rtl8139')).toThrow(/model/);
    expect(parseNicSpec('e1000,net=user,hostfwd=tcp::8080-:80,restrict=on')).toMatchObject({
      net: 'user,hostfwd=tcp::8080-:80,restrict=on',
    });
    expect(() => parseNicSpec('e1000,net=none,hostfwd=tcp::8080-:80')).toThrow(/need net=user/);
    expect(() => parseNicSpec('e1000,net=user,hostfwd=tcp::8080')).toThrow(/expected tcp:/);
    expect(() => parseNicSpec('e1000,net=user,hostfwd=tcp::1-9.9.9.9:2')).toThrow(/10\.0\.2/);
    expect(() => parseNicSpec('e1000,net=user,restrict=maybe')).toThrow(/restrict=on/);
    expect(() => parseNicSpec('e1000,mac=01:00:00:00:00:00')).toThrow(/multicast/);
    expect(() => parseNicSpec('e1000,bogus=1')).toThrow(/unknown option/);
    expect(() => checkNetSpec('switch:')).toThrow(/not a network/);
  });
});
