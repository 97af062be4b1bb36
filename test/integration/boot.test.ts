/**
 * The bundled guest boots in wasmvisor to a busybox prompt through the real CLI: the OpenSBI
 * banner, the Linux log, a shell that computes, and poweroff ending the process with status 0.
 */
import { describe, it, expect } from 'vitest';
import { join } from 'node:path';
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { spawn } from 'node:child_process';
import { SerialSession } from './serial-session.js';

const root = join(import.meta.dirname, '..', '..');
const cli = join(root, 'bin', 'wasmvisor.mjs');

describe('wasmvisor run (bundled guest)', () => {
  it('boots OpenSBI and Linux to a shell that computes in translated code (the default), and powers off with status 0', async () => {
    const s = SerialSession.spawn(process.execPath, [cli, 'run', '--stats'], {
      logFile: join(root, 'test-artifacts', 'boot-bundled.log'),
    });
    try {
      await s.expect('OpenSBI', 20_000);
      await s.expect(/Linux version 6\.1/, 20_000);
      await s.expect(/# /, 60_000);
      s.sendLine('i=0; while [ $i -lt 300 ]; do i=$((i+1)); done; echo $((i*7+6*7))');
      await s.expect(/^2142\r?$/m, 30_000);
      s.sendLine('poweroff');
      const exit = await s.waitForExit(30_000);
      expect(exit.code).toBe(0);
      // --stats reports on stderr what the run did.
      expect(s.stderr).toMatch(/instructions retired: \d+/);
      expect(s.stderr).toMatch(/uart0\s+\d+ reads/);
      if (process.env.WASMVISOR_JIT === '0') return; // the suite's interpreter-only run
      // Translated code ran: the stats line counts the core's calls of translations, those
      // entered from another (chaining), how many there are (each a region of blocks) and the
      // share of the instructions they retired.
      const m = /jit: (\d+) block calls \(\+(\d+) chained\), (\d+) blocks/.exec(s.stderr);
      expect(m, s.stderr).not.toBeNull();
      expect(Number(m![1])).toBeGreaterThan(10_000);
      expect(Number(m![2])).toBeGreaterThan(10_000);
      expect(Number(m![3])).toBeGreaterThan(30);
      const share = /([\d.]+)% of instructions retired in translated code/.exec(s.stderr);
      expect(Number(share?.[1]), s.stderr).toBeGreaterThan(25);
    } finally {
      await s.close();
    }
  }, 150_000);

  it('with --no-jit interprets every instruction: the same shell, no translations', async () => {
    const s = SerialSession.spawn(process.execPath, [cli, 'run', '--no-jit', '--stats'], {
      logFile: join(root, 'test-artifacts', 'boot-bundled-nojit.log'),
    });
    try {
      await s.expect(/Linux version 6\.1/, 30_000);
      await s.expect(/# /, 90_000);
      s.sendLine('i=0; while [ $i -lt 300 ]; do i=$((i+1)); done; echo $((i*7+6*7))');
      await s.expect(/^2142\r?$/m, 30_000);
      s.sendLine('poweroff');
      const exit = await s.waitForExit(30_000);
      expect(exit.code).toBe(0);
      expect(s.stderr).toMatch(/instructions retired: \d+/);
      expect(s.stderr).not.toMatch(/^jit:/m);
    } finally {
      await s.close();
    }
  }, 150_000);

  it('Ctrl-A X quits the VM', async () => {
    const s = SerialSession.spawn(process.execPath, [cli, 'run']);
    try {
      await s.expect('OpenSBI', 20_000);
      s.send(Uint8Array.of(0x01, 0x78));
      const exit = await s.waitForExit(10_000);
      expect(exit.code).toBe(0);
      expect(s.stderr).toMatch(/terminated by Ctrl-A X/);
    } finally {
      await s.close();
    }
  }, 60_000);
});

describe('wasmvisor run | a reader that stops early', () => {
  it('stops the VM and exits quietly when its output pipe closes (as `| head` does)', async () => {
    const p = spawn(process.execPath, [cli, 'run'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const exited = new Promise<number | null>((r) => p.once('exit', (code) => r(code)));
    // Read until the kernel's banner, then close our end of the pipe while the guest still prints.
    await new Promise<void>((resolve) => {
      p.stdout.on('data', (d: Buffer) => {
        out += d.toString('latin1');
        if (/Linux version/.test(out)) {
          p.stdout.destroy();
          resolve();
        }
      });
    });
    const timer = setTimeout(() => p.kill('SIGKILL'), 20_000);
    const code = await exited;
    clearTimeout(timer);
    expect(code).toBe(0);
    expect(err).toMatch(/output closed/);
    expect(err).not.toMatch(/\n\s+at |EPIPE/);
  }, 60_000);
});

describe('wasmvisor run: user errors', () => {
  const run = async (args: string[]): Promise<{ code: number | null; stderr: string }> => {
    const s = SerialSession.spawn(process.execPath, [cli, ...args]);
    const exit = await s.waitForExit(20_000);
    return { code: exit.code, stderr: s.stderr };
  };

  it('names a missing kernel file and exits non-zero without a stack trace', async () => {
    const r = await run(['run', '--kernel', '/nonexistent/Image']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('/nonexistent/Image');
    expect(r.stderr).toContain('no such file');
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it('names a corrupt gzip kernel and exits non-zero without a stack trace', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wasmvisor-test-'));
    const bad = join(dir, 'Image.gz');
    writeFileSync(bad, Buffer.from([0x1f, 0x8b, 8, 0, 1, 2, 3, 4, 5, 6, 7]));
    const r = await run(['run', '--kernel', bad]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(bad);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it('rejects a bad --mem value with usage help', async () => {
    const r = await run(['run', '--mem', 'lots']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--mem');
  });
});
