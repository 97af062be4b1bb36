/**
 * Two CPUs doing work at once, through the CLI: two busy shell loops run in parallel as the
 * guest sees it (its `time` counts twice as much user time as real time), the monitor's
 * `info cpus` lists both harts, and a VM saved while both loops run resumes in a new process
 * with both harts where they were: the loops finish with the right counts and the guest still
 * has two CPUs.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SerialSession } from './serial-session.js';

const root = join(import.meta.dirname, '..', '..');
const cli = join(root, 'bin', 'wasmvisor.mjs');

const loop = (n: number, out: string): string =>
  `(i=0; while [ $i -lt ${n} ]; do i=$((i+1)); done; echo $i > ${out})`;

describe('wasmvisor run --smp 2: parallel work, save and resume', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'wasmvisor-smp-'));
  });
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('runs two loops at once, lists both CPUs, and resumes both mid-loop', async () => {
    const file = join(dir, 'smp.vm');
    const a = SerialSession.spawn(process.execPath, [cli, 'run', '--smp', '2'], {
      logFile: join(root, 'test-artifacts', 'smp-work-1.log'),
    });
    try {
      await a.expect(/# /, 60_000);
      // busybox time: "real 0m 1.23s" / "user 0m 2.40s"
      a.sendLine(`time sh -c '${loop(3000, '/dev/null')} & ${loop(3000, '/dev/null')} & wait'`);
      const real = await a.expect(/^real\s+(\d+)m\s+([\d.]+)s\r?$/m, 60_000);
      const user = await a.expect(/^user\s+(\d+)m\s+([\d.]+)s\r?$/m, 10_000);
      const secs = (m: RegExpMatchArray): number => Number(m[1]) * 60 + Number(m[2]);
      // Both CPUs were busy together: the guest counted about twice the user time as passed.
      expect(secs(user.match)).toBeGreaterThan(1.5 * secs(real.match));

      const cpus = await a.monitorCommand('info cpus', /CPU #1: pc=0x[0-9a-f]{16}/);
      expect(cpus.before + cpus.match[0]).toMatch(/CPU #0: pc=0x[0-9a-f]{16} \([MSU]-mode/);

      a.sendLine(`${loop(30000, '/tmp/a')} & ${loop(30000, '/tmp/b')} & sleep 1; ls /tmp/a /tmp/b`);
      await a.expect(/No such file or directory[\s\S]*No such file or directory/, 30_000);
      a.send('\x01c');
      await a.expect('(wasmvisor) ', 5_000);
      a.sendLine(`save ${file}`);
      await a.expect(/saved to .*smp\.vm \([\d.]+ MiB\); the VM stopped/, 60_000);
      expect((await a.waitForExit(15_000)).code).toBe(0);
    } finally {
      await a.close();
    }

    const b = SerialSession.spawn(process.execPath, [cli, 'run', '--restore', file], {
      logFile: join(root, 'test-artifacts', 'smp-work-2.log'),
    });
    try {
      b.sendLine('wait; echo done a=$(cat /tmp/a) b=$(cat /tmp/b) n=$(nproc)');
      await b.expect(/^done a=30000 b=30000 n=2\r?$/m, 120_000);
      b.sendLine('poweroff');
      expect((await b.waitForExit(30_000)).code).toBe(0);
    } finally {
      await b.close();
    }
  }, 300_000);
});
