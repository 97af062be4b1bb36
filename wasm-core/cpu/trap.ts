// Trap entry and return: exceptions and interrupts, delegation to S mode, xRET.
import { Hart, PRV_M, PRV_S, PRV_U } from './state';
import {
  Csr,
  currentMip,
  MSTATUS_SIE,
  MSTATUS_MIE,
  MSTATUS_SPIE,
  MSTATUS_MPIE,
  MSTATUS_SPP,
  MSTATUS_MPP,
  MSTATUS_MPRV,
} from './csr';
import { requestAttention } from './signals';
import { updateContext } from '../mmu/mmu';

export const CAUSE_MISALIGNED_FETCH: u64 = 0;
export const CAUSE_ILLEGAL_INSN: u64 = 2;
export const CAUSE_BREAKPOINT: u64 = 3;
export const CAUSE_MISALIGNED_LOAD: u64 = 4;
export const CAUSE_MISALIGNED_STORE: u64 = 6;
export const CAUSE_ECALL_U: u64 = 8;
export const CAUSE_ECALL_S: u64 = 9;
export const CAUSE_ECALL_M: u64 = 11;

export class TrapCounters {
  static taken: u64 = 0;
}

const INTERRUPT_BIT: u64 = <u64>1 << 63;

/** Enters the trap handler; returns the new pc. `cause` excludes the interrupt bit. */
export function takeTrap(pc: u64, cause: u64, tval: u64, interrupt: bool): u64 {
  TrapCounters.taken++;
  const deleg = interrupt ? Csr.mideleg : Csr.medeleg;
  const prev = Hart.priv;
  let target: u64;
  if (prev <= PRV_S && ((deleg >> cause) & 1) != 0) {
    Csr.scause = interrupt ? cause | INTERRUPT_BIT : cause;
    Csr.sepc = pc;
    Csr.stval = tval;
    let s = Hart.mstatus;
    s = (s & ~MSTATUS_SPIE) | ((s & MSTATUS_SIE) << 4);
    s = (s & ~MSTATUS_SPP) | (<u64>prev << 8);
    s &= ~MSTATUS_SIE;
    Hart.mstatus = s;
    Hart.priv = PRV_S;
    target = Csr.stvec;
  } else {
    Csr.mcause = interrupt ? cause | INTERRUPT_BIT : cause;
    Csr.mepc = pc;
    Csr.mtval = tval;
    let s = Hart.mstatus;
    s = (s & ~MSTATUS_MPIE) | ((s & MSTATUS_MIE) << 4);
    s = (s & ~MSTATUS_MPP) | (<u64>prev << 11);
    s &= ~MSTATUS_MIE;
    Hart.mstatus = s;
    Hart.priv = PRV_M;
    target = Csr.mtvec;
  }
  updateContext();
  requestAttention();
  const base = target & ~(<u64>3);
  if (interrupt && (target & 3) == 1) return base + 4 * cause;
  return base;
}

export function mret(): u64 {
  let s = Hart.mstatus;
  const mpp = <u32>((s >> 11) & 3);
  s = (s & ~MSTATUS_MIE) | ((s & MSTATUS_MPIE) >> 4);
  s |= MSTATUS_MPIE;
  s &= ~MSTATUS_MPP;
  if (mpp != PRV_M) s &= ~MSTATUS_MPRV;
  Hart.mstatus = s;
  Hart.priv = mpp;
  updateContext();
  requestAttention();
  return Csr.mepc;
}

export function sret(): u64 {
  let s = Hart.mstatus;
  const spp = <u32>((s >> 8) & 1);
  s = (s & ~MSTATUS_SIE) | ((s & MSTATUS_SPIE) >> 4);
  s |= MSTATUS_SPIE;
  s &= ~MSTATUS_SPP;
  s &= ~MSTATUS_MPRV;
  Hart.mstatus = s;
  Hart.priv = spp;
  updateContext();
  requestAttention();
  return Csr.sepc;
}

// Interrupt priority, highest first: MEI, MSI, MTI, SEI, SSI, STI.
@inline
function highest(bits: u64): i32 {
  if (bits & (1 << 11)) return 11;
  if (bits & (1 << 3)) return 3;
  if (bits & (1 << 7)) return 7;
  if (bits & (1 << 9)) return 9;
  if (bits & (1 << 1)) return 1;
  if (bits & (1 << 5)) return 5;
  return -1;
}

/** The interrupt the hart should take now, or -1. */
export function pendingInterrupt(): i32 {
  const ip = currentMip() & Csr.mie;
  if (ip == 0) return -1;
  const p = Hart.priv;
  const m = ip & ~Csr.mideleg;
  if (m != 0 && (p < PRV_M || (Hart.mstatus & MSTATUS_MIE) != 0)) return highest(m);
  const s = ip & Csr.mideleg;
  if (s != 0 && (p < PRV_S || (p == PRV_S && (Hart.mstatus & MSTATUS_SIE) != 0))) return highest(s);
  return -1;
}

/** True when any enabled-in-mie interrupt is pending, regardless of global enables (for WFI). */
export function wfiShouldWake(): bool {
  return (currentMip() & Csr.mie) != 0;
}

export { PRV_U };
