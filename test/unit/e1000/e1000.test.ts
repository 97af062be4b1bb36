/**
 * The e1000 played like Linux's e1000 driver: EEPROM over Microwire, PHY over MDIC, transmit and
 * receive rings in guest RAM, interrupts — and a hostile driver that points descriptors outside
 * RAM or indices past the ring.
 */
import { describe, it, expect } from 'vitest';
import { E1000 } from '../../../devices/e1000/device.js';
import { REG } from '../../../devices/e1000/regs.js';
import { CFG, CMD_BUS_MASTER, CMD_MEMORY } from '../../../devices/pci/function.js';
import { NetPort } from '../../../devices/net/port.js';
import type { NetBackend } from '../../../devices/net/backend.js';
import { GSO_TCPV4, type NetPacket } from '../../../devices/net/packet.js';
import { internetChecksum, segmentTcp } from '../../../devices/net/offload.js';
import { logSink } from '../platform/helpers.js';

const RAM_BASE = 0x8000_0000;
const MAC = Uint8Array.from([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);

class Wire implements NetBackend {
  readonly spec = 'test';
  carrier = true;
  sent: NetPacket[] = [];
  onReceive: ((p: NetPacket) => void) | undefined;
  onCarrier: ((up: boolean) => void) | undefined;
  send(p: NetPacket): void {
    this.sent.push(p);
  }
  close(): void {}
}

function setup() {
  const ram = new Uint8Array(1 << 20);
  const wire = new Wire();
  const port = new NetPort('e1000-0', wire, () => new Wire());
  const log = logSink();
  const nic = new E1000({ mac: MAC, port, memory: { ram, ramBase: RAM_BASE }, log: log.sink });
  const intx: boolean[] = [];
  nic.pci.hooks = { barsChanged: () => {}, intxChanged: () => intx.push(nic.pci.intxAsserted) };
  nic.pci.writeConfig(CFG.command, 2, CMD_MEMORY | CMD_BUS_MASTER);
  const mmio = nic.pci.bars[0]!.device;
  const r = (off: number): number => mmio.read(off, 4);
  const w = (off: number, v: number): void => mmio.write(off, 4, v);
  const dv = new DataView(ram.buffer);
  return { ram, dv, wire, port, nic, r, w, log, intx, io: nic.pci.bars[1]!.device };
}

/** Microwire read of one word, bit by bit, as e1000_read_eeprom does. */
function eepromRead(
  r: (o: number) => number,
  w: (o: number, v: number) => void,
  addr: number,
): number {
  const SK = 1,
    CS = 2,
    DI = 4,
    DO = 8,
    REQ = 0x40,
    GNT = 0x80;
  w(REG.EECD, REQ);
  expect(r(REG.EECD) & GNT).toBe(GNT);
  let eecd = REQ | CS;
  w(REG.EECD, eecd);
  const out = (bits: number, n: number): void => {
    for (let m = 1 << (n - 1); m; m >>= 1) {
      eecd = (eecd & ~DI) | (bits & m ? DI : 0);
      w(REG.EECD, eecd);
      w(REG.EECD, eecd | SK);
      w(REG.EECD, eecd);
    }
  };
  out(0b110, 3);
  out(addr, 6);
  let v = 0;
  for (let i = 0; i < 16; i++) {
    w(REG.EECD, eecd | SK);
    v = (v << 1) | (r(REG.EECD) & DO ? 1 : 0);
    w(REG.EECD, eecd);
  }
  w(REG.EECD, 0);
  return v;
}

describe('e1000 (82540EM)', () => {
  it('EEPROM: MAC in words 0..2 and a checksum of 0xBABA, over Microwire and EERD', () => {
    const { r, w } = setup();
    const words = Array.from({ length: 64 }, (_, i) => eepromRead(r, w, i));
    expect(words.slice(0, 3)).toEqual([0x5452, 0x1200, 0x5634]);
    expect(words[0x0d]).toBe(0x100e);
    expect(words.reduce((a, b) => a + b, 0) & 0xffff).toBe(0xbaba);
    w(REG.EERD, (0x0e << 8) | 1);
    expect(r(REG.EERD)).toBe(((0x8086 << 16) | (0x0e << 8) | 0x10) >>> 0);
  });

  it('PHY over MDIC: the 88E1011 ID, link status follows the carrier, LSC interrupts', () => {
    const { r, w, port, intx } = setup();
    const mdicRead = (reg: number): number => {
      w(REG.MDIC, (2 << 26) | (1 << 21) | (reg << 16));
      const v = r(REG.MDIC);
      expect(v & (1 << 28)).not.toBe(0);
      return v & 0xffff;
    };
    expect((mdicRead(2) << 16) | mdicRead(3)).toBe(0x01410c20);
    expect(mdicRead(1) & 4).toBe(4);
    // We advertise pause (reg 4) but the partner, as QEMU's, has none (reg 5: PAUSE 0x400 and
    // ASM_DIR 0x800 clear): Linux then settles on receive-only flow control, as under QEMU.
    expect(mdicRead(4) & 0xc00).toBe(0xc00);
    expect(mdicRead(5) & 0xc00).toBe(0);
    w(REG.MDIC, (2 << 26) | (2 << 21)); // PHY address 2: nobody there
    expect(r(REG.MDIC) & (1 << 30)).not.toBe(0);
    expect(r(REG.STATUS) & 2).toBe(2);
    w(REG.IMS, 0x4);
    port.setLink(false);
    expect(r(REG.STATUS) & 2).toBe(0);
    expect(mdicRead(1) & 4).toBe(0);
    expect(intx.at(-1)).toBe(true);
    expect(r(REG.ICR) & 4).toBe(4); // read clears
    expect(intx.at(-1)).toBe(false);
    port.setLink(true);
    expect(r(REG.STATUS) & 2).toBe(2);
  });

  it('CTRL.RST through the I/O BAR resets the MAC and reloads RA0', () => {
    const { r, w, io } = setup();
    w(REG.IMS, 0xff);
    w(REG.RA, 0);
    io.write(0, 4, REG.CTRL);
    io.write(4, 4, r(REG.CTRL) | (1 << 26));
    expect(r(REG.IMS)).toBe(0);
    expect(r(REG.RA)).toBe(0x12005452);
    expect(r(REG.RA + 4) >>> 0).toBe(0x80005634);
  });

  const TX = RAM_BASE + 0x1000;
  const BUF = RAM_BASE + 0x8000;
  function txRing(s: ReturnType<typeof setup>, n = 8): void {
    s.w(REG.TDBAL, TX);
    s.w(REG.TDBAH, 0);
    s.w(REG.TDLEN, n * 16);
    s.w(REG.TDH, 0);
    s.w(REG.TDT, 0);
    s.w(REG.TCTL, 2);
  }
  function legacy(
    s: ReturnType<typeof setup>,
    i: number,
    addr: number,
    len: number,
    cmd: number,
  ): void {
    const o = TX - RAM_BASE + i * 16;
    s.dv.setUint32(o, addr, true);
    s.dv.setUint32(o + 4, 0, true);
    s.dv.setUint16(o + 8, len, true);
    s.ram[o + 11] = cmd;
    s.ram[o + 12] = 0;
  }

  it('transmits a frame gathered from two legacy descriptors and writes back DD', () => {
    const s = setup();
    txRing(s);
    const frame = Uint8Array.from({ length: 100 }, (_, i) => i);
    s.ram.set(frame, BUF - RAM_BASE);
    legacy(s, 0, BUF, 40, 0);
    legacy(s, 1, BUF + 40, 60, 0x01 | 0x02 | 0x08); // EOP, IFCS, RS
    s.w(REG.IMS, 1);
    s.w(REG.TDT, 2);
    expect(s.wire.sent).toHaveLength(1);
    expect(Array.from(s.wire.sent[0].data)).toEqual(Array.from(frame));
    expect(s.ram[TX - RAM_BASE + 16 + 12] & 1).toBe(1);
    expect(s.r(REG.TDH)).toBe(2);
    expect(s.r(REG.ICR) & 3).toBe(3); // TXDW | TXQE
  });

  it('TSO: a context descriptor and one large data descriptor become MSS-sized TCP frames', () => {
    const s = setup();
    txRing(s);
    // Ethernet + IPv4 (tot_len 0, as Linux's e1000 leaves it) + TCP + 3000 bytes.
    const pkt = new Uint8Array(14 + 20 + 20 + 3000);
    pkt.set(MAC, 0);
    pkt[12] = 0x08;
    pkt[14] = 0x45;
    pkt[14 + 8] = 64;
    pkt[14 + 9] = 6;
    pkt.set([10, 0, 0, 1, 10, 0, 0, 2], 14 + 12);
    pkt[34 + 12] = 0x50;
    pkt[34 + 13] = 0x18; // ACK PSH
    s.ram.set(pkt, BUF - RAM_BASE);
    const c = TX - RAM_BASE;
    s.ram.set([14, 24, 33, 0, 34, 50, 0, 0], c); // IPCSS, IPCSO, IPCSE; TUCSS, TUCSO, TUCSE
    s.dv.setUint32(c + 8, 3000 | (0 << 20) | ((0x20 | 0x04 | 0x02 | 0x01) << 24), true);
    s.ram[c + 13] = 54;
    s.dv.setUint16(c + 14, 1000, true);
    s.dv.setUint32(c + 16, BUF, true);
    s.dv.setUint32(c + 24, pkt.length | (1 << 20) | ((0x20 | 0x04 | 0x08 | 0x01) << 24), true);
    s.ram[c + 16 + 13] = 3; // IXSM | TXSM
    s.w(REG.TDT, 2);
    expect(s.wire.sent).toHaveLength(3);
    for (const [i, p] of s.wire.sent.entries()) {
      const d = p.data;
      expect(d.length).toBe(54 + 1000);
      expect((d[16] << 8) | d[17]).toBe(1040); // IPv4 total length
      expect(internetChecksum(d, 14, 34)).toBe(0);
      expect(d[34 + 13] & 0x08).toBe(i === 2 ? 0x08 : 0); // PSH on the last only
      const seq = (d[38] << 24) | (d[39] << 16) | (d[40] << 8) | d[41];
      expect(seq).toBe(i * 1000);
    }
    expect(s.nic.stats.tx_tso).toBe(1);
  });

  it('hostile transmit descriptors: buffers outside RAM, TDT past the ring — dropped, counted', () => {
    const s = setup();
    txRing(s, 8);
    legacy(s, 0, 0x1000, 64, 0x09); // below RAM
    legacy(s, 1, RAM_BASE + (1 << 20) - 10, 64, 0x09); // runs past the end
    expect(() => s.w(REG.TDT, 2)).not.toThrow();
    expect(s.wire.sent).toHaveLength(0);
    expect(s.nic.stats.tx_bad_descriptors).toBe(2);
    expect(() => s.w(REG.TDT, 100)).not.toThrow();
    s.w(REG.TDBAL, RAM_BASE + (1 << 20) - 16); // ring runs out of RAM
    expect(() => s.w(REG.TDT, 3)).not.toThrow();
    expect(s.log.lines.join('\n')).toMatch(/outside RAM/);
  });

  it('receives into the ring (frame + FCS length), filters by RA/broadcast, holds back without buffers', () => {
    const s = setup();
    const RX = RAM_BASE + 0x2000;
    const RXBUF = RAM_BASE + 0x10000;
    for (let i = 0; i < 8; i++) s.dv.setUint32(RX - RAM_BASE + i * 16, RXBUF + i * 2048, true);
    s.w(REG.RDBAL, RX);
    s.w(REG.RDLEN, 8 * 16);
    s.w(REG.RDH, 0);
    s.w(REG.RDT, 2);
    s.w(REG.RCTL, (1 << 1) | (1 << 15)); // EN, BAM, 2 KiB buffers
    s.w(REG.IMS, 0x80);
    const mk = (dst: number[]): Uint8Array => {
      const f = new Uint8Array(80);
      f.set(dst, 0);
      f.set([0x52, 0x54, 0, 0, 0, 9], 6);
      return f;
    };
    s.wire.onReceive!({ data: mk([0x52, 0x54, 0, 0x12, 0x34, 0x56]) });
    s.wire.onReceive!({ data: mk([0x52, 0x54, 0, 0, 0, 1]) }); // not ours
    s.wire.onReceive!({ data: mk([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]) });
    s.wire.onReceive!({ data: mk([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]) }); // no buffer left
    expect(s.r(REG.RDH)).toBe(2);
    expect(s.dv.getUint16(RX - RAM_BASE + 8, true)).toBe(84);
    expect(s.ram[RX - RAM_BASE + 12] & 3).toBe(3); // DD | EOP
    expect(s.nic.stats.rx_filtered).toBe(1);
    expect(s.port.stats.rx_backlog).toBe(1);
    expect(s.intx.at(-1)).toBe(true);
    s.w(REG.RDT, 4); // refill: the held frame is delivered
    expect(s.r(REG.RDH)).toBe(3);
    expect(s.port.stats.rx_backlog).toBe(0);
  });

  it('a large segment from the back end lands as the MSS frames it stands for, in 2 KiB or across 256-byte buffers', () => {
    // Ethernet + IPv4 + TCP + 3000 bytes of payload, gso size 1000, partial checksum.
    const pkt = new Uint8Array(54 + 3000);
    pkt.set(MAC, 0);
    pkt[12] = 0x08;
    pkt[14] = 0x45;
    pkt[16] = (3040 >> 8) & 0xff;
    pkt[17] = 3040 & 0xff;
    pkt[22] = 64;
    pkt[23] = 6;
    pkt.set([10, 0, 2, 2, 10, 0, 2, 15], 26);
    pkt[46] = 0x50;
    pkt[47] = 0x19; // ACK PSH FIN
    for (let i = 54; i < pkt.length; i++) pkt[i] = (i * 7) & 0xff;
    const want = segmentTcp(pkt, 1000).map((f) => f.data);
    expect(want).toHaveLength(3);
    for (const bsize of [0, 3]) {
      const s = setup();
      const RX = RAM_BASE + 0x2000;
      const RXBUF = RAM_BASE + 0x10000;
      for (let i = 0; i < 32; i++) s.dv.setUint32(RX - RAM_BASE + i * 16, RXBUF + i * 2048, true);
      s.ram.fill(0xee, RXBUF - RAM_BASE, RXBUF - RAM_BASE + 32 * 2048); // stale buffer contents
      s.w(REG.RDBAL, RX);
      s.w(REG.RDLEN, 32 * 16);
      s.w(REG.RDT, 31);
      s.w(REG.RCTL, (1 << 1) | (bsize << 16) | (1 << 26)); // EN, BSIZE, SECRC (no FCS)
      s.wire.onReceive!({
        data: pkt,
        csum: { start: 34, offset: 16 },
        gso: { type: GSO_TCPV4, size: 1000, hdrLen: 54 },
      });
      // Read the frames back as the driver would: descriptors up to EOP, bytes concatenated.
      const got: Uint8Array[] = [];
      let parts: Uint8Array[] = [];
      for (let i = 0; i < s.r(REG.RDH); i++) {
        const len = s.dv.getUint16(RX - RAM_BASE + i * 16 + 8, true);
        parts.push(s.ram.slice(RXBUF - RAM_BASE + i * 2048, RXBUF - RAM_BASE + i * 2048 + len));
        if (s.ram[RX - RAM_BASE + i * 16 + 12] & 2) {
          got.push(Uint8Array.from(Buffer.concat(parts)));
          parts = [];
        }
      }
      expect(s.r(REG.RDH)).toBe(bsize === 0 ? 3 : 3 * Math.ceil(1054 / 256));
      expect(got).toEqual(want);
      expect(s.nic.stats.rx_packets).toBe(3);
    }
  });

  it('a receive buffer outside RAM marks the descriptor with an error instead of writing', () => {
    const s = setup();
    const RX = RAM_BASE + 0x2000;
    s.dv.setUint32(RX - RAM_BASE, 0x10, true);
    s.w(REG.RDBAL, RX);
    s.w(REG.RDLEN, 128);
    s.w(REG.RDT, 1);
    s.w(REG.RCTL, (1 << 1) | (1 << 3));
    expect(() => s.wire.onReceive!({ data: new Uint8Array(60) })).not.toThrow();
    expect(s.ram[RX - RAM_BASE + 13]).toBe(0x80);
    expect(s.nic.stats.rx_bad_descriptors).toBe(1);
  });

  it('saves and restores its registers', () => {
    const a = setup();
    a.w(REG.IMS, 0x9d);
    a.w(REG.RDLEN, 4096);
    const st = JSON.parse(JSON.stringify(a.nic.saveState()));
    const b = setup();
    b.nic.restoreState(st);
    expect(b.r(REG.IMS)).toBe(0x9d);
    expect(b.r(REG.RDLEN)).toBe(4096);
  });
});
