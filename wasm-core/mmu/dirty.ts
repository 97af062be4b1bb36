// The dirty-page log (for live migration): while on, every guest-RAM page written since the
// host last harvested the log has its bit set in DIRTY_BITMAP (bit p%8 of byte p/8 for page p,
// counted from RAM's base). The CPU's stores reach RAM through a store-TLB entry or physStore, so
// those are the two places that mark: a store-TLB entry is made only after its page was marked,
// and harvesting empties the store TLB (dirtyLogHarvested), so the first store to a page after a
// harvest marks it again. The ring processor marks what it writes into the rings; device models
// in TypeScript mark their DMA through the host's view of the bitmap (main/vm/dirty-log.ts).
import { Phys, RAM_HOST_OFFSET } from './physical';
import { tlbFlushStore } from './mmu';

/** Pages of the largest guest RAM (2 GiB) / 8: one bit per 4 KiB page. */
const DIRTY_BYTES: usize = (2048 << 20) >> 15;
export const DIRTY_BITMAP: usize = memory.data(<i32>DIRTY_BYTES, 16);

export class Dirty {
  static on: bool = false;
}

/** Sets page `p`'s bit (p counted from RAM's base). */
@inline
function markPage(p: usize): void {
  const a = DIRTY_BITMAP + (p >> 3);
  store<u8>(a, load<u8>(a) | (<u8>1 << <u8>(p & 7)));
}

/** Marks the page of guest-physical `pa` (which must lie in RAM) when the log is on. */
@inline
export function dirtyMarkPa(pa: u64): void {
  if (Dirty.on) markPage(<usize>((pa - Phys.ramBase) >> 12));
}

/** Marks the pages of [h, h+len) given as host addresses in guest RAM, when the log is on. */
export function dirtyMarkHost(h: usize, len: usize): void {
  if (!Dirty.on || len == 0) return;
  const first = (h - RAM_HOST_OFFSET) >> 12;
  const last = (h + len - 1 - RAM_HOST_OFFSET) >> 12;
  for (let p = first; p <= last; p++) markPage(p);
}

/** Where the bitmap lives in the core's memory (the host reads and clears it there). */
export function dirtyLogBitmap(): usize {
  return DIRTY_BITMAP;
}

/**
 * Turns the log on or off. On: every page is marked (nothing has been sent yet) and the store
 * TLB emptied, so each page's next store goes through a marking path.
 */
export function dirtyLogEnable(on: bool): void {
  Dirty.on = on;
  const pages = <usize>(Phys.ramSize >> 12);
  memory.fill(DIRTY_BITMAP, on ? 0xff : 0, (pages + 7) >> 3);
  if (on) tlbFlushStore();
}

/** The host has read and cleared the bitmap: stores must mark their pages afresh. */
export function dirtyLogHarvested(): void {
  tlbFlushStore();
}
