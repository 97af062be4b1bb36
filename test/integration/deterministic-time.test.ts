/**
 * Deterministic time through the real CLI (`--icount`, `--rtc base=`): two boots of the bundled
 * guest print the same console, byte for byte, up to the prompt — the kernel's timestamps and
 * the date its RTC gives included — with sleep=off a guest that sleeps gets there at once, and
 * a saved VM resumes with the same clocks.
 */
import { describe, it, expect } from 'vitest';
import { join } from 'node:path';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { SerialSession } from './serial-session.js';

const root = join(import.meta.dirname, '..', '..');
const cli = join(root, 'bin', 'wasmvisor.mjs');
const ARGS = ['run', '--icount', 'shift=4,sleep=off', '--rtc', 'base=2020-01-02T03:04:05'];

/** Boots, returns the console up to the first prompt; leaves the session for more. */
async function bootToPrompt(
  name: string,
  extra: string[] = [],
): Promise<{ s: SerialSession; boot: string }> {
  const s = SerialSession.spawn(process.execPath, [cli, ...ARGS, ...extra], {
    logFile: join(root, 'test-artifacts', `icount-${name}.log`),
  });
  await s.expect(/~# /, 60_000);
  const out = s.output;
  return { s, boot: out.slice(0, out.indexOf('~# ') + 3) };
}

describe('deterministic time (--icount)', () => {
  it('two boots print the same console to the prompt; a sleeping guest does not wait', async () => {
    const saved = join(mkdtempSync(join(tmpdir(), 'wasmvisor-icount-')), 'vm.state');
    const a = await bootToPrompt('a');
    try {
      expect(a.boot).toMatch(/setting system clock to 2020-01-02T03:04:05 UTC/);
      expect(a.boot).toMatch(/\[\s+\d+\.\d{6}\] /); // kernel timestamps are part of what matches
      // 20 s of guest sleep: the clock jumps to each timer at once (sleep=off). An idle guest
      // (waiting for input) spins through its timers too, so the date is some time later.
      const t0 = Date.now();
      a.s.sendLine('sleep 20; date -u +%FT%T; cut -d" " -f1 /proc/uptime');
      const m = await a.s.expect(/^(2020-01-02T\d\d:\d\d:\d\d)\r?\n([\d.]+)\r?$/m, 15_000);
      expect(Date.now() - t0).toBeLessThan(10_000);
      expect(Date.parse(`${m.match[1]}Z`)).toBeGreaterThanOrEqual(Date.UTC(2020, 0, 2, 3, 4, 25));
      expect(Number(m.match[2])).toBeGreaterThan(20);
      // Saved and resumed, the VM keeps its clocks: the guest's date and jumping sleeps.
      a.s.send('\x01c');
      await a.s.expect('(wasmvisor) ', 5_000);
      // The monitor says how the clock runs, and the guest's clock is ahead of the host's (its
      // figures are the worker's last sample, posted 4 times a second: wait for one after the
      // sleep).
      await new Promise((r) => setTimeout(r, 700));
      a.s.sendLine('info stats');
      const st = await a.s.expect(
        /^uptime ([\d.]+) s[^]*?^guest clock ([\d.]+) s, counting instructions \(icount: 2\^4 per 10 MHz tick, sleep off\)\r?$/m,
        5_000,
      );
      expect(Number(st.match[2])).toBeGreaterThan(20);
      expect(Number(st.match[2])).toBeGreaterThan(Number(st.match[1]));
      a.s.sendLine(`save ${saved}`);
      await a.s.expect(/the VM stopped/, 60_000);
      expect((await a.s.waitForExit(15_000)).code).toBe(0);
    } finally {
      await a.s.close();
    }
    const r = SerialSession.spawn(process.execPath, [cli, 'run', '--restore', saved], {
      logFile: join(root, 'test-artifacts', 'icount-restored.log'),
    });
    try {
      const t1 = Date.now();
      r.sendLine('sleep 20; date -u +%FT%T');
      const m = await r.expect(/^(2020-01-02T\d\d:\d\d:\d\d)\r?$/m, 15_000);
      expect(Date.now() - t1).toBeLessThan(10_000);
      expect(Date.parse(`${m.match[1]}Z`)).toBeGreaterThanOrEqual(Date.UTC(2020, 0, 2, 3, 4, 45));
      r.sendLine('poweroff');
      expect((await r.waitForExit(30_000)).code).toBe(0);
    } finally {
      await r.close();
    }
    const b = await bootToPrompt('b');
    try {
      expect(b.boot).toBe(a.boot);
    } finally {
      await b.s.close();
    }
  }, 150_000);

  it('with two CPUs too: the harts take their turns at the same instructions in both boots', async () => {
    const a = await bootToPrompt('smp-a', ['--smp', '2']);
    await a.s.close();
    const b = await bootToPrompt('smp-b', ['--smp', '2']);
    await b.s.close();
    expect(a.boot).toMatch(/Brought up 1 node, 2 CPUs/);
    expect(b.boot).toBe(a.boot);
  }, 120_000);
});
