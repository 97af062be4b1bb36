import { GuestErrorLog, hex, type LogSink } from './guest-log.js';
import type { MmioDevice } from './mmio.js';

/** Exit counters of one mapped device. Mutated in place, so reading them never allocates. */
export interface MmioExitStats {
  reads: number;
  writes: number;
  /** Exceptions a device let escape (a device bug); the access was dropped. */
  errors: number;
}

/** One mapped range. */
export interface MmioRegion {
  readonly base: number;
  readonly size: number;
  readonly device: MmioDevice;
  readonly stats: MmioExitStats;
}

/** Called for an access that hits no device (or is not a 1/2/4-byte access). */
export type UnmappedAccessHandler = (
  addr: number,
  size: number,
  write: boolean,
  value: number,
) => void;

/**
 * The MMIO bus: every guest load/store that leaves the core lands in `read`/`write`.
 *
 * Fault protocol: `read` and `write` never throw. An access to an address no device covers, one
 * that runs past the end of a device's range, or one whose size is not 1, 2 or 4 sets
 * `bus.fault = true` (and `read` returns 0); the core clears `fault` before the access, checks
 * it after, and raises a load/store access fault. Mapped accesses leave `fault` untouched.
 * `onUnmapped` is called as well, for logging.
 *
 * Values: `read` returns the value zero-extended to `size` bytes (0 .. 2^32-1); the core sign
 * extends. `write` passes the value masked to `size` bytes to the device.
 *
 * Lookup is a binary search over ranges sorted by base, with the last hit cached: the UART, PLIC
 * or a virtqueue notify register are hit in runs.
 */
export class MmioBus {
  /** Set by an access that must become an access fault; the core clears it. */
  fault = false;
  onUnmapped: UnmappedAccessHandler | undefined;
  readonly unmapped = { reads: 0, writes: 0 };

  private readonly sorted: MmioRegion[] = [];
  private bases: number[] = [];
  private ends: number[] = [];
  private last = -1;
  private readonly log: GuestErrorLog;

  constructor(sink?: LogSink) {
    this.log = new GuestErrorLog('bus', sink);
  }

  /**
   * Maps `device` at [base, base + size). Overlapping ranges are a wiring bug and throw.
   * `stats` lets a region that moves (a PCI BAR the guest reprograms) keep its counters.
   */
  map(base: number, size: number, device: MmioDevice, stats?: MmioExitStats): MmioRegion {
    if (!Number.isSafeInteger(base) || !Number.isSafeInteger(size) || base < 0 || size <= 0) {
      throw new RangeError(`bus: bad range ${hex(base)}+${hex(size)} for ${device.name}`);
    }
    for (const r of this.sorted) {
      if (base < r.base + r.size && r.base < base + size) {
        throw new RangeError(
          `bus: ${device.name} at ${hex(base)}+${hex(size)} overlaps ${r.device.name} at ` +
            `${hex(r.base)}+${hex(r.size)}`,
        );
      }
    }
    const region: MmioRegion = {
      base,
      size,
      device,
      stats: stats ?? { reads: 0, writes: 0, errors: 0 },
    };
    this.sorted.push(region);
    this.reindex();
    return region;
  }

  /** Removes a region returned by map() (PCI BARs move or stop decoding); unknown ones are ignored. */
  unmap(region: MmioRegion): void {
    const i = this.sorted.indexOf(region);
    if (i < 0) return;
    this.sorted.splice(i, 1);
    this.reindex();
  }

  private reindex(): void {
    this.sorted.sort((a, b) => a.base - b.base);
    this.bases = this.sorted.map((r) => r.base);
    this.ends = this.sorted.map((r) => r.base + r.size);
    this.last = -1;
  }

  /** Mapped ranges in address order. */
  regions(): readonly MmioRegion[] {
    return this.sorted;
  }

  /** Exit counters keyed by device name (a fresh object: for the stats snapshot, not per exit). */
  stats(): Record<string, MmioExitStats> {
    const out: Record<string, MmioExitStats> = {};
    for (const r of this.sorted) out[r.device.name] = { ...r.stats };
    return out;
  }

  resetStats(): void {
    for (const r of this.sorted) {
      r.stats.reads = 0;
      r.stats.writes = 0;
      r.stats.errors = 0;
    }
    this.unmapped.reads = 0;
    this.unmapped.writes = 0;
  }

  read(addr: number, size: number): number {
    const i = this.find(addr, size);
    if (i < 0) {
      this.unmapped.reads++;
      this.fault = true;
      this.onUnmapped?.(addr, size, false, 0);
      return 0;
    }
    const r = this.sorted[i];
    r.stats.reads++;
    try {
      const v = r.device.read(addr - r.base, size as 1 | 2 | 4);
      return size === 4 ? v >>> 0 : v & (size === 1 ? 0xff : 0xffff);
    } catch (e) {
      r.stats.errors++;
      this.log.report(`${r.device.name} threw on read ${hex(addr)}/${size}: ${String(e)}`);
      return 0;
    }
  }

  write(addr: number, size: number, value: number): void {
    const i = this.find(addr, size);
    if (i < 0) {
      this.unmapped.writes++;
      this.fault = true;
      this.onUnmapped?.(addr, size, true, value);
      return;
    }
    const r = this.sorted[i];
    r.stats.writes++;
    const v = size === 4 ? value >>> 0 : value & (size === 1 ? 0xff : 0xffff);
    try {
      r.device.write(addr - r.base, size as 1 | 2 | 4, v);
    } catch (e) {
      r.stats.errors++;
      this.log.report(`${r.device.name} threw on write ${hex(addr)}/${size}: ${String(e)}`);
    }
  }

  /** Index of the region that holds the whole access, or -1. */
  private find(addr: number, size: number): number {
    if (size !== 1 && size !== 2 && size !== 4) return -1;
    const end = addr + size;
    const l = this.last;
    if (l >= 0 && addr >= this.bases[l] && end <= this.ends[l]) return l;
    const bases = this.bases;
    let lo = 0;
    let hi = bases.length - 1;
    // Last region whose base <= addr.
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (bases[mid] <= addr) lo = mid + 1;
      else hi = mid - 1;
    }
    if (hi < 0 || end > this.ends[hi]) return -1;
    this.last = hi;
    return hi;
  }
}
