/**
 * New blank images (the UI's "New image…" through HostApi.createDiskImage): what the VM will
 * open, judged by qemu-img when installed; never written over an existing file; refusals name
 * the file and leave nothing behind.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createBlankImage } from '../../../devices/block/create-image.js';
import { imageInfo } from '../../../devices/block/qcow2/index.js';
import { HostApi, HostError } from '../../../main/host/host-api.js';
import { RpcSession } from '../../../main/host/rpc.js';

const dir = mkdtempSync(join(tmpdir(), 'wasmvisor-newimg-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const hasQemuImg = spawnSync('qemu-img', ['--version']).status === 0;

describe('new blank disk images', () => {
  it('makes a sparse raw file and a qcow2 of the asked size', async () => {
    const raw = join(dir, 'a.img');
    await createBlankImage(raw, 'raw', 64 << 20);
    expect(statSync(raw).size).toBe(64 << 20);
    expect(statSync(raw).blocks * 512).toBeLessThan(1 << 20); // sparse
    const qcow = join(dir, 'a.qcow2');
    await createBlankImage(qcow, 'qcow2', 8 * 2 ** 30);
    expect((await imageInfo(qcow, 'qcow2')).virtualSize).toBe(8 * 2 ** 30);
    expect(statSync(qcow).size).toBeLessThan(1 << 20);
    if (hasQemuImg) {
      const r = spawnSync('qemu-img', ['check', '-f', 'qcow2', qcow], { encoding: 'utf8' });
      expect(r.status, r.stdout + r.stderr).toBe(0);
    }
  });

  it('never writes over a file, and refuses bad paths and sizes naming the file', async () => {
    const mine = join(dir, 'precious.img');
    writeFileSync(mine, 'user data');
    await expect(createBlankImage(mine, 'qcow2', 1 << 20)).rejects.toThrow(
      /cannot create .*precious\.img: the file exists/,
    );
    expect(readFileSync(mine, 'utf8')).toBe('user data');
    await expect(createBlankImage('rel.img', 'raw', 1 << 20)).rejects.toThrow(/must be absolute/);
    await expect(createBlankImage(join(dir, 'no', 'x.img'), 'raw', 1 << 20)).rejects.toThrow(
      /no such directory/,
    );
    for (const size of [0, 1000, (1 << 20) + 1, 2 ** 50, NaN]) {
      await expect(createBlankImage(join(dir, `s${size}.img`), 'raw', size)).rejects.toThrow(
        /s.*\.img: /,
      );
    }
    expect(readdirSync(dir).filter((f) => f.startsWith('s'))).toEqual([]);
  });

  it('through the host API: a free name in the data folder, or the path given', async () => {
    const data = mkdtempSync(join(dir, 'data-'));
    const h = new HostApi({ dataDir: data });
    const a = await h.createDiskImage({ vm: 'web', format: 'qcow2', size: 1 << 30 });
    expect(a.path).toBe(join(data, 'images', 'web-disk-0.qcow2'));
    expect(a.message).toBe(`created ${a.path} (qcow2, 1 GiB)`);
    const b = await h.createDiskImage({ vm: 'web', format: 'qcow2', size: 1 << 30 });
    expect(b.path).toBe(join(data, 'images', 'web-disk-1.qcow2'));
    // A name that is not a VM name does not reach the file name.
    const c = await h.createDiskImage({ vm: '../x', format: 'raw', size: 3 << 20 });
    expect(c.path).toBe(join(data, 'images', 'new-disk-0.img'));
    expect(c.message).toMatch(/\(raw, 3 MiB\)$/);
    await expect(h.createDiskImage({ path: a.path, format: 'raw', size: 1 << 20 })).rejects.toThrow(
      HostError,
    );
    await expect(
      h.createDiskImage({ path: 'x.img', format: 'raw', size: 1 << 20 }),
    ).rejects.toThrow(/must be absolute/);
    // Through the RPC: parameters checked before anything is made.
    const rpc = new RpcSession(h, () => {});
    const answers: unknown[] = [];
    for (const params of [
      { format: 'luks', size: 1 << 20 },
      { format: 'raw', size: '1G' },
      { format: 'raw', size: 1.5 },
      { format: 'raw', size: 1 << 20, path: '/tmp/a\0b' },
      { format: 'raw', size: 1 << 20, vm: 7 },
      { format: 'raw', size: 1 << 20, path: join(data, 'rpc.img') },
    ]) {
      answers.push(await rpc.handle({ id: 1, method: 'createDiskImage', params }));
    }
    expect(answers.map((a) => (a as { error?: string }).error)).toEqual([
      '"format" must be raw or qcow2',
      '"size" must be a whole number of bytes',
      '"size" must be a whole number of bytes',
      '"path" must be a path of 1 to 4096 characters',
      '"vm" must be a name',
      undefined,
    ]);
    expect(statSync(join(data, 'rpc.img')).size).toBe(1 << 20);
    rpc.close();
    await h.shutdown();
  });
});
