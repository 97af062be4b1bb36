/**
 * `wasmvisor img rebase [-f FMT] [-u] [-p] -b NEWBASE [-F FMT] FILE`: moves the overlay FILE onto
 * another backing file (`-b ""`: onto none). The safe mode keeps what the guest reads: every
 * cluster the overlay does not hold itself, and where the old and new backing files differ, is
 * copied from the old chain into the overlay before the header is changed. `-u` only changes
 * the header (for when the new base is known to hold the same data, e.g. a moved file).
 */
import { parseArgs } from 'node:util';
import { BlockError, type BlockBackend } from '../../devices/block/backend.js';
import { blockStatus } from '../../devices/block/qcow2/block-status.js';
import {
  imageInfo,
  openImage,
  Qcow2Image,
  resolveBacking,
  type ImageFormat,
} from '../../devices/block/qcow2/index.js';
import { setBackingFile } from '../../devices/block/qcow2/set-backing.js';
import { imageFormat, type ImgIo } from './img.js';
import { forEachChunk, rangesWhere } from './img-chunks.js';
import { isZero } from '../../devices/zero-bytes.js';
import { Progress } from './img-progress.js';

export interface RebaseCommand {
  op: 'rebase';
  file: string;
  format?: ImageFormat;
  /** '' = no backing file. */
  backingFile: string;
  backingFormat?: ImageFormat;
  unsafe: boolean;
  progress: boolean;
}

export const REBASE_USAGE = `  img rebase [-p] [-u] [-f FMT] -b NEWBASE [-F FMT] FILE
                      put the overlay FILE on another backing file, keeping its contents (-u: header only)
`;

export function parseRebaseArgs(args: string[]): RebaseCommand {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      format: { type: 'string', short: 'f' },
      backing: { type: 'string', short: 'b' },
      'backing-format': { type: 'string', short: 'F' },
      unsafe: { type: 'boolean', short: 'u', default: false },
      progress: { type: 'boolean', short: 'p', default: false },
    },
  });
  if (positionals.length !== 1) throw new Error('img rebase: give exactly one FILE');
  if (values.backing === undefined) throw new Error('img rebase: give the new backing file (-b)');
  const backingFormat = imageFormat(values['backing-format'], 'img rebase -F');
  if (values.backing !== '' && !backingFormat) {
    throw new Error('img rebase: a backing file needs its format (-F raw|qcow2)');
  }
  return {
    op: 'rebase',
    file: positionals[0]!,
    format: imageFormat(values.format, 'img rebase -f'),
    backingFile: values.backing,
    backingFormat,
    unsafe: values.unsafe ?? false,
    progress: values.progress ?? false,
  };
}

/** Copies into `overlay` the clusters it does not hold where its old chain and `base` differ. */
async function copyDifferences(
  overlay: Qcow2Image,
  base: BlockBackend | undefined,
  progress: Progress | undefined,
): Promise<void> {
  const cs = overlay.clusterSize;
  const notHeld = await rangesWhere(overlay, (e) => !e.present, false);
  await forEachChunk(
    notHeld,
    overlay.size,
    async (off, len) => {
      for (const e of await blockStatus(overlay, off, len, { descend: false })) {
        if (e.present) continue;
        const old = new Uint8Array(e.length);
        const now = new Uint8Array(e.length);
        const inBase = base ? Math.max(0, Math.min(e.length, base.size - e.start)) : 0;
        await Promise.all([
          overlay.read(e.start, old),
          inBase > 0 && base!.read(e.start, now.subarray(0, inBase)),
        ]);
        for (let p = 0; p < e.length; p += cs) {
          const a = old.subarray(p, p + cs);
          if (Buffer.compare(a, now.subarray(p, p + cs)) === 0) continue;
          if (isZero(a)) await overlay.writeZeroes(e.start + p, a.length, false);
          else await overlay.write(e.start + p, a);
        }
      }
    },
    { progress, align: cs },
  );
}

export async function runRebase(c: RebaseCommand, io: ImgIo): Promise<number> {
  const info = await imageInfo(c.file, c.format);
  if (info.format !== 'qcow2') {
    throw new BlockError('unsupported', `${c.file}: only qcow2 images have a backing file`);
  }
  const newName = c.backingFile === '' ? undefined : c.backingFile;
  if (!c.unsafe) {
    const overlay = await openImage(c.file, 'qcow2', {});
    let base: BlockBackend | undefined;
    try {
      if (!(overlay instanceof Qcow2Image) || overlay.readOnly)
        throw new BlockError('read-only', `${c.file} is read-only`);
      if (newName)
        base = await openImage(resolveBacking(c.file, newName), c.backingFormat, {
          readOnly: true,
        });
      const progress = c.progress ? new Progress(io) : undefined;
      await copyDifferences(overlay, base, progress);
      await overlay.flush();
      progress?.finish();
    } finally {
      await base?.close();
      await overlay.close();
    }
  }
  await setBackingFile(c.file, newName, newName ? c.backingFormat : undefined);
  return 0;
}
