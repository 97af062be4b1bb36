/**
 * v86 (the x86 PC emulator people run in browsers) as a child process with its serial console on
 * stdin/stdout, so that bench/browser-emulator.ts drives it with the same GuestConsole, and reads
 * its CPU time from /proc, exactly as it does wasmvisor and QEMU.
 *
 *   node dist/bench/v86-guest.js DIR [KERNEL]   (DIR: guest/work/v86, built by guest/v86.sh;
 *                                               KERNEL: a file in DIR, default bzImage)
 *
 * v86 runs in node as a library without browser globals for this use (no screen, keyboard,
 * mouse or speaker; its wasm is read from node_modules/v86/build).
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { V86 } from 'v86';

/** Where `v86`'s wasm lies: beside its library in node_modules/v86/build. */
function v86WasmPath(): string {
  const require = createRequire(import.meta.url);
  return join(dirname(require.resolve('v86/package.json')), 'build', 'v86.wasm');
}

/** Guest RAM, as wasmvisor's default (--mem 256M). */
const MEM_BYTES = 256 * 1024 * 1024;

/** A file as v86 takes an image: its own ArrayBuffer (a Buffer may share a larger pool). */
function image(path: string): { buffer: ArrayBuffer } {
  const b = readFileSync(path);
  return { buffer: b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer };
}

function main(dir: string, kernel: string): void {
  const emulator = new V86({
    wasm_path: v86WasmPath(),
    memory_size: MEM_BYTES,
    bios: image(join(dir, 'bios.bin')),
    vga_bios: image(join(dir, 'vgabios.bin')),
    bzimage: image(join(dir, kernel)),
    initrd: image(join(dir, 'initrd.gz')),
    cmdline: 'console=ttyS0',
    autostart: true,
    disable_keyboard: true,
    disable_mouse: true,
    disable_speaker: true,
  });
  // One byte at a time from the UART; batched per tick so the pipe is not written per byte.
  let pending: number[] = [];
  emulator.add_listener('serial0-output-byte', (b: number) => {
    if (pending.length === 0) setImmediate(flush);
    pending.push(b);
  });
  function flush(): void {
    process.stdout.write(Buffer.from(pending));
    pending = [];
  }
  process.stdin.on('data', (d: Buffer) => emulator.serial0_send(d.toString('latin1')));
}

const dir = process.argv[2];
if (!dir) {
  console.error(
    'usage: node dist/bench/v86-guest.js DIR [KERNEL] (DIR: initrd.gz, bios.bin, vgabios.bin and KERNEL, default bzImage)',
  );
  process.exit(2);
}
main(dir, process.argv[3] ?? 'bzImage');
