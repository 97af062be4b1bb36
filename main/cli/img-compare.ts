/**
 * `wasmvisor img compare [-f FMT] [-F FMT] [-s] [-p] A B`: whether two images read the same, as
 * qemu-img says it — exit 0 "Images are identical.", 1 "Content mismatch at offset N!" (the first
 * differing 512-byte sector), 2 when an image cannot be read. Without -s, images of different
 * sizes are equal when the larger one's extra part reads as zeros; with -s they differ.
 */
import { parseArgs } from 'node:util';
import type { BlockBackend } from '../../devices/block/backend.js';
import { blockStatus } from '../../devices/block/qcow2/block-status.js';
import { openImage, Qcow2Image, type ImageFormat } from '../../devices/block/qcow2/index.js';
import { imageFormat, type ImgIo } from './img.js';
import { forEachChunk, isZero } from './img-chunks.js';
import { Progress } from './img-progress.js';

export interface CompareCommand {
  op: 'compare';
  file: string;
  format?: ImageFormat;
  other: string;
  otherFormat?: ImageFormat;
  strict: boolean;
  progress: boolean;
}

export const COMPARE_USAGE = `  img compare [-p] [-s] [-f FMT] [-F FMT] A B
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
  };
}

/** Whether [off, off+len) of `img` surely reads as zeros without reading it. */
async function knownZero(img: BlockBackend, off: number, len: number): Promise<boolean> {
  if (!(img instanceof Qcow2Image)) return false;
  return (await blockStatus(img, off, len)).every((e) => e.zero);
}

/** The first 512-byte sector at which `a` and `b` differ (as an offset into them), or -1. */
function firstDifference(a: Uint8Array, b: Uint8Array): number {
  if (Buffer.compare(a, b) === 0) return -1;
  for (let p = 0; ; p += 512) {
    if (Buffer.compare(a.subarray(p, p + 512), b.subarray(p, p + 512)) !== 0) return p;
  }
}

/** The lowest offset of [from, to) where the two images differ (`b` may be undefined: zeros). */
async function scan(
  a: BlockBackend,
  b: BlockBackend | undefined,
  from: number,
  to: number,
  progress: Progress | undefined,
  done: number,
): Promise<number | undefined> {
  let first: number | undefined;
  await forEachChunk(
    to - from,
    async (rel, len) => {
      const off = from + rel;
      if ((await knownZero(a, off, len)) && (!b || (await knownZero(b, off, len)))) return;
      const ba = new Uint8Array(len);
      const bb = b ? new Uint8Array(len) : undefined;
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
    { progress: progress && { report: (n: number) => progress.report(done + n) } },
  );
  return first;
}

export async function runCompare(c: CompareCommand, io: ImgIo): Promise<number> {
  const opened: BlockBackend[] = [];
  try {
    const a = await openImage(c.file, c.format, { readOnly: true });
    opened.push(a);
    const b = await openImage(c.other, c.otherFormat, { readOnly: true });
    opened.push(b);
    if (a.size !== b.size && c.strict) {
      io.out('Strict mode: Image size mismatch!\n');
      return 1;
    }
    const common = Math.min(a.size, b.size);
    const larger = a.size > b.size ? a : b;
    const progress = c.progress ? new Progress(io, larger.size) : undefined;
    let at = await scan(a, b, 0, common, progress, 0);
    if (at === undefined && a.size !== b.size) {
      // As qemu-img: the warning comes once the common part has matched.
      io.out('Warning: Image size mismatch!\n');
      at = await scan(larger, undefined, common, larger.size, progress, common);
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
