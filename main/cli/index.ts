/** `wasmvisor` command line: boot a VM on the terminal, or run a bare-metal ELF. */
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { parseCommand, UsageError, USAGE, type RunOptions, type RunElfCliOptions } from './args.js';
import { bundledGuest } from './bundled-guest.js';
import { attachTerminal } from './terminal.js';
import { VirtMachine, type MachineStats, type NamedImage } from '../vm/machine.js';
import { runElf, RunElfError } from '../vm/run-elf.js';
import { BootError } from '../../devices/platform/boot-loader.js';

/** A problem the user can fix: printed as one line, no stack trace. */
class UserError extends Error {}

function readImage(path: string, what: string): NamedImage {
  try {
    return { name: path, data: readFileSync(path) };
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT'
        ? 'no such file'
        : code === 'EACCES'
          ? 'permission denied'
          : code === 'EISDIR'
            ? 'is a directory'
            : (e as Error).message;
    throw new UserError(`${what} ${path}: ${why}`);
  }
}

/** Firmware may be shipped gzip'd; the kernel loader handles gzip itself. */
function maybeGunzip(img: NamedImage): NamedImage {
  if (img.data[0] === 0x1f && img.data[1] === 0x8b) {
    try {
      return { name: img.name, data: gunzipSync(img.data) };
    } catch {
      throw new UserError(`${img.name}: corrupt gzip data`);
    }
  }
  return img;
}

function formatStats(s: MachineStats): string {
  const lines = [
    `instructions retired: ${s.instret}`,
    `time: ${s.seconds.toFixed(2)} s, ${s.mips.toFixed(1)} MIPS`,
    `traps taken: ${s.traps}`,
    'MMIO exits per device:',
    ...Object.entries(s.exits).map(
      ([d, e]) => `  ${d.padEnd(8)} ${e.reads} reads, ${e.writes} writes`,
    ),
    'interrupts per source:',
    ...Object.entries(s.interrupts).map(([src, n]) => `  ${src.padEnd(8)} ${n}`),
  ];
  return lines.join('\n');
}

async function cmdRun(o: RunOptions): Promise<number> {
  const def = bundledGuest();
  const firmware = maybeGunzip(readImage(o.bios ?? def.firmware, 'firmware'));
  const kernel = readImage(o.kernel ?? def.kernel, 'kernel');
  const initrd = o.initrd ?? (o.kernel ? undefined : def.initrd);
  const cfg = {
    memMiB: o.memMiB,
    firmware,
    kernel,
    initrd: initrd ? readImage(initrd, 'initrd') : undefined,
    bootargs: o.append ?? 'console=ttyS0',
    log: (m: string) => process.stderr.write(`wasmvisor: ${m}\r\n`),
  };
  let vm: VirtMachine;
  const out = process.stdout;
  let quit = false;
  const detach = attachTerminal({
    input: (b) => vm.consoleInput(b),
    quit: () => {
      quit = true;
      vm.stop();
    },
    help: (t) => out.write(t),
  });
  try {
    for (;;) {
      try {
        vm = new VirtMachine(cfg);
      } catch (e) {
        if (e instanceof BootError) throw new UserError(e.message);
        throw e;
      }
      vm.onConsoleOutput = (b) => out.write(b);
      const exit = await vm.run();
      if (o.stats)
        process.stderr.write('\r\n' + formatStats(vm.stats()).replace(/\n/g, '\r\n') + '\r\n');
      if (exit.kind === 'reset' && !quit) continue; // the guest rebooted: boot again
      if (exit.kind === 'fail') {
        process.stderr.write(`\r\nwasmvisor: guest reported failure (code ${exit.code})\r\n`);
        return exit.code || 1;
      }
      if (quit) process.stderr.write('\r\nwasmvisor: terminated by Ctrl-A X\r\n');
      return 0;
    }
  } finally {
    detach();
  }
}

async function cmdRunElf(o: RunElfCliOptions): Promise<number> {
  const t0 = performance.now();
  let r;
  try {
    r = await runElf(o.file, {
      timeoutMs: o.timeoutMs,
      maxInsns: o.maxInsns,
      onOutput: (t) => process.stdout.write(t),
    });
  } catch (e) {
    if (e instanceof RunElfError) throw new UserError(e.message);
    throw e;
  }
  const secs = (performance.now() - t0) / 1000;
  if (o.stats) {
    process.stderr.write(
      `instructions retired: ${r.instret}\ntime: ${secs.toFixed(3)} s, ${(Number(r.instret) / secs / 1e6).toFixed(1)} MIPS\n`,
    );
  }
  if (r.reason === 'timeout') {
    process.stderr.write(`wasmvisor: ${o.file}: timed out after ${r.instret} instructions\n`);
    return 124;
  }
  if (r.reason === 'max-insns') {
    process.stderr.write(`wasmvisor: ${o.file}: instruction limit reached\n`);
    return 124;
  }
  return r.status;
}

export async function main(argv: string[]): Promise<number> {
  try {
    const cmd = parseCommand(argv);
    switch (cmd.kind) {
      case 'help':
        process.stdout.write(USAGE);
        return 0;
      case 'version':
        process.stdout.write('wasmvisor 0.1.0\n');
        return 0;
      case 'run':
        return await cmdRun(cmd);
      case 'run-elf':
        return await cmdRunElf(cmd);
    }
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`wasmvisor: ${e.message}\n\n${USAGE}`);
      return 2;
    }
    if (e instanceof UserError) {
      process.stderr.write(`wasmvisor: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
}
