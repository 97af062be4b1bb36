/**
 * `switch:NAME` across the host processes of one user: two `wasmvisor run` in two terminals, or
 * a CLI VM and the VMs of the UI server or the desktop app, are on one LAN when their NICs name
 * the same switch.
 *
 * Every process that has a NIC on switch NAME hosts it: it listens on a socket of its own,
 * `<runtime dir>/net-NAME/<pid>-<random>.sock` (runtime-dir.ts: private to the user), and
 * connects to every other socket it finds there, so the processes of a switch form a full mesh
 * of links (switch-peer.ts). Each process keeps its ordinary NetSwitch (NICs of its threads and
 * worker links join it as before); each link is a `peer` member of it. Because every process
 * reaches every other directly, a frame that came over one link never goes out on another
 * (split horizon, switch.ts): no loops and no spanning tree. MAC learning is per process: a MAC
 * is learnt behind the link its frames came over.
 *
 * There is no owner to elect, so there is nothing to take over: when a process ends, its links
 * close and the others forget its MACs; the rest of the mesh is untouched. The races resolve
 * by construction:
 * - A process binds its socket before it lists the directory, so of two processes starting at
 *   once, at least the later lister sees the other. If both connect, each end keeps the
 *   connection opened by the smaller process id and closes the other.
 * - A socket whose process was killed stays as a file: connecting to it is refused. Its name is
 *   unique to that process, so whoever finds it refused (and the process gone, or refused again
 *   seconds later) removes it without racing anyone.
 * - A periodic rescan (every second) retries what failed and finds sockets missed.
 *
 * A process shares its switches only after `shareSwitchesBetweenProcesses()` (the CLI, the UI
 * server and the desktop app call it); until then, and in tests, a switch stays in its process.
 */
import { randomBytes, createHash } from 'node:crypto';
import { readdirSync, unlinkSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { netSwitch, setSwitchUplinks, switchNames, type NetSwitch } from './switch.js';
import type { SwitchMember } from './switch.js';
import { PeerLink, type PeerLinkStats } from './switch-peer.js';
import { privateDir, runtimeBase } from './runtime-dir.js';

/** How often a process lists the switch's directory again. */
const RESCAN_MS = 1000;
/** A socket still refused this long after the first refusal is stale, whoever holds its pid. */
const STALE_AFTER_MS = 3000;
/** Longest socket path (sun_path is 108 bytes on Linux, 104 on macOS, NUL included). */
const MAX_SOCKET_PATH = 103;
/** At most one warning about broken links per switch in this long. */
const WARN_EVERY_MS = 60_000;
const SOCKET_RE = /^(\d{1,10})-[0-9a-f]{8}\.sock$/;

export interface SharedSwitchStats extends PeerLinkStats {
  /** Processes this one has a link to now. */
  peers: number;
  /** Socket files of killed processes removed. */
  stale_removed: number;
  /** Connections to other processes' sockets that failed (refused, vanished, errors). */
  connect_errors: number;
}

export interface ShareOptions {
  /** Where the switch directories live (default: runtime-dir.ts's per-user directory). */
  runtimeDir?: string;
  /** Problems worth telling the user (a directory refused, a hostile connection). */
  log?: (message: string) => void;
}

interface Peer {
  link: PeerLink;
  member: SwitchMember;
}

/** One switch's presence in the mesh: our socket, our links, the rescans. */
class SwitchMesh {
  readonly id = `${process.pid}-${randomBytes(4).toString('hex')}`;
  readonly stats: SharedSwitchStats = {
    peers: 0,
    stale_removed: 0,
    connect_errors: 0,
    sent: 0,
    received: 0,
    dropped: 0,
    bad_frames: 0,
    malformed: 0,
    truncated: 0,
  };
  /** Our socket's path, while it is listening. */
  socketPath: string | undefined;
  private dir = '';
  private server: Server | undefined;
  private timer: ReturnType<typeof setInterval> | undefined;
  private stopped = false;
  /** Established links, by the other process's id. */
  private readonly peers = new Map<string, Peer>();
  /** Every open link, greeted or not. */
  private readonly links = new Set<PeerLink>();
  /** Ids we are connecting to (so a rescan does not connect twice). */
  private readonly dialing = new Set<string>();
  /** Socket file → when it first refused us. */
  private readonly refused = new Map<string, number>();

  constructor(
    private readonly sw: NetSwitch,
    private readonly base: string,
    private readonly log: (m: string) => void,
  ) {}

  /**
   * Tells the user about a broken link, at most once per WARN_EVERY_MS: a process that keeps
   * breaking the protocol is found again by every rescan, and the terminal is the guest's too.
   */
  private warn(m: string): void {
    const now = Date.now();
    if (now - this.lastWarn < WARN_EVERY_MS) return;
    this.lastWarn = now;
    this.log(`switch ${this.sw.name}: ${m}`);
  }
  private lastWarn = -Infinity;

  start(): void {
    try {
      privateDir(this.base);
      this.dir = privateDir(switchDir(this.base, this.sw.name));
    } catch (e) {
      this.log(`switch ${this.sw.name}: not shared with other processes: ${(e as Error).message}`);
      return;
    }
    const path = join(this.dir, `${this.id}.sock`);
    const server = createServer((s) => this.accept(s));
    this.server = server;
    server.on('error', (e) => {
      this.log(`switch ${this.sw.name}: not shared with other processes: ${e.message}`);
      this.stop();
    });
    // Bound before the directory is listed: see the header on two processes starting at once.
    server.listen(path, () => {
      if (this.stopped) return;
      this.socketPath = path;
      ownSockets.add(path);
      this.scan();
      this.timer = setInterval(() => this.scan(), RESCAN_MS);
      this.timer.unref();
    });
    server.unref();
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    // Closing the server removes its socket file (libuv unlinks a listening pipe's path).
    this.server?.close();
    if (this.socketPath) ownSockets.delete(this.socketPath);
    for (const l of this.links) l.close();
  }

  private scan(): void {
    if (this.stopped) return;
    let files: string[];
    try {
      files = readdirSync(this.dir);
    } catch {
      return;
    }
    for (const f of files) {
      const m = SOCKET_RE.exec(f);
      if (!m) continue;
      const id = f.slice(0, -'.sock'.length);
      if (id === this.id || this.peers.has(id) || this.dialing.has(id)) continue;
      this.dial(id, Number(m[1]), join(this.dir, f));
    }
  }

  private dial(id: string, pid: number, path: string): void {
    this.dialing.add(id);
    const s = createConnection(path);
    const failed = (e: NodeJS.ErrnoException): void => {
      this.stats.connect_errors++;
      if (e.code === 'ECONNREFUSED') this.refusedBy(path, pid);
    };
    s.once('error', failed);
    s.once('connect', () => {
      s.off('error', failed);
      this.refused.delete(path);
    });
    this.open(s, true, () => this.dialing.delete(id));
  }

  /** A socket that refused us: removed once its process is gone (or it kept refusing). */
  private refusedBy(path: string, pid: number): void {
    const first = this.refused.get(path);
    const now = Date.now();
    if (first === undefined && processAlive(pid)) {
      this.refused.set(path, now);
      return;
    }
    if (first !== undefined && now - first < STALE_AFTER_MS) return;
    this.refused.delete(path);
    try {
      unlinkSync(path);
      this.stats.stale_removed++;
    } catch {
      // Someone else removed it first.
    }
  }

  private accept(s: Socket): void {
    if (this.stopped) s.destroy();
    else this.open(s, false);
  }

  private open(s: Socket, outgoing: boolean, closed?: () => void): void {
    const link = new PeerLink(s, this.id, this.sw.name, outgoing, this.stats);
    this.links.add(link);
    link.onHello = (peerId) => this.greeted(link, peerId);
    link.onClose = (why, failed) => {
      this.links.delete(link);
      closed?.();
      const p = link.peerId !== undefined ? this.peers.get(link.peerId) : undefined;
      if (p?.link === link) {
        this.peers.delete(link.peerId!);
        this.stats.peers = this.peers.size;
        this.sw.leave(p.member);
      }
      if (failed) this.warn(`closed a link to another process: ${why}`);
    };
  }

  /** The other end said who it is: plug the link into the switch (one link per process). */
  private greeted(link: PeerLink, peerId: string): boolean {
    if (this.stopped) return false;
    const cur = this.peers.get(peerId);
    if (cur) {
      // Both processes connected to each other: keep the link the smaller id opened.
      const opener = (l: PeerLink): string => (l.outgoing ? this.id : peerId);
      if (opener(cur.link) < opener(link)) return false;
      cur.link.close('duplicate');
    }
    const member: SwitchMember = { peer: true, deliver: (p) => link.send(p) };
    this.peers.set(peerId, { link, member });
    this.stats.peers = this.peers.size;
    link.onFrame = (p) => this.sw.forward(member, p);
    this.sw.join(member);
    return true;
  }
}

/**
 * The directory of switch `name`: its name when the longest socket path fits, else a hash of it
 * (every process must pick the same, so it does not depend on this process's id).
 */
function switchDir(base: string, name: string): string {
  const longest = `${'9'.repeat(10)}-01234567.sock`;
  const fits = (d: string): boolean => Buffer.byteLength(join(d, longest)) <= MAX_SOCKET_PATH;
  const plain = join(base, `net-${name}`);
  if (fits(plain)) return plain;
  const hashed = join(base, `net-${createHash('sha256').update(name).digest('hex').slice(0, 16)}`);
  if (fits(hashed)) return hashed;
  throw new Error(`${base}: too long a path for a socket`);
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Socket files this process listens on, removed at exit (a killed process leaves them). */
const ownSockets = new Set<string>();
let exitHook = false;
const meshes = new Map<NetSwitch, SwitchMesh>();

/**
 * From now on, every switch of this thread that has a NIC is shared with the other processes of
 * this user (see the header). Call it in the thread that hosts the switches (the main thread).
 */
export function shareSwitchesBetweenProcesses(o: ShareOptions = {}): void {
  const log = o.log ?? (() => {});
  if (process.platform === 'win32') {
    log('switches are not shared between processes on Windows');
    return;
  }
  const base = o.runtimeDir ?? runtimeBase();
  if (!exitHook) {
    exitHook = true;
    process.on('exit', () => {
      for (const p of ownSockets) {
        try {
          unlinkSync(p);
        } catch {
          // already gone
        }
      }
    });
  }
  const active = (sw: NetSwitch): void => {
    if (meshes.has(sw)) return;
    const m = new SwitchMesh(sw, base, log);
    meshes.set(sw, m);
    m.start();
  };
  setSwitchUplinks({
    active,
    idle: (sw) => {
      meshes.get(sw)?.stop();
      meshes.delete(sw);
    },
  });
  for (const n of switchNames()) active(netSwitch(n));
}

/** Switches stay in this process again; links to other processes close. */
export function stopSharingSwitches(): void {
  setSwitchUplinks(undefined);
  for (const m of meshes.values()) m.stop();
  meshes.clear();
}

/** The switches of this thread that are shared now, with their counters (the monitor's `info network`). */
export function sharedSwitches(): { name: string; stats: SharedSwitchStats }[] {
  return [...meshes].map(([sw, m]) => ({ name: sw.name, stats: { ...m.stats } }));
}

/** The cross-process counters of switch `name` in this thread, if it is shared. */
export function sharedSwitchStats(name: string): SharedSwitchStats | undefined {
  for (const [sw, m] of meshes) if (sw.name === name) return { ...m.stats };
  return undefined;
}

/** This process's socket of switch `name`, once listening (for tests and diagnostics). */
export function sharedSwitchSocket(name: string): string | undefined {
  for (const [sw, m] of meshes) if (sw.name === name) return m.socketPath;
  return undefined;
}
