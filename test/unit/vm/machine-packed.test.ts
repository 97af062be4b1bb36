/**
 * Which virtio devices of a machine offer packed virtqueues: `virtioPacked` makes every one
 * offer VIRTIO_F_RING_PACKED (both transports, every device type), a disk's or NIC's own
 * `packed` wins over it, and by default none does (QEMU's default).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { defaultVmConfig, type VmConfig } from '../../../main/vm/config.js';
import { VirtMachine } from '../../../main/vm/machine.js';
import { F, bit } from '../../../devices/virtio/constants.js';

const dir = mkdtempSync(join(tmpdir(), 'wasmvisor-packed-'));
const img = (n: string): string => {
  const p = join(dir, n);
  writeFileSync(p, Buffer.alloc(1 << 20));
  return p;
};
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Offers packed rings, by device name. */
async function offers(cfg: Partial<VmConfig>): Promise<Record<string, boolean>> {
  const vm = await VirtMachine.open({ ...defaultVmConfig('p'), ...cfg });
  try {
    const out: Record<string, boolean> = {};
    for (const t of [...vm.virtio, ...vm.virtioPci]) {
      if (!t.device) continue;
      out[t.device.name] = (t.core.offeredFeatures & bit(F.ringPacked)) !== 0n;
    }
    return out;
  } finally {
    await vm.close();
  }
}

const disk = (path: string, more: object = {}) => ({
  path,
  format: 'raw' as const,
  readOnly: false,
  cache: 'writeback' as const,
  sched: 'noop' as const,
  ...more,
});

describe('packed virtqueues on the machine', () => {
  const all: Partial<VmConfig> = {
    console: 'hvc0',
    rng: true,
    balloon: { enabled: true, freePageReporting: true, deflateOnOom: false, statsPeriodS: 0 },
    nics: [
      { model: 'virtio', net: 'none' },
      { model: 'virtio-pci', net: 'none' },
    ],
  };

  it('none by default; every device, on both transports, with virtioPacked', async () => {
    const cfg = { ...all, disks: [disk(img('a')), disk(img('b'), { bus: 'pci' })] };
    const off = await offers(cfg);
    expect(Object.keys(off)).toHaveLength(7);
    expect(Object.values(off).every((v) => !v)).toBe(true);
    const on = await offers({ ...cfg, virtioPacked: true });
    expect(Object.keys(on).sort()).toEqual(Object.keys(off).sort());
    expect(Object.values(on).every((v) => v)).toBe(true);
  });

  it("a disk's or NIC's own choice wins over the VM's", async () => {
    const o = await offers({
      virtioPacked: true,
      disks: [disk(img('c'), { packed: false }), disk(img('d'))],
      nics: [
        { model: 'virtio', net: 'none', packed: false },
        { model: 'virtio-pci', net: 'none' },
      ],
    });
    expect(o).toMatchObject({
      'virtio-blk0': false,
      'virtio-blk1': true,
      'virtio-net0': false,
      'virtio-net1': true,
    });
    const p = await offers({
      disks: [disk(img('e'), { packed: true, bus: 'pci' })],
      nics: [{ model: 'virtio', net: 'none', packed: true }],
    });
    expect(p).toEqual({ 'virtio-blk0': true, 'virtio-net0': true });
  });
});
