/**
 * Disks and TFTP trees that firmware boots from, made without mounting anything: an MBR with up
 * to four primary partitions, each filled by a file system image (ext4 by mke2fs -d, FAT by
 * dosfstools' mkfs.fat and mtools' mcopy), and the two layouts Debian's riscv64 systems boot
 * through GRUB: an EFI system partition beside the root file system, and a netboot tree for
 * `net=user,tftp=DIR,bootfile=grubnetriscv64.efi`. Shared by bench/firmware-boot.ts and the
 * integration tests that boot U-Boot (test/integration/uboot-disk.ts, stock-kernel.test.ts).
 */
import { execFileSync } from 'node:child_process';
import {
  closeSync,
  copyFileSync,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';

/** Where Debian's u-boot-qemu package puts U-Boot for QEMU's riscv64 virt in S-mode. */
export const UBOOT = '/usr/lib/u-boot/qemu-riscv64_smode/uboot.elf';

/** mke2fs and mkfs.fat live in /sbin, which a non-login PATH may lack. */
export const env = { ...process.env, PATH: `${process.env.PATH}:/usr/sbin:/sbin` };

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
 * holding the files under `tree`.
 */
export function fatImage(dir: string, name: string, tree: string, mib: number): string {
  const img = join(dir, name);
  execFileSync('mkfs.fat', ['-C', '-F', '32', '-n', 'EFI', img, String(mib * 1024)], { env });
  const top = readdirSync(tree).map((f) => join(tree, f));
  if (top.length > 0) execFileSync('mcopy', ['-s', '-i', img, ...top, '::/'], { env });
  return img;
}

/** What GRUB boots: a kernel Image with an EFI stub and its initrd (guest/build.sh stock). */
export interface GrubBoot {
  kernel: string;
  initrd: string;
  /** The menu entry's title. */
  title: string;
  /** What follows `console=ttyS0` on the kernel's command line. */
  append: string;
}

/** A grub.cfg with one entry booting DIR/vmlinuz with DIR/initrd.img, after a second. */
function grubMenu(b: GrubBoot, dir: string): string {
  return [
    'set timeout=1',
    `menuentry '${b.title}' {`,
    "  echo 'Loading Linux ...'",
    `  linux ${dir}/vmlinuz console=ttyS0 ${b.append}`,
    "  echo 'Loading initial ramdisk ...'",
    `  initrd ${dir}/initrd.img`,
    '}',
    '',
  ].join('\n');
}

/**
 * `dir`/disk.img as Debian's riscv64 images boot: an EFI system partition as grub-install
 * --removable leaves it (`grub`, Debian's monolithic grubriscv64.efi, at the removable-media
 * path; in /EFI/debian, its prefix, a grub.cfg that finds the root file system by label and reads
 * the real one from there), then an ext4 root holding /boot/{vmlinuz,initrd.img,grub/grub.cfg}.
 */
export function grubEspDisk(dir: string, grub: string, b: GrubBoot): string {
  const esp = join(dir, 'esp');
  mkdirSync(join(esp, 'EFI', 'BOOT'), { recursive: true });
  mkdirSync(join(esp, 'EFI', 'debian'));
  copyFileSync(grub, join(esp, 'EFI', 'BOOT', 'BOOTRISCV64.EFI'));
  writeFileSync(
    join(esp, 'EFI', 'debian', 'grub.cfg'),
    'search --no-floppy --label --set=root wvroot\nset prefix=($root)/boot/grub\nconfigfile $prefix/grub.cfg\n',
  );
  const tree = join(dir, 'root');
  mkdirSync(join(tree, 'boot', 'grub'), { recursive: true });
  copyFileSync(b.kernel, join(tree, 'boot', 'vmlinuz'));
  copyFileSync(b.initrd, join(tree, 'boot', 'initrd.img'));
  writeFileSync(join(tree, 'boot', 'grub', 'grub.cfg'), grubMenu(b, '/boot'));
  return writeMbrDisk(join(dir, 'disk.img'), [
    { image: fatImage(dir, 'esp.img', esp, 40), type: 0xef },
    { image: ext4Image(dir, 'root.img', tree, 64, 'wvroot'), type: 0x83 },
  ]);
}

/**
 * `dir`/tftp as a netboot tree lays it out: `grubnet` (Debian's grubnetriscv64.efi, whose prefix
 * is /grub on the server it came from) and grub/grub.cfg, booting /vmlinuz and /initrd.img. The
 * VM's NIC takes `net=user,tftp=DIR,bootfile=grubnetriscv64.efi`.
 */
export function grubNetbootTree(dir: string, grubnet: string, b: GrubBoot): string {
  const tftp = join(dir, 'tftp');
  mkdirSync(join(tftp, 'grub'), { recursive: true });
  copyFileSync(grubnet, join(tftp, 'grubnetriscv64.efi'));
  copyFileSync(b.kernel, join(tftp, 'vmlinuz'));
  copyFileSync(b.initrd, join(tftp, 'initrd.img'));
  writeFileSync(join(tftp, 'grub', 'grub.cfg'), grubMenu(b, ''));
  return tftp;
}
