/**
 * Crash safety (DESIGN: "disk images are user data"): a child process writes random ranges of a
 * qcow2 image through the block layer and is SIGKILLed at a random moment, again and again on
 * the same image. After each kill `qemu-img check` must find no corruption (exit 0, or 3 for
 * leaked clusters only), and every sector written before the last completed flush must read
 * back (or hold a value written after it: those writes may or may not have landed). The same
 * again with an encrypted image (qcow2 with LUKS; qemu-img given the key), and with internal
 * snapshots taken between the kills, so the kills land in copy-on-write of shared clusters and
 * L2 tables: every snapshot must still read as the image did when it was taken.
 *
 * The kill moments are seeded random (QCOW2_CRASH_SEED, default 1), between 5 ms and 400 ms
 * after the child's first write. The default suite kills the plain and the encrypted image 100
 * times each and the one with snapshots 30 times (WASMVISOR_LONG=1: 100); QCOW2_CRASH_KILLS
 * sets all three. The child is bundled once (esbuild) so that each
 * kill costs a plain node start, not a TypeScript compile.
 *
 * The first kill of each case comes after 1.5 s in which the parent reads nothing of the child's
 * log, as a parent on a loaded machine may not: the child must not issue a write before its line
 * is in the pipe (node's stdout to a pipe does not block; a line still queued in the child dies
 * with it while its write lands, which looked like a lost flushed write).
 */
import { describe, expect, it } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build } from 'esbuild';
import { qemuImageArgs } from '../unit/block/img-run.js';
import {
  createQcow2,
  createSnapshot,
  openImage,
  type Qcow2Image,
} from '../../devices/block/qcow2/index.js';
import { xorshift } from '../seeded-random.js';

const root = join(import.meta.dirname, '..', '..');
const haveQemuImg = spawnSync('qemu-img', ['--version']).status === 0;
const LONG = process.env.WASMVISOR_LONG === '1';
const KILLS_ENV = process.env.QCOW2_CRASH_KILLS;
const kills = (): number => (KILLS_ENV ? Number(KILLS_ENV) : 100);
const SEED = Number(process.env.QCOW2_CRASH_SEED ?? 1);
const SIZE = 32 << 20;

/** The child as one plain JavaScript file (node starts it in a fraction of tsx's time). */
async function bundleChild(dir: string): Promise<string> {
  const out = join(dir, 'crash-child.mjs');
  await build({
    entryPoints: [join(import.meta.dirname, 'qcow2-crash-child.ts')],
    outfile: out,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    logLevel: 'silent',
  });
  return out;
}

/** Per 512-byte sector: its last flushed fill byte, and the fills written since. */
type Sector = { flushed: number; since: number[] };

function run(
  child: string,
  img: string,
  seed: number,
  ms: number,
  stall: boolean,
  keyFile?: string,
): Promise<string> {
  return new Promise((resolve) => {
    // node itself, so that SIGKILL hits the process doing the writes.
    const args = [child, img, String(seed), ...(keyFile ? [keyFile] : [])];
    const p = spawn(process.execPath, args, {
      cwd: root,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    let started = false;
    p.stdout.on('data', () => {
      if (started) return;
      started = true;
      if (stall) p.stdout.pause(); // no reading until the kill: the child's pipe fills up
      setTimeout(() => {
        p.kill('SIGKILL');
        p.stdout.resume();
      }, ms);
    });
    p.on('close', () => resolve(out)); // after stdout's last bytes, unlike 'exit'
  });
}

describe.skipIf(!haveQemuImg)('qcow2 crash safety', () => {
  it.each([
    [false, false],
    [true, false],
    [false, true],
  ])(
    `SIGKILL at seeded random moments (encrypted: %s, snapshots: %s): no corruption, flushed data intact`,
    async (encrypted, snapshots) => {
      // With snapshots each kill also reads snapshots back: 30 kills unless asked for more.
      const KILLS = snapshots && !KILLS_ENV && !LONG ? 30 : kills();
      const when = xorshift(SEED * 7 + (encrypted ? 1 : 0) + (snapshots ? 2 : 0));
      const dir = mkdtempSync(join(tmpdir(), 'wasmvisor-crash-'));
      try {
        const child = await bundleChild(dir);
        const img = join(dir, 'crash.qcow2');
        const keyFile = encrypted ? join(dir, 'key') : undefined;
        if (keyFile) writeFileSync(keyFile, 'crash-key');
        const image = qemuImageArgs(img, keyFile);
        await createQcow2(img, {
          size: SIZE,
          ...(keyFile ? { encrypt: { passphrase: readFileSync(keyFile), iterTimeMs: 5 } } : {}),
        });
        const sectors = new Map<number, Sector>();
        const taken: { name: string; data: Buffer }[] = [];
        let leaks = 0;
        for (let k = 0; k < KILLS; k++) {
          const ms = k === 0 ? 1500 : 5 + when(396);
          const out = await run(child, img, 1000 + k * 7919 + SEED, ms, k === 0, keyFile);
          const lines = out.split('\n');
          lines.pop(); // may be cut short
          const pending = new Map<number, number>();
          for (const l of lines) {
            const [op, a, b, c] = l.split(' ');
            if (op === 'F') {
              for (const [sec, v] of pending) sectors.set(sec, { flushed: v, since: [] });
              pending.clear();
              continue;
            }
            const off = Number(a);
            const len = Number(b);
            for (let x = off; x < off + len; x += 512) {
              const v = op === 'W' ? (Number(c) + (x - off) / 512) & 0xff : 0;
              pending.set(x, v);
              const st = sectors.get(x) ?? { flushed: 0, since: [] };
              st.since.push(v);
              sectors.set(x, st);
            }
          }
          const chk = spawnSync('qemu-img', ['check', ...image], { encoding: 'utf-8' });
          expect([0, 3], `kill ${k}: ${chk.stdout}${chk.stderr}`).toContain(chk.status);
          if (chk.status === 3) leaks++;
          const raw = join(dir, 'out.raw');
          expect(spawnSync('qemu-img', ['convert', ...image, '-O', 'raw', raw]).status).toBe(0);
          const data = readFileSync(raw);
          for (const [sec, st] of sectors) {
            // The last byte of a sector is its fill value (the first sector of a write starts
            // with the sequence number).
            const got = data[sec + 511];
            const ok = [st.flushed, ...st.since];
            if (!ok.includes(got)) {
              expect.fail(`kill ${k}: sector ${sec} holds ${got}, expected one of ${ok.join(',')}`);
            }
            sectors.set(sec, { flushed: got, since: [] });
          }
          // Snapshots taken before survive the kills that copied their clusters away (the
          // latest two after each kill, all of them after the last).
          for (const t of k === KILLS - 1 ? taken : taken.slice(-2)) {
            const out = join(dir, 'snap.raw');
            const l = ['convert', '-l', `snapshot.name=${t.name}`, '-O', 'raw', img, out];
            expect(spawnSync('qemu-img', l).status).toBe(0);
            expect(readFileSync(out).equals(t.data), `kill ${k}: snapshot ${t.name}`).toBe(true);
          }
          if (snapshots && k % 3 === 0) {
            const name = `k${k}`;
            const q = (await openImage(img, 'qcow2')) as Qcow2Image;
            await q.withMetadata((m) => createSnapshot(m, name));
            await q.close();
            taken.push({ name, data });
          }
        }
        const what = `${encrypted ? 'encrypted ' : ''}qcow2${snapshots ? ' with snapshots' : ''}`;
        console.log(
          `${what} crash test: ${KILLS} kills (seed ${SEED}), ${leaks} with leaked clusters, ` +
            `0 corrupt, every flushed write intact`,
        );
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
    900_000,
  );
});
