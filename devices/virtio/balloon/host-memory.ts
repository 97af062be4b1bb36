/**
 * Giving guest pages back to the host OS. Guest RAM is a region of a WebAssembly.Memory, which
 * cannot shrink; the pages inside it can still be released with madvise(MADV_DONTNEED) through
 * the optional addon (native/): the process's RSS drops at once and the pages read as zeros
 * when the guest touches them again. Without the addon the balloon still works, but the pages
 * stay resident, and everything that shows balloon figures says "memory not returned to host".
 */
import { readFileSync } from 'node:fs';
import { loadHostNative } from '../../host-native.js';

export interface PageReleaser {
  /** Host page size: release() takes whole host pages only. */
  readonly pageSize: number;
  /** Releases `length` bytes of `ram` at `offset` (both multiples of pageSize). May throw. */
  release(ram: Uint8Array, offset: number, length: number): void;
}

export type PageReleaserResult =
  { releaser: PageReleaser; reason?: undefined } | { releaser: null; reason: string };

/** The text every surface (stats, monitor, UI) shows when pages cannot be given back. */
export const NOT_RETURNED = 'memory not returned to host';

let cached: PageReleaserResult | undefined;

/** The host's page releaser, or null with the reason (addon missing, too old, other OS). */
export function hostPageReleaser(): PageReleaserResult {
  if (cached) return cached;
  const r = loadHostNative();
  if (!r.native) cached = { releaser: null, reason: r.reason };
  else {
    const n = r.native;
    const ps = n.pageSize;
    if (typeof n.madviseDontNeed !== 'function' || typeof ps !== 'number' || ps <= 0) {
      cached = { releaser: null, reason: 'addon has no madviseDontNeed (rebuild: npm run build)' };
    } else {
      const madvise = n.madviseDontNeed.bind(n);
      cached = {
        releaser: {
          pageSize: ps,
          release: (ram, offset, length) => {
            // The addon checks the real pointer; this only catches our own mistakes early.
            if (offset % ps || length % ps) throw new RangeError('release: unaligned range');
            madvise(ram.subarray(offset, offset + length));
          },
        },
      };
    }
  }
  return cached;
}

/**
 * The process's resident set in bytes (Linux: VmRSS from /proc/self/status; elsewhere Node's
 * process.memoryUsage().rss). In a worker thread this is the whole process's, all VMs together:
 * threads share one address space, so no per-VM figure exists there.
 */
export function processRssBytes(): number {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync('/proc/self/status', 'utf8'));
    if (m) return Number(m[1]) * 1024;
  } catch {
    // not Linux: fall through
  }
  return process.memoryUsage().rss;
}
