/**
 * The machine's virtio wiring: all eight slots mapped (empty ones answer device ID 0), devices
 * filled from slot 7 down as QEMU does (so the first disk is probed first: /dev/vda), console
 * input routed to hvc0 when chosen, and the devices' counters in machine.stats().
 */
import { describe, it, expect } from 'vitest';
import { VirtMachine } from '../../../main/vm/machine.js';
import { defaultVmConfig } from '../../../main/vm/config.js';
import { loadBootImages } from '../../../main/vm/images.js';
import type { BlockBackend } from '../../../devices/block/backend.js';
import { VIRT } from '../../../devices/platform/memory-map.js';
import { MMIO, MMIO_MAGIC } from '../../../devices/virtio/constants.js';

const disk = (name: string): BlockBackend => ({
  name,
  size: 1 << 20,
  readOnly: false,
  read: async () => {},
  write: async () => {},
  flush: async () => {},
  discard: async () => {},
  writeZeroes: async () => {},
  close: async () => {},
});

function machine(opts: { disks?: number; rng?: boolean; hvc?: boolean }): VirtMachine {
  const images = loadBootImages(defaultVmConfig());
  return new VirtMachine({
    memMiB: 64,
    ...images,
    bootargs: 'console=ttyS0',
    disks: Array.from({ length: opts.disks ?? 0 }, (_, i) => disk(`/images/disk${i}.img`)),
    rng: opts.rng,
    console: opts.hvc ? 'hvc0' : 'ttyS0',
    log: () => {},
  });
}

const slotBase = (n: number): number => VIRT.virtio.base + n * VIRT.virtio.size;

describe('virtio slots in the machine', () => {
  it('maps all eight slots; empty ones answer magic, version 2 and device ID 0', () => {
    const vm = machine({});
    for (let n = 0; n < 8; n++) {
      expect(vm.board.bus.read(slotBase(n) + MMIO.magic, 4)).toBe(MMIO_MAGIC);
      expect(vm.board.bus.read(slotBase(n) + MMIO.version, 4)).toBe(2);
      expect(vm.board.bus.read(slotBase(n) + MMIO.deviceId, 4)).toBe(0);
    }
    expect(vm.board.bus.fault).toBe(false);
    expect(vm.stats().virtio).toEqual({});
  });

  it('fills slots from the top: disks first (the first is /dev/vda), then hvc0, then rng', () => {
    const vm = machine({ disks: 2, rng: true, hvc: true });
    const id = (n: number): number => vm.board.bus.read(slotBase(n) + MMIO.deviceId, 4);
    expect([7, 6, 5, 4, 3].map(id)).toEqual([2, 2, 3, 4, 0]);
    expect(vm.virtio[7].name).toBe('virtio-blk0');
    expect(vm.virtio[6].name).toBe('virtio-blk1');
    expect(Object.keys(vm.stats().virtio)).toEqual([
      'virtio-rng0',
      'virtio-console0',
      'virtio-blk1',
      'virtio-blk0',
    ]);
    expect(vm.stats().virtio['virtio-blk0']).toMatchObject({ queue_notifies: 0, requests: 0 });
  });

  it('refuses a config naming disks that were not opened', () => {
    const cfg = { ...defaultVmConfig(), disks: [{ path: '/x.img' }] } as never;
    expect(() => VirtMachine.fromConfig(cfg)).toThrow(/VirtMachine.open/);
  });
});
