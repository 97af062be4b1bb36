/**
 * Puts firmware, kernel, initrd and device tree into guest RAM and writes the reset stub into
 * the boot ROM, following what QEMU's virt board does for
 * `-bios fw_dynamic.bin -kernel Image -initrd X -append Y` (hw/riscv/boot.c):
 *
 * - firmware at the RAM base (an ELF goes where its segments say);
 * - kernel at the first 2 MiB boundary after the firmware (0x8020_0000 for OpenSBI); its
 *   footprint is the Image header's image_size, so nothing lands on its bss;
 * - initrd at kernel + min(RAM / 2, 128 MiB) (riscv_load_initrd), or just past the kernel's
 *   footprint if that is further; if it does not fit there below the device tree, it goes
 *   right under the device tree instead (QEMU would fail or overlap);
 * - device tree at the top of RAM, but below 3 GiB when RAM starts below 3 GiB, aligned down
 *   to 2 MiB (riscv_load_fdt), so 32-bit firmware could still reach it;
 * - boot ROM at 0x1000: a0 = mhartid, a1 = DTB address, a2 = fw_dynamic_info, jump to the
 *   firmware. fw_jump ignores a2, so the same stub serves both.
 *
 * With several harts every one of them starts at the stub, as on QEMU, and enters the firmware
 * with its own id in a0 and the same DTB and fw_dynamic_info. boot_hart = 0 there makes hart 0
 * OpenSBI's boot hart without its relocation lottery; the others spin until it has set up
 * (fw_base.S), then sleep in WFI with mie.MSIE set until an IPI (a CLINT msip write) says the
 * cold boot is done, and again until the kernel starts them through SBI HSM hart_start.
 */
import { BootError } from './boot-error.js';
import { describeSize, inspectBootImage, lowest, type BootImage } from './boot-image.js';
import { VIRT } from './memory-map.js';
import { addi, auipc, csrr, CSR_MHARTID, jr, ld, REG } from './rv-encode.js';

export { BootError } from './boot-error.js';

const MiB = 2 ** 20;
const GiB = 2 ** 30;
/** RV64 kernels must start 2 MiB-aligned (a PMD). */
const KERNEL_ALIGN = 2 * MiB;
const FDT_ALIGN = 2 * MiB;
const PAGE = 4096;

/** OpenSBI's struct fw_dynamic_info (include/sbi/fw_dynamic.h), every field an unsigned long. */
const FW_DYNAMIC_INFO_MAGIC = 0x4942534f; // "OSBI"
const FW_DYNAMIC_INFO_VERSION = 2;
const FW_DYNAMIC_INFO_NEXT_MODE_S = 1;
/** Reset stub layout: 6 instructions, then two dwords, then fw_dynamic_info. */
const STUB_START_ADDR = 24;
const STUB_FDT_ADDR = 32;
const STUB_FW_DYNAMIC_INFO = 40;
const FW_DYNAMIC_INFO_SIZE = 6 * 8;

/** What the device tree must describe; shaped to spread into buildVirtDtb's config. */
export interface BootLayout {
  ramBase: number;
  ramSize: number;
  bootargs: string;
  initrd?: { start: number; end: number };
}

export interface BootFiles {
  /** Guest RAM; index 0 is physical `ramBase`. */
  ram: Uint8Array;
  ramBase: number;
  /** Boot ROM; index 0 is physical 0x1000. */
  rom: Uint8Array;
  firmware: Uint8Array;
  kernel?: Uint8Array;
  initrd?: Uint8Array;
  bootargs?: string;
  /** Builds the DTB for the final layout (e.g. `(l) => buildVirtDtb({ ...cfg, ...l })`). */
  dtbFor: (layout: BootLayout) => Uint8Array;
  /** File names for error messages. */
  names?: { firmware?: string; kernel?: string; initrd?: string };
}

export interface BootInfo {
  /** Where the hart starts: the reset stub in the boot ROM. */
  entry: number;
  firmwareAddr: number;
  firmwareEnd: number;
  /** Where the stub jumps: the firmware's entry. */
  firmwareEntry: number;
  /** Kernel load address, also fw_dynamic_info.next_addr (0 there when there is no kernel). */
  kernelAddr?: number;
  kernelEnd?: number;
  initrdStart?: number;
  initrdEnd?: number;
  dtbAddr: number;
  dtbSize: number;
}

interface Span {
  start: number;
  end: number;
  what: string;
}

const hex = (n: number): string => '0x' + n.toString(16);
const alignUp = (n: number, a: number): number => Math.ceil(n / a) * a;
const alignDown = (n: number, a: number): number => Math.floor(n / a) * a;

/** Physical address where QEMU puts a device tree of `size` bytes. */
export function fdtAddress(ramBase: number, ramSize: number, size: number): number {
  const ramEnd = ramBase + ramSize;
  const top = ramBase < 3 * GiB ? Math.min(ramEnd, 3 * GiB) : ramEnd;
  return alignDown(top - size, FDT_ALIGN);
}

export function loadBoot(f: BootFiles): BootInfo {
  const names = {
    firmware: f.names?.firmware ?? 'firmware',
    kernel: f.names?.kernel ?? 'kernel',
    initrd: f.names?.initrd ?? 'initrd',
  };
  const ramBase = f.ramBase;
  const ramSize = f.ram.length;
  const ramEnd = ramBase + ramSize;
  const bootargs = f.bootargs ?? '';
  const used: Span[] = [];

  // Copies an image into RAM after checking it lies inside RAM and clear of what is there.
  const place = (name: string, what: string, addr: number, data: Uint8Array, memSize: number) => {
    const end = addr + memSize;
    if (addr < ramBase || end > ramEnd) {
      throw new BootError(
        name,
        `${what} needs ${hex(addr)}..${hex(end)} (${describeSize(memSize)}) but RAM is ` +
          `${hex(ramBase)}..${hex(ramEnd)} (${describeSize(ramSize)})`,
      );
    }
    for (const u of used) {
      if (addr < u.end && u.start < end) {
        throw new BootError(
          name,
          `${what} at ${hex(addr)}..${hex(end)} overlaps the ${u.what} at ` +
            `${hex(u.start)}..${hex(u.end)}`,
        );
      }
    }
    f.ram.set(data, addr - ramBase);
    f.ram.fill(0, addr - ramBase + data.length, end - ramBase);
    used.push({ start: addr, end, what });
  };
  const placeImage = (name: string, what: string, img: BootImage, at: number) => {
    if (img.kind === 'elf') {
      for (const s of img.segments) place(name, `${what} segment`, s.addr, s.data, s.memSize);
      return { start: lowest(img.segments), end: lowest(img.segments) + img.memSize };
    }
    place(name, what, at, img.bytes, img.memSize);
    return { start: at, end: at + img.memSize };
  };

  // Firmware.
  const fw = inspectBootImage(names.firmware, f.firmware, ramSize);
  const fwSpan = placeImage(names.firmware, 'firmware', fw, ramBase);
  const firmwareEntry = fw.entry ?? ramBase;
  if (firmwareEntry < ramBase || firmwareEntry >= ramEnd) {
    throw new BootError(names.firmware, `entry point ${hex(firmwareEntry)} is outside RAM`);
  }
  let lowEnd = fwSpan.end;

  // Kernel.
  let kernelAddr: number | undefined;
  let kernelEnd: number | undefined;
  if (f.kernel) {
    const k = inspectBootImage(names.kernel, f.kernel, ramSize);
    const span = placeImage(names.kernel, 'kernel', k, alignUp(fwSpan.end, KERNEL_ALIGN));
    kernelAddr = span.start;
    kernelEnd = span.end;
    lowEnd = Math.max(lowEnd, span.end);
  }

  // Initrd and device tree: the DTB's position depends on its size, which depends (barely) on
  // the initrd's addresses, so settle the initrd first and rebuild the DTB if it moves.
  let initrd: { start: number; end: number } | undefined;
  const buildDtb = () => f.dtbFor({ ramBase, ramSize, bootargs, ...(initrd ? { initrd } : {}) });
  let dtb: Uint8Array;
  if (f.initrd) {
    const size = f.initrd.length;
    const base = kernelAddr ?? alignUp(fwSpan.end, KERNEL_ALIGN);
    const qemuStart = Math.max(
      base + Math.min(Math.floor(ramSize / 2), 128 * MiB),
      alignUp(lowEnd, PAGE),
    );
    initrd = { start: qemuStart, end: qemuStart + size };
    dtb = buildDtb();
    const dtbAddr = fdtAddress(ramBase, ramSize, dtb.length);
    if (initrd.end > dtbAddr) {
      const start = alignDown(dtbAddr - size, PAGE);
      if (start < lowEnd) {
        throw new BootError(
          names.initrd,
          `${describeSize(size)} does not fit in RAM (${describeSize(ramSize)}) between ` +
            `the kernel (ends ${hex(lowEnd)}) and the device tree (${hex(dtbAddr)})`,
        );
      }
      initrd = { start, end: start + size };
      dtb = buildDtb();
    }
  } else {
    dtb = buildDtb();
  }
  const dtbAddr = fdtAddress(ramBase, ramSize, dtb.length);
  const belowDtb = initrd ? Math.max(lowEnd, initrd.end) : lowEnd;
  if (dtbAddr < belowDtb || dtbAddr < ramBase) {
    const culprit = initrd ? names.initrd : f.kernel ? names.kernel : names.firmware;
    throw new BootError(
      culprit,
      `leaves no room for the device tree at the top of RAM (${describeSize(ramSize)})`,
    );
  }
  if (initrd && f.initrd) place(names.initrd, 'initrd', initrd.start, f.initrd, f.initrd.length);
  place('device tree', 'device tree', dtbAddr, dtb, dtb.length);

  writeResetStub(f.rom, firmwareEntry, dtbAddr, kernelAddr ?? 0);

  return {
    entry: VIRT.bootRom.base,
    firmwareAddr: fwSpan.start,
    firmwareEnd: fwSpan.end,
    firmwareEntry,
    kernelAddr,
    kernelEnd,
    initrdStart: initrd?.start,
    initrdEnd: initrd?.end,
    dtbAddr,
    dtbSize: dtb.length,
  };
}

/**
 * The reset stub, QEMU's riscv_setup_rom_reset_vec for RV64:
 *
 *   auipc t0, 0            t0 = 0x1000
 *   addi  a2, t0, 40       a2 = &fw_dynamic_info
 *   csrr  a0, mhartid
 *   ld    a1, 32(t0)       a1 = DTB address
 *   ld    t0, 24(t0)       t0 = firmware entry
 *   jr    t0
 *   .dword firmware entry, DTB address
 *   fw_dynamic_info { magic, version, next_addr, next_mode, options, boot_hart }
 */
export function writeResetStub(
  rom: Uint8Array,
  firmwareEntry: number,
  dtbAddr: number,
  kernelAddr: number,
): void {
  const size = STUB_FW_DYNAMIC_INFO + FW_DYNAMIC_INFO_SIZE;
  if (rom.length < size) throw new RangeError(`boot ROM of ${rom.length} bytes < stub (${size})`);
  rom.fill(0);
  const v = new DataView(rom.buffer, rom.byteOffset, rom.byteLength);
  const code = [
    auipc(REG.t0, 0),
    addi(REG.a2, REG.t0, STUB_FW_DYNAMIC_INFO),
    csrr(REG.a0, CSR_MHARTID),
    ld(REG.a1, REG.t0, STUB_FDT_ADDR),
    ld(REG.t0, REG.t0, STUB_START_ADDR),
    jr(REG.t0),
  ];
  code.forEach((insn, i) => v.setUint32(i * 4, insn, true));
  const dword = (at: number, n: number | bigint) => v.setBigUint64(at, BigInt(n), true);
  dword(STUB_START_ADDR, firmwareEntry);
  dword(STUB_FDT_ADDR, dtbAddr);
  const info = STUB_FW_DYNAMIC_INFO;
  dword(info, FW_DYNAMIC_INFO_MAGIC);
  dword(info + 8, FW_DYNAMIC_INFO_VERSION);
  dword(info + 16, kernelAddr);
  dword(info + 24, FW_DYNAMIC_INFO_NEXT_MODE_S);
  dword(info + 32, 0); // options
  dword(info + 40, 0); // boot_hart: hart 0, as QEMU passes
}
