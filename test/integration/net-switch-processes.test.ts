/**
 * `switch:NAME` between host processes, as a user meets it: `wasmvisor run --nic
 * virtio,net=switch:NAME` in two "terminals" (two CLI processes), each guest with a static IP.
 * They ping each other and move 4 MiB of random bytes with nc (checked by md5sum on both
 * sides). Then the first process is SIGKILLed (its socket file stays behind) and a third
 * process joins: the survivor and the newcomer ping each other and move 4 MiB again, and the
 * killed process's socket has been removed.
 *
 * The switch name is unique to the run and XDG_RUNTIME_DIR points at a private directory, so
 * the test never meets a user's VMs (or another run's).
 */
import { describe, expect, it } from 'vitest';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { SerialSession } from './serial-session.js';

const root = join(import.meta.dirname, '..', '..');
const cli = join(root, 'bin', 'wasmvisor.mjs');
const PROMPT = /# /;

describe('switch:NAME between two wasmvisor run processes', () => {
  it('guests ping and move 4 MiB with nc; after a SIGKILL of the first, a third joins the survivor', async () => {
    const runtime = mkdtempSync(join(tmpdir(), 'wasmvisor-xswitch-it-'));
    const name = `it-${process.pid}-${Date.now().toString(36)}`;
    const vms: SerialSession[] = [];
    const start = (i: number): SerialSession => {
      const s = SerialSession.spawn(
        process.execPath,
        [cli, 'run', '--nic', `virtio,net=switch:${name},mac=52:54:00:00:0b:0${i}`],
        {
          cwd: root,
          env: { ...process.env, XDG_RUNTIME_DIR: runtime },
          logFile: join(root, 'test-artifacts', `net-switch-processes-${i}.log`),
        },
      );
      vms.push(s);
      return s;
    };
    /** Types a command and waits for what it prints (then the prompt). */
    const run = async (s: SerialSession, cmd: string, want: RegExp, ms = 60_000): Promise<void> => {
      s.sendLine(cmd);
      await s.expect(want, ms);
      await s.expect(PROMPT, ms);
    };
    const up = async (s: SerialSession, i: number): Promise<void> => {
      await s.expect(PROMPT, 180_000);
      await run(
        s,
        `ip addr add 10.0.0.${i}/24 dev eth0 && ip link set eth0 up; echo ok$((40+2))`,
        /ok42/,
      );
    };
    /** 4 MiB of random bytes from `from` to `to` (10.0.0.`toIp`) over nc; md5s must match. */
    const move = async (from: SerialSession, to: SerialSession, toIp: number): Promise<void> => {
      to.sendLine('nc -l -p 5001 > /tmp/got; md5sum /tmp/got; wc -c < /tmp/got');
      await new Promise((r) => setTimeout(r, 1000));
      await run(
        from,
        'dd if=/dev/urandom of=/tmp/sent bs=64k count=64 2>/dev/null; md5sum /tmp/sent',
        /^([0-9a-f]{32}) {2}\/tmp\/sent\r?$/m,
      );
      const sent = /^([0-9a-f]{32}) {2}\/tmp\/sent\r?$/m.exec(from.output)![1];
      const t0 = performance.now();
      from.sendLine(`nc -w 5 10.0.0.${toIp} 5001 < /tmp/sent; echo sent$?`);
      await from.expect(/^sent0\r?$/m, 240_000);
      const secs = (performance.now() - t0) / 1000;
      console.log(
        `4 MiB over nc between processes: ${secs.toFixed(2)} s (${(4 / secs).toFixed(1)} MiB/s, nc's -w included)`,
      );
      const got = await to.expect(/^([0-9a-f]{32}) {2}\/tmp\/got\r?\n?\s*(\d+)\r?$/m, 240_000);
      expect(got.match[1]).toBe(sent);
      expect(Number(got.match[2])).toBe(4 << 20);
    };

    try {
      const [a, b] = [start(1), start(2)];
      await Promise.all([up(a, 1), up(b, 2)]);
      await run(a, 'ping -c 3 10.0.0.2', /3 packets transmitted, 3 packets received/);
      await run(b, 'ping -c 2 10.0.0.1', /2 packets transmitted, 2 packets received/);
      await move(a, b, 2);

      // The first process dies without a word; its socket file stays until someone finds it dead.
      const dir = join(runtime, 'wasmvisor', `net-${name}`);
      expect(readdirSync(dir)).toHaveLength(2);
      await a.close('SIGKILL');
      const c = start(3);
      await up(c, 3);
      await run(c, 'ping -c 3 10.0.0.2', /3 packets transmitted, 3 packets received/);
      await run(b, 'ping -c 1 -W 2 10.0.0.1', /1 packets transmitted, 0 packets received/);
      await move(b, c, 3);
      expect(readdirSync(dir)).toHaveLength(2); // b's and c's: the killed one's was removed
    } finally {
      for (const s of vms) await s.close('SIGKILL');
      rmSync(runtime, { recursive: true, force: true });
    }
  }, 900_000);
});
