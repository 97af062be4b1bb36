/** Reads the boot images a VmConfig names (or the bundled guest's), with errors naming the file. */
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
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
function maybeGunzip(img: NamedImage): NamedImage {
  if (img.data[0] !== 0x1f || img.data[1] !== 0x8b) return img;
  try {
    return { name: img.name, data: gunzipSync(img.data) };
  } catch {
    throw new ImageError(`${img.name}: corrupt gzip data`);
  }
}

/**
 * Loads firmware, kernel and initrd. A config that names its own kernel but no initrd boots
 * without one (the bundled initrd belongs to the bundled kernel).
 */
export function loadBootImages(cfg: VmConfig): BootImages {
  const def = bundledGuest();
  const initrd = cfg.initrd ?? (cfg.kernel ? undefined : def.initrd);
  return {
    firmware: maybeGunzip(readImage(cfg.firmware ?? def.firmware, 'firmware')),
    kernel: readImage(cfg.kernel ?? def.kernel, 'kernel'),
    initrd: initrd ? readImage(initrd, 'initrd') : undefined,
  };
}
