/**
 * Block status through a backing chain (what `qemu-img map` prints and what convert, commit,
 * rebase and compare use to skip work): for each run of guest bytes, the layer that answers for
 * it (depth 0 = the image itself), whether any layer has it (present), whether it reads as zeros
 * for sure (zero), whether it is stored as data (data, compressed) and where in that layer's file
 * (offset: plain data only, as QEMU reports it).
 *
 * A raw layer is data at its own offsets except where the file has holes (SEEK_DATA/SEEK_HOLE
 * through the addon; without it, all data); past the end of a shorter backing file the image reads zeros from no layer.
 */
import type { BlockBackend } from '../backend.js';
import { RawFile } from '../raw-file.js';
import { Qcow2Image } from './qcow2-image.js';

export interface Extent {
  start: number;
  length: number;
  depth: number;
  present: boolean;
  zero: boolean;
  data: boolean;
  compressed: boolean;
  /** Offset in the answering layer's file (unencrypted data clusters and raw layers only). */
  offset?: number;
  /** The answering layer's name (its path). */
  file: string;
}

/** Appends `e` to `out`, merging it into the last extent when nothing but the length differs. */
function push(out: Extent[], e: Extent): void {
  const l = out[out.length - 1];
  if (
    l &&
    l.start + l.length === e.start &&
    l.depth === e.depth &&
    l.present === e.present &&
    l.zero === e.zero &&
    l.data === e.data &&
    l.compressed === e.compressed &&
    l.file === e.file &&
    (l.offset === undefined) === (e.offset === undefined) &&
    (l.offset === undefined || l.offset + l.length === e.offset)
  ) {
    l.length += e.length;
    return;
  }
  out.push({ ...e });
}

/**
 * The extents of [start, start+length) of `img` (merged), appended to `out`; with `descend`
 * false the backing file is not consulted (its runs are reported unallocated at this depth).
 */
export async function blockStatus(
  img: BlockBackend,
  start: number,
  length: number,
  { descend = true, out = [] as Extent[], depth = 0 } = {},
): Promise<Extent[]> {
  const end = start + length;
  const base = { depth, file: img.name, compressed: false };
  if (!(img instanceof Qcow2Image)) {
    for (let g = start; g < end;) {
      // A raw file's holes read as zeros (as QEMU sees them through SEEK_HOLE); else all data.
      const raw = img instanceof RawFile;
      const a = raw ? img.allocationAt(g) : undefined;
      const n = a && a.length > 0 ? Math.min(a.length, end - g) : end - g;
      const data = a?.data ?? true;
      // An encrypted layer (LUKS) has no offset to show that would mean anything: QEMU omits it.
      const at = raw ? { offset: g } : {};
      push(out, { ...base, start: g, length: n, present: true, zero: !data, data, ...at });
      g += n;
    }
    return out;
  }
  const cs = img.clusterSize;
  let pending: { start: number; end: number } | undefined;
  const flushUnallocated = async () => {
    if (!pending) return;
    const { start: s, end: e } = pending;
    pending = undefined;
    const b = descend ? img.backing : undefined;
    const inBacking = b ? Math.max(0, Math.min(e, b.size) - s) : 0;
    if (b && inBacking > 0) await blockStatus(b, s, inBacking, { out, depth: depth + 1 });
    if (s + inBacking < e) {
      const rest = { start: s + inBacking, length: e - s - inBacking };
      push(out, { ...base, ...rest, present: false, zero: true, data: false });
    }
  };
  for (let g = start; g < end;) {
    const { mapping: m, length } = await img.mappingOf(g);
    const n = Math.min(length, end - g);
    if (m.kind === 'unallocated') {
      if (pending) pending.end = g + n;
      else pending = { start: g, end: g + n };
    } else {
      await flushUnallocated();
      const at = { ...base, start: g, length: n, present: true };
      if (m.kind === 'zero') push(out, { ...at, zero: true, data: false });
      else if (m.kind === 'compressed')
        push(out, { ...at, zero: false, data: true, compressed: true });
      else {
        const plain = img.header.cryptMethod === 0 ? { offset: m.host + (g % cs) } : {};
        push(out, { ...at, zero: false, data: true, ...plain });
      }
    }
    g += n;
  }
  await flushUnallocated();
  return out;
}
