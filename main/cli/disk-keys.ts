/**
 * `wasmvisor run` on a terminal: an encrypted disk named without key-file gets its passphrase
 * asked for, without echo, before the VM starts (as QEMU asks on its monitor). Without a
 * terminal nothing is asked and opening the disk says which key is missing.
 */
import type { DiskConfig } from '../vm/config.js';
import { disksNeedingKeys } from '../vm/disk-encryption.js';
import { promptPassphrase, type PromptTerminal } from '../../devices/block/luks/key-source.js';

/** Passphrases by disk index (null: none asked), or undefined when nothing was asked. */
export async function askDiskKeys(
  disks: readonly DiskConfig[],
  term: PromptTerminal = { input: process.stdin, output: process.stderr },
): Promise<(Uint8Array | null)[] | undefined> {
  if (!term.input.isTTY) return undefined;
  const needed = await disksNeedingKeys(disks);
  if (!needed.length) return undefined;
  const keys: (Uint8Array | null)[] = disks.map(() => null);
  for (const i of needed) {
    keys[i] = await promptPassphrase(`wasmvisor: passphrase for ${disks[i]!.path}: `, term);
  }
  return keys;
}
