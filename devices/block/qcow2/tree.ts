/**
 * An L1 table's tree — its L2 tables and the clusters their entries point at — walked for what
 * internal snapshots need: adding one to (snapshot create, apply) or taking one from (snapshot
 * delete, the old active table after apply) the refcount of every cluster the tree uses, and
 * setting each COPIED flag to what the spec says it means (the cluster's refcount is exactly 1;
 * `qemu-img check` counts a wrong flag as a corruption either way).
 */
import { COPIED, decodeL2, l1Offset, readWord, writeWord, type Mapping } from './entries.js';
import type { HostFile } from './host-file.js';
import type { Qcow2Header } from './qcow2-header.js';
import { Qcow2CorruptError, type Refcounts } from './refcounts.js';

/** The host clusters one L2 entry uses: a data or allocated zero cluster, or compressed bytes. */
export function entryClusters(m: Mapping, cs: number): number[] {
  if ((m.kind === 'data' || m.kind === 'zero') && m.host) return [m.host / cs];
  if (m.kind !== 'compressed') return [];
  const out: number[] = [];
  for (let k = Math.floor(m.start / cs); k <= Math.floor((m.end - 1) / cs); k++) out.push(k);
  return out;
}

/** The L2 table at `off` (named by L1 entry `l1i`), checked to lie inside the file. */
export async function readL2(file: HostFile, cs: number, off: number, l1i: number) {
  if (off < cs || off + cs > file.size) {
    throw new Qcow2CorruptError(`L2 table ${l1i} at ${off} lies outside the file`);
  }
  return file.read(off, cs);
}

export interface TreeContext {
  file: HostFile;
  header: Qcow2Header;
  refs: Refcounts;
  /** The active L1 table. */
  l1: Uint8Array;
}

/**
 * Refuses an "L2 table" that is really other metadata (the header, the refcount table or a
 * refcount block, the active L1 table, the snapshot table): a hostile snapshot could name one,
 * and the COPIED flags written back into it would then corrupt what it really is.
 */
function assertNotMetadata(ctx: TreeContext, off: number, l1i: number): void {
  const h = ctx.header;
  const cs = 2 ** h.clusterBits;
  const within = (start: number, bytes: number) =>
    bytes > 0 && off + cs > start && off < start + bytes;
  const [rtOff, rtBytes] = ctx.refs.tableRange;
  const what =
    off < cs
      ? 'the header'
      : within(rtOff, rtBytes) || ctx.refs.tableEntries().includes(off)
        ? 'refcount metadata'
        : within(h.l1Offset, h.l1Size * 8)
          ? 'the active L1 table'
          : h.nbSnapshots > 0 && within(h.snapshotsOffset, cs)
            ? 'the snapshot table'
            : undefined;
  if (what) throw new Qcow2CorruptError(`L2 table ${l1i} at ${off} overlaps ${what}`);
}

export interface TreeChanges {
  /** L2 tables whose COPIED flags changed (offset → table), to be written by the caller. */
  tables: Map<number, Uint8Array>;
  /** Whether `l1`'s own COPIED flags changed (it was changed in place). */
  l1Changed: boolean;
}

/**
 * Adds `delta` to the refcount of every cluster the tree of `l1` uses (in memory; the caller
 * writes the refcount blocks, in the crash-safe order), then with `recompute` sets every COPIED
 * flag of the tree — in `l1` itself and in the L2 tables — from the refcounts now.
 */
export async function adjustTree(
  ctx: TreeContext,
  l1: Uint8Array,
  delta: -1 | 0 | 1,
  recompute: boolean,
): Promise<TreeChanges> {
  const h = ctx.header;
  const cs = 2 ** h.clusterBits;
  // Read and check the whole tree first, so a bad table changes no refcount.
  const tables = new Map<number, { l1i: number; t: Uint8Array }>();
  const clusters: number[] = [];
  for (let i = 0; i < l1.length / 8; i++) {
    const off = l1Offset(l1, i, cs);
    if (!off) continue;
    assertNotMetadata(ctx, off, i);
    const t = tables.get(off)?.t ?? (await readL2(ctx.file, cs, off, i));
    tables.set(off, { l1i: i, t });
    clusters.push(off / cs);
    for (let j = 0; j < cs / 8; j++) {
      clusters.push(...entryClusters(decodeL2(t, j, h.clusterBits, h.version), cs));
    }
  }
  for (const c of clusters) {
    if (delta > 0) await ctx.refs.increment(c);
    else if (delta < 0) await ctx.refs.decrement(c);
  }
  const changes: TreeChanges = { tables: new Map(), l1Changed: false };
  if (!recompute) return changes;
  const flag = async (t: Uint8Array, i: number, c: number): Promise<boolean> => {
    const [hi, lo] = readWord(t, i);
    const want = (await ctx.refs.get(c)) === 1 ? COPIED : 0;
    if ((hi & COPIED) === want) return false;
    writeWord(t, i, (hi & ~COPIED) | want, lo);
    return true;
  };
  for (const [off, { t }] of tables) {
    let changed = false;
    for (let j = 0; j < cs / 8; j++) {
      const m = decodeL2(t, j, h.clusterBits, h.version);
      if ((m.kind === 'data' || m.kind === 'zero') && m.host) {
        if (await flag(t, j, m.host / cs)) changed = true;
      }
    }
    if (changed) changes.tables.set(off, t);
  }
  for (let i = 0; i < l1.length / 8; i++) {
    const off = l1Offset(l1, i, cs);
    if (off && (await flag(l1, i, off / cs))) changes.l1Changed = true;
  }
  return changes;
}
