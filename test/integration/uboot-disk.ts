/**
 * Disks U-Boot boots as Debian's riscv64 systems do: an MBR with one bootable ext4 partition
 * holding a root file system (the bundled busybox initramfs), the bundled Linux Image in /boot
 * and /boot/extlinux/extlinux.conf as Debian's u-boot-menu writes it (the partitions and file
 * systems are made by bench/boot-disks.ts). Shared by uboot.test.ts, the UI's end-to-end test
 * and the stock kernel's UEFI boot, with a way to U-Boot's prompt.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { join } from 'node:path';
import { ext4Image, writeMbrDisk } from '../../bench/boot-disks.js';
import { extractInitramfs, images } from './root-disk.js';
import type { SerialSession } from './serial-session.js';

export { UBOOT } from '../../bench/boot-disks.js';

/** Stops U-Boot's autoboot with a key and waits for its prompt. */
export async function ubootPrompt(s: SerialSession): Promise<void> {
  await s.expect(/Hit any key to stop autoboot/, 30_000);
  s.send(' ');
  await s.expect(/=> $/m, 10_000);
}

/**
 * Makes `dir`/disk.img: an MBR whose one bootable partition is an ext4 file system of `mib`
 * MiB made from the directory `tree`. Returns its path.
 */
export function makePartitionedDisk(dir: string, tree: string, mib: number): string {
  const part = ext4Image(dir, 'part.img', tree, mib);
  return writeMbrDisk(join(dir, 'disk.img'), [{ image: part, type: 0x83, bootable: true }]);
}

/**
 * Makes `dir`/disk.img: the partitioned disk, whose extlinux.conf boots the bundled kernel with
 * `append` as its command line (no initrd: the partition is the root). Returns its path.
 */
export function makeExtlinuxDisk(dir: string, append: string): string {
  const rootfs = extractInitramfs(dir);
  mkdirSync(join(rootfs, 'boot', 'extlinux'), { recursive: true });
  writeFileSync(join(rootfs, 'boot', 'Image'), gunzipSync(readFileSync(join(images, 'Image.gz'))));
  writeFileSync(
    join(rootfs, 'boot', 'extlinux', 'extlinux.conf'),
    [
      'default l0',
      'menu title U-Boot menu',
      'prompt 0',
      'timeout 1',
      '',
      'label l0',
      '\tmenu label wasmvisor test Linux',
      '\tlinux /boot/Image',
      `\tappend ${append}`,
      '',
    ].join('\n'),
  );
  return makePartitionedDisk(dir, rootfs, 64);
}

/** The partition's bytes, read back out of the disk (for debugfs and e2fsck). */
export function partitionOf(disk: string): Buffer {
  const all = readFileSync(disk);
  const start = all.readUInt32LE(446 + 8) * 512;
  return all.subarray(start, start + all.readUInt32LE(446 + 12) * 512);
}
