/**
 * Issue 8, acceptance 1: a 512 MiB guest touches 400 MiB and frees it; `balloon 256` in the
 * monitor (Ctrl-A C) inflates the balloon by 256 MiB and the wasmvisor process's RSS (from /proc
 * on the host) drops by at least 90% of that; deflating gives the memory back and the guest
 * allocates and verifies 300 MiB again. Free page reporting is off, so only the balloon frees.
 * busybox has no memory hog: `memhog`, a tiny static C program, is appended to the initramfs as
 * a second cpio archive.
 */
import { describe, it, expect } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SerialSession } from './serial-session.js';
import { appendCpio } from '../../bench/initrd-append.js';

const root = join(import.meta.dirname, '..', '..');
const cli = join(root, 'bin', 'wasmvisor.mjs');
const MEMHOG_C = String.raw`
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
/* memhog MIB: allocate, write a pattern to every byte, verify it, free. */
int main(int argc, char **argv) {
  size_t n = (size_t)atol(argc > 1 ? argv[1] : "1") << 20;
  unsigned char *p = malloc(n);
  if (!p) { printf("memhog: no memory\n"); return 1; }
  for (size_t i = 0; i < n; i += 8) *(unsigned long *)(p + i) = i * 2654435761u;
  for (size_t i = 0; i < n; i += 8)
    if (*(unsigned long *)(p + i) != (unsigned long)(i * 2654435761u)) { printf("memhog: BAD\n"); return 1; }
  free(p);
  printf("memhog: ok %ld\n", atol(argv[1]));
  return 0;
}
`;

function buildInitrd(): string | undefined {
  const tmp = mkdtempSync(join(tmpdir(), 'wv-balloon-'));
  mkdirSync(join(tmp, 'x', 'bin'), { recursive: true });
  writeFileSync(join(tmp, 'memhog.c'), MEMHOG_C);
  const cc = spawnSync('riscv64-linux-gnu-gcc', [
    '-static',
    '-O2',
    '-o',
    join(tmp, 'x', 'bin', 'memhog'),
    join(tmp, 'memhog.c'),
  ]);
  if (cc.status !== 0) return undefined;
  const cpio = spawnSync('sh', ['-c', 'echo bin/memhog | cpio -o -H newc --quiet'], {
    cwd: join(tmp, 'x'),
  });
  if (cpio.status !== 0) return undefined;
  const base = readFileSync(join(root, 'guest', 'images', 'initramfs.cpio.gz'));
  const out = join(tmp, 'initrd.cpio');
  writeFileSync(out, appendCpio(base, cpio.stdout));
  return out;
}

function rssMiB(pid: number): number {
  const m = /^VmRSS:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m![1]) / 1024;
}

/** The VM under test: its console, the wasmvisor process's pid (whose RSS is the VM's). */
function boot(balloon: string, log: string) {
  const initrd = buildInitrd();
  expect(initrd).toBeDefined();
  const s = SerialSession.spawn(
    process.execPath,
    [cli, 'run', '--mem', '512M', '--initrd', initrd!, balloon],
    { logFile: join(root, 'test-artifacts', log) },
  );
  // SerialSession keeps its child private; the RSS to watch is that process's.
  const pid = (s as unknown as { child: { pid: number } }).child.pid;
  /** Runs a monitor command (Ctrl-A C in, Ctrl-A C out) and waits for its reply. */
  const monitor = async (cmd: string, reply: RegExp): Promise<RegExpMatchArray> => {
    s.send('\x01c');
    await s.expect('(wasmvisor) ', 5_000);
    s.sendLine(cmd);
    const r = await s.expect(reply, 10_000);
    s.send('\x01c');
    return r.match;
  };
  return { s, pid, monitor };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const haveGcc = spawnSync('riscv64-linux-gnu-gcc', ['--version']).status === 0;

describe.skipIf(!haveGcc || process.platform !== 'linux')('virtio-balloon in the guest', () => {
  it('inflating by 256 MiB returns ≥ 90% of it to the host; deflating gives it back', async () => {
    const { s, pid, monitor } = boot('--balloon,free-page-reporting=off,stats=1', 'balloon.log');
    const meminfo = async (): Promise<number> => {
      s.sendLine('grep MemTotal /proc/meminfo');
      const r = await s.expect(/MemTotal:\s+(\d+) kB/, 10_000);
      return Number(r.match[1]) / 1024;
    };
    try {
      await s.expect(/~# /, 90_000);
      const total0 = await meminfo();
      s.sendLine('memhog 400');
      await s.expect('memhog: ok 400', 180_000);
      await sleep(1000);
      const before = rssMiB(pid);
      await monitor('balloon 256', /target 256 MiB/);
      let after = before;
      for (let i = 0; i < 60 && before - after < 0.9 * 256; i++) {
        await sleep(500);
        after = rssMiB(pid);
      }
      console.log(
        `balloon: RSS ${before.toFixed(0)} MiB -> ${after.toFixed(0)} MiB after inflating 256 MiB`,
      );
      expect(before - after).toBeGreaterThanOrEqual(0.9 * 256);
      const total1 = await meminfo();
      expect(total0 - total1).toBeGreaterThan(250);
      // The driver updates `actual` once a batch is done, which may trail MemTotal a little.
      for (let i = 0; i < 20; i++) {
        const m = await monitor('info balloon', /actual=(\d+(?:\.\d)?) MiB/);
        if (m[1] === '256') break;
        expect(i).toBeLessThan(19);
        await sleep(500);
      }
      await monitor('balloon 512', /target 512 MiB/);
      for (let i = 0; i < 60 && (await meminfo()) < total0 - 4; i++) await sleep(500);
      s.sendLine('memhog 300');
      await s.expect('memhog: ok 300', 180_000);
      s.sendLine('poweroff');
      expect((await s.waitForExit(30_000)).code).toBe(0);
    } finally {
      await s.close();
    }
  }, 600_000);

  // Acceptance 2: no target at all; the guest's free page reporting alone gives the memory back.
  it('free page reporting: a deleted 200 MiB tmpfs file leaves the host within 10 s', async () => {
    const { s, pid, monitor } = boot(
      '--balloon,free-page-reporting=on,stats=1',
      'balloon-reporting.log',
    );
    try {
      await s.expect(/~# /, 90_000);
      // The echo of a command line must not match its own marker: print it from a variable.
      s.sendLine('mkdir -p /mnt/t && mount -t tmpfs -o size=300m tmpfs /mnt/t; M=mounted; echo $M');
      await s.expect(/^mounted/m, 10_000);
      await sleep(3000); // boot-time reports settle
      const base = rssMiB(pid);
      s.sendLine('dd if=/dev/zero of=/mnt/t/f bs=1M count=200 2>/dev/null; M=filled; echo $M');
      await s.expect(/^filled/m, 180_000);
      const full = rssMiB(pid);
      // The file really is in guest RAM, so in the host's RSS.
      expect(full - base).toBeGreaterThanOrEqual(180);
      s.sendLine('rm /mnt/t/f; M=removed; echo $M');
      await s.expect(/^removed/m, 10_000);
      const t0 = performance.now();
      let after = full;
      while (performance.now() - t0 < 10_000 && full - after < 150) {
        await sleep(250);
        after = rssMiB(pid);
      }
      const secs = (performance.now() - t0) / 1000;
      console.log(
        `free page reporting: RSS ${base.toFixed(0)} MiB idle, ${full.toFixed(0)} MiB with the ` +
          `200 MiB file, ${after.toFixed(0)} MiB ${secs.toFixed(1)} s after rm`,
      );
      expect(full - after).toBeGreaterThanOrEqual(150);
      // No target was set: the balloon is empty, and the host counts what it released.
      const m = await monitor(
        'info balloon',
        /actual=(\d+) MiB target=(\d+) MiB[^]*?(\d+(?:\.\d)?) MiB given back/,
      );
      expect([m[1], m[2]]).toEqual(['0', '0']);
      expect(Number(m[3])).toBeGreaterThanOrEqual(150);
      s.sendLine('poweroff');
      expect((await s.waitForExit(30_000)).code).toBe(0);
    } finally {
      await s.close();
    }
  }, 600_000);

  // Acceptance 3: a guest that needs the balloon's memory gets it back, unasked.
  it('deflate on OOM: an allocation larger than what the balloon left succeeds', async () => {
    const { s, monitor } = boot(
      '--balloon,free-page-reporting=off,deflate-on-oom=on,stats=1',
      'balloon-oom.log',
    );
    const actual = async (): Promise<number> =>
      Number((await monitor('info balloon', /actual=(\d+(?:\.\d)?) MiB/))[1]);
    try {
      await s.expect(/~# /, 90_000);
      await monitor('balloon 128', /target 128 MiB/);
      for (let i = 0; i < 40 && (await actual()) < 384; i++) await sleep(500);
      expect(await actual()).toBe(384);
      // 128 MiB left, less what the kernel and the initramfs use: 200 MiB cannot fit.
      s.sendLine('memhog 200');
      await s.expect('memhog: ok 200', 300_000);
      const after = await actual();
      const m = await monitor('info balloon', /took back (\d+(?:\.\d)?) MiB unasked/);
      console.log(`deflate on OOM: balloon 384 MiB -> ${after} MiB, ${m[1]} MiB taken back`);
      expect(after).toBeLessThan(384 - 50);
      expect(Number(m[1])).toBeGreaterThanOrEqual(384 - after);
      s.sendLine('poweroff');
      expect((await s.waitForExit(30_000)).code).toBe(0);
    } finally {
      await s.close();
    }
  }, 600_000);
});
