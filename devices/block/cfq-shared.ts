/**
 * cfq's slices between the disks of ALL VMs of one host process, each VM running in its own
 * worker thread. The host makes one SharedArrayBuffer (`createCfqMemory`) and hands it to every
 * VM worker, which installs a `SharedCfqCoordinator` over it; the rules are those of the
 * in-thread coordinator (cfq.ts), the state lives in shared memory:
 *
 *   header: the slice owner (slot + 1, 0: none), a wake-up counter, the slice start (ms, wrapping
 *           32-bit), dispatches in the slice, slices granted, disks refused a slot;
 *   slots:  per disk, the thread that holds it (threadId + 1, 0: free), "has requests queued"
 *           and "holds on" (requests in flight, or its idle pause pending).
 *
 * A disk takes the slice with compareExchange when nobody holds it, or when the holder's slice
 * is over (time or dispatches) or it holds on to nothing; the slice passes round-robin by slot to
 * the next disk with requests queued. Whoever hands the slice on bumps the wake-up counter and
 * notifies it; each thread with cfq disks waits on it with Atomics.waitAsync (never Atomics.wait:
 * that would stall the vCPU) and then lets its disks retry — the wait also times out after a
 * slice, so a holder that stopped answering is passed over. A worker that ends leaves its slots;
 * the host clears the slots of a worker that died (`releaseCfqThread`). When all slots are taken
 * a disk falls back to an in-thread coordinator (logged and counted, never an error).
 */
import { threadId } from 'node:worker_threads';
import { CfqCoordinator, type CfqArbiter, type CfqMember, type CfqOptions } from './cfq.js';

/** Disks the shared memory has room for. */
export const CFQ_SLOTS = 64;

const OWNER = 0;
const WAKE = 1;
const START = 2;
const USED = 3;
const SLICES = 4;
const OVERFLOW = 5;
const HEADER = 8;
const SLOT_SIZE = 4;
const THREAD = 0;
const WORK = 1;
const HOLD = 2;

/** The process-wide memory the host hands to each VM worker. */
export function createCfqMemory(slots = CFQ_SLOTS): SharedArrayBuffer {
  return new SharedArrayBuffer((HEADER + slots * SLOT_SIZE) * 4);
}

/** Atomics.waitAsync (Node 16+; not in the ES2022 lib this project compiles against). */
type WaitAsync = (
  a: Int32Array,
  index: number,
  value: number,
  timeoutMs: number,
) => { async: false; value: string } | { async: true; value: Promise<string> };
const waitAsync = (Atomics as unknown as { waitAsync: WaitAsync }).waitAsync;

const slotCount = (a: Int32Array): number => (a.length - HEADER) / SLOT_SIZE;
const at = (slot: number, field: number): number => HEADER + slot * SLOT_SIZE + field;

function wakeAll(a: Int32Array): void {
  Atomics.add(a, WAKE, 1);
  Atomics.notify(a, WAKE);
}

/** Frees the slots a thread (a worker that exited, maybe abruptly) held, and a slice it held. */
export function releaseCfqThread(mem: SharedArrayBuffer, thread: number): number {
  const a = new Int32Array(mem);
  let freed = 0;
  for (let s = 0; s < slotCount(a); s++) {
    if (Atomics.load(a, at(s, THREAD)) !== thread + 1) continue;
    Atomics.store(a, at(s, WORK), 0);
    Atomics.store(a, at(s, HOLD), 0);
    Atomics.compareExchange(a, OWNER, s + 1, 0);
    Atomics.store(a, at(s, THREAD), 0);
    freed++;
  }
  if (freed > 0) wakeAll(a);
  return freed;
}

/** Counters of the shared memory (for stats and tests). */
export function cfqMemoryStats(mem: SharedArrayBuffer): {
  slotsUsed: number;
  slices: number;
  overflow: number;
} {
  const a = new Int32Array(mem);
  let slotsUsed = 0;
  for (let s = 0; s < slotCount(a); s++) if (Atomics.load(a, at(s, THREAD)) !== 0) slotsUsed++;
  return { slotsUsed, slices: Atomics.load(a, SLICES), overflow: Atomics.load(a, OVERFLOW) };
}

export interface SharedCfqOptions extends CfqOptions {
  /** Where a disk refused a slot is reported (default console.warn). */
  log?: (message: string) => void;
  /** The thread id recorded in the slots (default this thread's). */
  thread?: number;
}

export class SharedCfqCoordinator implements CfqArbiter {
  private readonly a: Int32Array;
  private readonly slots = new Map<CfqMember, number>();
  private readonly bySlot = new Map<number, CfqMember>();
  private readonly idleTimers = new Map<CfqMember, ReturnType<typeof setTimeout>>();
  /** Disks that found no free slot: arbitrated within this thread only. */
  private readonly fallback: CfqCoordinator;
  private readonly sliceMs: number;
  private readonly sliceRequests: number;
  private readonly idleMs: number;
  private readonly now: () => number;
  private readonly log: (message: string) => void;
  private readonly thread: number;
  private watching = false;
  private keepAlive: ReturnType<typeof setInterval> | undefined;

  constructor(mem: SharedArrayBuffer, opts: SharedCfqOptions = {}) {
    this.a = new Int32Array(mem);
    this.sliceMs = opts.sliceMs ?? 20;
    this.sliceRequests = Math.max(1, opts.sliceRequests ?? 64);
    this.idleMs = opts.idleMs ?? 2;
    // Wall-clock based so every thread reads the same clock.
    this.now = opts.now ?? (() => performance.timeOrigin + performance.now());
    this.log = opts.log ?? ((m) => console.warn(m));
    this.thread = opts.thread ?? threadId;
    this.fallback = new CfqCoordinator(opts);
  }

  get memberCount(): number {
    return this.slots.size + this.fallback.memberCount;
  }

  get slices(): number {
    return Atomics.load(this.a, SLICES) + this.fallback.slices;
  }

  /** Disks of this thread that found no free slot. */
  get overflowed(): number {
    return this.fallback.memberCount;
  }

  join(m: CfqMember): void {
    if (this.slots.has(m)) return;
    for (let s = 0; s < slotCount(this.a); s++) {
      if (Atomics.compareExchange(this.a, at(s, THREAD), 0, this.thread + 1) !== 0) continue;
      this.slots.set(m, s);
      this.bySlot.set(s, m);
      this.publish(m);
      this.watch();
      return;
    }
    Atomics.add(this.a, OVERFLOW, 1);
    this.log(
      `cfq: all ${slotCount(this.a)} shared slots are taken; this disk gets slices only ` +
        `against the other disks of its own VM`,
    );
    this.fallback.join(m);
  }

  leave(m: CfqMember): void {
    const s = this.slots.get(m);
    if (s === undefined) return this.fallback.leave(m);
    this.clearIdle(m);
    Atomics.store(this.a, at(s, WORK), 0);
    Atomics.store(this.a, at(s, HOLD), 0);
    if (Atomics.load(this.a, OWNER) === s + 1) this.handOn(s + 1, s + 1);
    this.slots.delete(m);
    this.bySlot.delete(s);
    Atomics.store(this.a, at(s, THREAD), 0);
  }

  publish(m: CfqMember): void {
    const s = this.slots.get(m);
    if (s === undefined) return this.fallback.publish();
    Atomics.store(this.a, at(s, WORK), m.hasWork() ? 1 : 0);
    Atomics.store(this.a, at(s, HOLD), m.busy() || this.idleTimers.has(m) ? 1 : 0);
  }

  mayDispatch(m: CfqMember): boolean {
    const s = this.slots.get(m);
    if (s === undefined) return this.fallback.mayDispatch(m);
    this.publish(m);
    if (this.take(m, s)) return true;
    this.stayAwake(true);
    return false;
  }

  private take(m: CfqMember, s: number): boolean {
    const owner = Atomics.load(this.a, OWNER);
    if (owner === 0) {
      if (Atomics.compareExchange(this.a, OWNER, 0, s + 1) !== 0) return false;
      this.granted();
    } else if (owner !== s + 1) {
      // The holder keeps the slice while it has something in hand and time left.
      if (Atomics.load(this.a, at(owner - 1, HOLD)) === 1 && !this.expired()) return false;
      if (this.handOn(owner, owner) !== s + 1) return false;
    } else if (this.expired() && this.othersWaiting(s)) {
      if (this.handOn(owner, s + 1) !== s + 1) return false;
    }
    this.clearIdle(m);
    Atomics.store(this.a, at(s, HOLD), 1);
    Atomics.add(this.a, USED, 1);
    return true;
  }

  idle(m: CfqMember): void {
    const s = this.slots.get(m);
    if (s === undefined) return this.fallback.idle(m);
    this.publish(m);
    if (Atomics.load(this.a, OWNER) !== s + 1) return;
    if (!this.othersWaiting(s)) {
      Atomics.compareExchange(this.a, OWNER, s + 1, 0);
      return;
    }
    if (this.idleMs <= 0) {
      this.handOn(s + 1, s + 1);
      return;
    }
    this.clearIdle(m);
    Atomics.store(this.a, at(s, HOLD), 1);
    this.idleTimers.set(
      m,
      setTimeout(() => {
        this.idleTimers.delete(m);
        this.publish(m);
        if (Atomics.load(this.a, OWNER) === s + 1 && !m.busy()) this.handOn(s + 1, s + 1);
      }, this.idleMs),
    );
  }

  private expired(): boolean {
    const elapsed = ((this.now() | 0) - Atomics.load(this.a, START)) | 0;
    return Atomics.load(this.a, USED) >= this.sliceRequests || elapsed >= this.sliceMs;
  }

  private othersWaiting(s: number): boolean {
    for (let o = 0; o < slotCount(this.a); o++) {
      if (o !== s && Atomics.load(this.a, at(o, WORK)) === 1) return true;
    }
    return false;
  }

  /** The caller just became the owner: a fresh slice. */
  private granted(): void {
    Atomics.store(this.a, START, this.now() | 0);
    Atomics.store(this.a, USED, 0);
    Atomics.add(this.a, SLICES, 1);
  }

  /**
   * Passes the slice from `owner` (as read) to the first slot with requests queued from `from`
   * on (round robin), or to nobody. Returns the owner afterwards (another thread may have won).
   */
  private handOn(owner: number, from: number): number {
    const n = slotCount(this.a);
    let next = 0;
    for (let k = 0; k < n; k++) {
      const c = (from + k) % n;
      if (Atomics.load(this.a, at(c, THREAD)) !== 0 && Atomics.load(this.a, at(c, WORK)) === 1) {
        next = c + 1;
        break;
      }
    }
    const was = Atomics.compareExchange(this.a, OWNER, owner, next);
    if (was !== owner) return was;
    if (next !== 0) this.granted();
    wakeAll(this.a);
    const local = next !== 0 ? this.bySlot.get(next - 1) : undefined;
    if (local) queueMicrotask(() => local.kick());
    return next;
  }

  /** While this thread has disks in the round: wake them when the slice moves (or a slice passed). */
  private watch(): void {
    if (this.watching) return;
    this.watching = true;
    // `seen` is read before the disks try for the slice, so a hand-on that lands after their try
    // (they lost it, then the holder passed it to them) has moved WAKE and the wait returns at
    // once. Reading it after the try lost that wake-up: the disk then waited for the next one,
    // up to sliceMs, or for good if no other disk ever handed on again.
    const loop = (kick: boolean): void => {
      if (this.slots.size === 0) {
        this.stayAwake(false);
        this.watching = false;
        return;
      }
      const seen = Atomics.load(this.a, WAKE);
      if (kick) {
        let waiting = false;
        for (const m of this.slots.keys()) {
          if (!m.hasWork()) continue;
          waiting = true;
          m.kick();
        }
        if (!waiting) this.stayAwake(false);
      }
      const r = waitAsync(this.a, WAKE, seen, this.sliceMs);
      const retry = (): void => loop(true);
      if (r.async) void r.value.then(retry);
      else setImmediate(retry);
    };
    loop(false);
  }

  /**
   * A pending waitAsync does not keep the thread alive, but requests waiting for the slice must:
   * a timer is held while any of this thread's disks waits.
   */
  private stayAwake(on: boolean): void {
    if (on) this.keepAlive ??= setInterval(() => {}, 1 << 30);
    else if (this.keepAlive) {
      clearInterval(this.keepAlive);
      this.keepAlive = undefined;
    }
  }

  private clearIdle(m: CfqMember): void {
    const t = this.idleTimers.get(m);
    if (t) clearTimeout(t);
    this.idleTimers.delete(m);
  }
}
