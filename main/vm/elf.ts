/**
 * Minimal ELF64 little-endian RISC-V reader for bare-metal programs: PT_LOAD segments and the
 * symbol table. Every malformed input yields an ElfError naming the problem.
 */
export class ElfError extends Error {}

export interface ElfSegment {
  paddr: bigint;
  data: Uint8Array;
  memSize: number;
}

export interface ElfImage {
  entry: bigint;
  segments: ElfSegment[];
  symbols: Map<string, bigint>;
}

const EM_RISCV = 243;
const PT_LOAD = 1;
const SHT_SYMTAB = 2;

export function parseElf(bytes: Uint8Array): ElfImage {
  if (bytes.length < 64) throw new ElfError('file is too short to be an ELF');
  if (bytes[0] !== 0x7f || bytes[1] !== 0x45 || bytes[2] !== 0x4c || bytes[3] !== 0x46) {
    throw new ElfError('not an ELF file (bad magic)');
  }
  if (bytes[4] !== 2) throw new ElfError('not a 64-bit ELF (ELFCLASS64 expected)');
  if (bytes[5] !== 1) throw new ElfError('not a little-endian ELF');
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const machine = dv.getUint16(18, true);
  if (machine !== EM_RISCV) throw new ElfError(`not a RISC-V ELF (e_machine ${machine})`);
  const entry = dv.getBigUint64(24, true);
  const phoff = Number(dv.getBigUint64(32, true));
  const shoff = Number(dv.getBigUint64(40, true));
  const phentsize = dv.getUint16(54, true);
  const phnum = dv.getUint16(56, true);
  const shentsize = dv.getUint16(58, true);
  const shnum = dv.getUint16(60, true);
  const within = (off: number, len: number, what: string): void => {
    if (off < 0 || len < 0 || off + len > bytes.length) {
      throw new ElfError(`${what} lies outside the file (offset ${off}, length ${len})`);
    }
  };
  const segments: ElfSegment[] = [];
  if (phnum > 0) {
    if (phentsize < 56) throw new ElfError(`bad program header size ${phentsize}`);
    within(phoff, phnum * phentsize, 'program header table');
  }
  for (let i = 0; i < phnum; i++) {
    const o = phoff + i * phentsize;
    if (dv.getUint32(o, true) !== PT_LOAD) continue;
    const off = Number(dv.getBigUint64(o + 8, true));
    const paddr = dv.getBigUint64(o + 24, true);
    const fileSize = Number(dv.getBigUint64(o + 32, true));
    const memSize = Number(dv.getBigUint64(o + 40, true));
    if (fileSize > memSize) throw new ElfError(`segment ${i}: file size exceeds memory size`);
    within(off, fileSize, `segment ${i}`);
    segments.push({ paddr, data: bytes.subarray(off, off + fileSize), memSize });
  }
  if (segments.length === 0) throw new ElfError('no loadable (PT_LOAD) segments');
  const symbols = new Map<string, bigint>();
  if (shnum > 0 && shoff > 0) {
    if (shentsize < 64) throw new ElfError(`bad section header size ${shentsize}`);
    within(shoff, shnum * shentsize, 'section header table');
    for (let i = 0; i < shnum; i++) {
      const o = shoff + i * shentsize;
      if (dv.getUint32(o + 4, true) !== SHT_SYMTAB) continue;
      const symOff = Number(dv.getBigUint64(o + 24, true));
      const symSize = Number(dv.getBigUint64(o + 32, true));
      const link = dv.getUint32(o + 40, true);
      if (link >= shnum) throw new ElfError('symbol table links to a missing string table');
      const so = shoff + link * shentsize;
      const strOff = Number(dv.getBigUint64(so + 24, true));
      const strSize = Number(dv.getBigUint64(so + 32, true));
      within(symOff, symSize, 'symbol table');
      within(strOff, strSize, 'string table');
      for (let s = symOff; s + 24 <= symOff + symSize; s += 24) {
        const nameOff = dv.getUint32(s, true);
        if (nameOff === 0 || nameOff >= strSize) continue;
        let end = strOff + nameOff;
        while (end < strOff + strSize && bytes[end] !== 0) end++;
        const name = new TextDecoder().decode(bytes.subarray(strOff + nameOff, end));
        symbols.set(name, dv.getBigUint64(s + 8, true));
      }
    }
  }
  return { entry, segments, symbols };
}
