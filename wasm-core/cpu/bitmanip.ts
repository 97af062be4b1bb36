// Zba, Zbb, Zbc and Zbs: the bit-manipulation extensions of QEMU's default rv64 CPU (RISC-V
// Bit-Manipulation ISA-extensions, version 1.0.0), for RV64.
//
// Every encoding of them is one the base ISA leaves illegal, so the interpreter's loop does not
// decode them: its switch marks them illegal as before, and the illegal-instruction path asks
// execBitmanip first. They cost the hot loop nothing; each one costs a call (the JIT translates
// all of them but the carry-less multiplies inline, so hot code does not come here).
import { getX, setX } from './state';

@inline function sext32(v: u64): u64 {
  return <u64>(<i64>(<i32>v));
}

@inline function zext32(v: u64): u64 {
  return v & 0xffff_ffff;
}

/** Each byte of v that is not zero becomes 0xff (orc.b). */
export function orcB(v: u64): u64 {
  const low7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
  // A byte's high bit ends up set exactly when the byte is zero.
  const zero = ~(((v & low7) + low7) | v | low7);
  return ~((zero >> 7) * 0xff);
}

/** Carry-less product of a and b: the low 64 bits (f3 1), high 64 (f3 3) or bits 126..63 (2). */
export function clmul(a: u64, b: u64, f3: u32): u64 {
  let x: u64 = 0;
  if (f3 == 1) {
    for (let i: u64 = 0; i < 64; i++) if (((b >> i) & 1) != 0) x ^= a << i;
  } else if (f3 == 3) {
    for (let i: u64 = 1; i < 64; i++) if (((b >> i) & 1) != 0) x ^= a >> (64 - i);
  } else {
    for (let i: u64 = 0; i < 64; i++) if (((b >> i) & 1) != 0) x ^= a >> (63 - i);
  }
  return x;
}

/** OP (0x33): the register-register forms. */
function op(insn: u32, f3: u32, a: u64, b: u64): bool {
  const f7 = insn >> 25;
  const rd = (insn >> 7) & 31;
  const sh = b & 63;
  let v: u64 = 0;
  if (f7 == 0x20) {
    if (f3 == 7) v = a & ~b; // andn
    else if (f3 == 6) v = a | ~b; // orn
    else if (f3 == 4) v = ~(a ^ b); // xnor
    else return false;
  } else if (f7 == 0x05) {
    if (f3 == 4) v = <i64>a < <i64>b ? a : b; // min
    else if (f3 == 5) v = a < b ? a : b; // minu
    else if (f3 == 6) v = <i64>a > <i64>b ? a : b; // max
    else if (f3 == 7) v = a > b ? a : b; // maxu
    else if (f3 != 0) v = clmul(a, b, f3); // clmul, clmulr, clmulh
    else return false;
  } else if (f7 == 0x10) {
    if (f3 == 2 || f3 == 4 || f3 == 6) v = b + (a << <u64>(f3 >> 1)); // sh1add, sh2add, sh3add
    else return false;
  } else if (f7 == 0x30) {
    if (f3 == 1) v = rotl<u64>(a, sh); // rol
    else if (f3 == 5) v = rotr<u64>(a, sh); // ror
    else return false;
  } else if (f7 == 0x24) {
    if (f3 == 1) v = a & ~(<u64>1 << sh); // bclr
    else if (f3 == 5) v = (a >> sh) & 1; // bext
    else return false;
  } else if (f7 == 0x14 && f3 == 1) v = a | (<u64>1 << sh); // bset
  else if (f7 == 0x34 && f3 == 1) v = a ^ (<u64>1 << sh); // binv
  else return false;
  setX(rd, v);
  return true;
}

/** OP-32 (0x3b): the .uw forms, zext.h and the 32-bit rotates. */
function op32(insn: u32, f3: u32, a: u64, b: u64): bool {
  const f7 = insn >> 25;
  const rd = (insn >> 7) & 31;
  let v: u64 = 0;
  if (f7 == 0x04) {
    if (f3 == 0) v = b + zext32(a); // add.uw
    else if (f3 == 4 && ((insn >> 20) & 31) == 0) v = a & 0xffff; // zext.h
    else return false;
  } else if (f7 == 0x10) {
    if (f3 == 2 || f3 == 4 || f3 == 6) v = b + (zext32(a) << <u64>(f3 >> 1)); // shNadd.uw
    else return false;
  } else if (f7 == 0x30) {
    if (f3 == 1) v = sext32(<u64>rotl<u32>(<u32>a, <u32>b & 31)); // rolw
    else if (f3 == 5) v = sext32(<u64>rotr<u32>(<u32>a, <u32>b & 31)); // rorw
    else return false;
  } else return false;
  setX(rd, v);
  return true;
}

/** OP-IMM (0x13): counts, sign extensions, orc.b, rev8 and the immediate forms. */
function opImm(insn: u32, f3: u32, a: u64): bool {
  const rd = (insn >> 7) & 31;
  const imm12 = insn >> 20;
  const f6 = insn >> 26;
  const shamt = <u64>((insn >> 20) & 63);
  let v: u64 = 0;
  if (f3 == 1) {
    if (imm12 == 0x600) v = clz<u64>(a);
    else if (imm12 == 0x601) v = ctz<u64>(a);
    else if (imm12 == 0x602) v = popcnt<u64>(a); // cpop
    else if (imm12 == 0x604) v = <u64>(<i64>(<i8>a)); // sext.b
    else if (imm12 == 0x605) v = <u64>(<i64>(<i16>a)); // sext.h
    else if (f6 == 0x12) v = a & ~(<u64>1 << shamt); // bclri
    else if (f6 == 0x0a) v = a | (<u64>1 << shamt); // bseti
    else if (f6 == 0x1a) v = a ^ (<u64>1 << shamt); // binvi
    else return false;
  } else if (f3 == 5) {
    if (f6 == 0x18) v = rotr<u64>(a, shamt); // rori
    else if (f6 == 0x12) v = (a >> shamt) & 1; // bexti
    else if (imm12 == 0x287) v = orcB(a);
    else if (imm12 == 0x6b8) v = bswap<u64>(a); // rev8
    else return false;
  } else return false;
  setX(rd, v);
  return true;
}

/** OP-IMM-32 (0x1b): slli.uw, the 32-bit counts and roriw. */
function opImm32(insn: u32, f3: u32, a: u64): bool {
  const rd = (insn >> 7) & 31;
  const f7 = insn >> 25;
  const field = (insn >> 20) & 31;
  let v: u64 = 0;
  if (f3 == 1 && insn >> 26 == 0x02) v = zext32(a) << <u64>((insn >> 20) & 63); // slli.uw
  else if (f3 == 1 && f7 == 0x30) {
    if (field == 0) v = <u64>clz<u32>(<u32>a); // clzw
    else if (field == 1) v = <u64>ctz<u32>(<u32>a); // ctzw
    else if (field == 2) v = <u64>popcnt<u32>(<u32>a); // cpopw
    else return false;
  } else if (f3 == 5 && f7 == 0x30) v = sext32(<u64>rotr<u32>(<u32>a, field)); // roriw
  else return false;
  setX(rd, v);
  return true;
}

/**
 * Executes `insn` (32-bit, already expanded) if it is a Zba/Zbb/Zbc/Zbs instruction and returns
 * true; false leaves it illegal. Nothing traps: every one is a pure register operation.
 */
export function execBitmanip(insn: u32): bool {
  const f3 = (insn >> 12) & 7;
  const a = getX((insn >> 15) & 31);
  const opcode = insn & 0x7f;
  if (opcode == 0x33) return op(insn, f3, a, getX((insn >> 20) & 31));
  if (opcode == 0x3b) return op32(insn, f3, a, getX((insn >> 20) & 31));
  if (opcode == 0x13) return opImm(insn, f3, a);
  if (opcode == 0x1b) return opImm32(insn, f3, a);
  return false;
}
