/**
 * The I/O scheduler stage between a block device model and its back end. It is itself a
 * BlockBackend, so the device does not know it is there. It
 * - queues requests and sends at most `inFlight` calls at a time to the back end, choosing the
 *   next one by policy (noop, sstf, scan, deadline, lifo, random, cfq: see
 *   scheduler-policies.ts), switchable live; under cfq the disk also waits for its time slice
 *   from the process-wide coordinator (cfq.ts);
 * - merges queued requests of the same kind at contiguous offsets into one back-end call
 *   (reads/writes through readv/writev into the callers' own buffers: no copy);
 * - treats flush as a barrier: it is sent once everything queued before it has completed, and
 *   nothing queued after it starts before it completes (FLUSH means durable, for all of them);
 * - counts per disk: requests by kind, merges, bytes, queue depth, latency percentiles, errors.
 *
 * Requests queued at the same time carry no order between them (as with virtio-blk and Linux's
 * block layer), except across a flush. Requests submitted in one synchronous run (one virtqueue
 * notification) are gathered before the first dispatch — Linux's "plugging" — so that the
 * policy and the merger see them together.
 */
import type { SchedulerPolicy } from '../../main/vm/config.js';
import { SCHEDULERS } from '../../main/vm/config.js';
import { BlockError, isVectored, type BlockBackend } from './backend.js';
import { processCfq, type CfqArbiter, type CfqMember } from './cfq.js';
import { LatencyHistogram, type LatencySummary } from './latency-histogram.js';
import { checkRange } from './request-check.js';
import {
  initialPolicyState,
  pickNext,
  type DeadlineTuning,
  type PolicyState,
  type QueuedRequest,
  type RequestKind,
} from './scheduler-policies.js';

export interface SchedulerOptions {
  policy?: SchedulerPolicy;
  /** Back-end calls in flight at once (default 4, libuv's default thread pool size). */
  inFlight?: number;
  /** Largest merged read/write, in bytes (default 1 MiB). */
  maxMergeBytes?: number;
  /** Most requests merged into one call (default 64; well under IOV_MAX). */
  maxMergeSegments?: number;
  /** Deadline expiry, ms after arrival (Linux: reads 500, writes 5000). */
  readExpireMs?: number;
  writeExpireMs?: number;
  deadline?: Partial<DeadlineTuning>;
  /** Clock in ms (tests drive deadline expiry with a fake one). */
  now?: () => number;
  /** Seed of the random policy's generator (default 1: runs are reproducible). */
  randomSeed?: number;
  /** Where cfq's time slices come from (default: the one shared by the whole process). */
  cfq?: CfqArbiter;
}

export interface SchedulerStats {
  policy: SchedulerPolicy;
  inFlightLimit: number;
  requests: {
    total: number;
    read: number;
    write: number;
    flush: number;
    discard: number;
    writeZeroes: number;
  };
  /** Requests that rode along in another request's back-end call. */
  merges: number;
  backendCalls: number;
  bytesRead: number;
  bytesWritten: number;
  /** Requests submitted and not yet completed (queued + at the back end). */
  queueDepth: number;
  maxQueueDepth: number;
  /** Back-end calls running now. */
  inFlight: number;
  /** Submission to completion, in µs. */
  latencyUs: LatencySummary;
  /** Requests that completed with an error (including ones refused on arrival). */
  errors: number;
}

interface Request extends QueuedRequest {
  readonly buf: Uint8Array | undefined;
  readonly unmap: boolean;
  readonly submitted: number;
  resolve(): void;
  reject(e: unknown): void;
}

/** Requests between two flushes; `flushWaiters` is null while the epoch is still open. */
interface Epoch {
  pending: Request[];
  running: number;
  flushWaiters: { resolve(): void; reject(e: unknown): void; submitted: number }[] | null;
  flushIssued: boolean;
}

const isWriteKind = (k: RequestKind): boolean => k !== 'read';

export class IoScheduler implements BlockBackend {
  private policy: SchedulerPolicy;
  private readonly limit: number;
  private readonly maxMergeBytes: number;
  private readonly maxMergeSegments: number;
  private readonly readExpireMs: number;
  private readonly writeExpireMs: number;
  private readonly tuning: DeadlineTuning;
  private readonly now: () => number;
  private readonly vectored: boolean;
  private state: PolicyState;
  private readonly seed: number;
  private readonly cfq: CfqArbiter;
  private readonly member: CfqMember = {
    hasWork: () => this.epochs[0].pending.length > 0,
    busy: () => this.depth > 0,
    kick: () => this.dispatch(),
  };
  private readonly epochs: Epoch[] = [IoScheduler.openEpoch()];
  private active = 0;
  private depth = 0;
  private plugged = false;
  private closing = false;
  private idle: (() => void) | undefined;
  private readonly latency = new LatencyHistogram();
  private readonly counts = {
    total: 0,
    read: 0,
    write: 0,
    flush: 0,
    discard: 0,
    writeZeroes: 0,
    merges: 0,
    backendCalls: 0,
    bytesRead: 0,
    bytesWritten: 0,
    maxQueueDepth: 0,
    errors: 0,
  };

  constructor(
    private readonly backend: BlockBackend,
    opts: SchedulerOptions = {},
  ) {
    this.policy = IoScheduler.checkPolicy(opts.policy ?? 'noop');
    const limit = opts.inFlight ?? 4;
    if (!Number.isInteger(limit) || limit < 1 || limit > 1024) {
      throw new RangeError(`in-flight limit must be an integer in 1..1024 (got ${limit})`);
    }
    this.limit = limit;
    this.maxMergeBytes = opts.maxMergeBytes ?? 1 << 20;
    this.maxMergeSegments = Math.max(1, opts.maxMergeSegments ?? 64);
    this.readExpireMs = opts.readExpireMs ?? 500;
    this.writeExpireMs = opts.writeExpireMs ?? 5000;
    this.tuning = { fifoBatch: 16, writesStarved: 2, ...opts.deadline };
    this.now = opts.now ?? (() => performance.now());
    this.vectored = isVectored(backend);
    this.seed = opts.randomSeed ?? 1;
    this.state = initialPolicyState(this.seed);
    this.cfq = opts.cfq ?? processCfq();
    if (this.policy === 'cfq') this.cfq.join(this.member);
  }

  get name(): string {
    return this.backend.name;
  }
  get size(): number {
    return this.backend.size;
  }
  get readOnly(): boolean {
    return this.backend.readOnly;
  }
  get currentPolicy(): SchedulerPolicy {
    return this.policy;
  }

  /** Switches policy; the next dispatch uses it (queued requests are kept). */
  setPolicy(policy: SchedulerPolicy): void {
    this.policy = IoScheduler.checkPolicy(policy);
    const head = this.state.head;
    this.state = { ...initialPolicyState(this.seed), head };
    if (policy === 'cfq') this.cfq.join(this.member);
    else this.cfq.leave(this.member);
    this.dispatch();
  }

  read(offset: number, buf: Uint8Array): Promise<void> {
    return this.submit('read', offset, buf.length, buf, false);
  }
  write(offset: number, buf: Uint8Array): Promise<void> {
    return this.submit('write', offset, buf.length, buf, false);
  }
  discard(offset: number, length: number): Promise<void> {
    return this.submit('discard', offset, length, undefined, true);
  }
  writeZeroes(offset: number, length: number, unmap: boolean): Promise<void> {
    return this.submit('write-zeroes', offset, length, undefined, unmap);
  }

  flush(): Promise<void> {
    this.counts.total++;
    this.counts.flush++;
    if (this.closing) return this.refuse(new BlockError('io', `${this.name}: flush after close`));
    return new Promise<void>((resolve, reject) => {
      this.enter();
      const waiter = { resolve, reject, submitted: this.now() };
      const last = this.epochs[this.epochs.length - 1];
      const prev = this.epochs.length > 1 ? this.epochs[this.epochs.length - 2] : undefined;
      if (last.pending.length === 0 && last.running === 0 && prev && !prev.flushIssued) {
        // Nothing since the previous flush, which has not started yet: one sync serves both.
        prev.flushWaiters!.push(waiter);
        this.counts.merges++;
        return;
      }
      last.flushWaiters = [waiter];
      this.epochs.push(IoScheduler.openEpoch());
      this.plug();
    });
  }

  stats(): SchedulerStats {
    const c = this.counts;
    return {
      policy: this.policy,
      inFlightLimit: this.limit,
      requests: {
        total: c.total,
        read: c.read,
        write: c.write,
        flush: c.flush,
        discard: c.discard,
        writeZeroes: c.writeZeroes,
      },
      merges: c.merges,
      backendCalls: c.backendCalls,
      bytesRead: c.bytesRead,
      bytesWritten: c.bytesWritten,
      queueDepth: this.depth,
      maxQueueDepth: c.maxQueueDepth,
      inFlight: this.active,
      latencyUs: this.latency.summary(),
      errors: c.errors,
    };
  }

  /** Completes everything queued, then closes the back end; later requests are refused. */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    if (this.depth > 0) await new Promise<void>((r) => (this.idle = r));
    this.cfq.leave(this.member);
    await this.backend.close();
  }

  private submit(
    kind: RequestKind,
    offset: number,
    length: number,
    buf: Uint8Array | undefined,
    unmap: boolean,
  ): Promise<void> {
    const c = this.counts;
    c.total++;
    if (kind === 'read') c.read++;
    else if (kind === 'write') c.write++;
    else if (kind === 'discard') c.discard++;
    else c.writeZeroes++;
    try {
      if (this.closing) throw new BlockError('io', `${this.name}: ${kind} after close`);
      if (isWriteKind(kind) && this.readOnly) {
        throw new BlockError('read-only', `${this.name}: ${kind} refused: the disk is read-only`);
      }
      checkRange(this, kind, offset, length);
    } catch (e) {
      return this.refuse(e);
    }
    return new Promise<void>((resolve, reject) => {
      this.enter();
      const submitted = this.now();
      const expire = kind === 'read' ? this.readExpireMs : this.writeExpireMs;
      const req: Request = {
        kind,
        offset,
        length,
        buf,
        unmap,
        submitted,
        deadline: submitted + expire,
        resolve,
        reject,
      };
      this.epochs[this.epochs.length - 1].pending.push(req);
      this.plug();
    });
  }

  private refuse(e: unknown): Promise<void> {
    this.counts.errors++;
    return Promise.reject(e);
  }

  private enter(): void {
    this.depth++;
    if (this.depth > this.counts.maxQueueDepth) this.counts.maxQueueDepth = this.depth;
  }

  private leave(submitted: number): void {
    this.latency.record((this.now() - submitted) * 1000);
    if (--this.depth === 0 && this.idle) this.idle();
  }

  /** Dispatches once the current synchronous run of submissions is over. */
  private plug(): void {
    if (this.plugged) return;
    this.plugged = true;
    queueMicrotask(() => {
      this.plugged = false;
      this.dispatch();
    });
  }

  private dispatch(): void {
    while (this.active < this.limit) {
      const e = this.epochs[0];
      if (e.pending.length > 0) {
        if (this.policy === 'cfq' && !this.cfq.mayDispatch(this.member)) return;
        this.issue(e, this.takeBatch(e));
      } else if (e.flushWaiters && !e.flushIssued && e.running === 0) {
        this.issueFlush(e);
      } else break;
    }
    if (this.policy !== 'cfq') return;
    if (this.depth === 0) this.cfq.idle(this.member);
    else this.cfq.publish(this.member);
  }

  /** Removes the policy's choice from the queue, with the requests that merge with it. */
  private takeBatch(e: Epoch): Request[] {
    const q = e.pending;
    const first = q.splice(pickNext(this.policy, q, this.state, this.now(), this.tuning), 1)[0];
    const batch = [first];
    const data = first.kind === 'read' || first.kind === 'write';
    if (data && !this.vectored) return batch;
    let start = first.offset;
    let end = first.offset + first.length;
    for (let grown = true; grown && batch.length < this.maxMergeSegments;) {
      grown = false;
      for (let i = 0; i < q.length && batch.length < this.maxMergeSegments; i++) {
        const r = q[i];
        if (r.kind !== first.kind || r.unmap !== first.unmap || r.length === 0) continue;
        if (data && end - start + r.length > this.maxMergeBytes) continue;
        if (r.offset === end) {
          batch.push(r);
          end += r.length;
        } else if (r.offset + r.length === start) {
          batch.unshift(r);
          start = r.offset;
        } else continue;
        q.splice(i--, 1);
        grown = true;
      }
    }
    this.counts.merges += batch.length - 1;
    return batch;
  }

  private issue(e: Epoch, batch: Request[]): void {
    this.active++;
    e.running += batch.length;
    const first = batch[0];
    const last = batch[batch.length - 1];
    this.state.head = last.offset + last.length;
    this.counts.backendCalls++;
    this.call(batch).then(
      () => {
        for (const r of batch) this.complete(r, undefined);
        this.retire(e, batch.length);
      },
      async (err: unknown) => {
        if (batch.length === 1) {
          this.complete(
            batch[0],
            err ?? new BlockError('io', `${this.name}: ${first.kind} failed`),
          );
        } else {
          // A merged call failed: retry each request alone, so only the one(s) at fault fail.
          this.counts.backendCalls += batch.length;
          await Promise.all(
            batch.map((r) =>
              this.call([r]).then(
                () => this.complete(r, undefined),
                (e2: unknown) =>
                  this.complete(r, e2 ?? new BlockError('io', `${this.name}: ${r.kind} failed`)),
              ),
            ),
          );
        }
        this.retire(e, batch.length);
      },
    );
  }

  /** One back-end call for a contiguous batch of same-kind requests. */
  private call(batch: readonly Request[]): Promise<void> {
    const first = batch[0];
    const length = batch.reduce((n, r) => n + r.length, 0);
    const b = this.backend;
    try {
      switch (first.kind) {
        case 'read':
          if (batch.length === 1) return b.read(first.offset, first.buf!);
          if (!isVectored(b)) throw new BlockError('unsupported', 'readv');
          return b.readv(
            first.offset,
            batch.map((r) => r.buf!),
          );
        case 'write':
          if (batch.length === 1) return b.write(first.offset, first.buf!);
          if (!isVectored(b)) throw new BlockError('unsupported', 'writev');
          return b.writev(
            first.offset,
            batch.map((r) => r.buf!),
          );
        case 'discard':
          return b.discard(first.offset, length);
        case 'write-zeroes':
          return b.writeZeroes(first.offset, length, first.unmap);
      }
    } catch (e) {
      // A back end that throws synchronously still fails only this call.
      return Promise.reject(e);
    }
  }

  private complete(r: Request, err: unknown): void {
    if (err === undefined) {
      if (r.kind === 'read') this.counts.bytesRead += r.length;
      else this.counts.bytesWritten += r.length;
      r.resolve();
    } else {
      this.counts.errors++;
      r.reject(err);
    }
    this.leave(r.submitted);
  }

  private retire(e: Epoch, n: number): void {
    this.active--;
    e.running -= n;
    this.dispatch();
  }

  private issueFlush(e: Epoch): void {
    e.flushIssued = true;
    this.active++;
    this.counts.backendCalls++;
    const settle = (err: unknown): void => {
      for (const w of e.flushWaiters!) {
        if (err === undefined) w.resolve();
        else {
          this.counts.errors++;
          w.reject(err);
        }
        this.leave(w.submitted);
      }
      this.epochs.shift();
      this.active--;
      this.dispatch();
    };
    let p: Promise<void>;
    try {
      p = this.backend.flush();
    } catch (err) {
      p = Promise.reject(err);
    }
    p.then(
      () => settle(undefined),
      (err) => settle(err ?? new BlockError('io', `${this.name}: flush failed`)),
    );
  }

  private static openEpoch(): Epoch {
    return { pending: [], running: 0, flushWaiters: null, flushIssued: false };
  }

  private static checkPolicy(p: SchedulerPolicy): SchedulerPolicy {
    if (!SCHEDULERS.includes(p)) {
      throw new RangeError(`unknown I/O scheduler "${String(p)}" (${SCHEDULERS.join(', ')})`);
    }
    return p;
  }
}
