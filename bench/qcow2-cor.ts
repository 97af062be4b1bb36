/**
 * What copy-on-read and internal snapshots cost and buy, through openDisk() without a guest:
 *
 *   npm run build && node dist/bench/qcow2-cor.js [--mib 64]
 *   (or without building: npx tsx bench/qcow2-cor.ts …)
 *
 * 1. Sequential 1 MiB reads of a raw base, of a qcow2 overlay over it (every read goes down to
 *    the base), and of an overlay with cor=on: its first pass (reading and copying) and its
 *    second (the clusters are in the overlay now), MB/s and ratio to raw.
 * 2. 4 KiB random reads (8 in flight) of the same, IOPS and ratio to raw.
 * 3. Sequential 1 MiB writes into a qcow2 whose clusters a snapshot shares (each first write
 *    copies the cluster and its L2 table) against the same writes once they are its own.
 * Page cache warm: the figures are the layer's cost, not the disk's.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { openDisk, type Disk } from '../devices/block/index.js';
import { createQcow2, createSnapshot } from '../devices/block/qcow2/index.js';
import type { DiskConfig } from '../main/vm/config.js';

const { values } = parseArgs({ options: { mib: { type: 'string', default: '64' } } });
const MIB = Number(values.mib);
const SIZE = MIB << 20;
const disk = (path: string, more: Partial<DiskConfig> = {}): Promise<Disk> =>
  openDisk({ path, format: 'raw', readOnly: false, cache: 'unsafe', sched: 'noop', ...more });
const mbps = (bytes: number, ms: number) => bytes / 1e6 / (ms / 1000);
const buf = new Uint8Array(new WebAssembly.Memory({ initial: 16 }).buffer); // 1 MiB, like guest RAM

async function sequential(d: Disk, write = false): Promise<number> {
  const t = performance.now();
  for (let off = 0; off < SIZE; off += buf.length) {
    await (write ? d.write(off, buf) : d.read(off, buf));
  }
  return mbps(SIZE, performance.now() - t);
}

async function randomReads(d: Disk, n = 8192): Promise<number> {
  let x = 12345;
  const views = Array.from({ length: 8 }, (_, i) => buf.subarray(i * 4096, (i + 1) * 4096));
  const t = performance.now();
  for (let done = 0; done < n; done += views.length) {
    await Promise.all(
      views.map((v) => {
        x = (x * 1103515245 + 12345) >>> 0;
        return d.read((x % (SIZE / 4096)) * 4096, v);
      }),
    );
  }
  return n / ((performance.now() - t) / 1000);
}

const row = (label: string, v: number, base: number, unit: string) =>
  console.log(
    `${label.padEnd(28)} ${v.toFixed(0).padStart(8)} ${unit} ${(v / base).toFixed(2).padStart(6)}x`,
  );

const dir = mkdtempSync(join(tmpdir(), 'wasmvisor-cor-bench-'));
try {
  const base = join(dir, 'base.raw');
  writeFileSync(base, randomBytes(SIZE));
  const overlay = async (name: string) => {
    const p = join(dir, name);
    await createQcow2(p, { backingFile: base, backingFormat: 'raw' });
    return p;
  };
  const raw = await disk(base, { readOnly: true });
  await sequential(raw); // page cache warm
  const rawSeq = await sequential(raw);
  const rawRand = await randomReads(raw);
  await raw.close();
  const plain = await disk(await overlay('plain.qcow2'), { format: 'qcow2' });
  const plainSeq = await sequential(plain);
  const plainRand = await randomReads(plain);
  await plain.close();
  const cor = await disk(await overlay('cor.qcow2'), { format: 'qcow2', cor: true });
  const corFirst = await sequential(cor);
  const corSecond = await sequential(cor);
  const corRand = await randomReads(cor);
  console.log(`sequential 1 MiB reads over ${MIB} MiB (MB/s, ratio to raw)`);
  row('raw base', rawSeq, rawSeq, 'MB/s');
  row('overlay, reads from base', plainSeq, rawSeq, 'MB/s');
  row('overlay cor=on, first pass', corFirst, rawSeq, 'MB/s');
  row('overlay cor=on, second pass', corSecond, rawSeq, 'MB/s');
  console.log(`  (${cor.stats().corClusters ?? 0} clusters copied)`);
  await cor.close();
  console.log('4 KiB random reads, 8 in flight (IOPS, ratio to raw)');
  row('raw base', rawRand, rawRand, 'IOPS');
  row('overlay, reads from base', plainRand, rawRand, 'IOPS');
  row('overlay cor=on, filled', corRand, rawRand, 'IOPS');

  const snap = join(dir, 'snap.qcow2');
  await createQcow2(snap, { size: SIZE });
  const s = await disk(snap, { format: 'qcow2' });
  await sequential(s, true);
  await s.image!.withMetadata((m) => createSnapshot(m, 'bench'));
  const shared = await sequential(s, true);
  const own = await sequential(s, true);
  await s.close();
  console.log('sequential 1 MiB writes into a qcow2 (MB/s, ratio to writes into its own clusters)');
  row('clusters shared by a snapshot', shared, own, 'MB/s');
  row('its own clusters', own, own, 'MB/s');
} finally {
  rmSync(dir, { recursive: true, force: true });
}
