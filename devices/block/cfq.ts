/**
 * The cfq policy's between-disks half: fair time slices between the disks of all VMs in one host
 * process (Linux's CFQ, with a disk in the role of a process queue). This is the in-thread
 * coordinator; VM workers use the same rules over shared memory (cfq-shared.ts). Each disk whose
 * scheduler runs cfq joins the coordinator; one of them — the active one — holds the slice and
 * may dispatch, the others wait. The slice ends after `sliceMs` or `sliceRequests` dispatches,
 * whichever comes first, when another disk has work: then the next disk in round-robin order
 * that has work gets it. A disk with nothing queued is skipped.
 *
 * When the active disk runs dry (nothing queued, nothing in flight) it keeps the slice for
 * `idleMs` more (CFQ's slice_idle): a guest doing synchronous I/O submits its next request
 * right after the last one completes, and without this pause every such request would go to
 * the back of the round. So one VM's sequential stream cannot starve another's: the other
 * disk's requests wait at most one slice per disk that has work.
 */

/** What the coordinator needs of a disk's scheduler. */
export interface CfqMember {
  /** Requests queued that could be dispatched (not counting calls already in flight). */
  hasWork(): boolean;
  /** Anything queued or in flight. */
  busy(): boolean;
  /** Its turn has come: try dispatching again. */
  kick(): void;
}

/**
 * What a cfq disk's scheduler talks to: the in-thread coordinator below, or the one spanning the
 * VM worker threads of a host process (cfq-shared.ts).
 */
export interface CfqArbiter {
  readonly memberCount: number;
  /** Slices granted so far. */
  readonly slices: number;
  join(m: CfqMember): void;
  leave(m: CfqMember): void;
  /** Whether `m` may dispatch one request now; counts it against the slice if so. */
  mayDispatch(m: CfqMember): boolean;
  /** `m` has nothing queued or in flight: after `idleMs` its slice passes on. */
  idle(m: CfqMember): void;
  /** `m`'s queue changed (it dispatched or completed): lets other threads see it. */
  publish(m: CfqMember): void;
}

export interface CfqOptions {
  /** Longest slice in ms (default 20). */
  sliceMs?: number;
  /** Most dispatches in one slice (default 64). */
  sliceRequests?: number;
  /** How long a disk that ran dry keeps its slice, in ms (default 2; 0: hand it on at once). */
  idleMs?: number;
  now?: () => number;
}

let processArbiter: CfqArbiter | undefined;

/**
 * The coordinator this thread's cfq disks join by default: an in-thread one unless a VM worker
 * installed the host's cross-thread one (`setProcessCfq`) before opening its disks.
 */
export function processCfq(): CfqArbiter {
  return (processArbiter ??= new CfqCoordinator());
}

export function setProcessCfq(a: CfqArbiter): void {
  processArbiter = a;
}

/** Fair slices between the cfq disks of one thread. */
export class CfqCoordinator implements CfqArbiter {
  private readonly members: CfqMember[] = [];
  private active: CfqMember | undefined;
  private sliceStart = 0;
  private sliceUsed = 0;
  private idleTimer: ReturnType<typeof setTimeout> | undefined;
  private readonly sliceMs: number;
  private readonly sliceRequests: number;
  private readonly idleMs: number;
  private readonly now: () => number;
  /** Slices granted so far. */
  slices = 0;

  constructor(opts: CfqOptions = {}) {
    this.sliceMs = opts.sliceMs ?? 20;
    this.sliceRequests = Math.max(1, opts.sliceRequests ?? 64);
    this.idleMs = opts.idleMs ?? 2;
    this.now = opts.now ?? (() => performance.now());
  }

  get memberCount(): number {
    return this.members.length;
  }

  join(m: CfqMember): void {
    if (!this.members.includes(m)) this.members.push(m);
  }

  leave(m: CfqMember): void {
    const i = this.members.indexOf(m);
    if (i < 0) return;
    this.members.splice(i, 1);
    if (this.active === m) this.handOn(i);
  }

  /** Whether `m` may dispatch one request now; counts it against the slice if so. */
  mayDispatch(m: CfqMember): boolean {
    if (this.active !== m) {
      const holder = this.active;
      // A holder that ran dry without its idle pause pending has nothing to keep the slice for.
      if (holder && (holder.busy() || this.idleTimer) && !this.expired()) return false;
      if (this.active) {
        // The holder's slice is over and `m` waits: the round moves on (maybe not to `m`).
        this.handOn(this.members.indexOf(this.active) + 1);
        if (this.active !== m) return false;
      } else this.grant(m);
    } else if (this.expired() && this.othersWaiting(m)) {
      this.handOn(this.members.indexOf(m) + 1);
      if (this.active !== m) return false;
    }
    this.clearIdle();
    this.sliceUsed++;
    return true;
  }

  /** Nothing to publish: the members are asked directly. */
  publish(): void {}

  /** `m` has nothing queued or in flight: after `idleMs` its slice passes on. */
  idle(m: CfqMember): void {
    if (this.active !== m) return;
    if (!this.othersWaiting(m)) {
      this.active = undefined;
      return;
    }
    if (this.idleMs <= 0) {
      this.handOn(this.members.indexOf(m) + 1);
      return;
    }
    this.clearIdle();
    this.idleTimer = setTimeout(() => {
      this.idleTimer = undefined;
      if (this.active === m && !m.busy()) this.handOn(this.members.indexOf(m) + 1);
    }, this.idleMs);
  }

  private expired(): boolean {
    return this.sliceUsed >= this.sliceRequests || this.now() - this.sliceStart >= this.sliceMs;
  }

  private othersWaiting(m: CfqMember): boolean {
    return this.members.some((o) => o !== m && o.hasWork());
  }

  private grant(m: CfqMember): void {
    this.active = m;
    this.sliceStart = this.now();
    this.sliceUsed = 0;
    this.slices++;
  }

  /** Gives the slice to the first member with work from index `from` on (round robin). */
  private handOn(from: number): void {
    this.clearIdle();
    const n = this.members.length;
    for (let k = 0; k < n; k++) {
      const c = this.members[(from + k) % n];
      if (c.hasWork()) {
        this.grant(c);
        queueMicrotask(() => c.kick());
        return;
      }
    }
    this.active = undefined;
  }

  private clearIdle(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
  }
}
