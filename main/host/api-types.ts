/**
 * The host API's data shapes, shared by the host (Node), the worker, the server, the Electron
 * preload and the renderer. Types only — no Node APIs — so that the renderer can import them.
 */
import type { DiskFormat, VmConfig } from '../vm/config.js';
import type { BalloonInfo } from '../../devices/virtio/balloon/device.js';

export type { VmConfig };

/** Where a VM is in its life; 'stopped' also covers "never started". */
export type VmState = 'stopped' | 'starting' | 'running' | 'paused' | 'stopping';

/** A disk's I/O totals (the monitor's `info blockstats`, the device panel). */
export interface DiskIoStats {
  /** The I/O scheduler and cache mode in use. */
  policy: string;
  cache: string;
  reads: number;
  writes: number;
  flushes: number;
  /** Discard and write-zeroes requests. */
  discards: number;
  bytesRead: number;
  bytesWritten: number;
  /** Requests that rode along in another's host call, and the host calls made. */
  merges: number;
  backendCalls: number;
  /** Reads the host's page cache served at once, and reads that went to the thread pool. */
  readsAtOnce: number;
  readsQueued: number;
  /** Why no read goes at once (no addon, O_DIRECT, the host refuses RWF_NOWAIT). */
  readsAtOnceUnavailable?: string;
  queueDepth: number;
  maxQueueDepth: number;
  /** Submission to completion, µs. */
  latencyUs: { p50: number; p99: number; max: number };
  errors: number;
}

/**
 * A network card's traffic since the VM started (frames and bytes to and from its back end) and
 * what the guest's driver cost: MMIO/PIO exits to the card and interrupts it raised — the
 * e1000-against-virtio comparison, per card.
 */
export interface NicIoStats {
  txFrames: number;
  txBytes: number;
  rxFrames: number;
  rxBytes: number;
  exits: number;
  interrupts: number;
  /** Frames lost: received with no room in the guest, or sent with the link down. */
  dropped: number;
}

/** Why a VM last stopped. */
export type VmExit =
  | { kind: 'poweroff' }
  | { kind: 'stopped' }
  | { kind: 'killed' }
  | { kind: 'fail'; code: number }
  | { kind: 'error'; message: string }
  /** Saved to a file (saveVm / the monitor's `save`), then stopped; it resumes from `path`. */
  | { kind: 'saved'; path: string }
  /** Migrated live (the monitor's `migrate`): the guest runs on in the wasmvisor at `to`. */
  | { kind: 'migrated'; to: string };

export interface VmSummary {
  config: VmConfig;
  state: VmState;
  lastExit?: VmExit;
  /** While it starts as a live migration's destination: the URI it waits on (startVm's `incoming`). */
  incoming?: string;
  /** The VM's saved state (saveVm without a path), which startVm({ resume: true }) resumes. */
  savedState?: SavedStateInfo;
}

/** A VM saved by the host (its "managed" saved state, in the data directory). */
export interface SavedStateInfo {
  path: string;
  /** ISO time the file was written. */
  savedAt: string;
  bytes: number;
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
  /** What can be changed while the VM runs (declared by the device type; absent: nothing). */
  controls?: DeviceControl[];
  /** A disk's image: format, sizes, backing chain, internal snapshots. */
  disk?: DiskImageInfo;
}

/** What the device manager shows of a disk's image. */
export interface DiskImageInfo {
  format: DiskFormat;
  /** The image the guest writes into (under snapshot=on: a temporary overlay over `path`). */
  path: string;
  virtualSize: number;
  /** Bytes the image file takes on the host. */
  actualSize: number;
  /** The backing files below the image, nearest first. */
  backingChain: string[];
  /** snapshot=on: the overlay is thrown away when the VM ends (its snapshots with it). */
  temporary?: boolean;
  /** LUKS encryption (a raw LUKS image, or qcow2 with encrypt.format=luks): the cipher. */
  encryption?: string;
  /** cor=on, with the clusters copied into the overlay so far. */
  cor?: { clusters: number };
  /** qcow2: internal snapshots, oldest first (`dateSec`: seconds since the epoch). */
  snapshots?: { id: string; name: string; dateSec: number; vmStateSize: number }[];
}

/** What can be done to a disk's internal snapshots (while the VM is paused). */
export type DiskSnapshotAction = 'create' | 'apply' | 'delete';
export const DISK_SNAPSHOT_ACTIONS: readonly DiskSnapshotAction[] = ['create', 'apply', 'delete'];

/** What can be done to a running VM's snapshots (QEMU's savevm, loadvm, delvm). */
export type VmSnapshotAction = 'take' | 'revert' | 'delete';
export const VM_SNAPSHOT_ACTIONS: readonly VmSnapshotAction[] = ['take', 'revert', 'delete'];

/** One VM snapshot (the whole VM: its state file and its disks' internal snapshots). */
export interface VmSnapshotInfo {
  name: string;
  /** ISO time it was taken (the file's mtime when the file cannot be read). */
  savedAt: string;
  /** The state file's size in bytes (the VM state: RAM, CPU, devices). */
  stateBytes: number;
  /** The guest's uptime when taken, ms. */
  guestMs: number;
  /** Each disk: snapshotted (`id`; `missing` if the image no longer has it) or recorded as is. */
  disks: { path: string; id?: string; missing?: boolean }[];
  /** The file cannot be used: why (it can still be deleted). */
  error?: string;
  /**
   * Taken of a VM with other hardware (another CLI session of the same name, a definition
   * edited since): how it differs. It cannot be reverted to from this VM.
   */
  otherVm?: string;
}

/**
 * One live control of a device: a choice among options. Device types declare their own (the
 * worker's CONTROL_PROVIDERS); the renderer draws any of them the same way.
 */
export interface DeviceControl {
  /** Passed back to setDeviceControl. */
  id: string;
  label: string;
  options: { value: string; label: string }[];
  value: string;
  /** What the current value does not say by itself (e.g. a change that waits for a reset). */
  note?: string;
  /**
   * Besides the options, any whole number in min..max (the options are then only suggestions
   * for a select; the monitor's `balloon MIB` takes any size, as QEMU's does).
   */
  range?: { min: number; max: number; unit?: string };
  /**
   * Besides the options, any value matching `pattern` (a RegExp source, anchored by whoever
   * declares it): a NIC's back end "switch:NAME", a capture file's absolute path.
   */
  free?: { pattern: string; hint: string };
}

/** Whether `value` is one a control accepts: an option, a whole number in range, a free value. */
export function controlAccepts(c: DeviceControl, value: string): boolean {
  if (c.options.some((o) => o.value === value)) return true;
  if (c.free && value.length <= 4096 && new RegExp(c.free.pattern).test(value)) return true;
  if (!c.range || !/^\d{1,15}$/.test(value)) return false;
  const n = Number(value);
  return n >= c.range.min && n <= c.range.max;
}

/** What a refused value should have been, for the error message. */
export function controlExpects(c: DeviceControl): string {
  if (c.range) {
    const unit = c.range.unit ? ` ${c.range.unit}` : '';
    return `a whole number ${c.range.min}..${c.range.max}${unit}`;
  }
  if (c.free) return `one of ${c.options.map((o) => o.value).join(', ')}, or ${c.free.hint}`;
  return `one of ${c.options.map((o) => o.value).join(', ')}`;
}

/** A VM's console streams: the UART always, the virtio-console when the VM has one. */
export type ConsoleStream = 'ttyS0' | 'hvc0';

/** The console streams of a VM with this definition, the one it boots on (its console) first. */
export function consoleStreams(cfg: Pick<VmConfig, 'console'>): ConsoleStream[] {
  return cfg.console === 'hvc0' ? ['hvc0', 'ttyS0'] : ['ttyS0'];
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
  /**
   * Turns of the VM's run loop so far (a slice of guest instructions each): while the guest
   * idles, how often its host thread wakes.
   */
  slices?: number;
  /** The Wasm core's linear memory (guest RAM + core state), MiB. */
  wasmMemMiB: number;
  /**
   * Bytes per second over the last interval for every device that counts bytes, by device then
   * counter (virtio-blk: read_bytes/write_bytes; NICs: rx_bytes/tx_bytes). Charts pick devices
   * by kind (deviceKind), so a new device with byte counters is charted without new code.
   */
  bytesPerSec?: Record<string, Record<string, number>>;
  /** The balloon (target, actual, whether memory goes back to the host) and guest statistics. */
  balloon?: BalloonInfo;
  /**
   * Resident memory of the process running the VM, MiB (VmRSS). A worker's VM shares the
   * process with the host and the other VMs, so this is all of them together.
   */
  hostRssMiB?: number;
  /** The JIT's work, when the VM translates hot code (its definition's `jit`). */
  jit?: JitShare;
  /** Each disk's I/O since the VM started (or since the disk was last switched), by device. */
  disks?: Record<string, DiskIoStats>;
  /** Each network card's traffic and what it cost in exits and interrupts, by device. */
  nics?: Record<string, NicIoStats>;
  /**
   * Seconds on the guest's own clock (mtime), and under deterministic time (`icount`) how it
   * counts: it then runs apart from the host's (ahead of it with sleep=off).
   */
  guestClock?: { seconds: number; icount?: { shift: number; sleep: boolean } };
  /**
   * The guest's CPUs (harts take turns on the VM's one thread): each one's pc (hex), privilege
   * mode, whether it waits in WFI, whether it holds the turn now and its MIPS (together they
   * make `mips`); and how often per second a
   * turn passed from one hart to another.
   */
  cpus?: { harts: CpuInfo[]; switchesPerSec: number };
}

/** One guest CPU in VmStats.cpus (the monitor's `info cpus`). */
export interface CpuInfo {
  id: number;
  pc: string;
  mode: 'M' | 'S' | 'U';
  halted: boolean;
  current: boolean;
  /** Million instructions per second this CPU ran over the last interval. */
  mips: number;
}

/** How much of a VM's guest code runs translated (main/vm/jit; the CLI's --stats line). */
export interface JitShare {
  /** Blocks translated so far. */
  blocks: number;
  /** Share of the instructions retired in translated code over the last interval, percent. */
  translatedPercent: number;
  /** The same since the VM started, percent. */
  translatedTotalPercent: number;
}

/** What a device is, from its name, for grouping throughput charts. */
export function deviceKind(device: string): 'disk' | 'net' | 'other' {
  if (/blk|disk|nvme|ide|9p/.test(device)) return 'disk'; // a shared folder's file I/O too
  if (/net|e1000|nic/.test(device)) return 'net';
  return 'other';
}

/** A definition file that could not be loaded: reported in the UI, never fatal. */
export interface DefinitionError {
  file: string;
  message: string;
}

/** Events the host pushes to every subscriber. */
export type HostEvent =
  | { type: 'vms'; vms: VmSummary[] }
  /** `incoming`: the VM is starting as a live migration's destination, waiting there. */
  | { type: 'state'; name: string; state: VmState; lastExit?: VmExit; incoming?: string }
  | { type: 'stats'; name: string; stats: VmStats }
  | { type: 'devices'; name: string; devices: DeviceRow[] }
  | { type: 'log'; name: string; message: string }
  /** The VM's snapshots changed (taken, deleted): the whole list. */
  | { type: 'snapshots'; name: string; snapshots: VmSnapshotInfo[] };

/** The host API's request/response methods, as the renderer calls them over any transport. */
export interface HostMethods {
  listVms(): VmSummary[];
  definitionErrors(): DefinitionError[];
  createVm(p: { config: unknown }): VmSummary;
  updateVm(p: { name: string; config: unknown }): VmSummary;
  deleteVm(p: { name: string }): void;
  /** Encrypted disks without a key file: startVm needs their passphrases (by disk index). */
  diskKeysNeeded(p: { name: string }): { index: number; path: string }[];
  /** `passphrases[i]`: disk i's passphrase (null or absent: none given). */
  /** `resume`: from the VM's saved state (savedState) instead of booting; the file goes once resumed. */
  /** `snapshot`: from that VM snapshot, its disks reverted first (see vmSnapshot). */
  /**
   * `incoming` ("tcp:HOST:PORT"): wait there for a VM migrating live and run it as this one; its
   * definition becomes this VM's. Stopping gives up the wait.
   */
  startVm(p: {
    name: string;
    passphrases?: (string | null)[];
    resume?: boolean;
    snapshot?: string;
    incoming?: string;
  }): void;
  /** Saves the running VM to its saved state (a file in the data dir) and stops it. */
  saveVm(p: { name: string }): { message: string };
  /**
   * Migrates the running VM live to the wasmvisor waiting at `uri` ("tcp:HOST:PORT", a `run
   * --incoming`); once it runs there, this one stops (lastExit "migrated"). The message says
   * how it went; a failed migration leaves the VM running here.
   */
  migrateVm(p: { name: string; uri: string }): { message: string };
  stopVm(p: { name: string; force?: boolean }): void;
  pauseVm(p: { name: string }): void;
  resumeVm(p: { name: string }): void;
  resetVm(p: { name: string }): void;
  listDevices(p: { name: string }): DeviceRow[];
  statsHistory(p: { name: string }): VmStats[];
  /**
   * Starts console events of one stream (default: the VM's console) for this client; returns
   * that stream's scrollback (base64).
   */
  attachConsole(p: { name: string; stream?: ConsoleStream }): { scrollback: string };
  detachConsole(p: { name: string; stream?: ConsoleStream }): void;
  /** Keyboard input, base64, to one stream (default: the VM's console). */
  consoleInput(p: { name: string; stream?: ConsoleStream; data: string }): void;
  /** Changes one of a device's controls while the VM runs; resolves to the outcome. */
  setDeviceControl(p: { name: string; device: string; control: string; value: string }): {
    message: string;
  };
  /** Creates, applies or deletes an internal snapshot of a qcow2 disk of a paused VM. */
  diskSnapshot(p: { name: string; device: string; action: DiskSnapshotAction; snapshot: string }): {
    message: string;
  };
  /**
   * Switches a running VM's disk to a new qcow2 overlay `file` (absolute, must not exist) over
   * its image (QEMU's snapshot_blkdev); the VM's definition then names the overlay.
   */
  diskOverlay(p: { name: string; device: string; file: string }): { message: string };
  /**
   * Creates a new blank disk image (raw or qcow2, `size` bytes) at `path` (absolute; it must not
   * exist), or when `path` is absent at a free name in the data directory's images folder
   * (`images/VM-disk-N.img` or `.qcow2` for `vm`). Resolves to where it went.
   */
  createDiskImage(p: { path?: string; vm?: string; format: 'raw' | 'qcow2'; size: number }): {
    path: string;
    message: string;
  };
  /** The VM's snapshots (whole VM: state and disks), oldest first. */
  listSnapshots(p: { name: string }): VmSnapshotInfo[];
  /**
   * Takes (running VM; it runs on), reverts to (a running VM goes back; a stopped one starts
   * from it) or deletes a VM snapshot; resolves to the outcome.
   */
  vmSnapshot(p: { name: string; action: VmSnapshotAction; snapshot: string }): { message: string };
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
export type ClientEvent =
  HostEvent | { type: 'console'; name: string; stream: ConsoleStream; data: string };
/** What a client receives: a response to one of its requests, or an event. */
export type ServerMessage = RpcResponse | { event: ClientEvent };
