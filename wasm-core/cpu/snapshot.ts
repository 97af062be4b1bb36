// The hart's whole architectural state as one flat array of u64 slots in linear memory, for
// saving a VM to a file and resuming it (main/vm/vm-state). The host reads the slots after
// hartSave() and writes them before hartRestore(); the layout below is the file's "core"
// section, so changing it means a new HART_STATE_VERSION.
//
// Time is saved as the guest's mtime, not as the host clock's offset: a restore sets the offset
// so that mtime continues from the saved value, whatever the host clock says then.
import { Hart, XREGS, FREGS, RESERVATION, PRV_U, PRV_S, PRV_M, MSTATUS_FS, MSTATUS_SD } from './state';
import { Csr, PMP, MISA, SATP_MODE_BARE, SATP_MODE_SV39, SATP_MODE_SV48 } from './csr';
import { Clint, readTime } from './clint';
import { requestAttention } from './signals';
import { tlbFlushAll, updateContext } from '../mmu/mmu';
import { jitFlush } from '../jit/jit';

export const HART_STATE_VERSION: u32 = 1;
export const HART_STATE_SLOTS: u32 = 128;
export const HART_STATE: usize = memory.data(<i32>HART_STATE_SLOTS * 8, 8);

// Slot numbers.
const S_VERSION: u32 = 0;
const S_USED: u32 = 1;
const S_PC: u32 = 2;
const S_PRIV: u32 = 3;
const S_MSTATUS: u32 = 4;
const S_FCSR: u32 = 5; // fflags | frm << 5
const S_X: u32 = 6; // 32 slots
const S_F: u32 = 38; // 32 slots
const S_CSR: u32 = 70; // 25 slots, in the order of csrSlots()
const S_PMP: u32 = 95; // 18 slots: pmpaddr0..15, pmpcfg0, pmpcfg2
const S_CLINT: u32 = 113; // msip, mtimecmp, mtime, instret, deterministic, shift
const USED: u32 = 119;

// Only the bits the core can hold in mstatus (csr.ts MSTATUS_WMASK, plus SD and UXL/SXL).
const MSTATUS_VALID: u64 =
  0x2 | 0x8 | 0x20 | 0x80 | 0x100 | (3 << 11) | MSTATUS_FS | (1 << 17) | (1 << 18) | (1 << 19) |
  (1 << 20) | (1 << 21) | (1 << 22) | MSTATUS_SD;
const INTS: u64 = (1 << 1) | (1 << 3) | (1 << 5) | (1 << 7) | (1 << 9) | (1 << 11);

@inline function put(slot: u32, v: u64): void {
  store<u64>(HART_STATE + (<usize>slot << 3), v);
}
@inline function get(slot: u32): u64 {
  return load<u64>(HART_STATE + (<usize>slot << 3));
}

/** Fills the slots from the hart. */
export function hartSave(): void {
  memory.fill(HART_STATE, 0, <usize>HART_STATE_SLOTS * 8);
  put(S_VERSION, HART_STATE_VERSION);
  put(S_USED, USED);
  put(S_PC, Hart.pc);
  put(S_PRIV, Hart.priv);
  put(S_MSTATUS, Hart.mstatus);
  put(S_FCSR, <u64>(Hart.fflags | (Hart.frm << 5)));
  memory.copy(HART_STATE + (<usize>S_X << 3), XREGS, 256);
  memory.copy(HART_STATE + (<usize>S_F << 3), FREGS, 256);
  let c = S_CSR;
  put(c++, Csr.misa);
  put(c++, Csr.medeleg);
  put(c++, Csr.mideleg);
  put(c++, Csr.mie);
  put(c++, Csr.mipSw);
  put(c++, Csr.mipExt);
  put(c++, Csr.mtvec);
  put(c++, Csr.mcounteren);
  put(c++, Csr.mcountinhibit);
  put(c++, Csr.menvcfg);
  put(c++, Csr.mscratch);
  put(c++, Csr.mepc);
  put(c++, Csr.mcause);
  put(c++, Csr.mtval);
  put(c++, Csr.stvec);
  put(c++, Csr.scounteren);
  put(c++, Csr.senvcfg);
  put(c++, Csr.sscratch);
  put(c++, Csr.sepc);
  put(c++, Csr.scause);
  put(c++, Csr.stval);
  put(c++, Csr.satp);
  put(c++, Csr.stimecmp);
  put(c++, Csr.cycleOffset);
  put(c++, Csr.instretOffset);
  memory.copy(HART_STATE + (<usize>S_PMP << 3), PMP, 8 * 18);
  put(S_CLINT, Clint.msip);
  put(S_CLINT + 1, Clint.mtimecmp);
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
  Hart.pc = get(S_PC);
  Hart.priv = <u32>priv;
  let ms = get(S_MSTATUS) & MSTATUS_VALID;
  if (((ms >> 11) & 3) == 2) ms &= ~(<u64>(3 << 11));
  Hart.mstatus = ms;
  const fcsr = <u32>get(S_FCSR);
  Hart.fflags = fcsr & 31;
  Hart.frm = (fcsr >> 5) & 7;
  memory.copy(XREGS, HART_STATE + (<usize>S_X << 3), 256);
  store<u64>(XREGS, 0);
  memory.copy(FREGS, HART_STATE + (<usize>S_F << 3), 256);
  let c = S_CSR + 1;
  Csr.medeleg = get(c++) & 0xb3ff;
  Csr.mideleg = get(c++) & ((1 << 1) | (1 << 5) | (1 << 9));
  Csr.mie = get(c++) & INTS;
  Csr.mipSw = get(c++) & ((1 << 1) | (1 << 5) | (1 << 9));
  Csr.mipExt = get(c++) & ((1 << 9) | (1 << 11));
  Csr.mtvec = get(c++);
  Csr.mcounteren = <u32>get(c++);
  Csr.mcountinhibit = <u32>get(c++);
  Csr.menvcfg = get(c++);
  Csr.mscratch = get(c++);
  Csr.mepc = get(c++);
  Csr.mcause = get(c++);
  Csr.mtval = get(c++);
  Csr.stvec = get(c++);
  Csr.scounteren = <u32>get(c++);
  Csr.senvcfg = get(c++);
  Csr.sscratch = get(c++);
  Csr.sepc = get(c++);
  Csr.scause = get(c++);
  Csr.stval = get(c++);
  Csr.satp = get(c++);
  Csr.stimecmp = get(c++);
  Csr.cycleOffset = get(c++);
  Csr.instretOffset = get(c++);
  memory.copy(PMP, HART_STATE + (<usize>S_PMP << 3), 8 * 18);
  Clint.msip = <u32>get(S_CLINT) & 1;
  Clint.mtimecmp = get(S_CLINT + 1);
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
