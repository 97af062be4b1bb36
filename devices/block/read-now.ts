/**
 * Reads the host's page cache can serve at once. A disk read normally goes to libuv's thread
 * pool and comes back through the event loop: a thread woken, an eventfd written, the loop woken,
 * promises settled — tens of microseconds of host CPU and latency per request, most of a small
 * read's cost when the image's data is cached, as it usually is. The addon's `readNow`
 * (preadv2 with RWF_NOWAIT) copies what the cache holds straight into guest RAM in one system
 * call and never waits for the disk: what is not cached comes back as "would wait", and the
 * request goes to the thread pool as before. So the vCPU still never waits on host I/O (DESIGN's
 * rule), and a cached read completes before the guest's slice ends.
 *
 * Not used for files opened O_DIRECT (OpenDiskOptions.direct, for benchmarks: a direct read goes to the
 * device and the call would wait for it) or above READ_NOW_MAX_BYTES (a copy that long belongs
 * off the vCPU's thread), nor without the addon or where the host refuses RWF_NOWAIT reads.
 * WASMVISOR_READ_NOW=0 turns it off, to compare (bench/virtio-blk.ts).
 */
import type { HostNative } from '../host-native.js';

/**
 * The largest read tried at once. A 256 KiB copy from the cache held the vCPU's thread ~90 µs on
 * the 2-core machine (readNow's self time over a guest's 1 MiB O_DIRECT `dd`, split into 256 KiB
 * requests), about what the thread pool's round trip costs it; longer reads go there.
 */
export const READ_NOW_MAX_BYTES = 256 * 1024;

export interface ReadNowStats {
  /** Reads served wholly from the host's page cache, at once. */
  readsAtOnce: number;
  /** Reads (or their uncached remainders) that went to the thread pool. */
  readsQueued: number;
  /** Why reads never go at once on this file (no addon, O_DIRECT, the host refuses). */
  readsAtOnceUnavailable?: string;
}

export class ReadNow {
  private atOnce = 0;
  private queued = 0;
  private unavailable: string | undefined;
  private readonly fn: HostNative['readNow'];

  /** `native`: the addon (null: missing, with `reason`); `direct`: the file is open O_DIRECT. */
  constructor(
    private readonly fd: number,
    native: HostNative | null,
    direct: boolean,
    reason = 'no host helper addon',
  ) {
    this.fn = native?.readNow;
    if (process.env.WASMVISOR_READ_NOW === '0') this.unavailable = 'off (WASMVISOR_READ_NOW=0)';
    else if (!native) this.unavailable = reason;
    else if (!this.fn) this.unavailable = 'the host helper addon predates readNow';
    else if (direct) this.unavailable = 'the image is open O_DIRECT';
  }

  /**
   * Reads what the cache holds of `bufs` at `pos`, at once: the bytes read (0 at the end of the
   * file), or -1 when nothing can be (not cached, too long, or unavailable here).
   */
  tryRead(pos: number, bufs: readonly Uint8Array[], total: number): number {
    if (this.unavailable !== undefined || !this.fn || total > READ_NOW_MAX_BYTES) return -1;
    try {
      return this.fn(this.fd, bufs, pos);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      // The host cannot (old kernel, a file system without it): stop trying on this file. Any
      // other error is the thread pool's read's to report, with its usual message.
      if (code === 'EOPNOTSUPP' || code === 'ENOSYS' || code === 'EINVAL') {
        this.unavailable = `the host refuses RWF_NOWAIT reads (${code})`;
      }
      return -1;
    }
  }

  /** Counts a read served at once, or one that went on to the thread pool. */
  count(atOnce: boolean): void {
    if (atOnce) this.atOnce++;
    else this.queued++;
  }

  stats(): ReadNowStats {
    return {
      readsAtOnce: this.atOnce,
      readsQueued: this.queued,
      ...(this.unavailable !== undefined ? { readsAtOnceUnavailable: this.unavailable } : {}),
    };
  }
}
