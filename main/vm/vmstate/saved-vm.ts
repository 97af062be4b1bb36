/**
 * Saving a running VM to a file and building a VM from one: the "vm" section (the definition the
 * VM was built from, with what changed while it ran — NIC addresses and networks, disk cache
 * modes — and a record of each disk image), then the machine's sections (machine-state.ts).
 *
 * Disk images are not in the file: they must be the same files, unchanged, when the VM resumes.
 * Each disk's path, format, size and modification time are recorded after the save flushed it;
 * a restore refuses an image that differs, since the guest's page cache and file systems would
 * not match what is on the disk.
 */
import { open, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { VirtMachine } from '../machine.js';
import { validateVmConfig, ConfigError, type VmConfig } from '../config.js';
import { backingChain, imageInfo } from '../../../devices/block/qcow2/inspect.js';
import {
  decodeFirstSection,
  decodeJson,
  decodeStateFile,
  encodeJson,
  encodeStateFile,
  StateFileError,
  type Section,
} from './file-format.js';
import { applyMachine, captureMachine } from './machine-state.js';

export const VM_SECTION_VERSION = 1;
/** How long a save waits for disk requests in flight and the disks' flushes. */
const QUIESCE_TIMEOUT_MS = 30_000;

/** What the file records of one disk image, to recognise it when the VM resumes. */
export interface DiskRecord {
  path: string;
  format: string;
  /** The guest-visible capacity in bytes. */
  size: number;
  /** The image file's length and modification time (ms) when the state was saved. */
  fileBytes: number;
  mtimeMs: number;
  /** A qcow2's backing files, nearest first: the guest reads them as much as the image. */
  backing?: FileRecord[];
  /**
   * A VM snapshot's disk (vm-snapshots.ts): the qcow2 internal snapshot taken with the state.
   * The image is then recognised by this snapshot, not by its size and mtime (the guest went
   * on writing after the snapshot); resuming applies the snapshot first.
   */
  snapshot?: { id: string; name: string };
}

/** A file as it was when the state was saved. */
export interface FileRecord {
  path: string;
  fileBytes: number;
  mtimeMs: number;
}

/** The backing files below a qcow2 (headers only, as `img info --backing-chain`). */
async function backingRecords(path: string): Promise<FileRecord[]> {
  const chain = await backingChain(path, 'qcow2');
  const out: FileRecord[] = [];
  for (const b of chain.slice(1)) {
    const st = await stat(b.filename);
    out.push({ path: resolve(b.filename), fileBytes: st.size, mtimeMs: st.mtimeMs });
  }
  return out;
}

const isFileRecord = (f: unknown): f is FileRecord => {
  const r = f as FileRecord | null;
  return (
    !!r &&
    typeof r.path === 'string' &&
    [r.fileBytes, r.mtimeMs].every((n) => typeof n === 'number' && Number.isFinite(n))
  );
};

/** Why a file differs from its record, or undefined. */
async function changed(r: FileRecord): Promise<string | undefined> {
  let st;
  try {
    st = await stat(r.path);
  } catch {
    return 'is missing';
  }
  if (st.size === r.fileBytes && Math.abs(st.mtimeMs - r.mtimeMs) <= 1) return undefined;
  return (
    `changed since the state was saved (${st.size} bytes, modified ${st.mtime.toISOString()}; ` +
    `saved: ${r.fileBytes} bytes, modified ${new Date(r.mtimeMs).toISOString()})`
  );
}

export interface SavedVmInfo {
  version: 1;
  config: VmConfig;
  disks: DiskRecord[];
  savedAt: string;
  /** The guest's uptime when saved, in ms of its own clock (informational). */
  guestMs: number;
}

/** A saved-VM file read and checked, not yet applied. */
export interface SavedVm {
  file: string;
  info: SavedVmInfo;
  sections: Section[];
  /** The guest's RAM apart from the sections (a live migration's), instead of a "ram" section. */
  ram?: Uint8Array;
  /**
   * With `ram`: which of its 4 KiB pages hold data (a bit per page); the others are zeros, which
   * a freshly built machine's RAM already is, so they are not copied (copying all of RAM into
   * fresh memory was most of a migration's pause).
   */
  ramPresent?: Uint8Array;
}

/**
 * Why a VM cannot be saved as it is (a disk whose writes live in a temporary overlay), or
 * undefined.
 */
export function unsaveableReason(cfg: VmConfig): string | undefined {
  const d = cfg.disks.find((x) => x.snapshot);
  if (d) {
    return `disk ${d.path} is snapshot=on: its writes live in a temporary overlay that ends with this VM, so it cannot resume from a file`;
  }
  return undefined;
}

/**
 * The definition as the VM runs now: NIC MACs fixed (a random one must not change on resume),
 * networks and captures as switched while it ran, paths absolute.
 */
export function liveConfig(vm: VirtMachine, cfg: VmConfig): VmConfig {
  const abs = (p: string | undefined): string | undefined => (p ? resolve(p) : p);
  return {
    ...cfg,
    firmware: abs(cfg.firmware),
    kernel: abs(cfg.kernel),
    initrd: abs(cfg.initrd),
    disks: cfg.disks.map((d) => ({
      ...d,
      path: resolve(d.path),
      ...(d.keyFile ? { keyFile: resolve(d.keyFile) } : {}),
    })),
    nics: cfg.nics.map((n, i) => {
      const nic = vm.nics[i];
      const capture = nic?.port.capturePath;
      const rest = { ...n };
      delete rest.capture;
      return {
        ...rest,
        mac: nic?.mac ?? n.mac,
        net: nic?.port.backendSpec ?? n.net,
        ...(capture ? { capture } : {}),
      };
    }),
  };
}

/**
 * Refuses while the guest has a shared folder mounted, then waits for the disk requests in
 * flight and flushes the disks (vm.quiesce). A request that never
 * completes (a hung network file system) refuses the save (`what`: 'save', 'take a snapshot')
 * rather than hanging it; the VM then runs on.
 */
export async function quiesceOrRefuse(vm: VirtMachine, what: string): Promise<void> {
  // A mounted share's open files and fids live in the host process, not in any state a file
  // can carry (QEMU refuses too): the user unmounts it first.
  const mounted = vm.shares.find((s) => s.inUse);
  if (mounted) {
    throw new StateFileError(
      `cannot ${what}: the guest has shared folder "${mounted.tag}" (${mounted.root}) mounted; ` +
        `unmount it in the guest first (umount -a -t 9p)`,
    );
  }
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new StateFileError(
            `cannot ${what}: disk requests did not finish within ${QUIESCE_TIMEOUT_MS / 1000} s`,
          ),
        ),
      QUIESCE_TIMEOUT_MS,
    );
  });
  try {
    await Promise.race([vm.quiesce(), late]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Saves a paused VM to `path` (written to a temporary file, then renamed into place, so an
 * existing file is replaced only by a complete one). Waits for disk requests in flight and
 * flushes the disks first. Returns the file's size in bytes.
 */
export async function saveVm(vm: VirtMachine, cfg: VmConfig, path: string): Promise<number> {
  const why = unsaveableReason(cfg);
  if (why) throw new StateFileError(`cannot save: ${why}`);
  if (!vm.paused) throw new Error('saveVm: pause the VM first');
  await quiesceOrRefuse(vm, 'save');
  const config = liveConfig(vm, cfg);
  // Captured synchronously, before anything else can run on this thread.
  const machine = captureMachine(vm);
  const info = await savedVmInfo(vm, config);
  const bytes = encodeStateFile([
    { name: 'vm', version: VM_SECTION_VERSION, data: encodeJson(info) },
    ...machine,
  ]);
  await writeStateFile(path, bytes);
  return bytes.length;
}

/**
 * The "vm" section of a paused, quiesced VM: its live definition `config`, a record of each
 * disk as it is now, the time, the guest's uptime.
 */
export async function savedVmInfo(vm: VirtMachine, config: VmConfig): Promise<SavedVmInfo> {
  const disks: DiskRecord[] = [];
  for (const i of config.disks.keys()) disks.push(await diskRecord(vm, config, i));
  return {
    version: 1,
    config,
    disks,
    savedAt: new Date().toISOString(),
    guestMs: Number(vm.core.time / 10_000n),
  };
}

/** What the file records of the config's disk `i` as it is now (flushed): see DiskRecord. */
export async function diskRecord(
  vm: VirtMachine,
  config: VmConfig,
  i: number,
): Promise<DiskRecord> {
  const d = config.disks[i]!;
  const st = await stat(d.path);
  const backing = d.format === 'qcow2' ? await backingRecords(d.path) : [];
  return {
    path: d.path,
    format: d.format,
    size: diskSize(vm, i) ?? 0,
    fileBytes: st.size,
    mtimeMs: st.mtimeMs,
    ...(backing.length ? { backing } : {}),
  };
}

/**
 * Writes a state file's bytes to a temporary file, then renames it into place, so an existing
 * file is replaced only by a complete one. Errors are one line naming the file.
 */
export async function writeStateFile(path: string, bytes: Uint8Array): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    await writeFile(tmp, bytes);
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => {});
    const code = (e as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT'
        ? 'its directory does not exist'
        : code === 'EACCES' || code === 'EPERM'
          ? 'permission denied'
          : code === 'ENOSPC'
            ? 'no space left on the device'
            : code === 'EISDIR'
              ? 'it is a directory'
              : (e as Error).message;
    throw new StateFileError(`cannot write ${path}: ${why}`);
  }
}

/** The guest-visible size of the config's disk `i` (virtio-blk`i`, on either transport). */
function diskSize(vm: VirtMachine, i: number): number | undefined {
  return vm.blks().find((b) => b.name === `virtio-blk${i}`)?.backend.size;
}

function checkInfo(x: unknown, file: string): SavedVmInfo {
  const fail = (why: string): never => {
    throw new StateFileError(`${file}: ${why}`);
  };
  const o = x as Partial<SavedVmInfo> | null;
  if (!o || typeof o !== 'object' || o.version !== 1) fail('unsupported "vm" section');
  let config: VmConfig;
  try {
    config = validateVmConfig(o!.config, 'the VM definition in it');
  } catch (e) {
    if (e instanceof ConfigError) return fail(e.message);
    throw e;
  }
  const disks = o!.disks;
  if (!Array.isArray(disks) || disks.length !== config.disks.length) fail('bad disk records');
  for (const d of disks!) {
    const ok =
      isFileRecord(d) &&
      typeof d.format === 'string' &&
      typeof d.size === 'number' &&
      (d.backing === undefined || (Array.isArray(d.backing) && d.backing.every(isFileRecord))) &&
      (d.snapshot === undefined ||
        (typeof d.snapshot?.id === 'string' && typeof d.snapshot?.name === 'string'));
    if (!ok) fail('bad disk records');
  }
  return {
    version: 1,
    config: config!,
    disks: disks!,
    savedAt: typeof o!.savedAt === 'string' ? o!.savedAt : '',
    guestMs: typeof o!.guestMs === 'number' ? o!.guestMs : 0,
  };
}

/** Reads and checks a saved-VM file (not its disks: checkDisks does). */
export async function readSavedVm(path: string): Promise<SavedVm> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new StateFileError(
      `${path}: ${code === 'ENOENT' ? 'no such file' : (e as Error).message}`,
    );
  }
  return parseSavedVm(bytes, path);
}

/** The "vm" section a saveVm writes first is at most this long (a definition, disk records). */
const MAX_VM_SECTION = 1 << 20;

/**
 * The "vm" section of a saved-VM file (what it is of, when, which disks) read from the file's
 * first bytes, without the RAM and devices after it — for listings. The rest of the file is not
 * checked: readSavedVm does that before the file is used.
 */
export async function readSavedVmInfo(path: string): Promise<{ info: SavedVmInfo; bytes: number }> {
  let fh;
  try {
    fh = await open(path, 'r');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new StateFileError(
      `${path}: ${code === 'ENOENT' ? 'no such file' : (e as Error).message}`,
    );
  }
  try {
    const size = (await fh.stat()).size;
    const head = new Uint8Array(Math.min(size, MAX_VM_SECTION));
    await fh.read(head, 0, head.length, 0);
    const vm = decodeFirstSection(head, size, path);
    if (!vm || vm.name !== 'vm') throw new StateFileError(`${path}: no "vm" section first`);
    return { info: vmInfoOf(vm, path), bytes: size };
  } finally {
    await fh.close();
  }
}

/** The checked definition and records of a "vm" section. */
function vmInfoOf(vm: Section, file: string): SavedVmInfo {
  if (vm.version !== VM_SECTION_VERSION) {
    throw new StateFileError(`${file}: "vm" section version ${vm.version} is not supported`);
  }
  let json: unknown;
  try {
    json = decodeJson(vm.data);
  } catch {
    throw new StateFileError(`${file}: the "vm" section is not valid JSON`);
  }
  return checkInfo(json, file);
}

/** The same for a file already in memory; `file` names it in messages. */
export function parseSavedVm(bytes: Uint8Array, file: string): SavedVm {
  const sections = decodeStateFile(bytes, file);
  const vm = sections.find((s) => s.name === 'vm');
  if (!vm) throw new StateFileError(`${file}: no "vm" section`);
  return { file, info: vmInfoOf(vm, file), sections };
}

/**
 * Checks that the disk images are the ones the state was saved with: same size, not modified
 * since. A changed image would not match the guest's caches and file systems.
 */
export async function checkDisks(saved: SavedVm): Promise<void> {
  const harm = ": resuming would corrupt the guest's file systems";
  for (const d of saved.info.disks) {
    const why = d.snapshot ? await lacksSnapshot(d, d.snapshot) : await changed(d);
    if (why)
      throw new StateFileError(
        `${saved.file}: disk ${d.path} ${why}${why === 'is missing' || d.snapshot ? '' : harm}`,
      );
    for (const b of d.backing ?? []) {
      const whyB = await changed(b);
      if (whyB) {
        throw new StateFileError(
          `${saved.file}: backing file ${b.path} of disk ${d.path} ${whyB}${whyB === 'is missing' ? '' : harm}`,
        );
      }
    }
  }
}

/** Why a VM snapshot's disk cannot be reverted to its snapshot, or undefined. */
async function lacksSnapshot(
  d: DiskRecord,
  snap: { id: string; name: string },
): Promise<string | undefined> {
  if (!(await stat(d.path).catch(() => undefined))) return 'is missing';
  let snaps;
  try {
    snaps = (await imageInfo(d.path, 'qcow2')).snapshots ?? [];
  } catch (e) {
    return `cannot be read: ${(e as Error).message}`;
  }
  if (snaps.some((s) => s.id === snap.id && s.name === snap.name)) return undefined;
  return `has no snapshot "${snap.name}" (id ${snap.id}) any more: it was deleted or the image replaced, so the saved state has no disk to go with`;
}

/**
 * Puts the saved machine into `vm`, which was built (restoring: true) from saved.info.config.
 * Also checks each opened disk's capacity. Throws StateFileError; the VM must then be closed.
 */
export function applySavedVm(vm: VirtMachine, saved: SavedVm): void {
  saved.info.disks.forEach((d, i) => {
    const size = diskSize(vm, i);
    if (size !== d.size) {
      throw new StateFileError(
        `${saved.file}: disk ${d.path} holds ${size} bytes for the guest; it held ${d.size} when saved`,
      );
    }
  });
  applyMachine(vm, saved.sections, saved.file, saved.ram, saved.ramPresent);
}
