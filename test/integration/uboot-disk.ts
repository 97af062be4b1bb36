/**
 * Disks U-Boot boots as Debian's riscv64 images do: an MBR with one bootable ext4 partition
 * holding a root file system (the bundled busybox initramfs), the bundled Linux Image in /boot
 * and /boot/extlinux/extlinux.conf as Debian's u-boot-menu writes it; or, for UEFI, an EFI
 * system partition (FAT) beside the root. Shared by uboot.test.ts, the UI's end-to-end test and
 * the stock kernel's UEFI boots, with a way to U-Boot's prompt.
 */
import { execFileSync } from 'node:child_process';
import {
  closeSync,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { join } from 'node:path';
import { env, extractInitramfs, images } from './root-disk.js';
import type { SerialSession } from './serial-session.js';

/** Where Debian's u-boot-qemu package puts U-Boot for QEMU's riscv64 virt in S-mode. */
export const UBOOT = '/usr/lib/u-boot/qemu-riscv64_smode/uboot.elf';

/** Stops U-Boot's autoboot with a key and waits for its prompt. */
export async function ubootPrompt(s: SerialSession): Promise<void> {
  await s.expect(/Hit any key to stop autoboot/, 30_000);
  s.send(' ');
  await s.expect(/=> $/m, 10_000);
}

/** The first partition starts 1 MiB in, as partitioning tools place it. */
const PART_START = 2048;

/** One primary partition of an MBR disk: the file system image that fills it. */
export interface Partition {
  image: string;
  /** The MBR partition type: 0x83 Linux, 0xef EFI system partition. */
  type: number;
  /** The active flag: U-Boot's distro boot looks at bootable partitions first. */
  bootable?: boolean;
}

/** A classic MBR whose entries place `sizes` (in sectors) one after another from PART_START. */
function mbr(parts: Partition[], sizes: number[]): Buffer {
  const b = Buffer.alloc(512);
  let start = PART_START;
  parts.forEach((p, i) => {
    const e = 446 + 16 * i;
    b[e] = p.bootable ? 0x80 : 0;
    b[e + 4] = p.type;
    // CHS fields left at the "use LBA" values.
    b.fill(0xff, e + 1, e + 4);
    b.fill(0xff, e + 5, e + 8);
    b.writeUInt32LE(start, e + 8);
    b.writeUInt32LE(sizes[i], e + 12);
    start += sizes[i];
  });
  b[510] = 0x55;
  b[511] = 0xaa;
  return b;
}

/** Writes `disk`: an MBR with up to four primary partitions, each filled by its image. */
export function writeMbrDisk(disk: string, parts: Partition[]): string {
  if (parts.length > 4) throw new Error('an MBR holds at most four primary partitions');
  const sizes = parts.map((p) => Math.ceil(statSync(p.image).size / 512));
  const fd = openSync(disk, 'w');
  try {
    writeSync(fd, mbr(parts, sizes), 0, 512, 0);
    let at = PART_START;
    parts.forEach((p, i) => {
      const data = readFileSync(p.image);
      writeSync(fd, data, 0, data.length, at * 512);
      at += sizes[i];
    });
  } finally {
    closeSync(fd);
  }
  return disk;
}

/** `dir`/`name`: an ext4 file system of `mib` MiB made from the directory `tree`. */
export function ext4Image(
  dir: string,
  name: string,
  tree: string,
  mib: number,
  label?: string,
): string {
  const img = join(dir, name);
  const lab = label ? ['-L', label] : [];
  execFileSync('mke2fs', ['-q', '-F', '-t', 'ext4', ...lab, '-d', tree, img, `${mib}M`], { env });
  return img;
}

/**
 * `dir`/`name`: a FAT32 file system of `mib` MiB (at least 33: FAT32's minimum cluster count)
 * holding the files under `tree`, made without mounting (dosfstools' mkfs.fat, mtools' mcopy).
 */
export function fatImage(dir: string, name: string, tree: string, mib: number): string {
  const img = join(dir, name);
  execFileSync('mkfs.fat', ['-C', '-F', '32', '-n', 'EFI', img, String(mib * 1024)], { env });
  const top = readdirSync(tree).map((f) => join(tree, f));
  if (top.length > 0) execFileSync('mcopy', ['-s', '-i', img, ...top, '::/'], { env });
  return img;
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
