/**
 * Changing a qcow2's virtual size. Growing gives the L1 table the entries the new size needs
 * (a new table, synced, before the header names it) and then writes the size. Shrinking is
 * refused while any cluster past the new end is allocated — nothing the guest wrote is ever
 * dropped silently —; otherwise the size is written first, then L2 tables wholly past the end
 * are unhooked from the L1 table (synced) and only then released. Images with internal
 * snapshots are not resized (their snapshots record the size they were taken at), as in QEMU.
 */
import { decodeL2, l1Offset, writeWord } from './entries.js';
import {
  growL1,
  refcountsDurable,
  release,
  writeHeaderField,
  writeTables,
  type Qcow2Meta,
} from './metadata.js';
import { MAX_L1_BYTES } from './qcow2-header.js';
import { readL2 } from './tree.js';

/** A resize the image cannot take; the message says why. */
export class ResizeError extends Error {}

export async function resizeQcow2(m: Qcow2Meta, newSize: number, shrink: boolean): Promise<void> {
  const h = m.header;
  const cs = 2 ** h.clusterBits;
  const l2Entries = cs / 8;
  const size = Math.ceil(newSize / 512) * 512;
  if (!Number.isSafeInteger(size) || size < 0 || size > 2 ** 50) {
    throw new ResizeError(`${newSize} is not a size this image can have`);
  }
  if (size === h.size) return;
  if (h.nbSnapshots > 0) {
    throw new ResizeError('an image with internal snapshots cannot be resized (delete them first)');
  }
  const needL1 = Math.ceil(size / cs / l2Entries);
  if (size > h.size) {
    if (needL1 * 8 > MAX_L1_BYTES)
      throw new ResizeError(`${size} bytes needs too large an L1 table`);
    await growL1(m, needL1);
    await writeHeaderField(m, 24, [[64, size]]);
    h.size = size;
    return;
  }
  if (!shrink) {
    throw new ResizeError('shrinking loses the end of the disk: give --shrink to do it');
  }
  const firstGone = Math.ceil(size / cs);
  const emptyTables: number[] = [];
  for (let i = Math.floor(firstGone / l2Entries); i < h.l1Size; i++) {
    const off = l1Offset(m.l1, i, cs);
    if (!off) continue;
    const t = await readL2(m.file, cs, off, i);
    for (let j = Math.max(0, firstGone - i * l2Entries); j < l2Entries; j++) {
      const e = decodeL2(t, j, h.clusterBits, h.version);
      if (e.kind === 'data' || e.kind === 'compressed' || (e.kind === 'zero' && e.host)) {
        const at = (i * l2Entries + j) * cs;
        throw new ResizeError(
          `data is allocated at ${at}, past the new end (${size}): shrinking would lose it`,
        );
      }
    }
    if (i * l2Entries >= firstGone) emptyTables.push(i);
  }
  await writeHeaderField(m, 24, [[64, size]]);
  h.size = size;
  if (emptyTables.length === 0) return;
  const offs = emptyTables.map((i) => l1Offset(m.l1, i, cs));
  for (const i of emptyTables) writeWord(m.l1, i, 0, 0);
  await writeTables(m, new Map(), true);
  for (const off of offs) await release(m, off, cs);
  await refcountsDurable(m);
}
