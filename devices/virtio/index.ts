/**
 * virtio on the virt board: the eight virtio-mmio slots, filled with the VM's devices.
 *
 * Slot order follows QEMU: `-device virtio-*-device` fills the transports from the highest
 * address down, and the DTB lists the highest slot first, which is the order Linux probes them
 * in. So the first device here lands in slot 7 (0x10008000) and is probed first: the first disk
 * becomes /dev/vda.
 */
import type { MmioBus } from '../platform/bus.js';
import type { LogSink } from '../platform/guest-log.js';
import { VIRT } from '../platform/memory-map.js';
import type { Plic } from '../platform/plic.js';
import type { VirtioDevice } from './device.js';
import { VirtioMmioTransport } from './mmio-transport.js';
import { RingProcessor, type RingHost } from './ring.js';

export { VirtioMmioTransport } from './mmio-transport.js';
export { VirtioPciTransport } from './pci-transport.js';
export type { VirtioDevice } from './device.js';
export { RingProcessor } from './ring.js';
export { VirtioRng } from './rng/device.js';
export { VirtioConsole } from './console/device.js';
export { VirtioBlk } from './blk/device.js';
export { VirtioBalloon } from './balloon/device.js';

export interface VirtioSlotsOptions {
  bus: MmioBus;
  plic: Plic;
  /** The core: its ring processor exports and guest RAM. */
  core: RingHost;
  /** Devices in probe order (the first becomes slot 7). At most 8. */
  devices: readonly VirtioDevice[];
  /** The core's ring processor, when other transports (virtio-pci) share it. */
  rings?: RingProcessor;
  /** Devices whose transports offer packed virtqueues (VIRTIO_F_RING_PACKED). */
  packed?: ReadonlySet<VirtioDevice>;
  log?: LogSink;
}

/** Slot number of the n-th device (0-based): 7, 6, 5, ... */
export function slotOfDevice(n: number): number {
  return VIRT.virtio.count - 1 - n;
}

/** Maps all eight transports on the bus (empty ones answer device ID 0); returns them by slot. */
export function mapVirtioSlots(o: VirtioSlotsOptions): VirtioMmioTransport[] {
  if (o.devices.length > VIRT.virtio.count) {
    throw new RangeError(
      `at most ${VIRT.virtio.count} virtio-mmio devices (got ${o.devices.length})`,
    );
  }
  const rings = o.rings ?? new RingProcessor(o.core);
  const slots: VirtioMmioTransport[] = [];
  for (let slot = 0; slot < VIRT.virtio.count; slot++) {
    const n = VIRT.virtio.count - 1 - slot;
    const t = new VirtioMmioTransport({
      slot,
      irq: o.plic.line(VIRT.virtio.firstIrq + slot),
      rings,
      device: o.devices[n],
      packed: o.devices[n] !== undefined && (o.packed?.has(o.devices[n]!) ?? false),
      log: o.log,
    });
    o.bus.map(VIRT.virtio.base + slot * VIRT.virtio.size, VIRT.virtio.size, t);
    slots.push(t);
  }
  return slots;
}
