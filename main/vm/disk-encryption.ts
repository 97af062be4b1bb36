/**
 * Which disks of a VM are encrypted and have no key file, so that their passphrases must be
 * asked for before the VM starts: by `wasmvisor run` at the terminal (main/cli/disk-keys.ts) and
 * by the UI in a dialog (HostApi.diskKeysNeeded). Only the image's header is read; no key is
 * needed for that.
 */
import type { DiskConfig } from './config.js';
import { imageInfo } from '../../devices/block/qcow2/index.js';

/** Whether the image is encrypted, from its header (unreadable: false; opening will say why). */
export async function isEncrypted(d: DiskConfig): Promise<boolean> {
  if (d.format === 'luks') return true;
  if (d.format !== 'qcow2') return false;
  try {
    return (await imageInfo(d.path, 'qcow2')).encrypted === true;
  } catch {
    return false;
  }
}

/** Indices of the disks that are encrypted and name no key file. */
export async function disksNeedingKeys(disks: readonly DiskConfig[]): Promise<number[]> {
  const out: number[] = [];
  for (const [i, d] of disks.entries()) {
    if (!d.keyFile && (await isEncrypted(d))) out.push(i);
  }
  return out;
}

/** The longest passphrase accepted from a prompt or the UI (LUKS itself has no limit). */
export const MAX_PASSPHRASE_BYTES = 4096;
