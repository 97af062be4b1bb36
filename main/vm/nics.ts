/**
 * The VM's network cards, built from its NicConfig list: each gets a NetPort on its back end;
 * e1000s and virtio-pci NICs are plugged into the PCIe host bridge in config order (slots 1, 2,
 * ... as QEMU's -device e1000 / virtio-net-pci do), virtio-nets become virtio-mmio devices. The
 * returned `Nic`s are what the host API switches while the guest runs (port.setLink /
 * setBackend / startCapture / stopCapture), whatever the model.
 */
import { randomBytes } from 'node:crypto';
import { E1000 } from '../../devices/e1000/device.js';
import { NetPort, openNetBackend } from '../../devices/net/index.js';
import type { PciHost } from '../../devices/pci/host.js';
import { VirtioNet } from '../../devices/virtio/net/device.js';
import { VirtioPciTransport } from '../../devices/virtio/pci-transport.js';
import type { RingProcessor } from '../../devices/virtio/ring.js';
import type { NicConfig, NicModel } from './config.js';

export interface Nic {
  /** "e1000-0", "virtio-net0" (virtio-nets are numbered across both transports). */
  readonly name: string;
  readonly model: NicModel;
  /** "52:54:00:12:34:56". */
  readonly mac: string;
  /** Link, back end and capture controls. */
  readonly port: NetPort;
  /** The NIC's own counters plus its port's (net_*). */
  stats(): Record<string, number>;
  /** virtio-pci: the device status the driver wrote (for the device list's state). */
  virtioStatus?(): number;
  /** virtio-pci: whether its driver took packed rings. */
  virtioPacked?(): boolean;
  reset(): void;
}

export function parseMac(s: string | undefined): Uint8Array {
  if (!s) {
    // QEMU's OUI with random low bytes, so two VMs on one switch do not collide by default.
    const m = new Uint8Array(6);
    m.set([0x52, 0x54, 0x00]);
    m.set(randomBytes(3), 3);
    return m;
  }
  return Uint8Array.from(s.split(':').map((h) => parseInt(h, 16)));
}

export const formatMac = (m: Uint8Array): string =>
  Array.from(m, (b) => b.toString(16).padStart(2, '0')).join(':');

export interface BuiltNics {
  nics: Nic[];
  /** The virtio-nets, to be placed on virtio-mmio slots. */
  virtio: VirtioNet[];
  /** Those of them that offer packed virtqueues. */
  packedVirtio: Set<VirtioNet>;
  /** The virtio-pci transports, already plugged into the host bridge. */
  virtioPci: VirtioPciTransport[];
  /** The e1000s, already plugged into the host bridge. */
  e1000s: E1000[];
}

export function buildNics(
  configs: readonly NicConfig[],
  o: {
    pci: PciHost;
    memory: { ram: Uint8Array; ramBase: number };
    /** The core's ring processor, which virtio-pci queues are allocated from. */
    rings: RingProcessor;
    /** virtio NICs offer packed virtqueues unless their config says `packed: false`. */
    packed?: boolean;
    log?: (m: string) => void;
  },
): BuiltNics {
  const nics: Nic[] = [];
  const virtio: VirtioNet[] = [];
  const packedVirtio = new Set<VirtioNet>();
  const virtioPci: VirtioPciTransport[] = [];
  const e1000Devices: E1000[] = [];
  const open = (spec: string) => openNetBackend(spec, { log: o.log });
  let e1000s = 0;
  let virtioNets = 0;
  for (const c of configs) {
    const mac = parseMac(c.mac);
    if (c.model === 'e1000') {
      const name = `e1000-${e1000s++}`;
      const port = new NetPort(name, open(c.net), open);
      const dev = new E1000({ name, mac, port, memory: o.memory, log: o.log });
      o.pci.plug(o.pci.freeSlot(), dev.pci);
      e1000Devices.push(dev);
      nics.push({
        name,
        model: 'e1000',
        mac: formatMac(mac),
        port,
        stats: () => dev.stats,
        reset: () => dev.reset(),
      });
    } else if (c.model === 'virtio-pci') {
      const name = `virtio-net${virtioNets++}`;
      const port = new NetPort(name, open(c.net), open);
      const dev = new VirtioNet(name, mac, port);
      const t = new VirtioPciTransport({
        device: dev,
        rings: o.rings,
        packed: c.packed ?? o.packed ?? false,
        log: o.log,
      });
      o.pci.plug(o.pci.freeSlot(), t.pci);
      virtioPci.push(t);
      nics.push({
        name,
        model: 'virtio-pci',
        mac: formatMac(mac),
        port,
        stats: () => dev.stats,
        virtioStatus: () => t.deviceStatus,
        virtioPacked: () => t.packedRings,
        reset: () => t.reset(),
      });
    } else {
      const name = `virtio-net${virtioNets++}`;
      const port = new NetPort(name, open(c.net), open);
      const dev = new VirtioNet(name, mac, port);
      virtio.push(dev);
      if (c.packed ?? o.packed ?? false) packedVirtio.add(dev);
      nics.push({
        name,
        model: 'virtio',
        mac: formatMac(mac),
        port,
        stats: () => dev.stats,
        reset: () => dev.reset(),
      });
    }
  }
  return { nics, virtio, packedVirtio, virtioPci, e1000s: e1000Devices };
}

/**
 * Starts the captures the configs ask for (capture=FILE); rejects naming the file. `append`: a
 * resumed VM goes on with the capture files it had (PcapWriter.open).
 */
export async function startConfiguredCaptures(
  nics: readonly Nic[],
  configs: readonly NicConfig[],
  o: { append?: boolean } = {},
): Promise<void> {
  for (let i = 0; i < nics.length; i++) {
    const path = configs[i]?.capture;
    if (!path) continue;
    try {
      await nics[i].port.startCapture(path, o);
    } catch (e) {
      throw new Error(`${nics[i].name}: cannot write capture ${path}: ${(e as Error).message}`);
    }
  }
}
