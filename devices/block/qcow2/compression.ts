/**
 * Compressed clusters (QEMU's docs/interop/qcow2.txt): a cluster's bytes deflated with zlib's raw
 * format (no zlib header, a 4 KiB window — what QEMU's inflate is set up for), stored at any byte
 * offset of the file (several share a host cluster, each counting one reference to every host
 * cluster it touches), and described by an L2 entry with bit 62 set, the byte offset in its low
 * bits and the count of additional 512-byte sectors above them.
 *
 * The header's compression type (byte 104, with the "compression type" incompatible bit) may name
 * zstd instead; Node's zlib here has no zstd, so such images are refused as a whole, by name.
 */
import { deflateRaw, inflateRawSync } from 'node:zlib';
import { promisify } from 'node:util';
import { COMPRESSED } from './entries.js';
import { Qcow2CorruptError } from './refcounts.js';

const deflateRawAsync = promisify(deflateRaw);

export const COMPRESSION_ZLIB = 0;
export const COMPRESSION_ZSTD = 1;
/** QEMU inflates with a 2^12-byte window: a larger one would make our clusters unreadable there. */
const WINDOW_BITS = 12;

/** The refusal for a zstd image (`what` names it: "disk image x.qcow2" or "creating x.qcow2"). */
export function zstdRefusal(what: string): string {
  return `${what}: zstd-compressed clusters are not supported by this host's zlib`;
}

/**
 * The cluster deflated (in libuv's thread pool, so several run at once), or undefined when that
 * does not make it smaller — the cluster is then stored uncompressed, as QEMU does.
 */
export async function deflateCluster(data: Uint8Array): Promise<Uint8Array | undefined> {
  const out = await deflateRawAsync(data, { windowBits: WINDOW_BITS });
  return out.length < data.length ? out : undefined;
}

/** Inflates one compressed cluster's bytes (`raw` may run past the stream: sector padding). */
export function inflateCluster(raw: Uint8Array, clusterSize: number, at: number): Uint8Array {
  let out: Buffer;
  try {
    out = inflateRawSync(raw, { maxOutputLength: clusterSize, finishFlush: 2 /* Z_SYNC_FLUSH */ });
  } catch (e) {
    throw new Qcow2CorruptError(
      `compressed cluster at ${at} does not inflate: ${(e as Error).message}`,
    );
  }
  if (out.length === clusterSize) return out;
  const full = new Uint8Array(clusterSize);
  full.set(out);
  return full;
}

/** The L2 entry (as two 32-bit halves) of `length` compressed bytes at file offset `start`. */
export function encodeCompressedL2(
  start: number,
  length: number,
  clusterBits: number,
): [number, number] {
  const x = BigInt(62 - (clusterBits - 8));
  const extraSectors = Math.floor((start + length - 1) / 512) - Math.floor(start / 512);
  if (start >= 2 ** Number(x) || extraSectors >= 2 ** (62 - Number(x))) {
    throw new Qcow2CorruptError(`compressed cluster at ${start} cannot be described`);
  }
  const v = (BigInt(extraSectors) << x) | BigInt(start);
  return [(Number(v >> 32n) | COMPRESSED) >>> 0, Number(v & 0xffffffffn)];
}
