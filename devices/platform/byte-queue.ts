/** A bounded FIFO of bytes in a ring buffer: O(1) push/shift, no allocation after construction. */
export class ByteQueue {
  private readonly buf: Uint8Array;
  private head = 0;
  length = 0;

  constructor(readonly capacity: number) {
    this.buf = new Uint8Array(capacity);
  }

  get full(): boolean {
    return this.length === this.capacity;
  }

  /** Appends one byte; returns false (and drops it) when full. */
  push(byte: number): boolean {
    if (this.length === this.capacity) return false;
    this.buf[(this.head + this.length) % this.capacity] = byte;
    this.length++;
    return true;
  }

  /** Removes and returns the oldest byte, or -1 when empty. */
  shift(): number {
    if (this.length === 0) return -1;
    const b = this.buf[this.head];
    this.head = (this.head + 1) % this.capacity;
    this.length--;
    return b;
  }

  clear(): void {
    this.head = 0;
    this.length = 0;
  }

  /** Contents, oldest first (for saveState). */
  toArray(): number[] {
    const out = new Array<number>(this.length);
    for (let i = 0; i < this.length; i++) out[i] = this.buf[(this.head + i) % this.capacity];
    return out;
  }
}
