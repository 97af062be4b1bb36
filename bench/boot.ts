/**
 * `npm run bench`: boots the same kernel + initrd with wasmvisor (the default: hot code
 * translated), wasmvisor `--no-jit` (interpreter only) and `qemu-system-riscv64 -M virt` (TCG),
 * alternately, three runs each; prints the
 * median time to the shell prompt (and wasmvisor's CPU time to it), the ratio, and wasmvisor's
 * MIPS on a CPU-bound guest loop.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { runCpuLoop } from './cpu-loop.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const images = join(root, 'guest', 'images');
const RUNS = 3;
const PROMPT = /# $/;
/** busybox's line editor asks the terminal where the cursor is (ESC [6n) after the prompt. */
const CURSOR_QUERY = '\u001b[6n';
const TIMEOUT_MS = 120_000;

/** The CPU seconds (user + system, all threads) process `pid` used so far; NaN off Linux. */
function cpuSeconds(pid: number | undefined): number {
  const stat = `/proc/${pid}/stat`;
  if (pid === undefined || !existsSync(stat)) return NaN;
  // Fields after the command name: state is the 3rd, utime the 14th and stime the 15th.
  const f = readFileSync(stat, 'utf8').split(') ')[1]!.split(' ');
  return (Number(f[11]) + Number(f[12])) / 100; // clock ticks (USER_HZ, 100 on Linux)
}

interface BootTime {
  seconds: number;
  /** CPU seconds of the process until the prompt (compiling threads included). */
  cpu: number;
}

/** Seconds from spawn until the shell prompt appears on the serial console. */
function timeToPrompt(cmd: string, args: string[]): Promise<BootTime> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const p = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let done = false;
    const finish = (err?: Error): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      const seconds = (performance.now() - t0) / 1000;
      const cpu = cpuSeconds(p.pid);
      p.kill('SIGKILL');
      if (err) reject(err);
      else resolve({ seconds, cpu });
    };
    const timer = setTimeout(
      () =>
        finish(new Error(`${cmd}: no prompt within ${TIMEOUT_MS / 1000} s:\n${out.slice(-400)}`)),
      TIMEOUT_MS,
    );
    p.stdout.on('data', (d: Buffer) => {
      out += d.toString('latin1');
      if (out.length > 65536) out = out.slice(-4096);
      // The prompt may be followed by the shell's cursor-position query (ESC [6n).
      const tail = out.endsWith(CURSOR_QUERY) ? out.slice(0, -CURSOR_QUERY.length) : out;
      if (PROMPT.test(tail)) finish();
    });
    p.on('error', (e) => finish(e));
    p.on('exit', (code) =>
      finish(new Error(`${cmd} exited (${code}) before the prompt:\n${out.slice(-400)}`)),
    );
  });
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function hasQemu(): Promise<boolean> {
  return new Promise((resolve) => {
    const p = spawn('qemu-system-riscv64', ['--version'], { stdio: 'ignore' });
    p.on('error', () => resolve(false));
    p.on('exit', (c) => resolve(c === 0));
  });
}

async function main(): Promise<void> {
  const tmp = mkdtempSync(join(tmpdir(), 'wasmvisor-bench-'));
  try {
    // QEMU's -kernel wants the raw Image; both get the very same bytes.
    const rawImage = join(tmp, 'Image');
    writeFileSync(rawImage, gunzipSync(readFileSync(join(images, 'Image.gz'))));
    const fw = join(images, 'fw_dynamic.bin');
    const initrd = join(images, 'initramfs.cpio.gz');
    const append = 'console=ttyS0';
    const ours = [
      join(root, 'bin', 'wasmvisor.mjs'),
      'run',
      '--bios',
      fw,
      '--kernel',
      rawImage,
      '--initrd',
      initrd,
      '--append',
      append,
      '--mem',
      '256M',
    ];
    const qemuArgs = [
      '-M',
      'virt',
      '-m',
      '256M',
      '-nographic',
      '-bios',
      fw,
      '-kernel',
      rawImage,
      '-initrd',
      initrd,
      '-append',
      append,
    ];
    const qemu = await hasQemu();
    const w: BootTime[] = [];
    const j: BootTime[] = [];
    const q: number[] = [];
    console.log(
      `boot to shell prompt, ${RUNS} runs each, alternating (kernel: guest/images/Image.gz)`,
    );
    const show = (t: BootTime) => `${t.seconds.toFixed(2)} s (${t.cpu.toFixed(2)} s of CPU)`;
    for (let i = 0; i < RUNS; i++) {
      w.push(await timeToPrompt(process.execPath, ours));
      console.log(`  run ${i + 1}: wasmvisor          ${show(w[i]!)}`);
      j.push(await timeToPrompt(process.execPath, [...ours, '--no-jit']));
      console.log(`  run ${i + 1}: wasmvisor --no-jit ${show(j[i]!)}`);
      if (qemu) {
        q.push((await timeToPrompt('qemu-system-riscv64', qemuArgs)).seconds);
        console.log(`  run ${i + 1}: qemu-tcg           ${q[i]!.toFixed(2)} s`);
      }
    }
    const loops = [runCpuLoop(), runCpuLoop(), runCpuLoop()];
    const mips = median(loops.map((l) => l.mips));
    const jitMips = median(
      [runCpuLoop(true), runCpuLoop(true), runCpuLoop(true)].map((l) => l.mips),
    );
    console.log('');
    console.log('figure                         wasmvisor     qemu-tcg     ratio (wasmvisor/qemu)');
    const wm = median(w.map((t) => t.seconds));
    if (qemu) {
      const qm = median(q);
      console.log(
        `boot to prompt (median, s)     ${wm.toFixed(2).padStart(9)}    ${qm.toFixed(2).padStart(9)}     ${(wm / qm).toFixed(2)}x`,
      );
    } else {
      console.log(
        `boot to prompt (median, s)     ${wm.toFixed(2).padStart(9)}    (qemu-system-riscv64 not installed)`,
      );
    }
    const jm = median(j.map((t) => t.seconds));
    console.log(`boot with --no-jit (median, s) ${jm.toFixed(2).padStart(9)}`);
    console.log(
      `CPU to prompt, s (default / --no-jit, medians)  ${median(w.map((t) => t.cpu)).toFixed(2)} / ${median(j.map((t) => t.cpu)).toFixed(2)}`,
    );
    console.log(
      `CPU-bound loop (median MIPS)   ${jitMips.toFixed(0).padStart(9)}  (--no-jit: ${mips.toFixed(0)})`,
    );
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  console.error(`bench: ${(e as Error).message}`);
  process.exit(1);
});
