/**
 * Drive a program that talks over a serial console on stdin/stdout (QEMU -nographic, our own
 * `wasmvisor run`), the way `expect` does: wait for a pattern in its output with a timeout,
 * then type something.
 *
 *   const s = SerialSession.spawn('qemu-system-riscv64', [...args]);
 *   await s.expect(/# $/m, 60_000);
 *   s.sendLine('echo $((6*7))');
 *   await s.expect(/^42\r?$/m, 5_000);
 *   s.sendLine('poweroff');
 *   const { code } = await s.waitForExit(30_000);
 *
 * Each expect() searches the output after the end of the previous match, so a pattern that
 * already appeared earlier is not matched twice. On a timeout, or when the process exits first,
 * the promise rejects with an error that carries the tail of the output.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import { dirname } from 'node:path';
import { performance } from 'node:perf_hooks';

export interface SerialSessionOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Write a transcript of the console output (and of what was typed) to this file. */
  logFile?: string;
  /** Mirror the console output to this process's stderr (default: env SERIAL_ECHO=1). */
  echo?: boolean;
  /** Line ending for sendLine(): '\r' is what a terminal's Enter key sends (the default). */
  eol?: string;
}

export interface ExpectResult {
  /** The match, as RegExp.exec returns it (for a string pattern: [pattern]). */
  match: RegExpExecArray | [string];
  /** Console output between the previous match and this one. */
  before: string;
  /** Milliseconds since the process was spawned. */
  elapsedMs: number;
}

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Milliseconds since the process was spawned. */
  elapsedMs: number;
}

interface Waiter {
  pattern: RegExp | string;
  resolve(r: ExpectResult): void;
  reject(e: Error): void;
  timer: NodeJS.Timeout;
}

const TAIL_CHARS = 3000;

export class SerialSession {
  private out = '';
  private err = '';
  private cursor = 0;
  private waiter: Waiter | undefined;
  private exitStatus: ExitStatus | undefined;
  private readonly exited: Promise<ExitStatus>;
  private readonly decoder = new TextDecoder('utf-8');
  private readonly log: WriteStream | undefined;
  private readonly echo: boolean;
  private readonly eol: string;
  /** performance.now() at spawn time. */
  readonly startedAt: number;

  private constructor(
    private readonly child: ChildProcessWithoutNullStreams,
    readonly description: string,
    opts: SerialSessionOptions,
  ) {
    this.startedAt = performance.now();
    this.echo = opts.echo ?? process.env.SERIAL_ECHO === '1';
    this.eol = opts.eol ?? '\r';
    if (opts.logFile !== undefined) {
      mkdirSync(dirname(opts.logFile), { recursive: true });
      this.log = createWriteStream(opts.logFile);
    }
    child.stdout.on('data', (d: Buffer) => this.onOutput(d));
    child.stderr.on('data', (d: Buffer) => {
      this.err += d.toString('utf-8');
      this.log?.write(d);
    });
    // Writing to a process that has exited raises EPIPE on stdin; the exit is reported by
    // waitForExit()/expect(), so the stream error itself carries no news.
    child.stdin.on('error', () => {});
    this.exited = new Promise((resolve) => {
      child.on('error', (e) => {
        this.err += `\n[spawn error] ${e.message}\n`;
        this.finish({ code: null, signal: null, elapsedMs: this.elapsed() }, resolve);
      });
      child.on('close', (code, signal) => {
        this.finish({ code, signal, elapsedMs: this.elapsed() }, resolve);
      });
    });
  }

  static spawn(
    command: string,
    args: readonly string[],
    opts: SerialSessionOptions = {},
  ): SerialSession {
    const child = spawn(command, args, {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    return new SerialSession(child, [command, ...args].join(' '), opts);
  }

  /** The process's id (undefined if it could not be spawned). */
  get pid(): number | undefined {
    return this.child.pid;
  }

  /** All console output so far. */
  get output(): string {
    return this.out;
  }

  /** Everything the process wrote to stderr so far. */
  get stderr(): string {
    return this.err;
  }

  /** Exit status, once the process has exited. */
  get exitInfo(): ExitStatus | undefined {
    return this.exitStatus;
  }

  /** Milliseconds since spawn. */
  elapsed(): number {
    return performance.now() - this.startedAt;
  }

  /**
   * Resolves when `pattern` appears in the output after the previous match; rejects after
   * `timeoutMs`, or as soon as the process exits without having printed it.
   */
  expect(pattern: RegExp | string, timeoutMs: number): Promise<ExpectResult> {
    if (this.waiter !== undefined) {
      return Promise.reject(new Error('SerialSession.expect: another expect() is still pending'));
    }
    const now = this.tryMatch(pattern);
    if (now !== undefined) return Promise.resolve(now);
    if (this.exitStatus !== undefined) {
      return Promise.reject(this.failure(`process exited before ${show(pattern)} appeared`));
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = undefined;
        reject(this.failure(`timed out after ${timeoutMs} ms waiting for ${show(pattern)}`));
      }, timeoutMs);
      this.waiter = { pattern, resolve, reject, timer };
    });
  }

  /** Types `text` (no line ending added). */
  send(text: string | Uint8Array): void {
    if (this.exitStatus !== undefined || this.child.stdin.destroyed) return;
    this.log?.write(typeof text === 'string' ? text : Buffer.from(text));
    this.child.stdin.write(text);
  }

  /** Types `text` and Enter. */
  /**
   * Runs one command of wasmvisor's terminal monitor: Ctrl-A C, the line, its answer (returned),
   * the prompt again, and Ctrl-A C back to the console.
   */
  async monitorCommand(line: string, answer: RegExp, ms = 60_000): Promise<ExpectResult> {
    this.send('\x01c');
    await this.expect('(wasmvisor) ', 5_000);
    this.sendLine(line);
    const r = await this.expect(answer, ms);
    await this.expect('(wasmvisor) ', 5_000);
    this.send('\x01c');
    return r;
  }

  sendLine(text: string): void {
    this.send(text + this.eol);
  }

  /** Resolves with the exit status; rejects after `timeoutMs` (the process is left running). */
  waitForExit(timeoutMs: number): Promise<ExitStatus> {
    if (this.exitStatus !== undefined) return Promise.resolve(this.exitStatus);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(this.failure(`process did not exit within ${timeoutMs} ms`)),
        timeoutMs,
      );
      void this.exited.then((s) => {
        clearTimeout(timer);
        resolve(s);
      });
    });
  }

  /** Kills the process if it is still running and waits for it to go. Safe to call twice. */
  async close(signal: NodeJS.Signals = 'SIGKILL'): Promise<ExitStatus> {
    if (this.exitStatus === undefined) this.child.kill(signal);
    const status = await this.exited;
    await new Promise<void>((resolve) => (this.log ? this.log.end(resolve) : resolve()));
    return status;
  }

  private onOutput(d: Buffer): void {
    const text = this.decoder.decode(d, { stream: true });
    this.out += text;
    this.log?.write(d);
    if (this.echo) process.stderr.write(d);
    const w = this.waiter;
    if (w === undefined) return;
    const r = this.tryMatch(w.pattern);
    if (r !== undefined) {
      clearTimeout(w.timer);
      this.waiter = undefined;
      w.resolve(r);
    }
  }

  private tryMatch(pattern: RegExp | string): ExpectResult | undefined {
    const rest = this.out.slice(this.cursor);
    let match: RegExpExecArray | [string] | null;
    let index: number;
    if (typeof pattern === 'string') {
      index = rest.indexOf(pattern);
      match = index < 0 ? null : [pattern];
    } else {
      // A fresh, stateless copy: a caller's /g or /y must not make matching depend on lastIndex.
      const re = new RegExp(pattern.source, pattern.flags.replace(/[gy]/g, ''));
      match = re.exec(rest);
      index = match?.index ?? -1;
    }
    if (match === null) return undefined;
    const before = rest.slice(0, index);
    this.cursor += index + match[0].length;
    return { match, before, elapsedMs: this.elapsed() };
  }

  private finish(status: ExitStatus, resolve: (s: ExitStatus) => void): void {
    if (this.exitStatus !== undefined) return;
    const tail = this.decoder.decode();
    if (tail) this.out += tail;
    this.exitStatus = status;
    resolve(status);
    const w = this.waiter;
    if (w !== undefined) {
      const r = this.tryMatch(w.pattern);
      clearTimeout(w.timer);
      this.waiter = undefined;
      if (r !== undefined) w.resolve(r);
      else w.reject(this.failure(`process exited before ${show(w.pattern)} appeared`));
    }
  }

  private failure(what: string): Error {
    const st = this.exitStatus;
    const exit =
      st === undefined ? 'still running' : `exited: code ${st.code}, signal ${st.signal}`;
    const parts = [
      `${what} (${exit}, ${Math.round(this.elapsed())} ms after start)`,
      `command: ${this.description}`,
      `--- last console output ---\n${this.out.slice(-TAIL_CHARS)}`,
    ];
    if (this.err) parts.push(`--- stderr ---\n${this.err.slice(-TAIL_CHARS)}`);
    return new Error(parts.join('\n'));
  }
}

function show(p: RegExp | string): string {
  return typeof p === 'string' ? JSON.stringify(p) : String(p);
}
