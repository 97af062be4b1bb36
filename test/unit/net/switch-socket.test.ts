/**
 * `switch:NAME` between host processes (devices/net/switch-socket.ts): this test process and
 * child node processes (switch-socket-child.ts), each with one NIC on the same switch in a
 * private runtime directory, exchange frames; learning keeps unicast to its process; offload
 * metadata crosses; a worker thread's NIC (through its hub) reaches another process; two
 * processes that connected both ways keep exactly the link the smaller id opened; a killed process leaves a stale socket that is removed while the others keep
 * their LAN and a newcomer joins; processes starting at once end in one LAN without duplicate
 * links; hostile and truncated bytes on the socket are counted and end that connection only; a
 * peer that reads nothing costs bounded memory (drops counted); an unsafe runtime dir is refused.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createConnection, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { build } from 'esbuild';
import { netSwitch, type SwitchPort } from '../../../devices/net/switch.js';
import {
  sharedSwitchSocket,
  sharedSwitchStats,
  shareSwitchesBetweenProcesses,
  stopSharingSwitches,
} from '../../../devices/net/switch-socket.js';
import { privateDir, runtimeBase, RuntimeDirError } from '../../../devices/net/runtime-dir.js';
import { GSO_TCPV4, type NetPacket } from '../../../devices/net/packet.js';
import { MAX_BYTES } from '../../../devices/net/frame-link.js';
import {
  encodeFrameHeader,
  encodeHello,
  WireReader,
  type WireMessage,
} from '../../../devices/net/switch-wire.js';
import { attachSwitchLink, switchLinkConnector } from '../../../devices/net/switch-link.js';

const mac = (n: number): number[] => (n === 0xff ? Array(6).fill(0xff) : [0x52, 0x54, 0, 0, 0, n]);
function frame(dst: number, src: number, len = 60): Uint8Array {
  const f = new Uint8Array(len);
  for (let i = 14; i < len; i++) f[i] = (i * 7) & 0xff;
  f.set(mac(dst), 0);
  f.set(mac(src), 6);
  f[12] = 0x08;
  return f;
}
const sum = (d: Uint8Array): number => d.reduce((a, b) => (a + b) >>> 0, 0);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, f: () => T | undefined | false, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

interface Rx {
  dst: number;
  src: number;
  len: number;
  sum: number;
  csum?: { start: number; offset: number };
  gso?: { type: number; size: number; hdrLen: number };
  valid?: boolean;
}

/** A child host process with NIC 52:54:00:00:00:`me` on switch `name`. */
class Child {
  readonly rx: Rx[] = [];
  peers = 0;
  socket: string | undefined;
  stats: Record<string, number> | undefined;
  exited = false;
  private readonly p: ChildProcessWithoutNullStreams;

  constructor(script: string, dir: string, name: string, me: number) {
    this.p = spawn(process.execPath, [script, dir, name, String(me)]);
    this.p.stderr.on('data', (d: Buffer) => process.stderr.write(d));
    this.p.on('exit', () => (this.exited = true));
    createInterface({ input: this.p.stdout }).on('line', (l) => {
      const m = JSON.parse(l) as { rx?: Rx; peers?: number; socket?: string; stats?: never };
      if (m.rx) this.rx.push(m.rx);
      if (m.peers !== undefined) {
        this.peers = m.peers;
        this.socket = m.socket;
      }
      if (m.stats) this.stats = m.stats;
    });
  }
  get pid(): number {
    return this.p.pid!;
  }
  cmd(c: unknown): void {
    this.p.stdin.write(JSON.stringify(c) + '\n');
  }
  async getStats(): Promise<Record<string, number>> {
    this.stats = undefined;
    this.cmd({ stats: 1 });
    return until('child stats', () => this.stats);
  }
  async kill(): Promise<void> {
    this.p.kill('SIGKILL');
    await until('child exit', () => this.exited);
  }
  async exit(): Promise<void> {
    this.cmd({ exit: 0 });
    await until('child exit', () => this.exited);
  }
}

let work: string;
let script: string;
let n = 0;
const children: Child[] = [];
const locals: SwitchPort[] = [];

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'wasmvisor-xswitch-'));
  script = join(work, 'child.mjs');
  await build({
    entryPoints: [join(import.meta.dirname, 'switch-socket-child.ts')],
    outfile: script,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    logLevel: 'silent',
  });
});
afterEach(async () => {
  for (const c of children.splice(0)) if (!c.exited) await c.kill();
  for (const l of locals.splice(0)) l.close();
  stopSharingSwitches();
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** A fresh runtime dir and switch name; this process shares its switches there. */
function setup(): { dir: string; name: string; child: (me: number) => Child } {
  const dir = join(work, `rt${++n}`);
  mkdirSync(dir, { mode: 0o700 });
  const name = `xs${n}`;
  shareSwitchesBetweenProcesses({ runtimeDir: dir });
  return {
    dir,
    name,
    child: (me) => {
      const c = new Child(script, dir, name, me);
      children.push(c);
      return c;
    },
  };
}

/** A NIC of this process on switch `name`, and what it received. */
function local(name: string): { port: SwitchPort; got: NetPacket[] } {
  const port = netSwitch(name).connect();
  locals.push(port);
  const got: NetPacket[] = [];
  port.onReceive = (p) => got.push(p);
  return { port, got };
}

describe('switch:NAME between processes', () => {
  it('frames cross both ways; a learnt MAC gets unicast only; offload metadata crosses', async () => {
    const { name, child } = setup();
    const t = local(name);
    const a = child(1);
    const b = child(2);
    await until('a mesh of three', () => a.peers === 2 && b.peers === 2);
    await until('this process linked', () => sharedSwitchStats(name)?.peers === 2);

    // A broadcast from a reaches this process and b, once each.
    a.cmd({ send: { dst: 0xff, len: 100 } });
    await until('b got the broadcast', () => b.rx.length === 1);
    await until('t got the broadcast', () => t.got.length === 1);
    expect(t.got[0].data[11]).toBe(1);
    expect(b.rx[0]).toMatchObject({ src: 1, dst: 0xff, len: 100 });

    // This process learnt a behind its link: a unicast to a goes to a only.
    t.port.send({ data: frame(1, 9, 200) });
    await until('a got the unicast', () => a.rx.length === 1);
    await sleep(200);
    expect(b.rx).toHaveLength(1);
    expect(a.rx[0]).toMatchObject({ src: 9, dst: 1, len: 200, sum: sum(frame(1, 9, 200)) });

    // A 64 KiB TCP segment with a partial checksum crosses in one piece, metadata intact.
    const big = frame(9, 2, 65_000);
    b.cmd({
      send: {
        dst: 9,
        len: 65_000,
        csum: { start: 34, offset: 16 },
        gso: { type: GSO_TCPV4, size: 1448, hdrLen: 66 },
      },
    });
    await until('t got the segment', () => t.got.length === 2);
    const g = t.got[1];
    expect(g.data.length).toBe(65_000);
    expect(sum(g.data)).toBe(sum(big) - 9 + 9); // same bytes (the child's pattern is the same)
    expect(g.csum).toEqual({ start: 34, offset: 16 });
    expect(g.gso).toEqual({ type: GSO_TCPV4, size: 1448, hdrLen: 66 });
    // Learnt unicast: a did not see b's segment to this process.
    await sleep(200);
    expect(a.rx).toHaveLength(1);
  });

  it('a NIC in a worker thread (linked to its hub) and a NIC of another process share the LAN', async () => {
    const { name, child } = setup();
    // The hub side as VmRunner does it; the MessageChannel stands in for the worker's.
    const worker = switchLinkConnector((n, port) => attachSwitchLink(n, port))(name);
    const got: NetPacket[] = [];
    worker.onReceive = (p) => got.push(p);
    const a = child(1);
    await until('linked', () => a.peers === 1);
    a.cmd({ send: { dst: 0xff, len: 300 } });
    await until('the worker NIC got it', () => got.length === 1);
    expect(got[0].data[11]).toBe(1);
    worker.send({ data: frame(1, 5, 1514) });
    await until('a got the worker', () => a.rx.some((r) => r.src === 5 && r.len === 1514));
    worker.close();
    // The hub's last NIC left: this process leaves the mesh and removes its socket.
    await until('a alone', () => a.peers === 0);
    expect(sharedSwitchStats(name)).toBeUndefined();
  });

  it('two processes that connected both ways keep one link, the one the smaller id opened', async () => {
    // Either link may be greeted first: the one t opened (then t replaces it) or the fake's
    // (then t refuses its own when its hello comes).
    for (const tGreetedFirst of [true, false]) {
      const { dir, name } = setup();
      // A stand-in process whose id sorts before any real one ("1-" < "<pid>-"): it listens and
      // dials, and records the frames each of its connections receives.
      const fakeId = '1-00000000';
      const sdir = privateDir(join(dir, `net-${name}`));
      type Conn = { s: Socket; frames: number; closed: boolean; tOpened: boolean };
      const conns: Conn[] = [];
      const track = (s: Socket, tOpened: boolean): void => {
        const c = { s, frames: 0, closed: false, tOpened };
        conns.push(c);
        const r = new WireReader();
        s.on('data', (d: Buffer) => {
          const out: WireMessage[] = [];
          r.push(d, out);
          c.frames += out.filter((m) => m.t === 'frame').length;
        });
        s.on('close', () => (c.closed = true));
        s.on('error', () => {});
        if (!tOpened || tGreetedFirst) s.write(encodeHello(fakeId, name));
      };
      const srv = createServer((s) => track(s, true));
      await new Promise<void>((r) => srv.listen(join(sdir, `${fakeId}.sock`), () => r()));
      const t = local(name);
      const path = await until('listening', () => sharedSwitchSocket(name));
      await until('t dialed the fake', () => conns.length === 1);
      if (tGreetedFirst) await until('linked', () => sharedSwitchStats(name)?.peers === 1);
      track(createConnection(path), false);
      await until('linked', () => sharedSwitchStats(name)?.peers === 1);
      if (!tGreetedFirst) conns[0].s.write(encodeHello(fakeId, name));
      await until('two connections', () => conns.length === 2, 5000);
      // Whichever came first, t closes the connection it opened and keeps the fake's.
      const opened = conns.find((c) => c.tOpened)!;
      const kept = conns.find((c) => !c.tOpened)!;
      await until('t closed its own', () => opened.closed);
      expect(kept.closed).toBe(false);
      expect(sharedSwitchStats(name)!.peers).toBe(1);
      t.port.send({ data: frame(0xff, 9) });
      await until('the kept link carries frames', () => kept.frames === 1);
      expect(sharedSwitchStats(name)!.malformed).toBe(0);
      srv.close();
      for (const c of conns) c.s.destroy();
      t.port.close();
      stopSharingSwitches();
    }
  });

  it('a killed process leaves a stale socket that is removed; the rest keep their LAN; a third joins', async () => {
    const { dir, name, child } = setup();
    const t = local(name);
    const first = child(1);
    await until('first linked', () => first.peers === 1 && first.socket);
    const second = child(2);
    await until('mesh of three', () => second.peers === 2 && first.peers === 2);
    const stale = first.socket!;
    await first.kill();
    expect(existsSync(stale)).toBe(true); // a SIGKILL leaves the file
    await until('the link to the killed process closed', () => second.peers === 1);
    await until('stale socket removed', () => !existsSync(stale));
    expect(sharedSwitchStats(name)!.stale_removed + (await second.getStats()).stale_removed).toBe(
      1,
    );

    // The survivors still talk, and a newcomer joins them.
    const third = child(3);
    await until('third joined both', () => third.peers === 2);
    third.cmd({ send: { dst: 0xff, len: 64 } });
    await until('second got it', () => second.rx.some((r) => r.src === 3));
    await until('t got it', () => t.got.some((p) => p.data[11] === 3));
    t.port.send({ data: frame(3, 9) });
    await until('third got the unicast', () => third.rx.some((r) => r.src === 9));
    second.cmd({ send: { dst: 3, len: 1500 } });
    await until('third got second', () => third.rx.some((r) => r.src === 2 && r.len === 1500));

    // A process that exits normally removes its socket.
    const sock = second.socket!;
    await second.exit();
    expect(existsSync(sock)).toBe(false);
    await until('third sees one peer', () => third.peers === 1);
    expect(readdirSync(join(dir, `net-${name}`)).sort()).toEqual(
      [third.socket!, sharedSwitchSocket(name)!].map((p) => p.split('/').pop()).sort(),
    );
  });

  it('processes starting at once end in one LAN, one link per pair (no duplicates)', async () => {
    for (let round = 0; round < 3; round++) {
      const { name, child } = setup();
      const cs = [child(1), child(2), child(3), child(4)];
      await until('full mesh', () => cs.every((c) => c.peers === 3), 20_000);
      cs[0].cmd({ send: { dst: 0xff, len: 80 } });
      await until('everyone got it', () => cs.slice(1).every((c) => c.rx.length >= 1));
      await sleep(300);
      for (const c of cs.slice(1)) expect(c.rx).toHaveLength(1);
      expect(sharedSwitchStats(name)).toBeUndefined(); // this process has no NIC there
      for (const c of cs) await c.kill();
      children.length = 0;
      stopSharingSwitches();
    }
  }, 60_000);

  it('hostile and truncated bytes end that connection only, counted; a bad frame is dropped', async () => {
    const { name, child } = setup();
    const t = local(name);
    const a = child(1);
    await until('linked', () => a.peers === 1);
    const path = sharedSwitchSocket(name)!;
    const hello = encodeHello('1-deadbeef', name);

    /** Writes `bytes` to this process's switch socket; resolves when it closes the connection. */
    const hostile = async (bytes: Uint8Array[], end = false): Promise<boolean> => {
      const s: Socket = createConnection(path);
      s.on('data', () => {});
      let closed = false;
      s.on('close', () => (closed = true));
      s.on('error', () => {});
      for (const b of bytes) s.write(b);
      if (end) s.end();
      await until('closed', () => closed, 3000).catch(() => undefined);
      s.destroy();
      return closed;
    };
    const before = sharedSwitchStats(name)!;
    // A length past any frame; an unknown type; a frame before hello; the wrong switch.
    expect(await hostile([new Uint8Array([0xff, 0xff, 0xff, 0x7f, 2])])).toBe(true);
    expect(await hostile([new Uint8Array([1, 0, 0, 0, 9])])).toBe(true);
    expect(
      await hostile([encodeFrameHeader({ data: new Uint8Array(60) }), new Uint8Array(60)]),
    ).toBe(true);
    expect(await hostile([encodeHello('1-deadbeef', 'other')])).toBe(true);
    let s = sharedSwitchStats(name)!;
    expect(s.malformed - before.malformed).toBe(4);
    // Half a frame, then the end of the stream.
    const f = frame(0xff, 7);
    await hostile([hello, encodeFrameHeader({ data: f }), f.subarray(0, 20)], true);
    s = sharedSwitchStats(name)!;
    expect(s.truncated - before.truncated).toBe(1);

    // A frame whose checksum offset lies outside it is dropped; the connection stays.
    const sock = createConnection(path);
    sock.on('data', () => {});
    let closed = false;
    sock.on('close', () => (closed = true));
    const bad = { data: frame(0xff, 7), csum: { start: 50, offset: 16 } };
    const good = { data: frame(0xff, 8) };
    sock.write(hello);
    sock.write(encodeFrameHeader(bad));
    sock.write(bad.data);
    sock.write(encodeFrameHeader(good));
    sock.write(good.data);
    await until('the good frame', () => t.got.some((p) => p.data[11] === 8));
    expect(t.got.some((p) => p.data[11] === 7)).toBe(false);
    expect(sharedSwitchStats(name)!.bad_frames - before.bad_frames).toBe(1);
    expect(closed).toBe(false);
    sock.destroy();

    // The real peer was never disturbed.
    a.cmd({ send: { dst: 9, len: 90 } });
    t.port.send({ data: frame(1, 9) });
    await until('a got it', () => a.rx.some((r) => r.src === 9));
    await until('t got a', () => t.got.some((p) => p.data[11] === 1));
    expect(a.peers).toBe(1);
  });

  it('a peer that reads nothing costs bounded memory: frames beyond the window are dropped', async () => {
    const { name } = setup();
    const t = local(name);
    await until('listening', () => sharedSwitchSocket(name));
    const s = createConnection(sharedSwitchSocket(name)!);
    s.write(encodeHello('1-0badf00d', name));
    await until('linked', () => sharedSwitchStats(name)?.peers === 1);
    s.pause(); // never reads, never acknowledges
    const f = frame(0xff, 9, 65_000);
    for (let i = 0; i < 1000; i++) t.port.send({ data: f });
    const st = sharedSwitchStats(name)!;
    expect(st.sent).toBeLessThanOrEqual(Math.ceil(MAX_BYTES / 65_000));
    expect(st.dropped).toBeGreaterThanOrEqual(1000 - Math.ceil(MAX_BYTES / 65_000));
    s.destroy();
  });

  it('refuses a runtime directory open to other users; the switch then stays in its process', async () => {
    const dir = join(work, 'open');
    mkdirSync(dir);
    chmodSync(dir, 0o777);
    expect(() => privateDir(dir)).toThrow(RuntimeDirError);
    expect(() => privateDir(dir)).toThrow(/open to other users \(mode 777\)/);
    const logs: string[] = [];
    shareSwitchesBetweenProcesses({ runtimeDir: dir, log: (m) => logs.push(m) });
    const a = local('xs-open');
    const b = local('xs-open');
    expect(logs.join()).toMatch(
      /switch xs-open: not shared with other processes: .*open to other users/,
    );
    a.port.send({ data: frame(0xff, 1) });
    expect(b.got).toHaveLength(1); // the in-process switch works as before

    expect(runtimeBase({ XDG_RUNTIME_DIR: '/run/user/1234' })).toBe('/run/user/1234/wasmvisor');
    expect(runtimeBase({})).toBe(join(tmpdir(), `wasmvisor-${process.getuid!()}`));
    const made = privateDir(join(work, 'fresh'));
    expect(existsSync(made)).toBe(true);
  });
});
