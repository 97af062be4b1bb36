/**
 * `wasmvisor img compare [-f FMT] [-F FMT] [-s] [-p] A B`: whether two images read the same, as
 * qemu-img says it — exit 0 "Images are identical.", 1 "Content mismatch at offset N!" (the first
 * differing 512-byte sector), 2 when an image cannot be read. Without -s, images of different
 * sizes are equal when the larger one's extra part reads as zeros; with -s they differ.
 */
import { parseArgs } from 'node:util';
import type { BlockBackend } from '../../devices/block/backend.js';
import { openImage, type ImageFormat } from '../../devices/block/qcow2/index.js';
import { keyOptions } from './img-convert.js';
import { imageFormat, type ImgIo } from './img.js';
import { forEachChunk, rangesWhere, union, type Ranges } from './img-chunks.js';
import { isZero } from '../../devices/zero-bytes.js';
import { Progress } from './img-progress.js';

export interface CompareCommand {
  op: 'compare';
  file: string;
  format?: ImageFormat;
  other: string;
  otherFormat?: ImageFormat;
  strict: boolean;
  /** The passphrase file of encrypted images (both, for compare). */
  keyFile?: string;
  progress: boolean;
}

export const COMPARE_USAGE = `  img compare [-p] [-s] [-f FMT] [-F FMT] [--key-file PATH] A B
                      exit 0 if A and B read the same, 1 if not (first differing offset), 2 on error
`;

export function parseCompareArgs(args: string[]): CompareCommand {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      format: { type: 'string', short: 'f' },
      'other-format': { type: 'string', short: 'F' },
      strict: { type: 'boolean', short: 's', default: false },
      progress: { type: 'boolean', short: 'p', default: false },
      'key-file': { type: 'string' },
    },
  });
  if (positionals.length !== 2) throw new Error('img compare: give two images');
  return {
    op: 'compare',
    file: positionals[0]!,
    format: imageFormat(values.format, 'img compare -f'),
    other: positionals[1]!,
    otherFormat: imageFormat(values['other-format'], 'img compare -F'),
    strict: values.strict ?? false,
    progress: values.progress ?? false,
    keyFile: values['key-file'],
  };
}

/** The first 512-byte sector at which `a` and `b` differ (as an offset into them), or -1. */
function firstDifference(a: Uint8Array, b: Uint8Array): number {
  if (Buffer.compare(a, b) === 0) return -1;
  for (let p = 0; ; p += 512) {
    if (Buffer.compare(a.subarray(p, p + 512), b.subarray(p, p + 512)) !== 0) return p;
  }
}

/** `r` cut to [from, to). */
function clip(r: Ranges, from: number, to: number): Ranges {
  const out: Ranges = [];
  for (const [s, e] of r) if (e > from && s < to) out.push([Math.max(s, from), Math.min(e, to)]);
  return out;
}

/**
 * The lowest offset in `ranges` where the two images differ (`b` undefined: zeros), reported
 * to `progress` as the fraction [from, from + span) of the whole.
 */
async function scan(
  a: BlockBackend,
  b: BlockBackend | undefined,
  ranges: Ranges,
  progress: Progress | undefined,
  [from, span]: [number, number],
): Promise<number | undefined> {
  let first: number | undefined;
  await forEachChunk(
    ranges,
    a.size,
    async (off, len) => {
      const ba = Buffer.allocUnsafe(len);
      const bb = b ? Buffer.allocUnsafe(len) : undefined;
      await Promise.all([a.read(off, ba), bb && b!.read(off, bb)]);
      const d = bb
        ? firstDifference(ba, bb)
        : isZero(ba)
          ? -1
          : firstDifference(ba, new Uint8Array(len));
      if (d < 0) return;
      if (first === undefined || off + d < first) first = off + d;
      return 'stop';
    },
    { progress: progress && { report: (d, t) => progress.report(from + (span * d) / t, 1) } },
  );
  return first;
}

export async function runCompare(c: CompareCommand, io: ImgIo): Promise<number> {
  const opened: BlockBackend[] = [];
  try {
    const keys = await keyOptions(c.keyFile);
    const a = await openImage(c.file, c.format, { readOnly: true, ...keys });
    opened.push(a);
    const b = await openImage(c.other, c.otherFormat, { readOnly: true, ...keys });
    opened.push(b);
    if (a.size !== b.size && c.strict) {
      io.out('Strict mode: Image size mismatch!\n');
      return 1;
    }
    const common = Math.min(a.size, b.size);
    const larger = a.size > b.size ? a : b;
    const progress = c.progress ? new Progress(io) : undefined;
    // Only where either image may hold something other than zeros is read.
    const [ra, rb] = await Promise.all([a, b].map((i) => rangesWhere(i, (e) => !e.zero)));
    const part = common / Math.max(larger.size, 1);
    let at = await scan(a, b, clip(union(ra, rb), 0, common), progress, [0, part]);
    if (at === undefined && a.size !== b.size) {
      // As qemu-img: the warning comes once the common part has matched.
      io.out('Warning: Image size mismatch!\n');
      const rest = clip(larger === a ? ra : rb, common, larger.size);
      at = await scan(larger, undefined, rest, progress, [part, 1 - part]);
    }
    progress?.finish();
    if (at !== undefined) {
      io.out(`Content mismatch at offset ${at}!\n`);
      return 1;
    }
    io.out('Images are identical.\n');
    return 0;
  } catch (e) {
    io.err(`wasmvisor: img compare: ${(e as Error).message}\n`);
    return 2;
  } finally {
    for (const img of opened) await img.close().catch(() => {});
  }
}
