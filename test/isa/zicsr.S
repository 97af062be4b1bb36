/* Zicsr + Zicntr: the six CSR instructions (old value, set/clear, 5-bit immediates, the
   "no write" forms), read-only and unimplemented CSRs, privilege checks, the counters (cycle,
   time, instret) and their mcounteren / scounteren gating, the sstatus / sie / sip views,
   fcsr fields, and Sstc's stimecmp access rules. */
#include "env/test.h"

/* \insn executed in \mode (PRV_S / PRV_U) must raise illegal instruction, taken in M with
   MPP = \mode and mtval = 0 or the instruction bits */
.macro TEST_MODE_ILLEGAL n, mode, insn:vararg
  CASE \n
  EXPECT_TRAP
  RUN_IN_MODE \mode, .Lcode\@
  j .Ldone\@
.Lcode\@:
  \insn
  RETURN_TO_M
.Ldone\@:
  CHECK_TRAP CAUSE_ILLEGAL, .Lcode\@, PRV_M
  la t5, trap_rec
  ld t5, TR_STATUS(t5)
  li t6, MSTATUS_MPP
  and t5, t5, t6
  CHECK_EQ t5, (\mode << 11)
.endm

/* \insn executed in \mode must not trap */
.macro TEST_MODE_OK n, mode, insn:vararg
  CASE \n
  RUN_IN_MODE \mode, .Lcode\@
  j .Ldone\@
.Lcode\@:
  \insn
  RETURN_TO_M
.Ldone\@:
.endm

/* \insn in M mode must raise illegal instruction */
.macro TEST_M_ILLEGAL n, insn:vararg
  CASE \n
  EXPECT_TRAP
.Lcode\@:
  \insn
  CHECK_TRAP CAUSE_ILLEGAL, .Lcode\@, PRV_M
.endm

TEST_BEGIN

  /* ---- the six instructions on mscratch ---- */
  CASE 1
  li a1, 0x1234
  csrw mscratch, a1
  li a2, 0x5678
  csrrw a0, mscratch, a2
  CHECK_EQ a0, 0x1234
  csrr a0, mscratch
  CHECK_EQ a0, 0x5678
  CASE 2
  li a2, 0x8000000000000001
  csrrs a0, mscratch, a2
  CHECK_EQ a0, 0x5678
  csrr a0, mscratch
  CHECK_EQ a0, 0x8000000000005679
  CASE 3
  li a2, 0x8000000000005600
  csrrc a0, mscratch, a2
  CHECK_EQ a0, 0x8000000000005679
  csrr a0, mscratch
  CHECK_EQ a0, 0x79
  CASE 4
  csrrwi a0, mscratch, 31           /* zero-extended 5-bit immediate */
  CHECK_EQ a0, 0x79
  csrr a0, mscratch
  CHECK_EQ a0, 31
  CASE 5
  csrrci a0, mscratch, 0x11
  CHECK_EQ a0, 31
  csrrsi a0, mscratch, 0x10
  CHECK_EQ a0, 0x0e
  csrr a0, mscratch
  CHECK_EQ a0, 0x1e
  CASE 6                            /* rd == rs1: the old value goes to rd, the new is rs1 */
  li a1, 0x42
  csrrw a1, mscratch, a1
  CHECK_EQ a1, 0x1e
  csrr a0, mscratch
  CHECK_EQ a0, 0x42
  CASE 7                            /* csrrs/csrrc with x0 and the immediate 0 do not write */
  csrrs a0, mscratch, x0
  csrrc a0, mscratch, x0
  csrrsi a0, mscratch, 0
  csrrci a0, mscratch, 0
  CHECK_EQ a0, 0x42
  CASE 8                            /* full 64-bit CSR */
  li a1, -1
  csrw mscratch, a1
  csrr a0, mscratch
  CHECK_EQ a0, -1
  csrw sscratch, a1
  csrr a0, sscratch
  CHECK_EQ a0, -1
  /* the trap handlers keep their save-area pointers in mscratch / sscratch */
  la t0, m_save
  csrw mscratch, t0
  la t0, s_save
  csrw sscratch, t0

  /* ---- identification ---- */
  CASE 10
  csrr a0, misa
  srli a1, a0, 62
  CHECK_EQ a1, 2                    /* MXL = 64 */
  li a1, (1 << 0) | (1 << 2) | (1 << 3) | (1 << 5) | (1 << 8) | (1 << 12) | (1 << 18) | (1 << 20)
  and a0, a0, a1                    /* A C D F I M S U */
  CHECK_REQ a0, a1
  CASE 11
  csrr a0, mhartid
  CHECK_EQ a0, 0
  csrr a0, mvendorid
  csrr a0, marchid
  csrr a0, mimpid
  CASE 12                           /* UXL = SXL = 2 (64-bit) */
  csrr a0, mstatus
  srli a0, a0, 32
  andi a0, a0, 15
  CHECK_EQ a0, 0xa

  /* ---- read-only CSRs: a write raises illegal instruction, a non-writing form does not */
  CASE 20
  csrrs a0, mhartid, x0
  csrrc a0, mvendorid, x0
  csrrsi a0, marchid, 0
  csrrci a0, mimpid, 0
  csrr a0, cycle
  TEST_M_ILLEGAL 21, csrw mhartid, a0
  TEST_M_ILLEGAL 22, csrrwi x0, mhartid, 0      /* csrrw always writes, even from x0 */
  TEST_M_ILLEGAL 23, csrrs a0, mvendorid, sp    /* rs1 != x0: a write */
  CASE 24
  li a1, 0
  EXPECT_TRAP
1:
  csrrs a0, mimpid, a1              /* rs1 != x0 holding 0 is still a write */
  /* QEMU <= 7.2 decides on the value of rs1, not on rs1 = x0 (deviation, README.md) */
  IF_QEMU_UPTO 0x0702ff, 3f
  CHECK_TRAP CAUSE_ILLEGAL, 1b, PRV_M
  j 4f
3:
  EXPECT_TRAPS 0
4:
  TEST_M_ILLEGAL 25, csrrsi a0, marchid, 1
  TEST_M_ILLEGAL 26, csrw cycle, a0
  TEST_M_ILLEGAL 27, csrw time, a0
  TEST_M_ILLEGAL 28, csrw instret, a0
  CASE 29                           /* mtval holds the instruction bits (or 0) */
  EXPECT_TRAP
  .option push
  .option norvc
1:
  csrw mhartid, zero
  .option pop
  CHECK_TRAP CAUSE_ILLEGAL, 1b, PRV_M
  la t5, trap_rec
  ld t5, TR_TVAL(t5)
  beqz t5, 2f
  la t4, 1b
  lwu t4, 0(t4)
  CHECK_REQ t5, t4
2:

  /* ---- unimplemented CSRs ---- */
  TEST_M_ILLEGAL 30, csrr a0, 0x7c0             /* custom M read/write range */
  TEST_M_ILLEGAL 31, csrw 0x7c0, a0
  TEST_M_ILLEGAL 32, csrr a0, 0x5c0             /* custom S range */
  TEST_M_ILLEGAL 33, csrr a0, 0x8c0             /* custom U range */
  TEST_M_ILLEGAL 34, csrr a0, 0xfc0             /* custom M read-only range */
  TEST_M_ILLEGAL 35, csrr a0, 0x200             /* hypervisor-ish, nothing there without H */

  /* ---- privilege: the CSR number's bits 9:8 give the lowest mode allowed ---- */
  TEST_MODE_ILLEGAL 40, PRV_S, csrr a2, mscratch
  TEST_MODE_ILLEGAL 41, PRV_S, csrr a2, mstatus
  TEST_MODE_ILLEGAL 42, PRV_S, csrr a2, mhartid
  TEST_MODE_ILLEGAL 43, PRV_U, csrr a2, sscratch
  TEST_MODE_ILLEGAL 44, PRV_U, csrr a2, sstatus
  TEST_MODE_ILLEGAL 45, PRV_U, csrr a2, mscratch
  TEST_MODE_OK 46, PRV_S, csrw sscratch, zero
  CASE 47                           /* S reads and writes its own CSRs */
  li a2, 0x77
  RUN_IN_MODE PRV_S, 1f
  j 2f
1:
  csrw sscratch, a2
  csrr a3, sscratch
  RETURN_TO_M
2:
  CHECK_EQ a3, 0x77
  csrr a0, sscratch
  CHECK_EQ a0, 0x77
  la t0, s_save
  csrw sscratch, t0

  /* ---- counters ---- */
  CASE 50                           /* mcycle / minstret advance */
  csrr a1, mcycle
  csrr a2, minstret
  li a0, 100
1:
  addi a0, a0, -1
  bnez a0, 1b
  csrr a3, mcycle
  csrr a4, minstret
  CHECK_LTU a1, a3
  CHECK_LTU a2, a4
  CASE 51                           /* cycle / instret are the same counters */
  csrr a1, mcycle
  csrr a2, cycle
  csrr a3, mcycle
  bltu a2, a1, fail_51
  bltu a3, a2, fail_51
  csrr a1, minstret
  csrr a2, instret
  csrr a3, minstret
  bltu a2, a1, fail_51
  bltu a3, a2, fail_51
  j 2f
fail_51:
  j fail
2:
  CASE 52                           /* time = CLINT mtime */
  li a5, CLINT_MTIME
  ld a1, 0(a5)
  csrr a2, time
  ld a3, 0(a5)
  bltu a2, a1, fail_51
  bltu a3, a2, fail_51
  CASE 53                           /* time advances */
  csrr a1, time
1:
  csrr a2, time
  beq a1, a2, 1b
  CHECK_LTU a1, a2
  CASE 54                           /* mcycle and minstret are writable in M */
  li a1, 0x100000000
  csrw mcycle, a1
  csrr a2, mcycle
  sub a2, a2, a1
  srli a2, a2, 32
  CHECK_EQ a2, 0
  csrw minstret, a1
  csrr a2, minstret
  sub a2, a2, a1
  srli a2, a2, 32
  CHECK_EQ a2, 0

  /* mcounteren gates S and U, scounteren additionally gates U */
  csrw mcounteren, zero
  csrw scounteren, zero
  TEST_MODE_ILLEGAL 60, PRV_S, csrr a2, cycle
  TEST_MODE_ILLEGAL 61, PRV_S, csrr a2, time
  TEST_MODE_ILLEGAL 62, PRV_S, csrr a2, instret
  TEST_MODE_ILLEGAL 63, PRV_U, csrr a2, cycle
  csrwi mcounteren, 7
  TEST_MODE_OK 64, PRV_S, rdcycle a2
  TEST_MODE_OK 65, PRV_S, rdtime a2
  TEST_MODE_OK 66, PRV_S, rdinstret a2
  TEST_MODE_ILLEGAL 67, PRV_U, csrr a2, cycle   /* scounteren still 0 */
  TEST_MODE_ILLEGAL 68, PRV_U, csrr a2, time
  TEST_MODE_ILLEGAL 69, PRV_U, csrr a2, instret
  csrwi scounteren, 7
  TEST_MODE_OK 70, PRV_U, rdcycle a2
  TEST_MODE_OK 71, PRV_U, rdtime a2
  TEST_MODE_OK 72, PRV_U, rdinstret a2
  csrwi mcounteren, 5               /* TM clear: time denied to S and U, the others allowed */
  TEST_MODE_ILLEGAL 73, PRV_S, csrr a2, time
  TEST_MODE_ILLEGAL 74, PRV_U, csrr a2, time
  TEST_MODE_OK 75, PRV_U, rdcycle a2
  csrwi mcounteren, 7
  csrwi scounteren, 6               /* CY clear in scounteren: U denied, S allowed */
  TEST_MODE_ILLEGAL 76, PRV_U, csrr a2, cycle
  TEST_MODE_OK 77, PRV_S, rdcycle a2
  TEST_MODE_OK 78, PRV_U, rdinstret a2
  csrwi scounteren, 7
  CASE 79                           /* S-mode time reads agree with mtime */
  li a5, CLINT_MTIME
  ld a1, 0(a5)
  RUN_IN_MODE PRV_S, 1f
  j 2f
1:
  rdtime a2
  RETURN_TO_M
2:
  ld a3, 0(a5)
  bltu a2, a1, fail_51
  bltu a3, a2, fail_51

  /* ---- sstatus is a view of mstatus ---- */
  CASE 80
  li a1, MSTATUS_SIE | MSTATUS_SUM
  csrs sstatus, a1
  csrr a0, mstatus
  and a0, a0, a1
  CHECK_REQ a0, a1
  CASE 81
  li a1, MSTATUS_MIE | MSTATUS_MPIE | MSTATUS_MPP | MSTATUS_MPRV | MSTATUS_TVM
  csrr a2, mstatus
  csrs sstatus, a1                  /* M-only bits: not visible nor writable */
  csrr a0, sstatus
  and a0, a0, a1
  CHECK_EQ a0, 0
  csrr a3, mstatus
  CHECK_REQ a2, a3
  CASE 82
  li a1, MSTATUS_SIE | MSTATUS_SUM
  csrc mstatus, a1
  csrr a0, sstatus
  and a0, a0, a1
  CHECK_EQ a0, 0
  CASE 83                           /* FS is visible in sstatus, SD summarizes it */
  li a1, MSTATUS_FS
  csrs mstatus, a1
  csrr a0, sstatus
  bgez a0, fail_51                  /* SD (bit 63) set when FS = dirty */
  srli a0, a0, 13
  andi a0, a0, 3
  CHECK_EQ a0, 3

  /* ---- sie / sip: views of mie / mip restricted to delegated interrupts ---- */
  CASE 85
  csrw mie, zero
  li a1, MIP_SSIP
  csrw mideleg, a1
  li a1, -1
  csrw sie, a1
  csrr a0, mie
  CHECK_EQ a0, MIP_SSIP
  csrr a0, sie
  CHECK_EQ a0, MIP_SSIP
  CASE 86
  li a1, MIP_SSIP | MIP_STIP | MIP_SEIP
  csrw mideleg, a1
  csrr a0, mideleg
  CHECK_REQ a0, a1                  /* the S interrupts are delegable */
  li a1, -1
  csrw sie, a1
  csrr a0, mie
  CHECK_EQ a0, MIP_SSIP | MIP_STIP | MIP_SEIP
  csrw sie, zero
  csrr a0, mie
  CHECK_EQ a0, 0
  CASE 87                           /* sip.SSIP writable through sip when delegated */
  csrwi sip, MIP_SSIP
  csrr a0, mip
  andi a0, a0, MIP_SSIP
  CHECK_EQ a0, MIP_SSIP
  csrci sip, MIP_SSIP
  csrr a0, mip
  andi a0, a0, MIP_SSIP
  CHECK_EQ a0, 0
  CASE 88                           /* mip.SSIP is writable by M; mip.MTIP / MSIP are not */
  csrw mideleg, zero
  csrsi mip, MIP_SSIP
  csrr a0, mip
  andi a0, a0, MIP_SSIP
  CHECK_EQ a0, MIP_SSIP
  csrr a0, sip                      /* not delegated: invisible in sip */
  CHECK_EQ a0, 0
  csrci mip, MIP_SSIP
  li a1, MIP_MTIP | MIP_MSIP
  csrs mip, a1
  csrr a0, mip
  and a0, a0, a1
  CHECK_EQ a0, 0

  /* ---- fcsr = frm << 5 | fflags ---- */
  CASE 90
  li a1, 0xfff
  csrw fcsr, a1
  csrr a0, fcsr
  CHECK_EQ a0, 0xff
  csrr a0, frm
  CHECK_EQ a0, 7
  csrr a0, fflags
  CHECK_EQ a0, 0x1f
  CASE 91
  csrwi frm, 2
  csrwi fflags, 0x5
  csrr a0, fcsr
  CHECK_EQ a0, (2 << 5) | 5
  fsrm a0, zero                     /* swaps: returns the old frm */
  CHECK_EQ a0, 2
  frcsr a0
  CHECK_EQ a0, 5
  csrw fcsr, zero

  /* ---- WARL fields: mtvec MODE >= 2 is reserved ---- */
  CASE 95
  csrr s3, mtvec
  la a1, m_trap_handler
  ori a1, a1, 2
  csrw mtvec, a1
  csrr a0, mtvec
  csrw mtvec, s3
  andi a0, a0, 3
  li a1, 2
  CHECK_LTU a0, a1

  /* ---- Sstc: stimecmp access ---- */
  CASE 100                          /* M can always access stimecmp */
  li a1, -1
  csrw CSR_STIMECMP, a1
  csrr a0, CSR_STIMECMP
  CHECK_EQ a0, -1
  CASE 101                          /* menvcfg.STCE is writable */
  li a1, MENVCFG_STCE
  csrs CSR_MENVCFG, a1
  csrr a0, CSR_MENVCFG
  bgez a0, fail_51
  csrc CSR_MENVCFG, a1
  csrr a0, CSR_MENVCFG
  bltz a0, fail_51
  TEST_MODE_ILLEGAL 102, PRV_S, csrr a2, CSR_STIMECMP    /* STCE = 0 */
  li a1, MENVCFG_STCE
  csrs CSR_MENVCFG, a1
  csrwi mcounteren, 5
  TEST_MODE_ILLEGAL 103, PRV_S, csrr a2, CSR_STIMECMP    /* mcounteren.TM = 0 */
  csrwi mcounteren, 7
  TEST_MODE_OK 104, PRV_S, csrr a2, CSR_STIMECMP
  CHECK_EQ a2, -1
  TEST_MODE_ILLEGAL 105, PRV_U, csrr a2, CSR_STIMECMP    /* never from U */
  li a1, MENVCFG_STCE
  csrc CSR_MENVCFG, a1

TEST_END
