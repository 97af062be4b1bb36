/**
 * Internal snapshots (disk-only: no VM state) on an image's metadata, as QEMU keeps them: a
 * snapshot is a copy of the active L1 table plus one more reference on every cluster its tree
 * uses; from then on a write to a cluster whose refcount is above one copies it first (the
 * image's write path, for data clusters and L2 tables alike).
 *
 * Crash ordering (at worst clusters leak):
 * - create: the L1 copy written, refcounts raised and COPIED flags cleared (refcounts durable
 *   before the tables), then the new snapshot table, synced, then the header that names it;
 * - apply: the snapshot's tree gains its reference first (durable), then the active L1 is
 *   overwritten, synced, and only then does the old tree lose its reference;
 * - delete: the table without the entry, then the header, synced, and only then are its
 *   clusters released and the active tree's COPIED flags set where a cluster is ours alone again.
 */
import {
  growL1,
  refcountsDurable,
  release,
  writeHeaderField,
  writeNew,
  writeTables,
  type Qcow2Meta,
} from './metadata.js';
import { COPIED, readWord, writeWord } from './entries.js';
import {
  MAX_SNAPSHOTS,
  readSnapshotTable,
  serializeSnapshotTable,
  type SnapshotEntry,
} from './snapshot-table.js';
import { adjustTree } from './tree.js';

/** A request the image cannot honour (no such snapshot, a name taken): the message says which. */
export class SnapshotError extends Error {}

/** What `qemu-img snapshot -l` and `info` show of one snapshot. */
export interface SnapshotInfo {
  id: string;
  name: string;
  vmStateSize: number;
  dateSec: number;
  dateNsec: number;
  vmClockNsec: number;
  icount?: number;
  diskSize?: number;
}

export function snapshotInfo(e: SnapshotEntry): SnapshotInfo {
  return {
    id: e.id,
    name: e.name,
    vmStateSize: e.vmStateSize,
    dateSec: e.dateSec,
    dateNsec: e.dateNsec,
    vmClockNsec: Number(e.vmClockNsec),
    ...(e.icount !== undefined && e.icount >= 0n ? { icount: Number(e.icount) } : {}),
    ...(e.diskSize !== undefined ? { diskSize: e.diskSize } : {}),
  };
}

/** QEMU's lookup: an id first, else a name. */
function find(entries: SnapshotEntry[], idOrName: string): number {
  const byId = entries.findIndex((e) => e.id === idOrName);
  const i = byId >= 0 ? byId : entries.findIndex((e) => e.name === idOrName);
  if (i < 0) throw new SnapshotError(`no snapshot with the id or name "${idOrName}"`);
  return i;
}

async function table(m: Qcow2Meta): Promise<{ entries: SnapshotEntry[]; bytes: number }> {
  return readSnapshotTable(m.file, m.header);
}

/** Writes `entries` as a new table, points the header at it, then releases the old one. */
async function replaceTable(m: Qcow2Meta, entries: SnapshotEntry[], oldBytes: number) {
  const h = m.header;
  const off = await writeNew(m, serializeSnapshotTable(entries));
  await refcountsDurable(m);
  await writeHeaderField(m, 60, [
    [32, entries.length],
    [64, off],
  ]);
  const oldOff = h.snapshotsOffset;
  h.nbSnapshots = entries.length;
  h.snapshotsOffset = off;
  if (oldBytes > 0) await release(m, oldOff, oldBytes);
  await refcountsDurable(m);
}

async function readL1(m: Qcow2Meta, e: SnapshotEntry): Promise<Uint8Array> {
  return m.file.read(e.l1Offset, e.l1Size * 8);
}

export async function listSnapshots(m: Pick<Qcow2Meta, 'file' | 'header'>) {
  return (await readSnapshotTable(m.file, m.header)).entries.map(snapshotInfo);
}

export async function createSnapshot(
  m: Qcow2Meta,
  name: string,
  now: number = Date.now(),
  vmClockNsec = 0n,
): Promise<SnapshotInfo> {
  const { entries, bytes } = await table(m);
  if (name === '') throw new SnapshotError('a snapshot needs a name');
  if (entries.some((e) => e.name === name)) {
    throw new SnapshotError(`a snapshot named "${name}" exists already`);
  }
  if (entries.length >= MAX_SNAPSHOTS) throw new SnapshotError('too many snapshots');
  if (m.refs.max < 2) {
    throw new SnapshotError(
      `${m.refs.bits}-bit refcounts cannot count a cluster shared with a snapshot`,
    );
  }
  const id = String(entries.reduce((n, e) => Math.max(n, Number.parseInt(e.id, 10) || 0), 0) + 1);
  // The snapshot's own copy of the L1 table (COPIED flags mean nothing there: cleared).
  const copy = m.l1.slice();
  for (let i = 0; i < copy.length / 8; i++) {
    const [hi, lo] = readWord(copy, i);
    writeWord(copy, i, hi & ~COPIED, lo);
  }
  const l1Offset = await writeNew(m, copy);
  const ch = await adjustTree(m, m.l1, 1, true);
  await refcountsDurable(m);
  await writeTables(m, ch.tables, ch.l1Changed);
  const e: SnapshotEntry = {
    l1Offset,
    l1Size: m.header.l1Size,
    id,
    name,
    dateSec: Math.floor(now / 1000),
    dateNsec: (now % 1000) * 1e6,
    vmClockNsec,
    vmStateSize: 0,
    diskSize: m.header.size,
    icount: 0n,
    extraRest: new Uint8Array(0),
  };
  await replaceTable(m, [...entries, e], bytes);
  return snapshotInfo(e);
}

/** Reverts the active disk to the snapshot (which stays); returns it. */
export async function applySnapshot(m: Qcow2Meta, idOrName: string): Promise<SnapshotInfo> {
  const h = m.header;
  const { entries } = await table(m);
  const e = entries[find(entries, idOrName)];
  if (e.diskSize !== undefined && e.diskSize !== h.size) {
    throw new SnapshotError(
      `snapshot "${e.name}" was taken at another disk size (${e.diskSize} bytes, now ${h.size}): resize the image back first`,
    );
  }
  await growL1(m, e.l1Size);
  const snap = await readL1(m, e);
  const ch = await adjustTree(m, snap, 1, true);
  await refcountsDurable(m);
  await writeTables(m, ch.tables, false);
  const old = m.l1.slice();
  m.l1.fill(0);
  m.l1.set(snap);
  await writeTables(m, new Map(), true);
  await adjustTree(m, old, -1, false);
  await refcountsDurable(m);
  // Clusters the old tree shared with the new one may be ours alone now.
  const fix = await adjustTree(m, m.l1, 0, true);
  await writeTables(m, fix.tables, fix.l1Changed);
  return snapshotInfo(e);
}

export async function deleteSnapshot(m: Qcow2Meta, idOrName: string): Promise<SnapshotInfo> {
  const { entries, bytes } = await table(m);
  const i = find(entries, idOrName);
  const e = entries[i];
  const snap = await readL1(m, e);
  await replaceTable(
    m,
    entries.filter((_, k) => k !== i),
    bytes,
  );
  await adjustTree(m, snap, -1, false);
  await release(m, e.l1Offset, e.l1Size * 8);
  await refcountsDurable(m);
  const fix = await adjustTree(m, m.l1, 0, true);
  await writeTables(m, fix.tables, fix.l1Changed);
  return snapshotInfo(e);
}
