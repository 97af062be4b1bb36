/**
 * The 82540EM's serial EEPROM (64 × 16-bit words, Microwire), read by Linux's e1000 driver by
 * bit-banging EECD (SK clock, CS select, DI in, DO out) and optionally through EERD.
 *
 * Contents: MAC address in words 0..2, PCI IDs in 0x0B..0x0E, and word 0x3F chosen so the
 * words sum to 0xBABA (the checksum the driver verifies before it trusts the MAC).
 *
 * Microwire read: the driver raises CS, clocks in the start bit and READ opcode (1, 1, 0) and a
 * 6-bit address on DI (latched on SK's rising edge), then clocks out 16 data bits per word on
 * DO, MSB first, each valid after a rising edge; dropping CS ends the command.
 */
import { EECD_CS, EECD_DI, EECD_DO, EECD_SK } from './regs.js';

export const EEPROM_WORDS = 64;
const ADDR_BITS = 6;
const OPCODE_BITS = 3;
const OP_READ = 0b110;
export const EEPROM_CHECKSUM_SUM = 0xbaba;

export interface EepromState {
  words: number[];
  bitsIn: number;
  shiftIn: number;
  reading: boolean;
  addr: number;
  bitOut: number;
  lastSk: boolean;
}

export class Eeprom {
  readonly words = new Uint16Array(EEPROM_WORDS);
  private bitsIn = 0;
  private shiftIn = 0;
  private reading = false;
  private addr = 0;
  private bitOut = -1;
  private lastSk = false;

  constructor(
    mac: Uint8Array,
    ids: { vendor: number; device: number; subVendor: number; sub: number },
  ) {
    const w = this.words;
    for (let i = 0; i < 3; i++) w[i] = mac[2 * i] | (mac[2 * i + 1] << 8);
    w[0x04] = 0xffff; // LED settings: "use the default"
    w[0x0a] = 0x6400; // init control 1: (values Linux ignores; fixed for a stable checksum)
    w[0x0b] = ids.sub;
    w[0x0c] = ids.subVendor;
    w[0x0d] = ids.device;
    w[0x0e] = ids.vendor;
    w[0x0f] = 0x3000; // init control 2: pause and asymmetric pause advertised
    let sum = 0;
    for (let i = 0; i < EEPROM_WORDS - 1; i++) sum += w[i];
    w[EEPROM_WORDS - 1] = (EEPROM_CHECKSUM_SUM - sum) & 0xffff;
  }

  /** The DO bit as EECD shows it now. */
  get dataOut(): number {
    if (!this.reading || this.bitOut < 0) return 0;
    const word = this.words[(this.addr + (this.bitOut >> 4)) % EEPROM_WORDS];
    return (word >> (15 - (this.bitOut & 15))) & 1 ? EECD_DO : 0;
  }

  /** The driver wrote EECD: follow CS, the clock edge and DI. */
  write(eecd: number): void {
    const sk = (eecd & EECD_SK) !== 0;
    if (!(eecd & EECD_CS)) {
      this.bitsIn = this.shiftIn = 0;
      this.reading = false;
      this.bitOut = -1;
      this.lastSk = sk;
      return;
    }
    const rising = sk && !this.lastSk;
    this.lastSk = sk;
    if (!rising) return;
    if (this.reading) {
      // Sequential read: the address keeps counting past the first word, bounded by the wrap.
      this.bitOut = (this.bitOut + 1) % (EEPROM_WORDS * 16);
      return;
    }
    if (this.bitsIn >= OPCODE_BITS + ADDR_BITS) return; // writes/erases are not supported
    this.shiftIn = (this.shiftIn << 1) | (eecd & EECD_DI ? 1 : 0);
    this.bitsIn++;
    if (this.bitsIn === OPCODE_BITS + ADDR_BITS && this.shiftIn >> ADDR_BITS === OP_READ) {
      this.reading = true;
      this.addr = this.shiftIn & (EEPROM_WORDS - 1);
      this.bitOut = -1;
    }
  }

  /** EERD: one word by address (out of range: 0). */
  word(addr: number): number {
    return addr < EEPROM_WORDS ? this.words[addr] : 0;
  }

  saveState(): EepromState {
    return {
      words: Array.from(this.words),
      bitsIn: this.bitsIn,
      shiftIn: this.shiftIn,
      reading: this.reading,
      addr: this.addr,
      bitOut: this.bitOut,
      lastSk: this.lastSk,
    };
  }

  restoreState(s: EepromState): void {
    this.words.set(s.words.slice(0, EEPROM_WORDS));
    this.bitsIn = s.bitsIn;
    this.shiftIn = s.shiftIn;
    this.reading = s.reading;
    this.addr = s.addr;
    this.bitOut = s.bitOut;
    this.lastSk = s.lastSk;
  }
}
