/**
 * The terminal monitor, like QEMU's: Ctrl-A C switches the terminal between the guest console and
 * a `(wasmvisor)` prompt. Each command calls the same VM control the UI uses (VmControl: pause,
 * resume, reset, stop, devices, stats, device controls), so the monitor adds no second way of
 * doing anything. The command logic is here, apart from the terminal, so it is tested alone.
 */
import type { VmControl } from '../host/worker-vm.js';
import type { DeviceControl, VmSnapshotInfo, VmStats } from '../host/api-types.js';
import { sharedSwitches } from '../../devices/net/index.js';
import { resolve } from 'node:path';
import { blockstatsText } from './blockstats-text.js';

/** What the monitor drives: the CLI's WorkerVm satisfies it, a test a fake. */
export type MonitorTarget = Pick<
  VmControl,
  | 'state'
  | 'pause'
  | 'resume'
  | 'reset'
  | 'stop'
  | 'devices'
  | 'stats'
  | 'setDeviceControl'
  | 'saveVm'
  | 'migrateVm'
  | 'vmSnapshot'
  | 'listSnapshots'
  | 'diskOverlay'
>;

export interface MonitorResult {
  /** What to print (lines joined with \n; the terminal adds the \r). */
  output: string;
  /** `quit`: the CLI ends the VM and exits. */
  quit?: boolean;
}

export const MONITOR_PROMPT = '(wasmvisor) ';

export const MONITOR_HELP = [
  'info status          whether the VM runs or is stopped',
  'info cpus            the guest CPUs: pc, mode, which wait in WFI (* = the one running)',
  'info devices         the devices the guest sees',
  'info block           the disks: device, image, format, backing files',
  "info blockstats      each disk's requests, bytes, merges, reads at once, latency, queue depth",
  'info snapshots       the VM snapshots: name, date, VM state size, guest clock, disks',
  "info stats           MIPS, exits, interrupts, memory, the JIT's translated share",
  'info balloon         balloon size and the guest memory statistics',
  'info network         switches shared with other wasmvisor processes, their links and drops',
  'info shares          the shared folders: folder, tag, access, whether the guest mounted it',
  'balloon MIB          ask the guest to keep MIB of RAM (the balloon takes the rest)',
  'set_link NIC on|off  connect or disconnect a network card',
  'share_access SHARE rw|ro',
  '                     let the guest change a shared folder (virtio-9p0), or only read it',
  'stop                 pause the VM',
  'cont                 resume the VM',
  'system_reset         reset the VM (the guest reboots)',
  'snapshot_blkdev DEVICE FILE [qcow2]',
  '                     switch disk DEVICE (virtio-blk0) to a new qcow2 overlay FILE over its image;',
  '                     the guest writes into FILE from now on, the image stays as it is',
  'savevm NAME          take snapshot NAME of the whole VM (its disks must be qcow2); the VM runs on',
  'loadvm NAME          go back to snapshot NAME (disks, RAM, CPU, devices)',
  'delvm NAME           delete snapshot NAME (its state file and its disk snapshots)',
  'save FILE            save the whole VM to FILE and end it (resume: wasmvisor run --restore FILE)',
  'migrate tcp:HOST:PORT',
  '                     move the running VM live to the wasmvisor started there with',
  '                     run --incoming tcp:HOST:PORT (same disk paths); this one then ends',
  'quit                 end the VM and wasmvisor',
  'help                 this text',
  'Ctrl-A C switches back to the console.',
].join('\n');

const MIB = 1024 * 1024;
const mib = (bytes: number | undefined): string =>
  bytes === undefined ? '?' : `${(bytes / MIB).toFixed(bytes % MIB ? 1 : 0)} MiB`;

function balloonDevice(t: MonitorTarget): string | undefined {
  return balloonControl(t)?.device;
}

/** The balloon's target control (its range is 1..guest RAM in MiB). */
function balloonControl(t: MonitorTarget): { device: string; control: DeviceControl } | undefined {
  for (const d of t.devices()) {
    const control = d.controls?.find((c) => c.id === 'target');
    if (control) return { device: d.name, control };
  }
  return undefined;
}

/** `balloon MIB`'s argument: whole MiB, optionally with QEMU's M/MiB suffix (or G). */
function parseMiB(arg: string | undefined): number | undefined {
  const m = /^(\d{1,9})(M|MB|MiB|G|GB|GiB)?$/i.exec(arg ?? '');
  if (!m) return undefined;
  const n = Number(m[1]) * (m[2] && /^g/i.test(m[2]) ? 1024 : 1);
  return n > 0 ? n : undefined;
}

function infoBalloon(t: MonitorTarget, s: VmStats | undefined): string {
  const b = s?.balloon;
  if (!b) {
    return balloonDevice(t) ? 'balloon: no figures yet' : 'No balloon device has been activated';
  }
  const lines = [
    `balloon: actual=${mib(b.actualBytes)} target=${mib(b.targetBytes)} ` +
      `guest memory=${mib(b.ramBytes - b.actualBytes)} of ${mib(b.ramBytes)}`,
    b.returnedToHost
      ? `host: ${mib(b.bytesReleased)} given back so far (madvise)`
      : `host: ${b.notReturned ?? 'memory not returned to host'}`,
  ];
  if (b.deflatedUnaskedBytes) {
    lines.push(`guest took back ${mib(b.deflatedUnaskedBytes)} unasked (deflate on OOM)`);
  }
  const st = b.stats;
  if (Object.keys(st).length) {
    lines.push(
      `guest: free=${mib(st.memFree)} available=${mib(st.memAvailable)} total=${mib(st.memTotal)} ` +
        `caches=${mib(st.diskCaches)}`,
      `guest: swap_in=${st.swapIn ?? 0} swap_out=${st.swapOut ?? 0} ` +
        `major_faults=${st.majorFaults ?? 0} minor_faults=${st.minorFaults ?? 0} ` +
        `hugetlb_allocs=${st.hugetlbAllocations ?? 0} hugetlb_fails=${st.hugetlbFailures ?? 0}`,
    );
  } else lines.push(b.features.stats ? 'guest: no statistics yet' : 'guest: statistics off');
  const f = Object.entries(b.features)
    .filter(([, on]) => on)
    .map(([k]) => k);
  lines.push(`features: ${f.join(', ') || 'none'}`);
  if (s?.hostRssMiB !== undefined) lines.push(`host RSS: ${s.hostRssMiB.toFixed(0)} MiB`);
  return lines.join('\n');
}

function infoStats(s: VmStats | undefined): string {
  if (!s) return 'no statistics yet';
  const lines = [
    `uptime ${s.uptimeSec.toFixed(1)} s, ${s.instret} instructions, ${s.mips.toFixed(1)} MIPS`,
    `guest RAM ${s.guestMemMiB} MiB, Wasm memory ${s.wasmMemMiB.toFixed(0)} MiB` +
      (s.hostRssMiB !== undefined ? `, host RSS ${s.hostRssMiB.toFixed(0)} MiB` : ''),
  ];
  const per = (label: string, r: Record<string, number>): void => {
    const e = Object.entries(r).filter(([, v]) => v > 0);
    if (e.length) lines.push(`${label}: ` + e.map(([k, v]) => `${k} ${v.toFixed(0)}`).join(', '));
  };
  const gc = s.guestClock;
  if (gc?.icount) {
    lines.push(
      `guest clock ${gc.seconds.toFixed(1)} s, counting instructions (icount: 2^${gc.icount.shift} ` +
        `per 10 MHz tick, sleep ${gc.icount.sleep ? 'on' : 'off'})`,
    );
  }
  per('exits/s', s.exitsPerSec);
  per('interrupts/s', s.interruptsPerSec);
  if (s.jit) {
    lines.push(
      `jit: ${s.jit.blocks} blocks translated, ${s.jit.translatedPercent.toFixed(1)}% of ` +
        `instructions in translated code now, ${s.jit.translatedTotalPercent.toFixed(1)}% since start`,
    );
  }
  if (s.balloon) {
    lines.push(
      `balloon ${mib(s.balloon.actualBytes)}` +
        (s.balloon.returnedToHost ? '' : ` (${s.balloon.notReturned})`),
    );
  }
  return lines.join('\n');
}

/** `info cpus`: one line per hart, as QEMU's (the running one starred), with its pc and mode. */
function infoCpus(s: VmStats | undefined): string {
  const cpus = s?.cpus;
  if (!cpus) return 'no statistics yet';
  const lines = cpus.harts.map(
    (h) =>
      `${h.current ? '*' : ' '} CPU #${h.id}: pc=${h.pc} (${h.mode}-mode${h.halted ? ', halted' : ''})` +
      (cpus.harts.length > 1 ? ` ${h.mips.toFixed(1)} MIPS` : ''),
  );
  if (cpus.harts.length > 1) {
    lines.push(
      `harts take turns on one host thread: ${cpus.switchesPerSec.toFixed(0)} turns passed per second`,
    );
  }
  return lines.join('\n');
}

/** The switches this process shares with the user's other processes (switch-socket.ts). */
function infoNetwork(): string {
  const list = sharedSwitches();
  if (list.length === 0) return 'no switch is shared with other processes';
  return list
    .map(
      ({ name, stats: s }) =>
        `switch:${name}: linked to ${s.peers} other process${s.peers === 1 ? '' : 'es'}; ` +
        `frames sent ${s.sent}, received ${s.received}, dropped (peer behind) ${s.dropped}, ` +
        `bad ${s.bad_frames}; links broken by the peer ${s.malformed + s.truncated}, ` +
        `stale sockets removed ${s.stale_removed}`,
    )
    .join('\n');
}

const two = (n: number): string => String(n).padStart(2, '0');

/** `info snapshots`: one line per snapshot, as QEMU's table (dates in local time). */
export function snapshotTable(list: readonly VmSnapshotInfo[]): string {
  if (list.length === 0) return 'There is no snapshot available.';
  const row = (c: string[]): string =>
    `${c[0]!.padEnd(20)} ${c[1]!.padStart(9)}  ${c[2]!.padEnd(19)}  ${c[3]!.padStart(12)}  ${c[4]}`;
  const lines = [row(['NAME', 'VM STATE', 'DATE', 'VM CLOCK', 'DISKS'])];
  for (const s of list) {
    const d = new Date(s.savedAt);
    const date = Number.isNaN(d.getTime())
      ? '?'
      : `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())} ` +
        `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`;
    const ms = s.guestMs;
    const clock =
      `${two(Math.floor(ms / 3_600_000))}:${two(Math.floor(ms / 60_000) % 60)}:` +
      `${two(Math.floor(ms / 1000) % 60)}.${String(ms % 1000).padStart(3, '0')}`;
    const disks = s.error
      ? `unusable: ${s.error}`
      : s.otherVm
        ? `of another VM: ${s.otherVm}`
        : s.disks
            .map((x) =>
              x.id === undefined
                ? `${x.path} (read-only, as is)`
                : `${x.path} (id ${x.id}${x.missing ? ', MISSING' : ''})`,
            )
            .join(', ') || 'no disks';
    lines.push(row([s.name, mib(s.stateBytes), date, clock, disks]));
  }
  return lines.join('\n');
}

/** `info blockstats` (QEMU's name): each disk's I/O since it was opened, as of the last sample. */
function infoBlockstats(s: VmStats | undefined): string {
  if (!s) return 'no statistics yet';
  return blockstatsText(s.disks ?? {}) || 'no disks';
}

/** `info block`: each disk's device name, image, format and backing chain. */
function infoBlock(t: MonitorTarget): string {
  const lines = t.devices().flatMap((d) => {
    if (!d.disk) return [];
    const i = d.disk;
    const flags = [i.format, ...(i.temporary ? ['snapshot=on overlay'] : [])];
    const chain = i.backingChain.length ? `, backing ${i.backingChain.join(' <- ')}` : '';
    return [`${d.name}: ${i.path} (${flags.join(', ')}${chain})`];
  });
  return lines.join('\n') || 'no disks';
}

/** `info shares`: each shared folder's device, folder and tag, access, and whether it is mounted. */
function infoShares(t: MonitorTarget): string {
  const lines = t.devices().flatMap((d) => {
    const access = d.controls?.find((c) => c.id === 'access');
    if (!access) return [];
    return [
      `${d.name}: ${d.backend}; ${access.value === 'ro' ? 'read-only' : 'read-write'}; ${d.state}`,
    ];
  });
  return lines.join('\n') || 'no shared folders';
}

/** The NAME argument of savevm/loadvm/delvm, or undefined. */
function snapshotArg(args: string[]): string | undefined {
  return args.length === 1 ? args[0] : undefined;
}

/** Runs one monitor command line. Never throws: errors become the output. */
export async function runMonitorCommand(t: MonitorTarget, line: string): Promise<MonitorResult> {
  const [cmd, ...args] = line.trim().split(/\s+/);
  try {
    switch (cmd) {
      case '':
      case undefined:
        return { output: '' };
      case 'help':
      case '?':
        return { output: MONITOR_HELP };
      case 'info':
        switch (args[0]) {
          case 'status':
            return {
              output: `VM status: ${t.state === 'paused' ? 'paused' : t.state}`,
            };
          case 'cpus':
            return { output: infoCpus(t.stats()) };
          case 'devices':
            return {
              output: t
                .devices()
                .map((d) => `${d.name.padEnd(18)} ${d.address.padEnd(12)} ${d.model}`)
                .join('\n'),
            };
          case 'stats':
            return { output: infoStats(t.stats()) };
          case 'balloon':
            return { output: infoBalloon(t, t.stats()) };
          case 'network':
            return { output: infoNetwork() };
          case 'shares':
            return { output: infoShares(t) };
          case 'snapshots':
            return { output: snapshotTable(await t.listSnapshots()) };
          case 'block':
            return { output: infoBlock(t) };
          case 'blockstats':
            return { output: infoBlockstats(t.stats()) };
          default:
            return {
              output: 'info status|cpus|devices|block|blockstats|stats|balloon|network|snapshots',
            };
        }
      case 'balloon': {
        const b = balloonControl(t);
        if (!b) return { output: 'No balloon device has been activated' };
        const n = args.length === 1 ? parseMiB(args[0]) : undefined;
        if (n === undefined) {
          return { output: 'usage: balloon MIB (the guest memory size to aim for)' };
        }
        // Any whole MiB from 1 to the guest's RAM, not only the UI's suggested steps.
        const max = b.control.range?.max ?? (t.stats()?.balloon?.ramBytes ?? 0) / MIB;
        if (max && n > max) return { output: `balloon: MIB must be 1..${max} (the guest's RAM)` };
        return { output: await t.setDeviceControl(b.device, 'target', String(n)) };
      }
      case 'set_link': {
        const [nic, v] = args;
        if (!nic || (v !== 'on' && v !== 'off')) return { output: 'usage: set_link NIC on|off' };
        const row = t.devices().find((d) => d.name === nic);
        if (!row?.controls?.some((c) => c.id === 'link')) return { output: `no such NIC: ${nic}` };
        return { output: await t.setDeviceControl(nic, 'link', v) };
      }
      case 'share_access': {
        const [share, v] = args;
        if (!share || (v !== 'rw' && v !== 'ro')) {
          return { output: 'usage: share_access SHARE rw|ro' };
        }
        const row = t.devices().find((d) => d.name === share);
        if (!row?.controls?.some((c) => c.id === 'access')) {
          return { output: `no such shared folder: ${share}` };
        }
        return { output: await t.setDeviceControl(share, 'access', v) };
      }
      case 'stop':
        t.pause();
        return { output: '' };
      case 'cont':
      case 'c':
        t.resume();
        return { output: '' };
      case 'system_reset':
        t.reset();
        return { output: '' };
      case 'savevm':
      case 'loadvm':
      case 'delvm': {
        const name = snapshotArg(args);
        if (name === undefined) return { output: `usage: ${cmd} NAME` };
        const action = cmd === 'savevm' ? 'take' : cmd === 'loadvm' ? 'revert' : 'delete';
        return { output: await t.vmSnapshot(action, name) };
      }
      case 'snapshot_blkdev': {
        // QEMU's HMP form: snapshot_blkdev DEVICE NEW-FILE [FORMAT]; only qcow2 holds a backing file.
        const [device, file, format] = args;
        if (!device || !file || args.length > 3) {
          return {
            output: 'usage: snapshot_blkdev DEVICE FILE [qcow2] (DEVICE as info block names it)',
          };
        }
        if (format !== undefined && format !== 'qcow2') {
          return { output: `snapshot_blkdev: format ${format} is not supported (qcow2 only)` };
        }
        if (!t.devices().some((d) => d.name === device && d.disk)) {
          return { output: `snapshot_blkdev: no such disk: ${device} (info block lists them)` };
        }
        return { output: await t.diskOverlay(device, resolve(file)) };
      }
      case 'save': {
        // One argument, the rest of the line: a path may hold spaces.
        const file = line.trim().slice(cmd.length).trim();
        if (!file) return { output: 'usage: save FILE (the VM ends once it is saved)' };
        const path = resolve(file);
        const outcome = await t.saveVm(path);
        return { output: `${outcome}\nresume it with: wasmvisor run --restore ${path}` };
      }
      case 'migrate': {
        const uri = args[0];
        if (!uri || args.length > 1) {
          return {
            output: 'usage: migrate tcp:HOST:PORT (a wasmvisor run --incoming waits there)',
          };
        }
        return { output: await t.migrateVm(uri) };
      }
      case 'quit':
      case 'q':
        t.stop();
        return { output: '', quit: true };
      default:
        return { output: `unknown command: '${cmd}' (help lists them)` };
    }
  } catch (e) {
    return { output: (e as Error).message };
  }
}

/**
 * The monitor's line editor on a raw terminal: echoes typed characters, handles backspace and
 * Ctrl-U, runs a command on Enter and prints its output and a new prompt.
 */
export class MonitorSession {
  private line = '';
  private busy: Promise<void> = Promise.resolve();

  constructor(
    private readonly target: MonitorTarget,
    private readonly write: (text: string) => void,
    private readonly onQuit: () => void = () => {},
  ) {}

  /** Prints the banner and prompt (when the terminal switches to the monitor). */
  enter(): void {
    this.write(`\r\nwasmvisor monitor - type 'help' for more information\r\n${MONITOR_PROMPT}`);
  }

  feed(bytes: Uint8Array): void {
    for (const b of bytes) {
      if (b === 0x0d || b === 0x0a) {
        const cmd = this.line;
        this.line = '';
        this.write('\r\n');
        // Commands run in order, one at a time, even when they wait for the VM's worker.
        this.busy = this.busy.then(async () => {
          const r = await runMonitorCommand(this.target, cmd);
          if (r.output) this.write(r.output.replace(/\n/g, '\r\n') + '\r\n');
          if (r.quit) this.onQuit();
          else this.write(MONITOR_PROMPT);
        });
      } else if (b === 0x7f || b === 0x08) {
        if (this.line.length) {
          this.line = this.line.slice(0, -1);
          this.write('\b \b');
        }
      } else if (b === 0x15) {
        this.write('\b \b'.repeat(this.line.length));
        this.line = '';
      } else if (b >= 0x20 && b < 0x7f && this.line.length < 256) {
        this.line += String.fromCharCode(b);
        this.write(String.fromCharCode(b));
      }
    }
  }

  /** Resolves when the commands typed so far have finished (tests). */
  idle(): Promise<void> {
    return this.busy;
  }
}
