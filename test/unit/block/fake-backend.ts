/**
 * A block back end for scheduler tests: it records every call in order, keeps the disk's bytes
 * in memory (so merged reads and writes can be checked for data), and either completes calls at
 * once or holds them until the test releases them — which is how a test sees the order a policy
 * chooses.
 */
import { BlockError, type VectoredBlockBackend } from '../../../devices/block/backend.js';

export interface FakeCall {
  op: 'read' | 'write' | 'flush' | 'discard' | 'write-zeroes';
  offset: number;
  length: number;
  /** Buffers in the call (1 for read/write, more when merged; 0 for the others). */
  segments: number;
}

export class FakeBackend implements VectoredBlockBackend {
  readonly name = 'fake';
  readonly data: Uint8Array;
  readonly calls: FakeCall[] = [];
  /** Calls waiting for release() in manual mode. */
  readonly held: { call: FakeCall; run: () => void }[] = [];
  running = 0;
  maxRunning = 0;
  closed = false;
  /** Fails any data call whose range covers this offset. */
  failOffset: number | undefined;
  /** Called as each call reaches the back end (when the scheduler dispatches it). */
  onCall: ((call: FakeCall) => void) | undefined;

  constructor(
    readonly size = 1 << 24,
    readonly manual = false,
    readonly readOnly = false,
  ) {
    this.data = new Uint8Array(size);
    for (let i = 0; i < size; i += 512) this.data[i] = (i / 512) & 0xff;
  }

  /** Offsets (in units of `unit`) of the calls so far, in call order. */
  order(unit = 4096): number[] {
    return this.calls.filter((c) => c.op !== 'flush').map((c) => c.offset / unit);
  }

  /** Completes the oldest held call (manual mode) and lets the scheduler react. */
  async release(): Promise<void> {
    const h = this.held.shift();
    if (!h) throw new Error('nothing held');
    h.run();
    await settle();
  }

  read(offset: number, buf: Uint8Array): Promise<void> {
    return this.readv(offset, [buf]);
  }
  write(offset: number, buf: Uint8Array): Promise<void> {
    return this.writev(offset, [buf]);
  }
  readv(offset: number, bufs: readonly Uint8Array[]): Promise<void> {
    return this.op('read', offset, bufs, () => {
      let pos = offset;
      for (const b of bufs) {
        b.set(this.data.subarray(pos, pos + b.length));
        pos += b.length;
      }
    });
  }
  writev(offset: number, bufs: readonly Uint8Array[]): Promise<void> {
    return this.op('write', offset, bufs, () => {
      let pos = offset;
      for (const b of bufs) {
        this.data.set(b, pos);
        pos += b.length;
      }
    });
  }
  flush(): Promise<void> {
    return this.schedule({ op: 'flush', offset: 0, length: 0, segments: 0 }, () => {});
  }
  discard(offset: number, length: number): Promise<void> {
    const call: FakeCall = { op: 'discard', offset, length, segments: 0 };
    return this.schedule(call, () => this.data.fill(0, offset, offset + length));
  }
  writeZeroes(offset: number, length: number, _unmap: boolean): Promise<void> {
    const call: FakeCall = { op: 'write-zeroes', offset, length, segments: 0 };
    return this.schedule(call, () => this.data.fill(0, offset, offset + length));
  }
  async close(): Promise<void> {
    this.closed = true;
  }

  private op(
    op: 'read' | 'write',
    offset: number,
    bufs: readonly Uint8Array[],
    effect: () => void,
  ): Promise<void> {
    const length = bufs.reduce((n, b) => n + b.length, 0);
    const call: FakeCall = { op, offset, length, segments: bufs.length };
    return this.schedule(call, () => {
      const f = this.failOffset;
      if (f !== undefined && f >= offset && f < offset + length) {
        throw new BlockError('io', `fake: media error at ${f}`);
      }
      effect();
    });
  }

  private schedule(call: FakeCall, effect: () => void): Promise<void> {
    this.calls.push(call);
    this.onCall?.(call);
    this.running++;
    this.maxRunning = Math.max(this.maxRunning, this.running);
    return new Promise<void>((resolve, reject) => {
      const run = (): void => {
        this.running--;
        try {
          effect();
          resolve();
        } catch (e) {
          reject(e);
        }
      };
      if (this.manual) this.held.push({ call, run });
      else setImmediate(run);
    });
  }
}

/** Lets queued microtasks and promise continuations run (the scheduler dispatches in one). */
export const settle = (): Promise<void> => new Promise((r) => setImmediate(r));
