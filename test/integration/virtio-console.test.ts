/**
 * The bundled guest with `--console hvc0 --rng`: the kernel's console and the shell run on the
 * virtio-console (the UART still shows OpenSBI), and /dev/hwrng serves bytes from virtio-rng.
 */
import { describe, it, expect } from 'vitest';
import { join } from 'node:path';
import { SerialSession } from './serial-session.js';

const root = join(import.meta.dirname, '..', '..');
const cli = join(root, 'bin', 'wasmvisor.mjs');

describe('virtio-console and virtio-rng in the bundled guest', () => {
  it('console=hvc0 gives a working shell; /dev/hwrng returns data', async () => {
    const s = SerialSession.spawn(
      process.execPath,
      [cli, 'run', '--console', 'hvc0', '--rng', '--stats'],
      {
        logFile: join(root, 'test-artifacts', 'virtio-console.log'),
      },
    );
    try {
      await s.expect('OpenSBI', 20_000); // on the UART
      await s.expect(/# /, 60_000); // the shell, on hvc0
      s.sendLine('cat /proc/consoles');
      await s.expect(/^hvc0\s+.*EC/m, 10_000);
      s.sendLine('echo $((6*7))');
      await s.expect(/^42\r?$/m, 10_000);
      s.sendLine('cat /sys/class/misc/hw_random/rng_current');
      await s.expect(/virtio_rng\.\d/, 10_000);
      s.sendLine('head -c 16 /dev/hwrng | od -An -tx1 | tr -d " \\n"; echo');
      const r = await s.expect(/^([0-9a-f]{32})\r?$/m, 10_000);
      expect(r.match[1]).not.toBe('0'.repeat(32));
      s.sendLine('poweroff');
      expect((await s.waitForExit(30_000)).code).toBe(0);
      expect(s.stderr).toMatch(/virtio-console0:[\s\S]*tx_bytes\s+[1-9]/);
      expect(s.stderr).toMatch(/virtio-rng0:[\s\S]*bytes\s+[1-9]/);
    } finally {
      await s.close();
    }
  }, 120_000);
});
