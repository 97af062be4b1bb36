/**
 * AES-256-XTS with plain64 IVs, as LUKS's "aes-xts-plain64" and QEMU's block crypto use it:
 * every 512-byte sector is one XTS data unit whose tweak is its sector number, 64-bit
 * little-endian, zero-padded to 16 bytes. The cipher itself is OpenSSL's, through node:crypto.
 */
import { createCipheriv, createDecipheriv, createSecretKey, type KeyObject } from 'node:crypto';
import type { SectorCipher } from '../backend.js';
import { LUKS_SECTOR, MASTER_KEY_BYTES } from './header.js';

export class XtsPlain64 implements SectorCipher {
  private readonly key: KeyObject;
  private readonly iv = Buffer.alloc(16);

  constructor(key: Uint8Array) {
    if (key.length !== MASTER_KEY_BYTES) {
      throw new RangeError(`AES-256-XTS needs a ${MASTER_KEY_BYTES}-byte key, not ${key.length}`);
    }
    this.key = createSecretKey(key);
  }

  decrypt(sector: number, views: readonly Uint8Array[]): void {
    if (views.every((v) => v.length % LUKS_SECTOR === 0)) {
      for (const v of views) {
        this.run(false, sector, v, v);
        sector += v.length / LUKS_SECTOR;
      }
      return;
    }
    // Sectors straddle views: gather, decrypt, scatter back.
    const all = gather(views);
    this.run(false, sector, all, all);
    let at = 0;
    for (const v of views) {
      v.set(all.subarray(at, at + v.length));
      at += v.length;
    }
  }

  encrypt(sector: number, views: readonly Uint8Array[]): Uint8Array {
    const out = gather(views);
    this.run(true, sector, out, out);
    return out;
  }

  /** En/decrypts `src` sector by sector into `dst` (which may be `src`). */
  private run(enc: boolean, sector: number, src: Uint8Array, dst: Uint8Array): void {
    if (src.length % LUKS_SECTOR !== 0) {
      throw new RangeError(`XTS data of ${src.length} bytes is not whole sectors`);
    }
    for (let at = 0; at < src.length; at += LUKS_SECTOR, sector++) {
      this.iv.writeUInt32LE(sector % 2 ** 32, 0);
      this.iv.writeUInt32LE(Math.floor(sector / 2 ** 32), 4);
      const c = enc
        ? createCipheriv('aes-256-xts', this.key, this.iv)
        : createDecipheriv('aes-256-xts', this.key, this.iv);
      dst.set(c.update(src.subarray(at, at + LUKS_SECTOR)), at);
      c.final();
    }
  }
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
