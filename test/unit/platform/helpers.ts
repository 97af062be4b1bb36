/** Test doubles shared by the platform tests. */
import type { HartIrqLines, IrqLine } from '../../../devices/platform/mmio.js';

/** An interrupt line that remembers its level and counts rising edges. */
export class FakeLine implements IrqLine {
  level = false;
  rises = 0;
  set(level: boolean): void {
    if (level && !this.level) this.rises++;
    this.level = level;
  }
}

/** The hart's MEIP/SEIP inputs. */
export class FakeHart implements HartIrqLines {
  meip = false;
  seip = false;
  setMachineExternal(level: boolean): void {
    this.meip = level;
  }
  setSupervisorExternal(level: boolean): void {
    this.seip = level;
  }
}

/** Collects guest-error log lines instead of printing them. */
export function logSink(): { lines: string[]; sink: (m: string) => void } {
  const lines: string[] = [];
  return { lines, sink: (m) => lines.push(m) };
}

export const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);
