/**
 * What encryption costs the block layer, without a guest in the way.
 *
 *   npm run build && node dist/bench/luks.js [--mib 64]
 *   (or without building: npx tsx bench/luks.ts …)
 *
 * 1. AES-256-XTS-plain64 throughput per request size: the two-pass AES-ECB form the layer uses
 *    against one OpenSSL XTS call per 512-byte sector (the straightforward way), MB/s and ratio.
 * 2. Sequential 1 MiB reads and writes through openDisk() of the same data on a qcow2, a qcow2
 *    with encrypt.format=luks and a raw LUKS image, each against a raw image (MB/s and ratio to
 *    raw), after the page cache holds the files: the cost is the cipher, not the disk.
 * 3. The time unlocking takes at QEMU's default iter-time (2000 ms benchmarked on this host).
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { openDisk } from '../devices/block/index.js';
import { createLuks } from '../devices/block/luks/create.js';
import { createLuksVolume } from '../devices/block/luks/keyslots.js';
import { XtsPlain64 } from '../devices/block/luks/xts-cipher.js';
import { createQcow2 } from '../devices/block/qcow2/index.js';
import type { DiskFormat } from '../main/vm/config.js';

const { values } = parseArgs({ options: { mib: { type: 'string', default: '64' } } });
const MIB = Number(values.mib);

function mbps(bytes: number, ms: number): number {
  return bytes / 1e6 / (ms / 1000);
}

function xtsFigures(): void {
  const key = randomBytes(64);
  const bulk = new XtsPlain64(key);
  const one = new XtsPlain64(key, false);
  console.log('AES-256-XTS-plain64 encrypt+decrypt (MB/s)');
  console.log('request      two-pass ECB   per-sector XTS   ratio');
  for (const size of [4096, 65536, 1 << 20]) {
    const data = randomBytes(size);
    const total = 32 << 20;
    const run = (x: XtsPlain64): number => {
      const t = performance.now();
      for (let done = 0, s = 0; done < total; done += size, s += size / 512) {
        x.decrypt(s, [x.encrypt(s, [data])]);
      }
      return mbps(2 * total, performance.now() - t);
    };
    run(bulk); // warm up
    const a = run(bulk);
    const b = run(one);
    console.log(
      `${String(size).padStart(8)} B ${a.toFixed(0).padStart(12)} ${b.toFixed(0).padStart(16)} ${(a / b).toFixed(2).padStart(7)}x`,
    );
  }
}

async function diskFigures(dir: string): Promise<void> {
  const size = MIB << 20;
  const keyFile = join(dir, 'key');
  writeFileSync(keyFile, 'bench');
  const passphrase = new TextEncoder().encode('bench');
  const images: [string, DiskFormat, string, () => Promise<void>][] = [
    [
      'raw',
      'raw',
      join(dir, 'd.raw'),
      async () => writeFileSync(join(dir, 'd.raw'), new Uint8Array(size)),
    ],
    ['qcow2', 'qcow2', join(dir, 'd.qcow2'), () => createQcow2(join(dir, 'd.qcow2'), { size })],
    [
      'qcow2 + LUKS',
      'qcow2',
      join(dir, 'e.qcow2'),
      () => createQcow2(join(dir, 'e.qcow2'), { size, encrypt: { passphrase, iterTimeMs: 5 } }),
    ],
    [
      'raw LUKS',
      'luks',
      join(dir, 'd.luks'),
      () => createLuks(join(dir, 'd.luks'), size, { passphrase, iterTimeMs: 5 }),
    ],
  ];
  const buf = new Uint8Array(new WebAssembly.Memory({ initial: 16 }).buffer); // 1 MiB, like guest RAM
  buf.set(randomBytes(buf.length));
  console.log(
    `\nsequential 1 MiB requests over ${MIB} MiB through openDisk (MB/s, page cache warm)`,
  );
  console.log('image            write   ratio    read   ratio');
  let raw: [number, number] | undefined;
  for (const [label, format, path, make] of images) {
    await make();
    const d = await openDisk({
      path,
      format,
      readOnly: false,
      cache: 'unsafe',
      sched: 'noop',
      ...(format === 'raw' && label === 'raw' ? {} : { keyFile }),
    });
    const pass = async (write: boolean): Promise<number> => {
      const t = performance.now();
      for (let off = 0; off < size; off += buf.length) {
        await (write ? d.write(off, buf) : d.read(off, buf));
      }
      return mbps(size, performance.now() - t);
    };
    await pass(true); // allocate, fill the page cache
    const w = await pass(true);
    const r = await pass(false);
    await d.close();
    raw ??= [w, r];
    console.log(
      `${label.padEnd(14)} ${w.toFixed(0).padStart(7)} ${(w / raw[0]).toFixed(2).padStart(6)}x ${r.toFixed(0).padStart(7)} ${(r / raw[1]).toFixed(2).padStart(6)}x`,
    );
  }
}

async function unlockFigure(): Promise<void> {
  const t = performance.now();
  const v = await createLuksVolume(new TextEncoder().encode('bench'));
  const made = performance.now() - t;
  console.log(
    `\nkey slot at the default iter-time: ${v.header.slots[0].iterations} PBKDF2-${v.header.hash} iterations, ` +
      `master key digest ${v.header.mkDigestIterations}; creating took ${(made / 1000).toFixed(1)} s`,
  );
}

const dir = mkdtempSync(join(tmpdir(), 'wasmvisor-luks-bench-'));
try {
  xtsFigures();
  await diskFigures(dir);
  await unlockFigure();
} finally {
  rmSync(dir, { recursive: true, force: true });
}
