// Virtual memory: Sv39/Sv48 page-table walks with hardware A/D updates, and three direct-mapped
// TLBs (fetch, load, store) that map a virtual page straight to a host address in this module's
// linear memory. Entries are tagged with a translation context (privilege, SUM, MXR) so that a
// privilege change needs no flush; satp writes and sfence.vma of every address flush everything,
// sfence.vma of one address only its page's entries (tlbFlushPage).
import { Hart, PRV_M, PRV_S, PRV_U } from '../cpu/state';
import { Csr } from '../cpu/csr';
import { requestAttention } from '../cpu/signals';
import { Phys, physLoad, physStore, hostAddr, pageIsPlainRam } from './physical';
import { dirtyMarkPa } from './dirty';

export const ACCESS_FETCH: u32 = 0;
export const ACCESS_LOAD: u32 = 1;
export const ACCESS_STORE: u32 = 2;

export const CAUSE_FETCH_ACCESS: u64 = 1;
export const CAUSE_LOAD_ACCESS: u64 = 5;
export const CAUSE_STORE_ACCESS: u64 = 7;
export const CAUSE_FETCH_PAGE: u64 = 12;
export const CAUSE_LOAD_PAGE: u64 = 13;
export const CAUSE_STORE_PAGE: u64 = 15;

export const TLB_BITS: u32 = 10;
const TLB_ENTRIES: usize = 1 << TLB_BITS;
export const TLB_MASK: u64 = TLB_ENTRIES - 1;
/**
 * Each entry: tag (u64) then addend (u64): host address = vaddr + addend. The tag is the page's
 * virtual address with the context in bits 3..7 (below the page offset), so that a data lookup
 * can fold its alignment check into the tag compare: a misaligned address keeps low bits the
 * tag never has (QEMU's softmmu does the same), and an aligned access never crosses a page.
 */
export const TLB_FETCH: usize = memory.data(<i32>(TLB_ENTRIES * 16), 16);
export const TLB_LOAD: usize = memory.data(<i32>(TLB_ENTRIES * 16), 16);
export const TLB_STORE: usize = memory.data(<i32>(TLB_ENTRIES * 16), 16);

/** A pending synchronous exception raised by a memory access. */
export class Fault {
  static pending: bool = false;
  static cause: u64 = 0;
  static tval: u64 = 0;
}

@inline
export function raiseFault(cause: u64, tval: u64): void {
  Fault.pending = true;
  Fault.cause = cause;
  Fault.tval = tval;
}

/** Context tags, recomputed whenever privilege, mstatus or satp change. */
export class Ctx {
  static fetch: u64 = 0;
  static data: u64 = 0;
  /** Effective privilege for data accesses (MPRV applied). */
  static dataPriv: u32 = PRV_M;
}

/** An empty range's low end (and an empty TLB slot's tag). */
const NO_RANGE_LO: u64 = 0xffff_ffff_ffff_ffff;
const CTX_PHYS: u64 = 0x10;
/** Where the context sits in a tag: above the alignment bits (0..2), below the page number. */
const CTX_SHIFT: u64 = 3;
const PAGE_MASK: u64 = ~(<u64>0xfff);

export function updateContext(): void {
  requestAttention(); // the interpreter caches the code page's mapping
  const bare = (Csr.satp >> 60) == 0;
  const p = Hart.priv;
  Ctx.fetch = (p == PRV_M || bare ? CTX_PHYS : <u64>p) << CTX_SHIFT;
  let dp = p;
  if ((Hart.mstatus & (1 << 17)) != 0) dp = <u32>((Hart.mstatus >> 11) & 3);
  Ctx.dataPriv = dp;
  let dc: u64 = CTX_PHYS;
  if (dp != PRV_M && !bare) {
    dc = <u64>dp | (((Hart.mstatus >> 18) & 1) << 2) | (((Hart.mstatus >> 19) & 1) << 3);
  }
  Ctx.data = dc << CTX_SHIFT;
}

export function tlbFlushAll(): void {
  requestAttention();
  memory.fill(TLB_FETCH, 0xff, TLB_ENTRIES * 16);
  memory.fill(TLB_LOAD, 0xff, TLB_ENTRIES * 16);
  memory.fill(TLB_STORE, 0xff, TLB_ENTRIES * 16);
  Superpages.userLo = NO_RANGE_LO;
  Superpages.userHi = 0;
  Superpages.kernelLo = NO_RANGE_LO;
  Superpages.kernelHi = 0;
}

/** Empties the store TLB only (the dirty-page log: every page's next store marks it again). */
export function tlbFlushStore(): void {
  requestAttention();
  memory.fill(TLB_STORE, 0xff, TLB_ENTRIES * 16);
}

/**
 * Where the TLBs hold pages of superpages (2 MiB and up), since the last full flush: one range
 * for each half of the address space (user addresses, kernel addresses), so that the kernel's
 * linear map does not cover user pages. An entry of a superpage sits in the slot of its own
 * 4 KiB page, not of the address an SFENCE.VMA names, so a fence of an address inside these
 * ranges flushes everything; elsewhere only that page's slots.
 */
class Superpages {
  static userLo: u64 = NO_RANGE_LO;
  static userHi: u64 = 0;
  static kernelLo: u64 = NO_RANGE_LO;
  static kernelHi: u64 = 0;
}
/** A TLB entry of va now comes from a superpage of 2^bits bytes. */
function noteSuperpage(va: u64, bits: u64): void {
  const lo = va & ~((<u64>1 << bits) - 1);
  const hi = lo + (<u64>1 << bits) - 1; // inclusive: a superpage may end at 2^64
  if ((va >> 63) != 0) {
    if (lo < Superpages.kernelLo) Superpages.kernelLo = lo;
    if (hi > Superpages.kernelHi) Superpages.kernelHi = hi;
  } else {
    if (lo < Superpages.userLo) Superpages.userLo = lo;
    if (hi > Superpages.userHi) Superpages.userHi = hi;
  }
}

/** Empties tlb's slot for the page at `page` if it holds that page (in any context). */
@inline
function flushSlot(tlb: usize, page: u64): void {
  const e = tlbEntry(tlb, page);
  if ((load<u64>(e) & PAGE_MASK) == page) store<u64>(e, NO_RANGE_LO);
}

/**
 * SFENCE.VMA of one address (rs1 != x0): the entries its leaf page table entry made. Linux
 * fences one page after each page table change it makes (a fault's new entry, each page of a
 * short munmap or mprotect): ~430,000 of them in the Debian system's boot, whose TLB refills
 * fell from ~53 to ~34 million when they stopped flushing everything.
 */
export function tlbFlushPage(va: u64): void {
  const inSuper =
    (va >> 63) != 0
      ? va >= Superpages.kernelLo && va <= Superpages.kernelHi
      : va >= Superpages.userLo && va <= Superpages.userHi;
  if (inSuper) {
    tlbFlushAll();
    return;
  }
  requestAttention(); // the interpreter caches the code page's mapping
  const page = va & PAGE_MASK;
  flushSlot(TLB_FETCH, page);
  flushSlot(TLB_LOAD, page);
  flushSlot(TLB_STORE, page);
}

/** Result of translate(): the physical address, and the size of the page it lies in. */
export class Xlate {
  static pa: u64 = 0;
  /** log2 of the leaf's page size: 12, or 21, 30, 39 for superpages (12 without paging). */
  static pageBits: u64 = 12;
}

const PTE_V: u64 = 1;
const PTE_R: u64 = 2;
const PTE_W: u64 = 4;
const PTE_X: u64 = 8;
const PTE_U: u64 = 16;
const PTE_A: u64 = 64;
const PTE_D: u64 = 128;
const PTE_PPN_MASK: u64 = ((<u64>1 << 44) - 1) << 10;
/** Bits 54..63: reserved (54..60), PBMT (61..62) and N (63) — none implemented, so must be 0. */
const PTE_HIGH_MASK: u64 = <u64>0x3ff << 54;

@inline
function pageFaultCause(access: u32): u64 {
  return access == ACCESS_FETCH ? CAUSE_FETCH_PAGE : access == ACCESS_LOAD ? CAUSE_LOAD_PAGE : CAUSE_STORE_PAGE;
}

@inline
export function accessFaultCause(access: u32): u64 {
  return access == ACCESS_FETCH ? CAUSE_FETCH_ACCESS : access == ACCESS_LOAD ? CAUSE_LOAD_ACCESS : CAUSE_STORE_ACCESS;
}

/**
 * Translates va for an access of the given kind. On success sets Xlate.pa and returns true; on
 * failure raises the page or access fault and returns false.
 */
export function translate(va: u64, access: u32): bool {
  const priv = access == ACCESS_FETCH ? Hart.priv : Ctx.dataPriv;
  const mode = Csr.satp >> 60;
  if (priv == PRV_M || mode == 0) {
    Xlate.pa = va;
    Xlate.pageBits = 12;
    return true;
  }
  const levels: u32 = mode == 8 ? 3 : 4;
  const vaBits: u32 = 12 + 9 * levels;
  // The address must be sign-extended from its top implemented bit.
  const top = <i64>va >> (vaBits - 1);
  if (top != 0 && top != -1) {
    raiseFault(pageFaultCause(access), va);
    return false;
  }
  let table = (Csr.satp & ((<u64>1 << 44) - 1)) << 12;
  let level = <i32>levels - 1;
  while (true) {
    const idx = (va >> (12 + 9 * <u64>level)) & 0x1ff;
    const pteAddr = table + idx * 8;
    Phys.busFault = false;
    const pte = physLoad(pteAddr, 8);
    if (Phys.busFault) {
      Phys.busFault = false;
      raiseFault(accessFaultCause(access), va);
      return false;
    }
    if ((pte & PTE_V) == 0 || ((pte & PTE_R) == 0 && (pte & PTE_W) != 0) || (pte & PTE_HIGH_MASK) != 0) {
      raiseFault(pageFaultCause(access), va);
      return false;
    }
    if ((pte & (PTE_R | PTE_X)) == 0) {
      // Pointer to the next level.
      if (level == 0) {
        raiseFault(pageFaultCause(access), va);
        return false;
      }
      table = ((pte & PTE_PPN_MASK) >> 10) << 12;
      level--;
      continue;
    }
    // Leaf: permissions.
    let ok = true;
    if (access == ACCESS_FETCH) ok = (pte & PTE_X) != 0;
    else if (access == ACCESS_LOAD) ok = (pte & PTE_R) != 0 || ((Hart.mstatus & (1 << 19)) != 0 && (pte & PTE_X) != 0);
    else ok = (pte & PTE_W) != 0;
    if (priv == PRV_U) {
      if ((pte & PTE_U) == 0) ok = false;
    } else if ((pte & PTE_U) != 0) {
      // S mode may touch user pages only for data, and only with SUM.
      if (access == ACCESS_FETCH || (Hart.mstatus & (1 << 18)) == 0) ok = false;
    }
    const ppn = (pte & PTE_PPN_MASK) >> 10;
    // A superpage's low PPN fields must be zero.
    if (level > 0 && (ppn & ((<u64>1 << (9 * <u64>level)) - 1)) != 0) ok = false;
    if (!ok) {
      raiseFault(pageFaultCause(access), va);
      return false;
    }
    let want = pte | PTE_A;
    if (access == ACCESS_STORE) want |= PTE_D;
    if (want != pte) {
      Phys.busFault = false;
      physStore(pteAddr, 8, want);
      if (Phys.busFault) {
        Phys.busFault = false;
        raiseFault(accessFaultCause(access), va);
        return false;
      }
    }
    const offMask = (<u64>1 << (12 + 9 * <u64>level)) - 1;
    Xlate.pa = ((ppn << 12) & ~offMask) | (va & offMask);
    Xlate.pageBits = 12 + 9 * <u64>level;
    return true;
  }
}

/**
 * Slow path of every TLB miss: translates, and when the page is plain memory caches the mapping.
 * Returns the host address for va, or 0 when the access must go through physLoad/physStore
 * (Xlate.pa is then set), or 0 with Fault.pending set when it faulted.
 */
export function tlbFill(va: u64, access: u32): usize {
  if (!translate(va, access)) return 0;
  const pa = Xlate.pa;
  const pagePa = pa & ~(<u64>0xfff);
  const h = hostAddr(pagePa, 4096, access == ACCESS_STORE);
  if (h == 0) return 0;
  if (access == ACCESS_STORE) {
    if (!pageIsPlainRam(pa)) return 0;
    // Stores through this entry will not be seen one by one: the page is written from now on.
    dirtyMarkPa(pa);
  }
  const tlb = access == ACCESS_FETCH ? TLB_FETCH : access == ACCESS_LOAD ? TLB_LOAD : TLB_STORE;
  const ctx = access == ACCESS_FETCH ? Ctx.fetch : Ctx.data;
  if (Xlate.pageBits > 12) noteSuperpage(va, Xlate.pageBits);
  const e = tlbEntry(tlb, va);
  store<u64>(e, (va & PAGE_MASK) | ctx);
  store<u64>(e, <u64>h - (va & PAGE_MASK), 8);
  return h + <usize>(va & 0xfff);
}

// ---- virtual loads and stores (fast path inline, slow path out of line) ----

/** The entry for va's page: index = virtual page number modulo the TLB size. */
@inline
function tlbEntry(tlb: usize, va: u64): usize {
  return tlb + (<usize>(va >> 8) & (<usize>TLB_MASK << 4));
}

/** Host address of va when its page is in `tlb` for context `ctx`, else 0. */
@inline
export function tlbLookup(tlb: usize, va: u64, ctx: u64): usize {
  const e = tlbEntry(tlb, va);
  if (load<u64>(e) == ((va & PAGE_MASK) | ctx)) return <usize>(va + load<u64>(e, 8));
  return 0;
}

/** As tlbLookup for a data access of `size` bytes, which must also be aligned to hit. */
@inline
export function tlbLookupData(tlb: usize, va: u64, size: u32): usize {
  const e = tlbEntry(tlb, va);
  if (load<u64>(e) == ((va & (PAGE_MASK | (<u64>size - 1))) | Ctx.data)) return <usize>(va + load<u64>(e, 8));
  return 0;
}

@inline
export function loadHost(h: usize, size: u32): u64 {
  if (size == 8) return load<u64>(h);
  if (size == 4) return <u64>load<u32>(h);
  if (size == 2) return <u64>load<u16>(h);
  return <u64>load<u8>(h);
}

@inline
export function storeHost(h: usize, size: u32, v: u64): void {
  if (size == 8) store<u64>(h, v);
  else if (size == 4) store<u32>(h, <u32>v);
  else if (size == 2) store<u16>(h, <u16>v);
  else store<u8>(h, <u8>v);
}

/** Load of 1/2/4/8 bytes (zero-extended). On a fault sets Fault.pending and returns 0. */
@inline
export function vload(va: u64, size: u32): u64 {
  const h = tlbLookupData(TLB_LOAD, va, size);
  if (h != 0) return loadHost(h, size);
  return vloadSlow(va, size);
}

/** Misses, misaligned accesses, MMIO. */
export function vloadSlow(va: u64, size: u32): u64 {
  const inPage = (va & 0xfff) <= <u64>(4096 - size);
  // Misaligned within one page: the TLB still maps it.
  const hit = inPage ? tlbLookup(TLB_LOAD, va, Ctx.data) : 0;
  if (hit != 0) return loadHost(hit, size);
  if (!inPage) {
    // Misaligned across a page boundary: byte by byte (each byte may fault).
    let v: u64 = 0;
    for (let i: u32 = 0; i < size; i++) {
      const b = vloadSlow(va + i, 1);
      if (Fault.pending) return 0;
      v |= b << (8 * <u64>i);
    }
    return v;
  }
  const h = tlbFill(va, ACCESS_LOAD);
  if (h != 0) return loadHost(h, size);
  if (Fault.pending) return 0;
  const pa = Xlate.pa;
  // MMIO: misaligned device accesses are split into bytes.
  if ((pa & (<u64>size - 1)) != 0 && hostAddr(pa, size, false) == 0) {
    let v: u64 = 0;
    for (let i: u32 = 0; i < size; i++) {
      Phys.busFault = false;
      v |= physLoad(pa + i, 1) << (8 * <u64>i);
      if (Phys.busFault) break;
    }
    if (Phys.busFault) {
      Phys.busFault = false;
      raiseFault(CAUSE_LOAD_ACCESS, va);
      return 0;
    }
    return v;
  }
  Phys.busFault = false;
  const v = physLoad(pa, size);
  if (Phys.busFault) {
    Phys.busFault = false;
    raiseFault(CAUSE_LOAD_ACCESS, va);
    return 0;
  }
  return v;
}

@inline
export function vstore(va: u64, size: u32, v: u64): void {
  const h = tlbLookupData(TLB_STORE, va, size);
  if (h != 0) {
    storeHost(h, size, v);
    return;
  }
  vstoreSlow(va, size, v);
}

/** Misses, misaligned accesses, MMIO. */
export function vstoreSlow(va: u64, size: u32, v: u64): void {
  const inPage = (va & 0xfff) <= <u64>(4096 - size);
  // Misaligned within one page: the TLB still maps it.
  const hit = inPage ? tlbLookup(TLB_STORE, va, Ctx.data) : 0;
  if (hit != 0) {
    storeHost(hit, size, v);
    return;
  }
  if (!inPage) {
    // Check every byte's translation first so a fault leaves memory untouched.
    for (let i: u32 = 0; i < size; i++) {
      if (!translate(va + i, ACCESS_STORE)) return;
    }
    for (let i: u32 = 0; i < size; i++) {
      vstoreSlow(va + i, 1, v >> (8 * <u64>i));
      if (Fault.pending) return;
    }
    return;
  }
  const h = tlbFill(va, ACCESS_STORE);
  if (h != 0) {
    storeHost(h, size, v);
    return;
  }
  if (Fault.pending) return;
  const pa = Xlate.pa;
  Phys.busFault = false;
  if ((pa & (<u64>size - 1)) != 0 && hostAddr(pa, size, true) == 0) {
    for (let i: u32 = 0; i < size && !Phys.busFault; i++) physStore(pa + i, 1, v >> (8 * <u64>i));
  } else {
    physStore(pa, size, v);
  }
  if (Phys.busFault) {
    Phys.busFault = false;
    raiseFault(CAUSE_STORE_ACCESS, va);
  }
}

/** Translates for an AMO/LR/SC (a store-class access) and returns the physical address. */
export function translateAmo(va: u64): u64 {
  if (!translate(va, ACCESS_STORE)) return 0;
  return Xlate.pa;
}

export { PRV_U, PRV_S, PRV_M };
