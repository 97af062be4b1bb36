/* Zifencei: code written by stores becomes visible to instruction fetch after FENCE.I —
   code generated into a data buffer, patches of already-executed code (so any decode cache
   must be invalidated), 16-bit patches, and an instruction that straddles a page boundary.
   (Whether stale code may run *before* the fence is implementation-defined: not tested.) */
#include "env/test.h"

#define INSN_ADDI_A0_A0(imm) (0x00050513 | ((imm) << 20))   /* addi a0, a0, imm */
#define INSN_RET 0x00008067                                   /* jalr x0, 0(ra) */
#define INSN_C_LI_A0(imm) (0x4501 | ((imm) << 2))             /* c.li a0, imm (0..31) */

TEST_BEGIN
  .option push
  .option norvc

  CASE 1                              /* generate "addi a0, a0, 1; ret" and call it */
  la s0, codebuf
  li t0, INSN_ADDI_A0_A0(1)
  sw t0, 0(s0)
  li t0, INSN_RET
  sw t0, 4(s0)
  fence.i
  li a0, 10
  jalr ra, 0(s0)
  CHECK_EQ a0, 11
  CASE 2                              /* run it several times, then patch the immediate */
  li a0, 0
  jalr ra, 0(s0)
  jalr ra, 0(s0)
  jalr ra, 0(s0)
  CHECK_EQ a0, 3
  li t0, INSN_ADDI_A0_A0(100)
  sw t0, 0(s0)
  fence.i
  jalr ra, 0(s0)
  CHECK_EQ a0, 103
  CASE 3                              /* patch in a loop: each iteration sees the new code */
  li a0, 0
  li s1, 1
1:
  li t0, INSN_ADDI_A0_A0(0)
  slli t1, s1, 20
  or t0, t0, t1
  sw t0, 0(s0)
  fence.i
  jalr ra, 0(s0)
  addi s1, s1, 1
  li t0, 6
  bne s1, t0, 1b
  CHECK_EQ a0, 15                   /* 1 + 2 + 3 + 4 + 5 */
  CASE 4                              /* a longer generated function: grow it by one insn */
  li t0, INSN_ADDI_A0_A0(1)
  sw t0, 0(s0)
  sw t0, 4(s0)
  li t0, INSN_RET
  sw t0, 8(s0)
  fence.i
  li a0, 0
  jalr ra, 0(s0)
  CHECK_EQ a0, 2
  li t0, INSN_ADDI_A0_A0(1)
  sw t0, 8(s0)
  li t0, INSN_RET
  sw t0, 12(s0)
  fence.i
  li a0, 0
  jalr ra, 0(s0)
  CHECK_EQ a0, 3

  CASE 5                              /* patch code in .text that already ran */
  li s1, 0
2:
  li a0, 0
patch_site:
  addi a0, a0, 3
  bnez s1, 3f
  CHECK_EQ a0, 3
  la t1, patch_site
  li t0, INSN_ADDI_A0_A0(7)
  sw t0, 0(t1)
  fence.i
  li s1, 1
  j 2b
3:
  CHECK_EQ a0, 7

  CASE 6                              /* 16-bit patch: c.li a0, 1 -> c.li a0, 5 */
  la s0, codebuf
  li t0, INSN_C_LI_A0(1)
  sh t0, 0(s0)
  li t0, 0x8082                       /* c.jr ra (ret) */
  sh t0, 2(s0)
  fence.i
  li a0, 0
  jalr ra, 0(s0)
  CHECK_EQ a0, 1
  li t0, INSN_C_LI_A0(5)
  sh t0, 0(s0)
  fence.i
  jalr ra, 0(s0)
  CHECK_EQ a0, 5
  CASE 7                              /* replace a 16-bit instruction by a 32-bit one */
  li t0, INSN_ADDI_A0_A0(9)
  sh t0, 0(s0)
  srli t0, t0, 16
  sh t0, 2(s0)
  li t0, INSN_RET
  sw t0, 4(s0)
  fence.i
  li a0, 0
  jalr ra, 0(s0)
  CHECK_EQ a0, 9

  CASE 8                              /* a 32-bit instruction straddling a page boundary */
  la s0, pagebuf
  li t0, 4094
  add s0, s0, t0
  li t0, INSN_ADDI_A0_A0(0x11)
  sh t0, 0(s0)                        /* low half at the end of the first page */
  srli t0, t0, 16
  sh t0, 2(s0)                        /* high half (the immediate) in the next page */
  li t0, INSN_RET
  sh t0, 4(s0)
  srli t0, t0, 16
  sh t0, 6(s0)
  fence.i
  li a0, 0
  jalr ra, 0(s0)
  CHECK_EQ a0, 0x11
  li t0, INSN_ADDI_A0_A0(0x22)        /* change only the half in the second page */
  srli t0, t0, 16
  sh t0, 2(s0)
  fence.i
  li a0, 0
  jalr ra, 0(s0)
  CHECK_EQ a0, 0x22

  .option pop
TEST_END

  .data
  .align 4
codebuf: .zero 64
  .align 12
pagebuf: .zero 8192
