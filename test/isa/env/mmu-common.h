/*
 * Paging cases shared by mmu-sv39.S and mmu-sv48.S (included inside TEST_BEGIN ... TEST_END
 * after `#define VM_MODE SATP_MODE_SV39 / SV48`). Case numbers 1..99; the including file
 * adds its own from 100. All virtual addresses used here are valid in both modes.
 *
 * Virtual layout (besides the identity 1 GiB page at 0x80000000 for S code and the U alias
 * at USER_BASE set up by vm_init):
 *   0x40000000 pg_a  RW  AD       0x40001000 pg_b  R   A       0x40002000 pg_c  X  A
 *   0x40003000 pg_d  RW  U AD     0x40004000 pg_e  W (reserved: W without R)
 *   0x40005000 pg_a  V=0          0x40006000 pg_f  RW (no A/D)  0x40007000 pg_g  RW A (no D)
 *   0x40008000 xcode X  A         0x40009000 xcode RW AD (no X) 0x4000a000 xcode X U A
 *   0x4000b000 pg_c  X U A        0x4000c000 xstraddle X A, 0x4000d000 unmapped
 *   0x4000e000 pg_a  RW AD, 0x4000f000 unmapped
 *   0x40010000 xcode X (no A)     0x40011000 pointer PTE at level 0 (non-leaf at the end)
 *   0x40012000 pg_a  R A + bit 63  0x40013000 pg_a R A + bit 54   0x40014000 pg_a RW AD (alias)
 *   0x40015000 pg_a  R A + PBMT (bits 62:61 = 1)   0x40016000 pg_a for the sfence test
 *   0x40017000 xcode, then xstraddle (the sfence test of a code page)
 *   0x40200000 2 MiB -> SCRATCH_PA          0x40400000 2 MiB -> SCRATCH_PA + 4 KiB (misaligned)
 *   0x140000000 1 GiB -> 0x80000000         0x180000000 1 GiB -> 0x80200000 (misaligned)
 *   0xffffffffc0000000 1 GiB -> 0x80000000 (top of the address space)
 */

#define MARK_A 0xaaaa0000aaaa0001
#define MARK_B 0xbbbb0000bbbb0002
#define MARK_C 0xcccc0000cccc0003
#define MARK_D 0xdddd0000dddd0004
#define MARK_S 0x5555000055550005

#define PTE_RW_AD (PTE_V | PTE_R | PTE_W | PTE_A | PTE_D)

/* \insn (using a3 = \va) in S must not trap */
.macro VM_S_OK n, va, insn:vararg
  CASE \n
  li a3, \va
  RUN_IN_MODE PRV_S, .Lc\@
  j .Ld\@
.Lc\@:
  \insn
  RETURN_TO_M
.Ld\@:
.endm

/* same from U (code runs in the U alias of RAM) */
.macro VM_U_OK n, va, insn:vararg
  CASE \n
  li a3, \va
  RUN_IN_MODE_ALIAS PRV_U, .Lc\@
  j .Ld\@
.Lc\@:
  \insn
  RETURN_TO_M
.Ld\@:
.endm

/* \insn (a data access at 0(a3), a3 = \va) in S must raise \cause in M with tval = va and
   leave a2 (preset to 0x77) alone */
.macro VM_S_FAULT n, cause, va, insn:vararg
  CASE \n
  li a3, \va
  li a2, 0x77
  EXPECT_TRAP
  RUN_IN_MODE PRV_S, .Lc\@
  j .Ld\@
.Lc\@:
  \insn
  RETURN_TO_M
.Ld\@:
  CHECK_TRAP \cause, .Lc\@, PRV_M
  CHECK_TRAP_TVAL_REG a3
  CHECK_STATUS_MPP MSTATUS_MPP_S
  CHECK_EQ a2, 0x77
.endm

.macro VM_U_FAULT n, cause, va, insn:vararg
  CASE \n
  li a3, \va
  li a2, 0x77
  EXPECT_TRAP
  RUN_IN_MODE_ALIAS PRV_U, .Lc\@
  j .Ld\@
.Lc\@:
  \insn
  RETURN_TO_M
.Ld\@:
  CHECK_NO_PENDING_EXPECT
  CHECK_TRAP_CAUSE \cause
  CHECK_TRAP_MODE PRV_M
  la t5, trap_rec
  ld t5, TR_EPC(t5)
  la t6, .Lc\@
  li t4, USER_OFFSET
  add t6, t6, t4
  CHECK_REQ t5, t6
  CHECK_TRAP_TVAL_REG a3
  CHECK_STATUS_MPP 0
  CHECK_EQ a2, 0x77
.endm

/* a jump to \va from \mode (S: identity code, U: alias) must raise an instruction page fault
   with epc = tval = va */
.macro VM_FETCH_FAULT n, mode, va
  CASE \n
  li a3, \va
  EXPECT_TRAP
  .if \mode == PRV_U
  RUN_IN_MODE_ALIAS PRV_U, .Lc\@
  .else
  RUN_IN_MODE PRV_S, .Lc\@
  .endif
  j .Ld\@
.Lc\@:
  jalr ra, 0(a3)
  RETURN_TO_M
.Ld\@:
  CHECK_NO_PENDING_EXPECT
  CHECK_TRAP_CAUSE CAUSE_FETCH_PAGE_FAULT
  CHECK_TRAP_TVAL_REG a3
  la t5, trap_rec
  ld t5, TR_EPC(t5)
  CHECK_REQ t5, a3
.endm

.macro CHECK_STATUS_MPP val
  la t5, trap_rec
  ld t5, TR_STATUS(t5)
  li t6, MSTATUS_MPP
  and t5, t5, t6
  CHECK_EQ t5, \val
.endm

/* (PTE at the address saved in \reg) & mask == val */
.macro CHECK_PTE reg, mask, val
  ld t5, 0(\reg)
  andi t5, t5, \mask
  CHECK_EQ t5, \val
.endm

/* mstatus bits on / off (M mode) */
.macro MSTATUS_SET bits
  li t5, \bits
  csrs mstatus, t5
.endm
.macro MSTATUS_CLR bits
  li t5, \bits
  csrc mstatus, t5
.endm

  /* ---------------- setup ---------------- */
  la s0, pg_a
  li t0, MARK_A
  sd t0, 0(s0)
  li t0, 0x5c
  sb t0, 0x123(s0)
  la s1, pg_b
  li t0, MARK_B
  sd t0, 0(s1)
  la t1, pg_c
  li t0, MARK_C
  sd t0, 0(t1)
  la t1, pg_d
  li t0, MARK_D
  sd t0, 0(t1)
  li t1, SCRATCH_PA + 0x1ff008
  li t0, MARK_S
  sd t0, 0(t1)

  VM_INIT VM_MODE
  VM_MAP_LABEL 0x40000000, pg_a, 0, PTE_RW_AD
  VM_MAP_LABEL 0x40001000, pg_b, 0, PTE_V | PTE_R | PTE_A
  VM_MAP_LABEL 0x40002000, pg_c, 0, PTE_V | PTE_X | PTE_A
  VM_MAP_LABEL 0x40003000, pg_d, 0, PTE_RW_AD | PTE_U
  VM_MAP_LABEL 0x40004000, pg_e, 0, PTE_V | PTE_W | PTE_A | PTE_D
  VM_MAP_LABEL 0x40005000, pg_a, 0, PTE_R | PTE_W | PTE_A | PTE_D
  VM_MAP_LABEL 0x40006000, pg_f, 0, PTE_V | PTE_R | PTE_W
  mv s5, a0                                 /* PTE of 0x40006000 */
  VM_MAP_LABEL 0x40007000, pg_g, 0, PTE_V | PTE_R | PTE_W | PTE_A
  mv s6, a0                                 /* PTE of 0x40007000 */
  VM_MAP_LABEL 0x40008000, xcode_page, 0, PTE_V | PTE_X | PTE_A
  VM_MAP_LABEL 0x40009000, xcode_page, 0, PTE_RW_AD
  VM_MAP_LABEL 0x4000a000, xcode_page, 0, PTE_V | PTE_X | PTE_U | PTE_A
  VM_MAP_LABEL 0x4000b000, pg_c, 0, PTE_V | PTE_X | PTE_U | PTE_A
  VM_MAP_LABEL 0x4000c000, xstraddle_page, 0, PTE_V | PTE_X | PTE_A
  VM_MAP_LABEL 0x4000e000, pg_a, 0, PTE_RW_AD
  VM_MAP_LABEL 0x40010000, xcode_page, 0, PTE_V | PTE_X
  mv s7, a0                                 /* PTE of 0x40010000 */
  VM_MAP_LABEL 0x40011000, pg_a, 0, PTE_V    /* a pointer where a leaf must be */
  VM_MAP_LABEL 0x40012000, pg_a, 0, PTE_V | PTE_R | PTE_A | (1 << 63)
  VM_MAP_LABEL 0x40013000, pg_a, 0, PTE_V | PTE_R | PTE_A | (1 << 54)
  VM_MAP_LABEL 0x40014000, pg_a, 0, PTE_RW_AD
  VM_MAP_LABEL 0x40015000, pg_a, 0, PTE_V | PTE_R | PTE_A | (1 << 61)
  VM_MAP_LABEL 0x40016000, pg_a, 0, PTE_RW_AD
  mv s8, a0                                 /* PTE of 0x40016000 */
  VM_MAP 0x40200000, SCRATCH_PA, 1, PTE_RW_AD
  VM_MAP 0x40400000, SCRATCH_PA + 0x1000, 1, PTE_RW_AD
  VM_MAP 0x140000000, 0x80000000, 2, PTE_RW_AD
  VM_MAP 0x180000000, 0x80200000, 2, PTE_RW_AD
  VM_MAP 0xffffffffc0000000, 0x80000000, 2, PTE_RW_AD
  VM_ENABLE
  CASE 1
  csrr a0, satp
  srli a0, a0, 60
  CHECK_EQ a0, VM_MODE

  /* ---------------- translation ---------------- */
  VM_S_OK 2, 0x40000000, ld a2, 0(a3)
  CHECK_EQ a2, MARK_A
  VM_S_OK 3, 0x40000000, lbu a2, 0x123(a3)              /* page offset kept */
  CHECK_EQ a2, 0x5c
  CASE 4                                                 /* a store lands in pg_a */
  li a3, 0x40000000
  IN_S
  li a4, 0x1234
  sd a4, 8(a3)
  END_MODE
  ld a0, 8(s0)
  CHECK_EQ a0, 0x1234
  CASE 5                                                 /* two pages, one frame */
  li a3, 0x40014000
  IN_S
  li a4, 0x4321
  sd a4, 16(a3)
  li a5, 0x40000000
  ld a2, 16(a5)
  END_MODE
  CHECK_EQ a2, 0x4321
  CASE 6                                                 /* 2 MiB page */
  li a3, 0x40200000
  IN_S
  li a4, 0x1ff008
  add a4, a4, a3
  ld a2, 0(a4)
  END_MODE
  CHECK_EQ a2, MARK_S
  CASE 7                                                 /* 1 GiB page */
  la a3, pg_b
  li t0, 0x140000000 - 0x80000000
  add a3, a3, t0
  RUN_IN_MODE PRV_S, 1f
  j 2f
1:
  ld a2, 0(a3)
  RETURN_TO_M
2:
  CHECK_EQ a2, MARK_B
  CASE 8                                                 /* 1 GiB page at the top */
  la a3, pg_b
  li t0, 0xffffffffc0000000 - 0x80000000
  add a3, a3, t0
  RUN_IN_MODE PRV_S, 1f
  j 2f
1:
  ld a2, 0(a3)
  RETURN_TO_M
2:
  CHECK_EQ a2, MARK_B

  /* ---------------- R / W / X ---------------- */
  VM_S_OK 10, 0x40001000, ld a2, 0(a3)
  CHECK_EQ a2, MARK_B
  VM_S_FAULT 11, CAUSE_STORE_PAGE_FAULT, 0x40001000, sd a3, 0(a3)
  ld a0, 0(s1)
  CHECK_EQ a0, MARK_B                                   /* the store did not happen */
  VM_S_FAULT 12, CAUSE_LOAD_PAGE_FAULT, 0x40002000, ld a2, 0(a3)   /* X only */
  CASE 13
  li a3, 0x40002000
  IN_S
  li a4, MSTATUS_MXR
  csrs sstatus, a4
  ld a2, 0(a3)
  csrc sstatus, a4
  END_MODE
  CHECK_EQ a2, MARK_C                                   /* MXR: X makes it readable */
  VM_S_FAULT 14, CAUSE_STORE_PAGE_FAULT, 0x40002000, sd a3, 0(a3)
  VM_S_OK 15, 0x40008000, jalr ra, 0(a3)                 /* run code from an X page */
  CHECK_EQ a2, 0x5a
  VM_FETCH_FAULT 16, PRV_S, 0x40009000                   /* RW, no X */
  VM_FETCH_FAULT 17, PRV_S, 0x40001000                   /* R, no X */
  VM_S_FAULT 18, CAUSE_LOAD_PAGE_FAULT, 0x40004000, ld a2, 0(a3)   /* W without R */
  VM_S_FAULT 19, CAUSE_STORE_PAGE_FAULT, 0x40004000, sd a3, 0(a3)
  VM_S_FAULT 20, CAUSE_LOAD_PAGE_FAULT, 0x40005000, ld a2, 0(a3)   /* V = 0 */
  VM_S_FAULT 21, CAUSE_STORE_PAGE_FAULT, 0x40005000, sd a3, 0(a3)
  VM_FETCH_FAULT 22, PRV_S, 0x40005000
  VM_S_FAULT 23, CAUSE_LOAD_PAGE_FAULT, 0x40020000, ld a2, 0(a3)   /* nothing mapped */
  VM_S_FAULT 24, CAUSE_LOAD_PAGE_FAULT, 0x40000000 + 0x100000, lw a2, 0(a3)

  /* ---------------- U bit, SUM ---------------- */
  VM_S_FAULT 30, CAUSE_LOAD_PAGE_FAULT, 0x40003000, ld a2, 0(a3)   /* U page, SUM = 0 */
  VM_S_FAULT 31, CAUSE_STORE_PAGE_FAULT, 0x40003000, sd a3, 0(a3)
  CASE 32
  li a3, 0x40003000
  IN_S
  li a4, MSTATUS_SUM
  csrs sstatus, a4
  ld a2, 0(a3)
  csrc sstatus, a4
  END_MODE
  CHECK_EQ a2, MARK_D
  CASE 33
  IN_S
  li a4, MSTATUS_SUM
  csrs sstatus, a4
  li a2, 7
  sd a2, 8(a3)
  csrc sstatus, a4
  END_MODE
  la a0, pg_d
  ld a0, 8(a0)
  CHECK_EQ a0, 7
  MSTATUS_SET MSTATUS_SUM
  VM_FETCH_FAULT 34, PRV_S, 0x4000a000                   /* S never executes U pages */
  CASE 35
  li a3, 0x4000b000
  IN_S
  li a4, MSTATUS_MXR
  csrs sstatus, a4
  ld a2, 0(a3)
  csrc sstatus, a4
  END_MODE
  CHECK_EQ a2, MARK_C                                   /* SUM + MXR on an X-only U page */
  MSTATUS_CLR MSTATUS_SUM
  VM_U_OK 36, 0x40003000, ld a2, 0(a3)
  CHECK_EQ a2, MARK_D
  CASE 37
  li a3, 0x40003000
  IN_U_ALIAS
  li a2, 9
  sd a2, 16(a3)
  END_MODE
  la a0, pg_d
  ld a0, 16(a0)
  CHECK_EQ a0, 9
  VM_U_FAULT 38, CAUSE_LOAD_PAGE_FAULT, 0x40000000, ld a2, 0(a3)   /* S page from U */
  VM_U_FAULT 39, CAUSE_STORE_PAGE_FAULT, 0x40000000, sd a3, 0(a3)
  VM_U_FAULT 40, CAUSE_LOAD_PAGE_FAULT, 0x4000b000, ld a2, 0(a3)   /* X-only U page */
  VM_U_FAULT 41, CAUSE_STORE_PAGE_FAULT, 0x4000b000, sd a3, 0(a3)
  MSTATUS_SET MSTATUS_SUM                                /* SUM does not matter for U */
  VM_U_FAULT 42, CAUSE_LOAD_PAGE_FAULT, 0x40000000, ld a2, 0(a3)
  MSTATUS_CLR MSTATUS_SUM
  MSTATUS_SET MSTATUS_MXR                                /* MXR does apply to U */
  VM_U_OK 43, 0x4000b000, ld a2, 0(a3)
  CHECK_EQ a2, MARK_C
  MSTATUS_CLR MSTATUS_MXR
  VM_U_OK 44, 0x4000a000, jalr ra, 0(a3)                 /* U runs a U X page */
  CHECK_EQ a2, 0x5a
  VM_FETCH_FAULT 45, PRV_U, 0x40008000                   /* U never runs an S page */
  VM_FETCH_FAULT 46, PRV_U, 0x80000000                   /* ... e.g. the identity map */

  /* ---------------- A / D ---------------- */
  CHECK_PTE s5, PTE_A | PTE_D, 0
  VM_S_OK 50, 0x40006000, ld a2, 0(a3)
  CHECK_PTE s5, PTE_A | PTE_D, PTE_A                     /* a load sets A only */
  VM_S_OK 51, 0x40006000, sd a3, 0(a3)
  CHECK_PTE s5, PTE_A | PTE_D, PTE_A | PTE_D             /* a store sets D */
  VM_S_OK 52, 0x40007000, sb a3, 0(a3)
  CHECK_PTE s6, PTE_A | PTE_D, PTE_A | PTE_D
  VM_S_OK 53, 0x40010000, jalr ra, 0(a3)                 /* a fetch sets A */
  CHECK_EQ a2, 0x5a
  CHECK_PTE s7, PTE_A | PTE_D, PTE_A
  CASE 54                                                /* A/D updates keep the rest */
  ld t5, 0(s5)
  srli t5, t5, 10
  la t6, pg_f
  srli t6, t6, 12
  CHECK_REQ t5, t6
  ld t5, 0(s5)
  andi t5, t5, PTE_V | PTE_R | PTE_W | PTE_X | PTE_U
  CHECK_EQ t5, PTE_V | PTE_R | PTE_W

  /* ---------------- malformed tables ---------------- */
  VM_S_FAULT 60, CAUSE_LOAD_PAGE_FAULT, 0x40400000, ld a2, 0(a3)   /* misaligned 2 MiB */
  VM_S_FAULT 61, CAUSE_STORE_PAGE_FAULT, 0x40400000, sd a3, 0(a3)
  VM_FETCH_FAULT 62, PRV_S, 0x40400000
  VM_S_FAULT 63, CAUSE_LOAD_PAGE_FAULT, 0x180000000, ld a2, 0(a3)  /* misaligned 1 GiB */
  VM_S_FAULT 64, CAUSE_LOAD_PAGE_FAULT, 0x40011000, ld a2, 0(a3)   /* non-leaf at level 0 */
  VM_S_FAULT 65, CAUSE_LOAD_PAGE_FAULT, 0x40012000, ld a2, 0(a3)   /* reserved bit 63 (N) */
  VM_S_FAULT 66, CAUSE_LOAD_PAGE_FAULT, 0x40013000, ld a2, 0(a3)   /* reserved bit 54 */
  VM_S_FAULT 67, CAUSE_LOAD_PAGE_FAULT, 0x40015000, ld a2, 0(a3)   /* PBMT without Svpbmt */

  /* ---------------- MPRV ---------------- */
  CASE 70                                                /* M loads through S translation */
  li a3, 0x40000000
  MSTATUS_CLR MSTATUS_MPP
  MSTATUS_SET MSTATUS_MPRV | MSTATUS_MPP_S
  ld a2, 0(a3)
  MSTATUS_CLR MSTATUS_MPRV
  CHECK_EQ a2, MARK_A
  CASE 71                                                /* ... and stores */
  li a3, 0x40014000
  li a4, 0xfeed
  MSTATUS_CLR MSTATUS_MPP
  MSTATUS_SET MSTATUS_MPRV | MSTATUS_MPP_S
  sd a4, 24(a3)
  MSTATUS_CLR MSTATUS_MPRV
  ld a0, 24(s0)
  CHECK_EQ a0, 0xfeed
  CASE 72                                                /* MPP = U: S page faults, in M */
  li a3, 0x40000000
  li a2, 0x77
  EXPECT_TRAP                                            /* (before MPRV: it stores) */
  MSTATUS_CLR MSTATUS_MPP
  MSTATUS_SET MSTATUS_MPRV
1:
  ld a2, 0(a3)
  MSTATUS_CLR MSTATUS_MPRV
  CHECK_TRAP CAUSE_LOAD_PAGE_FAULT, 1b, PRV_M
  CHECK_TRAP_TVAL 0x40000000
  CHECK_STATUS_MPP MSTATUS_MPP                           /* the trap came from M */
  CHECK_EQ a2, 0x77
  CASE 73                                                /* MPP = U: U page is fine */
  li a3, 0x40003000
  MSTATUS_CLR MSTATUS_MPP
  MSTATUS_SET MSTATUS_MPRV
  ld a2, 0(a3)
  MSTATUS_CLR MSTATUS_MPRV
  CHECK_EQ a2, MARK_D
  CASE 74                                                /* MPP = S, U page, SUM = 0 */
  li a3, 0x40003000
  EXPECT_TRAP
  MSTATUS_CLR MSTATUS_MPP
  MSTATUS_SET MSTATUS_MPRV | MSTATUS_MPP_S
1:
  ld a2, 0(a3)
  MSTATUS_CLR MSTATUS_MPRV
  CHECK_TRAP CAUSE_LOAD_PAGE_FAULT, 1b, PRV_M
  CASE 75                                                /* MPP = S, U page, SUM = 1 */
  MSTATUS_CLR MSTATUS_MPP
  MSTATUS_SET MSTATUS_MPRV | MSTATUS_MPP_S | MSTATUS_SUM
  ld a2, 0(a3)
  MSTATUS_CLR MSTATUS_MPRV | MSTATUS_SUM
  CHECK_EQ a2, MARK_D
  CASE 76                                                /* MPP = M: no translation */
  li a3, CLINT_MTIME                                     /* not mapped in the tables */
  MSTATUS_SET MSTATUS_MPRV | MSTATUS_MPP
  ld a2, 0(a3)
  MSTATUS_CLR MSTATUS_MPRV
  CASE 77                                                /* MPRV never affects fetch */
  MSTATUS_CLR MSTATUS_MPP
  MSTATUS_SET MSTATUS_MPRV                               /* M code is not U-mapped */
  nop
  li a0, 1
  addi a0, a0, 1
  MSTATUS_CLR MSTATUS_MPRV
  CHECK_EQ a0, 2
  CASE 78                                                /* MPRV + MXR */
  li a3, 0x40002000
  MSTATUS_CLR MSTATUS_MPP
  MSTATUS_SET MSTATUS_MPRV | MSTATUS_MPP_S | MSTATUS_MXR
  ld a2, 0(a3)
  MSTATUS_CLR MSTATUS_MPRV | MSTATUS_MXR
  CHECK_EQ a2, MARK_C

  /* ---------------- sfence.vma ---------------- */
  VM_S_OK 80, 0x40016000, ld a2, 0(a3)
  CHECK_EQ a2, MARK_A
  CASE 81                                                /* retarget, sfence.vma va */
  la t0, pg_b
  srli t0, t0, 12
  slli t0, t0, 10
  ori t0, t0, PTE_RW_AD
  sd t0, 0(s8)
  li a3, 0x40016000
  RUN_IN_MODE PRV_S, 1f
  j 2f
1:
  sfence.vma a3
  ld a2, 0(a3)
  RETURN_TO_M
2:
  CHECK_EQ a2, MARK_B
  CASE 82                                                /* back, sfence.vma x0, x0 */
  la t0, pg_a
  srli t0, t0, 12
  slli t0, t0, 10
  ori t0, t0, PTE_RW_AD
  sd t0, 0(s8)
  RUN_IN_MODE PRV_S, 1f
  j 2f
1:
  sfence.vma
  ld a2, 0(a3)
  RETURN_TO_M
2:
  CHECK_EQ a2, MARK_A
  CASE 83                                                /* invalidate, sfence.vma va, asid */
  sd zero, 0(s8)
  li a2, 0x77
  EXPECT_TRAP
  RUN_IN_MODE PRV_S, 1f
  j 2f
1:
  sfence.vma a3, zero
3:
  ld a2, 0(a3)
  RETURN_TO_M
2:
  CHECK_TRAP CAUSE_LOAD_PAGE_FAULT, 3b, PRV_M
  CHECK_EQ a2, 0x77
  CASE 84                                                /* satp = 0 from S: bare */
  la a3, pg_b
  RUN_IN_MODE PRV_S, 1f
  j 2f
1:
  csrr a4, satp
  csrw satp, zero
  sfence.vma
  ld a2, 0(a3)
  csrw satp, a4
  sfence.vma
  RETURN_TO_M
2:
  CHECK_EQ a2, MARK_B
  csrr a0, satp
  CHECK_REQ a0, a4
  CASE 85                                                /* sfence.vma of a superpage's first
                                                            address forgets its last page too */
  VM_MAP 0x40200000, SCRATCH_PA, 1, PTE_RW_AD            /* as it was; a0 = its PTE */
  mv s10, a0
  li a4, 0x403ff008
  RUN_IN_MODE PRV_S, 1f
  j 2f
1:
  ld a2, 0(a4)                                           /* the page 0x403ff000 is cached */
  RETURN_TO_M
2:
  CHECK_EQ a2, MARK_S
  sd zero, 0(s10)                                        /* the 2 MiB leaf made invalid */
  li a3, 0x40200000
  li a4, 0x403ff008
  li a2, 0x77
  EXPECT_TRAP
  RUN_IN_MODE PRV_S, 1f
  j 2f
1:
  sfence.vma a3
3:
  ld a2, 0(a4)
  RETURN_TO_M
2:
  CHECK_TRAP CAUSE_LOAD_PAGE_FAULT, 3b, PRV_M
  CHECK_EQ a2, 0x77
  VM_MAP 0x40200000, SCRATCH_PA, 1, PTE_RW_AD
  sfence.vma
  CASE 86                                                /* a code page retargeted: sfence.vma
                                                            of it runs the new code */
  VM_MAP_LABEL 0x40017000, xcode_page, 0, PTE_V | PTE_X | PTE_A
  mv s10, a0
  li a3, 0x40017000
  li a2, 0
  RUN_IN_MODE PRV_S, 1f
  j 2f
1:
  jalr ra, 0(a3)                                         /* li a2, 0x5a */
  RETURN_TO_M
2:
  CHECK_EQ a2, 0x5a
  la t0, xstraddle_page                                  /* the leaf now points there */
  srli t0, t0, 12
  slli t0, t0, 10
  ori t0, t0, PTE_V | PTE_X | PTE_A
  sd t0, 0(s10)
  li a3, 0x40017000
  RUN_IN_MODE PRV_S, 1f
  j 2f
1:
  sfence.vma a3
  jalr ra, 0(a3)                                         /* c.nop ... c.li a2, 1 */
  RETURN_TO_M
2:
  CHECK_EQ a2, 1

  /* ---------------- accesses that cross into an unmapped page ---------------- */
  CASE 90                                                /* misaligned load */
  li a3, 0x4000effc
  EXPECT_TRAP
  RUN_IN_MODE PRV_S, 1f
  j 2f
1:
  ld a2, 0(a3)
  RETURN_TO_M
2:
  CHECK_TRAP CAUSE_LOAD_PAGE_FAULT, 1b, PRV_M
  la t5, trap_rec                                        /* tval: the faulting portion */
  ld t5, TR_TVAL(t5)
  li t4, 0x4000effc
  sub t5, t5, t4
  li t4, 5
  CHECK_LTU t5, t4
  CASE 91                                                /* 32-bit instruction straddling */
  li a3, 0x4000cffe
  EXPECT_TRAP
  RUN_IN_MODE PRV_S, 1f
  j 2f
1:
  jalr ra, 0(a3)
  RETURN_TO_M
2:
  CHECK_NO_PENDING_EXPECT
  CHECK_TRAP_CAUSE CAUSE_FETCH_PAGE_FAULT
  la t5, trap_rec
  ld t5, TR_EPC(t5)
  CHECK_EQ t5, 0x4000cffe                                /* epc: start of the instruction */
  CHECK_TRAP_TVAL 0x4000d000                             /* tval: the part that faulted */
  CASE 92                                                /* a 16-bit one at the end is fine */
  li a3, 0x4000cffa
  RUN_IN_MODE PRV_S, 1f
  j 2f
1:
  li a2, 0
  jalr ra, 0(a3)                                         /* c.li a2, 1; c.jr ra */
  RETURN_TO_M
2:
  CHECK_EQ a2, 1

  /* ---------------- satp MODE is WARL: unsupported values are ignored ---------------- */
  CASE 95
  csrr s9, satp
  li a0, 1 << 60
  csrw satp, a0
  csrr a0, satp
  CHECK_REQ a0, s9
  li a0, (7 << 60) | 0x1234
  csrw satp, a0
  csrr a0, satp
  CHECK_REQ a0, s9
  li a0, (11 << 60)                                      /* Sv64: not defined */
  csrw satp, a0
  csrr a0, satp
  CHECK_REQ a0, s9
  li a0, (15 << 60)
  csrw satp, a0
  csrr a0, satp
  CHECK_REQ a0, s9
  CASE 96                                                /* Sv57: ours has not (unchanged),
                                                            QEMU has (accepted): both legal */
  srli a1, s9, 60
  slli a1, a1, 60
  xor a1, s9, a1                                         /* PPN and ASID of the current satp */
  li a0, SATP_MODE_SV57 << 60
  or a0, a0, a1
  csrw satp, a0
  csrr a2, satp
  csrw satp, s9
  sfence.vma
  beq a2, s9, 1f
  CHECK_REQ a2, a0
1:

  /* the pages the cases above point at */
  .pushsection .data
  .align 12
pg_a: .zero 4096
pg_b: .zero 4096
pg_c: .zero 4096
pg_d: .zero 4096
pg_e: .zero 4096
pg_f: .zero 4096
pg_g: .zero 4096
  .popsection

  .pushsection .text.pages, "ax", @progbits
  .align 12
xcode_page:
  li a2, 0x5a
  ret
  .align 12
xstraddle_page:
  .option push
  .option norvc
  .fill 2045, 2, 0x0001                                  /* c.nop, up to offset 4090 */
  .half 0x4605                                           /* 4090: c.li a2, 1 */
  .half 0x8082                                           /* 4092: c.jr ra */
  .half 0x0613                                           /* 4094: addi a2, a2, 1 ... */
  .half 0x0016                                           /* ... completed in the next page */
  .option pop
  .align 12
  .popsection
