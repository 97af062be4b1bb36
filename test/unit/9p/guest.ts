/**
 * A hand-rolled 9P2000.L guest for the server's tests: builds T-messages byte by byte (its own
 * encoder, independent of the server's wire.ts), parses replies, and throws `NineErr` on Rlerror.
 */
import {
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NinePServer, type NinePShareOptions } from '../../../devices/9p/server.js';

export const NOFID = 0xffffffff;

export const u8 = (v: number) => Buffer.from([v & 0xff]);
export const u16 = (v: number) => {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(v);
  return b;
};
export const u32 = (v: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0);
  return b;
};
export const u64 = (v: number | bigint) => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(v));
  return b;
};
export const str = (s: string | Buffer) => {
  const b = typeof s === 'string' ? Buffer.from(s, 'utf8') : s;
  return Buffer.concat([u16(b.length), b]);
};

export function message(type: number, tag: number, ...body: Buffer[]): Buffer {
  const b = Buffer.concat(body);
  return Buffer.concat([u32(7 + b.length), u8(type), u16(tag), b]);
}

export class NineErr extends Error {
  constructor(readonly errno: number) {
    super(`Rlerror ${errno}`);
  }
}

/** Sequential little-endian reader over a reply body. */
export class Parse {
  pos = 0;
  constructor(readonly b: Buffer) {}
  u8() {
    return this.b.readUInt8((this.pos += 1) - 1);
  }
  u16() {
    return this.b.readUInt16LE((this.pos += 2) - 2);
  }
  u32() {
    return this.b.readUInt32LE((this.pos += 4) - 4);
  }
  u64() {
    return this.b.readBigUInt64LE((this.pos += 8) - 8);
  }
  str() {
    const n = this.u16();
    return this.b.toString('utf8', this.pos, (this.pos += n));
  }
  qid(): Qid {
    return { type: this.u8(), version: this.u32(), path: this.u64() };
  }
  get done() {
    return this.pos === this.b.length;
  }
}

export interface Qid {
  type: number;
  version: number;
  path: bigint;
}

export interface Dirent {
  qid: Qid;
  offset: bigint;
  type: number;
  name: string;
}

export const QT = { dir: 0x80, symlink: 0x02, file: 0 };
/** Linux open flags. */
export const O = {
  RDONLY: 0,
  WRONLY: 1,
  RDWR: 2,
  CREAT: 0o100,
  EXCL: 0o200,
  TRUNC: 0o1000,
  APPEND: 0o2000,
  DIRECTORY: 0o200000,
};

export class Guest {
  private tag = 1;
  constructor(
    readonly server: NinePServer,
    public maxReply = 1 << 20,
  ) {}

  /** Sends raw bytes; returns the raw reply. */
  raw(req: Uint8Array, maxReply = this.maxReply): Buffer {
    const reply = this.server.handle(req, maxReply);
    return Buffer.from(reply.buffer, reply.byteOffset, reply.byteLength);
  }

  /** Sends a T-message; returns the reply body, or throws NineErr on Rlerror. */
  call(type: number, ...body: Buffer[]): Parse {
    const tag = this.tag++ & 0x7fff;
    const reply = this.raw(message(type, tag, ...body));
    if (reply.length < 7) throw new Error(`short reply (${reply.length} bytes)`);
    if (reply.readUInt32LE(0) !== reply.length) throw new Error('reply size field wrong');
    if (reply.readUInt16LE(5) !== tag) throw new Error('reply tag wrong');
    const rtype = reply[4];
    if (rtype === 7) throw new NineErr(reply.readUInt32LE(7));
    if (rtype !== type + 1) throw new Error(`reply type ${rtype} to ${type}`);
    return new Parse(reply.subarray(7));
  }

  version(msize = 65536, ver = '9P2000.L') {
    const p = this.call(100, u32(msize), str(ver));
    return { msize: p.u32(), version: p.str() };
  }
  attach(fid = 0): Qid {
    return this.call(104, u32(fid), u32(NOFID), str('user'), str(''), u32(1000)).qid();
  }
  walk(fid: number, newfid: number, ...names: string[]): Qid[] {
    const p = this.call(110, u32(fid), u32(newfid), u16(names.length), ...names.map((n) => str(n)));
    const n = p.u16();
    return Array.from({ length: n }, () => p.qid());
  }
  lopen(fid: number, flags: number): Qid {
    const p = this.call(12, u32(fid), u32(flags));
    const q = p.qid();
    p.u32();
    return q;
  }
  lcreate(fid: number, name: string, flags = O.RDWR, mode = 0o644): Qid {
    return this.call(14, u32(fid), str(name), u32(flags), u32(mode), u32(0)).qid();
  }
  read(fid: number, offset: number, count: number): Buffer {
    const p = this.call(116, u32(fid), u64(offset), u32(count));
    const n = p.u32();
    return p.b.subarray(p.pos, p.pos + n);
  }
  write(fid: number, offset: number, data: Buffer | string): number {
    const d = Buffer.from(data);
    return this.call(118, u32(fid), u64(offset), u32(d.length), d).u32();
  }
  clunk(fid: number): void {
    this.call(120, u32(fid));
  }
  remove(fid: number): void {
    this.call(122, u32(fid));
  }
  mkdir(dfid: number, name: string, mode = 0o755): Qid {
    return this.call(72, u32(dfid), str(name), u32(mode), u32(0)).qid();
  }
  mknod(dfid: number, name: string, mode: number): Qid {
    return this.call(18, u32(dfid), str(name), u32(mode), u32(0), u32(0), u32(0)).qid();
  }
  symlink(dfid: number, name: string, target: string): Qid {
    return this.call(16, u32(dfid), str(name), str(target), u32(0)).qid();
  }
  readlink(fid: number): string {
    return this.call(22, u32(fid)).str();
  }
  link(dfid: number, fid: number, name: string): void {
    this.call(70, u32(dfid), u32(fid), str(name));
  }
  rename(fid: number, dfid: number, name: string): void {
    this.call(20, u32(fid), u32(dfid), str(name));
  }
  renameat(odfid: number, oname: string, ndfid: number, nname: string): void {
    this.call(74, u32(odfid), str(oname), u32(ndfid), str(nname));
  }
  unlinkat(dfid: number, name: string, flags = 0): void {
    this.call(76, u32(dfid), str(name), u32(flags));
  }
  getattr(fid: number) {
    const p = this.call(24, u32(fid), u64(0x3fff));
    const a = {
      valid: p.u64(),
      qid: p.qid(),
      mode: p.u32(),
      uid: p.u32(),
      gid: p.u32(),
      nlink: p.u64(),
      rdev: p.u64(),
      size: p.u64(),
      blksize: p.u64(),
      blocks: p.u64(),
      atime: [p.u64(), p.u64()],
      mtime: [p.u64(), p.u64()],
      ctime: [p.u64(), p.u64()],
      btime: [p.u64(), p.u64()],
      gen: p.u64(),
      dataVersion: p.u64(),
      complete: false,
    };
    a.complete = p.done;
    return a;
  }
  setattr(
    fid: number,
    valid: number,
    v: {
      mode?: number;
      uid?: number;
      gid?: number;
      size?: number;
      atime?: [number, number];
      mtime?: [number, number];
    },
  ): void {
    const [as, an] = v.atime ?? [0, 0];
    const [ms, mn] = v.mtime ?? [0, 0];
    this.call(
      26,
      u32(fid),
      u32(valid),
      u32(v.mode ?? 0),
      u32(v.uid ?? 0),
      u32(v.gid ?? 0),
      u64(v.size ?? 0),
      u64(as),
      u64(an),
      u64(ms),
      u64(mn),
    );
  }
  readdir(fid: number, offset: bigint | number, count: number): Dirent[] {
    const p = this.call(40, u32(fid), u64(offset), u32(count));
    const end = 4 + p.u32();
    const out: Dirent[] = [];
    while (p.pos < end) out.push({ qid: p.qid(), offset: p.u64(), type: p.u8(), name: p.str() });
    return out;
  }
  /** Reads a whole open directory in pages of `count` bytes. */
  readdirAll(fid: number, count = 8192): Dirent[] {
    const all: Dirent[] = [];
    let offset = 0n;
    for (;;) {
      const page = this.readdir(fid, offset, count);
      if (page.length === 0) return all;
      all.push(...page);
      offset = page[page.length - 1].offset;
    }
  }
  statfs(fid: number) {
    const p = this.call(8, u32(fid));
    return {
      type: p.u32(),
      bsize: p.u32(),
      blocks: p.u64(),
      bfree: p.u64(),
      bavail: p.u64(),
      files: p.u64(),
      ffree: p.u64(),
      fsid: p.u64(),
      namelen: p.u32(),
    };
  }
  fsync(fid: number): void {
    this.call(50, u32(fid), u32(0));
  }
}

/** The errno a call fails with (fails the test if it succeeds). */
export function errnoOf(fn: () => unknown): number {
  try {
    fn();
  } catch (err) {
    if (err instanceof NineErr) return err.errno;
    throw err;
  }
  throw new Error('expected an Rlerror, got success');
}

export interface Fixture {
  base: string;
  /** The exported directory. */
  root: string;
  /** A sibling of root the guest must never reach. */
  outside: string;
  server: NinePServer;
  /** Mounted: Tversion done, fid 0 attached to the root. */
  g: Guest;
  rootQid: Qid;
  cleanup(): void;
}

/** A temp share with an "outside" sibling, a server on it and a mounted guest. */
export function setup(opts: Omit<NinePShareOptions, 'root'> = {}, msize = 65536): Fixture {
  const base = mkdtempSync(join(tmpdir(), 'wasmvisor-9p-'));
  const root = join(base, 'share');
  const outside = join(base, 'outside');
  mkdirSync(root);
  mkdirSync(outside);
  writeFileSync(join(outside, 'secret'), 'outside secret');
  const server = new NinePServer({ root, ...opts });
  const g = new Guest(server);
  g.version(msize);
  const rootQid = g.attach(0);
  return {
    base,
    root,
    outside,
    server,
    g,
    rootQid,
    cleanup: () => rmSync(base, { recursive: true, force: true }),
  };
}

/** Every path under `dir` with its type, size, mode, mtime and content: to see nothing changed. */
export function snapshot(dir: string): string {
  const out: string[] = [];
  const visit = (d: string, rel: string) => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      const st = lstatSync(p);
      const what = st.isSymbolicLink()
        ? `link->${readlinkSync(p)}`
        : st.isDirectory()
          ? 'dir'
          : `file:${readFileSync(p).toString('hex')}`;
      out.push(`${rel}${name} ${what} ${st.mode.toString(8)} ${st.size} ${st.mtimeMs}`);
      if (st.isDirectory()) visit(p, `${rel}${name}/`);
    }
  };
  visit(dir, '');
  return out.join('\n');
}
