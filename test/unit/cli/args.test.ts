import { describe, it, expect } from 'vitest';
import { parseCommand, parseMemMiB, UsageError } from '../../../main/cli/args.js';

describe('wasmvisor command line', () => {
  it('defaults run to the bundled guest with 256 MiB', () => {
    expect(parseCommand(['run'])).toEqual({
      kind: 'run',
      kernel: undefined,
      initrd: undefined,
      bios: undefined,
      append: undefined,
      memMiB: 256,
      stats: false,
    });
  });

  it('takes the QEMU-like overrides', () => {
    const c = parseCommand([
      'run',
      '--kernel',
      'K',
      '--initrd',
      'I',
      '--bios',
      'B',
      '--append',
      'console=ttyS0 quiet',
      '--mem',
      '1G',
      '--stats',
    ]);
    expect(c).toMatchObject({
      kernel: 'K',
      initrd: 'I',
      bios: 'B',
      append: 'console=ttyS0 quiet',
      memMiB: 1024,
      stats: true,
    });
  });

  it('reads memory sizes the way users write them', () => {
    expect(parseMemMiB('512')).toBe(512);
    expect(parseMemMiB('512M')).toBe(512);
    expect(parseMemMiB('2G')).toBe(2048);
    expect(parseMemMiB('64MiB')).toBe(64);
    expect(() => parseMemMiB('lots')).toThrow(UsageError);
    expect(() => parseMemMiB('8M')).toThrow(/outside/);
    expect(() => parseMemMiB('4G')).toThrow(/outside/);
  });

  it('parses run-elf with its bounds', () => {
    expect(parseCommand(['run-elf', 'x.elf', '--timeout', '2.5', '--max-insns', '1000'])).toEqual({
      kind: 'run-elf',
      file: 'x.elf',
      timeoutMs: 2500,
      maxInsns: 1000,
      stats: false,
    });
    expect(() => parseCommand(['run-elf'])).toThrow(/exactly one/);
    expect(() => parseCommand(['run-elf', 'x', '--timeout=0'])).toThrow(/positive/);
  });

  it('rejects unknown commands and options with a usage error', () => {
    expect(() => parseCommand(['frobnicate'])).toThrow(UsageError);
    expect(() => parseCommand(['run', '--frob'])).toThrow(UsageError);
    expect(() => parseCommand(['run', 'extra'])).toThrow(/unexpected argument/);
    expect(parseCommand([])).toEqual({ kind: 'help' });
  });
});
