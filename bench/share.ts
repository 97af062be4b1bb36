/**
 * Shared folders (virtio-9p), wasmvisor vs `qemu-system-riscv64 -M virt` (TCG) with QEMU's own
 * 9p server (`-fsdev local,security_model=none -device virtio-9p-device`), in the same run, on
 * the same kernel and initramfs, each serving a fresh copy of the same folder. In the guest, the
 * share mounted as users do (`mount -t 9p -o trans=virtio,version=9p2000.L`, Linux's default
 * msize of 128 KiB and no caching):
 *   - read: `dd` of a 64 MiB file through the share, bs=1M (three times, the median);
 *   - write: `dd` of 64 MiB into a new file, bs=1M, then `sync` (three times, the median);
 *   - tree: `ls -lR` over 20 directories of 50 small files (a walk, an open, a readdir and a
 *     getattr per entry), then `cp -r` of it within the share and `rm -rf` of the copy.
 * Wall time from typing the command to its end marker, and the emulator's host CPU over it.
 * Our VM runs as `wasmvisor run` does by default (the JIT on).
 *
 *   node dist/bench/share.js [RUNS]
 */
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { randomFillSync } from 'node:crypto';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GuestConsole } from './guest-console.js';
import { childCpuSeconds } from './proc-cpu.js';
import { QEMU, qemuVersion, qemuVirtArgs, unpackKernel } from './qemu-virt.js';
import { markedLine, MARKER_PATTERN, median } from './shell-workloads.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const RUNS = Math.max(1, Number(process.argv[2] ?? 3) || 3);
const FILE_MIB = 64;
const DIRS = 20;
const FILES_PER_DIR = 50;

interface Workload {
  name: string;
  /** What a run moves, for MB/s (0: timed only). */
  mib: number;
  command: string;
  /** Run after each timed run, untimed (cleaning up). */
  after?: string;
}

const WORKLOADS: readonly Workload[] = [
  { name: `read ${FILE_MIB} MiB`, mib: FILE_MIB, command: 'dd if=/mnt/s/big of=/dev/null bs=1M' },
  {
    name: `write ${FILE_MIB} MiB`,
    mib: FILE_MIB,
    command: `dd if=/dev/zero of=/mnt/s/out bs=1M count=${FILE_MIB} && sync`,
    after: 'rm /mnt/s/out',
  },
  { name: `ls -lR, ${DIRS * FILES_PER_DIR} files`, mib: 0, command: 'ls -lR /mnt/s/tree | wc -l' },
  {
    name: `cp -r + rm -rf, ${DIRS * FILES_PER_DIR} files`,
    mib: 0,
    command: 'cp -r /mnt/s/tree /mnt/s/copy && rm -rf /mnt/s/copy',
  },
];

/** A folder as both emulators get it: one big file of random bytes and a tree of small files. */
function makeShare(): string {
  const dir = mkdtempSync(join(tmpdir(), 'wv-share-bench-'));
  const big = Buffer.alloc(FILE_MIB << 20);
  randomFillSync(big);
  writeFileSync(join(dir, 'big'), big);
  for (let d = 0; d < DIRS; d++) {
    const sub = join(dir, 'tree', `d${d}`);
    mkdirSync(sub, { recursive: true });
    for (let f = 0; f < FILES_PER_DIR; f++) {
      writeFileSync(join(sub, `f${f}.txt`), `file ${d}/${f}\n`.repeat(20));
    }
  }
  return dir;
}

interface Result {
  wallS: number;
  cpuS: number;
}

async function runAll(kind: 'wasmvisor' | 'qemu', kernel: string): Promise<Result[][]> {
  const share = makeShare();
  const [cmd, args] =
    kind === 'wasmvisor'
      ? [
          process.execPath,
          [join(root, 'bin', 'wasmvisor.mjs'), 'run', '--jit', '--share', `${share},tag=host0`],
        ]
      : [
          QEMU,
          qemuVirtArgs({
            kernel,
            extra: [
              '-fsdev',
              `local,id=fs0,path=${share},security_model=none`,
              '-device',
              'virtio-9p-device,fsdev=fs0,mount_tag=host0',
            ],
          }),
        ];
  const g = new GuestConsole(cmd, args);
  try {
    await g.expect(/~# /, 120_000);
    const run = async (line: string): Promise<Result> => {
      const c0 = childCpuSeconds(g.p.pid) ?? NaN;
      const t0 = performance.now();
      g.send(markedLine(line));
      await g.expect(MARKER_PATTERN, 600_000);
      return {
        wallS: (performance.now() - t0) / 1000,
        cpuS: (childCpuSeconds(g.p.pid) ?? NaN) - c0,
      };
    };
    await run('mkdir -p /mnt/s && mount -t 9p -o trans=virtio,version=9p2000.L host0 /mnt/s');
    const out: Result[][] = [];
    for (const w of WORKLOADS) {
      const rs: Result[] = [];
      for (let i = 0; i < RUNS; i++) {
        rs.push(await run(w.command));
        if (w.after) await run(w.after);
      }
      out.push(rs);
    }
    await run('umount /mnt/s');
    g.send('poweroff');
    await Promise.race([
      new Promise((r) => g.p.on('exit', r)),
      new Promise((r) => setTimeout(r, 15_000)),
    ]);
    return out;
  } catch (e) {
    console.error(g.tail(2000));
    throw e;
  } finally {
    g.kill();
    rmSync(share, { recursive: true, force: true });
  }
}

const pad = (s: string, n: number) => s.padEnd(n);
const num = (x: number, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : '-');

async function main(): Promise<void> {
  const scratch = mkdtempSync(join(tmpdir(), 'wv-share-bench-k-'));
  try {
    const kernel = unpackKernel(scratch);
    console.log(
      `share: virtio-9p, Linux's 9p (msize 128 KiB, cache=none); wasmvisor (JIT) vs ${qemuVersion()} with its local fsdev; ${RUNS} runs each, medians`,
    );
    const ours = await runAll('wasmvisor', kernel);
    const theirs = await runAll('qemu', kernel);
    console.log(
      `${pad('workload', 30)}${pad('wasmvisor s', 13)}${pad('QEMU s', 10)}${pad('ratio', 8)}${pad('MB/s ours', 11)}${pad('MB/s QEMU', 11)}${pad('CPU s ours', 12)}CPU s QEMU`,
    );
    WORKLOADS.forEach((w, i) => {
      const a = median(ours[i]!.map((r) => r.wallS));
      const b = median(theirs[i]!.map((r) => r.wallS));
      const ca = median(ours[i]!.map((r) => r.cpuS));
      const cb = median(theirs[i]!.map((r) => r.cpuS));
      const mb = (w.mib * 2 ** 20) / 1e6;
      console.log(
        `${pad(w.name, 30)}${pad(num(a), 13)}${pad(num(b), 10)}${pad(num(a / b) + 'x', 8)}${pad(w.mib ? num(mb / a, 1) : '-', 11)}${pad(w.mib ? num(mb / b, 1) : '-', 11)}${pad(num(ca), 12)}${num(cb)}`,
      );
    });
    console.log('ratio: wasmvisor time / QEMU time (below 1: we are faster)');
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

await main();
