/**
 * LUKS1 pieces on their own: hostile headers are refused before any key is derived, the
 * anti-forensic split round-trips and is fragile where it must be, AES-256-XTS-plain64 matches a
 * vector taken from a qemu-img/qemu-io-written image and an XTS built from its definition; a
 * qcow2's encryption header pointer and method are checked like its tables.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createQcow2, openImage } from '../../../devices/block/qcow2/index.js';
import { createCipheriv, createHash, randomBytes } from 'node:crypto';
import { afMerge, afSplit } from '../../../devices/block/luks/af-split.js';
import {
  LuksFormatError,
  MAX_ITERATIONS,
  parseLuksHeader,
  serializeLuksHeader,
  type LuksHeader,
} from '../../../devices/block/luks/header.js';
import { createLuksVolume, unlockMasterKey } from '../../../devices/block/luks/keyslots.js';
import { XtsPlain64 } from '../../../devices/block/luks/xts-cipher.js';

const REGION = 4040 * 512;

function validHeader(): LuksHeader {
  return {
    cipherName: 'aes',
    cipherMode: 'xts-plain64',
    hash: 'sha256',
    payloadOffset: 4040,
    keyBytes: 64,
    mkDigest: new Uint8Array(20).fill(1),
    mkDigestSalt: new Uint8Array(32).fill(2),
    mkDigestIterations: 1000,
    uuid: '1a2a9c77-6384-4172-9a35-98e3560bae28',
    slots: Array.from({ length: 8 }, (_, i) => ({
      active: i === 0,
      iterations: i === 0 ? 1000 : 0,
      salt: new Uint8Array(32),
      keyOffset: 8 + i * 504,
      stripes: 4000,
    })),
  };
}

/** The serialized valid header with `poke` applied to its bytes. */
function hostile(poke: (dv: DataView, b: Uint8Array) => void): Uint8Array {
  const b = serializeLuksHeader(validHeader());
  poke(new DataView(b.buffer), b);
  return b;
}

const SLOT0 = 208;

describe('LUKS1 header', () => {
  it('round-trips a header laid out as QEMU lays it out', () => {
    const h = parseLuksHeader(serializeLuksHeader(validHeader()), REGION);
    expect(h).toEqual(validHeader());
  });

  const cases: [string, (dv: DataView, b: Uint8Array) => void, RegExp][] = [
    ['bad magic', (_dv, b) => (b[0] = 0x4d), /bad magic/],
    ['LUKS2', (dv) => dv.setUint16(6, 2), /version 2/],
    ['key bytes 32', (dv) => dv.setUint32(108, 32), /32-byte master key/],
    ['key bytes huge', (dv) => dv.setUint32(108, 0xffffffff), /master key is not supported/],
    [
      'cbc-essiv cipher',
      (_dv, b) => b.set(new TextEncoder().encode('cbc-essiv:sha256\0'), 40),
      /not supported/,
    ],
    [
      'unknown hash',
      (_dv, b) => b.set(new TextEncoder().encode('whirlpool\0'), 72),
      /hash whirlpool/,
    ],
    ['unterminated name', (_dv, b) => b.fill(0x41, 8, 40), /NUL-terminated/],
    ['master key digest 0 iterations', (dv) => dv.setUint32(164, 0), /0 PBKDF2 iterations/],
    ['slot with 0 iterations', (dv) => dv.setUint32(SLOT0 + 4, 0), /key slot 0: 0 PBKDF2/],
    [
      'slot with 2^32-1 iterations',
      (dv) => dv.setUint32(SLOT0 + 4, 0xffffffff),
      /key slot 0: 4294967295 PBKDF2/,
    ],
    [
      'digest with huge iterations',
      (dv) => dv.setUint32(164, MAX_ITERATIONS + 1),
      /master key digest/,
    ],
    ['slot material past the file', (dv) => dv.setUint32(SLOT0 + 40, 0xfffffff0), /ends past/],
    ['slot material inside the header', (dv) => dv.setUint32(SLOT0 + 40, 1), /overlaps/],
    ['huge stripes', (dv) => dv.setUint32(SLOT0 + 44, 0xffffffff), /4294967295 stripes/],
    ['garbage slot state', (dv) => dv.setUint32(SLOT0, 0x12345678), /invalid state/],
  ];
  it.each(cases)('refuses %s with a clear message, deriving nothing', (_name, poke, msg) => {
    expect(() => parseLuksHeader(hostile(poke), REGION)).toThrow(LuksFormatError);
    expect(() => parseLuksHeader(hostile(poke), REGION)).toThrow(msg);
  });

  it('refuses two active slots sharing key material', () => {
    const b = hostile((dv) => {
      dv.setUint32(SLOT0 + 48, 0x00ac71f3);
      dv.setUint32(SLOT0 + 48 + 4, 1000);
      dv.setUint32(SLOT0 + 48 + 40, 100); // inside slot 0's 500 sectors
    });
    expect(() => parseLuksHeader(b, REGION)).toThrow(/key slot 1.*overlaps/);
  });

  it('refuses eight slots whose iterations add up to minutes of work', () => {
    const h = validHeader();
    h.slots.forEach((s) => {
      s.active = true;
      s.iterations = MAX_ITERATIONS;
    });
    expect(() => parseLuksHeader(serializeLuksHeader(h), REGION)).toThrow(/8 key slots need/);
  });

  it('refuses a buffer shorter than a header', () => {
    expect(() => parseLuksHeader(new Uint8Array(100), REGION)).toThrow(/too short/);
  });
});

describe('anti-forensic split', () => {
  it.each(['sha1', 'sha256', 'sha512'] as const)(
    'split then merge gives the key back (%s)',
    (hash) => {
      const key = randomBytes(64);
      const m = afSplit(key, 4000, hash);
      expect(m.length).toBe(64 * 4000);
      expect(Buffer.from(afMerge(m, 64, 4000, hash))).toEqual(key);
    },
  );

  it('one flipped bit anywhere in the material loses the key', () => {
    const key = randomBytes(64);
    const m = afSplit(key, 4000, 'sha256');
    m[12345] ^= 1;
    expect(Buffer.from(afMerge(m, 64, 4000, 'sha256'))).not.toEqual(key);
  });
});

/** XTS from its definition (IEEE 1619) on AES-ECB: tweak = AES_k2(plain64 IV), ×α per block. */
function referenceXts(key: Uint8Array, sector: number, pt: Uint8Array): Uint8Array {
  const ecb = (k: Uint8Array, b: Uint8Array) => {
    const c = createCipheriv('aes-256-ecb', k, null);
    c.setAutoPadding(false);
    return Buffer.concat([c.update(b), c.final()]);
  };
  const iv = Buffer.alloc(16);
  iv.writeBigUInt64LE(BigInt(sector));
  const t = ecb(key.subarray(32), iv);
  const out = new Uint8Array(pt.length);
  for (let j = 0; j < pt.length; j += 16) {
    const x = Buffer.from(pt.subarray(j, j + 16));
    for (let i = 0; i < 16; i++) x[i] ^= t[i];
    const y = ecb(key.subarray(0, 32), x);
    for (let i = 0; i < 16; i++) out[j + i] = y[i] ^ t[i];
    let carry = 0;
    for (let i = 0; i < 16; i++) {
      const c = t[i] >> 7;
      t[i] = ((t[i] << 1) | carry) & 0xff;
      carry = c;
    }
    if (carry) t[0] ^= 0x87;
  }
  return out;
}

describe('AES-256-XTS-plain64', () => {
  // Taken from a raw LUKS image qemu-img 7.2 created and qemu-io filled with 0xab at byte 65536
  // of the payload (sector 128): its master key, and that sector as it lies in the file.
  const key = Buffer.from(
    'ba92b2460a11bd7441bccbf2b2f8d9f40d52b93ae27025e01e38f49918e6a724' +
      'cd0289060c7d07a0b33f6e6ac77c6a5742a4a7d8b348d7d68d86930768b1f7ca',
    'hex',
  );
  const pt = new Uint8Array(1024).fill(0xab);

  it('encrypts as QEMU did (sectors 128 and 129)', () => {
    const ct = new XtsPlain64(key).encrypt(128, [pt]);
    expect(createHash('sha256').update(ct.subarray(0, 512)).digest('hex')).toBe(
      '76e32d17e8efb6f17cf7be1f9a54d3599137dccbd2eaa54acdb690020f89aa24',
    );
    expect(Buffer.from(ct.subarray(512, 544)).toString('hex')).toBe(
      'abba2ed4ed86bd31b3b21a7f8a0c57b60b41dd28c7323a759d6927a0554d551d',
    );
  });

  it('agrees with XTS built from its definition, beyond 2^32 sectors too', () => {
    const data = randomBytes(512);
    for (const sector of [0, 1, 2 ** 32 + 5, 2 ** 45 + 77]) {
      const ct = new XtsPlain64(key).encrypt(sector, [data]);
      expect(Buffer.from(ct)).toEqual(Buffer.from(referenceXts(key, sector, data)));
    }
  });

  it('the two-pass AES-ECB form agrees with one OpenSSL XTS call per sector', () => {
    const data = randomBytes(64 * 512);
    const bulk = new XtsPlain64(key).encrypt(2 ** 33 - 5, [data]);
    const one = new XtsPlain64(key, false).encrypt(2 ** 33 - 5, [data]);
    expect(Buffer.from(bulk).equals(Buffer.from(one))).toBe(true);
    new XtsPlain64(key, false).decrypt(2 ** 33 - 5, [one]);
    expect(Buffer.from(one).equals(data)).toBe(true);
  });

  it('decrypts in place across views that split sectors', () => {
    const x = new XtsPlain64(key);
    const plain = randomBytes(2048);
    const ct = x.encrypt(7, [plain.subarray(0, 100), plain.subarray(100)]);
    const a = ct.slice(0, 700);
    const b = ct.slice(700);
    x.decrypt(7, [a, b]);
    expect(Buffer.concat([a, b])).toEqual(plain);
  });
});

describe('key slots', () => {
  it('a created volume opens with its passphrase and not with another', async () => {
    const pass = new TextEncoder().encode('correct horse');
    const v = await createLuksVolume(pass, { iterTimeMs: 5 });
    const region = new Uint8Array(v.header.payloadOffset * 512);
    region.set(serializeLuksHeader(v.header));
    region.set(v.slotMaterial, v.header.slots[0].keyOffset * 512);
    const h = parseLuksHeader(region, region.length);
    expect(h.slots.map((s) => s.active)).toEqual([
      true,
      false,
      false,
      false,
      false,
      false,
      false,
      false,
    ]);
    expect(h.payloadOffset).toBe(4040); // QEMU's layout
    const read = async (o: number, l: number) => region.slice(o, o + l);
    const u = await unlockMasterKey(h, read, pass);
    expect(u?.slot).toBe(0);
    expect(Buffer.from(u!.masterKey)).toEqual(Buffer.from(v.masterKey));
    expect(await unlockMasterKey(h, read, new TextEncoder().encode('wrong'))).toBeUndefined();
  });
});

describe('hostile encryption fields in a qcow2 header', () => {
  let dir: string;
  let clean: Buffer;
  const key = new TextEncoder().encode('k');
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'wasmvisor-luks-hostile-'));
    const img = join(dir, 'clean.qcow2');
    await createQcow2(img, { size: 1 << 20, encrypt: { passphrase: key, iterTimeMs: 5 } });
    clean = readFileSync(img);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  // Our header: the encryption extension comes first, at byte 112 (type, length, offset, length).
  const EXT = 112;
  const cases: [string, (dv: DataView) => void, RegExp][] = [
    ['the extension missing', (dv) => dv.setUint32(EXT, 0x12345678), /extension is missing/],
    [
      'an unaligned offset',
      (dv) => dv.setBigUint64(EXT + 8, dv.getBigUint64(EXT + 8) + 512n),
      /not cluster aligned/,
    ],
    ['an offset into the header', (dv) => dv.setBigUint64(EXT + 8, 0n), /overlaps the header/],
    ['a length past the file', (dv) => dv.setBigUint64(EXT + 16, 1n << 40n), /ends past the end/],
    [
      'the L1 table inside it',
      (dv) => dv.setBigUint64(EXT + 8, dv.getBigUint64(40)),
      /overlaps the L1 table/,
    ],
    ['a bad extension length', (dv) => dv.setUint32(EXT + 4, 8), /16 expected/],
    ['no crypt method', (dv) => dv.setUint32(32, 0), /without LUKS/],
    ['AES-CBC (method 1)', (dv) => dv.setUint32(32, 1), /without LUKS|method 1/],
    ['an unknown method', (dv) => dv.setUint32(32, 7), /method 7 is unknown/],
    [
      'a LUKS slot with 2^32-1 iterations',
      (dv) => {
        const at = Number(dv.getBigUint64(EXT + 8));
        dv.setUint32(at + 208 + 4, 0xffffffff);
      },
      /LUKS: key slot 0: 4294967295 PBKDF2 iterations/,
    ],
  ];
  it.each(cases)('refuses %s, naming the image', async (_name, poke, msg) => {
    const img = join(dir, 'h.qcow2');
    const b = Buffer.from(clean);
    poke(new DataView(b.buffer, b.byteOffset, b.byteLength));
    writeFileSync(img, b);
    await expect(openImage(img, 'qcow2', { key })).rejects.toThrow(msg);
    await expect(openImage(img, 'qcow2', { key })).rejects.toThrow(img);
  });
});
