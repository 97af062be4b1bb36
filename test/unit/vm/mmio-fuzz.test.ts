/**
 * The whole board as a hostile guest sees it: seeded random loads and stores of every width to
 * every device register the machine maps (board devices, fw_cfg, the eight virtio-mmio slots, the
 * PCIe ECAM and, once assigned, the BARs of an e1000, a virtio-net and a virtio-blk on PCIe),
 * with guest RAM full of random bytes so that every descriptor, ring and DMA address a device
 * follows is garbage. Nothing may throw out of a device model, no promise may reject unhandled,
 * and the machine must still close cleanly. A failure names the seed and the access.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { defaultVmConfig, type VmConfig } from '../../../main/vm/config.js';
import { VirtMachine } from '../../../main/vm/machine.js';
import { VIRT } from '../../../devices/platform/memory-map.js';
import { xorshift } from '../../seeded-random.js';

const dir = mkdtempSync(join(tmpdir(), 'wasmvisor-mmio-fuzz-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Assigns every PCI function's BARs in the MMIO/PIO windows and enables decoding and DMA. */
function assignBars(vm: VirtMachine): void {
  let mem = VIRT.pcieMmio.base;
  let io = 0x1000;
  for (const { fn, slot } of vm.pci.functions()) {
    const cfg = VIRT.pcieEcam.base + (slot << 15);
    fn.bars.forEach((b, i) => {
      if (!b) return;
      const at = b.kind === 'io' ? io : mem;
      const aligned = Math.ceil(at / b.size) * b.size;
      vm.board.bus.write(cfg + 0x10 + 4 * i, 4, aligned);
      if (b.kind === 'io') io = aligned + b.size;
      else mem = aligned + b.size;
    });
    vm.board.bus.write(cfg + 4, 2, 0x7); // I/O, memory, bus master
  }
}

/**
 * Drives a virtio-mmio slot as far as a driver would (features, queues at random places in RAM,
 * DRIVER_OK) and kicks every queue, so the ring walks meet the garbage; `rnd` picks the places.
 */
function kickVirtioMmio(vm: VirtMachine, base: number, rnd: (n: number) => number): void {
  const w = (off: number, v: number) => vm.board.bus.write(base + off, 4, v >>> 0);
  w(0x70, 0); // reset
  w(0x70, 1 | 2);
  for (const sel of [0, 1]) {
    w(0x14, sel);
    w(0x24, sel);
    w(0x20, vm.board.bus.read(base + 0x10, 4)); // take every feature offered
  }
  w(0x70, 1 | 2 | 8);
  const pages = vm.core.ram.length / 4096;
  for (let q = 0; q < 4; q++) {
    w(0x30, q);
    const max = vm.board.bus.read(base + 0x34, 4);
    if (max === 0) continue;
    // A size the device takes and rings where they may be: what is in them is the garbage.
    w(0x38, Math.min(max, 1 << rnd(9)));
    for (const off of [0x80, 0x90, 0xa0]) {
      w(off, VIRT.ram.base + 4096 * rnd(pages - 8));
      w(off + 4, 0);
    }
    w(0x44, 1);
  }
  w(0x70, 1 | 2 | 8 | 4);
  for (let q = 0; q < 4; q++) w(0x50, q);
}

/** Points the e1000's rings at random RAM, enables both directions and moves the tails. */
function kickE1000(vm: VirtMachine, bar0: number, rnd: (n: number) => number): void {
  const w = (off: number, v: number) => vm.board.bus.write(bar0 + off, 4, v >>> 0);
  const ram = () => VIRT.ram.base + (rnd(vm.core.ram.length) & ~15);
  w(0xd0, 0xffff_ffff); // IMS
  for (const ring of [0x2800, 0x3800]) {
    w(ring, ram());
    w(ring + 4, 0);
    w(ring + 8, (1 + rnd(64)) * 128);
    w(ring + 0x10, rnd(64));
    w(ring + 0x18, rnd(64));
  }
  w(0x100, 2 | rnd(0xffff_ffff)); // RCTL.EN and the rest at random
  w(0x400, 2 | rnd(0xffff_ffff)); // TCTL.EN
  w(0x3818, rnd(1024)); // TDT: transmit whatever the descriptors say
}

async function fuzz(seed: number, accesses: number): Promise<void> {
  const rnd = xorshift(seed);
  const disk = join(dir, `disk-${seed}.img`);
  const disk2 = join(dir, `disk2-${seed}.img`);
  writeFileSync(disk, new Uint8Array(1 << 20));
  writeFileSync(disk2, new Uint8Array(1 << 20));
  const cfg: VmConfig = {
    ...defaultVmConfig(`fuzz${seed}`),
    memMiB: 32,
    console: 'hvc0',
    rng: true,
    disks: [
      { path: disk, format: 'raw', readOnly: false, cache: 'writeback', sched: 'noop' },
      { path: disk2, format: 'raw', readOnly: true, cache: 'writeback', sched: 'noop', bus: 'pci' },
    ],
    nics: [
      { model: 'e1000', net: 'none' },
      { model: 'virtio', net: 'none' },
      { model: 'virtio-pci', net: 'none' },
    ],
    balloon: { enabled: true, freePageReporting: true, deflateOnOom: true, statsPeriodS: 1 },
    fwCfg: [{ name: 'opt/fuzz', string: 'x'.repeat(100) }],
  };
  const vm = await VirtMachine.open(cfg, () => {});
  try {
    const ram = vm.core.ram;
    for (let i = 0; i < ram.length; i += 4) {
      // Mostly small numbers and addresses inside RAM, so that chains go somewhere.
      const v =
        rnd(4) === 0
          ? rnd(0x1_0000)
          : rnd(2) === 0
            ? VIRT.ram.base + rnd(ram.length)
            : rnd(0xffff_ffff);
      new DataView(ram.buffer, ram.byteOffset + i, 4).setUint32(0, v >>> 0, true);
    }
    assignBars(vm);
    const regions = vm.board.bus
      .regions()
      .filter((r) => r.device.name !== 'test') // its writes end the VM: not a device bug
      .map((r) => ({ name: r.device.name, base: r.base, size: Math.min(r.size, 0x1_0000) }));
    expect(regions.length).toBeGreaterThan(12);
    const interesting = [0, 1, 2, 0xff, 0xffff, 0xffff_ffff, 0x8000_0000, VIRT.ram.base + 0x1000];
    const slots = Array.from(
      { length: VIRT.virtio.count },
      (_, i) => VIRT.virtio.base + i * VIRT.virtio.size,
    );
    const e1000 = vm.pci.functions().find((f) => f.fn.name.startsWith('e1000'))!.fn;
    for (let n = 0; n < accesses; n++) {
      if (n % 1000 === 0) {
        try {
          // The random accesses below move BARs and turn decoding off through ECAM: set them
          // up again, as a driver would after a reset.
          assignBars(vm);
          for (const b of slots) kickVirtioMmio(vm, b, rnd);
          kickE1000(vm, e1000.barAddress(0), rnd);
        } catch (e) {
          throw new Error(`seed ${seed}, driver-shaped kicks before access ${n}: ${e}`);
        }
      }
      const r = regions[rnd(regions.length)]!;
      const size = ([1, 2, 4] as const)[rnd(3)]!;
      // Register offsets are small and aligned more often than not.
      const off = rnd(3) === 0 ? rnd(r.size) : (rnd(Math.min(r.size, 0x200)) & ~(size - 1)) >>> 0;
      const addr = r.base + Math.min(off, r.size - size);
      const value = rnd(3) === 0 ? interesting[rnd(interesting.length)]! : rnd(0xffff_ffff);
      const write = rnd(2) === 0;
      try {
        if (write) vm.board.bus.write(addr, size, value);
        else vm.board.bus.read(addr, size);
      } catch (e) {
        const what = `${write ? 'write' : 'read'} ${r.name}+0x${(addr - r.base).toString(16)}/${size}`;
        throw new Error(`seed ${seed}, access ${n} (${what} 0x${value.toString(16)}): ${e}`);
      }
      // Let disk completions and timers run now and then.
      if (n % 2000 === 1999) await new Promise((res) => setTimeout(res, 0));
    }
    await new Promise((res) => setTimeout(res, 20));
    // The kicks reached the devices' request paths (so the garbage was walked, not ignored).
    const st = vm.stats();
    const walked = Object.values(st.virtio).map(
      (d) => (d.queue_notifies ?? 0) - (d.notifies_ignored ?? 0),
    );
    expect(walked.filter((k) => k > 0).length).toBeGreaterThanOrEqual(4);
    const e = st.nics?.['e1000-0'] ?? {};
    expect((e.tx_packets ?? 0) + (e.tx_bad_descriptors ?? 0) + (e.tx_dropped ?? 0)).toBeGreaterThan(
      0,
    );
  } finally {
    await vm.close();
  }
}

describe('every device register under a hostile guest (seeded)', () => {
  for (const seed of [1, 2, 3]) {
    it(`seed ${seed}: 60,000 random accesses, nothing thrown`, () => fuzz(seed, 60_000), 60_000);
  }
});
