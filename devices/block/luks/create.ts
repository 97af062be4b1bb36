/**
 * New LUKS volumes: the header region (header, slot 0's material, room for the other seven) as
 * bytes for a qcow2's encryption clusters, and raw LUKS images (`img create -f luks`): that
 * region followed by the payload, sparse, every payload sector reading as noise until written.
 */
import { open } from 'node:fs/promises';
import { BlockError } from '../backend.js';
import { LUKS_SECTOR, serializeLuksHeader } from './header.js';
import { createLuksVolume, type LuksCreateOptions } from './keyslots.js';

export interface LuksEncryptOptions extends LuksCreateOptions {
  passphrase: Uint8Array;
}

/** The header region of a new volume: payloadOffset sectors, header and slot 0 filled in. */
export async function newLuksRegion(o: LuksEncryptOptions): Promise<Uint8Array> {
  const v = await createLuksVolume(o.passphrase, o);
  const region = new Uint8Array(v.header.payloadOffset * LUKS_SECTOR);
  region.set(serializeLuksHeader(v.header), 0);
  region.set(v.slotMaterial, v.header.slots[0].keyOffset * LUKS_SECTOR);
  return region;
}

/** Creates a raw LUKS image of `size` guest bytes (rounded up to 512) at `path`. */
export async function createLuks(path: string, size: number, o: LuksEncryptOptions): Promise<void> {
  if (!Number.isSafeInteger(size) || size < 0 || size > 2 ** 50) {
    throw new BlockError('unsupported', `creating ${path}: bad size ${size}`);
  }
  const region = await newLuksRegion(o);
  const fh = await open(path, 'w');
  try {
    await fh.write(region, 0, region.length, 0);
    await fh.truncate(region.length + Math.ceil(size / LUKS_SECTOR) * LUKS_SECTOR);
    await fh.datasync();
  } finally {
    await fh.close();
  }
}
