/**
 * The VM definition: what the CLI builds from its flags, what the host API stores as JSON and
 * what a worker boots. One shape for all three, validated here with errors that name the field.
 */
import { checkFileName } from '../../devices/platform/fw-cfg.js';
import {
  checkShare,
  checkShares,
  parseShareSpec,
  ShareError,
  type ShareConfig,
} from './share-config.js';
import { parseUserSpec } from '../../devices/net/user/config.js';
import { validateIcount, validateRtcBase, type IcountConfig } from './time-config.js';

export type CacheMode = 'writeback' | 'writethrough' | 'unsafe';
export type SchedulerPolicy = 'noop' | 'sstf' | 'scan' | 'deadline' | 'lifo' | 'random' | 'cfq';
export type DiskFormat = 'raw' | 'qcow2' | 'luks';
export const DISK_FORMATS: readonly DiskFormat[] = ['raw', 'qcow2', 'luks'];
export type ConsoleKind = 'ttyS0' | 'hvc0';

export interface DiskConfig {
  path: string;
  /** Image format as the user names it; never probed (a raw image's guest controls its bytes). */
  format: DiskFormat;
  readOnly: boolean;
  cache: CacheMode;
  sched: SchedulerPolicy;
  /**
   * QEMU's -snapshot: the guest runs on a temporary qcow2 overlay over this image, thrown away
   * when the disk closes (or the process dies); the image itself is opened read-only.
   */
  snapshot?: boolean;
  /**
   * Copy-on-read: every cluster the guest reads from the backing chain is written into the
   * qcow2 overlay (the image itself, or the snapshot=on overlay), so a VM on a slow base gets
   * faster as it runs.
   */
  cor?: boolean;
  /**
   * The passphrase of an encrypted image (raw LUKS, or qcow2 with LUKS) is this file's bytes.
   * Only the path is kept in a definition; the key itself is read when the disk opens.
   */
  keyFile?: string;
  /**
   * 'pci': the virtio-blk sits on the PCIe bus (virtio-pci, as QEMU's virtio-blk-pci) instead of
   * a virtio-mmio slot (absent or 'mmio').
   */
  bus?: 'mmio' | 'pci';
  /**
   * Offer packed virtqueues (VIRTIO_F_RING_PACKED, QEMU's `packed=on`); absent: the VM's
   * `virtioPacked`.
   */
  packed?: boolean;
}

/** cor=on needs an overlay to copy into: a qcow2 image (with a backing file) or snapshot=on. */
function checkCor(d: DiskConfig, where: string): void {
  if (!d.cor) return;
  if (d.format !== 'qcow2' && !d.snapshot) {
    throw new ConfigError(`${where}: cor=on needs a qcow2 overlay (format=qcow2 or snapshot=on)`);
  }
  if (d.readOnly) throw new ConfigError(`${where}: cor=on writes into the overlay, so not with ro`);
}

/** virtio-balloon settings; each optional feature is a device setting. */
export interface BalloonConfig {
  enabled: boolean;
  /** The guest reports free page blocks on its own; they are given back to the host. */
  freePageReporting: boolean;
  /** The guest may deflate on its own when it runs out of memory. */
  deflateOnOom: boolean;
  /** Ask for the guest's memory statistics every this many seconds (0: no stats queue). */
  statsPeriodS: number;
}

/** e1000 on PCIe, virtio-net on virtio-mmio, virtio-net on PCIe (virtio-pci). */
export type NicModel = 'e1000' | 'virtio' | 'virtio-pci';

/** One network card: its model, the network it is plugged into, and optional MAC/capture. */
export interface NicConfig {
  model: NicModel;
  /** Back end: "none" (no cable), "user[,restrict=on][,hostfwd=...]" or "switch:NAME". */
  net: string;
  /** "52:54:00:12:34:56"; undefined = a random locally administered address per boot. */
  mac?: string;
  /** Tee the NIC's frames to this pcap file from boot on. */
  capture?: string;
  /** virtio models: offer packed virtqueues (`packed=on`); absent: the VM's `virtioPacked`. */
  packed?: boolean;
}

export interface VmConfig {
  /** Shown in the UI and used as the definition's file name. */
  name: string;
  memMiB: number;
  /**
   * CPUs (harts) the guest sees, 1..MAX_CPUS (`--smp`); absent: 1. They run in turns on the
   * VM's one thread: more CPUs for the guest, not more host cores.
   */
  cpus?: number;
  /** Firmware, kernel and initrd paths; undefined = the bundled guest's. */
  firmware?: string;
  kernel?: string;
  initrd?: string;
  /** Kernel command line; undefined = derived from the console choice. */
  append?: string;
  /** Virtio-blk disks in order: the first is /dev/vda. */
  disks: DiskConfig[];
  /** Which console the user's terminal/UI attaches to; hvc0 adds a virtio-console. */
  console: ConsoleKind;
  /** Add a virtio-rng device. */
  rng: boolean;
  /** Add a virtio-balloon (absent or enabled: false: none). */
  balloon?: BalloonConfig;
  /** Network cards in order (e1000s and virtio-pci on PCIe, virtio-nets on virtio-mmio); [] = none. */
  nics: NicConfig[];
  /**
   * Translate hot guest code to WebAssembly (main/vm/jit); false: interpret every instruction.
   * Absent: WASMVISOR_JIT=1 or 0 if set, else on (core.ts vmJit).
   */
  jit?: boolean;
  /** Deterministic time from instructions retired (`--icount`); absent: host time. */
  icount?: IcountConfig;
  /** Where the wall clock (RTC) starts, `YYYY-MM-DDTHH:MM:SSZ` (`--rtc base=`); absent: now. */
  rtcBase?: string;
  /** Files handed to the guest through fw_cfg (`--fw-cfg`); absent: none of the user's. */
  fwCfg?: FwCfgConfig[];
  /** Host folders shared with the guest over virtio-9p (`--share`); absent: none. */
  shares?: ShareConfig[];
  /**
   * Every virtio device offers packed virtqueues (`--virtio-packed`) unless a disk or NIC says
   * `packed: false`; absent: split rings only, as QEMU's default.
   */
  virtioPacked?: boolean;
}

/**
 * One fw_cfg file (QEMU's `-fw_cfg name=…,file=…|string=…`): the guest reads it at
 * /sys/firmware/qemu_fw_cfg/by_name/NAME/raw. Exactly one of `file` (read when the VM starts)
 * and `string` (UTF-8, no NUL added).
 */
export interface FwCfgConfig {
  /** "opt/…", at most 55 bytes (e.g. "opt/org.example/config"). */
  name: string;
  file?: string;
  string?: string;
}

export class ConfigError extends Error {}

export type { ShareConfig };

/** share-config's checks, their errors made ConfigErrors as every other part of a definition. */
function shareChecked<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof ShareError) throw new ConfigError(e.message);
    throw e;
  }
}

/** Parses the `--share` arguments of a command line, in order (the n-th's default tag is hostN). */
export function parseShareSpecs(specs: readonly string[]): ShareConfig[] {
  return shareChecked(() => {
    const shares = specs.map((s, i) => parseShareSpec(s, i));
    checkShares(shares, '--share');
    return shares;
  });
}

export const CACHE_MODES: readonly CacheMode[] = ['writeback', 'writethrough', 'unsafe'];
export const SCHEDULERS: readonly SchedulerPolicy[] = [
  'noop',
  'sstf',
  'scan',
  'deadline',
  'lifo',
  'random',
  'cfq',
];
export const MIN_MEM_MIB = 16;
export const MAX_MEM_MIB = 2048;
/** Most CPUs a VM can have: the machine's MAX_HARTS (machine.ts), which a test keeps equal. */
export const MAX_CPUS = 8;

/** Parses `--smp`'s value as QEMU's -smp takes it: "N" or "cpus=N" (no topology options). */
export function parseSmpSpec(spec: string): number {
  const m = /^(?:cpus=)?(\d+)$/.exec(spec.trim());
  if (!m) {
    throw new ConfigError(`--smp: cannot read "${spec}" (give N or cpus=N, N in 1..${MAX_CPUS})`);
  }
  const n = Number(m[1]);
  if (n < 1 || n > MAX_CPUS) throw new ConfigError(`--smp: ${n} CPUs is outside 1..${MAX_CPUS}`);
  return n;
}

export function defaultVmConfig(name = 'bundled'): VmConfig {
  return { name, memMiB: 256, disks: [], console: 'ttyS0', rng: false, nics: [] };
}

/** The kernel command line a config implies when `append` is not given. */
export function effectiveAppend(cfg: VmConfig): string {
  return cfg.append ?? `console=${cfg.console}`;
}

/**
 * Parses a `--fw-cfg` argument as QEMU's -fw_cfg: `[name=]NAME,file=PATH` or
 * `[name=]NAME,string=TEXT` (in TEXT and PATH a doubled comma is a comma).
 */
export function parseFwCfgSpec(spec: string): FwCfgConfig {
  const parts = [''];
  for (let i = 0; i < spec.length; i++) {
    if (spec[i] !== ',') parts[parts.length - 1] += spec[i];
    else if (spec[i + 1] === ',') parts[parts.length - 1] += spec[i++];
    else parts.push('');
  }
  const out: Partial<FwCfgConfig> = {};
  parts.forEach((p, i) => {
    const eq = p.indexOf('=');
    // The first option may be the bare name, as with QEMU.
    const k = eq < 0 && i === 0 ? 'name' : p.slice(0, eq < 0 ? p.length : eq);
    const v = eq < 0 && i === 0 ? p : p.slice(eq + 1);
    if ((k !== 'name' && k !== 'file' && k !== 'string') || (eq < 0 && i > 0)) {
      throw new ConfigError(`--fw-cfg: unknown option "${p}" (name=, file= or string=)`);
    }
    if (out[k] !== undefined) throw new ConfigError(`--fw-cfg: ${k}= given twice`);
    out[k] = v;
  });
  return checkFwCfg(out, '--fw-cfg');
}

function checkFwCfg(f: Partial<FwCfgConfig>, w: string): FwCfgConfig {
  if (typeof f.name !== 'string' || f.name === '') throw new ConfigError(`${w}: give name=opt/…`);
  try {
    checkFileName(f.name);
  } catch (e) {
    throw new ConfigError(`${w}: ${(e as Error).message}`);
  }
  const hasFile = f.file !== undefined;
  const hasString = f.string !== undefined;
  if (hasFile === hasString) {
    throw new ConfigError(`${w}: "${f.name}" needs one of file= and string=`);
  }
  if (hasFile && (typeof f.file !== 'string' || f.file === '')) {
    throw new ConfigError(`${w}: "${f.name}": file= needs a path`);
  }
  if (hasString && typeof f.string !== 'string') {
    throw new ConfigError(`${w}: "${f.name}": string= must be text`);
  }
  return { name: f.name, ...(hasFile ? { file: f.file } : { string: f.string }) };
}

/**
 * Parses a `--disk` argument:
 * PATH[,format=raw|qcow2][,ro][,cache=MODE][,sched=POLICY][,snapshot=on][,cor=on][,bus=mmio|pci]
 * [,packed=on|off].
 * (A path containing a comma cannot be given this way, as with QEMU's -drive without escaping.)
 */
export function parseDiskSpec(spec: string): DiskConfig {
  const [path, ...opts] = spec.split(',');
  if (!path) throw new ConfigError(`--disk: missing path in "${spec}"`);
  const d: DiskConfig = { path, format: 'raw', readOnly: false, cache: 'writeback', sched: 'noop' };
  for (const o of opts) {
    const [k, v] = o.split('=', 2) as [string, string | undefined];
    if (k === 'ro' && v === undefined) d.readOnly = true;
    else if (k === 'snapshot') {
      if (v !== 'on' && v !== 'off')
        throw new ConfigError(`--disk ${path}: snapshot must be on or off`);
      d.snapshot = v === 'on';
    } else if (k === 'cor') {
      if (v !== 'on' && v !== 'off') throw new ConfigError(`--disk ${path}: cor must be on or off`);
      d.cor = v === 'on';
    } else if (k === 'format') {
      if (!DISK_FORMATS.includes(v as DiskFormat))
        throw new ConfigError(`--disk ${path}: format "${v}" is not supported (raw, qcow2, luks)`);
      d.format = v as DiskFormat;
    } else if (k === 'key-file') {
      if (!v) throw new ConfigError(`--disk ${path}: key-file needs a PATH`);
      d.keyFile = v;
    } else if (k === 'key' || k === 'passphrase' || k === 'key-secret') {
      throw new ConfigError(
        `--disk ${path}: a key on the command line is visible to every user of this host; use key-file=PATH (or leave it out to be asked)`,
      );
    } else if (k === 'bus') {
      if (v !== 'mmio' && v !== 'pci')
        throw new ConfigError(`--disk ${path}: bus must be mmio or pci`);
      if (v === 'pci') d.bus = 'pci';
    } else if (k === 'packed') {
      if (v !== 'on' && v !== 'off')
        throw new ConfigError(`--disk ${path}: packed must be on or off`);
      d.packed = v === 'on';
    } else if (k === 'cache') {
      if (!CACHE_MODES.includes(v as CacheMode)) {
        throw new ConfigError(`--disk ${path}: cache must be one of ${CACHE_MODES.join(', ')}`);
      }
      d.cache = v as CacheMode;
    } else if (k === 'sched') {
      if (!SCHEDULERS.includes(v as SchedulerPolicy)) {
        throw new ConfigError(`--disk ${path}: sched must be one of ${SCHEDULERS.join(', ')}`);
      }
      d.sched = v as SchedulerPolicy;
    } else throw new ConfigError(`--disk ${path}: unknown option "${o}"`);
  }
  checkCor(d, `--disk ${path}`);
  return d;
}

export const MAX_STATS_PERIOD_S = 3600;

export function defaultBalloonConfig(): BalloonConfig {
  return { enabled: true, freePageReporting: true, deflateOnOom: false, statsPeriodS: 2 };
}

/**
 * Parses a `--balloon` argument: an empty string or
 * [free-page-reporting=on|off][,deflate-on-oom=on|off][,stats=SECONDS] (a leading "," allowed).
 */
export function parseBalloonSpec(spec: string): BalloonConfig {
  const b = defaultBalloonConfig();
  const onOff = (k: string, v: string | undefined): boolean => {
    if (v === 'on') return true;
    if (v === 'off') return false;
    throw new ConfigError(`--balloon: ${k} must be on or off`);
  };
  for (const o of spec.split(',').filter((x) => x !== '')) {
    const [k, v] = o.split('=', 2) as [string, string | undefined];
    if (k === 'free-page-reporting') b.freePageReporting = onOff(k, v);
    else if (k === 'deflate-on-oom') b.deflateOnOom = onOff(k, v);
    else if (k === 'stats') {
      const n = Number(v);
      if (v === undefined || !Number.isInteger(n) || n < 0 || n > MAX_STATS_PERIOD_S) {
        throw new ConfigError(`--balloon: stats must be whole seconds in 0..${MAX_STATS_PERIOD_S}`);
      }
      b.statsPeriodS = n;
    } else throw new ConfigError(`--balloon: unknown option "${o}"`);
  }
  return b;
}

function validateBalloon(v: unknown, where: string): BalloonConfig | undefined {
  if (v === undefined) return undefined;
  const w = `${where}: balloon`;
  if (!isObj(v)) throw new ConfigError(`${w}: expected an object`);
  const d = defaultBalloonConfig();
  const bool = (k: 'enabled' | 'freePageReporting' | 'deflateOnOom'): boolean => {
    const x = v[k] ?? d[k];
    if (typeof x !== 'boolean') throw new ConfigError(`${w}: "${k}" must be true or false`);
    return x;
  };
  const period = v.statsPeriodS ?? d.statsPeriodS;
  if (
    typeof period !== 'number' ||
    !Number.isInteger(period) ||
    period < 0 ||
    period > MAX_STATS_PERIOD_S
  ) {
    throw new ConfigError(`${w}: "statsPeriodS" must be an integer in 0..${MAX_STATS_PERIOD_S}`);
  }
  return {
    enabled: bool('enabled'),
    freePageReporting: bool('freePageReporting'),
    deflateOnOom: bool('deflateOnOom'),
    statsPeriodS: period,
  };
}

export const NIC_MODELS: readonly NicModel[] = ['e1000', 'virtio', 'virtio-pci'];
const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;
const NET_RE = /^(none|switch:[\w.-]{1,64})$/;

/** Checks one NIC's fields; `w` names it in errors. */
function checkNic(n: NicConfig, w: string): NicConfig {
  if (!NIC_MODELS.includes(n.model)) {
    throw new ConfigError(
      `${w}: model "${String(n.model)}" is not one of ${NIC_MODELS.join(', ')}`,
    );
  }
  if (typeof n.net === 'string' && (n.net === 'user' || n.net.startsWith('user,'))) {
    try {
      parseUserSpec(n.net);
    } catch (e) {
      throw new ConfigError(`${w}: ${(e as Error).message}`);
    }
  } else if (typeof n.net !== 'string' || !NET_RE.test(n.net)) {
    throw new ConfigError(`${w}: net "${String(n.net)}" must be none, user[,...] or switch:NAME`);
  }
  if (n.mac !== undefined) {
    if (typeof n.mac !== 'string' || !MAC_RE.test(n.mac)) {
      throw new ConfigError(`${w}: mac "${String(n.mac)}" is not like 52:54:00:12:34:56`);
    }
    if (parseInt(n.mac.slice(0, 2), 16) & 1) {
      throw new ConfigError(`${w}: mac ${n.mac} is a multicast address`);
    }
  }
  if (n.capture !== undefined && (typeof n.capture !== 'string' || !n.capture)) {
    throw new ConfigError(`${w}: "capture" must be a file name`);
  }
  if (n.packed !== undefined) {
    if (typeof n.packed !== 'boolean')
      throw new ConfigError(`${w}: "packed" must be true or false`);
    if (n.model === 'e1000')
      throw new ConfigError(`${w}: packed rings are a virtio option, not e1000's`);
  }
  return {
    model: n.model,
    net: n.net,
    mac: n.mac?.toLowerCase(),
    capture: n.capture,
    ...(n.packed !== undefined ? { packed: n.packed } : {}),
  };
}

/**
 * Parses a `--nic` argument, QEMU-like: MODEL[,net=none|user|switch:NAME][,mac=MAC]
 * [,capture=FILE][,packed=on|off], and for net=user [,restrict=on][,hostfwd=RULE]... (kept in
 * `net`).
 * The default network is none (a NIC with no cable), as a NIC without a back end.
 */
export function parseNicSpec(spec: string): NicConfig {
  const [model, ...opts] = spec.split(',');
  const n: NicConfig = { model: model as NicModel, net: 'none' };
  const userOpts: string[] = [];
  for (const o of opts) {
    const eq = o.indexOf('=');
    const k = eq < 0 ? o : o.slice(0, eq);
    const v = eq < 0 ? '' : o.slice(eq + 1);
    if (k === 'net') n.net = v;
    else if (k === 'mac') n.mac = v;
    else if (k === 'capture') n.capture = v;
    else if (k === 'packed') {
      if (v !== 'on' && v !== 'off')
        throw new ConfigError(`--nic ${model}: packed must be on or off`);
      n.packed = v === 'on';
    } else if (['hostfwd', 'restrict', 'tftp', 'bootfile'].includes(k)) userOpts.push(o);
    else {
      throw new ConfigError(
        `--nic ${model}: unknown option "${o}" (net=, mac=, capture=, packed=, hostfwd=, restrict=, tftp=, bootfile=)`,
      );
    }
  }
  if (userOpts.length > 0) {
    if (n.net !== 'user')
      throw new ConfigError(
        `--nic ${spec}: hostfwd=, restrict=, tftp= and bootfile= need net=user`,
      );
    n.net = ['user', ...userOpts].join(',');
  }
  return checkNic(n, `--nic ${spec}`);
}

const isObj = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** Validates untrusted JSON (a saved definition, an API request) into a VmConfig. */
export function validateVmConfig(v: unknown, where = 'VM definition'): VmConfig {
  if (!isObj(v)) throw new ConfigError(`${where}: expected an object`);
  const str = (k: string, optional: boolean): string | undefined => {
    const x = v[k];
    if (x === undefined && optional) return undefined;
    if (typeof x !== 'string' || (!optional && x.length === 0)) {
      throw new ConfigError(`${where}: "${k}" must be a ${optional ? '' : 'non-empty '}string`);
    }
    return x;
  };
  const name = str('name', false)!;
  if (!/^[\w.-]{1,64}$/.test(name)) {
    throw new ConfigError(`${where}: "name" may use letters, digits, "-", "_" and "." (1-64)`);
  }
  const memMiB = v.memMiB;
  if (
    typeof memMiB !== 'number' ||
    !Number.isInteger(memMiB) ||
    memMiB < MIN_MEM_MIB ||
    memMiB > MAX_MEM_MIB
  ) {
    throw new ConfigError(
      `${where}: "memMiB" must be an integer in ${MIN_MEM_MIB}..${MAX_MEM_MIB}`,
    );
  }
  const cpus = v.cpus ?? 1;
  if (typeof cpus !== 'number' || !Number.isInteger(cpus) || cpus < 1 || cpus > MAX_CPUS) {
    throw new ConfigError(`${where}: "cpus" must be an integer in 1..${MAX_CPUS}`);
  }
  const consoleKind = v.console ?? 'ttyS0';
  if (consoleKind !== 'ttyS0' && consoleKind !== 'hvc0') {
    throw new ConfigError(`${where}: "console" must be "ttyS0" or "hvc0"`);
  }
  const rng = v.rng ?? false;
  if (typeof rng !== 'boolean') throw new ConfigError(`${where}: "rng" must be true or false`);
  const jit = v.jit;
  if (jit !== undefined && typeof jit !== 'boolean') {
    throw new ConfigError(`${where}: "jit" must be true or false`);
  }
  const icount = validateIcount(v.icount, where);
  const virtioPacked = v.virtioPacked;
  if (virtioPacked !== undefined && typeof virtioPacked !== 'boolean') {
    throw new ConfigError(`${where}: "virtioPacked" must be true or false`);
  }
  const rtcBase = validateRtcBase(v.rtcBase, where);
  const disksIn = v.disks ?? [];
  if (!Array.isArray(disksIn)) throw new ConfigError(`${where}: "disks" must be a list`);
  const disks = disksIn.map((d: unknown, i: number): DiskConfig => {
    const w = `${where}: disks[${i}]`;
    if (!isObj(d)) throw new ConfigError(`${w}: expected an object`);
    if (typeof d.path !== 'string' || !d.path) throw new ConfigError(`${w}: "path" is required`);
    const fmt = d.format ?? 'raw';
    if (!DISK_FORMATS.includes(fmt as DiskFormat)) {
      throw new ConfigError(`${w}: format "${String(fmt)}" is not supported (raw, qcow2, luks)`);
    }
    const cache = d.cache ?? 'writeback';
    if (!CACHE_MODES.includes(cache as CacheMode)) {
      throw new ConfigError(`${w}: "cache" must be one of ${CACHE_MODES.join(', ')}`);
    }
    const sched = d.sched ?? 'noop';
    if (!SCHEDULERS.includes(sched as SchedulerPolicy)) {
      throw new ConfigError(`${w}: "sched" must be one of ${SCHEDULERS.join(', ')}`);
    }
    const ro = d.readOnly ?? false;
    if (typeof ro !== 'boolean') throw new ConfigError(`${w}: "readOnly" must be true or false`);
    const snap = d.snapshot ?? false;
    if (typeof snap !== 'boolean') throw new ConfigError(`${w}: "snapshot" must be true or false`);
    const cor = d.cor ?? false;
    if (typeof cor !== 'boolean') throw new ConfigError(`${w}: "cor" must be true or false`);
    if (d.keyFile !== undefined && (typeof d.keyFile !== 'string' || !d.keyFile)) {
      throw new ConfigError(`${w}: "keyFile" must be a path`);
    }
    const bus = d.bus ?? 'mmio';
    if (bus !== 'mmio' && bus !== 'pci')
      throw new ConfigError(`${w}: "bus" must be "mmio" or "pci"`);
    if (d.packed !== undefined && typeof d.packed !== 'boolean') {
      throw new ConfigError(`${w}: "packed" must be true or false`);
    }
    const disk: DiskConfig = {
      path: d.path,
      format: fmt as DiskFormat,
      readOnly: ro,
      cache: cache as CacheMode,
      sched: sched as SchedulerPolicy,
      ...(snap ? { snapshot: true } : {}),
      ...(cor ? { cor: true } : {}),
      ...(typeof d.keyFile === 'string' ? { keyFile: d.keyFile } : {}),
      ...(bus === 'pci' ? { bus: 'pci' as const } : {}),
      ...(typeof d.packed === 'boolean' ? { packed: d.packed } : {}),
    };
    checkCor(disk, w);
    return disk;
  });
  let fwCfg: FwCfgConfig[] | undefined;
  if (v.fwCfg !== undefined) {
    if (!Array.isArray(v.fwCfg)) throw new ConfigError(`${where}: "fwCfg" must be a list`);
    fwCfg = v.fwCfg.map((f: unknown, i: number) => {
      if (!isObj(f)) throw new ConfigError(`${where}: fwCfg[${i}]: expected an object`);
      return checkFwCfg(f as Partial<FwCfgConfig>, `${where}: fwCfg[${i}]`);
    });
    const names = fwCfg.map((f) => f.name);
    const dup = names.find((n, i) => names.indexOf(n) !== i);
    if (dup) throw new ConfigError(`${where}: fwCfg: "${dup}" given twice`);
  }
  let shares: ShareConfig[] | undefined;
  if (v.shares !== undefined) {
    const list = v.shares;
    if (!Array.isArray(list)) throw new ConfigError(`${where}: "shares" must be a list`);
    shares = shareChecked(() => {
      const out = list.map((f: unknown, i: number) => {
        if (!isObj(f)) throw new ShareError(`${where}: shares[${i}]: expected an object`);
        return checkShare(f as Partial<ShareConfig>, `${where}: shares[${i}]`);
      });
      checkShares(out, `${where}: shares`);
      return out;
    });
  }
  const nicsIn = v.nics ?? [];
  if (!Array.isArray(nicsIn)) throw new ConfigError(`${where}: "nics" must be a list`);
  const nics = nicsIn.map((n: unknown, i: number): NicConfig => {
    const w = `${where}: nics[${i}]`;
    if (!isObj(n)) throw new ConfigError(`${w}: expected an object`);
    return checkNic(n as unknown as NicConfig, w);
  });
  return {
    name,
    memMiB,
    // 1 is the default and stays out of the file, so one-CPU definitions read as before.
    ...(cpus > 1 ? { cpus } : {}),
    firmware: str('firmware', true),
    kernel: str('kernel', true),
    initrd: str('initrd', true),
    append: str('append', true),
    disks,
    console: consoleKind,
    rng,
    ...(v.balloon !== undefined ? { balloon: validateBalloon(v.balloon, where) } : {}),
    nics,
    // Absent is the default (core.ts vmJit: WASMVISOR_JIT, else on); false is a choice to keep.
    ...(jit !== undefined ? { jit } : {}),
    ...(icount ? { icount } : {}),
    ...(rtcBase !== undefined ? { rtcBase } : {}),
    ...(fwCfg ? { fwCfg } : {}),
    ...(shares?.length ? { shares } : {}),
    ...(virtioPacked ? { virtioPacked } : {}),
  };
}
