/**
 * Malformed and oversized traffic: truncated messages, lying size fields, unknown types, walks
 * over 16 names, the fid and open-file bounds, and replies cut to msize and to the guest's
 * buffer (`maxReply`). The server answers Rlerror (or nothing) and never throws.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { NinePServer } from '../../../devices/9p/server.js';
import { errnoOf, Guest, message, O, setup, str, u16, u32, u64, type Fixture } from './guest.js';

let f: Fixture;
beforeEach(() => {
  f = setup({}, 8192);
});
afterEach(() => f.cleanup());

const EPROTO = 71;

/** The Rlerror ecode of a raw reply carrying `tag`, or -1 if it is anything else. */
function rlerror(reply: Buffer, tag: number): number {
  if (reply.length !== 11 || reply[4] !== 7 || reply.readUInt16LE(5) !== tag) return -1;
  return reply.readUInt32LE(7);
}

describe('malformed messages', () => {
  it('a message shorter than the header gets no reply', () => {
    for (let n = 0; n < 7; n++) expect(f.g.raw(Buffer.alloc(n, 0xff)).length).toBe(0);
    expect(f.server.metrics.bad_requests).toBe(7);
  });

  it('a truncated body is EPROTO with the request tag', () => {
    const full = message(24, 77, u32(0), u64(0)); // Tgetattr
    for (let cut = 7; cut < full.length; cut++) {
      const part = Buffer.from(full.subarray(0, cut));
      part.writeUInt32LE(cut, 0); // size consistent, body short
      expect(rlerror(f.g.raw(part), 77)).toBe(EPROTO);
    }
  });

  it('a size field that disagrees with the bytes is EPROTO', () => {
    const m = message(24, 5, u32(0), u64(0));
    for (const lie of [0, 7, m.length - 1, m.length + 1, 0xffffffff]) {
      const bad = Buffer.from(m);
      bad.writeUInt32LE(lie, 0);
      expect(rlerror(f.g.raw(bad), 5)).toBe(EPROTO);
    }
    expect(f.server.metrics.bad_requests).toBe(5);
  });

  it('a string length running past the message is EPROTO', () => {
    const m = message(72, 9, u32(0), u16(500), Buffer.from('short'), u32(0o755), u32(0));
    expect(rlerror(f.g.raw(m), 9)).toBe(EPROTO);
  });

  it('a Twrite count larger than its data is EPROTO, and writes nothing', () => {
    f.g.walk(0, 1);
    f.g.lcreate(1, 'f');
    const m = message(118, 3, u32(1), u64(0), u32(1000), Buffer.from('abc'));
    expect(rlerror(f.g.raw(m), 3)).toBe(EPROTO);
    expect(f.server.metrics.bytes_written).toBe(0);
  });

  it('a message larger than msize is EPROTO', () => {
    f.g.walk(0, 1);
    f.g.lcreate(1, 'f');
    const data = Buffer.alloc(8192);
    expect(rlerror(f.g.raw(message(118, 4, u32(1), u64(0), u32(data.length), data)), 4)).toBe(
      EPROTO,
    );
  });

  it('unknown message types are EOPNOTSUPP', () => {
    for (const type of [0, 7, 99, 101, 126, 255]) {
      expect(rlerror(f.g.raw(message(type, 1)), 1)).toBe(95);
    }
  });

  it('a walk of 17 names is refused; 16 are fine', () => {
    const names = Array.from({ length: 17 }, () => '.');
    expect(errnoOf(() => f.g.walk(0, 1, ...names))).toBe(22);
    expect(f.g.walk(0, 1, ...names.slice(1))).toHaveLength(16);
  });

  it('an msize below the minimum is refused', () => {
    expect(errnoOf(() => new Guest(f.server).version(16))).toBe(22);
  });
});

describe('bounds', () => {
  it('refuses fids beyond maxFids with ENFILE', () => {
    const s = setup({ maxFids: 4 });
    try {
      for (let i = 1; i < 4; i++) s.g.walk(0, i);
      expect(errnoOf(() => s.g.walk(0, 4))).toBe(23);
      expect(s.server.fidCount).toBe(4);
      s.g.clunk(3);
      s.g.walk(0, 4);
    } finally {
      s.cleanup();
    }
  });

  it('refuses opens beyond maxOpenFiles with EMFILE, and reset() frees them', () => {
    const s = setup({ maxOpenFiles: 3 });
    try {
      writeFileSync(join(s.root, 'f'), 'x');
      for (let i = 1; i <= 4; i++) s.g.walk(0, i, 'f');
      for (let i = 1; i <= 3; i++) s.g.lopen(i, O.RDONLY);
      expect(errnoOf(() => s.g.lopen(4, O.RDONLY))).toBe(24);
      s.g.walk(0, 5);
      expect(errnoOf(() => s.g.lopen(5, O.RDONLY))).toBe(24); // directories count too
      expect(errnoOf(() => s.g.lcreate(5, 'new'))).toBe(24);
      s.g.clunk(1);
      s.g.lopen(4, O.RDONLY);
      s.server.reset();
      s.g.version(8192);
      s.g.attach(0);
      for (let i = 1; i <= 3; i++) {
        s.g.walk(0, i, 'f');
        s.g.lopen(i, O.RDONLY);
      }
    } finally {
      s.cleanup();
    }
  });

  it('rejects bad bound options', () => {
    expect(() => new NinePServer({ root: f.root, maxFids: 0 })).toThrow(/maxFids/);
    expect(() => new NinePServer({ root: f.root, maxOpenFiles: 1.5 })).toThrow(/maxOpenFiles/);
  });
});

describe('replies fit msize and maxReply', () => {
  beforeEach(() => {
    writeFileSync(join(f.root, 'big'), Buffer.alloc(100_000, 0x61));
    f.g.walk(0, 1, 'big');
    f.g.lopen(1, O.RDONLY);
  });

  it('Tread is cut to msize - 11', () => {
    expect(f.g.read(1, 0, 50_000).length).toBe(8192 - 11);
  });

  it('Tread is cut to maxReply - 11', () => {
    f.g.maxReply = 1000;
    const data = f.g.read(1, 0, 50_000);
    expect(data.length).toBe(989);
    expect(data.every((b) => b === 0x61)).toBe(true);
  });

  it('Treaddir is cut to maxReply', () => {
    for (let i = 0; i < 50; i++) writeFileSync(join(f.root, `file-${i}`), '');
    f.g.walk(0, 2);
    f.g.lopen(2, O.RDONLY);
    f.g.maxReply = 200;
    const page = f.g.readdir(2, 0, 8000);
    expect(page.length).toBeGreaterThan(0);
    const reply = f.g.raw(message(40, 1, u32(2), u64(0), u32(8000)), 200);
    expect(reply.length).toBeLessThanOrEqual(200);
    f.g.maxReply = 1 << 20;
    expect(f.g.readdirAll(2, 150)).toHaveLength(53);
  });

  it('a reply that cannot fit is an Rlerror, and nothing when not even that fits', () => {
    const walk = message(110, 6, u32(0), u32(9), u16(16), ...Array(16).fill(str('.')));
    expect(rlerror(f.g.raw(walk, 100), 6)).toBe(90); // EMSGSIZE: Rwalk needs 9 + 16*13
    expect(f.server.fidCount).toBe(2); // refused before newfid 9 was made
    const mkdir = message(72, 7, u32(0), str('d'), u32(0o755), u32(0));
    expect(rlerror(f.g.raw(mkdir, 19), 7)).toBe(90); // Rmkdir needs 20: refused before mkdir
    expect(existsSync(join(f.root, 'd'))).toBe(false);
    expect(f.g.raw(message(24, 7, u32(0), u64(0)), 10).length).toBe(0);
    expect(f.g.raw(message(116, 8, u32(1), u64(0), u32(100)), 11).length).toBe(11); // 0 bytes read
  });

  it('a read at an offset past 2^53 is EFBIG', () => {
    expect(errnoOf(() => f.g.call(116, u32(1), u64(1n << 60n), u32(10)))).toBe(27);
  });
});
