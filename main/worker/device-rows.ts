/** The device list rows the host API shows, from the board's DeviceInfo. */
import type { DeviceInfo } from '../../devices/platform/board.js';
import type { DeviceRow } from '../host/api-types.js';
import type { DiskConfig } from '../vm/config.js';
import { PciHost } from '../../devices/pci/host.js';

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
      d.backend ??
      BOARD_BACKENDS[d.name] ??
      (d.location === 'core' ? 'in the Wasm core' : 'TypeScript model'),
    state,
  }));
}

/** The part of a virtio-mmio transport the device list reads. */
export interface VirtioSlotView {
  readonly name: string;
  readonly device:
    | {
        readonly name: string;
        readonly deviceId: number;
        /** A shared folder (virtio-9p): the host folder, its tag, and whether it is read-only. */
        readonly root?: string;
        readonly tag?: string;
        readonly readOnly?: boolean;
        /** A shared folder the guest has mounted (it holds fids). */
        readonly inUse?: boolean;
      }
    | undefined;
  readonly deviceStatus: number;
  /** The driver took packed virtqueues. */
  readonly packedRings?: boolean;
}

/** Device type names by virtio device ID (virtio 1.2, 5). */
const VIRTIO_TYPES: Record<number, string> = {
  1: 'net',
  2: 'block',
  3: 'console',
  4: 'entropy',
  5: 'balloon',
  9: '9p (shared folder)',
};

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

/** A shared folder's host folder and tag (virtio-9p); undefined for other devices. */
function shareBackend(d: NonNullable<VirtioSlotView['device']>): string | undefined {
  if (d.root === undefined) return undefined;
  return `host folder ${d.root} (tag ${d.tag}${d.readOnly ? ', read-only' : ''})`;
}

/** Device status bits (virtio 1.2, 2.1). */
const DRIVER_OK = 4;
const NEEDS_RESET = 64;
const FAILED = 128;

/**
 * The driver's state; an active one on packed rings says so (split rings are the default), and an
 * active shared folder whether the guest has it mounted.
 */
function virtioState(status: number, packed = false, mounted?: boolean): string {
  if (status & FAILED) return 'failed';
  if (status & NEEDS_RESET) return 'needs reset';
  if (status & DRIVER_OK) {
    const active = packed ? 'active, packed rings' : 'active';
    return mounted === undefined ? active : `${active}, ${mounted ? 'mounted' : 'not mounted'}`;
  }
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
        shareBackend(t.device) ??
        VIRTIO_BACKENDS[t.device.deviceId] ??
        'TypeScript model',
      state: virtioState(t.deviceStatus, t.packedRings, t.device.inUse),
    });
  });
  return rows;
}

/** The part of a PCIe function the device list reads. */
export interface PciFunctionView {
  readonly name: string;
  readonly bars: readonly ({ readonly size: number } | undefined)[];
  barEnabled(i: number): boolean;
  barAddress(i: number): number;
}

/** The part of a NIC the device list reads (main/vm/nics.ts). */
export interface NicView {
  readonly name: string;
  readonly model: string;
  readonly mac: string;
  readonly port: {
    readonly backendSpec: string;
    readonly linkUp: boolean;
    readonly carrier: boolean;
    readonly capturePath: string | undefined;
  };
  /** virtio-pci NICs: the device status their driver wrote. */
  virtioStatus?(): number;
  /** virtio-pci NICs: whether their driver took packed rings. */
  virtioPacked?(): boolean;
}

/**
 * Rows for the NICs on PCIe (e1000, virtio-pci): address and size of BAR0 once the guest
 * assigned it, the INTx line of the slot's pin A; a virtio-pci NIC's state follows its driver as
 * on virtio-mmio. (virtio-nets on virtio-mmio are listed with the virtio-mmio slots.)
 */
export function pciNicRows(
  functions: readonly { slot: number; fn: PciFunctionView }[],
  nics: readonly NicView[],
): DeviceRow[] {
  const rows: DeviceRow[] = [];
  for (const { slot, fn } of functions) {
    const nic = nics.find((n) => n.name === fn.name);
    if (!nic) continue;
    const mapped = fn.barEnabled(0);
    const chip = nic.model === 'virtio-pci' ? 'virtio-net 1af4:1041' : '82540EM';
    const status = nic.virtioStatus?.();
    rows.push({
      name: nic.name,
      model: `pci 00:${slot.toString(16).padStart(2, '0')}.0 ${nic.model} (${chip})`,
      address: mapped ? '0x' + fn.barAddress(0).toString(16).padStart(8, '0') : 'unassigned',
      size: fn.bars[0]?.size ?? 0,
      irq: PciHost.irqOf(slot, 1),
      backend: '',
      state:
        status !== undefined
          ? virtioState(status, nic.virtioPacked?.())
          : mapped
            ? 'active'
            : 'no driver yet',
    });
  }
  return rows;
}

/**
 * Rows for virtio devices on PCIe other than NICs (disks with bus=pci): the function's slot,
 * BAR0 and INTx line, the device's back end, and its driver's state as for virtio-mmio.
 */
export function pciVirtioRows(
  functions: readonly { slot: number; fn: PciFunctionView }[],
  transports: readonly VirtioSlotView[],
  disks: readonly DiskConfig[] = [],
): DeviceRow[] {
  const rows: DeviceRow[] = [];
  for (const { slot, fn } of functions) {
    const t = transports.find((x) => x.name === fn.name);
    if (!t?.device) continue;
    const type = VIRTIO_TYPES[t.device.deviceId] ?? `device ${t.device.deviceId}`;
    const mapped = fn.barEnabled(0);
    rows.push({
      name: t.name,
      model: `pci 00:${slot.toString(16).padStart(2, '0')}.0 virtio-pci ${type}`,
      address: mapped ? '0x' + fn.barAddress(0).toString(16).padStart(8, '0') : 'unassigned',
      size: fn.bars[0]?.size ?? 0,
      irq: PciHost.irqOf(slot, 1),
      backend:
        diskBackend(t.device.name, disks) ??
        shareBackend(t.device) ??
        VIRTIO_BACKENDS[t.device.deviceId] ??
        'TypeScript model',
      state: virtioState(t.deviceStatus, t.packedRings, t.device.inUse),
    });
  }
  return rows;
}

/** What a NIC is plugged into, for its row: "switch:lab, link up, mac …, capture FILE". */
export function nicBackend(n: NicView): string {
  const p = n.port;
  const link = !p.linkUp ? 'link down' : p.carrier ? 'link up' : 'no carrier';
  const cap = p.capturePath ? `, capture ${p.capturePath}` : '';
  return `${p.backendSpec} (${link}, mac ${n.mac}${cap})`;
}

/** Puts each NIC's back end into its row (the rows of other devices stay as they are). */
export function withNicBackends(rows: DeviceRow[], nics: readonly NicView[]): DeviceRow[] {
  return rows.map((r) => {
    const n = nics.find((x) => x.name === r.name);
    return n ? { ...r, backend: nicBackend(n) } : r;
  });
}
