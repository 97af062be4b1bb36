/**
 * The VM definition: what the CLI builds from its flags, what the host API stores as JSON and
 * what a worker boots. One shape for all three, validated here with errors that name the field.
 */

export type CacheMode = 'writeback' | 'writethrough' | 'unsafe';
export type SchedulerPolicy = 'noop' | 'sstf' | 'scan' | 'deadline';
export type ConsoleKind = 'ttyS0' | 'hvc0';

export interface DiskConfig {
  path: string;
  format: 'raw';
  readOnly: boolean;
  cache: CacheMode;
  sched: SchedulerPolicy;
}

export interface VmConfig {
  /** Shown in the UI and used as the definition's file name. */
  name: string;
  memMiB: number;
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
}

export class ConfigError extends Error {}

export const CACHE_MODES: readonly CacheMode[] = ['writeback', 'writethrough', 'unsafe'];
export const SCHEDULERS: readonly SchedulerPolicy[] = ['noop', 'sstf', 'scan', 'deadline'];
export const MIN_MEM_MIB = 16;
export const MAX_MEM_MIB = 2048;

export function defaultVmConfig(name = 'bundled'): VmConfig {
  return { name, memMiB: 256, disks: [], console: 'ttyS0', rng: false };
}

/** The kernel command line a config implies when `append` is not given. */
export function effectiveAppend(cfg: VmConfig): string {
  return cfg.append ?? `console=${cfg.console}`;
}

/**
 * Parses a `--disk` argument: PATH[,format=raw][,ro][,cache=MODE][,sched=POLICY].
 * (A path containing a comma cannot be given this way, as with QEMU's -drive without escaping.)
 */
export function parseDiskSpec(spec: string): DiskConfig {
  const [path, ...opts] = spec.split(',');
  if (!path) throw new ConfigError(`--disk: missing path in "${spec}"`);
  const d: DiskConfig = { path, format: 'raw', readOnly: false, cache: 'writeback', sched: 'noop' };
  for (const o of opts) {
    const [k, v] = o.split('=', 2) as [string, string | undefined];
    if (k === 'ro' && v === undefined) d.readOnly = true;
    else if (k === 'format') {
      if (v !== 'raw')
        throw new ConfigError(`--disk ${path}: format "${v}" is not supported (raw)`);
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
  return d;
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
  const consoleKind = v.console ?? 'ttyS0';
  if (consoleKind !== 'ttyS0' && consoleKind !== 'hvc0') {
    throw new ConfigError(`${where}: "console" must be "ttyS0" or "hvc0"`);
  }
  const rng = v.rng ?? false;
  if (typeof rng !== 'boolean') throw new ConfigError(`${where}: "rng" must be true or false`);
  const disksIn = v.disks ?? [];
  if (!Array.isArray(disksIn)) throw new ConfigError(`${where}: "disks" must be a list`);
  const disks = disksIn.map((d: unknown, i: number): DiskConfig => {
    const w = `${where}: disks[${i}]`;
    if (!isObj(d)) throw new ConfigError(`${w}: expected an object`);
    if (typeof d.path !== 'string' || !d.path) throw new ConfigError(`${w}: "path" is required`);
    const fmt = d.format ?? 'raw';
    if (fmt !== 'raw') throw new ConfigError(`${w}: format "${String(fmt)}" is not supported`);
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
    return {
      path: d.path,
      format: 'raw',
      readOnly: ro,
      cache: cache as CacheMode,
      sched: sched as SchedulerPolicy,
    };
  });
  return {
    name,
    memMiB,
    firmware: str('firmware', true),
    kernel: str('kernel', true),
    initrd: str('initrd', true),
    append: str('append', true),
    disks,
    console: consoleKind,
    rng,
  };
}
