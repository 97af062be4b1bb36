/**
 * The devicetree of our board, laid out like the one `qemu-system-riscv64 -M virt -smp N`
 * generates (QEMU hw/riscv/virt.c create_fdt*), so that firmware and kernels built for QEMU find
 * the same nodes, addresses, interrupts and phandle wiring.
 *
 * Left out because we do not emulate them: flash@20000000, fw-cfg, platform-bus, pmu.
 * Nodes are emitted in the order QEMU's blob has them (libfdt prepends each new subnode, so
 * QEMU's order is the reverse of its creation order); Linux probes devices in that order, which
 * decides e.g. which virtio-mmio slot becomes /dev/vda.
 */
import { Fdt, type FdtNode } from './fdt.js';
import { VIRT } from './memory-map.js';
import { PLIC_MAX_HARTS } from './plic.js';

export interface VirtDtbConfig {
  /** Harts, each a cpu@N node with its own interrupt controller; default 1. */
  harts?: number;
  ramBase: number;
  ramSize: number;
  /** Kernel command line; omitted from /chosen when empty (as QEMU does). */
  bootargs?: string;
  initrd?: { start: number; end: number };
  /**
   * Multi-letter ISA extensions after rv64imafdc, in the order they should appear in
   * riscv,isa. Default: DEFAULT_ISA_EXTENSIONS, what our hart implements.
   */
  isaExtensions?: readonly string[];
  /** Which of the 8 virtio-mmio slots (0..7) get a node; default all 8, like QEMU. */
  virtioSlots?: readonly number[];
  /** Describe the PCIe ECAM host bridge (default true, like QEMU). */
  pci?: boolean;
  /** Describe the fw_cfg device (default true, like QEMU). */
  fwCfg?: boolean;
  /** Bytes for /chosen/rng-seed (QEMU passes 32 random bytes); omitted when absent. */
  rngSeed?: Uint8Array;
}

/**
 * What the core implements beyond rv64imafdc, in the canonical order (Z by category, then S), as
 * QEMU's rv64 lists its own: QEMU 7.2 also has h and zihpm, which our hart does not.
 */
export const DEFAULT_ISA_EXTENSIONS: readonly string[] = [
  'zicntr', 'zicsr', 'zifencei', 'zihintpause', 'zba', 'zbb', 'zbc', 'zbs', 'sstc',
]; // prettier-ignore

const ISA_BASE_LETTERS = ['i', 'm', 'a', 'f', 'd', 'c'];

/** Interrupt numbers on the hart-local controller (mip bits). */
const IRQ_M_SOFT = 3;
const IRQ_M_TIMER = 7;
const IRQ_S_EXT = 9;
const IRQ_M_EXT = 11;

/** PCI INTx pins A..D and the slots the interrupt-map spells out (the mask wraps the rest). */
const PCI_INTX_PINS = 4;
/** Size of one bus's ECAM window: 32 devices x 8 functions x 4 KiB. */
const ECAM_BUS_SIZE = 1 << 20;
/** RV64 high PCIe MMIO window: 16 GiB, aligned to its size above RAM (QEMU virt). */
const HIGH_PCIE_MMIO_SIZE = 16 * 2 ** 30;

/** Addresses as the two cells of a (#address-cells = 2, #size-cells = 2) reg entry. */
function reg2(base: number, size: number): number[] {
  return [...cells64(base), ...cells64(size)];
}

function cells64(v: number): [number, number] {
  if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`virt-dtb: bad address ${v}`);
  return [Math.floor(v / 2 ** 32), v % 2 ** 32];
}

const hexName = (base: number): string => base.toString(16);

export function buildVirtDtb(cfg: VirtDtbConfig): Uint8Array {
  const extensions = cfg.isaExtensions ?? DEFAULT_ISA_EXTENSIONS;
  for (const ext of extensions) {
    if (!/^[a-z][a-z0-9]*$/.test(ext)) throw new Error(`virt-dtb: bad ISA extension '${ext}'`);
  }
  const fdt = new Fdt();
  const root = fdt.root;
  root.setCells('#address-cells', [2]);
  root.setCells('#size-cells', [2]);
  root.setString('compatible', 'riscv-virtio');
  root.setString('model', 'riscv-virtio,qemu');

  // Phandles in QEMU's order: QEMU creates the harts last to first, each cpu node then its
  // interrupt controller (so with N harts cpu@N-1 = 1, its intc = 2, ..., cpu@0 = 2N-1, its
  // intc = 2N), then plic = 2N+1 and test = 2N+2. Nodes still appear in hart order.
  const chosen = root.addNode('chosen');
  const poweroff = root.addNode('poweroff');
  const reboot = root.addNode('reboot');
  if (cfg.fwCfg !== false) {
    const fwCfg = root.addNode(`fw-cfg@${hexName(VIRT.fwCfg.base)}`);
    fwCfg.setEmpty('dma-coherent');
    fwCfg.setCells('reg', reg2(VIRT.fwCfg.base, VIRT.fwCfg.size));
    fwCfg.setString('compatible', 'qemu,fw-cfg-mmio');
  }
  const memory = root.addNode(`memory@${hexName(cfg.ramBase)}`);
  const cpus = root.addNode('cpus');
  const soc = root.addNode('soc');

  memory.setString('device_type', 'memory');
  memory.setCells('reg', reg2(cfg.ramBase, cfg.ramSize));

  cpus.setCells('#address-cells', [1]);
  cpus.setCells('#size-cells', [0]);
  cpus.setU32('timebase-frequency', VIRT.timebaseHz);
  const harts = hartCount(cfg.harts);
  const cpuNodes = Array.from({ length: harts }, (_, h) => cpus.addNode(`cpu@${h}`));
  const cpuPhandles: number[] = [];
  /** Each hart's riscv,cpu-intc phandle, by hart id. */
  const intcs: number[] = [];
  for (let h = harts - 1; h >= 0; h--) {
    const cpu = cpuNodes[h];
    cpuPhandles[h] = cpu.phandle();
    cpu.setString('device_type', 'cpu');
    cpu.setU32('reg', h);
    cpu.setString('status', 'okay');
    cpu.setString('compatible', 'riscv');
    cpu.setString('riscv,isa', ['rv64imafdc', ...extensions].join('_'));
    // The newer binding (QEMU >= 8.2 emits both); Linux prefers it when present.
    cpu.setString('riscv,isa-base', 'rv64i');
    cpu.setStrings('riscv,isa-extensions', [...ISA_BASE_LETTERS, ...extensions]);
    cpu.setString('mmu-type', 'riscv,sv48');
    const intc = cpu.addNode('interrupt-controller');
    intc.setCells('#interrupt-cells', [1]);
    // Not in QEMU's tree; dtc warns without it and the binding allows it.
    intc.setCells('#address-cells', [0]);
    intc.setEmpty('interrupt-controller');
    intc.setString('compatible', 'riscv,cpu-intc');
    intcs[h] = intc.phandle();
  }
  const cluster = cpus.addNode('cpu-map').addNode('cluster0');
  for (let h = 0; h < harts; h++) cluster.addNode(`core${h}`).setU32('cpu', cpuPhandles[h]);

  soc.setCells('#address-cells', [2]);
  soc.setCells('#size-cells', [2]);
  soc.setString('compatible', 'simple-bus');
  soc.setEmpty('ranges');

  // QEMU creates the PLIC right after the cpus (phandle 2N+1) but its node ends up last but one.
  const plicPhandle = fdt.nextPhandle();
  const rtc = soc.addNode(`rtc@${hexName(VIRT.rtc.base)}`);
  rtc.setString('compatible', 'google,goldfish-rtc');
  rtc.setCells('reg', reg2(VIRT.rtc.base, VIRT.rtc.size));
  rtc.setU32('interrupt-parent', plicPhandle);
  rtc.setU32('interrupts', VIRT.rtc.irq);

  const serial = soc.addNode(`serial@${hexName(VIRT.uart0.base)}`);
  serial.setString('compatible', 'ns16550a');
  serial.setCells('reg', reg2(VIRT.uart0.base, VIRT.uart0.size));
  serial.setU32('clock-frequency', 3_686_400);
  serial.setU32('interrupt-parent', plicPhandle);
  serial.setU32('interrupts', VIRT.uart0.irq);

  const test = soc.addNode(`test@${hexName(VIRT.test.base)}`);
  const testPhandle = test.phandle();
  test.setStrings('compatible', ['sifive,test1', 'sifive,test0', 'syscon']);
  test.setCells('reg', reg2(VIRT.test.base, VIRT.test.size));

  if (cfg.pci ?? true) addPcie(soc, plicPhandle, cfg);

  const slots = [...new Set(cfg.virtioSlots ?? [0, 1, 2, 3, 4, 5, 6, 7])].sort((a, b) => b - a);
  for (const slot of slots) {
    if (!Number.isInteger(slot) || slot < 0 || slot >= VIRT.virtio.count) {
      throw new RangeError(`virt-dtb: no virtio-mmio slot ${slot}`);
    }
    const base = VIRT.virtio.base + slot * VIRT.virtio.size;
    const node = soc.addNode(`virtio_mmio@${hexName(base)}`);
    node.setString('compatible', 'virtio,mmio');
    node.setCells('reg', reg2(base, VIRT.virtio.size));
    node.setU32('interrupt-parent', plicPhandle);
    node.setU32('interrupts', VIRT.virtio.firstIrq + slot);
  }

  addPlic(soc, plicPhandle, intcs);

  const clint = soc.addNode(`clint@${hexName(VIRT.clint.base)}`);
  clint.setStrings('compatible', ['sifive,clint0', 'riscv,clint0']);
  clint.setCells('reg', reg2(VIRT.clint.base, VIRT.clint.size));
  // Per hart, in hart order: its msip (software) and mtimecmp (timer) interrupts.
  clint.setCells(
    'interrupts-extended',
    intcs.flatMap((intc) => [intc, IRQ_M_SOFT, intc, IRQ_M_TIMER]),
  );

  for (const [node, value] of [
    [poweroff, 0x5555],
    [reboot, 0x7777],
  ] as const) {
    node.setString('compatible', node === poweroff ? 'syscon-poweroff' : 'syscon-reboot');
    node.setU32('regmap', testPhandle);
    node.setU32('offset', 0);
    node.setU32('value', value);
  }

  chosen.setString('stdout-path', `/soc/serial@${hexName(VIRT.uart0.base)}`);
  if (cfg.bootargs) chosen.setString('bootargs', cfg.bootargs);
  if (cfg.initrd) {
    const { start, end } = cfg.initrd;
    if (!(end >= start)) throw new RangeError('virt-dtb: initrd end before start');
    // QEMU writes one cell; Linux reads either width, so widen only when needed.
    if (end <= 0xffff_ffff) {
      chosen.setU32('linux,initrd-start', start);
      chosen.setU32('linux,initrd-end', end);
    } else {
      chosen.setU64('linux,initrd-start', start);
      chosen.setU64('linux,initrd-end', end);
    }
  }
  if (cfg.rngSeed) chosen.setBytes('rng-seed', cfg.rngSeed);

  return fdt.build();
}

/** `harts` from the config: a whole number of at least 1 (the machine sets the upper bound). */
function hartCount(harts: number | undefined): number {
  const n = harts ?? 1;
  if (!Number.isInteger(n) || n < 1 || n > PLIC_MAX_HARTS) {
    throw new RangeError(`virt-dtb: bad hart count ${n}`);
  }
  return n;
}

function addPlic(soc: FdtNode, phandle: number, intcs: readonly number[]): void {
  const plic = soc.addNode(`plic@${hexName(VIRT.plic.base)}`);
  plic.setU32('phandle', phandle);
  plic.setCells('#interrupt-cells', [1]);
  plic.setCells('#address-cells', [0]);
  plic.setStrings('compatible', ['sifive,plic-1.0.0', 'riscv,plic0']);
  plic.setEmpty('interrupt-controller');
  // Context 2h = hart h M-mode external, context 2h+1 = hart h S-mode external (plic.ts).
  plic.setCells(
    'interrupts-extended',
    intcs.flatMap((intc) => [intc, IRQ_M_EXT, intc, IRQ_S_EXT]),
  );
  plic.setCells('reg', reg2(VIRT.plic.base, VIRT.plic.size));
  // Sources are 1..95 (0 means "none"); newer QEMU says 95, QEMU 7.2 said 96.
  plic.setU32('riscv,ndev', VIRT.plicSources - 1);
}

function addPcie(soc: FdtNode, plicPhandle: number, cfg: VirtDtbConfig): void {
  const ecam = VIRT.pcieEcam;
  const pci = soc.addNode(`pci@${hexName(ecam.base)}`);
  pci.setCells('#address-cells', [3]);
  pci.setCells('#interrupt-cells', [1]);
  pci.setCells('#size-cells', [2]);
  pci.setString('compatible', 'pci-host-ecam-generic');
  pci.setString('device_type', 'pci');
  pci.setU32('linux,pci-domain', 0);
  pci.setCells('bus-range', [0, ecam.size / ECAM_BUS_SIZE - 1]);
  pci.setEmpty('dma-coherent');
  pci.setCells('reg', reg2(ecam.base, ecam.size));

  // High MMIO window: first 16 GiB-aligned address at or above the end of RAM.
  const ramEnd = cfg.ramBase + cfg.ramSize;
  const highBase = Math.ceil(ramEnd / HIGH_PCIE_MMIO_SIZE) * HIGH_PCIE_MMIO_SIZE;
  // Each entry: PCI address (3 cells: space code, 64-bit address), CPU address (2), size (2).
  const SPACE_IO = 0x0100_0000;
  const SPACE_MEM32 = 0x0200_0000;
  const SPACE_MEM64 = 0x0300_0000;
  pci.setCells('ranges', [
    SPACE_IO,
    ...cells64(0),
    ...cells64(VIRT.pciePio.base),
    ...cells64(VIRT.pciePio.size),
    SPACE_MEM32,
    ...cells64(VIRT.pcieMmio.base),
    ...cells64(VIRT.pcieMmio.base),
    ...cells64(VIRT.pcieMmio.size),
    SPACE_MEM64,
    ...cells64(highBase),
    ...cells64(highBase),
    ...cells64(HIGH_PCIE_MMIO_SIZE),
  ]);

  // Standard INTx swizzle: device d, pin p (1..4) -> PLIC 32 + (d + p - 1) % 4. Four devices
  // are enough: the mask keeps only the low two bits of the device number.
  const map: number[] = [];
  for (let dev = 0; dev < PCI_INTX_PINS; dev++) {
    for (let pin = 1; pin <= PCI_INTX_PINS; pin++) {
      const devfn = dev << 3;
      map.push(devfn << 8, 0, 0, pin, plicPhandle);
      map.push(VIRT.pcieFirstIrq + ((dev + pin - 1) % PCI_INTX_PINS));
    }
  }
  pci.setCells('interrupt-map', map);
  pci.setCells('interrupt-map-mask', [0x1800, 0, 0, 7]);
}
