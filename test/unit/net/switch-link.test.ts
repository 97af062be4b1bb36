/**
 * The switch across threads (devices/net/switch-link.ts, frame-link.ts), with MessageChannels in
 * this thread standing in for worker threads: learning and flooding between linked ports and a
 * port of this thread, offload metadata crossing intact, the bounded queues, hostile messages,
 * and a port closing or its worker being terminated (its MACs forgotten, the switch gone with
 * its last port).
 */
import { describe, expect, it } from 'vitest';
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import {
  attachSwitchLink,
  netSwitch,
  switchLinkConnector,
  type NetBackend,
  type NetPacket,
} from '../../../devices/net/index.js';
import { switchNames } from '../../../devices/net/switch.js';
import { FrameLink, MAX_BYTES, MAX_FRAMES } from '../../../devices/net/frame-link.js';
import { GSO_TCPV4 } from '../../../devices/net/packet.js';

const BCAST = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
const mac = (n: number): number[] => [0x52, 0x54, 0, 0, 0, n];
function frame(dst: number[], src: number[], len = 60): Uint8Array {
  const f = new Uint8Array(len);
  f.set(dst, 0);
  f.set(src, 6);
  f[12] = 0x08;
  return f;
}

/** Lets queued port messages (and their acknowledgements) be delivered. */
const settle = async (): Promise<void> => {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
};

/** A "worker" NIC's back end joined to this thread's hub, and what it received. */
function linked(name: string): { be: NetBackend; got: NetPacket[] } {
  const connect = switchLinkConnector((n, port) => attachSwitchLink(n, port));
  const be = connect(name);
  const got: NetPacket[] = [];
  be.onReceive = (p) => got.push(p);
  return { be, got };
}

describe('switch across threads', () => {
  it('learns and floods between linked ports and a port of this thread', async () => {
    const a = linked('xt1');
    const b = linked('xt1');
    const local = netSwitch('xt1').connect();
    const localGot: NetPacket[] = [];
    local.onReceive = (p) => localGot.push(p);
    await settle();
    expect(netSwitch('xt1').stats.ports).toBe(3);

    a.be.send({ data: frame(BCAST, mac(1)) });
    await settle();
    expect(b.got).toHaveLength(1);
    expect(localGot).toHaveLength(1);
    expect(a.got).toHaveLength(0);

    // B answers A: A's MAC was learnt, so only A gets it.
    b.be.send({ data: frame(mac(1), mac(2)) });
    await settle();
    expect(a.got.map((p) => Array.from(p.data.subarray(6, 12)))).toEqual([mac(2)]);
    expect(localGot).toHaveLength(1);

    // The local NIC reaches a linked one by its learnt MAC, synchronously into the link.
    local.send({ data: frame(mac(2), mac(3)) });
    await settle();
    expect(b.got).toHaveLength(2);
    expect(netSwitch('xt1').stats).toMatchObject({ macs: 3, forwarded: 2, flooded: 1 });
    for (const x of [a, b]) x.be.close();
    local.close();
  });

  it('carries offload metadata, so a 64 KiB segment crosses in one piece', async () => {
    const a = linked('xt2');
    const b = linked('xt2');
    await settle();
    const big = frame(mac(2), mac(1), 65_000);
    big[100] = 0xab;
    a.be.send({
      data: big,
      csum: { start: 34, offset: 16 },
      gso: { type: GSO_TCPV4, size: 1448, hdrLen: 54 },
      csumValid: true,
    });
    await settle();
    expect(b.got).toHaveLength(1);
    const p = b.got[0];
    expect(p.data.length).toBe(65_000);
    expect(p.data[100]).toBe(0xab);
    expect(p.csum).toEqual({ start: 34, offset: 16 });
    expect(p.gso).toEqual({ type: GSO_TCPV4, size: 1448, hdrLen: 54 });
    expect(p.csumValid).toBe(true);
    // The sender's packet is still readable (its bytes were copied, not moved).
    expect(big[100]).toBe(0xab);
    a.be.close();
    b.be.close();
  });

  it('a port closing leaves the switch: its MACs are forgotten, the last one removes it', async () => {
    const a = linked('xt3');
    const b = linked('xt3');
    await settle();
    a.be.send({ data: frame(BCAST, mac(1)) });
    b.be.send({ data: frame(BCAST, mac(2)) });
    await settle();
    expect(netSwitch('xt3').stats).toMatchObject({ ports: 2, macs: 2 });
    a.be.close();
    await settle();
    expect(netSwitch('xt3').stats).toMatchObject({ ports: 1, macs: 1 });
    // A frame for the departed MAC is flooded (to nobody else), not delivered to a dead port.
    b.be.send({ data: frame(mac(1), mac(2)) });
    await settle();
    expect(netSwitch('xt3').stats.flooded).toBe(3);
    b.be.close();
    await settle();
    expect(switchNames()).not.toContain('xt3');
  });

  it('a worker thread that is terminated leaves the switch', async () => {
    // A stand-in worker: it opens a channel and hands one end over, as vm-worker does.
    const w = new Worker(
      `const { parentPort, MessageChannel } = require('node:worker_threads');
       const ch = new MessageChannel(); ch.port1.on('message', () => {});
       parentPort.postMessage(ch.port2, [ch.port2]); setInterval(() => {}, 1000);`,
      { eval: true },
    );
    const port = await new Promise<MessagePort>((r) => w.once('message', r));
    attachSwitchLink('xt5', port);
    const local = netSwitch('xt5').connect();
    expect(netSwitch('xt5').stats.ports).toBe(2);
    await w.terminate();
    for (let i = 0; i < 50 && netSwitch('xt5').stats.ports > 1; i++) await settle();
    expect(netSwitch('xt5').stats.ports).toBe(1);
    local.close();
  });

  it('the worker end loses carrier when the hub end goes away', async () => {
    let hubEnd: MessagePort | undefined;
    const be = switchLinkConnector((_, port) => (hubEnd = port))('xt4');
    const carrier: boolean[] = [];
    be.onCarrier = (up) => carrier.push(up);
    expect(be.carrier).toBe(true);
    hubEnd!.close();
    await settle();
    expect(be.carrier).toBe(false);
    expect(carrier).toEqual([false]);
    be.send({ data: frame(BCAST, mac(1)) }); // dropped, no throw
  });
});

describe('frame link bounds and hostile messages', () => {
  it('drops beyond MAX_FRAMES unacknowledged frames, and sends again once acknowledged', async () => {
    const ch = new MessageChannel();
    const tx = new FrameLink(ch.port1);
    const rx = new FrameLink(ch.port2);
    let received = 0;
    rx.onFrame = () => received++;
    for (let i = 0; i < MAX_FRAMES + 44; i++) tx.send({ data: frame(BCAST, mac(1)) });
    expect(tx.stats).toMatchObject({ sent: MAX_FRAMES, dropped: 44 });
    await settle();
    expect(received).toBe(MAX_FRAMES);
    // The receiver acknowledged what it took: there is room again.
    expect(tx.send({ data: frame(BCAST, mac(1)) })).toBe(true);
    tx.close();
  });

  it('bounds the bytes in flight too', async () => {
    const ch = new MessageChannel();
    const tx = new FrameLink(ch.port1);
    new FrameLink(ch.port2);
    const big = frame(BCAST, mac(1), 65_536);
    let sent = 0;
    for (let i = 0; i < 100; i++) if (tx.send({ data: big })) sent++;
    expect(sent).toBe(Math.floor(MAX_BYTES / 65_536));
    expect(tx.stats.dropped).toBe(100 - sent);
    tx.close();
  });

  it('counts malformed messages and never throws on them', async () => {
    const ch = new MessageChannel();
    const rx = new FrameLink(ch.port2);
    let received = 0;
    rx.onFrame = () => received++;
    const bad: unknown[] = [
      null,
      42,
      'frame',
      { t: 'f' },
      { t: 'f', d: new ArrayBuffer(5) }, // runt
      { t: 'f', d: new ArrayBuffer(70_000) }, // giant
      { t: 'f', d: new ArrayBuffer(60), g: [99, 1, 1] }, // unknown GSO type
      { t: 'f', d: new ArrayBuffer(60), c: [-1, 'x'] },
      { t: 'a', n: -5, b: 1 },
    ];
    for (const m of bad) ch.port1.postMessage(m);
    await settle();
    expect(received).toBe(0);
    expect(rx.stats.malformed).toBe(bad.length);
    ch.port1.close();
  });
});
