/**
 * Debian's U-Boot (`u-boot-qemu`, built for QEMU's riscv64 virt in S-mode) as the VM's kernel,
 * the way Debian boots riscv64 disk images under QEMU: OpenSBI hands over to U-Boot, which finds
 * the disk on virtio-mmio, reads /boot/extlinux/extlinux.conf from the bootable ext4 partition of
 * an MBR-partitioned image, loads the Linux Image it names and starts it with our device tree;
 * Linux mounts that partition as its root, and what it writes there is in the image afterwards.
 * Then U-Boot's own UEFI self-test (timers, events, memory maps, runtime services, and the
 * simple network protocol over our virtio-net and NAT) passes on the machine, and U-Boot's own
 * e1000 driver, a second driver beside Linux's, gets a DHCP lease and pings the gateway. And
 * U-Boot network-boots the bundled kernel and initramfs by PXE from `net=user,tftp=DIR`.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SerialSession } from './serial-session.js';
import { catImage, env, images, missingTools, tool } from './root-disk.js';
import { UBOOT, makeExtlinuxDisk, partitionOf, ubootPrompt } from './uboot-disk.js';
import { childCpuSeconds } from '../../bench/proc-cpu.js';

const root = join(import.meta.dirname, '..', '..');
const cli = join(root, 'bin', 'wasmvisor.mjs');
const missing = [...missingTools(['mke2fs', 'debugfs', 'e2fsck', 'cpio'])];
if (!existsSync(UBOOT)) missing.push(`${UBOOT} (Debian: apt-get install u-boot-qemu)`);
if (missing.length) console.warn(`uboot: skipped — missing ${missing.join(', ')}`);

describe.skipIf(missing.length > 0)('U-Boot from Debian', () => {
  let dir = '';
  let disk = '';

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'wasmvisor-uboot-'));
    disk = makeExtlinuxDisk(dir, 'console=ttyS0 root=/dev/vda1 rw uboot-test');
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
    writeFileSync(back, partitionOf(disk));
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
      await ubootPrompt(s);
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

  it('network-boots Linux over TFTP from net=user,tftp=DIR: dhcp, pxe get, pxe boot', async () => {
    // What a netboot directory holds: the kernel, the initramfs and pxelinux.cfg/default.
    const tftp = join(dir, 'tftp');
    mkdirSync(join(tftp, 'pxelinux.cfg'), { recursive: true });
    writeFileSync(join(tftp, 'Image'), gunzipSync(readFileSync(join(images, 'Image.gz'))));
    copyFileSync(join(images, 'initramfs.cpio.gz'), join(tftp, 'initramfs.cpio.gz'));
    writeFileSync(
      join(tftp, 'pxelinux.cfg', 'default'),
      'default l0\nprompt 0\ntimeout 1\n\nlabel l0\n\tkernel /Image\n\tinitrd /initramfs.cpio.gz\n' +
        '\tappend console=ttyS0 netbooted\n',
    );
    const s = SerialSession.spawn(
      process.execPath,
      [cli, 'run', '--kernel', UBOOT, '--nic', `virtio,net=user,tftp=${tftp}`],
      { logFile: join(root, 'test-artifacts', 'uboot-netboot.log'), env },
    );
    try {
      await ubootPrompt(s);
      s.sendLine('setenv autoload no; dhcp; pxe get; pxe boot');
      await s.expect(/DHCP client bound to address 10\.0\.2\.15/, 30_000);
      // U-Boot asks for the MAC's and the address's names first: those are not found.
      await s.expect(/TFTP error: 'file not found'/, 30_000);
      await s.expect(/Retrieving file: pxelinux\.cfg\/default/, 60_000);
      // U-Boot's pxe fetches the initrd first, then the kernel.
      await s.expect(/Retrieving file: \/initramfs\.cpio\.gz/, 30_000);
      await s.expect(/Retrieving file: \/Image/, 60_000);
      await s.expect(/Linux version 6\./, 60_000);
      await s.expect(/~# /, 90_000);
      s.sendLine('cat /proc/cmdline; poweroff');
      await s.expect(/console=ttyS0 netbooted/, 10_000);
      expect((await s.waitForExit(30_000)).code).toBe(0);
    } finally {
      await s.close();
    }
  }, 240_000);

  it("U-Boot's own e1000 driver (polled, legacy descriptors) gets a lease and pings the gateway", async () => {
    const s = SerialSession.spawn(
      process.execPath,
      [cli, 'run', '--kernel', UBOOT, '--nic', 'e1000,net=user', '--stats'],
      { logFile: join(root, 'test-artifacts', 'uboot-e1000.log'), env },
    );
    try {
      await s.expect(/eth0: e1000#0/, 30_000);
      await ubootPrompt(s);
      // No TFTP download after the lease (U-Boot's default would fetch a boot file).
      s.sendLine('setenv autoload no; dhcp; ping 10.0.2.2; poweroff');
      await s.expect(/DHCP client bound to address 10\.0\.2\.15/, 30_000);
      await s.expect(/host 10\.0\.2\.2 is alive/, 30_000);
      expect((await s.waitForExit(30_000)).code).toBe(0);
      // --stats at exit: the card's back end answered one DHCP request and one echo.
      expect(s.stderr).toMatch(
        /^e1000-0 network:(\r?\n {2}.*)*\r?\n {2}net_backend_dhcp_ack +1\r?$/m,
      );
      expect(s.stderr).toMatch(/^ {2}net_backend_icmp_echo_replies +1\r?$/m);
    } finally {
      await s.close();
    }
  }, 120_000);
  it('waits at its prompt without keeping a host core busy, and answers a key at once', async () => {
    const s = SerialSession.spawn(process.execPath, [cli, 'run', '--kernel', UBOOT], {
      logFile: join(root, 'test-artifacts', 'uboot-idle.log'),
      env,
    });
    try {
      await ubootPrompt(s);
      // U-Boot reads the UART's status in a loop while it waits for a key; this took a whole
      // host core (as under QEMU) before the run loop learnt to sleep through such slices.
      await new Promise((r) => setTimeout(r, 1000));
      const c0 = childCpuSeconds(s.pid)!;
      const t0 = performance.now();
      await new Promise((r) => setTimeout(r, 3000));
      const share = (childCpuSeconds(s.pid)! - c0) / ((performance.now() - t0) / 1000);
      expect(share, 'host CPU share at the prompt').toBeLessThan(0.5);
      const t1 = performance.now();
      s.sendLine('setenv n 42; echo awake-${n}');
      await s.expect(/awake-42/, 5_000);
      expect(performance.now() - t1, 'ms from the key to the answer').toBeLessThan(1_000);
      s.sendLine('poweroff');
      expect((await s.waitForExit(30_000)).code).toBe(0);
    } finally {
      await s.close();
    }
  }, 60_000);
  it('counts its autoboot delay down at its pace without keeping a host core busy', async () => {
    const s = SerialSession.spawn(process.execPath, [cli, 'run', '--kernel', UBOOT], {
      logFile: join(root, 'test-artifacts', 'uboot-countdown.log'),
      env,
    });
    try {
      // The 2 s countdown spins in udelay() on the time CSR, looking for a key every 10 ms.
      await s.expect(/Hit any key to stop autoboot: +2 /, 30_000);
      const c0 = childCpuSeconds(s.pid)!;
      const t0 = performance.now();
      await s.expect(/ 1 [^\d]+ 0 /, 10_000); // each count follows three backspaces
      const s1 = (performance.now() - t0) / 1000;
      const share = (childCpuSeconds(s.pid)! - c0) / s1;
      expect(s1, 'seconds from "2" to "0"').toBeGreaterThan(1.8);
      expect(s1, 'seconds from "2" to "0"').toBeLessThan(3);
      expect(share, 'host CPU share during the countdown').toBeLessThan(0.5);
    } finally {
      await s.close();
    }
  }, 60_000);
});
