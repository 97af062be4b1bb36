/** The device list rows the host API shows, from the board's DeviceInfo. */
import type { DeviceInfo } from '../../devices/platform/board.js';
import type { DeviceRow } from '../host/api-types.js';
import type { DiskConfig } from '../vm/config.js';

/** What serves each board device on the host side (the devices with switchable back ends bring their own). */
const BOARD_BACKENDS: Record<string, string> = {
  uart0: 'console stream (host API)',
  rtc: 'host wall clock',
  test: 'VM power control',
};

export function deviceRows(devices: DeviceInfo[], state: string): DeviceRow[] {
  return devices.map((d) => ({
    name: d.name,
    model: d.model,
    address: '0x' + d.base.toString(16).padStart(8, '0'),
    size: d.size,
    irq: d.irq,
    backend:
      BOARD_BACKENDS[d.name] ?? (d.location === 'core' ? 'in the Wasm core' : 'TypeScript model'),
    state,
  }));
}

/** The part of a virtio-mmio transport the device list reads. */
export interface VirtioSlotView {
  readonly name: string;
  readonly device: { readonly name: string; readonly deviceId: number } | undefined;
  readonly deviceStatus: number;
}

/** Device type names by virtio device ID (virtio 1.2, 5). */
const VIRTIO_TYPES: Record<number, string> = { 1: 'net', 2: 'block', 3: 'console', 4: 'entropy' };

/** What serves each virtio device type on the host (virtio spec device IDs). */
const VIRTIO_BACKENDS: Record<number, string> = {
  3: 'console stream (host API)',
  4: 'host CSPRNG',
};

/** virtio-blkN serves the config's N-th disk: its image, cache mode and scheduler. */
function diskBackend(device: string, disks: readonly DiskConfig[]): string | undefined {
  const m = /^virtio-blk(\d+)$/.exec(device);
  const d = m ? disks[Number(m[1])] : undefined;
  if (!d) return undefined;
  return `${d.format} ${d.path} (${d.readOnly ? 'read-only, ' : ''}cache=${d.cache}, sched=${d.sched})`;
}

/** Device status bits (virtio 1.2, 2.1). */
const DRIVER_OK = 4;
const NEEDS_RESET = 64;
const FAILED = 128;

function virtioState(status: number): string {
  if (status & FAILED) return 'failed';
  if (status & NEEDS_RESET) return 'needs reset';
  if (status & DRIVER_OK) return 'active';
  return status ? 'probing' : 'no driver yet';
}

/**
 * Rows for the occupied virtio-mmio slots; `slots` is indexed by slot number (address and IRQ
 * follow from it, as on QEMU's virt board).
 */
export function virtioRows(
  slots: readonly VirtioSlotView[],
  layout: { base: number; size: number; firstIrq: number },
  disks: readonly DiskConfig[] = [],
): DeviceRow[] {
  const rows: DeviceRow[] = [];
  slots.forEach((t, slot) => {
    if (!t.device) return;
    rows.push({
      name: t.name,
      model: `virtio-mmio ${VIRTIO_TYPES[t.device.deviceId] ?? `device ${t.device.deviceId}`}`,
      address: '0x' + (layout.base + slot * layout.size).toString(16).padStart(8, '0'),
      size: layout.size,
      irq: layout.firstIrq + slot,
      backend:
        diskBackend(t.device.name, disks) ??
        VIRTIO_BACKENDS[t.device.deviceId] ??
        'TypeScript model',
      state: virtioState(t.deviceStatus),
    });
  });
  return rows;
}
