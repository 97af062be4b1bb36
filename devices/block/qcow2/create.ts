/**
 * Creating an empty qcow2 v3 image: header (with the backing file name and format, and a feature
 * name table), refcount table, refcount blocks covering the metadata, and a zeroed L1 table —
 * QEMU's layout for small images (header, refcount table, refcount block, L1) — then, when
 * encrypted, the LUKS header's clusters.
 *
 * Preallocation (qemu-img's `-o preallocation=`): `metadata` adds every L2 table and maps each
 * guest cluster to its own host cluster after them (refcount 1, "copied", so writes go in place),
 * the data area left as a hole of the file that reads as zeros; `full` also writes those zeros.
 */
import { open } from 'node:fs/promises';
import { BlockError } from '../backend.js';
import { serializeHeader, MIN_CLUSTER_BITS, MAX_CLUSTER_BITS } from './qcow2-header.js';
import { openImage, resolveBacking, type ImageFormat } from './open-image.js';
import { imageInfo } from './inspect.js';
import { newLuksRegion, type LuksEncryptOptions } from '../luks/create.js';
import { encodeL2, setL1, writeWord } from './entries.js';
import type { FileHandle } from 'node:fs/promises';

export type Preallocation = 'off' | 'metadata' | 'full';

export interface CreateQcow2Options {
  /** Virtual size in bytes; default: the backing file's. */
  size?: number;
  clusterSize?: number;
  /** Refcount entry width: 1, 2, 4, 8, 16, 32 or 64 bits (default 16). */
  refcountBits?: number;
  backingFile?: string;
  backingFormat?: ImageFormat;
  /** encrypt.format=luks: the LUKS header goes in clusters after the L1 table. */
  encrypt?: LuksEncryptOptions;
  /** Default off. */
  preallocation?: Preallocation;
}

/** Bytes written per call when streaming L2 tables, refcount blocks and zeros. */
const CHUNK = 1 << 20;

/** Writes `fill(buf, firstCluster, n)` over clusters [first, first+count) in chunks. */
async function writeClusters(
  fh: FileHandle,
  cs: number,
  first: number,
  count: number,
  fill: (buf: Uint8Array, cluster: number, n: number) => void,
): Promise<void> {
  const per = Math.max(1, Math.floor(CHUNK / cs));
  const buf = new Uint8Array(Math.min(per, count) * cs);
  for (let c = 0; c < count; c += per) {
    const n = Math.min(per, count - c);
    const b = buf.subarray(0, n * cs);
    b.fill(0);
    fill(b, first + c, n);
    await fh.write(b, 0, b.length, (first + c) * cs);
  }
}

export async function createQcow2(path: string, o: CreateQcow2Options = {}): Promise<void> {
  const cs = o.clusterSize ?? 65536;
  const clusterBits = Math.log2(cs);
  const err = (msg: string) => new BlockError('unsupported', `creating ${path}: ${msg}`);
  if (
    !Number.isInteger(clusterBits) ||
    clusterBits < MIN_CLUSTER_BITS ||
    clusterBits > MAX_CLUSTER_BITS
  ) {
    throw err(`cluster size ${cs} is not a power of two from 512 to 2 MiB`);
  }
  const bits = o.refcountBits ?? 16;
  const refcountOrder = Math.log2(bits);
  if (!Number.isInteger(refcountOrder) || refcountOrder < 0 || refcountOrder > 6) {
    throw err(`refcount width ${bits} is not a power of two from 1 to 64`);
  }
  let size = o.size;
  if (o.backingFile && size === undefined && o.backingFormat === 'luks') {
    // Its header gives the size; opening it would need the key.
    size = (await imageInfo(resolveBacking(path, o.backingFile), 'luks')).virtualSize;
  } else if (o.backingFile && size === undefined) {
    const b = await openImage(resolveBacking(path, o.backingFile), o.backingFormat, {
      readOnly: true,
    });
    size = b.size;
    await b.close();
  }
  if (size === undefined) throw err('no size given');
  const prealloc = o.preallocation ?? 'off';
  if (prealloc !== 'off' && o.backingFile) {
    throw err('preallocation and a backing file cannot be used together (as qemu-img)');
  }
  if (prealloc !== 'off' && o.encrypt) {
    throw err('preallocation of an encrypted image is not supported');
  }
  if (!Number.isSafeInteger(size) || size < 0 || size > 2 ** 50) throw err(`bad size ${size}`);
  size = Math.ceil(size / 512) * 512;
  const l2Entries = cs / 8;
  const l1Size = Math.ceil(size / cs / l2Entries);
  const l1Clusters = Math.ceil((l1Size * 8) / cs);
  const perBlock = (cs * 8) / bits;
  const luks = o.encrypt ? await newLuksRegion(o.encrypt) : undefined;
  const luksClusters = luks ? Math.ceil(luks.length / cs) : 0;
  const dataClusters = prealloc === 'off' ? 0 : Math.ceil(size / cs);
  const l2Tables = prealloc === 'off' ? 0 : l1Size;
  let nT = 1;
  let nB = 1;
  const totalWith = (t: number, b: number): number =>
    1 + t + b + l1Clusters + luksClusters + l2Tables + dataClusters;
  for (;;) {
    const b = Math.ceil(totalWith(nT, nB) / perBlock);
    const t = Math.ceil((b * 8) / cs);
    if (b === nB && t === nT) break;
    nB = b;
    nT = t;
  }
  const l1At = 1 + nT + nB;
  const luksAt = (l1At + l1Clusters) * cs;
  const l2At = l1At + l1Clusters + luksClusters;
  const dataAt = l2At + l2Tables;
  const total = totalWith(nT, nB);
  const header = serializeHeader({
    clusterBits,
    size,
    l1Size,
    l1Offset: l1At * cs,
    refcountTableOffset: cs,
    refcountTableClusters: nT,
    refcountOrder,
    backingFile: o.backingFile,
    backingFormat: o.backingFile ? o.backingFormat : undefined,
    cryptoHeader: luks ? { offset: luksAt, length: luks.length } : undefined,
  });
  // Header and refcount table are built whole; the refcount blocks and L2 tables (large when
  // preallocating) are written a chunk at a time.
  const top = new Uint8Array((1 + nT) * cs);
  top.set(header);
  const tdv = new DataView(top.buffer);
  for (let j = 0; j < nB; j++) tdv.setBigUint64(cs + j * 8, BigInt((1 + nT + j) * cs));
  const l1 = new Uint8Array(l1Clusters * cs);
  for (let i = 0; i < l2Tables; i++) setL1(l1, i, (l2At + i) * cs);
  const fh = await open(path, 'w');
  try {
    await fh.write(top, 0, top.length, 0);
    // Every cluster of the file has refcount 1.
    await writeClusters(fh, cs, 1 + nT, nB, (buf, blk, n) => {
      for (let k = 0; k < n; k++) {
        const first = (blk - 1 - nT + k) * perBlock;
        const count = Math.min(perBlock, total - first);
        const at = k * cs;
        for (let i = 0; i < count; i++) {
          if (bits < 8) {
            const bit = i * bits;
            buf[at + (bit >> 3)]! |= 1 << (bit & 7);
          } else {
            // Big-endian 1 in the entry's last byte.
            buf[at + (i + 1) * (bits / 8) - 1] = 1;
          }
        }
      }
    });
    if (l1.length) await fh.write(l1, 0, l1.length, l1At * cs);
    if (luks) await fh.write(luks, 0, luks.length, luksAt);
    await writeClusters(fh, cs, l2At, l2Tables, (buf, table, n) => {
      for (let k = 0; k < n; k++) {
        const t = table - l2At + k;
        const first = t * l2Entries;
        const count = Math.min(l2Entries, dataClusters - first);
        const view = buf.subarray(k * cs, (k + 1) * cs);
        for (let i = 0; i < count; i++) {
          const [hi, lo] = encodeL2({
            kind: 'data',
            host: (dataAt + first + i) * cs,
            copied: true,
          });
          writeWord(view, i, hi, lo);
        }
      }
    });
    if (prealloc === 'full') await writeClusters(fh, cs, dataAt, dataClusters, () => {});
    await fh.truncate(total * cs);
    await fh.datasync();
  } finally {
    await fh.close();
  }
}
