/**
 * New image files for the host API: a blank raw or qcow2 disk (the UI's "New image…"), and the
 * claim both it and a live overlay (overlay.ts) make first. A file is created with O_EXCL, so an
 * existing file — a user's disk image above all — is never written over; a half-made file is
 * removed again; every error names the file.
 */
import { open, unlink } from 'node:fs/promises';
import { isAbsolute } from 'node:path';
import { BlockError } from './backend.js';
import { createQcow2, imageInfo } from './qcow2/index.js';

const CREATE_ERRORS: Record<string, string> = {
  EEXIST: 'the file exists (an existing file is never written over)',
  EACCES: 'permission denied',
  EPERM: 'permission denied',
  EROFS: 'read-only file system',
  ENOENT: 'no such directory',
  ENOTDIR: 'a part of the path is not a directory',
  EISDIR: 'is a directory',
};

/** Creates `file` empty, refusing one that exists; throws BlockError naming it. */
export async function claimNewFile(file: string, what: string): Promise<void> {
  if (!isAbsolute(file)) throw new BlockError('io', `${file}: ${what} path must be absolute`);
  try {
    const fh = await open(file, 'wx', 0o644);
    await fh.close();
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const why = (err.code && CREATE_ERRORS[err.code]) ?? err.message;
    throw new BlockError('io', `cannot create ${file}: ${why}`);
  }
}

/** Sizes a new blank image may have: from 1 MiB to 16 TiB, in whole 512-byte sectors. */
export const MIN_IMAGE_BYTES = 1 << 20;
export const MAX_IMAGE_BYTES = 16 * 2 ** 40;

/**
 * A new blank disk image at `file` (absolute): raw (a sparse file) or qcow2 (64 KiB clusters, no
 * backing file), `size` bytes as the guest will see them.
 */
export async function createBlankImage(
  file: string,
  format: 'raw' | 'qcow2',
  size: number,
): Promise<void> {
  if (!Number.isSafeInteger(size) || size < MIN_IMAGE_BYTES || size > MAX_IMAGE_BYTES) {
    throw new BlockError('io', `${file}: a new image takes 1 MiB to 16 TiB, not ${size} bytes`);
  }
  if (size % 512 !== 0)
    throw new BlockError('io', `${file}: ${size} is not whole 512-byte sectors`);
  await claimNewFile(file, "the image's");
  try {
    if (format === 'qcow2') await createQcow2(file, { size });
    else {
      const fh = await open(file, 'r+');
      try {
        await fh.truncate(size);
      } finally {
        await fh.close();
      }
    }
    // Read back as the VM will open it.
    const info = await imageInfo(file, format);
    if (info.virtualSize !== size) throw new Error(`made ${info.virtualSize} bytes, not ${size}`);
  } catch (e) {
    await unlink(file).catch(() => {});
    throw new BlockError('io', `cannot create ${file}: ${(e as Error).message}`);
  }
}
