/**
 * The saved-VM file's container: a header, then named sections, each with its own version,
 * length and CRC-32, so that a reader can say which part of a file is wrong. The file is user
 * data and untrusted: every length is checked against what is left before anything is read, and
 * every problem is a StateFileError whose message names the file and the problem.
 *
 *   header (32 bytes, little-endian)
 *     0  "WVMSTATE"          magic
 *     8  u32 format version  FORMAT_VERSION
 *    12  u32 sections        how many follow
 *    16  u64 file length     the whole file, header included
 *    24  u32 header CRC-32   of bytes 0..23
 *    28  u32 0               reserved
 *   section (repeated)
 *     u32 name length (1..64), name (ASCII), u32 section version, u64 payload length,
 *     u32 payload CRC-32, payload
 */
import { crc32 } from 'node:zlib';

export const MAGIC = 'WVMSTATE';
export const FORMAT_VERSION = 1;
const HEADER_BYTES = 32;
const MAX_NAME = 64;

/** A saved-VM file that cannot be used; the message names the file and says why. */
export class StateFileError extends Error {}

export interface Section {
  name: string;
  version: number;
  data: Uint8Array;
}

/** Lays the sections out as one file image. */
export function encodeStateFile(sections: readonly Section[]): Uint8Array {
  const names = sections.map((s) => Buffer.from(s.name, 'ascii'));
  for (const [i, n] of names.entries()) {
    if (n.length < 1 || n.length > MAX_NAME)
      throw new Error(`bad section name ${sections[i].name}`);
  }
  const total =
    HEADER_BYTES + sections.reduce((t, s, i) => t + 4 + names[i].length + 16 + s.data.length, 0);
  const out = new Uint8Array(total);
  const v = new DataView(out.buffer);
  out.set(Buffer.from(MAGIC, 'ascii'), 0);
  v.setUint32(8, FORMAT_VERSION, true);
  v.setUint32(12, sections.length, true);
  v.setBigUint64(16, BigInt(total), true);
  v.setUint32(24, crc32(out.subarray(0, 24)), true);
  let o = HEADER_BYTES;
  sections.forEach((s, i) => {
    v.setUint32(o, names[i].length, true);
    out.set(names[i], o + 4);
    o += 4 + names[i].length;
    v.setUint32(o, s.version, true);
    v.setBigUint64(o + 4, BigInt(s.data.length), true);
    v.setUint32(o + 12, crc32(s.data), true);
    out.set(s.data, o + 16);
    o += 16 + s.data.length;
  });
  return out;
}

/**
 * Splits a file image into its sections, checking magic, version, lengths and CRCs. `file` is
 * the name the messages use. The sections' data are views of `bytes`.
 */
export function decodeStateFile(bytes: Uint8Array, file: string): Section[] {
  const fail = (why: string): never => {
    throw new StateFileError(`${file}: ${why}`);
  };
  if (bytes.length < HEADER_BYTES) {
    if (bytes.length >= 8 && Buffer.from(bytes.subarray(0, 8)).toString('latin1') !== MAGIC) {
      fail('not a wasmvisor saved-VM file (wrong magic)');
    }
    fail(`truncated: ${bytes.length} bytes, shorter than the header`);
  }
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (Buffer.from(bytes.subarray(0, 8)).toString('latin1') !== MAGIC) {
    fail('not a wasmvisor saved-VM file (wrong magic)');
  }
  if (v.getUint32(24, true) !== crc32(bytes.subarray(0, 24)))
    fail('corrupted header (CRC mismatch)');
  const version = v.getUint32(8, true);
  if (version !== FORMAT_VERSION) {
    fail(`format version ${version}; this wasmvisor reads version ${FORMAT_VERSION}`);
  }
  const count = v.getUint32(12, true);
  const declared = v.getBigUint64(16, true);
  if (declared !== BigInt(bytes.length)) {
    fail(
      BigInt(bytes.length) < declared
        ? `truncated: ${bytes.length} of ${declared} bytes`
        : `${BigInt(bytes.length) - declared} bytes of garbage after the end`,
    );
  }
  const sections: Section[] = [];
  let o = HEADER_BYTES;
  for (let i = 0; i < count; i++) {
    const where = `section ${i + 1} of ${count}`;
    if (bytes.length - o < 4) fail(`${where}: truncated header`);
    const nameLen = v.getUint32(o, true);
    if (nameLen < 1 || nameLen > MAX_NAME) fail(`${where}: bad name length ${nameLen}`);
    if (bytes.length - o < 4 + nameLen + 16) fail(`${where}: truncated header`);
    const name = Buffer.from(bytes.subarray(o + 4, o + 4 + nameLen)).toString('latin1');
    if (!/^[\x21-\x7e]+$/.test(name)) fail(`${where}: bad name`);
    o += 4 + nameLen;
    const sVersion = v.getUint32(o, true);
    const len = v.getBigUint64(o + 4, true);
    const crc = v.getUint32(o + 12, true);
    o += 16;
    if (len > BigInt(bytes.length - o)) {
      fail(`section "${name}": length ${len} runs past the end of the file`);
    }
    const data = bytes.subarray(o, o + Number(len));
    if (crc32(data) !== crc) fail(`section "${name}": corrupted (CRC mismatch)`);
    if (sections.some((s) => s.name === name)) fail(`section "${name}" appears twice`);
    sections.push({ name, version: sVersion, data });
    o += data.length;
  }
  if (o !== bytes.length) fail(`${bytes.length - o} bytes after the last section`);
  return sections;
}

/**
 * The file's first section only, from the file's first bytes (`head`: at least the header and
 * that section) and its length: what a listing needs, without reading the RAM after it. The
 * same checks as decodeStateFile for what it reads (magic, version, header CRC, the declared
 * length, the section's bounds and CRC); `undefined` when `head` is too short for the section.
 */
export function decodeFirstSection(
  head: Uint8Array,
  fileLength: number,
  file: string,
): Section | undefined {
  const fail = (why: string): never => {
    throw new StateFileError(`${file}: ${why}`);
  };
  if (head.length < HEADER_BYTES || fileLength < HEADER_BYTES) {
    if (head.length >= 8 && Buffer.from(head.subarray(0, 8)).toString('latin1') !== MAGIC) {
      fail('not a wasmvisor saved-VM file (wrong magic)');
    }
    fail(`truncated: ${fileLength} bytes, shorter than the header`);
  }
  const v = new DataView(head.buffer, head.byteOffset, head.byteLength);
  if (Buffer.from(head.subarray(0, 8)).toString('latin1') !== MAGIC) {
    fail('not a wasmvisor saved-VM file (wrong magic)');
  }
  if (v.getUint32(24, true) !== crc32(head.subarray(0, 24)))
    fail('corrupted header (CRC mismatch)');
  const version = v.getUint32(8, true);
  if (version !== FORMAT_VERSION) {
    fail(`format version ${version}; this wasmvisor reads version ${FORMAT_VERSION}`);
  }
  const declared = v.getBigUint64(16, true);
  if (declared !== BigInt(fileLength)) {
    fail(
      BigInt(fileLength) < declared
        ? `truncated: ${fileLength} of ${declared} bytes`
        : `${BigInt(fileLength) - declared} bytes of garbage after the end`,
    );
  }
  if (v.getUint32(12, true) < 1) fail('no sections');
  let o = HEADER_BYTES;
  if (head.length - o < 4) return undefined;
  const nameLen = v.getUint32(o, true);
  if (nameLen < 1 || nameLen > MAX_NAME) fail(`section 1: bad name length ${nameLen}`);
  if (head.length - o < 4 + nameLen + 16) return undefined;
  const name = Buffer.from(head.subarray(o + 4, o + 4 + nameLen)).toString('latin1');
  if (!/^[\x21-\x7e]+$/.test(name)) fail('section 1: bad name');
  o += 4 + nameLen;
  const sVersion = v.getUint32(o, true);
  const len = v.getBigUint64(o + 4, true);
  const crc = v.getUint32(o + 12, true);
  o += 16;
  if (len > BigInt(fileLength - o))
    fail(`section "${name}": length ${len} runs past the end of the file`);
  if (BigInt(head.length - o) < len) return undefined;
  const data = head.subarray(o, o + Number(len));
  if (crc32(data) !== crc) fail(`section "${name}": corrupted (CRC mismatch)`);
  return { name, version: sVersion, data };
}

/** JSON for a section: plain objects, with bigints and byte arrays tagged so they round-trip. */
export function encodeJson(value: unknown): Uint8Array {
  return Buffer.from(
    JSON.stringify(value, (_k, x: unknown) => {
      if (typeof x === 'bigint') return { $bigint: x.toString() };
      if (x instanceof Uint8Array) return { $bytes: Buffer.from(x).toString('base64') };
      return x;
    }),
    'utf8',
  );
}

export function decodeJson(data: Uint8Array): unknown {
  return JSON.parse(Buffer.from(data).toString('utf8'), (_k, x: unknown) => {
    if (x && typeof x === 'object' && !Array.isArray(x)) {
      const o = x as Record<string, unknown>;
      const keys = Object.keys(o);
      if (keys.length === 1 && typeof o.$bigint === 'string' && /^-?\d+$/.test(o.$bigint)) {
        return BigInt(o.$bigint);
      }
      if (keys.length === 1 && typeof o.$bytes === 'string') {
        return new Uint8Array(Buffer.from(o.$bytes, 'base64'));
      }
    }
    return x;
  });
}
