/**
 * Debian's U-Boot (`u-boot-qemu`, built for QEMU's riscv64 virt in S-mode) as the VM's kernel,
 * the way Debian boots riscv64 disk images under QEMU: OpenSBI hands over to U-Boot, which finds
 * the disk on virtio-mmio, reads /boot/extlinux/extlinux.conf from the bootable ext4 partition of
 * an MBR-partitioned image, loads the Linux Image it names and starts it with our device tree;
 * Linux mounts that partition as its root, and what it writes there is in the image afterwards.
 * Then U-Boot's own UEFI self-test (timers, events, memory maps, runtime services, and the
 * simple network protocol over our virtio-net and NAT) passes on the machine, and U-Boot's own
 * e1000 driver, a second driver beside Linux's, gets a DHCP lease and pings the gateway.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { execFileSync } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SerialSession } from './serial-session.js';
import { catImage, env, images, missingTools, tool } from './root-disk.js';

const root = join(import.meta.dirname, '..', '..');
const cli = join(root, 'bin', 'wasmvisor.mjs');
/** Debian's u-boot-qemu package puts it here. */
const UBOOT = '/usr/lib/u-boot/qemu-riscv64_smode/uboot.elf';
const missing = [...missingTools(['mke2fs', 'debugfs', 'e2fsck', 'cpio'])];
if (!existsSync(UBOOT)) missing.push(`${UBOOT} (Debian: apt-get install u-boot-qemu)`);
if (missing.length) console.warn(`uboot: skipped — missing ${missing.join(', ')}`);

/** The partition starts 1 MiB in, as partitioning tools place it. */
const PART_START = 2048;
const PART_SECTORS = (64 << 20) / 512;

/** A classic MBR with one bootable Linux partition (type 0x83) at PART_START. */
function mbr(): Buffer {
  const b = Buffer.alloc(512);
  const e = 446;
  b[e] = 0x80; // bootable: U-Boot's distro boot looks at bootable partitions first
  b[e + 4] = 0x83;
  // CHS fields left at the "use LBA" values.
  b.fill(0xff, e + 1, e + 4);
  b.fill(0xff, e + 5, e + 8);
  b.writeUInt32LE(PART_START, e + 8);
  b.writeUInt32LE(PART_SECTORS, e + 12);
  b[510] = 0x55;
  b[511] = 0xaa;
  return b;
}

describe.skipIf(missing.length > 0)('U-Boot from Debian', () => {
  let dir = '';
  let disk = '';
  let part = '';

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'wasmvisor-uboot-'));
    // The root file system: the bundled busybox initramfs, with the kernel and extlinux.conf in
    // /boot as Debian's u-boot-menu writes them.
    const rootfs = join(dir, 'rootfs');
    mkdirSync(rootfs);
    execFileSync(
      'sh',
      ['-c', `gzip -dc "${join(images, 'initramfs.cpio.gz')}" | cpio -idm --quiet`],
      { cwd: rootfs, env },
    );
    mkdirSync(join(rootfs, 'boot', 'extlinux'), { recursive: true });
    writeFileSync(
      join(rootfs, 'boot', 'Image'),
      gunzipSync(readFileSync(join(images, 'Image.gz'))),
    );
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
        '\tappend console=ttyS0 root=/dev/vda1 rw uboot-test',
        '',
      ].join('\n'),
    );
    part = join(dir, 'part.img');
    execFileSync('mke2fs', ['-q', '-F', '-t', 'ext4', '-d', rootfs, part, '64M'], { env });
    disk = join(dir, 'disk.img');
    const fd = openSync(disk, 'w');
    try {
      writeSync(fd, mbr(), 0, 512, 0);
      writeSync(fd, readFileSync(part), 0, PART_SECTORS * 512, PART_START * 512);
    } finally {
      closeSync(fd);
    }
  });

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('boots Linux from a partitioned disk through extlinux.conf; the guest writes to its root partition', async () => {
    const s = SerialSession.spawn(
      process.execPath,
      [cli, 'run', '--kernel', UBOOT, '--disk', disk, '--stats'],
      { logFile: join(root, 'test-artifacts', 'uboot-extlinux.log'), env },
    );
    try {
      await s.expect(/U-Boot 20\d\d\.\d\d/, 30_000);
      await s.expect(/QEMU VirtIO Block Device/, 30_000);
      await s.expect(/extlinux\/extlinux\.conf/, 30_000);
      await s.expect(/Linux version 6\./, 60_000);
      await s.expect(/~# /, 90_000);
      s.sendLine('cat /proc/cmdline; grep " / " /proc/mounts; cat /proc/device-tree/compatible');
      await s.expect(/uboot-test[\s\S]*\/dev\/root \/ ext4 rw[\s\S]*riscv-virtio/, 10_000);
      s.sendLine('echo written-after-uboot > /root/from-guest; sync; echo S""YNCED');
      await s.expect(/SYNCED/, 30_000);
      s.sendLine('poweroff');
      expect((await s.waitForExit(30_000)).code).toBe(0);
    } finally {
      await s.close();
    }
    // The partition, read back from the image: the file is there and the file system clean.
    const back = join(dir, 'back.img');
    const all = readFileSync(disk);
    writeFileSync(back, all.subarray(PART_START * 512, (PART_START + PART_SECTORS) * 512));
    expect(catImage(back, '/root/from-guest')).toBe('written-after-uboot\n');
    const fsck = tool('e2fsck', ['-fn', back]);
    expect(fsck.status, fsck.out).toBe(0);
  }, 180_000);

  it("passes U-Boot's UEFI self-test, its network protocol test over virtio-net and the NAT too", async () => {
    const s = SerialSession.spawn(
      process.execPath,
      [cli, 'run', '--kernel', UBOOT, '--nic', 'virtio,net=user'],
      { logFile: join(root, 'test-artifacts', 'uboot-efi-selftest.log'), env },
    );
    try {
      await s.expect(/Hit any key to stop autoboot/, 30_000);
      s.send(' ');
      await s.expect(/=> $/m, 10_000);
      s.sendLine('bootefi selftest');
      const r = await s.expect(/Summary: (\d+) failures/, 150_000);
      // U-Boot colours its self-test's lines (ESC [ … m); the checks read the plain text.
      const text = s.output.replace(new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*m`, 'g'), '');
      expect(text).toMatch(/Executing 'simple network protocol' succeeded/);
      expect(text).toMatch(/Executing 'ExitBootServices' succeeded/);
      expect(r.match[1], text.slice(-4000)).toBe('0');
    } finally {
      await s.close();
    }
  }, 200_000);

  it("U-Boot's own e1000 driver (polled, legacy descriptors) gets a lease and pings the gateway", async () => {
    const s = SerialSession.spawn(
      process.execPath,
      [cli, 'run', '--kernel', UBOOT, '--nic', 'e1000,net=user'],
      { logFile: join(root, 'test-artifacts', 'uboot-e1000.log'), env },
    );
    try {
      await s.expect(/eth0: e1000#0/, 30_000);
      await s.expect(/Hit any key to stop autoboot/, 30_000);
      s.send(' ');
      await s.expect(/=> $/m, 10_000);
      // No TFTP download after the lease (U-Boot's default would fetch a boot file).
      s.sendLine('setenv autoload no; dhcp; ping 10.0.2.2; poweroff');
      await s.expect(/DHCP client bound to address 10\.0\.2\.15/, 30_000);
      await s.expect(/host 10\.0\.2\.2 is alive/, 30_000);
      expect((await s.waitForExit(30_000)).code).toBe(0);
    } finally {
      await s.close();
    }
  }, 120_000);
});
