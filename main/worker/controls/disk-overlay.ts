/**
 * `snapshot_blkdev DEVICE FILE` (QEMU's external snapshot, blockdev-snapshot-sync): a running
 * disk is switched to a new qcow2 overlay whose backing file is the disk's current image. The
 * guest notices nothing — no reset, no I/O error; its requests in flight complete on the old
 * image, the ones that arrive meanwhile wait and go to the overlay — and from then on it writes
 * into FILE, while the old image is only read, as a backing file (its write lock becomes a
 * shared read lock). The cache mode, scheduler and read-only switch carry over; the worker's
 * definition names the overlay from now on, so a reset reopens it.
 */
import { realpath } from 'node:fs/promises';
import { isAbsolute } from 'node:path';
import { openDisk, type Disk } from '../../../devices/block/index.js';
import { createOverlay, overlayRefusal } from '../../../devices/block/overlay.js';
import type { DiskConfig } from '../../vm/config.js';
import { ControlError, type ControlContext } from '../device-controls.js';
import { findDisk } from './disk-controls.js';

export interface OverlaySwitch {
  /** The outcome, one line. */
  message: string;
  /** The disk's place in the definition and what it now is (path: the overlay, qcow2). */
  index: number;
  disk: DiskConfig;
  /** The image the disk was on (now the overlay's backing file). */
  from: string;
}

/**
 * Switches `device` to a new overlay `file` (absolute). Refusals and failures are
 * ControlErrors, one line naming the disk or file; the disk then runs on as before.
 */
export async function switchToOverlay(
  device: string,
  file: string,
  ctx: ControlContext,
  log?: (msg: string) => void,
): Promise<OverlaySwitch> {
  const h = findDisk(device, ctx);
  if (!h) throw new ControlError(`${device}: no such disk`);
  if (!file || !isAbsolute(file)) {
    throw new ControlError(`${device}: the overlay's path must be absolute, not "${file}"`);
  }
  const index = Number(/\d+$/.exec(device)![0]);
  const cfg = h.cfg;
  const refusal =
    overlayRefusal(cfg, h.sw.disk.image?.encrypted === true) ??
    (h.sw.readOnly ? `${cfg.path} is switched to read-only` : undefined);
  if (refusal) throw new ControlError(`${device}: ${refusal}; not switched`);
  const from = cfg.path;
  // The disk as it runs now: live changes to its cache mode and scheduler carry over.
  const s = h.sw.disk.stats();
  const base: DiskConfig = { ...cfg, cache: s.cache, sched: s.policy };
  let next: DiskConfig;
  try {
    next = await createOverlay(base, file, h.sw.disk.size);
  } catch (e) {
    throw new ControlError(`${device}: ${(e as Error).message}; not switched`);
  }
  let failed: string | undefined;
  await h.sw.replace(async (old: Disk) => {
    // What the guest was told is written reaches the base before it becomes read-only.
    await old.flush();
    // Its write lock becomes a read lock in place, so the overlay can open it as backing file
    // with no instant in which another process could take the image for writing.
    if (old.releaseWriteLock()) {
      try {
        const disk = await openDisk(next, { log });
        await old.close();
        return disk;
      } catch (e) {
        failed = `cannot open ${file} (${(e as Error).message}); still on ${from}`;
      }
    }
    // Not switched (or a format that keeps its lock): the old image reopened as it was, so
    // the guest runs on; an unused overlay stays, named in the answer.
    await old.close();
    if (failed) return openDisk(base, { log });
    try {
      return await openDisk(next, { log });
    } catch (e) {
      failed = `cannot open ${file} (${(e as Error).message}); still on ${from}`;
      return openDisk(base, { log });
    }
  });
  if (failed) throw new ControlError(`${device}: ${failed}`);
  // Resets and the next snapshot see the overlay (ctx.config is the worker's definition).
  ctx.config.disks[index] = next;
  const real = await realpath(from).catch(() => from);
  return {
    message:
      `${device}: switched to ${file} (qcow2, backing file ${real}, ${cfg.format}); ` +
      `${from} is read-only from now on`,
    index,
    disk: next,
    from,
  };
}
