/**
 * The dirty-page log seen from TypeScript: a view of the core's bitmap (wasm-core/mmu/dirty.ts)
 * through which device models mark the guest RAM they write by DMA while the log is on (live
 * migration must send those pages again). The CPU's own stores and the ring processor's ring
 * writes are marked inside the core. `on` mirrors the core's switch (Core.dirtyLogStart/Stop),
 * so a device pays one property read per DMA while it is off.
 */
export const DIRTY_PAGE = 4096;

export class DirtyLog {
  on = false;

  constructor(
    /** One bit per 4 KiB page of RAM, page p in bit p % 8 of byte p / 8. */
    readonly bitmap: Uint8Array,
    readonly ramBase: number,
    readonly ramSize: number,
  ) {}

  /** Marks the pages of guest-physical [gpa, gpa + len) that lie in RAM, when the log is on. */
  mark(gpa: number, len: number): void {
    if (!this.on || !(len > 0)) return;
    const lo = Math.max(0, gpa - this.ramBase);
    const hi = Math.min(this.ramSize, gpa - this.ramBase + len);
    if (hi <= lo) return;
    const last = Math.floor((hi - 1) / DIRTY_PAGE);
    for (let p = Math.floor(lo / DIRTY_PAGE); p <= last; p++) this.bitmap[p >> 3]! |= 1 << (p & 7);
  }

  /** Marks RAM by its offset from RAM's base (views of core.ram). */
  markOffset(offset: number, len: number): void {
    this.mark(this.ramBase + offset, len);
  }
}

/** Guest RAM as device models see it for DMA: the core's bytes, and its dirty log if any. */
export interface GuestMemory {
  readonly ram: Uint8Array;
  readonly ramBase: number;
  readonly dirty?: DirtyLog;
}
