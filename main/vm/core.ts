/**
 * Typed wrapper around the AssemblyScript core (dist/wasm/core.wasm): instantiates it with the
 * MMIO and clock imports, sizes guest RAM and exposes views of RAM and the boot ROM.
 */
import { DIRTY_PAGE, DirtyLog } from '../../devices/platform/dirty-log.js';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Jit, type JitCoreExports, type JitOptions } from './jit/jit.js';
import { buildDispatcher } from './jit/dispatcher.js';

/** Why `run` returned (mirrors wasm-core/cpu/signals.ts). */
export const enum ExitReason {
  Budget = 0,
  Wfi = 1,
  Tohost = 2,
  Host = 3,
}

export interface CoreImports {
  /** MMIO read of 1, 2 or 4 bytes outside RAM/ROM/CLINT. Call `core.busFault()` if unmapped. */
  mmioRead(addr: number, size: number): number;
  mmioWrite(addr: number, size: number, value: number): void;
  /** Current time in 10 MHz ticks. */
  hostTicks(): number;
}

/** Hot blocks worth a module at a slice's end (fewer wait for the next slice or a full queue). */
const SLICE_END_DRAIN = 16;

/**
 * WASMVISOR_JIT=1 or =0: translate hot blocks, or only interpret, in every core whose owner did
 * not decide (the test suite runs both ways); anything else: undefined, the owner's default.
 */
export function jitFromEnv(): boolean | undefined {
  const v = process.env.WASMVISOR_JIT;
  return v === '1' ? true : v === '0' ? false : undefined;
}

/**
 * Whether a VM definition's machine translates hot code: its `jit`, else WASMVISOR_JIT, else on.
 * (The JIT is the default for VMs since it reaches the prompt as soon as the interpreter and runs
 * everything after faster; a bare Core or VirtMachine still interprets unless told.)
 */
export function vmJit(configured: boolean | undefined): boolean {
  return configured ?? jitFromEnv() ?? true;
}

interface CoreExports {
  memory: WebAssembly.Memory;
  init(ramBase: bigint, ramBytes: bigint): number;
  reset(): void;
  ramHostOffset(): number;
  romHostOffsetExport(): number;
  romSize(): bigint;
  run(budget: number): number;
  getPc(): bigint;
  setPc(pc: bigint): void;
  getPriv(): number;
  getInstret(): bigint;
  getTraps(): bigint;
  getInterrupts(): bigint;
  getMmioExits(): bigint;
  getSatp(): bigint;
  setExternalIrq(lines: number, hart: number): void;
  busFault(): void;
  requestExit(reason: number): void;
  setTohost(pa: bigint): void;
  clearTohost(): void;
  setDeterministicTime(on: number, shift: number): void;
  getTime(): bigint;
  warpTime(t: bigint): void;
  nextTimerDeadline(): bigint;
  interruptPending(): number;
  getX(i: number): bigint;
  setX(i: number, v: bigint): void;
  getCsrMcause(): bigint;
  getCsrMepc(): bigint;
  getCsrScause(): bigint;
  getCsrSepc(): bigint;
  hartSave(): void;
  hartRestore(): number;
  hartStateLayout(what: number): number;
  dirtyLogEnable(on: number): void;
  dirtyLogHarvested(): void;
  dirtyLogBitmap(): number;
  setHartCount(n: number): number;
  getHartCount(): number;
  currentHart(): number;
  selectHart(h: number): number;
  hartsRestored(current: number, waiting: number): void;
  hartsWaiting(): number;
  getHartPc(h: number): bigint;
  getHartPriv(h: number): number;
  getHartRetired(h: number): bigint;
  getHartSwitches(): bigint;
  setHartQuantum(n: number): void;
}

/** Every hart's state as saveHarts() returns it and restoreHarts() takes it. */
export interface HartsState {
  /** Each hart's slots (saveHart's bytes), by hart id. */
  harts: Uint8Array[];
  /** The hart that was running. */
  current: number;
  /** Bit h: hart h was waiting in WFI. */
  waiting: number;
}

/** What `info cpus` shows of one hart. */
export interface HartInfo {
  id: number;
  pc: bigint;
  /** 0 = U, 1 = S, 3 = M. */
  priv: number;
  /** Waiting in WFI for an interrupt. */
  halted: boolean;
  /** The hart running now (the others wait for their turn). */
  current: boolean;
  /** Instructions it retired since reset or restore. */
  retired: bigint;
}

/** Why hartRestore refused a saved hart (wasm-core/cpu/snapshot.ts). */
const HART_RESTORE_ERRORS: Record<number, string> = {
  1: 'a CPU state version this build does not know',
  2: 'an invalid privilege level',
  3: 'an invalid satp mode',
  4: 'a CPU with other extensions (misa)',
  5: 'a CPU state of another layout',
};

const here = dirname(fileURLToPath(import.meta.url));

/**
 * Finds dist/wasm/core.wasm (or core-jit.wasm, the build with the JIT's hooks) from both the
 * TypeScript sources and the compiled dist/ tree.
 */
export function coreWasmPath(jit = false): string {
  const file = jit ? 'core-jit.wasm' : 'core.wasm';
  const candidates = [
    join(here, '..', '..', 'dist', 'wasm', file),
    join(here, '..', '..', 'wasm', file),
  ];
  for (const c of candidates) if (existsSync(c)) return c;
  throw new Error(`dist/wasm/${file} not found: run \`npm run build\` first`);
}

const compiled = new Map<boolean, WebAssembly.Module>();

function compile(jit: boolean): WebAssembly.Module {
  let m = compiled.get(jit);
  if (!m) {
    m = new WebAssembly.Module(readFileSync(coreWasmPath(jit)));
    compiled.set(jit, m);
  }
  return m;
}

export class Core {
  readonly ramBase: number;
  readonly ramSize: number;
  private readonly x: CoreExports;
  /** Guest RAM: index 0 is physical ramBase. Zero-copy view of the core's memory. */
  readonly ram: Uint8Array;
  /** Boot ROM at physical 0x1000. */
  readonly rom: Uint8Array;
  /**
   * The dirty-page log (live migration): off until dirtyLogStart; device models mark their DMA
   * through it (devices/platform/dirty-log.ts).
   */
  readonly dirty: DirtyLog;

  /** The block translator, when on (the `jit` option, else WASMVISOR_JIT=1). */
  readonly jit: Jit | undefined;

  /** Set for a core made by Core.unbound until its machine binds its imports. */
  private lateImports: { target: CoreImports | undefined } | undefined;

  /**
   * A core whose MMIO and clock imports come later (bindImports), from the machine built around
   * it. A live migration's destination makes one as soon as the VM's definition arrives and
   * receives the RAM pages straight into it while the source still runs; the machine around it
   * can only be built once the source has let go of its disks and host ports.
   */
  static unbound(ramBase: number, ramSize: number, opts: { jit?: boolean } = {}): Core {
    const late: { target: CoreImports | undefined } = { target: undefined };
    const unbound = (): never => {
      throw new Error('the core runs before its machine bound its imports');
    };
    const core = new Core(
      ramBase,
      ramSize,
      {
        mmioRead: (a, s) => (late.target ?? unbound()).mmioRead(a, s),
        mmioWrite: (a, s, v) => (late.target ?? unbound()).mmioWrite(a, s, v),
        hostTicks: () => (late.target ?? unbound()).hostTicks(),
      },
      opts,
    );
    core.lateImports = late;
    return core;
  }

  /** Whether this core was made by Core.unbound and waits for bindImports. */
  get awaitsImports(): boolean {
    return this.lateImports !== undefined && this.lateImports.target === undefined;
  }

  /** Gives an unbound core (Core.unbound) its imports; once. */
  bindImports(imports: CoreImports): void {
    if (!this.awaitsImports) throw new Error('this core has its imports already');
    this.lateImports!.target = imports;
  }

  constructor(
    ramBase: number,
    ramSize: number,
    imports: CoreImports,
    opts: { jit?: boolean; jitOptions?: JitOptions } = {},
  ) {
    this.ramBase = ramBase;
    this.ramSize = ramSize;
    const jitOn = opts.jit ?? jitFromEnv() ?? false;
    const dispatcher = jitOn ? buildDispatcher() : undefined;
    const env = {
      mmioRead: (a: number, s: number) => imports.mmioRead(a >>> 0, s) >>> 0,
      mmioWrite: (a: number, s: number, v: number) => imports.mmioWrite(a >>> 0, s, v >>> 0),
      hostTicks: () => imports.hostTicks(),
      jitDrain: () => this.jit?.drain(),
      // Never called with the JIT off (the core has no translated block to call).
      jitCall: dispatcher?.call ?? (() => 0),
      abort: () => {
        throw new Error('wasm core aborted');
      },
    };
    const inst = new WebAssembly.Instance(compile(jitOn), { env });
    this.x = inst.exports as unknown as CoreExports;
    if (!this.x.init(BigInt(ramBase), BigInt(ramSize))) {
      throw new Error(`cannot allocate ${ramSize >> 20} MiB of guest RAM`);
    }
    const buf = this.x.memory.buffer;
    this.ram = new Uint8Array(buf, this.x.ramHostOffset(), ramSize);
    this.rom = new Uint8Array(buf, this.x.romHostOffsetExport(), Number(this.x.romSize()));
    const pages = Math.ceil(ramSize / DIRTY_PAGE);
    this.dirty = new DirtyLog(
      new Uint8Array(buf, this.x.dirtyLogBitmap(), Math.ceil(pages / 8)),
      ramBase,
      ramSize,
    );
    if (dispatcher)
      this.jit = new Jit(this.x as unknown as JitCoreExports, dispatcher, opts.jitOptions);
  }

  /**
   * The module's raw exports, for in-core helpers other than the CPU (the virtio ring
   * processor) that bring their own typed wrapper.
   */
  get wasmExports(): WebAssembly.Exports {
    return this.x as unknown as WebAssembly.Exports;
  }

  reset(): void {
    this.x.reset();
  }

  /**
   * Starts the dirty-page log with every page marked (nothing has been copied yet). Call it with
   * no device DMA in flight (the VM paused and quiesced): a write a device started before
   * would not be marked.
   */
  dirtyLogStart(): void {
    this.x.dirtyLogEnable(1);
    this.dirty.on = true;
  }

  /** Stops the dirty-page log. */
  dirtyLogStop(): void {
    this.x.dirtyLogEnable(0);
    this.dirty.on = false;
  }

  /**
   * The pages written since the log started or was last harvested (a copy of the bitmap), and
   * a fresh log from here on. Call it between slices.
   */
  dirtyLogHarvest(): Uint8Array {
    const b = this.dirty.bitmap;
    const copy = b.slice();
    b.fill(0);
    this.x.dirtyLogHarvested();
    return copy;
  }
  run(budget: number): ExitReason {
    const r = this.x.run(budget) as ExitReason;
    this.jit?.drain(SLICE_END_DRAIN);
    return r;
  }
  get pc(): bigint {
    return this.x.getPc();
  }
  set pc(v: bigint) {
    this.x.setPc(v);
  }
  get priv(): number {
    return this.x.getPriv();
  }
  get instret(): bigint {
    return this.x.getInstret();
  }
  get traps(): bigint {
    return this.x.getTraps();
  }
  /** Whether the live hart runs with address translation off (satp.MODE Bare), as firmware does. */
  get translationOff(): boolean {
    return this.x.getSatp() >> 60n === 0n;
  }

  get interrupts(): bigint {
    return this.x.getInterrupts();
  }
  get mmioExits(): bigint {
    return this.x.getMmioExits();
  }
  /** Drives hart `hart`'s external interrupt inputs (mip.MEIP, mip.SEIP) from the PLIC. */
  setExternalIrq(machine: boolean, supervisor: boolean, hart = 0): void {
    this.x.setExternalIrq((machine ? 1 : 0) | (supervisor ? 2 : 0), hart);
  }
  busFault(): void {
    this.x.busFault();
  }
  requestExit(): void {
    this.x.requestExit(ExitReason.Host);
  }
  setTohost(pa: bigint): void {
    this.x.setTohost(pa);
  }
  clearTohost(): void {
    this.x.clearTohost();
  }
  setDeterministicTime(on: boolean, shift = 4): void {
    this.x.setDeterministicTime(on ? 1 : 0, shift);
    this.jit?.setDeterministic(on);
  }
  get time(): bigint {
    return this.x.getTime();
  }
  /** With deterministic time, moves the clock forward to tick `t` (see core-exports warpTime). */
  warpTime(t: bigint): void {
    this.x.warpTime(t);
  }
  /** The earliest armed timer of any hart, in ticks; 2^64 - 1 when none is armed. */
  nextTimerDeadline(): bigint {
    return BigInt.asUintN(64, this.x.nextTimerDeadline());
  }
  interruptPending(): boolean {
    return this.x.interruptPending() !== 0;
  }
  getX(i: number): bigint {
    return this.x.getX(i);
  }
  setX(i: number, v: bigint): void {
    this.x.setX(i, v);
  }
  /** How many harts the machine has. */
  get harts(): number {
    return this.x.getHartCount();
  }

  /** How many harts wait in WFI now. */
  get hartsInWfi(): number {
    let w = this.x.hartsWaiting() >>> 0;
    let n = 0;
    for (; w !== 0; w >>>= 1) n += w & 1;
    return n;
  }

  /**
   * Gives the machine `n` harts (1..8, wasm-core/cpu/smp.ts) and resets them all: call before
   * booting. Throws RangeError outside 1..8.
   */
  setHarts(n: number): void {
    if (!Number.isInteger(n) || this.x.setHartCount(n) === 0) {
      throw new RangeError(`harts must be 1..8, not ${n}`);
    }
  }

  /** Each hart's pc, privilege and whether it waits in WFI (the monitor's `info cpus`). */
  hartInfo(): HartInfo[] {
    const waiting = this.x.hartsWaiting();
    const current = this.x.currentHart();
    return Array.from({ length: this.harts }, (_, id) => ({
      id,
      pc: BigInt.asUintN(64, this.x.getHartPc(id)),
      priv: this.x.getHartPriv(id),
      halted: ((waiting >> id) & 1) !== 0,
      current: id === current,
      retired: this.x.getHartRetired(id),
    }));
  }

  /**
   * Instructions a hart runs before the next one's turn (default 16384: shorter turns cost more
   * switches, longer ones keep a hart spinning on a lock its holder cannot release).
   */
  set hartQuantum(n: number) {
    this.x.setHartQuantum(Math.max(1, Math.floor(n)));
  }

  /** Turns handed from one hart to another (0 with one hart). */
  get hartSwitches(): bigint {
    return this.x.getHartSwitches();
  }

  /** Every hart's state (see saveHart), and which one runs and which wait. */
  saveHarts(): HartsState {
    const current = this.x.currentHart();
    const waiting = this.x.hartsWaiting();
    const harts: Uint8Array[] = [];
    for (let h = 0; h < this.harts; h++) {
      this.x.selectHart(h);
      harts.push(this.saveHart());
    }
    this.x.selectHart(current);
    return { harts, current, waiting };
  }

  /**
   * Loads every hart saved by saveHarts (as many as this machine has). Returns undefined, or
   * why the state does not fit this machine (then the harts are half restored: do not run).
   */
  restoreHarts(s: HartsState): string | undefined {
    if (s.harts.length !== this.harts) {
      return `${s.harts.length} CPU${s.harts.length === 1 ? '' : 's'}, this VM has ${this.harts}`;
    }
    if (!Number.isInteger(s.current) || s.current < 0 || s.current >= this.harts) {
      return `running CPU ${s.current} of ${this.harts}`;
    }
    for (let h = 0; h < this.harts; h++) {
      this.x.selectHart(h);
      const err = this.restoreHart(s.harts[h]!);
      if (err) return this.harts > 1 ? `CPU ${h}: ${err}` : err;
    }
    this.x.hartsRestored(s.current, s.waiting >>> 0);
    return undefined;
  }

  /**
   * The live hart's architectural state (registers, CSRs, CLINT, the guest's mtime): the bytes
   * of the core's state slots (wasm-core/cpu/snapshot.ts), copied out.
   */
  saveHart(): Uint8Array {
    this.x.hartSave();
    return new Uint8Array(
      this.x.memory.buffer,
      this.x.hartStateLayout(0),
      this.hartStateBytes,
    ).slice();
  }

  /**
   * Loads a hart saved by saveHart; the guest's mtime continues from the saved value. Returns
   * undefined, or why the bytes are not a hart state this core takes (nothing changed then).
   */
  restoreHart(bytes: Uint8Array): string | undefined {
    if (bytes.length !== this.hartStateBytes) {
      return `a CPU state of ${bytes.length} bytes (this build's is ${this.hartStateBytes})`;
    }
    new Uint8Array(this.x.memory.buffer, this.x.hartStateLayout(0), bytes.length).set(bytes);
    const r = this.x.hartRestore();
    // The JIT sees the flush through its counter (Jit.noteFlushes) before it translates again.
    if (r === 0) return undefined;
    return HART_RESTORE_ERRORS[r] ?? `CPU state error ${r}`;
  }

  private get hartStateBytes(): number {
    return this.x.hartStateLayout(1) * 8;
  }

  get mcause(): bigint {
    return this.x.getCsrMcause();
  }
  get mepc(): bigint {
    return this.x.getCsrMepc();
  }
  get scause(): bigint {
    return this.x.getCsrScause();
  }
  get sepc(): bigint {
    return this.x.getCsrSepc();
  }
}
