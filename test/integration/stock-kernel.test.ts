/**
 * Debian's own riscv64 kernel (drivers as modules) boots in wasmvisor to the same busybox
 * prompt as the bundled guest. The kernel and its initramfs are fetched through apt and built by
 * `guest/build.sh stock` (not committed: ~37 MB), so this test needs Debian's archive.
 */
import { describe, it, expect } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { SerialSession } from './serial-session.js';

const root = join(import.meta.dirname, '..', '..');
const cli = join(root, 'bin', 'wasmvisor.mjs');
const stock = join(root, 'guest', 'work', 'stock');
const canApt = spawnSync('sh', ['-c', 'command -v apt-get'], { encoding: 'utf8' }).status === 0;

describe.skipIf(!canApt)("Debian's stock riscv64 kernel", () => {
  it('boots to the shell prompt, computes and powers off', async () => {
    if (!existsSync(join(stock, 'Image')) || !existsSync(join(stock, 'initramfs.cpio.gz'))) {
      const b = spawnSync('bash', [join(root, 'guest', 'build.sh'), 'stock'], {
        encoding: 'utf8',
        timeout: 600_000,
      });
      expect(b.status, `guest/build.sh stock failed:\n${(b.stdout + b.stderr).slice(-2000)}`).toBe(
        0,
      );
    }
    const s = SerialSession.spawn(
      process.execPath,
      [
        cli,
        'run',
        '--kernel',
        join(stock, 'Image'),
        '--initrd',
        join(stock, 'initramfs.cpio.gz'),
        '--mem',
        '512M',
      ],
      { logFile: join(root, 'test-artifacts', 'boot-stock.log') },
    );
    try {
      await s.expect('OpenSBI', 20_000);
      await s.expect(/Linux version \d+\.\d+\.\d+\S*-riscv64/, 30_000);
      await s.expect(/# /, 180_000);
      s.sendLine('echo $((6*7))');
      await s.expect(/^42\r?$/m, 20_000);
      s.sendLine('poweroff');
      const exit = await s.waitForExit(60_000);
      expect(exit.code).toBe(0);
    } finally {
      await s.close();
    }
  }, 900_000);
});
