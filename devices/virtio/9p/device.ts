/**
 * virtio-9p (virtio 1.2 §5.13's "9P transport", QEMU's `virtio-9p-device`): a host folder shared
 * with the guest. One request queue; each chain carries a 9P2000.L T-message in its
 * driver-readable buffers and room for the R-message in its device-writable ones. The file
 * server (devices/9p/server.ts) answers synchronously; this model only moves bytes between the
 * ring and the server. The config space holds the mount tag the guest names in
 * `mount -t 9p -o trans=virtio TAG DIR`.
 */
import { NinePServer, type NinePShareOptions } from '../../9p/server.js';
import { DEVICE_ID } from '../constants.js';
import { readLE, type VirtioContext, type VirtioDevice } from '../device.js';
import type { DescriptorChain } from '../ring.js';
import { HEADER_SIZE } from '../../9p/wire.js';

/** VIRTIO_9P_MOUNT_TAG: the config space names the share. */
const F_MOUNT_TAG = 1n << 0n;
/** The longest tag Linux's driver accepts (its config read is bounded by this). */
export const MAX_TAG_BYTES = 31;
/** Linux's 9p transport posts at most 128 descriptors per queue (VIRTQUEUE_NUM). */
const QUEUE_SIZE = 128;

export interface Virtio9pMetrics {
  [name: string]: number;
  /** Chains answered. */
  requests: number;
  /** Chains whose request did not fit the bounds (answered empty). */
  bad_requests: number;
  /**
   * Requests the server answered with an error (Rlerror: a name not found is one); not the
   * transport's `errors`, which counts the driver's protocol violations.
   */
  error_replies: number;
  /**
   * File data the guest read from the share and wrote into it (Tread/Twrite payloads): the
   * device list's throughput charts take every *_bytes counter, as they do a disk's.
   */
  read_bytes: number;
  write_bytes: number;
}

export interface Virtio9pOptions extends NinePShareOptions {
  /** Mount tag (1..31 bytes of UTF-8, no NUL). */
  tag: string;
  name?: string;
}

/** Checks a mount tag: what the guest types after `mount -t 9p -o trans=virtio`. */
export function checkMountTag(tag: string): string | undefined {
  const bytes = new TextEncoder().encode(tag);
  if (bytes.length === 0) return 'the tag is empty';
  if (bytes.length > MAX_TAG_BYTES) return `the tag is longer than ${MAX_TAG_BYTES} bytes`;
  if (/[\0\s,]/.test(tag)) return 'the tag has a space, a comma or a NUL';
  return undefined;
}

type Segment = DescriptorChain['segments'][number];

/** The chain's readable buffers as one T-message, or undefined when no msize could hold it. */
function gather(segments: readonly Segment[]): Uint8Array | undefined {
  let size = 0;
  for (const s of segments) if (!s.writable) size += s.view.length;
  if (size < HEADER_SIZE || size > NinePServer.MAX_MSIZE) return undefined;
  const req = new Uint8Array(size);
  let at = 0;
  for (const s of segments) {
    if (s.writable) continue;
    req.set(s.view, at);
    at += s.view.length;
  }
  return req;
}

/** Copies `reply` over the writable buffers in order; returns the bytes written. */
function scatter(reply: Uint8Array, segments: readonly Segment[]): number {
  let written = 0;
  for (const s of segments) {
    if (!s.writable || written >= reply.length) continue;
    const n = Math.min(s.view.length, reply.length - written);
    s.view.set(reply.subarray(written, written + n));
    written += n;
  }
  return written;
}

export class Virtio9p implements VirtioDevice {
  readonly deviceId = DEVICE_ID.ninep;
  readonly features = F_MOUNT_TAG;
  readonly queueMaxSizes: readonly number[] = [QUEUE_SIZE];
  readonly name: string;
  readonly tag: string;
  readonly root: string;
  readonly metrics: Virtio9pMetrics = {
    requests: 0,
    bad_requests: 0,
    error_replies: 0,
    read_bytes: 0,
    write_bytes: 0,
  };
  onConfigChange?: () => void;
  private readonly server: NinePServer;
  private readonly config: Uint8Array;
  private ctx: VirtioContext | undefined;

  constructor(o: Virtio9pOptions) {
    const bad = checkMountTag(o.tag);
    if (bad) throw new Error(`shared folder ${o.root}: ${bad}`);
    this.name = o.name ?? 'virtio-9p0';
    this.tag = o.tag;
    this.root = o.root;
    this.server = new NinePServer(o);
    const tag = new TextEncoder().encode(o.tag);
    this.config = new Uint8Array(2 + tag.length);
    this.config[0] = tag.length;
    this.config.set(tag, 2);
  }

  /** The guest may not change anything in the folder (EROFS); may be switched while it runs. */
  get readOnly(): boolean {
    return this.server.readOnly;
  }
  set readOnly(on: boolean) {
    this.server.readOnly = on;
  }

  /** The guest has the share mounted (some fid is in use): it holds state no file can carry. */
  get inUse(): boolean {
    return this.server.fidCount > 0;
  }

  readConfig(offset: number, size: number): number {
    return readLE(this.config, offset, size);
  }
  writeConfig(): void {} // read-only

  activate(ctx: VirtioContext): void {
    this.ctx = ctx;
  }

  notify(): void {
    const ctx = this.ctx;
    if (!ctx) return;
    const q = ctx.queues[0];
    let served = 0;
    for (let c = q.pop(); c; c = q.pop()) {
      q.push(c.head, this.serve(c.segments));
      served++;
    }
    if (served) ctx.signalUsed(q);
  }

  /** Answers one chain; returns the bytes written into its writable buffers. */
  private serve(segments: readonly Segment[]): number {
    this.metrics.requests++;
    const req = gather(segments);
    // A request larger than any msize the server agrees to is not a request: answer empty.
    if (!req) {
      this.metrics.bad_requests++;
      return 0;
    }
    const room = segments.reduce((n, s) => n + (s.writable ? s.view.length : 0), 0);
    const written = scatter(this.server.handle(req, room), segments);
    const m = this.server.metrics;
    this.metrics.error_replies = m.errors;
    this.metrics.read_bytes = m.bytes_read;
    this.metrics.write_bytes = m.bytes_written;
    return written;
  }

  /** Device reset: the guest's fids (and the host files they hold open) are gone. */
  reset(): void {
    this.ctx = undefined;
    this.server.reset();
  }

  saveState(): { version: 1 } {
    return { version: 1 };
  }

  /**
   * A saved state never has the share mounted (saving refuses then), so fids held now belong to a
   * guest that is being replaced (loadvm while mounted): they are dropped.
   */
  restoreState(s: unknown): void {
    if ((s as { version?: number } | undefined)?.version !== 1) {
      throw new Error(`${this.name}: unsupported state`);
    }
    this.server.reset();
  }
}
