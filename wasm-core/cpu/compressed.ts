// RVC: expands a 16-bit instruction into the 32-bit instruction it stands for, so the
// interpreter has one decoder. Returns 0 for reserved/illegal encodings.

@inline function rtype(f7: u32, rs2: u32, rs1: u32, f3: u32, rd: u32, op: u32): u32 {
  return (f7 << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | op;
}
@inline function itype(imm: i32, rs1: u32, f3: u32, rd: u32, op: u32): u32 {
  return ((<u32>imm & 0xfff) << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | op;
}
@inline function stype(imm: i32, rs2: u32, rs1: u32, f3: u32, op: u32): u32 {
  const u = <u32>imm;
  return (((u >> 5) & 0x7f) << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | ((u & 0x1f) << 7) | op;
}
@inline function btype(imm: i32, rs2: u32, rs1: u32, f3: u32): u32 {
  const u = <u32>imm;
  return (((u >> 12) & 1) << 31) | (((u >> 5) & 0x3f) << 25) | (rs2 << 20) | (rs1 << 15) |
    (f3 << 12) | (((u >> 1) & 0xf) << 8) | (((u >> 11) & 1) << 7) | 0x63;
}
@inline function jtype(imm: i32, rd: u32): u32 {
  const u = <u32>imm;
  return (((u >> 20) & 1) << 31) | (((u >> 1) & 0x3ff) << 21) | (((u >> 11) & 1) << 20) |
    (((u >> 12) & 0xff) << 12) | (rd << 7) | 0x6f;
}
/** Bit `from` of c, moved to bit `to`. */
@inline function bit(c: u32, from: u32, to: u32): u32 {
  return ((c >> from) & 1) << to;
}
/** Sign-extends the low `bits` bits. */
@inline function sext(v: u32, bits: u32): i32 {
  const s = 32 - bits;
  return (<i32>(v << s)) >> s;
}

const OP_LOAD: u32 = 0x03;
const OP_LOAD_FP: u32 = 0x07;
const OP_IMM: u32 = 0x13;
const OP_IMM32: u32 = 0x1b;
const OP_STORE: u32 = 0x23;
const OP_STORE_FP: u32 = 0x27;
const OP: u32 = 0x33;
const OP_LUI: u32 = 0x37;
const OP_32: u32 = 0x3b;
const OP_JALR: u32 = 0x67;

export function expandCompressed(c: u32): u32 {
  const q = c & 3;
  const f3 = (c >> 13) & 7;
  const rdp = 8 + ((c >> 2) & 7); // rd' / rs2'
  const rs1p = 8 + ((c >> 7) & 7);
  const rd = (c >> 7) & 31;
  const rs2 = (c >> 2) & 31;
  if (q == 0) {
    // uimm fields of the register-based loads and stores
    const uw = bit(c, 6, 2) | (((c >> 10) & 7) << 3) | bit(c, 5, 6); // C.LW/C.SW
    const ud = (((c >> 10) & 7) << 3) | (((c >> 5) & 3) << 6); // C.LD/C.SD/C.FLD/C.FSD
    switch (f3) {
      case 0: {
        const imm = bit(c, 6, 2) | bit(c, 5, 3) | (((c >> 11) & 3) << 4) | (((c >> 7) & 0xf) << 6);
        if (imm == 0) return 0; // includes the all-zero illegal instruction
        return itype(<i32>imm, 2, 0, rdp, OP_IMM);
      }
      case 1:
        return itype(<i32>ud, rs1p, 3, rdp, OP_LOAD_FP);
      case 2:
        return itype(<i32>uw, rs1p, 2, rdp, OP_LOAD);
      case 3:
        return itype(<i32>ud, rs1p, 3, rdp, OP_LOAD);
      case 5:
        return stype(<i32>ud, rdp, rs1p, 3, OP_STORE_FP);
      case 6:
        return stype(<i32>uw, rdp, rs1p, 2, OP_STORE);
      case 7:
        return stype(<i32>ud, rdp, rs1p, 3, OP_STORE);
      default:
        return 0;
    }
  }
  if (q == 1) {
    const imm6 = sext(bit(c, 12, 5) | ((c >> 2) & 0x1f), 6);
    switch (f3) {
      case 0:
        return itype(imm6, rd, 0, rd, OP_IMM); // C.ADDI / C.NOP (hints allowed)
      case 1:
        if (rd == 0) return 0;
        return itype(imm6, rd, 0, rd, OP_IMM32); // C.ADDIW
      case 2:
        return itype(imm6, 0, 0, rd, OP_IMM); // C.LI
      case 3: {
        if (rd == 2) {
          const imm = sext(
            bit(c, 12, 9) | bit(c, 6, 4) | bit(c, 5, 6) | (((c >> 3) & 3) << 7) | bit(c, 2, 5),
            10,
          );
          if (imm == 0) return 0;
          return itype(imm, 2, 0, 2, OP_IMM); // C.ADDI16SP
        }
        if (imm6 == 0) return 0;
        return ((<u32>imm6 & 0xfffff) << 12) | (rd << 7) | OP_LUI; // C.LUI
      }
      case 4: {
        const sub = (c >> 10) & 3;
        const shamt = bit(c, 12, 5) | ((c >> 2) & 0x1f);
        if (sub == 0) return itype(<i32>shamt, rs1p, 5, rs1p, OP_IMM); // C.SRLI
        if (sub == 1) return itype(<i32>(shamt | 0x400), rs1p, 5, rs1p, OP_IMM); // C.SRAI
        if (sub == 2) return itype(imm6, rs1p, 7, rs1p, OP_IMM); // C.ANDI
        const fn = (c >> 5) & 3;
        if ((c & 0x1000) == 0) {
          if (fn == 0) return rtype(0x20, rdp, rs1p, 0, rs1p, OP); // C.SUB
          if (fn == 1) return rtype(0, rdp, rs1p, 4, rs1p, OP); // C.XOR
          if (fn == 2) return rtype(0, rdp, rs1p, 6, rs1p, OP); // C.OR
          return rtype(0, rdp, rs1p, 7, rs1p, OP); // C.AND
        }
        if (fn == 0) return rtype(0x20, rdp, rs1p, 0, rs1p, OP_32); // C.SUBW
        if (fn == 1) return rtype(0, rdp, rs1p, 0, rs1p, OP_32); // C.ADDW
        return 0;
      }
      case 5: {
        const imm = sext(
          bit(c, 12, 11) | bit(c, 11, 4) | (((c >> 9) & 3) << 8) | bit(c, 8, 10) | bit(c, 7, 6) |
            bit(c, 6, 7) | (((c >> 3) & 7) << 1) | bit(c, 2, 5),
          12,
        );
        return jtype(imm, 0); // C.J
      }
      default: {
        const imm = sext(
          bit(c, 12, 8) | (((c >> 10) & 3) << 3) | (((c >> 5) & 3) << 6) | (((c >> 3) & 3) << 1) |
            bit(c, 2, 5),
          9,
        );
        return btype(imm, 0, rs1p, f3 == 6 ? 0 : 1); // C.BEQZ / C.BNEZ
      }
    }
  }
  // quadrant 2
  switch (f3) {
    case 0: {
      const shamt = bit(c, 12, 5) | ((c >> 2) & 0x1f);
      return itype(<i32>shamt, rd, 1, rd, OP_IMM); // C.SLLI
    }
    case 1: {
      const u = bit(c, 12, 5) | (((c >> 5) & 3) << 3) | (((c >> 2) & 7) << 6);
      return itype(<i32>u, 2, 3, rd, OP_LOAD_FP); // C.FLDSP
    }
    case 2: {
      if (rd == 0) return 0;
      const u = bit(c, 12, 5) | (((c >> 4) & 7) << 2) | (((c >> 2) & 3) << 6);
      return itype(<i32>u, 2, 2, rd, OP_LOAD); // C.LWSP
    }
    case 3: {
      if (rd == 0) return 0;
      const u = bit(c, 12, 5) | (((c >> 5) & 3) << 3) | (((c >> 2) & 7) << 6);
      return itype(<i32>u, 2, 3, rd, OP_LOAD); // C.LDSP
    }
    case 4: {
      if ((c & 0x1000) == 0) {
        if (rs2 == 0) {
          if (rd == 0) return 0;
          return itype(0, rd, 0, 0, OP_JALR); // C.JR
        }
        return rtype(0, rs2, 0, 0, rd, OP); // C.MV
      }
      if (rs2 == 0) {
        if (rd == 0) return 0x00100073; // C.EBREAK
        return itype(0, rd, 0, 1, OP_JALR); // C.JALR
      }
      return rtype(0, rs2, rd, 0, rd, OP); // C.ADD
    }
    case 5: {
      const u = (((c >> 10) & 7) << 3) | (((c >> 7) & 7) << 6);
      return stype(<i32>u, rs2, 2, 3, OP_STORE_FP); // C.FSDSP
    }
    case 6: {
      const u = (((c >> 9) & 0xf) << 2) | (((c >> 7) & 3) << 6);
      return stype(<i32>u, rs2, 2, 2, OP_STORE); // C.SWSP
    }
    default: {
      const u = (((c >> 10) & 7) << 3) | (((c >> 7) & 7) << 6);
      return stype(<i32>u, rs2, 2, 3, OP_STORE); // C.SDSP
    }
  }
}

/**
 * Every 16-bit encoding expanded once at start-up: the interpreter then pays one load per
 * compressed instruction instead of the decode above (which was ~14% of boot time).
 */
export const EXPANDED: usize = memory.data(65536 * 4, 16);

export function initExpandedTable(): void {
  for (let c: u32 = 0; c < 65536; c++) {
    store<u32>(EXPANDED + (<usize>c << 2), (c & 3) == 3 ? 0 : expandCompressed(c));
  }
}
