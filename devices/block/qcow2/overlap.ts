/**
 * The metadata overlap guard (QEMU's "overlap-check"): the host clusters an image's metadata
 * occupies — the header cluster, the L1 table, the refcount table and blocks, the L2 tables, the
 * snapshot table and each snapshot's L1 and L2 tables — as found on disk when the image is
 * opened for writing. A guest data write aimed at one of them, or a cluster the refcounts call
 * free while the metadata uses it, means the image is corrupt (a damaged or hostile table): the
 * write is refused with a clear error instead of overwriting the tables.
 *
 * Clusters allocated after opening come from the refcounts, which count them, so they never
 * need guarding; a guarded cluster whose refcount drops to zero (freed metadata) leaves the set.
 */
import { l1Offset } from './entries.js';
import type { HostFile } from './host-file.js';
import type { Qcow2Header } from './qcow2-header.js';
import type { Refcounts } from './refcounts.js';
import { readSnapshotTable } from './snapshot-table.js';

export class MetadataGuard {
  constructor(
    private readonly clusters: Set<number>,
    private readonly clusterSize: number,
  ) {}

  /** The first guarded cluster in [host, host + length), or -1. */
  overlap(host: number, length: number): number {
    const cs = this.clusterSize;
    for (let c = Math.floor(host / cs); c * cs < host + length; c++) {
      if (this.clusters.has(c)) return c;
    }
    return -1;
  }

  /** A cluster stopped being metadata (its refcount reached zero). */
  release(cluster: number): void {
    this.clusters.delete(cluster);
  }

  static async scan(
    file: HostFile,
    h: Qcow2Header,
    l1: Uint8Array,
    refs: Refcounts,
  ): Promise<MetadataGuard> {
    const cs = 2 ** h.clusterBits;
    const set = new Set<number>([0]);
    const span = (off: number, len: number) => {
      for (let c = Math.floor(off / cs); c * cs < off + len; c++) set.add(c);
    };
    const tables = (table: Uint8Array, n: number) => {
      for (let i = 0; i < n; i++) {
        let off = 0;
        try {
          off = l1Offset(table, i, cs);
        } catch {
          continue; // a misaligned entry: using it fails by itself, with its own message
        }
        if (off) set.add(Math.floor(off / cs));
      }
    };
    span(h.l1Offset, h.l1Size * 8);
    tables(l1, h.l1Size);
    const [rtOff, rtLen] = refs.tableRange;
    span(rtOff, rtLen);
    for (const b of refs.tableEntries()) if (b) set.add(b / cs);
    if (h.nbSnapshots > 0) {
      const { entries, bytes } = await readSnapshotTable(file, h);
      span(h.snapshotsOffset, bytes);
      for (const s of entries) {
        span(s.l1Offset, s.l1Size * 8);
        tables(await file.read(s.l1Offset, s.l1Size * 8), s.l1Size);
      }
    }
    const ch = h.cryptoHeader;
    if (ch) span(ch.offset, ch.length);
    return new MetadataGuard(set, cs);
  }
}
