/**
 * Live migration, the sending side (QEMU's `migrate tcp:HOST:PORT`): the VM's RAM goes to a
 * wasmvisor waiting with `run --incoming` while the guest runs on here, round after round, each
 * round sending the pages written since the last (the core's dirty-page log); when a round is
 * small enough to send within the downtime target (or after MAX_ROUNDS), the VM pauses, its
 * disks flush, the last dirty pages and the devices' and CPUs' state go over, and once the
 * destination has checked them this side closes its disks (they are locked while open) so the
 * destination can open them and run the guest on. The disks are shared files: both processes
 * must see the same paths (this host, or a shared file system).
 *
 * Nothing is lost on failure: up to the release the VM simply runs on here; after it (the
 * destination could not open the disks or start), the caller gets the state in the error
 * (MigrationFailedAfterRelease.fallback: the stopped machine's state as it is then, devices
 * and RAM together, for devices may have written RAM after the capture sent) and resumes the VM
 * here from it.
 */
import { connect, type Socket } from 'node:net';
import type { VirtMachine } from '../machine.js';
import type { VmConfig } from '../config.js';
import { encodeJson, encodeStateFile, StateFileError } from '../vmstate/file-format.js';
import { captureMachine } from '../vmstate/machine-state.js';
import {
  liveConfig,
  quiesceOrRefuse,
  savedVmInfo,
  unsaveableReason,
  VM_SECTION_VERSION,
  type SavedVm,
} from '../vmstate/saved-vm.js';
import {
  dirtyPages,
  encodePages,
  MessageReader,
  MessageWriter,
  MIGRATION_MAGIC,
  MIGRATION_VERSION,
  MigrationError,
  MSG,
  PAGE_BYTES,
  PAGES_PER_MESSAGE,
  parseMigrationUri,
  withTimeout,
} from './protocol.js';

export interface MigrationOptions {
  /** Rounds of pre-copy before the VM is paused whatever is left (default 30). */
  maxRounds?: number;
  /** The pause the last round aims at, from the rate measured so far (default 50 ms). */
  downtimeMs?: number;
  /** Connecting, and each wait for the destination, give up after this long (default 30 s). */
  timeoutMs?: number;
  /**
   * Stops the VM and closes its disks (and everything else it holds): called once the
   * destination has the whole state, before it may open the disks.
   */
  release(): Promise<void>;
  log?: (message: string) => void;
}

export interface MigrationReport {
  /** Pages sent in each round, the last being the one with the VM paused. */
  rounds: number[];
  pagesSent: number;
  bytesSent: number;
  totalMs: number;
  /** From pausing the VM for the last round to the destination saying it runs. */
  downtimeMs: number;
}

/** The destination failed after this side had closed its disks: resume from `fallback`. */
export class MigrationFailedAfterRelease extends MigrationError {
  constructor(
    message: string,
    readonly fallback: SavedVm,
  ) {
    super(message);
  }
}

const DEFAULT_ROUNDS = 30;
const DEFAULT_DOWNTIME_MS = 50;
const DEFAULT_TIMEOUT_MS = 30_000;

function open(host: string, port: number, ms: number): Promise<Socket> {
  return withTimeout(
    new Promise<Socket>((resolve, reject) => {
      const s = connect({ host, port }, () => {
        s.off('error', fail);
        resolve(s);
      });
      const fail = (e: Error): void =>
        reject(new MigrationError(`cannot connect to ${host}:${port}: ${e.message}`));
      s.once('error', fail);
    }),
    ms,
    `no connection to ${host}:${port}`,
  );
}

/**
 * Migrates the running (or paused) VM to `uri` ("tcp:HOST:PORT"). Resolves once the guest runs
 * at the destination; this side's VM has then been released (stopped, disks closed). Throws
 * MigrationError (the VM runs on here as before) or MigrationFailedAfterRelease.
 */
export async function migrateVm(
  vm: VirtMachine,
  cfg: VmConfig,
  uri: string,
  o: MigrationOptions,
): Promise<MigrationReport> {
  const why = unsaveableReason(cfg);
  if (why) throw new MigrationError(`cannot migrate: ${why}`);
  const { host, port } = parseMigrationUri(uri);
  const timeout = o.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const t0 = performance.now();
  const socket = await open(host, port, timeout);
  socket.setNoDelay(true);
  const w = new MessageWriter(socket);
  const r = new MessageReader(socket);
  const ram = vm.core.ram;
  const pageCount = ram.length / PAGE_BYTES;
  const wasPaused = vm.paused;
  const report: MigrationReport = {
    rounds: [],
    pagesSent: 0,
    bytesSent: 0,
    totalMs: 0,
    downtimeMs: 0,
  };
  let released = false;
  let logging = false;
  try {
    const config = liveConfig(vm, cfg);
    // The log starts with no disk request in flight (a read started before would land unmarked).
    vm.pause();
    await quiesceOrRefuse(vm, 'migrate');
    vm.core.dirtyLogStart();
    logging = true;
    if (!wasPaused) vm.resume();
    await w.sendJson(MSG.hello, {
      magic: MIGRATION_MAGIC,
      version: MIGRATION_VERSION,
      config,
      ramBytes: ram.length,
    });
    const send = async (pages: readonly number[], yieldEach: boolean): Promise<void> => {
      for (let i = 0; i < pages.length; i += PAGES_PER_MESSAGE) {
        const data = encodePages(ram, pages.slice(i, i + PAGES_PER_MESSAGE));
        await w.send(MSG.pages, data);
        report.bytesSent += data.length;
        // Let the guest run between batches (the run loop's slices are event-loop turns).
        if (yieldEach) await new Promise((res) => setImmediate(res));
      }
      report.pagesSent += pages.length;
    };
    // Pre-copy: the first round is all of RAM (the log starts with every page marked).
    const maxRounds = o.maxRounds ?? DEFAULT_ROUNDS;
    const target = o.downtimeMs ?? DEFAULT_DOWNTIME_MS;
    let left: number[] = [];
    for (let round = 0; ; round++) {
      const pages = dirtyPages(vm.core.dirtyLogHarvest(), pageCount);
      const sentMs = performance.now() - t0;
      const rate = report.pagesSent / Math.max(1, sentMs); // pages per ms so far
      if (round > 0 && (pages.length <= rate * target || round >= maxRounds || vm.paused)) {
        left = pages;
        break;
      }
      await send(pages, true);
      report.rounds.push(pages.length);
    }
    // The last round, paused: what is left, the pages written since, then the state.
    vm.pause();
    const tPause = performance.now();
    await quiesceOrRefuse(vm, 'migrate');
    // From here to the capture nothing else may run: RAM and device state must agree.
    const last = [...new Set([...left, ...dirtyPages(vm.core.dirtyLogHarvest(), pageCount)])].sort(
      (a, b) => a - b,
    );
    const payloads: Uint8Array[] = [];
    for (let i = 0; i < last.length; i += PAGES_PER_MESSAGE) {
      payloads.push(encodePages(ram, last.slice(i, i + PAGES_PER_MESSAGE)));
    }
    const machine = captureMachine(vm, false);
    vm.core.dirtyLogStop();
    logging = false;
    const info = await savedVmInfo(vm, config);
    for (const p of payloads) {
      await w.send(MSG.pages, p);
      report.bytesSent += p.length;
    }
    report.pagesSent += last.length;
    report.rounds.push(last.length);
    const vmSection = { name: 'vm', version: VM_SECTION_VERSION, data: encodeJson(info) };
    const state = encodeStateFile([vmSection, ...machine]);
    await w.send(MSG.final, state);
    report.bytesSent += state.length;
    await withTimeout(r.expect(MSG.ready), timeout, 'the destination did not take the state');
    // The destination has everything: this side lets go of the disks.
    released = true;
    await o.release();
    try {
      await w.send(MSG.released);
      await withTimeout(r.expect(MSG.running), timeout, 'the destination did not start');
    } catch (e) {
      const fallback: SavedVm = {
        file: `the failed migration to ${uri}`,
        info,
        sections: [vmSection, ...captureMachine(vm)],
      };
      throw new MigrationFailedAfterRelease((e as Error).message, fallback);
    }
    report.downtimeMs = performance.now() - tPause;
    report.totalMs = performance.now() - t0;
    o.log?.(
      `migrated to ${uri}: ${report.rounds.length} rounds (${report.rounds.join(', ')} pages), ` +
        `${(report.bytesSent / 2 ** 20).toFixed(1)} MiB in ${report.totalMs.toFixed(0)} ms, ` +
        `downtime ${report.downtimeMs.toFixed(0)} ms`,
    );
    return report;
  } catch (e) {
    if (!released) {
      if (logging) vm.core.dirtyLogStop();
      if (!wasPaused && vm.paused) vm.resume();
      await new MessageWriter(socket)
        .sendJson(MSG.error, { message: (e as Error).message })
        .catch(() => {});
    }
    if (e instanceof MigrationError || e instanceof StateFileError) throw e;
    throw new MigrationError(`migration failed: ${(e as Error).message}`);
  } finally {
    socket.destroy();
  }
}
