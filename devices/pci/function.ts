/**
 * One PCI function's configuration space (type 0 header, 256 bytes; the rest of ECAM's 4 KiB
 * reads as zero, i.e. no extended capabilities): identity, command/status, BARs, capability
 * list and interrupt pin.
 *
 * Writes go through a per-byte mask of writable bits, which is also what makes BAR sizing work:
 * a BAR's writable bits are its address bits, so writing all ones reads back ~(size - 1) with
 * the type bits, exactly as the spec's sizing procedure expects.
 */
import type { MmioDevice } from '../platform/mmio.js';

export const CFG = {
  vendorId: 0x00,
  deviceId: 0x02,
  command: 0x04,
  status: 0x06,
  revision: 0x08,
  classCode: 0x09,
  cacheLineSize: 0x0c,
  latencyTimer: 0x0d,
  headerType: 0x0e,
  bar0: 0x10,
  subsystemVendorId: 0x2c,
  subsystemId: 0x2e,
  romBase: 0x30,
  capPtr: 0x34,
  interruptLine: 0x3c,
  interruptPin: 0x3d,
} as const;

export const CMD_IO = 1 << 0;
export const CMD_MEMORY = 1 << 1;
export const CMD_BUS_MASTER = 1 << 2;
export const CMD_INTX_DISABLE = 1 << 10;
/** Command bits a driver may set: I/O, memory, bus master, parity, SERR, INTx disable. */
const CMD_WRITABLE = 0x0547;
const STATUS_INTX = 1 << 3;
const STATUS_CAP_LIST = 1 << 4;

export type BarKind = 'mem32' | 'io';

export interface BarSpec {
  kind: BarKind;
  /** Power of two: ≥ 16 for memory, ≥ 4 for I/O. */
  size: number;
  /** Handles accesses at offsets relative to the BAR's base once the guest enabled it. */
  device: MmioDevice;
}

export interface PciFunctionOptions {
  /** Name in logs and exit counters ("e1000-0"); BAR regions are named after it. */
  name: string;
  vendorId: number;
  deviceId: number;
  /** Class, subclass, prog-if as one 24-bit number (0x020000 = Ethernet controller). */
  classCode: number;
  revision?: number;
  subsystemVendorId?: number;
  subsystemId?: number;
  /** INTx pin: 1 = INTA .. 4 = INTD, 0 = none. */
  interruptPin?: number;
  /** Up to six BARs, by index. */
  bars?: (BarSpec | undefined)[];
  /** Capabilities: id and body (the bytes after the id/next pair). */
  capabilities?: { id: number; body: number[]; writable?: number[] }[];
}

export interface PciFunctionState {
  version: 1;
  /** The whole 256-byte configuration space. */
  config: number[];
}

/** Where the bar regions are; set by the host bridge. */
export interface PciBusHooks {
  /** Command or a BAR changed: (re)map the BARs. */
  barsChanged(): void;
  /** The function's INTx output changed (after the INTx-disable bit). */
  intxChanged(): void;
}

const CAP_START = 0x40;

/**
 * Configuration bytes a device model answers itself instead of the stored image (virtio-pci's
 * PCI_CFG access window, whose reads and writes reach into a BAR).
 */
export interface ConfigWindow {
  /** Offset in configuration space. */
  start: number;
  length: number;
  read(offset: number, size: number): number;
  write(offset: number, size: number, value: number): void;
}

export class PciFunction {
  readonly name: string;
  readonly bars: readonly (BarSpec | undefined)[];
  hooks: PciBusHooks | undefined;
  /** Where each capability of the options landed in configuration space, in order. */
  readonly capabilityOffsets: readonly number[];
  /** Set by a device model that answers some configuration bytes itself. */
  configWindow: ConfigWindow | undefined;
  private readonly cfg = new Uint8Array(256);
  private readonly wmask = new Uint8Array(256);
  private readonly initial: Uint8Array;
  private intxLevel = false;

  constructor(o: PciFunctionOptions) {
    this.name = o.name;
    this.bars = o.bars ?? [];
    if (this.bars.length > 6) throw new RangeError(`${o.name}: at most six BARs`);
    const c = this.cfg;
    const w = this.wmask;
    put(c, CFG.vendorId, 2, o.vendorId);
    put(c, CFG.deviceId, 2, o.deviceId);
    put(c, CFG.revision, 1, o.revision ?? 0);
    put(c, CFG.classCode, 3, o.classCode);
    put(c, CFG.subsystemVendorId, 2, o.subsystemVendorId ?? o.vendorId);
    put(c, CFG.subsystemId, 2, o.subsystemId ?? 0);
    put(c, CFG.interruptPin, 1, o.interruptPin ?? 0);
    put(w, CFG.command, 2, CMD_WRITABLE);
    put(w, CFG.cacheLineSize, 1, 0xff);
    put(w, CFG.latencyTimer, 1, 0xff);
    put(w, CFG.interruptLine, 1, 0xff);
    this.bars.forEach((b, i) => {
      if (!b) return;
      const min = b.kind === 'io' ? 4 : 16;
      if (b.size < min || (b.size & (b.size - 1)) !== 0 || b.size > 0x8000_0000) {
        throw new RangeError(`${o.name}: BAR${i} size ${b.size} is not a power of two ≥ ${min}`);
      }
      const off = CFG.bar0 + 4 * i;
      put(c, off, 4, b.kind === 'io' ? 1 : 0); // I/O space indicator; mem32, not prefetchable
      put(w, off, 4, ~(b.size - 1) & (b.kind === 'io' ? 0xffff_fffc : 0xffff_fff0));
    });
    let next = CAP_START;
    let prevPtr = CFG.capPtr;
    const offsets: number[] = [];
    for (const cap of o.capabilities ?? []) {
      const len = (2 + cap.body.length + 3) & ~3;
      if (next + len > 256) throw new RangeError(`${o.name}: capabilities overflow`);
      c[prevPtr] = next;
      offsets.push(next);
      c[next] = cap.id;
      cap.body.forEach((v, i) => (c[next + 2 + i] = v));
      cap.writable?.forEach((m, i) => (w[next + 2 + i] = m));
      prevPtr = next + 1;
      next += len;
    }
    this.capabilityOffsets = offsets;
    if (o.capabilities?.length) put(c, CFG.status, 2, STATUS_CAP_LIST);
    this.initial = c.slice();
  }

  get command(): number {
    return get(this.cfg, CFG.command, 2);
  }

  /** Whether the function may master the bus (DMA); devices check it before touching RAM. */
  get busMaster(): boolean {
    return (this.command & CMD_BUS_MASTER) !== 0;
  }

  /** The BAR's assigned base (I/O: port number), without the type bits. */
  barAddress(i: number): number {
    const b = this.bars[i];
    if (!b) return 0;
    const v = get(this.cfg, CFG.bar0 + 4 * i, 4);
    return (b.kind === 'io' ? v & 0xffff_fffc : v & 0xffff_fff0) >>> 0;
  }

  /** Whether the BAR decodes: its space is enabled in the command register. */
  barEnabled(i: number): boolean {
    const b = this.bars[i];
    if (!b) return false;
    return (this.command & (b.kind === 'io' ? CMD_IO : CMD_MEMORY)) !== 0;
  }

  /** The device drives its interrupt pin. */
  setIntx(level: boolean): void {
    if (level === this.intxLevel) return;
    this.intxLevel = level;
    const s = get(this.cfg, CFG.status, 2);
    put(this.cfg, CFG.status, 2, level ? s | STATUS_INTX : s & ~STATUS_INTX);
    this.hooks?.intxChanged();
  }

  /** What reaches the interrupt controller: the pin, unless the driver disabled INTx. */
  get intxAsserted(): boolean {
    return this.intxLevel && (this.command & CMD_INTX_DISABLE) === 0;
  }

  readConfig(off: number, size: number): number {
    if (off + size > 256) return 0; // extended space: no extended capabilities
    const w = this.configWindow;
    if (w && off < w.start + w.length && off + size > w.start) return w.read(off - w.start, size);
    return get(this.cfg, off, size);
  }

  writeConfig(off: number, size: number, value: number): void {
    if (off + size > 256) return;
    const w = this.configWindow;
    if (w && off < w.start + w.length && off + size > w.start) {
      w.write(off - w.start, size, value);
      return;
    }
    const before = this.command;
    for (let i = 0; i < size; i++) {
      const m = this.wmask[off + i];
      const v = (value >>> (8 * i)) & 0xff;
      this.cfg[off + i] = (this.cfg[off + i] & ~m) | (v & m);
    }
    const after = this.command;
    if (after !== before && (after ^ before) & CMD_INTX_DISABLE) this.hooks?.intxChanged();
    const touchesBars = off < CFG.bar0 + 24 && off + size > CFG.bar0;
    if ((after ^ before) & (CMD_IO | CMD_MEMORY) || touchesBars) {
      this.hooks?.barsChanged();
    }
  }

  /** Back to power-on: BARs unassigned, decoding and bus mastering off. */
  reset(): void {
    this.cfg.set(this.initial);
    this.intxLevel = false;
    this.hooks?.barsChanged();
    this.hooks?.intxChanged();
  }

  saveState(): PciFunctionState {
    return { version: 1, config: Array.from(this.cfg) };
  }

  restoreState(s: unknown): void {
    const st = s as PciFunctionState;
    if (st?.version !== 1 || !Array.isArray(st.config) || st.config.length !== 256) {
      throw new Error(`${this.name}: unsupported PCI state`);
    }
    this.cfg.set(st.config);
    this.intxLevel = (get(this.cfg, CFG.status, 2) & STATUS_INTX) !== 0;
    this.hooks?.barsChanged();
    this.hooks?.intxChanged();
  }
}

function get(b: Uint8Array, off: number, size: number): number {
  let v = 0;
  for (let i = size - 1; i >= 0; i--) v = v * 256 + b[off + i];
  return v >>> 0;
}

function put(b: Uint8Array, off: number, size: number, v: number): void {
  for (let i = 0; i < size; i++) b[off + i] = (v >>> (8 * i)) & 0xff;
}
