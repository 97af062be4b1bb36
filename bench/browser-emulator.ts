/**
 * wasmvisor against the emulator people run in browsers today: v86 (x86 PC emulator with an
 * x86→Wasm JIT) running a 32-bit x86 Linux with the same busybox, in node on the same V8 as our
 * core, alternately with wasmvisor (its default, the JIT; and --no-jit, the interpreter alone) on
 * the bundled riscv64 guest and QEMU TCG on that guest as a known reference. Figures: time to the shell prompt (indicative only: the
 * kernels differ), and the same busybox workloads (bench/shell-workloads.ts) typed at each
 * prompt, timed on the host from sending the line to its end marker, with the host CPU seconds
 * each emulator's process used (/proc). Ratios are v86 / ours: above 1, we are faster.
 *
 *   node dist/bench/browser-emulator.js [RUNS]   (default 3; BROWSER_BENCH_SCALE=0.5 halves the
 *   workloads; BROWSER_BENCH_QEMU=0 leaves QEMU out)
 *
 * The v86 guest (Debian's i386 kernel, SeaBIOS and busybox-static) is built by guest/v86.sh into
 * guest/work/v86 on the first run; without it (no apt, no network) the bench says so and skips.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GuestConsole } from './guest-console.js';
import { childCpuSeconds } from './proc-cpu.js';
import { GUEST_IMAGES, QEMU, qemuVersion, qemuVirtArgs, unpackKernel } from './qemu-virt.js';
import {
  MARKER_PATTERN,
  markedLine,
  median,
  ratio,
  shellWorkloads,
  type ShellWorkload,
} from './shell-workloads.js';

const RUNS = Number(process.argv[2] ?? 3);
const SCALE = Number(process.env.BROWSER_BENCH_SCALE ?? 1);
const ROOT = join(GUEST_IMAGES, '..', '..');
const V86_GUEST = join(ROOT, 'guest', 'work', 'v86');
const V86_FILES = ['bzImage', 'initrd.gz', 'bios.bin', 'vgabios.bin'];
const SMALL_KERNEL = 'bzImage-small';
const cli = join(ROOT, 'bin', 'wasmvisor.mjs');
const runner = join(dirname(fileURLToPath(import.meta.url)), 'v86-guest.js');

interface Emulator {
  name: string;
  cmd: string;
  args: string[];
  /** Time to the prompt may take this long (v86 boots a 5.7 MB distribution kernel). */
  bootMs: number;
  /** Only the time to the prompt (no workloads). */
  bootOnly?: boolean;
}

interface Run {
  boot: number;
  bootCpu: number;
  /** Per workload: wall seconds, host CPU seconds, the result line. */
  work: { s: number; cpu: number; result: string }[];
}

/** The v86 library and its wasm, or why they are not usable. */
function v86Missing(): string | undefined {
  try {
    const pkg = createRequire(import.meta.url).resolve('v86/package.json');
    const wasm = join(dirname(pkg), 'build', 'v86.wasm');
    return existsSync(wasm) ? undefined : `${wasm} is missing`;
  } catch {
    return 'the v86 package is not installed (it is a devDependency: npm install)';
  }
}

/** The v86 guest in guest/work/v86, built by guest/v86.sh when missing; or why it is not there. */
function v86GuestMissing(): string | undefined {
  const have = (): boolean => V86_FILES.every((f) => existsSync(join(V86_GUEST, f)));
  if (have()) return undefined;
  console.log('building the v86 guest (guest/v86.sh: Debian i386 packages through apt) …');
  const r = spawnSync('bash', [join(ROOT, 'guest', 'v86.sh')], {
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  if (r.status === 0 && have()) return undefined;
  return `guest/v86.sh failed (${r.error?.message ?? `exit ${r.status}`}); it needs a Debian-like host with apt and the archive`;
}

async function measure(e: Emulator, work: ShellWorkload[]): Promise<Run> {
  const t0 = performance.now();
  const g = new GuestConsole(e.cmd, e.args);
  try {
    await g.expect(/~# $/, e.bootMs);
    const boot = (performance.now() - t0) / 1000;
    const bootCpu = childCpuSeconds(g.p.pid) ?? NaN;
    const out: Run['work'] = [];
    for (const w of work) {
      if (w.setup) {
        g.send(markedLine(w.setup));
        await g.expect(MARKER_PATTERN, 600_000);
      }
      const cpu0 = childCpuSeconds(g.p.pid) ?? NaN;
      const t1 = performance.now();
      g.send(markedLine(w.command));
      const m = await g.expect(MARKER_PATTERN, 600_000);
      const s = (performance.now() - t1) / 1000;
      out.push({ s, cpu: (childCpuSeconds(g.p.pid) ?? NaN) - cpu0, result: m[1]!.trim() });
    }
    return { boot, bootCpu, work: out };
  } finally {
    g.kill();
  }
}

const f2 = (x: number | undefined): string =>
  x === undefined || Number.isNaN(x) ? '-' : x.toFixed(2);

async function main(): Promise<void> {
  const missing = v86Missing() ?? v86GuestMissing();
  if (missing) {
    console.log(`browser-emulator bench skipped: ${missing}`);
    return;
  }
  const qv = process.env.BROWSER_BENCH_QEMU === '0' ? undefined : qemuVersion();
  const tmp = mkdtempSync(join(tmpdir(), 'wasmvisor-bench-v86-'));
  try {
    const emulators: Emulator[] = [
      // Both said explicitly, so that WASMVISOR_JIT in the environment changes neither column.
      { name: 'wasmvisor', cmd: process.execPath, args: [cli, 'run', '--jit'], bootMs: 120_000 },
      {
        name: 'wasmvisor --no-jit',
        cmd: process.execPath,
        args: [cli, 'run', '--no-jit'],
        bootMs: 120_000,
      },
      { name: 'v86', cmd: process.execPath, args: [runner, V86_GUEST], bootMs: 300_000 },
    ];
    // The small kernel (guest/v86.sh small): built from the same source and choices as ours, so
    // its boot compares with ours; optional, as building it takes minutes. Boot only: v86 runs
    // the workloads slower on it than on Debian's kernel (README), so those use Debian's.
    if (existsSync(join(V86_GUEST, SMALL_KERNEL))) {
      emulators.push({
        name: 'v86 small kernel',
        cmd: process.execPath,
        args: [runner, V86_GUEST, SMALL_KERNEL],
        bootMs: 300_000,
        bootOnly: true,
      });
    }
    if (qv) {
      const kernel = unpackKernel(tmp);
      emulators.push({ name: 'QEMU', cmd: QEMU, args: qemuVirtArgs({ kernel }), bootMs: 120_000 });
    }
    const work = shellWorkloads(SCALE);
    console.log(
      `wasmvisor (riscv64, bundled Linux 6.1 + busybox) vs v86 0.5 (i386, Debian's 686 kernel + ` +
        `the same busybox, in node's V8 like in Chromium)${qv ? ` and ${qv} TCG on our guest` : ''}; ` +
        `${RUNS} runs each, alternating; load average ${loadavg()
          .map((x) => x.toFixed(2))
          .join(' ')}`,
    );
    const small = emulators.some((e) => e.bootOnly);
    console.log(
      'Boot to the prompt is only indicative: the kernels differ (our small config vs a ' +
        'distribution kernel), as do the ISAs. ' +
        (small
          ? 'v86 small kernel: our config carried over to i386, same source (boot only). '
          : 'guest/v86.sh small builds a v86 kernel of our config for a closer boot figure. ') +
        'The workloads run the same busybox commands:',
    );
    for (const w of work) console.log(`  ${w.name}: ${w.what}`);

    const runs = new Map<string, Run[]>(emulators.map((e) => [e.name, []]));
    for (let i = 0; i < RUNS; i++) {
      for (const e of emulators) {
        const r = await measure(e, e.bootOnly ? [] : work);
        runs.get(e.name)!.push(r);
        console.log(
          `  run ${i + 1} ${e.name}: boot ${f2(r.boot)} s; ` +
            r.work.map((x, k) => `${work[k]!.name} ${f2(x.s)} s`).join(', '),
        );
      }
    }

    const med = (name: string, pick: (r: Run) => number): number | undefined => {
      const rs = runs.get(name);
      return rs && rs.length ? median(rs.map(pick)) : undefined;
    };
    const names = emulators.map((e) => e.name);
    const table = (title: string, pick: (r: Run, k: number) => number): void => {
      console.log('');
      console.log(`${title} (medians; v86 ÷ ours: above 1, we are faster)`);
      console.log(`| | ${names.join(' | ')} | v86 ÷ wasmvisor | v86 ÷ wasmvisor --no-jit |`);
      console.log(`|---|${names.map(() => '---|').join('')}---|---|`);
      const rows: [string, number][] = [
        ['boot to prompt', -1],
        ...work.map((w, k): [string, number] => [w.name, k]),
      ];
      for (const [label, k] of rows) {
        const m = names.map((n) => med(n, (r) => pick(r, k)));
        const v86 = m[names.indexOf('v86')];
        console.log(
          `| ${label} | ${m.map(f2).join(' | ')} | ${ratio(v86, m[0])} | ${ratio(v86, m[1])} |`,
        );
      }
    };
    table('Seconds, wall clock', (r, k) => (k < 0 ? r.boot : (r.work[k]?.s ?? NaN)));
    table('Host CPU seconds', (r, k) => (k < 0 ? r.bootCpu : (r.work[k]?.cpu ?? NaN)));

    const smallBoot = med('v86 small kernel', (r) => r.boot);
    if (smallBoot !== undefined) {
      console.log(
        `boot to prompt, v86 with the small kernel ÷ wasmvisor: ${ratio(
          smallBoot,
          med('wasmvisor', (r) => r.boot),
        )}` +
          ` (÷ --no-jit: ${ratio(
            smallBoot,
            med('wasmvisor --no-jit', (r) => r.boot),
          )})`,
      );
    }
    // Every guest should print the same answer: the same busybox did the same work.
    for (const [k, w] of work.entries()) {
      const results = new Set(
        [...runs.values()].flatMap((rs) => rs.flatMap((r) => r.work[k]?.result ?? [])),
      );
      if (results.size > 1) {
        console.log(`note: ${w.name} gave different results: ${[...results].join(' / ')}`);
      }
    }
    console.log(
      `load average at the end: ${loadavg()
        .map((x) => x.toFixed(2))
        .join(' ')}`,
    );
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  console.error(`bench: ${(e as Error).message}`);
  process.exit(1);
});
