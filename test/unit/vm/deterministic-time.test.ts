// Deterministic time (--icount): the core's clock counts instructions and moves only forward
// when the host warps it for a WFI; the RTC reads dates from the guest's own time.
import { describe, it, expect } from 'vitest';
import { bareCore } from './bare-core.js';
import { rtcClock } from '../../../main/vm/clock.js';

describe('deterministic time', () => {
  it('warpTime moves the clock forward to a deadline, never back, and only in that mode', () => {
    const core = bareCore(1 << 20, {});
    core.setDeterministicTime(true, 4);
    expect(core.time).toBe(0n);
    core.warpTime(10_000n);
    expect(core.time).toBe(10_000n);
    core.warpTime(5_000n); // a deadline already passed does not turn the clock back
    expect(core.time).toBe(10_000n);
    core.setDeterministicTime(false, 4);
    const hostNow = core.time; // the bare core's host clock stands at 0
    core.warpTime(hostNow + 1_000_000n);
    expect(core.time).toBe(hostNow);
  });

  it('the RTC under --icount is its start plus guest time; --rtc base alone shifts the host clock', () => {
    let ticks = 0n;
    const vm = rtcClock(
      { icount: { shift: 4, sleep: false }, rtcBase: '2020-01-02T03:04:05Z' },
      () => ticks,
    );
    const base = BigInt(Date.UTC(2020, 0, 2, 3, 4, 5)) * 1_000_000n;
    expect(vm()).toBe(base);
    ticks = 10_000_000n; // one second of 10 MHz ticks
    expect(vm()).toBe(base + 1_000_000_000n);

    const shifted = rtcClock({ rtcBase: '2020-01-02T03:04:05Z' }, () => 0n);
    const got = shifted();
    expect(got >= base && got < base + 5_000_000_000n).toBe(true); // it runs with the host from there

    const host = rtcClock({}, () => 0n)();
    const now = BigInt(Date.now()) * 1_000_000n;
    expect(host > now - 5_000_000_000n && host < now + 5_000_000_000n).toBe(true);
  });
});
