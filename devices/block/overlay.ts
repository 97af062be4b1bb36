/**
 * External snapshots (QEMU's `snapshot_blkdev` / `blockdev-snapshot-sync`): a new qcow2 file
 * whose backing file is a disk's current image, so the disk can be switched to it while the
 * guest runs — the guest then writes into the overlay and the old image stays as it was, a
 * read-only backing file. What a raw disk needs before it can take a VM snapshot.
 *
 * This module only makes the file and says what the disk becomes; swapping the open disk under
 * its device is the caller's (main/worker/controls/disk-overlay.ts).
 */
import { realpath, unlink } from 'node:fs/promises';
import type { DiskConfig } from '../../main/vm/config.js';
import { BlockError } from './backend.js';
import { claimNewFile } from './create-image.js';
import { createQcow2, imageInfo } from './qcow2/index.js';

/** Why an overlay cannot be made over a disk, or undefined (checked before any file is made). */
export function overlayRefusal(cfg: DiskConfig, encrypted: boolean): string | undefined {
  if (cfg.snapshot) {
    return `${cfg.path} is snapshot=on: its writes already go to a temporary overlay that ends with the VM`;
  }
  if (cfg.readOnly) return `${cfg.path} is read-only: there are no writes to move to an overlay`;
  // A plain overlay would hold the guest's new writes in the clear, beside an encrypted base.
  if (encrypted || cfg.format === 'luks') {
    return `${cfg.path} is encrypted (LUKS): an overlay would keep the guest's new writes unencrypted`;
  }
  return undefined;
}

/**
 * Creates `file` as a qcow2 overlay over the disk's image: backing file = the image's absolute
 * path, backing format = the format the disk was opened with (never probed), virtual size =
 * `size`. Refuses a `file` that exists (it is never overwritten: the name is claimed with
 * O_EXCL) and names the file in every error; a half-made file is removed again. Returns the
 * DiskConfig of the overlay: the disk's own settings, on the new file.
 */
export async function createOverlay(
  cfg: DiskConfig,
  file: string,
  size: number,
): Promise<DiskConfig> {
  let base: string;
  try {
    base = await realpath(cfg.path);
  } catch {
    throw new BlockError('io', `disk image ${cfg.path}: no such file`);
  }
  await claimNewFile(file, "the overlay's");
  try {
    await createQcow2(file, { backingFile: base, backingFormat: cfg.format, size });
    // Read back as any later opening will: the header must name the base, at the disk's size.
    const info = await imageInfo(file, 'qcow2');
    if (info.virtualSize !== size) {
      throw new Error(`made ${info.virtualSize} bytes, not ${size}`);
    }
  } catch (e) {
    await unlink(file).catch(() => {});
    throw new BlockError('io', `cannot create ${file}: ${(e as Error).message}`);
  }
  const next: DiskConfig = { ...cfg, path: file, format: 'qcow2' };
  delete next.keyFile;
  return next;
}
