/**
 * virtio-net's control queue played by the mock driver as Linux's virtio_net plays it: a chain
 * of class + command + data and one ack byte per command, kicked and answered at once. Each
 * command is checked by what the guest would notice: which frames reach its receive buffers,
 * what the config space says. Hostile commands are answered VIRTIO_NET_ERR (or, for chains that
 * cannot even carry the ack, NEEDS_RESET), never thrown.
 */
import { describe, it, expect } from 'vitest';
import { MockDriver, type Buf, forEachRingLayout } from './driver.js';
import { VirtioNet, NET_F } from '../../../devices/virtio/net/device.js';
import { CTRL_CLASS, MAC_CMD, ANNOUNCE_ACK } from '../../../devices/virtio/net/ctrl.js';
import { MAC_TABLE_ENTRIES } from '../../../devices/virtio/net/rx-filter.js';
import { NetPort } from '../../../devices/net/port.js';
import type { NetBackend } from '../../../devices/net/backend.js';
import type { NetPacket } from '../../../devices/net/packet.js';
import { MMIO } from '../../../devices/virtio/constants.js';

const MAC = [0x52, 0x54, 0, 0x12, 0x34, 0x56];
const OTHER = [0x52, 0x54, 0, 0x99, 0x99, 0x99];
const NEW_MAC = [0x02, 0, 0, 0, 0, 0x42];
const BCAST = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
const ALL_HOSTS = [0x01, 0, 0x5e, 0, 0, 1];
const MCAST_OTHER = [0x01, 0, 0x5e, 0, 0, 0x63];
const OK = 0;
const ERR = 1;
const RX = { promisc: 0, allmulti: 1, alluni: 2, nomulti: 3, nouni: 4, nobcast: 5 };

class FakeWire implements NetBackend {
  readonly sent: NetPacket[] = [];
  onReceive: ((p: NetPacket) => void) | undefined;
  onCarrier: ((up: boolean) => void) | undefined;
  constructor(
    readonly spec: string,
    readonly carrier = true,
  ) {}
  send(p: NetPacket): void {
    this.sent.push(p);
  }
  close(): void {}
}

const without =
  (...bits: number[]) =>
  (f: bigint): bigint =>
    bits.reduce((acc, b) => acc & ~(1n << BigInt(b)), f);

function setup(accept?: (f: bigint) => bigint) {
  const wires = new Map<string, FakeWire>();
  const open = (spec: string): FakeWire => {
    const w = new FakeWire(spec, spec !== 'none');
    wires.set(spec, w);
    return w;
  };
  const port = new NetPort('virtio-net0', open('switch:a'), open);
  const dev = new VirtioNet('virtio-net0', Uint8Array.from(MAC), port, 64);
  const d = new MockDriver(dev).init({ accept });
  const [rx, , cq] = d.queues;
  // Receive buffers for every frame a test delivers.
  for (let i = 0; i < 48; i++) rx.add([{ addr: d.mem.alloc(1526), len: 1526, write: true }]);
  d.kick(0);

  /** Sends one command; returns the ack byte the device wrote and the used length. */
  const command = (cls: number, cmd: number, ...data: Uint8Array[]): number => {
    const ack = d.mem.alloc(1);
    d.mem.setU8(ack, 0xee);
    const bufs: Buf[] = [{ addr: d.mem.put(Uint8Array.of(cls, cmd)), len: 2 }];
    for (const b of data) bufs.push({ addr: d.mem.put(b), len: b.length });
    bufs.push({ addr: ack, len: 1, write: true });
    const id = cq.add(bufs);
    expect(() => d.kick(2)).not.toThrow();
    const used = cq.takeUsed();
    expect(used).toEqual([{ id, len: 1 }]);
    return d.mem.u8(ack);
  };
  /** Whether a frame to `dst` from the wire reaches a receive buffer of the guest. */
  const reaches = (dst: number[], w = wires.get('switch:a')!): boolean => {
    const f = new Uint8Array(60);
    f.set(dst, 0);
    f.set([0x02, 0, 0, 0, 0, 0x99], 6);
    f[12] = 0x08;
    w.onReceive!({ data: f });
    return rx.takeUsed().length === 1;
  };
  const configMac = (): number[] =>
    Array.from({ length: 6 }, (_, i) => d.transport.read(MMIO.config + i, 1));
  return { d, dev, port, wires, cq, command, reaches, configMac };
}

const mode = (on: boolean): Uint8Array => Uint8Array.of(on ? 1 : 0);
const macs = (...m: number[][]): Uint8Array => {
  const out = new Uint8Array(4 + 6 * m.length);
  new DataView(out.buffer).setUint32(0, m.length, true);
  m.forEach((x, i) => out.set(x, 4 + 6 * i));
  return out;
};
/** A table header claiming `n` entries followed by `bytes` bytes. */
const claim = (n: number, bytes: number): Uint8Array => {
  const out = new Uint8Array(4 + bytes);
  new DataView(out.buffer).setUint32(0, n, true);
  return out;
};

forEachRingLayout('virtio-net control queue', () => {
  it('offers CTRL_VQ, CTRL_RX(_EXTRA), CTRL_MAC_ADDR and GUEST_ANNOUNCE with a third queue', () => {
    const { d } = setup();
    const f = d.offeredFeatures();
    for (const b of [17, 18, 20, 21, 23]) expect(f & (1n << BigInt(b))).not.toBe(0n);
    expect(f & (1n << 19n)).toBe(0n); // CTRL_VLAN: not offered
    expect(d.queues).toHaveLength(3);
    d.w(MMIO.queueSel, 2);
    expect(d.r(MMIO.queueNumMax)).toBe(64);
  });

  it('after reset every frame passes (promiscuous, as QEMU); PROMISC off keeps only ours', () => {
    const { dev, command, reaches } = setup();
    expect(reaches(OTHER)).toBe(true);
    expect(command(CTRL_CLASS.rx, RX.promisc, mode(false))).toBe(OK);
    expect(reaches(OTHER)).toBe(false);
    expect(reaches(MAC)).toBe(true);
    expect(reaches(BCAST)).toBe(true);
    expect(reaches(ALL_HOSTS)).toBe(false); // not in the (empty) table
    expect(dev.metrics.rx_filtered).toBe(2);
    expect(dev.stats.rx_mode_promisc).toBe(0);
    // A filtered frame takes no buffer and does not wait in the backlog.
    expect(dev.stats.net_rx_backlog).toBe(0);
    expect(dev.metrics.rx_no_buffers).toBe(0);
    expect(command(CTRL_CLASS.rx, RX.promisc, mode(true))).toBe(OK);
    expect(reaches(OTHER)).toBe(true);
  });

  it('ALLMULTI lets every multicast frame in, not other unicast', () => {
    const { command, reaches } = setup();
    command(CTRL_CLASS.rx, RX.promisc, mode(false));
    expect(command(CTRL_CLASS.rx, RX.allmulti, mode(true))).toBe(OK);
    expect(reaches(MCAST_OTHER)).toBe(true);
    expect(reaches(OTHER)).toBe(false);
    command(CTRL_CLASS.rx, RX.allmulti, mode(false));
    expect(reaches(MCAST_OTHER)).toBe(false);
  });

  it('MAC_ADDR_SET: the config space MAC and the filter follow; a reset restores the configured MAC', () => {
    const { d, command, reaches, configMac } = setup();
    command(CTRL_CLASS.rx, RX.promisc, mode(false));
    expect(command(CTRL_CLASS.mac, MAC_CMD.addrSet, Uint8Array.from(NEW_MAC))).toBe(OK);
    expect(configMac()).toEqual(NEW_MAC);
    expect(reaches(MAC)).toBe(false);
    expect(reaches(NEW_MAC)).toBe(true);
    d.init(); // the driver resets the device and probes again
    expect(configMac()).toEqual(MAC);
  });

  it('MAC_TABLE_SET: unicast and multicast entries pass; a new table replaces the old', () => {
    const { dev, command, reaches } = setup();
    command(CTRL_CLASS.rx, RX.promisc, mode(false));
    expect(command(CTRL_CLASS.mac, MAC_CMD.tableSet, macs(OTHER), macs(ALL_HOSTS))).toBe(OK);
    expect(reaches(OTHER)).toBe(true);
    expect(reaches(ALL_HOSTS)).toBe(true);
    expect(reaches(MCAST_OTHER)).toBe(false);
    expect(reaches(MAC)).toBe(true); // the own MAC is not in the table, and always passes
    expect(dev.stats).toMatchObject({ mac_table_unicast: 1, mac_table_multicast: 1 });
    expect(command(CTRL_CLASS.mac, MAC_CMD.tableSet, macs(), macs(MCAST_OTHER))).toBe(OK);
    expect(reaches(OTHER)).toBe(false);
    expect(reaches(ALL_HOSTS)).toBe(false);
    expect(reaches(MCAST_OTHER)).toBe(true);
  });

  it('a table larger than 64 entries overflows that class to "accept all", as QEMU', () => {
    const { dev, command, reaches } = setup();
    command(CTRL_CLASS.rx, RX.promisc, mode(false));
    const many = Array.from({ length: MAC_TABLE_ENTRIES + 1 }, (_, i) => [2, 0, 0, 0, 1, i]);
    expect(command(CTRL_CLASS.mac, MAC_CMD.tableSet, macs(...many), macs(ALL_HOSTS))).toBe(OK);
    expect(reaches(OTHER)).toBe(true); // unicast overflowed
    expect(reaches(ALL_HOSTS)).toBe(true);
    expect(reaches(MCAST_OTHER)).toBe(false); // multicast did not
    expect(dev.stats.mac_table_overflow).toBe(1);
    // 60 unicast fit; 10 multicast do not fit in the 4 left.
    const uni = many.slice(0, 60);
    const multi = Array.from({ length: 10 }, (_, i) => [1, 0, 0x5e, 0, 1, i]);
    expect(command(CTRL_CLASS.mac, MAC_CMD.tableSet, macs(...uni), macs(...multi))).toBe(OK);
    expect(reaches(OTHER)).toBe(false);
    expect(reaches(uni[59])).toBe(true);
    expect(reaches(MCAST_OTHER)).toBe(true);
    expect(dev.stats.mac_table_overflow).toBe(2);
  });

  it('CTRL_RX_EXTRA: NOBCAST, NOUNI, NOMULTI, ALLUNI', () => {
    const { command, reaches } = setup();
    command(CTRL_CLASS.rx, RX.promisc, mode(false));
    command(CTRL_CLASS.mac, MAC_CMD.tableSet, macs(), macs(ALL_HOSTS));
    expect(command(CTRL_CLASS.rx, RX.nobcast, mode(true))).toBe(OK);
    expect(reaches(BCAST)).toBe(false);
    expect(command(CTRL_CLASS.rx, RX.nomulti, mode(true))).toBe(OK);
    expect(reaches(ALL_HOSTS)).toBe(false);
    expect(command(CTRL_CLASS.rx, RX.nouni, mode(true))).toBe(OK);
    expect(reaches(MAC)).toBe(false);
    command(CTRL_CLASS.rx, RX.nouni, mode(false));
    expect(command(CTRL_CLASS.rx, RX.alluni, mode(true))).toBe(OK);
    expect(reaches(OTHER)).toBe(true);
    // Promiscuous mode wins over all of them.
    command(CTRL_CLASS.rx, RX.promisc, mode(true));
    expect(reaches(BCAST)).toBe(true);
  });

  it('GUEST_ANNOUNCE: STATUS.ANNOUNCE with a config interrupt until the driver acks it', () => {
    const { d, dev, port, command } = setup();
    d.ack();
    expect(dev.announce()).toBe(true);
    expect(d.transport.read(MMIO.config + 6, 2)).toBe(3); // LINK_UP | ANNOUNCE
    expect(d.ack() & 2).toBe(2);
    expect(command(CTRL_CLASS.announce, ANNOUNCE_ACK)).toBe(OK);
    expect(d.transport.read(MMIO.config + 6, 2)).toBe(1);
    expect(dev.metrics).toMatchObject({ announces: 1, announce_acks: 1 });
    // Moving to another network asks again (the neighbours there do not know the guest).
    port.setBackend('switch:b');
    expect(d.transport.read(MMIO.config + 6, 2)).toBe(3);
    expect(dev.metrics.announces).toBe(2);
    // ... but not onto a network without a cable.
    command(CTRL_CLASS.announce, ANNOUNCE_ACK);
    port.setBackend('none');
    expect(dev.metrics.announces).toBe(2);
  });

  it('without GUEST_ANNOUNCE negotiated the device cannot ask, and an ack is an error', () => {
    const { d, dev, command } = setup(without(NET_F.guestAnnounce));
    expect(dev.announce()).toBe(false);
    expect(d.transport.read(MMIO.config + 6, 2)).toBe(1);
    expect(command(CTRL_CLASS.announce, ANNOUNCE_ACK)).toBe(ERR);
  });

  it('the filter holds across link changes and setBackend', () => {
    const { port, wires, command, reaches } = setup();
    command(CTRL_CLASS.rx, RX.promisc, mode(false));
    command(CTRL_CLASS.mac, MAC_CMD.addrSet, Uint8Array.from(NEW_MAC));
    port.setLink(false);
    port.setLink(true);
    expect(reaches(OTHER)).toBe(false);
    expect(reaches(NEW_MAC)).toBe(true);
    port.setBackend('switch:b');
    expect(reaches(OTHER, wires.get('switch:b'))).toBe(false);
    expect(reaches(MAC, wires.get('switch:b'))).toBe(false);
    expect(reaches(NEW_MAC, wires.get('switch:b'))).toBe(true);
  });

  it('saved state carries the MAC, the modes, the table and a pending announce', () => {
    const a = setup();
    a.command(CTRL_CLASS.rx, RX.promisc, mode(false));
    a.command(CTRL_CLASS.mac, MAC_CMD.addrSet, Uint8Array.from(NEW_MAC));
    a.command(CTRL_CLASS.mac, MAC_CMD.tableSet, macs(OTHER), macs(ALL_HOSTS));
    a.dev.announce();
    const saved = JSON.parse(JSON.stringify(a.dev.saveState())) as unknown;
    const b = setup();
    b.dev.restoreState(saved);
    expect(b.configMac()).toEqual(NEW_MAC);
    expect(b.d.transport.read(MMIO.config + 6, 2)).toBe(3);
    expect(b.reaches(OTHER)).toBe(true);
    expect(b.reaches(ALL_HOSTS)).toBe(true);
    expect(b.reaches(MAC)).toBe(false);
    expect(b.reaches(MCAST_OTHER)).toBe(false);
    // A version-1 state (before the control queue) restores as a reset filter.
    b.dev.restoreState({ version: 1, mac: MAC });
    expect(b.configMac()).toEqual(MAC);
    expect(b.reaches(OTHER)).toBe(true);
    // A damaged state is refused and changes nothing.
    const bad = JSON.parse(JSON.stringify(saved)) as { filter: { unicast: unknown[] } };
    bad.filter.unicast = Array.from({ length: 65 }, () => OTHER);
    expect(() => b.dev.restoreState(bad)).toThrow();
    expect(() => b.dev.restoreState({ version: 2, mac: [1, 2], filter: {} })).toThrow();
    expect(b.configMac()).toEqual(MAC);
  });

  describe('hostile commands are answered VIRTIO_NET_ERR, counted, and change nothing', () => {
    const cases: [string, number, number, Uint8Array[]][] = [
      ['an unknown class', 9, 0, [mode(true)]],
      ['an unknown rx command', CTRL_CLASS.rx, 6, [mode(false)]],
      ['VLAN (not offered)', CTRL_CLASS.vlan, 0, [Uint8Array.of(1, 0)]],
      ['MQ (not offered)', CTRL_CLASS.mq, 0, [Uint8Array.of(1, 0)]],
      ['PROMISC without its byte', CTRL_CLASS.rx, RX.promisc, []],
      ['PROMISC with two bytes', CTRL_CLASS.rx, RX.promisc, [Uint8Array.of(0, 0)]],
      [
        'MAC_ADDR_SET with 5 bytes',
        CTRL_CLASS.mac,
        MAC_CMD.addrSet,
        [Uint8Array.of(2, 0, 0, 0, 1)],
      ],
      ['MAC_ADDR_SET with 7 bytes', CTRL_CLASS.mac, MAC_CMD.addrSet, [new Uint8Array(7).fill(2)]],
      [
        'MAC_ADDR_SET to a multicast MAC',
        CTRL_CLASS.mac,
        MAC_CMD.addrSet,
        [Uint8Array.from(BCAST)],
      ],
      ['MAC_ADDR_SET to 00:00:00:00:00:00', CTRL_CLASS.mac, MAC_CMD.addrSet, [new Uint8Array(6)]],
      ['an unknown MAC command', CTRL_CLASS.mac, 7, [macs(), macs()]],
      ['a MAC table without its multicast part', CTRL_CLASS.mac, MAC_CMD.tableSet, [macs(OTHER)]],
      [
        'a MAC table claiming 2^32-1 entries',
        CTRL_CLASS.mac,
        MAC_CMD.tableSet,
        [claim(0xffff_ffff, 600), macs()],
      ],
      [
        'a MAC table claiming more entries than it has',
        CTRL_CLASS.mac,
        MAC_CMD.tableSet,
        [claim(2, 6), macs()],
      ],
      [
        'a MAC table with bytes after it',
        CTRL_CLASS.mac,
        MAC_CMD.tableSet,
        [macs(), macs(), Uint8Array.of(0)],
      ],
      ['a table count cut short', CTRL_CLASS.mac, MAC_CMD.tableSet, [Uint8Array.of(0, 0)]],
      ['ANNOUNCE_ACK with data', CTRL_CLASS.announce, ANNOUNCE_ACK, [mode(true)]],
      ['an unknown ANNOUNCE command', CTRL_CLASS.announce, 1, []],
    ];
    it.each(cases)('%s', (_what, cls, cmd, data) => {
      const { d, dev, command, reaches, configMac } = setup();
      command(CTRL_CLASS.rx, RX.promisc, mode(false));
      command(CTRL_CLASS.mac, MAC_CMD.tableSet, macs(OTHER), macs(ALL_HOSTS));
      expect(command(cls, cmd, ...data)).toBe(ERR);
      expect(dev.metrics.ctrl_errors).toBe(1);
      expect(d.needsReset).toBe(false);
      // Filter and MAC as before: the old table stays.
      expect(configMac()).toEqual(MAC);
      expect(reaches(OTHER)).toBe(true);
      expect(reaches(ALL_HOSTS)).toBe(true);
      expect(reaches(MCAST_OTHER)).toBe(false);
      // The queue still serves the next command.
      expect(command(CTRL_CLASS.rx, RX.promisc, mode(true))).toBe(OK);
    });

    it('commands whose feature was not negotiated', () => {
      const { command, reaches } = setup(
        without(NET_F.ctrlRx, NET_F.ctrlRxExtra, NET_F.ctrlMacAddr, NET_F.guestAnnounce),
      );
      expect(command(CTRL_CLASS.rx, RX.promisc, mode(false))).toBe(ERR);
      expect(command(CTRL_CLASS.mac, MAC_CMD.tableSet, macs(), macs())).toBe(ERR);
      expect(command(CTRL_CLASS.mac, MAC_CMD.addrSet, Uint8Array.from(NEW_MAC))).toBe(ERR);
      expect(reaches(OTHER)).toBe(true); // still promiscuous
      const { command: c2 } = setup(without(NET_F.ctrlRxExtra));
      expect(c2(CTRL_CLASS.rx, RX.nobcast, mode(true))).toBe(ERR);
      expect(c2(CTRL_CLASS.rx, RX.allmulti, mode(true))).toBe(OK);
    });

    it('data put in a device-writable buffer is not read: the command is short, ERR', () => {
      const { d, cq, reaches } = setup();
      const ack = d.mem.alloc(8);
      d.mem.write(ack, Uint8Array.of(0, 0, 0, 0));
      cq.add([
        { addr: d.mem.put(Uint8Array.of(CTRL_CLASS.rx, RX.promisc)), len: 2 },
        { addr: ack, len: 8, write: true }, // "promisc = 0" written where the ack goes
      ]);
      d.kick(2);
      expect(cq.takeUsed()[0].len).toBe(1);
      expect(d.mem.u8(ack)).toBe(ERR);
      expect(reaches(OTHER)).toBe(true);
    });

    it('a valid table of 10000 multicast entries in 60 KB over many buffers overflows, nothing breaks', () => {
      const { d, cq, dev, command, reaches } = setup();
      command(CTRL_CLASS.rx, RX.promisc, mode(false));
      const table = new Uint8Array(4 + 60_000);
      new DataView(table.buffer).setUint32(0, 10_000, true);
      const a = d.mem.put(table);
      const chain: Buf[] = [
        { addr: d.mem.put(Uint8Array.of(CTRL_CLASS.mac, MAC_CMD.tableSet)), len: 2 },
        { addr: d.mem.put(macs()), len: 4 },
      ];
      for (let o = 0; o < table.length; o += 1001) {
        chain.push({ addr: a + o, len: Math.min(1001, table.length - o) });
      }
      const ack = d.mem.alloc(1);
      chain.push({ addr: ack, len: 1, write: true });
      cq.addIndirect(chain); // 64 descriptors through one indirect table
      expect(() => d.kick(2)).not.toThrow();
      expect(d.mem.u8(ack)).toBe(OK);
      expect(reaches(MCAST_OTHER)).toBe(true);
      expect(reaches(OTHER)).toBe(false);
      expect(dev.stats.mac_table_overflow).toBe(2);
    });

    it('a chain without an ack byte is a broken request: NEEDS_RESET, counted, no throw', () => {
      const { d, cq, dev } = setup();
      cq.add([
        { addr: d.mem.put(Uint8Array.of(CTRL_CLASS.rx, RX.promisc)), len: 2 },
        { addr: d.mem.put(mode(false)), len: 1 },
      ]);
      expect(() => d.kick(2)).not.toThrow();
      expect(d.needsReset).toBe(true);
      expect(dev.metrics.ctrl_malformed).toBe(1);
      expect(d.transport.metrics.errors).toBeGreaterThan(0);
      expect(cq.takeUsed()).toEqual([]);
    });

    it('a chain with only one readable byte (no command) is broken too; a reset recovers', () => {
      const { d, cq, dev } = setup();
      cq.add([
        { addr: d.mem.put(Uint8Array.of(CTRL_CLASS.rx)), len: 1 },
        { addr: d.mem.alloc(1), len: 1, write: true },
      ]);
      expect(() => d.kick(2)).not.toThrow();
      expect(d.needsReset).toBe(true);
      expect(dev.metrics.ctrl_malformed).toBe(1);
      d.init();
      expect(d.needsReset).toBe(false);
    });

    it('a chain of only device-writable buffers is broken (no class or command)', () => {
      const { d, cq } = setup();
      cq.add([{ addr: d.mem.alloc(16), len: 16, write: true }]);
      expect(() => d.kick(2)).not.toThrow();
      expect(d.needsReset).toBe(true);
    });
  });
});
