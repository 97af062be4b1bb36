import { existsSync, readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import {
  BootError,
  fdtAddress,
  loadBoot,
  type BootFiles,
  type BootLayout,
} from '../../../devices/platform/boot-loader.js';
import { buildVirtDtb } from '../../../devices/platform/virt-dtb.js';
import { decompile, hasDtc, indexDts } from './dts.js';

const MiB = 2 ** 20;
const RAM_BASE = 0x8000_0000;

/** A RISC-V Linux Image: header with image_size, then filler. */
function riscvImage(fileSize: number, imageSize: number): Uint8Array {
  const img = new Uint8Array(fileSize).fill(0xaa);
  const v = new DataView(img.buffer);
  v.setUint32(0, 0x5a4d); // "MZ" (c.li s4,-13), as EFI-stub kernels start
  v.setBigUint64(8, 0x20_0000n, true); // text_offset
  v.setBigUint64(16, BigInt(imageSize), true);
  v.setBigUint64(24, 0n, true); // flags: little-endian
  v.setUint32(32, 2, true); // version 0.2
  img.set(new TextEncoder().encode('RISCV\0\0\0'), 0x30);
  img.set(new TextEncoder().encode('RSC\x05'), 0x38);
  return img;
}

/** A minimal RV64 ELF with one PT_LOAD segment. */
function elf(opts: {
  paddr: number;
  entry: number;
  data: Uint8Array;
  memsz?: number;
  cls?: number;
  machine?: number;
}) {
  const phoff = 64;
  const dataOff = phoff + 56;
  const out = new Uint8Array(dataOff + opts.data.length);
  const v = new DataView(out.buffer);
  out.set([0x7f, 0x45, 0x4c, 0x46, opts.cls ?? 2, 1, 1]);
  v.setUint16(0x10, 2, true); // ET_EXEC
  v.setUint16(0x12, opts.machine ?? 243, true);
  v.setBigUint64(0x18, BigInt(opts.entry), true);
  v.setBigUint64(0x20, BigInt(phoff), true);
  v.setUint16(0x36, 56, true);
  v.setUint16(0x38, 1, true);
  v.setUint32(phoff, 1, true); // PT_LOAD
  v.setBigUint64(phoff + 8, BigInt(dataOff), true);
  v.setBigUint64(phoff + 16, BigInt(opts.paddr), true);
  v.setBigUint64(phoff + 24, BigInt(opts.paddr), true);
  v.setBigUint64(phoff + 32, BigInt(opts.data.length), true);
  v.setBigUint64(phoff + 40, BigInt(opts.memsz ?? opts.data.length), true);
  out.set(opts.data, dataOff);
  return out;
}

function files(over: Partial<BootFiles> = {}): BootFiles {
  return {
    ram: new Uint8Array(256 * MiB),
    ramBase: RAM_BASE,
    rom: new Uint8Array(0x1000),
    firmware: new Uint8Array(300 * 1024).fill(0x11),
    bootargs: 'console=ttyS0',
    dtbFor: (l: BootLayout) => buildVirtDtb(l),
    names: { firmware: 'fw_dynamic.bin', kernel: 'Image', initrd: 'initrd.img' },
    ...over,
  };
}

const truncated = (b: Uint8Array) => b.subarray(0, b.length >> 1);
const damaged = (b: Uint8Array) => {
  const c = Uint8Array.from(b);
  for (let i = 20; i < c.length - 8; i += 7) c[i] ^= 0x5a;
  return c;
};

/** Byte equality without vitest's slow element-wise diff of megabyte arrays. */
const same = (a: Uint8Array, b: Uint8Array) => Buffer.compare(a, b) === 0;

const at = (f: BootFiles, addr: number, len: number) =>
  f.ram.subarray(addr - RAM_BASE, addr - RAM_BASE + len);

/** Decodes the I/U-type instructions the stub uses (independently of the encoder). */
function decode(insn: number) {
  const opcode = insn & 0x7f;
  const rd = (insn >> 7) & 31;
  const funct3 = (insn >> 12) & 7;
  const rs1 = (insn >> 15) & 31;
  const immI = insn >> 20; // sign-extended by >>
  if (opcode === 0x17) return { op: 'auipc', rd, imm: insn >> 12 };
  if (opcode === 0x13 && funct3 === 0) return { op: 'addi', rd, rs1, imm: immI };
  if (opcode === 0x03 && funct3 === 3) return { op: 'ld', rd, rs1, imm: immI };
  if (opcode === 0x73 && funct3 === 2 && rs1 === 0)
    return { op: 'csrr', rd, csr: (insn >>> 20) & 0xfff };
  if (opcode === 0x67 && funct3 === 0) return { op: 'jalr', rd, rs1, imm: immI };
  throw new Error(`unexpected instruction ${insn.toString(16)}`);
}

/** Runs the stub on a toy hart: returns a0, a1, a2 and the jump target. */
function runStub(rom: Uint8Array, hartid = 0) {
  const v = new DataView(rom.buffer);
  const x = new Array<bigint>(32).fill(0n);
  let pc = 0x1000;
  for (let steps = 0; steps < 16; steps++) {
    const d = decode(v.getUint32(pc - 0x1000, true));
    switch (d.op) {
      case 'auipc':
        x[d.rd] = BigInt(pc + (d.imm! << 12));
        break;
      case 'addi':
        x[d.rd] = x[d.rs1!] + BigInt(d.imm!);
        break;
      case 'csrr':
        expect(d.csr).toBe(0xf14);
        x[d.rd] = BigInt(hartid);
        break;
      case 'ld':
        x[d.rd] = v.getBigUint64(Number(x[d.rs1!]) + d.imm! - 0x1000, true);
        break;
      case 'jalr':
        expect(d.rd).toBe(0);
        return { a0: x[10], a1: x[11], a2: x[12], jump: x[d.rs1!] + BigInt(d.imm!) };
    }
    x[0] = 0n;
    pc += 4;
  }
  throw new Error('stub did not jump');
}

describe('boot loader', () => {
  it('places firmware, kernel, initrd and DTB where QEMU virt does', () => {
    const f = files({
      kernel: riscvImage(6 * MiB, 20 * MiB),
      initrd: new Uint8Array(300_000).fill(0x33),
      bootargs: 'console=ttyS0 root=/dev/ram',
    });
    const info = loadBoot(f);
    expect(info.entry).toBe(0x1000);
    expect(info.firmwareAddr).toBe(RAM_BASE);
    expect(info.kernelAddr).toBe(0x8020_0000);
    expect(info.kernelEnd).toBe(0x8020_0000 + 20 * MiB);
    // QEMU 7.2 with the same files: linux,initrd-start 0x88200000, end 0x882493e0.
    expect(info.initrdStart).toBe(0x8820_0000);
    expect(info.initrdEnd).toBe(0x8824_93e0);
    expect(info.dtbAddr).toBe(0x8fe0_0000);
    expect(at(f, RAM_BASE, 300 * 1024).every((b) => b === 0x11)).toBe(true);
    expect(same(at(f, info.kernelAddr!, 6 * MiB), f.kernel!)).toBe(true);
    expect(at(f, info.initrdStart!, 300_000).every((b) => b === 0x33)).toBe(true);
    const dtb = at(f, info.dtbAddr, info.dtbSize);
    expect(new DataView(dtb.buffer, dtb.byteOffset).getUint32(0)).toBe(0xd00dfeed);
    if (hasDtc) {
      const chosen = indexDts(decompile(dtb.slice()).dts).get('/chosen')!;
      expect(chosen.get('linux,initrd-start')).toBe('<0x88200000>');
      expect(chosen.get('linux,initrd-end')).toBe('<0x882493e0>');
      expect(chosen.get('bootargs')).toBe('"console=ttyS0 root=/dev/ram"');
    }
  });

  it("writes QEMU's reset stub: a0 = hartid, a1 = DTB, a2 = fw_dynamic_info, jump to firmware", () => {
    const f = files({ kernel: riscvImage(MiB, 2 * MiB) });
    const info = loadBoot(f);
    const v = new DataView(f.rom.buffer);
    // Word for word what hw/riscv/boot.c emits for RV64.
    expect([0, 4, 8, 12, 16, 20].map((o) => v.getUint32(o, true))).toEqual([
      0x00000297, 0x02828613, 0xf1402573, 0x0202b583, 0x0182b283, 0x00028067,
    ]);
    const run = runStub(f.rom, 0);
    expect(run.a0).toBe(0n);
    expect(run.a1).toBe(BigInt(info.dtbAddr));
    expect(run.jump).toBe(BigInt(RAM_BASE));
    const dyn = Number(run.a2) - 0x1000;
    expect(dyn).toBe(40);
    const field = (i: number) => v.getBigUint64(dyn + 8 * i, true);
    expect(field(0)).toBe(0x4942534fn); // "OSBI"
    expect(field(1)).toBe(2n); // version
    expect(field(2)).toBe(0x8020_0000n); // next_addr: the kernel
    expect(field(3)).toBe(1n); // next_mode: S
    expect(field(4)).toBe(0n); // options
    expect(field(5)).toBe(0n); // boot_hart
  });

  it('puts the kernel on the next 2 MiB boundary after a large firmware', () => {
    const f = files({ firmware: new Uint8Array(2 * MiB + 1), kernel: riscvImage(MiB, 0) });
    expect(loadBoot(f).kernelAddr).toBe(0x8040_0000);
  });

  it('places the initrd at kernel + RAM/2 on small machines', () => {
    const f = files({
      ram: new Uint8Array(64 * MiB),
      kernel: riscvImage(MiB, 8 * MiB),
      initrd: new Uint8Array(MiB),
    });
    const info = loadBoot(f);
    expect(info.initrdStart).toBe(0x8020_0000 + 32 * MiB);
    expect(info.dtbAddr).toBe(RAM_BASE + 62 * MiB);
  });

  it('moves an initrd that would run into the DTB to just below it', () => {
    const f = files({ kernel: riscvImage(MiB, 8 * MiB), initrd: new Uint8Array(200 * MiB) });
    const info = loadBoot(f);
    expect(info.initrdEnd!).toBeLessThanOrEqual(info.dtbAddr);
    expect(info.initrdStart! % 4096).toBe(0);
    expect(info.initrdStart!).toBeGreaterThanOrEqual(info.kernelEnd!);
  });

  it('keeps the DTB below 3 GiB on big machines (riscv_load_fdt)', () => {
    expect(fdtAddress(RAM_BASE, 4 * 2 ** 30, 0x2000)).toBe(0xbfe0_0000);
    expect(fdtAddress(RAM_BASE, 256 * MiB, 0x2000)).toBe(0x8fe0_0000);
    expect(fdtAddress(0x1_0000_0000, 256 * MiB, 0x2000)).toBe(0x1_0fe0_0000);
  });

  it("unpacks a gzip'd Image", () => {
    const image = riscvImage(3 * MiB, 4 * MiB);
    const f = files({ kernel: gzipSync(image) });
    const info = loadBoot(f);
    expect(same(at(f, info.kernelAddr!, image.length), image)).toBe(true);
    expect(info.kernelEnd).toBe(info.kernelAddr! + 4 * MiB);
  });

  it('accepts a kernel without an Image header as a raw binary', () => {
    const raw = new Uint8Array(4096).fill(0x13);
    const f = files({ kernel: raw });
    const info = loadBoot(f);
    expect(info.kernelEnd! - info.kernelAddr!).toBe(4096);
    expect(at(f, info.kernelAddr!, 4096)).toEqual(raw);
  });

  it('boots without a kernel: fw_dynamic gets next_addr 0, as QEMU passes', () => {
    const f = files();
    const info = loadBoot(f);
    expect(info.kernelAddr).toBeUndefined();
    expect(new DataView(f.rom.buffer).getBigUint64(40 + 16, true)).toBe(0n);
  });

  it('loads ELF firmware where its segments say and jumps to its entry', () => {
    const code = new Uint8Array([0x73, 0x00, 0x10, 0x00]); // ebreak
    const f = files({
      firmware: elf({
        paddr: RAM_BASE + 0x1000,
        entry: RAM_BASE + 0x1000,
        data: code,
        memsz: 0x2000,
      }),
    });
    const info = loadBoot(f);
    expect(at(f, RAM_BASE + 0x1000, 4)).toEqual(code);
    expect(info.firmwareEnd).toBe(RAM_BASE + 0x3000);
    expect(runStub(f.rom).jump).toBe(BigInt(RAM_BASE + 0x1000));
  });

  if (existsSync('/usr/share/qemu/opensbi-riscv64-generic-fw_dynamic.bin')) {
    it('loads the real OpenSBI fw_dynamic.bin', () => {
      const fw = readFileSync('/usr/share/qemu/opensbi-riscv64-generic-fw_dynamic.bin');
      const f = files({ firmware: fw, kernel: riscvImage(MiB, 2 * MiB) });
      const info = loadBoot(f);
      expect(info.firmwareEnd).toBe(RAM_BASE + fw.length);
      expect(info.kernelAddr).toBe(0x8020_0000);
    });
  }

  describe('rejects malformed input with a BootError naming the file', () => {
    const cases: [string, Partial<BootFiles>, RegExp][] = [
      ['an empty firmware', { firmware: new Uint8Array(0) }, /^fw_dynamic\.bin: file is empty$/],
      [
        'firmware larger than RAM',
        { ram: new Uint8Array(MiB), firmware: new Uint8Array(2 * MiB) },
        /^fw_dynamic\.bin: firmware needs .*RAM is/,
      ],
      [
        'a kernel whose image_size exceeds RAM',
        { kernel: riscvImage(MiB, 300 * MiB) },
        /^Image: kernel needs 0x80200000\.\.0x92e00000 \(300 MiB\)/,
      ],
      [
        'truncated gzip',
        { kernel: truncated(gzipSync(riscvImage(MiB, 0))) },
        /^Image: gzip data is corrupt/,
      ],
      [
        'gzip with damaged data',
        { kernel: damaged(gzipSync(riscvImage(MiB, 0))) },
        /^Image: gzip data is corrupt/,
      ],
      [
        'a gzip bomb',
        { ram: new Uint8Array(8 * MiB), kernel: gzipSync(new Uint8Array(16 * MiB)) },
        /^Image: decompresses to more than the 8 MiB of RAM$/,
      ],
      [
        'an ARM64 Image',
        {
          kernel: (() => {
            const k = new Uint8Array(4096);
            k.set([0x41, 0x52, 0x4d, 0x64], 0x38);
            return k;
          })(),
        },
        /^Image: is an ARM64 kernel Image/,
      ],
      [
        'an x86 bzImage',
        {
          kernel: (() => {
            const k = new Uint8Array(4096);
            k.set([0x48, 0x64, 0x72, 0x53], 0x202);
            return k;
          })(),
        },
        /^Image: is an x86 bzImage/,
      ],
      [
        'a zstd kernel',
        { kernel: new Uint8Array([0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0, 0]) },
        /^Image: is zstd-compressed/,
      ],
      [
        'a 32-bit ELF',
        {
          kernel: elf({ paddr: 0x8020_0000, entry: 0x8020_0000, data: new Uint8Array(16), cls: 1 }),
        },
        /^Image: is a 32-bit ELF/,
      ],
      [
        'an x86-64 ELF',
        {
          kernel: elf({
            paddr: 0x8020_0000,
            entry: 0x8020_0000,
            data: new Uint8Array(16),
            machine: 62,
          }),
        },
        /^Image: is an ELF for machine 62/,
      ],
      [
        'an ELF kernel on top of the firmware',
        { kernel: elf({ paddr: RAM_BASE + 0x100, entry: RAM_BASE, data: new Uint8Array(16) }) },
        /^Image: kernel segment at 0x80000100\.\.0x80000110 overlaps the firmware/,
      ],
      [
        'ELF firmware outside RAM',
        { firmware: elf({ paddr: 0x1000, entry: 0x1000, data: new Uint8Array(16) }) },
        /^fw_dynamic\.bin: firmware segment needs 0x1000/,
      ],
      [
        'an initrd bigger than what is left',
        { kernel: riscvImage(MiB, 8 * MiB), initrd: new Uint8Array(250 * MiB) },
        /^initrd\.img: 250 MiB does not fit in RAM/,
      ],
    ];
    for (const [what, over, message] of cases) {
      it(what, () => {
        let err: unknown;
        try {
          loadBoot(files(over));
        } catch (e) {
          err = e;
        }
        expect(err).toBeInstanceOf(BootError);
        expect((err as BootError).message).toMatch(message);
      });
    }
  });
});
