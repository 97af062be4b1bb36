/**
 * cor=on (copy-on-read), judged by qemu-img: what the guest reads from the backing chain ends up
 * in the overlay (`qemu-img map` shows it there), the overlay still reads as the base
 * (`qemu-img compare`), `qemu-img check` is clean, and a guest write racing a copy wins.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDisk } from '../../../devices/block/index.js';
import { createQcow2, openImage } from '../../../devices/block/qcow2/index.js';
import { parseDiskSpec, ConfigError, validateVmConfig } from '../../../main/vm/config.js';
import { diskConfig } from './disk-config.js';
import { haveQemuImg, qemuImg } from './img-run.js';

const MiB = 1 << 20;
let dir: string;

interface MapEntry {
  start: number;
  length: number;
  depth: number;
  data: boolean;
}

/** Bytes of `[from, to)` that qemu-img map says the top image itself holds. */
function inOverlay(file: string, from: number, to: number, opts: string[] = [file]): number {
  const r = qemuImg('map', '--output', 'json', ...opts);
  expect(r.status, r.out).toBe(0);
  let n = 0;
  for (const e of JSON.parse(r.out) as MapEntry[]) {
    if (e.depth !== 0) continue;
    n += Math.max(0, Math.min(to, e.start + e.length) - Math.max(from, e.start));
  }
  return n;
}

function base(name: string, size: number): string {
  const f = join(dir, name);
  const b = new Uint8Array(size);
  for (let i = 0; i < size; i += 512) b.fill(((i >> 9) * 37 + 1) & 0xff, i, i + 512);
  b.fill(0, 6 * MiB, 7 * MiB); // a zero run: copied as zero clusters, not data
  writeFileSync(f, b);
  return f;
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'wasmvisor-cor-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('cor=on in the disk definition', () => {
  it('needs a qcow2 overlay to copy into', () => {
    expect(parseDiskSpec('o.qcow2,format=qcow2,cor=on').cor).toBe(true);
    expect(parseDiskSpec('b.img,snapshot=on,cor=on').cor).toBe(true);
    expect(() => parseDiskSpec('b.img,cor=on')).toThrow(ConfigError);
    expect(() => parseDiskSpec('b.img,format=qcow2,cor=maybe')).toThrow(/on or off/);
    expect(() => parseDiskSpec('o.qcow2,format=qcow2,ro,cor=on')).toThrow(/not with ro/);
    const vm = (disk: Record<string, unknown>) =>
      validateVmConfig({ name: 'v', memMiB: 64, disks: [disk] });
    expect(vm({ path: 'o.qcow2', format: 'qcow2', cor: true }).disks[0]!.cor).toBe(true);
    expect(() => vm({ path: 'b.img', cor: true })).toThrow(/disks\[0\]: cor=on needs a qcow2/);
    expect(() => vm({ path: 'o.qcow2', format: 'qcow2', cor: 'yes' })).toThrow(/"cor" must be/);
  });
});

describe.skipIf(!haveQemuImg)('copy-on-read, judged by qemu-img', () => {
  it('fills the overlay with what the guest reads; the overlay still equals the base', async () => {
    const raw = base('base.raw', 8 * MiB);
    const top = join(dir, 'top.qcow2');
    await createQcow2(top, { backingFile: raw, backingFormat: 'raw' });
    const disk = await openDisk(diskConfig(top, { format: 'qcow2', cor: true }));
    const b = new Uint8Array(MiB);
    await disk.read(0, b);
    await disk.read(6 * MiB, new Uint8Array(MiB));
    await disk.read(3 * MiB + 4096, new Uint8Array(1024)); // one cluster, read in part
    const s = disk.stats();
    await disk.close();
    expect(s.corClusters).toBe(16 + 16 + 1);
    expect(inOverlay(top, 0, MiB)).toBe(MiB);
    expect(inOverlay(top, 3 * MiB, 3 * MiB + 65536)).toBe(65536); // the whole cluster
    expect(inOverlay(top, 4 * MiB, 6 * MiB)).toBe(0); // never read: still in the base
    expect(inOverlay(top, 6 * MiB, 7 * MiB)).toBe(MiB); // zero clusters, no data
    const cmp = qemuImg('compare', top, raw);
    expect(cmp.status, cmp.out).toBe(0);
    const chk = qemuImg('check', top);
    expect(chk.status, chk.out).toBe(0);
    // What the guest read was the base's bytes.
    expect(b[512]).toBe(38);
  });

  it('copies into an encrypted overlay encrypted: read back through the cipher', async () => {
    const raw = base('enc-base.raw', 2 * MiB);
    const top = join(dir, 'enc.qcow2');
    const key = new TextEncoder().encode('cor-secret');
    await createQcow2(top, {
      backingFile: raw,
      backingFormat: 'raw',
      encrypt: { passphrase: key, iterTimeMs: 10 },
    });
    const img = await openImage(top, 'qcow2', { key, copyOnRead: true });
    const first = new Uint8Array(2 * MiB);
    await img.read(0, first);
    await img.close();
    const again = await openImage(top, 'qcow2', { key, readOnly: true });
    const back = new Uint8Array(2 * MiB);
    await again.read(0, back);
    await again.close();
    expect(Buffer.compare(back, first)).toBe(0);
    expect(Buffer.compare(back, readFileSync(raw))).toBe(0);
    const secret = ['--object', 'secret,id=s0,data=cor-secret', '--image-opts'];
    const opts = [...secret, `driver=qcow2,file.filename=${top},encrypt.key-secret=s0`];
    expect(inOverlay(top, 0, 2 * MiB, opts)).toBe(2 * MiB);
  });

  it('a guest write racing the copy of the same cluster wins', async () => {
    const raw = base('race.raw', 4 * MiB);
    const top = join(dir, 'race.qcow2');
    await createQcow2(top, { backingFile: raw, backingFormat: 'raw' });
    const img = await openImage(top, 'qcow2', { copyOnRead: true });
    const mine = new Uint8Array(4096).fill(0xee);
    for (let k = 0; k < 8; k++) {
      const at = k * 65536 + 8192;
      // Read first and write while the copy is under way, and the other way round.
      const ops =
        k % 2 === 0
          ? [img.read(at - 8192, new Uint8Array(65536)), img.write(at, mine)]
          : [img.write(at, mine), img.read(at - 8192, new Uint8Array(65536))];
      await Promise.all(ops);
      const back = new Uint8Array(4096);
      await img.read(at, back);
      expect(back).toEqual(mine);
    }
    await img.close();
    const io = spawnSync('qemu-io', ['-r', '-c', 'read -P 0xee 8192 4096', top], {
      encoding: 'utf-8',
    });
    expect(io.stdout + io.stderr).not.toMatch(/verification failed/);
    expect(qemuImg('check', top).status).toBe(0);
  });
});
