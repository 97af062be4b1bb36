/**
 * LUKS1 key slots: a passphrase opens a slot when PBKDF2(passphrase, slot salt) decrypts the
 * slot's anti-forensic material into a master key whose PBKDF2 digest matches the header's.
 * Creating lays the header and slots out as QEMU does (slot material 4 KiB aligned from 4 KiB
 * on, all eight slots' room reserved, slot 0 active and the rest disabled), with iteration
 * counts from a benchmark of this host, like QEMU's `iter-time`.
 */
import { pbkdf2, pbkdf2Sync, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';
import { afMerge, afSplit } from './af-split.js';
import {
  DIGEST_BYTES,
  LUKS_SECTOR,
  LUKS_SLOTS,
  LUKS_STRIPES,
  MASTER_KEY_BYTES,
  MAX_ITERATIONS,
  SALT_BYTES,
  materialBytes,
  type LuksHash,
  type LuksHeader,
} from './header.js';
import { XtsPlain64 } from './xts-cipher.js';

const pbkdf2Async = promisify(pbkdf2);

/** Reads `length` bytes at `offset` from the header's start (sector-aligned both). */
export type RegionReader = (offset: number, length: number) => Promise<Uint8Array>;

/** What unlocking found: the slot that opened, and the master key (undefined: none opened). */
export interface Unlocked {
  slot: number;
  masterKey: Uint8Array;
}

async function digestMatches(h: LuksHeader, key: Uint8Array): Promise<boolean> {
  const d = await pbkdf2Async(key, h.mkDigestSalt, h.mkDigestIterations, DIGEST_BYTES, h.hash);
  return timingSafeEqual(d, h.mkDigest);
}

/**
 * Tries every active slot with `passphrase`; undefined when none opens. The header must come
 * from parseLuksHeader (iterations and material bounds are checked there).
 */
export async function unlockMasterKey(
  h: LuksHeader,
  read: RegionReader,
  passphrase: Uint8Array,
): Promise<Unlocked | undefined> {
  for (let i = 0; i < h.slots.length; i++) {
    const s = h.slots[i];
    if (!s.active) continue;
    const derived = await pbkdf2Async(passphrase, s.salt, s.iterations, h.keyBytes, h.hash);
    const material = await read(s.keyOffset * LUKS_SECTOR, materialBytes(h.keyBytes, s.stripes));
    new XtsPlain64(derived).decrypt(0, [material]);
    const key = afMerge(material, h.keyBytes, s.stripes, h.hash);
    if (await digestMatches(h, key)) return { slot: i, masterKey: key };
  }
  return undefined;
}

export interface LuksCreateOptions {
  /** Milliseconds of PBKDF2 per unlock (QEMU's iter-time; default 2000, as QEMU). */
  iterTimeMs?: number;
  hash?: LuksHash;
}

/** QEMU's floors (QCRYPTO_BLOCK_LUKS_MIN_*_ITERS): never fewer, however short iter-time is. */
const MIN_ITERATIONS = 1000;
export const DEFAULT_ITER_TIME_MS = 2000;

/** PBKDF2 iterations this host runs in `ms` milliseconds for an output of `outBytes`. */
function iterationsFor(ms: number, outBytes: number, hash: LuksHash): number {
  const probe = 1 << 15;
  const t0 = process.hrtime.bigint();
  pbkdf2Sync('benchmark', 'salt', probe, outBytes, hash);
  const ns = Number(process.hrtime.bigint() - t0);
  const n = Math.floor((probe * ms * 1e6) / Math.max(ns, 1));
  return Math.min(MAX_ITERATIONS, Math.max(MIN_ITERATIONS, n));
}

export interface NewLuksVolume {
  header: LuksHeader;
  /** The active slot's encrypted material, to be written at slot 0's key offset. */
  slotMaterial: Uint8Array;
  masterKey: Uint8Array;
}

/** A new header for `passphrase`: QEMU's layout, slot 0 active. payloadOffset ends the slots. */
export async function createLuksVolume(
  passphrase: Uint8Array,
  o: LuksCreateOptions = {},
): Promise<NewLuksVolume> {
  const hash = o.hash ?? 'sha256';
  const ms = o.iterTimeMs ?? DEFAULT_ITER_TIME_MS;
  if (!(ms > 0) || ms > 60_000) throw new RangeError(`iter-time ${ms} ms is outside 1..60000`);
  const masterKey = randomBytes(MASTER_KEY_BYTES);
  const align = 4096 / LUKS_SECTOR;
  const slotSectors = Math.ceil(materialBytes(MASTER_KEY_BYTES, LUKS_STRIPES) / 4096) * align;
  // The master key digest is checked once per slot tried: QEMU (and cryptsetup) give it 1/8.
  const mkIterations = Math.max(
    MIN_ITERATIONS,
    Math.floor(iterationsFor(ms, DIGEST_BYTES, hash) / 8),
  );
  const slotIterations = iterationsFor(ms, MASTER_KEY_BYTES, hash);
  const mkDigestSalt = randomBytes(SALT_BYTES);
  const mkDigest = await pbkdf2Async(masterKey, mkDigestSalt, mkIterations, DIGEST_BYTES, hash);
  const salt = randomBytes(SALT_BYTES);
  const derived = await pbkdf2Async(passphrase, salt, slotIterations, MASTER_KEY_BYTES, hash);
  const split = afSplit(masterKey, LUKS_STRIPES, hash);
  const slotMaterial = new XtsPlain64(derived).encrypt(0, [padTo(split, LUKS_SECTOR)]);
  const header: LuksHeader = {
    cipherName: 'aes',
    cipherMode: 'xts-plain64',
    hash,
    payloadOffset: align + LUKS_SLOTS * slotSectors,
    keyBytes: MASTER_KEY_BYTES,
    mkDigest,
    mkDigestSalt,
    mkDigestIterations: mkIterations,
    uuid: randomUUID(),
    slots: Array.from({ length: LUKS_SLOTS }, (_, i) => ({
      active: i === 0,
      iterations: i === 0 ? slotIterations : 0,
      salt: i === 0 ? salt : new Uint8Array(SALT_BYTES),
      keyOffset: align + i * slotSectors,
      stripes: LUKS_STRIPES,
    })),
  };
  return { header, slotMaterial, masterKey };
}

function padTo(b: Uint8Array, unit: number): Uint8Array {
  if (b.length % unit === 0) return b;
  const out = new Uint8Array(Math.ceil(b.length / unit) * unit);
  out.set(b);
  return out;
}
