/**
 * A guest's serial console on a child process (wasmvisor or QEMU with -nographic), driven like
 * `expect`: wait for a pattern in what it printed since the last match, type a line.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';

/** busybox's line editor asks the terminal where the cursor is (ESC [6n) after each prompt. */
const CURSOR_QUERY = '\u001b[6n';

export class GuestConsole {
  private out = '';
  private cursor = 0;
  private exited = false;
  readonly p: ChildProcessWithoutNullStreams;

  constructor(cmd: string, args: string[]) {
    this.p = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    this.p.stdout.on('data', (d: Buffer) => (this.out += d.toString('latin1')));
    this.p.stderr.on('data', (d: Buffer) => (this.out += d.toString('latin1')));
    this.p.on('exit', () => (this.exited = true));
    this.p.stdin.on('error', () => {});
  }

  /** Resolves with the first match of `re` after the previous match; rejects after `ms`. */
  async expect(re: RegExp, ms: number): Promise<RegExpExecArray> {
    const t0 = performance.now();
    for (;;) {
      const rest = this.out.slice(this.cursor).split(CURSOR_QUERY).join('');
      const m = re.exec(rest);
      if (m) {
        this.cursor = this.out.length;
        return m;
      }
      if (this.exited || performance.now() - t0 > ms) {
        throw new Error(`no ${re} within ${ms} ms:\n${this.out.slice(-1500)}`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Types a line (Enter is CR, as a terminal sends it). */
  send(line: string): void {
    this.p.stdin.write(line + '\r');
  }

  /** Sends raw bytes (escape keys). */
  sendRaw(bytes: Uint8Array): void {
    this.p.stdin.write(bytes);
  }

  /** The last `n` characters it printed. */
  tail(n = 3000): string {
    return this.out.slice(-n);
  }

  kill(): void {
    this.p.kill('SIGKILL');
  }
}
