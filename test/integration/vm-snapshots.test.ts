/**
 * VM snapshots through the CLI's monitor, as a user takes them: the bundled kernel with its root
 * on a qcow2 (an ext4 image made by mke2fs, converted by qemu-img) writes a file and sets a shell
 * variable; `savevm A` takes the whole VM and the guest runs on (it answers); the file and the
 * variable change; `loadvm A` brings both back in the same terminal session and the VM keeps
 * running; `info snapshots` lists A with its disk snapshot; `delvm A` removes it, and qemu-img
 * agrees (no snapshot A, image clean). A writable raw disk refuses savevm with one line and the
 * guest runs on.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SerialSession } from './serial-session.js';
import { env, images, makeRootImage, missingTools, tool } from './root-disk.js';

const root = join(import.meta.dirname, '..', '..');
const cli = join(root, 'bin', 'wasmvisor.mjs');
const PROMPT = /# /;
const tools = missingTools(['mke2fs', 'cpio', 'qemu-img']);

describe.skipIf(tools.length > 0)(`savevm / loadvm / delvm (needs ${tools.join(', ')})`, () => {
  let dir: string;
  let qcow: string;
  let dataDir: string;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'wasmvisor-vmsnap-'));
    const raw = makeRootImage(dir);
    qcow = join(dir, 'root.qcow2');
    execFileSync('qemu-img', ['convert', '-O', 'qcow2', raw, qcow]);
    dataDir = join(dir, 'data');
  });

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const boot = (disks: string[], log: string): SerialSession =>
    SerialSession.spawn(
      process.execPath,
      [
        cli,
        'run',
        '--kernel',
        join(images, 'Image.gz'),
        ...disks.flatMap((d) => ['--disk', d]),
        '--append',
        'console=ttyS0 root=/dev/vda rw',
      ],
      {
        logFile: join(root, 'test-artifacts', log),
        env: { ...env, WASMVISOR_DATA_DIR: dataDir },
      },
    );

  /** Runs one monitor command (Ctrl-A C, the line, back to the console). */
  async function monitor(s: SerialSession, line: string, answer: RegExp, ms = 60_000) {
    s.send('\x01c');
    await s.expect('(wasmvisor) ', 5_000);
    s.sendLine(line);
    const r = await s.expect(answer, ms);
    await s.expect('(wasmvisor) ', 5_000);
    s.send('\x01c');
    return r;
  }

  it('takes A while running, goes back to it after changes, lists and deletes it', async () => {
    const s = boot([`${qcow},format=qcow2`], 'vm-snapshots.log');
    try {
      await s.expect(PROMPT, 90_000);
      s.sendLine('echo first > /root/f.txt; sync; V=one; echo set-$V');
      await s.expect(/^set-one\r?$/m, 10_000);
      await monitor(
        s,
        'savevm A',
        /^snapshot "A" taken in [\d.]+ s \(VM state [\d.]+ MiB; disks: .*root\.qcow2 \(id 1\)\)\r?$/m,
      );
      // The guest runs on after the take: it answers, and changes its file and variable.
      s.sendLine('echo alive-$V; echo second > /root/f.txt; sync; V=two; cat /root/f.txt');
      await s.expect(/^alive-one\r?$/m, 10_000);
      await s.expect(/^second\r?$/m, 10_000);
      await monitor(s, 'loadvm A', /^reverted to snapshot "A"; the VM runs on from it\r?$/m);
      // The same terminal session: the shell of the snapshot, its file on the disk.
      s.sendLine('echo v=$V; cat /root/f.txt');
      await s.expect(/^v=one\r?$/m, 20_000);
      await s.expect(/^first\r?$/m, 10_000);
      // And the VM keeps running from there: a write and a read after the revert.
      s.sendLine('echo third > /root/g.txt; sync; cat /root/g.txt');
      await s.expect(/^third\r?$/m, 10_000);
      const list = await monitor(
        s,
        'info snapshots',
        /^A\s+[\d.]+ MiB\s+\S+ \S+\s+\S+\s+(.*)\r?$/m,
      );
      expect(list.match[1]).toMatch(/root\.qcow2 \(id 1\)$/);
      expect(readdirSync(join(dataDir, 'snapshots', 'bundled'))).toEqual(['A.vm']);
      // The disk snapshot is in the image, as qemu-img sees it (-U: the VM holds the lock).
      expect(tool('qemu-img', ['snapshot', '-U', '-l', qcow]).out).toMatch(/^1\s+A\s/m);
      await monitor(s, 'delvm A', /^snapshot "A" deleted \(from .*root\.qcow2\)\r?$/m);
      await monitor(s, 'info snapshots', /^There is no snapshot available\.\r?$/m);
      expect(existsSync(join(dataDir, 'snapshots', 'bundled', 'A.vm'))).toBe(false);
      s.sendLine('sync; poweroff');
      expect((await s.waitForExit(30_000)).code).toBe(0);
    } finally {
      await s.close();
    }
    const list = tool('qemu-img', ['snapshot', '-l', qcow]);
    expect(list.status).toBe(0);
    expect(list.out).not.toMatch(/\sA\s/);
    const check = tool('qemu-img', ['check', qcow]);
    expect(check.status, check.out).toBe(0);
  }, 240_000);

  it('a writable raw disk refuses savevm with one line naming it; the guest runs on', async () => {
    const raw = join(dir, 'scratch.img');
    writeFileSync(raw, new Uint8Array(1 << 20));
    const s = boot([`${qcow},format=qcow2`, raw], 'vm-snapshots-raw.log');
    try {
      await s.expect(PROMPT, 90_000);
      await monitor(
        s,
        'savevm B',
        new RegExp(
          `^cannot take a snapshot: disk ${raw} is writable but a raw image cannot hold snapshots`,
          'm',
        ),
      );
      s.sendLine('echo still-$((6*7))');
      await s.expect(/^still-42\r?$/m, 10_000);
      s.sendLine('sync; poweroff');
      expect((await s.waitForExit(30_000)).code).toBe(0);
    } finally {
      await s.close();
    }
    expect(tool('qemu-img', ['snapshot', '-l', qcow]).out).not.toMatch(/\sB\s/);
    expect(existsSync(join(dataDir, 'snapshots', 'bundled', 'B.vm'))).toBe(false);
  }, 180_000);
});
