/**
 * Host start-up latency of `wasmvisor run`: from spawning the command to the guest's first
 * console byte and to the shell prompt, with where the time before the first byte goes (the
 * CLI's and the VM worker's start-up marks, WASMVISOR_STARTUP_TRACE=1). Beside it, alternately,
 * the in-process baseline: a child node process that imports VirtMachine and runs it on its
 * main thread (no CLI, no worker), so the difference is the CLI's own start-up. Same kernel,
 * initrd and options as bench/boot.ts.
 *
 *   node dist/bench/startup.js [RUNS] [--gzip-kernel]     (default 5 runs of each)
 *
 * --gzip-kernel boots guest/images/Image.gz as it is, as `wasmvisor run` without options does
 * (the host then decompresses it at each start), instead of the raw Image QEMU needs.
 *
 * The in-process child is this file again, with --in-process and the boot files.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const images = join(root, 'guest', 'images');
const PROMPT = /# $/;
/** busybox's line editor asks the terminal where the cursor is (ESC [6n) after the prompt. */
const CURSOR_QUERY = '\u001b[6n';
const TIMEOUT_MS = 60_000;
const MARK = /^wasmvisor-startup (.+) (\d+(?:\.\d+)?)$/;

interface Run {
  firstByteMs: number;
  promptMs: number;
  /** Start-up marks, ms after spawn, in the order they were printed. */
  marks: Map<string, number>;
}

const wallNow = (): number => performance.timeOrigin + performance.now();

/** Spawns `args` under node and times its stdout: first byte and shell prompt. */
function timeRun(args: string[], env: NodeJS.ProcessEnv): Promise<Run> {
  return new Promise((resolve, reject) => {
    const t0 = wallNow();
    const p = spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'pipe'], env });
    let out = '';
    let err = '';
    let firstByteMs: number | undefined;
    let done = false;
    const finish = (e?: Error): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      p.kill('SIGKILL');
      if (e) return reject(e);
      const marks = new Map<string, number>();
      for (const line of err.split('\n')) {
        const m = MARK.exec(line.trim());
        if (m && !marks.has(m[1]!)) marks.set(m[1]!, Number(m[2]) - t0);
      }
      resolve({ firstByteMs: firstByteMs!, promptMs: wallNow() - t0, marks });
    };
    const timer = setTimeout(
      () => finish(new Error(`no prompt within ${TIMEOUT_MS / 1000} s:\n${out.slice(-400)}`)),
      TIMEOUT_MS,
    );
    p.stdout.on('data', (d: Buffer) => {
      firstByteMs ??= wallNow() - t0;
      out += d.toString('latin1');
      if (out.length > 65536) out = out.slice(-4096);
      const tail = out.endsWith(CURSOR_QUERY) ? out.slice(0, -CURSOR_QUERY.length) : out;
      if (PROMPT.test(tail)) finish();
    });
    p.stderr.on('data', (d: Buffer) => (err += d.toString('latin1')));
    p.on('error', (e) => finish(e));
    p.on('exit', (code) =>
      finish(new Error(`exited (${code}) before the prompt:\n${out.slice(-400)}${err}`)),
    );
  });
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** The baseline child: the machine on this process's main thread, its consoles on stdout. */
async function inProcess(bootArgs: string[]): Promise<void> {
  const { parseCommand } = await import('../main/cli/args.js');
  const { VirtMachine } = await import('../main/vm/machine.js');
  const cmd = parseCommand(['run', ...bootArgs]);
  if (cmd.kind !== 'run') throw new Error('not a run command');
  const vm = await VirtMachine.open(cmd.vm);
  vm.onConsoleOutput = (b) => process.stdout.write(b);
  await vm.run();
}

async function main(): Promise<void> {
  const gzipKernel = process.argv.includes('--gzip-kernel');
  const runs = Number(process.argv.slice(2).find((a) => !a.startsWith('--')) ?? 5);
  const tmp = mkdtempSync(join(tmpdir(), 'wasmvisor-startup-'));
  try {
    // The boot bench's files: QEMU's -kernel wants the raw Image, so ours gets it too.
    const rawImage = join(tmp, 'Image');
    writeFileSync(rawImage, gunzipSync(readFileSync(join(images, 'Image.gz'))));
    const bootArgs = [
      '--bios',
      join(images, 'fw_dynamic.bin'),
      '--kernel',
      gzipKernel ? join(images, 'Image.gz') : rawImage,
      '--initrd',
      join(images, 'initramfs.cpio.gz'),
      '--append',
      'console=ttyS0',
      '--mem',
      '256M',
    ];
    const cli = [join(root, 'bin', 'wasmvisor.mjs'), 'run', ...bootArgs];
    const self = [fileURLToPath(import.meta.url), '--in-process', ...bootArgs];
    const traced = { ...process.env, WASMVISOR_STARTUP_TRACE: '1' };
    const ours: Run[] = [];
    const base: Run[] = [];
    console.log(
      `wasmvisor run vs in-process VirtMachine, ${runs} runs each, alternating` +
        (gzipKernel ? ' (kernel: Image.gz)' : ''),
    );
    for (let i = 0; i < runs; i++) {
      ours.push(await timeRun(cli, traced));
      base.push(await timeRun(self, process.env));
      const f = (r: Run): string =>
        `${r.firstByteMs.toFixed(0).padStart(5)} ms first byte, ${r.promptMs.toFixed(0).padStart(5)} ms prompt`;
      console.log(`  run ${i + 1}: cli ${f(ours[i]!)} | in-process ${f(base[i]!)}`);
    }
    console.log('');
    console.log('median, ms after spawn          wasmvisor run   in-process');
    const row = (label: string, a: number, b?: number): void =>
      console.log(
        `${label.padEnd(32)}${a.toFixed(0).padStart(13)}${b === undefined ? '' : b.toFixed(0).padStart(13)}`,
      );
    row(
      'first console byte',
      median(ours.map((r) => r.firstByteMs)),
      median(base.map((r) => r.firstByteMs)),
    );
    row('shell prompt', median(ours.map((r) => r.promptMs)), median(base.map((r) => r.promptMs)));
    console.log('');
    console.log('wasmvisor run start-up marks (median, ms after spawn):');
    for (const name of ours[0]!.marks.keys()) {
      const at = ours.map((r) => r.marks.get(name)).filter((x) => x !== undefined);
      row(`  ${name}`, median(at));
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

const run = process.argv[2] === '--in-process' ? inProcess(process.argv.slice(3)) : main();
run.catch((e: unknown) => {
  console.error(`bench: ${(e as Error).message}`);
  process.exit(1);
});
