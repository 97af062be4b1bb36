/* RV64I control transfer: conditional branches (taken / not taken, signed / unsigned edges,
   forward / backward), JAL and JALR (link value, offsets, bit 0 cleared, rd == rs1). */
#include "env/test.h"

/* branch taken: must skip the fail */
.macro TEST_BR_TAKEN n, op, a, b
  CASE \n
  li a1, \a
  li a2, \b
  \op a1, a2, .Lt\@
  j fail
.Lt\@:
.endm

/* branch not taken: must fall through */
.macro TEST_BR_NOT n, op, a, b
  CASE \n
  li a1, \a
  li a2, \b
  \op a1, a2, .Lf\@
  j .Lok\@
.Lf\@:
  j fail
.Lok\@:
.endm

/* backward branch taken exactly once */
.macro TEST_BR_BACK n, op, a, b
  CASE \n
  li a1, \a
  li a2, \b
  li a3, 0
  j .Lfirst\@
.Lback\@:
  addi a3, a3, 1
  j .Ldone\@
.Lfirst\@:
  \op a1, a2, .Lback\@
  j fail
.Ldone\@:
  CHECK_EQ a3, 1
.endm

TEST_BEGIN

  TEST_BR_TAKEN 1, beq, 0, 0
  TEST_BR_TAKEN 2, beq, -1, -1
  TEST_BR_NOT 3, beq, 0, 1
  TEST_BR_NOT 4, beq, 0x100000000, 0       /* all 64 bits compared */
  TEST_BR_TAKEN 5, bne, 0x100000000, 0
  TEST_BR_TAKEN 6, bne, 1, -1
  TEST_BR_NOT 7, bne, 7, 7

  TEST_BR_TAKEN 10, blt, -1, 0
  TEST_BR_TAKEN 11, blt, 0x8000000000000000, 0x7fffffffffffffff
  TEST_BR_NOT 12, blt, 0, -1
  TEST_BR_NOT 13, blt, 5, 5
  TEST_BR_TAKEN 14, bge, 5, 5
  TEST_BR_TAKEN 15, bge, 0, -1
  TEST_BR_TAKEN 16, bge, 0x7fffffffffffffff, 0x8000000000000000
  TEST_BR_NOT 17, bge, -1, 0
  TEST_BR_NOT 18, bge, 0xffffffff80000000, 0x7fffffff

  TEST_BR_TAKEN 20, bltu, 0, -1
  TEST_BR_TAKEN 21, bltu, 0x7fffffffffffffff, 0x8000000000000000
  TEST_BR_NOT 22, bltu, -1, 0
  TEST_BR_NOT 23, bltu, 3, 3
  TEST_BR_TAKEN 24, bgeu, -1, 0
  TEST_BR_TAKEN 25, bgeu, 3, 3
  TEST_BR_TAKEN 26, bgeu, 0x100000000, 0xffffffff
  TEST_BR_NOT 27, bgeu, 0, -1
  TEST_BR_NOT 28, bgeu, 0x7fffffffffffffff, 0x8000000000000000

  TEST_BR_BACK 30, beq, 1, 1
  TEST_BR_BACK 31, bne, 1, 2
  TEST_BR_BACK 32, blt, -5, 5
  TEST_BR_BACK 33, bge, 5, -5
  TEST_BR_BACK 34, bltu, 5, -5
  TEST_BR_BACK 35, bgeu, -5, 5

  /* x0 as an operand */
  CASE 36
  li a1, -1
  bltu x0, a1, 1f
  j fail
1:
  CASE 37
  bge x0, x0, 1f
  j fail
1:

  /* ---- jal: link = pc + 4, target pc-relative ---- */
  .option push
  .option norvc
  CASE 40
  li ra, 0
  jal ra, 1f
2:
  j fail
1:
  CHECK_ADDR ra, 2b
  CASE 41
  jal x0, 1f                   /* j: no link */
  j fail
1:
  CASE 42
  li a0, 0
  jal a5, 1f
3:
  j fail
  /* backward jal */
4:
  li a0, 1
  j 5f
1:
  CHECK_ADDR a5, 3b
  jal t0, 4b
5:
  CHECK_EQ a0, 1

  /* ---- jalr ---- */
  CASE 50
  la a1, 1f
  jalr ra, 0(a1)
6:
  j fail
1:
  CHECK_ADDR ra, 6b
  CASE 51
  la a1, 1f
  addi a1, a1, -8
  jalr ra, 8(a1)                 /* positive offset */
  j fail
1:
  CASE 52
  la a1, 1f
  addi a1, a1, 12
  jalr x0, -12(a1)               /* negative offset, no link */
  j fail
1:
  CASE 53
  la a1, 1f
  addi a1, a1, 1                 /* target bit 0 is cleared */
  jalr ra, 0(a1)
  j fail
1:
  CASE 54
  la a1, 1f
  jalr ra, 1(a1)                 /* bit 0 of rs1 + imm is cleared */
  j fail
1:
  CASE 55
  la a1, 1f
  jalr a1, 0(a1)                 /* rd == rs1: the target uses the old rs1 */
7:
  j fail
1:
  CHECK_ADDR a1, 7b
  CASE 56
  la a1, 1f
  jalr a1, 1(a1)                 /* rd == rs1 with odd target */
8:
  j fail
1:
  CHECK_ADDR a1, 8b
  /* call / ret */
  CASE 57
  li a0, 5
  call subroutine
  CHECK_EQ a0, 6
  .option pop

  /* ---- long branches and jumps ---- */
  CASE 60
  li a1, 1
  bnez a1, 1f
  j fail
  .skip 3000
1:
  CASE 61
  j 2f
  .skip 200000
2:
  CASE 62
  li a1, 1
  li a2, 0
3:
  addi a2, a2, 1
  j 4f
  .skip 4000
4:
  addi a1, a1, -1
  bgez a1, 3b                    /* backward branch, offset close to -4 KiB */
  CHECK_EQ a2, 2

  /* a branch over a compressed instruction, landing on a 2-byte aligned target */
  CASE 63
  .option push
  .option rvc
  li a0, 0
  beqz zero, 1f
  c.addi a0, 1
1:
  c.addi a0, 2
  c.nop
  .align 2
  .option pop
  CHECK_EQ a0, 2

TEST_END

subroutine:
  addi a0, a0, 1
  ret
