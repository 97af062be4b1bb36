/**
 * Live migration, wasmvisor against QEMU TCG, on the bundled guest (256 MiB, no disk): a source
 * process boots it, a destination process waits (`wasmvisor run --incoming tcp:…` / QEMU's
 * `-incoming tcp:…`), and the source's monitor migrates the running guest (`migrate tcp:…`;
 * QEMU: HMP over a unix socket, `migrate -d`, then `info migrate` until it completes). Two
 * guests: idle at its prompt, and busy copying two 8 MiB files in turn over a third in a tmpfs
 * (~30 rewrites of 2,048 pages a second at our speed), which the pre-copy must chase. Each
 * emulator reports its own figures: total time, the guest's pause (downtime: ours from pausing
 * the source to the destination running it; QEMU's from its stop to the destination's start)
 * and MiB sent; QEMU's downtime limit is set to 50 ms, the target our source aims at. After
 * each migration the destination's shell must answer. RUNS (default 3) alternate the two;
 * medians, and the ratios QEMU ÷ ours (above 1, ours takes less).
 *
 *   node dist/bench/migration.js [RUNS]   (MIG_BENCH_QEMU=0 leaves QEMU out)
 */
import { createConnection, createServer } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GuestConsole } from './guest-console.js';
import { QEMU, qemuVersion, qemuVirtArgs, unpackKernel } from './qemu-virt.js';

const RUNS = Math.max(1, Number(process.argv[2] ?? 3) || 3);
const cli = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'wasmvisor.mjs');
const BUSY =
  'mkdir -p /tmp; mount -t tmpfs tmpfs /tmp; yes 00000001 | head -c 1048572 > /tmp/a1; ' +
  'yes 00000002 | head -c 1048572 > /tmp/b1; for f in a b; do cat /tmp/${f}1 /tmp/${f}1 ' +
  '/tmp/${f}1 /tmp/${f}1 /tmp/${f}1 /tmp/${f}1 /tmp/${f}1 /tmp/${f}1 > /tmp/$f; done; ' +
  '(while :; do cat /tmp/a > /tmp/churn; cat /tmp/b > /tmp/churn; done) & echo B""USY';

interface Figures {
  totalMs: number;
  downtimeMs: number;
  mib: number;
  /** The destination's guest did not answer afterwards (its figures are NaN). */
  failed?: boolean;
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

async function prepare(g: GuestConsole, busy: boolean): Promise<void> {
  await g.expect(/~# /, 120_000);
  if (!busy) return;
  g.send(BUSY);
  await g.expect(/BUSY/, 30_000);
  await new Promise((r) => setTimeout(r, 1000));
}

/** The destination's shell answers after the migration, after a timer's wait (sleep 1). */
async function answers(g: GuestConsole): Promise<void> {
  g.send('sleep 1; echo A""LIVE-$((6*7))');
  await g.expect(/ALIVE-42/, 30_000);
}

async function ours(busy: boolean): Promise<Figures> {
  const port = await freePort();
  const dst = new GuestConsole(process.execPath, [
    cli,
    'run',
    '--incoming',
    `tcp:127.0.0.1:${port}`,
  ]);
  const src = new GuestConsole(process.execPath, [cli, 'run']);
  try {
    await dst.expect(/waiting for a migrating VM/, 30_000);
    await prepare(src, busy);
    src.sendRaw(Uint8Array.of(1, 0x63)); // Ctrl-A c: the monitor
    await src.expect(/\(wasmvisor\) /, 10_000);
    src.send(`migrate tcp:127.0.0.1:${port}`);
    const m = await src.expect(
      /migrated to \S+ in ([\d.]+) s: \d+ rounds \([\d, ]+ pages\), ([\d.]+) MiB sent, the guest paused (\d+) ms/,
      300_000,
    );
    await answers(dst);
    return { totalMs: Number(m[1]) * 1000, downtimeMs: Number(m[3]), mib: Number(m[2]) };
  } finally {
    src.kill();
    dst.kill();
  }
}

/** One HMP command over the monitor's unix socket; resolves with what it printed. */
function hmp(sock: string, cmd: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = createConnection(sock);
    let out = '';
    let sent = false;
    c.on('data', (d) => {
      out += d.toString('latin1');
      if (!sent && out.includes('(qemu) ')) {
        sent = true;
        out = '';
        c.write(cmd + '\n');
      } else if (sent && out.includes('(qemu) ')) {
        c.end();
        resolve(out);
      }
    });
    c.on('error', reject);
  });
}

async function qemu(kernel: string, dir: string, busy: boolean): Promise<Figures> {
  const port = await freePort();
  const sock = join(dir, `qemu-${port}.sock`);
  const base = qemuVirtArgs({ kernel });
  const dst = new GuestConsole(QEMU, [...base, '-incoming', `tcp:127.0.0.1:${port}`]);
  const src = new GuestConsole(QEMU, [...base, '-monitor', `unix:${sock},server=on,wait=off`]);
  try {
    await prepare(src, busy);
    await hmp(sock, 'migrate_set_parameter downtime-limit 50');
    await hmp(sock, `migrate -d tcp:127.0.0.1:${port}`);
    let info = '';
    for (let i = 0; i < 3000 && !/Migration status: (completed|failed)/.test(info); i++) {
      await new Promise((r) => setTimeout(r, 100));
      info = await hmp(sock, 'info migrate');
    }
    if (!/Migration status: completed/.test(info)) throw new Error(`QEMU: ${info}`);
    const num = (re: RegExp): number => Number(re.exec(info)?.[1] ?? NaN);
    try {
      await answers(dst);
    } catch {
      console.log(
        `\nQEMU's destination did not answer after the migration; its console:\n${dst.tail()}`,
      );
      return { totalMs: NaN, downtimeMs: NaN, mib: NaN, failed: true };
    }
    return {
      totalMs: num(/total time: (\d+) ms/),
      downtimeMs: num(/downtime: (\d+) ms/),
      mib: num(/transferred ram: (\d+) kbytes/) / 1024,
    };
  } finally {
    src.kill();
    dst.kill();
  }
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'wasmvisor-migbench-'));
  try {
    const version = process.env.MIG_BENCH_QEMU === '0' ? undefined : qemuVersion();
    const kernel = version ? unpackKernel(dir) : undefined;
    console.log(
      `live migration of the bundled guest (256 MiB) over loopback, ${RUNS} runs each, ` +
        `alternately; ${version ?? 'QEMU: not installed, wasmvisor only'}`,
    );
    for (const busy of process.env.MIG_BENCH_BUSY === '1' ? [true] : [false, true]) {
      const o: Figures[] = [];
      const q: Figures[] = [];
      for (let i = 0; i < RUNS; i++) {
        o.push(await ours(busy));
        if (kernel) q.push(await qemu(kernel, dir, busy));
        process.stdout.write('.');
      }
      process.stdout.write('\n');
      const row = (label: string, k: 'totalMs' | 'downtimeMs' | 'mib', d: number): string => {
        const a = median(o.map((x) => x[k] as number));
        const ok = q.filter((x) => !x.failed);
        const b = ok.length ? median(ok.map((x) => x[k] as number)) : NaN;
        const ratio = Number.isFinite(b) ? `${(b / a).toFixed(2)}x` : '—';
        return `  ${label.padEnd(16)} ${a.toFixed(d).padStart(9)} ${Number.isFinite(b) ? b.toFixed(d).padStart(9) : '        —'}  ${ratio}`;
      };
      console.log(
        `${busy ? 'busy guest (rewriting 8 MiB in a tmpfs)' : 'idle guest'}: wasmvisor, QEMU, QEMU/wasmvisor`,
      );
      console.log(row('total, ms', 'totalMs', 0));
      console.log(row('downtime, ms', 'downtimeMs', 0));
      console.log(row('sent, MiB', 'mib', 1));
      // The spread behind the medians: a pause is short or long by what is in flight at the time.
      const each = (xs: Figures[]): string =>
        xs.map((x) => (x.failed ? '×' : x.downtimeMs.toFixed(0))).join(' ');
      console.log(`  each pause, ms   ours ${each(o)}${q.length ? `; QEMU ${each(q)}` : ''}`);
      const lost = q.filter((x) => x.failed).length;
      if (lost)
        console.log(`  QEMU's guest did not answer after ${lost} of ${q.length} migrations`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(e instanceof Error ? e.message : e);
    process.exit(1);
  },
);
