/**
 * One VM's worker thread: builds the VirtMachine from a VmConfig and runs it, so that guest code
 * never runs on the host's main thread. Console output is batched, stats are posted about 4 times
 * a second, and the exit reason is the last message before the thread ends.
 */
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import { VirtMachine, MachineConfigError, type ConsoleStream } from '../vm/machine.js';
import { Core, vmJit } from '../vm/core.js';
import type { VmConfig } from '../vm/config.js';
import type { BootImages } from '../vm/images.js';
import {
  applyControl,
  ControlError,
  withControls,
  type ControlContext,
} from './device-controls.js';
import { diskInfos, diskSnapshot, withDiskInfo } from './controls/disk-snapshots.js';
import { consoleStreams, type DiskImageInfo, type VmSnapshotAction } from '../host/api-types.js';
import { userDataDir } from '../host/data-dir.js';
import { findDisk, SwitchableDisk } from './controls/disk-controls.js';
import { switchToOverlay } from './controls/disk-overlay.js';
import type { FromWorker, ToWorker, VmWorkerData } from './protocol.js';
import { setProcessCfq } from '../../devices/block/cfq.js';
import { SharedCfqCoordinator } from '../../devices/block/cfq-shared.js';
import { StatsSampler } from './stats-sampler.js';
import {
  deviceRows,
  pciNicRows,
  pciVirtioRows,
  virtioRows,
  withNicBackends,
} from './device-rows.js';
import { VIRT } from '../../devices/platform/memory-map.js';
import { SnapshotOverlays, type Disk } from '../../devices/block/index.js';
import { setSwitchConnector, switchLinkConnector } from '../../devices/net/index.js';
import { startupMark } from '../host/startup-trace.js';
import {
  checkDisks,
  parseSavedVm,
  readSavedVm,
  saveVm,
  type SavedVm,
} from '../vm/vmstate/saved-vm.js';
import {
  deleteVmSnapshot,
  hardwareDiffers,
  snapshotDir,
  snapshotFile,
  takeVmSnapshot,
  VmSnapshotError,
  withImageFile,
} from '../vm/vmstate/vm-snapshots.js';
import { resolve } from 'node:path';
import { openMigratedVm, openSavedVm } from '../vm/vmstate/resume.js';
import { migrateVm, MigrationFailedAfterRelease } from '../vm/migration/source.js';
import { receiveMigration, type IncomingMigration } from '../vm/migration/destination.js';
import { MigrationError } from '../vm/migration/protocol.js';
import { StateFileError } from '../vm/vmstate/file-format.js';

startupMark('worker loaded');

/**
 * Stats go out every 250 ms while the guest runs, every second while it idles (under 1 MIPS in
 * the last interval): an idle VM's worker otherwise woke four times a second to build and send
 * figures that do not move. The charts plot samples by time, so either rate draws the same.
 */
const STATS_INTERVAL_MS = 250;
const IDLE_STATS_INTERVAL_MS = 1000;
const IDLE_MIPS = 1;
/** Disk images' sizes and COR counters change as the guest writes: re-read this often. */
const DISK_INFO_INTERVAL_MS = 5000;
/**
 * Console bytes are sent at most this often (and sooner when this many are queued); output after
 * a quiet spell of this long (the boot's first line, an echoed key, a prompt) goes at once.
 */
const CONSOLE_FLUSH_MS = 16;
const CONSOLE_FLUSH_BYTES = 32 * 1024;

function requirePort(): MessagePort {
  if (!parentPort) throw new Error('vm-worker must run in a worker thread');
  return parentPort;
}
const port = requirePort();

const post = (m: FromWorker, transfer?: (ArrayBuffer | MessagePort)[]): void =>
  port.postMessage(m, transfer);

// cfq disks share slices with the other VMs' disks through the host's memory.
const { cfqMemory } = (workerData ?? {}) as Partial<VmWorkerData>;
if (cfqMemory instanceof SharedArrayBuffer) {
  setProcessCfq(
    new SharedCfqCoordinator(cfqMemory, { log: (message) => post({ type: 'log', message }) }),
  );
}

// switch:NAME joins the main thread's switch, shared with the other VMs' workers.
setSwitchConnector(
  switchLinkConnector((name, link) => post({ type: 'switch-link', name, port: link }, [link])),
);

let machine: VirtMachine | undefined;
/** The running definition: device controls record lasting changes here (kept across resets). */
let config: VmConfig | undefined;
/** The host's data directory, for captures started from the UI (undefined: the default). */
let dataDir: string | undefined;
/** Re-sends the device list (after a control changed something in it). */
let refreshDevices: (() => void) | undefined;
/** Re-reads the disks' image facts (sizes, snapshots), then re-sends the device list. */
let refreshDisks: (() => Promise<void>) | undefined;
let started = false;
let resetRequested = false;
/** A stop that arrived while the disks were still opening. */
let stopEarly = false;
/** Aborted by a stop while an `incoming` worker waits for its VM. */
const incomingWait = new AbortController();
/**
 * Keys typed before the machine exists (disks opening, a saved VM being read): delivered once it
 * does, so a line typed at once after `run --restore` reaches the resumed shell. Bounded.
 */
let earlyInput: { data: Uint8Array; stream?: ConsoleStream }[] = [];
let earlyInputBytes = 0;
const EARLY_INPUT_MAX = 64 * 1024;
/** Where the VM was saved: it then ends with { kind: 'saved' }. */
let savedTo: string | undefined;
/**
 * A live migration past the point where this side let go of the VM (migrateTo's release): how
 * it ended, which the run loop waits for once the machine stopped: the VM runs elsewhere, or
 * it resumes here from the state the failed migration left.
 */
let migration:
  Promise<{ kind: 'migrated'; to: string } | { kind: 'fallback'; saved: SavedVm }> | undefined;
/** Settles once the current machine's run loop ended and its disks are closed. */
let machineClosed: Promise<void> = Promise.resolve();
/**
 * A revert to a VM snapshot, checked and under way: the run loop, once the machine stopped,
 * rebuilds it from `saved` and answers request `id`.
 */
let revertTo: { saved: SavedVm; id: number; name: string; done: () => void } | undefined;
/**
 * Saves and snapshot requests run one at a time, in order: each pauses the machine and a second
 * one must not resume it under the first (a save's guest would run past its saved state).
 */
let snapshotBusy: Promise<void> = Promise.resolve();
/**
 * A take or delete working on the open disks' metadata: the run loop closes the disks only
 * after it (a stop that arrives meanwhile waits for it).
 */
let diskWork: Promise<unknown> = Promise.resolve();
/**
 * A take in progress holds the machine paused; what the host asks meanwhile (pause, resume) is
 * what the machine does once the take is done.
 */
let taking: { resumeAfter: boolean } | undefined;
/** Console output of all streams in the order it came, so a merged view (CLI) stays in order. */
let pending: { stream: ConsoleStream; data: Uint8Array }[] = [];
let pendingBytes = 0;
let flushTimer: ReturnType<typeof setTimeout> | undefined;
/** When console bytes were last sent (performance.now()). */
let lastFlushAt = -Infinity;

function flushConsole(): void {
  if (flushTimer) clearTimeout(flushTimer);
  flushTimer = undefined;
  if (!pendingBytes) return;
  lastFlushAt = performance.now();
  // One message per run of the same stream.
  for (let i = 0; i < pending.length;) {
    const stream = pending[i]!.stream;
    let j = i;
    let n = 0;
    while (j < pending.length && pending[j]!.stream === stream) n += pending[j++]!.data.length;
    const out = new Uint8Array(n);
    let o = 0;
    for (; i < j; i++) {
      out.set(pending[i]!.data, o);
      o += pending[i]!.data.length;
    }
    post({ type: 'console', stream, data: out }, [out.buffer]);
  }
  pending = [];
  pendingBytes = 0;
}

function queueConsole(stream: ConsoleStream, bytes: Uint8Array): void {
  pending.push({ stream, data: bytes.slice() }); // the UART may reuse its buffer
  pendingBytes += bytes.length;
  if (pendingBytes >= CONSOLE_FLUSH_BYTES) flushConsole();
  // Throttled, not debounced: the timer ends the current slice's batch if the last send was
  // long enough ago, so a lone line is not held back 16 ms (it was, before the boot's first byte).
  else {
    flushTimer ??= setTimeout(
      flushConsole,
      Math.max(0, lastFlushAt + CONSOLE_FLUSH_MS - performance.now()),
    );
  }
}

/** Reads a saved-VM file for a start; its definition must be the one the host named. */
async function savedVmFor(
  cfg: VmConfig,
  restore: { file: string; bytes?: Uint8Array; saved?: SavedVm },
): Promise<SavedVm> {
  const saved =
    restore.saved ??
    (restore.bytes ? parseSavedVm(restore.bytes, restore.file) : await readSavedVm(restore.file));
  if (saved.info.config.name !== cfg.name) {
    throw new StateFileError(
      `${restore.file}: saved from VM "${saved.info.config.name}", not "${cfg.name}"`,
    );
  }
  return saved;
}

async function runVm(
  cfgIn: VmConfig,
  diskKeys?: (Uint8Array | null)[],
  preloaded?: BootImages,
  restore?: { file: string; bytes?: Uint8Array },
  incoming?: string,
): Promise<void> {
  const log = (message: string): void => post({ type: 'log', message });
  let cfg = cfgIn;
  /** A VM that came by live migration, told once it runs here (or could not start). */
  let arriving: IncomingMigration | undefined;
  /** Its core, made when its definition came, with the RAM received into it (Core.unbound). */
  let arrivingCore: Core | undefined;
  if (incoming) {
    try {
      log(`waiting for a migrating VM on ${incoming}`);
      arriving = await receiveMigration(incoming, {
        log,
        signal: incomingWait.signal,
        ramFor: (config, ramBytes) => {
          // The JIT as the machine will be built below (the host may choose it on a resume).
          arrivingCore = Core.unbound(VIRT.ram.base, ramBytes, {
            jit: vmJit(cfgIn.jit ?? config.jit),
          });
          return arrivingCore.ram;
        },
      });
    } catch (e) {
      const message = e instanceof MigrationError ? e.message : String(e);
      const stopped = incomingWait.signal.aborted;
      post({ type: 'exit', exit: stopped ? { kind: 'stopped' } : { kind: 'error', message } });
      port.close();
      return;
    }
  }
  let statsTimer: ReturnType<typeof setTimeout> | undefined;
  // snapshot=on overlays outlive resets and reboots, as QEMU's do; thrown away when the VM ends.
  const overlays = new SnapshotOverlays();
  let bootImages = preloaded;
  /** `migrated`: the state of a live migration (its disks are not checked against records). */
  let resumeFrom:
    { file: string; bytes?: Uint8Array; saved?: SavedVm; migrated?: boolean } | undefined = arriving
    ? { file: arriving.saved.file, saved: arriving.saved, migrated: true }
    : restore;
  /** A revert in progress: answered once the machine runs from the snapshot (or failed to). */
  let reverting: { id: number; name: string; done: () => void } | undefined;
  try {
    for (;;) {
      let vm: VirtMachine;
      try {
        const hooks = {
          // Opens the disk images first; each gets the live read-only switch.
          wrapDisk: (d: Disk) => new SwitchableDisk(d),
          overlays,
          diskKey: (i: number) => diskKeys?.[i] ?? undefined,
          // The host's copy serves the first boot; resets read the files again, as before.
          ...(bootImages ? { bootImages } : {}),
        };
        if (resumeFrom) {
          // The saved definition is the VM's from now on (resets boot it from its files).
          const from = resumeFrom;
          const saved = from.migrated ? from.saved! : await savedVmFor(cfg, from);
          resumeFrom = undefined;
          // The JIT (how, not what, the guest runs) may be chosen by the host on a resume.
          if (cfgIn.jit !== undefined) saved.info.config = { ...saved.info.config, jit: cfgIn.jit };
          cfg = config = saved.info.config;
          vm = from.migrated
            ? await openMigratedVm(saved, log, {
                ...hooks,
                ...(arrivingCore ? { core: arrivingCore } : {}),
              })
            : await openSavedVm(saved, log, hooks);
          arrivingCore = undefined;
          if (arriving && stopEarly) {
            // Stopped while the VM came: the source still has it and runs it on.
            await vm.close();
            await arriving.failed('the destination was stopped');
            post({ type: 'exit', exit: { kind: 'stopped' } });
            return;
          }
          if (arriving) {
            await arriving.running();
            log(`${cfg.name} migrated here from ${arriving.peer}; it runs on`);
            post({ type: 'arrived', config: cfg, from: arriving.peer });
            arriving = undefined;
          } else log(`resumed from ${saved.file} (saved ${saved.info.savedAt})`);
        } else {
          vm = await VirtMachine.open(cfg, log, hooks);
        }
        bootImages = undefined;
      } catch (e) {
        const message =
          e instanceof MachineConfigError || e instanceof StateFileError ? e.message : String(e);
        // The source resumes the VM itself when told it could not start here.
        await arriving?.failed(message);
        if (reverting) {
          post({ type: 'control-result', id: reverting.id, ok: false, message });
          reverting.done();
        }
        post({ type: 'exit', exit: { kind: 'error', message } });
        return;
      }
      if (stopEarly) {
        await vm.close();
        post({ type: 'exit', exit: { kind: 'stopped' } });
        return;
      }
      startupMark('machine built');
      machine = vm;
      vm.onStreamOutput = queueConsole;
      for (const k of earlyInput) vm.consoleInput(k.data, k.stream);
      earlyInput = [];
      const sampler = new StatsSampler(cfg.memMiB);
      // Devices change state as the guest's drivers bind (virtio DRIVER_OK): resent on change.
      let lastRows = '';
      let disks = new Map<string, DiskImageInfo>();
      const postDevices = (): void => {
        const rows = withControls(
          withNicBackends(
            [
              ...deviceRows(vm.devices(), 'active'),
              ...virtioRows(vm.virtio, VIRT.virtio, cfg.disks),
              ...pciVirtioRows(
                vm.pci.functions(),
                vm.virtioPci.filter((t) => !vm.nics.some((n) => n.name === t.name)),
                cfg.disks,
              ),
              ...pciNicRows(vm.pci.functions(), vm.nics),
            ],
            vm.nics,
          ),
          { machine: vm, config: cfg, dataDir },
        );
        const json = JSON.stringify(withDiskInfo(rows, disks));
        if (json !== lastRows) post({ type: 'devices', devices: withDiskInfo(rows, disks) });
        lastRows = json;
      };
      const disksNow = async (): Promise<void> => {
        disks = await diskInfos({ machine: vm, config: cfg, dataDir }).catch(() => disks);
        postDevices();
      };
      let disksReadAt = -Infinity;
      const sample = (): void => {
        const stats = sampler.sample(vm.stats(), vm.core.ram.buffer.byteLength);
        post({ type: 'stats', stats });
        const now = performance.now();
        if (now - disksReadAt >= DISK_INFO_INTERVAL_MS) {
          disksReadAt = now;
          void disksNow();
        } else postDevices();
        // Called out of turn too (the last sample when the machine ends): one timer at a time.
        clearTimeout(statsTimer);
        const idle = stats.mips < IDLE_MIPS;
        statsTimer = setTimeout(sample, idle ? IDLE_STATS_INTERVAL_MS : STATS_INTERVAL_MS);
      };
      refreshDevices = postDevices;
      refreshDisks = disksNow;
      sample();
      post({ type: 'state', state: 'running' });
      if (reverting) {
        const message = `reverted to snapshot "${reverting.name}"; the VM runs on from it`;
        post({ type: 'control-result', id: reverting.id, ok: true, message });
        reverting.done();
        reverting = undefined;
      }
      startupMark('first slice');
      let closed!: () => void;
      machineClosed = new Promise<void>((r) => (closed = r));
      const exit = await vm.run().finally(async () => {
        await diskWork;
        await vm.close();
        closed();
      });
      flushConsole();
      sample();
      if (savedTo) {
        post({ type: 'exit', exit: { kind: 'saved', path: savedTo }, stats: vm.stats() });
        return;
      }
      if (migration) {
        const outcome = await migration;
        migration = undefined;
        if (outcome.kind === 'migrated') {
          post({ type: 'exit', exit: { kind: 'migrated', to: outcome.to }, stats: vm.stats() });
          return;
        }
        // The destination could not take it: the same worker runs it on from its state.
        resumeFrom = { file: outcome.saved.file, saved: outcome.saved, migrated: true };
        continue;
      }
      if (revertTo) {
        // The same worker builds the machine again from the snapshot: the host, the console
        // attached to it and the terminal see one VM that went back in time.
        const r = revertTo;
        revertTo = undefined;
        resumeFrom = { file: r.saved.file, saved: r.saved };
        reverting = { id: r.id, name: r.name, done: r.done };
        const note = new TextEncoder().encode(
          `\r\n[wasmvisor: reverted to snapshot ${r.name}]\r\n`,
        );
        for (const stream of consoleStreams(cfg)) queueConsole(stream, note);
        flushConsole();
        continue;
      }
      if (resetRequested || exit.kind === 'reset') {
        resetRequested = false;
        log(exit.kind === 'reset' ? 'the guest rebooted' : 'reset');
        continue;
      }
      post({ type: 'exit', exit, stats: vm.stats() });
      return;
    }
  } catch (e) {
    flushConsole();
    post({ type: 'exit', exit: { kind: 'error', message: (e as Error).message ?? String(e) } });
  } finally {
    await overlays.close();
    if (statsTimer) clearTimeout(statsTimer);
    machine = undefined;
    refreshDevices = undefined;
    refreshDisks = undefined;
    port.close();
  }
}

port.on('message', (m: ToWorker) => {
  switch (m.type) {
    case 'start':
      if (started) return;
      started = true;
      config = m.config;
      dataDir = m.dataDir;
      void runVm(m.config, m.diskKeys, m.bootImages, m.restore, m.incoming);
      return;
    case 'input':
      if (machine) machine.consoleInput(m.data, m.stream);
      else if (earlyInputBytes + m.data.length <= EARLY_INPUT_MAX) {
        earlyInput.push({ data: m.data, stream: m.stream });
        earlyInputBytes += m.data.length;
      }
      return;
    case 'control':
      void respond(m.id, m.device, (ctx) => applyControl(m.device, m.control, m.value, ctx));
      return;
    case 'disk-snapshot':
      // In turn with saves, VM snapshots and overlay switches: during a switch the disk has no
      // one image to work on (a snapshot must not land in the image becoming a backing file),
      // and the run loop must not close the disks under it.
      snapshotBusy = snapshotBusy.then(() =>
        respond(m.id, m.device, async (ctx) => {
          const work = diskSnapshot(m.device, m.action, m.snapshot, ctx);
          diskWork = work.catch(() => {});
          try {
            return await work;
          } finally {
            await refreshDisks?.();
          }
        }),
      );
      return;
    case 'disk-overlay':
      // After (and before) saves and snapshots: a take must see one disk, not a switch half done.
      snapshotBusy = snapshotBusy.then(() =>
        respond(m.id, m.device, async (ctx) => {
          const work = switchToOverlay(m.device, m.file, ctx, (message) =>
            post({ type: 'log', message }),
          );
          diskWork = work.catch(() => {});
          try {
            const r = await work;
            post({ type: 'disk-switched', index: r.index, disk: r.disk, from: r.from });
            return r.message;
          } finally {
            await refreshDisks?.();
          }
        }),
      );
      return;
    case 'save':
      snapshotBusy = snapshotBusy.then(() => saveTo(m.id, m.path));
      return;
    case 'migrate':
      snapshotBusy = snapshotBusy.then(() => migrateTo(m.id, m.uri));
      return;
    case 'vm-snapshot':
      snapshotBusy = snapshotBusy.then(() => vmSnapshot(m.id, m.action, m.name));
      return;
    case 'stop':
      stopEarly = true;
      machine?.stop();
      incomingWait.abort();
      return;
    case 'pause':
      if (taking) {
        taking.resumeAfter = false;
        post({ type: 'state', state: 'paused' });
        return;
      }
      if (!machine || machine.paused) return;
      machine.pause();
      flushConsole();
      post({ type: 'state', state: 'paused' });
      void refreshDisks?.();
      return;
    case 'resume':
      if (taking) {
        taking.resumeAfter = true;
        post({ type: 'state', state: 'running' });
        return;
      }
      if (!machine?.paused) return;
      machine.resume();
      post({ type: 'state', state: 'running' });
      return;
    case 'reset':
      if (!machine) return;
      resetRequested = true;
      machine.stop();
      return;
  }
});

/**
 * Saves the VM to `path` and stops it (a VM that ran on after its save would write to disks the
 * file expects unchanged). On failure the VM runs on as before (paused if it was).
 */
async function saveTo(id: number, path: string): Promise<void> {
  const vm = machine;
  if (!vm || !config || savedTo) {
    post({ type: 'control-result', id, ok: false, message: 'the VM is not running' });
    return;
  }
  const wasPaused = vm.paused;
  vm.pause();
  flushConsole();
  try {
    const bytes = await saveVm(vm, config, path);
    savedTo = path;
    vm.stop();
    const message = `saved to ${path} (${(bytes / 2 ** 20).toFixed(1)} MiB); the VM stopped`;
    post({ type: 'control-result', id, ok: true, message });
  } catch (e) {
    if (!wasPaused) vm.resume();
    const message =
      e instanceof StateFileError ? e.message : `cannot save: ${(e as Error).message}`;
    post({ type: 'control-result', id, ok: false, message });
  }
}

/**
 * Migrates the VM live to `uri` (migration/source.ts). The guest runs on here while its RAM
 * goes over; once the destination has its whole state, this machine stops and closes its disks
 * (release) and the run loop waits for the outcome: { kind: 'migrated' }, or, if the
 * destination then failed, the VM resumes here from its state. Answers request `id`.
 */
async function migrateTo(id: number, uri: string): Promise<void> {
  const vm = machine;
  const answer = (ok: boolean, message: string): void =>
    post({ type: 'control-result', id, ok, message });
  if (!vm || !config || savedTo || migration) {
    answer(false, 'the VM is not running');
    return;
  }
  let settle!: (o: { kind: 'migrated'; to: string } | { kind: 'fallback'; saved: SavedVm }) => void;
  try {
    const report = await migrateVm(vm, config, uri, {
      log: (message) => post({ type: 'log', message }),
      release: async () => {
        migration = new Promise((r) => (settle = r));
        flushConsole();
        vm.stop();
        await machineClosed;
      },
    });
    settle({ kind: 'migrated', to: uri });
    answer(
      true,
      `migrated to ${uri} in ${(report.totalMs / 1000).toFixed(1)} s: ` +
        `${report.rounds.length} rounds (${report.rounds.join(', ')} pages), ` +
        `${(report.bytesSent / 2 ** 20).toFixed(1)} MiB sent, the guest paused ` +
        `${report.downtimeMs.toFixed(0)} ms; it runs there now`,
    );
  } catch (e) {
    if (e instanceof MigrationFailedAfterRelease) {
      settle({ kind: 'fallback', saved: e.fallback });
      answer(false, `migration failed: ${e.message}; the VM runs on here`);
      return;
    }
    const message = (e as Error).message;
    answer(
      false,
      `${/^(cannot migrate|migration)/.test(message) ? '' : 'migration failed: '}${message}; the VM runs on here`,
    );
  }
}

/** The VM's snapshot directory: under the host's data directory (the CLI's: the user's). */
function snapshotsOf(cfg: VmConfig): string {
  return snapshotDir(dataDir ?? userDataDir(), cfg.name);
}

/**
 * Takes, reverts to or deletes a VM snapshot (vm-snapshots.ts) and answers request `id`. A take
 * pauses the machine for the capture and lets it run on; a revert is checked here (the file,
 * the hardware, the disks' snapshots) before the running guest is stopped, so a snapshot that
 * cannot be loaded leaves the VM running as it was.
 */
async function vmSnapshot(id: number, action: VmSnapshotAction, name: string): Promise<void> {
  const vm = machine;
  const cfg = config;
  const answer = (ok: boolean, message: string): void =>
    post({ type: 'control-result', id, ok, message });
  if (!vm || !cfg || savedTo || revertTo) {
    answer(false, 'the VM is not running');
    return;
  }
  const ctx = { machine: vm, config: cfg, dataDir };
  try {
    const dir = snapshotsOf(cfg);
    if (action === 'take') {
      const hold = (taking = { resumeAfter: !vm.paused });
      vm.pause();
      flushConsole();
      const t0 = performance.now();
      const work = takeVmSnapshot(vm, cfg, dir, name, (i) => {
        return findDisk(`virtio-blk${i}`, ctx)?.sw.disk.image;
      });
      diskWork = work.catch(() => {});
      try {
        const t = await work;
        // How long the guest stood still: what a user of a live VM notices.
        const paused = ((performance.now() - t0) / 1000).toFixed(2);
        const disks = t.disks.length
          ? `; disks: ${t.disks.map((d) => `${d.path} (id ${d.id})`).join(', ')}`
          : '';
        answer(
          true,
          `snapshot "${name}" taken in ${paused} s (VM state ${(t.bytes / 2 ** 20).toFixed(1)} MiB${disks})`,
        );
      } finally {
        taking = undefined;
        if (hold.resumeAfter) vm.resume();
        void refreshDisks?.();
      }
      return;
    }
    if (action === 'delete') {
      // The VM's own disks are open here: their metadata is reached through the open image.
      const open = new Map(
        cfg.disks.flatMap((d, i) => {
          const img = findDisk(`virtio-blk${i}`, ctx)?.sw.disk.image;
          return img && !d.readOnly && !d.snapshot ? [[resolve(d.path), img] as const] : [];
        }),
      );
      const work = deleteVmSnapshot(dir, name, cfg, (path, fn) => {
        const img = open.get(path);
        return img ? img.withMetadata(fn) : withImageFile(path, fn);
      });
      diskWork = work.catch(() => {});
      const message = await work;
      void refreshDisks?.();
      answer(true, message);
      return;
    }
    const file = snapshotFile(dir, name);
    let saved: SavedVm;
    try {
      saved = await readSavedVm(file);
    } catch (e) {
      if ((e as Error).message === `${file}: no such file`) {
        throw new VmSnapshotError(`no snapshot named "${name}"`);
      }
      throw e;
    }
    const other = hardwareDiffers(saved.info.config, cfg);
    if (saved.info.config.name !== cfg.name || other) {
      throw new VmSnapshotError(
        `snapshot "${name}" is of another VM (${other ?? `"${saved.info.config.name}"`}): not loaded`,
      );
    }
    await checkDisks(saved);
    // Answered by the run loop once the machine runs from the snapshot; the next snapshot
    // request waits for that.
    await new Promise<void>((done) => {
      revertTo = { saved, id, name, done };
      vm.stop();
    });
  } catch (e) {
    const known = e instanceof VmSnapshotError || e instanceof StateFileError;
    answer(false, known ? (e as Error).message : `snapshot ${name}: ${(e as Error).message}`);
  }
}

/** Runs a device request and answers it with a 'control-result' of the same id. */
async function respond(
  id: number,
  device: string,
  fn: (ctx: ControlContext) => Promise<string>,
): Promise<void> {
  const vm = machine;
  if (!vm || !config) {
    post({ type: 'control-result', id, ok: false, message: 'the VM is not running yet' });
    return;
  }
  let result: FromWorker;
  try {
    const message = await fn({ machine: vm, config, dataDir });
    result = { type: 'control-result', id, ok: true, message };
  } catch (e) {
    // A device's refusal reads as it is; anything else still reaches the UI as one line.
    const message = e instanceof ControlError ? e.message : `${device}: ${(e as Error).message}`;
    result = { type: 'control-result', id, ok: false, message };
  }
  // The new device list goes first, so a caller that got the outcome also sees it listed.
  refreshDevices?.();
  post(result);
}
