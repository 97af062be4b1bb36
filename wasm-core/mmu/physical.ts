// Physical address space as the core sees it: RAM and the boot ROM live in this module's linear
// memory; the CLINT is emulated in-core (it is on the timer hot path); everything else leaves
// Wasm through the imported MMIO hook to the TypeScript bus.
import { clintRead, clintWrite, CLINT_BASE, CLINT_SIZE } from '../cpu/clint';
import { requestAttention } from '../cpu/signals';
import { dirtyMarkPa } from './dirty';

// Imported from the host. Accesses are ≤ 4 bytes; 8-byte accesses are split here.
@external('env', 'mmioRead')
declare function hostMmioRead(addr: u32, size: u32): u32;
@external('env', 'mmioWrite')
declare function hostMmioWrite(addr: u32, size: u32, value: u32): void;

export const ROM_BASE: u64 = 0x1000;
export const ROM_SIZE: u64 = 0x1000;
/** Where guest RAM starts inside the Wasm memory (page aligned, so the host can madvise it). */
export const RAM_HOST_OFFSET: usize = 0x100_0000;
const ROM_HOST_OFFSET: usize = 0xff_0000;

export class Phys {
  static ramBase: u64 = 0x8000_0000;
  static ramSize: u64 = 0;
  /** Set by the host (via the core's busFault export) when an MMIO access hit nothing. */
  static busFault: bool = false;
  /** Physical address whose stores end the slice (riscv-tests `tohost`); 0 = none. */
  static tohost: u64 = 0;
  static tohostHit: bool = false;
  static mmioExits: u64 = 0;
}

export function romHostOffset(): usize {
  return ROM_HOST_OFFSET;
}

/** Returns the host address for [pa, pa+size) when it lies wholly in RAM or ROM, else 0. */
@inline
export function hostAddr(pa: u64, size: u64, writable: bool): usize {
  const r = pa - Phys.ramBase;
  if (r < Phys.ramSize && r + size <= Phys.ramSize) return RAM_HOST_OFFSET + <usize>r;
  if (!writable) {
    const o = pa - ROM_BASE;
    if (o < ROM_SIZE && o + size <= ROM_SIZE) return ROM_HOST_OFFSET + <usize>o;
  }
  return 0;
}

/** True when the page holding pa may be cached in a store TLB entry. */
@inline
export function pageIsPlainRam(pa: u64): bool {
  const r = pa - Phys.ramBase;
  if (r >= Phys.ramSize) return false;
  if (Phys.tohost != 0 && (pa >> 12) == (Phys.tohost >> 12)) return false;
  return true;
}

function mmioRead(pa: u64, size: u32): u64 {
  if (pa >= CLINT_BASE && pa < CLINT_BASE + CLINT_SIZE) return clintRead(<u32>(pa - CLINT_BASE), size);
  if (pa >> 32 != 0) {
    Phys.busFault = true;
    return 0;
  }
  Phys.mmioExits++;
  const a = <u32>pa;
  if (size == 8) {
    const lo = <u64>hostMmioRead(a, 4);
    const hi = <u64>hostMmioRead(a + 4, 4);
    return lo | (hi << 32);
  }
  return <u64>hostMmioRead(a, size);
}

function mmioWrite(pa: u64, size: u32, v: u64): void {
  if (pa >= CLINT_BASE && pa < CLINT_BASE + CLINT_SIZE) {
    clintWrite(<u32>(pa - CLINT_BASE), size, v);
    return;
  }
  if (pa >> 32 != 0) {
    Phys.busFault = true;
    return;
  }
  Phys.mmioExits++;
  const a = <u32>pa;
  if (size == 8) {
    hostMmioWrite(a, 4, <u32>v);
    hostMmioWrite(a + 4, 4, <u32>(v >> 32));
    return;
  }
  hostMmioWrite(a, size, <u32>v);
}

/** Physical load; on a bus error sets Phys.busFault and returns 0. Size 1, 2, 4 or 8. */
export function physLoad(pa: u64, size: u32): u64 {
  const h = hostAddr(pa, size, false);
  if (h != 0) {
    if (size == 8) return load<u64>(h);
    if (size == 4) return <u64>load<u32>(h);
    if (size == 2) return <u64>load<u16>(h);
    return <u64>load<u8>(h);
  }
  // An access straddling RAM's end or a device boundary is a bus error.
  return mmioRead(pa, size);
}

/** Physical store; on a bus error sets Phys.busFault. */
export function physStore(pa: u64, size: u32, v: u64): void {
  const h = hostAddr(pa, size, true);
  if (h != 0) {
    if (size == 8) store<u64>(h, v);
    else if (size == 4) store<u32>(h, <u32>v);
    else if (size == 2) store<u16>(h, <u16>v);
    else store<u8>(h, <u8>v);
    if (h >= RAM_HOST_OFFSET) dirtyMarkPa(pa);
    if (Phys.tohost != 0 && pa <= Phys.tohost + 7 && pa + size > Phys.tohost) {
      Phys.tohostHit = true;
      requestAttention();
    }
    return;
  }
  if (pa >= ROM_BASE && pa < ROM_BASE + ROM_SIZE) {
    Phys.busFault = true; // the boot ROM is read-only
    return;
  }
  mmioWrite(pa, size, v);
}
