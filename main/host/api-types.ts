/**
 * The host API's data shapes, shared by the host (Node), the worker, the server, the Electron
 * preload and the renderer. Types only — no Node APIs — so that the renderer can import them.
 */
import type { VmConfig } from '../vm/config.js';

export type { VmConfig };

/** Where a VM is in its life; 'stopped' also covers "never started". */
export type VmState = 'stopped' | 'starting' | 'running' | 'paused' | 'stopping';

/** Why a VM last stopped. */
export type VmExit =
  | { kind: 'poweroff' }
  | { kind: 'stopped' }
  | { kind: 'killed' }
  | { kind: 'fail'; code: number }
  | { kind: 'error'; message: string };

export interface VmSummary {
  config: VmConfig;
  state: VmState;
  lastExit?: VmExit;
}

/** One row of the device list. */
export interface DeviceRow {
  name: string;
  /** What it emulates (the DTB's compatible). */
  model: string;
  /** Bus address, e.g. "0x10000000". */
  address: string;
  size: number;
  irq?: number;
  /** Where the model runs / what serves it: 'board (TypeScript)', 'core (Wasm)', a file... */
  backend: string;
  state: string;
}

/** A stats snapshot the worker posts about 4 times a second. */
export interface VmStats {
  /** Host wall clock, ms since the epoch. */
  t: number;
  uptimeSec: number;
  instret: number;
  /** Million instructions per second over the last interval. */
  mips: number;
  traps: number;
  /** MMIO exits (reads + writes) per second over the last interval, by device. */
  exitsPerSec: Record<string, number>;
  /** Interrupts injected per second over the last interval, by source. */
  interruptsPerSec: Record<string, number>;
  guestMemMiB: number;
  /**
   * CPU time the VM's worker thread used so far, seconds, and its share of one host core over
   * the last interval, percent (Linux: /proc/thread-self; elsewhere undefined).
   */
  cpuSeconds?: number;
  cpuPercent?: number;
  /** The Wasm core's linear memory (guest RAM + core state), MiB. */
  wasmMemMiB: number;
}

/** A definition file that could not be loaded: reported in the UI, never fatal. */
export interface DefinitionError {
  file: string;
  message: string;
}

/** Events the host pushes to every subscriber. */
export type HostEvent =
  | { type: 'vms'; vms: VmSummary[] }
  | { type: 'state'; name: string; state: VmState; lastExit?: VmExit }
  | { type: 'stats'; name: string; stats: VmStats }
  | { type: 'devices'; name: string; devices: DeviceRow[] }
  | { type: 'log'; name: string; message: string };

/** The host API's request/response methods, as the renderer calls them over any transport. */
export interface HostMethods {
  listVms(): VmSummary[];
  definitionErrors(): DefinitionError[];
  createVm(p: { config: unknown }): VmSummary;
  updateVm(p: { name: string; config: unknown }): VmSummary;
  deleteVm(p: { name: string }): void;
  startVm(p: { name: string }): void;
  stopVm(p: { name: string; force?: boolean }): void;
  pauseVm(p: { name: string }): void;
  resumeVm(p: { name: string }): void;
  resetVm(p: { name: string }): void;
  listDevices(p: { name: string }): DeviceRow[];
  statsHistory(p: { name: string }): VmStats[];
  /** Starts console events for this client; returns the scrollback (base64). */
  attachConsole(p: { name: string }): { scrollback: string };
  detachConsole(p: { name: string }): void;
  /** Keyboard input, base64. */
  consoleInput(p: { name: string; data: string }): void;
}

export type HostMethodName = keyof HostMethods;

/** Wire messages (WebSocket and Electron IPC carry the same JSON). */
export interface RpcRequest {
  id: number;
  method: HostMethodName;
  params?: unknown;
}
export type RpcResponse = { id: number; result: unknown } | { id: number; error: string };
/** Console bytes go only to clients that attached; data is base64. */
export type ClientEvent = HostEvent | { type: 'console'; name: string; data: string };
/** What a client receives: a response to one of its requests, or an event. */
export type ServerMessage = RpcResponse | { event: ClientEvent };
