/**
 * A whole Debian system (guest/debian.sh: systemd, udev, Debian's kernel and initramfs) booted
 * by wasmvisor (default: JIT) and by `qemu-system-riscv64 -M virt` (TCG) on the same kernel,
 * initrd and disk (both with their snapshot mode, so the image is never written), alternately:
 * seconds and host CPU seconds until root's shell prompt (the console autologin), then until
 * systemd-networkd has the user network's lease, and the ratio of the medians.
 *
 *   node dist/bench/debian-boot.js [RUNS]    (default 3; DEBIAN_DIR=… the build, default
 *                                             guest/work/debian; DEBIAN_BENCH_JIT=0 interprets)
 *
 * Without a build it says how to make one and exits 0, so `npm run bench` goes on.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GuestConsole } from './guest-console.js';
import { childCpuSeconds } from './proc-cpu.js';
import { QEMU, qemuVersion, qemuVirtArgs } from './qemu-virt.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const dir = process.env.DEBIAN_DIR ?? join(root, 'guest', 'work', 'debian');
const RUNS = Number(process.argv[2] ?? 3);
const JIT = process.env.DEBIAN_BENCH_JIT === '0' ? '--no-jit' : '--jit';
const APPEND = 'console=ttyS0 root=LABEL=debian rw';
const PROMPT = /root@wasmvisor-debian:~# /;

interface Boot {
  shell: number;
  shellCpu: number;
  online: number;
}

async function boot(cmd: string, args: string[]): Promise<Boot> {
  const t0 = performance.now();
  const c = new GuestConsole(cmd, args);
  try {
    await c.expect(PROMPT, 600_000);
    const shell = (performance.now() - t0) / 1000;
    const shellCpu = childCpuSeconds(c.p.pid) ?? NaN;
    c.send('/usr/lib/systemd/systemd-networkd-wait-online --timeout=300 && echo net-$((40+2))');
    await c.expect(/net-42/, 320_000);
    return { shell, shellCpu, online: (performance.now() - t0) / 1000 };
  } finally {
    c.kill();
  }
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const fmt = (x: number): string => (Number.isFinite(x) ? x.toFixed(1) : '—');

async function main(): Promise<void> {
  const files = ['vmlinuz', 'initrd.img', 'disk.img'].map((f) => join(dir, f));
  if (!files.every(existsSync)) {
    console.log(`debian-boot: no Debian system in ${dir}; build one with: sudo guest/debian.sh`);
    return;
  }
  const [kernel, initrd, disk] = files as [string, string, string];
  const ours = [
    join(root, 'bin', 'wasmvisor.mjs'), 'run', JIT, '--mem', '1G',
    '--kernel', kernel, '--initrd', initrd, '--disk', `${disk},snapshot=on`,
    '--nic', 'virtio,net=user', '--append', APPEND,
  ]; // prettier-ignore
  const qemu = qemuVirtArgs({
    kernel,
    initrd,
    append: APPEND,
    memMiB: 1024,
    extra: [
      '-drive', `file=${disk},format=raw,if=none,id=d0,snapshot=on`,
      '-device', 'virtio-blk-device,drive=d0',
      '-netdev', 'user,id=n0', '-device', 'virtio-net-device,netdev=n0',
    ],
  }); // prettier-ignore
  // DEBIAN_BENCH_QEMU=0: ours only (comparing wasmvisor settings between runs).
  const haveQemu = process.env.DEBIAN_BENCH_QEMU !== '0' && qemuVersion() !== undefined;
  const w: Boot[] = [];
  const q: Boot[] = [];
  console.log(
    `debian-boot: ${RUNS} runs each, alternating (wasmvisor ${JIT}; ` +
      `${haveQemu ? qemuVersion() : 'no QEMU'}), root shell and network online`,
  );
  for (let i = 0; i < RUNS; i++) {
    w.push(await boot(process.execPath, ours));
    if (haveQemu) q.push(await boot(QEMU, qemu));
  }
  const row = (name: string, b: Boot[]): string => {
    if (b.length === 0) return `| ${name} | — | — | — |`;
    const m = (k: keyof Boot): number => median(b.map((x) => x[k]));
    return `| ${name} | ${fmt(m('shell'))} | ${fmt(m('shellCpu'))} | ${fmt(m('online'))} |`;
  };
  console.log('| Debian boot (median) | root shell, s | host CPU to it, s | network online, s |');
  console.log('|---|---|---|---|');
  console.log(row(`wasmvisor ${JIT}`, w));
  console.log(row('QEMU TCG', q));
  if (q.length > 0) {
    const r = (k: keyof Boot): string =>
      (median(w.map((x) => x[k])) / median(q.map((x) => x[k]))).toFixed(2);
    console.log(`| ratio (ours / QEMU) | ${r('shell')} | ${r('shellCpu')} | ${r('online')} |`);
  }
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
