/**
 * One virtual machine: the Wasm core, the virt board around it, the boot images, and the run
 * loop that executes the core in slices and yields to the event loop between them, sleeping
 * while the guest waits in WFI.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import type { JitStats } from './jit/jit.js';
import { Core, ExitReason, jitFromEnv, vmJit, type CoreImports, type HartInfo } from './core.js';
import { HostClock, rtcClock, sleepSync, TIMEBASE_HZ } from './clock.js';
import type { IcountConfig } from './time-config.js';
import { VirtBoard, type DeviceInfo } from '../../devices/platform/board.js';
import { loadBoot, type BootInfo } from '../../devices/platform/boot-loader.js';
import { buildVirtDtb } from '../../devices/platform/virt-dtb.js';
import { VIRT } from '../../devices/platform/memory-map.js';
import type { ShutdownEvent } from '../../devices/platform/sifive-test.js';
import { BootError } from '../../devices/platform/boot-loader.js';
import {
  effectiveAppend,
  type BalloonConfig,
  type FwCfgConfig,
  type NicConfig,
  type VmConfig,
} from './config.js';
import {
  FwCfg,
  FwCfgError,
  MAX_FILE_BYTES as MAX_FW_CFG_BYTES,
  type FwCfgFile,
} from '../../devices/platform/fw-cfg.js';
import { PciHost } from '../../devices/pci/host.js';
import { buildNics, startConfiguredCaptures, type Nic } from './nics.js';
import {
  loadBootImages,
  maybeGunzip,
  ImageError,
  type BootImages,
  type NamedImage,
} from './images.js';
import {
  mapVirtioSlots,
  RingProcessor,
  VirtioBlk,
  VirtioConsole,
  VirtioRng,
  type VirtioDevice,
} from '../../devices/virtio/index.js';
import {
  openDisk,
  BlockError,
  type BlockBackend,
  type Disk,
  type DiskStats,
  type SnapshotOverlays,
} from '../../devices/block/index.js';
import { basename, resolve } from 'node:path';
import { Virtio9p } from '../../devices/virtio/9p/device.js';
import type { VirtioMmioTransport } from '../../devices/virtio/mmio-transport.js';
import { VirtioPciTransport } from '../../devices/virtio/pci-transport.js';
import { VirtioBalloon, type BalloonInfo } from '../../devices/virtio/balloon/device.js';
import type { E1000 } from '../../devices/e1000/device.js';
import { hostPageReleaser, processRssBytes } from '../../devices/virtio/balloon/host-memory.js';

export type { NamedImage };

export interface MachineConfig {
  memMiB: number;
  /**
   * Harts (CPUs) the guest sees, 1..MAX_HARTS (QEMU's -smp); default 1. They run in turns on
   * this thread (wasm-core/cpu/smp.ts).
   */
  harts?: number;
  /** Absent only when `restoring`. */
  firmware?: NamedImage;
  kernel?: NamedImage;
  initrd?: NamedImage;
  bootargs: string;
  /** Instructions per slice between event-loop turns. */
  sliceInsns?: number;
  /**
   * Translate hot guest blocks to WebAssembly (main/vm/jit); default: WASMVISOR_JIT=1 or 0, else
   * off (a machine built from a VM definition, fromConfig, defaults to on: core.ts vmJit).
   */
  jit?: boolean;
  /** Opened disk back ends, one virtio-blk each, in order: the first is /dev/vda. */
  disks?: BlockBackend[];
  /** Which disks (by index) sit on PCIe (virtio-pci) rather than on a virtio-mmio slot. */
  disksOnPci?: boolean[];
  /** Which disks (by index) offer packed virtqueues; absent entries follow `virtioPacked`. */
  disksPacked?: (boolean | undefined)[];
  /**
   * Virtio devices offer packed virtqueues (VIRTIO_F_RING_PACKED) unless a disk or NIC says
   * otherwise; default: split rings only, as QEMU.
   */
  virtioPacked?: boolean;
  /** Add a virtio-rng (bytes from the host's CSPRNG). */
  rng?: boolean;
  /**
   * Which console consoleInput() feeds: the UART (ttyS0, default) or a virtio-console (hvc0,
   * added by this option). Output of both reaches onConsoleOutput: OpenSBI prints on the UART.
   */
  console?: 'ttyS0' | 'hvc0';
  /** Add a virtio-balloon with these settings (when enabled). */
  balloon?: BalloonConfig;
  /**
   * Host folders shared over virtio-9p: on virtio-mmio after every other device, or (`onPci`) on
   * PCIe after the NICs.
   */
  shares?: readonly { root: string; tag: string; readOnly?: boolean; onPci?: boolean }[];
  /**
   * Network cards: e1000s and virtio-pci on PCIe, virtio-nets on virtio-mmio after the other
   * devices.
   */
  nics?: NicConfig[];
  /**
   * The machine is built to take a saved state (main/vm/vmstate): nothing is loaded into RAM or
   * the boot ROM, and `boot` is undefined.
   */
  restoring?: boolean;
  /** Deterministic time from instructions retired (QEMU's -icount); absent: host time. */
  icount?: IcountConfig;
  /** The RTC's date at start (`YYYY-MM-DDTHH:MM:SSZ`); absent: the host's wall clock. */
  rtcBase?: string;
  /** The user's fw_cfg files ("opt/…"), beside the ones QEMU's virt always has. */
  fwCfgFiles?: FwCfgFile[];
  /**
   * A core made beforehand (Core.unbound: a live migration's destination receives RAM into
   * it); used when its RAM size and JIT fit this machine, else a new core is made.
   */
  core?: Core;
  log?: (msg: string) => void;
}

export type MachineExit =
  { kind: 'poweroff' } | { kind: 'reset' } | { kind: 'fail'; code: number } | { kind: 'stopped' };

export interface MachineStats {
  instret: bigint;
  seconds: number;
  mips: number;
  exits: Record<string, { reads: number; writes: number }>;
  interrupts: Record<string, number>;
  traps: bigint;
  /** Named counters of each virtio device (transport + device), keyed by device name. */
  virtio: Record<string, Record<string, number>>;
  /** The balloon's state and the guest's memory statistics, when the VM has a balloon. */
  balloon?: BalloonInfo;
  /**
   * Resident memory of the host process (VmRSS). For `wasmvisor run` that is this VM's; in a
   * worker thread it is the whole process's, every VM of the UI together.
   */
  hostRssBytes?: number;
  /** Each network card's counters (the NIC's and its port's net_*), by name. */
  nics?: Record<string, Record<string, number>>;
  /** What the block translator did, when it is on. */
  jit?: JitStats;
  /** Where this VM's host time went (see VirtMachine.timeDevices). */
  hostTime?: HostTime;
  /**
   * The guest's CPUs (harts, taking turns on this thread; wasm-core/cpu/smp.ts): each one's pc,
   * privilege and whether it waits in WFI, and how many times a turn passed between them.
   */
  harts: { cpus: HartInfo[]; switches: number };
  /** The guest's clock (mtime) in seconds, and how it runs when it counts instructions. */
  guestClock?: { seconds: number; icount?: IcountConfig };
  /** Each virtio-blk disk's scheduler and image counters, by device name (disks that keep them). */
  disks?: Record<string, DiskStats>;
}

/**
 * Host milliseconds since the VM was opened: `runMs` inside the core's slices (the guest's own
 * instructions, plus every device model an MMIO exit calls synchronously), wall-clock. While
 * VirtMachine.timeDevices is on, also `runCpuMs`, the process's CPU time over those slices (a
 * busy machine preempts the thread inside a slice: wall time then overstates it), and
 * `deviceMs`, the wall time inside MMIO exits (the bus and the device models; exits last
 * microseconds, so preemption hardly touches them). What the VM's thread spends outside slices
 * (back ends, host sockets and files, timers, completions) is its CPU time minus `runCpuMs`.
 */
export interface HostTime {
  runMs: number;
  runCpuMs: number;
  deviceMs: number;
  /** Slices run (turns of the run loop). */
  slices: number;
  /** Sleeps after a slice spent waiting for a key (POLL_IDLE_EXITS) or in a firmware delay loop. */
  pollIdleSleeps: number;
}

/** A VM definition or boot file the user must fix; the message says what and where. */
export class MachineConfigError extends Error {}

/** The consoles a machine can have: the UART (always) and the virtio-console (console: 'hvc0'). */
export type ConsoleStream = 'ttyS0' | 'hvc0';

export interface OpenHooks {
  /**
   * Wraps each opened disk before the device gets it (the worker interposes its live read-only
   * switch there); `index` is the disk's place in cfg.disks.
   */
  wrapDisk?(disk: Disk, index: number): BlockBackend;
  /** Keeps snapshot=on overlays from this opening to the next (the worker's resets). */
  overlays?: SnapshotOverlays;
  /** The passphrase typed for disk `index`, if it is encrypted and has no key file. */
  diskKey?(index: number): Uint8Array | undefined;
  /** The config's boot files, already read (preloadBootImages): not read again. */
  bootImages?: BootImages;
  /** Build the machine for a saved state (vmstate/): no boot files are read or loaded. */
  restoring?: boolean;
  /** A core made beforehand (MachineConfig.core: a live migration's, holding the RAM). */
  core?: Core;
}

const DEFAULT_SLICE = 300_000;

/** Most harts a machine can have (the core's per-hart areas, wasm-core/cpu/smp.ts). */
export const MAX_HARTS = 8;
/**
 * Longest WFI sleep before re-checking, so that a lost wake-up cannot hang the VM and the
 * balloon's statistics requests (whole seconds apart) go out on time. An idle Linux guest sets
 * its next timer up to ~500 ms ahead; a shorter cap only adds host wake-ups.
 */
const MAX_IDLE_MS = 500;
/** No device interrupt for this long: a WFI's last fraction of a millisecond blocks the thread. */
const IO_QUIET_MS = 100;
/**
 * A slice whose every MMIO exit was a read of the UART's LSR finding no input, at least this
 * many (one per 1,500 instructions of a default slice), looks like a firmware waiting for a key:
 * U-Boot's prompt (~2,000 such reads a slice), GRUB's menu and command line (~680, through
 * U-Boot's EFI console). They poll instead of WFI, which kept a host core busy (as under QEMU).
 * After POLL_IDLE_SLICES such slices in a row (a few ms of nothing else) the run loop sleeps
 * POLL_IDLE_MS after each, woken at once by input or a device interrupt; the guest's clock runs
 * on, so its countdowns keep their pace. The streak matters: GRUB loading over the network or
 * from disk also has whole slices of LSR reads (it looks for a key while U-Boot's timer-driven
 * EFI network and disk services catch up), each short; sleeping after every one of them made
 * its load 4× slower (bench/firmware-boot.ts).
 */
const POLL_IDLE_EXITS = 200;
const POLL_IDLE_SLICES = 8;
const POLL_IDLE_MS = 10;
/**
 * A slice with address translation off (firmware: Linux always pages) that read the clock at
 * least this many times and did nothing else but look for a key (no MMIO exit but empty LSR
 * reads) is a firmware delay loop: U-Boot's autoboot countdown spins in udelay() on the time
 * CSR (~9,400 reads a slice of 300,000 instructions) and looks for a key once per 10 ms. It
 * counts towards the same streak as a slice polling the UART; the sleep may end a delay up to
 * 10 ms late, which a delay allows. Its countdown went from a whole host core to ~17%.
 */
const SPIN_TIME_READS = 500;

export class VirtMachine {
  readonly core: Core;
  readonly board: VirtBoard;
  readonly clock = new HostClock();
  /** Where the boot files went; undefined for a machine built to take a saved state. */
  readonly boot: BootInfo | undefined;
  /** The eight virtio-mmio transports, by slot (slot 7 holds the first device). */
  readonly virtio: readonly VirtioMmioTransport[];
  /** The virtio-pci transports (disks with bus=pci, then NICs virtio-pci), on PCIe. */
  readonly virtioPci: readonly VirtioPciTransport[];
  /** The virtio-console the terminal is attached to (console: 'hvc0'). */
  private readonly hvc: VirtioConsole | undefined;
  /** The virtio-balloon (config balloon.enabled). */
  readonly balloon: VirtioBalloon | undefined;
  /** The shared folders (virtio-9p), in the definition's order. */
  readonly shares: readonly Virtio9p[];
  /** The PCIe host bridge (ECAM at 0x30000000); empty slots answer vendor ID 0xFFFF. */
  readonly pci: PciHost;
  /** QEMU's firmware configuration device (0x10100000), as on QEMU's virt. */
  readonly fwCfg: FwCfg;
  /** Network cards in config order: setLink / setBackend / startCapture on `port`. */
  readonly nics: readonly Nic[];
  /** The e1000s among them (their model state is saved apart from the PCIe host's). */
  readonly e1000s: readonly E1000[];
  /** Output of every console, merged (the CLI's terminal shows them all). */
  onConsoleOutput: ((bytes: Uint8Array) => void) | undefined;
  /** Output of each console on its own, for hosts that keep one scrollback per console. */
  onStreamOutput: ((stream: ConsoleStream, bytes: Uint8Array) => void) | undefined;

  private shutdown: ShutdownEvent | undefined;
  private stopRequested = false;
  private wake: (() => void) | undefined;
  /** When a device interrupt, console input or control last called wakeUp (performance.now). */
  private lastWakeUp = 0;
  private readonly slice: number;
  private startedAt = 0;
  /** instret when run() began: a VM resumed from a file starts with the saved count. */
  private instretAtStart = 0n;
  private running = false;
  /**
   * Time each MMIO exit (two clock reads, ~50 ns, more than an exit itself costs: off unless a
   * measurement asks for it, as bench/net.ts does).
   */
  timeDevices = false;
  private readonly hostTime: HostTime = {
    runMs: 0,
    runCpuMs: 0,
    deviceMs: 0,
    slices: 0,
    pollIdleSleeps: 0,
  };
  /** Slices in a row that only polled the UART for input (POLL_IDLE_EXITS) or the clock. */
  private pollIdleStreak = 0;
  /** Reads of the host clock by the core (the time CSR, mtime, timer checks). */
  private timeReads = 0;
  private pauseRequested = false;
  private resumeWaiter: (() => void) | undefined;
  /** Deterministic time's settings (`--icount`); undefined: the guest's time is host time. */
  private readonly icount: IcountConfig | undefined;

  /**
   * Builds a machine from a VM definition, reading its boot files. Unusable files throw
   * MachineConfigError with a message that names the file.
   */
  static fromConfig(
    cfg: VmConfig,
    log?: (msg: string) => void,
    disks?: BlockBackend[],
    bootImages?: BootImages,
    restoring = false,
    core?: Core,
  ): VirtMachine {
    if (cfg.disks.length !== (disks?.length ?? 0)) {
      // Opening an image is asynchronous; VirtMachine.open() does it before building.
      throw new MachineConfigError('disks must be opened first: use VirtMachine.open()');
    }
    try {
      const images = restoring
        ? {}
        : bootImages
          ? { ...bootImages, firmware: maybeGunzip(bootImages.firmware) }
          : loadBootImages(cfg);
      return new VirtMachine({
        memMiB: cfg.memMiB,
        ...(cfg.cpus !== undefined ? { harts: cfg.cpus } : {}),
        ...images,
        bootargs: effectiveAppend(cfg),
        rng: cfg.rng,
        console: cfg.console,
        balloon: cfg.balloon,
        nics: cfg.nics,
        // Relative folders are taken from where the VM starts, as disk paths are.
        shares: (cfg.shares ?? []).map((sh) => ({
          root: resolve(sh.path),
          tag: sh.tag,
          ...(sh.readOnly ? { readOnly: true } : {}),
          ...(sh.bus === 'pci' ? { onPci: true } : {}),
        })),
        jit: vmJit(cfg.jit),
        ...(cfg.icount ? { icount: cfg.icount } : {}),
        ...(cfg.rtcBase !== undefined ? { rtcBase: cfg.rtcBase } : {}),
        fwCfgFiles: loadFwCfgFiles(cfg.fwCfg ?? []),
        disks,
        disksOnPci: cfg.disks.map((d) => d.bus === 'pci'),
        disksPacked: cfg.disks.map((d) => d.packed),
        ...(cfg.virtioPacked ? { virtioPacked: true } : {}),
        restoring,
        ...(core ? { core } : {}),
        log,
      });
    } catch (e) {
      if (e instanceof ImageError || e instanceof BootError)
        throw new MachineConfigError(e.message);
      throw e;
    }
  }

  /**
   * Like fromConfig, but opens the config's disk images first (asynchronously). A disk that
   * cannot be opened throws MachineConfigError naming the file; disks opened so far are closed.
   */
  static async open(
    cfg: VmConfig,
    log?: (msg: string) => void,
    hooks: OpenHooks = {},
  ): Promise<VirtMachine> {
    const disks: BlockBackend[] = [];
    try {
      for (const d of cfg.disks) {
        const slot = disks.length;
        const key = hooks.diskKey?.(slot);
        const disk = await openDisk(d, {
          log,
          ...(key ? { key } : {}),
          ...(hooks.overlays ? { overlays: { keep: hooks.overlays, slot } } : {}),
        });
        disks.push(hooks.wrapDisk?.(disk, disks.length) ?? disk);
      }
      const vm = VirtMachine.fromConfig(
        cfg,
        log,
        disks,
        hooks.bootImages,
        hooks.restoring,
        hooks.core,
      );
      const append = hooks.restoring === true;
      await startConfiguredCaptures(vm.nics, cfg.nics ?? [], { append }).catch(async (e: Error) => {
        await vm.close();
        throw new MachineConfigError(e.message);
      });
      return vm;
    } catch (e) {
      await Promise.allSettled(disks.map((d) => d.close()));
      if (e instanceof BlockError) throw new MachineConfigError(e.message);
      throw e;
    }
  }

  /** Waits for outstanding disk requests and closes the disk back ends. */
  async close(): Promise<void> {
    const blks = this.blks();
    await Promise.allSettled(blks.map((b) => b.drain()));
    await Promise.allSettled(blks.map((b) => b.backend.close()));
    // Leave the switches and complete the captures.
    await Promise.allSettled(this.nics.map((n) => n.port.close()));
  }

  /** The virtio-blk disks, on either transport. */
  blks(): VirtioBlk[] {
    return [...this.virtio, ...this.virtioPci]
      .map((t) => t.device)
      .filter((d): d is VirtioBlk => d instanceof VirtioBlk);
  }

  /**
   * Brings the devices to a state that can be saved: waits until no disk request is in flight
   * and flushes every disk, so the images hold what the guest was told is written. Call it
   * while the machine is paused (no new requests start then).
   */
  async quiesce(): Promise<void> {
    const blks = this.blks();
    await Promise.all(blks.map((b) => b.drain()));
    await Promise.all(blks.filter((b) => !b.backend.readOnly).map((b) => b.backend.flush()));
    this.board.uart.flush();
  }

  /** A network card by name ("e1000-0", "virtio-net0") or index. */
  nic(which: string | number): Nic {
    const n =
      typeof which === 'number' ? this.nics[which] : this.nics.find((x) => x.name === which);
    if (!n) throw new MachineConfigError(`no network card ${String(which)}`);
    return n;
  }

  constructor(cfg: MachineConfig) {
    const ramSize = cfg.memMiB * 1024 * 1024;
    this.slice = cfg.sliceInsns ?? DEFAULT_SLICE;
    this.icount = cfg.icount;
    const harts = cfg.harts ?? 1;
    if (!Number.isInteger(harts) || harts < 1 || harts > MAX_HARTS) {
      throw new MachineConfigError(`CPUs: ${harts} is not a number from 1 to ${MAX_HARTS}`);
    }
    this.irqLines = new Array<number>(harts).fill(0);
    this.board = new VirtBoard({
      clock: rtcClock(cfg, () => this.core.time),
      // Hart h's PLIC contexts (2h M-mode, 2h+1 S-mode) drive that hart's MEIP / SEIP.
      harts: Array.from({ length: harts }, (_, hart) => ({
        setMachineExternal: (level: boolean) => this.setIrq(hart, 0, level),
        setSupervisorExternal: (level: boolean) => this.setIrq(hart, 1, level),
      })),
      onConsoleOutput: (bytes) => this.emitConsole('ttyS0', bytes),
      onShutdown: (e) => {
        this.shutdown = e;
        this.core.requestExit();
      },
      log: cfg.log,
    });
    const bus = this.board.bus;
    const imports: CoreImports = {
      mmioRead: (addr, size) => {
        const t = this.timeDevices ? performance.now() : 0;
        bus.fault = false;
        const v = bus.read(addr, size);
        if (bus.fault) core.busFault();
        if (t !== 0) this.hostTime.deviceMs += performance.now() - t;
        return v;
      },
      mmioWrite: (addr, size, value) => {
        const t = this.timeDevices ? performance.now() : 0;
        bus.fault = false;
        bus.write(addr, size, value);
        if (bus.fault) core.busFault();
        if (t !== 0) this.hostTime.deviceMs += performance.now() - t;
      },
      hostTicks: () => {
        this.timeReads++;
        return this.clock.ticks();
      },
    };
    const given = cfg.core;
    const fits =
      given?.awaitsImports === true &&
      given.ramSize === ramSize &&
      given.ramBase === VIRT.ram.base &&
      (given.jit !== undefined) === (cfg.jit ?? jitFromEnv() ?? false);
    if (fits) given.bindImports(imports);
    const core = fits ? given : new Core(VIRT.ram.base, ramSize, imports, { jit: cfg.jit });
    this.core = core;
    // `harts` was checked above, before the board got a PLIC context pair per hart.
    core.setHarts(harts);
    // A restored core brings its own clock mode with its state; set here, it is the same one.
    if (cfg.icount) core.setDeterministicTime(true, cfg.icount.shift);
    try {
      this.fwCfg = new FwCfg({ memory: core, cpus: harts, files: cfg.fwCfgFiles, log: cfg.log });
    } catch (e) {
      if (e instanceof FwCfgError) throw new MachineConfigError(e.message);
      throw e;
    }
    bus.map(VIRT.fwCfg.base, VIRT.fwCfg.size, this.fwCfg);
    this.pci = new PciHost({ bus, irq: (n) => this.board.plic.line(n), log: cfg.log });
    bus.map(VIRT.pcieEcam.base, VIRT.pcieEcam.size, this.pci);
    // One ring processor per core: its queue handles are shared by both transports.
    const rings = new RingProcessor(core);
    const virtioDevices: VirtioDevice[] = [];
    const virtioPci: VirtioPciTransport[] = [];
    /** The virtio-mmio devices that offer packed rings. */
    const packed = new Set<VirtioDevice>();
    const vmPacked = cfg.virtioPacked ?? false;
    (cfg.disks ?? []).forEach((backend, i) => {
      const blk = new VirtioBlk({
        backend,
        name: `virtio-blk${i}`,
        serial: basename(backend.name),
      });
      const blkPacked = cfg.disksPacked?.[i] ?? vmPacked;
      if (!cfg.disksOnPci?.[i]) {
        virtioDevices.push(blk);
        if (blkPacked) packed.add(blk);
        return;
      }
      // PCIe slots in config order, disks before NICs (as QEMU's -device order decides).
      const t = new VirtioPciTransport({ device: blk, rings, packed: blkPacked, log: cfg.log });
      this.pci.plug(this.pci.freeSlot(), t.pci);
      virtioPci.push(t);
    });
    if (cfg.console === 'hvc0') {
      this.hvc = new VirtioConsole();
      this.hvc.onOutput = (bytes) => this.emitConsole('hvc0', bytes);
      virtioDevices.push(this.hvc);
      if (vmPacked) packed.add(this.hvc);
    }
    if (cfg.rng) {
      const rng = new VirtioRng();
      virtioDevices.push(rng);
      if (vmPacked) packed.add(rng);
    }
    if (cfg.balloon?.enabled) {
      const r = hostPageReleaser();
      if (!r.releaser) cfg.log?.(`virtio-balloon0: memory not returned to host (${r.reason})`);
      this.balloon = new VirtioBalloon({
        ram: core.ram,
        ramBase: VIRT.ram.base,
        dirty: core.dirty,
        statsPeriodS: cfg.balloon.statsPeriodS,
        deflateOnOom: cfg.balloon.deflateOnOom,
        freePageReporting: cfg.balloon.freePageReporting,
        releaser: r.releaser,
        notReturnedReason: r.reason,
      });
      virtioDevices.push(this.balloon);
      if (vmPacked) packed.add(this.balloon);
    }
    const built = buildNics(cfg.nics ?? [], {
      pci: this.pci,
      memory: core,
      rings,
      packed: vmPacked,
      log: cfg.log,
    });
    this.nics = built.nics;
    this.e1000s = built.e1000s;
    virtioDevices.push(...built.virtio);
    for (const d of built.packedVirtio) packed.add(d);
    const sharesOnPci: VirtioPciTransport[] = [];
    this.shares = (cfg.shares ?? []).map(({ onPci, ...sh }, i) => {
      let d: Virtio9p;
      try {
        d = new Virtio9p({ ...sh, name: `virtio-9p${i}` });
      } catch (e) {
        throw new MachineConfigError((e as Error).message);
      }
      if (onPci) {
        const t = new VirtioPciTransport({ device: d, rings, packed: vmPacked, log: cfg.log });
        this.pci.plug(this.pci.freeSlot(), t.pci);
        sharesOnPci.push(t);
      } else {
        virtioDevices.push(d);
        if (vmPacked) packed.add(d);
      }
      return d;
    });
    this.virtioPci = [...virtioPci, ...built.virtioPci, ...sharesOnPci];
    if (virtioDevices.length > VIRT.virtio.count) {
      throw new MachineConfigError(
        `${virtioDevices.length} virtio-mmio devices (disks, console, rng, balloon, virtio NICs, ` +
          `shared folders) but the board has ${VIRT.virtio.count} slots: put disks, NICs or shared folders on PCIe (bus=pci, virtio-pci)`,
      );
    }
    this.virtio = mapVirtioSlots({
      bus,
      plic: this.board.plic,
      core,
      devices: virtioDevices,
      packed,
      rings,
      log: cfg.log,
    });
    if (cfg.restoring || !cfg.firmware) {
      if (!cfg.restoring) throw new MachineConfigError('no firmware');
      this.boot = undefined;
      return;
    }
    this.boot = loadBoot({
      ram: core.ram,
      ramBase: VIRT.ram.base,
      rom: core.rom,
      firmware: cfg.firmware.data,
      kernel: cfg.kernel?.data,
      initrd: cfg.initrd?.data,
      bootargs: cfg.bootargs,
      // All eight virtio-mmio slots are mapped (empty ones answer device ID 0), as in QEMU, and
      // so is the PCIe ECAM (an empty slot answers vendor ID 0xFFFF, so Linux skips it).
      dtbFor: (layout) =>
        buildVirtDtb({
          ...layout,
          harts,
          virtioSlots: [0, 1, 2, 3, 4, 5, 6, 7],
          pci: true,
          // 32 fresh random bytes each boot (a reset rebuilds the machine), as QEMU gives, so
          // the guest's RNG is seeded before any device is probed. Not under deterministic time:
          // there a run's randomness stays as reproducible as its clock.
          ...(cfg.icount ? {} : { rngSeed: randomBytes(32) }),
        }),
      names: { firmware: cfg.firmware.name, kernel: cfg.kernel?.name, initrd: cfg.initrd?.name },
    });
    core.pc = BigInt(this.boot.entry);
  }

  /** Per hart: the PLIC's outputs into it, bit 0 = M external, bit 1 = S external. */
  private readonly irqLines: number[];
  private setIrq(hart: number, bit: number, level: boolean): void {
    const lines = level ? this.irqLines[hart] | (1 << bit) : this.irqLines[hart] & ~(1 << bit);
    this.irqLines[hart] = lines;
    this.core?.setExternalIrq((lines & 1) !== 0, (lines & 2) !== 0, hart);
    if (level) this.wakeUp();
  }

  private emitConsole(stream: ConsoleStream, bytes: Uint8Array): void {
    this.onConsoleOutput?.(bytes);
    this.onStreamOutput?.(stream, bytes);
  }

  /** The consoles this machine has, the one consoleInput() feeds by default first. */
  consoleStreams(): ConsoleStream[] {
    return this.hvc ? ['hvc0', 'ttyS0'] : ['ttyS0'];
  }

  /**
   * Keyboard input: to `stream`, or by default to the console the definition names (hvc0 when
   * there is one; the UART still takes input for firmware and a getty on ttyS0).
   */
  consoleInput(bytes: Uint8Array, stream?: ConsoleStream): void {
    if (this.hvc && stream !== 'ttyS0') this.hvc.input(bytes);
    else this.board.consoleInput(bytes);
    this.wakeUp();
  }

  /** Ends the run loop at the next slice boundary. */
  stop(): void {
    this.stopRequested = true;
    this.core.requestExit();
    this.wakeUp();
    this.releasePause();
  }

  /**
   * Stops running slices at the next boundary and freezes guest time (HostClock), so that
   * timers do not fire in a burst on resume; the run loop then waits without using the CPU.
   */
  pause(): void {
    this.pauseRequested = true;
    this.core.requestExit();
    this.wakeUp();
  }

  resume(): void {
    this.pauseRequested = false;
    this.releasePause();
  }

  get paused(): boolean {
    return this.pauseRequested;
  }

  /** The devices the guest sees, for the host API's device list. */
  devices(): DeviceInfo[] {
    return [
      ...this.board.devices(),
      {
        name: 'fw-cfg',
        model: 'qemu,fw-cfg-mmio',
        ...VIRT.fwCfg,
        location: 'bus',
        backend: this.fwCfg.userFiles().join(', ') || "QEMU's items, no user files",
      },
    ];
  }

  private releasePause(): void {
    const r = this.resumeWaiter;
    this.resumeWaiter = undefined;
    r?.();
  }

  private async waitWhilePaused(): Promise<void> {
    this.board.uart.flush();
    this.clock.pause();
    while (this.pauseRequested && !this.stopRequested) {
      await new Promise<void>((r) => (this.resumeWaiter = r));
    }
    this.clock.resume();
  }

  private wakeUp(): void {
    this.lastWakeUp = performance.now();
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  private idle(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.wake = undefined;
        resolve();
      }, ms);
      this.wake = () => {
        clearTimeout(t);
        resolve();
      };
    });
  }

  /**
   * Sleeps up to `ms` of host time in a WFI, ended early by device events and stop() (wakeUp):
   * whole milliseconds on a timer. What is left under a millisecond, which a timer cannot wait:
   * when no device has raised an interrupt for IO_QUIET_MS, by blocking the thread (Atomics.wait);
   * else by turning the event loop over until the deadline, so that host I/O (a NAT's socket,
   * another VM on this thread) goes on. Either way no slice runs before the deadline: running one
   * each turn, as this did before, met the WFI again ~50 times per guest timer and was most of an
   * idle guest's host CPU (12-13% of a core on the CI machines). Always blocking cost the switch
   * bench's two VMs on one thread 10-40% of their throughput; always turning the loop over cost
   * an idle guest ~2% of a core more than blocking.
   */
  private async sleep(ms: number): Promise<void> {
    if (ms >= 1) {
      await this.idle(Math.floor(ms));
      return;
    }
    const now = performance.now();
    if (now - this.lastWakeUp > IO_QUIET_MS) {
      sleepSync(ms);
      await new Promise<void>((r) => setImmediate(r));
      return;
    }
    const until = now + ms;
    let woken = false;
    this.wake = () => (woken = true);
    do await new Promise<void>((r) => setImmediate(r));
    while (!woken && performance.now() < until);
    this.wake = undefined;
  }

  /**
   * A WFI under deterministic time: no instruction retires, so time stands still unless moved.
   * sleep=off moves it to the timer's deadline at once; sleep=on waits for it in host time
   * (as long as the instructions would have taken at 2^shift per tick) and moves the clock by
   * what passed, so an interrupt from I/O arrives at the time it came, no later.
   */
  private async idleDeterministic(ic: IcountConfig): Promise<void> {
    const deadline = this.core.nextTimerDeadline();
    const armed = deadline !== 0xffff_ffff_ffff_ffffn;
    if (armed && !ic.sleep) {
      this.core.warpTime(deadline);
      await new Promise<void>((r) => setImmediate(r));
      return;
    }
    this.board.uart.flush();
    const now = this.core.time;
    const waitMs = armed ? Number(deadline - now) / (TIMEBASE_HZ / 1000) : MAX_IDLE_MS;
    const t0 = performance.now();
    await this.sleep(Math.min(MAX_IDLE_MS, waitMs));
    if (!armed) return; // nothing to wait for but I/O: time stays where the guest left it
    const passed = BigInt(Math.floor((performance.now() - t0) * (TIMEBASE_HZ / 1000)));
    this.core.warpTime(now + passed < deadline ? now + passed : deadline);
  }

  /** Runs until the guest powers off, resets, fails, or stop() is called. */
  async run(): Promise<MachineExit> {
    if (this.running) throw new Error('machine is already running');
    this.running = true;
    this.startedAt = performance.now();
    this.instretAtStart = this.core.instret;
    try {
      for (;;) {
        // No slice after stop(): a VM saved to a file must not run on past the saved state.
        if (this.stopRequested) {
          this.board.uart.flush();
          return { kind: 'stopped' };
        }
        // Checked before each slice: pause() arrives between slices, so none runs after it.
        if (this.pauseRequested && !this.stopRequested) {
          await this.waitWhilePaused();
          continue;
        }
        const t0 = performance.now();
        const cpu0 = this.timeDevices ? process.cpuUsage() : undefined;
        const exits0 = this.core.mmioExits;
        const polls0 = this.board.uart.emptyPolls;
        const reads0 = this.timeReads;
        const reason = this.core.run(this.slice);
        this.hostTime.runMs += performance.now() - t0;
        this.hostTime.slices++;
        if (cpu0) {
          const c = process.cpuUsage(cpu0);
          this.hostTime.runCpuMs += (c.user + c.system) / 1000;
        }
        this.balloon?.tick(performance.now());
        if (this.shutdown) {
          const s = this.shutdown;
          this.board.uart.flush();
          if (s.kind === 'fail') return { kind: 'fail', code: s.code };
          return { kind: s.kind };
        }
        if (this.stopRequested) {
          this.board.uart.flush();
          return { kind: 'stopped' };
        }
        const exits = Number(this.core.mmioExits - exits0);
        const onlyPolls = this.board.uart.emptyPolls - polls0 === exits;
        const pollIdle =
          reason === ExitReason.Budget &&
          onlyPolls &&
          (exits >= POLL_IDLE_EXITS ||
            (this.timeReads - reads0 >= SPIN_TIME_READS && this.core.translationOff)) &&
          !this.icount &&
          this.core.harts - this.core.hartsInWfi <= 1; // no other hart is at work
        this.pollIdleStreak = pollIdle ? this.pollIdleStreak + 1 : 0;
        if (this.pollIdleStreak >= POLL_IDLE_SLICES) {
          this.hostTime.pollIdleSleeps++;
          this.board.uart.flush();
          await this.sleep(POLL_IDLE_MS);
        } else if (reason === ExitReason.Wfi && !this.core.interruptPending() && this.icount) {
          await this.idleDeterministic(this.icount);
        } else if (reason === ExitReason.Wfi && !this.core.interruptPending()) {
          const deadline = this.core.nextTimerDeadline();
          const ms =
            deadline === 0xffff_ffff_ffff_ffffn
              ? MAX_IDLE_MS
              : Math.min(MAX_IDLE_MS, this.clock.msUntil(Number(deadline)));
          this.board.uart.flush();
          await this.sleep(ms);
        } else {
          await new Promise<void>((r) => setImmediate(r));
        }
      }
    } finally {
      this.running = false;
    }
  }

  /**
   * Sets the balloon so that the guest keeps `mib` MiB of RAM (QEMU's `balloon` command): the
   * balloon's target is the rest. Throws when the VM has no balloon or `mib` is out of range.
   */
  setBalloonTarget(mib: number): void {
    const b = this.balloon;
    if (!b) throw new MachineConfigError('this VM has no balloon (--balloon)');
    const ramMiB = this.core.ram.length / (1024 * 1024);
    if (!Number.isFinite(mib) || mib < 1 || mib > ramMiB) {
      throw new MachineConfigError(`balloon target must be 1..${ramMiB} MiB`);
    }
    b.setTargetPages(((ramMiB - mib) * 1024 * 1024) / 4096);
  }

  balloonInfo(): BalloonInfo | undefined {
    return this.balloon?.info();
  }

  stats(): MachineStats {
    const seconds = (performance.now() - this.startedAt) / 1000;
    const instret = this.core.instret;
    const exits: MachineStats['exits'] = {};
    for (const r of this.board.bus.regions()) {
      exits[r.device.name] = { reads: r.stats.reads, writes: r.stats.writes };
    }
    const interrupts: Record<string, number> = {};
    for (const [src, n] of Object.entries(this.board.plic.stats.injected)) {
      interrupts[`plic:${src}`] = n;
    }
    return {
      instret,
      seconds,
      mips: seconds > 0 ? Number(instret - this.instretAtStart) / seconds / 1e6 : 0,
      exits,
      interrupts,
      traps: this.core.traps,
      harts: { cpus: this.core.hartInfo(), switches: Number(this.core.hartSwitches) },
      virtio: Object.fromEntries([
        ...this.virtio.filter((t) => t.device).map((t) => [t.name, t.stats()]),
        ...this.virtioPci.map((t) => [t.name, t.stats()]),
      ]),
      balloon: this.balloon?.info(),
      nics: Object.fromEntries(this.nics.map((n) => [n.name, n.stats()])),
      hostRssBytes: processRssBytes(),
      jit: this.core.jit?.currentStats(),
      disks: Object.fromEntries(
        this.blks().flatMap((b) => {
          const d = b.backend as Partial<Pick<Disk, 'stats'>>;
          return typeof d.stats === 'function' ? [[b.name, d.stats()]] : [];
        }),
      ),
      hostTime: { ...this.hostTime },
      guestClock: {
        seconds: Number(this.core.time) / TIMEBASE_HZ,
        ...(this.icount ? { icount: { ...this.icount } } : {}),
      },
    };
  }
}

/**
 * Reads the fw_cfg files a definition names (`file=`) or holds (`string=`). A file that cannot
 * be read, or that is larger than fw_cfg takes, throws MachineConfigError naming it.
 */
export function loadFwCfgFiles(specs: readonly FwCfgConfig[]): FwCfgFile[] {
  return specs.map((f) => {
    if (f.file === undefined) return { name: f.name, data: new TextEncoder().encode(f.string) };
    try {
      const st = statSync(f.file);
      if (!st.isFile()) throw new Error('not a regular file');
      if (st.size > MAX_FW_CFG_BYTES) throw new Error(`larger than ${MAX_FW_CFG_BYTES} bytes`);
      return { name: f.name, data: new Uint8Array(readFileSync(f.file)) };
    } catch (e) {
      throw new MachineConfigError(`fw_cfg ${f.name}: ${f.file}: ${(e as Error).message}`);
    }
  });
}
