/* Sv48 paging: the shared cases of env/mmu-common.h through a 4-level walk, plus 512 GiB
   pages (aligned, misaligned, A/D), addresses valid in Sv48 but not in Sv39, and the Sv48
   canonical-address rule (bits 63:48 equal bit 47). */
#include "env/test.h"
#define VM_MODE SATP_MODE_SV48

TEST_BEGIN
#include "env/mmu-common.h"

  /* ---------------- Sv48 only ---------------- */
  CASE 100                          /* 512 GiB page: VA 0x80_0000_0000 -> PA 0 */
  VM_MAP 0x8000000000, 0, 3, PTE_RW_AD
  la a3, pg_b
  li t0, 0x8000000000
  add a3, a3, t0
  RUN_IN_MODE PRV_S, 1f
  j 2f
1:
  ld a2, 0(a3)
  RETURN_TO_M
2:
  CHECK_EQ a2, MARK_B
  CASE 101                          /* misaligned 512 GiB page: PPN[2:0] != 0 */
  VM_MAP 0x10000000000, 0x40000000, 3, PTE_RW_AD
  li a3, 0x10000000000 + 0x40000000
  li a2, 0x77
  EXPECT_TRAP
  RUN_IN_MODE PRV_S, 1f
  j 2f
1:
  ld a2, 0(a3)
  RETURN_TO_M
2:
  CHECK_TRAP CAUSE_LOAD_PAGE_FAULT, 1b, PRV_M
  CHECK_TRAP_TVAL_REG a3
  CHECK_EQ a2, 0x77
  CASE 102                          /* A and D on a 512 GiB page */
  VM_MAP 0x18000000000, 0, 3, PTE_V | PTE_R | PTE_W
  mv s10, a0
  CHECK_PTE s10, PTE_A | PTE_D, 0
  la a3, pg_b
  li t0, 0x18000000000
  add a3, a3, t0
  RUN_IN_MODE PRV_S, 1f
  j 2f
1:
  ld a2, 0(a3)
  RETURN_TO_M
2:
  CHECK_EQ a2, MARK_B
  CHECK_PTE s10, PTE_A | PTE_D, PTE_A
  RUN_IN_MODE PRV_S, 1f
  j 2f
1:
  sd a2, 8(a3)
  RETURN_TO_M
2:
  CHECK_PTE s10, PTE_A | PTE_D, PTE_A | PTE_D
  CASE 103                          /* bit 38 set: invalid in Sv39, fine in Sv48 */
  VM_MAP_LABEL 0x0000004000000000, pg_c, 0, PTE_RW_AD
  VM_S_OK 104, 0x0000004000000000, ld a2, 0(a3)
  CHECK_EQ a2, MARK_C
  VM_MAP_LABEL 0x00007ffffffff000, pg_d, 0, PTE_RW_AD   /* highest positive page */
  VM_S_OK 105, 0x00007ffffffff000, ld a2, 0(a3)
  CHECK_EQ a2, MARK_D
  VM_MAP_LABEL 0xffff800000000000, pg_b, 0, PTE_RW_AD   /* lowest negative page */
  VM_S_OK 106, 0xffff800000000000, ld a2, 0(a3)
  CHECK_EQ a2, MARK_B
  VM_S_FAULT 107, CAUSE_LOAD_PAGE_FAULT, 0x0000800000000000, ld a2, 0(a3)  /* not sign-ext. */
  VM_S_FAULT 108, CAUSE_STORE_PAGE_FAULT, 0x00ff800000000000, sd a3, 0(a3)
  VM_FETCH_FAULT 109, PRV_S, 0x0000800000000000
  CASE 110                          /* Sv39 is a supported MODE too */
  csrr s9, satp
  li a0, 0x00000fffffffffff
  and a0, s9, a0
  li a1, SATP_MODE_SV39 << 60
  or a0, a0, a1
  csrw satp, a0
  csrr a1, satp
  csrw satp, s9
  sfence.vma
  CHECK_REQ a1, a0

TEST_END
