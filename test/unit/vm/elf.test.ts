import { describe, it, expect } from 'vitest';
import { parseElf, ElfError } from '../../../main/vm/elf.js';

/** Builds a minimal ELF64 RISC-V file: one PT_LOAD segment and a symbol table. */
function makeElf(
  opts: { machine?: number; symbols?: Record<string, bigint>; segOffset?: number } = {},
): Uint8Array {
  const code = Uint8Array.of(0x13, 0, 0, 0, 0x6f, 0, 0, 0);
  const names = Object.keys(opts.symbols ?? {});
  const strtab = Buffer.concat([Buffer.from([0]), ...names.map((n) => Buffer.from(n + '\0'))]);
  const symtab = Buffer.alloc(24 * (names.length + 1));
  let so = 1;
  names.forEach((n, i) => {
    symtab.writeUInt32LE(so, 24 * (i + 1));
    symtab.writeBigUInt64LE(opts.symbols![n]!, 24 * (i + 1) + 8);
    so += n.length + 1;
  });
  const phoff = 64;
  const codeOff = phoff + 56;
  const symOff = codeOff + code.length;
  const strOff = symOff + symtab.length;
  const shoff = strOff + strtab.length;
  const buf = Buffer.alloc(shoff + 3 * 64);
  buf.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1], 0);
  buf.writeUInt16LE(2, 16);
  buf.writeUInt16LE(opts.machine ?? 243, 18);
  buf.writeBigUInt64LE(0x8000_0000n, 24);
  buf.writeBigUInt64LE(BigInt(phoff), 32);
  buf.writeBigUInt64LE(BigInt(shoff), 40);
  buf.writeUInt16LE(56, 54);
  buf.writeUInt16LE(1, 56);
  buf.writeUInt16LE(64, 58);
  buf.writeUInt16LE(3, 60);
  buf.writeUInt32LE(1, phoff); // PT_LOAD
  buf.writeBigUInt64LE(BigInt(opts.segOffset ?? codeOff), phoff + 8);
  buf.writeBigUInt64LE(0x8000_0000n, phoff + 24);
  buf.writeBigUInt64LE(BigInt(code.length), phoff + 32);
  buf.writeBigUInt64LE(0x1000n, phoff + 40);
  buf.set(code, codeOff);
  buf.set(symtab, symOff);
  buf.set(strtab, strOff);
  // section 1: symtab linking to section 2: strtab
  buf.writeUInt32LE(2, shoff + 64 + 4);
  buf.writeBigUInt64LE(BigInt(symOff), shoff + 64 + 24);
  buf.writeBigUInt64LE(BigInt(symtab.length), shoff + 64 + 32);
  buf.writeUInt32LE(2, shoff + 64 + 40);
  buf.writeUInt32LE(3, shoff + 128 + 4);
  buf.writeBigUInt64LE(BigInt(strOff), shoff + 128 + 24);
  buf.writeBigUInt64LE(BigInt(strtab.length), shoff + 128 + 32);
  return new Uint8Array(buf);
}

describe('ELF loader', () => {
  it('reads the entry, load segments with bss size, and symbols', () => {
    const elf = parseElf(makeElf({ symbols: { tohost: 0x8000_1000n, fromhost: 0x8000_1008n } }));
    expect(elf.entry).toBe(0x8000_0000n);
    expect(elf.segments).toHaveLength(1);
    expect(elf.segments[0]!.memSize).toBe(0x1000);
    expect(elf.segments[0]!.data.length).toBe(8);
    expect(elf.symbols.get('tohost')).toBe(0x8000_1000n);
    expect(elf.symbols.get('fromhost')).toBe(0x8000_1008n);
  });

  it('rejects what is not a RISC-V ELF64 with a clear reason', () => {
    expect(() => parseElf(new Uint8Array(10))).toThrow(/too short/);
    expect(() => parseElf(new Uint8Array(100))).toThrow(/bad magic/);
    expect(() => parseElf(makeElf({ machine: 62 }))).toThrow(/not a RISC-V/);
  });

  it('rejects segments that point outside the file', () => {
    expect(() => parseElf(makeElf({ segOffset: 1 << 20 }))).toThrow(ElfError);
  });

  it('never throws anything but ElfError on truncated or random input', () => {
    const good = makeElf({ symbols: { tohost: 1n } });
    let seed = 1;
    const rnd = () => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32;
    for (let i = 0; i < 500; i++) {
      const b = good.slice(0, Math.floor(rnd() * good.length));
      const c = good.slice();
      for (let k = 0; k < 4; k++) c[Math.floor(rnd() * c.length)] = Math.floor(rnd() * 256);
      for (const input of [b, c]) {
        try {
          parseElf(input);
        } catch (e) {
          expect(e).toBeInstanceOf(ElfError);
        }
      }
    }
  });
});
