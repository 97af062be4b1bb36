/**
 * Seeded garbage: thousands of mutated valid 9P messages (bytes flipped, cut, extended, size
 * fields and types changed, tiny reply buffers). The server must never throw, every reply must
 * be a well-framed message within `maxReply`, nothing outside the share may change, and a
 * valid request must still be answered afterwards.
 */
import { chmodSync, lstatSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { xorshift } from '../../seeded-random.js';
import {
  Guest,
  message,
  NOFID,
  setup,
  snapshot,
  str,
  u16,
  u32,
  u64,
  u8,
  type Fixture,
} from './guest.js';

let f: Fixture;
beforeEach(() => {
  f = setup();
  mkdirSync(join(f.root, 'dir'));
  writeFileSync(join(f.root, 'dir/file'), 'some file content');
});
afterEach(() => {
  makeRemovable(f.root); // the fuzz may have chmod-ed directories to 000
  f.cleanup();
});

function makeRemovable(dir: string): void {
  chmodSync(dir, 0o700);
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (lstatSync(p).isDirectory()) makeRemovable(p);
  }
}

/** Valid requests over fids 0..5 (0 root, 1 dir, 2 file, 3 open dir, 4 open file). */
function corpus(): Buffer[] {
  const fid = (n: number) => u32(n);
  return [
    message(104, 1, fid(7), u32(NOFID), str('u'), str(''), u32(0)),
    message(110, 1, fid(0), fid(8), u16(2), str('dir'), str('file')),
    message(110, 1, fid(1), fid(9), u16(1), str('..')),
    message(12, 1, fid(2), u32(2)),
    message(14, 1, fid(1), str('new'), u32(0o102), u32(0o644), u32(0)),
    message(116, 1, fid(4), u64(0), u32(4096)),
    message(118, 1, fid(4), u64(3), u32(5), Buffer.from('hello')),
    message(120, 1, fid(9)),
    message(122, 1, fid(8)),
    message(8, 1, fid(0)),
    message(16, 1, fid(1), str('ln'), str('/etc/passwd'), u32(0)),
    message(18, 1, fid(1), str('node'), u32(0o100644), u32(0), u32(0), u32(0)),
    message(20, 1, fid(2), fid(1), str('renamed')),
    message(22, 1, fid(2)),
    message(24, 1, fid(2), u64(0x7ff)),
    message(
      26,
      1,
      fid(2),
      u32(0x1ff),
      u32(0o644),
      u32(0),
      u32(0),
      u64(3),
      u64(1),
      u64(2),
      u64(3),
      u64(4),
    ),
    message(30, 1, fid(2), fid(10), str('user.x')),
    message(40, 1, fid(3), u64(0), u32(512)),
    message(50, 1, fid(4), u32(1)),
    message(52, 1, fid(4), u8(1), u32(0), u64(0), u64(1), u32(1), str('c')),
    message(54, 1, fid(4), u8(1), u64(0), u64(1), u32(1), str('c')),
    message(70, 1, fid(1), fid(2), str('hard')),
    message(72, 1, fid(1), str('sub'), u32(0o755), u32(0)),
    message(74, 1, fid(1), str('file'), fid(0), str('moved')),
    message(76, 1, fid(1), str('sub'), u32(0x200)),
    message(108, 1, u16(1)),
  ];
}

/** (Re)builds the fids the corpus uses. Errors are fine: the fuzz may have moved things. */
function prepare(g: Guest): void {
  const send = (m: Buffer) => g.raw(m);
  send(message(100, 0xffff, u32(65536), str('9P2000.L')));
  send(message(104, 1, u32(0), u32(NOFID), str('u'), str(''), u32(0)));
  send(message(110, 1, u32(0), u32(1), u16(1), str('dir')));
  send(message(110, 1, u32(0), u32(2), u16(2), str('dir'), str('file')));
  send(message(110, 1, u32(0), u32(3), u16(0)));
  send(message(12, 1, u32(3), u32(0)));
  send(message(110, 1, u32(0), u32(4), u16(2), str('dir'), str('file')));
  send(message(12, 1, u32(4), u32(2)));
}

function mutate(m: Buffer, rnd: (n: number) => number): Buffer {
  let b = Buffer.from(m);
  const kind = rnd(6);
  if (kind === 0) {
    for (let i = 0, n = 1 + rnd(4); i < n; i++) b[rnd(b.length)] = rnd(256);
  } else if (kind === 1) {
    b = b.subarray(0, rnd(b.length + 1));
  } else if (kind === 2) {
    const extra = Buffer.from(Array.from({ length: rnd(40) }, () => rnd(256)));
    b = Buffer.concat([b, extra]);
  } else if (kind === 3) {
    b[4] = rnd(256); // type
  } else if (kind === 4) {
    const at = 7 + rnd(Math.max(1, b.length - 7));
    if (at + 4 <= b.length) b.writeUInt32LE([0, 1, 0xffff, 0xffffffff, rnd(1 << 30)][rnd(5)], at);
  } else {
    b = Buffer.from(Array.from({ length: rnd(64) }, () => rnd(256)));
  }
  // Usually keep the size field honest so the mutation reaches the handlers.
  if (b.length >= 4 && rnd(4) !== 0) b.writeUInt32LE(b.length, 0);
  return b;
}

it('survives thousands of mutated messages and still serves afterwards', () => {
  const outsideBefore = snapshot(f.outside);
  const rnd = xorshift(0x9b2000);
  const valid = corpus();
  const replySizes = [0, 7, 10, 11, 20, 64, 200, 8192, 1 << 20];
  let replies = 0;
  let successes = 0;
  for (let i = 0; i < 6000; i++) {
    if (i % 150 === 0) prepare(f.g);
    const req = mutate(valid[rnd(valid.length)], rnd);
    const maxReply = replySizes[rnd(replySizes.length)];
    let reply: Uint8Array = new Uint8Array(0);
    expect(() => (reply = f.server.handle(req, maxReply))).not.toThrow();
    expect(reply.length).toBeLessThanOrEqual(maxReply);
    if (reply.length > 0) {
      replies++;
      if (reply[4] !== 7) successes++;
      const r = Buffer.from(reply);
      expect(r.readUInt32LE(0)).toBe(r.length);
      expect(r.readUInt16LE(5)).toBe(req.readUInt16LE(5));
    }
  }
  expect(replies).toBeGreaterThan(3000);
  expect(successes).toBeGreaterThan(100); // mutations still reach the handlers
  expect(f.server.metrics.bad_requests).toBeGreaterThan(0);
  expect(snapshot(f.outside)).toBe(outsideBefore);

  const g = new Guest(f.server);
  expect(g.version(65536).version).toBe('9P2000.L');
  expect(g.attach(0).type).toBe(0x80);
  expect(g.statfs(0).type).toBe(0x01021997);
});

it('survives pure random bytes with honest and lying size fields', () => {
  const rnd = xorshift(12345);
  for (let i = 0; i < 3000; i++) {
    const b = Buffer.from(Array.from({ length: rnd(80) }, () => rnd(256)));
    if (b.length >= 4 && rnd(2)) b.writeUInt32LE(b.length, 0);
    const maxReply = rnd(300);
    let reply: Uint8Array = new Uint8Array(0);
    expect(() => (reply = f.server.handle(b, maxReply))).not.toThrow();
    expect(reply.length).toBeLessThanOrEqual(maxReply);
  }
  expect(new Guest(f.server).version(8192).msize).toBe(8192);
});
