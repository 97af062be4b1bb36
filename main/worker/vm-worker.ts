/**
 * One VM's worker thread: builds the VirtMachine from a VmConfig and runs it, so that guest code
 * never runs on the host's main thread. Console output is batched, stats are posted about 4 times
 * a second, and the exit reason is the last message before the thread ends.
 */
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import { VirtMachine, MachineConfigError, type ConsoleStream } from '../vm/machine.js';
import type { VmConfig } from '../vm/config.js';
import type { BootImages } from '../vm/images.js';
import {
  applyControl,
  ControlError,
  withControls,
  type ControlContext,
} from './device-controls.js';
import { diskInfos, diskSnapshot, withDiskInfo } from './controls/disk-snapshots.js';
import type { DiskImageInfo } from '../host/api-types.js';
import { SwitchableDisk } from './controls/disk-controls.js';
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
import { parseSavedVm, readSavedVm, saveVm, type SavedVm } from '../vm/vmstate/saved-vm.js';
import { openSavedVm } from '../vm/vmstate/resume.js';
import { StateFileError } from '../vm/vmstate/file-format.js';

startupMark('worker loaded');

const STATS_INTERVAL_MS = 250;
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
/**
 * Keys typed before the machine exists (disks opening, a saved VM being read): delivered once it
 * does, so a line typed at once after `run --restore` reaches the resumed shell. Bounded.
 */
let earlyInput: { data: Uint8Array; stream?: ConsoleStream }[] = [];
let earlyInputBytes = 0;
const EARLY_INPUT_MAX = 64 * 1024;
/** Where the VM was saved: it then ends with { kind: 'saved' }. */
let savedTo: string | undefined;
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
  restore: { file: string; bytes?: Uint8Array },
): Promise<SavedVm> {
  const saved = restore.bytes
    ? parseSavedVm(restore.bytes, restore.file)
    : await readSavedVm(restore.file);
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
): Promise<void> {
  const log = (message: string): void => post({ type: 'log', message });
  let cfg = cfgIn;
  let statsTimer: ReturnType<typeof setInterval> | undefined;
  // snapshot=on overlays outlive resets and reboots, as QEMU's do; thrown away when the VM ends.
  const overlays = new SnapshotOverlays();
  let bootImages = preloaded;
  let resumeFrom = restore;
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
          const saved = await savedVmFor(cfg, resumeFrom);
          resumeFrom = undefined;
          // The JIT (how, not what, the guest runs) may be asked for by the host on a resume.
          if (cfgIn.jit) saved.info.config = { ...saved.info.config, jit: true };
          cfg = config = saved.info.config;
          vm = await openSavedVm(saved, log, hooks);
          log(`resumed from ${saved.file} (saved ${saved.info.savedAt})`);
        } else {
          vm = await VirtMachine.open(cfg, log, hooks);
        }
        bootImages = undefined;
      } catch (e) {
        const message =
          e instanceof MachineConfigError || e instanceof StateFileError ? e.message : String(e);
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
      let samples = 0;
      const sample = (): void => {
        post({ type: 'stats', stats: sampler.sample(vm.stats(), vm.core.ram.buffer.byteLength) });
        // Image sizes and the cor counter change as the guest writes: re-read every 5 s.
        if (samples++ % 20 === 0) void disksNow();
        else postDevices();
      };
      refreshDevices = postDevices;
      refreshDisks = disksNow;
      sample();
      if (statsTimer) clearInterval(statsTimer);
      statsTimer = setInterval(sample, STATS_INTERVAL_MS);
      post({ type: 'state', state: 'running' });
      startupMark('first slice');
      const exit = await vm.run().finally(() => vm.close());
      flushConsole();
      sample();
      if (savedTo) {
        post({ type: 'exit', exit: { kind: 'saved', path: savedTo }, stats: vm.stats() });
        return;
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
    if (statsTimer) clearInterval(statsTimer);
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
      void runVm(m.config, m.diskKeys, m.bootImages, m.restore);
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
      void respond(m.id, m.device, async (ctx) => {
        try {
          return await diskSnapshot(m.device, m.action, m.snapshot, ctx);
        } finally {
          await refreshDisks?.();
        }
      });
      return;
    case 'save':
      void saveTo(m.id, m.path);
      return;
    case 'stop':
      stopEarly = true;
      machine?.stop();
      return;
    case 'pause':
      if (!machine || machine.paused) return;
      machine.pause();
      flushConsole();
      post({ type: 'state', state: 'paused' });
      void refreshDisks?.();
      return;
    case 'resume':
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
