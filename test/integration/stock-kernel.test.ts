/**
 * Debian's own riscv64 kernel (drivers as modules) boots in wasmvisor to the same busybox
 * prompt as the bundled guest: as a kernel handed over by OpenSBI, and through UEFI, as
 * Debian's images boot: Debian's U-Boot loads it from a disk and starts its EFI stub, which takes
 * the initrd named on its command line and the device tree from U-Boot's configuration table;
 * Linux then finds UEFI runtime services; and with nothing typed, as Debian's riscv64 images
 * boot: U-Boot finds GRUB's EFI binary on an EFI system partition, GRUB reads its grub.cfg from
 * the root file system and starts the kernel with its initrd; and as Debian's network installer
 * boots, GRUB fetched over TFTP (the layouts: bench/boot-disks.ts). The kernel, its initramfs and
 * GRUB are fetched through apt and built by `guest/build.sh stock` (not committed: ~40 MB), so
 * this test needs Debian's archive.
 */
import { describe, it, expect } from 'vitest';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SerialSession } from './serial-session.js';
import { env, missingTools } from './root-disk.js';
import { UBOOT, makePartitionedDisk, ubootPrompt } from './uboot-disk.js';
import { grubEspDisk, grubNetbootTree } from '../../bench/boot-disks.js';

const root = join(import.meta.dirname, '..', '..');
const cli = join(root, 'bin', 'wasmvisor.mjs');
const stock = join(root, 'guest', 'work', 'stock');
const canApt = spawnSync('sh', ['-c', 'command -v apt-get'], { encoding: 'utf8' }).status === 0;

/** Builds the stock kernel, initramfs and GRUB unless they are there (the first test to ask). */
function needStock(): void {
  const files = ['Image', 'initramfs.cpio.gz', 'grubriscv64.efi', 'grubnetriscv64.efi'];
  if (files.every((f) => existsSync(join(stock, f)))) return;
  const b = spawnSync('bash', [join(root, 'guest', 'build.sh'), 'stock'], {
    encoding: 'utf8',
    timeout: 600_000,
  });
  expect(b.status, `guest/build.sh stock failed:\n${(b.stdout + b.stderr).slice(-2000)}`).toBe(0);
}

/** Runs `body` with a temporary directory of its own, removed afterwards whatever happens. */
async function inTmp(prefix: string, body: (dir: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  try {
    await body(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Boots U-Boot as the kernel of a 1 GiB VM with `args` (logged to test-artifacts/LOG); `drive`
 * takes it to the guest's prompt, then `poweroff` must end the VM with status 0. Returns the
 * CLI's stderr (where `--stats` prints).
 */
async function untilPoweroff(
  args: string[],
  log: string,
  drive: (s: SerialSession) => Promise<void>,
): Promise<string> {
  const s = SerialSession.spawn(
    process.execPath,
    [cli, 'run', '--kernel', UBOOT, '--mem', '1G', ...args],
    { logFile: join(root, 'test-artifacts', log), env },
  );
  try {
    await drive(s);
    s.sendLine('poweroff');
    expect((await s.waitForExit(60_000)).code).toBe(0);
    return s.stderr;
  } finally {
    await s.close();
  }
}

/** The stock kernel and initramfs, for GRUB to boot. */
const stockBoot = { kernel: join(stock, 'Image'), initrd: join(stock, 'initramfs.cpio.gz') };

describe.skipIf(!canApt)("Debian's stock riscv64 kernel", () => {
  it('boots to the shell prompt, computes and powers off', async () => {
    needStock();
    const s = SerialSession.spawn(
      process.execPath,
      [
        cli,
        'run',
        '--kernel',
        join(stock, 'Image'),
        '--initrd',
        join(stock, 'initramfs.cpio.gz'),
        '--mem',
        '512M',
      ],
      { logFile: join(root, 'test-artifacts', 'boot-stock.log') },
    );
    try {
      await s.expect('OpenSBI', 20_000);
      await s.expect(/Linux version \d+\.\d+\.\d+\S*-riscv64/, 30_000);
      await s.expect(/# /, 180_000);
      s.sendLine('echo $((6*7))');
      await s.expect(/^42\r?$/m, 20_000);
      s.sendLine('poweroff');
      const exit = await s.waitForExit(60_000);
      expect(exit.code).toBe(0);
    } finally {
      await s.close();
    }
  }, 900_000);

  it.skipIf(!existsSync(UBOOT) || missingTools(['mke2fs']).length > 0)(
    "boots through UEFI: U-Boot's bootefi starts its EFI stub, Linux finds runtime services",
    () =>
      inTmp('wasmvisor-efi-', async (dir) => {
        needStock();
        const tree = join(dir, 'tree');
        mkdirSync(join(tree, 'boot'), { recursive: true });
        copyFileSync(join(stock, 'Image'), join(tree, 'boot', 'Image'));
        copyFileSync(join(stock, 'initramfs.cpio.gz'), join(tree, 'boot', 'initrd'));
        const disk = makePartitionedDisk(dir, tree, 96);
        await untilPoweroff(['--disk', disk], 'boot-stock-efi.log', async (s) => {
          await ubootPrompt(s);
          s.sendLine(
            "load virtio 0:1 ${kernel_addr_r} /boot/Image; setenv bootargs 'console=ttyS0 initrd=/boot/initrd'; bootefi ${kernel_addr_r} ${fdtcontroladdr}",
          );
          await s.expect(/EFI stub: Booting Linux Kernel/, 60_000);
          await s.expect(/EFI stub: Loaded initrd from command line option/, 30_000);
          await s.expect(/EFI stub: Exiting boot services/, 30_000);
          await s.expect(/efi: EFI v\d+\.\d+ by Das U-Boot/, 60_000);
          await s.expect(/# /, 180_000);
          s.sendLine('ls /sys/firmware/efi; echo $((6*7))');
          await s.expect(/systab[\s\S]*^42\r?$/m, 20_000);
        });
      }),
    900_000,
  );

  it.skipIf(!existsSync(UBOOT) || missingTools(['mke2fs', 'mkfs.fat', 'mcopy']).length > 0)(
    "boots as Debian's images do, nothing typed: U-Boot starts GRUB from the EFI system partition, GRUB's menu boots Linux",
    () =>
      inTmp('wasmvisor-grub-', async (dir) => {
        needStock();
        const disk = grubEspDisk(dir, join(stock, 'grubriscv64.efi'), {
          ...stockBoot,
          title: 'Debian GNU/Linux (wasmvisor test)',
          append: 'wasmvisor.test=grub',
        });
        await untilPoweroff(['--disk', disk], 'boot-stock-grub.log', async (s) => {
          await s.expect(/Found EFI removable media binary efi\/boot\/bootriscv64\.efi/i, 60_000);
          await s.expect(/GNU GRUB +version 2\./, 30_000);
          await s.expect(/Debian GNU\/Linux \(wasmvisor test\)/, 30_000);
          await s.expect(/Loading initial ramdisk/, 60_000);
          await s.expect(/EFI stub: Loaded initrd from LINUX_EFI_INITRD_MEDIA_GUID/, 60_000);
          await s.expect(/# /, 180_000);
          // GRUB put BOOT_IMAGE= before the menu entry's command line, as it does on Debian.
          s.sendLine('cat /proc/cmdline; ls /sys/firmware/efi; echo $((6*7))');
          await s.expect(
            /BOOT_IMAGE=\/boot\/vmlinuz console=ttyS0 wasmvisor\.test=grub[\s\S]*systab[\s\S]*^42\r?$/m,
            20_000,
          );
        });
      }),
    900_000,
  );

  // Through either NIC: U-Boot's virtio-net driver on virtio-mmio, or its e1000 driver on PCIe
  // (GRUB sends and receives through U-Boot's EFI network protocol either way).
  it.skipIf(!existsSync(UBOOT)).each(['virtio', 'e1000'])(
    "netboots as Debian's installer does, nothing typed (%s): U-Boot's DHCP boot file is GRUB's netboot image, GRUB fetches its config, the kernel and the initrd over TFTP",
    (model) =>
      inTmp('wasmvisor-grubnet-', async (dir) => {
        needStock();
        const tftp = grubNetbootTree(dir, join(stock, 'grubnetriscv64.efi'), {
          ...stockBoot,
          title: 'Debian GNU/Linux over the network (wasmvisor test)',
          append: 'wasmvisor.test=grubnet',
        });
        const files = ['grubnetriscv64.efi', 'vmlinuz', 'initrd.img', 'grub/grub.cfg'];
        const bytes = files.reduce((a, f) => a + statSync(join(tftp, f)).size, 0);
        const nic = `${model},net=user,tftp=${tftp},bootfile=grubnetriscv64.efi`;
        const stderr = await untilPoweroff(
          ['--nic', nic, '--stats'],
          `boot-stock-grubnet-${model}.log`,
          async (s) => {
            await s.expect(/DHCP client bound to address 10\.0\.2\.15/, 60_000);
            await s.expect(/Filename 'grubnetriscv64\.efi'/, 30_000);
            await s.expect(/GNU GRUB +version 2\./, 60_000);
            await s.expect(/Debian GNU\/Linux over the network \(wasmvisor test\)/, 60_000);
            await s.expect(/EFI stub: Loaded initrd from LINUX_EFI_INITRD_MEDIA_GUID/, 120_000);
            await s.expect(/# /, 180_000);
            s.sendLine('cat /proc/cmdline; echo $((6*7))');
            await s.expect(
              /BOOT_IMAGE=\S*\/vmlinuz console=ttyS0 wasmvisor\.test=grubnet[\s\S]*^42\r?$/m,
              20_000,
            );
          },
        );
        // --stats at exit: the TFTP server sent the four files whole (and refused nothing; the
        // names U-Boot tries first and DIR lacks, boot.scr.uimg and dtb/, are "not found").
        const stat = (name: string): number =>
          Number(new RegExp(`^ {2}${name} +(\\d+)\\r?$`, 'm').exec(stderr)?.[1] ?? 0);
        expect(stat('net_backend_tftp_files_sent')).toBeGreaterThanOrEqual(files.length);
        expect(stat('net_backend_tftp_bytes')).toBeGreaterThanOrEqual(bytes);
        expect(stat('net_backend_tftp_denied')).toBe(0);
      }),
    900_000,
  );
});
