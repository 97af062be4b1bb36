/** The device list's rows: board devices, and virtio slots with address, IRQ and driver state. */
import { describe, expect, it } from 'vitest';
import { deviceRows, virtioRows, type VirtioSlotView } from '../../../main/worker/device-rows.js';
import { VIRT } from '../../../devices/platform/memory-map.js';

describe('device rows', () => {
  it('formats board devices with their host-side back end', () => {
    const [uart] = deviceRows(
      [
        {
          name: 'uart0',
          model: 'ns16550a',
          base: 0x1000_0000,
          size: 0x100,
          irq: 10,
          location: 'bus',
        },
      ],
      'active',
    );
    expect(uart).toEqual({
      name: 'uart0',
      model: 'ns16550a',
      address: '0x10000000',
      size: 0x100,
      irq: 10,
      backend: 'console stream (host API)',
      state: 'active',
    });
  });

  it('lists occupied virtio slots at QEMU virt addresses, with the driver state', () => {
    const slots: VirtioSlotView[] = [...Array(8)].map((_, i) => ({
      name: `virtio-mmio${i}`,
      device: undefined,
      deviceStatus: 0,
    }));
    slots[7] = {
      name: 'virtio-mmio7',
      device: { name: 'virtio-rng', deviceId: 4 },
      deviceStatus: 15,
    };
    slots[6] = {
      name: 'virtio-mmio6',
      device: { name: 'virtio-console', deviceId: 3 },
      deviceStatus: 64 | 15,
    };
    slots[5] = {
      name: 'virtio-mmio5',
      device: { name: 'virtio-net0', deviceId: 1 },
      deviceStatus: 15,
      packedRings: true,
    };
    const rows = virtioRows(slots, VIRT.virtio);
    expect(rows.map((r) => [r.name, r.model, r.address, r.irq, r.backend, r.state])).toEqual([
      [
        'virtio-mmio5',
        'virtio-mmio net',
        '0x10006000',
        6,
        'TypeScript model',
        'active, packed rings',
      ],
      [
        'virtio-mmio6',
        'virtio-mmio console',
        '0x10007000',
        7,
        'console stream (host API)',
        'needs reset',
      ],
      ['virtio-mmio7', 'virtio-mmio entropy', '0x10008000', 8, 'host CSPRNG', 'active'],
    ]);
  });
});
