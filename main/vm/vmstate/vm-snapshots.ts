/**
 * VM snapshots (QEMU's savevm / loadvm / delvm / `info snapshots`): the whole VM taken while it
 * runs and gone back to later, any number of times.
 *
 * A snapshot NAME is two things that only make sense together:
 * - a qcow2 internal snapshot named NAME on every writable disk (the disks as the guest had
 *   written them at that instant; the guest then writes on, copy-on-write keeps the snapshot);
 * - a saved-VM file (the format of saved-vm.ts) in the VM's snapshot directory,
 *   `DATA_DIR/snapshots/VM/NAME.vm`, whose disk records name those disk snapshots by id.
 * Reverting applies the disk snapshots, then resumes from the file (resume.ts). Read-only disks
 * are not snapshotted: the guest cannot change them, so they are recorded (size, mtime) as a
 * saved VM records its disks, and must be unchanged to revert. A writable raw disk cannot hold
 * a snapshot and a snapshot=on disk's writes end with the VM: both refuse the take.
 */
import { mkdir, readdir, stat, unlink } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { VirtMachine } from '../machine.js';
import type { VmConfig } from '../config.js';
import type { VmSnapshotInfo } from '../../host/api-types.js';
import {
  applySnapshot,
  createSnapshot,
  deleteSnapshot,
  imageInfo,
  listSnapshots,
  Qcow2Image,
  SnapshotError,
} from '../../../devices/block/qcow2/index.js';
import type { Qcow2Meta } from '../../../devices/block/qcow2/metadata.js';
import { encodeJson, encodeStateFile, StateFileError } from './file-format.js';
import { captureMachine } from './machine-state.js';
import {
  diskRecord,
  liveConfig,
  quiesceOrRefuse,
  readSavedVmInfo,
  VM_SECTION_VERSION,
  writeStateFile,
  type DiskRecord,
  type SavedVm,
  type SavedVmInfo,
} from './saved-vm.js';

/** A snapshot request that cannot be done; the message is one line saying why. */
export class VmSnapshotError extends Error {}

const NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/;

/**
 * Refuses a name that is not 1-64 letters, digits, "_", "-", "." starting with a letter, digit
 * or "_": the name is also the state file's name, so nothing else (no "/", no "..", no leading
 * "-" that a shell would take for an option) is let through.
 */
export function checkSnapshotName(name: string): void {
  if (!NAME.test(name)) {
    throw new VmSnapshotError(
      `bad snapshot name "${name.slice(0, 80)}": use 1-64 letters, digits, "_", "-" or ".", starting with a letter, digit or "_"`,
    );
  }
}

/** Where a VM's snapshot files live: DATA_DIR/snapshots/VM (the VM's name is a file name). */
export function snapshotDir(dataDir: string, vmName: string): string {
  if (/^\.+$/.test(vmName) || vmName.includes('/') || vmName.includes('\\')) {
    throw new VmSnapshotError(`the VM name "${vmName}" cannot name a snapshot directory`);
  }
  return join(dataDir, 'snapshots', vmName);
}

export function snapshotFile(dir: string, name: string): string {
  checkSnapshotName(name);
  return join(dir, `${name}.vm`);
}

/**
 * Why this VM cannot be snapshotted, naming the disk, or undefined. Checked before anything is
 * changed, so a refused take leaves the disks and the snapshot directory as they were.
 */
export function snapshotRefusal(cfg: VmConfig): string | undefined {
  for (const [i, d] of cfg.disks.entries()) {
    if (d.snapshot) {
      return `cannot take a snapshot: disk ${d.path} is snapshot=on (its writes live in a temporary overlay that ends with this VM)`;
    }
    if (d.readOnly) continue;
    if (d.format !== 'qcow2') {
      // A raw disk can be switched live to a qcow2 overlay (an encrypted one cannot: the
      // overlay would hold the guest's writes in the clear).
      const how =
        d.format === 'raw'
          ? `switch it to a qcow2 overlay first: snapshot_blkdev virtio-blk${i} FILE`
          : 'convert it to qcow2';
      return `cannot take a snapshot: disk ${d.path} is writable but a ${d.format} image cannot hold snapshots (${how}; or attach it read-only)`;
    }
  }
  return undefined;
}

/**
 * Why a snapshot taken of VM `saved` cannot be loaded into a VM running `now`, or undefined:
 * the machine must be the same (RAM, devices, disks) for the state to fit, and a snapshot of a
 * VM with other disks (a CLI session of the same name) is not this VM's.
 */
export function hardwareDiffers(saved: VmConfig, now: VmConfig): string | undefined {
  if (saved.memMiB !== now.memMiB) return `${saved.memMiB} MiB of RAM, this VM has ${now.memMiB}`;
  const disk = (c: VmConfig) =>
    c.disks.map((d) => `${resolve(d.path)} (${d.format}${d.readOnly ? ', ro' : ''})`).join(', ') ||
    'no disks';
  if (disk(saved) !== disk(now)) return `disks ${disk(saved)}; this VM has ${disk(now)}`;
  const shape = (c: VmConfig) =>
    JSON.stringify([
      c.console,
      c.rng,
      !!c.balloon?.enabled,
      c.nics.map((n) => n.model),
      c.disks.map((d) => d.bus ?? 'mmio'),
      (c.shares ?? []).map((sh) => `${sh.tag}:${sh.bus ?? 'mmio'}`),
    ]);
  if (shape(saved) !== shape(now)) {
    return 'other devices (console, rng, balloon, NICs, shared folders or buses)';
  }
  return undefined;
}

/** Runs `fn` on the metadata of a qcow2 image that no VM has open (locked while it runs). */
export async function withImageFile<T>(path: string, fn: (m: Qcow2Meta) => Promise<T>): Promise<T> {
  const img = await Qcow2Image.open(path, { metadataOnly: true });
  try {
    return await img.withMetadata(fn);
  } finally {
    await img.close();
  }
}

/** How to reach a disk's metadata: the running VM's open image, else the file. */
export type ImageAccess = <T>(path: string, fn: (m: Qcow2Meta) => Promise<T>) => Promise<T>;

export interface TakenSnapshot {
  file: string;
  bytes: number;
  /** The disks snapshotted, with the id each gave the snapshot. */
  disks: { path: string; id: string }[];
}

/**
 * Takes snapshot `name` of a paused VM: waits for disk requests in flight and flushes, captures
 * the machine, snapshots every writable disk (`imageOf(i)`: the open qcow2 of the config's disk
 * i), then writes `dir/NAME.vm`. An existing snapshot of that name is replaced, as savevm does.
 * If the file cannot be written, the disk snapshots just made are deleted again. The caller
 * resumes the VM afterwards, whatever happened.
 */
export async function takeVmSnapshot(
  vm: VirtMachine,
  cfg: VmConfig,
  dir: string,
  name: string,
  imageOf: (i: number) => Qcow2Image | undefined,
): Promise<TakenSnapshot> {
  const file = snapshotFile(dir, name);
  const why = snapshotRefusal(cfg);
  if (why) throw new VmSnapshotError(why);
  if (!vm.paused) throw new Error('takeVmSnapshot: pause the VM first');
  const images = cfg.disks.map((d, i) => (d.readOnly ? undefined : imageOf(i)));
  cfg.disks.forEach((d, i) => {
    if (!d.readOnly && !images[i]) {
      throw new VmSnapshotError(`cannot take a snapshot: disk ${d.path} is not open as qcow2`);
    }
  });
  await quiesceOrRefuse(vm, 'take a snapshot');
  const config = liveConfig(vm, cfg);
  // Captured synchronously, while nothing else can run on this thread: the instant of the snapshot.
  const machine = captureMachine(vm);
  const guestMs = Number(vm.core.time / 10_000n);
  const made: { img: Qcow2Image; id: string }[] = [];
  const disks: DiskRecord[] = [];
  try {
    for (const i of config.disks.keys()) {
      const rec = await diskRecord(vm, config, i);
      const img = images[i];
      if (img) {
        const s = await img.withMetadata(async (m) => {
          if ((await listSnapshots(m)).some((x) => x.name === name)) await deleteSnapshot(m, name);
          return createSnapshot(m, name, Date.now(), BigInt(guestMs) * 1_000_000n);
        });
        made.push({ img, id: s.id });
        rec.snapshot = { id: s.id, name };
      }
      disks.push(rec);
    }
    const info: SavedVmInfo = {
      version: 1,
      config,
      disks,
      savedAt: new Date().toISOString(),
      guestMs,
    };
    const bytes = encodeStateFile([
      { name: 'vm', version: VM_SECTION_VERSION, data: encodeJson(info) },
      ...machine,
    ]);
    await mkdir(dir, { recursive: true }).catch(() => {});
    await writeStateFile(file, bytes);
    return {
      file,
      bytes: bytes.length,
      disks: disks.flatMap((d) => (d.snapshot ? [{ path: d.path, id: d.snapshot.id }] : [])),
    };
  } catch (e) {
    // No half snapshot: the disks lose what was made for a state that was never written.
    for (const { img, id } of made) {
      await img.withMetadata((m) => deleteSnapshot(m, id)).catch(() => {});
    }
    if (e instanceof SnapshotError)
      throw new VmSnapshotError(`cannot take a snapshot: ${e.message}`);
    throw e;
  }
}

/**
 * Reverts each snapshotted disk of a VM snapshot to its snapshot (the VM closed: the images are
 * opened here). checkDisks has found them; a failure is a StateFileError naming file and disk.
 */
export async function applyDiskSnapshots(saved: SavedVm): Promise<void> {
  for (const d of saved.info.disks) {
    if (!d.snapshot) continue;
    const id = d.snapshot.id;
    try {
      await withImageFile(d.path, (m) => applySnapshot(m, id));
    } catch (e) {
      throw new StateFileError(
        `${saved.file}: disk ${d.path}: cannot revert to snapshot "${d.snapshot.name}": ${(e as Error).message}`,
      );
    }
  }
}

/**
 * The snapshots in `dir`, oldest first. A damaged file is listed with its error; one taken of
 * other hardware than `current` (when given) says how it differs.
 */
export async function listVmSnapshots(dir: string, current?: VmConfig): Promise<VmSnapshotInfo[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return [];
  }
  const out: VmSnapshotInfo[] = [];
  for (const f of names) {
    if (!f.endsWith('.vm') || !NAME.test(f.slice(0, -3))) continue;
    const path = join(dir, f);
    const st = await stat(path).catch(() => undefined);
    if (!st?.isFile()) continue;
    const base = { name: f.slice(0, -3), stateBytes: st.size, guestMs: 0, disks: [] };
    try {
      // The "vm" section only: a listing does not read (and check) every snapshot's RAM.
      const saved = await readSavedVmInfo(path);
      const disks: VmSnapshotInfo['disks'] = [];
      for (const d of saved.info.disks) {
        if (!d.snapshot) {
          disks.push({ path: d.path });
          continue;
        }
        const snaps = await withListing(d.path);
        const here = snaps?.some((s) => s.id === d.snapshot!.id && s.name === d.snapshot!.name);
        disks.push({ path: d.path, id: d.snapshot.id, ...(here ? {} : { missing: true }) });
      }
      const other = current ? hardwareDiffers(saved.info.config, current) : undefined;
      out.push({
        ...base,
        savedAt: saved.info.savedAt,
        guestMs: saved.info.guestMs,
        disks,
        ...(other ? { otherVm: other } : {}),
      });
    } catch (e) {
      out.push({ ...base, savedAt: st.mtime.toISOString(), error: (e as Error).message });
    }
  }
  return out.sort((a, b) => a.savedAt.localeCompare(b.savedAt) || a.name.localeCompare(b.name));
}

/** A qcow2's snapshot list, read without locks (as `img info`), or undefined if unreadable. */
async function withListing(path: string) {
  try {
    return (await imageInfo(path, 'qcow2')).snapshots ?? [];
  } catch {
    return undefined;
  }
}

/**
 * Deletes snapshot `name`: the disk snapshot of that name on each disk its file records and on
 * each writable qcow2 disk of `cfg` (a file that cannot be read still goes, with its disks'
 * snapshots found by name, as delvm finds them), then the file. `access` reaches a disk's
 * metadata (the running VM's open image, or the file). Returns what was deleted, as one line.
 */
export async function deleteVmSnapshot(
  dir: string,
  name: string,
  cfg: VmConfig,
  access: ImageAccess = withImageFile,
): Promise<string> {
  const file = snapshotFile(dir, name);
  const hasFile = !!(await stat(file).catch(() => undefined));
  const paths = new Set(
    cfg.disks
      .filter((d) => d.format === 'qcow2' && !d.snapshot && !d.readOnly)
      .map((d) => resolve(d.path)),
  );
  if (hasFile) {
    const saved = await readSavedVmInfo(file).catch(() => undefined);
    for (const d of saved?.info.disks ?? []) if (d.snapshot) paths.add(resolve(d.path));
  }
  const done: string[] = [];
  for (const p of paths) {
    // A disk that is gone has nothing to delete; one in use elsewhere (locked) refuses the
    // delete, so that no disk snapshot is left behind without its state file.
    if (!(await stat(p).catch(() => undefined))) continue;
    const gone = await access(p, async (m) => {
      if (!(await listSnapshots(m)).some((s) => s.name === name)) return false;
      await deleteSnapshot(m, name);
      return true;
    }).catch((e: Error) => {
      throw new VmSnapshotError(`cannot delete snapshot "${name}" from ${p}: ${e.message}`);
    });
    if (gone) done.push(p);
  }
  if (!hasFile && done.length === 0) throw new VmSnapshotError(`no snapshot named "${name}"`);
  if (hasFile) await unlink(file);
  return (
    `snapshot "${name}" deleted` +
    (done.length
      ? ` (from ${done.join(', ')})`
      : hasFile
        ? ' (its state only: no disk had it)'
        : '')
  );
}
