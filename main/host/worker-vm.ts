/**
 * One VM in a worker thread for a terminal session (`wasmvisor run`): the CLI's main thread only
 * relays the terminal, so guest code never runs there. VmControl is the small command interface
 * the CLI and its Ctrl-A monitor use to drive the VM, whatever runs it.
 */
import type { VmConfig } from '../vm/config.js';
import type { MachineStats } from '../vm/machine.js';
import type { BootImages } from '../vm/images.js';
import type {
  ConsoleStream,
  DeviceRow,
  VmExit,
  VmSnapshotAction,
  VmSnapshotInfo,
  VmState,
  VmStats,
} from './api-types.js';
import { userDataDir } from './data-dir.js';
import { VmRunner } from './vm-runner.js';
import { vmWorkerPath } from './worker-path.js';

/** What a terminal session (and a monitor inside it) can do with its VM. */
export interface VmControl {
  readonly state: VmState;
  /** Keyboard input: to `stream`, or the console the VM boots on. */
  input(bytes: Uint8Array, stream?: ConsoleStream): void;
  pause(): void;
  resume(): void;
  /** Host reset: the machine is rebuilt from its definition (the guest reboots). */
  reset(): void;
  /** Graceful stop (at the next slice; terminated after a grace period), or at once if force. */
  stop(force?: boolean): void;
  devices(): DeviceRow[];
  /** The latest stats snapshot (about 4 per second), if one came yet. */
  stats(): VmStats | undefined;
  /** Changes a device control (see DeviceRow.controls); resolves to the outcome. */
  setDeviceControl(device: string, control: string, value: string): Promise<string>;
  /** Saves the VM to a file and stops it (it resumes with `run --restore FILE`). */
  saveVm(path: string): Promise<string>;
  /** Migrates the VM live to `run --incoming URI` elsewhere; this one then stops. */
  migrateVm(uri: string): Promise<string>;
  /** Takes, reverts to or deletes a VM snapshot (savevm, loadvm, delvm); resolves to the outcome. */
  vmSnapshot(action: VmSnapshotAction, name: string): Promise<string>;
  /** The VM's snapshots, oldest first (`info snapshots`). */
  listSnapshots(): Promise<VmSnapshotInfo[]>;
  /**
   * snapshot_blkdev: switches disk `device` to a new qcow2 overlay `file` (absolute) over its
   * image while the guest runs; resolves to the outcome.
   */
  diskOverlay(device: string, file: string): Promise<string>;
}

export interface WorkerVmOptions {
  /** Console output of every stream, in the order the guest wrote it. */
  output(bytes: Uint8Array, stream: ConsoleStream): void;
  log(message: string): void;
  workerPath?: string;
  /** Passphrases of encrypted disks asked for on the terminal, by disk index. */
  diskKeys?: (Uint8Array | null)[];
  /** The config's boot files, already read (preloadBootImages). */
  bootImages?: BootImages;
  /** Resume from this saved-VM file (the config is the file's), its bytes if already read. */
  restore?: { file: string; bytes?: Uint8Array };
  /** Wait on "tcp:HOST:PORT" for a VM migrating live, and run it (the config is its). */
  incoming?: string;
}

export interface WorkerVmEnd {
  exit: VmExit;
  /** The machine's totals (absent when the worker was killed or failed before running). */
  stats?: MachineStats;
}

export class WorkerVm implements VmControl {
  private readonly runner: VmRunner;
  private latest: VmStats | undefined;
  private ended: ((end: WorkerVmEnd) => void) | undefined;
  private readonly diskKeys: (Uint8Array | null)[] | undefined;
  private readonly bootImages: BootImages | undefined;
  private readonly restore: WorkerVmOptions['restore'];
  private readonly incoming: string | undefined;
  private readonly switched: { from: string; to: string }[] = [];

  constructor(
    private readonly cfg: VmConfig,
    o: WorkerVmOptions,
  ) {
    this.diskKeys = o.diskKeys;
    this.bootImages = o.bootImages;
    this.restore = o.restore;
    this.incoming = o.incoming;
    this.runner = new VmRunner(o.workerPath ?? vmWorkerPath(), {
      state: (state, lastExit) => {
        if (state !== 'stopped') return;
        this.ended?.({ exit: lastExit ?? { kind: 'killed' }, stats: this.runner.finalStats });
      },
      stats: (s) => (this.latest = s),
      devices: () => {},
      console: (bytes, stream) => o.output(bytes, stream),
      log: o.log,
      // The session's definition names the overlay from now on (its snapshots check it).
      diskSwitched: (index, disk, from) => {
        this.cfg.disks[index] = disk;
        // Switched again: the disk that was named at the start now lives in the newest file.
        const earlier = this.switched.find((x) => x.to === from);
        if (earlier) earlier.to = disk.path;
        else this.switched.push({ from, to: disk.path });
      },
    });
  }

  /**
   * The disks switched to overlays in this session (snapshot_blkdev): a CLI run keeps no
   * definition, so the caller tells the user where the guest's writes now are.
   */
  switchedDisks(): readonly { from: string; to: string }[] {
    return this.switched;
  }

  /** Starts the worker; resolves when the VM has ended, with why. */
  run(): Promise<WorkerVmEnd> {
    const done = new Promise<WorkerVmEnd>((r) => (this.ended = r));
    this.runner.start(
      this.cfg,
      undefined,
      this.diskKeys,
      this.bootImages,
      this.restore,
      this.incoming,
    );
    return done;
  }

  get state(): VmState {
    return this.runner.state;
  }
  input(bytes: Uint8Array, stream?: ConsoleStream): void {
    this.runner.input(bytes, stream);
  }
  pause(): void {
    this.runner.pause();
  }
  resume(): void {
    this.runner.resume();
  }
  reset(): void {
    this.runner.reset();
  }
  stop(force = false): void {
    this.runner.stop(force);
  }
  devices(): DeviceRow[] {
    return this.runner.deviceList();
  }
  stats(): VmStats | undefined {
    return this.latest;
  }
  setDeviceControl(device: string, control: string, value: string): Promise<string> {
    return this.runner.setControl(device, control, value);
  }
  saveVm(path: string): Promise<string> {
    return this.runner.save(path);
  }
  migrateVm(uri: string): Promise<string> {
    return this.runner.migrate(uri);
  }
  vmSnapshot(action: VmSnapshotAction, name: string): Promise<string> {
    return this.runner.vmSnapshot(action, name);
  }
  diskOverlay(device: string, file: string): Promise<string> {
    return this.runner.diskOverlay(device, file);
  }
  /** The directory the worker keeps them in (it has no host data dir: the user's). */
  async listSnapshots(): Promise<VmSnapshotInfo[]> {
    // Loaded when asked: a plain boot's start-up does not pay for the qcow2 code.
    const { listVmSnapshots, snapshotDir } = await import('../vm/vmstate/vm-snapshots.js');
    return listVmSnapshots(snapshotDir(userDataDir(), this.cfg.name), this.cfg);
  }
}
