/** A bounded scrollback: keeps the newest `capacity` bytes of a console stream. */
export const SCROLLBACK_BYTES = 256 * 1024;

export class ByteRing {
  private readonly buf: Uint8Array;
  private start = 0;
  private length = 0;

  constructor(readonly capacity = SCROLLBACK_BYTES) {
    this.buf = new Uint8Array(capacity);
  }

  get size(): number {
    return this.length;
  }

  append(bytes: Uint8Array): void {
    const cap = this.capacity;
    if (bytes.length >= cap) {
      this.buf.set(bytes.subarray(bytes.length - cap));
      this.start = 0;
      this.length = cap;
      return;
    }
    let end = (this.start + this.length) % cap;
    const first = Math.min(bytes.length, cap - end);
    this.buf.set(bytes.subarray(0, first), end);
    this.buf.set(bytes.subarray(first), 0);
    end = (end + bytes.length) % cap;
    const overflow = this.length + bytes.length - cap;
    if (overflow > 0) {
      this.start = (this.start + overflow) % cap;
      this.length = cap;
    } else this.length += bytes.length;
  }

  /** A copy of the kept bytes, oldest first. */
  snapshot(): Uint8Array {
    const out = new Uint8Array(this.length);
    const first = Math.min(this.length, this.capacity - this.start);
    out.set(this.buf.subarray(this.start, this.start + first));
    out.set(this.buf.subarray(0, this.length - first), first);
    return out;
  }

  clear(): void {
    this.start = 0;
    this.length = 0;
  }
}
