/**
 * The project's own ISA suite (test/isa/*.S, see test/isa/README.md). Each program is built
 * with the RISC-V cross gcc into dist/isa/NAME.elf and then run
 *  - in our emulator (runElf): it must end with a tohost write of status 0;
 *  - under qemu-system-riscv64 -M virt, when installed: it must exit 0 through the sifive_test
 *    device, which shows that the tests themselves are right.
 * A failing program reports the number of its failing case ("rvd.S failed at case 17"; grep
 * the .S for `17,` or `CASE 17`). Case 999 means a failure before the first case (setup).
 *
 * Skipped, saying so, when riscv64-linux-gnu-gcc is missing (Debian: gcc-riscv64-linux-gnu);
 * the QEMU half is skipped when qemu-system-riscv64 is missing (Debian: qemu-system-misc).
 * RISCV_CC and QEMU_SYSTEM_RISCV64 select other binaries.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { runElf, type RunElfResult } from '../../main/vm/run-elf.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const ISA = join(ROOT, 'test/isa');
const OUT = join(ROOT, 'dist/isa');
const CC = process.env.RISCV_CC ?? 'riscv64-linux-gnu-gcc';
const QEMU = process.env.QEMU_SYSTEM_RISCV64 ?? 'qemu-system-riscv64';

/** Same flags as test/isa/run-qemu.sh. */
const CFLAGS = [
  '-march=rv64gc',
  '-mabi=lp64d',
  '-nostdlib',
  '-nostartfiles',
  '-static',
  '-fno-pie',
  '-no-pie',
  '-Wl,--no-warn-rwx-segments',
  '-Wl,--build-id=none',
  '-I',
  ISA,
  '-T',
  join(ISA, 'env/link.ld'),
];

/** RV64GC + Sstc, without the H extension QEMU 7.2 enables by default (our hart has none). */
const QEMU_ARGS = ['-M', 'virt', '-m', '64M', '-cpu', 'rv64,h=false,sstc=true', '-smp', '1'];

/** Wall-clock bound per program; the slowest ones wait for timer interrupts a few times. */
const RUN_TIMEOUT_MS = 30_000;

/** Status reported by env/test.h for a failure before the first case. */
const SETUP_CASE = 999;

function runs(cmd: string): boolean {
  return spawnSync(cmd, ['--version'], { stdio: 'ignore' }).status === 0;
}

const haveCc = runs(CC);
const haveQemu = haveCc && runs(QEMU);
const SOURCES = readdirSync(ISA)
  .filter((f) => f.endsWith('.S'))
  .sort();

if (!haveCc)
  console.warn(
    `isa: skipped: ${CC} not found (Debian: apt-get install gcc-riscv64-linux-gnu) — ` +
      'the ISA tests are assembled from test/isa/*.S',
  );
else if (!haveQemu)
  console.warn(
    `isa: QEMU reference runs skipped: ${QEMU} not found (Debian: apt-get install qemu-system-misc)`,
  );

const built = new Map<string, string>();

/** Builds test/isa/SRC into dist/isa/NAME.elf (once per run) and returns the ELF path. */
function elfFor(src: string): string {
  const cached = built.get(src);
  if (cached !== undefined) return cached;
  mkdirSync(OUT, { recursive: true });
  const elf = join(OUT, `${basename(src, '.S')}.elf`);
  try {
    execFileSync(CC, [...CFLAGS, '-o', elf, join(ISA, src)], { stdio: 'pipe', timeout: 60_000 });
  } catch (e) {
    const err = e as { stderr?: Buffer; message: string };
    throw new Error(`${src}: build failed:\n${err.stderr?.toString() ?? err.message}`);
  }
  built.set(src, elf);
  return elf;
}

function caseText(src: string, n: number): string {
  return n === SETUP_CASE
    ? `${src} failed during setup (before case 1)`
    : `${src} failed at case ${n}`;
}

function explain(src: string, r: RunElfResult): string {
  if (r.reason === 'tohost') return r.status === 0 ? `${src} passed` : caseText(src, r.status);
  if (r.reason === 'shutdown') {
    return r.status === 0
      ? `${src}: ended through the test device without writing tohost`
      : `${src}: test device fail code ${r.status} without a tohost write`;
  }
  return `${src}: no result (${r.reason}) after ${r.instret} instructions`;
}

describe.skipIf(!haveCc)('ISA tests in wasmvisor (runElf)', () => {
  for (const src of SOURCES) {
    it(
      src,
      async () => {
        const elf = elfFor(src);
        const r = await runElf(elf, { timeoutMs: RUN_TIMEOUT_MS - 5_000 });
        const why = explain(src, r);
        expect(r.reason, why).toBe('tohost');
        expect(r.status, why).toBe(0);
      },
      RUN_TIMEOUT_MS,
    );
  }
});

// The same programs with the block translator on, translating every block before its first
// execution and at once (threshold and batch 1), so that nearly all code runs translated.
describe.skipIf(!haveCc)('ISA tests in wasmvisor with the JIT (runElf)', () => {
  for (const src of SOURCES) {
    it(
      src,
      async () => {
        const elf = elfFor(src);
        const r = await runElf(elf, {
          timeoutMs: RUN_TIMEOUT_MS - 5_000,
          jit: true,
          jitOptions: { threshold: 1, batch: 1 },
        });
        const why = explain(src, r);
        expect(r.reason, why).toBe('tohost');
        expect(r.status, why).toBe(0);
        // Translated code ran (every program has loops and repeated helpers).
        expect(r.jit?.blockCalls ?? 0n).toBeGreaterThan(0n);
      },
      RUN_TIMEOUT_MS,
    );
  }
});

describe.skipIf(!haveQemu)('ISA tests on QEMU virt (reference)', () => {
  for (const src of SOURCES) {
    it(
      src,
      () => {
        const elf = elfFor(src);
        const r = spawnSync(QEMU, [...QEMU_ARGS, '-nographic', '-bios', 'none', '-kernel', elf], {
          encoding: 'utf-8',
          input: '',
          timeout: RUN_TIMEOUT_MS - 5_000,
        });
        const out = `${r.stdout ?? ''}${r.stderr ?? ''}`.replace(/\r/g, '');
        const failed = /FAIL: case (\d+)([^\n]*)/.exec(out);
        let why = `${src} passed`;
        if (failed) why = `${caseText(src, Number(failed[1]))}${failed[2]}`;
        else if (r.error || r.signal)
          why = `${src}: QEMU did not finish (${r.error?.message ?? r.signal})`;
        else if (r.status !== 0) why = `${src}: QEMU exited with ${r.status}:\n${out.slice(-2000)}`;
        expect(r.status, why).toBe(0);
        expect(out, why).toContain('PASS');
      },
      RUN_TIMEOUT_MS,
    );
  }
});
