/** Turns the machine's cumulative counters into per-second rates between two samples. */
import { readFileSync } from 'node:fs';
import type { MachineStats } from '../vm/machine.js';
import type { DiskIoStats, NicIoStats, VmStats } from '../host/api-types.js';
import type { DiskStats } from '../../devices/block/index.js';

/**
 * CPU seconds the calling thread has used (Linux; undefined elsewhere). process.cpuUsage()
 * counts every thread of the process, so it cannot tell one VM's worker from the others.
 */
export function threadCpuSeconds(): number | undefined {
  return procCpuSeconds('/proc/thread-self/stat');
}

/** CPU seconds process `pid` has used, all its threads together (Linux; undefined elsewhere). */
export function processCpuSeconds(pid: number): number | undefined {
  return procCpuSeconds(`/proc/${pid}/stat`);
}

function procCpuSeconds(statPath: string): number | undefined {
  try {
    const stat = readFileSync(statPath, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // utime and stime (fields 14 and 15 of proc(5)) in USER_HZ, which Linux fixes at 100.
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return undefined;
  }
}

interface Previous {
  at: number;
  instret: number;
  jitInsns: number;
  jitPercent: number;
  cpu: number | undefined;
  exits: Map<string, number>;
  irqs: Map<string, number>;
  bytes: Map<string, number>;
  switches: number;
  /** Each hart's retired instructions. */
  retired: number[];
}

/** A byte counter: any device counter named *_bytes (read_bytes, tx_bytes, …). */
const BYTE_COUNTER = /_bytes$/;
/**
 * Byte counters that are not throughput, or that repeat another: a NIC's back-end port counts
 * (net_rx/tx_bytes) the same frames as the device's rx/tx_bytes, so only the device's are charted.
 */
const NOT_THROUGHPUT = new Set(['rx_dropped_bytes', 'net_rx_bytes', 'net_tx_bytes']);

const isObj = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * The per-device counter maps in a MachineStats (`virtio` today; NICs and other device families
 * add theirs beside it): every field that maps device names to objects of numbers.
 */
function deviceCounterMaps(s: MachineStats): Record<string, Record<string, number>>[] {
  return Object.values(s).filter(
    (v): v is Record<string, Record<string, number>> =>
      isObj(v) &&
      Object.values(v).every(
        (c) => isObj(c) && Object.values(c).every((n) => typeof n === 'number'),
      ),
  );
}

/** "device\0counter" → value, for every byte counter of every device. */
function byteCounters(s: MachineStats): Map<string, number> {
  const out = new Map<string, number>();
  for (const map of deviceCounterMaps(s)) {
    for (const [dev, counters] of Object.entries(map)) {
      for (const [k, v] of Object.entries(counters)) {
        if (BYTE_COUNTER.test(k) && !NOT_THROUGHPUT.has(k)) out.set(`${dev}\0${k}`, v);
      }
    }
  }
  return out;
}

/** The disks' counters in the host API's shape. */
export function diskIoStats(disks: Record<string, DiskStats>): Record<string, DiskIoStats> {
  const out: Record<string, DiskIoStats> = {};
  for (const [name, d] of Object.entries(disks)) {
    out[name] = {
      policy: d.policy,
      cache: d.cache,
      reads: d.requests.read,
      writes: d.requests.write,
      flushes: d.requests.flush,
      discards: d.requests.discard + d.requests.writeZeroes,
      bytesRead: d.bytesRead,
      bytesWritten: d.bytesWritten,
      merges: d.merges,
      backendCalls: d.backendCalls,
      readsAtOnce: d.readsAtOnce,
      readsQueued: d.readsQueued,
      ...(d.readsAtOnceUnavailable ? { readsAtOnceUnavailable: d.readsAtOnceUnavailable } : {}),
      queueDepth: d.queueDepth,
      maxQueueDepth: d.maxQueueDepth,
      latencyUs: { p50: d.latencyUs.p50, p99: d.latencyUs.p99, max: d.latencyUs.max },
      errors: d.errors,
    };
  }
  return out;
}

/** Each NIC's traffic (its port's counters) with the exits to it and interrupts it raised. */
function nicIoStats(s: MachineStats): Record<string, NicIoStats> {
  const out: Record<string, NicIoStats> = {};
  for (const [name, c] of Object.entries(s.nics ?? {})) {
    let exits = 0;
    // Its MMIO region (virtio-mmio slot, or a PCI BAR) and, for the e1000, its I/O BAR.
    for (const [region, e] of Object.entries(s.exits)) {
      if (region === name || region.startsWith(`${name}.`)) exits += e.reads + e.writes;
    }
    out[name] = {
      txFrames: c.net_tx_frames ?? 0,
      txBytes: c.net_tx_bytes ?? 0,
      rxFrames: c.net_rx_frames ?? 0,
      rxBytes: c.net_rx_bytes ?? 0,
      exits,
      // virtio-net's transport counts them; the e1000 counts its own.
      interrupts: s.virtio[name]?.interrupts ?? c.interrupts ?? 0,
      dropped: (c.net_rx_dropped ?? 0) + (c.net_tx_link_down ?? 0),
    };
  }
  return out;
}

/** part / whole in percent, 0 when nothing was retired. */
const share = (part: number, whole: number): number =>
  whole > 0 ? Math.min(100, (Math.max(0, part) / whole) * 100) : 0;

export class StatsSampler {
  private prev: Previous | undefined;

  constructor(
    private readonly guestMemMiB: number,
    private readonly now: () => number = () => performance.now(),
    private readonly cpuSeconds: () => number | undefined = threadCpuSeconds,
  ) {}

  sample(s: MachineStats, wasmMemBytes: number): VmStats {
    const at = this.now();
    const instret = Number(s.instret);
    const cpu = this.cpuSeconds();
    const exits = new Map(Object.entries(s.exits).map(([d, e]) => [d, e.reads + e.writes]));
    const irqs = new Map(Object.entries(s.interrupts));
    const bytes = byteCounters(s);
    const p = this.prev;
    const jitInsns = Number(s.jit?.blockInsns ?? 0n);
    // An interval that retired nothing (a paused VM) keeps the share the running VM last had.
    const jitPercent =
      p && instret > p.instret
        ? share(jitInsns - p.jitInsns, instret - p.instret)
        : (p?.jitPercent ?? share(jitInsns, instret));
    const dt = p ? (at - p.at) / 1000 : 0;
    const rate = (cur: Map<string, number>, old: Map<string, number> | undefined) => {
      const out: Record<string, number> = {};
      for (const [k, v] of cur) out[k] = dt > 0 ? Math.max(0, v - (old?.get(k) ?? 0)) / dt : 0;
      return out;
    };
    const snapshot: VmStats = {
      t: Date.now(),
      uptimeSec: s.seconds,
      instret,
      mips: p && dt > 0 ? (instret - p.instret) / dt / 1e6 : 0,
      traps: Number(s.traps),
      exitsPerSec: rate(exits, p?.exits),
      interruptsPerSec: rate(irqs, p?.irqs),
      guestMemMiB: this.guestMemMiB,
      cpuSeconds: cpu,
      slices: s.hostTime?.slices,
      cpuPercent:
        cpu !== undefined && p?.cpu !== undefined && dt > 0
          ? ((cpu - p.cpu) / dt) * 100
          : undefined,
      wasmMemMiB: wasmMemBytes / (1024 * 1024),
      bytesPerSec: {},
      balloon: s.balloon,
      hostRssMiB: s.hostRssBytes !== undefined ? s.hostRssBytes / (1024 * 1024) : undefined,
      ...(s.guestClock ? { guestClock: s.guestClock } : {}),
      cpus: {
        harts: s.harts.cpus.map((h) => ({
          id: h.id,
          pc: `0x${BigInt.asUintN(64, h.pc).toString(16).padStart(16, '0')}`,
          mode: h.priv === 3 ? 'M' : h.priv === 1 ? 'S' : 'U',
          halted: h.halted,
          current: h.current,
          mips:
            p && dt > 0 ? Math.max(0, Number(h.retired) - (p.retired[h.id] ?? 0)) / dt / 1e6 : 0,
        })),
        switchesPerSec: p && dt > 0 ? Math.max(0, s.harts.switches - p.switches) / dt : 0,
      },
      ...(s.disks && Object.keys(s.disks).length > 0 ? { disks: diskIoStats(s.disks) } : {}),
      ...(s.nics && Object.keys(s.nics).length > 0 ? { nics: nicIoStats(s) } : {}),
      ...(s.jit
        ? {
            jit: {
              blocks: s.jit.blocks,
              translatedPercent: jitPercent,
              translatedTotalPercent: share(jitInsns, instret),
            },
          }
        : {}),
    };
    for (const [key, v] of Object.entries(rate(bytes, p?.bytes))) {
      const [dev, counter] = key.split('\0') as [string, string];
      (snapshot.bytesPerSec![dev] ??= {})[counter] = v;
    }
    this.prev = {
      at,
      instret,
      jitInsns,
      jitPercent,
      cpu,
      exits,
      irqs,
      bytes,
      switches: s.harts.switches,
      retired: s.harts.cpus.map((h) => Number(h.retired)),
    };
    return snapshot;
  }
}
