/** Messages between the host (main thread) and one VM's worker thread. */
import type { MessagePort } from 'node:worker_threads';
import type { DiskConfig, VmConfig } from '../vm/config.js';
import type {
  ConsoleStream,
  DeviceRow,
  DiskSnapshotAction,
  VmExit,
  VmSnapshotAction,
  VmStats,
} from '../host/api-types.js';
import type { MachineStats } from '../vm/machine.js';
import type { BootImages } from '../vm/images.js';

/** What a VM worker gets at creation (`workerData`). */
export interface VmWorkerData {
  /** The host's cfq memory, shared by all VM workers (cfq-shared.ts): slices span the VMs. */
  cfqMemory: SharedArrayBuffer;
}

export type ToWorker =
  /** `dataDir`: the host's data directory (NIC captures started from the UI go under it). */
  /**
   * `diskKeys`: passphrases of encrypted disks typed at a terminal, by disk index (a disk with a
   * key file reads it itself) — only ever held in memory, never logged.
   */
  /** `bootImages`: the config's boot files, read by the host while the worker started. */
  /**
   * `restore`: resume from a saved-VM file instead of booting (its definition replaces
   * `config`, whose name must match); `bytes`, when the host already read the file.
   */
  /** `incoming`: wait on "tcp:HOST:PORT" for a VM migrating live, and run it (its definition). */
  | {
      type: 'start';
      config: VmConfig;
      restore?: { file: string; bytes?: Uint8Array };
      incoming?: string;
      dataDir?: string;
      diskKeys?: (Uint8Array | null)[];
      bootImages?: BootImages;
    }
  /** Keyboard input to one console (default: the VM's console). */
  | { type: 'input'; data: Uint8Array; stream?: ConsoleStream }
  /** A device control change; answered by 'control-result' with the same id. */
  | { type: 'control'; id: number; device: string; control: string; value: string }
  /** A disk snapshot operation (the VM paused); answered by 'control-result' with the same id. */
  | {
      type: 'disk-snapshot';
      id: number;
      device: string;
      action: DiskSnapshotAction;
      snapshot: string;
    }
  /**
   * snapshot_blkdev: switches disk `device` to a new qcow2 overlay `file` (absolute) over its
   * image while the guest runs; answered by 'control-result' with the same id, after a
   * 'disk-switched' when it switched.
   */
  | { type: 'disk-overlay'; id: number; device: string; file: string }
  /**
   * Saves the VM to `path` (pausing it first) and, once the file is complete, stops it: the
   * exit is { kind: 'saved' }. Answered by 'control-result' with the same id.
   */
  | { type: 'save'; id: number; path: string }
  /**
   * Migrates the VM live to the wasmvisor waiting at `uri` ("tcp:HOST:PORT"); once it runs
   * there, this one stops ({ kind: 'migrated' }). Answered by 'control-result' with the same id
   * (the VM runs on here when it failed).
   */
  | { type: 'migrate'; id: number; uri: string }
  /**
   * A VM snapshot in the VM's snapshot directory (vm-snapshots.ts): take it (the VM pauses,
   * then runs on), revert to it (the machine is rebuilt from it in this worker) or delete it.
   * Answered by 'control-result' with the same id (a revert once the VM runs from it again).
   */
  | { type: 'vm-snapshot'; id: number; action: VmSnapshotAction; name: string }
  /** Ends the run loop at the next slice boundary; the worker then exits by itself. */
  | { type: 'stop' }
  | { type: 'pause' }
  | { type: 'resume' }
  /** Host reset button: rebuilds the machine from its definition in the same worker. */
  | { type: 'reset' };

export type FromWorker =
  | { type: 'console'; stream: ConsoleStream; data: Uint8Array }
  | { type: 'control-result'; id: number; ok: boolean; message: string }
  | { type: 'stats'; stats: VmStats }
  | { type: 'devices'; devices: DeviceRow[] }
  | { type: 'state'; state: 'running' | 'paused' }
  | { type: 'log'; message: string }
  /**
   * Disk `index` now lives in an overlay (`disk`: its definition now; `from`: the image it was
   * on): the guest's new writes are only there, so whoever keeps the definition must name it.
   */
  | { type: 'disk-switched'; index: number; disk: DiskConfig; from: string }
  /**
   * A VM migrated here (`incoming`) and runs: `config` is its definition (the source's), `from`
   * the peer it came from.
   */
  | { type: 'arrived'; config: VmConfig; from: string }
  /** A NIC opened `switch:NAME`: plug `port` (transferred) into the main thread's switch. */
  | { type: 'switch-link'; name: string; port: MessagePort }
  /** The last message; `stats` are the machine's totals (the CLI's --stats prints them). */
  | { type: 'exit'; exit: VmExit; stats?: MachineStats };
