/**
 * How a VM's clocks run: host time (default) or deterministic time from instructions retired
 * (QEMU's -icount), and where the wall clock (the goldfish RTC) starts (QEMU's -rtc base=).
 * Parsed from the CLI's `--icount`/`--rtc` and validated from a saved definition's JSON.
 */
import { ConfigError } from './config.js';

/** Deterministic time: mtime = instructions retired >> shift, in 10 MHz ticks. */
export interface IcountConfig {
  /** 0..10: each tick is 2^shift instructions (shift 4: the guest sees 160 M instructions/s). */
  shift: number;
  /**
   * What a WFI waiting for a timer does: true (default) waits that long in host time, so an
   * idle guest costs no CPU; false jumps the clock to the deadline at once (runs are then
   * independent of the host's speed and load, and an idle guest spins through its timers).
   */
  sleep: boolean;
}

export const MAX_ICOUNT_SHIFT = 10;
export const DEFAULT_ICOUNT_SHIFT = 4;

const onOff = (opt: string, k: string, v: string | undefined): boolean => {
  if (v === 'on') return true;
  if (v === 'off') return false;
  throw new ConfigError(`${opt}: ${k} must be on or off`);
};

function checkShift(where: string, n: number): number {
  if (!Number.isInteger(n) || n < 0 || n > MAX_ICOUNT_SHIFT) {
    throw new ConfigError(`${where}: shift must be an integer in 0..${MAX_ICOUNT_SHIFT}`);
  }
  return n;
}

/** `--icount N` or `--icount [shift=N][,sleep=on|off]` (an empty spec takes the defaults). */
export function parseIcountSpec(spec: string): IcountConfig {
  const c: IcountConfig = { shift: DEFAULT_ICOUNT_SHIFT, sleep: true };
  for (const o of spec.split(',').filter((x) => x !== '')) {
    const [k, v] = o.split('=', 2) as [string, string | undefined];
    if (v === undefined && /^\d+$/.test(k)) c.shift = checkShift('--icount', Number(k));
    else if (k === 'shift') c.shift = checkShift('--icount', v === undefined ? NaN : Number(v));
    else if (k === 'sleep') c.sleep = onOff('--icount', k, v);
    else throw new ConfigError(`--icount: unknown option "${o}" (shift=N, sleep=on|off)`);
  }
  return c;
}

/**
 * A wall-clock date as QEMU's -rtc base= takes it: `YYYY-MM-DD` or `YYYY-MM-DDTHH:MM:SS`, in
 * UTC. Returns it normalised (`YYYY-MM-DDTHH:MM:SSZ`).
 */
export function parseRtcBase(where: string, s: string): string {
  const m = /^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2}):(\d{2})Z?)?$/.exec(s);
  const ms = m
    ? Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +(m[4] ?? 0), +(m[5] ?? 0), +(m[6] ?? 0))
    : NaN;
  const iso = Number.isFinite(ms) ? new Date(ms).toISOString() : '';
  // Date.UTC rolls 2026-02-30 over into March: only a date that reads back the same is one.
  if (!m || iso.slice(0, 10) !== `${m[1]}-${m[2]}-${m[3]}` || ms < 0) {
    throw new ConfigError(
      `${where}: "${s}" is not a date (YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS, UTC, from 1970)`,
    );
  }
  if (m[4] !== undefined && iso.slice(11, 19) !== `${m[4]}:${m[5]}:${m[6]}`) {
    throw new ConfigError(`${where}: "${s}" is not a time of day`);
  }
  return `${iso.slice(0, 19)}Z`;
}

/** `--rtc base=utc|DATE`: undefined for utc (the host's clock), else the normalised date. */
export function parseRtcSpec(spec: string): string | undefined {
  let base: string | undefined;
  for (const o of spec.split(',').filter((x) => x !== '')) {
    const [k, v] = o.split('=', 2) as [string, string | undefined];
    if (k !== 'base' || v === undefined) {
      throw new ConfigError(`--rtc: unknown option "${o}" (base=utc or base=YYYY-MM-DDTHH:MM:SS)`);
    }
    base = v === 'utc' ? undefined : parseRtcBase('--rtc base', v);
  }
  return base;
}

const isObj = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** A definition's `"icount"` (untrusted JSON). */
export function validateIcount(v: unknown, where: string): IcountConfig | undefined {
  if (v === undefined) return undefined;
  const w = `${where}: icount`;
  if (!isObj(v)) throw new ConfigError(`${w}: expected an object`);
  const shift = v.shift ?? DEFAULT_ICOUNT_SHIFT;
  const sleep = v.sleep ?? true;
  if (typeof shift !== 'number') throw new ConfigError(`${w}: "shift" must be a number`);
  if (typeof sleep !== 'boolean') throw new ConfigError(`${w}: "sleep" must be true or false`);
  return { shift: checkShift(w, shift), sleep };
}

/** A definition's `"rtcBase"` (untrusted JSON). */
export function validateRtcBase(v: unknown, where: string): string | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw new ConfigError(`${where}: "rtcBase" must be a date string`);
  return parseRtcBase(`${where}: rtcBase`, v);
}
