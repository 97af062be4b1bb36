/**
 * A 9P2000.L file server for virtio-9p shared folders: transport-free and synchronous. The
 * virtio device hands it each request's bytes and copies back the reply. It frames messages,
 * dispatches them to the handlers in ops-*.ts, turns every failure into Rlerror, and never
 * throws whatever the guest sends.
 */
import { constants } from 'node:fs';
import { E, errnoFromHost, NineError } from './errno.js';
import { FidTable } from './fid-table.js';
import { ShareFs } from './host-fs.js';
import { REPLY_SIZE, RLERROR, T } from './messages.js';
import * as attr from './ops-attr.js';
import * as dir from './ops-dir.js';
import * as file from './ops-file.js';
import * as session from './ops-session.js';
import type { Handler, NinePMetrics, Session } from './session.js';
import { BadStringError, HEADER_SIZE, ProtocolError, Reader, Writer } from './wire.js';

export type { NinePMetrics } from './session.js';

export interface NinePShareOptions {
  /** Host directory exported. Must exist and be a directory (constructor throws a clear Error otherwise). */
  root: string;
  /** Refuse every change with EROFS. */
  readOnly?: boolean;
  /** Bounds so a guest cannot exhaust host resources (defaults: 16384 fids, 1024 open host fds). */
  maxFids?: number;
  maxOpenFiles?: number;
}

/** msize before Tversion negotiates one. */
const DEFAULT_MSIZE = 8192;
const EMPTY = new Uint8Array(0);
const RLERROR_SIZE = HEADER_SIZE + 4;

function positiveInt(v: number | undefined, fallback: number, what: string): number {
  if (v === undefined) return fallback;
  if (!Number.isInteger(v) || v < 1)
    throw new Error(`9p share: ${what} must be a positive integer`);
  return v;
}

export class NinePServer {
  /** The largest msize this server agrees to; Tversion answers min(client's, this). */
  static readonly MAX_MSIZE = 512 * 1024;

  readonly metrics: NinePMetrics = {
    requests: 0,
    errors: 0,
    bytes_read: 0,
    bytes_written: 0,
    bad_requests: 0,
  };

  private readonly session: Session;
  private readonly handlers: ReadonlyMap<number, Handler>;

  constructor(opts: NinePShareOptions) {
    if (!constants.O_NOFOLLOW) throw new Error('9p shares need a POSIX host (O_NOFOLLOW)');
    const fids = new FidTable(
      positiveInt(opts.maxFids, 16384, 'maxFids'),
      positiveInt(opts.maxOpenFiles, 1024, 'maxOpenFiles'),
    );
    this.session = {
      share: new ShareFs(opts.root),
      fids,
      readOnly: opts.readOnly ?? false,
      metrics: this.metrics,
      msize: DEFAULT_MSIZE,
    };
    this.handlers = new Map<number, Handler>([
      [T.version, session.version(NinePServer.MAX_MSIZE)],
      [T.auth, session.auth],
      [T.attach, session.attach],
      [T.flush, session.flush],
      [T.walk, session.walk],
      [T.clunk, session.clunk],
      [T.xattrwalk, session.notSupported],
      [T.xattrcreate, session.notSupported],
      [T.lopen, file.lopen],
      [T.lcreate, file.lcreate],
      [T.read, file.read],
      [T.write, file.write],
      [T.fsync, file.fsync],
      [T.lock, file.lock],
      [T.getlock, file.getlock],
      [T.readdir, dir.readdir],
      [T.mkdir, dir.mkdir],
      [T.mknod, dir.mknod],
      [T.symlink, dir.symlink],
      [T.readlink, dir.readlink],
      [T.link, dir.link],
      [T.rename, dir.rename],
      [T.renameat, dir.renameat],
      [T.unlinkat, dir.unlinkat],
      [T.remove, dir.remove],
      [T.getattr, attr.getattr],
      [T.setattr, attr.setattr],
      [T.statfs, attr.statfs],
    ]);
  }

  /**
   * Handles one T-message. The reply never exceeds `maxReply` bytes (Rread/Rreaddir shrink to
   * fit; if not even an Rlerror fits, the reply is empty). Never throws.
   */
  handle(req: Uint8Array, maxReply: number): Uint8Array {
    this.metrics.requests++;
    try {
      return this.dispatch(req, maxReply);
    } catch {
      // Unreachable by design (dispatch catches handler failures); kept so nothing escapes.
      this.metrics.bad_requests++;
      return EMPTY;
    }
  }

  /** Device reset: closes every host fd, forgets every fid. */
  reset(): void {
    this.session.fids.clear();
    this.session.msize = DEFAULT_MSIZE;
  }

  /**
   * Refuse every change (EROFS) from the next request on; switched while the guest runs, a file
   * it opened for writing refuses its next write too, as a disk switched read-only does.
   */
  get readOnly(): boolean {
    return this.session.readOnly;
  }
  set readOnly(on: boolean) {
    this.session.readOnly = on;
  }

  /** Fids in use (for refusing to save a VM while the share is mounted). */
  get fidCount(): number {
    return this.session.fids.size;
  }

  private dispatch(req: Uint8Array, maxReply: number): Uint8Array {
    if (req.length < HEADER_SIZE) {
      this.metrics.bad_requests++;
      return EMPTY;
    }
    const r = new Reader(req);
    const size = r.u32();
    const type = r.u8();
    const tag = r.u16();
    if (size !== req.length || size > this.session.msize) {
      this.metrics.bad_requests++;
      return this.error(tag, E.EPROTO, maxReply);
    }
    const handler = this.handlers.get(type);
    if (!handler) return this.error(tag, E.EOPNOTSUPP, maxReply);
    if (maxReply < (REPLY_SIZE[type] ?? HEADER_SIZE)) return this.error(tag, E.EMSGSIZE, maxReply);
    const w = new Writer();
    try {
      handler(this.session, r, w, maxReply);
    } catch (err) {
      return this.error(tag, this.errnoOf(err), maxReply);
    }
    const reply = w.frame(type + 1, tag);
    return reply.length <= maxReply ? reply : this.error(tag, E.EMSGSIZE, maxReply);
  }

  private errnoOf(err: unknown): number {
    if (err instanceof NineError) return err.errno;
    if (err instanceof ProtocolError) {
      this.metrics.bad_requests++;
      return E.EPROTO;
    }
    if (err instanceof BadStringError) return E.EILSEQ;
    return errnoFromHost(err);
  }

  private error(tag: number, errno: number, maxReply: number): Uint8Array {
    this.metrics.errors++;
    if (maxReply < RLERROR_SIZE) return EMPTY;
    return new Writer().u32(errno).frame(RLERROR, tag);
  }
}
