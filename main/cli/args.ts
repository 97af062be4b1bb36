/** Command-line parsing for `wasmvisor`, kept apart from I/O so it can be tested. */
import { parseMigrationUri } from '../vm/migration/protocol.js';
import { parseArgs } from 'node:util';
import {
  ConfigError,
  defaultVmConfig,
  parseDiskSpec,
  parseNicSpec,
  parseBalloonSpec,
  parseFwCfgSpec,
  parseShareSpecs,
  parseSmpSpec,
  MIN_MEM_MIB,
  MAX_MEM_MIB,
  type VmConfig,
} from '../vm/config.js';
import { parseIcountSpec, parseRtcSpec } from '../vm/time-config.js';
import { IMG_USAGE, parseImgArgs, type ImgOptions } from './img.js';

export class UsageError extends Error {}

export interface RunOptions {
  kind: 'run';
  vm: VmConfig;
  stats: boolean;
  /** Resume the VM saved in this file (its definition replaces `vm`). */
  restore?: string;
  /** Wait on "tcp:HOST:PORT" for a VM migrating live and run it (its definition replaces `vm`). */
  incoming?: string;
  /** With `restore`: translate hot code (true) or interpret (false), whatever the file says. */
  jit?: boolean;
}

export interface RunElfCliOptions {
  kind: 'run-elf';
  file: string;
  timeoutMs?: number;
  maxInsns?: number;
  stats: boolean;
}

export interface UiCliOptions {
  kind: 'ui';
  /** undefined: any free port. */
  port?: number;
}

export type Command =
  | RunOptions
  | RunElfCliOptions
  | UiCliOptions
  | ImgOptions
  | { kind: 'help' }
  | { kind: 'version' };

export const USAGE = `usage: wasmvisor <command> [options]

commands:
  run                 boot a VM with its serial console on this terminal (Ctrl-A X quits)
      --kernel FILE   Linux Image (raw or gzip'd); default: the bundled guest kernel
      --initrd FILE   initramfs; default: the bundled busybox initramfs
      --bios FILE     firmware (OpenSBI fw_dynamic.bin or fw_jump.bin); default: bundled
      --append TEXT   kernel command line (default "console=ttyS0")
      --mem SIZE      guest RAM, e.g. 256M or 1G (default 256M)
      --smp N|cpus=N  CPUs (harts) the guest sees, 1..8 (default 1); they run in turns on the
                      VM's one thread: more CPUs for the guest, not more host cores
      --disk PATH[,format=raw|qcow2|luks][,key-file=PATH][,ro][,snapshot=on][,cor=on][,cache=writeback|writethrough|unsafe][,sched=noop|sstf|scan|deadline][,bus=mmio|pci][,packed=on|off]
                      a virtio-blk disk (repeatable; the first is /dev/vda); bus=pci: on PCIe
                      (virtio-pci) instead of virtio-mmio; packed=on: offer packed virtqueues;
                      snapshot=on:
                      writes go to a temporary overlay thrown away at exit (the image is untouched);
                      cor=on: clusters read from the backing chain are copied into the overlay
                      key-file: the passphrase of an encrypted (LUKS) image; without it, asked
      --console ttyS0|hvc0  the console this terminal attaches to (default ttyS0)
      --rng           add a virtio-rng device
      --nic e1000|virtio|virtio-pci[,net=none|user|switch:NAME][,mac=..][,capture=FILE.pcap][,packed=on|off]
                      a network card (repeatable): e1000 on PCIe, virtio-net on virtio-mmio
                      (virtio) or on PCIe (virtio-pci, modern, INTx); net=user is NAT
                      (DHCP 10.0.2.15, host at 10.0.2.2; IPv6 fec0::/64 by SLAAC, host at
                      fec0::2) with [,hostfwd=tcp|udp::HOSTPORT-:GUESTPORT] (IPv6:
                      hostfwd=tcp:[::1]:HOSTPORT-:GUESTPORT) (repeatable), [,restrict=on],
                      [,tftp=DIR] (a read-only TFTP server at 10.0.2.2 serving the files
                      under DIR) and [,bootfile=FILE] (the boot file DHCP names);
                      net=switch:NAME puts it on one L2
                      switch with every NIC on switch:NAME, in this and your other wasmvisor
                      processes; capture tees its frames
      --balloon[,free-page-reporting=on|off][,deflate-on-oom=on|off][,stats=SECONDS]
                      add a virtio-balloon (defaults: reporting on, deflate-on-oom off,
                      stats every 2 s); Ctrl-A C opens the monitor: "balloon MIB"
      --virtio-packed every virtio device offers packed virtqueues (VIRTIO_F_RING_PACKED) instead
                      of only split ones, unless a --disk or --nic says packed=off
      --stats         print instructions, MIPS, exits and interrupts at exit
      --no-jit        interpret every guest instruction (by default hot guest code is
                      translated to WebAssembly: CPU-bound code runs 2-8x faster, --stats
                      shows the translated share); --jit asks for the default explicitly
      --icount [shift=N][,sleep=on|off]
                      deterministic time: the guest's clock counts instructions retired, one
                      10 MHz tick per 2^N (default 4); sleep=off: a guest waiting for a timer
                      gets there at once instead of after that long in host time
      --rtc base=utc|YYYY-MM-DD[THH:MM:SS]
                      the date the guest's real-time clock starts at (UTC; default: now)
      --fw-cfg [name=]opt/NAME,file=PATH|string=TEXT
                      hand the guest a file through fw_cfg, as QEMU's -fw_cfg (repeatable;
                      Linux: /sys/firmware/qemu_fw_cfg/by_name/opt/NAME/raw; ",," is a comma)
      --share PATH[,tag=NAME][,ro][,bus=mmio|pci]
                      share a host folder with the guest over virtio-9p (repeatable, up to 4;
                      default tags host0, host1, ...); in the guest:
                      mount -t 9p -o trans=virtio,version=9p2000.L NAME /mnt
                      (ro: the guest can read, not change; bus=pci: on PCIe (virtio-pci)
                      instead of virtio-mmio; ",," is a comma in PATH)
      --incoming tcp:HOST:PORT
                      wait there for a VM the monitor's "migrate tcp:HOST:PORT" sends live from
                      another wasmvisor, and run it (its definition comes with it, so no other VM
                      option goes with this but --[no-]jit); HOST 127.0.0.1 by default: whoever
                      can connect there can hand this process a VM to run, as with QEMU
      --restore FILE  resume a VM saved with the monitor's "save FILE" (its definition, disks
                      and NICs come from FILE, so no other VM option goes with it but --[no-]jit)
  run-elf FILE        run a bare-metal ELF (riscv-tests tohost protocol); exit status = test result
      --timeout SEC   give up after SEC seconds of host time (default 10)
      --max-insns N   give up after N instructions
      --stats         as above
  ui                  web mode: serve the UI on 127.0.0.1 and print its URL (with a per-launch token)
      --port N        listen on port N (default: any free port)
${IMG_USAGE}  help                this text
`;

/** Parses "256M", "1G", "512" (MiB) into MiB. */
export function parseMemMiB(s: string): number {
  const m = /^(\d+)([MmGg]i?[Bb]?)?$/.exec(s.trim());
  if (!m) throw new UsageError(`--mem: cannot read "${s}" (try 256M or 1G)`);
  const n = Number(m[1]);
  const mib = m[2] && /^[Gg]/.test(m[2]) ? n * 1024 : n;
  if (mib < MIN_MEM_MIB || mib > MAX_MEM_MIB) {
    throw new UsageError(`--mem: ${mib} MiB is outside ${MIN_MEM_MIB}M..${MAX_MEM_MIB / 1024}G`);
  }
  return mib;
}

/** `--jit` / `--no-jit` as a VmConfig's `jit` (absent: the default, core.ts vmJit). */
function jitChoice(values: { jit?: boolean; 'no-jit'?: boolean }): { jit?: boolean } {
  if (values.jit && values['no-jit']) throw new UsageError('--jit and --no-jit: give one');
  return values.jit ? { jit: true } : values['no-jit'] ? { jit: false } : {};
}

function positiveNumber(name: string, s: string | undefined): number | undefined {
  if (s === undefined) return undefined;
  const n = Number(s);
  if (!Number.isFinite(n) || n <= 0)
    throw new UsageError(`${name}: "${s}" is not a positive number`);
  return n;
}

export function parseCommand(argv: string[]): Command {
  const [cmd, ...rest] = argv;
  if (cmd === undefined || cmd === 'help' || cmd === '--help' || cmd === '-h')
    return { kind: 'help' };
  if (cmd === '--version' || cmd === 'version') return { kind: 'version' };
  try {
    if (cmd === 'run') {
      const balloonArgs = rest.filter((a) => a === '--balloon' || a.startsWith('--balloon,'));
      // --icount alone takes the defaults; with a value it is "--icount SPEC" as QEMU's -icount.
      const icountArgs = rest.flatMap((a, i) =>
        a === '--icount' && (rest[i + 1] === undefined || rest[i + 1]!.startsWith('--'))
          ? ['']
          : [],
      );
      const { values, positionals } = parseArgs({
        args: rest.filter(
          (a, i) =>
            !balloonArgs.includes(a) &&
            !(a === '--icount' && (rest[i + 1] === undefined || rest[i + 1]!.startsWith('--'))),
        ),
        allowPositionals: true,
        options: {
          kernel: { type: 'string' },
          initrd: { type: 'string' },
          bios: { type: 'string' },
          append: { type: 'string' },
          mem: { type: 'string', short: 'm' },
          smp: { type: 'string' },
          disk: { type: 'string', multiple: true },
          console: { type: 'string' },
          rng: { type: 'boolean', default: false },
          nic: { type: 'string', multiple: true },
          'virtio-packed': { type: 'boolean' },
          stats: { type: 'boolean', default: false },
          jit: { type: 'boolean' },
          'no-jit': { type: 'boolean' },
          icount: { type: 'string' },
          rtc: { type: 'string' },
          'fw-cfg': { type: 'string', multiple: true },
          share: { type: 'string', multiple: true },
          restore: { type: 'string' },
          incoming: { type: 'string' },
        },
      });
      if (positionals.length) throw new UsageError(`run: unexpected argument "${positionals[0]}"`);
      if (values.restore !== undefined || values.incoming !== undefined) {
        const from = values.restore !== undefined ? 'restore' : 'incoming';
        if (values.restore !== undefined && values.incoming !== undefined) {
          throw new UsageError(
            '--restore and --incoming both name where the VM comes from: give one',
          );
        }
        const shaping = [
          'kernel',
          'initrd',
          'bios',
          'append',
          'mem',
          'smp',
          'disk',
          'console',
          'nic',
          'icount',
          'rtc',
          'fw-cfg',
          'share',
        ]
          .filter((k) => values[k as keyof typeof values] !== undefined)
          .concat(values.rng ? ['rng'] : [])
          .concat(values['virtio-packed'] ? ['virtio-packed'] : [])
          .concat(icountArgs.length ? ['icount'] : [])
          .concat(balloonArgs.length ? ['balloon'] : []);
        if (shaping.length) {
          throw new UsageError(
            from === 'restore'
              ? `--restore takes the VM's definition from the file; --${shaping[0]} cannot go with it`
              : `--incoming takes the VM's definition from the migration; --${shaping[0]} cannot go with it`,
          );
        }
        if (from === 'incoming') {
          try {
            parseMigrationUri(values.incoming!, true);
          } catch (e) {
            throw new UsageError(`--incoming: ${(e as Error).message}`);
          }
          return {
            kind: 'run',
            vm: defaultVmConfig('incoming'),
            stats: values.stats ?? false,
            incoming: values.incoming!,
            ...jitChoice(values),
          };
        }
        if (!values.restore) throw new UsageError('--restore: give the saved VM file');
        return {
          kind: 'run',
          vm: defaultVmConfig(),
          stats: values.stats ?? false,
          restore: values.restore,
          // The JIT changes how, not what, the guest runs: it may be chosen for a resume.
          ...jitChoice(values),
        };
      }
      // --balloon takes its options glued on ("--balloon,stats=5"), as QEMU's -device does;
      // parseArgs would not know that option name, so it is taken out first.
      let balloon: VmConfig['balloon'];
      for (const a of balloonArgs) balloon = parseBalloonSpec(a.slice('--balloon'.length));
      const con = values.console ?? 'ttyS0';
      if (con !== 'ttyS0' && con !== 'hvc0') {
        throw new UsageError(`--console: "${con}" is not ttyS0 or hvc0`);
      }
      const icount = icountArgs.length
        ? parseIcountSpec(icountArgs[icountArgs.length - 1]!)
        : values.icount !== undefined
          ? parseIcountSpec(values.icount)
          : undefined;
      const rtcBase = values.rtc !== undefined ? parseRtcSpec(values.rtc) : undefined;
      const cpus = values.smp !== undefined ? parseSmpSpec(values.smp) : 1;
      const vm: VmConfig = {
        ...defaultVmConfig(),
        firmware: values.bios,
        kernel: values.kernel,
        initrd: values.initrd,
        append: values.append,
        memMiB: values.mem !== undefined ? parseMemMiB(values.mem) : 256,
        ...(cpus > 1 ? { cpus } : {}),
        disks: (values.disk ?? []).map(parseDiskSpec),
        console: con,
        rng: values.rng ?? false,
        nics: (values.nic ?? []).map(parseNicSpec),
        ...(balloon ? { balloon } : {}),
        ...jitChoice(values),
        ...(icount ? { icount } : {}),
        ...(rtcBase !== undefined ? { rtcBase } : {}),
        ...(values['fw-cfg'] ? { fwCfg: values['fw-cfg'].map(parseFwCfgSpec) } : {}),
        ...(values.share ? { shares: parseShareSpecs(values.share) } : {}),
        ...(values['virtio-packed'] ? { virtioPacked: true } : {}),
      };
      return { kind: 'run', vm, stats: values.stats ?? false };
    }
    if (cmd === 'ui') {
      const { values, positionals } = parseArgs({
        args: rest,
        allowPositionals: true,
        options: { port: { type: 'string' } },
      });
      if (positionals.length) throw new UsageError(`ui: unexpected argument "${positionals[0]}"`);
      if (values.port === undefined) return { kind: 'ui' };
      const port = Number(values.port);
      if (!Number.isInteger(port) || port < 1 || port > 65535) {
        throw new UsageError(`--port: "${values.port}" is not a port number (1-65535)`);
      }
      return { kind: 'ui', port };
    }
    if (cmd === 'img') return parseImgArgs(rest);
    if (cmd === 'run-elf') {
      const { values, positionals } = parseArgs({
        args: rest,
        allowPositionals: true,
        options: {
          timeout: { type: 'string' },
          'max-insns': { type: 'string' },
          stats: { type: 'boolean', default: false },
        },
      });
      if (positionals.length !== 1) throw new UsageError('run-elf: give exactly one ELF file');
      const timeout = positiveNumber('--timeout', values.timeout);
      return {
        kind: 'run-elf',
        file: positionals[0]!,
        timeoutMs: timeout !== undefined ? timeout * 1000 : undefined,
        maxInsns: positiveNumber('--max-insns', values['max-insns']),
        stats: values.stats ?? false,
      };
    }
  } catch (e) {
    if (e instanceof UsageError) throw e;
    if (e instanceof ConfigError) throw new UsageError(e.message);
    throw new UsageError((e as Error).message);
  }
  throw new UsageError(`unknown command "${cmd}"`);
}
