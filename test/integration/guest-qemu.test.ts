/**
 * Reference boot: the bundled guest (guest/images: OpenSBI fw_dynamic.bin, our 6.1 kernel, the
 * busybox initramfs) on QEMU's own `virt` board. This is the run that wasmvisor's boot figures
 * are compared against, and a check that the images themselves are good: when this fails,
 * the bug is in guest/, not in the emulator.
 *
 * Skipped, saying so, when qemu-system-riscv64 is not installed (Debian: qemu-system-misc).
 * Set QEMU_SYSTEM_RISCV64 to use another binary. Transcripts and timings are written to
 * test-artifacts/guest-qemu*.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SerialSession } from './serial-session.js';
import { QEMU, qemuVersion, qemuVirtArgs, unpackKernel } from '../../bench/qemu-virt.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const ARTIFACTS = join(ROOT, 'test-artifacts');

/** The shell prompt of the bundled initramfs (PS1='\h:\w# '). */
const PROMPT = /wasmvisor:[^\r\n]*# /;

const qemu = qemuVersion();
const SKIP_NOTE = `${QEMU} not found: install QEMU (Debian: apt-get install qemu-system-misc) to run the reference boot`;

describe('bundled guest on QEMU virt (reference boot)', () => {
  let tmp = '';
  let kernel = '';

  beforeAll(() => {
    if (qemu === undefined) console.warn(`guest-qemu: skipped: ${SKIP_NOTE}`);
    tmp = mkdtempSync(join(tmpdir(), 'wasmvisor-guest-'));
    kernel = unpackKernel(tmp);
  });

  afterAll(() => {
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  function boot(name: string, extraArgs: string[] = [], append = 'console=ttyS0'): SerialSession {
    const args = qemuVirtArgs({ kernel, append, extra: extraArgs });
    return SerialSession.spawn(QEMU, args, { logFile: join(ARTIFACTS, `${name}.log`) });
  }

  it('boots to a shell prompt, runs a command and powers off', async (ctx) => {
    if (qemu === undefined) ctx.skip(SKIP_NOTE);
    const s = boot('guest-qemu');
    try {
      const firmware = await s.expect('OpenSBI', 30_000);
      const kernelUp = await s.expect(/Linux version (6\.1\.\d+)\S* /, 30_000);
      const init = await s.expect('Run /init as init process', 60_000);
      await s.expect(/wasmvisor: userspace up/, 30_000);
      const prompt = await s.expect(PROMPT, 30_000);

      s.sendLine('echo $((6*7))');
      await s.expect(/^42\r?$/m, 10_000);
      await s.expect(PROMPT, 10_000);

      s.sendLine('poweroff');
      await s.expect('reboot: Power down', 30_000);
      const exit = await s.waitForExit(30_000);
      expect(exit.code).toBe(0);

      const timings = {
        qemu,
        kernel: kernelUp.match[1],
        firmwareBannerMs: Math.round(firmware.elapsedMs),
        kernelBannerMs: Math.round(kernelUp.elapsedMs),
        initMs: Math.round(init.elapsedMs),
        promptMs: Math.round(prompt.elapsedMs),
        poweroffExitMs: Math.round(exit.elapsedMs),
      };
      mkdirSync(ARTIFACTS, { recursive: true });
      writeFileSync(join(ARTIFACTS, 'guest-qemu.json'), JSON.stringify(timings, null, 2) + '\n');
      console.log(`QEMU reference boot: prompt after ${timings.promptMs} ms (${qemu})`);
    } finally {
      await s.close();
    }
  }, 180_000);

  it("binds a driver to each of the virt board's devices", async (ctx) => {
    if (qemu === undefined) ctx.skip(SKIP_NOTE);
    const disk = join(tmp, 'disk.raw');
    writeFileSync(disk, Buffer.alloc(1 << 20));
    const s = boot('guest-qemu-devices', [
      '-drive', `file=${disk},format=raw,if=none,id=d0`,
      '-device', 'virtio-blk-device,drive=d0',
      '-netdev', 'user,id=n0', '-device', 'virtio-net-device,netdev=n0',
      '-netdev', 'user,id=n1', '-device', 'e1000,netdev=n1',
      '-netdev', 'user,id=n2', '-device', 'virtio-net-pci,netdev=n2',
      '-device', 'virtio-rng-device',
      '-device', 'virtio-balloon-device',
      '-device', 'virtio-serial-device', '-chardev', 'null,id=c0',
      '-device', 'virtconsole,chardev=c0',
    ]); // prettier-ignore
    try {
      await s.expect(PROMPT, 90_000);
      const drivers = [
        'virtio:virtio_blk',
        'virtio:virtio_net',
        'virtio:virtio_rng',
        'virtio:virtio_balloon',
        'virtio:virtio_console',
        'pci:e1000',
      ];
      // One line per driver with the devices bound to it, then an end marker.
      s.sendLine(
        `for d in ${drivers.join(' ')}; do b=\${d%%:*}; n=\${d#*:}; ` +
          'echo "bound $n: $(ls /sys/bus/$b/drivers/$n | grep -c -e ^virtio -e ^0000:)"; done; ' +
          'echo "disk $(cat /sys/block/vda/size)"; echo "rtc $(cat /sys/class/rtc/rtc0/name)"; ' +
          'echo end-$((40+2))',
      );
      const { before } = await s.expect(/^end-42\r?$/m, 20_000);
      const count = (n: string): number =>
        Number(new RegExp(`^bound ${n}: (\\d+)`, 'm').exec(before)?.[1] ?? 0);
      expect(count('virtio_blk')).toBe(1);
      expect(count('virtio_net')).toBe(2); // one on virtio-mmio, one on PCI
      expect(count('virtio_rng')).toBe(1);
      expect(count('virtio_balloon')).toBe(1);
      expect(count('virtio_console')).toBe(1);
      expect(count('e1000')).toBe(1);
      expect(before).toMatch(/^disk 2048\r?$/m);
      expect(before).toMatch(/^rtc \S*goldfish/m);

      s.sendLine('poweroff');
      const exit = await s.waitForExit(30_000);
      expect(exit.code).toBe(0);
    } finally {
      await s.close();
    }
  }, 180_000);
});
