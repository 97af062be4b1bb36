/**
 * The qcow2 header (QEMU's docs/interop/qcow2.txt): parsing with the checks a hostile file needs
 * (every size bounded before anything is allocated from it, every table aligned, inside the file
 * and clear of the others), and serialization for the images we create.
 *
 * All numbers are big-endian. Offsets are kept as JS numbers: anything at or above 2^53 is
 * refused as corrupt rather than silently rounded.
 */
export const QCOW2_MAGIC = 0x514649fb; // "QFI\xfb"

export const INCOMPAT_DIRTY = 1n << 0n;
export const INCOMPAT_CORRUPT = 1n << 1n;
export const INCOMPAT_DATA_FILE = 1n << 2n;
export const INCOMPAT_COMPRESSION = 1n << 3n;
export const INCOMPAT_EXTL2 = 1n << 4n;
export const COMPAT_LAZY_REFCOUNTS = 1n << 0n;

export const EXT_END = 0;
export const EXT_BACKING_FORMAT = 0xe2792aca;
export const EXT_FEATURE_TABLE = 0x6803f857;
/** "Full disk encryption header pointer": where the LUKS header lives (encrypt.format=luks). */
export const EXT_CRYPTO_HEADER = 0x0537be77;
export const CRYPT_NONE = 0;
export const CRYPT_AES = 1;
export const CRYPT_LUKS = 2;

/** QEMU's own ceilings (QCOW_MAX_L1_SIZE, QCOW_MAX_REFTABLE_SIZE): beyond them it refuses too. */
export const MAX_L1_BYTES = 32 * 1024 * 1024;
export const MAX_REFTABLE_BYTES = 8 * 1024 * 1024;
export const MIN_CLUSTER_BITS = 9;
export const MAX_CLUSTER_BITS = 21;
export const MAX_BACKING_NAME = 1023;

export const V3_HEADER_LENGTH = 112;

export interface FeatureName {
  type: number; // 0 incompatible, 1 compatible, 2 autoclear
  bit: number;
  name: string;
}

export interface Qcow2Header {
  version: 2 | 3;
  backingFile?: string;
  backingFormat?: string;
  clusterBits: number;
  size: number;
  cryptMethod: number;
  l1Size: number;
  l1Offset: number;
  refcountTableOffset: number;
  refcountTableClusters: number;
  nbSnapshots: number;
  snapshotsOffset: number;
  incompatible: bigint;
  compatible: bigint;
  autoclear: bigint;
  refcountOrder: number;
  headerLength: number;
  compressionType: number;
  featureNames: FeatureName[];
  /** The LUKS header's clusters (byte offset and length), with crypt method 2. */
  cryptoHeader?: { offset: number; length: number };
}

/** A malformed image: the message says what is wrong (the caller adds the file name). */
export class Qcow2FormatError extends Error {}

const bad = (msg: string): never => {
  throw new Qcow2FormatError(msg);
};

function safe(v: bigint, what: string): number {
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) bad(`${what} (${v}) is too large`);
  return Number(v);
}

/**
 * Parses the header from the start of the file (`head` holds at least the first cluster, or the
 * whole file when it is shorter) and checks it against the file's size.
 */
export function parseHeader(head: Uint8Array, fileSize: number): Qcow2Header {
  if (head.length < 72) bad('too short to be a qcow2 image');
  const dv = new DataView(head.buffer, head.byteOffset, head.byteLength);
  if (dv.getUint32(0) !== QCOW2_MAGIC) bad('not a qcow2 image (bad magic)');
  const version = dv.getUint32(4);
  if (version !== 2 && version !== 3) bad(`qcow2 version ${version} is not supported (2 or 3)`);
  const clusterBits = dv.getUint32(20);
  if (clusterBits < MIN_CLUSTER_BITS || clusterBits > MAX_CLUSTER_BITS) {
    bad(`cluster_bits ${clusterBits} is outside ${MIN_CLUSTER_BITS}..${MAX_CLUSTER_BITS}`);
  }
  const clusterSize = 2 ** clusterBits;
  const h: Qcow2Header = {
    version: version as 2 | 3,
    clusterBits,
    size: safe(dv.getBigUint64(24), 'virtual size'),
    cryptMethod: dv.getUint32(32),
    l1Size: dv.getUint32(36),
    l1Offset: safe(dv.getBigUint64(40), 'L1 table offset'),
    refcountTableOffset: safe(dv.getBigUint64(48), 'refcount table offset'),
    refcountTableClusters: dv.getUint32(56),
    nbSnapshots: dv.getUint32(60),
    snapshotsOffset: safe(dv.getBigUint64(64), 'snapshot table offset'),
    incompatible: 0n,
    compatible: 0n,
    autoclear: 0n,
    refcountOrder: 4,
    headerLength: 72,
    compressionType: 0,
    featureNames: [],
  };
  if (version === 3) {
    if (head.length < 104) bad('v3 header is truncated');
    h.incompatible = dv.getBigUint64(72);
    h.compatible = dv.getBigUint64(80);
    h.autoclear = dv.getBigUint64(88);
    h.refcountOrder = dv.getUint32(96);
    h.headerLength = dv.getUint32(100);
    if (h.refcountOrder > 6) bad(`refcount_order ${h.refcountOrder} is above 6`);
    if (h.headerLength < 104 || h.headerLength % 8 !== 0 || h.headerLength > clusterSize) {
      bad(`header_length ${h.headerLength} is invalid`);
    }
    if (h.headerLength > 104) h.compressionType = head[104];
  }
  if (h.headerLength > head.length) bad('header is truncated');

  const l1Bytes = h.l1Size * 8;
  if (l1Bytes > MAX_L1_BYTES) bad(`L1 table of ${h.l1Size} entries is too large`);
  const l2Entries = clusterSize / 8;
  const needL1 = Math.ceil(h.size / clusterSize / l2Entries);
  if (h.size > 2 ** 53 - clusterSize * 2) bad(`virtual size ${h.size} is too large`);
  if (needL1 > h.l1Size) bad(`L1 table (${h.l1Size} entries) is too small for the virtual size`);
  const rtBytes = h.refcountTableClusters * clusterSize;
  if (rtBytes > MAX_REFTABLE_BYTES) bad(`refcount table of ${rtBytes} bytes is too large`);
  if (h.refcountTableClusters === 0) bad('refcount table is empty');

  // Tables: aligned, inside the file, clear of the header cluster and of each other.
  const tables: [string, number, number][] = [
    ['L1 table', h.l1Offset, l1Bytes],
    ['refcount table', h.refcountTableOffset, rtBytes],
  ];
  for (const [what, off, len] of tables) {
    if (len === 0) continue;
    if (off % clusterSize !== 0) bad(`${what} offset ${off} is not cluster aligned`);
    if (off < clusterSize) bad(`${what} overlaps the header`);
    if (off + len > fileSize)
      bad(`${what} (at ${off}, ${len} bytes) ends past the end of the file`);
  }
  if (l1Bytes > 0 && overlaps(h.l1Offset, l1Bytes, h.refcountTableOffset, rtBytes)) {
    bad('L1 table and refcount table overlap');
  }

  const backingOffset = safe(dv.getBigUint64(8), 'backing file offset');
  const backingSize = dv.getUint32(16);
  if (backingOffset !== 0) {
    if (backingSize > MAX_BACKING_NAME)
      bad(`backing file name of ${backingSize} bytes is too long`);
    if (backingOffset + backingSize > Math.min(clusterSize, head.length)) {
      bad('backing file name lies outside the first cluster');
    }
    h.backingFile = new TextDecoder().decode(
      head.subarray(backingOffset, backingOffset + backingSize),
    );
  }
  parseExtensions(h, head, dv, clusterSize);
  checkCryptoHeader(h, tables, clusterSize, fileSize);
  return h;
}

/** The LUKS header's clusters: only with method 2, aligned, in the file, clear of the tables. */
function checkCryptoHeader(
  h: Qcow2Header,
  tables: [string, number, number][],
  clusterSize: number,
  fileSize: number,
): void {
  if (h.cryptMethod > CRYPT_LUKS) bad(`encryption method ${h.cryptMethod} is unknown`);
  const c = h.cryptoHeader;
  if (!c) {
    if (h.cryptMethod === CRYPT_LUKS)
      bad('LUKS-encrypted, but the encryption header extension is missing');
    return;
  }
  if (h.cryptMethod !== CRYPT_LUKS) bad('an encryption header extension without LUKS encryption');
  if (c.offset % clusterSize !== 0)
    bad(`encryption header offset ${c.offset} is not cluster aligned`);
  if (c.offset < clusterSize) bad('encryption header overlaps the header');
  if (c.length === 0 || c.offset + c.length > fileSize) {
    bad(`encryption header (at ${c.offset}, ${c.length} bytes) ends past the end of the file`);
  }
  for (const [what, off, len] of tables) {
    if (len > 0 && overlaps(c.offset, c.length, off, len))
      bad(`encryption header overlaps the ${what}`);
  }
}

function overlaps(a: number, al: number, b: number, bl: number): boolean {
  return a < b + bl && b < a + al;
}

function parseExtensions(h: Qcow2Header, head: Uint8Array, dv: DataView, clusterSize: number) {
  if (h.version < 3) return; // v2 images may carry them too, but QEMU 7 writes none we need
  let off = h.headerLength;
  const end = Math.min(clusterSize, head.length);
  while (off + 8 <= end) {
    const type = dv.getUint32(off);
    const len = dv.getUint32(off + 4);
    off += 8;
    if (type === EXT_END) return;
    if (len > end - off) bad(`header extension 0x${type.toString(16)} runs past the first cluster`);
    const data = head.subarray(off, off + len);
    if (type === EXT_BACKING_FORMAT) h.backingFormat = new TextDecoder().decode(data);
    else if (type === EXT_CRYPTO_HEADER) {
      if (len !== 16) bad(`encryption header extension of ${len} bytes (16 expected)`);
      h.cryptoHeader = {
        offset: safe(dv.getBigUint64(off), 'encryption header offset'),
        length: safe(dv.getBigUint64(off + 8), 'encryption header length'),
      };
    } else if (type === EXT_FEATURE_TABLE) {
      for (let i = 0; i + 48 <= len; i += 48) {
        const raw = data.subarray(i + 2, i + 48);
        const nul = raw.indexOf(0);
        h.featureNames.push({
          type: data[i],
          bit: data[i + 1],
          name: new TextDecoder().decode(nul < 0 ? raw : raw.subarray(0, nul)),
        });
      }
    }
    off += (len + 7) & ~7;
  }
}

/** Names of the set bits of one feature field, from the image's own table where it has one. */
export function featureNames(h: Qcow2Header, type: number, bits: bigint): string[] {
  const out: string[] = [];
  for (let b = 0; b < 64; b++) {
    if (!(bits & (1n << BigInt(b)))) continue;
    const f = h.featureNames.find((n) => n.type === type && n.bit === b);
    out.push(f ? f.name : `bit ${b}`);
  }
  return out;
}

export interface NewHeader {
  clusterBits: number;
  size: number;
  l1Size: number;
  l1Offset: number;
  refcountTableOffset: number;
  refcountTableClusters: number;
  refcountOrder: number;
  backingFile?: string;
  backingFormat?: string;
  /** LUKS encryption (method 2): where its header's clusters are. */
  cryptoHeader?: { offset: number; length: number };
}

const FEATURES: FeatureName[] = [
  { type: 0, bit: 0, name: 'dirty bit' },
  { type: 0, bit: 1, name: 'corrupt bit' },
  { type: 0, bit: 2, name: 'external data file' },
  { type: 0, bit: 3, name: 'compression type' },
  { type: 0, bit: 4, name: 'extended L2 entries' },
  { type: 1, bit: 0, name: 'lazy refcounts' },
  { type: 2, bit: 0, name: 'bitmaps' },
  { type: 2, bit: 1, name: 'raw external data' },
];

/** A v3 header with its extensions and backing name, as one buffer for cluster 0. */
export function serializeHeader(n: NewHeader): Uint8Array {
  const clusterSize = 2 ** n.clusterBits;
  const enc = new TextEncoder();
  const exts = baseExtensions(n);
  const ft = new Uint8Array(FEATURES.length * 48);
  FEATURES.forEach((f, i) => {
    ft[i * 48] = f.type;
    ft[i * 48 + 1] = f.bit;
    ft.set(enc.encode(f.name), i * 48 + 2);
  });
  exts.push([EXT_FEATURE_TABLE, ft]);
  const backing = n.backingFile ? enc.encode(n.backingFile) : undefined;
  if (backing && backing.length > MAX_BACKING_NAME) {
    throw new Qcow2FormatError(`backing file name is longer than ${MAX_BACKING_NAME} bytes`);
  }
  let len = V3_HEADER_LENGTH;
  for (const [, d] of exts) len += 8 + ((d.length + 7) & ~7);
  len += 8; // end marker
  const total = len + (backing?.length ?? 0);
  // The feature table is a courtesy for tools: drop it rather than fail on 512-byte clusters.
  if (total > clusterSize) return serializeWithoutFeatureTable(n);
  return serializeHeaderInto(n, exts, backing, clusterSize);
}

function serializeWithoutFeatureTable(n: NewHeader): Uint8Array {
  const clusterSize = 2 ** n.clusterBits;
  const backing = n.backingFile ? new TextEncoder().encode(n.backingFile) : undefined;
  return serializeHeaderInto(n, baseExtensions(n), backing, clusterSize);
}

/** The extensions every header we write needs (backing format, encryption header pointer). */
function baseExtensions(n: NewHeader): [number, Uint8Array][] {
  const exts: [number, Uint8Array][] = [];
  if (n.backingFormat) exts.push([EXT_BACKING_FORMAT, new TextEncoder().encode(n.backingFormat)]);
  if (n.cryptoHeader) {
    const d = new Uint8Array(16);
    const dv = new DataView(d.buffer);
    dv.setBigUint64(0, BigInt(n.cryptoHeader.offset));
    dv.setBigUint64(8, BigInt(n.cryptoHeader.length));
    exts.push([EXT_CRYPTO_HEADER, d]);
  }
  return exts;
}

/** Writes header extensions and the end marker at `off` of `out`; returns the end offset. */
export function putExtensions(out: Uint8Array, off: number, exts: [number, Uint8Array][]): number {
  const dv = new DataView(out.buffer, out.byteOffset, out.byteLength);
  for (const [type, d] of exts) {
    dv.setUint32(off, type);
    dv.setUint32(off + 4, d.length);
    out.set(d, off + 8);
    off += 8 + ((d.length + 7) & ~7);
  }
  return off + 8; // end marker: zeros
}

function serializeHeaderInto(
  n: NewHeader,
  exts: [number, Uint8Array][],
  backing: Uint8Array | undefined,
  clusterSize: number,
): Uint8Array {
  const out = new Uint8Array(clusterSize);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, QCOW2_MAGIC);
  dv.setUint32(4, 3);
  dv.setUint32(20, n.clusterBits);
  dv.setBigUint64(24, BigInt(n.size));
  if (n.cryptoHeader) dv.setUint32(32, CRYPT_LUKS);
  dv.setUint32(36, n.l1Size);
  dv.setBigUint64(40, BigInt(n.l1Offset));
  dv.setBigUint64(48, BigInt(n.refcountTableOffset));
  dv.setUint32(56, n.refcountTableClusters);
  dv.setUint32(96, n.refcountOrder);
  dv.setUint32(100, V3_HEADER_LENGTH);
  const off = putExtensions(out, V3_HEADER_LENGTH, exts);
  if (backing) {
    if (off + backing.length > clusterSize) {
      throw new Qcow2FormatError('header and backing file name do not fit in the first cluster');
    }
    dv.setBigUint64(8, BigInt(off));
    dv.setUint32(16, backing.length);
    out.set(backing, off);
  }
  return out;
}
