/**
 * The guest's console output while the terminal shows the monitor (Ctrl-A C): held back, so
 * that a kernel message or a shell's escape sequence does not land in the middle of a monitor
 * command's answer, and printed when the terminal goes back to the console. At most `limit`
 * bytes wait; beyond that the oldest go, and the flush says how many.
 */
export class HeldOutput {
  private chunks: Uint8Array[] = [];
  private bytes = 0;
  private dropped = 0;

  constructor(
    private readonly write: (b: Uint8Array | string) => void,
    private readonly limit = 1 << 20,
  ) {}

  hold(b: Uint8Array | string): void {
    const chunk = typeof b === 'string' ? Buffer.from(b, 'utf8') : Uint8Array.from(b);
    this.chunks.push(chunk);
    this.bytes += chunk.length;
    while (this.bytes > this.limit && this.chunks.length > 0) {
      const first = this.chunks[0]!;
      const over = this.bytes - this.limit;
      if (first.length <= over) {
        this.chunks.shift();
        this.bytes -= first.length;
        this.dropped += first.length;
      } else {
        this.chunks[0] = first.subarray(over);
        this.bytes -= over;
        this.dropped += over;
      }
    }
  }

  /** Prints what waited (and how much did not fit), then nothing is held. */
  flush(): void {
    if (this.dropped > 0) {
      this.write(
        `[wasmvisor: ${this.dropped} bytes of console output dropped while in the monitor]\r\n`,
      );
    }
    for (const c of this.chunks) this.write(c);
    this.chunks = [];
    this.bytes = 0;
    this.dropped = 0;
  }
}
