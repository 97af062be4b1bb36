/**
 * The PCIe host bridge of QEMU's virt board, as Linux's `pci-host-ecam-generic` drives it:
 *
 * - ECAM: 256 MiB at 0x30000000, one 4 KiB configuration space per bus/device/function
 *   (offset = bus << 20 | device << 15 | function << 12 | register). Only bus 0 is populated;
 *   an absent function reads all ones (vendor ID 0xFFFF), which is how Linux learns it is not
 *   there, and ignores writes.
 * - Windows: the guest assigns BARs from the memory window (0x40000000) and the I/O window
 *   (CPU 0x03000000 = port 0). When a BAR's space is enabled in the command register, the BAR
 *   becomes a region on the MMIO bus under the function's name, so its exits are counted per
 *   device like any other; it is unmapped while disabled or being sized.
 * - INTx: device d, pin p (1..4) drives PLIC source 32 + (d + p − 1) mod 4, the swizzle in the
 *   DTB's interrupt-map. Lines are shared, so a line is high while any function asserts it.
 *
 * Slot 0 holds a host bridge function (class 0x0600) as in QEMU; devices start at slot 1.
 */
import type { MmioBus, MmioExitStats, MmioRegion } from '../platform/bus.js';
import { GuestErrorLog, hex, type LogSink } from '../platform/guest-log.js';
import { VIRT } from '../platform/memory-map.js';
import type { IrqLine, MmioDevice } from '../platform/mmio.js';
import { PciFunction, type PciFunctionState } from './function.js';

export const PCI_SLOTS = 32;
const PINS = 4;

export interface PciHostOptions {
  bus: MmioBus;
  /** PLIC source n → its line. */
  irq: (n: number) => IrqLine;
  log?: LogSink;
}

export interface PciHostState {
  version: 1;
  functions: Record<number, PciFunctionState>;
}

interface Mapped {
  region: MmioRegion;
  stats: MmioExitStats;
}

export class PciHost implements MmioDevice {
  readonly name = 'pcie-ecam';
  private readonly slots: (PciFunction | undefined)[] = new Array(PCI_SLOTS);
  private readonly mapped = new Map<string, Mapped>();
  /** Kept across remaps so a BAR's exit counters survive the guest moving it. */
  private readonly barStats = new Map<string, MmioExitStats>();
  private readonly lineLevels: boolean[] = new Array(PINS).fill(false);
  private readonly lines: IrqLine[];
  private readonly log: GuestErrorLog;
  readonly counters = { config_reads: 0, config_writes: 0, bar_maps: 0, bar_conflicts: 0 };

  constructor(private readonly o: PciHostOptions) {
    this.log = new GuestErrorLog(this.name, o.log);
    this.lines = Array.from({ length: PINS }, (_, i) => o.irq(VIRT.pcieFirstIrq + i));
    this.plug(
      0,
      new PciFunction({
        name: 'pcie-host',
        vendorId: 0x1b36, // Red Hat, QEMU's generic PCIe host bridge
        deviceId: 0x0008,
        classCode: 0x060000,
      }),
    );
  }

  /** Puts `fn` in `slot` (1..31 for devices). */
  plug(slot: number, fn: PciFunction): void {
    if (!Number.isInteger(slot) || slot < 0 || slot >= PCI_SLOTS || this.slots[slot]) {
      throw new RangeError(`pci: slot ${slot} is not free`);
    }
    this.slots[slot] = fn;
    fn.hooks = {
      barsChanged: () => this.remap(slot, fn),
      intxChanged: () => this.updateIntx(),
    };
  }

  /** The first free device slot. */
  freeSlot(): number {
    for (let s = 1; s < PCI_SLOTS; s++) if (!this.slots[s]) return s;
    throw new RangeError('pci: no free slot');
  }

  functions(): { slot: number; fn: PciFunction }[] {
    const out: { slot: number; fn: PciFunction }[] = [];
    this.slots.forEach((fn, slot) => fn && out.push({ slot, fn }));
    return out;
  }

  /** PLIC source of a slot's pin (1..4). */
  static irqOf(slot: number, pin: number): number {
    return VIRT.pcieFirstIrq + ((slot + pin - 1) % PINS);
  }

  read(offset: number, size: 1 | 2 | 4): number {
    this.counters.config_reads++;
    const fn = this.target(offset, size);
    if (!fn) return size === 4 ? 0xffff_ffff : size === 2 ? 0xffff : 0xff;
    return fn.readConfig(offset & 0xfff, size);
  }

  write(offset: number, size: 1 | 2 | 4, value: number): void {
    this.counters.config_writes++;
    const fn = this.target(offset, size);
    if (fn) fn.writeConfig(offset & 0xfff, size, value);
  }

  /** Every function back to power-on (BARs unmapped, INTx low). */
  reset(): void {
    for (const fn of this.slots) fn?.reset();
  }

  saveState(): PciHostState {
    const functions: Record<number, PciFunctionState> = {};
    this.slots.forEach((fn, slot) => fn && (functions[slot] = fn.saveState()));
    return { version: 1, functions };
  }

  restoreState(s: unknown): void {
    const st = s as PciHostState;
    if (st?.version !== 1 || typeof st.functions !== 'object') {
      throw new Error('pcie-ecam: unsupported state');
    }
    this.slots.forEach((fn, slot) => fn && fn.restoreState(st.functions[slot]));
  }

  get stats(): Record<string, number> {
    return { ...this.counters, guest_errors: this.log.count };
  }

  private target(offset: number, size: number): PciFunction | undefined {
    if ((offset & (size - 1)) !== 0) {
      this.log.report(`unaligned config access at ${hex(offset)}/${size}`);
      return undefined;
    }
    const bus = offset >>> 20;
    const dev = (offset >>> 15) & 31;
    const func = (offset >>> 12) & 7;
    if (bus !== 0 || func !== 0) return undefined;
    return this.slots[dev];
  }

  private remap(slot: number, fn: PciFunction): void {
    fn.bars.forEach((bar, i) => {
      if (!bar) return;
      const key = `${slot}.${i}`;
      const old = this.mapped.get(key);
      const name = bar.kind === 'io' ? `${fn.name}.io` : fn.name;
      let base = -1;
      if (fn.barEnabled(i)) {
        const a = fn.barAddress(i);
        const w = bar.kind === 'io' ? VIRT.pciePio : VIRT.pcieMmio;
        // A bus address maps 1:1 in the memory window; I/O port p is at pio.base + p.
        const cpu = bar.kind === 'io' ? w.base + a : a;
        if (cpu >= w.base && cpu + bar.size <= w.base + w.size) base = cpu;
        else this.log.report(`${name}: BAR${i} at ${hex(a)} is outside its window`);
      }
      if (old && old.region.base === base) return;
      if (old) {
        this.o.bus.unmap(old.region);
        this.mapped.delete(key);
      }
      if (base < 0) return;
      let stats = this.barStats.get(key);
      if (!stats) {
        stats = { reads: 0, writes: 0, errors: 0 };
        this.barStats.set(key, stats);
      }
      const dev: MmioDevice = {
        name,
        read: (off, size) => bar.device.read(off, size),
        write: (off, size, v) => bar.device.write(off, size, v),
      };
      try {
        const region = this.o.bus.map(base, bar.size, dev, stats);
        this.mapped.set(key, { region, stats });
        this.counters.bar_maps++;
      } catch {
        // Two BARs programmed on top of each other (or of a board device): the guest's
        // mistake, so the BAR just does not decode.
        this.counters.bar_conflicts++;
        this.log.report(`${name}: BAR${i} at ${hex(base)} overlaps another region`);
      }
    });
  }

  private updateIntx(): void {
    const levels: boolean[] = new Array(PINS).fill(false);
    this.slots.forEach((fn, slot) => {
      const pin = fn ? fn.readConfig(0x3d, 1) : 0;
      if (fn && pin >= 1 && pin <= PINS && fn.intxAsserted) {
        levels[(slot + pin - 1) % PINS] = true;
      }
    });
    for (let i = 0; i < PINS; i++) {
      if (levels[i] !== this.lineLevels[i]) {
        this.lineLevels[i] = levels[i];
        this.lines[i].set(levels[i]);
      }
    }
  }
}
