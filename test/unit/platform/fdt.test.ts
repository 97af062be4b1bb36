import { describe, expect, it } from 'vitest';
import { Fdt } from '../../../devices/platform/fdt.js';
import { decompile, hasDtc, indexDts } from './dts.js';

function sample(): Fdt {
  const fdt = new Fdt();
  fdt.root.setCells('#address-cells', [2]).setCells('#size-cells', [2]);
  const intc = fdt.root.addNode('intc@1000');
  const ph = intc.phandle();
  intc.setEmpty('interrupt-controller');
  const dev = fdt.root.addNode('dev@2000');
  dev.setString('compatible', 'acme,widget');
  dev.setStrings('clock-names', ['core', 'bus']);
  dev.setU32('interrupt-parent', ph);
  dev.setU64('big', 0x1_2345_6789n);
  dev.setCells('reg', [0, 0x2000, 0, 0x100]);
  dev.setBytes('mac', new Uint8Array([0x52, 0x54, 0, 0x12, 0x34, 0x56]));
  dev.addNode('child').setString('compatible', 'acme,child');
  fdt.reserve(0x8000_0000, 0x20_0000);
  return fdt;
}

describe('Fdt writer', () => {
  it('writes a version-17 header whose offsets and sizes add up', () => {
    const blob = sample().build();
    const h = new DataView(blob.buffer);
    expect(h.getUint32(0)).toBe(0xd00dfeed);
    expect(h.getUint32(4)).toBe(blob.length);
    expect(h.getUint32(20)).toBe(17);
    expect(h.getUint32(24)).toBe(16);
    const offStruct = h.getUint32(8);
    const offStrings = h.getUint32(12);
    const offRsv = h.getUint32(16);
    expect(offRsv % 8).toBe(0);
    expect(offStruct % 4).toBe(0);
    expect(offStruct + h.getUint32(36)).toBe(offStrings);
    expect(offStrings + h.getUint32(32)).toBe(blob.length);
    // Reservation map: one entry, then the all-zero terminator.
    expect(h.getBigUint64(offRsv)).toBe(0x8000_0000n);
    expect(h.getBigUint64(offRsv + 8)).toBe(0x20_0000n);
    expect(h.getBigUint64(offRsv + 16)).toBe(0n);
    // FDT_END closes the structure block.
    expect(h.getUint32(offStrings - 4)).toBe(9);
  });

  it('stores each property name once in the strings block', () => {
    const fdt = new Fdt();
    for (let i = 0; i < 5; i++) fdt.root.addNode(`n${i}`).setString('compatible', 'x');
    const blob = fdt.build();
    const h = new DataView(blob.buffer);
    const strings = Buffer.from(blob.subarray(h.getUint32(12))).toString('latin1');
    expect(strings).toBe('compatible\0');
  });

  it('hands out phandles once per node, in request order', () => {
    const fdt = new Fdt();
    const a = fdt.root.addNode('a');
    const b = fdt.root.addNode('b');
    expect(a.phandle()).toBe(1);
    expect(b.phandle()).toBe(2);
    expect(a.phandle()).toBe(1);
  });

  it('replaces a property set twice, and rejects bad names and duplicate nodes', () => {
    const fdt = new Fdt();
    const n = fdt.root.addNode('n');
    n.setU32('x', 1).setU32('x', 2);
    expect(n.properties).toHaveLength(1);
    expect(() => fdt.root.addNode('n')).toThrow(/duplicate/);
    expect(() => fdt.root.addNode('bad name')).toThrow(/bad node name/);
    expect(() => n.setU32('x', -1)).toThrow(/not a u32/);
    expect(() => n.setString('s', 'a\0b')).toThrow(/NUL/);
  });

  it.skipIf(!hasDtc)('decompiles with dtc to the tree that was built', () => {
    const { dts } = decompile(sample().build());
    expect(dts).toContain('/memreserve/\t0x0000000080000000 0x0000000000200000;');
    const idx = indexDts(dts);
    expect(idx.get('/')!.get('#address-cells')).toBe('<0x02>');
    expect(idx.get('/intc@1000')!.get('phandle')).toBe('<0x01>');
    expect(idx.get('/intc@1000')!.has('interrupt-controller')).toBe(true);
    const dev = idx.get('/dev@2000')!;
    expect(dev.get('compatible')).toBe('"acme,widget"');
    expect(dev.get('clock-names')).toBe('"core\\0bus"');
    expect(dev.get('interrupt-parent')).toBe('<0x01>');
    expect(dev.get('big')).toBe('<0x01 0x23456789>');
    expect(dev.get('reg')).toBe('<0x00 0x2000 0x00 0x100>');
    expect(dev.get('mac')).toBe('[52 54 00 12 34 56]');
    expect(idx.get('/dev@2000/child')!.get('compatible')).toBe('"acme,child"');
  });
});
