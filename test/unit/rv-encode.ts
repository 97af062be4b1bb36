// Tiny RISC-V instruction encoder for unit tests (only what the tests need).

/** fmt field of F/D instructions. */
export const FMT_S = 0;
export const FMT_D = 1;

/** Rounding modes (rm field / frm). DYN = 7 takes fcsr.frm. */
export const RNE = 0;
export const RTZ = 1;
export const RDN = 2;
export const RUP = 3;
export const RMM = 4;
export const DYN = 7;

export function rType(
  opcode: number,
  rd: number,
  funct3: number,
  rs1: number,
  rs2: number,
  funct7: number,
): number {
  return ((funct7 << 25) | (rs2 << 20) | (rs1 << 15) | (funct3 << 12) | (rd << 7) | opcode) >>> 0;
}

export function r4Type(
  opcode: number,
  rd: number,
  rm: number,
  rs1: number,
  rs2: number,
  fmt: number,
  rs3: number,
): number {
  return (
    ((rs3 << 27) | (fmt << 25) | (rs2 << 20) | (rs1 << 15) | (rm << 12) | (rd << 7) | opcode) >>> 0
  );
}

/** OP-FP (0x53) with funct7 = funct5 << 2 | fmt; funct3 is rm or a sub-opcode. */
export function opFp(
  funct5: number,
  fmt: number,
  rd: number,
  rs1: number,
  rs2: number,
  funct3: number,
): number {
  return rType(0x53, rd, funct3, rs1, rs2, (funct5 << 2) | fmt);
}

export const F5 = {
  ADD: 0x00,
  SUB: 0x01,
  MUL: 0x02,
  DIV: 0x03,
  SGNJ: 0x04,
  MINMAX: 0x05,
  CVT_FF: 0x08,
  SQRT: 0x0b,
  CMP: 0x14,
  CVT_IF: 0x18,
  CVT_FI: 0x1a,
  MV_XF: 0x1c,
  MV_FX: 0x1e,
} as const;

export const OP_FMADD = 0x43;
export const OP_FMSUB = 0x47;
export const OP_FNMSUB = 0x4b;
export const OP_FNMADD = 0x4f;

/** Integer format selector in the rs2 field of FCVT. */
export const CVT_W = 0;
export const CVT_WU = 1;
export const CVT_L = 2;
export const CVT_LU = 3;

export const fadd = (fmt: number, rd: number, rs1: number, rs2: number, rm: number) =>
  opFp(F5.ADD, fmt, rd, rs1, rs2, rm);
export const fsub = (fmt: number, rd: number, rs1: number, rs2: number, rm: number) =>
  opFp(F5.SUB, fmt, rd, rs1, rs2, rm);
export const fmul = (fmt: number, rd: number, rs1: number, rs2: number, rm: number) =>
  opFp(F5.MUL, fmt, rd, rs1, rs2, rm);
export const fdiv = (fmt: number, rd: number, rs1: number, rs2: number, rm: number) =>
  opFp(F5.DIV, fmt, rd, rs1, rs2, rm);
export const fsqrt = (fmt: number, rd: number, rs1: number, rm: number) =>
  opFp(F5.SQRT, fmt, rd, rs1, 0, rm);
export const fsgnj = (fmt: number, rd: number, rs1: number, rs2: number) =>
  opFp(F5.SGNJ, fmt, rd, rs1, rs2, 0);
export const fsgnjn = (fmt: number, rd: number, rs1: number, rs2: number) =>
  opFp(F5.SGNJ, fmt, rd, rs1, rs2, 1);
export const fsgnjx = (fmt: number, rd: number, rs1: number, rs2: number) =>
  opFp(F5.SGNJ, fmt, rd, rs1, rs2, 2);
export const fmin = (fmt: number, rd: number, rs1: number, rs2: number) =>
  opFp(F5.MINMAX, fmt, rd, rs1, rs2, 0);
export const fmax = (fmt: number, rd: number, rs1: number, rs2: number) =>
  opFp(F5.MINMAX, fmt, rd, rs1, rs2, 1);
export const feq = (fmt: number, rd: number, rs1: number, rs2: number) =>
  opFp(F5.CMP, fmt, rd, rs1, rs2, 2);
export const flt = (fmt: number, rd: number, rs1: number, rs2: number) =>
  opFp(F5.CMP, fmt, rd, rs1, rs2, 1);
export const fle = (fmt: number, rd: number, rs1: number, rs2: number) =>
  opFp(F5.CMP, fmt, rd, rs1, rs2, 0);
export const fclass = (fmt: number, rd: number, rs1: number) => opFp(F5.MV_XF, fmt, rd, rs1, 0, 1);
/** FMV.X.W (fmt S) / FMV.X.D (fmt D). */
export const fmvXF = (fmt: number, rd: number, rs1: number) => opFp(F5.MV_XF, fmt, rd, rs1, 0, 0);
/** FMV.W.X (fmt S) / FMV.D.X (fmt D). */
export const fmvFX = (fmt: number, rd: number, rs1: number) => opFp(F5.MV_FX, fmt, rd, rs1, 0, 0);
/** FCVT.{W,WU,L,LU}.fmt: float register rs1 to integer register rd. */
export const fcvtToInt = (fmt: number, kind: number, rd: number, rs1: number, rm: number) =>
  opFp(F5.CVT_IF, fmt, rd, rs1, kind, rm);
/** FCVT.fmt.{W,WU,L,LU}: integer register rs1 to float register rd. */
export const fcvtFromInt = (fmt: number, kind: number, rd: number, rs1: number, rm: number) =>
  opFp(F5.CVT_FI, fmt, rd, rs1, kind, rm);
/** FCVT.S.D */
export const fcvtSD = (rd: number, rs1: number, rm: number) =>
  opFp(F5.CVT_FF, FMT_S, rd, rs1, 1, rm);
/** FCVT.D.S */
export const fcvtDS = (rd: number, rs1: number, rm: number) =>
  opFp(F5.CVT_FF, FMT_D, rd, rs1, 0, rm);
export const fma4 = (
  opcode: number,
  fmt: number,
  rd: number,
  rs1: number,
  rs2: number,
  rs3: number,
  rm: number,
) => r4Type(opcode, rd, rm, rs1, rs2, fmt, rs3);

/** I-type (loads, OP-IMM, JALR, SYSTEM): imm is 12 bits, sign taken from bit 11. */
export const iType = (op: number, rd: number, f3: number, rs1: number, imm: number) =>
  (((imm & 0xfff) << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | op) >>> 0;

/** S-type stores. */
export const sType = (f3: number, rs1: number, rs2: number, imm: number) =>
  ((((imm >> 5) & 0x7f) << 25) |
    (rs2 << 20) |
    (rs1 << 15) |
    (f3 << 12) |
    ((imm & 31) << 7) |
    0x23) >>>
  0;

/** B-type branches (f3: 0 BEQ, 1 BNE, 4 BLT, 5 BGE, 6 BLTU, 7 BGEU), imm a byte offset. */
export const bType = (f3: number, rs1: number, rs2: number, imm: number) =>
  ((((imm >> 12) & 1) << 31) |
    (((imm >> 5) & 0x3f) << 25) |
    (rs2 << 20) |
    (rs1 << 15) |
    (f3 << 12) |
    (((imm >> 1) & 0xf) << 8) |
    (((imm >> 11) & 1) << 7) |
    0x63) >>>
  0;

/** JAL rd, imm (a byte offset). */
export const jal = (rd: number, imm: number) =>
  ((((imm >> 20) & 1) << 31) |
    (((imm >> 1) & 0x3ff) << 21) |
    (((imm >> 11) & 1) << 20) |
    (((imm >> 12) & 0xff) << 12) |
    (rd << 7) |
    0x6f) >>>
  0;

/** ADDI rd, rs1, imm. */
export const addi = (rd: number, rs1: number, imm: number) => iType(0x13, rd, 0, rs1, imm);

/** BNE rs1, rs2, imm (a byte offset). */
export const bne = (rs1: number, rs2: number, imm: number) => bType(1, rs1, rs2, imm);

/** SD rs2, imm(rs1). */
export const sd = (rs1: number, rs2: number, imm = 0) => sType(3, rs1, rs2, imm);
