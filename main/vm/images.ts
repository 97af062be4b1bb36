/** Reads the boot images a VmConfig names (or the bundled guest's), with errors naming the file. */
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { gunzip, gunzipSync } from 'node:zlib';
import { bundledGuest } from './bundled-guest.js';
import type { VmConfig } from './config.js';

export interface NamedImage {
  name: string;
  data: Uint8Array;
}

export interface BootImages {
  firmware: NamedImage;
  kernel: NamedImage;
  initrd?: NamedImage;
}

/** A boot file that cannot be used: the message names the file and the problem. */
export class ImageError extends Error {}

export function readImage(path: string, what: string): NamedImage {
  try {
    return { name: path, data: readFileSync(path) };
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT'
        ? 'no such file'
        : code === 'EACCES'
          ? 'permission denied'
          : code === 'EISDIR'
            ? 'is a directory'
            : (e as Error).message;
    throw new ImageError(`${what} ${path}: ${why}`);
  }
}

/** Firmware may be shipped gzip'd; the kernel loader handles gzip itself. */
export function maybeGunzip(img: NamedImage): NamedImage {
  if (img.data[0] !== 0x1f || img.data[1] !== 0x8b) return img;
  try {
    return { name: img.name, data: gunzipSync(img.data) };
  } catch {
    throw new ImageError(`${img.name}: corrupt gzip data`);
  }
}

const isGzip = (d: Uint8Array): boolean => d[0] === 0x1f && d[1] === 0x8b;

/**
 * What the boot loader would make of a gzip'd kernel, with its cap: the decompressed bytes, or
 * the file as it is where the loader would refuse it or would see gzip again (it decompresses
 * once), so that its checks and messages are unchanged.
 */
async function gunzipKernel(img: NamedImage, ramBytes: number): Promise<NamedImage> {
  if (!isGzip(img.data)) return img;
  try {
    const data = await gunzipAsync(img.data, { maxOutputLength: Math.max(1, ramBytes) });
    return isGzip(data) ? img : { name: img.name, data };
  } catch {
    return img;
  }
}

/** The boot files a config names: its own, or the bundled guest's. */
function bootPaths(cfg: VmConfig): { firmware: string; kernel: string; initrd?: string } {
  const def = bundledGuest();
  const initrd = cfg.initrd ?? (cfg.kernel ? undefined : def.initrd);
  return { firmware: cfg.firmware ?? def.firmware, kernel: cfg.kernel ?? def.kernel, initrd };
}

/**
 * Loads firmware, kernel and initrd. A config that names its own kernel but no initrd boots
 * without one (the bundled initrd belongs to the bundled kernel).
 */
export function loadBootImages(cfg: VmConfig): BootImages {
  const p = bootPaths(cfg);
  return {
    firmware: maybeGunzip(readImage(p.firmware, 'firmware')),
    kernel: readImage(p.kernel, 'kernel'),
    initrd: p.initrd ? readImage(p.initrd, 'initrd') : undefined,
  };
}

const gunzipAsync = promisify(gunzip);

/**
 * The same images as loadBootImages, read and decompressed off this thread (libuv's pool), for
 * a host that starts the VM in a worker: the worker's thread start overlaps this, and it then
 * skips the work (bench/startup.ts). A gzip'd kernel is decompressed here with the boot
 * loader's own cap (the RAM size); if that fails, or any file cannot be read, the result is
 * undefined or the original bytes, and the worker reads and reports as it always does.
 */
export async function preloadBootImages(cfg: VmConfig): Promise<BootImages | undefined> {
  try {
    const p = bootPaths(cfg);
    const read = async (path: string): Promise<NamedImage> => ({
      name: path,
      data: await readFile(path),
    });
    const [firmware, kernel, initrd] = await Promise.all([
      read(p.firmware),
      read(p.kernel),
      p.initrd ? read(p.initrd) : undefined,
    ]);
    return { firmware, kernel: await gunzipKernel(kernel, cfg.memMiB * 1024 * 1024), initrd };
  } catch {
    return undefined;
  }
}
