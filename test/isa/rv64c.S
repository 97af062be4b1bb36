/* RV64C: every compressed instruction of RV64GC (quadrants 0, 1, 2), checked for its exact
   16-bit encoding (written with explicit c.* mnemonics), its immediate ranges and sign
   extension, plus reserved encodings (illegal instruction) and HINTs (no-ops). */
#include "env/test.h"

/* a 16-bit instruction that must raise illegal instruction with tval = 0 or the bits */
.macro TEST_C_ILLEGAL n, bits
  CASE \n
  EXPECT_TRAP
.Li\@:
  .half \bits
  CHECK_TRAP CAUSE_ILLEGAL, .Li\@, PRV_M
  la t5, trap_rec
  ld t5, TR_TVAL(t5)
  beqz t5, .Lz\@
  CHECK_EQ t5, \bits
.Lz\@:
.endm

TEST_BEGIN
  .option push
  .option rvc
  mv s2, sp                        /* sp is an operand below; restored at the end */

  /* ---------------- quadrant 0 ---------------- */
  CASE 1
  la sp, cbuf
  c.addi4spn a0, sp, 4
  addi a1, sp, 4
  CHECK_REQ a0, a1
  CASE 2
  c.addi4spn s1, sp, 1020          /* largest immediate */
  addi a1, sp, 1020
  CHECK_REQ s1, a1
  CASE 3
  la a1, cdata
  c.lw a0, 0(a1)
  CHECK_EQ a0, 0xffffffff80000001  /* sign-extended */
  CASE 4
  c.lw a0, 4(a1)
  CHECK_EQ a0, 0x7ffffffe
  CASE 5
  c.ld a0, 8(a1)
  CHECK_EQ a0, 0x0123456789abcdef
  CASE 6
  c.ld a2, 16(a1)
  CHECK_EQ a2, 0xbff0000000000000
  CASE 7
  c.fld fa0, 16(a1)                /* -1.0 */
  fmv.x.d a0, fa0
  CHECK_EQ a0, 0xbff0000000000000
  CASE 8
  la a2, cbuf
  li a3, 0x1122334455667788
  c.sd a3, 0(a2)
  c.sw a3, 12(a2)
  ld a0, 0(a2)
  CHECK_EQ a0, 0x1122334455667788
  lwu a0, 12(a2)
  CHECK_EQ a0, 0x55667788
  CASE 9
  c.fsd fa0, 24(a2)
  ld a0, 24(a2)
  CHECK_EQ a0, 0xbff0000000000000
  CASE 10                          /* largest offsets: c.lw 124, c.ld / c.fld 248 */
  li a3, 0x0badcafe
  sw a3, 124(a2)
  c.lw a0, 124(a2)
  CHECK_EQ a0, 0x0badcafe
  li a3, 0x4000000000000000        /* 2.0 */
  sd a3, 248(a2)
  c.ld a0, 248(a2)
  CHECK_EQ a0, 0x4000000000000000
  c.fld fa1, 248(a2)
  c.fsd fa1, 240(a2)
  ld a0, 240(a2)
  CHECK_EQ a0, 0x4000000000000000

  /* ---------------- quadrant 1 ---------------- */
  CASE 20
  li a0, 5
  c.nop
  c.addi a0, -6
  CHECK_EQ a0, -1
  CASE 21
  c.addi a0, 31
  CHECK_EQ a0, 30
  CASE 22
  li a0, 0x7fffffff
  c.addiw a0, 1                    /* 32-bit wrap, sign-extended */
  CHECK_EQ a0, 0xffffffff80000000
  CASE 23
  li a0, 0x1234567880000000
  c.addiw a0, 0                    /* sext.w */
  CHECK_EQ a0, 0xffffffff80000000
  CASE 24
  li a0, 0
  c.addiw a0, -32
  CHECK_EQ a0, -32
  CASE 25
  c.li a0, -32
  CHECK_EQ a0, -32
  c.li a5, 31
  CHECK_EQ a5, 31
  CASE 26
  la sp, cbuf
  mv a1, sp
  c.addi16sp sp, 496               /* largest */
  sub a0, sp, a1
  CHECK_EQ a0, 496
  c.addi16sp sp, -512              /* most negative */
  sub a0, a1, sp
  CHECK_EQ a0, 16
  c.addi16sp sp, 16
  CHECK_REQ sp, a1
  CASE 27
  c.lui a0, 1
  CHECK_EQ a0, 0x1000
  c.lui a0, 0x1f
  CHECK_EQ a0, 0x1f000
  c.lui a0, 0xfffe0                /* nzimm[17] set: sign-extended */
  CHECK_EQ a0, 0xfffffffffffe0000
  c.lui a0, 0xfffff
  CHECK_EQ a0, 0xfffffffffffff000
  CASE 28
  li a0, 0x8000000000000000
  c.srli a0, 63
  CHECK_EQ a0, 1
  li a0, 0x8000000000000000
  c.srli a0, 32                    /* shamt[5] = 1: RV64 only */
  CHECK_EQ a0, 0x80000000
  CASE 29
  li a0, 0x8000000000000000
  c.srai a0, 63
  CHECK_EQ a0, -1
  li a0, 0x8000000000000000
  c.srai a0, 33
  CHECK_EQ a0, 0xffffffffc0000000
  CASE 30
  li a0, 0x123456789abcdef0
  c.andi a0, -16                   /* sign-extended immediate */
  CHECK_EQ a0, 0x123456789abcdef0
  c.andi a0, 0x1f
  CHECK_EQ a0, 0x10
  c.andi a0, 0
  CHECK_EQ a0, 0
  CASE 31
  li a0, 10
  li a1, 3
  c.sub a0, a1
  CHECK_EQ a0, 7
  li a0, 0
  c.sub a0, a1
  CHECK_EQ a0, -3
  CASE 32
  li a0, 0xff00
  li a1, 0x0ff0
  c.xor a0, a1
  CHECK_EQ a0, 0xf0f0
  li a0, 0xff00
  c.or a0, a1
  CHECK_EQ a0, 0xfff0
  li a0, 0xff00
  c.and a0, a1
  CHECK_EQ a0, 0x0f00
  CASE 33
  li a0, 0x80000000
  li a1, 1
  c.subw a0, a1
  CHECK_EQ a0, 0x7fffffff
  li a0, 0x7fffffff
  c.addw a0, a1
  CHECK_EQ a0, 0xffffffff80000000
  li a0, 0x100000005
  li a1, 0x200000003
  c.addw a0, a1
  CHECK_EQ a0, 8
  CASE 34                          /* c.j forward and backward */
  li a0, 0
  c.j 2f
1:
  addi a0, a0, 1
  c.j 3f
2:
  c.j 1b
  j fail
3:
  CHECK_EQ a0, 1
  CASE 35                          /* c.beqz / c.bnez, taken and not taken */
  li a0, 0
  li a1, 1
  c.beqz a0, 1f
  j fail
1:
  c.bnez a1, 2f
  j fail
2:
  c.beqz a1, 3f
  c.bnez a0, 3f
  j 4f
3:
  j fail
4:
  CASE 36                          /* c.bnez compares all 64 bits */
  li a0, 0x100000000
  c.bnez a0, 1f
  j fail
1:
  CASE 37                          /* backward c.bnez loop */
  li a0, 5
  li a1, 0
1:
  addi a1, a1, 2
  c.addi a0, -1
  c.bnez a0, 1b
  CHECK_EQ a1, 10

  /* ---------------- quadrant 2 ---------------- */
  CASE 40
  li a0, 1
  c.slli a0, 63
  CHECK_EQ a0, 0x8000000000000000
  li a0, 0x12345678
  c.slli a0, 32
  CHECK_EQ a0, 0x1234567800000000
  CASE 41
  la sp, cbuf
  li a1, 0xfffffffe
  sw a1, 8(sp)
  c.lwsp a0, 8(sp)
  CHECK_EQ a0, -2
  li a1, 0x0123456789abcdef
  sd a1, 16(sp)
  c.ldsp a0, 16(sp)
  CHECK_EQ a0, 0x0123456789abcdef
  c.fldsp fa2, 16(sp)
  fmv.x.d a0, fa2
  CHECK_EQ a0, 0x0123456789abcdef
  CASE 42
  li a1, 0x55aa55aa55aa55aa
  c.sdsp a1, 32(sp)
  c.swsp a1, 40(sp)
  ld a0, 32(sp)
  CHECK_EQ a0, 0x55aa55aa55aa55aa
  lwu a0, 40(sp)
  CHECK_EQ a0, 0x55aa55aa
  c.fsdsp fa2, 48(sp)
  ld a0, 48(sp)
  CHECK_EQ a0, 0x0123456789abcdef
  CASE 43                          /* largest sp offsets: lwsp 252, ldsp/fldsp 504 */
  li a1, 0x600d
  c.swsp a1, 252(sp)
  c.lwsp a0, 252(sp)
  CHECK_EQ a0, 0x600d
  c.sdsp a1, 504(sp)
  c.ldsp a0, 504(sp)
  CHECK_EQ a0, 0x600d
  c.fsdsp fa2, 496(sp)
  c.fldsp fa3, 496(sp)
  fmv.x.d a0, fa3
  CHECK_EQ a0, 0x0123456789abcdef
  CASE 44
  li a1, 77
  c.mv a0, a1
  CHECK_EQ a0, 77
  c.add a0, a1
  CHECK_EQ a0, 154
  li a2, -154
  c.add a0, a2
  CHECK_EQ a0, 0
  CASE 45                          /* c.jr */
  la a1, 1f
  c.jr a1
  j fail
1:
  CASE 46                          /* c.jalr links pc + 2 */
  la a1, 1f
  li ra, 0
  c.jalr a1
2:
  j fail
1:
  CHECK_ADDR ra, 2b
  CASE 47                          /* c.jalr ra: target uses the old ra */
  la ra, 1f
  c.jalr ra
3:
  j fail
1:
  CHECK_ADDR ra, 3b
  CASE 48                          /* c.ebreak: breakpoint, epc = its address */
  EXPECT_TRAP
4:
  c.ebreak
  CHECK_TRAP CAUSE_BREAKPOINT, 4b, PRV_M
  CASE 49                          /* c.jr to a target whose bit 0 is set: bit 0 is ignored */
  la a1, 1f
  addi a1, a1, 1
  c.jr a1
  j fail
1:

  /* ---------------- mixing 16- and 32-bit instructions at 2-byte alignment ---------- */
  CASE 50
  .align 2
  c.nop
  li a0, 0x12345678                /* a 32-bit lui+addiw at pc % 4 == 2 */
  c.nop
  addi a0, a0, 1
  CHECK_EQ a0, 0x12345679
  CASE 51                          /* auipc at an odd halfword */
  .align 2
  c.nop
5:
  auipc a0, 0
  la a1, 5b
  CHECK_REQ a0, a1

  /* ---------------- reserved encodings: illegal instruction ---------------- */
  TEST_C_ILLEGAL 60, 0x0000        /* all zeros */
  TEST_C_ILLEGAL 61, 0x0004        /* c.addi4spn with nzuimm = 0 */
  TEST_C_ILLEGAL 62, 0x6101        /* c.addi16sp with nzimm = 0 */
  TEST_C_ILLEGAL 63, 0x6501        /* c.lui a0 with nzimm = 0 */
  TEST_C_ILLEGAL 64, 0x8002        /* c.jr with rs1 = x0 */
  TEST_C_ILLEGAL 65, 0x4002        /* c.lwsp with rd = x0 */
  TEST_C_ILLEGAL 66, 0x6002        /* c.ldsp with rd = x0 */
  TEST_C_ILLEGAL 67, 0x2005        /* c.addiw with rd = x0 */
  TEST_C_ILLEGAL 68, 0x9c41        /* quadrant 1, funct6 100111, funct2 10: reserved */
  TEST_C_ILLEGAL 69, 0x9c61        /* quadrant 1, funct6 100111, funct2 11: reserved */

  /* ---------------- HINTs: execute as no-ops ---------------- */
  CASE 80
  li a0, 42
  .half 0x0005                     /* c.nop with nzimm = 1 */
  .half 0x0501                     /* c.addi a0, 0 */
  .half 0x4005                     /* c.li x0, 1 */
  .half 0x6005                     /* c.lui x0, 1 */
  .half 0x802a                     /* c.mv x0, a0 */
  .half 0x902a                     /* c.add x0, a0 */
  .half 0x0006                     /* c.slli x0, 1 */
  CHECK_EQ a0, 42
  CHECK_EQ x0, 0

  mv sp, s2
  .option pop
TEST_END

  .data
  .align 4
cdata:
  .word 0x80000001, 0x7ffffffe
  .dword 0x0123456789abcdef
  .dword 0xbff0000000000000
  .align 4
cbuf: .zero 1024
