/**
 * The qcow2 snapshot table (QEMU's docs/interop/qcow2.txt, "Snapshots"): `nb_snapshots` entries
 * back to back at `snapshots_offset`, each a fixed part, extra data, the id and name strings,
 * padded to 8 bytes. Parsing bounds everything a hostile file could inflate (count, total size,
 * extra data, string lengths, L1 sizes) before allocating from it; unknown extra data is kept and
 * written back as it was.
 */
import type { HostFile } from './host-file.js';
import { MAX_L1_BYTES, Qcow2FormatError, type Qcow2Header } from './qcow2-header.js';

/** QEMU's ceilings (QCOW_MAX_SNAPSHOTS, QCOW_MAX_SNAPSHOTS_SIZE, QCOW_MAX_SNAPSHOT_EXTRA_DATA). */
export const MAX_SNAPSHOTS = 65536;
export const MAX_SNAPSHOT_TABLE_BYTES = 64 * 1024 * 1024;
const MAX_EXTRA = 1024;
/** Extra data we write: vm_state_size_large, disk_size, icount (as QEMU 5+ writes it). */
const OUR_EXTRA = 24;

export interface SnapshotEntry {
  l1Offset: number;
  l1Size: number;
  id: string;
  name: string;
  dateSec: number;
  dateNsec: number;
  vmClockNsec: bigint;
  vmStateSize: number;
  /** The virtual disk size when the snapshot was taken (v3 extra data), if recorded. */
  diskSize?: number;
  /** Guest instruction count (-1: none), if recorded. */
  icount?: bigint;
  /** Extra data past the fields above, kept as read. */
  extraRest: Uint8Array;
}

const bad = (msg: string): never => {
  throw new Qcow2FormatError(msg);
};

function u64(dv: DataView, at: number, what: string): number {
  const v = dv.getBigUint64(at);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) bad(`${what} (${v}) is too large`);
  return Number(v);
}

/** Where the table lies and how long it is at most (its exact length comes from parsing). */
export function checkTablePlace(h: Qcow2Header, fileSize: number): void {
  if (h.nbSnapshots === 0) return;
  if (h.nbSnapshots > MAX_SNAPSHOTS) bad(`${h.nbSnapshots} snapshots is more than allowed`);
  const cs = 2 ** h.clusterBits;
  if (h.snapshotsOffset % cs !== 0 || h.snapshotsOffset < cs) {
    bad(`snapshot table offset ${h.snapshotsOffset} is invalid`);
  }
  if (h.snapshotsOffset >= fileSize) bad('snapshot table lies past the end of the file');
}

/** Parses `h.nbSnapshots` entries from `raw` (the bytes from snapshots_offset on). */
export function parseSnapshotTable(
  raw: Uint8Array,
  h: Qcow2Header,
  fileSize: number,
): { entries: SnapshotEntry[]; bytes: number } {
  const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const cs = 2 ** h.clusterBits;
  const dec = new TextDecoder();
  const entries: SnapshotEntry[] = [];
  let off = 0;
  for (let i = 0; i < h.nbSnapshots; i++) {
    if (off + 40 > raw.length) bad(`snapshot ${i} runs past the snapshot table`);
    const l1Offset = u64(dv, off, `snapshot ${i} L1 offset`);
    const l1Size = dv.getUint32(off + 8);
    const idLen = dv.getUint16(off + 12);
    const nameLen = dv.getUint16(off + 14);
    const extraLen = dv.getUint32(off + 36);
    if (extraLen > MAX_EXTRA) bad(`snapshot ${i} has ${extraLen} bytes of extra data`);
    if (h.version >= 3 && extraLen < 16) bad(`snapshot ${i} lacks the v3 extra data`);
    const fixed = off + 40;
    const end = fixed + extraLen + idLen + nameLen;
    if (end > raw.length) bad(`snapshot ${i} runs past the snapshot table`);
    if (l1Size * 8 > MAX_L1_BYTES) bad(`snapshot ${i} has an L1 table of ${l1Size} entries`);
    if (l1Size > 0 && (l1Offset % cs !== 0 || l1Offset < cs || l1Offset + l1Size * 8 > fileSize)) {
      bad(`snapshot ${i} L1 table (at ${l1Offset}) lies outside the file`);
    }
    const e: SnapshotEntry = {
      l1Offset,
      l1Size,
      id: dec.decode(raw.subarray(fixed + extraLen, fixed + extraLen + idLen)),
      name: dec.decode(raw.subarray(fixed + extraLen + idLen, end)),
      dateSec: dv.getUint32(off + 16),
      dateNsec: dv.getUint32(off + 20),
      vmClockNsec: dv.getBigUint64(off + 24),
      vmStateSize: dv.getUint32(off + 32),
      extraRest: new Uint8Array(0),
    };
    if (extraLen >= 8) e.vmStateSize = u64(dv, fixed, `snapshot ${i} VM state size`);
    if (extraLen >= 16) e.diskSize = u64(dv, fixed + 8, `snapshot ${i} disk size`);
    if (extraLen >= 24) e.icount = dv.getBigInt64(fixed + 16);
    if (extraLen > 24) e.extraRest = raw.slice(fixed + 24, fixed + extraLen);
    entries.push(e);
    off = (end + 7) & ~7;
    if (off > MAX_SNAPSHOT_TABLE_BYTES) bad('the snapshot table is too large');
  }
  return { entries, bytes: off };
}

/** Reads and parses the image's snapshot table (empty when it has none); `bytes`: its length. */
export async function readSnapshotTable(
  file: HostFile,
  h: Qcow2Header,
): Promise<{ entries: SnapshotEntry[]; bytes: number }> {
  if (h.nbSnapshots === 0) return { entries: [], bytes: 0 };
  checkTablePlace(h, file.size);
  // Read in growing steps: the table's length is only known by walking it.
  let len = Math.min(Math.max(h.nbSnapshots * 64, 4096), MAX_SNAPSHOT_TABLE_BYTES);
  for (;;) {
    const raw = await file.read(h.snapshotsOffset, Math.min(len, file.size - h.snapshotsOffset));
    try {
      return parseSnapshotTable(raw, h, file.size);
    } catch (e) {
      const short = raw.length === len && len < MAX_SNAPSHOT_TABLE_BYTES;
      if (!(e instanceof Qcow2FormatError) || !short || !/runs past/.test(e.message)) throw e;
      len = Math.min(len * 4, MAX_SNAPSHOT_TABLE_BYTES);
    }
  }
}

/** The table as it goes on disk. */
export function serializeSnapshotTable(entries: readonly SnapshotEntry[]): Uint8Array {
  const enc = new TextEncoder();
  const parts = entries.map((e) => {
    const id = enc.encode(e.id);
    const name = enc.encode(e.name);
    if (id.length > 0xffff || name.length > 0xffff) {
      throw new Qcow2FormatError(`snapshot name "${e.name.slice(0, 40)}…" is too long`);
    }
    const extraLen = OUR_EXTRA + e.extraRest.length;
    const len = (40 + extraLen + id.length + name.length + 7) & ~7;
    const b = new Uint8Array(len);
    const dv = new DataView(b.buffer);
    dv.setBigUint64(0, BigInt(e.l1Offset));
    dv.setUint32(8, e.l1Size);
    dv.setUint16(12, id.length);
    dv.setUint16(14, name.length);
    dv.setUint32(16, e.dateSec);
    dv.setUint32(20, e.dateNsec);
    dv.setBigUint64(24, e.vmClockNsec);
    dv.setUint32(32, Math.min(e.vmStateSize, 0xffffffff));
    dv.setUint32(36, extraLen);
    dv.setBigUint64(40, BigInt(e.vmStateSize));
    dv.setBigUint64(48, BigInt(e.diskSize ?? 0));
    dv.setBigInt64(56, e.icount ?? -1n);
    b.set(e.extraRest, 64);
    b.set(id, 40 + extraLen);
    b.set(name, 40 + extraLen + id.length);
    return b;
  });
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  if (out.length > MAX_SNAPSHOT_TABLE_BYTES) throw new Qcow2FormatError('too many snapshots');
  return out;
}
