import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDisk, type Disk } from '../../../devices/block/index.js';
import { lockImage } from '../../../devices/block/image-lock.js';
import { createQcow2 } from '../../../devices/block/qcow2/index.js';
import { loadHostNative } from '../../../devices/host-native.js';
import { img } from './img-run.js';
import { diskConfig } from './disk-config.js';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'wasmvisor-lock-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const rawImage = (name: string): string => {
  const p = join(dir, name);
  writeFileSync(p, Buffer.alloc(1 << 20));
  return p;
};

const haveOfd = typeof loadHostNative().native?.ofdLock === 'function';
const haveQemu = spawnSync('qemu-img', ['--version']).status === 0;

describe('image locks within one process', () => {
  it('a second read-write opening of an image fails, naming the file; closing frees it', async () => {
    const p = rawImage('rw.img');
    const a = await openDisk(diskConfig(p));
    await expect(openDisk(diskConfig(p))).rejects.toThrow(
      new RegExp(`${p}: failed to get "write" lock: is another process`),
    );
    // A reader keeps writers out too (it does not share "write"), as in QEMU.
    await expect(openDisk(diskConfig(p, { readOnly: true }))).rejects.toThrow(
      /failed to get shared "write" lock/,
    );
    await a.close();
    const b = await openDisk(diskConfig(p));
    await b.close();
  });

  it('a writer that becomes a backing file (releaseWriteLock) lets readers in, still not writers', async () => {
    for (const fmt of ['raw', 'qcow2'] as const) {
      const p = join(dir, `down.${fmt}`);
      if (fmt === 'raw') rawImage(`down.${fmt}`);
      else await createQcow2(p, { size: 1 << 20 });
      const w = await openDisk(diskConfig(p, { format: fmt }));
      await expect(openDisk(diskConfig(p, { format: fmt, readOnly: true }))).rejects.toThrow(
        /"write" lock/,
      );
      expect(w.releaseWriteLock()).toBe(true);
      const r = await openDisk(diskConfig(p, { format: fmt, readOnly: true }));
      await expect(openDisk(diskConfig(p, { format: fmt }))).rejects.toThrow(
        /failed to get "write" lock/,
      );
      await w.close();
      await expect(openDisk(diskConfig(p, { format: fmt }))).rejects.toThrow(/"write" lock/);
      await r.close();
      await (await openDisk(diskConfig(p, { format: fmt }))).close();
    }
  });

  it('read-only openings share; a writer waits until they are closed', async () => {
    const p = rawImage('ro.img');
    const r1 = await openDisk(diskConfig(p, { readOnly: true }));
    const r2 = await openDisk(diskConfig(p, { readOnly: true }));
    await expect(openDisk(diskConfig(p))).rejects.toThrow(/"write" lock/);
    await r1.close();
    await expect(openDisk(diskConfig(p))).rejects.toThrow(/"write" lock/);
    await r2.close();
    await (await openDisk(diskConfig(p))).close();
  });

  it('qcow2: one base backs many overlays (shared), but cannot be written while they run', async () => {
    const base = rawImage('base.img');
    const o1 = join(dir, 'o1.qcow2');
    const o2 = join(dir, 'o2.qcow2');
    await createQcow2(o1, { backingFile: base, backingFormat: 'raw' });
    await createQcow2(o2, { backingFile: base, backingFormat: 'raw' });
    const d1 = await openDisk(diskConfig(o1, { format: 'qcow2' }));
    const d2 = await openDisk(diskConfig(o2, { format: 'qcow2' }));
    await expect(openDisk(diskConfig(o1, { format: 'qcow2' }))).rejects.toThrow(
      new RegExp(`${o1}: failed to get "write" lock`),
    );
    await expect(openDisk(diskConfig(base))).rejects.toThrow(/"write" lock/);
    // snapshot=on opens the image read-only under its overlay: it shares with the others...
    const snap = await openDisk(diskConfig(base, { snapshot: true }));
    // ...but not with a writer: a running overlay is no base for another.
    await expect(openDisk(diskConfig(o1, { format: 'qcow2', snapshot: true }))).rejects.toThrow(
      /shared "write" lock/,
    );
    await Promise.all([d1.close(), d2.close(), snap.close()]);
    await (await openDisk(diskConfig(base))).close();
  });

  it('img commit writes the base under its overlay, but not while a VM runs on the overlay', async () => {
    const base = rawImage('cbase.img');
    const ov = join(dir, 'cov.qcow2');
    await createQcow2(ov, { backingFile: base, backingFormat: 'raw' });
    const d = await openDisk(diskConfig(ov, { format: 'qcow2' }));
    await d.write(0, new Uint8Array(4096).fill(9));
    const busy = await img('commit', ov);
    expect(busy.status).not.toBe(0);
    expect(busy.err).toMatch(/lock/);
    await d.close();
    const done = await img('commit', ov);
    expect(done.err).toBe('');
    expect(done.status).toBe(0);
    const b = await openDisk(diskConfig(base, { readOnly: true }));
    const got = new Uint8Array(4096);
    await b.read(0, got);
    await b.close();
    expect(got.every((x) => x === 9)).toBe(true);
  });

  it('without the addon the same rules hold within the process (and say their scope)', async () => {
    const p = rawImage('nonative.img');
    const fa = await open(p, 'r+');
    const fb = await open(p, 'r');
    try {
      const id = statSync(p);
      const la = lockImage(fa.fd, p, id, true, null);
      expect(la.scope).toBe('process');
      expect(la.reason).toBeTruthy();
      expect(() => lockImage(fb.fd, p, id, false, null)).toThrow(/shared "write" lock/);
      la.release();
      const lb = lockImage(fb.fd, p, id, false, null);
      const lc = lockImage(fa.fd, p, id, false, null);
      lb.release();
      lc.release();
    } finally {
      await fa.close();
      await fb.close();
    }
  });
});

describe.skipIf(!haveOfd || !haveQemu)('image locks against QEMU (fcntl OFD, the addon)', () => {
  it('qemu-img cannot open an image we write; -U (force-share) can', async () => {
    const p = join(dir, 'q.qcow2');
    await createQcow2(p, { size: 1 << 20 });
    const d: Disk = await openDisk(diskConfig(p, { format: 'qcow2' }));
    try {
      const info = spawnSync('qemu-img', ['info', p], { encoding: 'utf-8' });
      expect(info.status).not.toBe(0);
      expect(info.stderr).toMatch(/Failed to get shared "write" lock/);
      expect(spawnSync('qemu-img', ['info', '-U', p]).status).toBe(0);
    } finally {
      await d.close();
    }
    expect(spawnSync('qemu-img', ['info', p]).status).toBe(0);
  });

  it('once our writer keeps only a read lock, qemu-img reads the image but qemu-io cannot write it', async () => {
    const p = join(dir, 'down-q.qcow2');
    await createQcow2(p, { size: 1 << 20 });
    const d: Disk = await openDisk(diskConfig(p, { format: 'qcow2' }));
    try {
      expect(spawnSync('qemu-img', ['info', p]).status).not.toBe(0);
      expect(d.releaseWriteLock()).toBe(true);
      const info = spawnSync('qemu-img', ['info', p], { encoding: 'utf-8' });
      expect(info.status, info.stderr).toBe(0);
      const w = spawnSync('qemu-io', ['-f', 'qcow2', '-c', 'write 0 512', p], {
        encoding: 'utf-8',
      });
      expect(w.stdout + w.stderr).toMatch(/Failed to get "write" lock/);
    } finally {
      await d.close();
    }
  });

  it('we cannot open an image qemu-io is writing, and can once it is gone', async () => {
    const p = join(dir, 'qio.qcow2');
    await createQcow2(p, { size: 1 << 20 });
    const q = spawn('qemu-io', ['-f', 'qcow2', '-c', 'sleep 20000', p], { stdio: 'ignore' });
    const gone = new Promise((r) => q.on('exit', r));
    try {
      // Wait until qemu-io holds its locks (its "write" permission byte).
      let err: Error | undefined;
      for (let i = 0; i < 100 && !err; i++) {
        await new Promise((r) => setTimeout(r, 50));
        err = await openDisk(diskConfig(p, { format: 'qcow2', readOnly: true })).then(
          (d) => d.close().then(() => undefined),
          (e: Error) => e,
        );
      }
      expect(err?.message).toMatch(new RegExp(`${p}: failed to get shared "write" lock`));
      await expect(openDisk(diskConfig(p, { format: 'qcow2' }))).rejects.toThrow(/"write" lock/);
    } finally {
      q.kill('SIGKILL');
      await gone;
    }
    // Its locks died with it.
    await (await openDisk(diskConfig(p, { format: 'qcow2' }))).close();
  });
});
