/**
 * Refcounts recomputed from the tables that use clusters: the repair of an image whose dirty bit
 * says its refcounts may be stale (lazy refcounts), and the consistency check behind
 * `wasmvisor img check` (QEMU's meaning: a cluster whose refcount is below its uses is a
 * corruption — it could be handed out twice —, one above is a leak — only wasted space).
 */
import { decodeL2, l1Offset } from './entries.js';
import type { HostFile } from './host-file.js';
import type { Qcow2Header } from './qcow2-header.js';
import type { Refcounts } from './refcounts.js';
import { readSnapshotTable } from './snapshot-table.js';
import { entryClusters } from './tree.js';

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
  if (h.cryptoHeader) range(h.cryptoHeader.offset, h.cryptoHeader.length, 'encryption header');
  const [rtOff, rtBytes] = refs.tableRange;
  range(rtOff, rtBytes, 'refcount table');
  for (const b of refs.tableEntries()) if (b) use(b / cs, 'refcount block');
  let structural = 0;
  // Every L1 table — the active one and each snapshot's — counts its tree once more.
  const walk = async (table: Uint8Array, whose: string) => {
    for (let i = 0; i < table.length / 8; i++) {
      const off = l1Offset(table, i, cs);
      if (!off) continue;
      if (off + cs > file.size) {
        // Not repairable here: a corruption the check reports (and the dirty-bit repair refuses).
        structural++;
        if (messages.length < 20)
          messages.push(`${whose}L2 table ${i} at ${off} lies outside the file`);
        continue;
      }
      use(off / cs, `${whose}L2 table ${i}`);
      const t = await file.read(off, cs);
      for (let j = 0; j < cs / 8; j++) {
        for (const c of entryClusters(decodeL2(t, j, h.clusterBits, h.version), cs)) {
          use(c, `${whose}data`);
        }
      }
    }
  };
  await walk(l1, '');
  const snaps = await readSnapshotTable(file, h);
  if (snaps.bytes > 0) range(h.snapshotsOffset, snaps.bytes, 'snapshot table');
  for (const e of snaps.entries) {
    const whose = `snapshot ${e.id}: `;
    range(e.l1Offset, e.l1Size * 8, `${whose}L1 table`);
    await walk(await file.read(e.l1Offset, e.l1Size * 8), whose);
  }
  // Every cluster of the file, and those past its end that a (hostile) table names — not every
  // index up to the farthest one, which could be 2^40 away.
  const inFile = Math.ceil(file.size / cs);
  const past = [...uses.keys()].filter((c) => c >= inFile).sort((a, b) => a - b);
  const clusters = function* () {
    for (let c = 0; c < inFile; c++) yield c;
    yield* past;
  };
  const r: RefcountReport = {
    leaks: 0,
    corruptions: structural,
    fixed: 0,
    unfixed: structural,
    used: uses.size,
    messages,
  };
  for (const c of clusters()) {
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
