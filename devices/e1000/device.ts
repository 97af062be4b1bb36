/**
 * Intel 82540EM (8086:100E), QEMU's default NIC, modelled after Intel's PCI/PCI-X Family of
 * Gigabit Ethernet Controllers Software Developer's Manual — enough of it for Linux's e1000
 * driver: register file, EEPROM (Microwire through EECD, and EERD), MDIC/PHY with link status,
 * legacy receive descriptors, legacy and context/data transmit descriptors with checksum
 * offload and TSO, interrupt cause/mask/throttling (ICR/ICS/IMS/IMC/ITR), link-status-change
 * interrupts, unicast/multicast/broadcast filtering (RA, MTA, RCTL).
 *
 * This is full emulation on purpose: every register access is an MMIO exit, and each frame
 * costs the driver several of them (TDT per transmit, ICR/IMC/IMS per interrupt, RDT per
 * refill) — the cost virtio-net exists to avoid, which is what bench/net.ts measures.
 *
 * Large segments from the back end (net=user's TSO frames) are cut into MSS frames here, each
 * piece ending where the next descriptor's buffer keeps the payload word-aligned relative to the
 * stream (alignedPieces, rxFrameAlign), so the guest copies it to user space by words.
 *
 * DMA: descriptors and buffers are read and written in guest RAM directly (views of core.ram),
 * only while the driver has enabled bus mastering. Every address, length and index the guest
 * wrote is checked: a bad descriptor is skipped and counted, a bad ring stops that ring until
 * the driver reprograms it. Nothing throws past the device.
 */
import type { GuestMemory } from '../platform/dirty-log.js';
import { GuestErrorLog, hex, type LogSink } from '../platform/guest-log.js';
import type { MmioDevice } from '../platform/mmio.js';
import { PciFunction } from '../pci/function.js';
import type { NetPort, NicFrontend, RxTaken } from '../net/port.js';
import type { NetPacket } from '../net/packet.js';
import { GSO_NONE, MAX_PACKET } from '../net/packet.js';
import {
  cutTcp,
  finishChecksum,
  internetChecksum,
  segmentTcp,
  toWireFrames,
  type PieceLength,
  type TcpCut,
} from '../net/offload.js';
import { Eeprom, type EepromState } from './eeprom.js';
import { Phy, PHY_ADDR } from './phy.js';
import * as R from './regs.js';
import { REG } from './regs.js';

export type GuestRam = GuestMemory;

export interface E1000Options {
  name?: string;
  mac: Uint8Array;
  port: NetPort;
  memory: GuestRam;
  log?: LogSink;
}

export interface E1000Metrics {
  [name: string]: number;
  tx_packets: number;
  tx_bytes: number;
  tx_tso: number;
  tx_segments: number;
  tx_csum_offload: number;
  tx_bad_descriptors: number;
  tx_dropped: number;
  rx_packets: number;
  rx_bytes: number;
  rx_filtered: number;
  /** Frames with offload metadata whose headers the software offload could not cut or finish. */
  rx_offload_dropped: number;
  rx_no_buffers: number;
  rx_bad_descriptors: number;
  rx_disabled: number;
  interrupts: number;
  itr_deferred: number;
  link_changes: number;
  guest_errors: number;
}

export interface E1000State {
  version: 1;
  /** Non-zero register words: [word index, value]. */
  regs: [number, number][];
  eeprom: EepromState;
  phy: { regs: number[]; link: boolean };
  ctx: TxContext;
  txFirst: TxFirst | null;
  txData: number[];
}

interface TxContext {
  ipcss: number;
  ipcso: number;
  ipcse: number;
  tucss: number;
  tucso: number;
  tucse: number;
  mss: number;
  tucmd: number;
}

/** What the first data descriptor of a packet said (offloads apply to the whole packet). */
interface TxFirst {
  legacy: boolean;
  tse: boolean;
  popts: number;
  /** Legacy checksum: CSS, CSO when CMD.IC. */
  css: number;
  cso: number;
  ic: boolean;
}

const WORDS = R.MMIO_SIZE / 4;
const DESC = 16;
const MIN_FRAME = 60;
const emptyCtx = (): TxContext => ({
  ipcss: 0,
  ipcso: 0,
  ipcse: 0,
  tucss: 0,
  tucso: 0,
  tucse: 0,
  mss: 0,
  tucmd: 0,
});

export class E1000 implements NicFrontend {
  readonly name: string;
  readonly pci: PciFunction;
  readonly mac: Uint8Array;
  readonly port: NetPort;
  readonly metrics: E1000Metrics = {
    tx_packets: 0,
    tx_bytes: 0,
    tx_tso: 0,
    tx_segments: 0,
    tx_csum_offload: 0,
    tx_bad_descriptors: 0,
    tx_dropped: 0,
    rx_packets: 0,
    rx_bytes: 0,
    rx_filtered: 0,
    rx_offload_dropped: 0,
    rx_no_buffers: 0,
    rx_bad_descriptors: 0,
    rx_disabled: 0,
    interrupts: 0,
    itr_deferred: 0,
    link_changes: 0,
    guest_errors: 0,
  };

  private readonly regs = new Uint32Array(WORDS);
  private readonly eeprom: Eeprom;
  private readonly phy = new Phy();
  private readonly mem: GuestRam;
  private readonly log: GuestErrorLog;
  private ioAddr = 0;
  private ctx: TxContext = emptyCtx();
  private txFirst: TxFirst | null = null;
  private txChunks: Uint8Array[] = [];
  private txLen = 0;
  private txOversize = false;
  /** Interrupt throttling: when the line last went high, and a pending deferred assertion. */
  private lastAssert = -Infinity;
  private itrTimer: NodeJS.Timeout | undefined;
  private irqLevel = false;
  /** Guest address of byte 0 of the last frame placed, modulo 8. */
  private lastAlign: number | undefined;
  /** lastAlign when the frame before agreed with it (see rxFrameAlign). */
  private rxAlign: number | undefined;

  constructor(o: E1000Options) {
    this.name = o.name ?? 'e1000-0';
    this.mac = o.mac.slice(0, 6);
    this.port = o.port;
    this.mem = o.memory;
    this.log = new GuestErrorLog(this.name, o.log);
    this.eeprom = new Eeprom(this.mac, {
      vendor: 0x8086,
      device: 0x100e,
      subVendor: 0x8086,
      sub: 0x001e,
    });
    const mmio: MmioDevice = {
      name: this.name,
      read: (off, size) => this.mmioRead(off, size),
      write: (off, size, v) => this.mmioWrite(off, size, v),
    };
    const io: MmioDevice = {
      name: `${this.name}.io`,
      read: (off, size) => this.ioRead(off, size),
      write: (off, size, v) => this.ioWrite(off, size, v),
    };
    this.pci = new PciFunction({
      name: this.name,
      vendorId: 0x8086,
      deviceId: 0x100e,
      classCode: 0x020000,
      revision: 3,
      subsystemVendorId: 0x8086,
      subsystemId: 0x001e,
      interruptPin: 1,
      bars: [
        { kind: 'mem32', size: R.MMIO_SIZE, device: mmio },
        { kind: 'io', size: R.IO_SIZE, device: io },
      ],
      // PCI power management (as the real part has): the driver may move it to D3hot and
      // back (PMCSR power state bits); no PME.
      capabilities: [
        { id: 0x01, body: [0x22, 0x00, 0x00, 0x00, 0x00, 0x00], writable: [0, 0, 0x03, 0, 0, 0] },
      ],
    });
    this.port.frontend = this;
    this.resetRegisters();
  }

  // ---- register access ------------------------------------------------------------------

  private mmioRead(off: number, size: number): number {
    if (size !== 4 || off & 3) {
      // Narrow reads happen (ethtool dumps); give the bytes of the containing register.
      const v = this.readReg(off & ~3);
      return (v >>> (8 * (off & 3))) & (size === 1 ? 0xff : size === 2 ? 0xffff : 0xffff_ffff);
    }
    return this.readReg(off);
  }

  private mmioWrite(off: number, size: number, value: number): void {
    if (size !== 4 || off & 3) {
      this.guestError(`${size}-byte write at ${hex(off)} ignored (registers are 32-bit)`);
      return;
    }
    this.writeReg(off, value >>> 0);
  }

  /** I/O BAR: IOADDR selects a register, IODATA accesses it (Linux resets the MAC this way). */
  private ioRead(off: number, size: number): number {
    if (size !== 4) return 0;
    if (off === 0) return this.ioAddr;
    if (off === 4) return this.readReg(this.ioAddr & (R.MMIO_SIZE - 4));
    return 0;
  }

  private ioWrite(off: number, size: number, value: number): void {
    if (size !== 4) return;
    if (off === 0) this.ioAddr = value >>> 0;
    else if (off === 4) this.writeReg(this.ioAddr & (R.MMIO_SIZE - 4), value >>> 0);
  }

  private readReg(off: number): number {
    const i = off >>> 2;
    switch (off) {
      case REG.ICR: {
        // Read to clear: the driver's interrupt handler acknowledges all causes at once.
        const v = this.regs[i];
        this.regs[i] = 0;
        this.updateIrq();
        return v;
      }
      case REG.EECD:
        return (
          (this.regs[i] & ~(R.EECD_DO | R.EECD_GNT)) |
          R.EECD_PRES |
          (this.regs[i] & R.EECD_REQ ? R.EECD_GNT : 0) |
          this.eeprom.dataOut
        );
      case REG.IMC:
      case REG.ICS:
        return 0;
      default:
        if (off >= REG.STATS_START && off < REG.STATS_END) {
          const v = this.regs[i];
          this.regs[i] = 0; // statistics clear on read
          return v;
        }
        return this.regs[i];
    }
  }

  private writeReg(off: number, v: number): void {
    const i = off >>> 2;
    switch (off) {
      case REG.CTRL:
        if (v & R.CTRL_RST) {
          this.softReset();
          return;
        }
        if (v & R.CTRL_PHY_RST) this.phy.reset();
        this.regs[i] = v & ~R.CTRL_PHY_RST;
        return;
      case REG.STATUS:
        return; // read-only
      case REG.EECD:
        this.regs[i] = v & (R.EECD_SK | R.EECD_CS | R.EECD_DI | R.EECD_REQ | 0x30);
        this.eeprom.write(v);
        return;
      case REG.EERD:
        if (v & R.EERD_START) {
          const addr = (v >>> 8) & 0xff;
          this.regs[i] = (this.eeprom.word(addr) << 16) | (addr << 8) | R.EERD_DONE;
        }
        return;
      case REG.MDIC:
        this.mdic(v);
        return;
      case REG.ICR:
        // Writing 1s clears those causes.
        this.regs[i] &= ~v;
        this.updateIrq();
        return;
      case REG.ICS:
        this.raise(v);
        return;
      case REG.IMS:
        this.regs[REG.IMS >>> 2] |= v;
        this.updateIrq();
        return;
      case REG.IMC:
        this.regs[REG.IMS >>> 2] &= ~v;
        this.updateIrq();
        return;
      case REG.ITR:
        this.regs[i] = v & 0xffff;
        return;
      case REG.RCTL: {
        const wasOn = (this.regs[i] & R.RCTL_EN) !== 0;
        this.regs[i] = v;
        if (!wasOn && v & R.RCTL_EN) this.port.flush();
        return;
      }
      case REG.RDLEN:
      case REG.TDLEN:
        this.regs[i] = v & 0xfff80; // multiple of 128 bytes
        return;
      case REG.RDBAL:
      case REG.TDBAL:
        this.regs[i] = v & ~0xf;
        return;
      case REG.RDH:
      case REG.RDT:
      case REG.TDH:
        this.regs[i] = v & 0xffff;
        if (off === REG.RDT) this.port.flush(); // new buffers: deliver what waited
        return;
      case REG.TDT:
        this.regs[i] = v & 0xffff;
        this.transmit();
        return;
      default:
        if (off >= REG.STATS_START && off < REG.STATS_END) return;
        this.regs[i] = v;
    }
  }

  private mdic(v: number): void {
    const phyAddr = (v >>> 21) & 31;
    const reg = (v >>> 16) & 31;
    const op = v & (3 << 26);
    let out = v & ~(R.MDIC_READY | R.MDIC_ERROR | 0xffff);
    if (phyAddr !== PHY_ADDR || (op !== R.MDIC_OP_READ && op !== R.MDIC_OP_WRITE)) {
      out |= R.MDIC_ERROR; // no PHY there: the driver gets an error, as on hardware
    } else if (op === R.MDIC_OP_READ) {
      out |= this.phy.read(reg);
    } else {
      this.phy.write(reg, v & 0xffff);
      out |= v & 0xffff;
    }
    // The MDIO transaction completes before the driver can poll for it.
    this.regs[REG.MDIC >>> 2] = (out | R.MDIC_READY) >>> 0;
  }

  // ---- interrupts -------------------------------------------------------------------------

  private raise(causes: number): void {
    this.regs[REG.ICR >>> 2] |= causes;
    this.updateIrq();
  }

  /**
   * Drives INTA from ICR & IMS. With ITR set, a new assertion waits until ITR × 256 ns have
   * passed since the last one (host time), which is how the hardware batches interrupts.
   */
  private updateIrq(): void {
    const want = (this.regs[REG.ICR >>> 2] & this.regs[REG.IMS >>> 2]) !== 0;
    if (!want) {
      this.setLine(false);
      return;
    }
    if (this.irqLevel) return;
    const itr = this.regs[REG.ITR >>> 2] & 0xffff;
    if (itr) {
      const gapMs = (itr * 256) / 1e6;
      const wait = this.lastAssert + gapMs - performance.now();
      if (wait > 0) {
        if (!this.itrTimer) {
          this.metrics.itr_deferred++;
          this.itrTimer = setTimeout(() => {
            this.itrTimer = undefined;
            this.lastAssert = -Infinity;
            this.updateIrq();
          }, Math.ceil(wait));
          this.itrTimer.unref?.();
        }
        return;
      }
    }
    this.lastAssert = performance.now();
    this.metrics.interrupts++;
    this.setLine(true);
  }

  private setLine(level: boolean): void {
    this.irqLevel = level;
    this.pci.setIntx(level);
  }

  // ---- link ----------------------------------------------------------------------------------

  carrierChanged(up: boolean): void {
    this.metrics.link_changes++;
    this.setLinkBits(up);
    this.raise(R.ICR_LSC);
  }

  private setLinkBits(up: boolean): void {
    const s = REG.STATUS >>> 2;
    this.regs[s] = up ? this.regs[s] | R.STATUS_LU : this.regs[s] & ~R.STATUS_LU;
    this.phy.setLink(up);
  }

  // ---- DMA helpers ---------------------------------------------------------------------------

  /**
   * A view of guest RAM at [addr, addr + len), or undefined if any of it is outside RAM. `write`:
   * the device writes it (marked in the dirty-page log while one runs).
   */
  private dma(addr: number, len: number, write = false): Uint8Array | undefined {
    const off = addr - this.mem.ramBase;
    if (!Number.isSafeInteger(off) || off < 0 || len < 0 || off + len > this.mem.ram.length) {
      return undefined;
    }
    if (write) this.mem.dirty?.mark(addr, len);
    return this.mem.ram.subarray(off, off + len);
  }

  private ring(bal: number, bah: number, len: number): { base: number; count: number } | undefined {
    const base = this.regs[bah >>> 2] * 0x1_0000_0000 + this.regs[bal >>> 2];
    const bytes = this.regs[len >>> 2];
    const count = bytes / DESC;
    if (count === 0 || !this.dma(base, bytes)) return undefined;
    return { base, count };
  }

  // ---- transmit ------------------------------------------------------------------------------

  private transmit(): void {
    if (!(this.regs[REG.TCTL >>> 2] & R.TCTL_EN)) return;
    if (!this.pci.busMaster) {
      this.guestError('TDT written without bus mastering enabled');
      return;
    }
    const ring = this.ring(REG.TDBAL, REG.TDBAH, REG.TDLEN);
    if (!ring) {
      this.guestError('transmit ring outside RAM or empty');
      return;
    }
    let head = this.regs[REG.TDH >>> 2];
    const tail = this.regs[REG.TDT >>> 2];
    if (head >= ring.count || tail >= ring.count) {
      this.guestError(`TDH ${head} / TDT ${tail} beyond the ring (${ring.count})`);
      return;
    }
    let done = 0;
    // At most one lap per kick: the guest cannot make this loop longer than its ring.
    while (head !== tail && done < ring.count) {
      const d = this.dma(ring.base + head * DESC, DESC, true)!; // its status is written back
      this.txDescriptor(d);
      head = (head + 1) % ring.count;
      done++;
    }
    this.regs[REG.TDH >>> 2] = head;
    if (done) this.raise(R.ICR_TXDW | (head === tail ? R.ICR_TXQE : 0));
  }

  private txDescriptor(d: Uint8Array): void {
    const dv = new DataView(d.buffer, d.byteOffset, DESC);
    const cmd = d[11];
    const ext = (cmd & R.TXD_DEXT) !== 0;
    const dtyp = (d[10] >> 4) & 0xf;
    if (ext && dtyp === R.TXD_DTYP_CONTEXT) {
      this.ctx = {
        ipcss: d[0],
        ipcso: d[1],
        ipcse: dv.getUint16(2, true),
        tucss: d[4],
        tucso: d[5],
        tucse: dv.getUint16(6, true),
        tucmd: cmd,
        mss: dv.getUint16(14, true),
      };
      if (cmd & R.TXD_RS) d[12] |= R.TXD_STA_DD;
      return;
    }
    if (ext && dtyp !== R.TXD_DTYP_DATA) {
      this.metrics.tx_bad_descriptors++;
      this.guestError(`transmit descriptor type ${dtyp} unknown`);
      if (cmd & R.TXD_RS) d[12] |= R.TXD_STA_DD;
      return;
    }
    const addr = dv.getUint32(4, true) * 0x1_0000_0000 + dv.getUint32(0, true);
    const len = ext ? dv.getUint32(8, true) & 0xfffff : dv.getUint16(8, true);
    if (!this.txFirst) {
      this.txFirst = {
        legacy: !ext,
        tse: ext && (cmd & R.TXD_TSE) !== 0,
        popts: ext ? d[13] : 0,
        css: ext ? 0 : d[13],
        cso: ext ? 0 : d[10],
        ic: !ext && (cmd & R.TXD_IC) !== 0,
      };
    }
    if (len > 0) {
      const buf = this.dma(addr, len);
      if (!buf) {
        this.metrics.tx_bad_descriptors++;
        this.guestError(`transmit buffer ${hex(addr)}+${len} outside RAM`);
        this.txOversize = true; // the packet is broken: drop it at EOP
      } else if (this.txLen + len > MAX_PACKET) {
        this.txOversize = true;
      } else if (!this.txOversize) {
        this.txChunks.push(buf.slice());
        this.txLen += len;
      }
    }
    if (cmd & R.TXD_RS) d[12] |= R.TXD_STA_DD;
    if (cmd & R.TXD_EOP) this.txPacket();
  }

  private txPacket(): void {
    const first = this.txFirst!;
    const chunks = this.txChunks;
    const oversize = this.txOversize;
    const len = this.txLen;
    this.txFirst = null;
    this.txChunks = [];
    this.txLen = 0;
    this.txOversize = false;
    if (oversize || len < 14) {
      this.metrics.tx_dropped++;
      return;
    }
    const frame = chunks.length === 1 ? chunks[0] : new Uint8Array(len);
    if (chunks.length > 1) {
      let o = 0;
      for (const c of chunks) {
        frame.set(c, o);
        o += c.length;
      }
    }
    const c = this.ctx;
    if (!first.legacy && first.tse) {
      const segs = segmentTcp(frame, c.mss);
      if (segs.length === 0) {
        this.metrics.tx_dropped++;
        this.guestError('TSO packet that is not TCP over IPv4/IPv6, or a bad MSS');
        return;
      }
      this.metrics.tx_tso++;
      this.metrics.tx_segments += segs.length;
      for (const s of segs) this.send(s);
      return;
    }
    if (first.legacy) {
      if (first.ic && !finishChecksum(frame, first.css, first.cso - first.css)) {
        this.metrics.tx_dropped++;
        return;
      }
    } else {
      if (first.popts & R.TXD_POPTS_IXSM) {
        const end = c.ipcse ? c.ipcse + 1 : frame.length;
        if (c.ipcso + 2 <= frame.length && end <= frame.length && c.ipcss < end) {
          frame[c.ipcso] = frame[c.ipcso + 1] = 0;
          const s = internetChecksum(frame, c.ipcss, end);
          frame[c.ipcso] = s >> 8;
          frame[c.ipcso + 1] = s & 0xff;
        }
      }
      if (first.popts & R.TXD_POPTS_TXSM) {
        this.metrics.tx_csum_offload++;
        const end = c.tucse ? Math.min(c.tucse + 1, frame.length) : frame.length;
        if (!finishChecksum(frame.subarray(0, end), c.tucss, c.tucso - c.tucss)) {
          this.metrics.tx_dropped++;
          return;
        }
      }
    }
    this.send({ data: frame });
  }

  private send(p: NetPacket): void {
    this.metrics.tx_packets++;
    this.metrics.tx_bytes += p.data.length;
    this.count(REG.GPTC, REG.GOTCL, p.data.length);
    this.count(REG.TPT, REG.TOTL, p.data.length);
    this.port.transmit(p);
  }

  private count(packets: number, octetsLow: number, bytes: number): void {
    this.regs[packets >>> 2]++;
    const lo = this.regs[octetsLow >>> 2] + bytes;
    this.regs[octetsLow >>> 2] = lo >>> 0;
    if (lo > 0xffff_ffff) this.regs[(octetsLow >>> 2) + 1]++;
  }

  // ---- receive -------------------------------------------------------------------------------

  /**
   * From the port: place `p` in the receive ring; false if there are not enough buffers. A
   * large segment cut here answers its pieces' payload lengths, so the port's capture records
   * the frames the guest got rather than MSS ones.
   */
  receive(p: NetPacket): RxTaken {
    const rctl = this.regs[REG.RCTL >>> 2];
    if (!(rctl & R.RCTL_EN) || !this.pci.busMaster) {
      this.metrics.rx_disabled++;
      return true; // a disabled receiver drops, it does not hold frames back
    }
    if (!this.accepts(p.data, rctl)) {
      this.metrics.rx_filtered++;
      return true;
    }
    const ring = this.ring(REG.RDBAL, REG.RDBAH, REG.RDLEN);
    if (!ring) {
      this.metrics.rx_no_buffers++;
      return false;
    }
    let head = this.regs[REG.RDH >>> 2];
    const tail = this.regs[REG.RDT >>> 2];
    if (head >= ring.count || tail >= ring.count) {
      this.guestError(`RDH ${head} / RDT ${tail} beyond the ring (${ring.count})`);
      return true;
    }
    const bufSize = this.rxBufferSize(rctl);
    const fcs = rctl & R.RCTL_SECRC ? 0 : R.FCS_LEN;
    let free = (tail - head + ring.count) % ring.count;
    // A large segment is cut straight into the guest's buffers (cut.write), a frame copied.
    let cut: TcpCut | undefined;
    let frames: NetPacket[] = [];
    if (p.gso && p.gso.type !== GSO_NONE) {
      // Aligned pieces only where the back end was told where frames land (rxFrameAlign):
      // while the buffers disagree the pieces are the MSS, as a NIC's TSO would cut them.
      const pieces =
        this.rxAlign === undefined ? undefined : this.alignedPieces(ring, head, free, bufSize, fcs);
      cut = cutTcp(p.data, p.gso.size, pieces);
    } else frames = p.csum ? toWireFrames(p) : [p];
    const count = cut ? cut.pieces.length : frames.length;
    if (count === 0) {
      this.metrics.rx_offload_dropped++; // a large segment whose headers do not parse
      return true;
    }
    const lengthOf = (i: number): number =>
      cut ? cut.hdrLen + cut.pieces[i] : frames[i].data.length;
    let needed = 0;
    for (let i = 0; i < count; i++)
      needed += Math.ceil((Math.max(lengthOf(i), MIN_FRAME) + fcs) / bufSize);
    if (needed > free) {
      this.metrics.rx_no_buffers++;
      return false;
    }
    const csumOk = this.regs[REG.RXCSUM >>> 2];
    for (let i = 0; i < count; i++) {
      const len = lengthOf(i);
      const total = Math.max(len, MIN_FRAME) + fcs;
      // A piece that spans buffers is made whole first; one that fits is written in place.
      let data = cut ? undefined : frames[i].data;
      if (cut && total > bufSize) cut.write(i, (data = new Uint8Array(len)));
      let status = R.RXD_STA_IXSM;
      if ((cut || frames[i].csumValid) && csumOk & R.RXCSUM_TUOFL) {
        status = R.RXD_STA_TCPCS | (csumOk & R.RXCSUM_IPOFL ? R.RXD_STA_IPCS : 0);
      }
      for (let o = 0; o < total; o += bufSize) {
        const d = this.dma(ring.base + head * DESC, DESC, true)!;
        const dv = new DataView(d.buffer, d.byteOffset, DESC);
        const addr = dv.getUint32(4, true) * 0x1_0000_0000 + dv.getUint32(0, true);
        const n = Math.min(bufSize, total - o);
        const buf = this.dma(addr, n, true);
        const last = o + n >= total;
        if (o === 0) this.placedAt(d[0] & 7);
        if (buf) {
          // Frame bytes, zero padding up to 60, then an FCS we do not compute (Linux drops it).
          const k = Math.max(0, Math.min(len - o, n));
          if (data) buf.set(data.subarray(o, o + k));
          else cut!.write(i, buf.subarray(0, k));
          buf.fill(0, k);
          d[13] = 0;
        } else {
          this.metrics.rx_bad_descriptors++;
          this.guestError(`receive buffer ${hex(addr)}+${n} outside RAM`);
          d[13] = 0x80; // RXE: the driver drops this frame
        }
        dv.setUint16(8, n, true);
        dv.setUint16(10, 0, true);
        d[12] = R.RXD_STA_DD | (last ? R.RXD_STA_EOP | status : 0);
        dv.setUint16(14, 0, true);
        head = (head + 1) % ring.count;
        free--;
      }
      this.metrics.rx_packets++;
      this.metrics.rx_bytes += len;
      this.count(REG.GPRC, REG.GORCL, total);
      this.count(REG.TPR, REG.TORL, total);
      if (p.data[0] === 0xff && p.data[1] === 0xff) this.regs[REG.BPRC >>> 2]++;
      else if (p.data[0] & 1) this.regs[REG.MPRC >>> 2]++;
    }
    this.regs[REG.RDH >>> 2] = head;
    const rdmts = (rctl >>> 8) & 3; // free below 1/2, 1/4, 1/8 of the ring
    const low = free <= ring.count >>> (rdmts + 1);
    this.raise(R.ICR_RXT0 | (low ? R.ICR_RXDMT0 : 0));
    return cut ? { pieces: cut.pieces } : true;
  }

  /**
   * Where a large segment from the back end is cut (it arrives whole: TSO from net=user, or a
   * virtio-net's GSO over a switch). Each piece goes into the next descriptor's buffer, so the
   * model knows where every piece's payload lands: each piece but the last ends up to 7 bytes
   * short of the MSS, where the next piece's payload address minus its offset in the segment is
   * the same modulo 8 as the first piece's. When the back end started the segment where the
   * guest's reader wants it (rxFrameAlign), every piece's payload then sits at the same address
   * modulo 8 as its byte-stream offset, and Linux copies it to user space by words (0.3
   * instructions per byte) instead of shifting every word (1 per byte). Linux's buffers all sit
   * 2 bytes past a 64-byte boundary, so the pieces are the MSS rounded down to 8 bytes (1456).
   * Nothing is claimed where a piece does not fit one buffer or the ring has no descriptor for
   * the next (that piece is the MSS), nor while the last frames' buffers disagreed (no
   * rxFrameAlign: every piece is the MSS). The descriptors are read again when the frames are placed;
   * a guest changing them in between only gets other cuts (the stream is cut exactly either way).
   */
  private alignedPieces(
    ring: { base: number; count: number },
    head: number,
    free: number,
    bufSize: number,
    fcs: number,
  ): PieceLength {
    let slot = 0; // descriptors the pieces so far take
    let keep = -1; // the first piece's buffer address mod 8 (its payload is at offset 0)
    return (hdrLen, done, full) => {
      const oneBuffer = Math.max(hdrLen + full, MIN_FRAME) + fcs <= bufSize;
      if (slot === 0 && oneBuffer) keep = this.rxBufferLow(ring, head) & 7;
      slot += Math.ceil((Math.max(hdrLen + full, MIN_FRAME) + fcs) / bufSize);
      if (keep < 0 || !oneBuffer || slot >= free) return full;
      const next = this.rxBufferLow(ring, (head + slot) % ring.count) & 7;
      // The next piece starts at done + n: make (next - (done + n)) mod 8 equal keep.
      return full - ((done + full - next + keep) & 7);
    };
  }

  /** The low 32 bits of receive descriptor i's buffer address (enough for its alignment). */
  private rxBufferLow(ring: { base: number; count: number }, i: number): number {
    const d = this.dma(ring.base + i * DESC, DESC)!;
    return (d[0] | (d[1] << 8) | (d[2] << 16) | (d[3] << 24)) >>> 0;
  }

  /** Records where a placed frame's byte 0 landed, modulo 8 (rxFrameAlign). */
  private placedAt(align: number): void {
    this.rxAlign = this.lastAlign === undefined || align === this.lastAlign ? align : undefined;
    this.lastAlign = align;
  }

  /**
   * Where the driver's receive buffers put byte 0 of a frame, modulo 8, when the first frame's
   * buffer or the last two frames' agreed (Linux: 2, so a TCP payload after 54 bytes of headers
   * starts on a word). net=user cuts its TCP stream so each large segment's payload starts where the
   * guest's reader wants it (devices/net/user/tcp-conn.ts); alignedPieces keeps the pieces
   * after the first there. Not saved state: the next frames find it again.
   */
  rxFrameAlign(): number | undefined {
    return this.rxAlign;
  }

  private rxBufferSize(rctl: number): number {
    const bsize = (rctl >>> 16) & 3;
    const base = [2048, 1024, 512, 256][bsize];
    return rctl & R.RCTL_BSEX && bsize !== 0 ? base * 16 : base;
  }

  /** Destination filter: RA exact matches, MTA hash, broadcast, promiscuous modes. */
  private accepts(d: Uint8Array, rctl: number): boolean {
    if (d.length < 14) return false;
    if (d[0] & 1) {
      if (
        d[0] === 0xff &&
        d[1] === 0xff &&
        d[2] === 0xff &&
        d[3] === 0xff &&
        d[4] === 0xff &&
        d[5] === 0xff
      ) {
        return (rctl & R.RCTL_BAM) !== 0 || (rctl & R.RCTL_MPE) !== 0;
      }
      if (rctl & R.RCTL_MPE) return true;
      const mo = (rctl >>> 12) & 3;
      const hash = ((d[4] >>> (4 - mo)) | (d[5] << (4 + mo))) & 0xfff;
      return ((this.regs[(REG.MTA >>> 2) + (hash >>> 5)] >>> (hash & 31)) & 1) !== 0;
    }
    if (rctl & R.RCTL_UPE) return true;
    const lo = (d[0] | (d[1] << 8) | (d[2] << 16) | (d[3] << 24)) >>> 0;
    const hi = d[4] | (d[5] << 8);
    for (let i = 0; i < 16; i++) {
      const ral = this.regs[(REG.RA >>> 2) + 2 * i];
      const rah = this.regs[(REG.RA >>> 2) + 2 * i + 1];
      if (rah & 0x8000_0000 && ral === lo && (rah & 0xffff) === hi) return true;
    }
    return false;
  }

  // ---- reset and state -----------------------------------------------------------------------

  /** Power-on / PCI reset: registers, PHY, EEPROM state machine and configuration space. */
  reset(): void {
    this.pci.reset();
    this.phy.reset();
    this.resetRegisters();
  }

  /** CTRL.RST: the MAC resets, the PCI side (BARs, bus mastering) does not. */
  private softReset(): void {
    this.resetRegisters();
  }

  private resetRegisters(): void {
    this.regs.fill(0);
    this.ctx = emptyCtx();
    this.txFirst = null;
    this.txChunks = [];
    this.txLen = 0;
    this.txOversize = false;
    this.ioAddr = 0;
    if (this.itrTimer) clearTimeout(this.itrTimer);
    this.itrTimer = undefined;
    this.lastAssert = -Infinity;
    this.lastAlign = undefined;
    this.rxAlign = undefined;
    this.port.clearBacklog();
    const up = this.port.carrier;
    this.regs[REG.CTRL >>> 2] = R.CTRL_FD | R.CTRL_ASDE | R.CTRL_SLU | R.CTRL_SPEED_1000;
    this.regs[REG.STATUS >>> 2] = R.STATUS_FD | R.STATUS_SPEED_1000 | R.STATUS_ASDV_1000;
    this.setLinkBits(up);
    this.regs[REG.EECD >>> 2] = 0;
    // The EEPROM's MAC is loaded into receive address 0 at reset, marked valid.
    const m = this.mac;
    this.regs[REG.RA >>> 2] = (m[0] | (m[1] << 8) | (m[2] << 16) | (m[3] << 24)) >>> 0;
    this.regs[(REG.RA >>> 2) + 1] = (m[4] | (m[5] << 8) | 0x8000_0000) >>> 0;
    this.regs[0x1000 >>> 2] = 0x0030; // PBA: 48 KiB receive, 16 KiB transmit
    this.regs[REG.RXCSUM >>> 2] = 0x0300;
    this.setLine(false);
  }

  get stats(): Record<string, number> {
    return { ...this.metrics, guest_errors: this.log.count, ...prefixed(this.port.stats) };
  }

  saveState(): E1000State {
    const regs: [number, number][] = [];
    this.regs.forEach((v, i) => v && regs.push([i, v]));
    const data = new Uint8Array(this.txLen);
    let o = 0;
    for (const c of this.txChunks) {
      data.set(c, o);
      o += c.length;
    }
    return {
      version: 1,
      regs,
      eeprom: this.eeprom.saveState(),
      phy: this.phy.saveState(),
      ctx: { ...this.ctx },
      txFirst: this.txFirst ? { ...this.txFirst } : null,
      txData: Array.from(data),
    };
  }

  restoreState(s: unknown): void {
    const st = s as E1000State;
    if (st?.version !== 1 || !Array.isArray(st.regs))
      throw new Error(`${this.name}: unsupported state`);
    this.regs.fill(0);
    for (const [i, v] of st.regs) if (i >= 0 && i < WORDS) this.regs[i] = v;
    this.eeprom.restoreState(st.eeprom);
    this.phy.restoreState(st.phy);
    this.ctx = { ...st.ctx };
    this.txFirst = st.txFirst ? { ...st.txFirst } : null;
    this.txChunks = st.txData.length ? [Uint8Array.from(st.txData)] : [];
    this.txLen = st.txData.length;
    this.txOversize = false;
    this.irqLevel = false;
    this.updateIrq();
  }

  private guestError(msg: string): void {
    this.metrics.guest_errors++;
    this.log.report(msg);
  }
}

function prefixed(s: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(s)) out[`net_${k}`] = v;
  return out;
}
