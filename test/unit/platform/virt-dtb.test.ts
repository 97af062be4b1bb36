import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildVirtDtb, type VirtDtbConfig } from '../../../devices/platform/virt-dtb.js';
import { decompile, hasDtc, indexDts, type DtsIndex } from './dts.js';

const base: VirtDtbConfig = {
  ramBase: 0x8000_0000,
  ramSize: 256 * 2 ** 20,
  bootargs: 'console=ttyS0 root=/dev/vda',
  initrd: { start: 0x8820_0000, end: 0x8824_93e0 },
};

function tree(cfg: VirtDtbConfig): DtsIndex {
  const { dts, warnings } = decompile(buildVirtDtb(cfg));
  expect(warnings).toBe('');
  return indexDts(dts);
}

const hasQemu = !spawnSync('qemu-system-riscv64', ['--version']).error;

describe.skipIf(!hasDtc)('virt board DTB', () => {
  it('describes one hart, its interrupt controller and the timebase', () => {
    const t = tree(base);
    expect(t.get('/cpus')!.get('timebase-frequency')).toBe('<0x989680>');
    const cpu = t.get('/cpus/cpu@0')!;
    expect(cpu.get('riscv,isa')).toBe(
      '"rv64imafdc_zicntr_zicsr_zifencei_zihintpause_zba_zbb_zbc_zbs_sstc"',
    );
    expect(cpu.get('riscv,isa-base')).toBe('"rv64i"');
    expect(cpu.get('riscv,isa-extensions')).toBe(
      '"i\\0m\\0a\\0f\\0d\\0c\\0zicntr\\0zicsr\\0zifencei\\0zihintpause\\0zba\\0zbb\\0zbc\\0zbs\\0sstc"',
    );
    expect(cpu.get('mmu-type')).toBe('"riscv,sv48"');
    expect(cpu.get('phandle')).toBe('<0x01>');
    const intc = t.get('/cpus/cpu@0/interrupt-controller')!;
    expect(intc.get('compatible')).toBe('"riscv,cpu-intc"');
    expect(intc.get('phandle')).toBe('<0x02>');
    expect(t.get('/cpus/cpu-map/cluster0/core0')!.get('cpu')).toBe('<0x01>');
    expect(t.get('/memory@80000000')!.get('reg')).toBe('<0x00 0x80000000 0x00 0x10000000>');
  });

  it.each([2, 4, 8])('describes %i harts with QEMU phandles, cpu-map and per-hart wiring', (n) => {
    const t = tree({ ...base, harts: n });
    const cpus = [...t.keys()].filter((k) => /^\/cpus\/cpu@\d+$/.test(k));
    expect(cpus).toEqual(Array.from({ length: n }, (_, h) => `/cpus/cpu@${h}`));
    // QEMU numbers the harts last to first: cpu@N-1 = 1, its intc = 2, ..., cpu@0 = 2N-1.
    const cell = (v: number) => `0x${v.toString(16).padStart(2, '0')}`;
    const cpuPh = (h: number) => 2 * (n - 1 - h) + 1;
    const intcPh = (h: number) => cpuPh(h) + 1;
    for (let h = 0; h < n; h++) {
      const cpu = t.get(`/cpus/cpu@${h}`)!;
      expect(cpu.get('reg')).toBe(`<${cell(h)}>`);
      expect(cpu.get('phandle')).toBe(`<${cell(cpuPh(h))}>`);
      expect(cpu.get('status')).toBe('"okay"');
      const intc = t.get(`/cpus/cpu@${h}/interrupt-controller`)!;
      expect(intc.get('phandle')).toBe(`<${cell(intcPh(h))}>`);
      expect(intc.get('compatible')).toBe('"riscv,cpu-intc"');
      expect(t.get(`/cpus/cpu-map/cluster0/core${h}`)!.get('cpu')).toBe(`<${cell(cpuPh(h))}>`);
    }
    expect(t.has(`/cpus/cpu@${n}`)).toBe(false);
    const perHart = (irqs: number[]) =>
      `<${Array.from({ length: n }, (_, h) => irqs.map((i) => `${cell(intcPh(h))} ${cell(i)}`))
        .flat()
        .join(' ')}>`;
    expect(t.get('/soc/clint@2000000')!.get('interrupts-extended')).toBe(perHart([3, 7]));
    const plic = t.get('/soc/plic@c000000')!;
    expect(plic.get('interrupts-extended')).toBe(perHart([11, 9]));
    expect(plic.get('phandle')).toBe(`<${cell(2 * n + 1)}>`);
    expect(t.get('/soc/serial@10000000')!.get('interrupt-parent')).toBe(`<${cell(2 * n + 1)}>`);
    expect(t.get('/soc/test@100000')!.get('phandle')).toBe(`<${cell(2 * n + 2)}>`);
    expect(t.get('/poweroff')!.get('regmap')).toBe(`<${cell(2 * n + 2)}>`);
  });

  it('refuses a hart count that is not a whole number of at least 1', () => {
    for (const harts of [0, -1, 1.5, NaN]) {
      expect(() => buildVirtDtb({ ...base, harts })).toThrow(/hart count/);
    }
  });

  it('wires CLINT and PLIC to the hart and every device to the PLIC', () => {
    const t = tree(base);
    const clint = t.get('/soc/clint@2000000')!;
    expect(clint.get('compatible')).toBe('"sifive,clint0\\0riscv,clint0"');
    expect(clint.get('interrupts-extended')).toBe('<0x02 0x03 0x02 0x07>');
    const plic = t.get('/soc/plic@c000000')!;
    expect(plic.get('compatible')).toBe('"sifive,plic-1.0.0\\0riscv,plic0"');
    expect(plic.get('interrupts-extended')).toBe('<0x02 0x0b 0x02 0x09>');
    expect(plic.get('riscv,ndev')).toBe('<0x5f>');
    expect(plic.get('phandle')).toBe('<0x03>');
    expect(plic.get('reg')).toBe('<0x00 0xc000000 0x00 0x600000>');
    const serial = t.get('/soc/serial@10000000')!;
    expect(serial.get('compatible')).toBe('"ns16550a"');
    expect(serial.get('interrupts')).toBe('<0x0a>');
    expect(serial.get('interrupt-parent')).toBe('<0x03>');
    expect(serial.get('clock-frequency')).toBe('"\\08@"'); // 3686400, as dtc prints it
    expect(t.get('/soc/rtc@101000')!.get('interrupts')).toBe('<0x0b>');
    for (let i = 0; i < 8; i++) {
      const node = t.get(`/soc/virtio_mmio@${(0x1000_1000 + i * 0x1000).toString(16)}`)!;
      expect(node.get('interrupts')).toBe(`<0x0${i + 1}>`);
      expect(node.get('interrupt-parent')).toBe('<0x03>');
    }
  });

  it('has the test finisher with poweroff and reboot through its syscon phandle', () => {
    const t = tree(base);
    const test = t.get('/soc/test@100000')!;
    expect(test.get('compatible')).toBe('"sifive,test1\\0sifive,test0\\0syscon"');
    expect(test.get('phandle')).toBe('<0x04>');
    expect(t.get('/poweroff')!.get('value')).toBe('<0x5555>');
    expect(t.get('/poweroff')!.get('regmap')).toBe('<0x04>');
    expect(t.get('/reboot')!.get('value')).toBe('<0x7777>');
    expect(t.get('/reboot')!.get('compatible')).toBe('"syscon-reboot"');
  });

  it('describes the PCIe host bridge with QEMU ranges and INTx swizzle', () => {
    const pci = tree(base).get('/soc/pci@30000000')!;
    expect(pci.get('compatible')).toBe('"pci-host-ecam-generic"');
    expect(pci.get('bus-range')).toBe('<0x00 0xff>');
    expect(pci.get('ranges')).toBe(
      '<0x1000000 0x00 0x00 0x00 0x3000000 0x00 0x10000 ' +
        '0x2000000 0x00 0x40000000 0x00 0x40000000 0x00 0x40000000 ' +
        '0x3000000 0x04 0x00 0x04 0x00 0x04 0x00>',
    );
    expect(pci.get('interrupt-map-mask')).toBe('<0x1800 0x00 0x00 0x07>');
    const map = pci.get('interrupt-map')!.slice(1, -1).split(' ').map(Number);
    expect(map).toHaveLength(16 * 6);
    for (let i = 0; i < 16; i++) {
      const [devfn, , , pin, parent, irq] = map.slice(i * 6, i * 6 + 6);
      const slot = devfn >> 11;
      expect(parent).toBe(3);
      expect(irq).toBe(32 + ((slot + pin - 1) % 4));
    }
  });

  it('puts the high PCIe window at the next 16 GiB boundary above RAM', () => {
    const pci = tree({ ...base, ramSize: 17 * 2 ** 30 }).get('/soc/pci@30000000')!;
    expect(pci.get('ranges')).toContain('0x3000000 0x08 0x00 0x08 0x00 0x04 0x00>');
  });

  it('fills /chosen from the config', () => {
    const seed = new Uint8Array(32).fill(7);
    const chosen = tree({ ...base, rngSeed: seed }).get('/chosen')!;
    expect(chosen.get('stdout-path')).toBe('"/soc/serial@10000000"');
    expect(chosen.get('bootargs')).toBe('"console=ttyS0 root=/dev/vda"');
    expect(chosen.get('linux,initrd-start')).toBe('<0x88200000>');
    expect(chosen.get('linux,initrd-end')).toBe('<0x882493e0>');
    expect(chosen.get('rng-seed')).toBe(`<${Array(8).fill('0x7070707').join(' ')}>`);
    const bare = tree({ ramBase: 0x8000_0000, ramSize: 2 ** 27 }).get('/chosen')!;
    expect([...bare.keys()]).toEqual(['stdout-path']);
    const high = tree({ ...base, initrd: { start: 0x1_0000_0000, end: 0x1_0010_0000 } });
    expect(high.get('/chosen')!.get('linux,initrd-end')).toBe('<0x01 0x100000>');
  });

  it('lists only the requested virtio slots and can leave out PCI', () => {
    const t = tree({ ...base, virtioSlots: [0, 3], pci: false });
    const virtio = [...t.keys()].filter((k) => k.includes('virtio_mmio'));
    expect(virtio).toEqual(['/soc/virtio_mmio@10004000', '/soc/virtio_mmio@10001000']);
    expect(t.has('/soc/pci@30000000')).toBe(false);
    expect(() => buildVirtDtb({ ...base, virtioSlots: [8] })).toThrow(/slot 8/);
    expect(() => buildVirtDtb({ ...base, isaExtensions: ['Zicsr'] })).toThrow(/ISA extension/);
  });

  it.skipIf(!hasQemu).each([1, 2, 4])(
    'matches QEMU -M virt -smp %i node for node, except what we leave out',
    (harts) => {
      const dir = mkdtempSync(join(tmpdir(), 'virt-dtb-'));
      try {
        const file = join(dir, 'qemu.dtb');
        // Any kernel file will do: QEMU only needs one to accept -append and -initrd. The initrd
        // size makes QEMU's linux,initrd-end equal base.initrd.end.
        writeFileSync(join(dir, 'Image'), new Uint8Array(4096));
        writeFileSync(join(dir, 'initrd'), new Uint8Array(base.initrd!.end - base.initrd!.start));
        const r = spawnSync('qemu-system-riscv64', [
          '-M',
          `virt,dumpdtb=${file}`,
          '-m',
          '256M',
          '-smp',
          String(harts),
          '-nographic',
          '-append',
          base.bootargs!,
          '-kernel',
          join(dir, 'Image'),
          '-initrd',
          join(dir, 'initrd'),
        ]);
        if (r.status !== 0) throw new Error(r.stderr.toString());
        const qemu = indexDts(decompile(readFileSync(file)).dts);
        const ours = tree({ ...base, harts });
        const leftOut = /^\/(flash@|platform-bus@|pmu|soc\/pmu)/;
        // Differences we mean to have: the ISA properties (we advertise what our core implements;
        // QEMU's set changes between versions), rng-seed (optional), ndev (QEMU 7.2 says 96,
        // newer 95), and #address-cells on the cpu intc (silences a dtc warning).
        const isaProp = /^\/cpus\/cpu@\d+:riscv,/;
        const expected = new Set([
          ...Array.from(
            { length: harts },
            (_, h) => `/cpus/cpu@${h}/interrupt-controller:#address-cells`,
          ),
          '/chosen:rng-seed',
          '/soc/plic@c000000:riscv,ndev',
        ]);
        const diffs: string[] = [];
        for (const path of new Set([...qemu.keys(), ...ours.keys()])) {
          if (leftOut.test(path)) continue;
          const q = qemu.get(path);
          const o = ours.get(path);
          if (!q || !o) {
            diffs.push(`${path}: only in ${q ? 'QEMU' : 'ours'}`);
            continue;
          }
          for (const prop of new Set([...q.keys(), ...o.keys()])) {
            const key = `${path}:${prop}`;
            if (q.get(prop) !== o.get(prop) && !expected.has(key) && !isaProp.test(key)) {
              diffs.push(`${path}:${prop} QEMU ${q.get(prop)} ours ${o.get(prop)}`);
            }
          }
        }
        expect(diffs).toEqual([]);
        // Same probe order of the /soc children.
        const socOrder = (t: DtsIndex) =>
          [...t.keys()].filter((k) => /^\/soc\/[^/]+$/.test(k) && ours.has(k) && qemu.has(k));
        expect(socOrder(ours)).toEqual(socOrder(qemu));
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );
});
