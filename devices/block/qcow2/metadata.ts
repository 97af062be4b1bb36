/**
 * What whole-image metadata operations (internal snapshots, resize) work on: the image's file,
 * header, refcounts and active L1 table, handed over by `Qcow2Image.withMetadata` with every
 * cache written back and emptied — and the few ordered writes they share. Every helper keeps the
 * rule of the write path: a cluster's refcount is durable before anything on disk points at it,
 * and released only once nothing on disk does.
 */
import type { HostFile } from './host-file.js';
import type { Qcow2Header } from './qcow2-header.js';
import type { Refcounts } from './refcounts.js';

export interface Qcow2Meta {
  file: HostFile;
  header: Qcow2Header;
  refs: Refcounts;
  /** The active L1 table (header.l1Size entries); operations may replace it. */
  l1: Uint8Array;
}

/** One write into the header (fields that belong together go in one write), then a sync. */
export async function writeHeaderField(
  m: Qcow2Meta,
  at: number,
  fields: [bits: 32 | 64, value: number][],
): Promise<void> {
  const len = fields.reduce((n, [b]) => n + b / 8, 0);
  const b = new Uint8Array(len);
  const dv = new DataView(b.buffer);
  let p = 0;
  for (const [bits, v] of fields) {
    if (bits === 32) dv.setUint32(p, v);
    else dv.setBigUint64(p, BigInt(v));
    p += bits / 8;
  }
  await m.file.writev(at, [b]);
  await m.file.sync();
}

/** Writes data into newly allocated contiguous clusters; returns the offset (refcounts in memory). */
export async function writeNew(m: Qcow2Meta, data: Uint8Array): Promise<number> {
  if (data.length === 0) return 0;
  const cs = m.refs.clusterSize;
  const off = (await m.refs.allocateRun(Math.ceil(data.length / cs))) * cs;
  await m.file.writev(off, [data]);
  return off;
}

/** Releases the clusters `bytes` bytes at `off` occupy (in memory: written by the next writeDirty). */
export async function release(m: Qcow2Meta, off: number, bytes: number): Promise<void> {
  const cs = m.refs.clusterSize;
  for (let c = off / cs; c < Math.ceil((off + bytes) / cs); c++) await m.refs.decrement(c);
}

/** Refcounts durable (written, synced): the barrier before tables that use them are written. */
export async function refcountsDurable(m: Qcow2Meta): Promise<void> {
  await m.refs.writeDirty();
  await m.file.sync();
}

/** Writes L2 tables (offset → table) and, when `l1` is set, the whole active L1; then syncs. */
export async function writeTables(
  m: Qcow2Meta,
  tables: Map<number, Uint8Array>,
  l1: boolean,
): Promise<void> {
  for (const [off, t] of tables) await m.file.writev(off, [t]);
  if (tables.size > 0 && l1) await m.file.sync();
  if (l1) await m.file.writev(m.header.l1Offset, [m.l1]);
  if (tables.size > 0 || l1) await m.file.sync();
}

/**
 * Gives the active L1 table `entries` entries (never fewer): a new table in new clusters, synced,
 * then the header's L1 size and offset in one write, synced, then the old clusters released.
 */
export async function growL1(m: Qcow2Meta, entries: number): Promise<void> {
  const h = m.header;
  if (entries <= h.l1Size) return;
  const l1 = new Uint8Array(entries * 8);
  l1.set(m.l1);
  const off = await writeNew(m, l1);
  await refcountsDurable(m);
  await writeHeaderField(m, 36, [
    [32, entries],
    [64, off],
  ]);
  const [oldOff, oldBytes] = [h.l1Offset, h.l1Size * 8];
  h.l1Size = entries;
  h.l1Offset = off;
  m.l1 = l1;
  if (oldBytes > 0) await release(m, oldOff, oldBytes);
  await refcountsDurable(m);
}
