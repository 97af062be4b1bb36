/**
 * Runs a bare-metal ELF64 the way Spike does for riscv-tests: PT_LOAD segments at their physical
 * addresses, hart 0 in M mode at e_entry, and the `tohost` protocol — an odd value v ends the run
 * with status v >> 1; device 1 / command 1 prints the low byte.
 */
import { readFileSync } from 'node:fs';
import { Core, ExitReason } from './core.js';
import { parseElf, ElfError } from './elf.js';
import { HostClock, sleepSync } from './clock.js';
import type { JitOptions, JitStats } from './jit/jit.js';

export interface RunElfResult {
  status: number;
  output: string;
  instret: bigint;
  reason: 'tohost' | 'timeout' | 'max-insns' | 'shutdown';
  /** What the block translator did, when it was on. */
  jit?: JitStats;
}

export interface RunElfOptions {
  timeoutMs?: number;
  maxInsns?: number;
  ramMiB?: number;
  /** Receives console bytes as they are printed. */
  onOutput?: (text: string) => void;
  /** Translate hot blocks (default: WASMVISOR_JIT=1 or 0, else off), and when (see JitOptions). */
  jit?: boolean;
  jitOptions?: JitOptions;
}

export class RunElfError extends Error {}

const RAM_BASE = 0x8000_0000;
const TEST_DEVICE = 0x10_0000;
const SLICE = 1 << 20;

export async function runElf(path: string, opts: RunElfOptions = {}): Promise<RunElfResult> {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new RunElfError(`${path}: ${(e as NodeJS.ErrnoException).code ?? 'cannot read'}`);
  }
  let elf;
  try {
    elf = parseElf(bytes);
  } catch (e) {
    if (e instanceof ElfError) throw new RunElfError(`${path}: ${e.message}`);
    throw e;
  }
  const ramSize = (opts.ramMiB ?? 64) * 1024 * 1024;
  const clock = new HostClock();
  let shutdown: number | undefined;
  let core: Core | undefined = undefined;
  core = new Core(
    RAM_BASE,
    ramSize,
    {
      mmioRead: () => {
        core!.busFault();
        return 0;
      },
      mmioWrite: (addr, _size, value) => {
        // The sifive test device, so that programs written for QEMU's virt also end here.
        if (addr === TEST_DEVICE) {
          const code = value & 0xffff;
          if (code === 0x5555) shutdown = 0;
          else if (code === 0x3333) shutdown = value >>> 16 || 1;
          if (shutdown !== undefined) core!.requestExit();
          return;
        }
        core!.busFault();
      },
      hostTicks: () => clock.ticks(),
    },
    { jit: opts.jit, jitOptions: opts.jitOptions },
  );
  for (const seg of elf.segments) {
    const off = Number(seg.paddr) - RAM_BASE;
    if (off < 0 || off + seg.memSize > ramSize) {
      throw new RunElfError(
        `${path}: segment at 0x${seg.paddr.toString(16)} (${seg.memSize} bytes) lies outside RAM ` +
          `0x${RAM_BASE.toString(16)}..0x${(RAM_BASE + ramSize).toString(16)}`,
      );
    }
    core.ram.set(seg.data, off);
    core.ram.fill(0, off + seg.data.length, off + seg.memSize);
  }
  const tohost = elf.symbols.get('tohost');
  const fromhost = elf.symbols.get('fromhost');
  if (tohost === undefined) throw new RunElfError(`${path}: no 'tohost' symbol`);
  const tohostOff = Number(tohost) - RAM_BASE;
  if (tohostOff < 0 || tohostOff + 8 > ramSize)
    throw new RunElfError(`${path}: tohost outside RAM`);
  core.setTohost(tohost);
  core.pc = elf.entry;
  const view = new DataView(core.ram.buffer, core.ram.byteOffset, core.ram.byteLength);
  let output = '';
  const start = Date.now();
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const maxInsns = opts.maxInsns !== undefined ? BigInt(opts.maxInsns) : undefined;
  for (let slices = 0; ; slices++) {
    const reason = core.run(SLICE);
    if (shutdown !== undefined) {
      return {
        status: shutdown,
        output,
        instret: core.instret,
        jit: core.jit?.currentStats(),
        reason: 'shutdown',
      };
    }
    if (reason === ExitReason.Tohost) {
      const v = view.getBigUint64(tohostOff, true);
      core.clearTohost();
      if (v & 1n)
        return {
          status: Number(v >> 1n),
          output,
          instret: core.instret,
          jit: core.jit?.currentStats(),
          reason: 'tohost',
        };
      const device = Number(v >> 56n);
      const cmd = Number((v >> 48n) & 0xffn);
      if (device === 1 && cmd === 1) {
        const ch = String.fromCharCode(Number(v & 0xffn));
        output += ch;
        opts.onOutput?.(ch);
      }
      view.setBigUint64(tohostOff, 0n, true);
      if (fromhost !== undefined) view.setBigUint64(Number(fromhost) - RAM_BASE, 1n, true);
      continue;
    }
    if (reason === ExitReason.Wfi && !core.interruptPending()) {
      const deadline = core.nextTimerDeadline();
      const ms = deadline === 0xffff_ffff_ffff_ffffn ? 10 : clock.msUntil(Number(deadline));
      sleepSync(Math.min(ms, 10));
    }
    if (maxInsns !== undefined && core.instret >= maxInsns) {
      return {
        status: -1,
        output,
        instret: core.instret,
        jit: core.jit?.currentStats(),
        reason: 'max-insns',
      };
    }
    if ((slices & 7) === 0 && Date.now() - start > timeoutMs) {
      return {
        status: -1,
        output,
        instret: core.instret,
        jit: core.jit?.currentStats(),
        reason: 'timeout',
      };
    }
  }
}
