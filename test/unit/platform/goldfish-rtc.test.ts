import { describe, expect, it } from 'vitest';
import { GoldfishRtc, hostWallClockNs } from '../../../devices/platform/goldfish-rtc.js';
import { FakeLine, logSink } from './helpers.js';

const TIME_LOW = 0x00;
const TIME_HIGH = 0x04;
const ALARM_LOW = 0x08;
const ALARM_HIGH = 0x0c;
const IRQ_ENABLED = 0x10;
const CLEAR_ALARM = 0x14;
const ALARM_STATUS = 0x18;
const CLEAR_INTERRUPT = 0x1c;

/** A host clock and timer the test moves by hand. */
class FakeTime {
  ns = 1_700_000_000_123_456_789n;
  timers: { at: bigint; fire: () => void; live: boolean }[] = [];
  clock = () => this.ns;
  setTimer = (delayMs: number, fire: () => void) => {
    const t = { at: this.ns + BigInt(delayMs) * 1_000_000n, fire, live: true };
    this.timers.push(t);
    return () => {
      t.live = false;
    };
  };
  advance(ns: bigint) {
    this.ns += ns;
    for (const t of this.timers.splice(0)) {
      if (t.live && t.at <= this.ns) t.fire();
      else if (t.live) this.timers.push(t);
    }
  }
  get armed() {
    return this.timers.filter((t) => t.live).length;
  }
}

function setup() {
  const time = new FakeTime();
  const irq = new FakeLine();
  const log = logSink();
  const rtc = new GoldfishRtc({ irq, clock: time.clock, setTimer: time.setTimer, log: log.sink });
  const r = (off: number) => rtc.read(off, 4);
  const w = (off: number, v: number) => rtc.write(off, 4, v);
  /** Linux's goldfish_rtc_read_time: low first, which latches high. */
  const readTime = () => {
    const lo = BigInt(r(TIME_LOW));
    return (BigInt(r(TIME_HIGH)) << 32n) | lo;
  };
  const setAlarm = (ns: bigint) => {
    w(ALARM_HIGH, Number(ns >> 32n));
    w(ALARM_LOW, Number(ns & 0xffff_ffffn));
  };
  return { rtc, time, irq, r, w, readTime, setAlarm, log };
}

describe('Goldfish RTC', () => {
  it('reads the host wall clock in ns, TIME_LOW latching TIME_HIGH', () => {
    const { time, r, readTime } = setup();
    expect(readTime()).toBe(time.ns);
    const lo = r(TIME_LOW);
    time.advance(10n * 2n ** 32n); // high half moves on...
    expect(r(TIME_HIGH)).toBe(Number(1_700_000_000_123_456_789n >> 32n)); // ...but is latched
    expect(lo).toBe(Number(1_700_000_000_123_456_789n & 0xffff_ffffn));
  });

  it('sets the time by offset, leaving the host clock alone', () => {
    const { time, w, readTime } = setup();
    const target = 946_684_800n * 1_000_000_000n; // 2000-01-01
    w(TIME_HIGH, Number(target >> 32n));
    w(TIME_LOW, Number(target & 0xffff_ffffn));
    expect(readTime()).toBe(target);
    time.advance(5_000_000_000n);
    expect(readTime()).toBe(target + 5_000_000_000n);
  });

  it('fires the alarm through the interrupt line when enabled', () => {
    const { time, irq, r, w, setAlarm, rtc } = setup();
    w(IRQ_ENABLED, 1);
    setAlarm(time.ns + 3_000_000_000n);
    expect(r(ALARM_STATUS)).toBe(1);
    expect(time.armed).toBe(1);
    time.advance(2_000_000_000n);
    expect(irq.level).toBe(false);
    time.advance(1_000_000_000n);
    expect(irq.level).toBe(true);
    expect(r(ALARM_STATUS)).toBe(0);
    w(CLEAR_INTERRUPT, 1);
    expect(irq.level).toBe(false);
    expect(rtc.stats.alarmsFired).toBe(1);
  });

  it('fires at once for an alarm in the past, and holds the IRQ while disabled', () => {
    const { time, irq, r, w, setAlarm } = setup();
    setAlarm(time.ns - 1n);
    expect(r(ALARM_STATUS)).toBe(0);
    expect(irq.level).toBe(false);
    w(IRQ_ENABLED, 1);
    expect(irq.level).toBe(true);
    expect(r(IRQ_ENABLED)).toBe(1);
  });

  it('disarms on CLEAR_ALARM', () => {
    const { time, irq, r, w, setAlarm } = setup();
    w(IRQ_ENABLED, 1);
    const at = time.ns + 1_000_000n;
    setAlarm(at);
    expect(BigInt(r(ALARM_LOW)) | (BigInt(r(ALARM_HIGH)) << 32n)).toBe(at);
    w(CLEAR_ALARM, 1);
    time.advance(10_000_000n);
    expect(irq.level).toBe(false);
    expect(time.armed).toBe(0);
  });

  it('saves and restores, re-arming a pending alarm', () => {
    const a = setup();
    a.w(IRQ_ENABLED, 1);
    a.w(TIME_LOW, 0);
    a.setAlarm(a.readTime() + 5_000_000_000n); // alarms are in guest time
    const state = JSON.parse(JSON.stringify(a.rtc.saveState()));
    const b = setup();
    b.rtc.restoreState(state);
    expect(b.rtc.saveState()).toEqual(state);
    expect(b.readTime()).toBe(a.readTime());
    b.time.advance(5_000_000_000n);
    expect(b.irq.level).toBe(true);
    b.rtc.reset();
    expect(b.irq.level).toBe(false);
    expect(b.r(IRQ_ENABLED)).toBe(0);
  });

  it('ignores bad sizes and unknown registers', () => {
    const { rtc, r, log } = setup();
    expect(rtc.read(TIME_LOW, 1)).toBe(0);
    rtc.write(IRQ_ENABLED, 2, 1);
    expect(r(IRQ_ENABLED)).toBe(0);
    expect(r(0x20)).toBe(0);
    rtc.write(0xffc, 4, 1);
    expect(rtc.stats.guestErrors).toBe(4);
    expect(log.lines).toHaveLength(4);
  });

  it('has a default host clock close to Date.now()', () => {
    const now = hostWallClockNs()();
    expect(Number(now / 1_000_000n)).toBeGreaterThan(Date.now() - 1000);
    expect(Number(now / 1_000_000n)).toBeLessThanOrEqual(Date.now() + 1);
  });
});
