// The hart's whole architectural state as one flat array of u64 slots in linear memory, for
// saving a VM to a file and resuming it (main/vm/vm-state). The host reads the slots after
// hartSave() and writes them before hartRestore(); the layout below is the file's "core"
// section, so changing it means a new HART_STATE_VERSION.
//
// Time is saved as the guest's mtime, not as the host clock's offset: a restore sets the offset
// so that mtime continues from the saved value, whatever the host clock says then.
import { Hart, Harts, XREGS, FREGS, RESERVATION, PRV_U, PRV_S, PRV_M, MSTATUS_FS, MSTATUS_SD } from './state';
import { Csr, PMP, MISA, SATP_MODE_BARE, SATP_MODE_SV39, SATP_MODE_SV48 } from './csr';
import { Clint, readTime, msipOf, setMsip, mtimecmpOf, setMtimecmp, mipExtOf, setMipExt } from './clint';
import { requestAttention } from './signals';
import { tlbFlushAll, updateContext } from '../mmu/mmu';
import { jitFlush } from '../jit/jit';

export const HART_STATE_VERSION: u32 = 1;
export const HART_STATE_SLOTS: u32 = 128;
export const HART_STATE: usize = memory.data(<i32>HART_STATE_SLOTS * 8, 8);

// Slot numbers.
const S_VERSION: u32 = 0;
const S_USED: u32 = 1;
export const S_PC: u32 = 2;
export const S_PRIV: u32 = 3;
const S_MSTATUS: u32 = 4;
const S_FCSR: u32 = 5; // fflags | frm << 5
const S_X: u32 = 6; // 32 slots
const S_F: u32 = 38; // 32 slots
const S_CSR: u32 = 70; // 25 slots, in the order of hartStore()
/** Slots cpu/smp.ts reads from a waiting hart's area to see whether it would wake. */
export const S_MIE: u32 = 73;
export const S_MIPSW: u32 = 74;
export const S_MENVCFG: u32 = 79;
export const S_SATP: u32 = 91;
export const S_STIMECMP: u32 = 92;
export const S_PMP: u32 = 95; // 18 slots: pmpaddr0..15, pmpcfg0, pmpcfg2
const S_CLINT: u32 = 113; // msip, mtimecmp, mtime, instret, deterministic, shift
const USED: u32 = 119;

// Only the bits the core can hold in mstatus (csr.ts MSTATUS_WMASK, plus SD and UXL/SXL).
const MSTATUS_VALID: u64 =
  0x2 | 0x8 | 0x20 | 0x80 | 0x100 | (3 << 11) | MSTATUS_FS | (1 << 17) | (1 << 18) | (1 << 19) |
  (1 << 20) | (1 << 21) | (1 << 22) | MSTATUS_SD;
const INTS: u64 = (1 << 1) | (1 << 3) | (1 << 5) | (1 << 7) | (1 << 9) | (1 << 11);

@inline function putAt(base: usize, slot: u32, v: u64): void {
  store<u64>(base + (<usize>slot << 3), v);
}
@inline function getAt(base: usize, slot: u32): u64 {
  return load<u64>(base + (<usize>slot << 3));
}
@inline function put(slot: u32, v: u64): void {
  putAt(HART_STATE, slot, v);
}
@inline function get(slot: u32): u64 {
  return getAt(HART_STATE, slot);
}

/**
 * Writes the running hart's own state (pc, privilege, registers, CSRs, PMP) into the slots at
 * `base`: the file's layout, also used for a hart's save area while another runs (cpu/smp.ts).
 * The CLINT, the external lines and the clock are not the hart's alone; hartSave adds them.
 */
export function hartStore(base: usize): void {
  putAt(base, S_VERSION, HART_STATE_VERSION);
  putAt(base, S_USED, USED);
  putAt(base, S_PC, Hart.pc);
  putAt(base, S_PRIV, Hart.priv);
  putAt(base, S_MSTATUS, Hart.mstatus);
  putAt(base, S_FCSR, <u64>(Hart.fflags | (Hart.frm << 5)));
  memory.copy(base + (<usize>S_X << 3), XREGS, 256);
  memory.copy(base + (<usize>S_F << 3), FREGS, 256);
  let c = S_CSR;
  putAt(base, c++, Csr.misa);
  putAt(base, c++, Csr.medeleg);
  putAt(base, c++, Csr.mideleg);
  putAt(base, c++, Csr.mie);
  putAt(base, c++, Csr.mipSw);
  putAt(base, c++, mipExtOf(Harts.current));
  putAt(base, c++, Csr.mtvec);
  putAt(base, c++, Csr.mcounteren);
  putAt(base, c++, Csr.mcountinhibit);
  putAt(base, c++, Csr.menvcfg);
  putAt(base, c++, Csr.mscratch);
  putAt(base, c++, Csr.mepc);
  putAt(base, c++, Csr.mcause);
  putAt(base, c++, Csr.mtval);
  putAt(base, c++, Csr.stvec);
  putAt(base, c++, Csr.scounteren);
  putAt(base, c++, Csr.senvcfg);
  putAt(base, c++, Csr.sscratch);
  putAt(base, c++, Csr.sepc);
  putAt(base, c++, Csr.scause);
  putAt(base, c++, Csr.stval);
  putAt(base, c++, Csr.satp);
  putAt(base, c++, Csr.stimecmp);
  putAt(base, c++, Csr.cycleOffset);
  putAt(base, c++, Csr.instretOffset);
  memory.copy(base + (<usize>S_PMP << 3), PMP, 8 * 18);
}

/**
 * Makes the slots at `base` the running hart's own state (the inverse of hartStore), masking
 * what a guest could not have set as the CSR writes would. The external-lines slot is not read:
 * the lines live in clint.ts and may have changed while the hart waited. Checks nothing:
 * hartRestore validates a file's slots first.
 */
export function hartLoad(base: usize): void {
  Hart.pc = getAt(base, S_PC);
  Hart.priv = <u32>getAt(base, S_PRIV);
  let ms = getAt(base, S_MSTATUS) & MSTATUS_VALID;
  if (((ms >> 11) & 3) == 2) ms &= ~(<u64>(3 << 11));
  Hart.mstatus = ms;
  const fcsr = <u32>getAt(base, S_FCSR);
  Hart.fflags = fcsr & 31;
  Hart.frm = (fcsr >> 5) & 7;
  memory.copy(XREGS, base + (<usize>S_X << 3), 256);
  store<u64>(XREGS, 0);
  memory.copy(FREGS, base + (<usize>S_F << 3), 256);
  let c = S_CSR + 1;
  Csr.medeleg = getAt(base, c++) & 0xb3ff;
  Csr.mideleg = getAt(base, c++) & ((1 << 1) | (1 << 5) | (1 << 9));
  Csr.mie = getAt(base, c++) & INTS;
  Csr.mipSw = getAt(base, c++) & ((1 << 1) | (1 << 5) | (1 << 9));
  c++; // the external lines: see above
  Csr.mtvec = getAt(base, c++);
  Csr.mcounteren = <u32>getAt(base, c++);
  Csr.mcountinhibit = <u32>getAt(base, c++);
  Csr.menvcfg = getAt(base, c++);
  Csr.mscratch = getAt(base, c++);
  Csr.mepc = getAt(base, c++);
  Csr.mcause = getAt(base, c++);
  Csr.mtval = getAt(base, c++);
  Csr.stvec = getAt(base, c++);
  Csr.scounteren = <u32>getAt(base, c++);
  Csr.senvcfg = getAt(base, c++);
  Csr.sscratch = getAt(base, c++);
  Csr.sepc = getAt(base, c++);
  Csr.scause = getAt(base, c++);
  Csr.stval = getAt(base, c++);
  Csr.satp = getAt(base, c++);
  Csr.stimecmp = getAt(base, c++);
  Csr.cycleOffset = getAt(base, c++);
  Csr.instretOffset = getAt(base, c++);
  memory.copy(PMP, base + (<usize>S_PMP << 3), 8 * 18);
}

/** Fills the slots from the running hart, with its CLINT registers and the guest's clock. */
export function hartSave(): void {
  memory.fill(HART_STATE, 0, <usize>HART_STATE_SLOTS * 8);
  hartStore(HART_STATE);
  const h = Harts.current;
  put(S_CLINT, msipOf(h));
  put(S_CLINT + 1, mtimecmpOf(h));
  put(S_CLINT + 2, readTime());
  put(S_CLINT + 3, Clint.instret);
  put(S_CLINT + 4, Clint.deterministic ? 1 : 0);
  put(S_CLINT + 5, Clint.shift);
}

/**
 * Loads the hart from the slots. Returns 0, or why the slots cannot be a hart this core saved:
 * 1 version, 2 privilege, 3 satp mode, 4 misa, 5 layout size. Nothing changes unless 0.
 * Values a guest could not have set are masked as the CSR writes would mask them, and the LR/SC
 * reservation, TLBs and translations are dropped (as after a trap to another context).
 */
export function hartRestore(): u32 {
  if (<u32>get(S_VERSION) != HART_STATE_VERSION) return 1;
  if (<u32>get(S_USED) != USED) return 5;
  const priv = get(S_PRIV);
  if (priv != PRV_U && priv != PRV_S && priv != PRV_M) return 2;
  const mode = get(S_CSR + 21) >> 60;
  if (mode != SATP_MODE_BARE && mode != SATP_MODE_SV39 && mode != SATP_MODE_SV48) return 3;
  if (get(S_CSR) != MISA) return 4;
  hartLoad(HART_STATE);
  const h = Harts.current;
  setMipExt(h, get(S_CSR + 5) & ((1 << 9) | (1 << 11)));
  setMsip(h, <u32>get(S_CLINT));
  setMtimecmp(h, get(S_CLINT + 1));
  Clint.instret = get(S_CLINT + 3);
  Clint.deterministic = get(S_CLINT + 4) != 0;
  Clint.shift = <u32>get(S_CLINT + 5) & 63;
  // mtime continues from the saved value: the offset absorbs whatever the clock reads now.
  Clint.timeOffset = 0;
  Clint.timeOffset = get(S_CLINT + 2) - readTime();
  store<u32>(RESERVATION, 0, 8); // no LR/SC reservation survives a restore
  updateContext();
  tlbFlushAll();
  jitFlush();
  requestAttention();
  return 0;
}
