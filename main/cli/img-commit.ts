/**
 * `wasmvisor img commit [-f FMT] [-d] [-p] [-q] FILE`: writes what the overlay FILE holds itself
 * (its data and zero clusters, not what shows through from below) into its backing file, then
 * empties the overlay so that it reads the same through the updated backing file (qemu-img's
 * default; -d keeps the overlay's clusters).
 */
import { parseArgs } from 'node:util';
import { BlockError } from '../../devices/block/backend.js';
import { blockStatus } from '../../devices/block/qcow2/block-status.js';
import {
  imageInfo,
  openImage,
  Qcow2Image,
  type ImageFormat,
} from '../../devices/block/qcow2/index.js';
import { imageFormat, type ImgIo } from './img.js';
import { forEachChunk, rangesWhere } from './img-chunks.js';
import { Progress } from './img-progress.js';

export interface CommitCommand {
  op: 'commit';
  file: string;
  format?: ImageFormat;
  keep: boolean;
  progress: boolean;
  quiet: boolean;
}

export const COMMIT_USAGE = `  img commit [-p] [-q] [-d] [-f FMT] FILE
                      write the overlay FILE into its backing file, then empty it (-d: keep it)
`;

export function parseCommitArgs(args: string[]): CommitCommand {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      format: { type: 'string', short: 'f' },
      keep: { type: 'boolean', short: 'd', default: false },
      progress: { type: 'boolean', short: 'p', default: false },
      quiet: { type: 'boolean', short: 'q', default: false },
    },
  });
  if (positionals.length !== 1) throw new Error('img commit: give exactly one FILE');
  return {
    op: 'commit',
    file: positionals[0]!,
    format: imageFormat(values.format, 'img commit -f'),
    keep: values.keep ?? false,
    progress: values.progress ?? false,
    quiet: values.quiet ?? false,
  };
}

export async function runCommit(c: CommitCommand, io: ImgIo): Promise<number> {
  const info = await imageInfo(c.file, c.format);
  if (info.format !== 'qcow2' || info.fullBackingFilename === undefined) {
    throw new BlockError('unsupported', `${c.file} has no backing file to commit into`);
  }
  const baseFormat = info.backingFormat as ImageFormat | undefined;
  // Unlocked (QEMU's commit shares the chain the same way): the base is about to be opened
  // for writing, which its own read lock as the overlay's backing file would refuse. A VM still
  // running on the overlay holds the base too, so the base's write lock keeps it safe.
  const overlay = await openImage(c.file, 'qcow2', { readOnly: true, lock: false });
  try {
    const base = await openImage(info.fullBackingFilename, baseFormat, {});
    try {
      if (base.size < overlay.size) {
        throw new BlockError(
          'unsupported',
          `${c.file}: the backing file ${info.backingFilename} is smaller than the overlay ` +
            `(${base.size} < ${overlay.size} bytes): resize it first`,
        );
      }
      const progress = c.progress ? new Progress(io) : undefined;
      // Only this layer's own clusters: the backing file is not consulted (it is being written).
      const own = await rangesWhere(overlay, (e) => e.present, false);
      await forEachChunk(
        own,
        overlay.size,
        async (off, len) => {
          for (const e of await blockStatus(overlay, off, len, { descend: false })) {
            if (!e.present) continue;
            if (e.zero) await base.writeZeroes(e.start, e.length, false);
            else {
              const buf = Buffer.allocUnsafe(e.length);
              await overlay.read(e.start, buf);
              await base.write(e.start, buf);
            }
          }
        },
        { progress },
      );
      await base.flush();
      progress?.finish();
    } finally {
      await base.close();
    }
  } finally {
    await overlay.close();
  }
  if (!c.keep) {
    const top = await openImage(c.file, 'qcow2', {});
    try {
      if (!(top instanceof Qcow2Image) || top.readOnly) {
        throw new BlockError(
          'read-only',
          `${c.file}: committed, but cannot be emptied (read-only)`,
        );
      }
      await top.deallocate(0, top.size);
    } finally {
      await top.close();
    }
  }
  if (!c.quiet) io.out('Image committed.\n');
  return 0;
}
