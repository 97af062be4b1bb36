/**
 * Zba, Zbb and Zbs for the block translator: which encodings they are (the same decoding as the
 * core's wasm-core/cpu/bitmanip.ts, which runs them interpreted) and their Wasm, inline.
 * Zbc's carry-less multiplies are left to the interpreter (a 64-step loop there; rare in kernels).
 */
import { Op, type ByteWriter } from './wasm-emitter.js';

/** Register-register forms (operands rs1, rs2). */
const RR_OPS = [
  'andn', 'orn', 'xnor', 'min', 'minu', 'max', 'maxu', 'rol', 'ror', 'rolw', 'rorw',
  'sh1add', 'sh2add', 'sh3add', 'add.uw', 'sh1add.uw', 'sh2add.uw', 'sh3add.uw',
  'bclr', 'bset', 'binv', 'bext', 'clmul',
] as const; // prettier-ignore
/** One-operand and immediate forms (operand rs1; the immediate from the encoding). */
type RiOp =
  | 'clz' | 'ctz' | 'cpop' | 'clzw' | 'ctzw' | 'cpopw' | 'sext.b' | 'sext.h' | 'zext.h' | 'orc.b'
  | 'rev8' | 'rori' | 'roriw' | 'slli.uw' | 'bclri' | 'bseti' | 'binvi' | 'bexti'; // prettier-ignore
/** clmul stands for clmul, clmulh and clmulr (f3 1, 3, 2), which are never translated. */
export type BitmanipOp = (typeof RR_OPS)[number] | RiOp;

/** The Zba/Zbb/Zbc/Zbs instruction `bits` encodes, or undefined (base ISA or illegal). */
export function decodeBitmanip(bits: number): BitmanipOp | undefined {
  const op = bits & 0x7f;
  const f3 = (bits >>> 12) & 7;
  const f7 = bits >>> 25;
  const f6 = bits >>> 26;
  const imm12 = bits >>> 20;
  const field = (bits >>> 20) & 31;
  if (op === 0x33) {
    if (f7 === 0x20) return ({ 7: 'andn', 6: 'orn', 4: 'xnor' } as const)[f3 as 4 | 6 | 7];
    if (f7 === 0x05) {
      if (f3 === 0) return undefined;
      if (f3 <= 3) return 'clmul';
      return (['min', 'minu', 'max', 'maxu'] as const)[f3 - 4];
    }
    if (f7 === 0x10) return ({ 2: 'sh1add', 4: 'sh2add', 6: 'sh3add' } as const)[f3 as 2 | 4 | 6];
    if (f7 === 0x30) return ({ 1: 'rol', 5: 'ror' } as const)[f3 as 1 | 5];
    if (f7 === 0x24) return ({ 1: 'bclr', 5: 'bext' } as const)[f3 as 1 | 5];
    if (f7 === 0x14 && f3 === 1) return 'bset';
    if (f7 === 0x34 && f3 === 1) return 'binv';
    return undefined;
  }
  if (op === 0x3b) {
    if (f7 === 0x04 && f3 === 0) return 'add.uw';
    if (f7 === 0x04 && f3 === 4 && field === 0) return 'zext.h';
    if (f7 === 0x10) {
      return ({ 2: 'sh1add.uw', 4: 'sh2add.uw', 6: 'sh3add.uw' } as const)[f3 as 2 | 4 | 6];
    }
    if (f7 === 0x30) return ({ 1: 'rolw', 5: 'rorw' } as const)[f3 as 1 | 5];
    return undefined;
  }
  if (op === 0x13) {
    if (f3 === 1) {
      const counts = {
        0x600: 'clz',
        0x601: 'ctz',
        0x602: 'cpop',
        0x604: 'sext.b',
        0x605: 'sext.h',
      };
      const c = (counts as Record<number, BitmanipOp>)[imm12];
      if (c) return c;
      return ({ 0x12: 'bclri', 0x0a: 'bseti', 0x1a: 'binvi' } as const)[f6 as 0x12 | 0x0a | 0x1a];
    }
    if (f3 === 5) {
      if (f6 === 0x18) return 'rori';
      if (f6 === 0x12) return 'bexti';
      if (imm12 === 0x287) return 'orc.b';
      if (imm12 === 0x6b8) return 'rev8';
    }
    return undefined;
  }
  if (op === 0x1b) {
    if (f3 === 1 && f6 === 0x02) return 'slli.uw';
    if (f3 === 1 && f7 === 0x30) return (['clzw', 'ctzw', 'cpopw'] as const)[field];
    if (f3 === 5 && f7 === 0x30) return 'roriw';
  }
  return undefined;
}

/** Whether the translator emits `op` inline (all but the carry-less multiplies). */
export const translatable = (op: BitmanipOp | undefined): op is Exclude<BitmanipOp, 'clmul'> =>
  op !== undefined && op !== 'clmul';

/** Whether `op` reads rs2. */
export const readsRs2 = (op: BitmanipOp): boolean => (RR_OPS as readonly string[]).includes(op);

/** Scratch locals (i64) of the translated function. */
export interface BitmanipLocals {
  /** rs1's value. */
  a: number;
  /** rs2's value (register forms). */
  b: number;
  /** Free for the sequence. */
  t: number;
}

const LOW32 = 0xffff_ffffn;

/** Pushes the result (i64) of `op` on rs1 in `l.a` and, for register forms, rs2 in `l.b`. */
export function emitBitmanip(
  w: ByteWriter,
  op: Exclude<BitmanipOp, 'clmul'>,
  bits: number,
  l: BitmanipLocals,
): void {
  const a = () => w.get(l.a);
  const b = () => w.get(l.b);
  const shamt = BigInt((bits >>> 20) & 63);
  const not = () => w.i64c(-1n).op(Op.i64_xor);
  const bit = () => w.i64c(1n).get(l.b).op(Op.i64_shl); // 1 << (rs2 mod 64)
  const bitImm = () => w.i64c(BigInt.asIntN(64, 1n << shamt));
  const word = () => a().op(Op.i32_wrap_i64);
  const shAdd = (n: bigint, uw: boolean) => {
    b();
    a();
    if (uw) w.i64c(LOW32).op(Op.i64_and);
    w.i64c(n).op(Op.i64_shl).op(Op.i64_add);
  };
  const pick = (cmp: number) => a().get(l.b).get(l.a).get(l.b).op(cmp).op(Op.select);
  switch (op) {
    case 'andn':
      return void (a(), b(), not(), w.op(Op.i64_and));
    case 'orn':
      return void (a(), b(), not(), w.op(Op.i64_or));
    case 'xnor':
      return void (a(), b(), w.op(Op.i64_xor), not());
    case 'min':
      return void pick(Op.i64_lt_s);
    case 'minu':
      return void pick(Op.i64_lt_u);
    case 'max':
      return void pick(Op.i64_gt_s);
    case 'maxu':
      return void pick(Op.i64_gt_u);
    case 'rol':
      return void (a(), b(), w.op(Op.i64_rotl));
    case 'ror':
      return void (a(), b(), w.op(Op.i64_rotr));
    case 'rolw':
    case 'rorw':
      word();
      b();
      w.op(Op.i32_wrap_i64)
        .op(op === 'rolw' ? Op.i32_rotl : Op.i32_rotr)
        .op(Op.i64_extend_i32_s);
      return;
    case 'sh1add':
    case 'sh2add':
    case 'sh3add':
      return shAdd(BigInt(Number(op[2])), false);
    case 'sh1add.uw':
    case 'sh2add.uw':
    case 'sh3add.uw':
      return shAdd(BigInt(Number(op[2])), true);
    case 'add.uw':
      return void (b(), a(), w.i64c(LOW32).op(Op.i64_and).op(Op.i64_add));
    case 'bclr':
      return void (a(), bit(), not(), w.op(Op.i64_and));
    case 'bset':
      return void (a(), bit(), w.op(Op.i64_or));
    case 'binv':
      return void (a(), bit(), w.op(Op.i64_xor));
    case 'bext':
      return void (a(), b(), w.op(Op.i64_shr_u).i64c(1n).op(Op.i64_and));
    case 'clz':
      return void a().op(Op.i64_clz);
    case 'ctz':
      return void a().op(Op.i64_ctz);
    case 'cpop':
      return void a().op(Op.i64_popcnt);
    case 'clzw':
      return void word().op(Op.i32_clz).op(Op.i64_extend_i32_u);
    case 'ctzw':
      return void word().op(Op.i32_ctz).op(Op.i64_extend_i32_u);
    case 'cpopw':
      return void word().op(Op.i32_popcnt).op(Op.i64_extend_i32_u);
    case 'sext.b':
      return void a().op(Op.i64_extend8_s);
    case 'sext.h':
      return void a().op(Op.i64_extend16_s);
    case 'zext.h':
      return void a().i64c(0xffffn).op(Op.i64_and);
    case 'orc.b': {
      // A byte's high bit of `zero` is set exactly when the byte is 0; spread it to 0xff.
      const low7 = 0x7f7f_7f7f_7f7f_7f7fn;
      a().i64c(low7).op(Op.i64_and).i64c(low7).op(Op.i64_add);
      a().op(Op.i64_or).i64c(low7).op(Op.i64_or);
      not();
      w.i64c(7n).op(Op.i64_shr_u).i64c(0xffn).op(Op.i64_mul);
      return void not();
    }
    case 'rev8': {
      // Swap bytes within halfwords, then halfwords within words, then the two words.
      const m8 = 0x00ff_00ff_00ff_00ffn;
      const m16 = 0x0000_ffff_0000_ffffn;
      a().i64c(8n).op(Op.i64_shr_u).i64c(m8).op(Op.i64_and);
      a().i64c(m8).op(Op.i64_and).i64c(8n).op(Op.i64_shl).op(Op.i64_or).set(l.t);
      w.get(l.t).i64c(16n).op(Op.i64_shr_u).i64c(m16).op(Op.i64_and);
      w.get(l.t).i64c(m16).op(Op.i64_and).i64c(16n).op(Op.i64_shl).op(Op.i64_or);
      return void w.i64c(32n).op(Op.i64_rotl);
    }
    case 'rori':
      return void a().i64c(shamt).op(Op.i64_rotr);
    case 'roriw':
      return void word()
        .i32c(Number(shamt & 31n))
        .op(Op.i32_rotr)
        .op(Op.i64_extend_i32_s);
    case 'slli.uw':
      return void a().i64c(LOW32).op(Op.i64_and).i64c(shamt).op(Op.i64_shl);
    case 'bclri':
      return void (a(), bitImm(), not(), w.op(Op.i64_and));
    case 'bseti':
      return void (a(), bitImm(), w.op(Op.i64_or));
    case 'binvi':
      return void (a(), bitImm(), w.op(Op.i64_xor));
    case 'bexti':
      return void a().i64c(shamt).op(Op.i64_shr_u).i64c(1n).op(Op.i64_and);
  }
}
