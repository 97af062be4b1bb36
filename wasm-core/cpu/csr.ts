// Control and status registers (Zicsr, Zicntr, Sstc, machine and supervisor levels).
// Reads and writes go through csrRead/csrWrite, which apply WARL masks and the privilege rules;
// an access that is not allowed returns false and the caller raises illegal-instruction.
import { Hart, Harts, PRV_M, PRV_S, PRV_U, MSTATUS_FS, MSTATUS_SD, raiseFflags } from './state';
import {
  Clint,
  readTime,
  msipOf,
  mtimecmpOf,
  mipExtOf,
  MIP_SSIP,
  MIP_MSIP,
  MIP_STIP,
  MIP_MTIP,
  MIP_SEIP,
  MIP_MEIP,
} from './clint';
import { requestAttention } from './signals';
import { tlbFlushAll, updateContext } from '../mmu/mmu';

export const MSTATUS_SIE: u64 = 1 << 1;
export const MSTATUS_MIE: u64 = 1 << 3;
export const MSTATUS_SPIE: u64 = 1 << 5;
export const MSTATUS_MPIE: u64 = 1 << 7;
export const MSTATUS_SPP: u64 = 1 << 8;
export const MSTATUS_MPP: u64 = 3 << 11;
export const MSTATUS_MPRV: u64 = 1 << 17;
export const MSTATUS_SUM: u64 = 1 << 18;
export const MSTATUS_MXR: u64 = 1 << 19;
export const MSTATUS_TVM: u64 = 1 << 20;
export const MSTATUS_TW: u64 = 1 << 21;
export const MSTATUS_TSR: u64 = 1 << 22;
const MSTATUS_UXL_SXL: u64 = (2 << 32) | (2 << 34);

const MSTATUS_WMASK: u64 =
  MSTATUS_SIE | MSTATUS_MIE | MSTATUS_SPIE | MSTATUS_MPIE | MSTATUS_SPP | MSTATUS_MPP |
  MSTATUS_FS | MSTATUS_MPRV | MSTATUS_SUM | MSTATUS_MXR | MSTATUS_TVM | MSTATUS_TW | MSTATUS_TSR;
const SSTATUS_MASK: u64 =
  MSTATUS_SIE | MSTATUS_SPIE | MSTATUS_SPP | MSTATUS_FS | MSTATUS_SUM | MSTATUS_MXR |
  (3 << 32) | MSTATUS_SD;
const SSTATUS_WMASK: u64 = MSTATUS_SIE | MSTATUS_SPIE | MSTATUS_SPP | MSTATUS_FS | MSTATUS_SUM | MSTATUS_MXR;

const S_INTS: u64 = MIP_SSIP | MIP_STIP | MIP_SEIP;
const ALL_INTS: u64 = S_INTS | MIP_MSIP | MIP_MTIP | MIP_MEIP;
/** Exceptions M may delegate: all standard ones except ecall-from-M (11). */
const MEDELEG_MASK: u64 = 0xb3ff;

// misa: RV64 with A C D F I M S U
export const MISA: u64 =
  (2 << 62) | (1 << 0) | (1 << 2) | (1 << 3) | (1 << 5) | (1 << 8) | (1 << 12) | (1 << 18) | (1 << 20);

export const MENVCFG_STCE: u64 = 1 << 63;
export const SATP_MODE_BARE: u64 = 0;
export const SATP_MODE_SV39: u64 = 8;
export const SATP_MODE_SV48: u64 = 9;

const PMP_ENTRIES: u32 = 16;
/** pmpaddr0..15 then pmpcfg0, pmpcfg2 */
export const PMP: usize = memory.data(8 * 18, 8);

export class Csr {
  static misa: u64 = MISA;
  static medeleg: u64 = 0;
  static mideleg: u64 = 0;
  static mie: u64 = 0;
  /** Software-writable pending bits (SSIP, STIP without Sstc, SEIP). */
  static mipSw: u64 = 0;
  static mtvec: u64 = 0;
  static mcounteren: u32 = 0;
  static mcountinhibit: u32 = 0;
  static menvcfg: u64 = 0;
  static mscratch: u64 = 0;
  static mepc: u64 = 0;
  static mcause: u64 = 0;
  static mtval: u64 = 0;
  static stvec: u64 = 0;
  static scounteren: u32 = 0;
  static senvcfg: u64 = 0;
  static sscratch: u64 = 0;
  static sepc: u64 = 0;
  static scause: u64 = 0;
  static stval: u64 = 0;
  static satp: u64 = 0;
  static stimecmp: u64 = 0xffff_ffff_ffff_ffff;
  /** Counter offsets so that writes to mcycle/minstret stick. */
  static cycleOffset: u64 = 0;
  static instretOffset: u64 = 0;
}

/**
 * A hart's mip from its parts: software bits, device lines, msip, and the timers compared with
 * `now` (stimecmp only with Sstc on). cpu/smp.ts asks it for harts that are not running.
 */
@inline
export function mipOf(sw: u64, ext: u64, msip: u32, mtimecmp: u64, menvcfg: u64, stimecmp: u64, now: u64): u64 {
  let ip = sw | ext;
  if (msip != 0) ip |= MIP_MSIP;
  if (now >= mtimecmp) ip |= MIP_MTIP;
  if (menvcfg & MENVCFG_STCE) {
    ip &= ~MIP_STIP;
    if (now >= stimecmp) ip |= MIP_STIP;
  }
  return ip;
}

/** The running hart's mip: software bits, device lines, and the timers compared against now. */
export function currentMip(): u64 {
  const h = Harts.current;
  return mipOf(Csr.mipSw, mipExtOf(h), msipOf(h), mtimecmpOf(h), Csr.menvcfg, Csr.stimecmp, readTime());
}

function readMstatus(): u64 {
  let s = (Hart.mstatus & ~MSTATUS_SD) | MSTATUS_UXL_SXL;
  if ((s & MSTATUS_FS) == MSTATUS_FS) s |= MSTATUS_SD;
  return s;
}

function writeMstatus(v: u64): void {
  let m = (Hart.mstatus & ~MSTATUS_WMASK) | (v & MSTATUS_WMASK);
  // MPP is WARL over {U, S, M}: the reserved value 2 reads back as U.
  if (((m >> 11) & 3) == 2) m &= ~MSTATUS_MPP;
  if ((m & MSTATUS_FS) == MSTATUS_FS) m |= MSTATUS_SD;
  else m &= ~MSTATUS_SD;
  Hart.mstatus = m;
  updateContext();
  requestAttention();
}

@inline
function instretNow(): u64 {
  return Clint.instret;
}

/** Counter access from S/U mode is gated by mcounteren/scounteren bit `bit`. */
function counterAllowed(bit: u32): bool {
  if (Hart.priv == PRV_M) return true;
  if (((Csr.mcounteren >> bit) & 1) == 0) return false;
  if (Hart.priv == PRV_U && ((Csr.scounteren >> bit) & 1) == 0) return false;
  return true;
}

/** Result of the last successful csrRead. */
export class CsrResult {
  static value: u64 = 0;
  /**
   * What a CSRRS/CSRRC modifies: the value, except that mip.SEIP is only its software-writable
   * bit there, not the PLIC's line ORed in (the privileged spec's rule for SEIP). Otherwise M-mode
   * setting SSIP (OpenSBI delivering an IPI) while the line is high would latch SEIP for good.
   */
  static rmw: u64 = 0;
}

/**
 * Reads CSR `csr` into CsrResult.value. Returns false when the CSR does not exist or the
 * current privilege may not access it (the caller raises illegal instruction).
 */
export function csrRead(csr: u32): bool {
  if (((csr >> 8) & 3) > Hart.priv) return false;
  let v: u64 = 0;
  switch (csr) {
    case 0x001:
    case 0x002:
    case 0x003:
      if ((Hart.mstatus & MSTATUS_FS) == 0) return false;
      v = csr == 0x001 ? <u64>Hart.fflags : csr == 0x002 ? <u64>Hart.frm : <u64>((Hart.frm << 5) | Hart.fflags);
      break;
    case 0xc00: // cycle
      if (!counterAllowed(0)) return false;
      v = instretNow() + Csr.cycleOffset;
      break;
    case 0xc01: // time
      if (!counterAllowed(1)) return false;
      v = readTime();
      break;
    case 0xc02: // instret
      if (!counterAllowed(2)) return false;
      v = instretNow() + Csr.instretOffset;
      break;
    case 0xb00:
      v = instretNow() + Csr.cycleOffset;
      break;
    case 0xb02:
      v = instretNow() + Csr.instretOffset;
      break;
    case 0x100:
      v = readMstatus() & SSTATUS_MASK;
      break;
    case 0x104:
      v = Csr.mie & Csr.mideleg;
      break;
    case 0x105:
      v = Csr.stvec;
      break;
    case 0x106:
      v = <u64>Csr.scounteren;
      break;
    case 0x10a:
      v = Csr.senvcfg;
      break;
    case 0x140:
      v = Csr.sscratch;
      break;
    case 0x141:
      v = Csr.sepc;
      break;
    case 0x142:
      v = Csr.scause;
      break;
    case 0x143:
      v = Csr.stval;
      break;
    case 0x144:
      v = currentMip() & Csr.mideleg;
      break;
    case 0x14d: // stimecmp (Sstc)
      if (Hart.priv < PRV_M && ((Csr.menvcfg & MENVCFG_STCE) == 0 || (Csr.mcounteren & 2) == 0)) return false;
      v = Csr.stimecmp;
      break;
    case 0x180:
      if (Hart.priv == PRV_S && (Hart.mstatus & MSTATUS_TVM) != 0) return false;
      v = Csr.satp;
      break;
    case 0xf14: // mhartid
      v = <u64>Harts.current;
      break;
    case 0xf11: // mvendorid
    case 0xf12: // marchid
    case 0xf13: // mimpid
    case 0xf15: // mconfigptr
      v = 0;
      break;
    case 0x300:
      v = readMstatus();
      break;
    case 0x301:
      v = Csr.misa;
      break;
    case 0x302:
      v = Csr.medeleg;
      break;
    case 0x303:
      v = Csr.mideleg;
      break;
    case 0x304:
      v = Csr.mie;
      break;
    case 0x305:
      v = Csr.mtvec;
      break;
    case 0x306:
      v = <u64>Csr.mcounteren;
      break;
    case 0x30a:
      v = Csr.menvcfg;
      break;
    case 0x320:
      v = <u64>Csr.mcountinhibit;
      break;
    case 0x340:
      v = Csr.mscratch;
      break;
    case 0x341:
      v = Csr.mepc;
      break;
    case 0x342:
      v = Csr.mcause;
      break;
    case 0x343:
      v = Csr.mtval;
      break;
    case 0x344:
      v = currentMip();
      break;
    default:
      if (csr >= 0x3a0 && csr <= 0x3af) {
        // pmpcfg: RV64 has only the even ones; entries beyond 16 are hardwired to zero.
        if (csr & 1) return false;
        v = csr <= 0x3a2 ? load<u64>(PMP + 8 * (16 + ((csr - 0x3a0) >> 1))) : 0;
        break;
      }
      if (csr >= 0x3b0 && csr <= 0x3ef) {
        const i = csr - 0x3b0;
        v = i < PMP_ENTRIES ? load<u64>(PMP + 8 * i) : 0;
        break;
      }
      // hpmcounters and their events exist and read zero.
      if ((csr >= 0xb03 && csr <= 0xb1f) || (csr >= 0x323 && csr <= 0x33f)) {
        v = 0;
        break;
      }
      if (csr >= 0xc03 && csr <= 0xc1f) {
        if (!counterAllowed(csr - 0xc00)) return false;
        v = 0;
        break;
      }
      return false;
  }
  CsrResult.value = v;
  CsrResult.rmw = csr == 0x344 ? (v & ~MIP_SEIP) | (Csr.mipSw & MIP_SEIP) : v;
  return true;
}

/** Writes CSR `csr`. Returns false when the write is not allowed (read-only or absent). */
export function csrWrite(csr: u32, v: u64): bool {
  if (((csr >> 8) & 3) > Hart.priv) return false;
  if ((csr >> 10) == 3) return false; // read-only range
  switch (csr) {
    case 0x001:
    case 0x002:
    case 0x003:
      if ((Hart.mstatus & MSTATUS_FS) == 0) return false;
      if (csr == 0x001) Hart.fflags = <u32>v & 0x1f;
      else if (csr == 0x002) Hart.frm = <u32>v & 7;
      else {
        Hart.fflags = <u32>v & 0x1f;
        Hart.frm = (<u32>v >> 5) & 7;
      }
      Hart.mstatus |= MSTATUS_FS | MSTATUS_SD;
      raiseFflags(0);
      break;
    case 0xb00:
      Csr.cycleOffset = v - instretNow();
      break;
    case 0xb02:
      Csr.instretOffset = v - instretNow();
      break;
    case 0x100:
      writeMstatus((Hart.mstatus & ~SSTATUS_WMASK) | (v & SSTATUS_WMASK));
      break;
    case 0x104:
      Csr.mie = (Csr.mie & ~Csr.mideleg) | (v & Csr.mideleg);
      requestAttention();
      break;
    case 0x105:
      Csr.stvec = legalTvec(v, Csr.stvec);
      break;
    case 0x106:
      Csr.scounteren = <u32>v;
      break;
    case 0x10a:
      Csr.senvcfg = 0; // no S-level envcfg features (FIOM etc.) implemented
      break;
    case 0x140:
      Csr.sscratch = v;
      break;
    case 0x141:
      Csr.sepc = v & ~(<u64>1);
      break;
    case 0x142:
      Csr.scause = v;
      break;
    case 0x143:
      Csr.stval = v;
      break;
    case 0x144: {
      // Only SSIP is writable through sip, and only when delegated.
      const m = MIP_SSIP & Csr.mideleg;
      Csr.mipSw = (Csr.mipSw & ~m) | (v & m);
      requestAttention();
      break;
    }
    case 0x14d:
      if (Hart.priv < PRV_M && ((Csr.menvcfg & MENVCFG_STCE) == 0 || (Csr.mcounteren & 2) == 0)) return false;
      Csr.stimecmp = v;
      requestAttention();
      break;
    case 0x180: {
      if (Hart.priv == PRV_S && (Hart.mstatus & MSTATUS_TVM) != 0) return false;
      const mode = v >> 60;
      // Unsupported modes (Sv57 and reserved) leave satp unchanged: Linux probes this way.
      if (mode != SATP_MODE_BARE && mode != SATP_MODE_SV39 && mode != SATP_MODE_SV48) break;
      Csr.satp = v & ((<u64>0xf << 60) | (<u64>0xffff << 44) | ((<u64>1 << 44) - 1));
      tlbFlushAll();
      updateContext();
      break;
    }
    case 0x300:
      writeMstatus(v);
      break;
    case 0x301:
      break; // misa is WARL and fixed here
    case 0x302:
      Csr.medeleg = v & MEDELEG_MASK;
      break;
    case 0x303:
      Csr.mideleg = v & S_INTS;
      requestAttention();
      break;
    case 0x304:
      Csr.mie = v & ALL_INTS;
      requestAttention();
      break;
    case 0x305:
      Csr.mtvec = legalTvec(v, Csr.mtvec);
      break;
    case 0x306:
      Csr.mcounteren = <u32>v;
      break;
    case 0x30a:
      // STCE is the only M-level envcfg feature implemented; the rest read as zero.
      Csr.menvcfg = v & MENVCFG_STCE;
      requestAttention();
      break;
    case 0x320:
      Csr.mcountinhibit = <u32>v & 0xfffffffd;
      break;
    case 0x340:
      Csr.mscratch = v;
      break;
    case 0x341:
      Csr.mepc = v & ~(<u64>1);
      break;
    case 0x342:
      Csr.mcause = v;
      break;
    case 0x343:
      Csr.mtval = v;
      break;
    case 0x344: {
      let m = MIP_SSIP | MIP_SEIP;
      if ((Csr.menvcfg & MENVCFG_STCE) == 0) m |= MIP_STIP;
      Csr.mipSw = (Csr.mipSw & ~m) | (v & m);
      requestAttention();
      break;
    }
    default:
      if (csr >= 0x3a0 && csr <= 0x3af) {
        if (csr & 1) return false;
        // Locked entries ignore writes; the W=1,R=0 combination is reserved and cleared.
        if (csr <= 0x3a2) {
          const slot = PMP + 8 * (16 + ((csr - 0x3a0) >> 1));
          const old = load<u64>(slot);
          let nv: u64 = 0;
          for (let b: u64 = 0; b < 64; b += 8) {
            let byte = (v >> b) & 0xff;
            const oldByte = (old >> b) & 0xff;
            if (oldByte & 0x80) byte = oldByte;
            else {
              byte &= 0x9f;
              if ((byte & 3) == 2) byte &= ~(<u64>3);
            }
            nv |= byte << b;
          }
          store<u64>(slot, nv);
        }
        break;
      }
      if (csr >= 0x3b0 && csr <= 0x3ef) {
        const i = csr - 0x3b0;
        if (i < PMP_ENTRIES) store<u64>(PMP + 8 * i, v & ((<u64>1 << 54) - 1));
        break;
      }
      if ((csr >= 0xb03 && csr <= 0xb1f) || (csr >= 0x323 && csr <= 0x33f)) break;
      return false;
  }
  return true;
}

function legalTvec(v: u64, old: u64): u64 {
  const mode = v & 3;
  if (mode >= 2) return old; // reserved modes: keep the old value
  return v & ~(<u64>2);
}

export function csrReset(): void {
  Hart.mstatus = 0;
  Csr.medeleg = 0;
  Csr.mideleg = 0;
  Csr.mie = 0;
  Csr.mipSw = 0;
  Csr.mtvec = 0;
  Csr.mcounteren = 0;
  Csr.mcountinhibit = 0;
  Csr.menvcfg = 0;
  Csr.mscratch = 0;
  Csr.mepc = 0;
  Csr.mcause = 0;
  Csr.mtval = 0;
  Csr.stvec = 0;
  Csr.scounteren = 0;
  Csr.senvcfg = 0;
  Csr.sscratch = 0;
  Csr.sepc = 0;
  Csr.scause = 0;
  Csr.stval = 0;
  Csr.satp = 0;
  Csr.stimecmp = 0xffff_ffff_ffff_ffff;
  memory.fill(PMP, 0, 8 * 18);
  Hart.fflags = 0;
  Hart.frm = 0;
  Hart.priv = PRV_M;
  updateContext();
  tlbFlushAll();
}

// Re-exported for the trap module.
export { PRV_U, PRV_S, PRV_M };
