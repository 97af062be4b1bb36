/**
 * Recognises what a boot file is before it goes into guest RAM: a RISC-V Linux `Image` (raw or
 * gzip'd), an RV64 ELF, or a raw binary; and rejects, with a message that says why, the files
 * people pass by mistake (another architecture's kernel, a 32-bit ELF, other compressions).
 */
import { gunzipSync } from 'node:zlib';
import { BootError } from './boot-error.js';

const EM_RISCV = 243;
const PT_LOAD = 1;

/** A piece of an image to copy into physical memory. */
export interface LoadSegment {
  /** Physical address. */
  addr: number;
  data: Uint8Array;
  /** Bytes the segment occupies (>= data.length; the rest is zero, e.g. bss). */
  memSize: number;
}

export interface BootImage {
  kind: 'riscv-image' | 'elf' | 'raw';
  gzipped: boolean;
  /** For 'elf': where the segments go. For the others: placed by the boot loader. */
  segments: LoadSegment[];
  /** Bytes of the image ('riscv-image' and 'raw'). */
  bytes: Uint8Array;
  /** Memory the image needs from its load address, bss included ('riscv-image': image_size). */
  memSize: number;
  /** ELF entry point. */
  entry?: number;
}

/** Short human sizes for messages. */
export function describeSize(n: number): string {
  if (n >= 2 ** 20) return `${(n / 2 ** 20).toFixed(n % 2 ** 20 ? 1 : 0)} MiB`;
  if (n >= 1024) return `${(n / 1024).toFixed(n % 1024 ? 1 : 0)} KiB`;
  return `${n} bytes`;
}

function startsWith(data: Uint8Array, at: number, magic: readonly number[]): boolean {
  if (data.length < at + magic.length) return false;
  return magic.every((b, i) => data[at + i] === b);
}

const ascii = (s: string): number[] => [...s].map((c) => c.charCodeAt(0));

const GZIP = [0x1f, 0x8b];
const OTHER_COMPRESSIONS: [string, number[]][] = [
  ['zstd', [0x28, 0xb5, 0x2f, 0xfd]],
  ['xz', [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]],
  ['lz4', [0x02, 0x21, 0x4c, 0x18]],
];
const BZIP2_BLOCK = [0x31, 0x41, 0x59, 0x26, 0x53, 0x59];
const ELF = [0x7f, 0x45, 0x4c, 0x46];
const RISCV_MAGIC = ascii('RISCV\0\0\0');
const RISCV_MAGIC2 = ascii('RSC\x05');
const ARM64_MAGIC = ascii('ARM\x64');
const X86_BZIMAGE = ascii('HdrS');
const EFI_ZBOOT = ascii('zimg');

/**
 * Inspects a kernel or firmware file. `limit` caps what a gzip'd file may expand to (the RAM
 * size), so a hostile archive cannot exhaust host memory.
 */
export function inspectBootImage(name: string, data: Uint8Array, limit: number): BootImage {
  if (data.length === 0) throw new BootError(name, 'file is empty');
  let bytes = data;
  let gzipped = false;
  if (startsWith(data, 0, GZIP)) {
    bytes = gunzip(name, data, limit);
    gzipped = true;
  }
  // Only formats with unmistakable magic: a raw binary may start with any bytes.
  let other = OTHER_COMPRESSIONS.find(([, magic]) => startsWith(bytes, 0, magic))?.[0];
  if (startsWith(bytes, 0, ascii('BZh')) && startsWith(bytes, 4, BZIP2_BLOCK)) other = 'bzip2';
  if (other) {
    throw new BootError(name, `is ${other}-compressed; only gzip is supported, decompress it`);
  }
  if (startsWith(bytes, 0, ELF)) return inspectElf(name, bytes, gzipped);
  if (startsWith(bytes, 4, EFI_ZBOOT)) {
    throw new BootError(name, 'is an EFI zboot image (vmlinuz.efi); use the plain Image');
  }
  if (startsWith(bytes, 0x38, ARM64_MAGIC)) {
    throw new BootError(name, 'is an ARM64 kernel Image, not a RISC-V one');
  }
  if (startsWith(bytes, 0x202, X86_BZIMAGE)) {
    throw new BootError(name, 'is an x86 bzImage, not a RISC-V kernel');
  }
  if (startsWith(bytes, 0x30, RISCV_MAGIC) || startsWith(bytes, 0x38, RISCV_MAGIC2)) {
    return inspectRiscvImage(name, bytes, gzipped);
  }
  return { kind: 'raw', gzipped, segments: [], bytes, memSize: bytes.length };
}

function gunzip(name: string, data: Uint8Array, limit: number): Uint8Array {
  try {
    return new Uint8Array(gunzipSync(data, { maxOutputLength: Math.max(1, limit) }));
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'ERR_BUFFER_TOO_LARGE' || err instanceof RangeError) {
      throw new BootError(name, `decompresses to more than the ${describeSize(limit)} of RAM`);
    }
    throw new BootError(name, `gzip data is corrupt (${err.message})`);
  }
}

/** Linux Documentation/arch/riscv/boot-image-header.rst. */
function inspectRiscvImage(name: string, bytes: Uint8Array, gzipped: boolean): BootImage {
  if (bytes.length < 64) throw new BootError(name, 'RISC-V Image header is truncated');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  // image_size covers text to _end, bss included: the kernel clears that much past its load
  // address, so nothing may be placed there. 0 means "not given".
  const imageSize = Number(view.getBigUint64(16, true));
  const flags = Number(view.getBigUint64(24, true) & 0xffn);
  if (flags & 1)
    throw new BootError(name, 'is a big-endian RISC-V Image; this machine is little-endian');
  return {
    kind: 'riscv-image',
    gzipped,
    segments: [],
    bytes,
    memSize: Math.max(imageSize, bytes.length),
  };
}

function inspectElf(name: string, bytes: Uint8Array, gzipped: boolean): BootImage {
  if (bytes.length < 64) throw new BootError(name, 'ELF header is truncated');
  if (bytes[4] !== 2) throw new BootError(name, 'is a 32-bit ELF; this machine is RV64');
  if (bytes[5] !== 1) throw new BootError(name, 'is a big-endian ELF; RISC-V is little-endian');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const machine = view.getUint16(0x12, true);
  if (machine !== EM_RISCV) {
    throw new BootError(name, `is an ELF for machine ${machine}, not RISC-V (${EM_RISCV})`);
  }
  const entry = u64(view, 0x18, name);
  const phoff = u64(view, 0x20, name);
  const phentsize = view.getUint16(0x36, true);
  const phnum = view.getUint16(0x38, true);
  if (phentsize < 56 || phoff + phnum * phentsize > bytes.length) {
    throw new BootError(name, 'ELF program headers are truncated');
  }
  const segments: LoadSegment[] = [];
  for (let i = 0; i < phnum; i++) {
    const ph = phoff + i * phentsize;
    if (view.getUint32(ph, true) !== PT_LOAD) continue;
    const offset = u64(view, ph + 8, name);
    const paddr = u64(view, ph + 24, name);
    const filesz = u64(view, ph + 32, name);
    const memsz = u64(view, ph + 40, name);
    if (offset + filesz > bytes.length) {
      throw new BootError(name, `ELF segment ${i} runs past the end of the file`);
    }
    if (memsz < filesz)
      throw new BootError(name, `ELF segment ${i} is smaller in memory than on disk`);
    if (memsz === 0) continue;
    segments.push({ addr: paddr, data: bytes.subarray(offset, offset + filesz), memSize: memsz });
  }
  if (segments.length === 0) throw new BootError(name, 'ELF has nothing to load');
  const memSize = Math.max(...segments.map((s) => s.addr + s.memSize)) - lowest(segments);
  return { kind: 'elf', gzipped, segments, bytes, memSize, entry };
}

function u64(view: DataView, at: number, name: string): number {
  const v = view.getBigUint64(at, true);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new BootError(name, `ELF field at ${at} is out of range (0x${v.toString(16)})`);
  }
  return Number(v);
}

export function lowest(segments: readonly LoadSegment[]): number {
  return Math.min(...segments.map((s) => s.addr));
}
