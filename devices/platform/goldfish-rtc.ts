/**
 * Goldfish RTC ("google,goldfish-rtc"): a 64-bit nanosecond wall clock and one alarm.
 *
 *   0x00 TIME_LOW        read: time, low half; latches the high half for TIME_HIGH
 *   0x04 TIME_HIGH       read: latched high half. Writes to either half set the clock.
 *   0x08 ALARM_LOW       write: low half of the alarm and arms it; read: alarm low half
 *   0x0c ALARM_HIGH      write: high half (takes effect at the next ALARM_LOW write)
 *   0x10 IRQ_ENABLED     bit 0
 *   0x14 CLEAR_ALARM     write: disarm
 *   0x18 ALARM_STATUS    read: 1 while armed
 *   0x1c CLEAR_INTERRUPT write: drop the interrupt
 *
 * Guest time = host clock + offset; setting the time only moves the offset (as in QEMU), so
 * the host clock is never touched. The host timer that fires the alarm is derived from the
 * state and re-armed by restoreState, so no guest-visible state lives in it.
 */
import { GuestErrorLog, hex, type LogSink } from './guest-log.js';
import type { IrqLine, MmioDevice } from './mmio.js';

const TIME_LOW = 0x00;
const TIME_HIGH = 0x04;
const ALARM_LOW = 0x08;
const ALARM_HIGH = 0x0c;
const IRQ_ENABLED = 0x10;
const CLEAR_ALARM = 0x14;
const ALARM_STATUS = 0x18;
const CLEAR_INTERRUPT = 0x1c;

const U32 = 0xffff_ffffn;
const U64 = 0xffff_ffff_ffff_ffffn;
/** setTimeout's limit; longer alarms re-arm when it fires. */
const MAX_TIMER_MS = 0x7fff_ffff;

/** Host wall clock in nanoseconds since the Unix epoch. */
export type NsClock = () => bigint;
/** Starts a one-shot host timer; returns its cancel function. */
export type SetTimer = (delayMs: number, fire: () => void) => () => void;

export interface GoldfishRtcState {
  version: 1;
  /** 64-bit values as decimal strings (JSON has no bigint). */
  offsetNs: string;
  alarmNs: string;
  alarmRunning: boolean;
  irqPending: boolean;
  irqEnabled: boolean;
  timeHigh: number;
}

export interface GoldfishRtcStats {
  alarmsFired: number;
  guestErrors: number;
}

export interface GoldfishRtcOptions {
  irq: IrqLine;
  clock?: NsClock;
  setTimer?: SetTimer;
  log?: LogSink;
}

/** Wall clock with sub-millisecond resolution: Date.now() anchored, hrtime advanced. */
export function hostWallClockNs(): NsClock {
  const epochNs = BigInt(Date.now()) * 1_000_000n;
  const start = process.hrtime.bigint();
  return () => epochNs + (process.hrtime.bigint() - start);
}

function defaultSetTimer(delayMs: number, fire: () => void): () => void {
  const t = setTimeout(fire, delayMs);
  // An armed alarm must not keep the host process alive on its own.
  t.unref?.();
  return () => clearTimeout(t);
}

export class GoldfishRtc implements MmioDevice {
  readonly name = 'rtc';

  private readonly irq: IrqLine;
  private readonly clock: NsClock;
  private readonly setTimer: SetTimer;
  private readonly log: GuestErrorLog;
  private cancelTimer: (() => void) | null = null;
  private irqLevel = false;
  private alarmsFired = 0;

  private offsetNs = 0n;
  private alarmNs = 0n;
  private alarmRunning = false;
  private irqPending = false;
  private irqEnabled = false;
  private timeHigh = 0;

  constructor(opts: GoldfishRtcOptions) {
    this.irq = opts.irq;
    this.clock = opts.clock ?? hostWallClockNs();
    this.setTimer = opts.setTimer ?? defaultSetTimer;
    this.log = new GuestErrorLog(this.name, opts.log);
  }

  get stats(): GoldfishRtcStats {
    return { alarmsFired: this.alarmsFired, guestErrors: this.log.count };
  }

  /** Guest time in ns. */
  now(): bigint {
    return (this.clock() + this.offsetNs) & U64;
  }

  /** Fires the alarm if it is due; the host may call this from its own timer loop. */
  pollAlarm(): void {
    if (this.alarmRunning && this.alarmNs <= this.now()) this.fire();
    else if (this.alarmRunning) this.armTimer();
  }

  read(offset: number, size: 1 | 2 | 4): number {
    if (size !== 4) return this.bad('read', offset, size);
    switch (offset) {
      case TIME_LOW: {
        const t = this.now();
        this.timeHigh = Number(t >> 32n);
        return Number(t & U32);
      }
      case TIME_HIGH:
        return this.timeHigh;
      case ALARM_LOW:
        return Number(this.alarmNs & U32);
      case ALARM_HIGH:
        return Number(this.alarmNs >> 32n);
      case IRQ_ENABLED:
        return this.irqEnabled ? 1 : 0;
      case ALARM_STATUS:
        return this.alarmRunning ? 1 : 0;
      default:
        return this.bad('read', offset, size);
    }
  }

  write(offset: number, size: 1 | 2 | 4, value: number): void {
    if (size !== 4) return void this.bad('write', offset, size);
    const v = BigInt(value >>> 0);
    switch (offset) {
      case TIME_LOW:
      case TIME_HIGH: {
        const cur = this.now();
        const next = offset === TIME_LOW ? (cur & ~U32) | v : (cur & U32) | (v << 32n);
        this.offsetNs = (this.offsetNs + next - cur) & U64;
        break;
      }
      case ALARM_LOW:
        this.alarmNs = (this.alarmNs & ~U32 & U64) | v;
        this.setAlarm();
        break;
      case ALARM_HIGH:
        this.alarmNs = (this.alarmNs & U32) | (v << 32n);
        break;
      case IRQ_ENABLED:
        this.irqEnabled = (value & 1) === 1;
        break;
      case CLEAR_ALARM:
        this.clearAlarm();
        break;
      case CLEAR_INTERRUPT:
        this.irqPending = false;
        break;
      default:
        return void this.bad('write', offset, size);
    }
    this.update();
  }

  /** Power-on state; the clock keeps its offset (the battery-backed part), as in QEMU. */
  reset(): void {
    this.clearAlarm();
    this.alarmNs = 0n;
    this.irqPending = false;
    this.irqEnabled = false;
    this.update(true);
  }

  saveState(): GoldfishRtcState {
    return {
      version: 1,
      offsetNs: this.offsetNs.toString(),
      alarmNs: this.alarmNs.toString(),
      alarmRunning: this.alarmRunning,
      irqPending: this.irqPending,
      irqEnabled: this.irqEnabled,
      timeHigh: this.timeHigh,
    };
  }

  restoreState(s: GoldfishRtcState): void {
    if (s.version !== 1) throw new Error(`rtc: unsupported state version ${s.version}`);
    this.clearAlarm();
    this.offsetNs = BigInt(s.offsetNs) & U64;
    this.alarmNs = BigInt(s.alarmNs) & U64;
    this.irqPending = s.irqPending;
    this.irqEnabled = s.irqEnabled;
    this.timeHigh = s.timeHigh >>> 0;
    if (s.alarmRunning) this.setAlarm();
    this.update(true);
  }

  private bad(kind: 'read' | 'write', offset: number, size: number): number {
    this.log.report(`${size}-byte ${kind} of ${hex(offset)} ignored`);
    return 0;
  }

  private setAlarm(): void {
    if (this.alarmNs <= this.now()) {
      this.fire();
    } else {
      this.alarmRunning = true;
      this.armTimer();
    }
  }

  private armTimer(): void {
    this.cancelTimer?.();
    // Rounded up; if the host timer still fires early, pollAlarm re-arms for the rest.
    const ms = Number((this.alarmNs - this.now() + 999_999n) / 1_000_000n);
    this.cancelTimer = this.setTimer(Math.min(Math.max(ms, 1), MAX_TIMER_MS), () => {
      this.cancelTimer = null;
      this.pollAlarm();
    });
  }

  private clearAlarm(): void {
    this.cancelTimer?.();
    this.cancelTimer = null;
    this.alarmRunning = false;
  }

  private fire(): void {
    this.clearAlarm();
    this.alarmsFired++;
    this.irqPending = true;
    this.update();
  }

  /** Drives the line on change; `force` re-drives it (after reset/restore). */
  private update(force = false): void {
    const level = this.irqPending && this.irqEnabled;
    if (force || level !== this.irqLevel) {
      this.irqLevel = level;
      this.irq.set(level);
    }
  }
}
