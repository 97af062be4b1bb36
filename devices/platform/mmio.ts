/**
 * The contract between the CPU core and TypeScript device models.
 *
 * A guest load or store outside RAM and the boot ROM leaves Wasm through one import and lands
 * here. Accesses are at most 4 bytes wide: the core splits 8-byte MMIO accesses into two 4-byte
 * accesses (low word first). Offsets are relative to the device's base address.
 */
export interface MmioDevice {
  /** Short name used in stats and logs ("uart0", "plic"). */
  readonly name: string;
  read(offset: number, size: 1 | 2 | 4): number;
  write(offset: number, size: 1 | 2 | 4, value: number): void;
}

/** Interrupt lines into one hart's mip, driven by the PLIC (hart h: contexts 2h and 2h+1). */
export interface HartIrqLines {
  /** Machine external interrupt pending (mip.MEIP): PLIC context 2h. */
  setMachineExternal(level: boolean): void;
  /** Supervisor external interrupt pending (mip.SEIP): PLIC context 2h+1. */
  setSupervisorExternal(level: boolean): void;
}

/** A device's connection to one PLIC source. */
export interface IrqLine {
  set(level: boolean): void;
}
