/** The `wasmvisor` commands: boot a VM on the terminal, run a bare-metal ELF, the UI, img. */
import {
  parseCommand,
  UsageError,
  USAGE,
  type RunOptions,
  type RunElfCliOptions,
  type UiCliOptions,
} from './args.js';
import { attachTerminal } from './terminal.js';
import { runImg } from './img.js';
import { askDiskKeys } from './disk-keys.js';
import { HeldOutput } from './held-output.js';
import { MonitorSession } from './monitor.js';
import type { MachineStats } from '../vm/machine.js';
import { WorkerVm } from '../host/worker-vm.js';
import { runElf, RunElfError } from '../vm/run-elf.js';
import { preloadBootImages } from '../vm/images.js';
import { shareSwitchesBetweenProcesses } from '../../devices/net/index.js';
import { readFile } from 'node:fs/promises';
import type { VmConfig } from '../vm/config.js';
import { blockstatsText } from './blockstats-text.js';
import { diskIoStats } from '../worker/stats-sampler.js';

/** A problem the user can fix: printed as one line, no stack trace. */
class UserError extends Error {}

const perCall = (insns: bigint, calls: bigint): string =>
  calls === 0n ? '0' : (Number(insns) / Number(calls)).toFixed(1);
const percent = (part: bigint, whole: bigint | number): string =>
  `${((100 * Number(part)) / Math.max(1, Number(whole))).toFixed(1)}%`;

function formatStats(s: MachineStats): string {
  const lines = [
    `instructions retired: ${s.instret}`,
    `time: ${s.seconds.toFixed(2)} s, ${s.mips.toFixed(1)} MIPS`,
    `traps taken: ${s.traps}`,
    'MMIO exits per device:',
    ...Object.entries(s.exits).map(
      ([d, e]) => `  ${d.padEnd(8)} ${e.reads} reads, ${e.writes} writes`,
    ),
    ...(s.jit
      ? [
          `jit: ${s.jit.blockCalls} block calls (+${s.jit.chained} chained), ` +
            `${s.jit.blocks} blocks in ${s.jit.modules} ` +
            `modules (${s.jit.compileMs.toFixed(0)} ms; ${s.jit.merges ?? 0} merges of ` +
            `${s.jit.merged ?? 0} translations), ${s.jit.epochs} FENCE.I ` +
            `(${s.jit.revalidated} kept, ${s.jit.stale} stale), ${s.jit.flushes} flushes, ` +
            `${perCall(s.jit.blockInsns, s.jit.blockCalls)} instructions per call, ` +
            `${(s.jit.insns / Math.max(1, s.jit.blocks)).toFixed(1)} per translated block, ` +
            `${s.jit.untranslatable} hot blocks untranslatable, ` +
            `${percent(s.jit.blockInsns, s.instret)} of instructions retired in translated code`,
        ]
      : []),
    'interrupts per source:',
    ...Object.entries(s.interrupts).map(([src, n]) => `  ${src.padEnd(8)} ${n}`),
    ...Object.entries(s.virtio).flatMap(([dev, counters]) => {
      const w = Math.max(20, ...Object.keys(counters).map((k) => k.length));
      return [`${dev}:`, ...Object.entries(counters).map(([k, n]) => `  ${k.padEnd(w)} ${n}`)];
    }),
  ];
  const b = s.balloon;
  if (b) {
    const m = (x: number | undefined): string => (x === undefined ? '?' : (x / 2 ** 20).toFixed(0));
    lines.push(
      `balloon: actual ${m(b.actualBytes)} MiB of ${m(b.ramBytes)} MiB, ` +
        (b.returnedToHost
          ? `${m(b.bytesReleased)} MiB given back to the host`
          : (b.notReturned ?? 'memory not returned to host')),
      `guest memory: free ${m(b.stats.memFree)} MiB, available ${m(b.stats.memAvailable)} MiB, ` +
        `total ${m(b.stats.memTotal)} MiB`,
    );
  }
  if (s.hostRssBytes !== undefined) {
    lines.push(`host RSS: ${(s.hostRssBytes / 2 ** 20).toFixed(0)} MiB`);
  }
  // Each NIC's own and its back end's counters (traffic, DHCP, NAT, TFTP, drops); zeros left out.
  for (const [nic, counters] of Object.entries(s.nics ?? {})) {
    const set = Object.entries(counters).filter(([, n]) => n !== 0);
    lines.push(`${nic} network:`, ...set.map(([k, n]) => `  ${k.padEnd(32)} ${n}`));
  }
  const disks = blockstatsText(diskIoStats(s.disks ?? {}));
  if (disks) lines.push('disks:', disks);
  return lines.join('\n');
}

/**
 * `--restore FILE`: the file read and checked here, so that a bad file is one line before the
 * terminal changes; its bytes then move to the worker, which builds the VM from them.
 */
async function readRestore(
  file: string,
): Promise<{ config: VmConfig; restore: { file: string; bytes: Uint8Array } }> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new UserError(`${file}: ${code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
  }
  // Loaded only for a restore: a plain boot's start-up does not pay for them.
  const { checkDisks, parseSavedVm } = await import('../vm/vmstate/saved-vm.js');
  const { StateFileError } = await import('../vm/vmstate/file-format.js');
  try {
    const saved = parseSavedVm(bytes, file);
    await checkDisks(saved);
    return { config: saved.info.config, restore: { file, bytes } };
  } catch (e) {
    if (e instanceof StateFileError) throw new UserError(e.message);
    throw e;
  }
}

async function cmdRun(opts: RunOptions): Promise<number> {
  const log = (m: string): boolean => process.stderr.write(`wasmvisor: ${m}\r\n`);
  const out = process.stdout;
  let quit = false;
  const resumed = opts.restore ? await readRestore(opts.restore) : undefined;
  const o = resumed
    ? { ...opts, vm: { ...resumed.config, ...(opts.jit !== undefined ? { jit: opts.jit } : {}) } }
    : opts;
  // Read (and a gzip'd kernel decompressed) while the worker started ahead loads its modules.
  const preload = resumed ? Promise.resolve(undefined) : preloadBootImages(o.vm);
  // The VM runs in a worker thread; this thread only relays the terminal. Every console the
  // machine has (UART, hvc0) prints here, as before. `vm` is a VmControl: what a Ctrl-A
  // monitor drives (pause, resume, reset, stop, devices, stats, device controls).
  // Encrypted disks without a key file: asked for here, before the terminal goes raw.
  let diskKeys;
  try {
    diskKeys = await askDiskKeys(o.vm.disks);
  } catch (e) {
    throw new UserError((e as Error).message);
  }
  // switch:NAME reaches the user's other wasmvisor processes (two terminals, one LAN).
  shareSwitchesBetweenProcesses({ log });
  const bootImages = await preload;
  // A reader that goes away (`wasmvisor run | head`) closes stdout: writes then fail with EPIPE.
  // The VM is stopped as Ctrl-A X would (its disks flushed on the way out), not crashed.
  let outputClosed = false;
  const write = (b: Uint8Array | string): void => {
    if (!outputClosed) out.write(b);
  };
  // Ctrl-A C: keystrokes go to the (wasmvisor) monitor instead of the guest until pressed again;
  // meanwhile the guest's output waits, so it does not cut into the monitor's answers.
  let inMonitor = false;
  const held = new HeldOutput(write);
  const vm = new WorkerVm(o.vm, {
    output: (b) => (inMonitor ? held.hold(b) : write(b)),
    log,
    ...(diskKeys ? { diskKeys } : {}),
    ...(bootImages ? { bootImages } : {}),
    ...(resumed ? { restore: resumed.restore } : {}),
    ...(opts.incoming ? { incoming: opts.incoming } : {}),
  });
  const onOutputError = (e: NodeJS.ErrnoException): void => {
    if (outputClosed) return;
    outputClosed = true;
    log(
      e.code === 'EPIPE'
        ? 'output closed by its reader: stopping the VM'
        : `output failed (${e.message}): stopping the VM`,
    );
    vm.stop();
  };
  out.on('error', onOutputError);
  const monitor = new MonitorSession(vm, write, () => {
    quit = true;
  });
  const detach = attachTerminal({
    input: (b) => (inMonitor ? monitor.feed(b) : vm.input(b)),
    quit: () => {
      quit = true;
      vm.stop();
    },
    help: write,
    monitor: () => {
      inMonitor = !inMonitor;
      if (inMonitor) monitor.enter();
      else {
        write('\r\n');
        held.flush();
      }
    },
  });
  try {
    const { exit, stats } = await vm.run();
    held.flush(); // what the guest printed while the monitor had the terminal, to the end
    // A disk switched to an overlay (snapshot_blkdev) holds the guest's writes since in FILE:
    // the next run must name FILE, or they are silently not there.
    for (const d of vm.switchedDisks()) {
      process.stderr.write(
        `\r\nwasmvisor: disk ${d.from} now lives in ${d.to}: run with --disk ${d.to},format=qcow2 to keep the guest's writes since the switch\r\n`,
      );
    }
    if (o.stats && stats)
      process.stderr.write('\r\n' + formatStats(stats).replace(/\n/g, '\r\n') + '\r\n');
    if (quit) {
      process.stderr.write('\r\nwasmvisor: terminated by Ctrl-A X\r\n');
      return 0;
    }
    if (outputClosed) return 0;
    switch (exit.kind) {
      case 'fail':
        process.stderr.write(`\r\nwasmvisor: guest reported failure (code ${exit.code})\r\n`);
        return exit.code || 1;
      case 'error': // a file the user named is unusable: the message names it
        throw new UserError(exit.message);
      case 'killed':
        throw new UserError('the VM worker ended unexpectedly');
      case 'saved':
        process.stderr.write(`\r\nwasmvisor: VM saved to ${exit.path}\r\n`);
        return 0;
      case 'migrated':
        process.stderr.write(`\r\nwasmvisor: the VM migrated to ${exit.to} and runs there\r\n`);
        return 0;
      default:
        return 0;
    }
  } finally {
    out.off('error', onOutputError);
    detach();
  }
}

async function cmdRunElf(o: RunElfCliOptions): Promise<number> {
  const t0 = performance.now();
  let r;
  try {
    r = await runElf(o.file, {
      timeoutMs: o.timeoutMs,
      maxInsns: o.maxInsns,
      onOutput: (t) => process.stdout.write(t),
    });
  } catch (e) {
    if (e instanceof RunElfError) throw new UserError(e.message);
    throw e;
  }
  const secs = (performance.now() - t0) / 1000;
  if (o.stats) {
    process.stderr.write(
      `instructions retired: ${r.instret}\ntime: ${secs.toFixed(3)} s, ${(Number(r.instret) / secs / 1e6).toFixed(1)} MIPS\n`,
    );
  }
  if (r.reason === 'timeout') {
    process.stderr.write(`wasmvisor: ${o.file}: timed out after ${r.instret} instructions\n`);
    return 124;
  }
  if (r.reason === 'max-insns') {
    process.stderr.write(`wasmvisor: ${o.file}: instruction limit reached\n`);
    return 124;
  }
  return r.status;
}

/** Web mode: VMs run in workers behind the host API, the UI is served on loopback. */
async function cmdUi(o: UiCliOptions): Promise<number> {
  const { HostApi } = await import('../host/host-api.js');
  const { startUiServer } = await import('../server/ui-server.js');
  const host = new HostApi();
  shareSwitchesBetweenProcesses({ log: (m) => process.stderr.write(`wasmvisor: ${m}\n`) });
  for (const e of host.definitionErrors()) process.stderr.write(`wasmvisor: ${e.message}\n`);
  let server;
  try {
    server = await startUiServer({ host, port: o.port });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') throw new UserError(`port ${o.port} is already in use`);
    throw e;
  }
  process.stdout.write(
    `wasmvisor: UI at ${server.url}\n(VM definitions in ${host.dataDir}; Ctrl-C quits)\n`,
  );
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  await host.shutdown();
  await server.close();
  return 0;
}

export async function runCommand(argv: string[]): Promise<number> {
  try {
    const cmd = parseCommand(argv);
    switch (cmd.kind) {
      case 'help':
        process.stdout.write(USAGE);
        return 0;
      case 'version':
        process.stdout.write('wasmvisor 0.1.0\n');
        return 0;
      case 'run':
        return await cmdRun(cmd);
      case 'run-elf':
        return await cmdRunElf(cmd);
      case 'ui':
        return await cmdUi(cmd);
      case 'img':
        return await runImg(cmd);
    }
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`wasmvisor: ${e.message}\n\n${USAGE}`);
      return 2;
    }
    if (e instanceof UserError) {
      process.stderr.write(`wasmvisor: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
}
