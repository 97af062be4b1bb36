/* RV64M: multiply (low, high signed/unsigned/mixed), divide and remainder, their W forms,
   and the defined results of division by zero and signed overflow (no traps). */
#include "env/test.h"

TEST_BEGIN

  /* mul */
  TEST_RR 1, mul, 0x0, 0x0, 0x0
  TEST_RR 2, mul, 0x15, 0x3, 0x7
  TEST_RR 3, mul, 0x1, 0xffffffffffffffff, 0xffffffffffffffff
  TEST_RR 4, mul, 0xfffffffffffffffe, 0x7fffffffffffffff, 0x2
  TEST_RR 5, mul, 0x8000000000000000, 0x8000000000000000, 0xffffffffffffffff
  TEST_RR 6, mul, 0x236d88fe5618cf00, 0x123456789abcdef0, 0xfedcba9876543210
  TEST_RR 7, mul, 0xfffffffffffffff1, 0xfffffffffffffffd, 0x5
  TEST_RR 8, mul, 0xfffffffe00000001, 0xffffffff, 0xffffffff
  /* mulh */
  TEST_RR 10, mulh, 0x0, 0x0, 0x0
  TEST_RR 11, mulh, 0x0, 0xffffffffffffffff, 0xffffffffffffffff
  TEST_RR 12, mulh, 0xffffffffffffffff, 0xffffffffffffffff, 0x1
  TEST_RR 13, mulh, 0x4000000000000000, 0x8000000000000000, 0x8000000000000000
  TEST_RR 14, mulh, 0x3fffffffffffffff, 0x7fffffffffffffff, 0x7fffffffffffffff
  TEST_RR 15, mulh, 0xc000000000000000, 0x8000000000000000, 0x7fffffffffffffff
  TEST_RR 16, mulh, 0xffeb49923cc09532, 0x123456789abcdef0, 0xfedcba9876543210
  TEST_RR 17, mulh, 0xffffffffffffffff, 0x2, 0x8000000000000000
  /* mulhsu */
  TEST_RR 20, mulhsu, 0x0, 0x0, 0x0
  TEST_RR 21, mulhsu, 0xffffffffffffffff, 0xffffffffffffffff, 0xffffffffffffffff
  TEST_RR 22, mulhsu, 0xffffffffffffffff, 0xffffffffffffffff, 0x1
  TEST_RR 23, mulhsu, 0x8000000000000000, 0x8000000000000000, 0xffffffffffffffff
  TEST_RR 24, mulhsu, 0x7ffffffffffffffe, 0x7fffffffffffffff, 0xffffffffffffffff
  TEST_RR 25, mulhsu, 0x121fa00ad77d7422, 0x123456789abcdef0, 0xfedcba9876543210
  TEST_RR 26, mulhsu, 0xffffffffffffffff, 0xfffffffffffffffe, 0x8000000000000000
  /* mulhu */
  TEST_RR 30, mulhu, 0x0, 0x0, 0x0
  TEST_RR 31, mulhu, 0xfffffffffffffffe, 0xffffffffffffffff, 0xffffffffffffffff
  TEST_RR 32, mulhu, 0x1, 0xffffffffffffffff, 0x2
  TEST_RR 33, mulhu, 0x4000000000000000, 0x8000000000000000, 0x8000000000000000
  TEST_RR 34, mulhu, 0x121fa00ad77d7422, 0x123456789abcdef0, 0xfedcba9876543210
  TEST_RR 35, mulhu, 0x0, 0xffffffff, 0x100000001
  /* div */
  TEST_RR 40, div, 0x3, 0x14, 0x6
  TEST_RR 41, div, 0xfffffffffffffffd, 0xffffffffffffffec, 0x6
  TEST_RR 42, div, 0xfffffffffffffffd, 0x14, 0xfffffffffffffffa
  TEST_RR 43, div, 0x3, 0xffffffffffffffec, 0xfffffffffffffffa
  TEST_RR 44, div, 0x8000000000000000, 0x8000000000000000, 0xffffffffffffffff
  TEST_RR 45, div, 0x8000000000000000, 0x8000000000000000, 0x1
  TEST_RR 46, div, 0xffffffffffffffff, 0x7, 0x0
  TEST_RR 47, div, 0xffffffffffffffff, 0xfffffffffffffff9, 0x0
  TEST_RR 48, div, 0xffffffffffffffff, 0x0, 0x0
  TEST_RR 49, div, 0x0, 0x1, 0x2
  TEST_RR 50, div, 0x0, 0xffffffffffffffff, 0x2
  /* divu */
  TEST_RR 60, divu, 0x3, 0x14, 0x6
  TEST_RR 61, divu, 0x2aaaaaaaaaaaaaa7, 0xffffffffffffffec, 0x6
  TEST_RR 62, divu, 0x0, 0x14, 0xfffffffffffffffa
  TEST_RR 63, divu, 0x0, 0x8000000000000000, 0xffffffffffffffff
  TEST_RR 64, divu, 0xffffffffffffffff, 0x7, 0x0
  TEST_RR 65, divu, 0xffffffffffffffff, 0xffffffffffffffff, 0x1
  TEST_RR 66, divu, 0xffffffff, 0xffffffffffffffff, 0x100000000
  /* rem */
  TEST_RR 70, rem, 0x2, 0x14, 0x6
  TEST_RR 71, rem, 0xfffffffffffffffe, 0xffffffffffffffec, 0x6
  TEST_RR 72, rem, 0x2, 0x14, 0xfffffffffffffffa
  TEST_RR 73, rem, 0xfffffffffffffffe, 0xffffffffffffffec, 0xfffffffffffffffa
  TEST_RR 74, rem, 0x0, 0x8000000000000000, 0xffffffffffffffff
  TEST_RR 75, rem, 0x7, 0x7, 0x0
  TEST_RR 76, rem, 0xfffffffffffffff9, 0xfffffffffffffff9, 0x0
  TEST_RR 77, rem, 0x0, 0x0, 0x0
  TEST_RR 78, rem, 0xffffffffffffffff, 0xffffffffffffffff, 0x2
  /* remu */
  TEST_RR 80, remu, 0x2, 0x14, 0x6
  TEST_RR 81, remu, 0x2, 0xffffffffffffffec, 0x6
  TEST_RR 82, remu, 0x14, 0x14, 0xfffffffffffffffa
  TEST_RR 83, remu, 0x7, 0x7, 0x0
  TEST_RR 84, remu, 0xffffffff, 0xffffffffffffffff, 0x100000000
  TEST_RR 85, remu, 0x8000000000000000, 0x8000000000000000, 0xffffffffffffffff
  /* mulw */
  TEST_RR 90, mulw, 0x15, 0x3, 0x7
  TEST_RR 91, mulw, 0x1, 0xffffffffffffffff, 0xffffffffffffffff
  TEST_RR 92, mulw, 0xfffffffffffffffe, 0x7fffffff, 0x2
  TEST_RR 93, mulw, 0x0, 0x10000, 0x10000
  TEST_RR 94, mulw, 0x34567890, 0x123456789, 0x10
  TEST_RR 95, mulw, 0xffffffff80000000, 0xffffffff80000000, 0xffffffffffffffff
  TEST_RR 96, mulw, 0xf, 0xaaaaaaaa00000003, 0x5555555500000005
  /* divw */
  TEST_RR 100, divw, 0x3, 0x14, 0x6
  TEST_RR 101, divw, 0xfffffffffffffffd, 0xffffffffffffffec, 0x6
  TEST_RR 102, divw, 0xfffffffffffffffd, 0x14, 0xfffffffffffffffa
  TEST_RR 103, divw, 0xffffffff80000000, 0xffffffff80000000, 0xffffffffffffffff
  TEST_RR 104, divw, 0xffffffff80000000, 0x80000000, 0xffffffffffffffff
  TEST_RR 105, divw, 0xffffffffffffffff, 0x7, 0x0
  TEST_RR 106, divw, 0xffffffffffffffff, 0x100000007, 0x100000000
  TEST_RR 107, divw, 0x3, 0xffffffff00000014, 0x6
  TEST_RR 108, divw, 0x0, 0xffffffffffffffff, 0x2
  /* divuw */
  TEST_RR 110, divuw, 0x3, 0x14, 0x6
  TEST_RR 111, divuw, 0x2aaaaaa7, 0xffffffffffffffec, 0x6
  TEST_RR 112, divuw, 0xffffffffffffffff, 0xffffffff, 0x1
  TEST_RR 113, divuw, 0xffffffff80000000, 0x80000000, 0x1
  TEST_RR 114, divuw, 0xffffffffffffffff, 0x7, 0x0
  TEST_RR 115, divuw, 0xffffffffffffffff, 0xfffffffe00000000, 0x0
  TEST_RR 116, divuw, 0x9abc, 0x123456789abcdef0, 0x10000
  TEST_RR 117, divuw, 0x0, 0x80000000, 0xffffffff
  /* remw */
  TEST_RR 120, remw, 0x2, 0x14, 0x6
  TEST_RR 121, remw, 0xfffffffffffffffe, 0xffffffffffffffec, 0x6
  TEST_RR 122, remw, 0x2, 0x14, 0xfffffffffffffffa
  TEST_RR 123, remw, 0x0, 0xffffffff80000000, 0xffffffffffffffff
  TEST_RR 124, remw, 0x7, 0x7, 0x0
  TEST_RR 125, remw, 0xffffffff80000007, 0x80000007, 0x0
  TEST_RR 126, remw, 0x1, 0x100000007, 0x100000003
  TEST_RR 127, remw, 0xffffffffffffffff, 0xffffffffffffffff, 0x2
  /* remuw */
  TEST_RR 130, remuw, 0x2, 0x14, 0x6
  TEST_RR 131, remuw, 0x2, 0xffffffffffffffec, 0x6
  TEST_RR 132, remuw, 0x7, 0x7, 0x0
  TEST_RR 133, remuw, 0xffffffff80000007, 0x80000007, 0x0
  TEST_RR 134, remuw, 0xf, 0xffffffff, 0x10
  TEST_RR 135, remuw, 0x4434, 0x123456789abcdef0, 0x10001

  /* register corner cases */
  TEST_RR_SRC1_DEST 140, mul, 143, 13, 11
  TEST_RR_SRC2_DEST 141, div, 1, 13, 11
  TEST_RR_SRC12_DEST 142, mulhu, 0xfffffffffffffffe, -1
  TEST_RR_ZERO_DEST 143, div, 1, 0
  TEST_RR_ZERO_DEST 144, mulw, 3, 5
  /* the usual fused sequences: mulh + mul, div + rem on the same operands */
  CASE 145
  li a1, 0x8000000000000001
  li a2, 0x7fffffffffffffff
  mulh a3, a1, a2
  mul a4, a1, a2
  CHECK_EQ a3, 0xc000000000000000
  CHECK_EQ a4, 0xffffffffffffffff
  CASE 146
  li a1, -7
  li a2, 2
  div a3, a1, a2
  rem a4, a1, a2
  CHECK_EQ a3, -3
  CHECK_EQ a4, -1
  CASE 147
  li a1, -7
  li a2, 2
  div a1, a1, a2                /* rem must see the new a1 */
  rem a4, a1, a2
  CHECK_EQ a1, -3
  CHECK_EQ a4, -1

TEST_END
