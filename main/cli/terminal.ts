/**
 * The serial console on the user's terminal, like QEMU's -nographic: raw mode, and an escape
 * prefix Ctrl-A: Ctrl-A X quits, Ctrl-A Ctrl-A sends a literal Ctrl-A, Ctrl-A H shows help,
 * Ctrl-A C switches between the console and the monitor (when the caller has one).
 */
const CTRL_A = 0x01;

export interface TerminalHandlers {
  input(bytes: Uint8Array): void;
  quit(): void;
  help(text: string): void;
  /** Ctrl-A C: switch between the guest console and the monitor. */
  monitor?(): void;
}

export class EscapeDecoder {
  private pending = false;
  constructor(private readonly h: TerminalHandlers) {}

  feed(data: Uint8Array): void {
    let start = 0;
    for (let i = 0; i < data.length; i++) {
      const b = data[i]!;
      if (this.pending) {
        this.pending = false;
        start = i + 1;
        if (b === 0x78 || b === 0x58) {
          this.h.quit();
          return;
        }
        if (b === CTRL_A) this.h.input(Uint8Array.of(CTRL_A));
        else if ((b === 0x63 || b === 0x43) && this.h.monitor) this.h.monitor();
        else if (b === 0x68 || b === 0x48 || b === 0x3f) {
          this.h.help(
            '\r\nC-a x  quit\r\nC-a C-a  send C-a\r\n' +
              (this.h.monitor ? 'C-a c  switch between console and monitor\r\n' : '') +
              'C-a h  this help\r\n',
          );
        }
        continue;
      }
      if (b === CTRL_A) {
        if (i > start) this.h.input(data.subarray(start, i));
        this.pending = true;
        start = i + 1;
      }
    }
    if (!this.pending && start < data.length) this.h.input(data.subarray(start));
  }
}

/** Attaches stdin/stdout; returns a function that restores the terminal. */
export function attachTerminal(h: TerminalHandlers): () => void {
  const stdin = process.stdin;
  const raw = stdin.isTTY === true;
  if (raw) stdin.setRawMode(true);
  const dec = new EscapeDecoder(h);
  const onData = (d: Buffer): void => dec.feed(new Uint8Array(d.buffer, d.byteOffset, d.length));
  stdin.on('data', onData);
  stdin.resume();
  return () => {
    stdin.off('data', onData);
    if (raw) stdin.setRawMode(false);
    stdin.pause();
  };
}
