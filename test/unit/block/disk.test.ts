import { afterAll, beforeAll, describe, it, expect } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BlockError, openDisk } from '../../../devices/block/index.js';
import { LatencyHistogram } from '../../../devices/block/latency-histogram.js';
import { parseDiskSpec } from '../../../main/vm/config.js';
import { diskConfig } from './disk-config.js';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'wasmvisor-disk-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('openDisk', () => {
  it('builds raw file + scheduler from a --disk spec and reports both in stats', async () => {
    const p = join(dir, 'a.img');
    writeFileSync(p, Buffer.alloc(1 << 20));
    const disk = await openDisk(parseDiskSpec(`${p},cache=writethrough,sched=deadline`), {
      inFlight: 2,
    });
    expect(disk.size).toBe(1 << 20);
    await disk.write(4096, new Uint8Array(4096).fill(3));
    await disk.flush();
    const st = disk.stats();
    expect(st).toMatchObject({
      path: p,
      sizeBytes: 1 << 20,
      readOnly: false,
      cache: 'writethrough',
      policy: 'deadline',
      inFlightLimit: 2,
      bytesWritten: 4096,
      syncs: 2,
    });
    expect(typeof st.sparse).toBe('boolean');
    disk.setPolicy('scan');
    disk.setCacheMode('unsafe');
    expect(disk.stats()).toMatchObject({ policy: 'scan', cache: 'unsafe' });
    await disk.close();
    expect(readFileSync(p)[4096]).toBe(3);
  });

  it('opens read-only disks read-only', async () => {
    const p = join(dir, 'ro.img');
    writeFileSync(p, Buffer.alloc(4096));
    const disk = await openDisk(diskConfig(p, { readOnly: true }));
    expect(disk.readOnly).toBe(true);
    await expect(disk.write(0, new Uint8Array(512))).rejects.toMatchObject({ kind: 'read-only' });
    expect(disk.stats().errors).toBe(1);
    await disk.close();
  });

  it('names the file on errors, and refuses formats it does not know', async () => {
    const p = join(dir, 'missing.img');
    await expect(openDisk(diskConfig(p))).rejects.toThrow(`disk image ${p}: no such file`);
    const q = diskConfig(p, { format: 'qcow2' as 'raw' });
    await expect(openDisk(q)).rejects.toBeInstanceOf(BlockError);
  });
});

describe('latency histogram', () => {
  it('gives percentiles within a bucket (12.5%) in constant memory', () => {
    const h = new LatencyHistogram();
    for (let i = 1; i <= 10_000; i++) h.record(i);
    const s = h.summary();
    expect(s.count).toBe(10_000);
    expect(Math.abs(s.p50 - 5000) / 5000).toBeLessThan(0.125);
    expect(Math.abs(s.p99 - 9900) / 9900).toBeLessThan(0.125);
    expect(s.max).toBe(10_000);
    h.record(-5);
    h.record(1e15);
    expect(h.summary().count).toBe(10_002);
    h.reset();
    expect(h.summary()).toEqual({ count: 0, p50: 0, p95: 0, p99: 0, max: 0 });
  });

  it('is exact for small values', () => {
    const h = new LatencyHistogram();
    [1, 2, 3, 4, 5].forEach((v) => h.record(v));
    expect(h.percentile(0.5)).toBe(3);
  });
});
