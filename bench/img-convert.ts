/**
 * `wasmvisor img convert` against `qemu-img convert` on the same 1 GiB image, in the same run
 * (issue 7's target: at least 0.5× qemu-img's speed).
 *
 *   npm run build && node dist/bench/img-convert.js [--size-mib 1024] [--rounds 3] [--dir /tmp]
 *   (or without building: npx tsx bench/img-convert.ts …)
 *
 * The image repeats, every 16 MiB: 6 MiB of random bytes (incompressible), 4 MiB of text
 * (compressible) and 6 MiB of zeros (holes in the raw file). Cases: raw → qcow2, qcow2 → raw,
 * and raw → qcow2 with -c (compressed clusters). Each round runs both tools once per case,
 * alternating who goes first; the median time of each is printed, and the speed ratio
 * qemu-img time / our time. Ours runs in this process (no Node start-up counted: ~50 ms).
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, ftruncateSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseImgArgs, runImg } from '../main/cli/img.js';

const MiB = 1 << 20;

export interface ConvertBenchOptions {
  sizeMiB: number;
  rounds: number;
  dir: string;
}

export interface ConvertBenchRow {
  name: string;
  qemuSeconds: number;
  oursSeconds: number;
  /** qemu-img's time over ours: our speed as a fraction of qemu-img's. */
  ratio: number;
}

function makeSource(path: string, sizeMiB: number): void {
  const fd = openSync(path, 'w');
  try {
    ftruncateSync(fd, sizeMiB * MiB);
    const text = Buffer.from(
      'The quick brown fox jumps over the lazy dog; qcow2 clusters compress well.\n'.repeat(
        Math.ceil((4 * MiB) / 75),
      ),
    ).subarray(0, 4 * MiB);
    for (let base = 0; base < sizeMiB * MiB; base += 16 * MiB) {
      for (let m = 0; m < 6 && base + m * MiB < sizeMiB * MiB; m++) {
        writeSync(fd, randomBytes(MiB), 0, MiB, base + m * MiB);
      }
      if (base + 10 * MiB <= sizeMiB * MiB) writeSync(fd, text, 0, text.length, base + 6 * MiB);
    }
  } finally {
    closeSync(fd);
  }
}

function qemuImg(args: string[]): void {
  const r = spawnSync('qemu-img', args, { encoding: 'utf-8' });
  if (r.status !== 0) throw new Error(`qemu-img ${args.join(' ')}: ${r.stderr}`);
}

async function ours(args: string[]): Promise<void> {
  let err = '';
  const status = await runImg(parseImgArgs(args), { out: () => {}, err: (s) => (err += s) });
  if (status !== 0) throw new Error(`img ${args.join(' ')}: ${err}`);
}

async function timed(fn: () => unknown): Promise<number> {
  const t0 = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

export async function runConvertBench(
  o: ConvertBenchOptions,
  print: (line: string) => void = console.log,
): Promise<ConvertBenchRow[]> {
  if (spawnSync('qemu-img', ['--version']).status !== 0) {
    print('img-convert: qemu-img is not installed: skipped');
    return [];
  }
  const dir = mkdtempSync(join(o.dir, 'wasmvisor-convert-bench-'));
  try {
    const src = join(dir, 'src.raw');
    const srcQcow2 = join(dir, 'src.qcow2');
    print(`img convert: building a ${o.sizeMiB} MiB image (6 random, 4 text, 6 zero MiB per 16)…`);
    makeSource(src, o.sizeMiB);
    qemuImg(['convert', '-O', 'qcow2', src, srcQcow2]);
    const out = join(dir, 'out.img');
    const cases: { name: string; args: string[] }[] = [
      { name: 'raw → qcow2', args: ['-O', 'qcow2', src, out] },
      { name: 'qcow2 → raw', args: ['-f', 'qcow2', '-O', 'raw', srcQcow2, out] },
      { name: 'raw → qcow2 -c', args: ['-c', '-O', 'qcow2', src, out] },
    ];
    const rows: ConvertBenchRow[] = [];
    print(
      `${'case'.padEnd(16)}${'qemu-img s'.padStart(12)}${'ours s'.padStart(10)}${'ratio'.padStart(8)}`,
    );
    for (const c of cases) {
      const q: number[] = [];
      const w: number[] = [];
      for (let r = 0; r < o.rounds; r++) {
        const runQ = async () => {
          rmSync(out, { force: true });
          q.push(await timed(() => qemuImg(['convert', ...c.args])));
        };
        const runW = async () => {
          rmSync(out, { force: true });
          w.push(await timed(() => ours(['convert', ...c.args])));
        };
        if (r % 2 === 0) {
          await runQ();
          await runW();
        } else {
          await runW();
          await runQ();
        }
      }
      const row = {
        name: c.name,
        qemuSeconds: median(q),
        oursSeconds: median(w),
        ratio: median(q) / median(w),
      };
      rows.push(row);
      print(
        `${row.name.padEnd(16)}${row.qemuSeconds.toFixed(2).padStart(12)}` +
          `${row.oursSeconds.toFixed(2).padStart(10)}${row.ratio.toFixed(2).padStart(8)}`,
      );
    }
    print('ratio = qemu-img time / our time (target ≥ 0.5)');
    return rows;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function parseArgs(argv: string[]): ConvertBenchOptions {
  const o: ConvertBenchOptions = { sizeMiB: 1024, rounds: 3, dir: tmpdir() };
  for (let i = 0; i < argv.length; i += 2) {
    const [k, v] = [argv[i], argv[i + 1]];
    const n = Number(v);
    if ((k === '--size-mib' || k === '--rounds') && !(Number.isInteger(n) && n > 0)) {
      throw new Error(`${k}: expected a positive whole number`);
    }
    if (k === '--size-mib') o.sizeMiB = n;
    else if (k === '--rounds') o.rounds = n;
    else if (k === '--dir' && v) o.dir = v;
    else throw new Error(`unknown option ${k} (see the header of bench/img-convert.ts)`);
  }
  return o;
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  try {
    await runConvertBench(parseArgs(process.argv.slice(2)));
  } catch (e) {
    console.error(`img-convert: ${(e as Error).message}`);
    process.exitCode = 1;
  }
}
