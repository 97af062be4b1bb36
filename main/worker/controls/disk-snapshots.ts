/**
 * A disk's image as the device manager shows it (format, sizes, backing chain, cor counter,
 * internal snapshots), and its internal snapshots created, applied and deleted while the VM is
 * paused: the guest's outstanding writes are flushed first, and the snapshot operation runs
 * alone on the open image (guest I/O waits for it).
 */
import { stat } from 'node:fs/promises';
import type { BlockBackend, Disk } from '../../../devices/block/index.js';
import {
  applySnapshot,
  createSnapshot,
  deleteSnapshot,
  listSnapshots,
  Qcow2Image,
  SnapshotError,
} from '../../../devices/block/qcow2/index.js';
import type { DeviceRow, DiskImageInfo, DiskSnapshotAction } from '../../host/api-types.js';
import type { DiskConfig } from '../../vm/config.js';
import { ControlError, type ControlContext } from '../device-controls.js';
import { findDisk } from './disk-controls.js';

/** Bytes a file takes on the host; an unlinked overlay (snapshot=on) has no name to stat. */
async function fileBytes(path: string, fallback: number): Promise<number> {
  try {
    return (await stat(path)).blocks * 512;
  } catch {
    return fallback;
  }
}

function chainOf(img: Qcow2Image): string[] {
  const out: string[] = [];
  for (let b: BlockBackend | undefined = img.backing; b;) {
    out.push(b.name);
    b = b instanceof Qcow2Image ? b.backing : undefined;
  }
  return out;
}

/** The one cipher the LUKS layer opens (header.ts refuses others). */
const LUKS_CIPHER = 'LUKS aes-xts-plain64';

export async function diskImageInfo(disk: Disk, cfg: DiskConfig): Promise<DiskImageInfo> {
  const img = disk.image;
  if (!img) {
    return {
      format: cfg.format,
      path: cfg.path,
      virtualSize: disk.size,
      actualSize: await fileBytes(cfg.path, disk.size),
      backingChain: [],
      ...(cfg.format === 'luks' ? { encryption: LUKS_CIPHER } : {}),
    };
  }
  const snaps = await listSnapshots(img.metadataFile).catch(() => []);
  const s = img.stats();
  return {
    format: 'qcow2',
    path: img.name,
    virtualSize: img.size,
    actualSize: await fileBytes(img.name, s.fileBytes),
    backingChain: chainOf(img),
    ...(img.encrypted ? { encryption: LUKS_CIPHER } : {}),
    ...(cfg.snapshot ? { temporary: true } : {}),
    ...(cfg.cor ? { cor: { clusters: s.corClusters } } : {}),
    snapshots: snaps.map((x) => ({
      id: x.id,
      name: x.name,
      dateSec: x.dateSec,
      vmStateSize: x.vmStateSize,
    })),
  };
}

/** The image facts of every disk of the VM, by device name. */
export async function diskInfos(ctx: ControlContext): Promise<Map<string, DiskImageInfo>> {
  const out = new Map<string, DiskImageInfo>();
  for (let i = 0; i < ctx.config.disks.length; i++) {
    const h = findDisk(`virtio-blk${i}`, ctx);
    if (h) out.set(`virtio-blk${i}`, await diskImageInfo(h.sw.disk, h.cfg));
  }
  return out;
}

/** Puts each disk's image facts into its row. */
export function withDiskInfo(rows: DeviceRow[], infos: ReadonlyMap<string, DiskImageInfo>) {
  return rows.map((r) => {
    const disk = infos.get(r.name);
    return disk ? { ...r, disk } : r;
  });
}

const VERB: Record<DiskSnapshotAction, string> = {
  create: 'creating',
  apply: 'applying',
  delete: 'deleting',
};

export async function diskSnapshot(
  device: string,
  action: DiskSnapshotAction,
  name: string,
  ctx: ControlContext,
): Promise<string> {
  const h = findDisk(device, ctx);
  if (!h) throw new ControlError(`${device}: no such disk`);
  if (!ctx.machine.paused) {
    throw new ControlError(`${device}: pause the VM before ${VERB[action]} a snapshot`);
  }
  const img = h.sw.disk.image;
  if (!img) throw new ControlError(`${device}: a ${h.cfg.format} image has no internal snapshots`);
  if (h.sw.readOnly) throw new ControlError(`${device}: the disk is read-only`);
  // What the guest wrote before the pause goes into the image before the snapshot is taken.
  await h.sw.disk.flush();
  const op = { create: createSnapshot, apply: applySnapshot, delete: deleteSnapshot }[action];
  let s;
  try {
    s = await img.withMetadata((m) => op(m, name));
  } catch (e) {
    if (e instanceof SnapshotError) throw new ControlError(`${device}: ${e.message}`);
    throw e;
  }
  const temp = h.cfg.snapshot ? ' (in the snapshot=on overlay: gone when the VM ends)' : '';
  switch (action) {
    case 'create':
      return `${device}: snapshot ${s.id} "${s.name}" created${temp}`;
    case 'apply':
      return `${device}: reverted to snapshot "${s.name}" — reset the VM: the running guest still caches the old contents`;
    case 'delete':
      return `${device}: snapshot "${s.name}" deleted`;
  }
}
