/** The QEMU `virt` board's memory map and interrupt numbers (see DESIGN.md). */
export const VIRT = {
  bootRom: { base: 0x0000_1000, size: 0x1000 },
  test: { base: 0x0010_0000, size: 0x1000 },
  rtc: { base: 0x0010_1000, size: 0x1000, irq: 11 },
  clint: { base: 0x0200_0000, size: 0x1_0000 },
  plic: { base: 0x0c00_0000, size: 0x60_0000 },
  uart0: { base: 0x1000_0000, size: 0x100, irq: 10 },
  fwCfg: { base: 0x1010_0000, size: 0x18 },
  virtio: { base: 0x1000_1000, size: 0x1000, count: 8, firstIrq: 1 },
  pcieEcam: { base: 0x3000_0000, size: 0x1000_0000 },
  pciePio: { base: 0x0300_0000, size: 0x1_0000 },
  pcieMmio: { base: 0x4000_0000, size: 0x4000_0000 },
  pcieFirstIrq: 32,
  ram: { base: 0x8000_0000 },
  /** CLINT mtime frequency, as QEMU virt advertises in /cpus/timebase-frequency. */
  timebaseHz: 10_000_000,
  plicSources: 96,
} as const;
