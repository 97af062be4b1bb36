/**
 * The ways the I/O scheduler chooses which queued request goes to the back end next.
 * Each policy looks at the queue (in arrival order) and the "head" — where the last dispatched
 * request ended, i.e. where a disk arm would be — and returns an index into the queue.
 *
 * - noop: arrival order (FIFO).
 * - sstf: shortest seek first — the request nearest the head, either side. Can starve far ones.
 * - scan: the elevator — keep moving the same way (up, then down) taking the nearest request
 *   on that side; turn when there is none.
 * - deadline: Linux's mq-deadline in small: one-way sorted sweeps in batches, reads preferred to
 *   writes (writes get a batch after `writesStarved` read batches), and a request whose deadline
 *   (arrival + 500 ms for reads, 5 s for writes) has passed is served at the next batch start.
 * - lifo: the newest request first (a stack): the opposite of noop; the oldest can starve.
 * - random: a request chosen at random from the queue, from a seeded generator (reproducible).
 * - cfq: within one disk a one-way sorted sweep (C-SCAN: the nearest request at or above the
 *   head, else the lowest); between the disks of all VMs in the process, fair time slices given
 *   by the process-wide coordinator in cfq.ts.
 */
import type { SchedulerPolicy } from '../../main/vm/config.js';

export type RequestKind = 'read' | 'write' | 'discard' | 'write-zeroes';

export interface QueuedRequest {
  readonly kind: RequestKind;
  readonly offset: number;
  readonly length: number;
  /** Time (ms) after which deadline serves it first. */
  readonly deadline: number;
}

/** What the policies remember between picks (the disk arm, the current batch). */
export interface PolicyState {
  head: number;
  direction: 1 | -1;
  batchKind: 'read' | 'write' | null;
  batchLeft: number;
  /** Read batches dispatched while writes waited (deadline). */
  starved: number;
  /** xorshift32 state of the random policy (never 0). */
  rng: number;
}

export interface DeadlineTuning {
  /** Requests per sorted batch before expiry and direction are reconsidered (Linux: 16). */
  fifoBatch: number;
  /** Read batches allowed while writes wait (Linux: 2). */
  writesStarved: number;
}

export const initialPolicyState = (seed = 1): PolicyState => ({
  head: 0,
  direction: 1,
  batchKind: null,
  batchLeft: 0,
  starved: 0,
  rng: seed >>> 0 || 1,
});

const isRead = (r: QueuedRequest): boolean => r.kind === 'read';
const dataDir = (r: QueuedRequest): 'read' | 'write' => (isRead(r) ? 'read' : 'write');

/** Index of the request with the smallest offset ≥ head (among those `ok` accepts), or -1. */
function nextUp(
  q: readonly QueuedRequest[],
  head: number,
  ok: (r: QueuedRequest) => boolean,
): number {
  let best = -1;
  for (let i = 0; i < q.length; i++) {
    const r = q[i];
    if (r.offset >= head && ok(r) && (best < 0 || r.offset < q[best].offset)) best = i;
  }
  return best;
}

/** Index of the request with the largest offset ≤ head, or -1. */
function nextDown(q: readonly QueuedRequest[], head: number): number {
  let best = -1;
  for (let i = 0; i < q.length; i++) {
    const r = q[i];
    if (r.offset <= head && (best < 0 || r.offset > q[best].offset)) best = i;
  }
  return best;
}

function pickSstf(q: readonly QueuedRequest[], head: number): number {
  let best = 0;
  for (let i = 1; i < q.length; i++) {
    // Strictly nearer only: on a tie the older request (lower index) wins.
    if (Math.abs(q[i].offset - head) < Math.abs(q[best].offset - head)) best = i;
  }
  return best;
}

function pickScan(q: readonly QueuedRequest[], s: PolicyState): number {
  for (let turn = 0; turn < 2; turn++) {
    const i = s.direction > 0 ? nextUp(q, s.head, () => true) : nextDown(q, s.head);
    if (i >= 0) return i;
    s.direction = s.direction > 0 ? -1 : 1;
  }
  return 0;
}

/** C-SCAN: the nearest request at or above the head, else wrap to the lowest offset. */
function pickCscan(q: readonly QueuedRequest[], head: number): number {
  const up = nextUp(q, head, () => true);
  return up >= 0 ? up : nextUp(q, 0, () => true);
}

function pickRandom(q: readonly QueuedRequest[], s: PolicyState): number {
  let x = s.rng;
  x ^= x << 13;
  x ^= x >>> 17;
  x ^= x << 5;
  s.rng = x >>> 0 || 1;
  return s.rng % q.length;
}

function pickDeadline(
  q: readonly QueuedRequest[],
  s: PolicyState,
  now: number,
  t: DeadlineTuning,
): number {
  if (s.batchLeft > 0 && s.batchKind) {
    const kind = s.batchKind;
    const i = nextUp(q, s.head, (r) => dataDir(r) === kind);
    if (i >= 0) {
      s.batchLeft--;
      return i;
    }
  }
  const hasReads = q.some(isRead);
  const hasWrites = q.some((r) => !isRead(r));
  let dir: 'read' | 'write';
  if (hasReads && (!hasWrites || s.starved < t.writesStarved)) {
    dir = 'read';
    if (hasWrites) s.starved++;
  } else {
    dir = 'write';
    s.starved = 0;
  }
  // The queue is in arrival order, so the first of a direction is the oldest (its FIFO head).
  const oldest = q.findIndex((r) => dataDir(r) === dir);
  let i = oldest;
  if (now < q[oldest].deadline) {
    const sorted = nextUp(q, s.head, (r) => dataDir(r) === dir);
    if (sorted >= 0) i = sorted;
  }
  s.batchKind = dir;
  s.batchLeft = Math.max(0, t.fifoBatch - 1);
  return i;
}

/** Chooses the next request to dispatch from a non-empty queue in arrival order. */
export function pickNext(
  policy: SchedulerPolicy,
  q: readonly QueuedRequest[],
  s: PolicyState,
  now: number,
  t: DeadlineTuning,
): number {
  switch (policy) {
    case 'noop':
      return 0;
    case 'sstf':
      return pickSstf(q, s.head);
    case 'scan':
      return pickScan(q, s);
    case 'deadline':
      return pickDeadline(q, s, now, t);
    case 'lifo':
      return q.length - 1;
    case 'random':
      return pickRandom(q, s);
    case 'cfq':
      return pickCscan(q, s.head);
  }
}
