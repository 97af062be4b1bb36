/**
 * SiFive test finisher ("sifive,test0"): the guest's power switch. A write to offset 0 with
 * low half 0x5555 powers off, 0x7777 resets, 0x3333 fails with the exit code in the high half.
 * Linux reaches it through syscon-poweroff/syscon-reboot, OpenSBI through its sifive_test
 * driver, riscv-tests and bare-metal code directly.
 */
import { GuestErrorLog, hex, type LogSink } from './guest-log.js';
import type { MmioDevice } from './mmio.js';

const FINISHER_FAIL = 0x3333;
const FINISHER_PASS = 0x5555;
const FINISHER_RESET = 0x7777;

export interface ShutdownEvent {
  kind: 'poweroff' | 'reset' | 'fail';
  /** Exit code: 0 for poweroff and reset, the guest's code (0..65535) for fail. */
  code: number;
}

export interface SifiveTestState {
  version: 1;
}

export interface SifiveTestStats {
  shutdowns: number;
  guestErrors: number;
}

export class SifiveTest implements MmioDevice {
  readonly name = 'test';
  onShutdown: ((e: ShutdownEvent) => void) | undefined;
  private shutdowns = 0;
  private readonly log: GuestErrorLog;

  constructor(onShutdown?: (e: ShutdownEvent) => void, log?: LogSink) {
    this.onShutdown = onShutdown;
    this.log = new GuestErrorLog(this.name, log);
  }

  get stats(): SifiveTestStats {
    return { shutdowns: this.shutdowns, guestErrors: this.log.count };
  }

  read(_offset: number, _size: 1 | 2 | 4): number {
    return 0;
  }

  write(offset: number, size: 1 | 2 | 4, value: number): void {
    // QEMU accepts 2- and 4-byte writes; a 2-byte write carries the command without a code.
    if (offset !== 0 || size === 1) {
      this.log.report(`${size}-byte write ${hex(value)} at ${hex(offset)} ignored`);
      return;
    }
    const command = value & 0xffff;
    const code = size === 4 ? value >>> 16 : 0;
    let event: ShutdownEvent;
    if (command === FINISHER_PASS) event = { kind: 'poweroff', code: 0 };
    else if (command === FINISHER_RESET) event = { kind: 'reset', code: 0 };
    else if (command === FINISHER_FAIL) event = { kind: 'fail', code };
    else {
      this.log.report(`unknown command ${hex(value)}`);
      return;
    }
    this.shutdowns++;
    this.onShutdown?.(event);
  }

  reset(): void {}

  saveState(): SifiveTestState {
    return { version: 1 };
  }

  restoreState(s: SifiveTestState): void {
    if (s.version !== 1) throw new Error(`test: unsupported state version ${s.version}`);
  }
}
