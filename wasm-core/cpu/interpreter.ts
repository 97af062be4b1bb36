// The interpreter: fetch (through the fetch TLB), expand compressed instructions, decode and
// execute RV64IMAFDC + Zicsr + Zifencei, in slices of a fixed instruction budget. Nothing here
// allocates or calls into JS except through MMIO slow paths and the host clock.
import { Hart, Harts, XREGS, RESERVATION, PRV_M, PRV_S, PRV_U, MSTATUS_FS, setF, getF } from './state';
import { Csr, CsrResult, csrRead, csrWrite, MSTATUS_TSR, MSTATUS_TVM, MSTATUS_TW } from './csr';
import { Clint } from './clint';
import { Signals, EXIT_WFI, EXIT_TOHOST, EXIT_YIELD, requestAttention } from './signals';
import {
  takeTrap,
  mret,
  sret,
  pendingInterrupt,
  wfiShouldWake,
  CAUSE_ILLEGAL_INSN,
  CAUSE_BREAKPOINT,
  CAUSE_MISALIGNED_LOAD,
  CAUSE_MISALIGNED_STORE,
  CAUSE_ECALL_U,
} from './trap';
import { EXPANDED } from './compressed';
import { execFp } from './fpu';
import { execBitmanip } from './bitmanip';
import { mul128, SF } from './softfloat-core';
import {
  Fault,
  Ctx,
  TLB_FETCH,
  tlbLookup,
  tlbFill,
  vload,
  vloadSlow,
  vstoreSlow,
  storeHost,
  TLB_STORE,
  loadHost,
  tlbLookupData,
  TLB_LOAD,
  vstore,
  translate,
  tlbFlushAll,
  tlbFlushPage,
  Xlate,
  ACCESS_FETCH,
  ACCESS_LOAD,
  ACCESS_STORE,
  CAUSE_FETCH_ACCESS,
  CAUSE_LOAD_ACCESS,
  CAUSE_STORE_ACCESS,
  raiseFault,
} from '../mmu/mmu';
import { Phys, physLoad, physStore } from '../mmu/physical';
import { Jit, jitEntry, jitBlock, jitNewEpoch } from '../jit/jit';

@inline function rx(i: u32): u64 {
  return load<u64>(XREGS + ((<usize>i) << 3));
}
@inline function wx(i: u32, v: u64): void {
  store<u64>(XREGS + ((<usize>i) << 3), v);
  store<u64>(XREGS, 0); // x0 stays zero: one unconditional store beats a branch
}
@inline function sext32(v: u64): u64 {
  return <u64>(<i64>(<i32>v));
}

/** High 64 bits of the unsigned 128-bit product (the FPU's wide multiply serves both). */
@inline function mulhu(a: u64, b: u64): u64 {
  mul128(a, b);
  return SF.hi;
}
function mulh(a: u64, b: u64): u64 {
  let r = mulhu(a, b);
  if (<i64>a < 0) r -= b;
  if (<i64>b < 0) r -= a;
  return r;
}
function mulhsu(a: u64, b: u64): u64 {
  let r = mulhu(a, b);
  if (<i64>a < 0) r -= b;
  return r;
}

/**
 * The empty code-page cache: a base no fetch can succeed from (non-canonical under paging, no
 * memory there without it), mapped to a page of zeros. A pc that falls in that window reads
 * 0x0000, an illegal encoding, and the illegal-instruction path refetches properly (and faults).
 */
const NO_CODE_BASE: u64 = 0x8000_0000_0000_0000;
const ZERO_PAGE: usize = memory.data(4096, 16);
/** Code-page window: an instruction at page offset 0xffe may straddle into the next page. */
const CODE_WINDOW: u64 = 0xffe;

/**
 * JIT build: the block starting at pc (host address h) is executed. Most such lookups find it
 * counting towards the threshold: that is counted here, inline (one load reads the entry's tag
 * and state, equal to h for this block counting), and the rest is jitBlock's (queueing,
 * eviction, running a translation). Returns jitBlock's result: 0 when nothing ran.
 *
 * The interpreter looks a block up where it starts: at a jump or a taken branch whose target is
 * in the cached code page, else at the refill of that cache the jump causes (Jit.jumped, tested
 * only on the refill path). An earlier version set a flag at branches and tested it at every
 * fetch, and counted in a call: on code never translated that build ran ~15% slower than the plain
 * interpreter, this one ~8%. Measured on the way (ARCHITECTURE.md):
 * the flag's test alone cost ~7%; a call on the counting path (V8 then keeps the loop's values
 * in memory around it) cost more than the inline count.
 */
@inline function jitLook(h: usize, pc: u64): i32 {
  const e = jitEntry(h);
  const n = load<u32>(e, 8) + 1;
  if (load<u64>(e) == <u64>h && n < Jit.threshold) {
    store<u32>(e, n, 8);
    return 0;
  }
  return jitBlock(h, pc);
}

/** Fetches the (possibly compressed, possibly page-straddling) instruction at pc the slow way. */
function fetchSlow(pc: u64): u32 {
  const lo = fetchHalf(pc);
  if (Fault.pending) return 0;
  if ((lo & 3) != 3) return lo;
  const hi = fetchHalf(pc + 2);
  if (Fault.pending) return 0;
  return lo | (hi << 16);
}

function fetchHalf(va: u64): u32 {
  const h = tlbFill(va, ACCESS_FETCH);
  if (h != 0) return <u32>load<u16>(h);
  if (Fault.pending) return 0;
  // Instructions can only come from RAM or the boot ROM.
  raiseFault(CAUSE_FETCH_ACCESS, va);
  return 0;
}

/** Counters of what the interpreter did, for --stats. */
export class Counters {
  static interrupts: u64 = 0;
}

/**
 * Runs up to `budget` instructions. Returns why it stopped (signals.ts EXIT_*). pc and all
 * state live in Hart/Csr between calls.
 *
 * J is a compile-time flag: u16 = with the JIT's block lookups, u8 = without. Each
 * core build has one of them (index.ts: u8, index-jit.ts: u16): merely having the JIT's copy in
 * the same module measured ~10% slower for the plain interpreter (V8 / Binaryen code layout).
 */
export function interpret<J>(budget: i32): i32 {
  const JIT_ON = sizeof<J>() == 2;
  Signals.exitReason = 0;
  let pc = Hart.pc;
  // The slice ends when instret reaches limit. A turn that retires nothing (a fetch fault, an
  // illegal instruction, an interrupt) lowers limit instead, so a trap storm still yields.
  let limit = Clint.instret + <u64>budget;
  // The code page being executed: its virtual base address and host address. Anything that
  // could change the mapping (traps, xRET, CSR writes, TLB flushes) raises attention, which
  // empties this cache.
  let codeBase: u64 = NO_CODE_BASE;
  let codeHost: usize = ZERO_PAGE;
  requestAttention(); // look at interrupts and exits before the first instruction
  while (true) {
    if (Clint.instret >= Signals.stopAt) {
      // The budget is spent, or something asked for attention.
      if (Clint.instret >= limit) break;
      Signals.stopAt = limit;
      codeBase = NO_CODE_BASE;
      codeHost = ZERO_PAGE;
      if (Phys.tohostHit) {
        Signals.exitReason = EXIT_TOHOST;
      }
      if (Signals.exitReason != 0) break;
      const irq = pendingInterrupt();
      if (irq >= 0) {
        Counters.interrupts++;
        limit--;
        requestAttention();
        pc = takeTrap(pc, <u64>irq, 0, true);
      }
    }
    // ---- fetch ----
    let insn: u32 = 0;
    const off = pc - codeBase;
    if (off < CODE_WINDOW) {
      insn = load<u32>(codeHost + <usize>off);
    } else if (JIT_ON) {
      // The JIT build: a refill of the code page cache after a branch or jump to another page
      // (or where jitBlock left a block start to the interpreter) looks pc up (jitLook). Other
      // refills (a page's end, after a trap or xRET) are not block starts the JIT counts.
      const h = (pc & 0xfff) != 0xffe ? tlbLookup(TLB_FETCH, pc, Ctx.fetch) : 0;
      if (h != 0) {
        codeBase = pc & ~(<u64>0xfff);
        codeHost = h - <usize>(pc & 0xfff);
        insn = load<u32>(h);
        if (Jit.jumped) {
          Jit.jumped = false;
          const r = jitLook(h, pc);
          if (r != 0) {
            pc = Jit.pc;
            if (r == 2) limit--;
            continue;
          }
        }
      } else {
        Jit.jumped = false; // not looked up (as with no JIT map lookup on a TLB miss before)
        insn = fetchSlow(pc);
        if (Fault.pending) {
          Fault.pending = false;
          limit--;
          requestAttention();
          pc = takeTrap(pc, Fault.cause, Fault.tval, false);
          continue;
        }
      }
    } else {
      const h = (pc & 0xfff) != 0xffe ? tlbLookup(TLB_FETCH, pc, Ctx.fetch) : 0;
      if (h != 0) {
        codeBase = pc & ~(<u64>0xfff);
        codeHost = h - <usize>(pc & 0xfff);
        insn = load<u32>(h);
      } else {
        insn = fetchSlow(pc);
        if (Fault.pending) {
          Fault.pending = false;
          limit--;
        requestAttention();
          pc = takeTrap(pc, Fault.cause, Fault.tval, false);
          continue;
        }
      }
    }
    let npc: u64 = pc + 4;
    if ((insn & 3) != 3) {
      const c = insn & 0xffff;
      npc = pc + 2;
      insn = load<u32>(EXPANDED + (<usize>c << 2));
      if (insn == 0) {
        limit--;
        requestAttention();
        if (codeBase == NO_CODE_BASE) {
          // A read of ZERO_PAGE, not of the guest: fetch for real (it faults, see NO_CODE_BASE).
          fetchSlow(pc);
          if (Fault.pending) {
            Fault.pending = false;
            pc = takeTrap(pc, Fault.cause, Fault.tval, false);
            continue;
          }
        }
        pc = takeTrap(pc, CAUSE_ILLEGAL_INSN, <u64>c, false);
        continue;
      }
    }
    Clint.instret++;
    const rd = (insn >> 7) & 31;
    const rs1 = (insn >> 15) & 31;
    const f3 = (insn >> 12) & 7;
    let illegal = false;
    switch (insn & 0x7f) {
      // AssemblyScript compiles this switch to a compare chain in source order (the opcode values
      // are too sparse for a jump table, which measured slower anyway), so the cases go in order
      // of how often kernel code executes them.
      case 0x03: {
        // loads
        const addr = rx(rs1) + <u64>(<i64>(<i32>insn >> 20));
        if (f3 == 7) {
          illegal = true;
          break;
        }
        // One inlined access of 1 << (f3 & 3) bytes, then sign extension for LB/LH/LW.
        const size: u32 = 1 << (f3 & 3);
        const h = tlbLookupData(TLB_LOAD, addr, size);
        let v: u64 = 0;
        if (h != 0) v = loadHost(h, size);
        else {
          v = vloadSlow(addr, size);
          if (Fault.pending) {
            Fault.pending = false;
            pc = takeTrap(pc, Fault.cause, Fault.tval, false);
            continue;
          }
        }
        if (f3 < 3) {
          const sh = <u64>(64 - (8 << f3));
          v = <u64>((<i64>(v << sh)) >> sh);
        }
        wx(rd, v);
        break;
      }
      case 0x13: {
        // OP-IMM
        const a = rx(rs1);
        const imm = <u64>(<i64>(<i32>insn >> 20));
        const shamt = (insn >> 20) & 63;
        // ADDI (with its aliases mv, li, nop) is most of OP-IMM: test it before the jump table.
        if (f3 == 0) {
          wx(rd, a + imm);
          break;
        }
        switch (f3) {
          case 1:
            if ((insn >> 26) != 0) illegal = true;
            else wx(rd, a << shamt);
            break;
          case 2:
            wx(rd, <i64>a < <i64>imm ? 1 : 0);
            break;
          case 3:
            wx(rd, a < imm ? 1 : 0);
            break;
          case 4:
            wx(rd, a ^ imm);
            break;
          case 5: {
            const top = insn >> 26;
            if (top == 0) wx(rd, a >> shamt);
            else if (top == 0x10) wx(rd, <u64>(<i64>a >> shamt));
            else illegal = true;
            break;
          }
          case 6:
            wx(rd, a | imm);
            break;
          default:
            wx(rd, a & imm);
        }
        break;
      }
      case 0x23: {
        // stores
        const addr = rx(rs1) + <u64>(<i64>(((<i32>insn >> 25) << 5) | ((insn >> 7) & 31)));
        const v = rx((insn >> 20) & 31);
        if (f3 > 3) {
          illegal = true;
          break;
        }
        const size: u32 = 1 << f3;
        const h = tlbLookupData(TLB_STORE, addr, size);
        if (h != 0) storeHost(h, size, v);
        else {
          vstoreSlow(addr, size, v);
          if (Fault.pending) {
            Fault.pending = false;
            pc = takeTrap(pc, Fault.cause, Fault.tval, false);
            continue;
          }
        }
        break;
      }
      case 0x63: {
        // branches
        const a = rx(rs1);
        const b = rx((insn >> 20) & 31);
        // f3 bit 0 negates; bits 2..1 pick equal, signed less-than or unsigned less-than.
        const kind = f3 >> 1;
        let cond = false;
        if (kind == 0) cond = a == b;
        else if (kind == 3) cond = a < b;
        else if (kind == 2) cond = <i64>a < <i64>b;
        else {
          illegal = true;
          break;
        }
        const taken = cond != ((f3 & 1) != 0);
        if (taken) {
          const imm =
            (<i32>(insn & 0x80000000) >> 19) | ((insn << 4) & 0x800) | ((insn >> 20) & 0x7e0) | ((insn >> 7) & 0x1e);
          npc = pc + <u64>(<i64>imm);
        }
        if (JIT_ON && taken) {
          // npc starts a block. In the cached code page it is looked up here; in another, the
          // next fetch's refill of the cache looks it up. Only a taken branch's target is: the
          // block after one not taken is counted, and entered translated, at the next taken
          // branch or jump (a translated region holds it with its predecessor anyway). Every
          // lookup of code run now and then misses the host's caches: looking up both ways
          // cost the Debian system's boot ~7% more host CPU (session 11).
          const off = npc - codeBase;
          if (off < CODE_WINDOW) {
            const r = jitLook(codeHost + <usize>off, npc);
            if (r != 0) {
              pc = Jit.pc;
              if (r == 2) limit--;
              continue;
            }
          } else Jit.jumped = true;
        }
        break;
      }
      case 0x33: {
        // OP
        const a = rx(rs1);
        const b = rx((insn >> 20) & 31);
        const f7 = insn >> 25;
        // ADD (and c.mv, c.add) is most of OP: test it before the jump table.
        if ((insn & 0xfe007000) == 0) {
          wx(rd, a + b);
          break;
        }
        if (f7 == 0) {
          switch (f3) {
            case 1:
              wx(rd, a << (b & 63));
              break;
            case 2:
              wx(rd, <i64>a < <i64>b ? 1 : 0);
              break;
            case 3:
              wx(rd, a < b ? 1 : 0);
              break;
            case 4:
              wx(rd, a ^ b);
              break;
            case 5:
              wx(rd, a >> (b & 63));
              break;
            case 6:
              wx(rd, a | b);
              break;
            default:
              wx(rd, a & b);
          }
        } else if (f7 == 0x20) {
          if (f3 == 0) wx(rd, a - b);
          else if (f3 == 5) wx(rd, <u64>(<i64>a >> (b & 63)));
          else illegal = true;
        } else if (f7 == 1) {
          switch (f3) {
            case 0:
              wx(rd, a * b);
              break;
            case 1:
              wx(rd, mulh(a, b));
              break;
            case 2:
              wx(rd, mulhsu(a, b));
              break;
            case 3:
              wx(rd, mulhu(a, b));
              break;
            case 4: // DIV
              if (b == 0) {
                wx(rd, 0xffff_ffff_ffff_ffff);
                // `div x, x, zero` is how Linux's cpu_relax and OpenSBI's wait for the boot hart
                // stall while they spin: with several harts, the spinner's turn ends.
                if (((insn >> 20) & 31) == 0 && rd == rs1 && Harts.count > 1) {
                  Signals.exitReason = EXIT_YIELD;
                  requestAttention();
                }
              }
              else if (a == 0x8000_0000_0000_0000 && b == 0xffff_ffff_ffff_ffff) wx(rd, a);
              else wx(rd, <u64>(<i64>a / <i64>b));
              break;
            case 5: // DIVU
              wx(rd, b == 0 ? 0xffff_ffff_ffff_ffff : a / b);
              break;
            case 6: // REM
              if (b == 0) wx(rd, a);
              else if (a == 0x8000_0000_0000_0000 && b == 0xffff_ffff_ffff_ffff) wx(rd, 0);
              else wx(rd, <u64>(<i64>a % <i64>b));
              break;
            default: // REMU
              wx(rd, b == 0 ? a : a % b);
          }
        } else illegal = true;
        break;
      }
      case 0x6f: {
        // JAL
        const imm =
          (<i32>(insn & 0x80000000) >> 11) | (insn & 0xff000) | ((insn >> 9) & 0x800) | ((insn >> 20) & 0x7fe);
        wx(rd, npc);
        npc = pc + <u64>(<i64>imm);
        if (JIT_ON) {
          // npc starts a block. In the cached code page it is looked up here; in another, the
          // next fetch's refill of the cache looks it up.
          const off = npc - codeBase;
          if (off < CODE_WINDOW) {
            const r = jitLook(codeHost + <usize>off, npc);
            if (r != 0) {
              pc = Jit.pc;
              if (r == 2) limit--;
              continue;
            }
          } else Jit.jumped = true;
        }
        break;
      }
      case 0x67: {
        // JALR
        if (f3 != 0) {
          illegal = true;
          break;
        }
        const t = (rx(rs1) + <u64>(<i64>(<i32>insn >> 20))) & ~(<u64>1);
        wx(rd, npc);
        npc = t;
        if (JIT_ON) {
          // npc starts a block. In the cached code page it is looked up here; in another, the
          // next fetch's refill of the cache looks it up.
          const off = npc - codeBase;
          if (off < CODE_WINDOW) {
            const r = jitLook(codeHost + <usize>off, npc);
            if (r != 0) {
              pc = Jit.pc;
              if (r == 2) limit--;
              continue;
            }
          } else Jit.jumped = true;
        }
        break;
      }
      case 0x37: // LUI
        wx(rd, <u64>(<i64>(<i32>(insn & 0xfffff000))));
        break;
      case 0x17: // AUIPC
        wx(rd, pc + <u64>(<i64>(<i32>(insn & 0xfffff000))));
        break;
      case 0x1b: {
        // OP-IMM-32
        const a = rx(rs1);
        const shamt = (insn >> 20) & 31;
        const top = insn >> 25;
        if (f3 == 0) wx(rd, sext32(a + <u64>(<i64>(<i32>insn >> 20))));
        else if (f3 == 1 && top == 0) wx(rd, sext32(a << shamt));
        else if (f3 == 5 && top == 0) wx(rd, sext32(<u64>(<u32>a >> shamt)));
        else if (f3 == 5 && top == 0x20) wx(rd, <u64>(<i64>(<i32>a >> shamt)));
        else illegal = true;
        break;
      }
      case 0x3b: {
        // OP-32
        const a = rx(rs1);
        const b = rx((insn >> 20) & 31);
        const f7 = insn >> 25;
        if (f7 == 0) {
          if (f3 == 0) wx(rd, sext32(a + b));
          else if (f3 == 1) wx(rd, sext32(a << (b & 31)));
          else if (f3 == 5) wx(rd, sext32(<u64>(<u32>a >> (<u32>b & 31))));
          else illegal = true;
        } else if (f7 == 0x20) {
          if (f3 == 0) wx(rd, sext32(a - b));
          else if (f3 == 5) wx(rd, <u64>(<i64>(<i32>a >> (<i32>b & 31))));
          else illegal = true;
        } else if (f7 == 1) {
          const x = <i32>a;
          const y = <i32>b;
          switch (f3) {
            case 0:
              wx(rd, sext32(<u64>(x * y)));
              break;
            case 4:
              if (y == 0) wx(rd, 0xffff_ffff_ffff_ffff);
              else if (x == i32.MIN_VALUE && y == -1) wx(rd, sext32(<u64>x));
              else wx(rd, sext32(<u64>(x / y)));
              break;
            case 5:
              if (y == 0) wx(rd, 0xffff_ffff_ffff_ffff);
              else wx(rd, sext32(<u64>(<u32>x / <u32>y)));
              break;
            case 6:
              if (y == 0) wx(rd, sext32(<u64>x));
              else if (x == i32.MIN_VALUE && y == -1) wx(rd, 0);
              else wx(rd, sext32(<u64>(x % y)));
              break;
            case 7:
              if (y == 0) wx(rd, sext32(<u64>x));
              else wx(rd, sext32(<u64>(<u32>x % <u32>y)));
              break;
            default:
              illegal = true;
          }
        } else illegal = true;
        break;
      }
      case 0x73: {
        // SYSTEM
        if (f3 == 0) {
          if (insn == 0x00000073) {
            pc = takeTrap(pc, CAUSE_ECALL_U + <u64>Hart.priv, 0, false);
            continue;
          } else if (insn == 0x00100073) {
            pc = takeTrap(pc, CAUSE_BREAKPOINT, pc, false);
            continue;
          } else if (insn == 0x30200073) {
            if (Hart.priv != PRV_M) illegal = true;
            else npc = mret();
          } else if (insn == 0x10200073) {
            if (Hart.priv == PRV_U || (Hart.priv == PRV_S && (Hart.mstatus & MSTATUS_TSR) != 0)) illegal = true;
            else npc = sret();
          } else if (insn == 0x10500073) {
            // WFI
            if (Hart.priv == PRV_U || (Hart.priv == PRV_S && (Hart.mstatus & MSTATUS_TW) != 0)) illegal = true;
            else if (!wfiShouldWake()) {
              Signals.exitReason = EXIT_WFI;
              requestAttention();
            }
          } else if ((insn >> 25) == 0x09 && rd == 0) {
            // SFENCE.VMA
            if (Hart.priv == PRV_U || (Hart.priv == PRV_S && (Hart.mstatus & MSTATUS_TVM) != 0)) illegal = true;
            else if (rs1 == 0) tlbFlushAll();
            else tlbFlushPage(rx(rs1));
          } else illegal = true;
          break;
        }
        if (f3 == 4) {
          illegal = true;
          break;
        }
        const csr = insn >> 20;
        const src: u64 = f3 >= 5 ? <u64>rs1 : rx(rs1);
        const op = f3 & 3;
        if (!csrRead(csr)) {
          illegal = true;
          break;
        }
        const old = CsrResult.value;
        if (op == 1 || rs1 != 0) {
          const base = CsrResult.rmw;
          const nv = op == 1 ? src : op == 2 ? base | src : base & ~src;
          if (!csrWrite(csr, nv)) {
            illegal = true;
            break;
          }
        }
        wx(rd, old);
        break;
      }
      case 0x2f: {
        // A extension
        const f5 = insn >> 27;
        if (f3 != 2 && f3 != 3) {
          illegal = true;
          break;
        }
        const size: u32 = f3 == 2 ? 4 : 8;
        const addr = rx(rs1);
        const src = rx((insn >> 20) & 31);
        if ((addr & (<u64>size - 1)) != 0) {
          pc = takeTrap(pc, f5 == 2 ? CAUSE_MISALIGNED_LOAD : CAUSE_MISALIGNED_STORE, addr, false);
          continue;
        }
        if (f5 == 2) {
          // LR
          if (((insn >> 20) & 31) != 0) {
            illegal = true;
            break;
          }
          if (!translate(addr, ACCESS_LOAD)) {
            Fault.pending = false;
            pc = takeTrap(pc, Fault.cause, Fault.tval, false);
            continue;
          }
          const pa = Xlate.pa;
          Phys.busFault = false;
          let v = physLoad(pa, size);
          if (Phys.busFault) {
            Phys.busFault = false;
            pc = takeTrap(pc, CAUSE_LOAD_ACCESS, addr, false);
            continue;
          }
          if (size == 4) v = sext32(v);
          store<u64>(RESERVATION, pa);
          store<u32>(RESERVATION, 1, 8);
          wx(rd, v);
          break;
        }
        if (!translate(addr, ACCESS_STORE)) {
          Fault.pending = false;
          pc = takeTrap(pc, Fault.cause, Fault.tval, false);
          continue;
        }
        const pa = Xlate.pa;
        if (f5 == 3) {
          // SC
          let ok = load<u32>(RESERVATION, 8) != 0 && load<u64>(RESERVATION) == pa;
          store<u32>(RESERVATION, 0, 8);
          if (ok) {
            Phys.busFault = false;
            physStore(pa, size, src);
            if (Phys.busFault) {
              Phys.busFault = false;
              pc = takeTrap(pc, CAUSE_STORE_ACCESS, addr, false);
              continue;
            }
          }
          wx(rd, ok ? 0 : 1);
          break;
        }
        Phys.busFault = false;
        let old = physLoad(pa, size);
        if (Phys.busFault) {
          Phys.busFault = false;
          pc = takeTrap(pc, CAUSE_STORE_ACCESS, addr, false);
          continue;
        }
        if (size == 4) old = sext32(old);
        let nv: u64 = 0;
        switch (f5) {
          case 0x01:
            nv = src;
            break;
          case 0x00:
            nv = old + src;
            break;
          case 0x04:
            nv = old ^ src;
            break;
          case 0x0c:
            nv = old & src;
            break;
          case 0x08:
            nv = old | src;
            break;
          case 0x10:
            nv = size == 4 ? (<i32>old < <i32>src ? old : src) : <i64>old < <i64>src ? old : src;
            break;
          case 0x14:
            nv = size == 4 ? (<i32>old > <i32>src ? old : src) : <i64>old > <i64>src ? old : src;
            break;
          case 0x18:
            nv = size == 4 ? (<u32>old < <u32>src ? old : src) : old < src ? old : src;
            break;
          case 0x1c:
            nv = size == 4 ? (<u32>old > <u32>src ? old : src) : old > src ? old : src;
            break;
          default:
            illegal = true;
        }
        if (illegal) break;
        physStore(pa, size, nv);
        if (Phys.busFault) {
          Phys.busFault = false;
          pc = takeTrap(pc, CAUSE_STORE_ACCESS, addr, false);
          continue;
        }
        wx(rd, old);
        break;
      }
      case 0x0f: // FENCE, FENCE.I: harts take turns, so memory is always ordered; FENCE.I
        // makes the JIT check its translations. PAUSE (a FENCE with pred = W) ends a spinning
        // hart's turn when another could run (cpu/smp.ts).
        if (f3 > 1) illegal = true;
        else if (f3 == 1 && JIT_ON) jitNewEpoch();
        else if (insn == 0x0100000f && Harts.count > 1) {
          Signals.exitReason = EXIT_YIELD;
          requestAttention();
        }
        break;
      case 0x07: {
        // FLW / FLD
        if ((Hart.mstatus & MSTATUS_FS) == 0 || (f3 != 2 && f3 != 3)) {
          illegal = true;
          break;
        }
        const addr = rx(rs1) + <u64>(<i64>(<i32>insn >> 20));
        let v = vload(addr, f3 == 2 ? 4 : 8);
        if (Fault.pending) {
          Fault.pending = false;
          pc = takeTrap(pc, Fault.cause, Fault.tval, false);
          continue;
        }
        if (f3 == 2) v |= 0xffff_ffff_0000_0000;
        setF(rd, v);
        break;
      }
      case 0x27: {
        // FSW / FSD
        if ((Hart.mstatus & MSTATUS_FS) == 0 || (f3 != 2 && f3 != 3)) {
          illegal = true;
          break;
        }
        const addr = rx(rs1) + <u64>(<i64>(((<i32>insn >> 25) << 5) | ((insn >> 7) & 31)));
        vstore(addr, f3 == 2 ? 4 : 8, getF((insn >> 20) & 31));
        if (Fault.pending) {
          Fault.pending = false;
          pc = takeTrap(pc, Fault.cause, Fault.tval, false);
          continue;
        }
        break;
      }
      case 0x53:
      case 0x43:
      case 0x47:
      case 0x4b:
      case 0x4f:
        if ((Hart.mstatus & MSTATUS_FS) == 0 || !execFp(insn)) illegal = true;
        break;
      default:
        illegal = true;
    }
    if (illegal) {
      limit--; // a trap retires nothing (also a Zb* instruction: the slice is one shorter)
      pc = illegalInsn(pc, insn);
      continue;
    }
    pc = npc;
  }
  Hart.pc = pc;
  return Signals.exitReason;
}

/**
 * An encoding the interpreter's switch does not execute: a Zba/Zbb/Zbc/Zbs instruction
 * (bitmanip.ts; none has a compressed form, so the next pc is pc + 4), else the
 * illegal-instruction trap; returns the next pc. One call, with no value of the loop's live
 * across it but the slice's: a call here that kept the next pc or the instruction live made
 * TurboFan's code for the whole loop 16-28% slower (cpu-loop's interpreter). Exported
 * (core-exports.ts) so that Binaryen does not inline it into the loop.
 */
export function illegalInsn(pc: u64, insn: u32): u64 {
  if (execBitmanip(insn)) return pc + 4;
  Clint.instret--;
  requestAttention();
  return takeTrap(pc, CAUSE_ILLEGAL_INSN, <u64>insnBits(pc, insn), false);
}

/** The original encoding of the instruction at pc, for mtval on illegal instruction. */
function insnBits(pc: u64, expanded: u32): u32 {
  const h = tlbLookup(TLB_FETCH, pc, Ctx.fetch);
  if (h != 0) {
    const lo = <u32>load<u16>(h);
    if ((lo & 3) != 3) return lo;
  }
  return expanded;
}

export { PRV_S, ACCESS_STORE };
