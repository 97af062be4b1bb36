/**
 * A reader/writer lock for the qcow2 layer: data I/O to clusters that are already allocated
 * runs concurrently (shared), while anything that changes metadata — allocation, discard, a
 * metadata write-back — runs alone (exclusive), so no data write can land in a cluster that is
 * being freed and reused for something else. Writers are preferred so a stream of reads cannot
 * starve a flush.
 */
export class RwLock {
  private readers = 0;
  private writer = false;
  private readonly waiting: { exclusive: boolean; go: () => void }[] = [];

  async shared<T>(fn: () => Promise<T>): Promise<T> {
    if (this.writer || this.waiting.length > 0) {
      await new Promise<void>((go) => this.waiting.push({ exclusive: false, go }));
    } else this.readers++;
    try {
      return await fn();
    } finally {
      this.readers--;
      this.wake();
    }
  }

  async exclusive<T>(fn: () => Promise<T>): Promise<T> {
    if (this.writer || this.readers > 0 || this.waiting.length > 0) {
      await new Promise<void>((go) => this.waiting.push({ exclusive: true, go }));
    } else this.writer = true;
    try {
      return await fn();
    } finally {
      this.writer = false;
      this.wake();
    }
  }

  private wake(): void {
    if (this.writer) return;
    while (this.waiting.length > 0) {
      const next = this.waiting[0];
      if (next.exclusive) {
        if (this.readers > 0) return;
        this.waiting.shift();
        this.writer = true;
        next.go();
        return;
      }
      this.waiting.shift();
      this.readers++;
      next.go();
    }
  }
}
