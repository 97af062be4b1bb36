/**
 * The QEMU-virt-compatible board without its CPU: MMIO bus, PLIC, UART, test finisher and RTC
 * wired at the addresses and interrupts of memory-map.ts. The CLINT lives in the Wasm core (it is
 * on the timer hot path), so it is listed and described in the DTB but not mapped here.
 * virtio-mmio and PCIe are added by their own modules later (the DTB builder already lists the
 * eight virtio slots, as QEMU does).
 */
import { MmioBus } from './bus.js';
import { GoldfishRtc, type GoldfishRtcState, type NsClock, type SetTimer } from './goldfish-rtc.js';
import type { LogSink } from './guest-log.js';
import { VIRT } from './memory-map.js';
import type { HartIrqLines } from './mmio.js';
import { Plic, type PlicState } from './plic.js';
import { SifiveTest, type ShutdownEvent, type SifiveTestState } from './sifive-test.js';
import { Uart16550, type Uart16550State } from './uart16550.js';
import { buildVirtDtb, type VirtDtbConfig } from './virt-dtb.js';

export interface VirtBoardOptions {
  /**
   * Each hart's external interrupt inputs (mip.MEIP / mip.SEIP), owned by the core, in hart id
   * order (the PLIC gets a context pair per hart; the machine allows 1..MAX_HARTS).
   */
  harts: readonly HartIrqLines[];
  onConsoleOutput?: (bytes: Uint8Array) => void;
  onShutdown?: (e: ShutdownEvent) => void;
  /** RTC wall clock (ns since the epoch); inject for deterministic runs. */
  clock?: NsClock;
  /** RTC alarm timer; inject for deterministic runs. */
  setTimer?: SetTimer;
  log?: LogSink;
}

/** One row of the host API's "list devices". */
export interface DeviceInfo {
  name: string;
  /** What it emulates, as the DTB's compatible says. */
  model: string;
  base: number;
  size: number;
  /** PLIC source number, if the device interrupts. */
  irq?: number;
  /** 'bus': a TypeScript model behind the MMIO bus; 'core': inside the Wasm core. */
  location: 'bus' | 'core';
  /** What serves it on the host, when the device says (else the device list's default). */
  backend?: string;
}

export interface VirtBoardState {
  version: 1;
  plic: PlicState;
  uart: Uart16550State;
  test: SifiveTestState;
  rtc: GoldfishRtcState;
}

export class VirtBoard {
  readonly bus: MmioBus;
  readonly plic: Plic;
  readonly uart: Uart16550;
  readonly test: SifiveTest;
  readonly rtc: GoldfishRtc;
  /** Number of harts the board was built for. */
  readonly harts: number;

  constructor(opts: VirtBoardOptions) {
    this.bus = new MmioBus(opts.log);
    this.plic = new Plic(opts.harts, opts.log);
    this.harts = opts.harts.length;
    this.uart = new Uart16550({
      irq: this.plic.line(VIRT.uart0.irq),
      onTransmit: opts.onConsoleOutput,
      log: opts.log,
    });
    this.test = new SifiveTest(opts.onShutdown, opts.log);
    this.rtc = new GoldfishRtc({
      irq: this.plic.line(VIRT.rtc.irq),
      clock: opts.clock,
      setTimer: opts.setTimer,
      log: opts.log,
    });
    this.bus.map(VIRT.test.base, VIRT.test.size, this.test);
    this.bus.map(VIRT.rtc.base, VIRT.rtc.size, this.rtc);
    this.bus.map(VIRT.plic.base, VIRT.plic.size, this.plic);
    this.bus.map(VIRT.uart0.base, VIRT.uart0.size, this.uart);
  }

  /** Console output hook (bytes the guest wrote to the UART). */
  set onConsoleOutput(fn: ((bytes: Uint8Array) => void) | undefined) {
    this.uart.onTransmit = fn;
  }

  /** Guest poweroff / reset / failure hook. */
  set onShutdown(fn: ((e: ShutdownEvent) => void) | undefined) {
    this.test.onShutdown = fn;
  }

  /** Console input (keyboard); returns how many bytes the UART accepted. */
  consoleInput(bytes: Uint8Array): number {
    return this.uart.receive(bytes);
  }

  /**
   * The board's devicetree; `cfg` supplies RAM, command line, initrd and options. It describes
   * the board's harts unless `cfg` says otherwise.
   */
  dtb(cfg: VirtDtbConfig): Uint8Array {
    return buildVirtDtb({ harts: this.harts, ...cfg });
  }

  devices(): DeviceInfo[] {
    return [
      { name: 'test', model: 'sifive,test0', ...VIRT.test, location: 'bus' },
      { name: 'rtc', model: 'google,goldfish-rtc', ...VIRT.rtc, location: 'bus' },
      { name: 'clint', model: 'sifive,clint0', ...VIRT.clint, location: 'core' },
      { name: 'plic', model: 'sifive,plic-1.0.0', ...VIRT.plic, location: 'bus' },
      { name: 'uart0', model: 'ns16550a', ...VIRT.uart0, location: 'bus' },
    ];
  }

  /** System reset (the guest's 0x7777, or the host's reset button). */
  reset(): void {
    this.uart.flush();
    this.plic.reset();
    this.uart.reset();
    this.test.reset();
    this.rtc.reset();
  }

  saveState(): VirtBoardState {
    this.uart.flush();
    return {
      version: 1,
      plic: this.plic.saveState(),
      uart: this.uart.saveState(),
      test: this.test.saveState(),
      rtc: this.rtc.saveState(),
    };
  }

  restoreState(s: VirtBoardState): void {
    if (s.version !== 1) throw new Error(`board: unsupported state version ${s.version}`);
    // The PLIC first: the devices re-drive their lines into it as they restore.
    this.plic.restoreState(s.plic);
    this.uart.restoreState(s.uart);
    this.test.restoreState(s.test);
    this.rtc.restoreState(s.rtc);
  }
}
