/**
 * The reference runs on QEMU's own `virt` board (TCG): which binary, whether it is installed,
 * the bundled kernel unpacked for it, and the command line that boots the bundled guest. Shared
 * by the benchmarks that print a QEMU column and by the reference-boot integration test, so
 * every comparison boots QEMU the same way.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';

/** guest/images of this checkout, found from bench/ (vitest) and dist/bench/ (npm run bench). */
export const GUEST_IMAGES = ((): string => {
  const here = dirname(fileURLToPath(import.meta.url));
  for (const up of ['..', join('..', '..')]) {
    const dir = join(here, up, 'guest', 'images');
    if (existsSync(dir)) return dir;
  }
  return join(here, '..', 'guest', 'images');
})();

/** The QEMU binary: QEMU_SYSTEM_RISCV64, or qemu-system-riscv64 from PATH. */
export const QEMU = process.env.QEMU_SYSTEM_RISCV64 ?? 'qemu-system-riscv64';

/** QEMU's first version line, or undefined when it is not installed. */
export function qemuVersion(): string | undefined {
  const r = spawnSync(QEMU, ['--version'], { encoding: 'utf-8' });
  return r.status === 0 ? r.stdout.split('\n')[0] : undefined;
}

/** QEMU's -kernel wants the raw Image on riscv (our loader takes Image.gz): writes it to `dir`. */
export function unpackKernel(dir: string): string {
  const kernel = join(dir, 'Image');
  writeFileSync(kernel, gunzipSync(readFileSync(join(GUEST_IMAGES, 'Image.gz'))));
  return kernel;
}

export interface QemuVirtOptions {
  /** The raw kernel (unpackKernel). */
  kernel: string;
  /** Default: the bundled initramfs. */
  initrd?: string;
  append?: string;
  memMiB?: number;
  /** Devices and back ends (-device …, -netdev …). */
  extra?: readonly string[];
}

/** Arguments that boot the bundled firmware and `o.kernel` on `-M virt` with the serial on stdio. */
export function qemuVirtArgs(o: QemuVirtOptions): string[] {
  return [
    '-M', 'virt', '-m', `${o.memMiB ?? 256}M`, '-nographic',
    '-bios', join(GUEST_IMAGES, 'fw_dynamic.bin'),
    '-kernel', o.kernel,
    '-initrd', o.initrd ?? join(GUEST_IMAGES, 'initramfs.cpio.gz'),
    '-append', o.append ?? 'console=ttyS0',
    ...(o.extra ?? []),
  ]; // prettier-ignore
}
