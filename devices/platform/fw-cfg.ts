/**
 * QEMU's firmware configuration device (fw_cfg) as the `virt` board maps it: "qemu,fw-cfg-mmio"
 * at 0x10100000, 0x18 bytes, no interrupt. It hands the guest numbered items (a signature, the
 * interface's features, the CPU count, the RAM size) and named files, the user's under "opt/"
 * (`--fw-cfg name=opt/…,file=…|string=…`); Linux's qemu_fw_cfg driver shows them in
 * /sys/firmware/qemu_fw_cfg, and systemd takes the device as the sign of a QEMU machine.
 *
 * Registers (big-endian, as QEMU's wide MMIO variant):
 *   0x00  data: each read returns the next 1, 2, 4 or 8 bytes of the selected item, in memory
 *         order (zeros past its end); writes are ignored (QEMU dropped data writes in 2.4)
 *   0x08  selector (16 bits): selects an item and rewinds to its first byte
 *   0x10  DMA address (64 bits; the write of its low half at 0x14 starts the transfer):
 *         the guest-physical address of { be32 control; be32 length; be64 address }. control:
 *         SELECT (selector in bits 31..16), then READ (item → guest RAM), SKIP or WRITE; the
 *         device writes control back as 0, or with ERROR set. Reading it returns "QEMU CFG".
 *
 * The guest is untrusted: a descriptor or a buffer outside RAM, a WRITE (no item here is
 * writable), a length past an item's end or beyond RAM get ERROR or zeros, never an exception;
 * nothing is read or written outside RAM.
 */
import type { GuestMemory } from './dirty-log.js';
import type { LogSink } from './guest-log.js';
import type { MmioDevice } from './mmio.js';

/** Guest RAM as the device reaches it for DMA. */
export type FwCfgRam = GuestMemory;

/** A named file: "opt/…" for the user's. */
export interface FwCfgFile {
  name: string;
  data: Uint8Array;
}

export interface FwCfgOptions {
  memory: FwCfgRam;
  cpus: number;
  files?: readonly FwCfgFile[];
  log?: LogSink;
}

export interface FwCfgState {
  version: 1;
  selector: number;
  offset: number;
  /** The DMA address register's high half, written before its low half. */
  dmaHigh: number;
}

/** Item keys (QEMU's include/standard-headers/linux/qemu_fw_cfg.h numbering). */
export const FW_CFG = {
  SIGNATURE: 0x00,
  ID: 0x01,
  UUID: 0x02,
  RAM_SIZE: 0x03,
  NOGRAPHIC: 0x04,
  NB_CPUS: 0x05,
  MAX_CPUS: 0x0f,
  FILE_DIR: 0x19,
  FILE_FIRST: 0x20,
} as const;

/** FW_CFG_ID's feature bits: the traditional interface and DMA. */
const FEATURES = 0b11;
/** DMA control bits. */
export const DMA = { ERROR: 1, READ: 2, SKIP: 4, SELECT: 8, WRITE: 16 } as const;
/** What a read of the DMA address register returns ("QEMU CFG"). */
const DMA_SIGNATURE = 0x51454d5520434647n;
/** A file's name field in the directory, NUL included. */
export const FILE_NAME_BYTES = 56;
/** Most bytes all of the user's files may hold together. */
export const MAX_FILE_BYTES = 16 * 1024 * 1024;
/** Most files QEMU's selector range leaves room for. */
const MAX_FILES = 0x3fff - FW_CFG.FILE_FIRST;

export class FwCfgError extends Error {}

/** Checks a user file's name as QEMU's -fw_cfg does, but refusing what QEMU only warns about. */
export function checkFileName(name: string): void {
  if (!name.startsWith('opt/') || name.length <= 4) {
    throw new FwCfgError(
      `fw_cfg name "${name}": user files go under "opt/" (e.g. opt/org.example/config)`,
    );
  }
  if (Buffer.byteLength(name) >= FILE_NAME_BYTES) {
    throw new FwCfgError(`fw_cfg name "${name}": longer than ${FILE_NAME_BYTES - 1} bytes`);
  }
  if ([...name].some((c) => c.charCodeAt(0) < 0x20)) {
    throw new FwCfgError(`fw_cfg name "${name}": control characters`);
  }
}

export class FwCfg implements MmioDevice {
  readonly name = 'fw-cfg';
  private readonly items = new Map<number, Uint8Array>();
  /** The files' names in directory order (QEMU's three and the user's). */
  readonly fileNames: readonly string[];
  private readonly mem: FwCfgRam;
  private readonly log?: LogSink;
  private selector = 0;
  private offset = 0;
  private dmaHigh = 0;
  /** DMA transfers done and refused (ERROR), for stats. */
  private transfers = 0;
  private errors = 0;

  constructor(o: FwCfgOptions) {
    this.mem = o.memory;
    this.log = o.log;
    const files = [...(o.files ?? [])];
    const names = new Set<string>();
    let total = 0;
    for (const f of files) {
      checkFileName(f.name);
      if (names.has(f.name)) throw new FwCfgError(`fw_cfg name "${f.name}" given twice`);
      names.add(f.name);
      total += f.data.length;
    }
    if (total > MAX_FILE_BYTES) {
      throw new FwCfgError(`fw_cfg files: ${total} bytes, more than ${MAX_FILE_BYTES}`);
    }
    if (files.length > MAX_FILES) throw new FwCfgError(`fw_cfg: more than ${MAX_FILES} files`);
    const u32 = (v: number) => new Uint8Array(new Uint32Array([v]).buffer);
    this.items.set(FW_CFG.SIGNATURE, new TextEncoder().encode('QEMU'));
    this.items.set(FW_CFG.ID, u32(FEATURES));
    this.items.set(FW_CFG.UUID, new Uint8Array(16));
    const ram = new Uint8Array(8);
    new DataView(ram.buffer).setBigUint64(0, BigInt(o.memory.ram.length), true);
    this.items.set(FW_CFG.RAM_SIZE, ram);
    this.items.set(FW_CFG.NOGRAPHIC, new Uint8Array(2));
    const cpus = new Uint8Array(2);
    new DataView(cpus.buffer).setUint16(0, o.cpus, true);
    this.items.set(FW_CFG.NB_CPUS, cpus);
    this.items.set(FW_CFG.MAX_CPUS, cpus.slice());
    // QEMU's virt has these three (no boot order, no fail wait), then the user's, and its
    // directory lists them sorted by name, numbered from FILE_FIRST.
    files.push(
      { name: 'bios-geometry', data: new Uint8Array(0) },
      { name: 'bootorder', data: new Uint8Array(0) },
      { name: 'etc/boot-fail-wait', data: u32(0xffff_ffff) },
    );
    files.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const dir = new Uint8Array(4 + 64 * files.length);
    const dv = new DataView(dir.buffer);
    dv.setUint32(0, files.length);
    files.forEach((f, i) => {
      const at = 4 + 64 * i;
      dv.setUint32(at, f.data.length);
      dv.setUint16(at + 4, FW_CFG.FILE_FIRST + i);
      dir.set(new TextEncoder().encode(f.name), at + 8);
      this.items.set(FW_CFG.FILE_FIRST + i, f.data);
    });
    this.items.set(FW_CFG.FILE_DIR, dir);
    this.fileNames = files.map((f) => f.name);
  }

  read(offset: number, size: 1 | 2 | 4): number {
    // An 8-byte read reaches the device as two 4-byte ones (at 0 and 4): both are data.
    if (offset < 8) return this.readData(size);
    if (offset >= 16) {
      // The DMA register reads as "QEMU CFG", big-endian: bytes in memory order.
      const shift = BigInt(8 * (8 - (offset - 16) - size));
      return Number(swapBytes((DMA_SIGNATURE >> shift) & mask(size), size));
    }
    return 0; // the selector reads as 0 (QEMU: write-only)
  }

  /** Next `size` bytes of the item as a little-endian load of them would see them. */
  private readData(size: number): number {
    const item = this.items.get(this.key());
    let v = 0;
    for (let i = 0; i < size; i++) {
      if (!item || this.offset >= item.length) break; // zeros past the end
      v |= item[this.offset++]! << (8 * i);
    }
    return v >>> 0;
  }

  write(offset: number, size: 1 | 2 | 4, value: number): void {
    if (offset >= 8 && offset < 16) {
      // The selector: 16 bits, big-endian. A 2-byte store is what drivers do.
      if (offset === 8 && size >= 2) this.select(Number(swapBytes(BigInt(value) & 0xffffn, 2)));
      return;
    }
    if (offset < 16) return; // data writes: ignored
    // The address's high half first, then its low half, which starts the transfer (an 8-byte
    // store reaches the device as these two 4-byte ones, low word first).
    if (size !== 4) return;
    const v = Number(swapBytes(BigInt(value >>> 0), 4));
    if (offset === 16) this.dmaHigh = v;
    else if (offset === 20) this.dma(this.dmaHigh * 2 ** 32 + v);
  }

  private key(): number {
    return this.selector & 0x3fff;
  }

  private select(sel: number): void {
    this.selector = sel;
    this.offset = 0;
  }

  /** Runs the DMA descriptor at guest-physical `addr`. */
  private dma(addr: number): void {
    this.dmaHigh = 0;
    const desc = this.view(addr, 16);
    if (!desc) {
      // Nowhere to report the error: QEMU drops such a request too.
      this.errors++;
      this.log?.(`fw-cfg: DMA descriptor at 0x${addr.toString(16)} is not in RAM`);
      return;
    }
    const dv = new DataView(desc.buffer, desc.byteOffset, 16);
    const control = dv.getUint32(0);
    const length = dv.getUint32(4);
    const target = Number(dv.getBigUint64(8));
    let ok = true;
    if (control & DMA.SELECT) this.select(control >>> 16);
    const item = this.items.get(this.key());
    const left = item ? Math.max(0, item.length - this.offset) : 0;
    // READ wins over WRITE, WRITE over SKIP, as in QEMU.
    if (control & DMA.READ) {
      const buf = this.view(target, length);
      if (!buf) ok = false;
      else {
        this.mem.dirty?.mark(target, length);
        const n = Math.min(length, left);
        if (n > 0) buf.set(item!.subarray(this.offset, this.offset + n));
        buf.fill(0, n);
        this.offset += n;
      }
    } else if (control & DMA.WRITE) {
      ok = false; // no item here is writable
    } else if (control & DMA.SKIP) this.offset += Math.min(length, left);
    this.transfers++;
    if (!ok) this.errors++;
    this.mem.dirty?.mark(addr, 4);
    dv.setUint32(0, ok ? 0 : DMA.ERROR);
  }

  /** Guest RAM at [addr, addr + len), or undefined when any of it is not RAM. */
  private view(addr: number, len: number): Uint8Array | undefined {
    const off = addr - this.mem.ramBase;
    if (!Number.isSafeInteger(off) || off < 0 || off + len > this.mem.ram.length) return undefined;
    return this.mem.ram.subarray(off, off + len);
  }

  /** The user's files ("opt/…"). */
  userFiles(): string[] {
    return this.fileNames.filter((n) => n.startsWith('opt/'));
  }

  get stats(): { transfers: number; errors: number } {
    return { transfers: this.transfers, errors: this.errors };
  }

  reset(): void {
    this.select(0);
    this.dmaHigh = 0;
  }

  saveState(): FwCfgState {
    return { version: 1, selector: this.selector, offset: this.offset, dmaHigh: this.dmaHigh };
  }

  restoreState(s: FwCfgState): void {
    const ok = (v: unknown, max: number) =>
      typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= max;
    if (s?.version !== 1)
      throw new Error(`fw-cfg: unsupported state version ${String(s?.version)}`);
    if (!ok(s.selector, 0xffff) || !ok(s.offset, 2 ** 32) || !ok(s.dmaHigh, 2 ** 32 - 1)) {
      throw new Error('fw-cfg: bad state');
    }
    this.selector = s.selector;
    this.offset = s.offset;
    this.dmaHigh = s.dmaHigh;
  }
}

const mask = (size: number): bigint => (1n << BigInt(8 * size)) - 1n;

/** Reverses the low `size` bytes of v. */
function swapBytes(v: bigint, size: number): bigint {
  let r = 0n;
  for (let i = 0; i < size; i++) r = (r << 8n) | ((v >> BigInt(8 * i)) & 0xffn);
  return r;
}
