/**
 * net=user's TFTP server (`tftp=DIR`) and DHCP's boot file (`bootfile=`), driven with hand-built
 * guest frames against a temporary directory: transfers in one and in many blocks, the empty
 * last block, blksize/tsize negotiation, retransmission and duplicate ACKs, names that try to
 * leave DIR, malformed requests, the session bound, close() mid-transfer, IPv6, restrict=on, and
 * a seeded fuzz of random datagrams to the server and its transfers.
 * TFTP packets are built and read here, independently of tftp.ts.
 */
import { describe, it, expect, afterEach, beforeAll, afterAll } from 'vitest';
import { randomBytes } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readlinkSync,
  realpathSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NetSpecError } from '../../../devices/net/backend.js';
import { get16 } from '../../../devices/net/offload.js';
import type { NetPacket } from '../../../devices/net/packet.js';
import { UserNetwork, parseUserSpec, type UserNetLimits } from '../../../devices/net/user/index.js';
import { formatIp6 } from '../../../devices/net/user/ipv6.js';
import { parseNicSpec } from '../../../main/vm/config.js';
import {
  GATEWAY,
  GUEST,
  GUEST6,
  GW6,
  checked6,
  dhcp,
  dhcpOptions,
  get32,
  harness,
  udp,
  udp6,
  until,
  wire,
} from './user-frames.js';
import { xorshift } from '../../seeded-random.js';

let base: string;
/** The directory served (DIR), and files outside it. */
let dir: string;
const SECRET = 'outside secret 7f3a9c';
const files: Record<string, Buffer> = {};

beforeAll(() => {
  base = realpathSync(mkdtempSync(join(tmpdir(), 'wasmvisor-tftp-')));
  dir = join(base, 'srv');
  mkdirSync(join(dir, 'sub'), { recursive: true });
  files['hello.txt'] = Buffer.from('hello over tftp\n');
  files['three.bin'] = randomBytes(1300); // 512 + 512 + 276
  files['exact.bin'] = randomBytes(1024); // 512 + 512 + an empty block
  files['big.bin'] = randomBytes(10_000);
  files['large.bin'] = randomBytes(300_000); // more than the server reads ahead at once
  files['sub/inner.txt'] = Buffer.from('in a subdirectory\n');
  for (const [n, b] of Object.entries(files)) writeFileSync(join(dir, n), b);
  writeFileSync(join(base, 'secret.txt'), SECRET);
  symlinkSync(join(base, 'secret.txt'), join(dir, 'escape'));
  symlinkSync(base, join(dir, 'up'));
  symlinkSync('hello.txt', join(dir, 'alias'));
});

afterAll(() => rmSync(base, { recursive: true, force: true }));

const nets: UserNetwork[] = [];
afterEach(() => {
  for (const n of nets.splice(0)) {
    expect(n.stats().drop_internal_error ?? 0).toBe(0);
    n.close();
  }
});

function net(extra = '', limits: Partial<UserNetLimits> = {}) {
  const h = harness(`user,tftp=${dir}${extra}`, { limits });
  nets.push(h.net);
  return h;
}

const CPORT = 40_000;
const enc = (s: string) => [...Buffer.from(s), 0];

/** A request (RRQ by default) as the guest's client would send it. */
function request(name: string, mode = 'octet', opts: string[] = [], op = 1): Uint8Array {
  return Uint8Array.from([0, op, ...enc(name), ...enc(mode), ...opts.flatMap(enc)]);
}
const ackPacket = (n: number) => Uint8Array.of(0, 4, n >> 8, n & 0xff);

/** A TFTP packet the NAT sent (checksums verified), over IPv4 or IPv6. */
function tftpOut(p: NetPacket) {
  if (get16(p.data, 12) === 0x86dd) {
    const c = checked6(p);
    const m = c.l4.subarray(8);
    return {
      v6: true,
      src: formatIp6(c.src),
      dst: formatIp6(c.dst),
      ...fields(c.l4, m),
      len: p.data.length,
    };
  }
  const d = wire(p);
  expect(get16(d, 20) & 0x3fff).toBe(0); // never a fragment
  const m = d.subarray(42, 34 + get16(d, 38));
  return {
    v6: false,
    src: get32(d, 26),
    dst: get32(d, 30),
    ...fields(d.subarray(34), m),
    len: d.length,
  };
}

function fields(l4: Uint8Array, m: Uint8Array) {
  const op = get16(m, 0);
  return {
    sport: get16(l4, 0),
    dport: get16(l4, 2),
    op,
    /** DATA/ACK: the block; ERROR: the code. */
    num: get16(m, 2),
    data: Buffer.from(m.subarray(op === 6 ? 2 : 4)),
    msg: op === 5 ? Buffer.from(m.subarray(4, m.length - 1)).toString() : '',
  };
}

type H = ReturnType<typeof harness>;

/** Waits for the next frame to the guest and reads it. */
async function next(h: H) {
  await until(() => h.got.length > 0);
  return tftpOut(h.got.shift()!);
}

/** Lets timers and file reads run, then says what arrived meanwhile. */
async function quiet(h: H, ms = 40) {
  await new Promise((r) => setTimeout(r, ms));
  return h.take().map(tftpOut);
}

/** Fetches `name` as a client would: RRQ, then ACK every block. */
async function fetch(h: H, name: string, opts: string[] = [], cport = CPORT, blksize = 512) {
  h.send(udp(cport, 69, request(name, 'octet', opts)));
  const blocks: number[] = [];
  const parts: Buffer[] = [];
  let first = await next(h);
  let port = first.sport;
  if (first.op === 6) {
    h.send(udp(cport, port, ackPacket(0)));
    first = await next(h);
  }
  for (let p = first; ; p = await next(h)) {
    expect(p.op).toBe(3);
    expect([p.src, p.dst, p.dport]).toEqual([GATEWAY, GUEST, cport]);
    expect(p.sport).toBe(port);
    port = p.sport;
    blocks.push(p.data.length);
    parts.push(p.data);
    h.send(udp(cport, port, ackPacket(p.num)));
    if (p.data.length < blksize) break;
  }
  return { data: Buffer.concat(parts), blocks, port };
}

/**
 * How long a file may stay open after its transfer ended: FileHandle.close takes a moment on
 * the thread pool; a handle nobody closed is closed only by the garbage collector, later.
 */
const CLOSED_MS = 100;
const HAVE_PROC = existsSync('/proc/self/fd');

/** File descriptors of this process open on `path` (Linux; elsewhere 0). */
const fdsOpenOn = (path: string) =>
  !HAVE_PROC
    ? 0
    : readdirSync('/proc/self/fd').filter((f) => {
        try {
          return readlinkSync(`/proc/self/fd/${f}`) === path;
        } catch {
          return false;
        }
      }).length;

describe('net=user tftp= spec', () => {
  it('parses tftp= and bootfile= with the other options, in any order', () => {
    expect(parseUserSpec('user,tftp=/srv/tftp,bootfile=pxelinux.0')).toMatchObject({
      tftp: '/srv/tftp',
      bootfile: 'pxelinux.0',
    });
    expect(
      parseUserSpec('user,bootfile=boot/x.efi,hostfwd=tcp::2222-:22,restrict=on,tftp=rel/dir'),
    ).toMatchObject({ tftp: 'rel/dir', bootfile: 'boot/x.efi', restrict: true });
    const b = parseUserSpec('user,bootfile=elsewhere.img');
    expect([b.tftp, b.bootfile]).toEqual([undefined, 'elsewhere.img']);
    expect(parseUserSpec('user').tftp).toBeUndefined();
    expect(parseNicSpec(`virtio,net=user,tftp=/srv,bootfile=a.img`).net).toBe(
      'user,tftp=/srv,bootfile=a.img',
    );
    for (const [spec, re] of [
      ['user,tftp=', /tftp=: give a directory/],
      ['user,tftp', /tftp=: give a directory/],
      ['user,bootfile=', /bootfile=: give a file name/],
      ['user,tftp=/a,tftp=/b', /tftp= is given twice/],
      [`user,bootfile=${'x'.repeat(128)}`, /longer than 127 bytes/],
    ] as const) {
      expect(() => parseUserSpec(spec)).toThrow(NetSpecError);
      expect(() => parseUserSpec(spec)).toThrow(re);
    }
    expect(parseUserSpec(`user,bootfile=${'x'.repeat(127)}`).bootfile).toHaveLength(127);
  });

  it('refuses a DIR that does not exist or is not a directory when the network opens', () => {
    const missing = join(base, 'no-such-dir');
    expect(() => new UserNetwork(`user,tftp=${missing}`, { resolver: null })).toThrow(NetSpecError);
    expect(() => new UserNetwork(`user,tftp=${missing}`, { resolver: null })).toThrow(
      `tftp=${missing}: no such directory`,
    );
    const file = join(dir, 'hello.txt');
    expect(() => new UserNetwork(`user,tftp=${file}`, { resolver: null })).toThrow(
      `tftp=${file}: not a directory`,
    );
    // bootfile= alone opens (the guest may fetch the file elsewhere).
    const n = new UserNetwork('user,bootfile=x.img', { resolver: null });
    expect(n.tftp).toBeUndefined();
    n.close();
  });
});

describe('net=user TFTP transfers', () => {
  it('sends a small file in one block from a port of its own, after send() returned', async () => {
    const h = net();
    h.send(udp(CPORT, 69, request('hello.txt')));
    expect(h.got).toHaveLength(0); // the file is opened asynchronously
    const d = await next(h);
    expect([d.op, d.num, d.src, d.dst, d.dport]).toEqual([3, 1, GATEWAY, GUEST, CPORT]);
    expect(d.sport).toBeGreaterThanOrEqual(49152);
    expect(d.data).toEqual(files['hello.txt']);
    expect(h.net.stats().tftp_sessions).toBe(1);
    h.send(udp(CPORT, d.sport, ackPacket(1)));
    expect(await quiet(h)).toEqual([]);
    expect(h.net.stats()).toMatchObject({
      tftp_requests: 1,
      tftp_files_sent: 1,
      tftp_bytes: files['hello.txt'].length,
      tftp_sessions: 0,
    });
    // Names in subdirectories, and symbolic links that stay inside DIR, are served.
    expect((await fetch(h, 'sub/inner.txt', [], CPORT + 1)).data).toEqual(files['sub/inner.txt']);
    expect((await fetch(h, 'alias', [], CPORT + 2)).data).toEqual(files['hello.txt']);
  });

  it('sends 512-byte blocks, each only after the ACK of the one before', async () => {
    const h = net();
    h.send(udp(CPORT, 69, request('three.bin')));
    const b1 = await next(h);
    expect([b1.num, b1.data.length]).toEqual([1, 512]);
    expect(await quiet(h)).toEqual([]); // block 2 waits for ACK 1
    h.send(udp(CPORT, b1.sport, ackPacket(1)));
    const b2 = await next(h);
    expect([b2.num, b2.data.length, b2.sport]).toEqual([2, 512, b1.sport]);
    h.send(udp(CPORT, b1.sport, ackPacket(2)));
    const b3 = await next(h);
    expect([b3.num, b3.data.length]).toEqual([3, 276]);
    h.send(udp(CPORT, b1.sport, ackPacket(3)));
    expect(Buffer.concat([b1.data, b2.data, b3.data])).toEqual(files['three.bin']);
    expect(await quiet(h)).toEqual([]);
    expect(h.net.stats()).toMatchObject({ tftp_files_sent: 1, tftp_bytes: 1300 });
  });

  it('answers ACKs at once from bytes read ahead: a lock-step client rarely waits for the host', async () => {
    // U-Boot and GRUB send each ACK and spin until the next block is there; a block that waits
    // for a file read waits for the host's event loop, a whole run slice of the guest's.
    const h = net();
    h.send(udp(CPORT, 69, request('large.bin')));
    let b = await next(h);
    const parts = [b.data];
    let atOnce = 0;
    while (b.data.length === 512) {
      h.send(udp(CPORT, b.sport, ackPacket(b.num)));
      if (h.got.length > 0) atOnce++;
      b = h.got.length > 0 ? tftpOut(h.got.shift()!) : await next(h);
      parts.push(b.data);
    }
    h.send(udp(CPORT, b.sport, ackPacket(b.num)));
    expect(Buffer.concat(parts)).toEqual(files['large.bin']);
    const blocks = parts.length;
    expect(blocks).toBe(Math.ceil(300_000 / 512));
    expect(atOnce).toBeGreaterThan(blocks * 0.95);
    expect(h.net.stats()).toMatchObject({ tftp_files_sent: 1, tftp_bytes: 300_000 });
  });

  it('ends a file that is a multiple of the block size with an empty block', async () => {
    const h = net();
    const r = await fetch(h, 'exact.bin');
    expect(r.blocks).toEqual([512, 512, 0]);
    expect(r.data).toEqual(files['exact.bin']);
    expect(await quiet(h)).toEqual([]);
    expect(h.net.stats().tftp_files_sent).toBe(1);
  });

  it('negotiates blksize and tsize: OACK, and the data only after ACK 0', async () => {
    const h = net();
    h.send(udp(CPORT, 69, request('big.bin', 'octet', ['BLKSIZE', '1400', 'tsize', '0'])));
    const o = await next(h);
    expect(o.op).toBe(6);
    expect(o.data.toString()).toBe('blksize\x001400\x00tsize\x0010000\x00');
    expect(await quiet(h)).toEqual([]);
    h.send(udp(CPORT, o.sport, ackPacket(0)));
    const d = await next(h);
    expect([d.op, d.num, d.data.length, d.sport]).toEqual([3, 1, 1400, o.sport]);
    h.send(udp(CPORT, o.sport, ackPacket(1)));
    const d2 = await next(h);
    expect([d2.num, d2.data.length]).toEqual([2, 1400]);
    h.net.close();

    // A larger block than fits one 1500-byte frame is cut to what does: 1468 bytes.
    const h2 = net();
    const r = await fetch(h2, 'big.bin', ['blksize', '9000'], CPORT, 1468);
    expect(r.blocks).toEqual([...Array(6).fill(1468), 10_000 - 6 * 1468]);
    expect(r.data).toEqual(files['big.bin']);
    // tsize alone; unknown options (timeout is not slirp's either) are left out of the OACK.
    h2.send(udp(CPORT + 1, 69, request('hello.txt', 'octet', ['timeout', '3', 'tsize', '0'])));
    expect((await next(h2)).data.toString()).toBe('tsize\x0016\x00');
    h2.send(udp(CPORT + 2, 69, request('hello.txt', 'octet', ['windowsize', '4'])));
    const plain = await next(h2);
    expect([plain.op, plain.num]).toEqual([3, 1]); // no option we know: no OACK
  });

  it('sends a block again when its ACK is lost, and gives up after the retries', async () => {
    const h = net('', { tftpTimeoutMs: 60, tftpRetries: 2 });
    h.send(udp(CPORT, 69, request('three.bin')));
    const b1 = await next(h);
    const again = await next(h);
    expect([again.num, again.sport]).toEqual([1, b1.sport]);
    expect(again.data).toEqual(b1.data);
    expect(h.net.stats().tftp_retransmits).toBe(1);
    h.send(udp(CPORT, b1.sport, ackPacket(1)));
    expect((await next(h)).num).toBe(2);
    // Nothing acknowledged any more: two more tries, then the transfer ends and its file closes.
    await until(() => h.net.stats().tftp_timeouts === 1, 2000);
    expect(h.take().map((p) => tftpOut(p).num)).toEqual([2, 2]);
    expect(h.net.stats().tftp_sessions).toBe(0);
    await until(() => fdsOpenOn(join(dir, 'three.bin')) === 0, CLOSED_MS);
    // A late ACK to the ended transfer's port is dropped, not sent on to the host.
    h.send(udp(CPORT, b1.sport, ackPacket(2)));
    expect(await quiet(h)).toEqual([]);
    expect(h.net.stats()).toMatchObject({ drop_tftp_late: 1, udp_flows: 0 });
  });

  it('ignores duplicate ACKs (no Sorcerer’s Apprentice resend)', async () => {
    const h = net();
    h.send(udp(CPORT, 69, request('three.bin')));
    const b1 = await next(h);
    h.send(udp(CPORT, b1.sport, ackPacket(1)));
    expect((await next(h)).num).toBe(2);
    h.send(udp(CPORT, b1.sport, ackPacket(1)));
    h.send(udp(CPORT, b1.sport, ackPacket(1)));
    expect(await quiet(h)).toEqual([]);
    h.send(udp(CPORT, b1.sport, ackPacket(2)));
    expect((await next(h)).num).toBe(3);
    h.send(udp(CPORT, b1.sport, ackPacket(2)));
    expect(await quiet(h)).toEqual([]);
    expect(h.net.stats().tftp_dup_acks).toBe(3);
    expect(h.net.stats().tftp_retransmits ?? 0).toBe(0);
  });

  it('answers a request repeated before any ACK from the same port, once', async () => {
    const h = net();
    h.send(udp(CPORT, 69, request('hello.txt')));
    const a = await next(h);
    h.send(udp(CPORT, 69, request('hello.txt')));
    const b = await next(h);
    expect([b.num, b.sport]).toEqual([1, a.sport]);
    expect(h.net.stats().tftp_sessions).toBe(1);
    h.send(udp(CPORT, a.sport, ackPacket(1)));
    expect(await quiet(h)).toEqual([]);
    expect(h.net.stats().tftp_files_sent).toBe(1);
    expect(h.net.stats().tftp_dup_acks ?? 0).toBe(0);
  });
});

describe('net=user TFTP refusals', () => {
  async function refused(h: H, m: Uint8Array, code: number, msg: RegExp, cport = CPORT) {
    h.send(udp(cport, 69, m));
    const e = await next(h);
    expect([e.op, e.num, e.dport]).toEqual([5, code, cport]);
    expect(e.msg).toMatch(msg);
    return e;
  }

  it('answers a missing file with ERROR 1', async () => {
    const h = net();
    await refused(h, request('no-such-file'), 1, /not found/);
    await refused(h, request('hello.txt/x'), 1, /not found/);
    expect(h.net.stats()).toMatchObject({ tftp_not_found: 2, tftp_errors: 2, tftp_sessions: 0 });
  });

  it("reads a name with leading slashes under DIR, as slirp: /hello.txt is DIR's, /etc/passwd is not found", async () => {
    const h = net();
    expect((await fetch(h, '/hello.txt')).data).toEqual(files['hello.txt']);
    expect((await fetch(h, '//sub/inner.txt', [], CPORT + 1)).data).toEqual(files['sub/inner.txt']);
    await refused(h, request('/etc/passwd'), 1, /not found/, CPORT + 2);
    await refused(h, request(join(base, 'secret.txt')), 1, /not found/, CPORT + 3);
    expect(h.net.stats().tftp_bytes).toBe(
      files['hello.txt'].length + files['sub/inner.txt'].length,
    );
  });

  it('refuses names leaving DIR (.., drive names, symlinks out) with ERROR 2, sending nothing of the file', async () => {
    const h = net();
    // Any ".." component is refused before the file system is asked, even one leading back in.
    await refused(h, request('sub/../hello.txt'), 2, /".." in the file name/);
    await refused(h, request('..\\secret.txt'), 2, /".." in the file name/);
    const outside = join(base, 'secret.txt');
    for (const name of [
      '../secret.txt',
      'sub/../../secret.txt',
      '..',
      '/../secret.txt',
      'C:\\secret.txt',
      'escape',
      'up/secret.txt',
      'sub',
      '.',
    ]) {
      await refused(h, request(name), 2, /access violation/);
    }
    expect(await quiet(h)).toEqual([]);
    expect(h.got).toEqual([]);
    expect(h.net.stats().tftp_denied).toBe(11);
    expect(h.net.stats().tftp_bytes ?? 0).toBe(0);
    expect(fdsOpenOn(outside)).toBe(0);
  });

  it('refuses writes (WRQ) with ERROR 2: the server is read-only', async () => {
    const h = net();
    await refused(h, request('new.txt', 'octet', [], 2), 2, /read-only/);
    expect(readdirSync(dir)).not.toContain('new.txt');
  });

  it('answers malformed requests with ERROR 4 and drops runts, never throwing', async () => {
    const h = net();
    await refused(h, Uint8Array.of(0, 1, 0x61, 0x62), 4, /without its NUL/);
    await refused(h, Uint8Array.of(0, 1, 0x61, 0x62, 0, 0x6f, 0x63), 4, /without its NUL/);
    await refused(h, request(''), 4, /empty file name/);
    await refused(h, Uint8Array.of(0, 1), 4, /no file name/);
    await refused(h, Uint8Array.of(0, 1, 0x61, 0), 4, /no transfer mode/);
    await refused(h, request('hello.txt', 'octet', ['blksize']), 4, /option without value/);
    await refused(h, request('x'.repeat(600)), 4, /longer than 512/);
    await refused(h, request('hello.txt', 'netascii'), 4, /only octet/);
    await refused(h, Uint8Array.of(0, 9, 0x61, 0), 4, /illegal/);
    h.send(udp(CPORT, 69, Uint8Array.of(1)));
    h.send(udp(CPORT, 69, new Uint8Array(0)));
    h.send(udp(CPORT, 69, ackPacket(1))); // an ACK to port 69 belongs to no transfer
    expect(await quiet(h)).toEqual([]);
    expect(h.net.stats()).toMatchObject({
      tftp_malformed: 8,
      tftp_unsupported_mode: 1,
      drop_tftp_runt: 2,
      drop_tftp_stray: 1,
      tftp_sessions: 0,
    });
    // A blksize out of RFC 2348's range (or not a number) is ignored: 512-byte blocks.
    for (const [i, v] of ['0', '4', 'abc', '70000', ''].entries()) {
      h.send(udp(CPORT + i, 69, request('three.bin', 'octet', ['blksize', v])));
      const d = await next(h);
      expect([d.op, d.num, d.data.length]).toEqual([3, 1, 512]);
    }
    expect(h.net.stats().tftp_bad_options).toBe(5);
  });

  it('answers a packet from another port to a transfer with ERROR 5, and the transfer goes on', async () => {
    const h = net();
    h.send(udp(CPORT, 69, request('three.bin')));
    const b1 = await next(h);
    h.send(udp(CPORT + 7, b1.sport, ackPacket(1)));
    const e = await next(h);
    expect([e.op, e.num, e.dport, e.sport]).toEqual([5, 5, CPORT + 7, b1.sport]);
    h.send(udp(CPORT, b1.sport, ackPacket(1)));
    expect((await next(h)).num).toBe(2);
    // The client's ERROR ends the transfer; no answer to it.
    h.send(udp(CPORT, b1.sport, Uint8Array.of(0, 5, 0, 0, 0)));
    expect(await quiet(h)).toEqual([]);
    expect(h.net.stats()).toMatchObject({ tftp_client_errors: 1, tftp_sessions: 0 });
    await until(() => fdsOpenOn(join(dir, 'three.bin')) === 0, CLOSED_MS);
  });

  it('holds the bound on transfers at once: one more request gets an ERROR', async () => {
    const h = net('', { tftpSessions: 2 });
    h.send(udp(CPORT, 69, request('three.bin')));
    const a = await next(h);
    h.send(udp(CPORT + 1, 69, request('three.bin')));
    const b = await next(h);
    expect(a.sport).not.toBe(b.sport);
    await refused(h, request('hello.txt'), 0, /too many transfers/, CPORT + 2);
    expect(h.net.stats()).toMatchObject({ tftp_sessions: 2, tftp_session_limit: 1 });
    h.send(udp(CPORT + 1, b.sport, Uint8Array.of(0, 5, 0, 0, 0))); // b gives up
    expect((await fetch(h, 'hello.txt', [], CPORT + 3)).data).toEqual(files['hello.txt']);
  });

  it.runIf(HAVE_PROC)('close() mid-transfer ends it: file closed, nothing sent after', async () => {
    const h = net('', { tftpTimeoutMs: 50 });
    const path = join(dir, 'big.bin');
    h.send(udp(CPORT, 69, request('big.bin')));
    const b1 = await next(h);
    expect(fdsOpenOn(path)).toBe(1);
    h.net.close();
    h.send(udp(CPORT, b1.sport, ackPacket(1)));
    await until(() => fdsOpenOn(path) === 0, CLOSED_MS);
    expect(await quiet(h, 150)).toEqual([]); // no retransmission either
    expect(h.net.stats().tftp_sessions).toBe(0);
  });
});

describe('net=user TFTP against a hostile guest', () => {
  /** Random bytes, random fields around real names and options, to port 69 and to transfers. */
  function hostilePacket(rnd: (n: number) => number): Uint8Array {
    const names = ['hello.txt', 'three.bin', 'sub/inner.txt', '../secret.txt', 'escape', '', 'x'];
    const bytes = (n: number) => Array.from({ length: n }, () => rnd(256));
    switch (rnd(6)) {
      case 0:
        return Uint8Array.from(bytes(rnd(40)));
      case 1: // a request with random options
        return request(
          names[rnd(names.length)]!,
          ['octet', 'netascii', 'OcTeT', ''][rnd(4)]!,
          ['blksize', String(rnd(70_000)), 'tsize', String(rnd(3)), 'timeout', '1'].slice(
            0,
            rnd(7),
          ),
          [1, 2, 7][rnd(3)],
        );
      case 2: // a request cut anywhere
        return request(names[rnd(names.length)]!).subarray(0, rnd(16));
      case 3:
        return ackPacket(rnd(70_000));
      case 4: // DATA, ERROR or OACK from the guest
        return Uint8Array.from([0, [3, 5, 6][rnd(3)]!, ...bytes(rnd(20))]);
      default:
        return Uint8Array.from([rnd(256), rnd(256), ...bytes(rnd(600))]);
    }
  }

  it.each([1, 2, 3])(
    'seed %i: 3,000 random datagrams to port 69 and to transfers: nothing throws, the bound holds, close() ends it all',
    async (seed) => {
      const rnd = xorshift(seed);
      const h = net('', { tftpSessions: 4, tftpTimeoutMs: 20, tftpRetries: 1 });
      const ports = new Set<number>();
      const sent: Buffer[] = [];
      for (let i = 0; i < 3000; i++) {
        const to = ports.size > 0 && rnd(2) === 0 ? [...ports][rnd(ports.size)]! : 69;
        expect(() => h.send(udp(CPORT + rnd(8), to, hostilePacket(rnd)))).not.toThrow();
        for (const p of h.take()) {
          sent.push(Buffer.from(p.data));
          ports.add(tftpOut(p).sport);
        }
        expect(h.net.tftp!.size).toBeLessThanOrEqual(4);
        if (i % 500 === 0) await new Promise((r) => setTimeout(r, 30)); // timeouts and reads
      }
      const st = h.net.stats();
      expect(st.tftp_requests).toBeGreaterThan(100);
      expect(st.tftp_malformed).toBeGreaterThan(0);
      expect(st.tftp_denied).toBeGreaterThan(0);
      // Nothing of the file outside DIR went out, whatever the guest sent.
      sent.push(...h.take().map((p) => Buffer.from(p.data)));
      expect(sent.length).toBeGreaterThan(1000);
      expect(Buffer.concat(sent).includes(SECRET)).toBe(false);
      h.net.close();
      expect(h.net.tftp!.size).toBe(0);
      expect(await quiet(h, 60)).toEqual([]);
    },
  );
});

describe('net=user TFTP over IPv6 and with restrict=on; without tftp=', () => {
  it('serves at fec0::2 (blocks up to 1448 bytes), as slirp does', async () => {
    const h = net();
    h.send(udp6(CPORT, 69, request('big.bin', 'octet', ['blksize', '9000'])));
    const o = await next(h);
    expect([o.v6, o.op, o.src, o.dst]).toEqual([true, 6, formatIp6(GW6), formatIp6(GUEST6)]);
    expect(o.data.toString()).toBe('blksize\x001448\x00');
    h.send(udp6(CPORT, o.sport, ackPacket(0)));
    const d = await next(h);
    expect([d.v6, d.op, d.num, d.data.length, d.len]).toEqual([true, 3, 1, 1448, 1514]);
    expect(d.data).toEqual(files['big.bin'].subarray(0, 1448));
  });

  it('answers under restrict=on over IPv4 only (slirp drops all UDP over IPv6 then)', async () => {
    const h = net(',restrict=on');
    expect((await fetch(h, 'hello.txt')).data).toEqual(files['hello.txt']);
    h.send(udp6(CPORT, 69, request('hello.txt')));
    expect(await quiet(h)).toEqual([]);
    expect(h.net.stats().drop_restricted).toBe(1);
  });

  it('without tftp=, port 69 on 10.0.2.2 is the host’s as before', async () => {
    const h = harness('user');
    nets.push(h.net);
    h.send(udp(CPORT, 69, request('hello.txt')));
    expect(h.net.stats()).toMatchObject({ udp_out: 1, udp_flows: 1 });
    expect(Object.keys(h.net.stats()).filter((k) => k.includes('tftp'))).toEqual([]);
  });
});

describe('net=user DHCP with bootfile=', () => {
  const FILE = 108;
  const fileField = (d: Uint8Array) => Buffer.from(d.subarray(42 + FILE, 42 + FILE + 128));

  it('names the boot file in the BOOTP file field, next server 10.0.2.2, no option 67', () => {
    const h = harness(`user,tftp=${dir},bootfile=pxelinux.0`);
    nets.push(h.net);
    h.send(dhcp(1));
    h.send(dhcp(3, [50, 4, 10, 0, 2, 15]));
    const replies = h.take().map(wire);
    expect(replies).toHaveLength(2);
    for (const d of replies) {
      const f = fileField(d);
      expect(f.subarray(0, f.indexOf(0)).toString()).toBe('pxelinux.0');
      expect(f.subarray(f.indexOf(0)).every((b) => b === 0)).toBe(true);
      expect(get32(d, 42 + 20)).toBe(GATEWAY); // siaddr
      expect(dhcpOptions(d).has(67)).toBe(false);
      expect(dhcpOptions(d).has(66)).toBe(false);
    }
    expect(replies.map((d) => dhcpOptions(d).get(53))).toEqual([[2], [5]]);
    // A NAK names no file; without bootfile= the field stays empty.
    h.send(dhcp(3, [50, 4, 10, 0, 2, 99]));
    expect(fileField(wire(h.take()[0])).every((b) => b === 0)).toBe(true);
    const plain = harness('user');
    nets.push(plain.net);
    plain.send(dhcp(1));
    expect(fileField(wire(plain.take()[0])).every((b) => b === 0)).toBe(true);
  });

  it('takes bootfile= without tftp=, and a name of 127 bytes whole', () => {
    const name = 'n'.repeat(127);
    const h = harness(`user,bootfile=${name}`);
    nets.push(h.net);
    h.send(dhcp(1));
    const f = fileField(wire(h.take()[0]));
    expect(f.subarray(0, 127).toString()).toBe(name);
    expect(f[127]).toBe(0);
  });
});
