/**
 * Refcounts recomputed from the tables that use clusters: the repair of an image whose dirty bit
 * says its refcounts may be stale (lazy refcounts), and the consistency check behind
 * `wasmvisor img check` (QEMU's meaning: a cluster whose refcount is below its uses is a
 * corruption — it could be handed out twice —, one above is a leak — only wasted space).
 */
import { decodeL2, l1Offset } from './entries.js';
import type { HostFile } from './host-file.js';
import type { Qcow2Header } from './qcow2-header.js';
import { Qcow2CorruptError, type Refcounts } from './refcounts.js';

export interface RefcountReport {
  leaks: number;
  corruptions: number;
  fixed: number;
  /** Refcounts that could not be set (no refcount block covers the cluster). */
  unfixed: number;
  /** Clusters referenced by the tables. */
  used: number;
  messages: string[];
}

export async function rebuildRefcounts(
  file: HostFile,
  h: Qcow2Header,
  l1: Uint8Array,
  refs: Refcounts,
  /** true: set every refcount to its uses; 'leaks': only lower those above (`check -r leaks`). */
  fix: boolean | 'leaks',
): Promise<RefcountReport> {
  if (h.nbSnapshots > 0) {
    throw new Qcow2CorruptError('refcounts of images with internal snapshots are not rebuilt here');
  }
  const cs = 2 ** h.clusterBits;
  const uses = new Map<number, number>();
  const messages: string[] = [];
  const use = (c: number, what: string) => {
    if (c * cs >= file.size + cs * 2 && messages.length < 20) {
      messages.push(`${what}: cluster ${c} lies past the end of the file`);
    }
    uses.set(c, (uses.get(c) ?? 0) + 1);
  };
  const range = (off: number, bytes: number, what: string) => {
    for (let c = Math.floor(off / cs); c < Math.ceil((off + bytes) / cs); c++) use(c, what);
  };
  use(0, 'header');
  range(h.l1Offset, h.l1Size * 8, 'L1 table');
  const [rtOff, rtBytes] = refs.tableRange;
  range(rtOff, rtBytes, 'refcount table');
  for (const b of refs.tableEntries()) if (b) use(b / cs, 'refcount block');
  let structural = 0;
  for (let i = 0; i < h.l1Size; i++) {
    const off = l1Offset(l1, i, cs);
    if (!off) continue;
    if (off + cs > file.size) {
      // Not repairable here: a corruption the check reports (and the dirty-bit repair refuses).
      structural++;
      if (messages.length < 20) messages.push(`L2 table ${i} at ${off} lies outside the file`);
      continue;
    }
    use(off / cs, `L2 table ${i}`);
    const t = await file.read(off, cs);
    for (let j = 0; j < cs / 8; j++) {
      const m = decodeL2(t, j, h.clusterBits, h.version);
      if ((m.kind === 'data' || m.kind === 'zero') && m.host) use(m.host / cs, 'data');
      else if (m.kind === 'compressed') {
        for (let k = Math.floor(m.start / cs); k <= Math.floor((m.end - 1) / cs); k++) {
          use(k, 'compressed data');
        }
      }
    }
  }
  let last = Math.ceil(file.size / cs);
  for (const c of uses.keys()) last = Math.max(last, c + 1);
  const r: RefcountReport = {
    leaks: 0,
    corruptions: structural,
    fixed: 0,
    unfixed: structural,
    used: uses.size,
    messages,
  };
  for (let c = 0; c < last; c++) {
    const want = uses.get(c) ?? 0;
    const have = await refs.get(c);
    if (want === have) continue;
    if (have > want) r.leaks++;
    else {
      r.corruptions++;
      if (messages.length < 20) messages.push(`cluster ${c}: refcount ${have}, used ${want} times`);
    }
    if (fix === true || (fix === 'leaks' && have > want)) {
      try {
        await refs.set(c, want);
        r.fixed++;
      } catch (e) {
        r.unfixed++;
        if (messages.length < 20)
          messages.push(`cluster ${c}: not repaired: ${(e as Error).message}`);
      }
    }
  }
  return r;
}
