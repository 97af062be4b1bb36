/**
 * What each I/O scheduler policy does to a mixed workload on a raw file.
 *
 *   npm run build && node dist/bench/block-sched.js [--seconds 1] [--rounds 3] [--size-mib 256]
 *       [--submitters 16] [--in-flight 4] [--dir /tmp]
 *   (or without building: npx tsx bench/block-sched.ts …)
 *
 * A 256 MiB raw image (filled with data, so reads are not served from holes) in a temp dir; N
 * submitters (each one request at a time, like guest threads doing synchronous I/O) issue
 * - random:  70% 4 KiB random reads, 30% 4 KiB random writes, all over the disk;
 * - streams: each submitter reads its own region sequentially, keeping a window of 8
 *   consecutive 4 KiB reads outstanding (as readahead does): the case merging is for;
 * through openDisk() under each policy, once through the host page cache (cache=writeback) and
 * once with O_DIRECT (the page cache bypassed, so the device's own seek behaviour shows).
 * Buffers are views of a WebAssembly.Memory, as guest RAM is (and page aligned, as O_DIRECT
 * needs). Rounds rotate the policy order; the row with the median IOPS is printed.
 *
 * Then two competing disks in this one process (two raw images, as two VMs' disks would be; two
 * guests booted side by side would measure the vCPUs more than the scheduler): on disk A one
 * sequential reader floods (a window of 32 consecutive 4 KiB reads outstanding), on disk B one
 * random reader does 4 KiB reads one at a time. Per policy: A's MB/s, B's IOPS and B's p50/p99
 * latency — what cfq's time slices between disks trade against the others, which schedule each
 * disk on its own. Then the same two readers with each disk in its own worker thread (as two
 * VMs' disks are), under noop and under cfq with the host's shared cfq memory (cfq-shared.ts);
 * this part needs the build (the threads run dist/bench/block-sched-thread.js).
 */
import { existsSync, mkdtempSync, openSync, rmSync, writeSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { openDisk, type Disk } from '../devices/block/index.js';
import { RawFile } from '../devices/block/raw-file.js';
import { IoScheduler } from '../devices/block/scheduler.js';
import { SCHEDULERS, type SchedulerPolicy } from '../main/vm/config.js';
import { createCfqMemory } from '../devices/block/cfq-shared.js';
import { FLOOD_WINDOW, floodReads, K4, randomReads, xorshift } from './competing-readers.js';
import type { ThreadDiskJob, ThreadDiskResult } from './block-sched-thread.js';

const NO_MERGE = 'noop, no merging';
/** Sequential reads each streams submitter keeps outstanding. */
const WINDOW = 8;

export interface BlockBenchOptions {
  seconds: number;
  rounds: number;
  sizeMiB: number;
  submitters: number;
  inFlight: number;
  dir: string;
}

export interface BlockBenchRow {
  mode: 'page cache' | 'O_DIRECT';
  workload: 'random' | 'streams';
  /** A policy, or 'noop, no merging' (the streams baseline that shows what merging buys). */
  policy: SchedulerPolicy | typeof NO_MERGE;
  iops: number;
  mbps: number;
  p50us: number;
  p99us: number;
  /** The slowest request: where a policy starves someone, this shows it (p99 may not). */
  maxUs: number;
  merges: number;
  backendCalls: number;
}

type Workload = BlockBenchRow['workload'];

function makeImage(dir: string, sizeMiB: number, name = 'bench.img'): string {
  const path = join(dir, name);
  const fd = openSync(path, 'w');
  const chunk = Buffer.alloc(4 << 20);
  const rnd = xorshift(42);
  for (let i = 0; i < chunk.length; i += 4) chunk.writeUInt32LE((rnd() * 2 ** 32) >>> 0, i);
  for (let off = 0; off < sizeMiB << 20; off += chunk.length)
    writeSync(fd, chunk, 0, chunk.length, off);
  closeSync(fd);
  return path;
}

async function runOne(
  path: string,
  o: BlockBenchOptions,
  mode: BlockBenchRow['mode'],
  workload: Workload,
  policy: BlockBenchRow['policy'],
  round: number,
): Promise<BlockBenchRow> {
  const direct = mode === 'O_DIRECT';
  const disk =
    policy === NO_MERGE
      ? await unmergedDisk(path, direct, o.inFlight)
      : await openDisk(
          { path, format: 'raw', readOnly: false, cache: 'writeback', sched: policy },
          { inFlight: o.inFlight, direct },
        );
  // WINDOW 4 KiB pages of "guest RAM" per submitter, page aligned within a Wasm memory.
  const pages = (o.submitters * WINDOW + 1) * K4;
  const ram = new WebAssembly.Memory({ initial: Math.ceil(pages / 65536) });
  const blocks = disk.size / K4;
  const region = Math.floor(blocks / o.submitters);
  const deadline = performance.now() + o.seconds * 1000;
  let ops = 0;
  const submitter = async (id: number): Promise<void> => {
    const bufs = Array.from(
      { length: WINDOW },
      (_, j) => new Uint8Array(ram.buffer, (id * WINDOW + j + 1) * K4, K4),
    );
    const buf = bufs[0];
    const rnd = xorshift(1000 * round + id + 1);
    let next = id * region;
    while (performance.now() < deadline) {
      if (workload === 'random') {
        const off = Math.floor(rnd() * blocks) * K4;
        if (rnd() < 0.7) await disk.read(off, buf);
        else await disk.write(off, buf);
        ops++;
      } else {
        if (next + WINDOW > (id + 1) * region) next = id * region;
        const first = next;
        await Promise.all(bufs.map((b, j) => disk.read((first + j) * K4, b)));
        next += WINDOW;
        ops += WINDOW;
      }
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: o.submitters }, (_, i) => submitter(i)));
  const secs = (performance.now() - t0) / 1000;
  await disk.flush();
  const st = disk.stats();
  await disk.close();
  return {
    mode,
    workload,
    policy,
    iops: ops / secs,
    mbps: (ops * K4) / secs / 1e6,
    p50us: st.latencyUs.p50,
    p99us: st.latencyUs.p99,
    maxUs: st.latencyUs.max,
    merges: st.merges,
    backendCalls: st.backendCalls,
  };
}

export interface CompetingRow {
  mode: BlockBenchRow['mode'];
  policy: SchedulerPolicy;
  seqMBps: number;
  randIops: number;
  randP50us: number;
  randP99us: number;
}

async function runCompeting(
  paths: [string, string],
  o: BlockBenchOptions,
  mode: BlockBenchRow['mode'],
  policy: SchedulerPolicy,
  round: number,
): Promise<CompetingRow> {
  const direct = mode === 'O_DIRECT';
  const open = (path: string): Promise<Disk> =>
    openDisk(
      { path, format: 'raw', readOnly: true, cache: 'writeback', sched: policy },
      { inFlight: o.inFlight, direct },
    );
  const [seq, rand] = [await open(paths[0]), await open(paths[1])];
  const t0 = performance.now();
  const deadline = t0 + o.seconds * 1000;
  const [seqBytes, randOps] = await Promise.all([
    floodReads(seq, deadline),
    randomReads(rand, deadline, 77 + round),
  ]);
  const secs = (performance.now() - t0) / 1000;
  const lat = rand.stats().latencyUs;
  await Promise.all([seq.close(), rand.close()]);
  return {
    mode,
    policy,
    seqMBps: seqBytes / secs / 1e6,
    randIops: randOps / secs,
    randP50us: lat.p50,
    randP99us: lat.p99,
  };
}

/** The worker entry, built: next to this file in dist, or in dist when run from the sources. */
function threadEntry(): string | undefined {
  const here = dirname(fileURLToPath(import.meta.url));
  return [
    join(here, 'block-sched-thread.js'),
    join(here, '..', 'dist', 'bench', 'block-sched-thread.js'),
  ].find((p) => existsSync(p));
}

/** The same two readers, each disk in its own worker thread (as two VMs' disks are). */
async function runCompetingThreads(
  entry: string,
  paths: [string, string],
  o: BlockBenchOptions,
  mode: BlockBenchRow['mode'],
  policy: SchedulerPolicy,
  round: number,
): Promise<CompetingRow> {
  const cfqMemory = createCfqMemory();
  const startAt = Date.now() + 300; // both workers loaded and their disks open
  const endAt = startAt + o.seconds * 1000;
  const run = (role: ThreadDiskJob['role'], path: string): Promise<ThreadDiskResult> => {
    const job: ThreadDiskJob = {
      role,
      path,
      policy,
      direct: mode === 'O_DIRECT',
      inFlight: o.inFlight,
      startAt,
      endAt,
      seed: 77 + round,
      cfqMemory,
    };
    const w = new Worker(entry, { workerData: job });
    return new Promise((res, rej) => {
      w.once('message', res);
      w.once('error', rej);
      w.once('exit', (code) => rej(new Error(`disk thread exited (${code})`)));
    });
  };
  const [seq, rand] = await Promise.all([run('flood', paths[0]), run('random', paths[1])]);
  return {
    mode,
    policy,
    seqMBps: seq.done / seq.secs / 1e6,
    randIops: rand.done / rand.secs,
    randP50us: rand.p50us,
    randP99us: rand.p99us,
  };
}

/** Mode, policy and figures of the two-disk runs, median by the random reader's IOPS. */
export async function competingBench(
  dir: string,
  o: BlockBenchOptions,
  modes: BlockBenchRow['mode'][],
  print: (line: string) => void,
): Promise<CompetingRow[]> {
  const paths: [string, string] = [
    makeImage(dir, o.sizeMiB, 'seq.img'),
    makeImage(dir, o.sizeMiB, 'rand.img'),
  ];
  print('');
  print(
    `two competing disks: A floods sequential 4 KiB reads (${FLOOD_WINDOW} outstanding), ` +
      `B reads 4 KiB at random one at a time`,
  );
  print(
    `${'mode'.padEnd(11)}${'policy'.padEnd(10)}${'A MB/s'.padStart(9)}${'B IOPS'.padStart(9)}` +
      `${'B p50 µs'.padStart(10)}${'B p99 µs'.padStart(10)}`,
  );
  const rows: CompetingRow[] = [];
  for (const mode of modes) {
    const runs = new Map<SchedulerPolicy, CompetingRow[]>();
    for (let r = 0; r < o.rounds; r++) {
      for (let i = 0; i < SCHEDULERS.length; i++) {
        const p = SCHEDULERS[(i + r) % SCHEDULERS.length];
        runs.set(p, [...(runs.get(p) ?? []), await runCompeting(paths, o, mode, p, r)]);
      }
    }
    for (const p of SCHEDULERS) rows.push(printMedian(runs.get(p)!, print));
  }
  const entry = threadEntry();
  print('');
  if (!entry) {
    print('two disks in two worker threads: skipped (run `npm run build` first)');
    return rows;
  }
  print(
    'the same, each disk in its own worker thread (as two VMs), slices shared through the ' +
      "host's cfq memory:",
  );
  for (const mode of modes) {
    const runs = new Map<SchedulerPolicy, CompetingRow[]>();
    const policies: SchedulerPolicy[] = ['noop', 'cfq'];
    for (let r = 0; r < o.rounds; r++) {
      for (let i = 0; i < policies.length; i++) {
        const p = policies[(i + r) % policies.length];
        const row = await runCompetingThreads(entry, paths, o, mode, p, r);
        runs.set(p, [...(runs.get(p) ?? []), row]);
      }
    }
    for (const p of policies) rows.push(printMedian(runs.get(p)!, print));
  }
  return rows;
}

/** Prints and returns the run with the median random-reader IOPS. */
function printMedian(runs: CompetingRow[], print: (line: string) => void): CompetingRow {
  const m = [...runs].sort((a, b) => a.randIops - b.randIops)[Math.floor(runs.length / 2)];
  print(
    `${m.mode.padEnd(11)}${m.policy.padEnd(10)}${m.seqMBps.toFixed(1).padStart(9)}` +
      `${m.randIops.toFixed(0).padStart(9)}${m.randP50us.toFixed(0).padStart(10)}` +
      `${m.randP99us.toFixed(0).padStart(10)}`,
  );
  return m;
}

/** The same stack as openDisk's, with merging switched off. */
async function unmergedDisk(
  path: string,
  direct: boolean,
  inFlight: number,
): Promise<Pick<Disk, 'size' | 'read' | 'write' | 'flush' | 'close' | 'stats'>> {
  const file = await RawFile.open(path, { direct });
  const sched = new IoScheduler(file, { policy: 'noop', inFlight, maxMergeSegments: 1 });
  return {
    size: file.size,
    read: (off, buf) => sched.read(off, buf),
    write: (off, buf) => sched.write(off, buf),
    flush: () => sched.flush(),
    close: () => sched.close(),
    stats: () => ({
      ...sched.stats(),
      ...file.stats(),
      path,
      sizeBytes: file.size,
      readOnly: false,
    }),
  };
}

export async function runBlockSchedBench(
  o: BlockBenchOptions,
  print: (line: string) => void = console.log,
): Promise<BlockBenchRow[]> {
  const dir = mkdtempSync(join(o.dir, 'wasmvisor-block-bench-'));
  const rows: BlockBenchRow[] = [];
  const modes: BlockBenchRow['mode'][] = [];
  try {
    const path = makeImage(dir, o.sizeMiB);
    print(
      `block scheduler bench: ${o.sizeMiB} MiB raw image in ${o.dir}, ${o.submitters} submitters, ` +
        `${o.inFlight} back-end calls in flight, ${o.seconds} s per run, median of ${o.rounds} rounds`,
    );
    print(
      `${'mode'.padEnd(11)}${'workload'.padEnd(9)}${'policy'.padEnd(18)}` +
        `${'IOPS'.padStart(9)}${'MB/s'.padStart(8)}${'p50 µs'.padStart(9)}${'p99 µs'.padStart(9)}` +
        `${'max ms'.padStart(9)}` +
        `${'merges'.padStart(9)}${'calls'.padStart(9)}`,
    );
    for (const mode of ['page cache', 'O_DIRECT'] as const) {
      if (mode === 'O_DIRECT') {
        try {
          const probe = await openDisk(
            { path, format: 'raw', readOnly: true, cache: 'writeback', sched: 'noop' },
            { direct: true },
          );
          await probe.read(0, new Uint8Array(new WebAssembly.Memory({ initial: 1 }).buffer, 0, K4));
          await probe.close();
        } catch (e) {
          print(`O_DIRECT: not available on ${o.dir} (${(e as Error).message}); skipped`);
          continue;
        }
      }
      modes.push(mode);
      for (const workload of ['random', 'streams'] as const) {
        const policies: BlockBenchRow['policy'][] = [...SCHEDULERS];
        if (workload === 'streams') policies.push(NO_MERGE);
        const runs = new Map<BlockBenchRow['policy'], BlockBenchRow[]>();
        for (let r = 0; r < o.rounds; r++) {
          const order = policies.map((_, i) => policies[(i + r) % policies.length]);
          for (const p of order) {
            const row = await runOne(path, o, mode, workload, p, r);
            runs.set(p, [...(runs.get(p) ?? []), row]);
          }
        }
        for (const p of policies) {
          const sorted = runs.get(p)!.sort((a, b) => a.iops - b.iops);
          const m = sorted[Math.floor(sorted.length / 2)];
          rows.push(m);
          print(
            `${mode.padEnd(11)}${workload.padEnd(9)}${p.padEnd(18)}` +
              `${m.iops.toFixed(0).padStart(9)}${m.mbps.toFixed(1).padStart(8)}` +
              `${m.p50us.toFixed(0).padStart(9)}${m.p99us.toFixed(0).padStart(9)}` +
              `${(m.maxUs / 1000).toFixed(1).padStart(9)}` +
              `${String(m.merges).padStart(9)}${String(m.backendCalls).padStart(9)}`,
          );
        }
      }
    }
    await competingBench(dir, o, modes, print);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return rows;
}

function parseArgs(argv: string[]): BlockBenchOptions {
  const o: BlockBenchOptions = {
    seconds: 1,
    rounds: 3,
    sizeMiB: 256,
    submitters: 16,
    inFlight: 4,
    dir: tmpdir(),
  };
  for (let i = 0; i < argv.length; i += 2) {
    const [k, v] = [argv[i], argv[i + 1]];
    const num = (): number => {
      const n = Number(v);
      if (!Number.isFinite(n) || n <= 0) throw new Error(`${k}: expected a positive number`);
      return n;
    };
    if (k === '--seconds') o.seconds = num();
    else if (k === '--rounds') o.rounds = Math.round(num());
    else if (k === '--size-mib') o.sizeMiB = Math.round(num());
    else if (k === '--submitters') o.submitters = Math.round(num());
    else if (k === '--in-flight') o.inFlight = Math.round(num());
    else if (k === '--dir' && v) o.dir = v;
    else throw new Error(`unknown option ${k} (see the header of bench/block-sched.ts)`);
  }
  return o;
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  try {
    await runBlockSchedBench(parseArgs(process.argv.slice(2)));
  } catch (e) {
    console.error(`block-sched: ${(e as Error).message}`);
    process.exitCode = 1;
  }
}
