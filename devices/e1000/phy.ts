/**
 * The 82540EM's internal PHY (Marvell 88E1011-compatible, MDIO address 1), reached through
 * MDIC. What Linux's e1000 driver needs: the PHY ID it matches (0x01410C20), reset and
 * autonegotiation restart that complete at once, and a status register whose link bit follows
 * the carrier, so `e1000_check_for_link` sees cables plugged and pulled.
 */
export const PHY_ADDR = 1;

const PHY_CTRL = 0;
const PHY_STATUS = 1;
const PHY_ID1 = 2;
const PHY_ID2 = 3;

const CTRL_RESET = 0x8000;
const CTRL_RESTART_AN = 0x0200;
const STATUS_LINK = 0x0004;
const STATUS_AN_COMPLETE = 0x0020;
/** Capabilities (10/100 half/full, extended status, preamble suppression, AN ability, ext regs). */
const STATUS_BASE = 0x7949;

/** Registers read-only to the driver. */
const READ_ONLY = new Set([PHY_STATUS, PHY_ID1, PHY_ID2, 5, 6, 10, 15, 17]);

function defaults(): Uint16Array {
  const r = new Uint16Array(32);
  r[PHY_CTRL] = 0x1140; // autoneg enabled, full duplex, 1000 Mb/s
  r[PHY_STATUS] = STATUS_BASE;
  r[PHY_ID1] = 0x0141;
  r[PHY_ID2] = 0x0c20;
  r[4] = 0x0de1; // autoneg advertisement
  // Link partner ability as QEMU's e1000 has it once autonegotiation is done: 10/100 half and
  // full, acknowledge, no pause abilities, so Linux's e1000 resolves flow control to
  // receive-only ("Flow Control: RX"), as under QEMU (no pause frame is ever sent either way).
  r[5] = 0x41e0;
  r[6] = 0x000f; // autoneg expansion
  r[9] = 0x0e00; // 1000BASE-T control
  r[10] = 0x3c00; // 1000BASE-T status: partner 1000 full/half, receivers OK
  r[15] = 0x3000; // extended status: 1000BASE-T full/half
  r[16] = 0x0360; // 88E1011 PHY specific control
  r[17] = 0xac00; // PHY specific status: 1000 Mb/s, full duplex, resolved, link
  r[20] = 0x0c60; // extended PHY specific control
  return r;
}

export class Phy {
  readonly regs = defaults();
  private link = true;

  setLink(up: boolean): void {
    this.link = up;
    this.updateStatus();
  }

  read(reg: number): number {
    return this.regs[reg & 31];
  }

  write(reg: number, value: number): void {
    reg &= 31;
    if (READ_ONLY.has(reg)) return;
    if (reg === PHY_CTRL) {
      if (value & CTRL_RESET) {
        this.regs.set(defaults().subarray(4), 4); // configuration back to defaults; IDs stay
        value &= ~CTRL_RESET;
      }
      // Autonegotiation "completes" at once: there is no wire to negotiate over.
      value &= ~CTRL_RESTART_AN;
    }
    this.regs[reg] = value;
    this.updateStatus();
  }

  reset(): void {
    this.regs.set(defaults());
    this.updateStatus();
  }

  private updateStatus(): void {
    this.regs[PHY_STATUS] = this.link
      ? STATUS_BASE | STATUS_LINK | STATUS_AN_COMPLETE
      : STATUS_BASE;
    this.regs[17] = this.link ? 0xac00 : 0x8000;
  }

  saveState(): { regs: number[]; link: boolean } {
    return { regs: Array.from(this.regs), link: this.link };
  }

  restoreState(s: { regs: number[]; link: boolean }): void {
    this.regs.set(s.regs.slice(0, 32));
    this.link = s.link;
  }
}
