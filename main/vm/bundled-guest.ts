/** Where the bundled guest images live, from the sources or from dist/. */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));

export function bundledImagesDir(): string {
  for (const up of ['../..', '../../..']) {
    const d = join(here, up, 'guest', 'images');
    if (existsSync(join(d, 'Image.gz'))) return d;
  }
  throw new Error('bundled guest images not found (expected guest/images/ in the checkout)');
}

export function bundledGuest(): { firmware: string; kernel: string; initrd: string } {
  const d = bundledImagesDir();
  return {
    firmware: join(d, 'fw_dynamic.bin'),
    kernel: join(d, 'Image.gz'),
    initrd: join(d, 'initramfs.cpio.gz'),
  };
}
