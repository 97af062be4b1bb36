/**
 * The host API: one object behind the CLI, the web server and Electron's IPC. It owns the VM
 * definitions and one VmRunner (worker thread) per running VM, and pushes events to subscribers.
 */
import { parseMigrationUri } from '../vm/migration/protocol.js';
import { ConfigError, type DiskConfig, type VmConfig } from '../vm/config.js';
import { MAX_PASSPHRASE_BYTES, disksNeedingKeys } from '../vm/disk-encryption.js';
import {
  consoleStreams,
  controlAccepts,
  controlExpects,
  type ConsoleStream,
  type DefinitionError,
  type DeviceRow,
  type DiskSnapshotAction,
  type HostEvent,
  type VmSnapshotAction,
  type VmSnapshotInfo,
  type VmState,
  type VmStats,
  type VmSummary,
} from './api-types.js';
import {
  checkSnapshotName,
  deleteVmSnapshot,
  listVmSnapshots,
  snapshotDir,
  snapshotFile,
} from '../vm/vmstate/vm-snapshots.js';
import { checkDisks, readSavedVm } from '../vm/vmstate/saved-vm.js';
import { DefinitionStore } from './definitions.js';
import { existsSync, mkdirSync, readdirSync, statSync, unlinkSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import type { SavedStateInfo } from './api-types.js';
import { userDataDir } from './data-dir.js';
import { createBlankImage } from '../../devices/block/create-image.js';
import { human } from '../../devices/block/human-size.js';
import { VmRunner } from './vm-runner.js';
import { vmWorkerPath } from './worker-path.js';

export interface HostApiOptions {
  /** Where definitions live; default: the per-platform user data dir (or $WASMVISOR_DATA_DIR). */
  dataDir?: string;
  workerPath?: string;
}

/** A request the caller got wrong (unknown VM, wrong state, invalid definition). */
export class HostError extends Error {}

export type ConsoleListener = (bytes: Uint8Array) => void;

export interface ConsoleAttachment {
  /** What the console printed so far (bounded), so a late attach shows the boot log. */
  scrollback: Uint8Array;
  detach(): void;
}

export class HostApi {
  readonly dataDir: string;
  private readonly store: DefinitionStore;
  private readonly workerPath: string;
  private readonly runners = new Map<string, VmRunner>();
  private readonly listeners = new Set<(e: HostEvent) => void>();
  /** VMs resuming from their managed saved state: the file goes once the VM runs. */
  private readonly resuming = new Set<string>();
  /** Console listeners by "vm\0stream". */
  private readonly consoles = new Map<string, Set<ConsoleListener>>();

  constructor(opts: HostApiOptions = {}) {
    this.dataDir = opts.dataDir ?? userDataDir();
    this.store = new DefinitionStore(this.dataDir);
    this.workerPath = opts.workerPath ?? vmWorkerPath();
  }

  /** Subscribes to host events; returns the unsubscribe function. */
  subscribe(fn: (e: HostEvent) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  private emit(e: HostEvent): void {
    for (const fn of this.listeners) fn(e);
  }

  private emitList(): void {
    this.emit({ type: 'vms', vms: this.listVms() });
  }

  private config(name: string): VmConfig {
    const c = this.store.get(name);
    if (!c) throw new HostError(`no VM named "${name}"`);
    return c;
  }

  private stateOf(name: string): VmState {
    return this.runners.get(name)?.state ?? 'stopped';
  }

  listVms(): VmSummary[] {
    return this.store.list().map((config) => {
      const r = this.runners.get(config.name);
      const savedState = this.savedState(config.name);
      return {
        config,
        state: r?.state ?? 'stopped',
        lastExit: r?.lastExit,
        ...(r?.incoming ? { incoming: r.incoming } : {}),
        ...(savedState ? { savedState } : {}),
      };
    });
  }

  /** Where saveVm puts a VM's state when no path is given (libvirt's "managed save"). */
  savedStatePath(name: string): string {
    return join(this.dataDir, 'saved', `${name}.vm`);
  }

  /** The VM's managed saved state, if there is one. */
  savedState(name: string): SavedStateInfo | undefined {
    try {
      const st = statSync(this.savedStatePath(name));
      return { path: this.savedStatePath(name), savedAt: st.mtime.toISOString(), bytes: st.size };
    } catch {
      return undefined;
    }
  }

  /**
   * Saves a running VM to `path` (absolute; default: its managed saved state, which the UI's
   * Resume and startVm(name, …, { resume: true }) use) and stops it; resolves to the outcome.
   */
  async saveVm(name: string, path?: string): Promise<string> {
    const r = this.active(name);
    if (path !== undefined && !isAbsolute(path)) {
      throw new HostError(`the saved-state path must be absolute: ${path}`);
    }
    const file = path ?? this.savedStatePath(name);
    if (path === undefined) mkdirSync(join(this.dataDir, 'saved'), { recursive: true });
    try {
      const message = await r.save(file);
      this.emitList();
      return message;
    } catch (e) {
      throw new HostError((e as Error).message);
    }
  }

  /**
   * Migrates running VM `name` live to the wasmvisor waiting at `uri` ("tcp:HOST:PORT"): it
   * stops here once it runs there (lastExit { kind: 'migrated' }); resolves to the outcome.
   */
  async migrateVm(name: string, uri: string): Promise<string> {
    const r = this.active(name);
    try {
      parseMigrationUri(uri);
    } catch (e) {
      throw new HostError((e as Error).message);
    }
    try {
      return await r.migrate(uri);
    } catch (e) {
      throw new HostError((e as Error).message);
    }
  }

  /** Where a VM's snapshots live (DATA_DIR/snapshots/NAME; see vm-snapshots.ts). */
  snapshotsDir(name: string): string {
    try {
      return snapshotDir(this.dataDir, name);
    } catch (e) {
      throw new HostError((e as Error).message);
    }
  }

  /** The VM's snapshots, oldest first (a damaged file is listed with its error). */
  async listSnapshots(name: string): Promise<VmSnapshotInfo[]> {
    return listVmSnapshots(this.snapshotsDir(name), this.config(name));
  }

  /**
   * Takes, reverts to or deletes VM snapshot `snapshot` of `name`. A take needs the VM running
   * (it runs on); a revert of a running VM happens in its worker (the console goes on), of a
   * stopped VM it starts the VM from the snapshot; a delete works either way. Rejects with
   * HostError saying why not; nothing is changed then.
   */
  async vmSnapshot(name: string, action: VmSnapshotAction, snapshot: string): Promise<string> {
    const cfg = this.config(name);
    const dir = this.snapshotsDir(name);
    try {
      checkSnapshotName(snapshot);
      const r = this.runners.get(name);
      let message: string;
      if (r?.running) {
        message = await r.vmSnapshot(action, snapshot);
      } else if (action === 'take') {
        throw new HostError(`"${name}" is not running: start it to take a snapshot`);
      } else if (action === 'delete') {
        message = await deleteVmSnapshot(dir, snapshot, cfg);
      } else {
        const file = snapshotFile(dir, snapshot);
        const saved = await readSavedVm(file).catch((e: Error) => {
          throw new HostError(
            e.message === `${file}: no such file` ? `no snapshot named "${snapshot}"` : e.message,
          );
        });
        await checkDisks(saved);
        this.startVm(name, undefined, { snapshot });
        message = `"${name}" starts from snapshot "${snapshot}"`;
      }
      if (action !== 'revert') {
        this.emit({ type: 'snapshots', name, snapshots: await listVmSnapshots(dir, cfg) });
      }
      return message;
    } catch (e) {
      // VmSnapshotError, StateFileError, the worker's answer: each is one line for the caller.
      if (e instanceof HostError) throw e;
      throw new HostError((e as Error).message);
    }
  }

  definitionErrors(): DefinitionError[] {
    return this.store.loadErrors();
  }

  private guard<T>(f: () => T): T {
    try {
      return f();
    } catch (e) {
      if (e instanceof ConfigError) throw new HostError(e.message);
      throw e;
    }
  }

  createVm(config: unknown): VmSummary {
    const c = this.guard(() => this.store.create(config));
    this.emitList();
    return { config: c, state: 'stopped' };
  }

  /** The names of the VM's snapshot files (without reading them). */
  private snapshotNames(name: string): string[] {
    try {
      return readdirSync(this.snapshotsDir(name)).filter((f) => f.endsWith('.vm'));
    } catch {
      return [];
    }
  }

  /**
   * Refuses to rename or delete a VM that has snapshots: they are kept under its name and hold
   * its definition, so they would be lost to it (libvirt refuses to undefine one, too).
   */
  private keepSnapshots(name: string, what: string): void {
    const n = this.snapshotNames(name).length;
    if (n) {
      throw new HostError(
        `cannot ${what} "${name}": it has ${n} snapshot${n === 1 ? '' : 's'}, kept under its name; delete ${n === 1 ? 'it' : 'them'} first`,
      );
    }
  }

  updateVm(name: string, config: unknown): VmSummary {
    if (this.runners.get(name)?.running) throw new HostError(`stop "${name}" before editing it`);
    const newName = (config as { name?: unknown } | null)?.name;
    if (typeof newName === 'string' && newName !== name) this.keepSnapshots(name, 'rename');
    const c = this.guard(() => this.store.update(name, config));
    if (c.name !== name) this.runners.delete(name);
    this.emitList();
    return { config: c, state: this.stateOf(c.name) };
  }

  deleteVm(name: string): void {
    if (this.runners.get(name)?.running) throw new HostError(`stop "${name}" before deleting it`);
    this.keepSnapshots(name, 'delete');
    this.guard(() => this.store.delete(name));
    this.runners.delete(name);
    this.emitList();
  }

  private runner(name: string): VmRunner {
    let r = this.runners.get(name);
    if (!r) {
      r = new VmRunner(this.workerPath, {
        state: (state, lastExit, incoming) => {
          this.emit({ type: 'state', name, state, lastExit, ...(incoming ? { incoming } : {}) });
          if (!this.resuming.has(name) || state === 'starting') return;
          // Resumed (running): the managed file is used up, as libvirt's managed save is. A
          // resume that failed keeps it, with the reason as the VM's exit.
          this.resuming.delete(name);
          if (state === 'running' || state === 'paused') {
            try {
              unlinkSync(this.savedStatePath(name));
            } catch {
              // already gone
            }
          }
          this.emitList();
        },
        stats: (stats) => this.emit({ type: 'stats', name, stats }),
        devices: (devices) => this.emit({ type: 'devices', name, devices }),
        console: (bytes, stream) => {
          for (const fn of this.consoles.get(`${name}\0${stream}`) ?? []) fn(bytes);
        },
        log: (message) => this.emit({ type: 'log', name, message }),
        diskSwitched: (index, disk, from) => this.recordSwitch(name, index, disk, from),
        arrived: (config, from) => this.arrived(name, config, from),
      });
      this.runners.set(name, r);
    }
    return r;
  }

  /**
   * A VM migrated into `name` (startVm's `incoming`): its definition (memory, devices, disks) is
   * the one it came with, under this VM's name, so that a later start boots what arrived.
   */
  private arrived(name: string, config: VmConfig, from: string): void {
    try {
      this.store.update(name, { ...config, name });
      this.emit({
        type: 'log',
        name,
        message: `migrated here from ${from}; the definition is its`,
      });
    } catch (e) {
      const why = (e as Error).message;
      this.emit({
        type: 'log',
        name,
        message: `migrated here from ${from}; not kept as the definition: ${why}`,
      });
    }
    this.emitList();
  }

  private active(name: string): VmRunner {
    this.config(name);
    const r = this.runners.get(name);
    if (!r?.running) throw new HostError(`"${name}" is not running`);
    return r;
  }

  /**
   * The disks of `name` whose passphrases must be given to startVm: encrypted (raw LUKS or qcow2
   * with LUKS) and with no key file in the definition.
   */
  async diskKeysNeeded(name: string): Promise<{ index: number; path: string }[]> {
    const disks = this.config(name).disks;
    return (await disksNeedingKeys(disks)).map((index) => ({ index, path: disks[index]!.path }));
  }

  /**
   * Starts `name`. `passphrases[i]` is the passphrase of disk i (see diskKeysNeeded); they go to
   * the VM's worker only, are never stored or logged, and a wrong one ends the start with
   * "wrong passphrase for PATH" as the VM's exit.
   */
  /**
   * `opts.resume`: from the VM's managed saved state (see saveVm); `opts.restore`: from that
   * saved-VM file (absolute path); `opts.snapshot`: from that VM snapshot (its disks reverted). The file's definition must be this VM's (same name); a file
   * that does not fit ends the start with the reason as the VM's exit.
   * `opts.incoming` ("tcp:HOST:PORT", `wasmvisor run --incoming`'s): wait there (state starting)
   * for a VM migrating live (migrateVm of this or another host) and run it as this VM; its
   * definition replaces this one's (see arrived). Stopping gives up the wait.
   */
  startVm(
    name: string,
    passphrases?: readonly (string | null)[],
    opts: { resume?: boolean; restore?: string; snapshot?: string; incoming?: string } = {},
  ): void {
    const cfg = this.config(name);
    const r = this.runner(name);
    if (r.running) throw new HostError(`"${name}" is already running`);
    if (opts.incoming !== undefined) {
      try {
        parseMigrationUri(opts.incoming, true);
      } catch (e) {
        throw new HostError((e as Error).message);
      }
      r.start(cfg, this.dataDir, undefined, undefined, undefined, opts.incoming);
      return;
    }
    let restore: string | undefined = opts.restore;
    if (opts.snapshot !== undefined) {
      // From one of its VM snapshots (the disks reverted first): see vmSnapshot.
      let file: string;
      try {
        file = snapshotFile(this.snapshotsDir(name), opts.snapshot);
      } catch (e) {
        throw new HostError((e as Error).message);
      }
      if (!existsSync(file)) throw new HostError(`no snapshot named "${opts.snapshot}"`);
      restore = file;
    }
    if (restore !== undefined && !isAbsolute(restore)) {
      throw new HostError(`the saved-state path must be absolute: ${restore}`);
    }
    if (opts.resume) {
      if (!this.savedState(name)) throw new HostError(`"${name}" has no saved state`);
      restore = this.savedStatePath(name);
    }
    let keys: (Uint8Array | null)[] | undefined;
    if (passphrases?.length) {
      if (passphrases.length > cfg.disks.length) {
        throw new HostError(`"${name}" has ${cfg.disks.length} disks, not ${passphrases.length}`);
      }
      keys = passphrases.map((p) => (typeof p === 'string' ? new TextEncoder().encode(p) : null));
      if (keys.some((k) => k && (k.length === 0 || k.length > MAX_PASSPHRASE_BYTES))) {
        throw new HostError(`a passphrase must be 1 to ${MAX_PASSPHRASE_BYTES} bytes`);
      }
    }
    if (opts.resume) this.resuming.add(name);
    r.start(cfg, this.dataDir, keys, undefined, restore ? { file: restore } : undefined);
  }

  stopVm(name: string, force = false): void {
    this.active(name).stop(force);
  }

  pauseVm(name: string): void {
    this.active(name).pause();
  }

  resumeVm(name: string): void {
    this.active(name).resume();
  }

  resetVm(name: string): void {
    this.active(name).reset();
  }

  listDevices(name: string): DeviceRow[] {
    this.config(name);
    return this.runners.get(name)?.deviceList() ?? [];
  }

  statsHistory(name: string): VmStats[] {
    this.config(name);
    return this.runners.get(name)?.statsHistory() ?? [];
  }

  /** The VM's console stream `stream`, or its default one; refuses streams it does not have. */
  consoleStream(name: string, stream: ConsoleStream | undefined): ConsoleStream {
    const streams = consoleStreams(this.config(name));
    if (stream === undefined) return streams[0]!;
    if (!streams.includes(stream)) {
      throw new HostError(`"${name}" has no console ${stream} (it has ${streams.join(', ')})`);
    }
    return stream;
  }

  /**
   * Output of one console stream (default: the console the VM boots on) from now on goes to
   * `fn`; the scrollback covers what came before.
   */
  attachConsole(name: string, fn: ConsoleListener, stream?: ConsoleStream): ConsoleAttachment {
    const s = this.consoleStream(name, stream);
    const key = `${name}\0${s}`;
    let set = this.consoles.get(key);
    if (!set) this.consoles.set(key, (set = new Set()));
    set.add(fn);
    const scrollback = this.runners.get(name)?.scrollback(s).snapshot() ?? new Uint8Array(0);
    return { scrollback, detach: () => set.delete(fn) };
  }

  consoleInput(name: string, bytes: Uint8Array, stream?: ConsoleStream): void {
    const s = this.consoleStream(name, stream);
    this.active(name).input(bytes, s);
  }

  /**
   * Changes a device control of a running VM (the controls each device row lists); resolves to
   * the outcome the device reports, rejects with HostError saying why not.
   */
  async setDeviceControl(
    name: string,
    device: string,
    control: string,
    value: string,
  ): Promise<string> {
    const r = this.active(name);
    const row = r.deviceList().find((d) => d.name === device);
    if (!row) throw new HostError(`"${name}" has no device ${device}`);
    const c = row.controls?.find((x) => x.id === control);
    if (!c) throw new HostError(`${device} has no control "${control}"`);
    if (!controlAccepts(c, value)) {
      throw new HostError(`${device}: ${c.label} must be ${controlExpects(c)}`);
    }
    try {
      return await r.setControl(device, control, value);
    } catch (e) {
      throw new HostError((e as Error).message);
    }
  }

  /**
   * Creates, applies or deletes an internal snapshot of one of a paused VM's qcow2 disks;
   * resolves to the outcome, rejects with HostError saying why not (running, not qcow2, no
   * such snapshot, a name taken).
   */
  async diskSnapshot(
    name: string,
    device: string,
    action: DiskSnapshotAction,
    snapshot: string,
  ): Promise<string> {
    const r = this.active(name);
    if (r.state !== 'paused') throw new HostError(`pause "${name}" before changing snapshots`);
    const row = r.deviceList().find((d) => d.name === device);
    if (!row?.disk) throw new HostError(`"${name}" has no disk ${device}`);
    if (row.disk.format !== 'qcow2') {
      throw new HostError(`${device}: a ${row.disk.format} image has no internal snapshots`);
    }
    if (!snapshot || snapshot.length > 256 || [...snapshot].some((ch) => ch < ' ')) {
      throw new HostError('a snapshot name is 1 to 256 printable characters');
    }
    try {
      return await r.diskSnapshot(device, action, snapshot);
    } catch (e) {
      throw new HostError((e as Error).message);
    }
  }

  /**
   * Switches disk `device` of running VM `name` to a new qcow2 overlay `file` (absolute; it must
   * not exist) whose backing file is the disk's image, while the guest runs (QEMU's
   * snapshot_blkdev). The VM's definition then names the overlay (format qcow2): the guest's new
   * writes live only there. Resolves to the outcome; rejects with HostError saying why not
   * (refused before anything changed: no such disk, read-only, snapshot=on, encrypted, FILE
   * exists or cannot be made).
   */
  async diskOverlay(name: string, device: string, file: string): Promise<string> {
    const r = this.active(name);
    if (!isAbsolute(file)) throw new HostError(`the overlay's path must be absolute: ${file}`);
    if (!r.deviceList().some((d) => d.name === device && d.disk)) {
      throw new HostError(`"${name}" has no disk ${device}`);
    }
    this.switchNotes.delete(name);
    try {
      const message = await r.diskOverlay(device, file);
      const note = this.switchNotes.get(name);
      this.switchNotes.delete(name);
      return note ? `${message}; ${note}` : message;
    } catch (e) {
      throw new HostError((e as Error).message);
    }
  }

  /**
   * A new blank disk image (the VM dialog's "New image…"): at `path` (absolute, must not exist),
   * or at the first free `images/VM-disk-N.img` (raw) or `.qcow2` in the data directory. Never writes over a
   * file; rejects with HostError saying why not.
   */
  async createDiskImage(o: {
    path?: string;
    vm?: string;
    format: 'raw' | 'qcow2';
    size: number;
  }): Promise<{ path: string; message: string }> {
    let path = o.path;
    if (path === undefined) {
      const dir = join(this.dataDir, 'images');
      mkdirSync(dir, { recursive: true });
      const stem = /^[\w.-]{1,64}$/.test(o.vm ?? '') ? o.vm! : 'new';
      for (let n = 0; path === undefined || existsSync(path); n++) {
        path = join(dir, `${stem}-disk-${n}.${o.format === 'raw' ? 'img' : 'qcow2'}`);
      }
    }
    if (!isAbsolute(path)) throw new HostError(`the image's path must be absolute: ${path}`);
    try {
      await createBlankImage(path, o.format, o.size);
    } catch (e) {
      throw new HostError((e as Error).message);
    }
    return { path, message: `created ${path} (${o.format}, ${human(o.size)})` };
  }

  /** What the last switch did to the definition (appended to diskOverlay's outcome). */
  private readonly switchNotes = new Map<string, string>();

  /**
   * A disk of `name` now lives in an overlay: its definition must name it, or the next start
   * would boot from the old image without the guest's writes since the switch. Only the path
   * and format change (the definition's own cache, scheduler and bus stay), and only if the
   * definition still names the image the disk was on.
   */
  private recordSwitch(name: string, index: number, disk: DiskConfig, from: string): void {
    const cfg = this.store.get(name);
    const d = cfg?.disks[index];
    let note: string;
    if (!cfg || !d || d.path !== from) {
      note = `the definition of "${name}" does not name ${from} as disk ${index}: not changed`;
    } else {
      try {
        const disks = cfg.disks.map((x, i) => {
          if (i !== index) return x;
          // No key file: an encrypted disk is never switched (its overlay would be clear).
          const next: DiskConfig = { ...x, path: disk.path, format: disk.format };
          delete next.keyFile;
          return next;
        });
        this.store.update(name, { ...cfg, disks });
        note = `the definition of "${name}" now names ${disk.path}`;
        this.emitList();
      } catch (e) {
        note = `the definition of "${name}" could not be updated (${(e as Error).message}): it still names ${from}`;
      }
    }
    this.switchNotes.set(name, note);
    this.emit({ type: 'log', name, message: `disk ${index}: ${from} → ${disk.path}; ${note}` });
  }

  /** Resolves when `name` reaches `state` (for tests and scripted use). */
  waitForState(name: string, state: VmState, timeoutMs = 30_000): Promise<void> {
    if (this.stateOf(name) === state) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        off();
        reject(new Error(`"${name}" did not reach ${state} within ${timeoutMs} ms`));
      }, timeoutMs);
      const off = this.subscribe((e) => {
        if (e.type === 'state' && e.name === name && e.state === state) {
          clearTimeout(t);
          off();
          resolve();
        }
      });
    });
  }

  /** Stops every VM (forcefully after the grace period) — on quit. */
  async shutdown(): Promise<void> {
    const all = [...this.runners.values()].filter((r) => r.running);
    for (const r of all) r.stop();
    await Promise.all(all.map((r) => r.whenStopped()));
  }
}
