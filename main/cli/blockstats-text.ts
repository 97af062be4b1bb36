/**
 * A disk's I/O as text: the monitor's `info blockstats` and `wasmvisor run --stats` at exit say
 * it the same way.
 */
import { human } from '../../devices/block/human-size.js';
import type { DiskIoStats } from '../host/api-types.js';

/** A latency in µs as people read it. */
const usText = (us: number): string =>
  us >= 10_000
    ? `${(us / 1000).toFixed(0)} ms`
    : us >= 1000
      ? `${(us / 1000).toFixed(1)} ms`
      : `${us.toFixed(0)} µs`;

/** Four lines per disk, by device name; '' when there are none. */
export function blockstatsText(disks: Record<string, DiskIoStats>): string {
  return Object.entries(disks)
    .map(([name, d]) => {
      const atOnce =
        d.readsAtOnce + d.readsQueued > 0
          ? `${d.readsAtOnce} at once from the host's page cache, ${d.readsQueued} through the thread pool`
          : 'none yet';
      return [
        `${name}: ${d.reads} reads (${human(d.bytesRead)}), ${d.writes} writes (${human(d.bytesWritten)}), ` +
          `${d.flushes} flushes, ${d.discards} discards/write-zeroes, ${d.errors} errors`,
        `  ${d.backendCalls} host calls (${d.merges} requests merged into others); scheduler ${d.policy}, cache ${d.cache}`,
        `  host reads: ${atOnce}${d.readsAtOnceUnavailable ? ` (never at once: ${d.readsAtOnceUnavailable})` : ''}`,
        `  latency p50 ${usText(d.latencyUs.p50)}, p99 ${usText(d.latencyUs.p99)}, max ${usText(d.latencyUs.max)}; ` +
          `queue depth ${d.queueDepth} now, ${d.maxQueueDepth} at most`,
      ].join('\n');
    })
    .join('\n');
}
