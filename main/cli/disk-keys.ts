/**
 * `wasmvisor run` on a terminal: an encrypted disk named without key-file gets its passphrase
 * asked for, without echo, before the VM starts (as QEMU asks on its monitor). Without a
 * terminal nothing is asked and opening the disk says which key is missing.
 */
import type { DiskConfig } from '../vm/config.js';
import { imageInfo } from '../../devices/block/qcow2/index.js';
import { promptPassphrase, type PromptTerminal } from '../../devices/block/luks/key-source.js';

/** Whether the image is encrypted, from its header (unreadable: false; opening will say why). */
async function isEncrypted(d: DiskConfig): Promise<boolean> {
  if (d.format === 'luks') return true;
  if (d.format !== 'qcow2') return false;
  try {
    return (await imageInfo(d.path, 'qcow2')).encrypted === true;
  } catch {
    return false;
  }
}

/** Passphrases by disk index (null: none asked), or undefined when nothing was asked. */
export async function askDiskKeys(
  disks: readonly DiskConfig[],
  term: PromptTerminal = { input: process.stdin, output: process.stderr },
): Promise<(Uint8Array | null)[] | undefined> {
  if (!term.input.isTTY) return undefined;
  const keys: (Uint8Array | null)[] = [];
  let asked = false;
  for (const d of disks) {
    if (d.keyFile || !(await isEncrypted(d))) {
      keys.push(null);
      continue;
    }
    keys.push(await promptPassphrase(`wasmvisor: passphrase for ${d.path}: `, term));
    asked = true;
  }
  return asked ? keys : undefined;
}
