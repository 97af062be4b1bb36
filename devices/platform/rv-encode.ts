/**
 * Encoders for the few RV64 instructions the boot ROM's reset stub needs. Register numbers are
 * x0..x31; immediates are range-checked because a silently truncated one would be a jump into
 * nowhere.
 */
export const REG = { zero: 0, t0: 5, a0: 10, a1: 11, a2: 12 } as const;

/** CSR number of mhartid. */
export const CSR_MHARTID = 0xf14;

function reg(r: number): number {
  if (!Number.isInteger(r) || r < 0 || r > 31) throw new RangeError(`rv-encode: no register x${r}`);
  return r;
}

function imm12(v: number): number {
  if (!Number.isInteger(v) || v < -2048 || v > 2047) {
    throw new RangeError(`rv-encode: immediate ${v} does not fit 12 bits`);
  }
  return v & 0xfff;
}

function iType(opcode: number, funct3: number, rd: number, rs1: number, imm: number): number {
  return ((imm12(imm) << 20) | (reg(rs1) << 15) | (funct3 << 12) | (reg(rd) << 7) | opcode) >>> 0;
}

/** auipc rd, imm20 (rd = pc + (imm20 << 12)). */
export function auipc(rd: number, imm20: number): number {
  if (!Number.isInteger(imm20) || imm20 < -0x80000 || imm20 > 0x7ffff) {
    throw new RangeError(`rv-encode: auipc immediate ${imm20} does not fit 20 bits`);
  }
  return (((imm20 & 0xfffff) << 12) | (reg(rd) << 7) | 0x17) >>> 0;
}

/** addi rd, rs1, imm. */
export function addi(rd: number, rs1: number, imm: number): number {
  return iType(0x13, 0, rd, rs1, imm);
}

/** ld rd, imm(rs1). */
export function ld(rd: number, rs1: number, imm: number): number {
  return iType(0x03, 3, rd, rs1, imm);
}

/** csrr rd, csr (csrrs rd, csr, x0). */
export function csrr(rd: number, csr: number): number {
  if (!Number.isInteger(csr) || csr < 0 || csr > 0xfff) throw new RangeError(`bad CSR ${csr}`);
  return ((csr << 20) | (2 << 12) | (reg(rd) << 7) | 0x73) >>> 0;
}

/** jr rs1 (jalr x0, 0(rs1)). */
export function jr(rs1: number): number {
  return iType(0x67, 0, 0, rs1, 0);
}
