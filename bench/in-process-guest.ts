/**
 * A VirtMachine running in this process with an expect-style console: wait for a pattern in
 * what it printed since the last match, type a line. Used where several guests must share one
 * process (the network switch joins VMs of one process).
 */
import type { VirtMachine } from '../main/vm/machine.js';

export class InProcessGuest {
  /** Everything the guest printed (latin1). */
  out = '';
  private mark = 0;
  /** Settles when the machine's run loop ends. */
  readonly done: Promise<unknown>;

  constructor(readonly vm: VirtMachine) {
    vm.onConsoleOutput = (b) => (this.out += Buffer.from(b).toString('latin1'));
    this.done = vm.run();
  }

  send(line: string): void {
    this.vm.consoleInput(Buffer.from(line + '\r'));
  }

  async expect(re: RegExp, ms: number): Promise<RegExpExecArray> {
    const t0 = Date.now();
    for (;;) {
      const m = re.exec(this.out.slice(this.mark));
      if (m) {
        this.mark += m.index + m[0].length;
        return m;
      }
      if (Date.now() - t0 > ms) {
        throw new Error(`timed out waiting for ${re}; console tail:\n${this.out.slice(-1500)}`);
      }
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  /**
   * Waits until `re` appears anywhere in the output, also before the last match: for lines a
   * guest prints at a moment of its own (a driver's message, a background job's end marker),
   * which may come out while the test awaits another command's output.
   */
  async seen(re: RegExp, ms: number): Promise<void> {
    const t0 = Date.now();
    while (!re.test(this.out)) {
      if (Date.now() - t0 > ms) {
        throw new Error(`timed out waiting for ${re}; console tail:\n${this.out.slice(-1500)}`);
      }
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  /** Types `cmd` and waits for `re`. */
  async run(cmd: string, re: RegExp, ms = 30_000): Promise<RegExpExecArray> {
    this.send(cmd);
    return this.expect(re, ms);
  }
}
