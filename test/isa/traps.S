/* Traps: every exception cause a RV64GC hart with S and U can raise (with mepc / mtval and
   the mstatus stack), delegation to S with medeleg / mideleg, the privileged-instruction
   traps (xRET, WFI, TSR, TW, TVM), and interrupts: machine software (CLINT msip), machine
   timer (CLINT mtimecmp), supervisor timer (Sstc stimecmp), supervisor software (SSIP), their
   priorities, enabling rules per privilege, vectored mtvec / stvec, and WFI waking up with
   MIE = 0.
   Cause 0 (instruction address misaligned) cannot occur on a hart with C: JALR clears bit 0
   and every branch / JAL offset is a multiple of 2 (see rv64i-branch-jump.S case 53-56). */
#include "env/test.h"

#define SPIN_LIMIT 20000000

/* \insn in M must trap with \cause, mepc at \insn, taken in M */
.macro TEST_EXC_M n, cause, insn:vararg
  CASE \n
  EXPECT_TRAP
.Lc\@:
  \insn
  CHECK_TRAP \cause, .Lc\@, PRV_M
.endm

/* \insn run in \mode must trap with \cause into \handler_mode (PRV_M or PRV_S) */
.macro TEST_EXC_MODE n, mode, cause, handler_mode, insn:vararg
  CASE \n
  EXPECT_TRAP
  RUN_IN_MODE \mode, .Lc\@
  j .Ld\@
.Lc\@:
  \insn
  RETURN_TO_M
.Ld\@:
  CHECK_TRAP \cause, .Lc\@, \handler_mode
.endm

/* tval of the last trap is 0 or \bits */
.macro CHECK_TVAL_0_OR bits
  la t5, trap_rec
  ld t5, TR_TVAL(t5)
  beqz t5, .Lz\@
  CHECK_EQ t5, \bits
.Lz\@:
.endm

/* (recorded status & mask) == val */
.macro CHECK_STATUS mask, val
  la t5, trap_rec
  ld t5, TR_STATUS(t5)
  li t6, \mask
  and t5, t5, t6
  CHECK_EQ t5, \val
.endm

/* spin until trap_rec.count != s4 (the count before), bounded */
.macro WAIT_FOR_TRAP
  li t4, SPIN_LIMIT
.Lw\@:
  la t5, trap_rec
  ld t5, TR_COUNT(t5)
  bne t5, s4, .Ld\@
  addi t4, t4, -1
  bnez t4, .Lw\@
.Ld\@:
.endm

.macro SAVE_COUNT
  la t5, trap_rec
  ld s4, TR_COUNT(t5)
.endm

/* cause of the trap number s4 + \k (k-th trap since SAVE_COUNT) == \cause */
.macro CHECK_LOG k, cause
  addi t5, s4, \k
  andi t5, t5, 7
  slli t5, t5, 3
  la t6, trap_rec
  add t5, t5, t6
  ld t5, TR_LOG(t5)
  CHECK_EQ t5, \cause
.endm

/* mtimecmp = mtime + \delta */
.macro MTIMER_IN delta
  li t5, CLINT_MTIME
  ld t5, 0(t5)
  li t6, \delta
  add t5, t5, t6
  li t6, CLINT_MTIMECMP
  sd t5, 0(t6)
.endm

.macro MTIMER_OFF
  li t5, -1
  li t6, CLINT_MTIMECMP
  sd t5, 0(t6)
.endm

TEST_BEGIN

  /* ================= synchronous exceptions taken in M ================= */
  TEST_EXC_M 1, CAUSE_ILLEGAL, .word 0xffffffff
  CHECK_TVAL_0_OR 0xffffffff
  TEST_EXC_M 2, CAUSE_ILLEGAL, .word 0x0000000b         /* custom-0 opcode */
  CHECK_TVAL_0_OR 0x0000000b
  TEST_EXC_M 3, CAUSE_ILLEGAL, .word 0xfe000033         /* OP with funct7 = 0x7f */
  CHECK_TVAL_0_OR 0xfe000033
  TEST_EXC_M 4, CAUSE_ILLEGAL, .half 0x0000             /* 16-bit all zeros */
  TEST_EXC_M 5, CAUSE_BREAKPOINT, ebreak
  CASE 6                                  /* tval of ebreak: 0 or its address */
  la t5, trap_rec
  ld t4, TR_TVAL(t5)
  beqz t4, 1f
  ld t5, TR_EPC(t5)
  CHECK_REQ t4, t5
1:
  TEST_EXC_M 7, CAUSE_BREAKPOINT, c.ebreak
  TEST_EXC_M 8, CAUSE_MACHINE_ECALL, ecall
  CHECK_TRAP_TVAL 0
  /* access faults: nothing answers at UNMAPPED_PA / UNMAPPED_PA2 */
  li s1, UNMAPPED_PA
  li s2, UNMAPPED_PA2
  TEST_EXC_M 10, CAUSE_LOAD_ACCESS, ld a0, 0(s1)
  CHECK_TRAP_TVAL UNMAPPED_PA
  TEST_EXC_M 11, CAUSE_LOAD_ACCESS, lbu a0, 8(s2)
  CHECK_TRAP_TVAL UNMAPPED_PA2 + 8
  TEST_EXC_M 12, CAUSE_STORE_ACCESS, sd a0, 0(s1)
  CHECK_TRAP_TVAL UNMAPPED_PA
  TEST_EXC_M 13, CAUSE_STORE_ACCESS, sw a0, 16(s2)
  CHECK_TRAP_TVAL UNMAPPED_PA2 + 16
  CASE 14                                 /* the faulting load does not write rd */
  li a0, 0x1234
  EXPECT_TRAP
  ld a0, 0(s1)
  CHECK_EQ a0, 0x1234
  CASE 15                                 /* instruction access fault: epc = tval = target */
  EXPECT_TRAP
  li a0, UNMAPPED_PA
  jalr ra, 0(a0)
  CHECK_NO_PENDING_EXPECT
  CHECK_TRAP_CAUSE CAUSE_FETCH_ACCESS
  CHECK_TRAP_TVAL UNMAPPED_PA
  la t5, trap_rec
  ld t5, TR_EPC(t5)
  CHECK_EQ t5, UNMAPPED_PA
  CASE 16
  EXPECT_TRAP
  li a0, UNMAPPED_PA2
  jalr ra, 0(a0)
  CHECK_TRAP_CAUSE CAUSE_FETCH_ACCESS
  CHECK_TRAP_TVAL UNMAPPED_PA2
  CASE 17                                 /* jump into RAM's end: still a fetch fault */
  EXPECT_TRAP
  li a0, UNMAPPED_PA2 + 0x1000
  jalr ra, 0(a0)
  CHECK_TRAP_CAUSE CAUSE_FETCH_ACCESS

  /* ---- the mstatus stack on a trap from M and on mret ---- */
  CASE 20
  li a1, MSTATUS_MIE
  csrs mstatus, a1                        /* no interrupt enabled in mie: safe */
  EXPECT_TRAP
  ecall
  CHECK_STATUS MSTATUS_MIE | MSTATUS_MPIE | MSTATUS_MPP, MSTATUS_MPIE | MSTATUS_MPP
  csrr a0, mstatus                        /* after mret: MIE = MPIE = 1, MPP = U */
  li a1, MSTATUS_MIE | MSTATUS_MPIE | MSTATUS_MPP
  and a0, a0, a1
  CHECK_EQ a0, MSTATUS_MIE | MSTATUS_MPIE
  CASE 21
  li a1, MSTATUS_MIE
  csrc mstatus, a1
  EXPECT_TRAP
  ecall
  CHECK_STATUS MSTATUS_MIE | MSTATUS_MPIE | MSTATUS_MPP, MSTATUS_MPP
  csrr a0, mstatus
  li a1, MSTATUS_MIE | MSTATUS_MPIE
  and a0, a0, a1
  CHECK_EQ a0, MSTATUS_MPIE

  /* ================= exceptions from S and U, taken in M ================= */
  TEST_EXC_MODE 30, PRV_U, CAUSE_USER_ECALL, PRV_M, ecall
  CHECK_STATUS MSTATUS_MPP, 0
  CHECK_TRAP_TVAL 0
  TEST_EXC_MODE 31, PRV_S, CAUSE_SUPERVISOR_ECALL, PRV_M, ecall
  CHECK_STATUS MSTATUS_MPP, MSTATUS_MPP_S
  TEST_EXC_MODE 32, PRV_U, CAUSE_ILLEGAL, PRV_M, .word 0xffffffff
  TEST_EXC_MODE 33, PRV_S, CAUSE_BREAKPOINT, PRV_M, ebreak
  TEST_EXC_MODE 34, PRV_U, CAUSE_LOAD_ACCESS, PRV_M, ld a2, 0(s1)
  TEST_EXC_MODE 35, PRV_S, CAUSE_STORE_ACCESS, PRV_M, sd a2, 0(s1)
  /* privileged instructions from the wrong mode */
  TEST_EXC_MODE 36, PRV_U, CAUSE_ILLEGAL, PRV_M, mret
  TEST_EXC_MODE 37, PRV_S, CAUSE_ILLEGAL, PRV_M, mret
  TEST_EXC_MODE 38, PRV_U, CAUSE_ILLEGAL, PRV_M, sret
  TEST_EXC_MODE 39, PRV_U, CAUSE_ILLEGAL, PRV_M, wfi       /* S exists: WFI in U is illegal */
  TEST_EXC_MODE 40, PRV_U, CAUSE_ILLEGAL, PRV_M, sfence.vma
  TEST_EXC_MODE 41, PRV_U, CAUSE_ILLEGAL, PRV_M, csrr a2, satp
  li a1, MSTATUS_TSR
  csrs mstatus, a1
  TEST_EXC_MODE 42, PRV_S, CAUSE_ILLEGAL, PRV_M, sret      /* TSR */
  li a1, MSTATUS_TSR
  csrc mstatus, a1
  li a1, MSTATUS_TW
  csrs mstatus, a1
  TEST_EXC_MODE 43, PRV_S, CAUSE_ILLEGAL, PRV_M, wfi       /* TW */
  li a1, MSTATUS_TW
  csrc mstatus, a1
  li a1, MSTATUS_TVM
  csrs mstatus, a1
  TEST_EXC_MODE 44, PRV_S, CAUSE_ILLEGAL, PRV_M, csrr a2, satp   /* TVM */
  TEST_EXC_MODE 45, PRV_S, CAUSE_ILLEGAL, PRV_M, sfence.vma
  TEST_EXC_MODE 46, PRV_S, CAUSE_ILLEGAL, PRV_M, csrw satp, zero
  li a1, MSTATUS_TVM
  csrc mstatus, a1
  CASE 47                                  /* without TVM, S may use satp and sfence.vma */
  RUN_IN_MODE PRV_S, 1f
  j 2f
1:
  csrr a2, satp
  sfence.vma
  RETURN_TO_M
2:
  CASE 48                                  /* WFI in S (TW = 0) is legal: wakes on the timer */
  li a1, MIP_MTIP
  csrw mie, a1
  MTIMER_IN 20000                          /* 2 ms: long enough to reach the wfi first */
  SAVE_COUNT
  EXPECT_TRAP
  RUN_IN_MODE PRV_S, 1f
  j 2f
1:
  /* Wait only while the trap has not been taken: a timer that fired before the wfi (a loaded
     host can stall the vCPU) would otherwise leave the wfi waiting forever on QEMU. */
  la t5, trap_rec
  ld t5, TR_COUNT(t5)
  bne t5, s4, 3f
  wfi                                      /* MTI is taken as soon as it is pending (S < M) */
  j 1b
3:
  WAIT_FOR_TRAP
  RETURN_TO_M
2:
  MTIMER_OFF
  CHECK_NO_PENDING_EXPECT
  CHECK_TRAP_CAUSE CAUSE_INT | IRQ_M_TIMER
  csrw mie, zero

  /* ================= delegation to S ================= */
  la t0, s_save
  csrw sscratch, t0
  li a1, (1 << CAUSE_ILLEGAL) | (1 << CAUSE_BREAKPOINT) | (1 << CAUSE_USER_ECALL) | (1 << CAUSE_LOAD_ACCESS)
  csrw medeleg, a1
  csrr a0, medeleg
  CHECK_REQ a0, a1
  TEST_EXC_MODE 50, PRV_U, CAUSE_ILLEGAL, PRV_S, .word 0xffffffff
  CHECK_TVAL_0_OR 0xffffffff
  CHECK_STATUS MSTATUS_SPP, 0              /* from U */
  TEST_EXC_MODE 51, PRV_S, CAUSE_ILLEGAL, PRV_S, .word 0xfe000033
  CHECK_STATUS MSTATUS_SPP, MSTATUS_SPP    /* from S */
  TEST_EXC_MODE 52, PRV_U, CAUSE_USER_ECALL, PRV_S, ecall
  TEST_EXC_MODE 53, PRV_S, CAUSE_SUPERVISOR_ECALL, PRV_M, ecall   /* bit 9 not delegated */
  TEST_EXC_MODE 54, PRV_U, CAUSE_BREAKPOINT, PRV_S, c.ebreak
  TEST_EXC_MODE 55, PRV_S, CAUSE_LOAD_ACCESS, PRV_S, ld a2, 8(s2)
  CHECK_TRAP_TVAL UNMAPPED_PA2 + 8
  TEST_EXC_MODE 56, PRV_U, CAUSE_STORE_ACCESS, PRV_M, sd a2, 0(s1)  /* not delegated */
  /* delegation never applies to traps from M */
  TEST_EXC_M 57, CAUSE_ILLEGAL, .word 0xffffffff
  TEST_EXC_M 58, CAUSE_BREAKPOINT, ebreak
  CASE 59                                  /* sstatus stack: SPIE = old SIE, SIE = 0 */
  li a1, MSTATUS_SIE
  csrs mstatus, a1
  EXPECT_TRAP
  RUN_IN_MODE PRV_S, 1f
  j 2f
1:
  .word 0xffffffff
  csrr a2, sstatus                         /* after sret: SIE = SPIE = 1 */
  RETURN_TO_M
2:
  CHECK_TRAP CAUSE_ILLEGAL, 1b, PRV_S
  CHECK_STATUS MSTATUS_SIE | MSTATUS_SPIE | MSTATUS_SPP, MSTATUS_SPIE | MSTATUS_SPP
  li a1, MSTATUS_SIE | MSTATUS_SPIE | MSTATUS_SPP
  and a2, a2, a1
  CHECK_EQ a2, MSTATUS_SIE | MSTATUS_SPIE  /* and SPP = U after sret */
  li a1, MSTATUS_SIE
  csrc mstatus, a1
  csrw medeleg, zero

  /* ================= page faults (Sv39): causes 12 / 13 / 15 with tval = VA ========== */
  VM_INIT SATP_MODE_SV39
  VM_ENABLE
  li s3, 0x40000000                        /* nothing mapped there */
  TEST_EXC_MODE 60, PRV_S, CAUSE_LOAD_PAGE_FAULT, PRV_M, ld a2, 0(s3)
  CHECK_TRAP_TVAL 0x40000000
  TEST_EXC_MODE 61, PRV_S, CAUSE_STORE_PAGE_FAULT, PRV_M, sw a2, 4(s3)
  CHECK_TRAP_TVAL 0x40000004
  CASE 62                                  /* an AMO faults as a store */
  EXPECT_TRAP
  RUN_IN_MODE PRV_S, 1f
  j 2f
1:
  amoadd.w a2, a2, (s3)
  RETURN_TO_M
2:
  CHECK_NO_PENDING_EXPECT
  CHECK_TRAP_EPC 1b
  CHECK_TRAP_TVAL 0x40000000
  la t5, trap_rec
  ld t4, TR_CAUSE(t5)
  li t5, CAUSE_LOAD_PAGE_FAULT             /* QEMU <= 7.2 (deviation, see README.md) */
  bne t4, t5, 3f
  IF_QEMU_UPTO 0x0702ff, 4f
3:
  CHECK_EQ t4, CAUSE_STORE_PAGE_FAULT
4:
  CASE 63
  EXPECT_TRAP
  RUN_IN_MODE PRV_S, 1f
  j 2f
1:
  jalr ra, 0(s3)
  RETURN_TO_M
2:
  CHECK_NO_PENDING_EXPECT
  CHECK_TRAP_CAUSE CAUSE_FETCH_PAGE_FAULT
  CHECK_TRAP_TVAL 0x40000000
  la t5, trap_rec
  ld t5, TR_EPC(t5)
  CHECK_EQ t5, 0x40000000
  li a1, (1 << CAUSE_FETCH_PAGE_FAULT) | (1 << CAUSE_LOAD_PAGE_FAULT) | (1 << CAUSE_STORE_PAGE_FAULT)
  csrw medeleg, a1
  TEST_EXC_MODE 64, PRV_S, CAUSE_LOAD_PAGE_FAULT, PRV_S, lw a2, 8(s3)
  CHECK_TRAP_TVAL 0x40000008
  TEST_EXC_MODE 65, PRV_S, CAUSE_STORE_PAGE_FAULT, PRV_S, sd a2, 16(s3)
  CHECK_TRAP_TVAL 0x40000010
  CASE 66
  EXPECT_TRAP
  RUN_IN_MODE PRV_S, 1f
  j 2f
1:
  jalr ra, 0x10(s3)
  RETURN_TO_M
2:
  CHECK_TRAP_CAUSE CAUSE_FETCH_PAGE_FAULT
  CHECK_TRAP_MODE PRV_S
  CHECK_TRAP_TVAL 0x40000010
  csrw medeleg, zero
  VM_DISABLE

  /* ================= interrupts ================= */
  /* ---- machine software interrupt (CLINT msip) ---- */
  CASE 70
  li a1, CLINT_MSIP
  li a2, 1
  sw a2, 0(a1)
  csrr a0, mip
  andi a0, a0, MIP_MSIP
  CHECK_EQ a0, MIP_MSIP                    /* pending, not enabled: no trap */
  li a2, MIP_MSIP
  csrw mie, a2
  EXPECT_TRAP
  csrsi mstatus, MSTATUS_MIE
msi_after:
  nop
  csrci mstatus, MSTATUS_MIE
  CHECK_NO_PENDING_EXPECT
  CHECK_TRAP_CAUSE CAUSE_INT | IRQ_M_SOFT
  CHECK_TRAP_EPC msi_after                 /* taken right after MIE was set */
  CHECK_TRAP_TVAL 0
  CHECK_STATUS MSTATUS_MPIE | MSTATUS_MPP, MSTATUS_MPIE | MSTATUS_MPP
  CHECK_CSR mie, 0                         /* our handler disabled it */
  li a1, CLINT_MSIP
  sw zero, 0(a1)
  csrr a0, mip
  andi a0, a0, MIP_MSIP
  CHECK_EQ a0, 0

  /* ---- machine timer interrupt ---- */
  CASE 71
  li a1, MIP_MTIP
  csrw mie, a1
  MTIMER_IN 500
  SAVE_COUNT
  EXPECT_TRAP
  csrsi mstatus, MSTATUS_MIE
  WAIT_FOR_TRAP
  csrci mstatus, MSTATUS_MIE
  CHECK_NO_PENDING_EXPECT
  CHECK_TRAP_CAUSE CAUSE_INT | IRQ_M_TIMER
  CHECK_TRAP_MODE PRV_M
  csrr a0, mip
  andi a0, a0, MIP_MTIP
  CHECK_EQ a0, MIP_MTIP                    /* still pending until mtimecmp moves */
  MTIMER_OFF
  csrr a0, mip
  andi a0, a0, MIP_MTIP
  CHECK_EQ a0, 0
  CASE 72                                  /* mtimecmp in the past: pending at once */
  li t5, CLINT_MTIMECMP
  sd zero, 0(t5)
  csrr a0, mip
  andi a0, a0, MIP_MTIP
  CHECK_EQ a0, MIP_MTIP
  MTIMER_OFF

  /* ---- WFI wakes on a pending enabled interrupt even with MIE = 0, without a trap ---- */
  CASE 73
  csrci mstatus, MSTATUS_MIE
  li a1, MIP_MTIP
  csrw mie, a1
  MTIMER_IN 2000
  SAVE_COUNT
  li t4, SPIN_LIMIT
1:
  wfi
  csrr a0, mip
  andi a0, a0, MIP_MTIP
  bnez a0, 2f
  addi t4, t4, -1
  bnez t4, 1b
  j fail
2:
  la t5, trap_rec
  ld t5, TR_COUNT(t5)
  CHECK_REQ t5, s4                         /* no trap was taken */
  MTIMER_OFF
  csrw mie, zero

  /* ---- M-level interrupts are always enabled in S and U, whatever MIE says ---- */
  CASE 74
  li a1, CLINT_MSIP
  li a2, 1
  sw a2, 0(a1)
  li a2, MIP_MSIP
  csrw mie, a2
  EXPECT_TRAP
  RUN_IN_MODE PRV_U, 1f                    /* mstatus.MIE = 0 */
  j 2f
1:
  nop                                      /* the interrupt is taken before this */
  li a1, CLINT_MSIP                        /* in U there is no paging: clear msip directly */
  sw zero, 0(a1)
  RETURN_TO_M
2:
  CHECK_TRAP CAUSE_INT | IRQ_M_SOFT, 1b, PRV_M
  CHECK_STATUS MSTATUS_MPP, 0

  /* ---- priorities: MSI > MTI, both pending when MIE is set ---- */
  CASE 75
  li a1, CLINT_MSIP
  li a2, 1
  sw a2, 0(a1)
  li t5, CLINT_MTIMECMP
  sd zero, 0(t5)
  li a1, MIP_MSIP | MIP_MTIP
  csrw mie, a1
  SAVE_COUNT
  EXPECT_TRAPS 2
  csrsi mstatus, MSTATUS_MIE
  nop
  nop
  csrci mstatus, MSTATUS_MIE
  CHECK_NO_PENDING_EXPECT
  CHECK_LOG 0, CAUSE_INT | IRQ_M_SOFT
  CHECK_LOG 1, CAUSE_INT | IRQ_M_TIMER
  li a1, CLINT_MSIP
  sw zero, 0(a1)
  MTIMER_OFF
  /* ---- MTI (M level) > SSI (S level, not delegated) ---- */
  CASE 76
  csrsi mip, MIP_SSIP
  li t5, CLINT_MTIMECMP
  sd zero, 0(t5)
  li a1, MIP_SSIP | MIP_MTIP
  csrw mie, a1
  SAVE_COUNT
  EXPECT_TRAPS 2
  csrsi mstatus, MSTATUS_MIE
  nop
  nop
  csrci mstatus, MSTATUS_MIE
  CHECK_NO_PENDING_EXPECT
  /* QEMU <= 7.2 without AIA takes the lowest-numbered pending interrupt first, so SSI (1)
     before MTI (7) (deviation, see README.md) */
  IF_QEMU_UPTO 0x0702ff, 1f
  CHECK_LOG 0, CAUSE_INT | IRQ_M_TIMER
  CHECK_LOG 1, CAUSE_INT | IRQ_S_SOFT
  j 2f
1:
  CHECK_LOG 0, CAUSE_INT | IRQ_S_SOFT
  CHECK_LOG 1, CAUSE_INT | IRQ_M_TIMER
2:
  csrci mip, MIP_SSIP
  MTIMER_OFF
  /* ---- SSI > STI (both S level, not delegated, taken in M) ---- */
  CASE 77
  li a1, MIP_SSIP | MIP_STIP
  csrs mip, a1                              /* STCE = 0: STIP is writable by M */
  csrw mie, a1
  SAVE_COUNT
  EXPECT_TRAPS 2
  csrsi mstatus, MSTATUS_MIE
  nop
  nop
  csrci mstatus, MSTATUS_MIE
  CHECK_NO_PENDING_EXPECT
  CHECK_LOG 0, CAUSE_INT | IRQ_S_SOFT
  CHECK_LOG 1, CAUSE_INT | IRQ_S_TIMER
  li a1, MIP_SSIP | MIP_STIP
  csrc mip, a1
  csrw mie, zero

  /* ---- supervisor software interrupt, delegated ---- */
  CASE 80                                  /* delegated interrupts are never taken in M */
  li a1, MIP_SSIP
  csrw mideleg, a1
  csrw mie, a1
  csrs mip, a1
  SAVE_COUNT
  csrsi mstatus, MSTATUS_MIE | MSTATUS_SIE
  nop
  nop
  csrci mstatus, MSTATUS_MIE | MSTATUS_SIE
  la t5, trap_rec
  ld t5, TR_COUNT(t5)
  CHECK_REQ t5, s4
  CASE 81                                  /* ... but in S with SIE = 1, at the first insn */
  csrsi mstatus, MSTATUS_SIE
  EXPECT_TRAP
  RUN_IN_MODE PRV_S, 1f
  j 2f
1:
  nop
  csrci sip, MIP_SSIP
  RETURN_TO_M
2:
  CHECK_TRAP CAUSE_INT | IRQ_S_SOFT, 1b, PRV_S
  CHECK_STATUS MSTATUS_SPP | MSTATUS_SPIE, MSTATUS_SPP | MSTATUS_SPIE
  csrr a0, mip
  andi a0, a0, MIP_SSIP
  CHECK_EQ a0, 0
  CASE 82                                  /* in S with SIE = 0: not taken */
  csrci mstatus, MSTATUS_SIE
  li a1, MIP_SSIP
  csrw mie, a1
  csrs mip, a1
  SAVE_COUNT
  RUN_IN_MODE PRV_S, 1f
  j 2f
1:
  nop
  nop
  RETURN_TO_M
2:
  la t5, trap_rec
  ld t5, TR_COUNT(t5)
  CHECK_REQ t5, s4
  CASE 83                                  /* in U it is taken whatever SIE says */
  EXPECT_TRAP
  RUN_IN_MODE PRV_U, 1f
  j 2f
1:
  nop
  RETURN_TO_M
2:
  CHECK_TRAP CAUSE_INT | IRQ_S_SOFT, 1b, PRV_S
  CHECK_STATUS MSTATUS_SPP, 0
  csrci mip, MIP_SSIP
  CASE 84                                  /* S raises its own SSIP: taken after the write */
  li a1, MIP_SSIP
  csrw mie, a1
  csrsi mstatus, MSTATUS_SIE
  EXPECT_TRAP
  RUN_IN_MODE PRV_S, 1f
  j 2f
1:
  csrsi sip, MIP_SSIP
3:
  nop
  csrci sip, MIP_SSIP
  RETURN_TO_M
2:
  CHECK_TRAP CAUSE_INT | IRQ_S_SOFT, 3b, PRV_S
  csrci mstatus, MSTATUS_SIE
  csrw mideleg, zero
  csrw mie, zero

  /* ---- supervisor timer through Sstc stimecmp ---- */
  CASE 90
  li a1, MENVCFG_STCE
  csrs CSR_MENVCFG, a1
  li a1, -1
  csrw CSR_STIMECMP, a1
  csrr a0, mip
  andi a0, a0, MIP_STIP
  CHECK_EQ a0, 0
  csrw CSR_STIMECMP, zero                  /* in the past: pending */
  csrr a0, mip
  andi a0, a0, MIP_STIP
  CHECK_EQ a0, MIP_STIP
  li a1, MIP_STIP
  csrc mip, a1                             /* read-only while STCE = 1 */
  csrr a0, mip
  andi a0, a0, MIP_STIP
  CHECK_EQ a0, MIP_STIP
  li a1, -1
  csrw CSR_STIMECMP, a1
  csrr a0, mip
  andi a0, a0, MIP_STIP
  CHECK_EQ a0, 0
  CASE 91                                  /* delegated: S programs it, S takes it */
  li a1, MIP_STIP
  csrw mideleg, a1
  csrw mie, a1
  csrsi mstatus, MSTATUS_SIE
  SAVE_COUNT
  EXPECT_TRAP
  RUN_IN_MODE PRV_S, 1f
  j 2f
1:
  rdtime a2
  addi a2, a2, 500
  csrw CSR_STIMECMP, a2
  WAIT_FOR_TRAP
  csrr a3, sip
  li a2, -1
  csrw CSR_STIMECMP, a2                    /* acknowledges it */
  csrr a4, sip
  RETURN_TO_M
2:
  CHECK_NO_PENDING_EXPECT
  CHECK_TRAP_CAUSE CAUSE_INT | IRQ_S_TIMER
  CHECK_TRAP_MODE PRV_S
  andi a3, a3, MIP_STIP
  CHECK_EQ a3, MIP_STIP
  andi a4, a4, MIP_STIP
  CHECK_EQ a4, 0
  csrci mstatus, MSTATUS_SIE
  CASE 92                                  /* not delegated: taken in M from S */
  csrw mideleg, zero
  li a1, MIP_STIP
  csrw mie, a1
  SAVE_COUNT
  EXPECT_TRAP
  RUN_IN_MODE PRV_S, 1f
  j 2f
1:
  rdtime a2
  addi a2, a2, 500
  csrw CSR_STIMECMP, a2
  WAIT_FOR_TRAP
  li a2, -1
  csrw CSR_STIMECMP, a2
  RETURN_TO_M
2:
  CHECK_NO_PENDING_EXPECT
  CHECK_TRAP_CAUSE CAUSE_INT | IRQ_S_TIMER
  CHECK_TRAP_MODE PRV_M
  CHECK_STATUS MSTATUS_MPP, MSTATUS_MPP_S
  csrw mie, zero
  li a1, MENVCFG_STCE
  csrc CSR_MENVCFG, a1

  /* ---- vectored mtvec: interrupts go to base + 4 * cause, exceptions to base ---- */
  CASE 100
  la a1, mvec_table
  ori a1, a1, 1
  csrw mtvec, a1
  csrr a0, mtvec
  CHECK_REQ a0, a1                         /* vectored mode is supported */
  la a2, vec_hit
  sd zero, 0(a2)
  li a1, CLINT_MSIP
  li a2, 1
  sw a2, 0(a1)
  li a2, MIP_MSIP
  csrw mie, a2
  EXPECT_TRAP
  csrsi mstatus, MSTATUS_MIE
  nop
  csrci mstatus, MSTATUS_MIE
  li a1, CLINT_MSIP
  sw zero, 0(a1)
  CHECK_NO_PENDING_EXPECT
  CHECK_TRAP_CAUSE CAUSE_INT | IRQ_M_SOFT
  CHECK_MEM vec_hit, 3
  CASE 101
  li a1, MIP_MTIP
  csrw mie, a1
  li t5, CLINT_MTIMECMP
  sd zero, 0(t5)
  EXPECT_TRAP
  csrsi mstatus, MSTATUS_MIE
  nop
  csrci mstatus, MSTATUS_MIE
  MTIMER_OFF
  CHECK_TRAP_CAUSE CAUSE_INT | IRQ_M_TIMER
  CHECK_MEM vec_hit, 7
  CASE 102                                 /* exceptions use the base */
  la a2, vec_hit
  sd zero, 0(a2)
  EXPECT_TRAP
  ecall
  CHECK_TRAP_CAUSE CAUSE_MACHINE_ECALL
  CHECK_MEM vec_hit, 0x100
  la a1, m_trap_handler
  csrw mtvec, a1
  CASE 103                                 /* vectored stvec */
  la t0, s_save
  csrw sscratch, t0
  la a1, svec_table
  ori a1, a1, 1
  csrw stvec, a1
  li a1, MIP_SSIP
  csrw mideleg, a1
  csrw mie, a1
  csrs mip, a1
  la a2, vec_hit
  sd zero, 0(a2)
  EXPECT_TRAP
  RUN_IN_MODE PRV_U, 1f
  j 2f
1:
  nop
  RETURN_TO_M
2:
  CHECK_TRAP CAUSE_INT | IRQ_S_SOFT, 1b, PRV_S
  CHECK_MEM vec_hit, 0x201
  csrci mip, MIP_SSIP
  csrw mideleg, zero
  csrw mie, zero
  la a1, s_trap_handler
  csrw stvec, a1

TEST_END

/* vector tables: each entry is one 4-byte jump */
  .option push
  .option norvc
  .align 8
mvec_table:
  j mvec_exc
  j mvec_bad
  j mvec_bad
  j mvec_3
  j mvec_bad
  j mvec_bad
  j mvec_bad
  j mvec_7
  j mvec_bad
  j mvec_bad
  j mvec_bad
  j mvec_bad
  .align 8
svec_table:
  j mvec_bad
  j svec_1
  j mvec_bad
  j mvec_bad
  j mvec_bad
  j mvec_bad
  .option pop

/* record the vector entry number in vec_hit, then continue in the common handler */
.macro VEC_STUB scratch, num, handler
  csrrw sp, \scratch, sp                  /* sp = the handler's save area */
  sd t0, 32(sp)
  sd t1, 40(sp)
  la t0, vec_hit
  li t1, \num
  sd t1, 0(t0)
  ld t0, 32(sp)
  ld t1, 40(sp)
  csrrw sp, \scratch, sp
  j \handler
.endm

mvec_exc:
  VEC_STUB mscratch, 0x100, m_trap_handler
mvec_3:
  VEC_STUB mscratch, 3, m_trap_handler
mvec_7:
  VEC_STUB mscratch, 7, m_trap_handler
mvec_bad:
  j fail
svec_1:
  VEC_STUB sscratch, 0x201, s_trap_handler

  .data
  .align 3
vec_hit: .dword 0
