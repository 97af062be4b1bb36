/**
 * `wasmvisor img convert [-f FMT] [-O raw|qcow2] [-c] [-o cluster_size=N,...] [-p] SRC DST`:
 * copies what a guest would read from SRC (a whole backing chain) into a new image DST, keeping
 * it sparse — zero runs are not written (a raw output keeps holes, a qcow2 output leaves those
 * clusters unallocated) — and, with -c, storing each qcow2 cluster deflated when that shrinks it.
 * Chunks of a few MiB are read and written several at a time.
 */
import { parseArgs } from 'node:util';
import type { BlockBackend } from '../../devices/block/backend.js';
import { deflateCluster, zstdRefusal } from '../../devices/block/qcow2/compression.js';
import {
  createQcow2,
  openImage,
  Qcow2Image,
  type ImageFormat,
  type Preallocation,
} from '../../devices/block/qcow2/index.js';
import { readKeyFile } from '../../devices/block/luks/key-source.js';
import { createRaw, imageFormat, parsePreallocation, parseSize } from './img.js';
import { BufferPool, forEachChunk, rangesWhere } from './img-chunks.js';
import { isZero } from '../../devices/zero-bytes.js';
import { Progress, type ProgressSink } from './img-progress.js';

export interface ConvertCommand {
  op: 'convert';
  /** The source. */
  file: string;
  format?: ImageFormat;
  output: string;
  outputFormat: ImageFormat;
  compress: boolean;
  /** The passphrase file of an encrypted source (-f luks, or a qcow2 with LUKS). */
  keyFile?: string;
  clusterSize?: number;
  refcountBits?: number;
  preallocation: Preallocation;
  progress: boolean;
}

export const CONVERT_USAGE = `  img convert [-p] [-f FMT] [--key-file PATH] [-O raw|qcow2] [-c] [-o cluster_size=N,refcount_bits=N,preallocation=M] SRC DST
                      copy SRC (and its backing chain) into a new sparse image; -c compresses
`;

export function parseConvertArgs(args: string[]): ConvertCommand {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      format: { type: 'string', short: 'f' },
      'output-format': { type: 'string', short: 'O' },
      compress: { type: 'boolean', short: 'c', default: false },
      options: { type: 'string', short: 'o', multiple: true },
      progress: { type: 'boolean', short: 'p', default: false },
      'key-file': { type: 'string' },
    },
  });
  if (positionals.length !== 2) throw new Error('img convert: give SRC and DST');
  const outputFormat = imageFormat(values['output-format'], 'img convert -O') ?? 'raw';
  if (outputFormat === 'luks') {
    throw new Error('img convert -O: luks output is not supported (raw or qcow2)');
  }
  let clusterSize: number | undefined;
  let refcountBits: number | undefined;
  let preallocation: Preallocation = 'off';
  for (const kv of (values.options ?? []).flatMap((o) => o.split(','))) {
    if (kv === '') continue;
    const [k, v] = kv.split('=', 2) as [string, string | undefined];
    if (v === undefined) throw new Error(`img convert -o: "${kv}" needs a value`);
    if (k === 'cluster_size') clusterSize = parseSize(v, 'cluster_size');
    else if (k === 'refcount_bits') refcountBits = Number(v);
    else if (k === 'compression_type' && v === 'zstd') {
      throw new Error(zstdRefusal(`img convert: creating ${positionals[1]}`));
    } else if (k === 'compression_type' && v === 'zlib') continue;
    else if (k === 'preallocation') {
      preallocation = parsePreallocation(v, outputFormat, 'img convert');
    } else throw new Error(`img convert -o: option "${k}" is not supported`);
  }
  if (outputFormat === 'raw' && (clusterSize || refcountBits || values.compress)) {
    throw new Error('img convert: -c, cluster_size and refcount_bits need -O qcow2');
  }
  if (values.compress && preallocation !== 'off') {
    throw new Error('img convert: -c and preallocation cannot be used together (as qemu-img)');
  }
  return {
    op: 'convert',
    file: positionals[0]!,
    format: imageFormat(values.format, 'img convert -f'),
    output: positionals[1]!,
    outputFormat,
    compress: values.compress ?? false,
    keyFile: values['key-file'],
    clusterSize,
    refcountBits,
    preallocation,
    progress: values.progress ?? false,
  };
}

/** Writes the non-zero `gran`-sized pieces of `buf` (read from guest offset `off`). */
async function writeNonZero(
  dst: BlockBackend,
  off: number,
  buf: Uint8Array,
  gran: number,
): Promise<void> {
  const jobs: Promise<void>[] = [];
  let run = -1;
  for (let p = 0; ; p += gran) {
    const data = p < buf.length && !isZero(buf.subarray(p, p + gran));
    if (data && run < 0) run = p;
    if (!data && run >= 0) {
      jobs.push(dst.write(off + run, buf.subarray(run, Math.min(p, buf.length))));
      run = -1;
    }
    if (p >= buf.length) break;
  }
  await Promise.all(jobs);
}

/** Stores each non-zero cluster of `buf` compressed when that shrinks it, else as it is. */
async function writeCompressed(dst: Qcow2Image, off: number, buf: Uint8Array): Promise<void> {
  const cs = dst.clusterSize;
  const clusters: { c: number; data: Uint8Array; deflated: Promise<Uint8Array | undefined> }[] = [];
  for (let p = 0; p < buf.length; p += cs) {
    const data = buf.subarray(p, p + cs);
    if (isZero(data)) continue;
    let whole = data;
    if (data.length < cs) {
      whole = new Uint8Array(cs); // the image's last cluster, zero-padded as QEMU does
      whole.set(data);
    }
    clusters.push({ c: (off + p) / cs, data, deflated: deflateCluster(whole) });
  }
  for (const { c, data, deflated } of clusters) {
    const d = await deflated;
    if (d) await dst.writeCompressed(c, d);
    else await dst.write(c * cs, data);
  }
}

/** openImage's key options for `--key-file PATH` (the image's and its backing chain's key). */
export async function keyOptions(
  keyFile: string | undefined,
): Promise<{ key?: Uint8Array; backingKey?: Uint8Array }> {
  if (keyFile === undefined) return {};
  const key = await readKeyFile(keyFile);
  return { key, backingKey: key };
}

export async function runConvert(c: ConvertCommand, io: ProgressSink): Promise<number> {
  const src = await openImage(c.file, c.format, {
    readOnly: true,
    ...(await keyOptions(c.keyFile)),
  });
  let dst: BlockBackend | undefined;
  try {
    const size = src.size;
    if (c.outputFormat === 'raw') await createRaw(c.output, size, c.preallocation);
    else {
      await createQcow2(c.output, {
        size,
        clusterSize: c.clusterSize,
        refcountBits: c.refcountBits,
        preallocation: c.preallocation,
      });
    }
    // As qemu-img: the new image needs no durability until it is complete (cache=unsafe).
    dst = await openImage(c.output, c.outputFormat, { cache: 'unsafe' });
    const out = dst;
    const cs = out instanceof Qcow2Image ? out.clusterSize : 4096;
    const progress = c.progress ? new Progress(io) : undefined;
    // Only what may hold data is read: runs the source's block status says are zeros are not.
    const work = await rangesWhere(src, (e) => !e.zero);
    const buffers = new BufferPool();
    await forEachChunk(
      work,
      size,
      async (off, len) => {
        await buffers.use(len, async (buf) => {
          await src.read(off, buf); // every byte is read into
          if (c.compress && out instanceof Qcow2Image) await writeCompressed(out, off, buf);
          else await writeNonZero(out, off, buf, cs);
        });
      },
      { progress, align: cs },
    );
    progress?.finish();
    await out.close();
    dst = undefined;
    return 0;
  } finally {
    await dst?.close().catch(() => {});
    await src.close();
  }
}
