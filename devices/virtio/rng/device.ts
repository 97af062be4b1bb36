/**
 * virtio-rng (virtio 1.2 §5.4): one request queue; every device-writable buffer the driver
 * posts is filled with bytes from the host's CSPRNG (node:crypto), straight into guest RAM.
 */
import { randomFillSync } from 'node:crypto';
import { DEVICE_ID } from '../constants.js';
import type { VirtioContext, VirtioDevice } from '../device.js';

export interface VirtioRngState {
  version: 1;
}

export interface VirtioRngMetrics {
  [name: string]: number;
  /** Chains served. */
  requests: number;
  /** Random bytes written into guest buffers. */
  bytes: number;
  /** Chains without a writable buffer (returned empty). */
  bad_requests: number;
}

/** Bytes per request at most, so a guest cannot make one notify cost unbounded host time. */
const MAX_BYTES_PER_REQUEST = 64 * 1024;

export class VirtioRng implements VirtioDevice {
  readonly deviceId = DEVICE_ID.rng;
  readonly features = 0n;
  readonly queueMaxSizes: readonly number[];
  readonly metrics: VirtioRngMetrics = { requests: 0, bytes: 0, bad_requests: 0 };
  onConfigChange?: () => void;
  private ctx: VirtioContext | undefined;

  constructor(
    readonly name = 'virtio-rng0',
    queueSize = 64,
  ) {
    this.queueMaxSizes = [queueSize];
  }

  readConfig(): number {
    return 0; // no configuration space
  }
  writeConfig(): void {}

  activate(ctx: VirtioContext): void {
    this.ctx = ctx;
  }

  notify(): void {
    const ctx = this.ctx;
    if (!ctx) return;
    const q = ctx.queues[0];
    let served = 0;
    for (let c = q.pop(); c; c = q.pop()) {
      let written = 0;
      for (const s of c.segments) {
        if (!s.writable) continue;
        const n = Math.min(s.view.length, MAX_BYTES_PER_REQUEST - written);
        if (n <= 0) break;
        randomFillSync(s.view, 0, n);
        written += n;
      }
      if (written === 0) this.metrics.bad_requests++;
      this.metrics.requests++;
      this.metrics.bytes += written;
      q.push(c.head, written);
      served++;
    }
    if (served) ctx.signalUsed(q);
  }

  reset(): void {
    this.ctx = undefined;
  }

  saveState(): VirtioRngState {
    return { version: 1 };
  }

  restoreState(s: unknown): void {
    const st = s as VirtioRngState;
    if (st?.version !== 1) throw new Error(`${this.name}: unsupported state`);
  }
}
