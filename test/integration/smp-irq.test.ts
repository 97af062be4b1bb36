/**
 * Several harts under the bundled (SMP) kernel through the real CLI: every hart comes up, the
 * console keeps working while the harts send each other IPIs, and the UART's interrupt moved to
 * CPU 1 arrives through hart 1's PLIC context (QEMU virt -smp 2 behaves the same).
 */
import { describe, it, expect } from 'vitest';
import { join } from 'node:path';
import { SerialSession } from './serial-session.js';

const root = join(import.meta.dirname, '..', '..');
const cli = join(root, 'bin', 'wasmvisor.mjs');

describe('wasmvisor run --smp', () => {
  it('brings 4 CPUs up and routes the UART interrupt to the CPU its affinity names', async () => {
    const s = SerialSession.spawn(process.execPath, [cli, 'run', '--smp', '4', '--stats'], {
      logFile: join(root, 'test-artifacts', 'smp-irq.log'),
    });
    try {
      await s.expect(/Brought up 1 node, 4 CPUs/, 60_000);
      await s.expect(/# /, 60_000);
      s.sendLine('echo n=$(nproc) online=$(cat /sys/devices/system/cpu/online)');
      await s.expect(/n=4 online=0-3/, 10_000);
      // A long line: many UART interrupts while the harts exchange IPIs (an M-mode csrs on mip
      // for an IPI must not latch the PLIC's SEIP into the software bit).
      const words = Array.from({ length: 40 }, (_, i) => `w${i}`).join(' ');
      s.sendLine(`set -- ${words}; echo count=$#`);
      await s.expect(/count=40/, 20_000);
      s.sendLine(
        'I=$(grep ttyS0 /proc/interrupts | cut -d: -f1 | tr -d " "); echo 2 > /proc/irq/$I/smp_affinity; ' +
          'echo eff=$(cat /proc/irq/$I/effective_affinity_list)',
      );
      await s.expect(/eff=1/, 20_000);
      s.sendLine(`set -- ${words} ${words}; echo again=$#`);
      await s.expect(/again=80/, 20_000);
      s.sendLine('grep ttyS0 /proc/interrupts');
      const line = await s.expect(
        /^\s*\d+:\s+(\d+)\s+(\d+)\s+\d+\s+\d+\s+SiFive PLIC\s+10 /m,
        10_000,
      );
      // CPU 1 took the interrupts typed after the move.
      expect(Number(line.match[2])).toBeGreaterThan(50);
      s.sendLine('poweroff');
      const exit = await s.waitForExit(30_000);
      expect(exit.code).toBe(0);
    } finally {
      await s.close();
    }
  }, 180_000);
});
