/* RV64A: LR/SC (success, failure without or after losing the reservation, different address),
   every AMO in .W and .D form (old value in rd, sign extension of .W, the neighbouring word
   untouched), aq/rl encodings, rd = x0 / rd = rs2, and misaligned or unmapped atomics. */
#include "env/test.h"

/* AMO on a 32-bit word in the low half of a dword whose high half must stay 0x5a5a5a5a */
.macro TEST_AMO_W n, op, init, src, exp_rd, exp_mem
  CASE \n
  la a1, amo_buf
  li t0, 0x5a5a5a5a5a5a5a5a
  sd t0, 0(a1)
  li t0, \init
  sw t0, 0(a1)
  li a2, \src
  \op a0, a2, (a1)
  CHECK_EQ a0, \exp_rd
  lw a3, 0(a1)
  CHECK_EQ a3, \exp_mem
  lwu a3, 4(a1)
  CHECK_EQ a3, 0x5a5a5a5a
.endm

.macro TEST_AMO_D n, op, init, src, exp_rd, exp_mem
  CASE \n
  la a1, amo_buf
  li t0, \init
  sd t0, 0(a1)
  li a2, \src
  \op a0, a2, (a1)
  CHECK_EQ a0, \exp_rd
  ld a3, 0(a1)
  CHECK_EQ a3, \exp_mem
.endm

TEST_BEGIN

  TEST_AMO_W 1, amoswap.w, 0x12345678, 0x87654321, 0x12345678, 0xffffffff87654321
  TEST_AMO_W 2, amoswap.w, 0x80000000, 0x7fffffff, 0xffffffff80000000, 0x7fffffff
  TEST_AMO_W 3, amoadd.w, 0x1, 0x2, 0x1, 0x3
  TEST_AMO_W 4, amoadd.w, 0x7fffffff, 0x1, 0x7fffffff, 0xffffffff80000000
  TEST_AMO_W 5, amoadd.w, 0xffffffff, 0x1, 0xffffffffffffffff, 0x0
  TEST_AMO_W 7, amoxor.w, 0xff00ff00, 0xff00ff0, 0xffffffffff00ff00, 0xfffffffff0f0f0f0
  TEST_AMO_W 8, amoand.w, 0xff00ff00, 0xff00ff00ff00ff0, 0xffffffffff00ff00, 0xf000f00
  TEST_AMO_W 9, amoor.w, 0xff00ff00, 0xff00ff00ff00ff0, 0xffffffffff00ff00, 0xfffffffffff0fff0
  TEST_AMO_W 10, amomin.w, 0x5, 0xfffffffffffffffd, 0x5, 0xfffffffffffffffd
  TEST_AMO_W 11, amomin.w, 0x80000000, 0x1, 0xffffffff80000000, 0xffffffff80000000
  TEST_AMO_W 12, amomin.w, 0x0, 0x1, 0x0, 0x0
  TEST_AMO_W 13, amomin.w, 0x7, 0x7, 0x7, 0x7
  TEST_AMO_W 14, amomax.w, 0x5, 0xfffffffffffffffd, 0x5, 0x5
  TEST_AMO_W 15, amomax.w, 0x80000000, 0x1, 0xffffffff80000000, 0x1
  TEST_AMO_W 16, amomax.w, 0x0, 0x1, 0x0, 0x1
  TEST_AMO_W 18, amominu.w, 0x5, 0xfffffffffffffffd, 0x5, 0x5
  TEST_AMO_W 19, amominu.w, 0x80000000, 0xffffffff00000001, 0xffffffff80000000, 0x1
  TEST_AMO_W 20, amominu.w, 0x0, 0x1, 0x0, 0x0
  TEST_AMO_W 21, amomaxu.w, 0x5, 0xfffffffffffffffd, 0x5, 0xfffffffffffffffd
  TEST_AMO_W 22, amomaxu.w, 0x80000000, 0x1, 0xffffffff80000000, 0xffffffff80000000
  TEST_AMO_W 23, amomaxu.w, 0x0, 0x1, 0x0, 0x1
  TEST_AMO_D 30, amoswap.d, 0x12345678, 0x87654321, 0x12345678, 0x87654321
  TEST_AMO_D 31, amoswap.d, 0xffffffff80000000, 0x7fffffff, 0xffffffff80000000, 0x7fffffff
  TEST_AMO_D 32, amoadd.d, 0x1, 0x2, 0x1, 0x3
  TEST_AMO_D 33, amoadd.d, 0x7fffffff, 0x1, 0x7fffffff, 0x80000000
  TEST_AMO_D 34, amoadd.d, 0xffffffff, 0x1, 0xffffffff, 0x100000000
  TEST_AMO_D 35, amoadd.d, 0x7fffffffffffffff, 0x1, 0x7fffffffffffffff, 0x8000000000000000
  TEST_AMO_D 36, amoxor.d, 0xff00ff00, 0xff00ff0, 0xff00ff00, 0xf0f0f0f0
  TEST_AMO_D 37, amoand.d, 0xff00ff00ff00ff00, 0xff00ff00ff00ff0, 0xff00ff00ff00ff00, 0xf000f000f000f00
  TEST_AMO_D 38, amoor.d, 0xff00ff00ff00ff00, 0xff00ff00ff00ff0, 0xff00ff00ff00ff00, 0xfff0fff0fff0fff0
  TEST_AMO_D 39, amomin.d, 0x5, 0xfffffffffffffffd, 0x5, 0xfffffffffffffffd
  TEST_AMO_D 40, amomin.d, 0x80000000, 0x1, 0x80000000, 0x1
  TEST_AMO_D 41, amomin.d, 0x8000000000000000, 0x1, 0x8000000000000000, 0x8000000000000000
  TEST_AMO_D 42, amomin.d, 0x7, 0x7, 0x7, 0x7
  TEST_AMO_D 43, amomax.d, 0x5, 0xfffffffffffffffd, 0x5, 0x5
  TEST_AMO_D 44, amomax.d, 0x80000000, 0x1, 0x80000000, 0x80000000
  TEST_AMO_D 45, amomax.d, 0x8000000000000000, 0x1, 0x8000000000000000, 0x1
  TEST_AMO_D 46, amomax.d, 0x100000000, 0x1, 0x100000000, 0x100000000
  TEST_AMO_D 47, amominu.d, 0x5, 0xfffffffffffffffd, 0x5, 0x5
  TEST_AMO_D 48, amominu.d, 0x80000000, 0xffffffff00000001, 0x80000000, 0x80000000
  TEST_AMO_D 49, amominu.d, 0x8000000000000000, 0x1, 0x8000000000000000, 0x1
  TEST_AMO_D 50, amomaxu.d, 0x5, 0xfffffffffffffffd, 0x5, 0xfffffffffffffffd
  TEST_AMO_D 51, amomaxu.d, 0x80000000, 0x1, 0x80000000, 0x80000000
  TEST_AMO_D 52, amomaxu.d, 0x8000000000000000, 0x1, 0x8000000000000000, 0x8000000000000000

  /* ---- LR / SC ---- */
  CASE 60                         /* lr.w sign-extends; sc.w succeeds with 0 */
  la a1, amo_buf
  li t0, 0x5a5a5a5a80000001
  sd t0, 0(a1)
  lr.w a0, (a1)
  CHECK_EQ a0, 0xffffffff80000001
  li a2, 0x1234
  sc.w a3, a2, (a1)
  CHECK_EQ a3, 0
  ld a0, 0(a1)
  CHECK_EQ a0, 0x5a5a5a5a00001234
  CASE 61                         /* the reservation is gone after an SC: a second SC fails */
  li a2, 0x5678
  sc.w a3, a2, (a1)
  CHECK_NE a3, 0
  ld a0, 0(a1)
  CHECK_EQ a0, 0x5a5a5a5a00001234
  CASE 62                         /* lr.d / sc.d */
  li t0, 0x0123456789abcdef
  sd t0, 0(a1)
  lr.d a0, (a1)
  CHECK_EQ a0, 0x0123456789abcdef
  addi a0, a0, 1
  sc.d a3, a0, (a1)
  CHECK_EQ a3, 0
  ld a0, 0(a1)
  CHECK_EQ a0, 0x0123456789abcdf0
  CASE 63                         /* sc.d without any reservation fails, memory unchanged */
  li a2, -1
  sc.d a3, a2, (a1)
  CHECK_NE a3, 0
  ld a0, 0(a1)
  CHECK_EQ a0, 0x0123456789abcdf0
  CASE 64                         /* sc to an address outside the reservation set fails */
  la a4, amo_far
  sd zero, 0(a4)
  lr.d a0, (a1)
  li a2, 77
  sc.d a3, a2, (a4)
  CHECK_NE a3, 0
  ld a0, 0(a4)
  CHECK_EQ a0, 0
  CASE 65                         /* ... and that failed sc also dropped the reservation */
  sc.d a3, a2, (a1)
  CHECK_NE a3, 0
  CASE 66                         /* a retry loop: atomic increment with lr/sc */
  la a1, amo_buf
  sd zero, 0(a1)
  li a4, 10
1:
  lr.d.aq a0, (a1)
  addi a0, a0, 3
  sc.d.rl a3, a0, (a1)
  bnez a3, 1b
  addi a4, a4, -1
  bnez a4, 1b
  ld a0, 0(a1)
  CHECK_EQ a0, 30
  CASE 67                         /* sc.w success writes only 32 bits */
  li t0, -1
  sd t0, 0(a1)
  lr.w.aqrl a0, (a1)
  CHECK_EQ a0, -1
  sc.w.aqrl a3, zero, (a1)
  CHECK_EQ a3, 0
  ld a0, 0(a1)
  CHECK_EQ a0, 0xffffffff00000000
  CASE 68                         /* lr on the upper word of a dword */
  li t0, 0x7fffffff00000000
  sd t0, 0(a1)
  la a4, amo_far
  lr.w a0, (a4)                   /* a newer LR replaces the reservation */
  addi a5, a1, 4
  lr.w a0, (a5)
  CHECK_EQ a0, 0x7fffffff
  li a2, 0x11
  sc.w a3, a2, (a5)
  CHECK_EQ a3, 0
  ld a0, 0(a1)
  CHECK_EQ a0, 0x0000001100000000

  /* ---- register corner cases and ordering bits ---- */
  CASE 70                         /* rd = x0: memory still updated */
  la a1, amo_buf
  li t0, 5
  sd t0, 0(a1)
  li a2, 6
  amoadd.d x0, a2, (a1)
  ld a0, 0(a1)
  CHECK_EQ a0, 11
  CASE 71                         /* rd == rs2: memory gets the old rs2, rd the old memory */
  li a2, 100
  amoswap.d a2, a2, (a1)
  CHECK_EQ a2, 11
  ld a0, 0(a1)
  CHECK_EQ a0, 100
  CASE 72
  li a2, 1
  amoadd.w.aq a0, a2, (a1)
  amoadd.w.rl a0, a2, (a1)
  amoadd.w.aqrl a0, a2, (a1)
  amoor.d.aqrl a0, zero, (a1)
  CHECK_EQ a0, 103
  CASE 73                         /* amoswap with rs2 = x0 clears */
  amoswap.d a0, zero, (a1)
  CHECK_EQ a0, 103
  ld a0, 0(a1)
  CHECK_EQ a0, 0

  /* ---- misaligned atomics trap (address-misaligned, or access fault: both allowed),
     memory unchanged ---- */
  CASE 80
  la a1, amo_buf
  sd zero, 0(a1)
  sd zero, 8(a1)
  addi a5, a1, 2
  EXPECT_TRAP
  li a2, 1
  amoadd.w a0, a2, (a5)
  call check_amo_fault
  CASE 81
  addi a5, a1, 4
  EXPECT_TRAP
  amoswap.d a0, a2, (a5)
  call check_amo_fault
  CASE 82
  addi a5, a1, 1
  EXPECT_TRAP
  lr.w a0, (a5)
  CHECK_NO_PENDING_EXPECT
  la t5, trap_rec
  ld t5, TR_CAUSE(t5)
  addi t5, t5, -CAUSE_MISALIGNED_LOAD   /* 4 (misaligned) or 5 (access fault) */
  li t4, 2
  CHECK_LTU t5, t4
  CHECK_TRAP_TVAL_REG a5
  CASE 83
  addi a5, a1, 4
  EXPECT_TRAP
  li a0, 0
  sc.d a0, a2, (a5)
  /* QEMU <= 7.2 checks the reservation first and fails such an SC without trapping
     (deviation, see README.md) */
  IF_QEMU_UPTO 0x0702ff, 1f
  call check_amo_fault
  j 2f
1:
  CHECK_NE a0, 0
  EXPECT_TRAPS 0
2:
  ld a0, 0(a1)
  CHECK_EQ a0, 0
  ld a0, 8(a1)
  CHECK_EQ a0, 0

  /* ---- atomics on an address where nothing answers: access faults ---- */
  CASE 84
  li a5, UNMAPPED_PA
  EXPECT_TRAP
1:
  amoadd.d a0, a2, (a5)
  CHECK_NO_PENDING_EXPECT
  CHECK_TRAP_EPC 1b
  CHECK_TRAP_TVAL UNMAPPED_PA
  /* store/AMO access fault; QEMU <= 7.2 reports a load access fault (deviation) */
  la t5, trap_rec
  ld t4, TR_CAUSE(t5)
  li t5, CAUSE_LOAD_ACCESS
  bne t4, t5, 2f
  IF_QEMU_UPTO 0x0702ff, 3f
2:
  CHECK_EQ t4, CAUSE_STORE_ACCESS
3:
  CASE 85
  EXPECT_TRAP
1:
  lr.d a0, (a5)
  CHECK_TRAP CAUSE_LOAD_ACCESS, 1b, PRV_M
  CHECK_TRAP_TVAL UNMAPPED_PA

TEST_END

/* the last trap was a store/AMO misaligned (6) or access fault (7) with tval = a5.
   QEMU <= 7.2 reports a misaligned AMO/SC as a *load* address-misaligned (4): accepted there
   only (QEMU deviation, see README.md). */
check_amo_fault:
  CHECK_NO_PENDING_EXPECT
  la t5, trap_rec
  ld t4, TR_TVAL(t5)
  CHECK_REQ t4, a5
  ld t4, TR_CAUSE(t5)
  li t5, CAUSE_MISALIGNED_STORE
  beq t4, t5, 1f
  li t5, CAUSE_MISALIGNED_LOAD
  bne t4, t5, 2f
  IF_QEMU_UPTO 0x0702ff, 1f
2:
  CHECK_EQ t4, CAUSE_STORE_ACCESS
1:
  ret

  .data
  .align 4
amo_buf: .zero 16
  .align 12
amo_far: .zero 16
