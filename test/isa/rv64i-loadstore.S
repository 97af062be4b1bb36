/* RV64I loads and stores: every width, sign/zero extension, offsets, partial stores,
   store-to-load forwarding, FENCE, and misaligned accesses (which must work without a trap on
   our target; QEMU TCG also performs them transparently). */
#include "env/test.h"

.macro TEST_LD n, op, exp, label, off
  CASE \n
  la a1, \label
  \op a0, \off(a1)
  CHECK_EQ a0, \exp
.endm

/* store \val with \sop at label+off, then read back the whole dword at \label */
.macro TEST_ST n, sop, val, off, exp
  CASE \n
  la a1, scratch
  li t0, 0x1111111111111111
  sd t0, 0(a1)
  sd t0, 8(a1)
  li a2, \val
  \sop a2, \off(a1)
  ld a0, 0(a1)
  CHECK_EQ a0, \exp
.endm

TEST_BEGIN

  /* ---- loads: data = 00 ff 80 7f | 01 80 ff ff | ... ---- */
  TEST_LD 1, lb, 0x00, d8, 0
  TEST_LD 2, lb, -1, d8, 1
  TEST_LD 3, lb, 0xffffffffffffff80, d8, 2
  TEST_LD 4, lb, 0x7f, d8, 3
  TEST_LD 5, lbu, 0xff, d8, 1
  TEST_LD 6, lbu, 0x80, d8, 2
  TEST_LD 7, lh, 0xffffffffffffff00, d8, 0
  TEST_LD 8, lh, 0x7f80, d8, 2
  TEST_LD 9, lh, 0xffffffffffff8001, d8, 4
  TEST_LD 10, lhu, 0xff00, d8, 0
  TEST_LD 11, lhu, 0x8001, d8, 4
  TEST_LD 12, lw, 0x7f80ff00, d8, 0
  TEST_LD 13, lw, 0xffffffffffff8001, d8, 4
  TEST_LD 14, lwu, 0x7f80ff00, d8, 0
  TEST_LD 15, lwu, 0x00000000ffff8001, d8, 4
  TEST_LD 16, ld, 0xffff80017f80ff00, d8, 0
  TEST_LD 17, ld, 0x0123456789abcdef, d8, 8
  TEST_LD 18, ld, 0xfedcba9876543210, d8, 16
  /* negative offsets */
  TEST_LD 19, ld, 0x0123456789abcdef, d8_16, -8
  TEST_LD 20, lw, 0xffffffff89abcdef, d8_16, -8
  TEST_LD 21, lbu, 0x01, d8_16, -1
  TEST_LD 22, lb, 0xffffffffffffffef, d8_16, -8
  /* large offsets */
  CASE 23
  la a1, d8
  addi a1, a1, -2047 + 8
  ld a0, 2047(a1)
  CHECK_EQ a0, 0x0123456789abcdef
  CASE 24
  la a1, d8
  addi a1, a1, 2047
  addi a1, a1, 1
  lw a0, -2048+16(a1)
  CHECK_EQ a0, 0x76543210

  /* ---- stores ---- */
  TEST_ST 30, sb, 0xaa, 0, 0x11111111111111aa
  TEST_ST 31, sb, 0x123456789abcdeff, 7, 0xff11111111111111
  TEST_ST 32, sh, 0xbeef, 2, 0x11111111beef1111
  TEST_ST 33, sh, 0xffffffffffff8000, 6, 0x8000111111111111
  TEST_ST 34, sw, 0xdeadbeef, 4, 0xdeadbeef11111111
  TEST_ST 35, sw, 0x12345678cafebabe, 0, 0x11111111cafebabe
  TEST_ST 36, sd, 0x0102030405060708, 0, 0x0102030405060708
  TEST_ST 37, sd, -1, 8, 0x1111111111111111     /* other dword untouched */
  /* byte order: little endian */
  CASE 38
  la a1, scratch
  li a2, 0x0807060504030201
  sd a2, 0(a1)
  lbu a0, 0(a1)
  CHECK_EQ a0, 1
  lbu a0, 7(a1)
  CHECK_EQ a0, 8
  lhu a0, 2(a1)
  CHECK_EQ a0, 0x0403
  lwu a0, 4(a1)
  CHECK_EQ a0, 0x08070605
  /* store then load the same address, different widths */
  CASE 39
  la a1, scratch
  sd zero, 0(a1)
  li a2, -1
  sb a2, 3(a1)
  lw a0, 0(a1)
  CHECK_EQ a0, 0xffffffffff000000
  lwu a0, 0(a1)
  CHECK_EQ a0, 0xff000000
  /* x0 as the data and as the destination */
  CASE 40
  la a1, scratch
  li a2, -1
  sd a2, 0(a1)
  sw x0, 0(a1)
  ld a0, 0(a1)
  CHECK_EQ a0, 0xffffffff00000000
  CASE 41
  ld x0, 0(a1)
  CHECK_EQ x0, 0
  /* base == destination */
  CASE 42
  la a1, d8
  ld a1, 8(a1)
  CHECK_EQ a1, 0x0123456789abcdef
  /* store with base == data */
  CASE 43
  la a1, scratch
  sd a1, 0(a1)
  ld a0, 0(a1)
  CHECK_REQ a0, a1

  /* fences are no-ops for a single hart but must execute */
  CASE 44
  fence
  fence rw, rw
  fence r, w
  fence.tso
  fence iorw, iorw
  .word 0x0100000f                /* pause (Zihintpause) = fence w, 0: a hint */

  /* ---- misaligned accesses: must complete (our target); no trap is announced, so an
     address-misaligned or access-fault trap fails the case ---- */
  TEST_LD 50, lh, 0xffffffffffff80ff, d8, 1
  TEST_LD 51, lhu, 0x0000000000007f80, d8, 2
  TEST_LD 52, lhu, 0x000000000000017f, d8, 3
  TEST_LD 53, lw, 0x00000000017f80ff, d8, 1
  TEST_LD 54, lw, 0xffffffff80017f80, d8, 2
  TEST_LD 55, lwu, 0x00000000ff80017f, d8, 3
  TEST_LD 56, ld, 0xefffff80017f80ff, d8, 1
  TEST_LD 57, ld, 0x6789abcdefffff80, d8, 5
  TEST_LD 58, ld, 0xba98765432100123, d8, 14
  TEST_LD 59, lw, 0x00000000456789ab, d8, 10
  CASE 60
  la a1, scratch
  sd zero, 0(a1)
  sd zero, 8(a1)
  li a2, 0x1122334455667788
  sd a2, 3(a1)
  ld a0, 0(a1)
  CHECK_EQ a0, 0x4455667788000000
  ld a0, 8(a1)
  CHECK_EQ a0, 0x0000000000112233
  ld a0, 3(a1)
  CHECK_EQ a0, 0x1122334455667788
  CASE 61
  li a2, 0xaabbccdd
  sw a2, 7(a1)
  ld a0, 0(a1)
  CHECK_EQ a0, 0xdd55667788000000
  ld a0, 8(a1)
  CHECK_EQ a0, 0x0000000000aabbcc
  CASE 62
  li a2, 0xeeff
  sh a2, 1(a1)
  lhu a0, 1(a1)
  CHECK_EQ a0, 0xeeff
  lwu a0, 0(a1)
  CHECK_EQ a0, 0x88eeff00
  /* misaligned across a 4 KiB page boundary (physical) */
  CASE 63
  la a1, page_a
  li t0, 4096 - 3
  add a1, a1, t0
  li a2, 0x8877665544332211
  sd a2, 0(a1)
  ld a0, 0(a1)
  CHECK_EQ a0, 0x8877665544332211
  la a3, page_b
  lwu a0, 0(a3)
  CHECK_EQ a0, 0x77665544
  lbu a0, 4(a3)
  CHECK_EQ a0, 0x88
  lw a0, 2(a1)
  CHECK_EQ a0, 0x66554433

TEST_END

  .data
  .align 4
d8:
  .byte 0x00, 0xff, 0x80, 0x7f, 0x01, 0x80, 0xff, 0xff
  .dword 0x0123456789abcdef
d8_16:
  .dword 0xfedcba9876543210
  .align 4
scratch:
  .zero 32
  .align 12
page_a: .zero 4096
page_b: .zero 4096
