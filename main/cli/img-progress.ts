/**
 * The progress report of long `img` operations (`-p`, as qemu-img): on a terminal one line
 * redrawn in place, `    (42.00/100%)`; when stdout is a file or a pipe, a plain line per
 * tenth done (`42%` lines a log can keep), so nothing is drawn over.
 */
export interface ProgressSink {
  out: (s: string) => void;
  /** Whether `out` is a terminal (default: process.stdout.isTTY). */
  tty?: boolean;
}

export class Progress {
  private shown = -1;
  private readonly tty: boolean;

  constructor(private readonly sink: ProgressSink | undefined) {
    this.tty = sink?.tty ?? process.stdout.isTTY === true;
    this.report(0, 1);
  }

  /** `done` of `total` units are finished. */
  report(done: number, total: number): void {
    if (!this.sink) return;
    const pct = total > 0 ? Math.min(100, (done / total) * 100) : 100;
    if (this.tty) {
      const hundredths = Math.floor(pct * 100);
      if (hundredths === this.shown) return;
      this.shown = hundredths;
      this.sink.out(`    (${(hundredths / 100).toFixed(2)}/100%)\r`);
    } else {
      const step = Math.floor(pct / 10) * 10;
      if (step === this.shown) return;
      this.shown = step;
      this.sink.out(`${step}%\n`);
    }
  }

  /** Ends the report at 100% (a terminal's line is then left as it is, with a newline). */
  finish(): void {
    this.report(1, 1);
    if (this.sink && this.tty) this.sink.out('\n');
  }
}
