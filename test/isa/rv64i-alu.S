/* RV64I integer computation: register-register, register-immediate, W forms, shifts, LUI,
   AUIPC, and the register corner cases (rd = rs1/rs2, rd = x0). */
#include "env/test.h"

TEST_BEGIN

  /* ---- add / sub ---- */
  TEST_RR 1, add, 0, 0, 0
  TEST_RR 2, add, 3, 1, 2
  TEST_RR 3, add, 0xffffffff80000000, 0, 0xffffffff80000000
  TEST_RR 4, add, 0x8000000000000000, 0x7fffffffffffffff, 1
  TEST_RR 5, add, 0, -1, 1
  TEST_RR 6, add, 0x0000000100000000, 0xffffffff, 1
  TEST_RR 7, sub, 0, 5, 5
  TEST_RR 8, sub, -1, 0, 1
  TEST_RR 9, sub, 0x7fffffffffffffff, 0x8000000000000000, 1
  TEST_RR 10, sub, 0x8000000000000001, 0, 0x7fffffffffffffff
  TEST_RI 11, addi, 0x7ff, 0, 0x7ff
  TEST_RI 12, addi, -2048, 0, -2048
  TEST_RI 13, addi, 0x8000000000000000, 0x7fffffffffffffff, 1
  TEST_RI 14, addi, 0xfffffffffffffffe, -1, -1
  TEST_RR_SRC1_DEST 15, add, 24, 13, 11
  TEST_RR_SRC2_DEST 16, sub, 2, 13, 11
  TEST_RR_SRC12_DEST 17, add, 26, 13
  TEST_RR_ZERO_DEST 18, add, 5, 6

  /* ---- W forms: 32-bit result, sign-extended ---- */
  TEST_RR 20, addw, 0xffffffff80000000, 0x7fffffff, 1
  TEST_RR 21, addw, 0, 0xffffffff, 1
  TEST_RR 22, addw, 0x000000007fffffff, 0x123456780fffffff, 0x70000000
  TEST_RR 23, subw, 0x7fffffff, 0xffffffff80000000, 1
  TEST_RR 24, subw, -1, 0x100000000, 1
  TEST_RI 25, addiw, 0xffffffff80000000, 0x7fffffff, 1
  TEST_RI 26, addiw, 0x7ff, 0xffffffff00000000, 0x7ff
  TEST_RI 27, addiw, -1, 0, -1
  TEST_RI 28, addiw, 0x12345678, 0xaaaaaaaa12345678, 0   /* sext.w */
  TEST_RI 29, addiw, 0xffffffff87654321, 0x87654321, 0

  /* ---- compares ---- */
  TEST_RR 30, slt, 1, -1, 0
  TEST_RR 31, slt, 0, 0, -1
  TEST_RR 32, slt, 1, 0x8000000000000000, 0x7fffffffffffffff
  TEST_RR 33, slt, 0, 5, 5
  TEST_RR 34, sltu, 0, -1, 0
  TEST_RR 35, sltu, 1, 0, -1
  TEST_RR 36, sltu, 0, 0x8000000000000000, 0x7fffffffffffffff
  TEST_RR 37, sltu, 1, 0, 1     /* snez */
  TEST_RI 38, slti, 1, -2, -1
  TEST_RI 39, slti, 0, 0x7ff, 0x7ff
  TEST_RI 40, slti, 1, 0x8000000000000000, 0
  TEST_RI 41, sltiu, 1, 0, 1     /* seqz */
  TEST_RI 42, sltiu, 0, 1, 1
  TEST_RI 43, sltiu, 1, 0x7ffffffffffffffe, -1   /* imm sign-extends, then compares unsigned */
  TEST_RI 44, sltiu, 0, -1, -1

  /* ---- logic ---- */
  TEST_RR 50, and, 0x0f000f00, 0xff00ff00, 0x0f0f0f0f
  TEST_RR 51, or, 0xff0fff0f, 0xff00ff00, 0x0f0f0f0f
  TEST_RR 52, xor, 0xf00ff00f, 0xff00ff00, 0x0f0f0f0f
  TEST_RR 53, and, 0x8000000000000000, 0x8000000000000001, 0xf000000000000000
  TEST_RR 54, xor, 0, 0x123456789abcdef0, 0x123456789abcdef0
  TEST_RI 55, andi, 0xffffffffff00ff00, 0xffffffffff00ff00, -1
  TEST_RI 56, andi, 0x700, 0x123456789abcdf00, 0x7ff
  TEST_RI 57, andi, 0x123456789abcd800, 0x123456789abcdf00, -2048
  TEST_RI 58, ori, -1, 0x00ff, -256
  TEST_RI 59, ori, 0x7ff, 0, 0x7ff
  TEST_RI 60, xori, 0xfffffffffffff00f, 0x0ff0, -1
  TEST_RI 61, xori, 0x08f0, 0x0f0f, 0x7ff
  TEST_RR_SRC12_DEST 62, xor, 0, 0x5555
  TEST_RR_ZERO_DEST 63, or, -1, -1

  /* ---- shifts: the amount is rs2[5:0] (rs2[4:0] for W forms) ---- */
  TEST_RR 70, sll, 0x8000000000000000, 1, 63
  TEST_RR 71, sll, 2, 1, 65                   /* 65 & 63 = 1 */
  TEST_RR 72, sll, 0xffffffff00000000, 0xffffffff, 32
  TEST_RR 73, srl, 1, 0x8000000000000000, 63
  TEST_RR 74, srl, 0x00000000ffffffff, -1, 32
  TEST_RR 75, srl, 0x4000000000000000, 0x8000000000000000, -63   /* -63 & 63 = 1 */
  TEST_RR 76, sra, -1, 0x8000000000000000, 63
  TEST_RR 77, sra, 0xffffffff80000000, 0x8000000000000000, 32
  TEST_RR 78, sra, 0x3fffffffffffffff, 0x7fffffffffffffff, 1
  TEST_RR 79, sra, 0x123, 0x123, 64           /* 64 & 63 = 0 */
  TEST_RI 80, slli, 0x8000000000000000, 1, 63
  TEST_RI 81, slli, 0x0000001234567800, 0x12345678, 8
  TEST_RI 82, srli, 1, 0x8000000000000000, 63
  TEST_RI 83, srli, 0x0000000080000000, 0x8000000000000000, 32
  TEST_RI 84, srai, -1, 0x8000000000000000, 63
  TEST_RI 85, srai, 0xfffffffff8000000, 0x8000000000000000, 36
  TEST_RI 86, srai, 0x0000000000000001, 0x7fffffffffffffff, 62
  TEST_RI 87, slli, 0x123, 0x123, 0

  TEST_RR 90, sllw, 0xffffffff80000000, 1, 31
  TEST_RR 91, sllw, 2, 1, 33                  /* 33 & 31 = 1 */
  TEST_RR 92, sllw, 0x0000000012345678, 0xffffffff12345678, 0   /* sign-extends bit 31 */
  TEST_RR 93, sllw, 1, 0xffffffff00000001, 32   /* 32 & 31 = 0 */
  TEST_RR 94, srlw, 1, 0x80000000, 31
  TEST_RR 95, srlw, 0xffffffff80000000, 0xffffffff80000000, 0
  TEST_RR 96, srlw, 0x7fffffff, 0xffffffffffffffff, 1   /* zero-fills from bit 31 */
  TEST_RR 97, srlw, 0, 0x0000000100000000, 1   /* upper bits ignored */
  TEST_RR 98, sraw, -1, 0x80000000, 31
  TEST_RR 99, sraw, 0xfffffffff0000000, 0x80000000, 3
  TEST_RR 100, sraw, 0x0000000000000001, 0xffffffff7fffffff, 30
  TEST_RR 101, sraw, 0xffffffff80000000, 0x80000000, 32   /* 32 & 31 = 0 */
  TEST_RI 102, slliw, 0xffffffff80000000, 1, 31
  TEST_RI 103, slliw, 0x0000000056780000, 0x1234567812345678, 16
  TEST_RI 104, srliw, 0x0000000000000001, 0x80000000, 31
  TEST_RI 105, srliw, 0x000000000fffffff, 0xffffffffffffffff, 4
  TEST_RI 106, sraiw, 0xfffffffffffffff8, 0x80000000, 28
  TEST_RI 107, sraiw, 0x0000000001234567, 0xf000000001234567, 0
  TEST_RI 108, sraiw, 0x0000000007ffffff, 0xffffffff7fffffff, 4
  TEST_RI 109, srliw, 0xffffffff80000000, 0x80000000, 0   /* shamt 0 still sign-extends */

  /* ---- lui / auipc ---- */
  CASE 120
  lui a0, 0x12345
  CHECK_EQ a0, 0x12345000
  CASE 121
  lui a0, 0x80000
  CHECK_EQ a0, 0xffffffff80000000     /* sign-extended on RV64 */
  CASE 122
  lui a0, 0xfffff
  CHECK_EQ a0, 0xfffffffffffff000
  CASE 123
  lui a0, 0
  CHECK_EQ a0, 0
  CASE 124
  .option push
  .option norvc
1:
  auipc a0, 0
  la a1, 1b
  CHECK_REQ a0, a1
  CASE 125
2:
  auipc a0, 1
  la a1, 2b
  sub a0, a0, a1
  CHECK_EQ a0, 0x1000
  CASE 126
3:
  auipc a0, 0xfffff                       /* pc - 4096 */
  la a1, 3b
  sub a0, a1, a0
  CHECK_EQ a0, 0x1000
  CASE 127
4:
  auipc a0, 0x80000                       /* pc - 2 GiB: the immediate is sign-extended */
  la a1, 4b
  sub a0, a1, a0
  CHECK_EQ a0, 0x80000000
  .option pop

  /* ---- x0 ---- */
  CASE 130
  addi x0, x0, 5
  CHECK_EQ x0, 0
  CASE 131
  lui x0, 0x12345
  CHECK_EQ x0, 0
  CASE 132
  li a1, 7
  add a0, x0, a1
  sub a0, x0, a0
  CHECK_EQ a0, -7
  CASE 133
  auipc x0, 1
  CHECK_EQ x0, 0

TEST_END
