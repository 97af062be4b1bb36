/* Sv39 paging: 3-level walks with 4 KiB / 2 MiB / 1 GiB pages, A/D updates, R/W/X, U/SUM/MXR,
   MPRV, malformed PTEs, sfence.vma, satp WARL (env/mmu-common.h), plus the Sv39 address
   range: bits 63:39 must equal bit 38. */
#include "env/test.h"
#define VM_MODE SATP_MODE_SV39

TEST_BEGIN
#include "env/mmu-common.h"

  /* ---------------- Sv39 only ---------------- */
  VM_S_FAULT 100, CAUSE_LOAD_PAGE_FAULT, 0x0000004000000000, ld a2, 0(a3)  /* not sign-extended */
  VM_S_FAULT 101, CAUSE_STORE_PAGE_FAULT, 0x0000008040000000, sd a3, 0(a3)
  VM_S_FAULT 102, CAUSE_LOAD_PAGE_FAULT, 0x8000000040000000, ld a2, 0(a3)
  VM_FETCH_FAULT 103, PRV_S, 0x0000004000000000
  CASE 104                          /* the lowest negative address: VPN[2] = 256 */
  VM_MAP 0xffffffc000000000, 0x80000000, 2, PTE_RW_AD
  la a3, pg_b
  li t0, 0xffffffc000000000 - 0x80000000
  add a3, a3, t0
  RUN_IN_MODE PRV_S, 1f
  j 2f
1:
  ld a2, 0(a3)
  RETURN_TO_M
2:
  CHECK_EQ a2, MARK_B
  CASE 105                          /* Sv48 is a supported MODE too */
  csrr s9, satp
  li a0, 0x00000fffffffffff
  and a0, s9, a0
  li a1, SATP_MODE_SV48 << 60
  or a0, a0, a1
  csrw satp, a0
  csrr a1, satp
  csrw satp, s9
  sfence.vma
  CHECK_REQ a1, a0

TEST_END
