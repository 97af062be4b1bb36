/**
 * A whole Debian riscv64 system boots in wasmvisor as it would on a board: Debian's kernel and
 * its initramfs-tools image find the root disk (virtio-blk, drivers as modules), systemd brings
 * the system up, udev names the NIC, systemd-networkd gets a lease from the user network, root
 * is logged in on the serial console, and `poweroff` ends the VM through systemd.
 *
 * Then the same disk boots by itself, as a machine's does: Debian's U-Boot reads the
 * extlinux.conf that u-boot-menu wrote on it and starts the kernel and initrd installed there.
 *
 * The system is built by `guest/debian.sh` (mmdebstrap from Debian's archive, maintainer
 * scripts under qemu-user; ~1 GB, not committed) when guest/work/debian has none, so the test
 * needs root and Debian's archive. The disk is opened with snapshot=on: the image stays as built.
 */
import { describe, it, expect } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SerialSession } from './serial-session.js';
import { UBOOT } from './uboot-disk.js';

const root = join(import.meta.dirname, '..', '..');
const cli = join(root, 'bin', 'wasmvisor.mjs');
const debian = join(root, 'guest', 'work', 'debian');
const canBuild =
  process.getuid?.() === 0 &&
  spawnSync('sh', ['-c', 'command -v apt-get'], { encoding: 'utf8' }).status === 0;
const FILES = ['disk.img', 'vmlinuz', 'initrd.img'];
const built = FILES.every((f) => existsSync(join(debian, f)));

/** Builds the system unless it is there (the first test to ask). */
function needDebian(): void {
  if (FILES.every((f) => existsSync(join(debian, f)))) return;
  const b = spawnSync('bash', [join(root, 'guest', 'debian.sh')], {
    encoding: 'utf8',
    timeout: 1_200_000,
  });
  expect(b.status, `guest/debian.sh failed:\n${(b.stdout + b.stderr).slice(-3000)}`).toBe(0);
}

describe.skipIf(!canBuild && !built)('a Debian system with systemd', () => {
  it('boots to a root shell, has its network, and powers off through systemd', async () => {
    needDebian();
    // A file for the guest through fw_cfg, as QEMU's -fw_cfg hands one (Debian's qemu_fw_cfg).
    const tmp = mkdtempSync(join(tmpdir(), 'wasmvisor-debian-'));
    const fwFile = join(tmp, 'config.json');
    writeFileSync(fwFile, '{"from":"the host","n":42}\n');
    const s = SerialSession.spawn(
      process.execPath,
      [
        cli,
        'run',
        '--kernel',
        join(debian, 'vmlinuz'),
        '--initrd',
        join(debian, 'initrd.img'),
        '--disk',
        `${join(debian, 'disk.img')},snapshot=on`,
        '--nic',
        'virtio,net=user',
        '--mem',
        '1G',
        '--append',
        'console=ttyS0 root=LABEL=debian rw',
        '--fw-cfg',
        `name=opt/org.wasmvisor/config,file=${fwFile}`,
        '--fw-cfg',
        'opt/org.wasmvisor/note,string=hi,, guest',
      ],
      { logFile: join(root, 'test-artifacts', 'boot-debian.log') },
    );
    try {
      await s.expect(/Linux version \d+\.\d+\.\d+\S*-riscv64/, 60_000);
      await s.expect(/Welcome to .*Debian/, 240_000);
      // serial-getty@ttyS0 logs root in (guest/debian.sh): the shell's prompt.
      const prompt = await s.expect(/root@wasmvisor-debian:~# /, 480_000);
      console.log(`debian: root shell after ${(prompt.elapsedMs / 1000).toFixed(1)} s`);
      // The shell marks each command with OSC 3008 sequences (systemd's profile.d), so the
      // patterns below do not anchor at line starts.
      s.sendLine('systemctl is-system-running --wait; echo state-done');
      const state = await s.expect(/(running|degraded)\r?\n[^]*?state-done/, 300_000);
      if (state.match[1] === 'degraded') {
        s.sendLine('systemctl --failed --no-legend --plain; echo failed-done');
        const failed = await s.expect(/failed-done\r?\n/, 60_000);
        expect.soft(failed.before, 'units that failed').toBe('');
      }
      s.sendLine('. /etc/os-release; echo "os=$ID"; uname -m');
      await s.expect(/os=debian\r?\nriscv64\r?\n/, 30_000);
      // The kernel took the bit-manipulation extensions from the device tree (and patched its
      // Zbb string functions in: the boot above ran them), as on QEMU's rv64 CPU.
      s.sendLine("grep -m1 '^isa' /proc/cpuinfo; echo isa-done");
      const isa = await s.expect(/isa\s+: (\S+)\r?\n[^]*?isa-done/, 30_000);
      expect(isa.match[1]!.split('_')).toEqual(
        expect.arrayContaining(['rv64imafdc', 'zihintpause', 'zba', 'zbb', 'zbc', 'zbs', 'sstc']),
      );
      // The lease from the user network's DHCP server (networkd), and the gateway answers. udev
      // loads virtio_net some seconds after the login (modules, emulated): wait for the link.
      s.sendLine(
        '/usr/lib/systemd/systemd-networkd-wait-online --timeout=180; ' +
          'ip -color=never -4 -o addr show scope global; ping -c 1 -W 5 10.0.2.2 >/dev/null && echo gw-ok',
      );
      await s.expect(/inet 10\.0\.2\.15\/24[^]*gw-ok/, 240_000);
      // fw_cfg: the driver binds to the device-tree node (udev loads it), lists QEMU's files
      // and the user's, and systemd takes the machine for QEMU's, as it does under QEMU.
      s.sendLine(
        'cd /sys/firmware/qemu_fw_cfg/by_name && test -d bootorder -a -d etc/boot-fail-wait && ' +
          'cat opt/org.wasmvisor/config/raw opt/org.wasmvisor/note/raw; echo; ' +
          'echo virt=$(systemd-detect-virt); cd',
      );
      await s.expect(/\{"from":"the host","n":42\}\r?\nhi, guest\r?\nvirt=qemu/, 60_000);
      s.sendLine('poweroff');
      await s.expect(/reboot: Power down|Powering off/, 300_000);
      const exit = await s.waitForExit(120_000);
      expect(exit.code).toBe(0);
    } finally {
      await s.close();
      rmSync(tmp, { recursive: true, force: true });
    }
  }, 2_400_000);
  it.skipIf(!existsSync(UBOOT))(
    "boots from its own disk through U-Boot: u-boot-menu's extlinux.conf names Debian's kernel and initrd",
    async () => {
      needDebian();
      const s = SerialSession.spawn(
        process.execPath,
        [
          cli,
          'run',
          '--kernel',
          UBOOT,
          '--disk',
          `${join(debian, 'disk.img')},snapshot=on`,
          '--mem',
          '1G',
        ],
        { logFile: join(root, 'test-artifacts', 'boot-debian-uboot.log') },
      );
      try {
        await s.expect(/Retrieving file: \/boot\/extlinux\/extlinux\.conf/, 60_000);
        await s.expect(/Debian GNU\/Linux .*\d+\.\d+\.\d+\S*-riscv64/, 60_000);
        await s.expect(/Linux version \d+\.\d+\.\d+\S*-riscv64/, 120_000);
        await s.expect(/root@wasmvisor-debian:~# /, 480_000);
        // The command line u-boot-menu wrote (its root by label), the root mounted from the
        // partition, and the kernel is the one installed on the disk.
        s.sendLine(
          'cat /proc/cmdline; findmnt -n -o SOURCE /; ls /boot/vmlinu?-$(uname -r) && echo k-ok',
        );
        await s.expect(/root=LABEL=debian ro console=ttyS0[^]*\/dev\/vda1[^]*k-ok/, 60_000);
        s.sendLine('poweroff');
        await s.expect(/reboot: Power down|Powering off/, 300_000);
        expect((await s.waitForExit(120_000)).code).toBe(0);
      } finally {
        await s.close();
      }
    },
    2_400_000,
  );
});
