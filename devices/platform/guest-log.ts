/**
 * Reports of guest misbehaviour (unknown registers, bad access sizes, malformed commands).
 *
 * The guest is untrusted and can hit a bad register millions of times a second, so messages are
 * rate-limited per device: the first few are logged, the rest are only counted. The count is
 * what the stats show.
 */
export type LogSink = (message: string) => void;

/** How many messages a device logs before it only counts. */
const LOGGED_PER_DEVICE = 16;

export class GuestErrorLog {
  /** Every report, logged or not. */
  count = 0;

  constructor(
    private readonly device: string,
    private readonly sink: LogSink = defaultSink,
  ) {}

  report(message: string): void {
    this.count++;
    if (this.count <= LOGGED_PER_DEVICE) {
      this.sink(`${this.device}: ${message}`);
      if (this.count === LOGGED_PER_DEVICE) {
        this.sink(`${this.device}: further guest errors are counted, not logged`);
      }
    }
  }
}

function defaultSink(message: string): void {
  console.warn(`[guest] ${message}`);
}

/** Formats an offset or value as hex for log messages. */
export function hex(n: number): string {
  return '0x' + n.toString(16);
}
