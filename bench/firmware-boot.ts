/**
 * Booting through firmware, against QEMU: Debian's U-Boot (`u-boot-qemu`) after OpenSBI starts
 * Debian's GRUB with nothing typed, and GRUB boots Debian's stock kernel and a busybox initramfs
 * (`guest/build.sh stock`) — from a disk laid out as Debian's images are (an EFI system
 * partition beside the root), and over the network as Debian's installer netboots (GRUB's
 * netboot image as DHCP's boot file, everything over `net=user`'s TFTP). wasmvisor (JIT, as VMs
 * run by default) and QEMU TCG boot the same disk and tree, alternately; printed are the
 * medians, from the start, of: GRUB's banner, the kernel's EFI stub (GRUB has loaded the kernel
 * and the initrd: the difference is mostly GRUB reading 34 MB through U-Boot's drivers), the
 * shell prompt, and the host CPU seconds to the prompt. Then the share of a host core each
 * spends waiting in firmware: U-Boot's autoboot countdown, and a prompt nobody types at, U-Boot's
 * (autoboot stopped by a key) and GRUB's command line (`c` at its menu), over IDLE_S seconds.
 *
 *   node dist/bench/firmware-boot.js [RUNS]    (default 3; FIRMWARE_BENCH_QEMU=0: ours only)
 *
 * Without U-Boot, the stock build or mtools it says what is missing and exits 0, so that
 * `npm run bench` goes on.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { GuestConsole } from './guest-console.js';
import { childCpuSeconds } from './proc-cpu.js';
import { GUEST_IMAGES, QEMU, qemuVersion } from './qemu-virt.js';
import { UBOOT, grubEspDisk, grubNetbootTree } from './boot-disks.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const stock = join(GUEST_IMAGES, '..', 'work', 'stock');
const RUNS = Number(process.argv[2] ?? 3);
const PROMPT = /~# /;
/** Seconds of waiting at a firmware prompt measured (after a second to settle). */
const IDLE_S = 3;

interface Boot {
  grub: number;
  loaded: number;
  prompt: number;
  cpu: number;
}

/** One boot, timed from the spawn; the emulator is killed at the prompt. */
async function boot(cmd: string, args: string[]): Promise<Boot> {
  const t0 = performance.now();
  const since = (): number => (performance.now() - t0) / 1000;
  const c = new GuestConsole(cmd, args);
  try {
    await c.expect(/GNU GRUB +version/, 120_000);
    const grub = since();
    await c.expect(/EFI stub: Booting Linux Kernel/, 300_000);
    const loaded = since();
    await c.expect(PROMPT, 300_000);
    return { grub, loaded, prompt: since(), cpu: childCpuSeconds(c.p.pid) ?? NaN };
  } finally {
    c.kill();
  }
}

/**
 * Share of a host core the emulator takes while it waits at a firmware prompt: `reach` brings
 * the guest there, then IDLE_S seconds of its CPU time (/proc) over wall time.
 */
async function idleShare(
  cmd: string,
  args: string[],
  reach: (c: GuestConsole) => Promise<void>,
): Promise<number> {
  const c = new GuestConsole(cmd, args);
  try {
    await reach(c);
    await new Promise((r) => setTimeout(r, 1000));
    const c0 = childCpuSeconds(c.p.pid) ?? NaN;
    const t0 = performance.now();
    await new Promise((r) => setTimeout(r, IDLE_S * 1000));
    return ((childCpuSeconds(c.p.pid) ?? NaN) - c0) / ((performance.now() - t0) / 1000);
  } finally {
    c.kill();
  }
}

/**
 * Share of a host core the emulator takes during U-Boot's 2 s autoboot countdown (from the
 * count's "2" to its "0"), where U-Boot spins in udelay() on the clock.
 */
async function countdownShare(cmd: string, args: string[]): Promise<number> {
  const c = new GuestConsole(cmd, args);
  try {
    await c.expect(/Hit any key to stop autoboot: +2 /, 60_000);
    const c0 = childCpuSeconds(c.p.pid) ?? NaN;
    const t0 = performance.now();
    await c.expect(/ 1 [^\d]+ 0 /, 30_000); // each count follows three backspaces
    return ((childCpuSeconds(c.p.pid) ?? NaN) - c0) / ((performance.now() - t0) / 1000);
  } finally {
    c.kill();
  }
}

/** Stops U-Boot's autoboot with a key: its prompt. */
async function ubootPrompt(c: GuestConsole): Promise<void> {
  await c.expect(/Hit any key to stop autoboot/, 60_000);
  c.sendRaw(new TextEncoder().encode(' '));
  await c.expect(/=> /, 30_000);
}

/** `c` at GRUB's menu: its command line. */
async function grubPrompt(c: GuestConsole): Promise<void> {
  await c.expect(/GNU GRUB +version/, 120_000);
  c.sendRaw(new TextEncoder().encode('c'));
  await c.expect(/grub> /, 30_000);
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const fmt = (x: number): string => (Number.isFinite(x) ? x.toFixed(2) : '—');

function have(cmd: string): boolean {
  const path = `${process.env.PATH}:/usr/sbin:/sbin`;
  return (
    spawnSync('sh', ['-c', `command -v ${cmd}`], { env: { ...process.env, PATH: path } }).status ===
    0
  );
}

interface Scenario {
  name: string;
  ours: string[];
  qemu: string[];
}

async function main(): Promise<void> {
  const missing = [
    existsSync(UBOOT) ? '' : `${UBOOT} (apt install u-boot-qemu)`,
    ['Image', 'initramfs.cpio.gz', 'grubriscv64.efi', 'grubnetriscv64.efi'].every((f) =>
      existsSync(join(stock, f)),
    )
      ? ''
      : `${stock} (guest/build.sh stock)`,
    have('mkfs.fat') && have('mcopy') ? '' : 'mkfs.fat and mcopy (apt install dosfstools mtools)',
  ].filter(Boolean);
  if (missing.length > 0) {
    console.log(`firmware-boot: skipped, missing ${missing.join('; ')}`);
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'wasmvisor-fwboot-'));
  try {
    const b = { kernel: join(stock, 'Image'), initrd: join(stock, 'initramfs.cpio.gz') };
    const disk = grubEspDisk(dir, join(stock, 'grubriscv64.efi'), {
      ...b,
      title: 'Debian GNU/Linux (bench)',
      append: '',
    });
    const tftp = grubNetbootTree(dir, join(stock, 'grubnetriscv64.efi'), {
      ...b,
      title: 'Debian GNU/Linux over the network (bench)',
      append: '',
    });
    const cli = [join(root, 'bin', 'wasmvisor.mjs'), 'run', '--kernel', UBOOT, '--mem', '1G'];
    const qemu = [
      '-M', 'virt', '-m', '1G', '-nographic',
      '-bios', join(GUEST_IMAGES, 'fw_dynamic.bin'), '-kernel', UBOOT,
    ]; // prettier-ignore
    const scenarios: Scenario[] = [
      {
        name: 'disk (EFI system partition)',
        ours: [...cli, '--disk', `${disk},snapshot=on`],
        qemu: [
          ...qemu,
          '-drive', `file=${disk},format=raw,if=none,id=d0,snapshot=on`,
          '-device', 'virtio-blk-device,drive=d0',
        ], // prettier-ignore
      },
      {
        name: 'network (TFTP, net=user)',
        ours: [...cli, '--nic', `virtio,net=user,tftp=${tftp},bootfile=grubnetriscv64.efi`],
        qemu: [
          ...qemu,
          '-netdev', `user,id=n0,tftp=${tftp},bootfile=grubnetriscv64.efi`,
          '-device', 'virtio-net-device,netdev=n0',
        ], // prettier-ignore
      },
    ];
    const haveQemu = process.env.FIRMWARE_BENCH_QEMU !== '0' && qemuVersion() !== undefined;
    console.log(
      `firmware-boot: U-Boot → GRUB → Debian's stock kernel, ${RUNS} runs each, alternating ` +
        `(wasmvisor, JIT; ${haveQemu ? qemuVersion() : 'no QEMU'}); medians, s from the start`,
    );
    for (const sc of scenarios) {
      const w: Boot[] = [];
      const q: Boot[] = [];
      for (let i = 0; i < RUNS; i++) {
        w.push(await boot(process.execPath, sc.ours));
        if (haveQemu) q.push(await boot(QEMU, sc.qemu));
      }
      const m = (bs: Boot[], f: (x: Boot) => number): number => median(bs.map(f));
      const cols: ((x: Boot) => number)[] = [
        (x) => x.grub,
        (x) => x.loaded - x.grub,
        (x) => x.loaded,
        (x) => x.prompt,
        (x) => x.cpu,
      ];
      const row = (name: string, bs: Boot[]): string =>
        `| ${name} | ${cols.map((f) => fmt(m(bs, f))).join(' | ')} |`;
      console.log('');
      console.log(
        `| ${sc.name} | GRUB up | GRUB loading kernel + initrd | kernel started | shell prompt | host CPU to it |`,
      );
      console.log('|---|---|---|---|---|---|');
      console.log(row('wasmvisor', w));
      if (q.length > 0) {
        console.log(row('QEMU TCG', q));
        const r = cols.map((f) => (m(w, f) / m(q, f)).toFixed(2));
        console.log(`| ratio (ours / QEMU) | ${r.join(' | ')} |`);
      }
    }

    // Waiting at a prompt: firmware polls the UART instead of WFI.
    const [disk0] = scenarios;
    const at =
      (reach: (c: GuestConsole) => Promise<void>) =>
      (cmd: string, args: string[]): Promise<number> =>
        idleShare(cmd, args, reach);
    const waits = [
      { name: "U-Boot's autoboot countdown (its 2 s)", ours: cli, qemu, share: countdownShare },
      { name: `U-Boot's prompt (${IDLE_S} s)`, ours: cli, qemu, share: at(ubootPrompt) },
      {
        name: `GRUB's command line (${IDLE_S} s)`,
        ours: disk0.ours,
        qemu: disk0.qemu,
        share: at(grubPrompt),
      },
    ];
    console.log('');
    console.log(`| waiting in firmware (share of a host core) | wasmvisor | QEMU TCG |`);
    console.log('|---|---|---|');
    for (const wt of waits) {
      const w: number[] = [];
      const q: number[] = [];
      for (let i = 0; i < RUNS; i++) {
        w.push(await wt.share(process.execPath, wt.ours));
        if (haveQemu) q.push(await wt.share(QEMU, wt.qemu));
      }
      const pct = (xs: number[]): string => (xs.length ? `${(median(xs) * 100).toFixed(0)}%` : '—');
      console.log(`| ${wt.name} | ${pct(w)} | ${pct(q)} |`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
