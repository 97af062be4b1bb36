/**
 * AES-256-XTS with plain64 IVs, as LUKS's "aes-xts-plain64" and QEMU's block crypto use it:
 * every 512-byte sector is one XTS data unit whose tweak is its sector number, 64-bit
 * little-endian, zero-padded to 16 bytes.
 *
 * OpenSSL's XTS takes one data unit per call, which costs a cipher object per sector. Instead
 * the whole request is done in two AES-ECB passes (OpenSSL, AES-NI where the host has it): one
 * encrypts every sector's IV with the second key into its first tweak; the tweaks of the
 * following blocks (×α in GF(2^128), IEEE 1619) are expanded here into a stream as long as the
 * data; then data ⊕ tweak goes through AES-ECB with the first key and is ⊕ tweak again.
 */
import { createCipheriv, createDecipheriv, createSecretKey, type KeyObject } from 'node:crypto';
import { endianness } from 'node:os';
import type { SectorCipher } from '../backend.js';
import { LUKS_SECTOR, MASTER_KEY_BYTES } from './header.js';

const BLOCKS = LUKS_SECTOR / 16;
/** The tweak stream is built in 32-bit words in the host's order: little-endian hosts only. */
const LITTLE_ENDIAN = endianness() === 'LE';

export class XtsPlain64 implements SectorCipher {
  private readonly dataKey: KeyObject;
  private readonly tweakKey: KeyObject;
  /** The whole 64-byte key, for the one-unit-per-call fallback on big-endian hosts. */
  private readonly xtsKey: KeyObject;

  /** `bulk` false: one OpenSSL XTS call per sector (what big-endian hosts use; tests compare). */
  constructor(
    key: Uint8Array,
    private readonly bulk = LITTLE_ENDIAN,
  ) {
    if (key.length !== MASTER_KEY_BYTES) {
      throw new RangeError(`AES-256-XTS needs a ${MASTER_KEY_BYTES}-byte key, not ${key.length}`);
    }
    this.dataKey = createSecretKey(key.subarray(0, 32));
    this.tweakKey = createSecretKey(key.subarray(32));
    this.xtsKey = createSecretKey(key);
  }

  decrypt(sector: number, views: readonly Uint8Array[]): void {
    const all = views.length === 1 ? views[0] : gather(views);
    const out = this.run(false, sector, all);
    let at = 0;
    for (const v of views) {
      v.set(out.subarray(at, at + v.length));
      at += v.length;
    }
  }

  encrypt(sector: number, views: readonly Uint8Array[]): Uint8Array {
    return this.run(true, sector, gather(views));
  }

  /** En/decrypts whole sectors starting at `sector`; returns a new buffer. */
  private run(enc: boolean, sector: number, data: Uint8Array): Uint8Array {
    if (data.length % LUKS_SECTOR !== 0) {
      throw new RangeError(`XTS data of ${data.length} bytes is not whole sectors`);
    }
    if (!this.bulk) return this.perSector(enc, sector, data);
    const n = data.length / LUKS_SECTOR;
    const tweaks = this.tweakStream(sector, n);
    const x = new Uint8Array(data.length);
    x.set(data);
    xorWords(x, tweaks);
    const c = enc
      ? createCipheriv('aes-256-ecb', this.dataKey, null)
      : createDecipheriv('aes-256-ecb', this.dataKey, null);
    c.setAutoPadding(false);
    const y = c.update(x);
    c.final();
    const out = new Uint8Array(y.buffer, y.byteOffset, y.byteLength);
    if (out.byteOffset % 4 !== 0) {
      const copy = out.slice();
      xorWords(copy, tweaks);
      return copy;
    }
    xorWords(out, tweaks);
    return out;
  }

  /** Every block's tweak for `n` sectors from `sector`: AES_k2(IV), then ×α per block. */
  private tweakStream(sector: number, n: number): Uint32Array {
    const ivs = new Uint8Array(n * 16);
    const dv = new DataView(ivs.buffer);
    for (let i = 0; i < n; i++) {
      const s = sector + i;
      dv.setUint32(i * 16, s % 2 ** 32, true);
      dv.setUint32(i * 16 + 4, Math.floor(s / 2 ** 32), true);
    }
    const c = createCipheriv('aes-256-ecb', this.tweakKey, null);
    c.setAutoPadding(false);
    const first = c.update(ivs);
    c.final();
    const f = new Uint32Array(
      first.buffer.slice(first.byteOffset, first.byteOffset + first.length),
    );
    const t = new Uint32Array((n * LUKS_SECTOR) / 4);
    for (let i = 0; i < n; i++) {
      let w0 = f[i * 4];
      let w1 = f[i * 4 + 1];
      let w2 = f[i * 4 + 2];
      let w3 = f[i * 4 + 3];
      let at = i * BLOCKS * 4;
      for (let b = 0; b < BLOCKS; b++, at += 4) {
        t[at] = w0;
        t[at + 1] = w1;
        t[at + 2] = w2;
        t[at + 3] = w3;
        const carry = w3 >>> 31;
        w3 = (w3 << 1) | (w2 >>> 31);
        w2 = (w2 << 1) | (w1 >>> 31);
        w1 = (w1 << 1) | (w0 >>> 31);
        w0 = (w0 << 1) ^ (carry * 0x87);
      }
    }
    return t;
  }

  /** One OpenSSL XTS call per sector (big-endian hosts). */
  private perSector(enc: boolean, sector: number, data: Uint8Array): Uint8Array {
    const out = new Uint8Array(data.length);
    const iv = Buffer.alloc(16);
    for (let at = 0; at < data.length; at += LUKS_SECTOR, sector++) {
      iv.writeUInt32LE(sector % 2 ** 32, 0);
      iv.writeUInt32LE(Math.floor(sector / 2 ** 32), 4);
      const c = enc
        ? createCipheriv('aes-256-xts', this.xtsKey, iv)
        : createDecipheriv('aes-256-xts', this.xtsKey, iv);
      out.set(c.update(data.subarray(at, at + LUKS_SECTOR)), at);
      c.final();
    }
    return out;
  }
}

/** b ^= t, word by word (b's offset 4-aligned: a fresh buffer or OpenSSL's output). */
function xorWords(b: Uint8Array, t: Uint32Array): void {
  const w = new Uint32Array(b.buffer, b.byteOffset, b.length / 4);
  for (let i = 0; i < w.length; i++) w[i] ^= t[i];
}

function gather(views: readonly Uint8Array[]): Uint8Array {
  let n = 0;
  for (const v of views) n += v.length;
  const out = new Uint8Array(n);
  let at = 0;
  for (const v of views) {
    out.set(v, at);
    at += v.length;
  }
  return out;
}
