/**
 * A disk's live controls: read-only, cache mode, scheduler policy.
 *
 * Read-only is honest about what virtio-blk allows: VIRTIO_BLK_F_RO is negotiated once, when the
 * driver binds, so the guest cannot be told now. Switching a writable disk to read-only refuses
 * writes at once (the guest gets I/O errors) and the guest sees a read-only disk after the next
 * reset. Switching a read-only disk to writable needs the image reopened read-write, which
 * happens at the next reset; until then it stays read-only.
 */
import type { BlockBackend, Disk, DiskStats } from '../../../devices/block/index.js';
import { BlockError } from '../../../devices/block/index.js';
import { VirtioBlk } from '../../../devices/virtio/index.js';
import {
  CACHE_MODES,
  SCHEDULERS,
  type CacheMode,
  type DiskConfig,
  type SchedulerPolicy,
} from '../../vm/config.js';
import type { DeviceControl } from '../../host/api-types.js';
import type { ControlContext, DeviceControlProvider } from '../device-controls.js';
import { ControlError } from '../device-controls.js';

/**
 * A disk with a write gate (the live read-only switch: virtio-blk checks readOnly per request)
 * and a switch point: `replace` swaps the disk underneath the device (an external snapshot's
 * overlay) once the requests already given to the old one have completed; requests arriving
 * meanwhile wait and then go to the new one, so the guest sees only a short delay.
 */
export class SwitchableDisk implements BlockBackend {
  /** Writes refused by the host although the image is open read-write. */
  refuseWrites = false;
  /** Requests handed to `disk` and not yet completed. */
  private inFlight = 0;
  private drained: (() => void) | undefined;
  /** A replacement in progress: new requests wait for it. */
  private gate: Promise<void> | undefined;
  constructor(public disk: Disk) {}

  get name(): string {
    return this.disk.name;
  }
  get size(): number {
    return this.disk.size;
  }
  get readOnly(): boolean {
    return this.refuseWrites || this.disk.readOnly;
  }
  /** The current disk's counters (a replacement starts its own). */
  stats(): DiskStats {
    return this.disk.stats();
  }
  /** Whether a replacement holds new requests now. */
  get switching(): boolean {
    return this.gate !== undefined;
  }
  /** Runs one request on the current disk (after a replacement under way, on the new one). */
  private async run(fn: (d: Disk) => Promise<void>): Promise<void> {
    while (this.gate) await this.gate;
    this.inFlight++;
    try {
      await fn(this.disk);
    } finally {
      if (--this.inFlight === 0) this.drained?.();
    }
  }
  read(offset: number, buf: Uint8Array): Promise<void> {
    return this.run((d) => d.read(offset, buf));
  }
  private refused(): Promise<never> {
    return Promise.reject(new BlockError('read-only', `${this.name}: switched to read-only`));
  }
  write(offset: number, buf: Uint8Array): Promise<void> {
    return this.refuseWrites ? this.refused() : this.run((d) => d.write(offset, buf));
  }
  flush(): Promise<void> {
    return this.run((d) => d.flush());
  }
  discard(offset: number, length: number): Promise<void> {
    return this.refuseWrites ? this.refused() : this.run((d) => d.discard(offset, length));
  }
  writeZeroes(offset: number, length: number, unmap: boolean): Promise<void> {
    return this.refuseWrites
      ? this.refused()
      : this.run((d) => d.writeZeroes(offset, length, unmap));
  }
  close(): Promise<void> {
    return this.disk.close();
  }

  /**
   * Replaces the disk: new requests are held, the ones in flight complete, then `open(old)`
   * gives the new disk (it flushes and closes the old one itself, and on failure leaves a
   * usable disk: the old one, reopened if need be). Held requests then run on the result.
   * Replacements run one at a time.
   */
  async replace(open: (old: Disk) => Promise<Disk>): Promise<void> {
    while (this.gate) await this.gate;
    let release!: () => void;
    this.gate = new Promise<void>((r) => (release = r));
    try {
      if (this.inFlight > 0) await new Promise<void>((r) => (this.drained = r));
      this.drained = undefined;
      this.disk = await open(this.disk);
    } finally {
      this.gate = undefined;
      release();
    }
  }
}

export interface DiskHandle {
  sw: SwitchableDisk;
  cfg: DiskConfig;
}

/** virtio-blkN serves the definition's N-th disk. */
export function findDisk(device: string, ctx: ControlContext): DiskHandle | undefined {
  const m = /^virtio-blk(\d+)$/.exec(device);
  const cfg = m ? ctx.config.disks[Number(m[1])] : undefined;
  if (!cfg) return undefined;
  const t = [...ctx.machine.virtio, ...ctx.machine.virtioPci].find(
    (x) => x.device?.name === device,
  );
  const dev = t?.device;
  if (!(dev instanceof VirtioBlk) || !(dev.backend instanceof SwitchableDisk)) return undefined;
  return { sw: dev.backend, cfg };
}

const CACHE_LABEL: Record<CacheMode, string> = {
  writeback: 'writeback',
  writethrough: 'writethrough',
  unsafe: 'unsafe (flush ignored)',
};

function readOnlyNote(h: DiskHandle): string | undefined {
  if (h.sw.refuseWrites)
    return 'writes fail with I/O errors now; the guest sees a read-only disk after the next reset';
  if (h.sw.disk.readOnly && !h.cfg.readOnly)
    return 'still read-only: the image is reopened read-write at the next reset';
  return undefined;
}

export const diskControls: DeviceControlProvider = {
  describe(device, ctx): DeviceControl[] | undefined {
    const h = findDisk(device, ctx);
    if (!h) return undefined;
    const s = h.sw.disk.stats();
    return [
      {
        id: 'readOnly',
        label: 'Read-only',
        options: [
          { value: 'off', label: 'read-write' },
          { value: 'on', label: 'read-only' },
        ],
        value: h.cfg.readOnly ? 'on' : 'off',
        note: readOnlyNote(h),
      },
      {
        id: 'cache',
        label: 'Cache',
        options: CACHE_MODES.map((m) => ({ value: m, label: CACHE_LABEL[m] })),
        value: s.cache,
      },
      {
        id: 'sched',
        label: 'Scheduler',
        options: SCHEDULERS.map((p) => ({ value: p, label: p })),
        value: s.policy,
      },
    ];
  },

  async apply(device, control, value, ctx): Promise<string> {
    const h = findDisk(device, ctx);
    if (!h) throw new ControlError(`${device}: no such disk`);
    const { sw, cfg } = h;
    switch (control) {
      case 'sched':
        sw.disk.setPolicy(value as SchedulerPolicy);
        cfg.sched = value as SchedulerPolicy;
        return `${device}: scheduler ${sw.disk.stats().policy}`;
      case 'cache': {
        const before = sw.disk.stats().cache;
        sw.disk.setCacheMode(value as CacheMode);
        cfg.cache = value as CacheMode;
        // Writes made under writeback/unsafe may still sit in the page cache: make them durable
        // now, so "writethrough" means every write so far is on disk.
        if (value === 'writethrough' && before !== 'writethrough') await sw.disk.flush();
        return `${device}: cache ${sw.disk.stats().cache}${value === 'unsafe' ? ' — flushes are ignored, a host crash can lose data' : ''}`;
      }
      case 'readOnly': {
        const ro = value === 'on';
        cfg.readOnly = ro;
        if (ro) {
          if (sw.disk.readOnly) return `${device}: read-only`;
          sw.refuseWrites = true;
          return `${device}: writes refused from now on (I/O errors); read-only to the guest after the next reset`;
        }
        sw.refuseWrites = false;
        if (sw.disk.readOnly)
          return `${device}: stays read-only until the next reset, which reopens the image read-write`;
        return `${device}: read-write`;
      }
      default:
        throw new ControlError(`${device} has no control "${control}"`);
    }
  },
};
