import { hostWallClockNs, type NsClock } from '../../devices/platform/goldfish-rtc.js';

/** The guest's 10 MHz timebase, read from the host's monotonic clock. */
export const TIMEBASE_HZ = 10_000_000;

export class HostClock {
  private readonly t0 = performance.now();
  private pausedAt: number | undefined;
  private pausedTotal = 0;

  /** Ticks since the VM started, not counting time spent paused. */
  ticks(): number {
    const now = this.pausedAt ?? performance.now();
    return Math.floor((now - this.t0 - this.pausedTotal) * (TIMEBASE_HZ / 1000));
  }
  pause(): void {
    this.pausedAt ??= performance.now();
  }
  resume(): void {
    if (this.pausedAt !== undefined) {
      this.pausedTotal += performance.now() - this.pausedAt;
      this.pausedAt = undefined;
    }
  }
  /** Milliseconds from now until tick `t` (0 if already past). */
  msUntil(t: number): number {
    return Math.max(0, (t - this.ticks()) / (TIMEBASE_HZ / 1000));
  }
}

/** Blocks the calling thread for `ms` milliseconds without spinning. */
export function sleepSync(ms: number): void {
  if (ms <= 0) return;
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Nanoseconds per timebase tick. */
const NS_PER_TICK = BigInt(1_000_000_000 / TIMEBASE_HZ);

/**
 * The RTC's wall clock for a machine (nanoseconds since the epoch): the host's by default;
 * the host's moved to start at `rtcBase`; or, under deterministic time, the start (`rtcBase`,
 * else the host's date now) plus the guest's own time, so that two runs read the same dates.
 */
export function rtcClock(
  cfg: { icount?: unknown; rtcBase?: string },
  guestTicks: () => bigint,
): NsClock {
  const host = hostWallClockNs();
  const start = host();
  const base = cfg.rtcBase !== undefined ? BigInt(Date.parse(cfg.rtcBase)) * 1_000_000n : start;
  if (cfg.icount) return () => base + guestTicks() * NS_PER_TICK;
  const shift = base - start;
  return () => host() + shift;
}
