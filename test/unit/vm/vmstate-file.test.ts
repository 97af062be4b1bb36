/**
 * The saved-VM file's container and RAM image on their own: round trips, and hostile files —
 * cut short at every section boundary, wrong magic or version, lengths that run past the end,
 * flipped bytes, out-of-order or oversized RAM runs — each rejected with a message naming the
 * file and the problem.
 */
import { describe, it, expect } from 'vitest';
import { crc32 } from 'node:zlib';
import {
  decodeFirstSection,
  decodeJson,
  decodeStateFile,
  encodeJson,
  encodeStateFile,
  StateFileError,
  type Section,
} from '../../../main/vm/vmstate/file-format.js';
import { decodeRam, encodeRam } from '../../../main/vm/vmstate/ram-image.js';

const sections: Section[] = [
  { name: 'vm', version: 1, data: encodeJson({ a: 1, big: 5n, bytes: new Uint8Array([1, 2]) }) },
  { name: 'cpu', version: 1, data: new Uint8Array(64).fill(7) },
  { name: 'dev:plic', version: 3, data: encodeJson({ version: 3, x: [1, 2, 3] }) },
  { name: 'empty', version: 1, data: new Uint8Array(0) },
];

function rejects(bytes: Uint8Array): string {
  try {
    decodeStateFile(bytes, 'saved.vm');
  } catch (e) {
    expect(e).toBeInstanceOf(StateFileError);
    const m = (e as Error).message;
    expect(m.startsWith('saved.vm: ')).toBe(true);
    return m;
  }
  throw new Error('accepted');
}

/** Offsets where each section begins (and the file's end). */
function boundaries(file: Uint8Array): number[] {
  const v = new DataView(file.buffer, file.byteOffset);
  const out = [32];
  let o = 32;
  for (let i = 0; i < sections.length; i++) {
    const n = v.getUint32(o, true);
    o += 4 + n + 16 + Number(v.getBigUint64(o + 4 + n + 4, true));
    out.push(o);
  }
  return out;
}

describe('saved-VM file container', () => {
  const file = encodeStateFile(sections);

  it('round-trips sections, names, versions and JSON with bigints and bytes', () => {
    const back = decodeStateFile(file, 'saved.vm');
    expect(back.map((s) => [s.name, s.version, s.data.length])).toEqual(
      sections.map((s) => [s.name, s.version, s.data.length]),
    );
    expect(decodeJson(back[0].data)).toEqual({ a: 1, big: 5n, bytes: new Uint8Array([1, 2]) });
    expect(encodeStateFile(back)).toEqual(file);
  });

  it('a file cut at every section boundary (and inside each) is "truncated"', () => {
    const cuts = boundaries(file).slice(0, -1);
    for (const at of [0, 5, 31, ...cuts, ...cuts.map((c) => c + 3), file.length - 1]) {
      expect(rejects(file.subarray(0, at))).toMatch(/truncated/);
    }
  });

  it('wrong magic, unknown version, trailing garbage', () => {
    const bad = file.slice();
    bad[0] = 0x58;
    expect(rejects(bad)).toMatch(/not a wasmvisor saved-VM file/);
    expect(rejects(new TextEncoder().encode('hello world, this is not a VM file at all'))).toMatch(
      /wrong magic/,
    );
    const v2 = file.slice();
    new DataView(v2.buffer).setUint32(8, 2, true);
    // The header CRC covers the version: fix it so the version itself is what is refused.
    new DataView(v2.buffer).setUint32(24, crc32(v2.subarray(0, 24)), true);
    expect(rejects(v2)).toMatch(/format version 2; this wasmvisor reads version 1/);
    const longer = new Uint8Array(file.length + 10);
    longer.set(file);
    expect(rejects(longer)).toMatch(/garbage after the end/);
  });

  it('a section length running past the end, a bad name length, a flipped payload byte', () => {
    const [, s2] = boundaries(file);
    const big = file.slice();
    const v = new DataView(big.buffer);
    const nameLen = v.getUint32(s2, true);
    v.setBigUint64(s2 + 4 + nameLen + 4, 1n << 40n, true);
    expect(rejects(big)).toMatch(/section "cpu": length 1099511627776 runs past the end/);
    const badName = file.slice();
    new DataView(badName.buffer).setUint32(s2, 100000, true);
    expect(rejects(badName)).toMatch(/section 2 of 4: bad name length/);
    const flipped = file.slice();
    flipped[s2 + 4 + nameLen + 16 + 10] ^= 1;
    expect(rejects(flipped)).toMatch(/section "cpu": corrupted \(CRC mismatch\)/);
  });
});

describe('RAM image', () => {
  const ram = new Uint8Array(4 << 20);
  ram.set([1, 2, 3], 0);
  ram.fill(0xab, 4096 * 10, 4096 * 300); // a run longer than one record
  ram[ram.length - 1] = 9;

  it('stores only non-zero pages, compressed, and restores them (other pages become zero)', () => {
    const img = encodeRam(ram);
    expect(img.length).toBeLessThan(20_000);
    const into = new Uint8Array(ram.length).fill(0x55);
    expect(decodeRam(img, into)).toBeUndefined();
    expect(Buffer.compare(into, ram)).toBe(0);
  });

  it('refuses another RAM size, runs out of order or outside RAM, bad deflate data', () => {
    const img = encodeRam(ram);
    expect(decodeRam(img, new Uint8Array(8 << 20))).toMatch(
      /saved with 4 MiB of RAM, this VM has 8 MiB/,
    );
    const v = (b: Uint8Array): DataView => new DataView(b.buffer, b.byteOffset);
    const outside = img.slice();
    v(outside).setUint32(16, 5000, true); // first run's first page
    expect(decodeRam(outside, new Uint8Array(ram.length))).toMatch(
      /run 1 of \d+: pages 5000\+1 out of order or outside RAM/,
    );
    const garbled = img.slice();
    garbled[16 + 12] ^= 0xff;
    garbled[16 + 13] ^= 0xff;
    expect(decodeRam(garbled, new Uint8Array(ram.length))).toMatch(/run 1 of/);
    expect(decodeRam(img.subarray(0, img.length - 5), new Uint8Array(ram.length))).toMatch(
      /run \d+ of \d+/,
    );
    expect(decodeRam(img.subarray(0, 8), new Uint8Array(ram.length))).toBe('truncated header');
  });
});

describe('the first section alone (listings read no RAM)', () => {
  const file = encodeStateFile(sections);
  const vmEnd = 32 + 4 + 2 + 16 + sections[0]!.data.length;
  const first = (head: Uint8Array, length = file.length) => {
    const r = decodeFirstSection(head, length, 's.vm');
    return r && { ...r, data: Uint8Array.from(r.data) };
  };
  const vm = { ...sections[0]!, data: Uint8Array.from(sections[0]!.data) };

  it('is read from the first bytes of the file, as the whole file reads it', () => {
    expect(first(file.subarray(0, vmEnd))).toEqual(vm);
    expect(first(file)).toEqual(vm);
    // Too few bytes for the section: undefined, not an error (the caller reads more).
    expect(first(file.subarray(0, vmEnd - 1))).toBeUndefined();
    expect(first(file.subarray(0, 40))).toBeUndefined();
  });

  it('refuses what the whole-file reader refuses in the bytes it reads', () => {
    const bad = (edit: (b: Uint8Array) => void, length = file.length) => {
      const b = file.slice(0, vmEnd);
      edit(b);
      try {
        first(b, length);
      } catch (e) {
        expect(e).toBeInstanceOf(StateFileError);
        return (e as Error).message;
      }
      return 'accepted';
    };
    expect(bad(() => {}, file.length - 1)).toBe(
      `s.vm: truncated: ${file.length - 1} of ${file.length} bytes`,
    );
    expect(bad(() => {}, file.length + 3)).toBe('s.vm: 3 bytes of garbage after the end');
    expect(bad((b) => (b[0] = 0x58))).toBe('s.vm: not a wasmvisor saved-VM file (wrong magic)');
    expect(bad((b) => (b[13] ^= 1))).toBe('s.vm: corrupted header (CRC mismatch)');
    expect(bad((b) => (b[vmEnd - 1] ^= 1))).toBe('s.vm: section "vm": corrupted (CRC mismatch)');
    expect(bad((b) => new DataView(b.buffer).setUint32(32, 0, true))).toBe(
      's.vm: section 1: bad name length 0',
    );
    expect(() => first(new TextEncoder().encode('WVMSTATE but short'), 18)).toThrow(
      's.vm: truncated: 18 bytes, shorter than the header',
    );
  });
});
