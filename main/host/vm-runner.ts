/**
 * The host side of one VM: its worker thread, state, console scrollback, stats history and
 * device list. The worker runs the guest; this object only relays messages.
 */
import { MessagePort, type Worker } from 'node:worker_threads';
import type { DiskConfig, VmConfig } from '../vm/config.js';
import type {
  ConsoleStream,
  DeviceRow,
  DiskSnapshotAction,
  VmExit,
  VmSnapshotAction,
  VmState,
  VmStats,
} from './api-types.js';
import type { MachineStats } from '../vm/machine.js';
import type { BootImages } from '../vm/images.js';
import type { FromWorker, ToWorker } from '../worker/protocol.js';
import { ByteRing } from './byte-ring.js';
import { startupMark } from './startup-trace.js';
import { attachSwitchLink, checkNetSpec } from '../../devices/net/index.js';
import { releaseCfqThread } from '../../devices/block/cfq-shared.js';
import { cfqMemory, spawnVmWorker } from './worker-spawn.js';

/** Stats kept for the charts: 5 minutes at 4 Hz (samples come at 1 Hz while the guest idles). */
const HISTORY_SAMPLES = 5 * 60 * 4;
/** How long a graceful stop may take before the worker is terminated. */
const STOP_GRACE_MS = 3000;

export interface VmRunnerEvents {
  /** `incoming`: while starting, the URI it waits on for a VM migrating in (start's `incoming`). */
  state(state: VmState, lastExit: VmExit | undefined, incoming: string | undefined): void;
  stats(stats: VmStats): void;
  devices(devices: DeviceRow[]): void;
  console(bytes: Uint8Array, stream: ConsoleStream): void;
  log(message: string): void;
  /**
   * Disk `index` was switched to an overlay (snapshot_blkdev): `disk` is what it is now, `from`
   * the image it was on. The guest's new writes live only in the overlay.
   */
  diskSwitched?(index: number, disk: DiskConfig, from: string): void;
  /** A VM migrated in (start's `incoming`): `config` is the definition it came with. */
  arrived?(config: VmConfig, from: string): void;
}

/** How long a device control may take before the caller is told it did not answer. */
const CONTROL_TIMEOUT_MS = 10_000;
/** Saving a VM (RAM up to 2 GiB, compressed, and disks flushed) may take longer. */
const SAVE_TIMEOUT_MS = 120_000;
/** Pre-copy rounds of a busy guest and the waits on the other side, all bounded there. */
const MIGRATE_TIMEOUT_MS = 600_000;

/** Plugs a worker's switch port into this thread's switch (the hub of every VM's workers). */
function joinSwitch(name: unknown, port: unknown): void {
  if (!(port instanceof MessagePort)) return;
  try {
    if (typeof name !== 'string') throw new Error('no switch name');
    checkNetSpec(`switch:${name}`);
    attachSwitchLink(name, port);
  } catch {
    port.close(); // the worker's NIC sees no carrier
  }
}

export class VmRunner {
  state: VmState = 'stopped';
  lastExit: VmExit | undefined;
  /** While starting as a live migration's destination: where it waits ("tcp:HOST:PORT"). */
  incoming: string | undefined;
  /** One scrollback per console stream, so each console replays only its own output. */
  private readonly scrollbacks = new Map<ConsoleStream, ByteRing>();
  /** The machine's totals from its last run (for the CLI's --stats). */
  finalStats: MachineStats | undefined;
  private worker: Worker | undefined;
  private nextControlId = 1;
  private readonly controls = new Map<
    number,
    { resolve: (m: string) => void; reject: (e: Error) => void }
  >();
  private exitFromWorker: VmExit | undefined;
  private devices: DeviceRow[] = [];
  private history: VmStats[] = [];
  private stopTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    private readonly workerPath: string,
    private readonly events: VmRunnerEvents,
  ) {}

  private send(m: ToWorker): void {
    this.worker?.postMessage(m);
  }

  private setState(s: VmState): void {
    this.state = s;
    if (s !== 'starting') this.incoming = undefined;
    this.events.state(s, this.lastExit, this.incoming);
  }

  /**
   * `bootImages`: the config's boot files already read (preloadBootImages), moved to the worker.
   * `restore`: resume from a saved-VM file (its bytes, if already read, are moved too).
   */
  start(
    cfg: VmConfig,
    dataDir?: string,
    diskKeys?: (Uint8Array | null)[],
    bootImages?: BootImages,
    restore?: { file: string; bytes?: Uint8Array },
    incoming?: string,
  ): void {
    if (this.worker) throw new Error('already running');
    this.scrollbacks.clear();
    this.finalStats = undefined;
    this.history = [];
    this.lastExit = undefined;
    this.exitFromWorker = undefined;
    const w = spawnVmWorker(this.workerPath);
    startupMark('worker spawned');
    const thread = w.threadId;
    this.worker = w;
    w.on('message', (m: FromWorker) => this.onMessage(m));
    w.on('error', (e) => {
      this.exitFromWorker ??= { kind: 'error', message: e.message };
    });
    w.on('exit', () => {
      // A worker that died (or was terminated) could not leave the round: free its disks' slots.
      releaseCfqThread(cfqMemory, thread);
      this.onWorkerExit(w);
    });
    this.incoming = incoming;
    this.setState('starting');
    const images = bootImages ? [bootImages.firmware, bootImages.kernel, bootImages.initrd] : [];
    this.worker.postMessage(
      {
        type: 'start',
        config: cfg,
        dataDir,
        ...(diskKeys ? { diskKeys } : {}),
        ...(bootImages ? { bootImages } : {}),
        ...(restore ? { restore } : {}),
        ...(incoming ? { incoming } : {}),
      } satisfies ToWorker,
      // Moved, not copied, where a file's bytes own their whole buffer.
      [...images, restore?.bytes ? { data: restore.bytes } : undefined].flatMap((i) =>
        i && i.data.byteOffset === 0 && i.data.byteLength === i.data.buffer.byteLength
          ? [i.data.buffer as ArrayBuffer]
          : [],
      ),
    );
  }

  private onMessage(m: FromWorker): void {
    switch (m.type) {
      case 'console':
        this.scrollback(m.stream).append(m.data);
        this.events.console(m.data, m.stream);
        return;
      case 'control-result': {
        const c = this.controls.get(m.id);
        this.controls.delete(m.id);
        if (m.ok) c?.resolve(m.message);
        else c?.reject(new Error(m.message));
        return;
      }
      case 'stats':
        this.history.push(m.stats);
        if (this.history.length > HISTORY_SAMPLES) this.history.shift();
        this.events.stats(m.stats);
        return;
      case 'devices':
        this.devices = m.devices;
        this.events.devices(m.devices);
        return;
      case 'state':
        if (this.state !== 'stopping') this.setState(m.state);
        return;
      case 'log':
        this.events.log(m.message);
        return;
      case 'disk-switched':
        this.events.diskSwitched?.(m.index, m.disk, m.from);
        return;
      case 'arrived':
        this.events.arrived?.(m.config, m.from);
        return;
      case 'switch-link':
        joinSwitch(m.name, m.port);
        return;
      case 'exit':
        this.exitFromWorker = m.exit;
        this.finalStats = m.stats;
        return;
    }
  }

  private onWorkerExit(w: Worker): void {
    if (this.worker !== w) return;
    if (this.stopTimer) clearTimeout(this.stopTimer);
    this.stopTimer = undefined;
    this.worker = undefined;
    this.lastExit = this.exitFromWorker ?? { kind: 'killed' };
    // A stopped VM's devices have nothing to control.
    this.devices = this.devices.map(({ controls: _, ...d }) => ({ ...d, state: 'off' }));
    for (const c of this.controls.values()) c.reject(new Error('the VM stopped'));
    this.controls.clear();
    this.setState('stopped');
  }

  /** Graceful: the run loop ends at the next slice; force (or a stuck worker) terminates it. */
  stop(force = false): void {
    const w = this.worker;
    if (!w) return;
    if (force) {
      this.exitFromWorker = { kind: 'killed' };
      void w.terminate();
      return;
    }
    this.setState('stopping');
    this.send({ type: 'stop' });
    this.stopTimer ??= setTimeout(() => {
      this.exitFromWorker = { kind: 'killed' };
      void w.terminate();
    }, STOP_GRACE_MS);
  }

  pause(): void {
    this.send({ type: 'pause' });
  }
  resume(): void {
    this.send({ type: 'resume' });
  }
  reset(): void {
    if (!this.worker) return;
    const note = new TextEncoder().encode('\r\n[wasmvisor: reset]\r\n');
    for (const stream of this.scrollbacks.keys()) {
      this.onMessage({ type: 'console', stream, data: note });
    }
    this.send({ type: 'reset' });
  }

  /** Keyboard input to `stream` (default: the console the VM boots on). */
  input(bytes: Uint8Array, stream?: ConsoleStream): void {
    this.send({ type: 'input', data: bytes, stream });
  }

  /** What a console printed so far (bounded), so a late attach shows the boot log. */
  scrollback(stream: ConsoleStream): ByteRing {
    let r = this.scrollbacks.get(stream);
    if (!r) this.scrollbacks.set(stream, (r = new ByteRing()));
    return r;
  }

  /** Changes a device control in the worker; resolves to the outcome the device reports. */
  setControl(device: string, control: string, value: string): Promise<string> {
    return this.request(device, (id) => ({ type: 'control', id, device, control, value }));
  }

  /**
   * Saves the VM to `path` in the worker, which then stops it; resolves to the outcome. Saving
   * waits for disk requests in flight and writes the whole RAM, so it may take seconds.
   */
  save(path: string): Promise<string> {
    return this.request('save', (id) => ({ type: 'save', id, path }), SAVE_TIMEOUT_MS);
  }

  /** Live migration to the wasmvisor waiting at `uri`; resolves to the outcome. */
  migrate(uri: string): Promise<string> {
    return this.request('migrate', (id) => ({ type: 'migrate', id, uri }), MIGRATE_TIMEOUT_MS);
  }

  /**
   * Takes, reverts to or deletes VM snapshot `name` in the worker; resolves to the outcome (a
   * revert once the VM runs from the snapshot). Takes and reverts move the whole RAM.
   */
  vmSnapshot(action: VmSnapshotAction, name: string): Promise<string> {
    return this.request(
      `snapshot ${name}`,
      (id) => ({ type: 'vm-snapshot', id, action, name }),
      SAVE_TIMEOUT_MS,
    );
  }

  /** A disk snapshot operation in the worker (the VM paused); resolves to the outcome. */
  diskSnapshot(device: string, action: DiskSnapshotAction, snapshot: string): Promise<string> {
    return this.request(device, (id) => ({ type: 'disk-snapshot', id, device, action, snapshot }));
  }

  /**
   * Switches disk `device` to a new qcow2 overlay `file` (absolute) while the guest runs
   * (snapshot_blkdev); resolves to the outcome. Creating the file and reopening the disk may
   * take a few seconds on a slow host.
   */
  diskOverlay(device: string, file: string): Promise<string> {
    return this.request(
      device,
      (id) => ({ type: 'disk-overlay', id, device, file }),
      SAVE_TIMEOUT_MS,
    );
  }

  /** Sends a request the worker answers with a 'control-result' of the same id. */
  private request(
    device: string,
    msg: (id: number) => ToWorker,
    timeoutMs = CONTROL_TIMEOUT_MS,
  ): Promise<string> {
    if (!this.worker) return Promise.reject(new Error('the VM is not running'));
    const id = this.nextControlId++;
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.controls.delete(id);
        reject(new Error(`${device}: no answer within ${timeoutMs / 1000} s`));
      }, timeoutMs);
      this.controls.set(id, {
        resolve: (m) => (clearTimeout(t), resolve(m)),
        reject: (e) => (clearTimeout(t), reject(e)),
      });
      this.send(msg(id));
    });
  }

  get running(): boolean {
    return this.worker !== undefined;
  }

  deviceList(): DeviceRow[] {
    return this.devices;
  }

  statsHistory(): VmStats[] {
    return [...this.history];
  }

  /** Resolves once the worker is gone (immediately if there is none). */
  whenStopped(): Promise<void> {
    const w = this.worker;
    if (!w) return Promise.resolve();
    return new Promise((r) => w.once('exit', () => r()));
  }
}
