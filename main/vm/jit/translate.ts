/**
 * Translates a region of guest code into the body of a Wasm function
 * `(vpc: i64, ctx: i64, budget: i32) -> (i64, i32, i32)`. A region is a hot block (RV64GC and
 * CSR instructions, but not the other system instructions nor FENCE.I) and the blocks reachable
 * from it by branches, JAL and fall-through in the same page at or after it (decodeRegion);
 * everything below said of "the block" holds for each block of a region, whose intra-region
 * edges are Wasm branches (emitRegion):
 *  - vpc is the region's virtual pc (pc-relative values are computed from it, so the same
 *    physical code serves every mapping of it), ctx the data TLB context tag, budget how many
 *    instructions the region may retire before the core must look at interrupts again;
 *  - it returns budget minus the instructions retired (after a next vpc and before a next slot,
 *    see "Chaining") and, when it returns to the core, leaves the next pc at JIT_STATE. A load
 *    or store that faults leaves that instruction's pc there and the core's fault flag set (and
 *    counts it, as the interpreter does).
 * Chaining: where the block ends at a branch, a jump or its last instruction, and budget is left,
 * it hands the next block's table slot with its virtual pc and the budget left to the module's
 * go function (emitGo), which returns them to the dispatcher's loop (a batch module) or
 * tail-calls that block through the table (a merged module, main/vm/jit/jit.ts merge); either
 * way it runs at once instead of returning to the interpreter: the chain runs on the remaining
 * budget and ends with a block that returns slot 0 (the core then reads the next pc from
 * JIT_STATE). The successor is found as the interpreter would find it: by the host
 * address of its virtual pc, in the block map, translated in the current FENCE.I epoch. A target
 * in the block's own page has a host address known at translation time (the page is mapped as
 * it was when the block was entered: only the interpreter changes mappings or privilege); any
 * other target (JALR, another page) goes through the module's chain helper, which looks the
 * page up in the fetch TLB under the context the core stored in JIT_STATE. A miss anywhere
 * returns to the interpreter. An exit after a slow-path access never chains: the block leaves
 * there only when the access asked the core for attention (an interrupt made pending, tohost).
 * Guest registers used by the block live in Wasm locals between its entry and its exits.
 * Loads and stores check the core's TLB inline, as the interpreter does, and call the core's
 * slow paths otherwise; after one that asked for attention the block leaves (so an interrupt an
 * MMIO access raised is taken where the interpreter takes it), else it goes on.
 * AMOs, LR and SC take the same inline path (the reservation lives in core memory, shared with
 * the interpreter); FENCE and FENCE.TSO are no-ops, as in the interpreter. FP loads and stores
 * move raw bits between memory and the core's FP registers, after the interpreter's
 * mstatus.FS check, as do the FP moves and sign injections (no rounding, no flags); the other
 * FP instructions call the interpreter's own execFp, CSR instructions its csrRead/csrWrite
 * (leaving the block after one that asks for attention). ECALL, EBREAK, xRET, WFI, SFENCE.VMA
 * and FENCE.I end the block before them.
 */
import { decodeBitmanip, emitBitmanip, readsRs2, translatable } from './bitmanip.js';
import { ByteWriter, I32, I64, Op, VOID } from './wasm-emitter.js';

/** Addresses in the core's memory (wasm-core/index.ts jitLayout). */
export interface CoreLayout {
  xregs: number;
  jitState: number;
  tlbLoad: number;
  tlbStore: number;
  expanded: number;
  /** The LR/SC reservation (wasm-core/cpu/state.ts RESERVATION). */
  reservation: number;
  /** Where RAM starts in the core's memory (below it: the boot ROM). */
  ramHost: number;
  /** Physical address minus host address in RAM and in the boot ROM (for the reservation). */
  ramPa: bigint;
  romPa: bigint;
  /** The FP registers (raw 64-bit patterns, f32 NaN-boxed). */
  fregs: number;
  /** jitCsr's "leave the block now" flag (u32). */
  leave: number;
  tlbFetch: number;
  /** The block map (wasm-core/jit/jit.ts JIT_MAP). */
  map: number;
}

/** JIT_STATE fields (wasm-core/jit/jit.ts). */
const STATE_EPOCH = 12;
const STATE_FETCH_CTX = 16;
const STATE_CHAINED = 24;
const STATE_BUDGET = 32;
/** Block map geometry (wasm-core/jit/jit.ts MAP_BITS, MAP_ENTRY_SHIFT) and entry fields. */
export const MAP_MASK = (1 << 16) - 1;
export const MAP_ENTRY_SHIFT = 5;
const ENTRY_STATE = 4;
const ENTRY_EPOCH = 12;

/** The block map entry of the block at host address `host` (wasm-core/jit/jit.ts jitEntry). */
export const mapEntry = (map: number, host: number): number =>
  map + ((((host >>> 1) ^ (host >>> 17)) & MAP_MASK) << MAP_ENTRY_SHIFT);

/**
 * Type index of a block, `(vpc: i64, ctx: i64, budget: i32) -> (next vpc: i64, budget left: i32,
 * next slot: i32)`, in a batch module (dispatcher.ts has the same type).
 */
export const TYPE_BLOCK = 0;
/** Type index of the go function (emitGo), `(vpc, ctx, left, slot) -> (vpc, left, slot)`. */
export const TYPE_GO = 8;

/** Import indices of the core's slow paths in the translated module. */
export const IMPORT_LOAD_SLOW = 0;
export const IMPORT_STORE_SLOW = 1;
export const IMPORT_ATOMIC_SLOW = 2;
export const IMPORT_FP_CHECK = 3;
export const IMPORT_FP_DIRTY = 4;
export const IMPORT_FP_OP = 5;
export const IMPORT_CSR = 6;
/** Function index of the chain helper (emitChainHelper), the module's first function. */
export const FUNC_CHAIN = 7;
/**
 * Function index of the module's way into a found successor (emitGo), its second function:
 * `(vpc, ctx, left, slot) -> (vpc, left, slot)`, tail-called by a block's chained exit.
 */
export const FUNC_GO = 8;

export const MAX_BLOCK_INSNS = 128;
const TLB_INDEX_MASK = 1023 << 4;
const PAGE_MASK = ~0xfffn;

// Locals: params 0..2, then these.
const L_VPC = 0;
const L_CTX = 1;
const L_BUDGET = 2;
const L_RETIRED = 3; // i32
const L_ENTRY = 4; // i32
const L_ADDR = 5; // i64
const L_VAL = 6; // i64
const L_A = 7; // i64
const L_B = 8; // i64
const L_REG0 = 8; // x[i] is local L_REG0 + i, i = 1..31
const L_T = 40; // i64 scratch
const L_HOST = 41; // i32: host address of an atomic access
// L_RETIRED, L_ENTRY; L_ADDR, L_VAL, L_A, L_B (x0's slot), x1..x31, L_T; L_HOST.
const L_LEFT = 42; // i32: budget left at an exit
const L_IDX = 43; // i32: the region block a back edge goes to (the dispatch's br_table)
const L_PCX = 44; // i64: the next pc at an exit
const L_SLOT = 45; // i32: the successor's table slot at a chained exit (else 0)
export const BLOCK_LOCALS = [
  I32,
  I32,
  ...Array<number>(4 + 31 + 1).fill(I64),
  I32,
  I32,
  I32,
  I64,
  I32,
];

/** AMO funct5 values (LR = 2 and SC = 3 aside) the A extension defines. */
const AMO_OPS = new Set([0x00, 0x01, 0x04, 0x08, 0x0c, 0x10, 0x14, 0x18, 0x1c]);

interface Insn {
  bits: number; // the 32-bit form (compressed instructions expanded)
  raw: number; // the encoding in memory (mtval of an illegal instruction)
  off: number; // byte offset from the block start
  len: number;
}

export interface TranslatedBlock {
  code: ByteWriter;
  insns: number;
}

const sext = (v: number, bits: number) => (v << (32 - bits)) >> (32 - bits);

function supported(i: number): boolean {
  const zb = decodeBitmanip(i); // encodings the base ISA leaves illegal
  if (zb !== undefined) return translatable(zb);
  const op = i & 0x7f;
  const f3 = (i >>> 12) & 7;
  const f7 = i >>> 25;
  switch (op) {
    case 0x37:
    case 0x17:
    case 0x6f:
      return true;
    case 0x67:
      return f3 === 0;
    case 0x03:
      return f3 !== 7;
    case 0x23:
      return f3 <= 3;
    case 0x63:
      return f3 !== 2 && f3 !== 3;
    case 0x13:
      if (f3 === 1) return i >>> 26 === 0;
      if (f3 === 5) return i >>> 26 === 0 || i >>> 26 === 0x10;
      return true;
    case 0x1b:
      if (f3 === 0) return true;
      if (f3 === 1) return f7 === 0;
      if (f3 === 5) return f7 === 0 || f7 === 0x20;
      return false;
    case 0x33:
      if (f7 === 0) return true;
      if (f7 === 0x20) return f3 === 0 || f3 === 5;
      // Not `div x, x, zero`: a spin-wait's stall, where the interpreter ends the hart's turn.
      if (f7 === 1 && f3 === 4 && (i >>> 20) % 32 === 0 && ((i >>> 7) & 31) === ((i >>> 15) & 31)) {
        return false;
      }
      return f7 === 1;
    case 0x3b:
      if (f7 === 0) return f3 === 0 || f3 === 1 || f3 === 5;
      if (f7 === 0x20) return f3 === 0 || f3 === 5;
      if (f7 === 1) return f3 === 0 || f3 >= 4;
      return false;
    case 0x2f: {
      if (f3 !== 2 && f3 !== 3) return false;
      const f5 = i >>> 27;
      if (f5 === 2) return ((i >>> 20) & 31) === 0; // LR with rs2 != 0 is illegal
      return f5 === 3 || AMO_OPS.has(f5);
    }
    case 0x0f:
      // FENCE and FENCE.TSO: no-ops (harts take turns), as in the interpreter. Not PAUSE: the
      // interpreter ends a spinning hart's turn there when another hart could run.
      return f3 === 0 && i !== 0x0100000f;
    case 0x07: // FLW, FLD (and C.FLD, C.FLDSP)
    case 0x27: // FSW, FSD (and C.FSD, C.FSDSP)
      return f3 === 2 || f3 === 3;
    case 0x73:
      return f3 !== 0 && f3 !== 4; // CSR instructions (not ECALL, xRET, WFI, SFENCE.VMA)
    case 0x53: // OP-FP: moves and sign injection inline, the rest through the core's execFp
    case 0x43: // FMADD
    case 0x47: // FMSUB
    case 0x4b: // FNMSUB
    case 0x4f: // FNMADD
      return true;
    default:
      return false;
  }
}

/** FSGNJ[N|X], FMV.X.[WD], FMV.[WD].X: no rounding, no flags, so translated inline. */
function inlineFp(i: number): boolean {
  if ((i & 0x7f) !== 0x53 || ((i >>> 25) & 3) > 1) return false; // fmt S or D
  const f5 = i >>> 27;
  const f3 = (i >>> 12) & 7;
  if (f5 === 0x04) return f3 <= 2;
  if (f5 === 0x1c || f5 === 0x1e) return f3 === 0 && ((i >>> 20) & 31) === 0;
  return false;
}

/** OP-FP instructions (left to execFp) that read x[rs1] / write x[rd]. */
const fpReadsX = (i: number) => (i & 0x7f) === 0x53 && i >>> 27 === 0x1a; // FCVT.[SD].[W|L][U]
// FCMP, FCVT.[W|L][U].[SD], FCLASS (and FMV.X, whose illegal forms reach execFp too)
const fpWritesX = (i: number) => (i & 0x7f) === 0x53 && [0x14, 0x18, 0x1c].includes(i >>> 27);

const isTerminator = (i: number) => {
  const op = i & 0x7f;
  return op === 0x63 || op === 0x6f || op === 0x67;
};

/** Reads the block at page offset `pageOff` of the code page at host address `host`. */
export function decodeBlock(mem: DataView, host: number, layout: CoreLayout): Insn[] {
  const insns: Insn[] = [];
  let off = 0;
  const pageOff = host & 0xfff;
  while (insns.length < MAX_BLOCK_INSNS) {
    if (pageOff + off + 2 > 4096) break;
    const lo = mem.getUint16(host + off, true);
    let bits: number;
    let len: number;
    let raw = lo;
    if ((lo & 3) !== 3) {
      bits = mem.getUint32(layout.expanded + lo * 4, true);
      len = 2;
      if (bits === 0) break;
    } else {
      if (pageOff + off + 4 > 4096) break;
      bits = mem.getUint32(host + off, true);
      raw = bits;
      len = 4;
    }
    if (!supported(bits)) break;
    insns.push({ bits, raw, off, len });
    off += len;
    if (isTerminator(bits)) break;
  }
  return insns;
}

/** A region's blocks (see decodeRegion); instruction offsets are from the region's entry. */
export interface Region {
  /** Ascending by offset; the first is the entry (offset 0). */
  blocks: { off: number; insns: Insn[] }[];
  /** Bytes from the entry to the end of the highest block: what a FENCE.I check compares. */
  span: number;
  insns: number;
}

/** Caps on a region (blocks, and instructions decoded while collecting them). */
export const MAX_REGION_BLOCKS = 64;
export const MAX_REGION_INSNS = 512;

/** The pc-relative targets of a block's last instruction that a region may follow. */
function successors(insns: Insn[], blockOff: number): number[] {
  const last = insns[insns.length - 1]!;
  const end = blockOff + last.off + last.len;
  const op = last.bits & 0x7f;
  if (op === 0x63) return [blockOff + last.off + branchImm(last.bits), end];
  if (op === 0x6f) return [blockOff + last.off + jalImm(last.bits)];
  if (op === 0x67) return [];
  return [end]; // ended before an untranslatable instruction, at the length cap or a leader
}

/**
 * Collects the region that starts at host address `host`: the block there and the blocks
 * reachable from it by branches, JAL and fall-through whose targets lie in the same page at or
 * after the entry (so that the guest bytes from the entry to the region's end cover all of it,
 * which is what the FENCE.I check compares), up to `maxBlocks` / MAX_REGION_INSNS (with 1, the
 * region is the entry block alone, looping if it branches to itself). Every
 * branch target becomes a block start, so a block ends where another begins and falls into it.
 */
export function decodeRegion(
  mem: DataView,
  host: number,
  layout: CoreLayout,
  maxBlocks = MAX_REGION_BLOCKS,
): Region | null {
  const pageLeft = 4096 - (host & 0xfff);
  const leaders = new Set<number>([0]);
  const work = [0];
  let decoded = 0;
  while (work.length > 0) {
    const off = work.shift()!;
    const insns = decodeBlock(mem, host + off, layout);
    decoded += insns.length;
    if (insns.length === 0) continue;
    for (const t of successors(insns, off)) {
      if (t <= 0 || t >= pageLeft || leaders.has(t) || (t & 1) !== 0) continue;
      if (leaders.size >= maxBlocks || decoded >= MAX_REGION_INSNS) continue;
      leaders.add(t);
      work.push(t);
    }
  }
  const starts = [...leaders].sort((a, b) => a - b);
  const blocks: Region['blocks'] = [];
  let span = 0;
  let total = 0;
  starts.forEach((off, i) => {
    const next = starts[i + 1] ?? Infinity;
    const all = decodeBlock(mem, host + off, layout);
    let n = 0;
    while (n < all.length && off + all[n]!.off + all[n]!.len <= next) n++;
    if (n === 0) return; // untranslatable, or a leader inside its first instruction
    const insns = all.slice(0, n).map((x) => ({ ...x, off: off + x.off }));
    blocks.push({ off, insns });
    const last = insns[n - 1]!;
    span = Math.max(span, last.off + last.len);
    total += n;
  });
  if (blocks.length === 0 || blocks[0]!.off !== 0) return null;
  return { blocks, span, insns: total };
}

/**
 * Emits the function body for `region` (from decodeRegion), whose entry is at host address
 * `host` (where its successors in the same page are).
 *
 * Layout: the guest registers the region uses are loaded into locals once, then
 *   loop $top; block X[n-1] … block X[1]; [block X[0]; br_table on L_IDX; end]; code 0; end;
 *   code 1; end … code n-1; end $top
 * so a branch to a later block is a `br` to the label whose end precedes its code (a fall into
 * the next block needs nothing), and a branch back sets L_IDX and goes to $top (the br_table is
 * left out when every back edge goes to the entry). L_RETIRED counts what the blocks before the
 * current one retired in this call; each intra-region edge adds the block's count and leaves
 * for the core when the budget is spent, as a chained exit would, so a region never runs past
 * its budget by more than one block. Exits store every register the region writes (one it did
 * not write on the path taken still holds the value loaded at entry).
 */
export function emitRegion(region: Region, layout: CoreLayout, host: number): ByteWriter {
  const w = new ByteWriter();
  const used = new Set<number>();
  const written = new Set<number>();
  const all = region.blocks.flatMap((b) => b.insns);
  for (const { bits } of all) {
    const op = bits & 0x7f;
    const rd = (bits >>> 7) & 31;
    const rs1 = (bits >>> 15) & 31;
    const rs2 = (bits >>> 20) & 31;
    if (op === 0x0f) continue;
    if (op === 0x73) {
      if (((bits >>> 12) & 7) < 4) used.add(rs1); // the immediate forms read no register
      if (rd !== 0) {
        used.add(rd);
        written.add(rd);
      }
      continue;
    }
    if (op === 0x07 || op === 0x27) {
      used.add(rs1); // the address; the data register is an FP one (kept in memory)
      continue;
    }
    if (op === 0x53 || op === 0x43 || op === 0x47 || op === 0x4b || op === 0x4f) {
      const inline = inlineFp(bits);
      if ((inline && bits >>> 27 === 0x1e) || fpReadsX(bits)) used.add(rs1);
      if (((inline && bits >>> 27 === 0x1c) || fpWritesX(bits)) && rd !== 0) {
        used.add(rd);
        written.add(rd);
      }
      continue; // everything else touches FP registers only
    }
    if (op !== 0x37 && op !== 0x17 && op !== 0x6f) used.add(rs1);
    if (op === 0x23 || op === 0x63 || op === 0x33 || op === 0x3b || op === 0x2f) used.add(rs2);
    if (op !== 0x23 && op !== 0x63 && rd !== 0) {
      used.add(rd);
      written.add(rd);
    }
  }
  used.delete(0);
  for (const r of used) {
    w.i32c(layout.xregs + r * 8)
      .mem(Op.i64_load, 3, 0)
      .set(L_REG0 + r);
  }

  const get = (r: number) => (r === 0 ? w.i64c(0n) : w.get(L_REG0 + r));
  const pcPlus = (d: number) => () => {
    w.get(L_VPC);
    if (d !== 0) w.i64c(BigInt(d)).op(Op.i64_add);
  };
  const writeBack = () => {
    for (const r of written)
      w.i32c(layout.xregs + r * 8)
        .get(L_REG0 + r)
        .mem(Op.i64_store, 3, 0);
  };
  /** Pushes the budget left after the first k instructions of this pass. */
  const left = (k: number) => {
    w.get(L_BUDGET).get(L_RETIRED);
    if (k !== 0) w.i32c(k).op(Op.i32_add);
    w.op(Op.i32_sub);
  };
  // Structured instructions open inside the current block's code, and the block's index: a
  // branch to the shared exits or to another block counts its labels from these.
  let nest = 0;
  let cur = 0;
  const n = region.blocks.length;
  const open = () => {
    w.byte(Op.if).byte(VOID);
    nest++;
  };
  const close = () => {
    w.op(Op.end);
    nest--;
  };
  const brTop = () => w.byte(Op.br).u32(nest + n - 1 - cur);
  /** To the tail that tail-calls the chain helper with L_PCX and L_LEFT. */
  const brHelper = () => w.byte(Op.br).u32(nest + n - cur);
  /** To the tail that returns (L_PCX, L_LEFT, L_SLOT) with L_PCX also in JIT_STATE. */
  const brExit = () => w.byte(Op.br).u32(nest + n - cur + 1);
  /** Leaves the region for the core after k instructions of the current block, at pc. */
  const exit = (k: number, pc: () => void) => {
    pc();
    w.set(L_PCX);
    left(k);
    w.set(L_LEFT);
    brExit();
  };
  /**
   * Leaves the block after k instructions for pc-relative `target`, into its translation when
   * it has a current one and budget is left (see "Chaining" above), else for the core.
   */
  const exitChained = (k: number, target: number) => {
    left(k);
    w.set(L_LEFT);
    pcPlus(target)();
    w.set(L_PCX);
    const pageOff = (host & 0xfff) + target;
    if (pageOff < 0 || pageOff >= 4096) {
      brHelper();
      return;
    }
    const next = (host + target) >>> 0;
    const e = mapEntry(layout.map, next);
    w.i32c(e).mem(Op.i32_load, 2, ENTRY_STATE).byte(Op.local_tee).u32(L_ENTRY);
    w.i32c(0).op(Op.i32_gt_s);
    w.i32c(e)
      .mem(Op.i32_load, 2, 0)
      .i32c(next | 0)
      .op(I32_EQ)
      .op(Op.i32_and);
    w.i32c(e).mem(Op.i32_load, 2, ENTRY_EPOCH);
    w.i32c(layout.jitState).mem(Op.i32_load, 2, STATE_EPOCH).op(I32_EQ).op(Op.i32_and);
    w.get(L_LEFT).i32c(0).op(Op.i32_gt_s).op(Op.i32_and);
    open();
    countChained(w, layout);
    w.get(L_ENTRY).set(L_SLOT);
    close();
    brExit();
  };
  /** As exitChained for a computed target (in L_ADDR): the chain helper looks it up. */
  const exitChainedTo = (k: number) => {
    w.get(L_ADDR).set(L_PCX);
    left(k);
    w.set(L_LEFT);
    brHelper();
  };
  /** Computes a value (pushed by `value`) into rd; for rd = x0 only what must happen happens. */
  const setRd = (rd: number, value: () => void) => {
    if (rd === 0) return;
    value();
    w.set(L_REG0 + rd);
  };
  const tlbCheck = (tlb: number, size: number) => {
    w.i32c(tlb).get(L_ADDR).i64c(8n).op(Op.i64_shr_u).op(Op.i32_wrap_i64).i32c(TLB_INDEX_MASK);
    w.op(Op.i32_and).op(Op.i32_add).byte(Op.local_tee).u32(L_ENTRY).mem(Op.i64_load, 3, 0);
    w.get(L_ADDR)
      .i64c(PAGE_MASK | BigInt(size - 1))
      .op(Op.i64_and)
      .get(L_CTX)
      .op(Op.i64_or);
    w.op(Op.i64_eq);
    open();
    w.get(L_ENTRY).mem(Op.i64_load, 3, 8).get(L_ADDR).op(Op.i64_add).op(Op.i32_wrap_i64);
  };
  // The interpreter counts a load or store that faults in instret (it undoes the count only for
  // illegal instructions), so a faulting access counts here too: both agree to the instruction.
  const faultCheck = (k: number, o: number) => {
    w.i32c(layout.jitState).mem(Op.i32_load, 2, 8);
    open();
    exit(k + 1, pcPlus(o));
    close();
  };
  /**
   * After instruction k's slow-path access (at `next` its successor): leaves when the access
   * asked the core for attention (JIT_LEAVE, set by the core's slow paths: an interrupt an MMIO
   * access raised, tohost), after `before` (rd's write); else the block goes on, as the
   * interpreter goes on to the next instruction. A TLB refill or a quiet MMIO access used to
   * end the block, and what followed ran interpreted up to a translated block start.
   */
  const leaveIfAsked = (k: number, next: number, before?: () => void) => {
    w.i32c(layout.leave).mem(Op.i32_load, 2, 0);
    open();
    before?.();
    exit(k + 1, pcPlus(next));
    close();
  };

  /** Pushes the physical address of host address L_HOST (in RAM, or also the boot ROM). */
  const physOfHost = (mayBeRom: boolean) => {
    w.get(L_HOST).op(Op.i64_extend_i32_u).i64c(layout.ramPa).op(Op.i64_add);
    if (!mayBeRom) return;
    w.get(L_HOST).op(Op.i64_extend_i32_u).i64c(layout.romPa).op(Op.i64_add);
    w.get(L_HOST).i32c(layout.ramHost).op(Op.i32_ge_u).op(Op.select);
  };
  /** Pushes the value an AMO stores, from the old value (L_VAL, sign-extended for .W) and rs2. */
  const amoValue = (f5: number, rs2: number, word: boolean) => {
    const both = () => {
      w.get(L_VAL);
      get(rs2);
    };
    if (f5 === 0x01) get(rs2);
    else if (f5 === 0x00 || f5 === 0x04 || f5 === 0x08 || f5 === 0x0c) {
      both();
      w.op(f5 === 0 ? Op.i64_add : f5 === 4 ? Op.i64_xor : f5 === 8 ? Op.i64_or : Op.i64_and);
    } else {
      // MIN, MAX, MINU, MAXU: keep the old value when it compares as wanted, else rs2.
      both();
      if (word) {
        w.get(L_VAL).op(Op.i32_wrap_i64);
        get(rs2).op(Op.i32_wrap_i64);
        w.op({ 0x10: Op.i32_lt_s, 0x14: Op.i32_gt_s, 0x18: Op.i32_lt_u }[f5] ?? Op.i32_gt_u);
      } else {
        both();
        w.op({ 0x10: Op.i64_lt_s, 0x14: Op.i64_gt_s, 0x18: Op.i64_lt_u }[f5] ?? Op.i64_gt_u);
      }
      w.op(Op.select);
    }
  };

  const index = new Map(region.blocks.map((b, i) => [b.off, i]));
  // Whether a back edge goes to a block other than the entry (then $top dispatches on L_IDX).
  // A block that branches to itself loops in a Wasm loop of its own (no dispatch, and what
  // V8 compiles best: the hot loop of most code); other back edges go through $top.
  const selfLoops = region.blocks.map(({ insns, off }) => successors(insns, 0).includes(off));
  const dispatch = region.blocks.some(({ insns }, i) =>
    successors(insns, 0).some((t) => (index.get(t) ?? -1) > 0 && index.get(t)! < i),
  );
  w.byte(Op.block).byte(VOID); // the exit tail follows its end
  w.byte(Op.block).byte(VOID); // the chain helper tail follows its end
  w.byte(Op.loop).byte(VOID);
  for (let j = n - 1; j >= 1; j--) w.byte(Op.block).byte(VOID);
  if (dispatch) {
    w.byte(Op.block).byte(VOID).get(L_IDX).byte(Op.br_table).u32(n);
    for (let j = 0; j < n; j++) w.u32(j);
    w.u32(0).op(Op.end);
  }

  /**
   * The edge of the current block after its first k instructions to pc-relative `target`: a
   * branch inside the region, or a chained exit.
   */
  const edge = (k: number, target: number) => {
    const j = index.get(target);
    if (j === undefined) return exitChained(k, target);
    w.get(L_RETIRED).i32c(k).op(Op.i32_add).byte(Op.local_tee).u32(L_RETIRED);
    w.get(L_BUDGET).op(Op.i32_ge_s);
    open();
    exit(0, pcPlus(target));
    close();
    if (j === cur && selfLoops[cur]) {
      w.byte(Op.br).u32(nest - 1); // the block's own loop
      return;
    }
    if (j > cur) {
      if (j === cur + 1 && nest === 0) return; // its code follows
      w.byte(Op.br).u32(nest + j - cur - 1);
      return;
    }
    if (dispatch) w.i32c(j).set(L_IDX);
    brTop();
  };

  // mstatus.FS is checked once a block, before its first FP access: nothing in a block can turn
  // it off. The first FP load marks it Dirty (the check and the marking are calls into the core).
  // Per block, since a block may be reached without passing the others.
  let fpChecked = false;
  let fpDirtied = false;
  const fpCheck = (k: number, off: number, raw: number) => {
    if (fpChecked) return;
    fpChecked = true;
    w.i32c(raw).byte(Op.call).u32(IMPORT_FP_CHECK).op(Op.i32_eqz);
    open();
    exit(k, pcPlus(off)); // illegal instruction: not counted, the core takes the trap
    close();
  };
  const setFreg = (rd: number, word: boolean) => {
    w.i32c(layout.fregs + rd * 8).get(L_VAL);
    if (word) w.i64c(-(1n << 32n)).op(Op.i64_or); // NaN-boxed
    w.mem(Op.i64_store, 3, 0);
  };
  /** After an FP register write that cannot fault: FS = Dirty, once per block. */
  const markDirty = () => {
    if (!fpDirtied) w.byte(Op.call).u32(IMPORT_FP_DIRTY);
    fpDirtied = true;
  };
  const rawFreg = (r: number) => w.i32c(layout.fregs + r * 8).mem(Op.i64_load, 3, 0);
  /** Pushes f[r] as an operand (fpu.ts readF): a badly NaN-boxed single reads as the canonical NaN. */
  const readFreg = (r: number, single: boolean) => {
    rawFreg(r);
    if (!single) return;
    w.set(L_T);
    w.get(L_T).i64c(LOW32).op(Op.i64_and).i64c(CANON_NAN_S);
    w.get(L_T)
      .i64c(-(1n << 32n))
      .op(Op.i64_and)
      .i64c(-(1n << 32n))
      .op(Op.i64_eq);
    w.op(Op.select);
  };

  /** Emits instruction k of the current block (at region offset `off`). */
  const emitInsn = (bits: number, raw: number, off: number, len: number, k: number) => {
    const op = bits & 0x7f;
    const rd = (bits >>> 7) & 31;
    const rs1 = (bits >>> 15) & 31;
    const rs2 = (bits >>> 20) & 31;
    const f3 = (bits >>> 12) & 7;
    const f7 = bits >>> 25;
    const immI = bits >> 20;
    const zb = decodeBitmanip(bits);
    if (translatable(zb)) {
      setRd(rd, () => {
        get(rs1).set(L_A);
        if (readsRs2(zb)) get(rs2).set(L_B);
        emitBitmanip(w, zb, bits, { a: L_A, b: L_B, t: L_T });
      });
      return;
    }
    switch (op) {
      case 0x37:
        setRd(rd, () => w.i64c((BigInt(bits & 0xfffff000) << 32n) >> 32n));
        break;
      case 0x17:
        setRd(rd, pcPlus(off + (bits & 0xfffff000)));
        break;
      case 0x13: {
        const shamt = (bits >>> 20) & 63;
        setRd(rd, () => {
          get(rs1);
          if (f3 === 1 || f3 === 5) w.i64c(BigInt(shamt));
          else w.i64c(BigInt(immI));
          if (f3 === 0) w.op(Op.i64_add);
          else if (f3 === 1) w.op(Op.i64_shl);
          else if (f3 === 2) w.op(Op.i64_lt_s).op(Op.i64_extend_i32_u);
          else if (f3 === 3) w.op(Op.i64_lt_u).op(Op.i64_extend_i32_u);
          else if (f3 === 4) w.op(Op.i64_xor);
          else if (f3 === 5) w.op(bits >>> 26 === 0 ? Op.i64_shr_u : Op.i64_shr_s);
          else if (f3 === 6) w.op(Op.i64_or);
          else w.op(Op.i64_and);
        });
        break;
      }
      case 0x1b: {
        const shamt = (bits >>> 20) & 31;
        setRd(rd, () => {
          if (f3 === 0) get(rs1).i64c(BigInt(immI)).op(Op.i64_add).op(Op.i64_extend32_s);
          else if (f3 === 1) get(rs1).i64c(BigInt(shamt)).op(Op.i64_shl).op(Op.i64_extend32_s);
          else {
            get(rs1).op(Op.i32_wrap_i64).i32c(shamt);
            w.op(f7 === 0 ? Op.i32_shr_u : Op.i32_shr_s).op(Op.i64_extend_i32_s);
          }
        });
        break;
      }
      case 0x33:
        setRd(rd, () => {
          get(rs1).set(L_A);
          get(rs2).set(L_B);
          if (f7 === 1 && f3 >= 4) return emitDiv64(w, f3);
          if (f7 === 1 && f3 !== 0) return emitMulHigh(w, f3);
          w.get(L_A).get(L_B);
          if (f7 === 1) w.op(Op.i64_mul);
          else if (f7 === 0x20) w.op(f3 === 0 ? Op.i64_sub : Op.i64_shr_s);
          else {
            const ops = [
              Op.i64_add,
              Op.i64_shl,
              Op.i64_lt_s,
              Op.i64_lt_u,
              Op.i64_xor,
              Op.i64_shr_u,
              Op.i64_or,
              Op.i64_and,
            ];
            w.op(ops[f3]!);
            if (f3 === 2 || f3 === 3) w.op(Op.i64_extend_i32_u);
          }
        });
        break;
      case 0x3b:
        setRd(rd, () => {
          get(rs1).set(L_A);
          get(rs2).set(L_B);
          if (f7 === 1 && f3 >= 4) return emitDiv32(w, f3);
          w.get(L_A).op(Op.i32_wrap_i64).get(L_B).op(Op.i32_wrap_i64);
          if (f7 === 1) w.op(Op.i32_mul);
          else if (f7 === 0x20) w.op(f3 === 0 ? 0x6b /* i32.sub */ : Op.i32_shr_s);
          else w.op(f3 === 0 ? Op.i32_add : f3 === 1 ? Op.i32_shl : Op.i32_shr_u);
          w.op(Op.i64_extend_i32_s);
        });
        break;
      case 0x03: {
        const size = 1 << (f3 & 3);
        get(rs1).i64c(BigInt(immI)).op(Op.i64_add).set(L_ADDR);
        tlbCheck(layout.tlbLoad, size);
        const loads = [
          Op.i64_load8_s,
          Op.i64_load16_s,
          Op.i64_load32_s,
          Op.i64_load,
          Op.i64_load8_u,
          Op.i64_load16_u,
          Op.i64_load32_u,
        ];
        w.mem(loads[f3]!, 0, 0).set(L_VAL);
        w.op(Op.else);
        w.get(L_ADDR).i32c(size).byte(Op.call).u32(IMPORT_LOAD_SLOW);
        if (f3 < 3) w.op([Op.i64_extend8_s, Op.i64_extend16_s, Op.i64_extend32_s][f3]!);
        w.set(L_VAL);
        faultCheck(k, off);
        leaveIfAsked(k, off + len, () => setRd(rd, () => w.get(L_VAL)));
        close();
        setRd(rd, () => w.get(L_VAL));
        break;
      }
      case 0x23: {
        const size = 1 << f3;
        const imm = ((bits >> 25) << 5) | ((bits >>> 7) & 31);
        get(rs1).i64c(BigInt(imm)).op(Op.i64_add).set(L_ADDR);
        tlbCheck(layout.tlbStore, size);
        get(rs2);
        w.mem([Op.i64_store8, Op.i64_store16, Op.i64_store32, Op.i64_store][f3]!, 0, 0);
        w.op(Op.else);
        w.get(L_ADDR).i32c(size);
        get(rs2);
        w.byte(Op.call).u32(IMPORT_STORE_SLOW);
        faultCheck(k, off);
        leaveIfAsked(k, off + len);
        close();
        break;
      }
      case 0x2f: {
        // LR, SC, AMOs. The inline path needs the page in the TLB (load TLB for LR, store TLB,
        // whose pages are plain RAM with D set, for the others) and natural alignment (the tag
        // compare checks both); everything else goes to the core's jitAtomicSlow, which does
        // what the interpreter does and faults like it, and then the block is left.
        const f5 = bits >>> 27;
        const word = f3 === 2;
        const [load, store, align] = word
          ? [Op.i64_load32_s, Op.i64_store32, 2]
          : [Op.i64_load, Op.i64_store, 3];
        get(rs1).set(L_ADDR);
        tlbCheck(f5 === 2 ? layout.tlbLoad : layout.tlbStore, word ? 4 : 8);
        w.set(L_HOST);
        const res = layout.reservation;
        if (f5 === 2) {
          w.get(L_HOST).mem(load, align, 0).set(L_VAL);
          w.i32c(res);
          physOfHost(true);
          w.mem(Op.i64_store, 3, 0);
          w.i32c(res).i32c(1).mem(Op.i32_store, 2, 8);
        } else if (f5 === 3) {
          // Succeeds only with a valid reservation of this physical address; clears it anyway.
          w.i32c(res).mem(Op.i32_load, 2, 8);
          w.i32c(res).mem(Op.i64_load, 3, 0);
          physOfHost(false);
          w.op(Op.i64_eq).op(Op.i32_and).set(L_ENTRY);
          w.i32c(res).i32c(0).mem(Op.i32_store, 2, 8);
          w.get(L_ENTRY).byte(Op.if).byte(VOID);
          w.get(L_HOST);
          get(rs2);
          w.mem(store, align, 0);
          w.op(Op.end);
          w.get(L_ENTRY).op(Op.i32_eqz).op(Op.i64_extend_i32_u).set(L_VAL);
        } else {
          w.get(L_HOST).mem(load, align, 0).set(L_VAL);
          w.get(L_HOST);
          amoValue(f5, rs2, word);
          w.mem(store, align, 0);
        }
        w.op(Op.else);
        w.i32c(bits).get(L_ADDR);
        get(rs2);
        w.byte(Op.call).u32(IMPORT_ATOMIC_SLOW).set(L_VAL);
        faultCheck(k, off);
        leaveIfAsked(k, off + len, () => setRd(rd, () => w.get(L_VAL)));
        close();
        setRd(rd, () => w.get(L_VAL));
        break;
      }
      case 0x07: {
        const word = f3 === 2;
        fpCheck(k, off, raw);
        get(rs1).i64c(BigInt(immI)).op(Op.i64_add).set(L_ADDR);
        tlbCheck(layout.tlbLoad, word ? 4 : 8);
        w.mem(word ? Op.i64_load32_u : Op.i64_load, 0, 0).set(L_VAL);
        w.op(Op.else);
        w.get(L_ADDR)
          .i32c(word ? 4 : 8)
          .byte(Op.call)
          .u32(IMPORT_LOAD_SLOW)
          .set(L_VAL);
        faultCheck(k, off);
        setFreg(rd, word);
        w.byte(Op.call).u32(IMPORT_FP_DIRTY);
        exit(k + 1, pcPlus(off + len));
        close();
        setFreg(rd, word);
        markDirty();
        break;
      }
      case 0x73: {
        // CSR instructions run in the core (jitCsr: the interpreter's csrRead/csrWrite). If the
        // access asked for attention the block leaves after it, as the interpreter would look.
        w.i32c(bits);
        if (f3 >= 5) w.i64c(BigInt(rs1));
        else get(rs1);
        // Retired so far: in this block (a self-loop adds up) and in the blocks of the chain
        // before it, which is what the budget the core gave the chain lost until this block.
        w.get(L_RETIRED).i32c(k).op(Op.i32_add);
        w.i32c(layout.jitState).mem(Op.i32_load, 2, STATE_BUDGET).get(L_BUDGET).op(Op.i32_sub);
        w.op(Op.i32_add);
        w.i32c(raw).byte(Op.call).u32(IMPORT_CSR).set(L_VAL);
        faultCheck(k - 1, off); // illegal: not counted, so k retired
        setRd(rd, () => w.get(L_VAL));
        w.i32c(layout.leave).mem(Op.i32_load, 2, 0);
        open();
        exit(k + 1, pcPlus(off + len));
        close();
        break;
      }
      case 0x43:
      case 0x47:
      case 0x4b:
      case 0x4f:
      case 0x53: {
        const f5 = bits >>> 27;
        const single = ((bits >>> 25) & 3) === 0;
        fpCheck(k, off, raw);
        if (!inlineFp(bits)) {
          // The interpreter's own execFp: the same bits, flags and FS marking. It works on the
          // core's registers, so an x register it reads goes to memory first and one it writes
          // comes back. An encoding it rejects (fmt, rm, frm) is an illegal instruction.
          const x = (r: number) => layout.xregs + r * 8;
          if (fpReadsX(bits) && rs1 !== 0)
            w.i32c(x(rs1))
              .get(L_REG0 + rs1)
              .mem(Op.i64_store, 3, 0);
          w.i32c(bits).i32c(raw).byte(Op.call).u32(IMPORT_FP_OP);
          w.op(Op.i32_eqz);
          open();
          exit(k, pcPlus(off));
          close();
          if (fpWritesX(bits) && rd !== 0)
            w.i32c(x(rd))
              .mem(Op.i64_load, 3, 0)
              .set(L_REG0 + rd);
          break;
        }
        if (f5 === 0x1c) {
          // FMV.X.W takes the raw low 32 bits (no unboxing), sign-extended. FS stays as it is.
          setRd(rd, () => {
            rawFreg(rs1);
            if (single) w.op(Op.i64_extend32_s);
          });
          break;
        }
        if (f5 === 0x1e) {
          get(rs1).set(L_VAL);
          setFreg(rd, single);
          markDirty();
          break;
        }
        // FSGNJ (f3 0), FSGNJN (1), FSGNJX (2): the sign from rs2, its complement, or their xor.
        const sign = single ? 0x8000_0000n : -(1n << 63n);
        readFreg(rs1, single);
        w.set(L_A);
        readFreg(rs2, single);
        w.set(L_B);
        if (f3 === 2) {
          w.get(L_A).get(L_B).i64c(sign).op(Op.i64_and).op(Op.i64_xor);
        } else {
          w.get(L_A).i64c(~sign).op(Op.i64_and).get(L_B);
          if (f3 === 1) w.i64c(-1n).op(Op.i64_xor);
          w.i64c(sign).op(Op.i64_and).op(Op.i64_or);
        }
        w.set(L_VAL);
        setFreg(rd, single);
        markDirty();
        break;
      }
      case 0x27: {
        const word = f3 === 2;
        const imm = ((bits >> 25) << 5) | ((bits >>> 7) & 31);
        const freg = () => w.i32c(layout.fregs + rs2 * 8).mem(Op.i64_load, 3, 0);
        fpCheck(k, off, raw);
        get(rs1).i64c(BigInt(imm)).op(Op.i64_add).set(L_ADDR);
        tlbCheck(layout.tlbStore, word ? 4 : 8);
        freg();
        w.mem(word ? Op.i64_store32 : Op.i64_store, 0, 0);
        w.op(Op.else);
        w.get(L_ADDR).i32c(word ? 4 : 8);
        freg();
        w.byte(Op.call).u32(IMPORT_STORE_SLOW);
        faultCheck(k, off);
        exit(k + 1, pcPlus(off + len));
        close();
        break;
      }
      case 0x63: {
        const target = off + branchImm(bits);
        get(rs1);
        get(rs2);
        w.op([Op.i64_eq, Op.i64_ne, 0, 0, Op.i64_lt_s, Op.i64_ge_s, Op.i64_lt_u, Op.i64_ge_u][f3]!);
        open();
        edge(k + 1, target);
        close();
        edge(k + 1, off + len);
        break;
      }
      case 0x6f:
        setRd(rd, pcPlus(off + len));
        edge(k + 1, off + jalImm(bits));
        break;
      case 0x67: {
        get(rs1).i64c(BigInt(immI)).op(Op.i64_add).i64c(-2n).op(Op.i64_and).set(L_ADDR);
        setRd(rd, pcPlus(off + len));
        exitChainedTo(k + 1);
        break;
      }
    }
  };

  /**
   * A run of accesses sharing one TLB check (accessGroups) starting at instruction k: checks
   * once that the whole span is in one page that the TLB holds, and if so does every access
   * of the run straight on its host address; else the run's own code (each access checked,
   * slow paths, faults) follows, in the `else` that the run's last instruction closes.
   */
  const openGroup = (insns: Insn[], g: AccessGroup) => {
    const first = insns[g.start]!.bits;
    const tlb = (first & 0x7f) === 0x03 ? layout.tlbLoad : layout.tlbStore;
    get((first >>> 15) & 31)
      .i64c(BigInt(g.lo))
      .op(Op.i64_add)
      .set(L_ADDR);
    w.i32c(tlb).get(L_ADDR).i64c(8n).op(Op.i64_shr_u).op(Op.i32_wrap_i64).i32c(TLB_INDEX_MASK);
    w.op(Op.i32_and).op(Op.i32_add).byte(Op.local_tee).u32(L_ENTRY).mem(Op.i64_load, 3, 0);
    w.get(L_ADDR).i64c(PAGE_MASK).op(Op.i64_and).get(L_CTX).op(Op.i64_or).op(Op.i64_eq);
    w.get(L_ADDR).op(Op.i32_wrap_i64).i32c(0xfff).op(Op.i32_and).i32c(g.span);
    w.op(Op.i32_add).i32c(0x1000).op(I32_LE_U).op(Op.i32_and);
    open();
    w.get(L_ENTRY).mem(Op.i64_load, 3, 8).get(L_ADDR).op(Op.i64_add).op(Op.i32_wrap_i64);
    w.set(L_HOST);
    for (let k = g.start; k <= g.end; k++) {
      const { bits, raw, off, len } = insns[k]!;
      const f3 = (bits >>> 12) & 7;
      if (PURE_OPS.has(bits & 0x7f)) {
        emitInsn(bits, raw, off, len, k); // no exits: the same code in both paths
      } else if ((bits & 0x7f) === 0x03) {
        const rd = (bits >>> 7) & 31;
        const delta = (bits >> 20) - g.lo;
        setRd(rd, () => w.get(L_HOST).mem(LOADS[f3]!, 0, delta));
      } else {
        const delta = (((bits >> 25) << 5) | ((bits >>> 7) & 31)) - g.lo;
        w.get(L_HOST);
        get((bits >>> 20) & 31);
        w.mem([Op.i64_store8, Op.i64_store16, Op.i64_store32, Op.i64_store][f3]!, 0, delta);
      }
    }
    w.op(Op.else);
  };

  region.blocks.forEach(({ insns }, b) => {
    cur = b;
    fpChecked = false;
    fpDirtied = false;
    if (selfLoops[b]) {
      w.byte(Op.loop).byte(VOID);
      nest = 1;
    }
    const groups = accessGroups(insns);
    let groupEnd = -1;
    insns.forEach(({ bits, raw, off, len }, k) => {
      const group = groups.get(k);
      if (group) {
        openGroup(insns, group);
        groupEnd = group.end;
      }
      emitInsn(bits, raw, off, len, k);
      if (k === groupEnd) close();
    });
    const last = insns[insns.length - 1]!;
    if (!isTerminator(last.bits)) edge(insns.length, last.off + last.len);
    if (selfLoops[b]) {
      w.op(Op.end);
      nest = 0;
    }
    if (b < n - 1) w.op(Op.end); // X[b + 1]: the next block's code follows
  });
  w.op(Op.end); // $top
  w.byte(0x00); // unreachable: every path above branched to a tail
  w.op(Op.end);
  writeBack();
  w.get(L_PCX).get(L_CTX).get(L_LEFT).byte(Op.return_call).u32(FUNC_CHAIN);
  w.op(Op.end);
  writeBack();
  w.i32c(layout.jitState).get(L_PCX).mem(Op.i64_store, 3, 0);
  w.get(L_SLOT);
  open();
  w.get(L_PCX).get(L_CTX).get(L_LEFT).get(L_SLOT).byte(Op.return_call).u32(FUNC_GO);
  close();
  w.get(L_PCX).get(L_LEFT).i32c(0);
  return w;
}

/**
 * The body of a module's go function (FUNC_GO): hands a found successor (`slot`) on. A batch
 * module returns it to the dispatcher's loop, which calls it; a merged module (few, and they
 * import the dispatcher's table) tail-calls it through the table, so a chain through merged
 * code does not return to the dispatcher between blocks.
 */
export function emitGo(tailCall: boolean): ByteWriter {
  const w = new ByteWriter();
  if (!tailCall) return w.get(0).get(2).get(3);
  return w.get(0).get(1).get(2).get(3).byte(Op.return_call_indirect).u32(TYPE_BLOCK).u32(0);
}

/** JIT_STATE's count of chained block entries, plus one. */
function countChained(w: ByteWriter, layout: CoreLayout): void {
  w.i32c(layout.jitState).i32c(layout.jitState).mem(Op.i64_load, 3, STATE_CHAINED);
  w.i64c(1n).op(Op.i64_add).mem(Op.i64_store, 3, STATE_CHAINED);
}

// The chain helper's locals: params vpc, ctx, left; then these.
const H_TLB = 3;
const H_HOST = 4;
const H_ENTRY = 5;
const H_SLOT = 6;
export const CHAIN_HELPER_LOCALS = [I32, I32, I32, I32];

/**
 * The body of the batch module's chain helper (a block's type), tail-called by a block exit
 * whose target is computed or in another page: returns the slot of the block at vpc if budget
 * is left, vpc's page is in the fetch TLB under the core's fetch context, and the block map has
 * a translation of this epoch for that host address; else stores vpc as the next pc and returns
 * slot 0, for the core (which does a full fetch, page walk included).
 */
export function emitChainHelper(layout: CoreLayout): ByteWriter {
  const w = new ByteWriter();
  w.byte(Op.block).byte(VOID);
  w.get(L_BUDGET).i32c(0).op(Op.i32_le_s).byte(Op.br_if).u32(0);
  // The fetch TLB entry: tag (page | context), then host address minus virtual address.
  w.i32c(layout.tlbFetch).get(L_VPC).i64c(8n).op(Op.i64_shr_u).op(Op.i32_wrap_i64);
  w.i32c(TLB_INDEX_MASK).op(Op.i32_and).op(Op.i32_add).byte(Op.local_tee).u32(H_TLB);
  w.mem(Op.i64_load, 3, 0).get(L_VPC).i64c(PAGE_MASK).op(Op.i64_and);
  w.i32c(layout.jitState).mem(Op.i64_load, 3, STATE_FETCH_CTX).op(Op.i64_or);
  w.op(Op.i64_ne).byte(Op.br_if).u32(0);
  w.get(H_TLB).mem(Op.i64_load, 3, 8).get(L_VPC).op(Op.i64_add).op(Op.i32_wrap_i64).set(H_HOST);
  // Its block map entry (mapEntry).
  w.get(H_HOST).i32c(1).op(Op.i32_shr_u).get(H_HOST).i32c(17).op(Op.i32_shr_u).op(Op.i32_xor);
  w.i32c(MAP_MASK).op(Op.i32_and).i32c(MAP_ENTRY_SHIFT).op(Op.i32_shl);
  w.i32c(layout.map).op(Op.i32_add).byte(Op.local_tee).u32(H_ENTRY);
  w.mem(Op.i32_load, 2, 0).get(H_HOST).op(Op.i32_ne).byte(Op.br_if).u32(0);
  w.get(H_ENTRY).mem(Op.i32_load, 2, ENTRY_STATE).byte(Op.local_tee).u32(H_SLOT);
  w.i32c(0).op(Op.i32_le_s).byte(Op.br_if).u32(0);
  w.get(H_ENTRY).mem(Op.i32_load, 2, ENTRY_EPOCH);
  w.i32c(layout.jitState).mem(Op.i32_load, 2, STATE_EPOCH).op(Op.i32_ne).byte(Op.br_if).u32(0);
  countChained(w, layout);
  w.get(L_VPC).get(L_CTX).get(L_BUDGET).get(H_SLOT).byte(Op.return_call).u32(FUNC_GO);
  w.op(Op.end);
  w.i32c(layout.jitState).get(L_VPC).mem(Op.i64_store, 3, 0);
  w.i64c(0n).get(L_BUDGET).i32c(0);
  return w;
}

function jalImm(b: number): number {
  return sext(
    ((b >>> 31) << 20) | (b & 0xff000) | (((b >>> 20) & 1) << 11) | (((b >>> 21) & 0x3ff) << 1),
    21,
  );
}

function branchImm(b: number): number {
  return sext(
    ((b >>> 31) << 12) |
      (((b >>> 7) & 1) << 11) |
      (((b >>> 25) & 0x3f) << 5) |
      (((b >>> 8) & 0xf) << 1),
    13,
  );
}

const I32_EQ = 0x46;
const I32_LE_U = 0x4d;
/** Integer loads by funct3 (LB, LH, LW, LD, LBU, LHU, LWU), extending as RISC-V does. */
const LOADS = [
  Op.i64_load8_s,
  Op.i64_load16_s,
  Op.i64_load32_s,
  Op.i64_load,
  Op.i64_load8_u,
  Op.i64_load16_u,
  Op.i64_load32_u,
];

/**
 * Integer loads (or stores) of a block through the same base register, instructions start..end
 * (with integer arithmetic that leaves the base alone between them): one TLB check covers them when the bytes from base + lo to base + lo + span lie in
 * one page (a misaligned access inside a page is the same bytes of the same page to the
 * interpreter: mmu.ts vloadSlow/vstoreSlow). Function prologues and epilogues save and restore
 * registers this way, and copy loops move 8 doublewords a time.
 */
interface AccessGroup {
  start: number;
  end: number;
  lo: number;
  span: number;
}

/** A load's or store's base register, offset and size, or undefined for other instructions. */
function plainAccess(
  bits: number,
): { load: boolean; rs1: number; imm: number; size: number } | undefined {
  const op = bits & 0x7f;
  const f3 = (bits >>> 12) & 7;
  const rs1 = (bits >>> 15) & 31;
  if (op === 0x03) return { load: true, rs1, imm: bits >> 20, size: 1 << (f3 & 3) };
  if (op === 0x23)
    return { load: false, rs1, imm: ((bits >> 25) << 5) | ((bits >>> 7) & 31), size: 1 << f3 };
  return undefined;
}

/** Integer arithmetic (OP-IMM, OP, their W forms, LUI, AUIPC): translated without exits. */
const PURE_OPS = new Set([0x13, 0x1b, 0x33, 0x3b, 0x37, 0x17]);
/** Instructions of PURE_OPS a run of accesses may have between two of its accesses. */
const MAX_GROUP_GAP = 4;

/** The access groups of a block (AccessGroup), by the index of their first instruction. */
export function accessGroups(insns: { bits: number }[]): Map<number, AccessGroup> {
  const groups = new Map<number, AccessGroup>();
  let k = 0;
  while (k < insns.length) {
    const a = plainAccess(insns[k]!.bits);
    if (a === undefined) {
      k++;
      continue;
    }
    const members = [a];
    let end = k;
    // A load into the base register ends the run (the next would use the new base); so does
    // anything but integer arithmetic that leaves the base alone (between two of its accesses).
    let open = !(a.load && ((insns[k]!.bits >>> 7) & 31) === a.rs1);
    for (let j = k + 1; open && j < insns.length && j - end <= MAX_GROUP_GAP + 1; j++) {
      const bits = insns[j]!.bits;
      const b = plainAccess(bits);
      if (b === undefined) {
        if (!PURE_OPS.has(bits & 0x7f) || ((bits >>> 7) & 31) === a.rs1) break;
        continue;
      }
      if (b.load !== a.load || b.rs1 !== a.rs1) break;
      const next = [...members, b];
      const lo = Math.min(...next.map((m) => m.imm));
      const hi = Math.max(...next.map((m) => m.imm + m.size));
      if (hi - lo > 4096) break;
      members.push(b);
      end = j;
      if (b.load && ((bits >>> 7) & 31) === a.rs1) open = false;
    }
    if (members.length >= 2) {
      const lo = Math.min(...members.map((m) => m.imm));
      const hi = Math.max(...members.map((m) => m.imm + m.size));
      groups.set(k, { start: k, end, lo, span: hi - lo });
    }
    k = end + 1;
  }
  return groups;
}
const LOW32 = 0xffff_ffffn;
const CANON_NAN_S = 0x7fc0_0000n;

/**
 * MULH (f3 1), MULHSU (2), MULHU (3): the high 64 bits of L_A × L_B. Wasm has no 64×64→128
 * multiply, so the unsigned product is built from 32-bit halves (each partial product fits in 64
 * bits), then corrected for signed operands as the interpreter does: a negative operand, read as
 * unsigned, adds 2^64 × the other, so the high word loses the other operand once.
 */
function emitMulHigh(w: ByteWriter, f3: number): void {
  const lo = (l: number) => w.get(l).i64c(LOW32).op(Op.i64_and);
  const hi = (l: number) => w.get(l).i64c(32n).op(Op.i64_shr_u);
  lo(L_A);
  lo(L_B);
  w.op(Op.i64_mul).i64c(32n).op(Op.i64_shr_u).set(L_VAL); // carry out of aL·bL
  lo(L_A);
  hi(L_B);
  w.op(Op.i64_mul).set(L_ADDR); // aL·bH
  hi(L_A);
  lo(L_B);
  w.op(Op.i64_mul).set(L_T); // aH·bL
  w.get(L_VAL);
  lo(L_ADDR);
  w.op(Op.i64_add);
  lo(L_T);
  w.op(Op.i64_add).set(L_VAL); // bits 32..95 of the product, below 3·2^32
  hi(L_A);
  hi(L_B);
  w.op(Op.i64_mul);
  hi(L_ADDR);
  w.op(Op.i64_add);
  hi(L_T);
  w.op(Op.i64_add);
  hi(L_VAL);
  w.op(Op.i64_add);
  if (f3 === 1 || f3 === 2) {
    w.get(L_A).i64c(63n).op(Op.i64_shr_s).get(L_B).op(Op.i64_and).op(Op.i64_sub);
  }
  if (f3 === 1) {
    w.get(L_B).i64c(63n).op(Op.i64_shr_s).get(L_A).op(Op.i64_and).op(Op.i64_sub);
  }
}

/** DIV, DIVU, REM, REMU of L_A by L_B with RISC-V's results for /0 and overflow. */
function emitDiv64(w: ByteWriter, f3: number): void {
  const signed = f3 === 4 || f3 === 6;
  const rem = f3 >= 6;
  w.get(L_B).op(Op.i64_eqz).byte(Op.if).byte(I64);
  if (rem) w.get(L_A);
  else w.i64c(-1n);
  w.op(Op.else);
  if (signed) {
    w.get(L_A)
      .i64c(-(1n << 63n))
      .op(Op.i64_eq)
      .get(L_B)
      .i64c(-1n)
      .op(Op.i64_eq)
      .op(Op.i32_and);
    w.byte(Op.if).byte(I64);
    if (rem) w.i64c(0n);
    else w.get(L_A);
    w.op(Op.else);
  }
  w.get(L_A)
    .get(L_B)
    .op(rem ? (signed ? Op.i64_rem_s : Op.i64_rem_u) : signed ? Op.i64_div_s : Op.i64_div_u);
  if (signed) w.op(Op.end);
  w.op(Op.end);
}

/** DIVW, DIVUW, REMW, REMUW (results sign-extended from 32 bits). */
function emitDiv32(w: ByteWriter, f3: number): void {
  const signed = f3 === 4 || f3 === 6;
  const rem = f3 >= 6;
  w.get(L_B).op(Op.i32_wrap_i64).op(Op.i32_eqz).byte(Op.if).byte(I64);
  if (rem) w.get(L_A).op(Op.i64_extend32_s);
  else w.i64c(-1n);
  w.op(Op.else);
  if (signed) {
    w.get(L_A).op(Op.i32_wrap_i64).i32c(-0x8000_0000).op(I32_EQ);
    w.get(L_B).op(Op.i32_wrap_i64).i32c(-1).op(I32_EQ).op(Op.i32_and);
    w.byte(Op.if).byte(I64);
    if (rem) w.i64c(0n);
    else w.get(L_A).op(Op.i64_extend32_s);
    w.op(Op.else);
  }
  w.get(L_A).op(Op.i32_wrap_i64).get(L_B).op(Op.i32_wrap_i64);
  w.op(rem ? (signed ? Op.i32_rem_s : Op.i32_rem_u) : signed ? Op.i32_div_s : Op.i32_div_u);
  w.op(Op.i64_extend_i32_s);
  if (signed) w.op(Op.end);
  w.op(Op.end);
}
