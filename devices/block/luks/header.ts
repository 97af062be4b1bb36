/**
 * The LUKS1 partition header (the "phdr", 592 bytes, big-endian): cipher and hash names, the
 * payload's offset, the master key's size and digest, and eight key slots. Parsing checks what
 * a hostile file could use to waste the host's time or memory — iteration counts, stripes, key
 * sizes, key material outside the region the header owns — before any key is derived, and
 * refuses ciphers we do not implement with a message that names them.
 *
 * Offsets in the header are in 512-byte sectors, relative to the header's own start (the file's
 * start for a raw LUKS image; the clusters the qcow2 header extension names inside a qcow2).
 */
export const LUKS_SECTOR = 512;
export const PHDR_BYTES = 592;
export const LUKS_SLOTS = 8;
/** LUKS1's anti-forensic stripe count; QEMU refuses any other value, so do we. */
export const LUKS_STRIPES = 4000;
export const SLOT_ACTIVE = 0x00ac71f3;
export const SLOT_DISABLED = 0x0000dead;
export const DIGEST_BYTES = 20;
export const SALT_BYTES = 32;
/** AES-256-XTS: two 256-bit keys. */
export const MASTER_KEY_BYTES = 64;
/**
 * PBKDF2 iterations above this are refused before anything is derived: QEMU's 2 s benchmark
 * writes a few million on today's hosts; 2^25 takes about 10 s of one core here.
 */
export const MAX_ITERATIONS = 2 ** 25;
/**
 * And the work a wrong key can cost — every active slot, plus the master key digest once per
 * slot — is bounded too, so eight hostile slots cannot make a failed open take minutes.
 */
export const MAX_TOTAL_ITERATIONS = 2 ** 27;

const MAGIC = [0x4c, 0x55, 0x4b, 0x53, 0xba, 0xbe]; // "LUKS\xba\xbe"

/** Hashes LUKS names that node:crypto computes (PBKDF2 and the AF diffuser). */
export const LUKS_HASHES = ['sha1', 'sha256', 'sha512'] as const;
export type LuksHash = (typeof LUKS_HASHES)[number];

export interface LuksSlot {
  active: boolean;
  iterations: number;
  salt: Uint8Array;
  /** Start of the slot's key material, in sectors from the header's start. */
  keyOffset: number;
  stripes: number;
}

export interface LuksHeader {
  cipherName: string;
  cipherMode: string;
  hash: LuksHash;
  /** Start of the encrypted data, in sectors from the header's start. */
  payloadOffset: number;
  keyBytes: number;
  mkDigest: Uint8Array;
  mkDigestSalt: Uint8Array;
  mkDigestIterations: number;
  uuid: string;
  slots: LuksSlot[];
}

/** A malformed or unsupported LUKS header: the message says what (the caller names the file). */
export class LuksFormatError extends Error {}

const bad = (msg: string): never => {
  throw new LuksFormatError(msg);
};

/** Bytes of one slot's anti-forensic key material, rounded up to whole sectors. */
export function materialBytes(keyBytes: number, stripes: number): number {
  return Math.ceil((keyBytes * stripes) / LUKS_SECTOR) * LUKS_SECTOR;
}

function cString(b: Uint8Array, what: string): string {
  const nul = b.indexOf(0);
  if (nul < 0) bad(`${what} is not NUL-terminated`);
  const s = new TextDecoder().decode(b.subarray(0, nul));
  if (!/^[\x20-\x7e]*$/.test(s)) bad(`${what} is not printable text`);
  return s;
}

function checkIterations(n: number, what: string): void {
  if (n === 0) bad(`${what}: 0 PBKDF2 iterations`);
  if (n > MAX_ITERATIONS) bad(`${what}: ${n} PBKDF2 iterations (more than ${MAX_ITERATIONS})`);
}

/**
 * Parses and checks the header at the start of `b`. `regionBytes` is how many bytes the header
 * owns (the file's size for a raw image, the extension's length inside a qcow2): every slot's
 * key material must lie inside it, after the header, and clear of the other slots.
 */
export function parseLuksHeader(b: Uint8Array, regionBytes: number): LuksHeader {
  if (b.length < PHDR_BYTES) bad('too short to hold a LUKS header');
  if (MAGIC.some((m, i) => b[i] !== m)) bad('not a LUKS image (bad magic)');
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const version = dv.getUint16(6);
  if (version !== 1) bad(`LUKS version ${version} is not supported (LUKS1 only)`);
  const cipherName = cString(b.subarray(8, 40), 'cipher name');
  const cipherMode = cString(b.subarray(40, 72), 'cipher mode');
  const hashName = cString(b.subarray(72, 104), 'hash name');
  if (cipherName !== 'aes' || cipherMode !== 'xts-plain64') {
    bad(`cipher ${cipherName}-${cipherMode} is not supported (aes-xts-plain64 only)`);
  }
  if (!(LUKS_HASHES as readonly string[]).includes(hashName)) {
    bad(`hash ${hashName} is not supported (${LUKS_HASHES.join(', ')})`);
  }
  const keyBytes = dv.getUint32(108);
  if (keyBytes !== MASTER_KEY_BYTES) {
    bad(`a ${keyBytes}-byte master key is not supported (AES-256-XTS: ${MASTER_KEY_BYTES} bytes)`);
  }
  const h: LuksHeader = {
    cipherName,
    cipherMode,
    hash: hashName as LuksHash,
    payloadOffset: dv.getUint32(104),
    keyBytes,
    mkDigest: b.slice(112, 132),
    mkDigestSalt: b.slice(132, 164),
    mkDigestIterations: dv.getUint32(164),
    uuid: cString(b.subarray(168, 208), 'UUID'),
    slots: [],
  };
  checkIterations(h.mkDigestIterations, 'master key digest');
  const used: [number, number][] = [[0, PHDR_BYTES]];
  for (let i = 0; i < LUKS_SLOTS; i++) {
    const at = 208 + i * 48;
    const state = dv.getUint32(at);
    const slot: LuksSlot = {
      active: state === SLOT_ACTIVE,
      iterations: dv.getUint32(at + 4),
      salt: b.slice(at + 8, at + 40),
      keyOffset: dv.getUint32(at + 40),
      stripes: dv.getUint32(at + 44),
    };
    if (state !== SLOT_ACTIVE && state !== SLOT_DISABLED) {
      bad(`key slot ${i} has an invalid state 0x${state.toString(16)}`);
    }
    h.slots.push(slot);
    if (!slot.active) continue;
    checkIterations(slot.iterations, `key slot ${i}`);
    if (slot.stripes !== LUKS_STRIPES) {
      bad(`key slot ${i} has ${slot.stripes} stripes (LUKS1 uses ${LUKS_STRIPES})`);
    }
    const start = slot.keyOffset * LUKS_SECTOR;
    const end = start + materialBytes(keyBytes, slot.stripes);
    if (end > regionBytes) bad(`key slot ${i}'s key material ends past the header's region`);
    for (const [s, e] of used) {
      if (start < e && s < end) bad(`key slot ${i}'s key material overlaps the header or a slot`);
    }
    used.push([start, end]);
  }
  const active = h.slots.filter((s) => s.active);
  const work = active.reduce((n, s) => n + s.iterations + h.mkDigestIterations, 0);
  if (work > MAX_TOTAL_ITERATIONS) {
    bad(
      `its ${active.length} key slots need ${work} PBKDF2 iterations in all (more than ${MAX_TOTAL_ITERATIONS})`,
    );
  }
  return h;
}

function putString(b: Uint8Array, at: number, len: number, s: string): void {
  const enc = new TextEncoder().encode(s);
  if (enc.length >= len) throw new LuksFormatError(`"${s}" does not fit in ${len} bytes`);
  b.set(enc, at);
}

/** The 592-byte header as LUKS1 lays it out. */
export function serializeLuksHeader(h: LuksHeader): Uint8Array {
  const b = new Uint8Array(PHDR_BYTES);
  const dv = new DataView(b.buffer);
  b.set(MAGIC, 0);
  dv.setUint16(6, 1);
  putString(b, 8, 32, h.cipherName);
  putString(b, 40, 32, h.cipherMode);
  putString(b, 72, 32, h.hash);
  dv.setUint32(104, h.payloadOffset);
  dv.setUint32(108, h.keyBytes);
  b.set(h.mkDigest, 112);
  b.set(h.mkDigestSalt, 132);
  dv.setUint32(164, h.mkDigestIterations);
  putString(b, 168, 40, h.uuid);
  h.slots.forEach((s, i) => {
    const at = 208 + i * 48;
    dv.setUint32(at, s.active ? SLOT_ACTIVE : SLOT_DISABLED);
    dv.setUint32(at + 4, s.iterations);
    b.set(s.salt, at + 8);
    dv.setUint32(at + 40, s.keyOffset);
    dv.setUint32(at + 44, s.stripes);
  });
  return b;
}

/** Whether `b` starts with the LUKS magic (the format probe). */
export function isLuksMagic(b: Uint8Array): boolean {
  return b.length >= MAGIC.length && MAGIC.every((m, i) => b[i] === m);
}
