/**
 * fw_cfg played as Linux's qemu_fw_cfg driver and as firmware's DMA interface play it (big-endian
 * registers reached by little-endian loads and stores of 1, 2 or 4 bytes), and as a hostile guest.
 */
import { describe, expect, it } from 'vitest';
import {
  DMA,
  FW_CFG,
  FwCfg,
  FwCfgError,
  MAX_FILE_BYTES,
  type FwCfgFile,
} from '../../../devices/platform/fw-cfg.js';

const RAM_BASE = 0x8000_0000;
const swap16 = (v: number) => ((v & 0xff) << 8) | (v >>> 8);
const swap32 = (v: number) => new DataView(new Uint32Array([v]).buffer).getUint32(0, false);

function board(
  files: FwCfgFile[] = [{ name: 'opt/org.example/hello', data: new TextEncoder().encode('hi!') }],
) {
  const ram = new Uint8Array(1 << 20);
  const dev = new FwCfg({ memory: { ram, ramBase: RAM_BASE }, cpus: 3, files });
  /** iowrite16be(key, ctrl) */
  const select = (key: number) => dev.write(8, 2, swap16(key));
  /** ioread8_rep(data, buf, n) */
  const bytes = (n: number) => Uint8Array.from({ length: n }, () => dev.read(0, 1));
  /** The DMA descriptor at `at` in RAM, the transfer started as Linux starts it; control after. */
  const dma = (at: number, control: number, length: number, address: number | bigint): number => {
    const d = new DataView(ram.buffer, at, 16);
    d.setUint32(0, control);
    d.setUint32(4, length);
    d.setBigUint64(8, BigInt(address));
    const phys = BigInt(RAM_BASE + at);
    dev.write(16, 4, swap32(Number(phys >> 32n)));
    dev.write(20, 4, swap32(Number(phys & 0xffff_ffffn)));
    return d.getUint32(0);
  };
  /** The file directory as the driver reads it: name → [size, select]. */
  const dir = (): Map<string, [number, number]> => {
    select(FW_CFG.FILE_DIR);
    const count = new DataView(bytes(4).buffer).getUint32(0);
    const out = new Map<string, [number, number]>();
    for (let i = 0; i < count; i++) {
      const e = bytes(64);
      const v = new DataView(e.buffer);
      const name = new TextDecoder().decode(e.subarray(8)).replace(/\0.*$/s, '');
      out.set(name, [v.getUint32(0), v.getUint16(4)]);
    }
    return out;
  };
  return { dev, ram, select, bytes, dma, dir };
}

describe('fw_cfg (qemu,fw-cfg-mmio)', () => {
  it('answers the probe of Linux qemu_fw_cfg: signature, features, CPUs and RAM', () => {
    const { dev, select, bytes } = board();
    select(FW_CFG.SIGNATURE);
    expect(new TextDecoder().decode(bytes(4))).toBe('QEMU');
    select(FW_CFG.ID);
    expect(new DataView(bytes(4).buffer).getUint32(0, true)).toBe(3); // traditional + DMA
    select(FW_CFG.NB_CPUS);
    expect(new DataView(bytes(2).buffer).getUint16(0, true)).toBe(3);
    select(FW_CFG.RAM_SIZE);
    // An 8-byte load reaches the device as two 4-byte ones: the stream goes on across them.
    const lo = dev.read(0, 4);
    const hi = dev.read(4, 4);
    expect(hi * 2 ** 32 + lo).toBe(1 << 20);
    // The DMA register reads as "QEMU CFG".
    const sig = new Uint8Array(new Uint32Array([dev.read(16, 4), dev.read(20, 4)]).buffer);
    expect(new TextDecoder().decode(sig)).toBe('QEMU CFG');
  });

  it("lists QEMU's virt files and the user's, sorted, and serves their bytes", () => {
    const { select, bytes, dir, dev } = board([
      { name: 'opt/z', data: new Uint8Array([9]) },
      { name: 'opt/a', data: new TextEncoder().encode('alpha') },
    ]);
    const d = dir();
    expect([...d.keys()]).toEqual([
      'bios-geometry',
      'bootorder',
      'etc/boot-fail-wait',
      'opt/a',
      'opt/z',
    ]);
    expect([...d.values()].map(([, sel]) => sel)).toEqual([0x20, 0x21, 0x22, 0x23, 0x24]);
    expect(d.get('etc/boot-fail-wait')![0]).toBe(4);
    const [size, key] = d.get('opt/a')!;
    select(key);
    expect(new TextDecoder().decode(bytes(size))).toBe('alpha');
    // Past the end: zeros; selecting again rewinds.
    expect([...bytes(3)]).toEqual([0, 0, 0]);
    select(key);
    expect(new TextDecoder().decode(bytes(2))).toBe('al');
    expect(dev.userFiles()).toEqual(['opt/a', 'opt/z']);
  });

  it('copies an item into RAM by DMA, with select, skip and zeros past the end', () => {
    const { dma, ram, dir } = board();
    const [, key] = dir().get('opt/org.example/hello')!;
    ram.fill(0xee, 0x1000, 0x1010);
    expect(dma(0x100, (key << 16) | DMA.SELECT | DMA.READ, 2, RAM_BASE + 0x1000)).toBe(0);
    expect([...ram.subarray(0x1000, 0x1003)]).toEqual([0x68, 0x69, 0xee]); // "hi", then untouched
    // Where the last transfer stopped: "!" then zeros for the bytes past the end.
    expect(dma(0x100, DMA.READ, 4, RAM_BASE + 0x1004)).toBe(0);
    expect([...ram.subarray(0x1004, 0x1009)]).toEqual([0x21, 0, 0, 0, 0xee]);
    expect(dma(0x100, (key << 16) | DMA.SELECT | DMA.SKIP, 1, 0)).toBe(0);
    expect(dma(0x100, DMA.READ, 1, RAM_BASE + 0x1008)).toBe(0);
    expect(ram[0x1008]).toBe(0x69);
    // READ wins over WRITE (as in QEMU): the rest of the item, no error.
    expect(dma(0x100, DMA.READ | DMA.WRITE, 1, RAM_BASE + 0x1009)).toBe(0);
    expect(ram[0x1009]).toBe(0x21);
  });

  it('refuses hostile DMA requests without touching anything outside the buffer', () => {
    const { dev, dma, ram, dir } = board();
    const [, key] = dir().get('opt/org.example/hello')!;
    const before = ram.slice();
    // A write: no item is writable.
    expect(dma(0x100, (key << 16) | DMA.SELECT | DMA.WRITE, 3, RAM_BASE + 0x2000)).toBe(DMA.ERROR);
    // Buffers outside RAM, straddling its end, at 2^64 - 1.
    expect(dma(0x100, DMA.SELECT | DMA.READ, 4, 0x1000)).toBe(DMA.ERROR);
    expect(dma(0x100, DMA.SELECT | DMA.READ, 16, RAM_BASE + ram.length - 8)).toBe(DMA.ERROR);
    expect(dma(0x100, DMA.SELECT | DMA.READ, 4, 0xffff_ffff_ffff_ffffn)).toBe(DMA.ERROR);
    // A 4 GiB read: not in RAM, refused rather than filled.
    expect(dma(0x100, DMA.SELECT | DMA.READ, 0xffff_ffff, RAM_BASE)).toBe(DMA.ERROR);
    // Only the descriptors' control words changed.
    const changed = [...ram.keys()].filter((i) => ram[i] !== before[i]);
    expect(changed.every((i) => i >= 0x100 && i < 0x110)).toBe(true);
    expect(ram.subarray(0x2000, 0x2010).every((b) => b === 0)).toBe(true);
    // A descriptor outside RAM: dropped (nowhere to report), nothing thrown.
    expect(() => {
      dev.write(16, 4, 0);
      dev.write(20, 4, swap32(0x1000));
      dev.write(16, 4, swap32(0xffff_ffff));
      dev.write(20, 4, swap32(0xffff_fff8));
    }).not.toThrow();
    expect(dev.stats.errors).toBe(7);
    // Odd sizes and offsets, a selector of nothing, data writes: ignored, no exception.
    for (const off of [0, 1, 2, 3, 5, 7, 8, 9, 10, 12, 15, 16, 17, 21, 23]) {
      for (const size of [1, 2, 4] as const) {
        expect(() => dev.write(off, size, 0xdeadbeef)).not.toThrow();
        expect(() => dev.read(off, size)).not.toThrow();
      }
    }
    dev.write(8, 2, swap16(0x3fff));
    expect(dev.read(0, 4)).toBe(0);
  });

  it('refuses files QEMU would not take, or too much of them', () => {
    const mk = (files: FwCfgFile[]) => () => board(files);
    const one = new Uint8Array(1);
    expect(mk([{ name: 'etc/mine', data: one }])).toThrow(FwCfgError);
    expect(mk([{ name: 'opt/', data: one }])).toThrow(/opt\//);
    expect(mk([{ name: `opt/${'x'.repeat(52)}`, data: one }])).toThrow(/55 bytes/);
    expect(mk([{ name: 'opt/a\nb', data: one }])).toThrow(/control/);
    expect(
      mk([
        { name: 'opt/a', data: one },
        { name: 'opt/a', data: one },
      ]),
    ).toThrow(/twice/);
    expect(mk([{ name: 'opt/big', data: new Uint8Array(MAX_FILE_BYTES + 1) }])).toThrow(/bytes/);
    expect(mk([{ name: `opt/${'x'.repeat(51)}`, data: one }])).not.toThrow();
  });

  it('saves and restores a read in progress; refuses a garbled state', () => {
    const a = board();
    const [, key] = a.dir().get('opt/org.example/hello')!;
    a.select(key);
    a.bytes(1);
    const b = board();
    b.dev.restoreState(JSON.parse(JSON.stringify(a.dev.saveState())));
    expect(new TextDecoder().decode(b.bytes(2))).toBe('i!');
    for (const bad of [
      { version: 2, selector: 0, offset: 0, dmaHigh: 0 },
      { version: 1, selector: -1, offset: 0, dmaHigh: 0 },
      { version: 1, selector: 0, offset: 1.5, dmaHigh: 0 },
      { version: 1, selector: 0, offset: 0, dmaHigh: 2 ** 40 },
      null,
    ]) {
      expect(() => b.dev.restoreState(bad as never)).toThrow(/fw-cfg/);
    }
  });
});
