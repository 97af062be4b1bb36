/**
 * Shared by the tests that boot the bundled kernel with its root file system on a disk image:
 * host tools (e2fsprogs, cpio, qemu-img) on PATH incl. sbin, the ext4 root image made from the
 * bundled initramfs, the boot command, and reading files back out of an image without a kernel.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { expect } from 'vitest';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { SerialSession } from './serial-session.js';
import { env } from '../../bench/boot-disks.js';

const root = join(import.meta.dirname, '..', '..');
const cli = join(root, 'bin', 'wasmvisor.mjs');
export const images = join(root, 'guest', 'images');
export const ROOT_PROMPT = /# /;

/** e2fsprogs live in sbin, which a non-login PATH may lack (bench/boot-disks' env). */
export { env };

const have = (cmd: string): boolean =>
  spawnSync('sh', ['-c', `command -v ${cmd} || test -x /usr/sbin/${cmd} || test -x /sbin/${cmd}`])
    .status === 0;

/** The tools of `wanted` that are missing (the suite skips, naming them). */
export const missingTools = (wanted: string[]): string[] => wanted.filter((t) => !have(t));

/** Runs a host tool; returns its output (stdout then stderr) and exit status. */
export function tool(cmd: string, args: string[]): { out: string; status: number | null } {
  const r = spawnSync(cmd, args, { env, encoding: 'utf-8' });
  if (r.error) throw r.error;
  return { out: r.stdout + r.stderr, status: r.status };
}

/** File contents as debugfs reads them from a raw ext4 image (stdout only: no banner). */
export const catImage = (img: string, path: string): string =>
  spawnSync('debugfs', ['-R', `cat ${path}`, img], { env, encoding: 'utf-8' }).stdout;

/** The sequence `seq 1 n` prints. */
export const seqText = (n: number): string =>
  Array.from({ length: n }, (_, i) => `${i + 1}\n`).join('');

/** The bundled initramfs (a busybox root) unpacked into `dir`/rootfs; returns that path. */
export function extractInitramfs(dir: string): string {
  const rootfs = join(dir, 'rootfs');
  mkdirSync(rootfs, { recursive: true });
  execFileSync(
    'sh',
    ['-c', `gzip -dc "${join(images, 'initramfs.cpio.gz')}" | cpio -idm --quiet`],
    { cwd: rootfs, env },
  );
  return rootfs;
}

/**
 * A 64 MiB ext4 image in `dir` holding the bundled initramfs, which is a busybox root
 * (/init -> /sbin/init, /etc/inittab, the applets). Returns its path.
 */
export function makeRootImage(dir: string, name = 'root.img'): string {
  const rootfs = extractInitramfs(dir);
  const img = join(dir, name);
  execFileSync('mke2fs', ['-q', '-F', '-t', 'ext4', '-d', rootfs, img, '64M'], { env });
  return img;
}

/**
 * Boots the bundled kernel with root on `disk` (a --disk spec), the CLI's --stats on, with
 * `extraEnv` added to the environment (e.g. WASMVISOR_DATA_DIR).
 */
export function bootRoot(
  disk: string,
  log: string,
  extraEnv: Record<string, string> = {},
): SerialSession {
  return SerialSession.spawn(
    process.execPath,
    [
      cli,
      'run',
      '--kernel',
      join(images, 'Image.gz'),
      '--disk',
      disk,
      '--append',
      'console=ttyS0 root=/dev/vda rw',
      '--stats',
    ],
    { logFile: join(root, 'test-artifacts', log), env: { ...env, ...extraEnv } },
  );
}

/**
 * Boots with root on `disk`, checks / is the ext4 root mounted rw, writes /root/hello.txt
 * (`token`) and /root/seq.txt, syncs and powers off (exit 0, virtio-blk writes counted, the
 * disk's I/O in --stats).
 * Returns everything the session printed (console and stderr), for checks of what must not show.
 */
export async function bootWriteAndPowerOff(
  disk: string,
  log: string,
  token: string,
): Promise<string> {
  const s = bootRoot(disk, log);
  try {
    await s.expect(ROOT_PROMPT, 90_000);
    s.sendLine('grep " / " /proc/mounts');
    await s.expect(/^\/dev\/root \/ ext4 rw/m, 10_000);
    s.sendLine(`echo ${token} > /root/hello.txt; seq 1 20000 > /root/seq.txt; sync; echo WROTE`);
    await s.expect(/^WROTE\r?$/m, 30_000);
    s.sendLine('poweroff');
    expect((await s.waitForExit(30_000)).code).toBe(0);
    expect(s.stderr).toMatch(/virtio-blk0:[\s\S]*writes\s+[1-9]/);
    // …and the disk's own I/O, as the monitor's info blockstats says it.
    expect(s.stderr).toMatch(
      /^disks:\r?\nvirtio-blk0: [1-9]\d* reads \([\d.]+ \w+\), [1-9]\d* writes .*\r?\n {2}\d+ host calls .*\r?\n {2}host reads: /m,
    );
    return s.stderr + s.output;
  } finally {
    await s.close();
  }
}

/** A raw ext4 image holds what bootWriteAndPowerOff wrote, and `e2fsck -fn` finds it clean. */
export function expectWrittenFiles(img: string, token: string): void {
  const fsck = tool('e2fsck', ['-fn', img]);
  expect(fsck.status, fsck.out).toBe(0);
  expect(catImage(img, '/root/hello.txt')).toBe(`${token}\n`);
  expect(catImage(img, '/root/seq.txt')).toBe(seqText(20000));
}
