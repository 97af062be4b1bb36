/**
 * A disk U-Boot boots as Debian's riscv64 images do: an MBR with one bootable ext4 partition
 * holding a root file system (the bundled busybox initramfs), the bundled Linux Image in /boot
 * and /boot/extlinux/extlinux.conf as Debian's u-boot-menu writes it. Shared by uboot.test.ts
 * and the UI's end-to-end test (and the stock kernel's UEFI boot), with a way to U-Boot's
 * prompt.
 */
import { execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
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

/** The partition starts 1 MiB in, as partitioning tools place it. */
const PART_START = 2048;

/** A classic MBR with one bootable Linux partition (type 0x83) at PART_START. */
function mbr(sectors: number): Buffer {
  const b = Buffer.alloc(512);
  const e = 446;
  b[e] = 0x80; // bootable: U-Boot's distro boot looks at bootable partitions first
  b[e + 4] = 0x83;
  // CHS fields left at the "use LBA" values.
  b.fill(0xff, e + 1, e + 4);
  b.fill(0xff, e + 5, e + 8);
  b.writeUInt32LE(PART_START, e + 8);
  b.writeUInt32LE(sectors, e + 12);
  b[510] = 0x55;
  b[511] = 0xaa;
  return b;
}

/**
 * Makes `dir`/disk.img: an MBR whose one bootable partition is an ext4 file system of `mib`
 * MiB made from the directory `tree`. Returns its path.
 */
export function makePartitionedDisk(dir: string, tree: string, mib: number): string {
  const part = join(dir, 'part.img');
  execFileSync('mke2fs', ['-q', '-F', '-t', 'ext4', '-d', tree, part, `${mib}M`], { env });
  const disk = join(dir, 'disk.img');
  const sectors = (mib << 20) / 512;
  const fd = openSync(disk, 'w');
  try {
    writeSync(fd, mbr(sectors), 0, 512, 0);
    writeSync(fd, readFileSync(part), 0, sectors * 512, PART_START * 512);
  } finally {
    closeSync(fd);
  }
  return disk;
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
