/**
 * Several CPUs (`--smp N`) against QEMU's `-smp N` (TCG) on the bundled kernel and initramfs:
 * time to the shell prompt, and a fixed amount of parallel shell work (N busy loops sharing
 * TOTAL iterations, `wait`) timed on the host from the command to its answer, with the host CPU
 * seconds each emulator used for it. Runs alternate between the two, RUNS each.
 *
 * What it shows: wasmvisor's harts take turns on one thread, so the same work takes about as
 * long on 1, 2 or 4 CPUs (the host CPU it costs stays the same); QEMU's multi-threaded TCG runs
 * each vCPU on a host thread, so on a multi-core host its parallel work finishes sooner, for
 * about the same CPU. The ratios say how far behind that leaves us.
 *
 * Our VMs run as `wasmvisor run` does by default (hot code translated: the JIT, passed as
 * --jit so WASMVISOR_JIT in the environment cannot change it); SMP_BENCH_JIT=0 passes --no-jit.
 *
 *   node dist/bench/smp.js [RUNS]   (SMP_BENCH_CPUS=1,2,4, SMP_BENCH_ITERS=12000, SMP_BENCH_JIT=0: --no-jit)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GuestConsole } from './guest-console.js';
import { childCpuSeconds } from './proc-cpu.js';
import { GUEST_IMAGES, QEMU, qemuVersion, qemuVirtArgs, unpackKernel } from './qemu-virt.js';

const RUNS = Number(process.argv[2] ?? 3);
const CPUS = (process.env.SMP_BENCH_CPUS ?? '1,2,4').split(',').map(Number);
const TOTAL = Number(process.env.SMP_BENCH_ITERS ?? 12_000);
const cli = join(GUEST_IMAGES, '..', '..', 'bin', 'wasmvisor.mjs');
/** SMP_BENCH_JIT=0: our guests interpret every instruction; else they run as VMs do by default. */
const JIT = process.env.SMP_BENCH_JIT !== '0';

interface Run {
  boot: number;
  work: number;
  workCpu: number;
}

/** N loops of TOTAL/N iterations each, in parallel, then DONE. */
function workCommand(n: number): string {
  const each = Math.round(TOTAL / n);
  const loop = `(i=0; while [ $i -lt ${each} ]; do i=$((i+1)); done)`;
  return `sh -c '${Array(n).fill(`${loop} &`).join(' ')} wait'; echo DO""NE`;
}

async function measure(cmd: string, args: string[], n: number): Promise<Run> {
  const t0 = performance.now();
  const g = new GuestConsole(cmd, args);
  try {
    await g.expect(/~# $/, 180_000);
    const boot = (performance.now() - t0) / 1000;
    const cpu0 = childCpuSeconds(g.p.pid) ?? NaN;
    const t1 = performance.now();
    g.send(workCommand(n));
    await g.expect(/^DONE\r?$/m, 600_000);
    const work = (performance.now() - t1) / 1000;
    const workCpu = (childCpuSeconds(g.p.pid) ?? NaN) - cpu0;
    return { boot, work, workCpu };
  } finally {
    g.kill();
  }
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  const qv = qemuVersion();
  const tmp = mkdtempSync(join(tmpdir(), 'wasmvisor-bench-smp-'));
  try {
    const kernel = unpackKernel(tmp);
    console.log(
      `--smp N: boot to prompt, then ${TOTAL} shell-loop iterations split over N parallel loops; ` +
        `${RUNS} runs each, alternating (wasmvisor ` +
        `${JIT ? 'with the JIT, the default' : 'interpreted, SMP_BENCH_JIT=0: --no-jit'}; ` +
        `${qv ?? 'QEMU not installed'})`,
    );
    const rows: { n: number; w: Run; q?: Run }[] = [];
    for (const n of CPUS) {
      const w: Run[] = [];
      const q: Run[] = [];
      for (let i = 0; i < RUNS; i++) {
        w.push(
          await measure(
            process.execPath,
            [cli, 'run', '--smp', String(n), ...(JIT ? ['--jit'] : ['--no-jit'])],
            n,
          ),
        );
        if (qv) {
          q.push(await measure(QEMU, [...qemuVirtArgs({ kernel }), '-smp', String(n)], n));
        }
      }
      const med = (rs: Run[]): Run => ({
        boot: median(rs.map((r) => r.boot)),
        work: median(rs.map((r) => r.work)),
        workCpu: median(rs.map((r) => r.workCpu)),
      });
      const row = { n, w: med(w), ...(qv ? { q: med(q) } : {}) };
      rows.push(row);
      console.log(
        `  ${n} CPU${n > 1 ? 's' : ' '}: wasmvisor boot ${row.w.boot.toFixed(2)} s, work ` +
          `${row.w.work.toFixed(2)} s (${row.w.workCpu.toFixed(2)} s CPU)` +
          (row.q
            ? `; QEMU boot ${row.q.boot.toFixed(2)} s, work ${row.q.work.toFixed(2)} s ` +
              `(${row.q.workCpu.toFixed(2)} s CPU)`
            : ''),
      );
    }
    console.log('');
    console.log(
      '| CPUs | boot, s (ours / QEMU) | ratio | parallel work, s (ours / QEMU) | ratio | work CPU s (ours / QEMU) |',
    );
    console.log('|---|---|---|---|---|---|');
    const f = (x: number): string => x.toFixed(2);
    for (const { n, w, q } of rows) {
      console.log(
        `| ${n} | ${f(w.boot)} / ${q ? f(q.boot) : '-'} | ${q ? f(w.boot / q.boot) + '×' : '-'} ` +
          `| ${f(w.work)} / ${q ? f(q.work) : '-'} | ${q ? f(w.work / q.work) + '×' : '-'} ` +
          `| ${f(w.workCpu)} / ${q ? f(q.workCpu) : '-'} |`,
      );
    }
    const one = rows.find((r) => r.n === 1);
    if (one) {
      for (const r of rows.filter((x) => x.n > 1)) {
        console.log(
          `speed-up of the same work on ${r.n} CPUs over 1: wasmvisor ${f(one.w.work / r.w.work)}×` +
            (r.q && one.q ? `, QEMU ${f(one.q.work / r.q.work)}×` : ''),
        );
      }
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  console.error(`bench: ${(e as Error).message}`);
  process.exit(1);
});
