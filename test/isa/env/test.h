/*
 * wasmvisor ISA tests: shared environment (macros, reset code, trap handlers, exit protocol,
 * page-table helpers). Every test/isa/*.S starts with `#include "env/test.h"`.
 * See test/isa/README.md for the conventions. Summary:
 *
 *   TEST_BEGIN ... TEST_END     the test body (runs in M mode after reset, MIE=0, satp=0)
 *   gp (x3)                     number of the current case (set by CASE n and every TEST_* macro)
 *   t6 (x31)                    scratch of the CHECK macros (do not keep values in it)
 *   pass / fail                 exit: tohost <- 1 or (gp<<1)|1, then sifive_test <- 0x5555 or
 *                               (gp<<16)|0x3333 so that QEMU exits; `fail` also prints on UART
 *
 * Traps: every trap must be announced with EXPECT_TRAPS n (a counter; an unannounced trap fails
 * the current case). The M and S handlers record the trap in trap_rec (cause, epc, tval,
 * status, handling mode), resume after the faulting instruction (reading its length at epc, so
 * compressed instructions are skipped correctly), or at `ra` for instruction-fetch faults (so
 * reach bad targets with `jalr ra, ...`), and for interrupts clear the cause's bit in mie/sie.
 *
 * Lower privilege: RUN_IN_MODE S|U, label enters the code at label with mret (MPP), and that
 * code comes back with RETURN_TO_M (an ecall with a magic a7). a2..a6, t0..t6, s-regs pass
 * through in both directions; a0/a1/a7 are used by the mechanism (a7 = 0 on entry to the
 * lower mode and after the return), sp/ra/s*-regs of M are restored on return.
 */
#ifndef WASMVISOR_ISA_TEST_H
#define WASMVISOR_ISA_TEST_H

/* ---- architectural constants ---------------------------------------------------------- */
#define MSTATUS_SIE   (1 << 1)
#define MSTATUS_MIE   (1 << 3)
#define MSTATUS_SPIE  (1 << 5)
#define MSTATUS_MPIE  (1 << 7)
#define MSTATUS_SPP   (1 << 8)
#define MSTATUS_MPP   (3 << 11)
#define MSTATUS_MPP_S (1 << 11)
#define MSTATUS_FS    (3 << 13)
#define MSTATUS_FS_INITIAL (1 << 13)
#define MSTATUS_FS_CLEAN   (2 << 13)
#define MSTATUS_FS_DIRTY   (3 << 13)
#define MSTATUS_MPRV  (1 << 17)
#define MSTATUS_SUM   (1 << 18)
#define MSTATUS_MXR   (1 << 19)
#define MSTATUS_TVM   (1 << 20)
#define MSTATUS_TW    (1 << 21)
#define MSTATUS_TSR   (1 << 22)
#define MSTATUS_SD    (1 << 63)

#define IRQ_S_SOFT  1
#define IRQ_M_SOFT  3
#define IRQ_S_TIMER 5
#define IRQ_M_TIMER 7
#define IRQ_S_EXT   9
#define IRQ_M_EXT   11
#define MIP_SSIP (1 << IRQ_S_SOFT)
#define MIP_MSIP (1 << IRQ_M_SOFT)
#define MIP_STIP (1 << IRQ_S_TIMER)
#define MIP_MTIP (1 << IRQ_M_TIMER)
#define MIP_SEIP (1 << IRQ_S_EXT)
#define MIP_MEIP (1 << IRQ_M_EXT)

#define CAUSE_MISALIGNED_FETCH 0
#define CAUSE_FETCH_ACCESS     1
#define CAUSE_ILLEGAL          2
#define CAUSE_BREAKPOINT       3
#define CAUSE_MISALIGNED_LOAD  4
#define CAUSE_LOAD_ACCESS      5
#define CAUSE_MISALIGNED_STORE 6
#define CAUSE_STORE_ACCESS     7
#define CAUSE_USER_ECALL       8
#define CAUSE_SUPERVISOR_ECALL 9
#define CAUSE_MACHINE_ECALL    11
#define CAUSE_FETCH_PAGE_FAULT 12
#define CAUSE_LOAD_PAGE_FAULT  13
#define CAUSE_STORE_PAGE_FAULT 15
#define CAUSE_INT              (1 << 63)

#define PTE_V (1 << 0)
#define PTE_R (1 << 1)
#define PTE_W (1 << 2)
#define PTE_X (1 << 3)
#define PTE_U (1 << 4)
#define PTE_G (1 << 5)
#define PTE_A (1 << 6)
#define PTE_D (1 << 7)
#define PTE_RWX (PTE_R | PTE_W | PTE_X)
#define PTE_LEAF_ALL (PTE_V | PTE_R | PTE_W | PTE_X | PTE_A | PTE_D)

#define SATP_MODE_BARE 0
#define SATP_MODE_SV39 8
#define SATP_MODE_SV48 9
#define SATP_MODE_SV57 10

/* fflags bits */
#define FL_NX 0x01
#define FL_UF 0x02
#define FL_OF 0x04
#define FL_DZ 0x08
#define FL_NV 0x10

#define PRV_U 0
#define PRV_S 1
#define PRV_M 3

/* CSRs the assembler may not know by name */
#define CSR_MENVCFG   0x30a
#define CSR_STIMECMP  0x14d
#define MENVCFG_STCE  (1 << 63)

/* ---- board (QEMU virt) ----------------------------------------------------------------- */
#define SIFIVE_TEST   0x100000
#define UART0         0x10000000
#define CLINT_MSIP    0x2000000
#define CLINT_MTIMECMP 0x2004000
#define CLINT_MTIME   0x200bff8
/* 2 MiB of RAM above every test image (link.ld asserts that images end below it), free for
   tests that need naturally aligned physical superpages */
#define SCRATCH_PA    0x80400000
/* physical addresses where nothing answers: accesses raise access faults */
#define UNMAPPED_PA   0x0
#define UNMAPPED_PA2  0x4000000000

/* ---- environment layout ------------------------------------------------------------------ */
#define MAGIC_RETURN 0x5eed0001   /* a7 value of the ecall that returns to M (RETURN_TO_M) */
#define MAGIC_FAIL   0x5eed0002   /* a7 value of the ecall that fails the test from S/U */
#define SETUP_CASE   999          /* reported case number for a failure before the first CASE */

/* U-mode alias of RAM under paging: VA USER_BASE + x maps PA 0x80000000 + x with U=1
   (vm_init maps it as one 1 GiB page); identity 0x80000000 is mapped for S (U=0). */
#define USER_BASE    0x100000000
#define USER_OFFSET  (USER_BASE - 0x80000000)

/* trap_rec fields */
#define TR_CAUSE   0
#define TR_EPC     8
#define TR_TVAL    16
#define TR_COUNT   24
#define TR_STATUS  32   /* mstatus (M handler) or sstatus (S handler) at trap entry */
#define TR_MODE    40   /* 3 = taken in M, 1 = taken in S */
#define TR_EXPECT  48   /* traps still expected */
#define TR_BAD     56   /* 1 after an unexpected trap */
#define TR_LOG     64   /* causes of the last 8 traps, indexed by count & 7 */
#define TR_SIZE    128

#define VM_POOL_PAGES 32

#ifdef __ASSEMBLER__

/* absolute addresses (no GOT): `la` = auipc + addi */
.option nopic

/* ---- test structure --------------------------------------------------------------------- */

.macro TEST_BEGIN
  .text
  .globl test_main
  .align 2
test_main:
.endm

.macro TEST_END
  j pass
.endm

.macro CASE n
  li gp, \n
.endm

/* reg == imm, else fail (clobbers t6) */
.macro CHECK_EQ reg, imm
  li t6, \imm
  beq \reg, t6, .Lok\@
  j fail
.Lok\@:
.endm

.macro CHECK_NE reg, imm
  li t6, \imm
  bne \reg, t6, .Lok\@
  j fail
.Lok\@:
.endm

/* reg1 == reg2 */
.macro CHECK_REQ r1, r2
  beq \r1, \r2, .Lok\@
  j fail
.Lok\@:
.endm

.macro CHECK_RNE r1, r2
  bne \r1, \r2, .Lok\@
  j fail
.Lok\@:
.endm

/* r1 <u r2 */
.macro CHECK_LTU r1, r2
  bltu \r1, \r2, .Lok\@
  j fail
.Lok\@:
.endm

/* reg == address of label */
.macro CHECK_ADDR reg, label
  la t6, \label
  beq \reg, t6, .Lok\@
  j fail
.Lok\@:
.endm

/* dword at label == imm (clobbers t5, t6) */
.macro CHECK_MEM label, imm
  la t5, \label
  ld t5, 0(t5)
  CHECK_EQ t5, \imm
.endm

/* CSR == imm (clobbers t5, t6) */
.macro CHECK_CSR csr, imm
  csrr t5, \csr
  CHECK_EQ t5, \imm
.endm

/* (CSR & mask) == imm */
.macro CHECK_CSR_MASK csr, mask, imm
  csrr t5, \csr
  li t6, \mask
  and t5, t5, t6
  CHECK_EQ t5, \imm
.endm

/* ---- integer instruction shapes (result in a0, operands in a1, a2) ----------------------- */

.macro TEST_RR n, op, exp, a, b
  CASE \n
  li a1, \a
  li a2, \b
  \op a0, a1, a2
  CHECK_EQ a0, \exp
.endm

.macro TEST_RI n, op, exp, a, imm
  CASE \n
  li a1, \a
  \op a0, a1, \imm
  CHECK_EQ a0, \exp
.endm

/* rd == rs1 */
.macro TEST_RR_SRC1_DEST n, op, exp, a, b
  CASE \n
  li a1, \a
  li a2, \b
  \op a1, a1, a2
  CHECK_EQ a1, \exp
.endm

/* rd == rs2 */
.macro TEST_RR_SRC2_DEST n, op, exp, a, b
  CASE \n
  li a1, \a
  li a2, \b
  \op a2, a1, a2
  CHECK_EQ a2, \exp
.endm

/* rd == rs1 == rs2 */
.macro TEST_RR_SRC12_DEST n, op, exp, a
  CASE \n
  li a1, \a
  \op a1, a1, a1
  CHECK_EQ a1, \exp
.endm

/* rd = x0 must stay zero */
.macro TEST_RR_ZERO_DEST n, op, a, b
  CASE \n
  li a1, \a
  li a2, \b
  \op x0, a1, a2
  CHECK_EQ x0, 0
.endm

/* ---- floating point (operands fa1, fa2, fa3 from bit patterns; result fa0 or a0) -------- */

/* Double result: \insn is the whole instruction, e.g. `fadd.d fa0, fa1, fa2, rtz`.
   Checks the 64-bit result pattern and the fflags accrued by that instruction alone. */
.macro TEST_FD n, flags, exp, a, b, c, insn:vararg
  CASE \n
  li t0, \a
  fmv.d.x fa1, t0
  li t0, \b
  fmv.d.x fa2, t0
  li t0, \c
  fmv.d.x fa3, t0
  fsflags x0
  \insn
  frflags t1
  fmv.x.d a0, fa0
  CHECK_EQ a0, \exp
  CHECK_EQ t1, \flags
.endm

/* Single result; operands are 32-bit patterns (NaN-boxed on load), the result is checked as a
   full 64-bit register, i.e. it must be NaN-boxed: 0xffffffff_<exp>. */
.macro TEST_FS n, flags, exp, a, b, c, insn:vararg
  CASE \n
  li t0, \a
  fmv.w.x fa1, t0
  li t0, \b
  fmv.w.x fa2, t0
  li t0, \c
  fmv.w.x fa3, t0
  fsflags x0
  \insn
  frflags t1
  fmv.x.d a0, fa0
  CHECK_EQ a0, (0xffffffff00000000 | (\exp))
  CHECK_EQ t1, \flags
.endm

/* Integer result in a0 from double operands in fa1, fa2. */
.macro TEST_FD_INT n, flags, exp, a, b, insn:vararg
  CASE \n
  li t0, \a
  fmv.d.x fa1, t0
  li t0, \b
  fmv.d.x fa2, t0
  fsflags x0
  \insn
  frflags t1
  CHECK_EQ a0, \exp
  CHECK_EQ t1, \flags
.endm

/* Integer result in a0 from single operands in fa1, fa2. */
.macro TEST_FS_INT n, flags, exp, a, b, insn:vararg
  CASE \n
  li t0, \a
  fmv.w.x fa1, t0
  li t0, \b
  fmv.w.x fa2, t0
  fsflags x0
  \insn
  frflags t1
  CHECK_EQ a0, \exp
  CHECK_EQ t1, \flags
.endm

/* Double result in fa0 from an integer operand in a1. */
.macro TEST_INT_FD n, flags, exp, a, insn:vararg
  CASE \n
  li a1, \a
  fsflags x0
  \insn
  frflags t1
  fmv.x.d a0, fa0
  CHECK_EQ a0, \exp
  CHECK_EQ t1, \flags
.endm

/* Single result (checked NaN-boxed) from an integer operand in a1. */
.macro TEST_INT_FS n, flags, exp, a, insn:vararg
  CASE \n
  li a1, \a
  fsflags x0
  \insn
  frflags t1
  fmv.x.d a0, fa0
  CHECK_EQ a0, (0xffffffff00000000 | (\exp))
  CHECK_EQ t1, \flags
.endm

/* ---- traps ------------------------------------------------------------------------------- */

/* Announce n traps (exceptions or interrupts) before the code that takes them. */
.macro EXPECT_TRAPS n
  la t6, trap_rec
  li t5, \n
  sd t5, TR_EXPECT(t6)
.endm

/* Forget the last trap (cause = -1 sentinel) and announce one. */
.macro EXPECT_TRAP
  la t6, trap_rec
  li t5, 1
  sd t5, TR_EXPECT(t6)
  li t5, -1
  sd t5, TR_CAUSE(t6)
  sd zero, TR_TVAL(t6)
  sd zero, TR_EPC(t6)
.endm

/* all announced traps were taken */
.macro CHECK_NO_PENDING_EXPECT
  la t5, trap_rec
  ld t5, TR_EXPECT(t5)
  CHECK_EQ t5, 0
.endm

.macro CHECK_TRAP_CAUSE cause
  la t5, trap_rec
  ld t5, TR_CAUSE(t5)
  CHECK_EQ t5, \cause
.endm

.macro CHECK_TRAP_EPC label
  la t5, trap_rec
  ld t5, TR_EPC(t5)
  CHECK_ADDR t5, \label
.endm

.macro CHECK_TRAP_TVAL imm
  la t5, trap_rec
  ld t5, TR_TVAL(t5)
  CHECK_EQ t5, \imm
.endm

.macro CHECK_TRAP_TVAL_REG reg
  la t5, trap_rec
  ld t5, TR_TVAL(t5)
  CHECK_REQ t5, \reg
.endm

.macro CHECK_TRAP_MODE mode
  la t5, trap_rec
  ld t5, TR_MODE(t5)
  CHECK_EQ t5, \mode
.endm

/* cause, epc label and handling mode of the last trap, and nothing still expected */
.macro CHECK_TRAP cause, label, mode
  CHECK_NO_PENDING_EXPECT
  CHECK_TRAP_CAUSE \cause
  CHECK_TRAP_EPC \label
  CHECK_TRAP_MODE \mode
.endm

/* Expect one trap from the single instruction \insn (placed at a local label), check cause,
   epc and that it was taken in M. */
.macro TEST_TRAP_M n, cause, insn:vararg
  CASE \n
  EXPECT_TRAP
.Lt\@:
  \insn
  CHECK_TRAP \cause, .Lt\@, PRV_M
.endm

/* Branch to \label when running on QEMU with version <= \ver (0xMMmmpp), to accept a
   documented QEMU deviation from the manual (see README.md). Clobbers t5, t6. */
.macro IF_QEMU_UPTO ver, label
  la t6, qemu_version
  ld t6, 0(t6)
  beqz t6, .Lno\@
  li t5, \ver
  bgeu t5, t6, \label
.Lno\@:
.endm

/* ---- privilege changes ------------------------------------------------------------------ */

/* Run the code at \label in mode \mode (PRV_U or PRV_S) until it executes RETURN_TO_M. */
.macro RUN_IN_MODE mode, label
  la a0, \label
  li a1, \mode
  call enter_mode
.endm

/* Same, for code reached through the U alias of RAM (paging on, USER_BASE window). */
.macro RUN_IN_MODE_ALIAS mode, label
  la a0, \label
  li a1, USER_OFFSET
  add a0, a0, a1
  li a1, \mode
  call enter_mode
.endm

.macro RETURN_TO_M
  li a7, MAGIC_RETURN
  ecall
.endm

/* Inline form: IN_S (or IN_U, IN_U_ALIAS) <code> END_MODE runs <code> in that mode and comes
   back. Uses the local labels 8 and 9: <code> must not define them. */
.macro IN_S
  RUN_IN_MODE PRV_S, 8f
  j 9f
8:
.endm
.macro IN_U
  RUN_IN_MODE PRV_U, 8f
  j 9f
8:
.endm
.macro IN_U_ALIAS
  RUN_IN_MODE_ALIAS PRV_U, 8f
  j 9f
8:
.endm
.macro END_MODE
  RETURN_TO_M
9:
.endm

/* Fail from any mode (S/U code cannot always reach tohost). */
.macro FAIL_ANY_MODE
  li a7, MAGIC_FAIL
  ecall
.endm

/* For checks in S/U code: reg == imm, else FAIL_ANY_MODE */
.macro CHECK_EQ_ANY reg, imm
  li t6, \imm
  beq \reg, t6, .Lok\@
  FAIL_ANY_MODE
.Lok\@:
.endm

/* ---- paging ------------------------------------------------------------------------------ */

/* vm_init(mode): empty root table + identity 1 GiB page at 0x80000000 (S, RWXAD) and the U
   alias at USER_BASE (U, RWXAD). vm_map(va, pa, level, flags) -> a0 = address of the leaf PTE
   (level 0 = 4 KiB, 1 = 2 MiB, 2 = 1 GiB, 3 = 512 GiB), followed by sfence.vma. Both clobber
   a0-a3, t0-t6. Map before VM_ENABLE or at any time after (M mode is not translated). */
.macro VM_INIT mode
  li a0, \mode
  call vm_init
.endm

.macro VM_MAP va, pa, level, flags
  li a0, \va
  li a1, \pa
  li a2, \level
  li a3, \flags
  call vm_map
.endm

/* map va to the physical address of \label */
.macro VM_MAP_LABEL va, label, level, flags
  li a0, \va
  la a1, \label
  li a2, \level
  li a3, \flags
  call vm_map
.endm

.macro VM_ENABLE
  call vm_enable
.endm

.macro VM_DISABLE
  csrw satp, zero
  sfence.vma
.endm

/* ======================================================================================== */
/* reset code, handlers, helpers                                                            */
/* ======================================================================================== */

  .section .text.init, "ax", @progbits
  .option push
  .option norvc
  .globl _start
_start:
  /* until the real handler is installed, skip any trapping (4-byte) instruction, so that a
     machine without PMP or menvcfg still gets through the setup */
  la t0, early_trap
  csrw mtvec, t0
  /* one PMP entry granting RWX on everything to S and U (NAPOT, all ones) */
  li t0, -1
  csrw pmpaddr0, t0
  li t0, 0x1f
  csrw pmpcfg0, t0
  li x1, 0
  li x4, 0
  li x5, 0
  li x6, 0
  li x7, 0
  li x8, 0
  li x9, 0
  li x10, 0
  li x11, 0
  li x12, 0
  li x13, 0
  li x14, 0
  li x15, 0
  li x16, 0
  li x17, 0
  li x18, 0
  li x19, 0
  li x20, 0
  li x21, 0
  li x22, 0
  li x23, 0
  li x24, 0
  li x25, 0
  li x26, 0
  li x27, 0
  li x28, 0
  li x29, 0
  li x30, 0
  li x31, 0
  li t0, MSTATUS_FS_INITIAL
  csrw mstatus, t0
  csrwi fcsr, 0
  csrw medeleg, zero
  csrw mideleg, zero
  csrw mie, zero
  csrw mip, zero
  csrw satp, zero
  li t0, 7
  csrw mcounteren, t0
  csrw scounteren, t0
  /* no pending machine timer: mtimecmp = -1 */
  li t0, CLINT_MTIMECMP
  li t1, -1
  sd t1, 0(t0)
  li t0, CLINT_MSIP
  sw zero, 0(t0)
  la sp, stack_top
  la t0, m_save
  csrw mscratch, t0
  la t0, s_save
  csrw sscratch, t0
  la t0, s_trap_handler
  csrw stvec, t0
  la t0, m_trap_handler
  csrw mtvec, t0
  /* QEMU identifies itself with mvendorid = 0 and marchid = mimpid = its version
     (0x070216 for 7.2.22); remember that for the few documented QEMU deviations */
  csrr t0, mvendorid
  bnez t0, 1f
  csrr t0, marchid
  csrr t1, mimpid
  bne t0, t1, 1f
  li t1, 0x10000
  bltu t0, t1, 1f
  li t1, 0x100000
  bgeu t0, t1, 1f
  la t1, qemu_version
  sd t0, 0(t1)
1:
  li t0, 0
  li t1, 0
  li gp, 0
  j test_main

  .align 2
early_trap:
  csrr t6, mepc
  addi t6, t6, 4
  csrw mepc, t6
  mret
  .option pop

/* ---- M-mode trap handler ---------------------------------------------------------------- */
  .align 6
  .globl m_trap_handler
m_trap_handler:
  csrrw sp, mscratch, sp
  sd t0, 0(sp)
  sd t1, 8(sp)
  sd t2, 16(sp)
  sd t3, 24(sp)
  csrr t0, mcause
  bltz t0, 2f
  /* ecall with a magic a7: return to M / fail (not counted as a trap) */
  li t1, CAUSE_USER_ECALL
  beq t0, t1, 1f
  li t1, CAUSE_SUPERVISOR_ECALL
  beq t0, t1, 1f
  li t1, CAUSE_MACHINE_ECALL
  bne t0, t1, 2f
1:
  li t1, MAGIC_RETURN
  beq a7, t1, m_return_to_m
  li t1, MAGIC_FAIL
  beq a7, t1, fail
2:
  la t1, trap_rec
  sd t0, TR_CAUSE(t1)
  csrr t2, mepc
  sd t2, TR_EPC(t1)
  csrr t2, mtval
  sd t2, TR_TVAL(t1)
  csrr t2, mstatus
  sd t2, TR_STATUS(t1)
  li t2, PRV_M
  sd t2, TR_MODE(t1)
  ld t2, TR_COUNT(t1)
  andi t3, t2, 7
  slli t3, t3, 3
  add t3, t3, t1
  sd t0, TR_LOG(t3)
  addi t2, t2, 1
  sd t2, TR_COUNT(t1)
  ld t2, TR_EXPECT(t1)
  beqz t2, m_unexpected
  addi t2, t2, -1
  sd t2, TR_EXPECT(t1)
  bltz t0, m_interrupt
  /* fetch faults: the faulting pc holds nothing to skip; resume at ra */
  beqz t0, m_resume_ra
  li t1, CAUSE_FETCH_ACCESS
  beq t0, t1, m_resume_ra
  li t1, CAUSE_FETCH_PAGE_FAULT
  beq t0, t1, m_resume_ra
  /* skip the instruction: 2 or 4 bytes, read at mepc (through the trapped mode's
     translation when paging is on: MPRV with MPP = that mode, MXR for execute-only pages) */
  csrr t1, mepc
  csrr t3, satp
  beqz t3, 3f
  csrr t3, mstatus
  li t2, MSTATUS_MPRV | MSTATUS_MXR
  csrs mstatus, t2
  lhu t2, 0(t1)
  csrw mstatus, t3
  j 4f
3:
  lhu t2, 0(t1)
4:
  andi t2, t2, 3
  li t3, 3
  bne t2, t3, 5f
  addi t1, t1, 2
5:
  addi t1, t1, 2
  csrw mepc, t1
  j m_trap_ret
m_resume_ra:
  csrw mepc, ra
  j m_trap_ret
m_interrupt:
  andi t0, t0, 63
  li t1, 1
  sll t1, t1, t0
  csrc mie, t1
m_trap_ret:
  ld t0, 0(sp)
  ld t1, 8(sp)
  ld t2, 16(sp)
  ld t3, 24(sp)
  csrrw sp, mscratch, sp
  mret

m_unexpected:
  li t2, 1
  sd t2, TR_BAD(t1)
  j fail

m_return_to_m:
  ld t0, 0(sp)
  ld t1, 8(sp)
  ld t2, 16(sp)
  ld t3, 24(sp)
  csrrw sp, mscratch, sp
  la ra, m_ctx
  ld sp, 8(ra)
  ld s0, 16(ra)
  ld s1, 24(ra)
  ld s2, 32(ra)
  ld s3, 40(ra)
  ld s4, 48(ra)
  ld s5, 56(ra)
  ld s6, 64(ra)
  ld s7, 72(ra)
  ld s8, 80(ra)
  ld s9, 88(ra)
  ld s10, 96(ra)
  ld s11, 104(ra)
  ld tp, 112(ra)
  ld ra, 0(ra)
  li a7, 0                  /* so that a later plain ecall is not taken for a magic one */
  ret

/* enter_mode(a0 = pc, a1 = PRV_U/PRV_S): mret there; returns when that code does
   RETURN_TO_M. Clobbers a0, a1 (and a7 on the way back). */
  .globl enter_mode
enter_mode:
  csrw mepc, a0
  la a0, m_ctx
  sd ra, 0(a0)
  sd sp, 8(a0)
  sd s0, 16(a0)
  sd s1, 24(a0)
  sd s2, 32(a0)
  sd s3, 40(a0)
  sd s4, 48(a0)
  sd s5, 56(a0)
  sd s6, 64(a0)
  sd s7, 72(a0)
  sd s8, 80(a0)
  sd s9, 88(a0)
  sd s10, 96(a0)
  sd s11, 104(a0)
  sd tp, 112(a0)
  slli a1, a1, 11
  li a0, MSTATUS_MPP
  csrc mstatus, a0
  csrs mstatus, a1
  li a7, 0
  mret

/* ---- S-mode trap handler ---------------------------------------------------------------- */
  .align 6
  .globl s_trap_handler
s_trap_handler:
  csrrw sp, sscratch, sp
  sd t0, 0(sp)
  sd t1, 8(sp)
  sd t2, 16(sp)
  sd t3, 24(sp)
  csrr t0, scause
  bltz t0, 2f
  li t1, CAUSE_USER_ECALL
  bne t0, t1, 2f
  /* a magic ecall from U delegated to S: forward it to M */
  li t1, MAGIC_RETURN
  beq a7, t1, s_forward
  li t1, MAGIC_FAIL
  beq a7, t1, s_forward
2:
  la t1, trap_rec
  sd t0, TR_CAUSE(t1)
  csrr t2, sepc
  sd t2, TR_EPC(t1)
  csrr t2, stval
  sd t2, TR_TVAL(t1)
  csrr t2, sstatus
  sd t2, TR_STATUS(t1)
  li t2, PRV_S
  sd t2, TR_MODE(t1)
  ld t2, TR_COUNT(t1)
  andi t3, t2, 7
  slli t3, t3, 3
  add t3, t3, t1
  sd t0, TR_LOG(t3)
  addi t2, t2, 1
  sd t2, TR_COUNT(t1)
  ld t2, TR_EXPECT(t1)
  beqz t2, s_unexpected
  addi t2, t2, -1
  sd t2, TR_EXPECT(t1)
  bltz t0, s_interrupt
  beqz t0, s_resume_ra
  li t1, CAUSE_FETCH_ACCESS
  beq t0, t1, s_resume_ra
  li t1, CAUSE_FETCH_PAGE_FAULT
  beq t0, t1, s_resume_ra
  csrr t1, sepc
  csrr t3, sstatus
  li t2, MSTATUS_SUM | MSTATUS_MXR
  csrs sstatus, t2
  lhu t2, 0(t1)
  csrw sstatus, t3
  andi t2, t2, 3
  li t3, 3
  bne t2, t3, 5f
  addi t1, t1, 2
5:
  addi t1, t1, 2
  csrw sepc, t1
  j s_trap_ret
s_resume_ra:
  csrw sepc, ra
  j s_trap_ret
s_interrupt:
  andi t0, t0, 63
  li t1, 1
  sll t1, t1, t0
  csrc sie, t1
s_trap_ret:
  ld t0, 0(sp)
  ld t1, 8(sp)
  ld t2, 16(sp)
  ld t3, 24(sp)
  csrrw sp, sscratch, sp
  sret
s_unexpected:
  li t2, 1
  sd t2, TR_BAD(t1)
  li a7, MAGIC_FAIL
s_forward:
  ld t0, 0(sp)
  ld t1, 8(sp)
  ld t2, 16(sp)
  ld t3, 24(sp)
  csrrw sp, sscratch, sp
  ecall
1:
  j 1b

/* ---- exit ------------------------------------------------------------------------------- */
  .globl pass
pass:
  li t0, MSTATUS_MPRV
  csrc mstatus, t0
  fence
  li t0, 1
  la t1, tohost
  sd t0, 0(t1)
  la a0, msg_pass
  call uart_puts
  li t1, SIFIVE_TEST
  li t0, 0x5555
  sw t0, 0(t1)
1:
  wfi
  j 1b

  .globl fail
fail:
  li t0, MSTATUS_MPRV
  csrc mstatus, t0
  bnez gp, 1f
  li gp, SETUP_CASE
1:
  fence
  slli t0, gp, 1
  ori t0, t0, 1
  la t1, tohost
  sd t0, 0(t1)
  la sp, stack_top
  la a0, msg_fail
  call uart_puts
  mv a0, gp
  call uart_putdec
  la t0, trap_rec
  ld t0, TR_BAD(t0)
  beqz t0, 2f
  la a0, msg_unexp
  call uart_puts
  la t0, trap_rec
  ld a0, TR_CAUSE(t0)
  call uart_puthex
  la a0, msg_epc
  call uart_puts
  la t0, trap_rec
  ld a0, TR_EPC(t0)
  call uart_puthex
  la a0, msg_tval
  call uart_puts
  la t0, trap_rec
  ld a0, TR_TVAL(t0)
  call uart_puthex
  la a0, msg_mode
  call uart_puts
  la t0, trap_rec
  ld a0, TR_MODE(t0)
  call uart_putdec
  la a0, msg_rparen
  call uart_puts
2:
  la a0, msg_nl
  call uart_puts
  /* QEMU's exit status is the low 8 bits of the code: keep it non-zero */
  andi t0, gp, 0xff
  bnez t0, 3f
  li t0, 0xff
3:
  slli t0, t0, 16
  li t1, 0x3333
  or t0, t0, t1
  li t1, SIFIVE_TEST
  sw t0, 0(t1)
4:
  wfi
  j 4b

/* ---- UART output (16550 at UART0; polled, bounded wait) ---------------------------------- */
uart_putc:
  li t0, UART0
  li t2, 100000
1:
  lbu t1, 5(t0)
  andi t1, t1, 0x20
  bnez t1, 2f
  addi t2, t2, -1
  bnez t2, 1b
2:
  sb a0, 0(t0)
  ret

uart_puts:
  mv t3, ra
  mv t4, a0
1:
  lbu a0, 0(t4)
  beqz a0, 2f
  call uart_putc
  addi t4, t4, 1
  j 1b
2:
  mv ra, t3
  ret

/* decimal of a0 (unsigned) */
uart_putdec:
  mv t5, ra
  la t4, numbuf + 24
  sb zero, 0(t4)
  li t3, 10
1:
  addi t4, t4, -1
  remu t1, a0, t3
  addi t1, t1, '0'
  sb t1, 0(t4)
  divu a0, a0, t3
  bnez a0, 1b
  mv a0, t4
  call uart_puts
  mv ra, t5
  ret

/* 0x + 16 hex digits of a0 */
uart_puthex:
  mv t5, ra
  la t4, numbuf
  li t1, '0'
  sb t1, 0(t4)
  li t1, 'x'
  sb t1, 1(t4)
  li t2, 60
  addi t4, t4, 2
1:
  srl t1, a0, t2
  andi t1, t1, 15
  li t3, 10
  blt t1, t3, 2f
  addi t1, t1, 'a' - 10 - '0'
2:
  addi t1, t1, '0'
  sb t1, 0(t4)
  addi t4, t4, 1
  addi t2, t2, -4
  bgez t2, 1b
  sb zero, 0(t4)
  la a0, numbuf
  call uart_puts
  mv ra, t5
  ret

/* ---- page tables -------------------------------------------------------------------------- */
  .globl vm_init
vm_init:
  mv t6, ra
  la t0, vm_state
  la t1, vm_pool
  sd t1, 0(t0)          /* root */
  li t2, 4096
  add t2, t1, t2
  sd t2, 8(t0)          /* next free page */
  addi t2, a0, -5       /* 8 (Sv39) -> 3 levels, 9 (Sv48) -> 4 */
  sd t2, 16(t0)
  sd a0, 24(t0)         /* satp mode */
  li t2, 512
1:
  sd zero, 0(t1)
  addi t1, t1, 8
  addi t2, t2, -1
  bnez t2, 1b
  li a0, 0x80000000
  li a1, 0x80000000
  li a2, 2
  li a3, PTE_LEAF_ALL
  call vm_map
  li a0, USER_BASE
  li a1, 0x80000000
  li a2, 2
  li a3, PTE_LEAF_ALL | PTE_U
  call vm_map
  mv ra, t6
  ret

/* vm_map(a0 = va, a1 = pa, a2 = level, a3 = PTE flags) -> a0 = address of the leaf PTE.
   Intermediate tables come from vm_pool. Clobbers t0-t5, a0. */
  .globl vm_map
vm_map:
  la t5, vm_state
  ld t0, 0(t5)          /* table */
  ld t1, 16(t5)
  addi t1, t1, -1       /* level being indexed */
1:
  slli t2, t1, 3
  add t2, t2, t1        /* 9 * level */
  addi t2, t2, 12
  srl t3, a0, t2
  andi t3, t3, 511
  slli t3, t3, 3
  add t3, t3, t0        /* PTE address */
  beq t1, a2, 3f
  ld t4, 0(t3)
  andi t2, t4, PTE_V
  bnez t2, 2f
  /* allocate a zeroed table */
  ld t4, 8(t5)
  li t2, 4096
  add t2, t4, t2
  sd t2, 8(t5)
  mv t2, t4
  li t0, 512
4:
  sd zero, 0(t2)
  addi t2, t2, 8
  addi t0, t0, -1
  bnez t0, 4b
  srli t4, t4, 12
  slli t4, t4, 10
  ori t4, t4, PTE_V
  sd t4, 0(t3)
2:
  srli t0, t4, 10
  slli t0, t0, 12
  addi t1, t1, -1
  j 1b
3:
  srli t4, a1, 12
  slli t4, t4, 10
  or t4, t4, a3
  sd t4, 0(t3)
  mv a0, t3
  sfence.vma
  ret

/* satp <- mode | root; sfence.vma */
  .globl vm_enable
vm_enable:
  la t0, vm_state
  ld t1, 0(t0)
  srli t1, t1, 12
  ld t2, 24(t0)
  slli t2, t2, 60
  or t1, t1, t2
  csrw satp, t1
  sfence.vma
  ret

/* ---- data ------------------------------------------------------------------------------- */
  .section .tohost, "aw", @progbits
  .align 6
  .globl tohost
tohost: .dword 0
  .align 6
  .globl fromhost
fromhost: .dword 0

  .data
  .align 3
  .globl trap_rec
trap_rec: .zero TR_SIZE
  .globl qemu_version
qemu_version: .dword 0
m_save: .zero 64
s_save: .zero 64
  .globl m_ctx
m_ctx: .zero 128
vm_state: .zero 32
numbuf: .zero 32
msg_pass: .asciz "PASS\n"
msg_fail: .asciz "FAIL: case "
msg_unexp: .asciz " (unexpected trap: cause="
msg_epc: .asciz " epc="
msg_tval: .asciz " tval="
msg_mode: .asciz " mode="
msg_rparen: .asciz ")"
msg_nl: .asciz "\n"

  .bss
  .align 12
  .globl vm_pool
vm_pool: .zero VM_POOL_PAGES * 4096
  .align 4
stack: .zero 8192
  .globl stack_top
stack_top:

  .text
#endif /* __ASSEMBLER__ */
#endif /* WASMVISOR_ISA_TEST_H */
