/**
 * Crash safety with a real guest (issue 7, acceptance 3): the bundled guest writes numbered
 * 4 KiB blocks to a qcow2 disk, each with `dd conv=fsync` (a virtio-blk FLUSH), and prints
 * "F <n> <block>" once its flush completed; the host process (`wasmvisor run`) is SIGKILLed at a
 * seeded random moment, again and again on the same image. After each kill `qemu-img check` must
 * find no corruption (leaks allowed), and every block whose flush the guest saw complete must
 * hold that write or a later one to the same block.
 *
 * Twice: on a plain qcow2 and on an encrypted one (qcow2 with LUKS; the VM and qemu-img are
 * given the key file), at the same time. 100 kills each; QCOW2_GUEST_KILLS sets the number.
 */
import { describe, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createQcow2 } from '../../devices/block/qcow2/index.js';
import { SerialSession } from './serial-session.js';
import { images, missingTools } from './root-disk.js';
import { qemuImageArgs } from '../unit/block/img-run.js';
import { xorshift } from '../seeded-random.js';

const root = join(import.meta.dirname, '..', '..');
const KILLS = Number(process.env.QCOW2_GUEST_KILLS ?? 100);
const SEED = Number(process.env.QCOW2_CRASH_SEED ?? 1);
/** Blocks the guest writes over (16 MiB: a few hundred 64 KiB clusters get allocated). */
const BLOCKS = 4096;
const blockOf = (n: number): number => (n * 7919) % BLOCKS;
const tools = missingTools(['qemu-img']);

/** The number a block holds: 4095 digits and a newline, or 0 for a block never written. */
function blockValue(data: Buffer, b: number): number | 'torn' {
  const blk = data.subarray(b * 4096, (b + 1) * 4096);
  if (blk.every((x) => x === 0)) return 0;
  const text = blk.toString('latin1');
  if (!/^\d{4095}\n$/.test(text)) return 'torn';
  return Number(text.slice(0, 4095));
}

describe.skipIf(tools.length > 0)('qcow2 crash safety under a real guest', () => {
  // The two run side by side (one guest per core; most of a round is waiting for the kill), each
  // with its own image, key and seeded moments: half the suite's time of one after the other.
  it.concurrent.for([false, true])(
    `SIGKILL of the host at ${KILLS} seeded random moments while the guest writes and flushes (encrypted: %s)`,
    { timeout: 3_600_000 },
    async (encrypted, { expect }) => {
      const dir = mkdtempSync(join(tmpdir(), 'wasmvisor-guest-crash-'));
      const when = xorshift(SEED * 31 + 5 + (encrypted ? 1 : 0));
      try {
        const img = join(dir, 'disk.qcow2');
        const keyFile = join(dir, 'key');
        writeFileSync(keyFile, 'guest-crash-key');
        await createQcow2(img, {
          size: 64 << 20,
          ...(encrypted ? { encrypt: { passphrase: readFileSync(keyFile), iterTimeMs: 5 } } : {}),
        });
        const qemuImage = qemuImageArgs(img, encrypted ? keyFile : undefined);
        /** The last number whose flush completed, per block. */
        const flushed = new Map<number, number>();
        let first = 1;
        let leaks = 0;
        for (let k = 0; k < KILLS; k++) {
          const s = SerialSession.spawn(process.execPath, [
            join(root, 'bin', 'wasmvisor.mjs'),
            'run',
            '--kernel',
            join(images, 'Image.gz'),
            '--initrd',
            join(images, 'initramfs.cpio.gz'),
            '--disk',
            `${img},format=qcow2${encrypted ? `,key-file=${keyFile}` : ''}`,
            '--append',
            'console=ttyS0',
          ]);
          try {
            await s.expect(/# /, 120_000);
            // Numbers go on from the last kill's, so every write is told apart from older ones.
            s.sendLine(
              `i=${first - 1}; while :; do i=$((i+1)); b=$(( (i*7919) % ${BLOCKS} )); ` +
                `printf "%04095d\\n" $i | dd of=/dev/vda bs=4096 seek=$b count=1 conv=fsync ` +
                `2>/dev/null && echo "F $i $b"; done`,
            );
            await s.expect(/^F \d+ \d+\r?$/m, 60_000);
            await new Promise((r) => setTimeout(r, 100 + when(2900)));
          } finally {
            await s.close('SIGKILL');
          }
          let last = first - 1;
          for (const m of s.output.matchAll(/^F (\d+) (\d+)\r?$/gm)) {
            const n = Number(m[1]);
            expect(Number(m[2])).toBe(blockOf(n));
            flushed.set(blockOf(n), n);
            last = Math.max(last, n);
          }
          // Writes the guest completed after its last line reached us may have landed too (its
          // console output is still in the host's buffers when the kill comes).
          const chk = spawnSync('qemu-img', ['check', ...qemuImage], { encoding: 'utf-8' });
          expect([0, 3], `kill ${k}: ${chk.stdout}${chk.stderr}`).toContain(chk.status);
          if (chk.status === 3) leaks++;
          const raw = join(dir, 'out.raw');
          expect(spawnSync('qemu-img', ['convert', ...qemuImage, '-O', 'raw', raw]).status).toBe(0);
          const data = readFileSync(raw);
          for (let b = 0; b < BLOCKS; b++) {
            const v = blockValue(data, b);
            const want = flushed.get(b) ?? 0;
            const ok = v === want || (v !== 'torn' && v > want && blockOf(v) === b);
            if (!ok)
              expect.fail(`kill ${k}: block ${b} holds ${v}, its last flushed write was ${want}`);
            if (typeof v === 'number' && v > want) flushed.set(b, v);
            if (typeof v === 'number') last = Math.max(last, v);
          }
          // The next run's numbers are all new.
          first = last + 1;
        }
        console.log(
          `${encrypted ? 'encrypted ' : ''}qcow2 guest crash test: ${KILLS} kills (seed ${SEED}), ${flushed.size} blocks written, ` +
            `${leaks} with leaked clusters, 0 corrupt`,
        );
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );
});
