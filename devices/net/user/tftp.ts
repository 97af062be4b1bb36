/**
 * The user network's built-in TFTP server (`tftp=DIR`, QEMU slirp's): read requests to
 * 10.0.2.2:69 (and fec0::2:69) are answered with the files under DIR, read-only (RFC 1350),
 * with the blksize and tsize options (RFC 2347/2348/2349).
 *
 * Each transfer answers from a port of its own (RFC 1350's transfer ID) in 49152-65535 on the
 * gateway address, sends block N and waits for ACK N, sends it again after `tftpTimeoutMs`
 * (`tftpRetries` times, then gives up), ignores duplicate ACKs and ends with a block shorter
 * than the block size (an empty one when the file is a multiple of it). Files are read
 * asynchronously, up to READ_AHEAD bytes ahead of the guest, so that an ACK is answered within
 * the guest's own run slice: a lock-step client (U-Boot, GRUB) would otherwise wait for the
 * host's event loop once per block. The handle is closed when the transfer ends in any way.
 *
 * The guest chooses the names: a name is resolved under DIR only (a leading "/" is DIR's, as
 * with slirp; no ".." component; the real path after symbolic links must be inside DIR's real
 * path), and only regular files are served. At most `tftpSessions` transfers run at once.
 *
 * Everything the guest sends is checked; what is wrong gets an ERROR packet or is dropped, and
 * is counted (`tftp_*` counters), never thrown.
 */
import { constants, realpathSync, statSync } from 'node:fs';
import { open, realpath, stat, type FileHandle } from 'node:fs/promises';
import { isAbsolute, join, sep } from 'node:path';
import { NetSpecError } from '../backend.js';
import { get16, put16 } from '../offload.js';
import type { UserNetLimits } from './config.js';
import type { Counters } from './counters.js';
import { GUEST_MTU } from './fragment.js';
import { addrKey, type IpAddr } from './ipv6.js';

const TFTP_PORT = 69;

const RRQ = 1;
const WRQ = 2;
const DATA = 3;
const ACK = 4;
const ERROR = 5;
const OACK = 6;

/** Error codes (RFC 1350, 2347). */
const E_UNDEFINED = 0;
const E_NOT_FOUND = 1;
const E_ACCESS = 2;
const E_ILLEGAL = 4;
const E_UNKNOWN_TID = 5;

/** The default block size (RFC 1350) and the range RFC 2348 allows a client to ask for. */
const BLOCK = 512;
const MIN_BLKSIZE = 8;
const MAX_BLKSIZE = 65464;
/** Bytes of a requested file name at most (slirp's bound). */
const MAX_NAME = 512;
/** Transfer IDs: the ports our transfers answer from (the UDP forwards use 32768-49151). */
const FIRST_PORT = 49152;
const PORTS = 16384;
/** Ports of ended transfers whose late packets are still dropped, at most. */
const MAX_LINGER = 64;
/**
 * Bytes of a file read before the guest asks for them: a read is started when less than this
 * is left ahead of the block just sent (so at most 2 × READ_AHEAD held per transfer).
 */
const READ_AHEAD = 128 * 1024;

/** A datagram for the guest: from (src, sport) to (dst, dport). */
export type TftpSend = (
  src: IpAddr,
  sport: number,
  dst: IpAddr,
  dport: number,
  data: Uint8Array,
) => void;

interface Session {
  /** The address the guest asked (10.0.2.2 or fec0::2): we answer from it. */
  server: IpAddr;
  /** Our port for this transfer (its TID). */
  port: number;
  client: IpAddr;
  cport: number;
  clientKey: string;
  /** The read request, to tell the guest sending it again from a new request. */
  request: Uint8Array;
  blksize: number;
  fh?: FileHandle;
  /** The packet in flight: 0 the OACK, N > 0 DATA block N (its number on the wire mod 2^16). */
  n: number;
  /** What was sent as packet n and is not acknowledged yet (undefined: waiting for a read). */
  packet?: Uint8Array;
  /** Packet n is the last DATA block. */
  last: boolean;
  /** An ACK has arrived. */
  acked: boolean;
  /** The file's bytes read ahead of the guest (see READ_AHEAD). */
  ahead: ReadAhead;
  /** Timeouts in a row without progress. */
  tries: number;
  timer?: NodeJS.Timeout;
  ended: boolean;
}

/** File bytes [at, at + data.length) read ahead; `eof` once a read came back short. */
interface ReadAhead {
  at: number;
  data: Uint8Array;
  eof: boolean;
  reading: boolean;
}

/** What a read request asks for. */
interface Request {
  name: string;
  /** The options we answer in the OACK, in the client's order. */
  blksize?: number;
  tsize: boolean;
  order: ('blksize' | 'tsize')[];
}

export class TftpServer {
  /** DIR's real path: every file served resolves inside it. */
  readonly root: string;
  private readonly byPort = new Map<number, Session>();
  private readonly byClient = new Map<string, Session>();
  /** Ports of transfers that ended recently → when they may be reused (late packets dropped). */
  private readonly linger = new Map<number, number>();
  private next = Math.floor(Math.random() * PORTS);
  private closed = false;

  /** Checks that `dir` is an existing directory (NetSpecError if not) and resolves it. */
  constructor(
    dir: string,
    private readonly limits: UserNetLimits,
    private readonly counters: Counters,
    private readonly send: TftpSend,
  ) {
    try {
      if (!statSync(dir).isDirectory()) throw new NetSpecError(`tftp=${dir}: not a directory`);
      this.root = realpathSync(dir);
    } catch (e) {
      if (e instanceof NetSpecError) throw e;
      const code = (e as NodeJS.ErrnoException).code;
      throw new NetSpecError(
        `tftp=${dir}: ${code === 'ENOENT' ? 'no such directory' : (e as Error).message}`,
      );
    }
  }

  /** Transfers in progress. */
  get size(): number {
    return this.byPort.size;
  }

  /**
   * A datagram from the guest's (client, cport) to our address `server`, port `dport`. False
   * when it is not TFTP's (neither port 69 nor a transfer's port): it is then ordinary UDP.
   */
  input(server: IpAddr, client: IpAddr, cport: number, dport: number, m: Uint8Array): boolean {
    if (this.closed) return false;
    if (dport === TFTP_PORT) {
      this.toServerPort(server, client, cport, m);
      return true;
    }
    const s = this.byPort.get(dport);
    if (s) {
      this.toTransfer(s, client, cport, m);
      return true;
    }
    const until = this.linger.get(dport);
    if (until === undefined) return false;
    if (Date.now() >= until) {
      this.linger.delete(dport);
      return false;
    }
    this.counters.count('drop_tftp_late');
    return true;
  }

  /** Ends every transfer and closes its file. Idempotent. */
  close(): void {
    this.closed = true;
    for (const s of [...this.byPort.values()]) this.end(s);
    this.linger.clear();
  }

  /** A request (or a stray packet) to port 69. */
  private toServerPort(server: IpAddr, client: IpAddr, cport: number, m: Uint8Array): void {
    const reply = (code: number, msg: string): void =>
      this.error(server, TFTP_PORT, client, cport, code, msg);
    if (m.length < 2) return this.counters.count('drop_tftp_runt');
    const op = get16(m, 0);
    if (op === WRQ) {
      this.counters.count('tftp_denied');
      return reply(E_ACCESS, 'read-only server: writes are not allowed');
    }
    if (op === DATA || op === ACK || op === ERROR || op === OACK) {
      // Not a request: nothing to answer (its transfer, if any, has another port).
      return this.counters.count('drop_tftp_stray');
    }
    if (op !== RRQ) {
      this.counters.count('tftp_malformed');
      return reply(E_ILLEGAL, 'illegal TFTP operation');
    }
    this.counters.count('tftp_requests');
    const r = this.parseRequest(m);
    if (typeof r === 'string') return reply(E_ILLEGAL, r);
    const key = `${addrKey(client)}:${cport}`;
    const old = this.byClient.get(key);
    if (old) {
      // The same request again before any ACK: the guest did not hear us yet; answer again
      // from the same port. Anything else from that port replaces the transfer (as slirp).
      if (!old.acked && sameBytes(old.request, m)) {
        if (old.packet) this.transmit(old, true);
        return;
      }
      this.counters.count('tftp_restarted');
      this.end(old);
    }
    const under = nameUnderRoot(r.name);
    if (typeof under === 'string') {
      this.counters.count('tftp_denied');
      return reply(E_ACCESS, under);
    }
    r.name = under.path;
    if (this.byPort.size >= this.limits.tftpSessions) {
      this.counters.count('tftp_session_limit');
      return reply(E_UNDEFINED, 'too many transfers at once; try again later');
    }
    const port = this.freePort();
    if (port === undefined) {
      this.counters.count('tftp_session_limit');
      return reply(E_UNDEFINED, 'no free transfer port; try again later');
    }
    const cap = GUEST_MTU - (typeof client === 'number' ? 20 : 40) - 8 - 4;
    const s: Session = {
      server,
      port,
      client,
      cport,
      clientKey: key,
      request: m.slice(),
      blksize: r.blksize === undefined ? BLOCK : Math.min(r.blksize, cap),
      n: 0,
      last: false,
      acked: false,
      ahead: { at: 0, data: new Uint8Array(0), eof: false, reading: false },
      tries: 0,
      ended: false,
    };
    this.byPort.set(port, s);
    this.byClient.set(key, s);
    this.arm(s);
    this.start(s, r).catch(() => this.counters.count('drop_internal_error'));
  }

  /**
   * Parses an RRQ: "name\0mode\0" then "option\0value\0" pairs. A string is why it is refused
   * (malformed); unknown options and option values out of range are ignored (RFC 2347).
   */
  private parseRequest(m: Uint8Array): Request | string {
    const fields: Uint8Array[] = [];
    let at = 2;
    while (at < m.length) {
      const z = m.indexOf(0, at);
      if (z < 0) break;
      fields.push(m.subarray(at, z));
      at = z + 1;
    }
    const malformed = (why: string): string => {
      this.counters.count('tftp_malformed');
      return why;
    };
    if (at < m.length) return malformed('malformed request: a field without its NUL');
    if (fields.length === 0) return malformed('malformed request: no file name');
    if (fields[0].length === 0) return malformed('malformed request: empty file name');
    if (fields[0].length > MAX_NAME) {
      return malformed(`file name longer than ${MAX_NAME} bytes`);
    }
    if (fields.length < 2) return malformed('malformed request: no transfer mode');
    const mode = ascii(fields[1]).toLowerCase();
    if (mode !== 'octet') {
      this.counters.count('tftp_unsupported_mode');
      return `unsupported transfer mode "${mode.slice(0, 16)}": only octet`;
    }
    if (fields.length % 2 !== 0) return malformed('malformed request: an option without value');
    const r: Request = { name: new TextDecoder().decode(fields[0]), tsize: false, order: [] };
    for (let i = 2; i < fields.length; i += 2) {
      const k = ascii(fields[i]).toLowerCase();
      const v = ascii(fields[i + 1]);
      if (k !== 'blksize' && k !== 'tsize') continue;
      if (r.order.includes(k)) continue;
      const n = /^\d{1,10}$/.test(v) ? Number(v) : NaN;
      if (k === 'blksize' && n >= MIN_BLKSIZE && n <= MAX_BLKSIZE) r.blksize = n;
      else if (k === 'tsize' && n >= 0) r.tsize = true;
      else {
        this.counters.count('tftp_bad_options');
        continue;
      }
      r.order.push(k);
    }
    return r;
  }

  /** Opens the file a request names (asynchronously) and sends the OACK or block 1. */
  private async start(s: Session, r: Request): Promise<void> {
    let fh: FileHandle | undefined;
    let size: number;
    try {
      const real = await realpath(join(this.root, r.name));
      const inside = this.root.endsWith(sep) ? this.root : this.root + sep;
      if (real === this.root) return this.refuse(s, 'not a regular file');
      if (!real.startsWith(inside)) return this.refuse(s, 'outside the TFTP directory');
      if (!(await stat(real)).isFile()) return this.refuse(s, 'not a regular file');
      if (s.ended) return;
      // No FIFO can be swapped in between: O_NONBLOCK keeps open from waiting for a writer.
      fh = await open(real, constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0) | O_NONBLOCK);
      const st = await fh.stat();
      if (s.ended || !st.isFile()) {
        void fh.close().catch(() => {});
        return s.ended ? undefined : this.refuse(s, 'not a regular file');
      }
      size = st.size;
    } catch (e) {
      if (fh) void fh.close().catch(() => {});
      if (s.ended) return;
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') {
        this.counters.count('tftp_not_found');
        return this.fail(s, E_NOT_FOUND, 'file not found');
      }
      if (code === 'EACCES' || code === 'EPERM' || code === 'ELOOP') {
        return this.refuse(s, 'permission denied');
      }
      this.counters.count('tftp_read_errors');
      return this.fail(s, E_UNDEFINED, `cannot open: ${code ?? 'error'}`);
    }
    s.fh = fh;
    this.counters.count('tftp_files_opened');
    if (r.order.length === 0) return this.fill(s);
    const opts: string[] = [];
    for (const k of r.order) opts.push(k, k === 'blksize' ? String(s.blksize) : String(size));
    const body = new TextEncoder().encode(opts.join('\0') + '\0');
    const oack = new Uint8Array(2 + body.length);
    put16(oack, 0, OACK);
    oack.set(body, 2);
    this.counters.count('tftp_oacks');
    s.packet = oack;
    s.tries = 0;
    this.transmit(s, false);
    this.arm(s);
    this.fill(s);
  }

  /** A packet to a transfer's port. */
  private toTransfer(s: Session, client: IpAddr, cport: number, m: Uint8Array): void {
    if (cport !== s.cport || addrKey(client) !== addrKey(s.client)) {
      // RFC 1350: a packet from another TID is answered with an error; the transfer goes on.
      this.counters.count('tftp_unknown_tid');
      return this.error(s.server, s.port, client, cport, E_UNKNOWN_TID, 'unknown transfer ID');
    }
    if (m.length < 2) return this.counters.count('drop_tftp_runt');
    const op = get16(m, 0);
    if (op === ERROR) {
      this.counters.count('tftp_client_errors');
      return this.end(s);
    }
    if (op !== ACK) {
      this.counters.count('tftp_malformed');
      return this.fail(s, E_ILLEGAL, 'illegal TFTP operation');
    }
    if (m.length < 4) return this.counters.count('drop_tftp_runt');
    s.acked = true;
    if (!s.packet || get16(m, 2) !== (s.n & 0xffff)) {
      // Acknowledged already, or an older block: sending again would double every packet
      // from here on (the Sorcerer's Apprentice); the timeout resends what is lost.
      return this.counters.count('tftp_dup_acks');
    }
    s.packet = undefined;
    s.tries = 0;
    if (s.last) {
      this.counters.count('tftp_files_sent');
      return this.end(s);
    }
    if (!this.sendNext(s)) this.arm(s);
  }

  /**
   * Sends the block after packet n if its bytes have been read (true), which is the guest's
   * next wish whenever nothing is in flight; else the read under way will send it.
   */
  private sendNext(s: Session): boolean {
    const k = s.n + 1;
    const a = s.ahead;
    const from = (k - 1) * s.blksize;
    const end = a.at + a.data.length;
    if (from < a.at || (from + s.blksize > end && !a.eof)) return false;
    const len = Math.max(0, Math.min(s.blksize, end - from));
    const packet = new Uint8Array(4 + len);
    packet.set(a.data.subarray(from - a.at, from - a.at + len), 4);
    this.sendData(s, k, packet);
    return true;
  }

  /**
   * Reads on when less than READ_AHEAD bytes are left past packet n: the bytes before it are
   * dropped (a resend uses the packet), the new ones appended. A transfer waiting for them
   * (nothing in flight) gets its next block as soon as they are in.
   */
  private fill(s: Session): void {
    const a = s.ahead;
    const next = s.n * s.blksize;
    if (a.reading || a.eof || a.at + a.data.length - next >= READ_AHEAD) return;
    const keep = a.data.subarray(Math.max(0, next - a.at));
    const at = a.at + a.data.length;
    const buf = new Uint8Array(keep.length + READ_AHEAD);
    buf.set(keep);
    a.reading = true;
    s.fh!.read(buf, keep.length, READ_AHEAD, at)
      .then(
        ({ bytesRead }) => {
          if (s.ended) return;
          a.reading = false;
          a.at = at - keep.length;
          a.data = buf.subarray(0, keep.length + bytesRead);
          a.eof = bytesRead < READ_AHEAD;
          if (!s.packet) this.sendNext(s);
          else this.fill(s);
        },
        () => {
          if (s.ended) return;
          this.counters.count('tftp_read_errors');
          this.fail(s, E_UNDEFINED, 'read error');
        },
      )
      .catch(() => this.counters.count('drop_internal_error'));
  }

  private sendData(s: Session, k: number, packet: Uint8Array): void {
    put16(packet, 0, DATA);
    put16(packet, 2, k & 0xffff);
    s.n = k;
    s.packet = packet;
    s.last = packet.length - 4 < s.blksize;
    s.tries = 0;
    this.counters.count('tftp_bytes', packet.length - 4);
    this.transmit(s, false);
    this.arm(s);
    if (!s.last) this.fill(s);
  }

  private transmit(s: Session, again: boolean): void {
    if (again) this.counters.count('tftp_retransmits');
    this.out(s.server, s.port, s.client, s.cport, s.packet!);
  }

  /** To the guest; runs from timers and file reads too, so it never throws. */
  private out(src: IpAddr, sport: number, dst: IpAddr, dport: number, p: Uint8Array): void {
    try {
      this.send(src, sport, dst, dport, p);
    } catch {
      this.counters.count('drop_internal_error');
    }
  }

  /** (Re)starts the transfer's timeout. */
  private arm(s: Session): void {
    clearTimeout(s.timer);
    s.timer = setTimeout(() => {
      try {
        this.timeout(s);
      } catch {
        this.counters.count('drop_internal_error');
      }
    }, this.limits.tftpTimeoutMs);
    s.timer.unref();
  }

  /** No ACK (or no host read done) in time: send again, or give up after the retries. */
  private timeout(s: Session): void {
    if (s.ended) return;
    if (s.tries >= this.limits.tftpRetries) {
      this.counters.count('tftp_timeouts');
      return this.end(s);
    }
    s.tries++;
    if (s.packet) this.transmit(s, true);
    this.arm(s);
  }

  /** An access violation (counted as denied) that ends the transfer. */
  private refuse(s: Session, why: string): void {
    if (s.ended) return;
    this.counters.count('tftp_denied');
    this.fail(s, E_ACCESS, `access violation: ${why}`);
  }

  /** Sends an ERROR from the transfer's port and ends it. */
  private fail(s: Session, code: number, msg: string): void {
    this.error(s.server, s.port, s.client, s.cport, code, msg);
    this.end(s);
  }

  private error(
    src: IpAddr,
    sport: number,
    dst: IpAddr,
    dport: number,
    code: number,
    msg: string,
  ): void {
    const text = new TextEncoder().encode(msg);
    const p = new Uint8Array(5 + text.length);
    put16(p, 0, ERROR);
    put16(p, 2, code);
    p.set(text, 4);
    this.counters.count('tftp_errors');
    this.out(src, sport, dst, dport, p);
  }

  /** Ends a transfer: timer stopped, file closed, its port dropping late packets a while. */
  private end(s: Session): void {
    if (s.ended) return;
    s.ended = true;
    clearTimeout(s.timer);
    this.byPort.delete(s.port);
    if (this.byClient.get(s.clientKey) === s) this.byClient.delete(s.clientKey);
    // FileHandle.close waits for a read in flight.
    if (s.fh) void s.fh.close().catch(() => {});
    s.fh = undefined;
    s.ahead.data = new Uint8Array(0);
    if (this.closed) return;
    if (this.linger.size >= MAX_LINGER) this.linger.delete(this.linger.keys().next().value!);
    const ms = this.limits.tftpTimeoutMs * (this.limits.tftpRetries + 1);
    this.linger.set(s.port, Date.now() + ms);
  }

  /** A port for a new transfer: not one in use or lingering. */
  private freePort(): number | undefined {
    const now = Date.now();
    for (let i = 0; i < PORTS; i++) {
      const p = FIRST_PORT + ((this.next + i) % PORTS);
      if (this.byPort.has(p)) continue;
      const until = this.linger.get(p);
      if (until !== undefined) {
        if (now < until) continue;
        this.linger.delete(p);
      }
      this.next = (p - FIRST_PORT + 1) % PORTS;
      return p;
    }
    return undefined;
  }
}

/** O_NONBLOCK where the platform has it (not on Windows). */
const O_NONBLOCK = (constants as { O_NONBLOCK?: number }).O_NONBLOCK ?? 0;

/**
 * The name under DIR a request asks for: leading slashes go (as with slirp, "/boot/x" is
 * DIR/boot/x, as netboot clients often ask), a string starting "access violation" is why it is
 * refused before the file system is asked.
 */
function nameUnderRoot(name: string): { path: string } | string {
  const path = name.replace(/^[\\/]+/, '');
  if (/^[a-z]:/i.test(path) || isAbsolute(path)) return 'access violation: a drive or UNC name';
  if (path.split(/[\\/]/).includes('..')) return 'access violation: ".." in the file name';
  return { path };
}

const ascii = (b: Uint8Array): string => String.fromCharCode(...b.subarray(0, 64));

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
