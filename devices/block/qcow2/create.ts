/**
 * Creating an empty qcow2 v3 image: header (with the backing file name and format, and a feature
 * name table), refcount table, refcount blocks covering the metadata, and a zeroed L1 table —
 * QEMU's layout for small images (header, refcount table, refcount block, L1) — then, when
 * encrypted, the LUKS header's clusters.
 */
import { open } from 'node:fs/promises';
import { BlockError } from '../backend.js';
import { serializeHeader, MIN_CLUSTER_BITS, MAX_CLUSTER_BITS } from './qcow2-header.js';
import { openImage, resolveBacking, type ImageFormat } from './open-image.js';
import { imageInfo } from './inspect.js';
import { newLuksRegion, type LuksEncryptOptions } from '../luks/create.js';

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
  if (!Number.isSafeInteger(size) || size < 0 || size > 2 ** 50) throw err(`bad size ${size}`);
  size = Math.ceil(size / 512) * 512;
  const l2Entries = cs / 8;
  const l1Size = Math.ceil(size / cs / l2Entries);
  const l1Clusters = Math.ceil((l1Size * 8) / cs);
  const perBlock = (cs * 8) / bits;
  let nT = 1;
  let nB = 1;
  const luks = o.encrypt ? await newLuksRegion(o.encrypt) : undefined;
  const luksClusters = luks ? Math.ceil(luks.length / cs) : 0;
  for (;;) {
    const total = 1 + nT + nB + l1Clusters + luksClusters;
    const b = Math.ceil(total / perBlock);
    const t = Math.ceil((b * 8) / cs);
    if (b === nB && t === nT) break;
    nB = b;
    nT = t;
  }
  const luksAt = (1 + nT + nB + l1Clusters) * cs;
  const total = 1 + nT + nB + l1Clusters + luksClusters;
  const header = serializeHeader({
    clusterBits,
    size,
    l1Size,
    l1Offset: (1 + nT + nB) * cs,
    refcountTableOffset: cs,
    refcountTableClusters: nT,
    refcountOrder,
    backingFile: o.backingFile,
    backingFormat: o.backingFile ? o.backingFormat : undefined,
    cryptoHeader: luks ? { offset: luksAt, length: luks.length } : undefined,
  });
  const img = new Uint8Array(total * cs);
  img.set(header);
  if (luks) img.set(luks, luksAt);
  const dv = new DataView(img.buffer);
  for (let j = 0; j < nB; j++) dv.setBigUint64(cs + j * 8, BigInt((1 + nT + j) * cs));
  for (let c = 0; c < total; c++) {
    const blk = 1 + nT + Math.floor(c / perBlock);
    const i = c % perBlock;
    const at = blk * cs;
    if (bits < 8) {
      const bit = i * bits;
      img[at + (bit >> 3)] |= 1 << (bit & 7);
    } else {
      // Big-endian 1 in the entry's last byte.
      img[at + (i + 1) * (bits / 8) - 1] = 1;
    }
  }
  const fh = await open(path, 'w');
  try {
    await fh.write(img, 0, img.length, 0);
    await fh.datasync();
  } finally {
    await fh.close();
  }
}
