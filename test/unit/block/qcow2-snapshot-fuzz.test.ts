/**
 * Hostile snapshot metadata, seeded: 10k mutated snapshot tables through the parser, and a few
 * hundred mutated images (snapshot table, snapshot L1 tables, the header's snapshot fields)
 * through list, check, apply, delete and a guest write. Each either works or fails with a
 * clear error naming what is wrong — never a TypeError/RangeError, never a hang.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  applySnapshot,
  checkQcow2,
  createQcow2,
  createSnapshot,
  deleteSnapshot,
  imageInfo,
  openImage,
  type Qcow2Image,
} from '../../../devices/block/qcow2/index.js';
import { parseHeader, Qcow2FormatError } from '../../../devices/block/qcow2/qcow2-header.js';
import { parseSnapshotTable } from '../../../devices/block/qcow2/snapshot-table.js';

let dir: string;
let template: Uint8Array;

/** mulberry32: a small seeded generator, so a failing case can be replayed. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

const u64 = (b: Uint8Array, at: number) =>
  Number(new DataView(b.buffer, b.byteOffset).getBigUint64(at));

/** An error a user can read: ours, naming the problem (not an engine error from a bad index). */
function expectClear(e: unknown): void {
  expect(e).toBeInstanceOf(Error);
  expect(e).not.toBeInstanceOf(TypeError);
  expect(e).not.toBeInstanceOf(RangeError);
  expect((e as Error).message.length).toBeGreaterThan(10);
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'wasmvisor-snapfuzz-'));
  const f = join(dir, 'template.qcow2');
  await createQcow2(f, { size: 4 << 20, clusterSize: 4096 });
  const img = (await openImage(f, 'qcow2')) as Qcow2Image;
  await img.write(0, new Uint8Array(256 * 1024).fill(0x31));
  await img.withMetadata((m) => createSnapshot(m, 'one'));
  await img.write(64 * 1024, new Uint8Array(64 * 1024).fill(0x32));
  await img.withMetadata((m) => createSnapshot(m, 'two'));
  await img.write(3 << 20, new Uint8Array(8192).fill(0x33));
  await img.close();
  template = new Uint8Array(readFileSync(f));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('hostile snapshot metadata (seeded)', () => {
  it('10k mutated snapshot tables: parsed or refused as a format error', () => {
    const h0 = parseHeader(template.subarray(0, 4096), template.length);
    const table = template.slice(h0.snapshotsOffset, h0.snapshotsOffset + 4096);
    const next = rng(7);
    let refused = 0;
    for (let k = 0; k < 10_000; k++) {
      const t = table.slice();
      const h = { ...h0, nbSnapshots: next() < 0.1 ? Math.floor(next() * 70000) : 2 };
      for (let n = 1 + Math.floor(next() * 6); n > 0; n--) {
        t[Math.floor(next() * 160)] = Math.floor(next() * 256);
      }
      try {
        const { entries } = parseSnapshotTable(t, h, template.length);
        for (const e of entries) {
          expect(e.l1Size * 8).toBeLessThanOrEqual(32 << 20);
          if (e.l1Size) expect(e.l1Offset + e.l1Size * 8).toBeLessThanOrEqual(template.length);
        }
      } catch (e) {
        expect(e).toBeInstanceOf(Qcow2FormatError);
        refused++;
      }
    }
    expect(refused).toBeGreaterThan(100); // the mutations do reach the checks
  });

  it('300 mutated images: list, check, apply, delete and a write fail clearly or work', async () => {
    const h = parseHeader(template.subarray(0, 4096), template.length);
    const { entries } = parseSnapshotTable(
      template.subarray(h.snapshotsOffset),
      h,
      template.length,
    );
    // Where to mutate: the snapshot table, each snapshot's L1 table and the L2 tables it names
    // (the first one), and the header's snapshot count and offset.
    const regions: [number, number][] = [
      [h.snapshotsOffset, 200],
      [56, 16],
      ...entries.map((e): [number, number] => [e.l1Offset, e.l1Size * 8]),
      ...entries.map((e): [number, number] => [u64(template, e.l1Offset) & ~0x1ff, 4096]),
    ];
    const next = rng(11);
    const f = join(dir, 'case.qcow2');
    let failures = 0;
    for (let k = 0; k < 300; k++) {
      const b = template.slice();
      for (let n = 1 + Math.floor(next() * 4); n > 0; n--) {
        const [at, len] = regions[Math.floor(next() * regions.length)]!;
        b[at + Math.floor(next() * len)] = Math.floor(next() * 256);
      }
      writeFileSync(f, b);
      const steps: (() => Promise<unknown>)[] = [
        () => imageInfo(f, 'qcow2'),
        () => checkQcow2(f),
        async () => {
          const img = (await openImage(f, 'qcow2')) as Qcow2Image;
          try {
            await img.withMetadata((m) => applySnapshot(m, 'one'));
            await img.write(0, new Uint8Array(4096).fill(0x44));
            await img.withMetadata((m) => deleteSnapshot(m, 'two'));
          } finally {
            await img.close().catch(() => {});
          }
        },
      ];
      for (const step of steps) {
        try {
          await step();
        } catch (e) {
          expectClear(e);
          failures++;
        }
      }
    }
    expect(failures).toBeGreaterThan(30);
  });
});
